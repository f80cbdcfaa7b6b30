//! Partial POST Replay: the `379` status, the echo header set and the replay counter.
//!
//! Implements the wire parts of `PROTOCOL.md` part A (draft-frindell-httpbis-partial-post-replay-00):
//!
//! - §2.1: an origin that is shutting down answers a request whose body it has not fully
//!   received with [`STATUS_CODE`] `379` and the reason phrase [`REASON_PHRASE`].
//! - §2.1.1: every request header `Name: v` comes back as `Echo-Name: v`, and the request
//!   pseudo-headers come back as `Pseudo-Echo-Method`, `-Scheme`, `-Authority` and `-Path`
//!   ([`echo_headers`]); the proxy can turn them back into a request head ([`EchoedHead::from_echo`]).
//! - Part A, intermediary 5: the proxy marks a replayed request with `Partial-Post-Replay: N`
//!   ([`REPLAY_COUNT`], [`replay_count`], [`replay_count_value`]).
//!
//! ```
//! use handoff_proto::ppr::{self, EchoedHead};
//! use http::{HeaderMap, Method, Uri};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("content-length", "1048576".parse().unwrap());
//! let uri: Uri = "http://origin.internal/upload".parse().unwrap();
//!
//! // Origin side: build the 379's header set.
//! let echo = ppr::echo_headers(&Method::PUT, &uri, &headers);
//! assert_eq!(echo["echo-content-length"], "1048576");
//! assert_eq!(echo["pseudo-echo-authority"], "origin.internal");
//!
//! // Proxy side: read it back.
//! let head = EchoedHead::from_echo(&echo).unwrap();
//! assert_eq!(head.method, Method::PUT);
//! assert_eq!(head.uri, uri);
//! assert_eq!(head.headers, headers);
//! ```

use std::fmt;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, StatusCode, Uri};

/// The Partial POST Replay status code, `379` (`PROTOCOL.md` part C).
///
/// ```
/// assert_eq!(handoff_proto::ppr::STATUS_CODE, 379);
/// ```
pub const STATUS_CODE: u16 = 379;

/// The HTTP/1.1 reason phrase of a `379` (draft §2.1).
///
/// ```
/// assert_eq!(handoff_proto::ppr::REASON_PHRASE, "Partial POST Replay");
/// ```
pub const REASON_PHRASE: &str = "Partial POST Replay";

/// The `379 Partial POST Replay` status as an [`http::StatusCode`].
///
/// ```
/// let status = handoff_proto::ppr::status();
/// assert_eq!(status.as_u16(), 379);
/// assert!(status.is_redirection());
/// ```
pub fn status() -> StatusCode {
    StatusCode::from_u16(STATUS_CODE).expect("379 is within 100..=999")
}

/// Whether `status` is the Partial POST Replay status.
///
/// ```
/// use http::StatusCode;
/// assert!(handoff_proto::ppr::is_replay_status(handoff_proto::ppr::status()));
/// assert!(!handoff_proto::ppr::is_replay_status(StatusCode::OK));
/// ```
pub fn is_replay_status(status: StatusCode) -> bool {
    status.as_u16() == STATUS_CODE
}

/// The prefix of an echoed request header (draft §2.1.1).
///
/// ```
/// assert_eq!(handoff_proto::ppr::ECHO_PREFIX, "echo-");
/// ```
pub const ECHO_PREFIX: &str = "echo-";

/// The echo of the request's `:method` pseudo-header.
///
/// ```
/// assert_eq!(handoff_proto::ppr::PSEUDO_ECHO_METHOD, "pseudo-echo-method");
/// ```
pub const PSEUDO_ECHO_METHOD: HeaderName = HeaderName::from_static("pseudo-echo-method");

/// The echo of the request's `:scheme` pseudo-header.
///
/// ```
/// assert_eq!(handoff_proto::ppr::PSEUDO_ECHO_SCHEME, "pseudo-echo-scheme");
/// ```
pub const PSEUDO_ECHO_SCHEME: HeaderName = HeaderName::from_static("pseudo-echo-scheme");

/// The echo of the request's `:authority` pseudo-header.
///
/// ```
/// assert_eq!(handoff_proto::ppr::PSEUDO_ECHO_AUTHORITY, "pseudo-echo-authority");
/// ```
pub const PSEUDO_ECHO_AUTHORITY: HeaderName = HeaderName::from_static("pseudo-echo-authority");

/// The echo of the request's `:path` pseudo-header (path and query).
///
/// ```
/// assert_eq!(handoff_proto::ppr::PSEUDO_ECHO_PATH, "pseudo-echo-path");
/// ```
pub const PSEUDO_ECHO_PATH: HeaderName = HeaderName::from_static("pseudo-echo-path");

/// `Partial-Post-Replay: N`, the replay count a proxy puts on a replayed request
/// (`PROTOCOL.md` part A, intermediary 5).
///
/// ```
/// assert_eq!(handoff_proto::ppr::REPLAY_COUNT, "partial-post-replay");
/// ```
pub const REPLAY_COUNT: HeaderName = HeaderName::from_static("partial-post-replay");

/// Builds the echo header set of a `379` from a request head (draft §2.1.1).
///
/// Every header becomes `Echo-<name>` with the same value, in order, repeated fields
/// included. The method is always echoed; scheme, authority and path only when the
/// request URI has them (an HTTP/1.1 origin-form request has no scheme or authority: its
/// `Host` header comes back as `Echo-Host`).
///
/// ```
/// use http::{HeaderMap, Method, Uri};
///
/// let mut headers = HeaderMap::new();
/// headers.append("x-tag", "a".parse().unwrap());
/// headers.append("x-tag", "b".parse().unwrap());
/// let echo = handoff_proto::ppr::echo_headers(&Method::POST, &Uri::from_static("/up"), &headers);
/// let tags: Vec<_> = echo.get_all("echo-x-tag").iter().collect();
/// assert_eq!(tags, ["a", "b"]);
/// assert_eq!(echo["pseudo-echo-method"], "POST");
/// assert!(echo.get("pseudo-echo-scheme").is_none());
/// ```
pub fn echo_headers(method: &Method, uri: &Uri, headers: &HeaderMap) -> HeaderMap {
    let mut echo = HeaderMap::with_capacity(headers.len() + 4);
    echo.insert(PSEUDO_ECHO_METHOD, pseudo_value(method.as_str()));
    if let Some(scheme) = uri.scheme_str() {
        echo.insert(PSEUDO_ECHO_SCHEME, pseudo_value(scheme));
    }
    if let Some(authority) = uri.authority() {
        echo.insert(PSEUDO_ECHO_AUTHORITY, pseudo_value(authority.as_str()));
    }
    if let Some(path) = uri.path_and_query() {
        echo.insert(PSEUDO_ECHO_PATH, pseudo_value(path.as_str()));
    }
    for (name, value) in headers {
        echo.append(echo_name(name), value.clone());
    }
    echo
}

/// `Echo-<name>`. A header name plus a five-byte ASCII prefix is still a valid name.
fn echo_name(name: &HeaderName) -> HeaderName {
    let mut echoed = String::with_capacity(ECHO_PREFIX.len() + name.as_str().len());
    echoed.push_str(ECHO_PREFIX);
    echoed.push_str(name.as_str());
    HeaderName::try_from(echoed).expect("a valid header name with a token prefix is valid")
}

/// Methods, schemes, authorities and paths that `http` accepted are visible ASCII.
fn pseudo_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).expect("request pseudo-header values are visible ASCII")
}

/// A request head read back from a `379`'s echo headers (draft §2.1.1, the proxy side).
///
/// A proxy that kept its own copy of the request head should replay from that copy (it
/// cannot be forged by the origin); this type serves proxies that did not, and checks.
///
/// ```
/// use handoff_proto::ppr::EchoedHead;
/// use http::HeaderMap;
///
/// let mut echo = HeaderMap::new();
/// echo.insert("pseudo-echo-method", "POST".parse().unwrap());
/// echo.insert("pseudo-echo-path", "/upload".parse().unwrap());
/// echo.insert("echo-host", "example.com".parse().unwrap());
/// echo.insert("content-type", "text/plain".parse().unwrap()); // the 379's own header: ignored
/// let head = EchoedHead::from_echo(&echo).unwrap();
/// assert_eq!(head.uri, "/upload");
/// assert_eq!(head.headers.len(), 1);
/// assert_eq!(head.headers["host"], "example.com");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoedHead {
    /// From `Pseudo-Echo-Method`.
    pub method: Method,
    /// From `Pseudo-Echo-Scheme`, `Pseudo-Echo-Authority` and `Pseudo-Echo-Path`.
    pub uri: Uri,
    /// Every `Echo-*` header with its prefix removed, in order.
    pub headers: HeaderMap,
}

impl EchoedHead {
    /// Rebuilds a request head from the headers of a `379` response.
    ///
    /// Headers without an echo prefix (the `379`'s own headers) are ignored. Fails when the
    /// method is missing, a pseudo-header is repeated or malformed, a scheme comes without
    /// an authority, or an `Echo-` header has an empty name.
    ///
    /// ```
    /// use handoff_proto::ppr::{EchoError, EchoedHead};
    /// use http::HeaderMap;
    ///
    /// let err = EchoedHead::from_echo(&HeaderMap::new()).unwrap_err();
    /// assert_eq!(err, EchoError::MissingMethod);
    /// assert_eq!(err.to_string(), "the echo has no Pseudo-Echo-Method header");
    /// ```
    pub fn from_echo(echo: &HeaderMap) -> Result<Self, EchoError> {
        let method = single(echo, &PSEUDO_ECHO_METHOD)?.ok_or(EchoError::MissingMethod)?;
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| EchoError::Invalid(PSEUDO_ECHO_METHOD))?;
        let uri = echoed_uri(echo)?;
        let mut headers = HeaderMap::new();
        for (name, value) in echo {
            if let Some(original) = name.as_str().strip_prefix(ECHO_PREFIX) {
                let original = HeaderName::from_bytes(original.as_bytes())
                    .map_err(|_| EchoError::EmptyEchoName)?;
                headers.append(original, value.clone());
            }
        }
        Ok(EchoedHead {
            method,
            uri,
            headers,
        })
    }
}

fn echoed_uri(echo: &HeaderMap) -> Result<Uri, EchoError> {
    let scheme = single(echo, &PSEUDO_ECHO_SCHEME)?
        .map(|v| Scheme::try_from(v.as_bytes()).map_err(|_| EchoError::Invalid(PSEUDO_ECHO_SCHEME)))
        .transpose()?;
    let authority = single(echo, &PSEUDO_ECHO_AUTHORITY)?
        .map(|v| {
            Authority::try_from(v.as_bytes()).map_err(|_| EchoError::Invalid(PSEUDO_ECHO_AUTHORITY))
        })
        .transpose()?;
    let path = single(echo, &PSEUDO_ECHO_PATH)?
        .map(|v| {
            PathAndQuery::try_from(v.as_bytes()).map_err(|_| EchoError::Invalid(PSEUDO_ECHO_PATH))
        })
        .transpose()?;
    let mut builder = Uri::builder();
    match (scheme, authority) {
        (Some(scheme), Some(authority)) => builder = builder.scheme(scheme).authority(authority),
        (None, Some(authority)) => builder = builder.authority(authority),
        (Some(_), None) => return Err(EchoError::SchemeWithoutAuthority),
        (None, None) => {}
    }
    builder = builder.path_and_query(path.unwrap_or_else(|| PathAndQuery::from_static("/")));
    builder
        .build()
        .map_err(|_| EchoError::Invalid(PSEUDO_ECHO_PATH))
}

fn single<'a>(
    echo: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a HeaderValue>, EchoError> {
    let mut values = echo.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(EchoError::Repeated(name.clone()));
    }
    Ok(first)
}

/// Why a `379`'s echo headers could not be turned back into a request head.
///
/// ```
/// use handoff_proto::ppr::{EchoError, EchoedHead};
/// use http::HeaderMap;
///
/// let mut echo = HeaderMap::new();
/// echo.insert("pseudo-echo-method", "GET".parse().unwrap());
/// echo.insert("pseudo-echo-scheme", "https".parse().unwrap());
/// assert_eq!(EchoedHead::from_echo(&echo), Err(EchoError::SchemeWithoutAuthority));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EchoError {
    /// No `Pseudo-Echo-Method`: every request has a method.
    MissingMethod,
    /// A pseudo-echo header appears more than once.
    Repeated(HeaderName),
    /// A pseudo-echo header's value is not a valid method, scheme, authority or path.
    Invalid(HeaderName),
    /// `Pseudo-Echo-Scheme` without `Pseudo-Echo-Authority`.
    SchemeWithoutAuthority,
    /// A header named just `Echo-`.
    EmptyEchoName,
}

impl fmt::Display for EchoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EchoError::MissingMethod => f.write_str("the echo has no Pseudo-Echo-Method header"),
            EchoError::Repeated(name) => write!(f, "the echo repeats the {name} header"),
            EchoError::Invalid(name) => write!(f, "the echo's {name} header is malformed"),
            EchoError::SchemeWithoutAuthority => f.write_str(
                "the echo has a Pseudo-Echo-Scheme header but no Pseudo-Echo-Authority header",
            ),
            EchoError::EmptyEchoName => f.write_str("the echo has a header named just Echo-"),
        }
    }
}

impl std::error::Error for EchoError {}

/// The `Partial-Post-Replay` value for replay number `count` (1 for the first replay).
///
/// ```
/// assert_eq!(handoff_proto::ppr::replay_count_value(2), "2");
/// ```
pub fn replay_count_value(count: u32) -> HeaderValue {
    HeaderValue::from(count)
}

/// Reads `Partial-Post-Replay` from a request's headers: `Ok(None)` when absent.
///
/// ```
/// use handoff_proto::ppr::{replay_count, ReplayCountError};
/// use http::HeaderMap;
///
/// let mut headers = HeaderMap::new();
/// assert_eq!(replay_count(&headers), Ok(None));
/// headers.insert("partial-post-replay", "3".parse().unwrap());
/// assert_eq!(replay_count(&headers), Ok(Some(3)));
/// headers.insert("partial-post-replay", "three".parse().unwrap());
/// assert_eq!(replay_count(&headers), Err(ReplayCountError::Malformed));
/// ```
pub fn replay_count(headers: &HeaderMap) -> Result<Option<u32>, ReplayCountError> {
    let mut values = headers.get_all(REPLAY_COUNT).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ReplayCountError::Repeated);
    }
    let digits = value.as_bytes();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ReplayCountError::Malformed);
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Some)
        .ok_or(ReplayCountError::Malformed)
}

/// Why a `Partial-Post-Replay` header could not be read.
///
/// ```
/// use handoff_proto::ppr::ReplayCountError;
/// assert_eq!(
///     ReplayCountError::Malformed.to_string(),
///     "Partial-Post-Replay is not a decimal count below 2^32"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayCountError {
    /// The header appears more than once.
    Repeated,
    /// The value is not a decimal number that fits in a `u32`.
    Malformed,
}

impl fmt::Display for ReplayCountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayCountError::Repeated => f.write_str("Partial-Post-Replay appears more than once"),
            ReplayCountError::Malformed => {
                f.write_str("Partial-Post-Replay is not a decimal count below 2^32")
            }
        }
    }
}

impl std::error::Error for ReplayCountError {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header_name() -> impl Strategy<Value = HeaderName> {
        "[a-z][a-z0-9-]{0,20}".prop_map(|s| HeaderName::try_from(s).unwrap())
    }

    fn header_value() -> impl Strategy<Value = HeaderValue> {
        proptest::collection::vec(0x20u8..0x7f, 0..40)
            .prop_map(|v| HeaderValue::from_bytes(&v).unwrap())
    }

    fn request_uri() -> impl Strategy<Value = Uri> {
        prop_oneof![
            "/[a-z0-9/]{0,20}(\\?[a-z0-9=&]{0,10})?".prop_map(|p| p.parse::<Uri>().unwrap()),
            (
                "(http|https)",
                "[a-z]{1,10}(\\.[a-z]{1,5})?(:[1-9][0-9]{0,3})?",
                "/[a-z0-9/]{0,20}"
            )
                .prop_map(|(s, a, p)| format!("{s}://{a}{p}").parse::<Uri>().unwrap()),
        ]
    }

    fn method() -> impl Strategy<Value = Method> {
        prop_oneof![
            Just(Method::POST),
            Just(Method::PUT),
            Just(Method::PATCH),
            "[A-Z]{1,10}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn echo_round_trips(
            method in method(),
            uri in request_uri(),
            headers in proptest::collection::vec((header_name(), header_value()), 0..12),
        ) {
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                map.append(name, value);
            }
            let echo = echo_headers(&method, &uri, &map);
            let head = EchoedHead::from_echo(&echo).unwrap();
            prop_assert_eq!(head.method, method);
            prop_assert_eq!(head.uri, uri);
            prop_assert_eq!(head.headers, map);
        }

        #[test]
        fn arbitrary_echo_never_panics(
            headers in proptest::collection::vec(
                (
                    prop_oneof![
                        header_name(),
                        header_name().prop_map(|n| echo_name(&n)),
                        Just(PSEUDO_ECHO_METHOD),
                        Just(PSEUDO_ECHO_SCHEME),
                        Just(PSEUDO_ECHO_AUTHORITY),
                        Just(PSEUDO_ECHO_PATH),
                        Just(HeaderName::from_static("echo-")),
                    ],
                    proptest::collection::vec(any::<u8>(), 0..30)
                        .prop_filter_map("header value", |v| HeaderValue::from_bytes(&v).ok()),
                ),
                0..10,
            ),
        ) {
            let mut echo = HeaderMap::new();
            for (name, value) in headers {
                echo.append(name, value);
            }
            if let Err(err) = EchoedHead::from_echo(&echo) {
                prop_assert!(!err.to_string().is_empty());
            }
        }

        #[test]
        fn replay_count_round_trips(count in any::<u32>()) {
            let mut headers = HeaderMap::new();
            headers.insert(REPLAY_COUNT, replay_count_value(count));
            prop_assert_eq!(replay_count(&headers), Ok(Some(count)));
        }

        #[test]
        fn arbitrary_replay_count_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..30)) {
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                let mut headers = HeaderMap::new();
                headers.insert(REPLAY_COUNT, value);
                let _ = replay_count(&headers);
            }
        }
    }

    #[test]
    fn missing_parts_are_not_invented() {
        let echo = echo_headers(&Method::POST, &Uri::from_static("/"), &HeaderMap::new());
        assert_eq!(echo.len(), 2);
        assert!(echo.get(PSEUDO_ECHO_AUTHORITY).is_none());
        assert!(echo.get(PSEUDO_ECHO_SCHEME).is_none());
    }

    #[test]
    fn repeated_pseudo_header_is_an_error() {
        let mut echo = HeaderMap::new();
        echo.append(PSEUDO_ECHO_METHOD, HeaderValue::from_static("POST"));
        echo.append(PSEUDO_ECHO_METHOD, HeaderValue::from_static("PUT"));
        let err = EchoedHead::from_echo(&echo).unwrap_err();
        assert_eq!(err, EchoError::Repeated(PSEUDO_ECHO_METHOD));
        assert_eq!(
            err.to_string(),
            "the echo repeats the pseudo-echo-method header"
        );
    }

    #[test]
    fn malformed_pseudo_values_are_errors() {
        for (name, value) in [
            (PSEUDO_ECHO_METHOD, "PO ST"),
            (PSEUDO_ECHO_PATH, "no-slash with space"),
            (PSEUDO_ECHO_AUTHORITY, "a b"),
        ] {
            let mut echo = HeaderMap::new();
            echo.insert(PSEUDO_ECHO_METHOD, HeaderValue::from_static("POST"));
            echo.insert(name.clone(), HeaderValue::from_static(value));
            assert_eq!(EchoedHead::from_echo(&echo), Err(EchoError::Invalid(name)));
        }
    }

    #[test]
    fn empty_echo_name_is_an_error() {
        let mut echo = HeaderMap::new();
        echo.insert(PSEUDO_ECHO_METHOD, HeaderValue::from_static("POST"));
        echo.insert(
            HeaderName::from_static("echo-"),
            HeaderValue::from_static("x"),
        );
        assert_eq!(EchoedHead::from_echo(&echo), Err(EchoError::EmptyEchoName));
    }

    #[test]
    fn repeated_and_overflowing_counts_are_errors() {
        let mut headers = HeaderMap::new();
        headers.append(REPLAY_COUNT, replay_count_value(1));
        headers.append(REPLAY_COUNT, replay_count_value(2));
        assert_eq!(replay_count(&headers), Err(ReplayCountError::Repeated));
        headers.insert(REPLAY_COUNT, HeaderValue::from_static("4294967296"));
        assert_eq!(replay_count(&headers), Err(ReplayCountError::Malformed));
        headers.insert(REPLAY_COUNT, HeaderValue::from_static("+1"));
        assert_eq!(replay_count(&headers), Err(ReplayCountError::Malformed));
    }
}
