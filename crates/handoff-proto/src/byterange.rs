//! The `message/byterange` patch body (PROTOCOL.md part B.4).
//!
//! A client that completes an interrupted upload sends `PATCH` to the request-content
//! location with `Content-Type: message/byterange` ([`CONTENT_TYPE`]). The patch body is
//! a small head followed by the bytes:
//!
//! ```text
//! Content-Range: bytes 100-199/1000      <- required, exactly once (RFC 9110 §14.4)
//! Other-Header: value                     <- optional
//!                                         <- empty line
//! ...exactly 100 bytes...
//! ```
//!
//! Header lines follow RFC 9112 §5 (`Name: value` and CRLF; a bare LF is accepted too, as
//! RFC 9112 §2.2 allows). The `Content-Range` is parsed by [`ContentRange`], including
//! the unit-less form of PROTOCOL.md part C.
//!
//! [`PatchDecoder`] is a streaming decoder: it buffers only the head (up to a bound,
//! [`DEFAULT_MAX_HEAD_LEN`] unless configured, and at most [`MAX_HEADERS`] header lines)
//! and hands the data back as zero-copy slices of its input, so a patch of any size goes
//! through in constant memory. [`encode_head`] builds the head for a client.
//!
//! ```
//! use bytes::Bytes;
//! use handoff_proto::byterange::{encode_head, PatchDecoder, PatchEvent};
//! use handoff_proto::content_range::ContentRange;
//! use http::HeaderMap;
//!
//! // A client builds a patch carrying bytes 5..10 of a 10-byte upload...
//! let range = ContentRange::new(5, 9, Some(10)).unwrap();
//! let mut patch = encode_head(&range, &HeaderMap::new()).to_vec();
//! patch.extend_from_slice(b"56789");
//!
//! // ...and the server decodes it as it arrives, here in two chunks.
//! let mut decoder = PatchDecoder::new();
//! let mut data = Vec::new();
//! for chunk in patch.chunks(20) {
//!     let mut chunk = Bytes::copy_from_slice(chunk);
//!     while let Some(event) = decoder.decode(&mut chunk).unwrap() {
//!         match event {
//!             PatchEvent::Head(head) => assert_eq!(head.content_range, range),
//!             PatchEvent::Data(bytes) => data.extend_from_slice(&bytes),
//!         }
//!     }
//! }
//! decoder.finish().unwrap();
//! assert_eq!(data, b"56789");
//! ```

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue, CONTENT_RANGE};
use http::HeaderMap;

use crate::content_range::{ContentRange, ContentRangeError};

/// The media type of a patch body, `message/byterange`.
///
/// ```
/// assert_eq!(handoff_proto::byterange::CONTENT_TYPE, "message/byterange");
/// ```
pub const CONTENT_TYPE: &str = "message/byterange";

/// The default bound on the length of a patch head, blank line included: 8 KiB.
///
/// ```
/// use handoff_proto::byterange::{PatchDecoder, DEFAULT_MAX_HEAD_LEN};
///
/// assert_eq!(DEFAULT_MAX_HEAD_LEN, 8 * 1024);
/// assert_eq!(PatchDecoder::new().max_head_len(), DEFAULT_MAX_HEAD_LEN);
/// ```
pub const DEFAULT_MAX_HEAD_LEN: usize = 8 * 1024;

/// The most header lines a patch head may hold.
///
/// ```
/// use bytes::Bytes;
/// use handoff_proto::byterange::{ByterangeError, PatchDecoder, MAX_HEADERS};
///
/// let mut head = String::from("Content-Range: bytes 0-0/1\r\n");
/// for i in 0..MAX_HEADERS {
///     head.push_str(&format!("x-{i}: v\r\n"));
/// }
/// head.push_str("\r\n");
/// let err = PatchDecoder::new().decode(&mut Bytes::from(head)).unwrap_err();
/// assert_eq!(err, ByterangeError::TooManyHeaders { max: MAX_HEADERS });
/// ```
pub const MAX_HEADERS: usize = 32;

/// The head of a patch: its `Content-Range` and every other header.
///
/// ```
/// use bytes::Bytes;
/// use handoff_proto::byterange::{PatchDecoder, PatchEvent};
///
/// let mut input = Bytes::from_static(b"Content-Range: 0-1/*\nContent-Type: text/plain\n\nab");
/// let Some(PatchEvent::Head(head)) = PatchDecoder::new().decode(&mut input).unwrap() else {
///     panic!("expected the head");
/// };
/// assert_eq!(head.content_range.to_string(), "bytes 0-1/*");
/// assert_eq!(head.headers["content-type"], "text/plain");
/// assert!(head.headers.get("content-range").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchHead {
    /// Where the patch's data goes.
    pub content_range: ContentRange,
    /// The head's other headers (never `Content-Range`).
    pub headers: HeaderMap,
}

/// What [`PatchDecoder::decode`] found in its input.
///
/// ```
/// use bytes::Bytes;
/// use handoff_proto::byterange::{PatchDecoder, PatchEvent};
///
/// let mut decoder = PatchDecoder::new();
/// let mut input = Bytes::from_static(b"Content-Range: bytes 0-1/2\r\n\r\nab");
/// assert!(matches!(decoder.decode(&mut input), Ok(Some(PatchEvent::Head(_)))));
/// assert_eq!(decoder.decode(&mut input), Ok(Some(PatchEvent::Data(Bytes::from_static(b"ab")))));
/// assert_eq!(decoder.decode(&mut input), Ok(None));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchEvent {
    /// The head is complete. Comes exactly once, before any data.
    Head(PatchHead),
    /// The next data bytes, never empty, a zero-copy slice of the input.
    Data(Bytes),
}

/// A streaming decoder of `message/byterange` patch bodies. See the [module docs](self).
///
/// Feed it the body chunk by chunk: [`decode`](Self::decode) consumes from the chunk and
/// returns one [`PatchEvent`] at a time, or `Ok(None)` once the chunk is used up. When the
/// body ends, [`finish`](Self::finish) says whether the patch was complete. After an
/// error the decoder keeps returning that error.
///
/// ```
/// use bytes::Bytes;
/// use handoff_proto::byterange::{ByterangeError, PatchDecoder};
///
/// let mut decoder = PatchDecoder::new();
/// let mut input = Bytes::from_static(b"Content-Range: bytes 0-9/10\r\n\r\n01234");
/// while decoder.decode(&mut input).unwrap().is_some() {}
/// assert_eq!(decoder.finish(), Err(ByterangeError::ShortData { expected: 10, received: 5 }));
/// ```
#[derive(Debug, Clone)]
pub struct PatchDecoder {
    max_head_len: usize,
    state: State,
}

#[derive(Debug, Clone)]
enum State {
    /// Collecting the head; holds every head byte seen so far.
    Head(BytesMut),
    /// Passing data through.
    Data { expected: u64, remaining: u64 },
    /// A previous call failed.
    Failed(ByterangeError),
}

impl Default for PatchDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl PatchDecoder {
    /// A decoder whose head may be up to [`DEFAULT_MAX_HEAD_LEN`] bytes long.
    ///
    /// ```
    /// use handoff_proto::byterange::PatchDecoder;
    ///
    /// assert_eq!(PatchDecoder::new().remaining(), None);
    /// ```
    pub fn new() -> Self {
        Self::with_max_head_len(DEFAULT_MAX_HEAD_LEN)
    }

    /// A decoder whose head (header lines and the blank line) may be up to `max` bytes long;
    /// a longer head is an error.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use handoff_proto::byterange::{ByterangeError, PatchDecoder};
    ///
    /// let mut decoder = PatchDecoder::with_max_head_len(16);
    /// let mut input = Bytes::from_static(b"Content-Range: bytes 0-0/1\r\n\r\nx");
    /// assert_eq!(decoder.decode(&mut input), Err(ByterangeError::HeadTooLarge { max: 16 }));
    /// ```
    pub fn with_max_head_len(max: usize) -> Self {
        Self {
            max_head_len: max,
            state: State::Head(BytesMut::new()),
        }
    }

    /// The bound on the head length this decoder enforces.
    ///
    /// ```
    /// use handoff_proto::byterange::PatchDecoder;
    ///
    /// assert_eq!(PatchDecoder::with_max_head_len(100).max_head_len(), 100);
    /// ```
    pub fn max_head_len(&self) -> usize {
        self.max_head_len
    }

    /// The number of data bytes still expected, once the head is decoded.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use handoff_proto::byterange::PatchDecoder;
    ///
    /// let mut decoder = PatchDecoder::new();
    /// let mut input = Bytes::from_static(b"Content-Range: bytes 0-3/4\r\n\r\nab");
    /// while decoder.decode(&mut input).unwrap().is_some() {}
    /// assert_eq!(decoder.remaining(), Some(2));
    /// ```
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Data { remaining, .. } => Some(remaining),
            _ => None,
        }
    }

    /// Whether the head and every announced data byte have been decoded.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use handoff_proto::byterange::PatchDecoder;
    ///
    /// let mut decoder = PatchDecoder::new();
    /// let mut input = Bytes::from_static(b"Content-Range: bytes 0-1/2\r\n\r\nab");
    /// assert!(!decoder.is_complete());
    /// while decoder.decode(&mut input).unwrap().is_some() {}
    /// assert!(decoder.is_complete());
    /// ```
    pub fn is_complete(&self) -> bool {
        self.remaining() == Some(0)
    }

    /// Decodes from the front of `input`, advancing it past what was consumed.
    ///
    /// Returns the next event, or `Ok(None)` when `input` has been used up (head bytes are
    /// kept inside the decoder) and more is needed. Data after the announced length is an
    /// error ([`ByterangeError::TooMuchData`]), reported as soon as a chunk holding such
    /// bytes is seen, before any of that chunk's data is returned.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use handoff_proto::byterange::{ByterangeError, PatchDecoder, PatchEvent};
    ///
    /// let mut decoder = PatchDecoder::new();
    /// let mut input = Bytes::from_static(b"Content-Range: bytes 0-1/*\r\n");
    /// assert_eq!(decoder.decode(&mut input), Ok(None));
    /// assert!(input.is_empty());
    ///
    /// let mut input = Bytes::from_static(b"\r\nabc");
    /// assert!(matches!(decoder.decode(&mut input), Ok(Some(PatchEvent::Head(_)))));
    /// assert_eq!(decoder.decode(&mut input), Err(ByterangeError::TooMuchData { expected: 2 }));
    /// ```
    pub fn decode(&mut self, input: &mut Bytes) -> Result<Option<PatchEvent>, ByterangeError> {
        let result = match &mut self.state {
            State::Failed(err) => return Err(err.clone()),
            State::Head(_) => self.decode_head(input),
            State::Data {
                expected,
                remaining,
            } => {
                if input.is_empty() {
                    Ok(None)
                } else if input.len() as u64 > *remaining {
                    Err(ByterangeError::TooMuchData {
                        expected: *expected,
                    })
                } else {
                    *remaining -= input.len() as u64;
                    Ok(Some(PatchEvent::Data(input.split_to(input.len()))))
                }
            }
        };
        if let Err(err) = &result {
            self.state = State::Failed(err.clone());
        }
        result
    }

    /// Checks, once the body has ended, that the head completed and that every announced
    /// data byte arrived.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use handoff_proto::byterange::{ByterangeError, PatchDecoder};
    ///
    /// let mut decoder = PatchDecoder::new();
    /// decoder.decode(&mut Bytes::from_static(b"Content-Range: bytes 0-1/2\r\n")).unwrap();
    /// assert_eq!(decoder.finish(), Err(ByterangeError::IncompleteHead { buffered: 28 }));
    /// ```
    pub fn finish(&self) -> Result<(), ByterangeError> {
        match &self.state {
            State::Failed(err) => Err(err.clone()),
            State::Head(buf) => Err(ByterangeError::IncompleteHead {
                buffered: buf.len(),
            }),
            State::Data { remaining: 0, .. } => Ok(()),
            State::Data {
                expected,
                remaining,
            } => Err(ByterangeError::ShortData {
                expected: *expected,
                received: expected - remaining,
            }),
        }
    }

    /// Moves head bytes from `input` into the head buffer until the blank line that ends
    /// the head, then parses it. Never buffers past `max_head_len`.
    fn decode_head(&mut self, input: &mut Bytes) -> Result<Option<PatchEvent>, ByterangeError> {
        let State::Head(buf) = &mut self.state else {
            return Ok(None);
        };
        let max = self.max_head_len;
        let mut i = 0;
        // Only look as far as the head may reach.
        while i < input.len() && buf.len() + i < max {
            if input[i] == b'\n' && ends_blank_line(buf, &input[..i]) {
                buf.extend_from_slice(&input[..=i]);
                input.advance(i + 1);
                i = 0;
                let Some((head, used)) = parse_head(buf)? else {
                    // Cannot happen with httparse's grammar; keep reading to be safe.
                    continue;
                };
                if used < buf.len() {
                    // Also defensive: give bytes after the parsed head back as data.
                    let mut rest = BytesMut::from(&buf[used..]);
                    rest.extend_from_slice(input);
                    *input = rest.freeze();
                }
                let expected = head.content_range.len();
                self.state = State::Data {
                    expected,
                    remaining: expected,
                };
                return Ok(Some(PatchEvent::Head(head)));
            }
            i += 1;
        }
        if i < input.len() {
            return Err(ByterangeError::HeadTooLarge { max });
        }
        buf.extend_from_slice(input);
        input.clear();
        Ok(None)
    }
}

/// Whether the `\n` that follows `buf` + `pending` ends an empty line, i.e. the head: it
/// is the first byte, or comes right after `\n`, or after a `\r` that starts a line.
fn ends_blank_line(buf: &[u8], pending: &[u8]) -> bool {
    let at = |back: usize| -> Option<u8> {
        let pos = (buf.len() + pending.len()).checked_sub(back)?;
        Some(if pos < buf.len() {
            buf[pos]
        } else {
            pending[pos - buf.len()]
        })
    };
    matches!(
        (at(1), at(2)),
        (None, _) | (Some(b'\n'), _) | (Some(b'\r'), None | Some(b'\n'))
    )
}

/// Parses a complete head with httparse. `Ok(None)` if httparse wants more bytes.
fn parse_head(buf: &[u8]) -> Result<Option<(PatchHead, usize)>, ByterangeError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (used, parsed) = match httparse::parse_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(done)) => done,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ByterangeError::TooManyHeaders { max: MAX_HEADERS })
        }
        Err(err) => return Err(ByterangeError::InvalidHead(describe(err))),
    };
    let mut content_range = None;
    let mut headers = HeaderMap::with_capacity(parsed.len());
    for header in parsed {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| ByterangeError::InvalidHead("a header name is not a valid token"))?;
        let value = HeaderValue::from_bytes(header.value)
            .map_err(|_| ByterangeError::InvalidHead("a header value holds a control byte"))?;
        if name == CONTENT_RANGE {
            if content_range.is_some() {
                return Err(ByterangeError::DuplicateContentRange);
            }
            content_range =
                Some(ContentRange::try_from(&value).map_err(ByterangeError::ContentRange)?);
        } else {
            headers.append(name, value);
        }
    }
    let content_range = content_range.ok_or(ByterangeError::MissingContentRange)?;
    Ok(Some((
        PatchHead {
            content_range,
            headers,
        },
        used,
    )))
}

fn describe(err: httparse::Error) -> &'static str {
    match err {
        httparse::Error::HeaderName => {
            "invalid byte in a header name (or an obs-fold continuation line)"
        }
        httparse::Error::HeaderValue => "invalid byte in a header value",
        httparse::Error::NewLine => "a CR is not followed by LF",
        _ => "malformed header line",
    }
}

/// Writes the head of a patch: the `Content-Range` line, the `extra` headers (except any
/// `Content-Range` among them) and the blank line. The caller appends exactly
/// [`range.len()`](ContentRange::len) data bytes.
///
/// Keep `extra` small: a decoder rejects heads longer than its bound
/// ([`DEFAULT_MAX_HEAD_LEN`] by default) or with more than [`MAX_HEADERS`] lines.
///
/// ```
/// use handoff_proto::byterange::encode_head;
/// use handoff_proto::content_range::ContentRange;
/// use http::HeaderMap;
///
/// let mut extra = HeaderMap::new();
/// extra.insert("content-type", "application/octet-stream".parse().unwrap());
/// let head = encode_head(&ContentRange::new(0, 99, None).unwrap(), &extra);
/// assert_eq!(
///     &head[..],
///     b"Content-Range: bytes 0-99/*\r\ncontent-type: application/octet-stream\r\n\r\n",
/// );
/// ```
pub fn encode_head(range: &ContentRange, extra: &HeaderMap) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_slice(b"Content-Range: ");
    buf.put_slice(range.to_string().as_bytes());
    buf.put_slice(b"\r\n");
    for (name, value) in extra {
        if name == CONTENT_RANGE {
            continue;
        }
        buf.put_slice(name.as_str().as_bytes());
        buf.put_slice(b": ");
        buf.put_slice(value.as_bytes());
        buf.put_slice(b"\r\n");
    }
    buf.put_slice(b"\r\n");
    buf.freeze()
}

/// Why a patch body was rejected. [`Display`](fmt::Display) says what is wrong.
///
/// ```
/// use bytes::Bytes;
/// use handoff_proto::byterange::{ByterangeError, PatchDecoder};
///
/// let err = PatchDecoder::new()
///     .decode(&mut Bytes::from_static(b"Content-Type: text/plain\r\n\r\n"))
///     .unwrap_err();
/// assert_eq!(err, ByterangeError::MissingContentRange);
/// assert_eq!(err.to_string(), "invalid message/byterange patch: the head has no Content-Range");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ByterangeError {
    /// The head is longer than the decoder's bound.
    HeadTooLarge {
        /// The bound, in bytes.
        max: usize,
    },
    /// The head has more than [`MAX_HEADERS`] header lines.
    TooManyHeaders {
        /// The bound.
        max: usize,
    },
    /// A header line is malformed; the text says how.
    InvalidHead(&'static str),
    /// The head has no `Content-Range`.
    MissingContentRange,
    /// The head has more than one `Content-Range`.
    DuplicateContentRange,
    /// The `Content-Range` is invalid.
    ContentRange(ContentRangeError),
    /// More data bytes than the `Content-Range` announces.
    TooMuchData {
        /// The announced number of data bytes.
        expected: u64,
    },
    /// The body ended before the head did.
    IncompleteHead {
        /// The head bytes received.
        buffered: usize,
    },
    /// The body ended before every announced data byte arrived.
    ShortData {
        /// The announced number of data bytes.
        expected: u64,
        /// The data bytes received.
        received: u64,
    },
}

impl fmt::Display for ByterangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid message/byterange patch: ")?;
        match self {
            Self::HeadTooLarge { max } => {
                write!(f, "the head is longer than {max} bytes")
            }
            Self::TooManyHeaders { max } => {
                write!(f, "the head has more than {max} header lines")
            }
            Self::InvalidHead(what) => write!(f, "the head is malformed: {what}"),
            Self::MissingContentRange => f.write_str("the head has no Content-Range"),
            Self::DuplicateContentRange => f.write_str("the head has more than one Content-Range"),
            Self::ContentRange(err) => write!(f, "{err}"),
            Self::TooMuchData { expected } => write!(
                f,
                "the data is longer than the {expected} bytes its Content-Range announces"
            ),
            Self::IncompleteHead { buffered } => write!(
                f,
                "the body ended inside the head ({buffered} bytes, no empty line)"
            ),
            Self::ShortData { expected, received } => write!(
                f,
                "the body ended after {received} of the {expected} data bytes its \
                 Content-Range announces"
            ),
        }
    }
}

impl std::error::Error for ByterangeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::ContentRange(err) => Some(err),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `chunks` and collects the head, the data, and the first error if any.
    fn run(
        decoder: &mut PatchDecoder,
        chunks: &[&[u8]],
    ) -> (Option<PatchHead>, Vec<u8>, Option<ByterangeError>) {
        let (mut head, mut data) = (None, Vec::new());
        for chunk in chunks {
            let mut chunk = Bytes::copy_from_slice(chunk);
            loop {
                match decoder.decode(&mut chunk) {
                    Ok(Some(PatchEvent::Head(h))) => {
                        assert!(head.is_none(), "two heads");
                        head = Some(h);
                    }
                    Ok(Some(PatchEvent::Data(d))) => {
                        assert!(head.is_some(), "data before head");
                        assert!(!d.is_empty(), "empty data event");
                        data.extend_from_slice(&d);
                    }
                    Ok(None) => {
                        assert!(chunk.is_empty(), "Ok(None) with input left");
                        break;
                    }
                    Err(err) => return (head, data, Some(err)),
                }
            }
        }
        let err = decoder.finish().err();
        (head, data, err)
    }

    fn run_one(input: &[u8]) -> (Option<PatchHead>, Vec<u8>, Option<ByterangeError>) {
        run(&mut PatchDecoder::new(), &[input])
    }

    #[test]
    fn decodes_crlf_and_bare_lf() {
        for input in [
            &b"Content-Range: bytes 2-4/5\r\nX-A: 1\r\n\r\nabc"[..],
            b"Content-Range: bytes 2-4/5\nX-A: 1\n\nabc",
            b"Content-Range: bytes 2-4/5\r\nX-A: 1\n\r\nabc",
            b"X-A: 1\r\ncontent-range: 2-4/5\r\n\nabc",
        ] {
            let (head, data, err) = run_one(input);
            assert_eq!(err, None, "{input:?}");
            let head = head.unwrap();
            assert_eq!(
                head.content_range,
                ContentRange::new(2, 4, Some(5)).unwrap()
            );
            assert_eq!(head.headers.len(), 1);
            assert_eq!(head.headers["x-a"], "1");
            assert_eq!(data, b"abc");
        }
    }

    #[test]
    fn data_is_zero_copy() {
        let input = Bytes::from_static(b"Content-Range: 0-3/*\r\n\r\nabcd");
        let mut chunk = input.clone();
        let mut decoder = PatchDecoder::new();
        assert!(matches!(
            decoder.decode(&mut chunk),
            Ok(Some(PatchEvent::Head(_)))
        ));
        let Ok(Some(PatchEvent::Data(data))) = decoder.decode(&mut chunk) else {
            panic!("expected data");
        };
        assert_eq!(data.as_ptr(), input[input.len() - 4..].as_ptr());
    }

    #[test]
    fn head_errors() {
        let cases: &[(&[u8], ByterangeError, &str)] = &[
            (
                b"\r\nabc",
                ByterangeError::MissingContentRange,
                "no Content-Range",
            ),
            (
                b"\nabc",
                ByterangeError::MissingContentRange,
                "no Content-Range",
            ),
            (
                b"Content-Range: bytes 0-0/1\r\nContent-Range: bytes 0-0/1\r\n\r\nx",
                ByterangeError::DuplicateContentRange,
                "more than one Content-Range",
            ),
            (
                b"Content-Range: bytes */1\r\n\r\n",
                ByterangeError::ContentRange(ContentRangeError::UnsatisfiedRange),
                "unsatisfied-range",
            ),
            (
                b"Content-Range: bytes 3-2/9\r\n\r\n",
                ByterangeError::ContentRange(ContentRangeError::FirstAfterLast {
                    first: 3,
                    last: 2,
                }),
                "first byte position 3",
            ),
            (
                b"Content-Range: bytes 0-0/1\r\n folded\r\n\r\nx",
                ByterangeError::InvalidHead(
                    "invalid byte in a header name (or an obs-fold continuation line)",
                ),
                "obs-fold",
            ),
            (
                b"Bad Name: x\r\n\r\n",
                ByterangeError::InvalidHead(
                    "invalid byte in a header name (or an obs-fold continuation line)",
                ),
                "header name",
            ),
            (
                b"X: a\x01b\r\n\r\n",
                ByterangeError::InvalidHead("invalid byte in a header value"),
                "header value",
            ),
            (
                b"X: a\rb\r\n\r\n",
                ByterangeError::InvalidHead("invalid byte in a header value"),
                "malformed",
            ),
            (
                b"Content-Range: bytes 0-1/2\r\n\r\nabc",
                ByterangeError::TooMuchData { expected: 2 },
                "longer than the 2 bytes",
            ),
            (
                b"Content-Range: bytes 0-4/5\r\n\r\nab",
                ByterangeError::ShortData {
                    expected: 5,
                    received: 2,
                },
                "after 2 of the 5 data bytes",
            ),
            (
                b"Content-Range: bytes 0-4/5\r\n",
                ByterangeError::IncompleteHead { buffered: 28 },
                "ended inside the head",
            ),
            (
                b"",
                ByterangeError::IncompleteHead { buffered: 0 },
                "no empty line",
            ),
        ];
        for (input, expected, message) in cases {
            let (_, _, err) = run_one(input);
            let err = err.unwrap_or_else(|| panic!("no error for {input:?}"));
            assert_eq!(&err, expected, "input {input:?}");
            let shown = err.to_string();
            assert!(
                shown.starts_with("invalid message/byterange patch: "),
                "{shown}"
            );
            assert!(shown.contains(message), "input {input:?}: {shown}");
        }
    }

    #[test]
    fn too_much_data_in_a_later_chunk() {
        let mut decoder = PatchDecoder::new();
        let (head, data, err) = run(
            &mut decoder,
            &[b"Content-Range: bytes 0-1/2\r\n\r\na", b"b", b"c"],
        );
        assert!(head.is_some());
        assert_eq!(data, b"ab");
        assert_eq!(err, Some(ByterangeError::TooMuchData { expected: 2 }));
        // The decoder stays failed.
        assert_eq!(
            decoder.decode(&mut Bytes::new()),
            Err(ByterangeError::TooMuchData { expected: 2 })
        );
        assert_eq!(
            decoder.finish(),
            Err(ByterangeError::TooMuchData { expected: 2 })
        );
    }

    #[test]
    fn too_many_headers() {
        let mut head = String::from("Content-Range: bytes 0-0/1\r\n");
        for i in 0..MAX_HEADERS - 1 {
            head.push_str(&format!("x-{i}: v\r\n"));
        }
        let ok = format!("{head}\r\nz");
        assert_eq!(run_one(ok.as_bytes()).2, None);
        let too_many = format!("{head}x-last: v\r\n\r\nz");
        let err = run_one(too_many.as_bytes()).2.unwrap();
        assert_eq!(err, ByterangeError::TooManyHeaders { max: MAX_HEADERS });
        assert!(err.to_string().contains("more than 32 header lines"));
    }

    #[test]
    fn head_bound_is_inclusive() {
        let input = b"Content-Range: bytes 0-0/1\r\n\r\nx";
        let head_len = input.len() - 1;
        assert_eq!(
            run(&mut PatchDecoder::with_max_head_len(head_len), &[input]).2,
            None
        );
        let err = run(&mut PatchDecoder::with_max_head_len(head_len - 1), &[input]).2;
        assert_eq!(
            err,
            Some(ByterangeError::HeadTooLarge { max: head_len - 1 })
        );
        // Also when the head arrives byte by byte.
        let chunks: Vec<&[u8]> = input.chunks(1).collect();
        let err = run(&mut PatchDecoder::with_max_head_len(head_len - 1), &chunks).2;
        assert_eq!(
            err,
            Some(ByterangeError::HeadTooLarge { max: head_len - 1 })
        );
        assert_eq!(
            run(&mut PatchDecoder::with_max_head_len(head_len), &chunks).2,
            None
        );
    }

    #[test]
    fn head_never_buffers_past_the_bound() {
        let mut decoder = PatchDecoder::with_max_head_len(10);
        let mut big = Bytes::from(vec![b'a'; 1 << 20]);
        assert_eq!(
            decoder.decode(&mut big),
            Err(ByterangeError::HeadTooLarge { max: 10 })
        );
        assert_eq!(
            ByterangeError::HeadTooLarge { max: 10 }.to_string(),
            "invalid message/byterange patch: the head is longer than 10 bytes"
        );
    }

    #[test]
    fn encode_head_skips_content_range_in_extra() {
        let mut extra = HeaderMap::new();
        extra.insert(CONTENT_RANGE, HeaderValue::from_static("bytes 9-9/10"));
        extra.append("x-a", HeaderValue::from_static("1"));
        extra.append("x-a", HeaderValue::from_static("2"));
        let range = ContentRange::new(0, 0, None).unwrap();
        let head = encode_head(&range, &extra);
        assert_eq!(
            &head[..],
            b"Content-Range: bytes 0-0/*\r\nx-a: 1\r\nx-a: 2\r\n\r\n"
        );
        let mut input = head;
        let Ok(Some(PatchEvent::Head(decoded))) = PatchDecoder::new().decode(&mut input) else {
            panic!("expected a head");
        };
        assert_eq!(decoded.content_range, range);
        let values: Vec<_> = decoded.headers.get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
    }

    #[test]
    fn error_source_is_the_content_range_error() {
        use std::error::Error as _;
        let err = ByterangeError::ContentRange(ContentRangeError::Empty);
        assert!(err.source().is_some());
        assert!(ByterangeError::MissingContentRange.source().is_none());
    }

    fn any_range(max_len: u64) -> impl Strategy<Value = ContentRange> {
        (0..u64::MAX / 2, 1..=max_len, any::<Option<u64>>()).prop_map(|(first, len, extra)| {
            let last = first + len - 1;
            let complete = extra.map(|e| last + 1 + e % 1000);
            ContentRange::new(first, last, complete).unwrap()
        })
    }

    fn any_extra() -> impl Strategy<Value = HeaderMap> {
        proptest::collection::vec(("x-[a-z0-9-]{0,12}", "[!-~]([ -~]{0,20}[!-~])?"), 0..8).prop_map(
            |pairs| {
                let mut map = HeaderMap::new();
                for (name, value) in pairs {
                    map.append(
                        HeaderName::from_bytes(name.as_bytes()).unwrap(),
                        HeaderValue::from_str(&value).unwrap(),
                    );
                }
                map
            },
        )
    }

    /// Splits `bytes` at the given (sorted, deduplicated) cut points.
    fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut chunks = Vec::new();
        let mut start = 0;
        for cut in cuts {
            chunks.push(&bytes[start..cut]);
            start = cut;
        }
        chunks.push(&bytes[start..]);
        chunks
    }

    fn patch(
        range: &ContentRange,
        extra: &HeaderMap,
        seed: u8,
        lf_only: bool,
    ) -> (Vec<u8>, Vec<u8>) {
        let data: Vec<u8> = (0..range.len())
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect();
        let mut bytes = encode_head(range, extra).to_vec();
        if lf_only {
            bytes.retain(|&b| b != b'\r');
        }
        bytes.extend_from_slice(&data);
        (bytes, data)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_split_decodes_the_same(
            range in any_range(600),
            extra in any_extra(),
            seed in any::<u8>(),
            lf_only in any::<bool>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
        ) {
            let (bytes, data) = patch(&range, &extra, seed, lf_only);
            let mut decoder = PatchDecoder::new();
            let (head, decoded, err) = run(&mut decoder, &split(&bytes, &cuts));
            prop_assert_eq!(err, None);
            prop_assert_eq!(head, Some(PatchHead { content_range: range, headers: extra }));
            prop_assert_eq!(decoded, data);
            prop_assert!(decoder.is_complete());
        }

        #[test]
        fn byte_by_byte_decodes_the_same(range in any_range(64), extra in any_extra()) {
            let (bytes, data) = patch(&range, &extra, 7, false);
            let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
            let (head, decoded, err) = run(&mut PatchDecoder::new(), &chunks);
            prop_assert_eq!(err, None);
            prop_assert_eq!(head.map(|h| h.content_range), Some(range));
            prop_assert_eq!(decoded, data);
        }

        #[test]
        fn extra_data_is_always_an_error(
            range in any_range(100),
            more in proptest::collection::vec(any::<u8>(), 1..50),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
        ) {
            let (mut bytes, _) = patch(&range, &HeaderMap::new(), 1, false);
            bytes.extend_from_slice(&more);
            let (head, decoded, err) = run(&mut PatchDecoder::new(), &split(&bytes, &cuts));
            prop_assert!(head.is_some());
            prop_assert!(decoded.len() as u64 <= range.len());
            prop_assert_eq!(err, Some(ByterangeError::TooMuchData { expected: range.len() }));
        }

        #[test]
        fn truncated_patches_fail_at_finish(
            range in any_range(100),
            keep in any::<usize>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
        ) {
            let (bytes, _) = patch(&range, &HeaderMap::new(), 2, false);
            let truncated = &bytes[..keep % bytes.len()];
            let (_, decoded, err) = run(&mut PatchDecoder::new(), &split(truncated, &cuts));
            let err = err.expect("a truncated patch is an error");
            prop_assert!(matches!(
                err,
                ByterangeError::IncompleteHead { .. } | ByterangeError::ShortData { .. }
            ), "unexpected error {:?}", err);
            if let ByterangeError::ShortData { expected, received } = err {
                prop_assert_eq!(expected, range.len());
                prop_assert_eq!(received, decoded.len() as u64);
            }
            prop_assert!(err.to_string().contains("the body ended"));
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
            cuts in proptest::collection::vec(any::<usize>(), 0..20),
            max in 0usize..300,
        ) {
            for mut decoder in [PatchDecoder::new(), PatchDecoder::with_max_head_len(max)] {
                let (_, data, err) = run(&mut decoder, &split(&bytes, &cuts));
                prop_assert!(data.len() <= bytes.len());
                if let Some(err) = err {
                    prop_assert!(err.to_string().len() > "invalid message/byterange patch: ".len());
                }
            }
        }

        #[test]
        fn arbitrary_heads_never_panic(
            lines in proptest::collection::vec(
                "(Content-Range|content-range|X-[a-z]{1,3}| x|)(:|: | :)?[ -~\t\u{80}]{0,20}(\r\n|\n|\r)",
                0..6,
            ),
            tail in proptest::collection::vec(any::<u8>(), 0..20),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
        ) {
            let mut bytes: Vec<u8> = lines.concat().into_bytes();
            bytes.extend_from_slice(b"\r\n");
            bytes.extend_from_slice(&tail);
            let (one, one_data, one_err) = run_one(&bytes);
            let (split_head, split_data, split_err) = run(&mut PatchDecoder::new(), &split(&bytes, &cuts));
            // Chunking changes nothing about a head, and the data seen before any error agrees.
            prop_assert_eq!(one, split_head);
            let n = one_data.len().min(split_data.len());
            prop_assert_eq!(&one_data[..n], &split_data[..n]);
            if let Some(err) = one_err.or(split_err) {
                prop_assert!(!err.to_string().is_empty());
            }
        }
    }
}
