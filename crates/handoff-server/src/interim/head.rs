//! The bytes of an HTTP/1.1 `100 Continue` interim response (RFC 9110 §15.2.1, RFC 9112 §4).

use http::HeaderMap;

/// What hyper writes, byte for byte, when a handler first polls the body of a request that
/// carried `Expect: 100-continue` (hyper 1.x `proto/h1/conn.rs`, `poll_read_body`).
pub(super) const BARE_CONTINUE: &[u8; 25] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The status line every interim response this module writes starts with.
const STATUS_LINE: &[u8] = b"HTTP/1.1 100 Continue\r\n";

/// The most interim-response bytes a connection holds at once: what is armed plus what is
/// queued and not yet written. Arming or queueing more is refused.
pub const MAX_INTERIM_BYTES: usize = 8 * 1024;

/// Encodes `HTTP/1.1 100 Continue\r\n`, one `name: value\r\n` per header, then `\r\n`.
///
/// `None` if the head would be longer than [`MAX_INTERIM_BYTES`]. (`HeaderValue` holds no
/// CR or LF unless built with `unsafe`, so a value cannot forge more lines.)
pub(super) fn encode_continue(headers: &HeaderMap) -> Option<Vec<u8>> {
    let len = headers
        .iter()
        .try_fold(STATUS_LINE.len() + 2, |len, (name, value)| {
            let line = name.as_str().len() + 2 + value.len() + 2;
            Some(len + line).filter(|len| *len <= MAX_INTERIM_BYTES)
        })?;
    let mut head = Vec::with_capacity(len);
    head.extend_from_slice(STATUS_LINE);
    for (name, value) in headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    debug_assert_eq!(head.len(), len);
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderName, HeaderValue};
    use proptest::prelude::*;

    #[test]
    fn no_headers_is_hypers_own_bytes() {
        assert_eq!(
            encode_continue(&HeaderMap::new()).unwrap(),
            BARE_CONTINUE.to_vec()
        );
    }

    #[test]
    fn headers_in_insertion_order_lowercase_names() {
        let mut headers = HeaderMap::new();
        headers.insert("Preference-Applied", HeaderValue::from_static("resume"));
        headers.append("Acknowledge", HeaderValue::from_static("12"));
        headers.append("acknowledge", HeaderValue::from_static("13"));
        assert_eq!(
            encode_continue(&headers).unwrap(),
            b"HTTP/1.1 100 Continue\r\npreference-applied: resume\r\nacknowledge: 12\r\nacknowledge: 13\r\n\r\n"
                .to_vec()
        );
    }

    #[test]
    fn refuses_oversized_heads() {
        let mut big = HeaderMap::new();
        let at_limit = MAX_INTERIM_BYTES - STATUS_LINE.len() - 2 - "x: \r\n".len();
        big.insert("x", HeaderValue::from_str(&"a".repeat(at_limit)).unwrap());
        assert_eq!(encode_continue(&big).unwrap().len(), MAX_INTERIM_BYTES);
        big.insert(
            "x",
            HeaderValue::from_str(&"a".repeat(at_limit + 1)).unwrap(),
        );
        assert_eq!(encode_continue(&big), None);
    }

    fn header() -> impl Strategy<Value = (HeaderName, HeaderValue)> {
        ("[a-z][a-z0-9-]{0,15}", "[ -~]{0,40}").prop_map(|(name, value)| {
            let value = value.trim().to_owned();
            (
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(&value).unwrap(),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the headers, the head parses back as one complete `100` with the same
        /// header lines, and nothing after it.
        #[test]
        fn parses_back(headers in proptest::collection::vec(header(), 0..12)) {
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                map.append(name, value);
            }
            let head = encode_continue(&map).unwrap();
            let mut parsed = [httparse::EMPTY_HEADER; 16];
            let mut response = httparse::Response::new(&mut parsed);
            let status = response.parse(&head).unwrap();
            prop_assert_eq!(status, httparse::Status::Complete(head.len()));
            prop_assert_eq!(response.code, Some(100));
            let got: Vec<(String, Vec<u8>)> = response
                .headers
                .iter()
                .map(|h| (h.name.to_owned(), h.value.to_vec()))
                .collect();
            let want: Vec<(String, Vec<u8>)> = map
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect();
            prop_assert_eq!(got, want);
        }
    }
}
