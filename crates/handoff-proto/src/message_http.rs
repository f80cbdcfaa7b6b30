//! `message/http` responses and the `299 Incomplete Content` status
//! (PROTOCOL.md parts B.3, B.5 and C).
//!
//! A client that lost the final response of a resumable request fetches it from the
//! response-message location and receives it as a `message/http` body ([`CONTENT_TYPE`],
//! RFC 9112 §10.1): the response exactly as it would have been sent. Following part C the
//! body is always HTTP/1.1 framed, whatever protocol the original exchange used:
//!
//! ```text
//! HTTP/1.1 201 Created          <- status line with the reason phrase (RFC 9112 §4)
//! location: /items/7            <- the original headers, minus framing headers
//! content-length: 5             <- always present (RFC 9112 §6.2)
//!                               <- empty line
//! hello                         <- exactly content-length bytes
//! ```
//!
//! [`encode_response_head`] and [`encode_response`] write it; [`decode_response`] reads it
//! back with httparse, strictly: HTTP/1.0 or HTTP/1.1 only, no obs-fold, at most
//! [`MAX_HEADERS`] headers, a `Content-Length` and exactly that many body bytes.
//!
//! A `HEAD` on a request-content location answers [`incomplete_content`] (`299 Incomplete
//! Content`, part C) while the upload still waits for bytes.
//!
//! ```
//! use handoff_proto::message_http::{decode_response, encode_response};
//! use http::{HeaderMap, StatusCode};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("location", "/items/7".parse().unwrap());
//! let message = encode_response(StatusCode::CREATED, &headers, b"hello");
//! assert_eq!(
//!     &message[..],
//!     b"HTTP/1.1 201 Created\r\nlocation: /items/7\r\ncontent-length: 5\r\n\r\nhello",
//! );
//!
//! let response = decode_response(&message).unwrap();
//! assert_eq!(response.status(), StatusCode::CREATED);
//! assert_eq!(response.headers()["location"], "/items/7");
//! assert_eq!(response.body().as_ref(), b"hello");
//! ```

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Response, StatusCode, Version};

/// The media type of a stored response, `message/http`.
///
/// ```
/// assert_eq!(handoff_proto::message_http::CONTENT_TYPE, "message/http");
/// ```
pub const CONTENT_TYPE: &str = "message/http";

/// The `Incomplete Content` status code, 299 (PROTOCOL.md part C).
///
/// ```
/// use handoff_proto::message_http::{incomplete_content, INCOMPLETE_CONTENT};
///
/// assert_eq!(incomplete_content().as_u16(), INCOMPLETE_CONTENT);
/// ```
pub const INCOMPLETE_CONTENT: u16 = 299;

/// The reason phrase of [`INCOMPLETE_CONTENT`].
///
/// ```
/// use handoff_proto::message_http::{incomplete_content, reason_phrase, INCOMPLETE_CONTENT_REASON};
///
/// assert_eq!(reason_phrase(incomplete_content()), INCOMPLETE_CONTENT_REASON);
/// ```
pub const INCOMPLETE_CONTENT_REASON: &str = "Incomplete Content";

/// The Partial POST Replay status code (PROTOCOL.md parts A and C), for its reason phrase.
const PARTIAL_POST_REPLAY: u16 = 379;

/// The maximum number of header lines [`decode_response`] accepts.
///
/// ```
/// use handoff_proto::message_http::{decode_response, MessageHttpError, MAX_HEADERS};
///
/// let mut message = String::from("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n");
/// for i in 0..MAX_HEADERS {
///     message.push_str(&format!("x-{i}: v\r\n"));
/// }
/// message.push_str("\r\n");
/// assert_eq!(
///     decode_response(message.as_bytes()).unwrap_err(),
///     MessageHttpError::TooManyHeaders { max: MAX_HEADERS },
/// );
/// ```
pub const MAX_HEADERS: usize = 100;

/// The `299 Incomplete Content` status (PROTOCOL.md part C).
///
/// ```
/// use handoff_proto::message_http::incomplete_content;
///
/// assert_eq!(incomplete_content().as_u16(), 299);
/// assert!(incomplete_content().is_success());
/// ```
pub fn incomplete_content() -> StatusCode {
    StatusCode::from_u16(INCOMPLETE_CONTENT).expect("299 is in 100..=999")
}

/// The reason phrase written for `status`: the canonical one, `Incomplete Content` for
/// 299, `Partial POST Replay` for 379, and an empty string for other unregistered codes.
///
/// ```
/// use handoff_proto::message_http::reason_phrase;
/// use http::StatusCode;
///
/// assert_eq!(reason_phrase(StatusCode::NOT_FOUND), "Not Found");
/// assert_eq!(reason_phrase(StatusCode::from_u16(299).unwrap()), "Incomplete Content");
/// assert_eq!(reason_phrase(StatusCode::from_u16(379).unwrap()), "Partial POST Replay");
/// assert_eq!(reason_phrase(StatusCode::from_u16(599).unwrap()), "");
/// ```
pub fn reason_phrase(status: StatusCode) -> &'static str {
    match status.as_u16() {
        INCOMPLETE_CONTENT => INCOMPLETE_CONTENT_REASON,
        PARTIAL_POST_REPLAY => "Partial POST Replay",
        _ => status.canonical_reason().unwrap_or(""),
    }
}

/// Writes the HTTP/1.1 head of a `message/http` body: the status line with
/// [`reason_phrase`], every header of `headers` except `Content-Length` and
/// `Transfer-Encoding`, then `content-length: body_len` and the empty line. The caller
/// appends exactly `body_len` body bytes.
///
/// Takes the status and headers separately so that both `http::response::Parts` and a
/// stored head fit: `encode_response_head(parts.status, &parts.headers, len)`. The
/// original version is not needed: the framing is HTTP/1.1 whatever it was (part C).
///
/// ```
/// use handoff_proto::message_http::encode_response_head;
/// use http::{HeaderMap, StatusCode};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("transfer-encoding", "chunked".parse().unwrap());
/// headers.insert("content-type", "text/plain".parse().unwrap());
/// let head = encode_response_head(StatusCode::OK, &headers, 12);
/// assert_eq!(
///     &head[..],
///     b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 12\r\n\r\n",
/// );
/// ```
pub fn encode_response_head(status: StatusCode, headers: &HeaderMap, body_len: u64) -> Bytes {
    let mut buf = BytesMut::with_capacity(128);
    write_head(&mut buf, status, headers, body_len);
    buf.freeze()
}

/// Writes a whole `message/http` body: [`encode_response_head`] followed by `body`.
///
/// ```
/// use handoff_proto::message_http::encode_response;
/// use http::{HeaderMap, StatusCode};
///
/// let message = encode_response(StatusCode::NO_CONTENT, &HeaderMap::new(), b"");
/// assert_eq!(&message[..], b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n");
/// ```
pub fn encode_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(128 + body.len());
    write_head(&mut buf, status, headers, body.len() as u64);
    buf.put_slice(body);
    buf.freeze()
}

fn write_head(buf: &mut BytesMut, status: StatusCode, headers: &HeaderMap, body_len: u64) {
    // RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
    buf.put_slice(b"HTTP/1.1 ");
    buf.put_slice(status.as_str().as_bytes());
    buf.put_u8(b' ');
    buf.put_slice(reason_phrase(status).as_bytes());
    buf.put_slice(b"\r\n");
    for (name, value) in headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        buf.put_slice(name.as_str().as_bytes());
        buf.put_slice(b": ");
        buf.put_slice(value.as_bytes());
        buf.put_slice(b"\r\n");
    }
    buf.put_slice(b"content-length: ");
    buf.put_slice(body_len.to_string().as_bytes());
    buf.put_slice(b"\r\n\r\n");
}

/// Reads a `message/http` body back into a response.
///
/// The status line must be HTTP/1.0 or HTTP/1.1 (the response gets that version); its
/// reason phrase is not kept. Headers are kept as they are, `Content-Length` included.
/// The message must hold a single valid `Content-Length`, no `Transfer-Encoding`, and
/// exactly that many body bytes after the head. Leading empty lines are skipped (RFC 9112
/// §2.2); obs-fold, invalid bytes and more than [`MAX_HEADERS`] headers are errors.
///
/// ```
/// use handoff_proto::message_http::{decode_response, MessageHttpError};
/// use http::StatusCode;
///
/// let response = decode_response(b"HTTP/1.1 299 Incomplete Content\r\ncontent-length: 0\r\n\r\n").unwrap();
/// assert_eq!(response.status().as_u16(), 299);
///
/// let err = decode_response(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhi").unwrap_err();
/// assert_eq!(err, MessageHttpError::ShortBody { expected: 5, actual: 2 });
/// ```
pub fn decode_response(input: &[u8]) -> Result<Response<Bytes>, MessageHttpError> {
    decode(input, Framing::Strict)
}

/// Reads a `message/http` body the way a client talking to the servers that exist should
/// (docs/PROTOCOL.md part C): like [`decode_response`], except that a document without
/// `Content-Length` has its body run to the end of the input, and bytes after the announced
/// length are ignored. Everything else (the status line, header syntax, at most one
/// `Content-Length`, no `Transfer-Encoding`, no short body) is checked as strictly.
///
/// ```
/// use handoff_proto::message_http::decode_response_lenient;
///
/// let response = decode_response_lenient(b"HTTP/1.1 201 Created\r\nx-extra: 1\r\n\r\nall of it").unwrap();
/// assert_eq!(response.status().as_u16(), 201);
/// assert_eq!(response.headers()["x-extra"], "1");
/// assert_eq!(response.body().as_ref(), b"all of it");
///
/// let response = decode_response_lenient(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi\r\n").unwrap();
/// assert_eq!(response.body().as_ref(), b"hi");
/// ```
pub fn decode_response_lenient(input: &[u8]) -> Result<Response<Bytes>, MessageHttpError> {
    decode(input, Framing::Lenient)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    Strict,
    Lenient,
}

fn decode(input: &[u8], framing: Framing) -> Result<Response<Bytes>, MessageHttpError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut slots);
    let head_len = match parsed.parse(input) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Err(MessageHttpError::IncompleteHead),
        Err(err) => return Err(head_error(err)),
    };
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let code = parsed.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| MessageHttpError::InvalidStatus(code))?;

    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    for header in parsed.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| MessageHttpError::InvalidHead("a header name is not a valid token"))?;
        let value = HeaderValue::from_bytes(header.value)
            .map_err(|_| MessageHttpError::InvalidHead("a header value holds a control byte"))?;
        headers.append(name, value);
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        return Err(MessageHttpError::TransferEncoding);
    }
    let mut lengths = headers.get_all(CONTENT_LENGTH).iter();
    let body = &input[head_len..];
    let actual = body.len() as u64;
    let expected = match (lengths.next(), lengths.next()) {
        (None, _) if framing == Framing::Lenient => actual,
        (None, _) => return Err(MessageHttpError::MissingContentLength),
        (Some(_), Some(_)) => return Err(MessageHttpError::InvalidContentLength),
        (Some(value), None) => parse_length(value.as_bytes())?,
    };
    if actual < expected {
        return Err(MessageHttpError::ShortBody { expected, actual });
    }
    if actual > expected && framing == Framing::Strict {
        return Err(MessageHttpError::LongBody { expected, actual });
    }
    // Within `actual`, so it fits in a usize.
    let body = &body[..expected as usize];

    let mut response = Response::new(Bytes::copy_from_slice(body));
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    Ok(response)
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6), as a `u64`.
fn parse_length(digits: &[u8]) -> Result<u64, MessageHttpError> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(MessageHttpError::InvalidContentLength);
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)
            .and_then(|acc| acc.checked_add(u64::from(d - b'0')))
            .ok_or(MessageHttpError::InvalidContentLength)
    })
}

fn head_error(err: httparse::Error) -> MessageHttpError {
    match err {
        httparse::Error::TooManyHeaders => MessageHttpError::TooManyHeaders { max: MAX_HEADERS },
        httparse::Error::Version => MessageHttpError::UnsupportedVersion,
        httparse::Error::Status => {
            MessageHttpError::InvalidHead("the status line is not `HTTP/1.x NNN reason`")
        }
        httparse::Error::HeaderName => MessageHttpError::InvalidHead(
            "invalid byte in a header name (or an obs-fold continuation line)",
        ),
        httparse::Error::HeaderValue => {
            MessageHttpError::InvalidHead("invalid byte in a header value")
        }
        httparse::Error::NewLine => MessageHttpError::InvalidHead("a CR is not followed by LF"),
        _ => MessageHttpError::InvalidHead("malformed status line or header"),
    }
}

/// Why a `message/http` body was rejected. [`Display`](fmt::Display) says what is wrong.
///
/// ```
/// use handoff_proto::message_http::{decode_response, MessageHttpError};
///
/// let err = decode_response(b"HTTP/2 200\r\n\r\n").unwrap_err();
/// assert_eq!(err, MessageHttpError::UnsupportedVersion);
/// assert_eq!(
///     err.to_string(),
///     "invalid message/http: the status line must start with HTTP/1.0 or HTTP/1.1",
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageHttpError {
    /// The input ends before the empty line that ends the head.
    IncompleteHead,
    /// The version is not HTTP/1.0 or HTTP/1.1.
    UnsupportedVersion,
    /// The status code is not in 100..=999.
    InvalidStatus(u16),
    /// The status line or a header line is malformed; the text says how.
    InvalidHead(&'static str),
    /// More than [`MAX_HEADERS`] header lines.
    TooManyHeaders {
        /// The bound.
        max: usize,
    },
    /// No `Content-Length` header.
    MissingContentLength,
    /// A `Content-Length` that is not one decimal number fitting in 64 bits.
    InvalidContentLength,
    /// A `Transfer-Encoding` header; `message/http` bodies are framed by `Content-Length`.
    TransferEncoding,
    /// Fewer body bytes than the `Content-Length`.
    ShortBody {
        /// The `Content-Length`.
        expected: u64,
        /// The body bytes present.
        actual: u64,
    },
    /// More body bytes than the `Content-Length`.
    LongBody {
        /// The `Content-Length`.
        expected: u64,
        /// The body bytes present.
        actual: u64,
    },
}

impl fmt::Display for MessageHttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid message/http: ")?;
        match self {
            Self::IncompleteHead => {
                f.write_str("the message ends inside its head (no empty line after the headers)")
            }
            Self::UnsupportedVersion => {
                f.write_str("the status line must start with HTTP/1.0 or HTTP/1.1")
            }
            Self::InvalidStatus(code) => {
                write!(f, "status code {code:03} is not in 100..=999")
            }
            Self::InvalidHead(what) => write!(f, "the head is malformed: {what}"),
            Self::TooManyHeaders { max } => write!(f, "more than {max} header lines"),
            Self::MissingContentLength => f.write_str("no Content-Length frames the body"),
            Self::InvalidContentLength => f.write_str(
                "the Content-Length is not a single decimal number that fits in 64 bits",
            ),
            Self::TransferEncoding => f.write_str(
                "Transfer-Encoding is not allowed; a Content-Length must frame the body",
            ),
            Self::ShortBody { expected, actual } => write!(
                f,
                "the body has {actual} bytes, fewer than its Content-Length of {expected}"
            ),
            Self::LongBody { expected, actual } => write!(
                f,
                "the body has {actual} bytes, more than its Content-Length of {expected}"
            ),
        }
    }
}

impl std::error::Error for MessageHttpError {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reason_phrases() {
        assert_eq!(reason_phrase(StatusCode::OK), "OK");
        assert_eq!(
            reason_phrase(StatusCode::from_u16(379).unwrap()),
            "Partial POST Replay"
        );
        assert_eq!(reason_phrase(incomplete_content()), "Incomplete Content");
        assert_eq!(reason_phrase(StatusCode::from_u16(999).unwrap()), "");
    }

    #[test]
    fn unknown_codes_keep_the_space_before_the_empty_reason() {
        let message = encode_response(StatusCode::from_u16(599).unwrap(), &HeaderMap::new(), b"");
        assert!(message.starts_with(b"HTTP/1.1 599 \r\n"));
        assert_eq!(decode_response(&message).unwrap().status().as_u16(), 599);
    }

    #[test]
    fn framing_headers_are_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("999"));
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let message = encode_response(StatusCode::ACCEPTED, &headers, b"abc");
        assert_eq!(
            &message[..],
            b"HTTP/1.1 202 Accepted\r\nx-a: 1\r\nx-a: 2\r\ncontent-length: 3\r\n\r\nabc"
        );
        let response = decode_response(&message).unwrap();
        let values: Vec<_> = response.headers().get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(response.headers()[CONTENT_LENGTH], "3");
    }

    #[test]
    fn decodes_lenient_but_valid_forms() {
        let response =
            decode_response(b"\r\nHTTP/1.0 200 Whatever\nContent-Length:  2 \n\nok").unwrap();
        assert_eq!(response.version(), Version::HTTP_10);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body().as_ref(), b"ok");
        // A missing reason phrase (no SP) is accepted too.
        let response = decode_response(b"HTTP/1.1 204\r\ncontent-length: 0\r\n\r\n").unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    #[test]
    fn rejects_with_clear_errors() {
        let cases: &[(&[u8], MessageHttpError, &str)] = &[
            (
                b"",
                MessageHttpError::IncompleteHead,
                "ends inside its head",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n",
                MessageHttpError::IncompleteHead,
                "no empty line",
            ),
            (
                b"HTTP/2 200 OK\r\n\r\n",
                MessageHttpError::UnsupportedVersion,
                "HTTP/1.0 or HTTP/1.1",
            ),
            (
                b"HTTP/1.2 200 OK\r\n\r\n",
                MessageHttpError::UnsupportedVersion,
                "HTTP/1.1",
            ),
            (
                b"GET / HTTP/1.1\r\n\r\n",
                MessageHttpError::UnsupportedVersion,
                "status line",
            ),
            (
                b"HTTP/1.1 099 Low\r\ncontent-length: 0\r\n\r\n",
                MessageHttpError::InvalidStatus(99),
                "status code 099",
            ),
            (
                b"HTTP/1.1 2000 OK\r\n\r\n",
                MessageHttpError::InvalidHead("the status line is not `HTTP/1.x NNN reason`"),
                "status line",
            ),
            (
                b"HTTP/1.1 200 OK\r\nx-a: 1\r\n folded\r\ncontent-length: 0\r\n\r\n",
                MessageHttpError::InvalidHead(
                    "invalid byte in a header name (or an obs-fold continuation line)",
                ),
                "obs-fold",
            ),
            (
                b"HTTP/1.1 200 OK\r\nx-a: 1\x00\r\ncontent-length: 0\r\n\r\n",
                MessageHttpError::InvalidHead("invalid byte in a header value"),
                "header value",
            ),
            (
                b"HTTP/1.1 200 OK\r\nbad name: 1\r\ncontent-length: 0\r\n\r\n",
                MessageHttpError::InvalidHead(
                    "invalid byte in a header name (or an obs-fold continuation line)",
                ),
                "header name",
            ),
            (
                b"HTTP/1.1 200 OK\r\n\r\n",
                MessageHttpError::MissingContentLength,
                "no Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\nx",
                MessageHttpError::InvalidContentLength,
                "single decimal number",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: +1\r\n\r\nx",
                MessageHttpError::InvalidContentLength,
                "Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 1, 1\r\n\r\nx",
                MessageHttpError::InvalidContentLength,
                "Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
                MessageHttpError::InvalidContentLength,
                "64 bits",
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 0\r\n\r\n",
                MessageHttpError::TransferEncoding,
                "Transfer-Encoding is not allowed",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nab",
                MessageHttpError::ShortBody {
                    expected: 3,
                    actual: 2,
                },
                "2 bytes, fewer than its Content-Length of 3",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nab",
                MessageHttpError::LongBody {
                    expected: 1,
                    actual: 2,
                },
                "2 bytes, more than its Content-Length of 1",
            ),
        ];
        for (input, expected, message) in cases {
            let err = decode_response(input).unwrap_err();
            assert_eq!(&err, expected, "input {:?}", String::from_utf8_lossy(input));
            let shown = err.to_string();
            assert!(shown.starts_with("invalid message/http: "), "{shown}");
            assert!(shown.contains(message), "{shown}");
        }
    }

    #[test]
    fn too_many_headers() {
        let mut message = String::from("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n");
        for i in 0..MAX_HEADERS - 1 {
            message.push_str(&format!("x-{i}: v\r\n"));
        }
        assert!(decode_response(format!("{message}\r\n").as_bytes()).is_ok());
        let err = decode_response(format!("{message}x-last: v\r\n\r\n").as_bytes()).unwrap_err();
        assert_eq!(err, MessageHttpError::TooManyHeaders { max: MAX_HEADERS });
        assert!(err.to_string().contains("more than 100 header lines"));
    }

    #[test]
    fn error_is_std_error() {
        fn assert_error<E: std::error::Error + Clone + PartialEq + Send + Sync + 'static>() {}
        assert_error::<MessageHttpError>();
    }

    fn any_headers() -> impl Strategy<Value = HeaderMap> {
        let name = "[a-z0-9!#$%&'*+.^_`|~-]{1,16}".prop_filter("not a framing header", |n| {
            n != "content-length" && n != "transfer-encoding"
        });
        // Values: VCHAR / obs-text, inner SP / HTAB; OWS around a value is not part of it.
        let value = proptest::collection::vec(
            prop_oneof![0x21u8..=0x7e, 0x80u8..=0xff, Just(b' '), Just(b'\t')],
            0..24,
        )
        .prop_map(|mut v| {
            while matches!(v.last(), Some(b' ' | b'\t')) {
                v.pop();
            }
            while matches!(v.first(), Some(b' ' | b'\t')) {
                v.remove(0);
            }
            v
        });
        proptest::collection::vec((name, value), 0..12).prop_map(|pairs| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_bytes(&value).unwrap(),
                );
            }
            map
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn round_trip(
            code in 100u16..=999,
            headers in any_headers(),
            body in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let status = StatusCode::from_u16(code).unwrap();
            let message = encode_response(status, &headers, &body);
            let mut head = encode_response_head(status, &headers, body.len() as u64).to_vec();
            head.extend_from_slice(&body);
            prop_assert_eq!(&message[..], &head[..]);

            let response = decode_response(&message).unwrap();
            prop_assert_eq!(response.status(), status);
            prop_assert_eq!(response.version(), Version::HTTP_11);
            prop_assert_eq!(response.body().as_ref(), &body[..]);
            let mut expected = headers.clone();
            expected.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
            prop_assert_eq!(response.headers(), &expected);

            // Re-encoding the decoded response gives the same bytes.
            let again = encode_response(response.status(), response.headers(), response.body());
            prop_assert_eq!(again, message);
        }

        #[test]
        fn wrong_body_lengths_are_errors(
            code in 100u16..=999,
            body in proptest::collection::vec(any::<u8>(), 1..64),
            cut in any::<usize>(),
            extra in proptest::collection::vec(any::<u8>(), 1..16),
        ) {
            let status = StatusCode::from_u16(code).unwrap();
            let message = encode_response(status, &HeaderMap::new(), &body);
            let short = &message[..message.len() - 1 - cut % body.len()];
            let err = decode_response(short).unwrap_err();
            prop_assert!(matches!(err, MessageHttpError::ShortBody { .. }), "unexpected error {:?}", err);
            prop_assert!(err.to_string().contains("fewer than its Content-Length"));
            let mut long = message.to_vec();
            long.extend_from_slice(&extra);
            let err = decode_response(&long).unwrap_err();
            prop_assert!(matches!(err, MessageHttpError::LongBody { .. }), "unexpected error {:?}", err);
            prop_assert!(err.to_string().contains("more than its Content-Length"));
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Err(err) = decode_response(&input) {
                prop_assert!(err.to_string().len() > "invalid message/http: ".len());
            }
            if let Err(err) = decode_response_lenient(&input) {
                prop_assert!(err.to_string().len() > "invalid message/http: ".len());
            }
        }

        #[test]
        fn lenient_reads_what_strict_reads_and_unframed_bodies(
            code in 200u16..=599,
            body in proptest::collection::vec(any::<u8>(), 0..64),
            extra in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let status = StatusCode::from_u16(code).unwrap();
            let message = encode_response(status, &HeaderMap::new(), &body);
            let strict = decode_response(&message).unwrap();
            let lenient = decode_response_lenient(&message).unwrap();
            prop_assert_eq!(strict.body(), lenient.body());
            // Trailing bytes past Content-Length are ignored.
            let mut long = message.to_vec();
            long.extend_from_slice(&extra);
            let trimmed = decode_response_lenient(&long).unwrap();
            prop_assert_eq!(trimmed.body().as_ref(), &body[..]);
            // Without Content-Length the body runs to the end.
            let mut unframed = format!("HTTP/1.1 {code} X\r\nx-a: b\r\n\r\n").into_bytes();
            unframed.extend_from_slice(&body);
            let decoded = decode_response_lenient(&unframed).unwrap();
            prop_assert_eq!(decoded.body().as_ref(), &body[..]);
            prop_assert_eq!(&decoded.headers()["x-a"], "b");
        }

        #[test]
        fn arbitrary_messages_never_panic(
            status_line in "(HTTP/1\\.[01]|HTTP/2|HTTP/1\\.1 ?)( [0-9]{1,4})?( [ -~]{0,12})?(\r\n|\n)",
            lines in proptest::collection::vec(
                "( |)(content-length|transfer-encoding|x-[a-z]{1,3})( ?:)[ \t]?[0-9a-z \u{80}]{0,8}(\r\n|\n|\r)",
                0..6,
            ),
            body in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let mut input = status_line.into_bytes();
            input.extend_from_slice(lines.concat().as_bytes());
            input.extend_from_slice(b"\r\n");
            input.extend_from_slice(&body);
            match decode_response(&input) {
                Ok(response) => {
                    let length: u64 = response.headers()[CONTENT_LENGTH].to_str().unwrap().parse().unwrap();
                    prop_assert_eq!(length, response.body().len() as u64);
                }
                Err(err) => prop_assert!(!err.to_string().is_empty()),
            }
        }
    }
}
