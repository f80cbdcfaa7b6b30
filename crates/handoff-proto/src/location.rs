//! The `Request-Content-Location` and `Response-Message-Location` response headers of
//! resumable requests (spec part B.2).
//!
//! A server that accepts `Prefer: resume` tells the client, in the `100 Continue` and in
//! the final response, where the request content lives (to `HEAD` and `PATCH` it after an
//! interruption, spec part B.3-4) and where the response message will be (to `GET` it
//! when the final response was lost, spec part B.5). Each header is one URI-reference
//! ([RFC 3986 §4.1]) resolved against the request URI ([RFC 3986 §5]).
//!
//! [`resolve`] does that resolution with the [`url`] crate after checking the reference
//! against the RFC 3986 grammar itself (the WHATWG URL parser behind `url` is lenient:
//! it would read `\` as `/` or drop tabs, which a header must not get away with).
//! [`Locations`] reads both headers from a response and writes them back.
//!
//! # What the result looks like
//!
//! - It is absolute (`http` or `https`, with a host), since a client sends requests to it.
//!   Any other scheme, or an `http` URI without a host, is an error
//!   ([RFC 9110 §4.2.1]). So is userinfo (`user@host`), which RFC 9110 §4.2.4 tells
//!   recipients of an untrusted reference to treat as an error.
//! - **The fragment is dropped**: a fragment is never sent in a request target and
//!   [`http::Uri`] cannot hold one (`#s` resolves to the base without its fragment).
//! - It is normalised the way the `url` crate normalises (WHATWG URL): lowercase scheme
//!   and host, no default port, dot segments removed (as RFC 3986 §5.2.4 requires), `'`
//!   in a query percent-encoded, an empty path written `/`.
//! - An empty reference is valid and means the request URI itself (minus its fragment).
//! - A scheme-relative `http:g` (RFC 3986 §5.4.2 "for backward compatibility") is
//!   rejected: an `http` URI needs `//host`.
//! - The result may name a different origin than the base; [`resolve`] does not forbid
//!   it. A client that attaches credentials should compare origins first.
//!
//! # Examples
//!
//! ```
//! use handoff_proto::location::{Locations, REQUEST_CONTENT_LOCATION, RESPONSE_MESSAGE_LOCATION};
//! use http::{HeaderMap, Uri};
//!
//! let request_uri: Uri = "https://example.com/uploads/new?x=1".parse().unwrap();
//! let mut headers = HeaderMap::new();
//! headers.insert(REQUEST_CONTENT_LOCATION, "/uploads/7f3a".parse().unwrap());
//! headers.insert(RESPONSE_MESSAGE_LOCATION, "../results/7f3a#top".parse().unwrap());
//!
//! let locations = Locations::from_headers(&headers, &request_uri).unwrap();
//! assert_eq!(locations.request_content.unwrap(), "https://example.com/uploads/7f3a");
//! assert_eq!(locations.response_message.unwrap(), "https://example.com/results/7f3a");
//! ```
//!
//! Errors name the header and say what is wrong:
//!
//! ```
//! use handoff_proto::location::{Locations, REQUEST_CONTENT_LOCATION};
//! use http::{HeaderMap, Uri};
//!
//! let base: Uri = "http://example.com/".parse().unwrap();
//! let mut headers = HeaderMap::new();
//! headers.insert(REQUEST_CONTENT_LOCATION, "\\\\evil.example/x".parse().unwrap());
//! let err = Locations::from_headers(&headers, &base).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "invalid Request-Content-Location header: not a URI-reference: '\\' is not allowed at byte 0"
//! );
//! ```
//!
//! [RFC 3986 §4.1]: https://www.rfc-editor.org/rfc/rfc3986#section-4.1
//! [RFC 3986 §5]: https://www.rfc-editor.org/rfc/rfc3986#section-5
//! [RFC 9110 §4.2.1]: https://www.rfc-editor.org/rfc/rfc9110#section-4.2.1

use std::fmt;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::Uri;
use url::Url;

/// The `Request-Content-Location` response header name (spec part B.2): where the
/// request content can be queried with `HEAD` and completed with `PATCH`.
///
/// ```
/// use handoff_proto::location::REQUEST_CONTENT_LOCATION;
///
/// assert_eq!(REQUEST_CONTENT_LOCATION.as_str(), "request-content-location");
/// ```
pub const REQUEST_CONTENT_LOCATION: HeaderName =
    HeaderName::from_static("request-content-location");

/// The `Response-Message-Location` response header name (spec part B.2): where the final
/// response can be fetched as `message/http` with `GET`.
///
/// ```
/// use handoff_proto::location::RESPONSE_MESSAGE_LOCATION;
///
/// assert_eq!(RESPONSE_MESSAGE_LOCATION.as_str(), "response-message-location");
/// ```
pub const RESPONSE_MESSAGE_LOCATION: HeaderName =
    HeaderName::from_static("response-message-location");

/// Resolves `reference` against `base` ([RFC 3986 §5](https://www.rfc-editor.org/rfc/rfc3986#section-5)).
///
/// `base` must be absolute (scheme and authority): on a server, rebuild it from the
/// request's `Host` and scheme, since a request target is usually just a path. The
/// reference must be a valid RFC 3986 URI-reference and the result an `http` or `https`
/// URI with a host and no userinfo; the fragment is dropped. See the
/// [module docs](self) for the normalisation applied. Base and result go through the
/// WHATWG URL parser of the `url` crate, which rejects a few hosts RFC 3986 allows (a
/// host ending in a number that is not an IPv4 address, an invalid `xn--` label): those
/// give an error too.
///
/// ```
/// use handoff_proto::location::resolve;
/// use http::Uri;
///
/// let base: Uri = "http://a/b/c/d;p?q".parse().unwrap();
/// assert_eq!(resolve(&base, "../g?y#s").unwrap(), "http://a/b/g?y");
/// assert_eq!(resolve(&base, "//other:8080/x").unwrap(), "http://other:8080/x");
///
/// let err = resolve(&base, "ftp://a/file").unwrap_err();
/// assert_eq!(err.to_string(), "resolved URI has scheme \"ftp\", expected http or https");
/// let relative: Uri = "/b/c".parse().unwrap();
/// let err = resolve(&relative, "g").unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "base URI \"/b/c\" is not absolute: it needs a scheme and an authority"
/// );
/// ```
pub fn resolve(base: &Uri, reference: &str) -> Result<Uri, LocationError> {
    check_reference(reference.as_bytes())?;
    join(&base_url(base)?, reference)
}

/// Checks that a header value is an RFC 3986 URI-reference and returns it as text.
///
/// ```
/// use handoff_proto::location::parse_reference;
/// use http::HeaderValue;
///
/// let value = HeaderValue::from_static("../results/1?a=b");
/// assert_eq!(parse_reference(&value).unwrap(), "../results/1?a=b");
///
/// let value = HeaderValue::from_static("/a b");
/// let err = parse_reference(&value).unwrap_err();
/// assert_eq!(err.to_string(), "not a URI-reference: a space is not allowed at byte 2");
/// ```
pub fn parse_reference(value: &HeaderValue) -> Result<&str, LocationError> {
    let bytes = value.as_bytes();
    check_reference(bytes)?;
    // `check_reference` admits ASCII only, so this cannot fail.
    std::str::from_utf8(bytes)
        .map_err(|_| LocationError::new(Kind::Reference(0, Problem::NotAscii)))
}

/// The two resumable-request locations of a response, resolved to absolute URIs
/// (spec part B.2). See the [module docs](self).
///
/// ```
/// use handoff_proto::location::Locations;
/// use http::HeaderMap;
///
/// let locations = Locations {
///     request_content: Some("https://example.com/uploads/1".parse().unwrap()),
///     response_message: None,
/// };
/// let mut headers = HeaderMap::new();
/// locations.insert_into(&mut headers);
/// assert_eq!(headers["request-content-location"], "https://example.com/uploads/1");
/// assert!(!headers.contains_key("response-message-location"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Locations {
    /// `Request-Content-Location`: the request content, for `HEAD` and `PATCH`.
    pub request_content: Option<Uri>,
    /// `Response-Message-Location`: the response message, for `GET` and `DELETE`.
    pub response_message: Option<Uri>,
}

impl Locations {
    /// Reads both headers from `headers`, resolving them against `base` (the request URI,
    /// absolute). An absent header gives `None`; a header present more than once, or not
    /// a valid reference, is an error naming the header.
    ///
    /// ```
    /// use handoff_proto::location::{Locations, RESPONSE_MESSAGE_LOCATION};
    /// use http::{HeaderMap, Uri};
    ///
    /// let base: Uri = "http://example.com/upload".parse().unwrap();
    /// let mut headers = HeaderMap::new();
    /// assert_eq!(Locations::from_headers(&headers, &base).unwrap(), Locations::default());
    ///
    /// headers.append(RESPONSE_MESSAGE_LOCATION, "/r/1".parse().unwrap());
    /// headers.append(RESPONSE_MESSAGE_LOCATION, "/r/2".parse().unwrap());
    /// let err = Locations::from_headers(&headers, &base).unwrap_err();
    /// assert_eq!(err.header(), Some("Response-Message-Location"));
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid Response-Message-Location header: present 2 times, expected at most one"
    /// );
    /// ```
    pub fn from_headers(headers: &HeaderMap, base: &Uri) -> Result<Self, LocationError> {
        Ok(Locations {
            request_content: read_one(headers, Field::RequestContent, base)?,
            response_message: read_one(headers, Field::ResponseMessage, base)?,
        })
    }

    /// Writes the locations that are `Some` into `headers`, as absolute URIs, replacing
    /// any field lines of the same name; a `None` leaves that header as it is.
    ///
    /// ```
    /// use handoff_proto::location::{Locations, RESPONSE_MESSAGE_LOCATION};
    /// use http::{HeaderMap, Uri};
    ///
    /// let base: Uri = "http://example.com/upload".parse().unwrap();
    /// let locations = Locations {
    ///     request_content: None,
    ///     response_message: Some("http://example.com/r/1".parse().unwrap()),
    /// };
    /// let mut headers = HeaderMap::new();
    /// headers.insert(RESPONSE_MESSAGE_LOCATION, "/old".parse().unwrap());
    /// locations.insert_into(&mut headers);
    /// assert_eq!(headers.get_all(RESPONSE_MESSAGE_LOCATION).iter().count(), 1);
    /// assert_eq!(Locations::from_headers(&headers, &base).unwrap(), locations);
    /// ```
    pub fn insert_into(&self, headers: &mut HeaderMap) {
        for (field, uri) in [
            (Field::RequestContent, &self.request_content),
            (Field::ResponseMessage, &self.response_message),
        ] {
            if let Some(uri) = uri {
                // A `Uri` holds no control characters, so it is always a valid field value.
                let value =
                    HeaderValue::try_from(uri.to_string()).expect("a URI is a valid header value");
                headers.insert(field.header_name(), value);
            }
        }
    }
}

/// Why a location could not be read or resolved. Its [`Display`](fmt::Display) names the
/// header when there is one and says what is wrong.
///
/// ```
/// use handoff_proto::location::resolve;
/// use http::Uri;
///
/// let base: Uri = "http://example.com/".parse().unwrap();
/// let err = resolve(&base, "http://user@example.com/").unwrap_err();
/// assert_eq!(err.header(), None);
/// assert_eq!(
///     err.to_string(),
///     "userinfo is not allowed in an http(s) URI (RFC 9110 §4.2.4)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationError {
    header: Option<&'static str>,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    BaseNotAbsolute(String),
    InvalidBase(String),
    Reference(usize, Problem),
    Join(String),
    NotHttp(String),
    NoHost,
    Userinfo,
    NotUri(String),
    Duplicate(usize),
}

/// What makes a string not a URI-reference (RFC 3986 §4.1), at a byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    Char(u8),
    NotAscii,
    BadPercent,
    Bracket,
    SecondAt,
    ColonInFirstSegment,
    NeedsAuthority,
    UnclosedLiteral,
    BadIpLiteral(u8),
    BadPort(u8),
    EmptyHost,
}

impl LocationError {
    fn new(kind: Kind) -> Self {
        LocationError { header: None, kind }
    }

    fn in_header(mut self, field: Field) -> Self {
        self.header = Some(field.label());
        self
    }

    /// The header the error is about (`"Request-Content-Location"` or
    /// `"Response-Message-Location"`), or `None` for [`resolve`] and [`parse_reference`]
    /// and for a base URI that is not absolute.
    ///
    /// ```
    /// use handoff_proto::location::{Locations, REQUEST_CONTENT_LOCATION};
    /// use http::{HeaderMap, Uri};
    ///
    /// let base: Uri = "http://example.com/".parse().unwrap();
    /// let mut headers = HeaderMap::new();
    /// headers.insert(REQUEST_CONTENT_LOCATION, "mailto:x@example.com".parse().unwrap());
    /// let err = Locations::from_headers(&headers, &base).unwrap_err();
    /// assert_eq!(err.header(), Some("Request-Content-Location"));
    /// ```
    pub fn header(&self) -> Option<&'static str> {
        self.header
    }
}

/// At most this many characters of a caller-supplied URI are quoted in a message.
const QUOTE_MAX: usize = 80;

fn quoted(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        Some((i, _)) => format!("{:?}...", &s[..i]),
        None => format!("{s:?}"),
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Problem::Char(b' ') => f.write_str("a space is not allowed"),
            Problem::Char(b) if b.is_ascii_graphic() => {
                write!(f, "'{}' is not allowed", char::from(b))
            }
            Problem::Char(b) => write!(f, "byte 0x{b:02x} is not allowed"),
            Problem::NotAscii => f.write_str("non-ASCII text is not allowed"),
            Problem::BadPercent => f.write_str("'%' not followed by two hex digits"),
            Problem::Bracket => f.write_str("'[' or ']' outside an IP literal host"),
            Problem::SecondAt => f.write_str("a second '@' in the authority"),
            Problem::ColonInFirstSegment => f.write_str(
                "':' in the first segment of a relative path (RFC 3986 §4.2), or an invalid scheme,",
            ),
            Problem::NeedsAuthority => f.write_str("an http(s) URI needs \"//\" and a host"),
            Problem::UnclosedLiteral => f.write_str("unclosed '[' IP literal"),
            Problem::BadIpLiteral(b) => write!(f, "{:?} in an IP literal", char::from(b)),
            Problem::BadPort(b) => write!(f, "{:?} in the port", char::from(b)),
            Problem::EmptyHost => f.write_str("an empty host"),
        }
    }
}

impl fmt::Display for LocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(header) = self.header {
            write!(f, "invalid {header} header: ")?;
        }
        match &self.kind {
            Kind::BaseNotAbsolute(base) => write!(
                f,
                "base URI {} is not absolute: it needs a scheme and an authority",
                quoted(base)
            ),
            Kind::InvalidBase(err) => write!(f, "base URI is not a valid URL: {err}"),
            Kind::Reference(offset, problem) => {
                write!(f, "not a URI-reference: {problem} at byte {offset}")
            }
            Kind::Join(err) => write!(f, "cannot resolve the reference: {err}"),
            Kind::NotHttp(scheme) => write!(
                f,
                "resolved URI has scheme {}, expected http or https",
                quoted(scheme)
            ),
            Kind::NoHost => f.write_str("resolved URI has no host (RFC 9110 §4.2.1)"),
            Kind::Userinfo => {
                f.write_str("userinfo is not allowed in an http(s) URI (RFC 9110 §4.2.4)")
            }
            Kind::NotUri(err) => write!(f, "resolved URI is not a valid request URI: {err}"),
            Kind::Duplicate(n) => write!(f, "present {n} times, expected at most one"),
        }
    }
}

impl std::error::Error for LocationError {}

// ---------------------------------------------------------------------------------------
// Headers.

#[derive(Debug, Clone, Copy)]
enum Field {
    RequestContent,
    ResponseMessage,
}

impl Field {
    fn header_name(self) -> HeaderName {
        match self {
            Field::RequestContent => REQUEST_CONTENT_LOCATION,
            Field::ResponseMessage => RESPONSE_MESSAGE_LOCATION,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Field::RequestContent => "Request-Content-Location",
            Field::ResponseMessage => "Response-Message-Location",
        }
    }
}

fn read_one(headers: &HeaderMap, field: Field, base: &Uri) -> Result<Option<Uri>, LocationError> {
    let mut values = headers.get_all(field.header_name()).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let extra = values.count();
    if extra > 0 {
        return Err(LocationError::new(Kind::Duplicate(extra + 1)).in_header(field));
    }
    let reference = parse_reference(value).map_err(|e| e.in_header(field))?;
    // A bad base is the caller's problem, not the header's: no header name on it.
    let base = base_url(base)?;
    join(&base, reference)
        .map(Some)
        .map_err(|e| e.in_header(field))
}

// ---------------------------------------------------------------------------------------
// Resolution (RFC 3986 §5 through the `url` crate).

fn base_url(base: &Uri) -> Result<Url, LocationError> {
    if base.scheme().is_none() || base.authority().is_none() {
        return Err(LocationError::new(Kind::BaseNotAbsolute(base.to_string())));
    }
    Url::parse(&base.to_string()).map_err(|e| LocationError::new(Kind::InvalidBase(e.to_string())))
}

/// Joins a reference already checked by [`check_reference`] and checks the result.
fn join(base: &Url, reference: &str) -> Result<Uri, LocationError> {
    let mut url = base
        .join(reference)
        .map_err(|e| LocationError::new(Kind::Join(e.to_string())))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(LocationError::new(Kind::NotHttp(url.scheme().to_owned())));
    }
    // RFC 9110 §4.2.1: an http(s) URI without a host is invalid.
    if url.host_str().is_none_or(str::is_empty) {
        return Err(LocationError::new(Kind::NoHost));
    }
    // RFC 9110 §4.2.4: treat userinfo in a received http(s) reference as an error.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(LocationError::new(Kind::Userinfo));
    }
    url.set_fragment(None);
    url.as_str()
        .parse::<Uri>()
        .map_err(|e| LocationError::new(Kind::NotUri(e.to_string())))
}

// ---------------------------------------------------------------------------------------
// URI-reference syntax (RFC 3986 §4.1, §3).

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

fn is_gen_delim(b: u8) -> bool {
    matches!(b, b':' | b'/' | b'?' | b'#' | b'[' | b']' | b'@')
}

fn bad(offset: usize, problem: Problem) -> LocationError {
    LocationError::new(Kind::Reference(offset, problem))
}

/// Checks `URI-reference = URI / relative-ref` (RFC 3986 §4.1). `http`/`https` references
/// must carry an authority, and an authority a non-empty host.
fn check_reference(r: &[u8]) -> Result<(), LocationError> {
    // Characters (§2): unreserved / pct-encoded / sub-delims / gen-delims.
    let mut i = 0;
    while i < r.len() {
        let b = r[i];
        if b == b'%' {
            let hex = |j: usize| r.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return Err(bad(i, Problem::BadPercent));
            }
            i += 3;
            continue;
        }
        if !b.is_ascii() {
            return Err(bad(i, Problem::NotAscii));
        }
        if !(is_unreserved(b) || is_sub_delim(b) || is_gen_delim(b)) {
            return Err(bad(i, Problem::Char(b)));
        }
        i += 1;
    }

    // Fragment (§3.5) and query (§3.4): split at the first '#' and the first '?' before
    // it; neither may hold '[' or ']', the fragment no second '#'.
    let hash = r.iter().position(|&b| b == b'#').unwrap_or(r.len());
    if let Some(k) = r
        .get(hash + 1..)
        .and_then(|f| f.iter().position(|&b| matches!(b, b'#' | b'[' | b']')))
    {
        let at = hash + 1 + k;
        let problem = if r[at] == b'#' {
            Problem::Char(b'#')
        } else {
            Problem::Bracket
        };
        return Err(bad(at, problem));
    }
    let question = r[..hash].iter().position(|&b| b == b'?').unwrap_or(hash);
    if let Some(k) = r[question..hash]
        .iter()
        .position(|&b| b == b'[' || b == b']')
    {
        return Err(bad(question + k, Problem::Bracket));
    }
    let hier = &r[..question];

    // Scheme (§3.1), or a relative reference whose first segment has no ':' (§4.2).
    let mut rest_at = 0;
    let first_delim = hier.iter().position(|&b| b == b':' || b == b'/');
    if let Some(colon) = first_delim.filter(|&k| hier[k] == b':') {
        let scheme = &hier[..colon];
        let valid = scheme.first().is_some_and(u8::is_ascii_alphabetic)
            && scheme
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !valid {
            return Err(bad(colon, Problem::ColonInFirstSegment));
        }
        rest_at = colon + 1;
        let http = scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https");
        if http && !hier[rest_at..].starts_with(b"//") {
            return Err(bad(rest_at, Problem::NeedsAuthority));
        }
    }

    // Authority (§3.2), then the path (§3.3): '[' and ']' only in an IP literal host.
    let mut path_at = rest_at;
    if hier[rest_at..].starts_with(b"//") {
        let auth_at = rest_at + 2;
        let auth_end = hier[auth_at..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(hier.len(), |k| auth_at + k);
        check_authority(hier, auth_at, auth_end)?;
        path_at = auth_end;
    }
    if let Some(k) = hier[path_at..].iter().position(|&b| b == b'[' || b == b']') {
        return Err(bad(path_at + k, Problem::Bracket));
    }
    Ok(())
}

/// `authority = [ userinfo "@" ] host [ ":" port ]` within `r[start..end]` (§3.2).
fn check_authority(r: &[u8], start: usize, end: usize) -> Result<(), LocationError> {
    let auth = &r[start..end];
    let host_at = match auth.iter().position(|&b| b == b'@') {
        Some(at) => {
            if let Some(k) = auth[at + 1..].iter().position(|&b| b == b'@') {
                return Err(bad(start + at + 1 + k, Problem::SecondAt));
            }
            if let Some(k) = auth[..at].iter().position(|&b| b == b'[' || b == b']') {
                return Err(bad(start + k, Problem::Bracket));
            }
            at + 1
        }
        None => 0,
    };
    let hostport = &auth[host_at..];
    let abs = |k: usize| start + host_at + k;
    let port_at = if hostport.first() == Some(&b'[') {
        // IP-literal (§3.2.2): IPv6address / IPvFuture, checked loosely by character.
        let close = hostport
            .iter()
            .position(|&b| b == b']')
            .ok_or_else(|| bad(abs(0), Problem::UnclosedLiteral))?;
        if let Some(k) = hostport[1..close]
            .iter()
            .position(|&b| !(is_unreserved(b) || is_sub_delim(b) || b == b':'))
        {
            return Err(bad(abs(1 + k), Problem::BadIpLiteral(hostport[1 + k])));
        }
        match hostport.get(close + 1) {
            None => None,
            Some(b':') => Some(close + 2),
            Some(_) => {
                return Err(bad(
                    abs(close + 1),
                    Problem::BadIpLiteral(hostport[close + 1]),
                ))
            }
        }
    } else {
        // reg-name / IPv4address: no ':' (that starts the port), no brackets.
        let colon = hostport.iter().position(|&b| b == b':');
        let host = &hostport[..colon.unwrap_or(hostport.len())];
        if host.is_empty() {
            return Err(bad(abs(0), Problem::EmptyHost));
        }
        if let Some(k) = host.iter().position(|&b| b == b'[' || b == b']') {
            return Err(bad(abs(k), Problem::Bracket));
        }
        colon.map(|c| c + 1)
    };
    if let Some(p) = port_at {
        if let Some(k) = hostport[p..].iter().position(|b| !b.is_ascii_digit()) {
            return Err(bad(abs(p + k), Problem::BadPort(hostport[p + k])));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn base() -> Uri {
        "http://a/b/c/d;p?q".parse().unwrap()
    }

    fn resolved(reference: &str) -> String {
        resolve(&base(), reference)
            .unwrap_or_else(|e| panic!("{reference:?}: {e}"))
            .to_string()
    }

    #[test]
    fn rfc3986_normal_examples() {
        // RFC 3986 §5.4.1, with fragments dropped and `url`'s normalisation ("//g" gets
        // a "/" path); "g:h" is rejected below since it is not http.
        let cases = [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g/"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q"),
            ("g#s", "http://a/b/c/g"),
            ("g?y#s", "http://a/b/c/g?y"),
            (";x", "http://a/b/c/;x"),
            ("g;x", "http://a/b/c/g;x"),
            ("g;x?y#s", "http://a/b/c/g;x?y"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../", "http://a/"),
            ("../../g", "http://a/g"),
        ];
        for (reference, expected) in cases {
            assert_eq!(resolved(reference), expected, "{reference:?}");
        }
    }

    #[test]
    fn rfc3986_abnormal_examples() {
        // RFC 3986 §5.4.2.
        let cases = [
            ("../../../g", "http://a/g"),
            ("../../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("/../g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            (".g", "http://a/b/c/.g"),
            ("g..", "http://a/b/c/g.."),
            ("..g", "http://a/b/c/..g"),
            ("./../g", "http://a/b/g"),
            ("./g/.", "http://a/b/c/g/"),
            ("g/./h", "http://a/b/c/g/h"),
            ("g/../h", "http://a/b/c/h"),
            ("g;x=1/./y", "http://a/b/c/g;x=1/y"),
            ("g;x=1/../y", "http://a/b/c/y"),
            ("g?y/./x", "http://a/b/c/g?y/./x"),
            ("g#s/../x", "http://a/b/c/g"),
        ];
        for (reference, expected) in cases {
            assert_eq!(resolved(reference), expected, "{reference:?}");
        }
    }

    #[test]
    fn absolute_references() {
        assert_eq!(
            resolved("HTTPS://Example.COM:443/x?y"),
            "https://example.com/x?y"
        );
        assert_eq!(resolved("http://[::1]:8080/x"), "http://[::1]:8080/x");
        assert_eq!(resolved("//h:81"), "http://h:81/");
        let https: Uri = "https://a/b".parse().unwrap();
        assert_eq!(resolve(&https, "//g/x").unwrap(), "https://g/x");
    }

    #[test]
    fn non_http_results_are_rejected() {
        let cases = [
            (
                "g:h",
                "resolved URI has scheme \"g\", expected http or https",
            ),
            (
                "mailto:x@y",
                "resolved URI has scheme \"mailto\", expected http or https",
            ),
            (
                "FTP://a/",
                "resolved URI has scheme \"ftp\", expected http or https",
            ),
            (
                "http:g",
                "not a URI-reference: an http(s) URI needs \"//\" and a host at byte 5",
            ),
            ("http://", "not a URI-reference: an empty host at byte 7"),
            (
                "http://:80/",
                "not a URI-reference: an empty host at byte 7",
            ),
            (
                "//u:p@h/",
                "userinfo is not allowed in an http(s) URI (RFC 9110 §4.2.4)",
            ),
        ];
        for (reference, message) in cases {
            let err = resolve(&base(), reference).unwrap_err();
            assert_eq!(err.to_string(), message, "{reference:?}");
        }
        let userinfo_base: Uri = "http://u@a/".parse().unwrap();
        assert_eq!(
            resolve(&userinfo_base, "x").unwrap_err().kind,
            Kind::Userinfo
        );
    }

    #[test]
    fn invalid_references_say_what_is_wrong() {
        let cases = [
            ("/a b", "a space is not allowed at byte 2"),
            ("\\\\evil/", "'\\' is not allowed at byte 0"),
            ("/a\tb", "byte 0x09 is not allowed at byte 2"),
            ("/caf\u{e9}", "non-ASCII text is not allowed at byte 4"),
            ("/%4", "'%' not followed by two hex digits at byte 1"),
            ("/%zz", "'%' not followed by two hex digits at byte 1"),
            ("/{x}", "'{' is not allowed at byte 1"),
            ("/a[1]", "'[' or ']' outside an IP literal host at byte 2"),
            ("/a?[", "'[' or ']' outside an IP literal host at byte 3"),
            ("/a#b#c", "'#' is not allowed at byte 4"),
            ("a:b/c:d", "resolved URI has scheme \"a\", expected http or https"),
            ("1a:b", "':' in the first segment of a relative path (RFC 3986 §4.2), or an invalid scheme, at byte 2"),
            (":x", "':' in the first segment of a relative path (RFC 3986 §4.2), or an invalid scheme, at byte 0"),
            ("//a@b@c/", "a second '@' in the authority at byte 5"),
            ("//[::1/x", "unclosed '[' IP literal at byte 2"),
            ("//[::1]x/", "'x' in an IP literal at byte 7"),
            ("//h:8o/", "'o' in the port at byte 5"),
        ];
        for (reference, message) in cases {
            let err = resolve(&base(), reference).unwrap_err();
            let expected = if message.starts_with("resolved") {
                message.to_owned()
            } else {
                format!("not a URI-reference: {message}")
            };
            assert_eq!(err.to_string(), expected, "{reference:?}");
        }
    }

    #[test]
    fn base_must_be_absolute() {
        for base in ["/b/c", "example.com:80", "*"] {
            let base: Uri = base.parse().unwrap();
            let err = resolve(&base, "/x").unwrap_err();
            assert!(err.to_string().contains("is not absolute"), "{err}");
        }
        // Reported without a header name, even when reading headers.
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_CONTENT_LOCATION, HeaderValue::from_static("/x"));
        let err = Locations::from_headers(&headers, &"/b".parse().unwrap()).unwrap_err();
        assert_eq!(err.header(), None);
        // Not consulted when there is nothing to resolve.
        let none = Locations::from_headers(&HeaderMap::new(), &"/b".parse().unwrap());
        assert_eq!(none, Ok(Locations::default()));
    }

    #[test]
    fn headers_read_and_write() {
        let base: Uri = "https://example.com/api/upload?x".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            REQUEST_CONTENT_LOCATION,
            HeaderValue::from_static("uploads/1"),
        );
        headers.insert(
            RESPONSE_MESSAGE_LOCATION,
            HeaderValue::from_static("/r/1?k=v"),
        );
        let locations = Locations::from_headers(&headers, &base).unwrap();
        assert_eq!(
            locations.request_content.as_ref().unwrap(),
            "https://example.com/api/uploads/1"
        );
        assert_eq!(
            locations.response_message.as_ref().unwrap(),
            "https://example.com/r/1?k=v"
        );

        let mut out = HeaderMap::new();
        out.append(REQUEST_CONTENT_LOCATION, HeaderValue::from_static("/stale"));
        out.append(
            REQUEST_CONTENT_LOCATION,
            HeaderValue::from_static("/stale2"),
        );
        locations.insert_into(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(Locations::from_headers(&out, &base).unwrap(), locations);
    }

    #[test]
    fn header_errors_name_the_header() {
        let base: Uri = "http://example.com/".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            RESPONSE_MESSAGE_LOCATION,
            HeaderValue::from_bytes(b"/r/\xe9").unwrap(),
        );
        let err = Locations::from_headers(&headers, &base).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid Response-Message-Location header: not a URI-reference: non-ASCII text is not allowed at byte 3"
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            REQUEST_CONTENT_LOCATION,
            HeaderValue::from_static("https://a.1/"),
        );
        let err = Locations::from_headers(&headers, &base).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "invalid Request-Content-Location header: cannot resolve the reference: "
            ),
            "{err}"
        );
    }

    #[test]
    fn error_traits() {
        fn assert_error<E: std::error::Error + Clone + PartialEq + Send + Sync + 'static>() {}
        assert_error::<LocationError>();
        let long = "x".repeat(200);
        let err = LocationError::new(Kind::BaseNotAbsolute(long));
        assert!(err.to_string().len() < 200);
    }

    // ------------------------------------------------------------------------------------
    // Property tests.

    /// A host that the RFC 3986 and WHATWG parsers read alike: labels start with a letter
    /// (WHATWG reads a host ending in a number as IPv4) and hold no "--" (an `xn--` label
    /// is punycode, checked by IDNA).
    fn host() -> impl Strategy<Value = String> {
        "[a-zA-Z][a-zA-Z0-9]{0,6}(-[a-zA-Z0-9]{1,4})?(\\.[a-zA-Z][a-zA-Z0-9]{0,6}(-[a-zA-Z0-9]{1,4})?){0,2}"
    }

    /// A path segment that is not a dot segment.
    fn segment() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_~!$&()*+,;=:@-][a-zA-Z0-9._~!$&()*+,;=:@-]{0,7}(%[0-9A-F]{2})?"
    }

    fn path() -> impl Strategy<Value = String> {
        prop::collection::vec(segment(), 0..5)
            .prop_map(|s| s.iter().map(|s| format!("/{s}")).collect())
    }

    fn query() -> impl Strategy<Value = Option<String>> {
        prop::option::of("[a-zA-Z0-9/?:@!$&()*+,;=._~-]{0,10}")
    }

    fn http_base() -> impl Strategy<Value = Uri> {
        (
            prop_oneof![Just("http"), Just("https")],
            host(),
            prop::option::of(1u16..),
            path(),
            query(),
        )
            .prop_map(|(scheme, host, port, path, query)| {
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                let query = query.map(|q| format!("?{q}")).unwrap_or_default();
                format!("{scheme}://{host}{port}{path}{query}")
                    .parse()
                    .unwrap()
            })
    }

    fn effective_port(uri: &Uri) -> u16 {
        uri.port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            })
    }

    fn with_query(path: &str, query: &Option<String>) -> String {
        let path = if path.is_empty() { "/" } else { path };
        match query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn absolute_path_keeps_base_authority(
            base in http_base(),
            segments in prop::collection::vec(segment(), 1..5),
            query in query(),
            fragment in prop::option::of("[a-z/?]{0,5}"),
        ) {
            let path: String = segments.iter().map(|s| format!("/{s}")).collect();
            let mut reference = with_query(&path, &query);
            if let Some(f) = &fragment {
                reference = format!("{reference}#{f}");
            }
            let uri = resolve(&base, &reference).unwrap();
            prop_assert_eq!(uri.scheme(), base.scheme());
            prop_assert!(uri.host().unwrap().eq_ignore_ascii_case(base.host().unwrap()));
            prop_assert_eq!(effective_port(&uri), effective_port(&base));
            prop_assert_eq!(uri.path_and_query().unwrap().as_str(), with_query(&path, &query));
        }

        #[test]
        fn query_reference_keeps_base_path(base in http_base(), q in "[a-zA-Z0-9/?:@=&._~-]{0,10}") {
            let uri = resolve(&base, &format!("?{q}")).unwrap();
            prop_assert_eq!(uri.path(), base.path());
            prop_assert_eq!(uri.query(), Some(q.as_str()));
            prop_assert!(uri.host().unwrap().eq_ignore_ascii_case(base.host().unwrap()));
        }

        #[test]
        fn fragments_are_dropped(base in http_base(), path in path(), f in "[a-zA-Z0-9/?:@._~-]{0,10}") {
            let plain = resolve(&base, &path).unwrap();
            prop_assert_eq!(resolve(&base, &format!("{path}#{f}")).unwrap(), plain);
        }

        #[test]
        fn locations_round_trip(
            base in http_base(),
            a in prop::option::of(path()),
            b in prop::option::of(path()),
        ) {
            let locations = Locations {
                request_content: a.map(|p| resolve(&base, &p).unwrap()),
                response_message: b.map(|p| resolve(&base, &p).unwrap()),
            };
            let mut headers = HeaderMap::new();
            locations.insert_into(&mut headers);
            prop_assert_eq!(Locations::from_headers(&headers, &base).unwrap(), locations);
        }

        #[test]
        fn arbitrary_strings_never_panic(
            base in http_base(),
            s in "\\PC{0,40}|[a-zA-Z0-9:/?#\\[\\]@!$&'()*+,;=%.~_ -]{0,40}",
        ) {
            if let Ok(uri) = resolve(&base, &s) {
                // Whatever resolves is an absolute http(s) URI that resolves to itself.
                prop_assert!(matches!(uri.scheme_str(), Some("http" | "https")));
                prop_assert!(uri.host().is_some_and(|h| !h.is_empty()));
                prop_assert_eq!(resolve(&base, &uri.to_string()).unwrap(), uri);
            }
            if let Ok(any_base) = s.parse::<Uri>() {
                let _ = resolve(&any_base, "../x?y");
                let _ = resolve(&any_base, &s);
            }
        }

        #[test]
        fn arbitrary_header_bytes_never_panic(
            base in http_base(),
            bytes in prop::collection::vec(any::<u8>(), 0..48),
        ) {
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                let mut headers = HeaderMap::new();
                headers.insert(REQUEST_CONTENT_LOCATION, value.clone());
                headers.insert(RESPONSE_MESSAGE_LOCATION, value);
                if let Err(err) = Locations::from_headers(&headers, &base) {
                    prop_assert!(err.header().is_some());
                    prop_assert!(err.to_string().starts_with("invalid Request-Content-Location header: "));
                }
            }
        }

        #[test]
        fn bad_characters_are_reported(
            base in http_base(),
            path in "(/[a-zA-Z0-9._~!$&()*+,;=:@-]{0,8}){0,4}",
            at in any::<prop::sample::Index>(),
            c in prop::sample::select(vec![' ', '\\', '"', '<', '>', '{', '}', '^', '|', '`', '\t', 'é']),
        ) {
            let at = at.index(path.len() + 1);
            let reference = format!("{}{c}{}", &path[..at], &path[at..]);
            let err = resolve(&base, &reference).unwrap_err();
            let message = err.to_string();
            prop_assert!(message.starts_with("not a URI-reference: "), "{}", message);
            let at_byte = format!("at byte {at}");
            prop_assert!(message.ends_with(&at_byte), "{}", message);
        }
    }
}
