//! The batches as the Batches API shows them: create (with its checks of endpoint, window and
//! metadata), get, list, cancel, and the ledger of what they billed, each an operation on the
//! locked world (see [`super::state::Operation`]).

use std::collections::{BTreeMap, HashMap};
use std::io;

use serde_json::Value;

use super::api_error::ApiFailure;
use super::bills::read_bills;
use super::clock::whole_seconds;
use super::config::SimFlavour;
use super::input_lines::RequestLineReader;
use super::ledger::{LedgerBatch, SimLedger};
use super::lifecycle::{BatchRecord, BatchStage, NewBatch};
use super::listing::{BatchListQuery, first_and_last_ids, list_answer, page_of};
use super::state::Operation;
use crate::wire::{Batch, CreateBatchRequest};

impl Operation<'_> {
    fn batch_position(&self, id: &str) -> Result<usize, ApiFailure> {
        self.world
            .batches
            .iter()
            .position(|batch| batch.id == id)
            .ok_or_else(|| ApiFailure::not_found(format!("No batch found with id '{id}'.")))
    }

    /// Creates a batch; `output_expires_after_seconds` is OpenAI's `output_expires_after`.
    pub(crate) fn create_batch(
        &mut self,
        request: CreateBatchRequest,
        output_expires_after_seconds: Option<i64>,
    ) -> Result<Batch, ApiFailure> {
        let flavour = self.flavour();
        if !flavour
            .batch_endpoints()
            .contains(&request.endpoint.as_str())
        {
            return Err(ApiFailure::bad_request(
                "invalid_value",
                format!(
                    "Invalid value for 'endpoint': '{}'. Supported values are: {}.",
                    request.endpoint,
                    flavour.batch_endpoints().join(", ")
                ),
            )
            .with_param("endpoint"));
        }
        let window_seconds = flavour
            .completion_window_seconds(&request.completion_window)
            .map_err(|message| {
                ApiFailure::bad_request("invalid_value", message).with_param("completion_window")
            })?;
        check_metadata(flavour, request.metadata.as_ref())?;
        let input = self.live_file(&request.input_file_id)?;
        if input.object.purpose != "batch" {
            return Err(ApiFailure::bad_request(
                "invalid_input_file",
                format!(
                    "The file '{}' has purpose '{}'; a batch needs a file uploaded with purpose 'batch'.",
                    request.input_file_id, input.object.purpose
                ),
            )
            .with_param("input_file_id"));
        }
        let input_sha256 = input.sha256.clone();
        let model = match flavour {
            SimFlavour::Openai => self.peek_model(&request.input_file_id),
            SimFlavour::Dashscope => None,
        };
        let (plan, batches_before_plan) = {
            let control = self.state.lock_control();
            (control.plan.clone(), control.batches_before_plan)
        };
        let creation_order = self.world.batches.len() as u64 + 1;
        let behaviours =
            plan.behaviours_for_batch(creation_order.saturating_sub(batches_before_plan));
        let id = self.world.ids.batch_id(self.seed(), flavour);
        let batch = BatchRecord::validating(NewBatch {
            id,
            creation_order,
            input_file_id: request.input_file_id,
            input_sha256,
            endpoint: request.endpoint,
            completion_window: request.completion_window,
            window_seconds: window_seconds as f64,
            metadata: request.metadata,
            output_expires_after_seconds,
            created_at: self.now,
            behaviours,
            model,
        });
        let answer = batch.to_wire(self.now, flavour, self.seed());
        self.world.batches.push(batch);
        self.world.changed = true;
        Ok(answer)
    }

    /// The model of the first line of a file (OpenAI shows it on the batch from the start).
    fn peek_model(&self, file_id: &str) -> Option<String> {
        let mut source = self.state.store.open_source(file_id).ok()?;
        let line = RequestLineReader::starting_at(&mut *source, 0, 0)
            .ok()?
            .next_line()
            .ok()??;
        let value: Value = serde_json::from_slice(&line.bytes).ok()?;
        value.get("body")?.get("model")?.as_str().map(str::to_owned)
    }

    pub(crate) fn get_batch(&self, id: &str) -> Result<Batch, ApiFailure> {
        let position = self.batch_position(id)?;
        Ok(self.world.batches[position].to_wire(self.now, self.flavour(), self.seed()))
    }

    pub(crate) fn list_batches(&self, query: &BatchListQuery) -> Value {
        let (now, flavour, seed) = (self.now, self.flavour(), self.seed());
        let batches: Vec<Batch> = self
            .world
            .batches
            .iter()
            .rev()
            .filter(|batch| {
                query.ds_name.as_ref().is_none_or(|wanted| {
                    batch
                        .metadata
                        .as_ref()
                        .and_then(|metadata| metadata.get("ds_name"))
                        .is_some_and(|name| name.to_lowercase().contains(&wanted.to_lowercase()))
                })
            })
            .filter(|batch| {
                query
                    .input_file_ids
                    .as_ref()
                    .is_none_or(|ids| ids.contains(&batch.input_file_id))
            })
            .filter(|batch| {
                query
                    .statuses
                    .as_ref()
                    .is_none_or(|statuses| statuses.contains(&batch.stage.status()))
            })
            .filter(|batch| {
                query
                    .created_after
                    .is_none_or(|after| whole_seconds(batch.created_at) >= after)
            })
            .filter(|batch| {
                query
                    .created_before
                    .is_none_or(|before| whole_seconds(batch.created_at) <= before)
            })
            .map(|batch| batch.to_wire(now, flavour, seed))
            .collect();
        let (page, has_more) = page_of(
            batches,
            |batch| batch.id.as_str(),
            query.after.as_deref(),
            query.limit,
        );
        let ids = first_and_last_ids(&page, |batch| &batch.id);
        list_answer(page, has_more, ids, flavour, true)
    }

    pub(crate) fn cancel_batch(&mut self, id: &str) -> Result<Batch, ApiFailure> {
        let position = self.batch_position(id)?;
        let (now, flavour, seed) = (self.now, self.flavour(), self.seed());
        let batch = &mut self.world.batches[position];
        match batch.stage {
            BatchStage::Validating | BatchStage::InProgress => {
                batch.stage = BatchStage::Cancelling;
                batch.cancel_requested_at = Some(now);
                self.world.changed = true;
            }
            BatchStage::Cancelling => {}
            BatchStage::Finalizing
            | BatchStage::Completed
            | BatchStage::Failed
            | BatchStage::Expired
            | BatchStage::Cancelled => {
                return Err(ApiFailure::conflict(
                    "invalid_state",
                    format!(
                        "Cannot cancel a batch with status '{}'.",
                        batch.stage.status().as_str()
                    ),
                ));
            }
        }
        Ok(self.world.batches[position].to_wire(now, flavour, seed))
    }

    /// The ledger; the bills are read back from the file store (an error there is the state
    /// directory's, and is named).
    pub(crate) fn ledger(&self) -> io::Result<SimLedger> {
        let mut ledger = SimLedger {
            uploads: self.world.uploads,
            uploads_per_sha256: self.world.uploads_per_sha256.clone(),
            files_deleted: self.world.files_deleted,
            ..SimLedger::default()
        };
        for batch in &self.world.batches {
            ledger.batches.push(LedgerBatch {
                id: batch.id.clone(),
                input_file_id: batch.input_file_id.clone(),
                input_sha256: batch.input_sha256.clone(),
                metadata: batch.metadata.clone(),
                status: batch.stage.status().as_str().to_owned(),
                created_order: batch.creation_order,
            });
            *ledger
                .batches_per_input_file
                .entry(batch.input_file_id.clone())
                .or_default() += 1;
            *ledger
                .batches_per_input_sha256
                .entry(batch.input_sha256.clone())
                .or_default() += 1;
            read_bills(&self.state.store, &batch.bills, |bill| {
                ledger.add_bill(bill)
            })
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("cannot read the bills of batch `{}`: {error}", batch.id),
                )
            })?;
        }
        Ok(ledger)
    }
}

fn check_metadata(
    flavour: SimFlavour,
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<(), ApiFailure> {
    let Some(metadata) = metadata else {
        return Ok(());
    };
    let refuse = |message: String| {
        Err(ApiFailure::bad_request("invalid_value", message).with_param("metadata"))
    };
    match flavour {
        SimFlavour::Openai => {
            if metadata.len() > 16 {
                return refuse(format!(
                    "'metadata' may have at most 16 pairs, got {}.",
                    metadata.len()
                ));
            }
            for (key, value) in metadata {
                if key.chars().count() > 64 {
                    return refuse(format!(
                        "metadata key '{key}' is longer than 64 characters."
                    ));
                }
                if value.chars().count() > 512 {
                    return refuse(format!(
                        "metadata value of '{key}' is longer than 512 characters."
                    ));
                }
            }
        }
        SimFlavour::Dashscope => {
            let limits: HashMap<&str, usize> =
                HashMap::from([("ds_name", 100), ("ds_description", 200)]);
            for (key, limit) in limits {
                if let Some(value) = metadata.get(key)
                    && value.chars().count() > limit
                {
                    return refuse(format!(
                        "metadata '{key}' may have at most {limit} characters."
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use super::super::test_support::{CHAT, KEY, chat_lines, frozen_sim};
    use super::super::{
        CANCELLING_SECONDS, FINALIZING_SECONDS, SECONDS_PER_LINE, SimFlavour, VALIDATION_SECONDS,
        simulated_seconds_to_complete,
    };
    use crate::wire::{Batch, BatchStatus, RequestCounts};

    #[tokio::test]
    async fn a_batch_lives_through_validating_in_progress_finalizing_and_completed() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let file = sim.upload(&chat_lines(40, "qwen-flash")).await;
        let created: Value = sim
            .try_create(
                json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h",
                               "metadata": {"ds_name": "测试任务", "ds_description": "任务描述"}}),
            )
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(created["status"], "validating");
        assert_eq!(
            created["request_counts"],
            json!({"total": 0, "completed": 0, "failed": 0})
        );
        for field in [
            "in_progress_at",
            "expires_at",
            "finalizing_at",
            "completed_at",
            "failed_at",
            "expired_at",
            "cancelling_at",
            "cancelled_at",
            "output_file_id",
            "error_file_id",
            "errors",
        ] {
            assert_eq!(created.get(field), Some(&Value::Null), "{field}");
        }
        assert!(created.get("model").is_none() && created.get("usage").is_none());
        assert_eq!(
            created["metadata"],
            json!({"ds_name": "测试任务", "ds_description": "任务描述"})
        );
        let id = created["id"].as_str().unwrap().to_owned();
        assert!(
            id.starts_with("batch_") && id.len() == "batch_".len() + 36,
            "{id}"
        );
        let created_at = created["created_at"].as_i64().unwrap();

        // 40 lines run about 1.6 at a time.
        let between_lines =
            (simulated_seconds_to_complete(40) - VALIDATION_SECONDS - FINALIZING_SECONDS) / 40.0;
        assert!(between_lines < SECONDS_PER_LINE);
        sim.handle
            .advance_clock(VALIDATION_SECONDS + 10.5 * between_lines);
        let running = sim.batch(&id).await;
        assert_eq!(running.status, BatchStatus::InProgress);
        assert_eq!(running.in_progress_at, Some(created_at));
        assert_eq!(
            running.request_counts,
            Some(RequestCounts {
                total: 40,
                completed: 10,
                failed: 0
            })
        );

        sim.handle.advance_clock(29.6 * between_lines);
        let finalizing = sim.batch(&id).await;
        assert_eq!(finalizing.status, BatchStatus::Finalizing);
        assert_eq!(finalizing.finalizing_at, None);
        assert_eq!(finalizing.output_file_id, None);

        sim.handle.advance_clock(FINALIZING_SECONDS);
        let completed = sim.batch(&id).await;
        assert_eq!(completed.status, BatchStatus::Completed);
        assert!(completed.completed_at.is_some());
        assert_eq!(completed.finalizing_at, completed.completed_at);
        assert_eq!(
            completed.request_counts,
            Some(RequestCounts {
                total: 40,
                completed: 40,
                failed: 0
            })
        );
        assert_eq!(completed.error_file_id, None);

        let output_id = completed.output_file_id.unwrap();
        let raw_text = sim.download(&output_id).await;
        assert!(raw_text.starts_with("{\"id\":\""), "{raw_text}");
        let first_line = raw_text.lines().next().unwrap();
        let order: Vec<&str> = [
            "\"custom_id\"",
            "\"response\"",
            "\"status_code\":200",
            "\"request_id\"",
            "\"body\"",
            "\"created\"",
            "\"usage\"",
            "\"completion_tokens\"",
            "\"prompt_tokens\"",
            "\"total_tokens\"",
            "\"model\"",
            "\"chatcmpl-",
            "\"choices\"",
            "\"finish_reason\":\"stop\"",
            "\"index\":0",
            "\"role\":\"assistant\"",
            "\"content\"",
            "\"object\":\"chat.completion\"",
            "\"error\":null",
        ]
        .to_vec();
        let mut from = 0;
        for fragment in order {
            let found = first_line[from..]
                .find(fragment)
                .unwrap_or_else(|| panic!("{fragment} out of order in {first_line}"));
            from += found;
        }
        let lines = sim.result_lines(&output_id).await;
        assert_eq!(lines.len(), 40);
        let custom_ids: Vec<String> = lines.iter().map(|line| line.custom_id.clone()).collect();
        let input_order: Vec<String> = (0..40).map(|index| format!("row-{index}")).collect();
        assert_ne!(
            custom_ids, input_order,
            "results must not come back in input order"
        );
        assert_eq!(
            custom_ids.iter().collect::<BTreeSet<_>>(),
            input_order.iter().collect::<BTreeSet<_>>()
        );
        for line in &lines {
            let response = line.response.as_ref().unwrap();
            assert_eq!(response.status_code, 200);
            assert_eq!(response.request_id, line.id);
            let body = response.body.as_ref().unwrap();
            assert_eq!(
                body["id"].as_str().unwrap(),
                format!("chatcmpl-{}", line.id.as_ref().unwrap())
            );
            assert!(
                body["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .starts_with("[simulated qwen-flash] ")
            );
            assert!(line.error.is_none());
        }
        let ledger = sim.handle.ledger().await;
        assert_eq!(ledger.billed_requests.len(), 40);
        assert!(ledger.custom_ids_billed_twice().is_empty());
        assert_eq!(ledger.batches[0].status, "completed");
    }

    #[tokio::test]
    async fn create_refuses_bad_endpoints_windows_and_unknown_files() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let file = sim.upload(&chat_lines(1, "qwen-flash")).await;
        let cases = [
            (
                json!({"input_file_id": file.id, "endpoint": "/v1/completions", "completion_window": "24h"}),
                400,
                Some("endpoint"),
            ),
            (
                json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "23h"}),
                400,
                Some("completion_window"),
            ),
            (
                json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "15d"}),
                400,
                Some("completion_window"),
            ),
            (
                json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "1.5d"}),
                400,
                Some("completion_window"),
            ),
            (
                json!({"endpoint": CHAT, "completion_window": "24h"}),
                400,
                Some("input_file_id"),
            ),
            (
                json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h", "metadata": {"ds_name": "x".repeat(101)}}),
                400,
                Some("metadata"),
            ),
            (
                json!({"input_file_id": "file-batch-000000000000000000000000", "endpoint": CHAT, "completion_window": "24h"}),
                404,
                None,
            ),
        ];
        for (body, status, param) in cases {
            let response = sim.try_create(body.clone()).await.unwrap();
            assert_eq!(response.status().as_u16(), status, "{body}");
            let error: Value = response.json().await.unwrap();
            for field in ["message", "type", "code", "param"] {
                assert!(error["error"].get(field).is_some(), "{error}");
            }
            assert_eq!(error["error"]["param"].as_str(), param, "{body}");
        }
        let not_json = sim
            .client
            .post(sim.url("/batches"))
            .bearer_auth(KEY)
            .body("{")
            .send()
            .await
            .unwrap();
        assert_eq!(not_json.status(), 400);
        for window in ["14d", "72h", "336h"] {
            let response = sim
                .try_create(json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": window}))
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{window}");
        }
        assert_eq!(sim.handle.ledger().await.batches.len(), 3);
    }

    #[tokio::test]
    async fn cancel_keeps_the_finished_lines_and_fails_the_rest() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        // Up to 16 lines run one at a time.
        let batch = sim.submit(&chat_lines(15, "qwen-flash")).await;
        sim.handle
            .advance_clock(VALIDATION_SECONDS + 5.5 * SECONDS_PER_LINE);
        let answer = sim.cancel(&batch.id).await;
        assert_eq!(answer.status(), 200);
        let cancelling: Batch = answer.json().await.unwrap();
        assert_eq!(cancelling.status, BatchStatus::Cancelling);
        assert_eq!(cancelling.cancelling_at, None);
        assert_eq!(cancelling.request_counts.unwrap().completed, 5);
        assert_eq!(sim.cancel(&batch.id).await.status(), 200);

        sim.handle.advance_clock(CANCELLING_SECONDS);
        let cancelled = sim.batch(&batch.id).await;
        assert_eq!(cancelled.status, BatchStatus::Cancelled);
        assert!(cancelled.cancelled_at.is_some());
        assert_eq!(cancelled.cancelling_at, cancelled.cancelled_at);
        assert_eq!(
            cancelled.request_counts,
            Some(RequestCounts {
                total: 15,
                completed: 5,
                failed: 10
            })
        );
        let output = sim
            .result_lines(cancelled.output_file_id.as_ref().unwrap())
            .await;
        let errors = sim
            .result_lines(cancelled.error_file_id.as_ref().unwrap())
            .await;
        assert!(
            cancelled
                .error_file_id
                .as_ref()
                .unwrap()
                .starts_with("file-batch_output-")
        );
        assert_eq!((output.len(), errors.len()), (5, 10));
        assert!(errors.iter().all(|line| line.response.is_none()
            && line.error.as_ref().unwrap().code() == Some("batch_cancelled")));
        let every_id: BTreeSet<String> = output
            .iter()
            .chain(&errors)
            .map(|line| line.custom_id.clone())
            .collect();
        assert_eq!(every_id.len(), 15);
        assert_eq!(sim.handle.ledger().await.billed_requests.len(), 5);

        let refused = sim.cancel(&batch.id).await;
        assert_eq!(refused.status(), 409);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_state");
    }

    #[tokio::test]
    async fn a_batch_cancelled_while_validating_returns_every_line_as_failed() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let batch = sim.submit(&chat_lines(3, "qwen-flash")).await;
        assert_eq!(sim.cancel(&batch.id).await.status(), 200);
        let cancelled = sim.finish(&batch.id).await;
        assert_eq!(cancelled.status, BatchStatus::Cancelled);
        assert_eq!(cancelled.output_file_id, None);
        assert_eq!(cancelled.in_progress_at, None);
        assert_eq!(
            cancelled.request_counts,
            Some(RequestCounts {
                total: 3,
                completed: 0,
                failed: 3
            })
        );
        assert_eq!(
            sim.result_lines(cancelled.error_file_id.as_ref().unwrap())
                .await
                .len(),
            3
        );
    }

    #[tokio::test]
    async fn batch_lists_are_newest_first_and_filter_like_dashscope() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let first_file = sim.upload(&chat_lines(2, "qwen-flash")).await;
        let second_file = sim.upload(&chat_lines(3, "qwen-flash")).await;
        let mut ids = Vec::new();
        for (file, name) in [
            (&first_file, "Nightly Eval A"),
            (&second_file, "nightly eval B"),
            (&first_file, "Other"),
        ] {
            let batch: Batch = sim
                .try_create(json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h", "metadata": {"ds_name": name}}))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            ids.push(batch.id);
        }
        let listed = |value: &Value| -> Vec<String> {
            value["data"].as_array().map_or_else(Vec::new, |data| {
                data.iter()
                    .map(|batch| batch["id"].as_str().unwrap().to_owned())
                    .collect()
            })
        };
        let (_, all) = sim.get_json("/batches").await;
        assert_eq!(
            listed(&all),
            vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]
        );
        assert_eq!(all["first_id"], json!(ids[2]));
        assert_eq!(all["last_id"], json!(ids[0]));
        let (_, first_page) = sim.get_json("/batches?limit=2").await;
        assert_eq!(
            (listed(&first_page).len(), &first_page["has_more"]),
            (2, &json!(true))
        );
        let (_, second_page) = sim
            .get_json(&format!("/batches?limit=2&after={}", ids[1]))
            .await;
        assert_eq!(
            (listed(&second_page), &second_page["has_more"]),
            (vec![ids[0].clone()], &json!(false))
        );
        let (_, by_name) = sim.get_json("/batches?ds_name=NIGHTLY").await;
        assert_eq!(listed(&by_name), vec![ids[1].clone(), ids[0].clone()]);
        let (_, by_file) = sim
            .get_json(&format!(
                "/batches?input_file_ids={},file-batch-nothing",
                first_file.id
            ))
            .await;
        assert_eq!(listed(&by_file), vec![ids[2].clone(), ids[0].clone()]);
        let (_, completed) = sim.get_json("/batches?status=completed,expired").await;
        assert_eq!(completed["data"], Value::Null);
        sim.handle.advance_clock(1_000_000.0);
        let (_, completed) = sim.get_json("/batches?status=completed,expired").await;
        assert_eq!(listed(&completed).len(), 3);
        let (_, future) = sim.get_json("/batches?create_after=29991231").await;
        assert_eq!(future["data"], Value::Null);
        let (status, _) = sim.get_json("/batches?limit=101").await;
        assert_eq!(status, 400);
    }
}
