//! OpenAI's file expiration policies (reference §8.2, §8.3): an upload may say `expires_after`
//! and a batch `output_expires_after`, both `{ "anchor": "created_at", "seconds": 3600..=2592000 }`;
//! without one, batch files expire 30 days after they are created. The anchor of
//! `output_expires_after` is the result file's creation time, not the batch's.
//!
//! DashScope documents neither field and its files never expire (§2.1, §2.6, §9 #5, #16), so the
//! DashScope flavour ignores both, as it always did.

use serde_json::Value;

use super::api_error::ApiFailure;

/// How long an OpenAI batch file lives without a policy (30 days).
pub(crate) const DEFAULT_LIFETIME_SECONDS: i64 = 30 * 86_400;
/// The bounds OpenAI puts on `seconds` (one hour to 30 days).
pub(crate) const MIN_SECONDS: i64 = 3600;
pub(crate) const MAX_SECONDS: i64 = 2_592_000;

/// When a file created at `created_at` expires under `policy_seconds` (or the default).
pub(crate) fn expires_at(created_at: i64, policy_seconds: Option<i64>) -> i64 {
    created_at + policy_seconds.unwrap_or(DEFAULT_LIFETIME_SECONDS)
}

/// Checks a policy that was given, from its two parts (`None`: the part is missing; `Some(None)`:
/// `seconds` is not an integer); `param` names the policy (`expires_after` or
/// `output_expires_after`). Returns its `seconds`.
fn check_policy(
    param: &str,
    anchor: Option<&str>,
    seconds: Option<Option<i64>>,
) -> Result<i64, ApiFailure> {
    let missing = |part: &str| {
        ApiFailure::bad_request(
            "missing_required_parameter",
            format!("Missing required parameter: '{param}.{part}'."),
        )
        .with_param(&format!("{param}.{part}"))
    };
    match anchor {
        None => return Err(missing("anchor")),
        Some("created_at") => {}
        Some(other) => {
            return Err(ApiFailure::bad_request(
                "invalid_value",
                format!(
                    "Invalid value for '{param}.anchor': '{other}'. Supported values are: 'created_at'."
                ),
            )
            .with_param(&format!("{param}.anchor")));
        }
    }
    match seconds {
        None => Err(missing("seconds")),
        Some(Some(seconds)) if (MIN_SECONDS..=MAX_SECONDS).contains(&seconds) => Ok(seconds),
        Some(_) => Err(ApiFailure::bad_request(
            "invalid_value",
            format!(
                "Invalid value for '{param}.seconds': it must be an integer between {MIN_SECONDS} (one hour) and {MAX_SECONDS} (30 days)."
            ),
        )
        .with_param(&format!("{param}.seconds"))),
    }
}

/// `expires_after` of an upload, sent as the multipart fields `expires_after[anchor]` and
/// `expires_after[seconds]` (as the OpenAI SDKs encode it).
pub(crate) fn upload_policy(
    anchor: Option<&str>,
    seconds: Option<&str>,
) -> Result<Option<i64>, ApiFailure> {
    if anchor.is_none() && seconds.is_none() {
        return Ok(None);
    }
    let seconds = seconds.map(|text| text.trim().parse::<i64>().ok());
    check_policy("expires_after", anchor, seconds).map(Some)
}

/// `output_expires_after` of `POST /batches` (a JSON object, or absent/null).
pub(crate) fn output_policy(value: Option<&Value>) -> Result<Option<i64>, ApiFailure> {
    let object = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(object)) => object,
        Some(_) => {
            return Err(ApiFailure::bad_request(
                "invalid_value",
                "'output_expires_after' must be an object with 'anchor' and 'seconds'.",
            )
            .with_param("output_expires_after"));
        }
    };
    let part = |name: &str| object.get(name).filter(|value| !value.is_null());
    // A non-string anchor is an invalid one.
    let anchor = part("anchor").map(|anchor| anchor.as_str().unwrap_or(""));
    let seconds = part("seconds").map(Value::as_i64);
    check_policy("output_expires_after", anchor, seconds).map(Some)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::SimFlavour;
    use super::super::test_support::{CHAT, KEY, TestSim, chat_lines, frozen_sim};
    use crate::wire::{Batch, FileObject};

    use super::*;

    #[test]
    fn upload_policies_need_the_created_at_anchor_and_seconds_within_bounds() {
        assert_eq!(upload_policy(None, None), Ok(None));
        assert_eq!(
            upload_policy(Some("created_at"), Some("3600")),
            Ok(Some(3600))
        );
        assert_eq!(
            upload_policy(Some("created_at"), Some("2592000")),
            Ok(Some(2_592_000))
        );
        for (anchor, seconds, param) in [
            (Some("created_at"), Some("3599"), "expires_after.seconds"),
            (Some("created_at"), Some("2592001"), "expires_after.seconds"),
            (Some("created_at"), Some("an hour"), "expires_after.seconds"),
            (Some("created_at"), None, "expires_after.seconds"),
            (Some("last_active_at"), Some("3600"), "expires_after.anchor"),
            (None, Some("3600"), "expires_after.anchor"),
        ] {
            let refusal = upload_policy(anchor, seconds).unwrap_err();
            assert_eq!(refusal.status, 400, "{anchor:?} {seconds:?}");
            assert_eq!(
                refusal.param.as_deref(),
                Some(param),
                "{anchor:?} {seconds:?}"
            );
        }
    }

    #[test]
    fn output_policies_are_objects_with_both_parts() {
        assert_eq!(output_policy(None), Ok(None));
        assert_eq!(output_policy(Some(&Value::Null)), Ok(None));
        assert_eq!(
            output_policy(Some(&json!({"anchor": "created_at", "seconds": 7200}))),
            Ok(Some(7200))
        );
        for refused in [
            json!("7200"),
            json!({}),
            json!({"anchor": "created_at"}),
            json!({"seconds": 7200}),
            json!({"anchor": "created_at", "seconds": 60}),
            json!({"anchor": "created_at", "seconds": 7200.5}),
            json!({"anchor": 1, "seconds": 7200}),
        ] {
            let refusal = output_policy(Some(&refused)).unwrap_err();
            assert_eq!(refusal.status, 400, "{refused}");
            assert!(
                refusal
                    .param
                    .as_deref()
                    .is_some_and(|param| param.starts_with("output_expires_after")),
                "{refused}"
            );
        }
    }

    #[test]
    fn files_expire_thirty_days_after_creation_without_a_policy() {
        assert_eq!(expires_at(1000, None), 1000 + 30 * 86_400);
        assert_eq!(expires_at(1000, Some(3600)), 4600);
    }

    async fn upload_with_expiry(sim: &TestSim, anchor: &str, seconds: &str) -> reqwest::Response {
        // As the OpenAI SDKs encode `expires_after={"anchor": ..., "seconds": ...}`.
        let form = reqwest::multipart::Form::new()
            .text("purpose", "batch")
            .text("expires_after[anchor]", anchor.to_owned())
            .text("expires_after[seconds]", seconds.to_owned())
            .part(
                "file",
                reqwest::multipart::Part::bytes(chat_lines(2, "gpt-4o-mini").into_bytes())
                    .file_name("in.jsonl"),
            );
        sim.client
            .post(sim.url("/files"))
            .bearer_auth(KEY)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn openai_uploads_and_result_files_follow_their_expiration_policies() {
        let sim = frozen_sim(SimFlavour::Openai).await;
        let response = upload_with_expiry(&sim, "created_at", "3600").await;
        assert_eq!(response.status(), 200);
        let file: FileObject = response.json().await.unwrap();
        assert_eq!(file.expires_at, Some(file.created_at + 3600));
        for (anchor, seconds) in [
            ("created_at", "60"),
            ("created_at", "2592001"),
            ("now", "3600"),
        ] {
            let refused = upload_with_expiry(&sim, anchor, seconds).await;
            assert_eq!(refused.status(), 400, "{anchor} {seconds}");
            let body: Value = refused.json().await.unwrap();
            assert!(
                body["error"]["param"]
                    .as_str()
                    .unwrap()
                    .starts_with("expires_after."),
                "{body}"
            );
        }

        let refused = sim
            .try_create(
                json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h",
                               "output_expires_after": {"anchor": "created_at", "seconds": 10}}),
            )
            .await
            .unwrap();
        assert_eq!(refused.status(), 400);
        let created = sim
            .try_create(
                json!({"input_file_id": file.id, "endpoint": CHAT, "completion_window": "24h",
                               "output_expires_after": {"anchor": "created_at", "seconds": 7200}}),
            )
            .await
            .unwrap();
        assert_eq!(created.status(), 200);
        let batch: Batch = created.json().await.unwrap();
        let done = sim.finish(&batch.id).await;
        let (_, output) = sim
            .get_json(&format!("/files/{}", done.output_file_id.unwrap()))
            .await;
        // The anchor is the output file's creation, not the batch's.
        assert_eq!(
            output["expires_at"].as_i64(),
            Some(output["created_at"].as_i64().unwrap() + 7200)
        );
        // Without a policy, batch files live 30 days.
        let plain = sim.submit(&chat_lines(1, "gpt-4o-mini")).await;
        let done = sim.finish(&plain.id).await;
        let (_, output) = sim
            .get_json(&format!("/files/{}", done.output_file_id.unwrap()))
            .await;
        assert_eq!(
            output["expires_at"].as_i64(),
            Some(output["created_at"].as_i64().unwrap() + 30 * 86_400)
        );
    }

    #[tokio::test]
    async fn dashscope_ignores_the_openai_expiration_policies() {
        let sim = frozen_sim(SimFlavour::Dashscope).await;
        let response = upload_with_expiry(&sim, "created_at", "60").await;
        assert_eq!(response.status(), 200);
        let file: Value = response.json().await.unwrap();
        assert!(file.get("expires_at").is_none(), "{file}");
        let created = sim
            .try_create(
                json!({"input_file_id": file["id"], "endpoint": CHAT, "completion_window": "24h",
                               "output_expires_after": {"anchor": "created_at", "seconds": 10}}),
            )
            .await
            .unwrap();
        assert_eq!(created.status(), 200);
    }
}
