//! The request `Content-Range` header of a resumable upload ([RFC 9110 §14.4]).
//!
//! A client that completes an interrupted upload sends the missing bytes in a
//! `message/byterange` patch (PROTOCOL.md part B.4, see [`crate::byterange`]) whose head
//! carries a `Content-Range` saying where the bytes go:
//!
//! ```text
//! Content-Range = range-unit SP ( range-resp / unsatisfied-range )
//! range-resp    = incl-range "/" ( complete-length / "*" )
//! incl-range    = first-pos "-" last-pos
//! ```
//!
//! [`ContentRange`] parses `bytes first-last/complete-length` and `bytes first-last/*`
//! (the complete length not yet known). Following PROTOCOL.md part C it also accepts,
//! leniently, the unit-less `first-last/complete-length` and `first-last/*` that the
//! draft author's reference client sends. It rejects every other range unit, the
//! `bytes */complete-length` form (an *unsatisfied-range*, which only a response can
//! carry), numbers that do not fit in 64 bits, `first > last` and
//! `last >= complete-length`. Surrounding whitespace (OWS) is not part of a field value
//! ([RFC 9110 §5.5]) and is ignored; inside the value the grammar allows exactly one
//! space, after the unit. Range units are case-insensitive ([RFC 9110 §14.1]).
//!
//! [`Display`](std::fmt::Display) always writes the canonical `bytes first-last/length`.
//!
//! ```
//! use handoff_proto::content_range::ContentRange;
//!
//! let range: ContentRange = "bytes 100-199/1000".parse().unwrap();
//! assert_eq!((range.first(), range.last(), range.complete_length()), (100, 199, Some(1000)));
//! assert_eq!(range.len(), 100);
//!
//! // The unit-less form of the reference client, written back canonically.
//! let lenient: ContentRange = "0-9/*".parse().unwrap();
//! assert_eq!(lenient.to_string(), "bytes 0-9/*");
//!
//! // Malformed values say what is wrong.
//! let err = "bytes 9-0/10".parse::<ContentRange>().unwrap_err();
//! assert!(err.to_string().contains("first byte position 9"));
//! ```
//!
//! [RFC 9110 §14.4]: https://www.rfc-editor.org/rfc/rfc9110#section-14.4
//! [RFC 9110 §14.1]: https://www.rfc-editor.org/rfc/rfc9110#section-14.1
//! [RFC 9110 §5.5]: https://www.rfc-editor.org/rfc/rfc9110#section-5.5

use std::fmt;
use std::str::FromStr;

use http::HeaderValue;

/// A request `Content-Range`: the inclusive byte range `first..=last` of a body whose
/// complete length is known (`Some`) or not yet known (`None`, written `*`).
///
/// Every value upholds `first <= last`, `last < complete_length` (when known) and
/// `last < u64::MAX` (so that [`len`](Self::len) and [`end`](Self::end) fit in a `u64`).
/// See the [module docs](self) for the accepted syntax.
///
/// ```
/// use handoff_proto::content_range::ContentRange;
///
/// let range = ContentRange::new(0, 4, Some(10)).unwrap();
/// assert_eq!(range.to_string(), "bytes 0-4/10");
/// assert_eq!(range, "bytes 0-4/10".parse().unwrap());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentRange {
    first: u64,
    last: u64,
    complete_length: Option<u64>,
}

impl ContentRange {
    /// Builds a range, checking `first <= last`, `last < complete_length` and
    /// `last < u64::MAX`.
    ///
    /// ```
    /// use handoff_proto::content_range::{ContentRange, ContentRangeError};
    ///
    /// assert_eq!(ContentRange::new(5, 9, None).unwrap().len(), 5);
    /// assert_eq!(
    ///     ContentRange::new(5, 4, None),
    ///     Err(ContentRangeError::FirstAfterLast { first: 5, last: 4 }),
    /// );
    /// assert!(ContentRange::new(0, 10, Some(10)).is_err());
    /// ```
    pub fn new(
        first: u64,
        last: u64,
        complete_length: Option<u64>,
    ) -> Result<Self, ContentRangeError> {
        if first > last {
            return Err(ContentRangeError::FirstAfterLast { first, last });
        }
        match complete_length {
            Some(complete_length) if last >= complete_length => {
                return Err(ContentRangeError::LastNotBelowLength {
                    last,
                    complete_length,
                });
            }
            // `len()` is `last - first + 1`; with `0-18446744073709551615/*` it would not fit.
            None if last == u64::MAX => {
                return Err(ContentRangeError::Overflow("byte range length"));
            }
            _ => {}
        }
        Ok(Self {
            first,
            last,
            complete_length,
        })
    }

    /// The offset of the first byte in the range.
    ///
    /// ```
    /// use handoff_proto::content_range::ContentRange;
    ///
    /// assert_eq!("bytes 7-8/9".parse::<ContentRange>().unwrap().first(), 7);
    /// ```
    pub fn first(&self) -> u64 {
        self.first
    }

    /// The offset of the last byte in the range (inclusive).
    ///
    /// ```
    /// use handoff_proto::content_range::ContentRange;
    ///
    /// assert_eq!("bytes 7-8/9".parse::<ContentRange>().unwrap().last(), 8);
    /// ```
    pub fn last(&self) -> u64 {
        self.last
    }

    /// The length of the complete body, or `None` when the sender wrote `*`.
    ///
    /// ```
    /// use handoff_proto::content_range::ContentRange;
    ///
    /// assert_eq!("bytes 7-8/9".parse::<ContentRange>().unwrap().complete_length(), Some(9));
    /// assert_eq!("bytes 7-8/*".parse::<ContentRange>().unwrap().complete_length(), None);
    /// ```
    pub fn complete_length(&self) -> Option<u64> {
        self.complete_length
    }

    /// The number of bytes in the range: `last - first + 1`, never zero.
    ///
    /// ```
    /// use handoff_proto::content_range::ContentRange;
    ///
    /// assert_eq!("bytes 0-0/1".parse::<ContentRange>().unwrap().len(), 1);
    /// assert_eq!("bytes 10-19/*".parse::<ContentRange>().unwrap().len(), 10);
    /// ```
    // A range always holds at least one byte, so an `is_empty` would always be false.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// The offset just past the last byte: `last + 1`.
    ///
    /// ```
    /// use handoff_proto::content_range::ContentRange;
    ///
    /// let range: ContentRange = "bytes 10-19/20".parse().unwrap();
    /// assert_eq!(range.first()..range.end(), 10..20);
    /// ```
    pub fn end(&self) -> u64 {
        self.last + 1
    }

    /// Whether the range reaches the end of the body, i.e. the complete length is known
    /// and equals [`end`](Self::end).
    ///
    /// ```
    /// use handoff_proto::content_range::ContentRange;
    ///
    /// assert!("bytes 10-19/20".parse::<ContentRange>().unwrap().reaches_end());
    /// assert!(!"bytes 10-18/20".parse::<ContentRange>().unwrap().reaches_end());
    /// assert!(!"bytes 10-19/*".parse::<ContentRange>().unwrap().reaches_end());
    /// ```
    pub fn reaches_end(&self) -> bool {
        self.complete_length == Some(self.end())
    }

    /// Parses a field value (see the [module docs](self) for the accepted forms).
    ///
    /// ```
    /// use handoff_proto::content_range::ContentRange;
    ///
    /// let range = ContentRange::parse(b" Bytes 1-2/3 ").unwrap();
    /// assert_eq!(range.to_string(), "bytes 1-2/3");
    /// assert!(ContentRange::parse(b"bytes */3").is_err());
    /// ```
    pub fn parse(value: &[u8]) -> Result<Self, ContentRangeError> {
        let value = trim_ows(value);
        if value.is_empty() {
            return Err(ContentRangeError::Empty);
        }
        // PROTOCOL.md part C: accept the unit-less form of the reference client, which
        // starts with a digit (or with `*` for the unsatisfied form, rejected below).
        let range = if value[0].is_ascii_digit() || value[0] == b'*' {
            value
        } else {
            let Some(space) = value.iter().position(|&b| b == b' ') else {
                return Err(ContentRangeError::Malformed(
                    "expected a range unit, a space and a byte range",
                ));
            };
            let unit = &value[..space];
            if !unit.eq_ignore_ascii_case(b"bytes") {
                return Err(if unit.iter().all(|&b| is_tchar(b)) {
                    ContentRangeError::UnsupportedUnit(String::from_utf8_lossy(unit).into_owned())
                } else {
                    ContentRangeError::Malformed("the range unit is not a token")
                });
            }
            &value[space + 1..]
        };
        match range.first() {
            Some(b'*') if range.get(1) == Some(&b'/') => {
                return Err(ContentRangeError::UnsatisfiedRange)
            }
            Some(b' ' | b'\t') => {
                return Err(ContentRangeError::Malformed(
                    "expected exactly one space after the range unit",
                ))
            }
            _ => {}
        }
        let Some(slash) = range.iter().position(|&b| b == b'/') else {
            return Err(ContentRangeError::Malformed(
                "expected `/` and a complete length after the byte range",
            ));
        };
        let (incl_range, complete) = (&range[..slash], &range[slash + 1..]);
        let Some(dash) = incl_range.iter().position(|&b| b == b'-') else {
            return Err(ContentRangeError::Malformed(
                "expected `-` between the first and last byte positions",
            ));
        };
        let first = parse_u64(&incl_range[..dash], "first byte position")?;
        let last = parse_u64(&incl_range[dash + 1..], "last byte position")?;
        let complete_length = match complete {
            b"*" => None,
            digits => Some(parse_u64(digits, "complete length")?),
        };
        Self::new(first, last, complete_length)
    }

    /// The canonical header value, `bytes first-last/complete-length` or `bytes first-last/*`.
    ///
    /// ```
    /// use handoff_proto::content_range::ContentRange;
    ///
    /// let range: ContentRange = "3-4/*".parse().unwrap();
    /// assert_eq!(range.to_header_value(), "bytes 3-4/*");
    /// ```
    pub fn to_header_value(&self) -> HeaderValue {
        HeaderValue::try_from(self.to_string())
            .expect("digits, `bytes`, space, `-`, `/` and `*` are valid header value bytes")
    }
}

impl fmt::Display for ContentRange {
    /// Writes the canonical form, `bytes first-last/complete-length` or `bytes first-last/*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bytes {}-{}/", self.first, self.last)?;
        match self.complete_length {
            Some(len) => write!(f, "{len}"),
            None => f.write_str("*"),
        }
    }
}

impl FromStr for ContentRange {
    type Err = ContentRangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

impl TryFrom<&HeaderValue> for ContentRange {
    type Error = ContentRangeError;

    fn try_from(value: &HeaderValue) -> Result<Self, Self::Error> {
        Self::parse(value.as_bytes())
    }
}

/// Why a `Content-Range` value was rejected. [`Display`](fmt::Display) says what is wrong.
///
/// ```
/// use handoff_proto::content_range::{ContentRange, ContentRangeError};
///
/// let err = "items 0-1/2".parse::<ContentRange>().unwrap_err();
/// assert_eq!(err, ContentRangeError::UnsupportedUnit("items".into()));
/// assert_eq!(
///     err.to_string(),
///     "invalid Content-Range: range unit `items` is not supported (only `bytes` is)",
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContentRangeError {
    /// The value is empty or only whitespace.
    Empty,
    /// A range unit other than `bytes`.
    UnsupportedUnit(String),
    /// `bytes */complete-length`: an unsatisfied-range, which only a response can carry.
    UnsatisfiedRange,
    /// The value does not follow the grammar; the text says what was expected.
    Malformed(&'static str),
    /// A number (named by the text) is empty or holds something other than digits.
    InvalidNumber(&'static str),
    /// A number (named by the text) does not fit in 64 bits.
    Overflow(&'static str),
    /// The first byte position is after the last one.
    FirstAfterLast {
        /// The first byte position.
        first: u64,
        /// The last byte position.
        last: u64,
    },
    /// The last byte position is not below the complete length.
    LastNotBelowLength {
        /// The last byte position.
        last: u64,
        /// The complete length.
        complete_length: u64,
    },
}

impl fmt::Display for ContentRangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid Content-Range: ")?;
        match self {
            Self::Empty => f.write_str("the value is empty"),
            Self::UnsupportedUnit(unit) => {
                write!(f, "range unit `{unit}` is not supported (only `bytes` is)")
            }
            Self::UnsatisfiedRange => f.write_str(
                "`*/complete-length` is the unsatisfied-range form of a response; \
                 a request must name the bytes it carries as `first-last/length`",
            ),
            Self::Malformed(expected) => f.write_str(expected),
            Self::InvalidNumber(what) => write!(f, "the {what} is not a decimal number"),
            Self::Overflow(what) => write!(f, "the {what} does not fit in 64 bits"),
            Self::FirstAfterLast { first, last } => write!(
                f,
                "first byte position {first} is after last byte position {last}"
            ),
            Self::LastNotBelowLength {
                last,
                complete_length,
            } => write!(
                f,
                "last byte position {last} is not below the complete length {complete_length}"
            ),
        }
    }
}

impl std::error::Error for ContentRangeError {}

/// Strips leading and trailing OWS (SP / HTAB), RFC 9110 §5.5.
fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// `1*DIGIT` as a `u64` (no sign, no whitespace).
fn parse_u64(digits: &[u8], what: &'static str) -> Result<u64, ContentRangeError> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ContentRangeError::InvalidNumber(what));
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)
            .and_then(|acc| acc.checked_add(u64::from(d - b'0')))
            .ok_or(ContentRangeError::Overflow(what))
    })
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<ContentRange, ContentRangeError> {
        s.parse()
    }

    #[test]
    fn parses_the_rfc_forms() {
        let r = parse("bytes 0-499/1234").unwrap();
        assert_eq!(
            (r.first(), r.last(), r.complete_length()),
            (0, 499, Some(1234))
        );
        assert_eq!(r.len(), 500);
        let r = parse("bytes 500-999/*").unwrap();
        assert_eq!((r.first(), r.last(), r.complete_length()), (500, 999, None));
        assert_eq!(r.len(), 500);
    }

    #[test]
    fn parses_the_unit_less_forms() {
        assert_eq!(parse("0-499/1234"), parse("bytes 0-499/1234"));
        assert_eq!(parse("5-9/*"), parse("bytes 5-9/*"));
    }

    #[test]
    fn unit_is_case_insensitive_and_ows_is_trimmed() {
        assert_eq!(parse("\t BYTES 1-2/3 \t"), parse("bytes 1-2/3"));
        assert_eq!(parse(" 1-2/3"), parse("bytes 1-2/3"));
    }

    #[test]
    fn leading_zeros_are_digits() {
        assert_eq!(
            parse("bytes 007-010/0100").unwrap().to_string(),
            "bytes 7-10/100"
        );
    }

    #[test]
    fn extremes() {
        let max = u64::MAX;
        let r = parse(&format!("bytes 0-{}/{max}", max - 1)).unwrap();
        assert_eq!(r.len(), max);
        assert_eq!(r.end(), max);
        assert_eq!(
            parse(&format!("bytes 0-{max}/*")),
            Err(ContentRangeError::Overflow("byte range length"))
        );
        assert_eq!(
            parse("bytes 18446744073709551616-1/*"),
            Err(ContentRangeError::Overflow("first byte position"))
        );
        assert_eq!(
            parse("bytes 1-2/99999999999999999999"),
            Err(ContentRangeError::Overflow("complete length"))
        );
    }

    #[test]
    fn rejects_with_clear_errors() {
        let cases: &[(&str, ContentRangeError, &str)] = &[
            ("", ContentRangeError::Empty, "empty"),
            (" \t ", ContentRangeError::Empty, "empty"),
            (
                "items 0-1/2",
                ContentRangeError::UnsupportedUnit("items".into()),
                "`items`",
            ),
            (
                "bytes */10",
                ContentRangeError::UnsatisfiedRange,
                "unsatisfied-range",
            ),
            ("*/10", ContentRangeError::UnsatisfiedRange, "response"),
            (
                "bytes",
                ContentRangeError::Malformed("expected a range unit, a space and a byte range"),
                "expected",
            ),
            (
                "bytes  0-1/2",
                ContentRangeError::Malformed("expected exactly one space after the range unit"),
                "one space",
            ),
            (
                "bytes\t0-1/2",
                ContentRangeError::Malformed("expected a range unit, a space and a byte range"),
                "space",
            ),
            (
                "b@tes 0-1/2",
                ContentRangeError::Malformed("the range unit is not a token"),
                "token",
            ),
            (
                "bytes 0-1",
                ContentRangeError::Malformed(
                    "expected `/` and a complete length after the byte range",
                ),
                "`/`",
            ),
            (
                "bytes 01/2",
                ContentRangeError::Malformed(
                    "expected `-` between the first and last byte positions",
                ),
                "`-`",
            ),
            (
                "bytes -1/2",
                ContentRangeError::InvalidNumber("first byte position"),
                "first byte position is not",
            ),
            (
                "bytes +0-1/2",
                ContentRangeError::InvalidNumber("first byte position"),
                "not a decimal number",
            ),
            (
                "bytes 0-+1/2",
                ContentRangeError::InvalidNumber("last byte position"),
                "last byte position",
            ),
            (
                "bytes 0-1/",
                ContentRangeError::InvalidNumber("complete length"),
                "complete length",
            ),
            (
                "bytes 0-1/ 2",
                ContentRangeError::InvalidNumber("complete length"),
                "decimal",
            ),
            (
                "bytes 0 - 1/2",
                ContentRangeError::InvalidNumber("first byte position"),
                "decimal",
            ),
            (
                "bytes 0-1/2/3",
                ContentRangeError::InvalidNumber("complete length"),
                "complete length",
            ),
            (
                "bytes 5-4/10",
                ContentRangeError::FirstAfterLast { first: 5, last: 4 },
                "first byte position 5 is after last byte position 4",
            ),
            (
                "bytes 0-10/10",
                ContentRangeError::LastNotBelowLength {
                    last: 10,
                    complete_length: 10,
                },
                "not below the complete length 10",
            ),
            (
                "bytes 0-0/0",
                ContentRangeError::LastNotBelowLength {
                    last: 0,
                    complete_length: 0,
                },
                "complete length 0",
            ),
        ];
        for (input, expected, message) in cases {
            let err = parse(input).unwrap_err();
            assert_eq!(&err, expected, "input {input:?}");
            let shown = err.to_string();
            assert!(shown.starts_with("invalid Content-Range: "), "{shown}");
            assert!(shown.contains(message), "input {input:?}: {shown}");
        }
    }

    #[test]
    fn header_value_round_trip() {
        let r = parse("1-2/*").unwrap();
        let value = r.to_header_value();
        assert_eq!(value, "bytes 1-2/*");
        assert_eq!(ContentRange::try_from(&value), Ok(r));
        let obs_text = HeaderValue::from_bytes(b"bytes 1-2/\xff").unwrap();
        assert_eq!(
            ContentRange::try_from(&obs_text),
            Err(ContentRangeError::InvalidNumber("complete length"))
        );
    }

    #[test]
    fn reaches_end() {
        assert!(parse("bytes 0-0/1").unwrap().reaches_end());
        assert!(!parse("bytes 0-0/2").unwrap().reaches_end());
    }

    #[test]
    fn error_is_std_error() {
        fn assert_error<E: std::error::Error + Clone + PartialEq + Send + Sync + 'static>() {}
        assert_error::<ContentRangeError>();
    }

    /// Any valid range: `first <= last < complete_length`, `last < u64::MAX`.
    fn any_range() -> impl Strategy<Value = ContentRange> {
        (any::<u64>(), any::<u64>(), any::<Option<u64>>()).prop_map(|(a, b, c)| {
            let (first, last) = (a.min(b), a.max(b).min(u64::MAX - 1));
            let first = first.min(last);
            let complete = c.map(|c| c.max(last + 1));
            ContentRange::new(first, last, complete).unwrap()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn display_parse_round_trip(range in any_range()) {
            let shown = range.to_string();
            prop_assert_eq!(parse(&shown), Ok(range));
            prop_assert_eq!(ContentRange::try_from(&range.to_header_value()), Ok(range));
            prop_assert_eq!(range.len(), range.last() - range.first() + 1);
        }

        #[test]
        fn unit_less_round_trip(range in any_range()) {
            let shown = range.to_string();
            let unit_less = shown.strip_prefix("bytes ").unwrap();
            prop_assert_eq!(parse(unit_less), Ok(range));
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..64)) {
            match ContentRange::parse(&input) {
                Ok(range) => {
                    prop_assert!(range.first() <= range.last());
                    if let Some(len) = range.complete_length() {
                        prop_assert!(range.last() < len);
                    }
                    // Whatever was accepted is written back canonically and re-parses.
                    prop_assert_eq!(parse(&range.to_string()), Ok(range));
                }
                Err(err) => prop_assert!(err.to_string().len() > "invalid Content-Range: ".len()),
            }
        }

        #[test]
        fn arbitrary_range_like_strings_never_panic(
            input in "[ \t]{0,2}(bytes|BYTES|items|)[ \t]{0,2}[0-9*+-]{0,22}[-/]?[0-9*]{0,22}/?[0-9*]{0,22}[ \t]{0,2}"
        ) {
            match parse(&input) {
                Ok(range) => prop_assert_eq!(parse(&range.to_string()), Ok(range)),
                Err(err) => prop_assert!(!err.to_string().is_empty()),
            }
        }

        #[test]
        fn first_after_last_is_rejected(a in any::<u64>(), b in any::<u64>()) {
            prop_assume!(a != b);
            let (first, last) = (a.max(b), a.min(b));
            let err = parse(&format!("bytes {first}-{last}/*")).unwrap_err();
            prop_assert_eq!(&err, &ContentRangeError::FirstAfterLast { first, last });
            prop_assert!(err.to_string().contains("is after last byte position"));
        }

        #[test]
        fn last_not_below_length_is_rejected(a in any::<u64>(), b in any::<u64>()) {
            let (len, last) = (a.min(b), a.max(b));
            let first = last / 2;
            let err = parse(&format!("bytes {first}-{last}/{len}")).unwrap_err();
            prop_assert_eq!(&err, &ContentRangeError::LastNotBelowLength { last, complete_length: len });
            prop_assert!(err.to_string().contains("is not below the complete length"));
        }
    }
}
