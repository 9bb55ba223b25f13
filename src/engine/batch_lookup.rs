//! The state of every live batch of a run, in as few calls as the provider allows. Up to 39
//! are retrieved one by one (`GET /batches/{id}`); from 40 live batches on, one list call filtered by up to 20 input files (`GET /batches?input_file_ids=…`, DashScope's
//! limit: reference §3.3) answers for 20 batches at once, so 1,000 live batches cost 50 calls a
//! round, not 1,000 (DashScope allows 1,000 retrieves a minute). A batch a list does not show
//! (a provider that ignores the filter and lists others first) is retrieved by itself, and so is
//! every batch of a list call the provider refuses (after the client's own retries).

use std::collections::HashMap;

use crate::client::{ApiClient, BatchListQuery, ClientError};
use crate::wire::Batch;

/// Input files a list call may filter by (DashScope: at most 20).
const FILES_PER_LIST_CALL: usize = 20;
/// Live batches from which list calls are used.
pub const LIST_POLLING_FROM: usize = 2 * FILES_PER_LIST_CALL;

/// A live batch to look up: its id and its input file's id.
pub struct LiveBatch<'a> {
    pub batch_id: &'a str,
    pub input_file_id: Option<&'a str>,
}

/// The current state of each of `live`, by batch id.
///
/// # Errors
/// When the provider cannot be reached (after the client's retries) or answers with an error.
pub async fn look_up_live_batches(
    client: &ApiClient,
    live: &[LiveBatch<'_>],
) -> Result<HashMap<String, Batch>, ClientError> {
    let mut found: HashMap<String, Batch> = HashMap::with_capacity(live.len());
    if live.len() >= LIST_POLLING_FROM {
        for group in live.chunks(FILES_PER_LIST_CALL) {
            let input_file_ids: Vec<String> = group
                .iter()
                .filter_map(|batch| batch.input_file_id.map(str::to_owned))
                .collect();
            if input_file_ids.is_empty() {
                continue;
            }
            let Ok(page) = client
                .list_batches(&BatchListQuery {
                    limit: Some(100),
                    input_file_ids,
                    ..BatchListQuery::default()
                })
                .await
            else {
                continue;
            };
            for batch in page.data.unwrap_or_default() {
                if group.iter().any(|live| live.batch_id == batch.id) {
                    found.insert(batch.id.clone(), batch);
                }
            }
        }
    }
    for batch in live {
        if !found.contains_key(batch.batch_id) {
            let retrieved = client.get_batch(batch.batch_id).await?;
            found.insert(batch.batch_id.to_owned(), retrieved);
        }
    }
    Ok(found)
}
