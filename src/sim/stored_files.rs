//! The stored files as the Files API shows them: upload, get, list, the download check and
//! delete, each an operation on the locked world (see [`super::state::Operation`]).

use serde_json::Value;

use super::api_error::ApiFailure;
use super::clock::whole_seconds;
use super::config::SimFlavour;
use super::expiry;
use super::listing::{FileListQuery, first_and_last_ids, list_answer, page_of};
use super::persist::ReceivedUpload;
use super::state::Operation;
use super::world::FileRecord;
use crate::wire::{FileDeleted, FileObject};

impl Operation<'_> {
    pub(crate) fn live_file(&self, id: &str) -> Result<&FileRecord, ApiFailure> {
        self.world
            .files
            .iter()
            .find(|file| file.object.id == id && !file.deleted)
            .ok_or_else(|| ApiFailure::not_found(format!("No such File object: {id}")))
    }

    pub(crate) fn commit_upload(
        &mut self,
        upload: ReceivedUpload,
        filename: String,
        expires_after_seconds: Option<i64>,
    ) -> Result<FileObject, ApiFailure> {
        let (seed, flavour) = (self.seed(), self.flavour());
        let id = self.world.ids.input_file_id(seed, flavour);
        let committed = self.state.store.commit_upload(upload, &id)?;
        let created_at = whole_seconds(self.now);
        let object = FileObject {
            id,
            object: "file".to_owned(),
            bytes: committed.bytes,
            created_at,
            filename,
            purpose: "batch".to_owned(),
            status: Some("processed".to_owned()),
            expires_at: (flavour == SimFlavour::Openai)
                .then(|| expiry::expires_at(created_at, expires_after_seconds)),
            status_details: None,
        };
        self.world.uploads += 1;
        *self
            .world
            .uploads_per_sha256
            .entry(committed.sha256.clone())
            .or_default() += 1;
        self.world.files.push(FileRecord {
            object: object.clone(),
            sha256: committed.sha256,
            deleted: false,
            bytes_removed: false,
        });
        self.world.changed = true;
        Ok(file_answer(&object, flavour))
    }

    pub(crate) fn get_file(&self, id: &str) -> Result<FileObject, ApiFailure> {
        let flavour = self.flavour();
        self.live_file(id)
            .map(|file| file_answer(&file.object, flavour))
    }

    pub(crate) fn list_files(&self, query: &FileListQuery) -> Value {
        let mut files: Vec<FileObject> = self
            .world
            .files
            .iter()
            .filter(|file| !file.deleted)
            .filter(|file| {
                query
                    .purpose
                    .as_ref()
                    .is_none_or(|purpose| &file.object.purpose == purpose)
            })
            .filter(|file| {
                query
                    .created_after
                    .is_none_or(|after| file.object.created_at >= after)
            })
            .filter(|file| {
                query
                    .created_before
                    .is_none_or(|before| file.object.created_at <= before)
            })
            .map(|file| file_answer(&file.object, self.flavour()))
            .collect();
        if !query.oldest_first {
            files.reverse();
        }
        let (page, has_more) = page_of(
            files,
            |file| file.id.as_str(),
            query.after.as_deref(),
            query.limit,
        );
        let ids = first_and_last_ids(&page, |file| &file.id);
        let flavour = self.flavour();
        list_answer(page, has_more, ids, flavour, flavour == SimFlavour::Openai)
    }

    /// Checks that a file's content may be downloaded.
    pub(crate) fn check_download(&self, id: &str) -> Result<(), ApiFailure> {
        self.live_file(id)?;
        if self.flavour() == SimFlavour::Dashscope && !id.starts_with("file-batch_output") {
            return Err(ApiFailure::forbidden(
                "file_not_downloadable",
                "Only files whose file_id starts with file-batch_output can be downloaded.",
            ));
        }
        Ok(())
    }

    pub(crate) fn delete_file(&mut self, id: &str) -> Result<FileDeleted, ApiFailure> {
        self.live_file(id)?;
        let needed = self
            .world
            .batches
            .iter()
            .any(|batch| !batch.stage.is_terminal() && batch.input_file_id == id);
        let file = self
            .world
            .files
            .iter_mut()
            .find(|file| file.object.id == id && !file.deleted)
            .expect("checked above");
        file.deleted = true;
        if !needed {
            file.bytes_removed = true;
            self.world.bytes_to_remove.push(id.to_owned());
        }
        self.world.files_deleted += 1;
        self.world.changed = true;
        Ok(FileDeleted {
            id: id.to_owned(),
            object: "file".to_owned(),
            deleted: true,
        })
    }
}

/// A file object as the flavour shows it: OpenAI sends `"status_details": null` (reference §8.2,
/// the SDK's `FileObject`); live DashScope omits the key (§2.1).
fn file_answer(object: &FileObject, flavour: SimFlavour) -> FileObject {
    let mut shown = object.clone();
    shown.status_details = match flavour {
        SimFlavour::Openai => Some(Value::Null),
        SimFlavour::Dashscope => None,
    };
    shown
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::SimFlavour;
    use super::super::test_support::{CHAT, KEY, chat_lines, frozen_sim, is_lower_hex};
    use crate::wire::{BatchStatus, FileObject};

    #[tokio::test]
    async fn files_round_trip_through_upload_list_get_content_and_delete() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let content = chat_lines(3, "qwen-flash");
        let response = sim.try_upload("shard-1.jsonl", &content).await.unwrap();
        assert_eq!(response.status(), 200);
        let raw: Value = response.json().await.unwrap();
        assert!(raw.get("status_details").is_none(), "{raw}");
        let file: FileObject = serde_json::from_value(raw.clone()).unwrap();
        let suffix = file.id.strip_prefix("file-batch-").unwrap();
        assert!(suffix.len() == 24 && is_lower_hex(suffix), "{}", file.id);
        assert_eq!(file.bytes, content.len() as u64);
        assert_eq!(
            (file.filename.as_str(), file.purpose.as_str()),
            ("shard-1.jsonl", "batch")
        );
        assert_eq!(file.status.as_deref(), Some("processed"));

        let (status, fetched) = sim.get_json(&format!("/files/{}", file.id)).await;
        assert_eq!((status, &fetched), (200, &raw));
        let (_, list) = sim.get_json("/files").await;
        assert_eq!(list["object"], "list");
        assert_eq!(list["data"].as_array().unwrap().len(), 1);
        assert_eq!(list["has_more"], false);
        assert!(
            list.get("first_id").is_none() && list.get("last_id").is_none(),
            "{list}"
        );

        // DashScope only lets batch results be downloaded.
        let (status, refusal) = sim.get_json(&format!("/files/{}/content", file.id)).await;
        assert_eq!(status, 403);
        assert!(
            refusal["error"]["message"]
                .as_str()
                .unwrap()
                .contains("file-batch_output")
        );

        let batch = sim.create(&file.id, CHAT).await;
        let done = sim.finish(&batch.id).await;
        let output_id = done.output_file_id.unwrap();
        assert!(output_id.starts_with("file-batch_output-"));
        let (_, outputs) = sim.get_json("/files?purpose=batch_output").await;
        let listed: Vec<&str> = outputs["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|file| file["id"].as_str().unwrap())
            .collect();
        assert_eq!(listed, vec![output_id.as_str()]);
        assert_eq!(outputs["data"][0]["purpose"], "batch_output");
        let text = sim.download(&output_id).await;
        assert_eq!(text.lines().count(), 3);
        // The same API answers under /v1 too.
        let through_v1 = sim
            .client
            .get(format!(
                "{}/v1/files/{output_id}/content",
                sim.handle.root_url()
            ))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(through_v1.text().await.unwrap(), text);

        let deleted: Value = sim
            .client
            .delete(sim.url(&format!("/files/{}", file.id)))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            deleted,
            json!({"id": file.id, "object": "file", "deleted": true})
        );
        let (status, missing) = sim.get_json(&format!("/files/{}", file.id)).await;
        assert_eq!(status, 404);
        assert!(missing["error"]["message"].is_string());
        let again = sim
            .client
            .delete(sim.url(&format!("/files/{}", file.id)))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 404);
        let (_, list) = sim.get_json("/files").await;
        assert_eq!(list["data"].as_array().unwrap().len(), 1);
        assert_eq!(sim.handle.ledger().await.files_deleted, 1);
    }

    #[tokio::test]
    async fn openai_file_objects_say_status_details_null_and_dashscope_ones_omit_it() {
        let openai = frozen_sim(SimFlavour::Openai).await;
        let uploaded: Value = openai
            .try_upload("in.jsonl", &chat_lines(1, "gpt-4o-mini"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            uploaded.get("status_details"),
            Some(&Value::Null),
            "{uploaded}"
        );
        let id = uploaded["id"].as_str().unwrap();
        let (_, fetched) = openai.get_json(&format!("/files/{id}")).await;
        assert_eq!(fetched, uploaded);
        let done = openai.finish(&openai.create(id, CHAT).await.id).await;
        let (_, listed) = openai.get_json("/files").await;
        for file in listed["data"].as_array().unwrap() {
            assert_eq!(file.get("status_details"), Some(&Value::Null), "{file}");
        }
        assert_eq!(listed["data"].as_array().unwrap().len(), 2);
        assert!(done.output_file_id.is_some());

        let dashscope = frozen_sim(SimFlavour::Dashscope).await;
        let file = dashscope.upload(&chat_lines(1, "qwen-flash")).await;
        let (_, fetched) = dashscope.get_json(&format!("/files/{}", file.id)).await;
        assert!(fetched.get("status_details").is_none(), "{fetched}");
    }

    #[tokio::test]
    async fn deleting_the_input_of_a_running_batch_does_not_break_the_batch() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let file = sim.upload(&chat_lines(5, "qwen-flash")).await;
        let batch = sim.create(&file.id, CHAT).await;
        let deleted = sim
            .client
            .delete(sim.url(&format!("/files/{}", file.id)))
            .bearer_auth("k")
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 200);
        let done = sim.finish(&batch.id).await;
        assert_eq!(done.status, BatchStatus::Completed);
        assert_eq!(
            sim.result_lines(done.output_file_id.as_ref().unwrap())
                .await
                .len(),
            5
        );
        // The input is gone for new batches.
        let refused = sim
            .try_create(
                json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h"}),
            )
            .await
            .unwrap();
        assert_eq!(refused.status(), 404);
    }
}
