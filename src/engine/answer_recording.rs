//! Recording a run's answers in the answer store: once a shard's result files are downloaded
//! and verified, every answer the join would call `ok` (declared fields parsed, embedding of the
//! right size) is stored under its request's key, with its usage, batch price, batch and time.
//! Failed, expired and invalid answers are never stored, so they are sent again next time.
//!
//! A shard is marked `answers_stored` in the ledger after its store transaction commits; a crash
//! in between stores the same answers again on resume, which changes nothing.

use super::RunDirectory;
use super::join_pass::judge_answer;
use super::shard_request_keys::shard_request_keys;
use super::shard_results::load_ok_result_lines;
use crate::answer_store::{AnswerRecord, AnswerStore};
use crate::cost::RunPricer;
use crate::job::Job;
use crate::ledger::Ledger;
use crate::row_result::RowStatus;

/// Who the answers are recorded for.
pub(super) struct AnswerRecording<'a> {
    pub job: &'a Job,
    pub run_id: &'a str,
    pub provider_identity: &'a str,
    pub pricer: &'a RunPricer,
}

impl AnswerRecording<'_> {
    /// Stores the answers of every downloaded shard not stored yet; returns (shard, answers
    /// stored) for each shard it stored.
    ///
    /// # Errors
    /// When a shard's files or the ledger cannot be read, or the store written.
    pub(super) fn record_downloaded_shards(
        &self,
        ledger: &Ledger,
        run_directory: &RunDirectory,
        store: &mut AnswerStore,
    ) -> anyhow::Result<Vec<(u64, u64)>> {
        let mut stored = Vec::new();
        for shard in ledger.shards()? {
            if !shard.results_downloaded || shard.answers_stored {
                continue;
            }
            let mut results = load_ok_result_lines(run_directory, &shard, shard.status())?;
            let mut answers = Vec::new();
            for request in shard_request_keys(run_directory, &shard, self.provider_identity)? {
                let (custom_id, key) = request?;
                let Some((result_line, mut result)) = results.remove(&custom_id) else {
                    continue;
                };
                judge_answer(self.job, &mut result, None);
                if result.status() != RowStatus::Ok {
                    continue;
                }
                let cost = self.pricer.row_cost(&result);
                let usage = RunPricer::billed_usage(&result);
                answers.push(AnswerRecord {
                    key,
                    provider: self.provider_identity.to_owned(),
                    endpoint: self.job.spec.request.endpoint.clone(),
                    model: shard.model.clone(),
                    result_line,
                    batch_id: shard.batch_id.clone(),
                    job: self.job.name.clone(),
                    run_id: self.run_id.to_owned(),
                    prompt_tokens: usage.as_ref().map(|usage| usage.prompt_tokens),
                    completion_tokens: usage.as_ref().map(|usage| usage.completion_tokens),
                    reasoning_tokens: usage.as_ref().map(|usage| usage.reasoning_tokens),
                    cost: cost.map(|cost| cost.batch.to_decimal_string()),
                    currency: self
                        .pricer
                        .currency()
                        .map(|currency| currency.code().to_owned()),
                });
            }
            store.record(&answers)?;
            crate::kill_point::reach("after_answers_stored");
            ledger.set_answers_stored(shard.shard_index)?;
            stored.push((shard.shard_index, answers.len() as u64));
        }
        Ok(stored)
    }
}
