//! The key of a request in the answer store and in a run's deduplication: SHA-256 over the
//! provider's identity (the base URL's host and path, never the API key), the endpoint, and the SHA-256 of
//! the request body in canonical JSON (`canonical_json`: keys sorted at every depth). The row's
//! custom_id and position are not part of it, so the same request from another row, another
//! table or another night has the same key; any change to the body (model, messages, a
//! parameter, the JSON schema) is another key.

use sha2::{Digest, Sha256};

use crate::provider::{ProviderKind, ProviderProfile};

/// Changed whenever the key's recipe changes, so that old keys simply stop matching.
const KEY_RECIPE: &[u8] = b"dashbatch request key v1\0";

/// The SHA-256 of a request body in canonical JSON.
pub type BodyDigest = [u8; 32];

pub fn body_digest(canonical_body: &[u8]) -> BodyDigest {
    Sha256::digest(canonical_body).into()
}

/// One request's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestKey(pub [u8; 32]);

impl RequestKey {
    pub fn new(provider_identity: &str, endpoint: &str, body: &BodyDigest) -> RequestKey {
        RequestKeyMaker::new(provider_identity, endpoint).key(body)
    }

    /// The custom_id and key of a request line as written in a shard file (`{custom_id, method,
    /// url, body}`).
    ///
    /// # Errors
    /// When the line is not a request line.
    pub fn of_request_line(
        provider_identity: &str,
        line: &[u8],
    ) -> serde_json::Result<(String, RequestKey)> {
        #[derive(serde::Deserialize)]
        struct RequestLine {
            custom_id: String,
            url: String,
            body: serde_json::Value,
        }
        let request: RequestLine = serde_json::from_slice(line)?;
        let mut canonical = Vec::with_capacity(line.len());
        crate::canonical_json::write_canonical(&request.body, &mut canonical);
        Ok((
            request.custom_id,
            RequestKey::new(provider_identity, &request.url, &body_digest(&canonical)),
        ))
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

/// Makes the keys of one provider and endpoint: what comes before the body's digest is hashed
/// once, so a key costs the hash of what is left. With DashScope's identity and the chat
/// endpoint, that is two of SHA-256's 64-byte blocks instead of three (the planning loop makes
/// a key for every row).
#[derive(Clone)]
pub struct RequestKeyMaker {
    after_prefix: Sha256,
}

impl RequestKeyMaker {
    pub fn new(provider_identity: &str, endpoint: &str) -> RequestKeyMaker {
        let mut after_prefix = Sha256::new();
        after_prefix.update(KEY_RECIPE);
        after_prefix.update(provider_identity.as_bytes());
        after_prefix.update(b"\0");
        after_prefix.update(endpoint.as_bytes());
        after_prefix.update(b"\0");
        RequestKeyMaker { after_prefix }
    }

    /// The key of the request whose body has `body` as its digest.
    pub fn key(&self, body: &BodyDigest) -> RequestKey {
        let mut hasher = self.after_prefix.clone();
        hasher.update(body);
        RequestKey(hasher.finalize().into())
    }
}

/// Who answers a run's requests, as far as the key is concerned: the host (and port, when one
/// is written) and path of the base URL in force (a gateway may route paths to different
/// backends); `sim` for the embedded simulator, whose answers are never mixed with a real
/// provider's.
pub fn provider_identity(kind: ProviderKind, base_url: Option<&str>) -> String {
    let url = match base_url.or(ProviderProfile::for_kind(kind).default_base_url) {
        Some(url) => url,
        None => return "sim".to_owned(),
    };
    match reqwest::Url::parse(url) {
        Ok(parsed) => {
            let path = parsed.path().trim_end_matches('/');
            match (parsed.host_str(), parsed.port()) {
                (Some(host), Some(port)) => format!("{host}:{port}{path}"),
                (Some(host), None) => format!("{host}{path}"),
                (None, _) => url.to_owned(),
            }
        }
        Err(_) => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_ignores_custom_id_and_key_order_and_sees_every_body_change() {
        let identity = "dashscope.aliyuncs.com";
        let line = |custom_id: &str, body: &str| {
            format!(
                r#"{{"custom_id":"{custom_id}","method":"POST","url":"/v1/chat/completions","body":{body}}}"#
            )
        };
        let key = |custom_id: &str, body: &str| {
            RequestKey::of_request_line(identity, line(custom_id, body).as_bytes())
                .unwrap()
                .1
        };
        let base = key(
            "1",
            r#"{"model":"qwen-plus","messages":[{"role":"user","content":"hi"}]}"#,
        );
        assert_eq!(
            base,
            key(
                "row-9",
                r#"{"messages":[{"content":"hi","role":"user"}],"model":"qwen-plus"}"#
            )
        );
        for changed in [
            r#"{"model":"qwen-max","messages":[{"role":"user","content":"hi"}]}"#,
            r#"{"model":"qwen-plus","messages":[{"role":"user","content":"hi "}]}"#,
            r#"{"model":"qwen-plus","temperature":0,"messages":[{"role":"user","content":"hi"}]}"#,
        ] {
            assert_ne!(base, key("1", changed), "{changed}");
        }
        let other_host = RequestKey::of_request_line(
            "dashscope-intl.aliyuncs.com",
            line(
                "1",
                r#"{"model":"qwen-plus","messages":[{"role":"user","content":"hi"}]}"#,
            )
            .as_bytes(),
        )
        .unwrap()
        .1;
        assert_ne!(base, other_host);
    }

    /// The key of `{}` sent to DashScope's chat endpoint, as every version of dashbatch since
    /// the recipe's v1 made it (answer stores written before hold keys made so).
    const KEY_OF_EMPTY_BODY_ON_DASHSCOPE: &str =
        "c211d87862904ae96c433cdf024f8827bf5bb93b0316ea6ee0aad22cfe1773e9";

    #[test]
    fn a_key_is_the_hash_of_recipe_identity_endpoint_and_body_whatever_their_lengths() {
        // Identities of every length from 0 to 200 bytes put the body's digest at every place
        // in a 64-byte block, and the prefix across one, two or three blocks.
        let body: BodyDigest = Sha256::digest(b"{}").into();
        for length in 0..=200 {
            let identity = "h".repeat(length);
            let mut whole = KEY_RECIPE.to_vec();
            whole.extend_from_slice(identity.as_bytes());
            whole.extend_from_slice(b"\0/v1/chat/completions\0");
            whole.extend_from_slice(&body);
            let expected = RequestKey(Sha256::digest(&whole).into());
            let maker = RequestKeyMaker::new(&identity, "/v1/chat/completions");
            assert_eq!(maker.key(&body), expected, "identity of {length} bytes");
            assert_eq!(
                maker.key(&body),
                maker.key(&body),
                "the maker is left as it was"
            );
        }
        // A key made before this recipe's code moved, kept so it never changes unnoticed.
        assert_eq!(
            RequestKey::new(
                "dashscope.aliyuncs.com/compatible-mode/v1",
                "/v1/chat/completions",
                &body
            )
            .to_hex(),
            KEY_OF_EMPTY_BODY_ON_DASHSCOPE
        );
    }

    #[test]
    fn the_provider_identity_is_the_base_url_host_and_path_and_sim_for_the_embedded_simulator() {
        assert_eq!(provider_identity(ProviderKind::Sim, None), "sim");
        assert_eq!(
            provider_identity(ProviderKind::Dashscope, None),
            "dashscope.aliyuncs.com/compatible-mode/v1"
        );
        assert_eq!(
            provider_identity(ProviderKind::DashscopeIntl, None),
            "dashscope-intl.aliyuncs.com/compatible-mode/v1"
        );
        assert_eq!(
            provider_identity(ProviderKind::Sim, Some("http://127.0.0.1:8765/v1/")),
            "127.0.0.1:8765/v1"
        );
        let gateway = |path: &str| {
            provider_identity(
                ProviderKind::Openai,
                Some(&format!("https://gateway.example.com{path}")),
            )
        };
        assert_eq!(gateway("/openai/v1"), "gateway.example.com/openai/v1");
        assert_ne!(gateway("/qwen/v1"), gateway("/openai/v1"));
    }
}
