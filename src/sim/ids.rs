//! Deterministic identifiers and pseudo-random numbers, all derived from the simulator seed.
//!
//! Nothing in the simulator uses an operating-system random source: every id and every answer is
//! a hash of the seed and of labelled inputs, so two simulators with the same seed that receive the
//! same calls in the same order produce the same bytes.

use sha2::{Digest, Sha256};

/// SHA-256 over labelled parts. Each part is length-prefixed, so `("ab", "c")` and `("a", "bc")`
/// hash differently.
pub(crate) fn digest_of_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let output = hasher.finalize();
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&output);
    digest
}

/// The first eight bytes of [`digest_of_parts`] as a number.
pub(crate) fn number_of_parts(parts: &[&[u8]]) -> u64 {
    let digest = digest_of_parts(parts);
    u64::from_le_bytes(digest[..8].try_into().expect("a digest has 32 bytes"))
}

/// Lowercase hex of the digest, cut to `length` characters (at most 64).
pub(crate) fn hex_text(digest: &[u8; 32], length: usize) -> String {
    let mut text = hex::encode(digest);
    text.truncate(length);
    text
}

/// Base62 text of `length` characters drawn from the digest (more than enough entropy for ids).
pub(crate) fn base62_text(digest: &[u8; 32], length: usize) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut random = DeterministicRandom::from_digest(digest);
    (0..length)
        .map(|_| char::from(ALPHABET[random.below(62) as usize]))
        .collect()
}

/// A version-4-looking UUID built from the digest, as DashScope uses for batch and line ids.
pub(crate) fn uuid_text(digest: &[u8; 32]) -> String {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A small, fast, seedable generator (SplitMix64). Good enough for simulated answers; not for
/// anything that needs real randomness.
#[derive(Debug, Clone)]
pub(crate) struct DeterministicRandom {
    state: u64,
}

impl DeterministicRandom {
    pub(crate) fn from_parts(parts: &[&[u8]]) -> DeterministicRandom {
        DeterministicRandom {
            state: number_of_parts(parts),
        }
    }

    pub(crate) fn from_digest(digest: &[u8; 32]) -> DeterministicRandom {
        DeterministicRandom {
            state: u64::from_le_bytes(digest[8..16].try_into().expect("a digest has 32 bytes")),
        }
    }

    pub(crate) fn next_number(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }

    /// A number in `0..bound` (0 when `bound` is 0).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        self.next_number() % bound
    }

    /// A number in `low..=high` (inclusive); `low` when the range is empty.
    pub(crate) fn between(&mut self, low: i64, high: i64) -> i64 {
        if high <= low {
            return low;
        }
        let span = (high as i128 - low as i128 + 1) as u128;
        let offset = (self.next_number() as u128) % span;
        (low as i128 + offset as i128) as i64
    }

    /// A fraction in `[0, 1)`.
    pub(crate) fn fraction(&mut self) -> f64 {
        (self.next_number() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn coin(&mut self) -> bool {
        self.next_number() & 1 == 1
    }

    pub(crate) fn pick<'items, T>(&mut self, items: &'items [T]) -> &'items T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A fraction in `[0, 1)` that depends only on the parts: used to decide, line by line, which
/// lines a fault with a `fraction` applies to.
pub(crate) fn fraction_of_parts(parts: &[&[u8]]) -> f64 {
    (number_of_parts(parts) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_length_prefixed() {
        assert_ne!(
            digest_of_parts(&[b"ab", b"c"]),
            digest_of_parts(&[b"a", b"bc"])
        );
    }

    #[test]
    fn id_texts_have_the_expected_shapes() {
        let digest = digest_of_parts(&[b"seed", b"1"]);
        assert_eq!(hex_text(&digest, 24).len(), 24);
        let base62 = base62_text(&digest, 22);
        assert_eq!(base62.len(), 22);
        assert!(
            base62
                .chars()
                .all(|character| character.is_ascii_alphanumeric())
        );
        let uuid = uuid_text(&digest);
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
    }

    #[test]
    fn the_generator_is_deterministic_and_bounded() {
        let mut first = DeterministicRandom::from_parts(&[b"x"]);
        let mut second = DeterministicRandom::from_parts(&[b"x"]);
        for _ in 0..100 {
            let value = first.between(-3, 3);
            assert_eq!(value, second.between(-3, 3));
            assert!((-3..=3).contains(&value));
            let fraction = first.fraction();
            second.fraction();
            assert!((0.0..1.0).contains(&fraction));
        }
    }
}
