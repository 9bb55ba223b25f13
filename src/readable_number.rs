//! Numbers written for people: `1234567` → `1,234,567`, `6000000` bytes → `6.0 MB`, in estimates,
//! price listings, budget messages and image errors.

/// `1234567` → `1,234,567`.
#[must_use]
pub fn with_thousands(number: u64) -> String {
    let digits = number.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// A size in bytes as people read it, in decimal units as the providers state limits: `512 B`,
/// `48.2 KB`, `6.0 MB`.
#[must_use]
pub fn readable_bytes(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1_000_000_000, "GB"), (1_000_000, "MB"), (1_000, "KB")];
    for (size, unit) in UNITS {
        if bytes >= size {
            return format!("{:.1} {unit}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_written_in_decimal_units() {
        assert_eq!(readable_bytes(512), "512 B");
        assert_eq!(readable_bytes(48_200), "48.2 KB");
        assert_eq!(readable_bytes(6_000_000), "6.0 MB");
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(with_thousands(0), "0");
        assert_eq!(with_thousands(999), "999");
        assert_eq!(with_thousands(1_000), "1,000");
        assert_eq!(with_thousands(262_145), "262,145");
        assert_eq!(with_thousands(1_234_567), "1,234,567");
    }
}
