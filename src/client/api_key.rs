//! The API key, kept out of every `Debug`, `Display`, log line and error.

use std::fmt;

#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: String) -> ApiKey {
        ApiKey(key)
    }

    /// Only the `Authorization` header may see the key.
    pub(super) fn bearer_header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// For scrubbing: whether `text` contains the key.
    pub fn appears_in(&self, text: &str) -> bool {
        !self.0.is_empty() && text.contains(&self.0)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("ApiKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let key = ApiKey::new("sk-secret-123".into());
        assert!(!format!("{key:?}").contains("secret"));
        assert!(key.appears_in("xx sk-secret-123 yy"));
    }
}
