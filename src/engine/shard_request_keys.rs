//! The request of each line of a shard file, as the answer store knows it: its custom_id and
//! request key, in the file's order (blank lines passed over). Used where a shard's answers
//! meet the store: recording them and finding lost ones again.

use std::io::{BufRead, BufReader};

use super::RunDirectory;
use crate::ledger::ShardRecord;
use crate::request_key::RequestKey;

/// Each request line of `shard`'s file as `(custom_id, key)` for `provider_identity`; an error
/// names the file and line.
///
/// # Errors
/// When the file cannot be opened.
pub(super) fn shard_request_keys<'a>(
    run_directory: &RunDirectory,
    shard: &ShardRecord,
    provider_identity: &'a str,
) -> anyhow::Result<impl Iterator<Item = anyhow::Result<(String, RequestKey)>> + 'a> {
    let shard_path = run_directory.shard_path(&shard.file_name);
    let file = std::fs::File::open(&shard_path).map_err(|error| {
        anyhow::anyhow!("cannot read shard file `{}`: {error}", shard_path.display())
    })?;
    Ok(BufReader::new(file)
        .lines()
        .enumerate()
        .filter_map(move |(index, line)| {
            let line = match line {
                Ok(line) if line.trim().is_empty() => return None,
                Ok(line) => line,
                Err(error) => return Some(Err(error.into())),
            };
            Some(
                RequestKey::of_request_line(provider_identity, line.as_bytes()).map_err(|error| {
                    anyhow::anyhow!(
                        "{}, line {}: not a request line: {error}",
                        shard_path.display(),
                        index + 1
                    )
                }),
            )
        }))
}
