//! A single `Range: bytes=...` request header (RFC 9110 §14.1.2), for the content and
//! request-content resources. Multiple ranges are not served: the whole content answers
//! them (RFC 9110 allows ignoring `Range`).

use std::ops::Range;

/// What a `Range` header asks of content `len` bytes long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// The whole content (no header, or one we do not serve).
    All,
    /// One satisfiable range.
    Part(Range<u64>),
    /// A range that starts past the end: `416`.
    Unsatisfiable,
}

/// Reads `value` (a `Range` header, if any) against content `len` bytes long.
pub(crate) fn wanted(value: Option<&[u8]>, len: u64) -> Wanted {
    let Some(spec) = value
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Wanted::All;
    };
    if spec.contains(',') {
        return Wanted::All;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::All;
    };
    let (first, last) = (first.trim(), last.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match (digits(first), digits(last)) {
        (true, _) => {
            let Ok(first) = first.parse::<u64>() else {
                return Wanted::Unsatisfiable;
            };
            let end = if last.is_empty() {
                len
            } else if digits(last) {
                match last.parse::<u64>() {
                    Ok(last) if last >= first => last.saturating_add(1).min(len),
                    Ok(_) => return Wanted::All,
                    Err(_) => len,
                }
            } else {
                return Wanted::All;
            };
            if first >= len {
                Wanted::Unsatisfiable
            } else {
                Wanted::Part(first..end)
            }
        }
        (false, true) if first.is_empty() => {
            let suffix = last.parse::<u64>().unwrap_or(u64::MAX);
            if suffix == 0 || len == 0 {
                Wanted::Unsatisfiable
            } else {
                Wanted::Part(len - suffix.min(len)..len)
            }
        }
        _ => Wanted::All,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn forms() {
        assert_eq!(wanted(None, 10), Wanted::All);
        assert_eq!(wanted(Some(b"bytes=2-4"), 10), Wanted::Part(2..5));
        assert_eq!(wanted(Some(b"bytes=2-"), 10), Wanted::Part(2..10));
        assert_eq!(wanted(Some(b"bytes=2-100"), 10), Wanted::Part(2..10));
        assert_eq!(wanted(Some(b"bytes=-3"), 10), Wanted::Part(7..10));
        assert_eq!(wanted(Some(b"bytes=-30"), 10), Wanted::Part(0..10));
        assert_eq!(wanted(Some(b"bytes=10-"), 10), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some(b"bytes=-0"), 10), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some(b"bytes=5-2"), 10), Wanted::All);
        assert_eq!(wanted(Some(b"bytes=0-1,3-4"), 10), Wanted::All);
        assert_eq!(wanted(Some(b"items=0-1"), 10), Wanted::All);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parts_stay_inside_the_content(value in proptest::collection::vec(any::<u8>(), 0..32), len in 0u64..1000) {
            if let Wanted::Part(range) = wanted(Some(&value), len) {
                prop_assert!(range.start < range.end && range.end <= len);
            }
        }

        #[test]
        fn well_formed_ranges(first in 0u64..2000, span in 0u64..2000, len in 0u64..1000) {
            let value = format!("bytes={first}-{}", first + span);
            match wanted(Some(value.as_bytes()), len) {
                Wanted::Part(range) => prop_assert_eq!(range, first..(first + span + 1).min(len)),
                Wanted::Unsatisfiable => prop_assert!(first >= len),
                Wanted::All => prop_assert!(false, "a well-formed range is served"),
            }
        }
    }
}
