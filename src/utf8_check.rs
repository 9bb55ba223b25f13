//! Checking bytes as UTF-8 on the hot paths (every CSV field, every result line): SIMD says
//! whether they are, and only when they are not does the standard check run, for where they stop
//! being UTF-8.

/// The bytes as text, or the standard library's error saying where they stop being UTF-8.
///
/// # Errors
/// When the bytes are not UTF-8.
pub fn checked_utf8(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    simdutf8::basic::from_utf8(bytes).or_else(|_| std::str::from_utf8(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_passes_and_a_bad_byte_is_located() {
        assert_eq!(checked_utf8("好评 ok".as_bytes()), Ok("好评 ok"));
        let error = checked_utf8(b"ok \xe5\xa5 then").unwrap_err();
        assert_eq!(error.valid_up_to(), 3);
    }
}
