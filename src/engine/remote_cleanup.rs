//! Deleting a run's files at the provider once their results are safely on disk (DashScope caps
//! an account at 10,000 files).

use super::announced_calls::delete_file_announced;
use super::{Event, EventSink};
use crate::client::ApiClient;
use crate::ledger::Ledger;

/// Deletes the remote files of every shard whose results are safely on disk. Each deletion is
/// announced in the ledger first; a file already gone counts as deleted.
pub(super) async fn delete_remote_files(
    client: &ApiClient,
    ledger: &Ledger,
    events: &EventSink,
) -> anyhow::Result<()> {
    let shards = ledger.shards()?;
    let mut deleted = 0;
    for shard_index in ledger.shards_with_remote_files()? {
        let Some(shard) = shards.iter().find(|shard| shard.shard_index == shard_index) else {
            continue;
        };
        for file_id in [&shard.file_id, &shard.output_file_id, &shard.error_file_id]
            .into_iter()
            .flatten()
        {
            delete_file_announced(ledger, client, Some(shard_index), file_id).await??;
            deleted += 1;
        }
        ledger.set_remote_files_deleted(shard_index)?;
    }
    if deleted > 0 {
        events.emit(Event::RemoteFilesDeleted { files: deleted }, || {
            Some(format!(
                "deleted {deleted} file(s) at the provider; the results are in the run directory"
            ))
        });
    }
    Ok(())
}
