//! JSON strings written as serde_json writes them, sixteen bytes at a time over the runs that
//! need no escape (most prompt text: Chinese, letters, digits), which are copied whole; and the
//! same search for the end of a string read ([`crate::json_cursor`]).
//!
//! Rendering spends a tenth of `validate`'s time escaping prompts, and serde_json looks at every
//! byte on its own. Here sixteen bytes are tested at once for a byte that must be escaped (a
//! control byte below 0x20, `"` or `\`, RFC 8259 §7) with SSE2, which every x86-64 processor
//! has; elsewhere, and for the last bytes, a word of eight with the "has a byte less than n" bit
//! test; only then byte by byte.

/// 0x01 in every byte of a word.
const EVERY_BYTE_ONE: u64 = u64::from_ne_bytes([1; 8]);
/// 0x80 in every byte of a word.
const EVERY_BYTE_HIGH_BIT: u64 = EVERY_BYTE_ONE * 0x80;

/// The high bit of each byte of `word` that must be escaped in a JSON string. Subtracting 0x20
/// from every byte borrows into a byte's high bit only where that byte was below 0x20 and had no
/// high bit of its own, or above such a byte, so whether any bit is set is exact; `"` and `\`
/// are the bytes that become zero (below 1) once the word is xored with them. A byte with its
/// high bit set (UTF-8 beyond ASCII) never needs escaping, and xoring with `"` or `\` keeps that
/// bit, so one `& !word` serves the three tests. A borrow may also set the bit of a byte above
/// one that must be escaped, so only the lowest bit set is sure to be exact.
fn bytes_to_escape(word: u64) -> u64 {
    let below_space = word.wrapping_sub(EVERY_BYTE_ONE * 0x20);
    let quote = (word ^ (EVERY_BYTE_ONE * u64::from(b'"'))).wrapping_sub(EVERY_BYTE_ONE);
    let backslash = (word ^ (EVERY_BYTE_ONE * u64::from(b'\\'))).wrapping_sub(EVERY_BYTE_ONE);
    (below_space | quote | backslash) & !word & EVERY_BYTE_HIGH_BIT
}

/// Where the first byte that must be escaped is among the eight of `word` (read
/// little-endian, so in the order they are in memory), if one is.
fn first_byte_to_escape(word: u64) -> Option<usize> {
    let bytes = bytes_to_escape(word);
    (bytes != 0).then(|| bytes.trailing_zeros() as usize / 8)
}

/// Whether `byte` must be escaped in a JSON string.
fn must_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// A bit for each of the sixteen bytes of `block` that must be escaped (bit `i` for byte `i`).
#[cfg(target_arch = "x86_64")]
#[inline]
fn bytes_to_escape_in_block(block: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of every x86-64 processor, and the unaligned load reads exactly the
    // sixteen bytes of `block`.
    unsafe {
        let bytes = _mm_loadu_si128(block.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\\' as i8));
        // Unsigned: a byte is below 0x20 when the smaller of it and 0x1f is itself.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(bytes, _mm_set1_epi8(0x1f)), bytes);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    }
}

/// Where the first byte of `bytes` at or after `from` that must be escaped is, if one is.
#[inline]
pub(crate) fn next_byte_to_escape(bytes: &[u8], mut from: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    while let Some(block) = bytes.get(from..from + 16) {
        let found = bytes_to_escape_in_block(block.try_into().expect("sixteen bytes"));
        if found != 0 {
            return Some(from + found.trailing_zeros() as usize);
        }
        from += 16;
    }
    while let Some(word) = bytes.get(from..from + 8) {
        match first_byte_to_escape(u64::from_le_bytes(word.try_into().expect("eight bytes"))) {
            Some(first) => return Some(from + first),
            None => from += 8,
        }
    }
    let rest = bytes.get(from..)?;
    rest.iter()
        .position(|byte| must_escape(*byte))
        .map(|position| from + position)
}

/// How serde_json escapes `byte`, or `None` when it is written as it is.
fn escape_of(byte: u8, hex: &mut [u8; 6]) -> Option<&[u8]> {
    const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
    Some(match byte {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        0x08 => b"\\b",
        0x0c => b"\\f",
        b'\n' => b"\\n",
        b'\r' => b"\\r",
        b'\t' => b"\\t",
        0x00..=0x1f => {
            *hex = *b"\\u0000";
            hex[4] = HEX_DIGITS[usize::from(byte >> 4)];
            hex[5] = HEX_DIGITS[usize::from(byte & 0x0f)];
            hex
        }
        _ => return None,
    })
}

/// Appends `text` as a JSON string, quoted and escaped byte for byte as `serde_json` does.
pub fn push_json_string(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // `bytes[copied..]` are not yet in `out`.
    let mut copied = 0;
    let mut hex = [0u8; 6];
    while let Some(position) = next_byte_to_escape(bytes, copied) {
        out.extend_from_slice(&bytes[copied..position]);
        out.extend_from_slice(escape_of(bytes[position], &mut hex).expect("a byte to escape"));
        copied = position + 1;
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(text: &str) -> String {
        let mut out = Vec::new();
        push_json_string(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_single_character_is_escaped_as_serde_json_escapes_it() {
        for code in (0u32..0x800).chain([0xffff, 0x1f600]) {
            let character = char::from_u32(code).map(String::from).unwrap_or_default();
            // Alone (the byte-by-byte tail), and amid text (in an eight-byte word).
            for text in [character.clone(), format!("abcdefg{character}hijklmnopq")] {
                assert_eq!(
                    written(&text),
                    serde_json::to_string(&text).unwrap(),
                    "{code:#x}"
                );
            }
        }
    }

    #[test]
    fn a_string_needing_no_escape_is_copied_whole_at_every_length() {
        let review = "这家店的菜很好吃, service was quick! 推荐 /~\u{7f}";
        for end in (0..=review.len()).filter(|&end| review.is_char_boundary(end)) {
            assert_eq!(written(&review[..end]), format!("\"{}\"", &review[..end]));
        }
    }

    #[test]
    fn mixed_text_at_every_length_and_offset_is_written_as_serde_json_writes_it() {
        let pieces = [
            "a", "好", "评", "\"", "\\", "\n", "\t", "\r", "\u{0}", "\u{8}", "\u{c}", "\u{1}",
            "\u{1f}", " ", "\u{7f}", "é", "😀", "/", "0",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let length = (state % 40) as usize;
            let mut text = String::new();
            let mut choice = state;
            for _ in 0..length {
                choice = choice
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                // Mostly text that needs no escape, as prompts are.
                let piece = (choice >> 59) as usize % (pieces.len() * 2);
                text.push_str(pieces.get(piece).unwrap_or(&"好"));
            }
            assert_eq!(
                written(&text),
                serde_json::to_string(&text).unwrap(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn the_word_test_finds_a_byte_to_escape_in_any_place_and_none_in_clean_words() {
        for place in 0..8 {
            for byte in [0x00, 0x1f, b'"', b'\\'] {
                let mut word = *b"abcdefgh";
                word[place] = byte;
                assert!(
                    first_byte_to_escape(u64::from_le_bytes(word)).is_some(),
                    "{byte:#x} at {place}"
                );
            }
        }
        for clean in [
            *b"abcdefgh",
            [0xe5, 0xa5, 0xbd, 0x20, 0x7f, 0x21, 0x23, 0x5d],
        ] {
            assert_eq!(first_byte_to_escape(u64::from_le_bytes(clean)), None);
        }
    }

    #[test]
    fn the_next_byte_to_escape_is_found_wherever_it_is_and_whatever_surrounds_it() {
        // Every byte value, at every place of texts long enough to be read sixteen and eight
        // bytes at a time and byte by byte, searched from every place before it.
        for length in [1, 7, 8, 15, 16, 17, 24, 40] {
            for place in 0..length {
                for byte in 0..=255_u8 {
                    let mut text: Vec<u8> = (0..length)
                        .map(|at| [b'a', 0xe5, 0x7f, b'/'][at % 4])
                        .collect();
                    text[place] = byte;
                    for from in 0..=length {
                        let naive = (from..length).find(|at| must_escape(text[*at]));
                        assert_eq!(
                            next_byte_to_escape(&text, from),
                            naive,
                            "{text:x?} from {from}"
                        );
                    }
                }
            }
        }
        assert_eq!(next_byte_to_escape(b"abc", 4), None);
        // Two in one block of sixteen: the first is found, then the second.
        let two = b"abc\"efghij\\lmnopqrstu";
        assert_eq!(next_byte_to_escape(two, 0), Some(3));
        assert_eq!(next_byte_to_escape(two, 4), Some(10));
        assert_eq!(next_byte_to_escape(two, 11), None);
    }

    #[test]
    fn the_first_byte_to_escape_is_placed_exactly_whatever_follows_it() {
        // Bytes just above 0x20 and non-ASCII bytes after the first one are where a borrow
        // could mislead a test of each byte.
        let after = [0x00, 0x01, 0x1f, 0x20, 0x21, b'"', b'\\', 0x80, 0xff, b'a'];
        for place in 0..8 {
            for byte in [0x00, 0x01, 0x1f, b'"', b'\\'] {
                for follower in after {
                    let mut word = [0xe4, b'a', 0x20, 0x7f, 0xbd, b'#', b']', 0x21];
                    word[place] = byte;
                    for later in &mut word[place + 1..] {
                        *later = follower;
                    }
                    assert_eq!(
                        first_byte_to_escape(u64::from_le_bytes(word)),
                        Some(place),
                        "{word:x?}"
                    );
                }
            }
        }
    }
}
