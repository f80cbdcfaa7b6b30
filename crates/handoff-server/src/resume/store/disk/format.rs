//! The bytes of a resource's `meta.json` and `response` files. Pure: no I/O here, so every
//! encoding is round-trip tested on its own.
//!
//! `meta.json` is one JSON object (see [`MetaFile`]). Header values may hold any byte but
//! controls (RFC 9110 §5.5 allows obs-text), so a value is written as a JSON string only
//! when it is visible ASCII, and as `{"hex": ".."}` otherwise. `response` is one line of
//! JSON (status and headers, [`ResponseHead`]), a `\n`, then the body bytes verbatim: the
//! recorded response comes back exactly as it was recorded, which a `message/http`
//! document would not promise (it rewrites the framing headers).

use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri, Version};
use serde::{Deserialize, Serialize};

use crate::resume::store::{RecordedResponse, StoredHead};
use crate::resume::Owner;

/// The layout version written into every file; files of another version are refused.
const FORMAT: u32 = 1;

/// What `meta.json` says about a resource: everything but its body bytes (whose count is
/// the body file's size) and its recorded response.
#[derive(Debug, Clone)]
pub(super) struct Meta {
    pub(super) head: StoredHead,
    pub(super) owner: Owner,
    pub(super) complete_length: Option<u64>,
    pub(super) max_bytes: u64,
    pub(super) keep_incomplete: bool,
    /// `Some(length held)` once abandoned: the body file is gone, the length stays.
    pub(super) abandoned: Option<u64>,
    pub(super) responded_at: Option<SystemTime>,
    /// When the metadata last changed (appends only touch the body file's mtime).
    pub(super) updated_at: SystemTime,
    /// Bumped by every metadata write.
    pub(super) revision: u64,
}

/// `meta.json`, as written.
#[derive(Serialize, Deserialize)]
struct MetaFile {
    format: u32,
    method: String,
    uri: String,
    version: String,
    headers: Vec<(String, ValueFile)>,
    /// 64 hex digits.
    owner: String,
    complete_length: Option<u64>,
    max_bytes: u64,
    keep_incomplete: bool,
    /// The length held when the upload was abandoned; `null` while it is not.
    abandoned_length: Option<u64>,
    /// Unix milliseconds.
    responded_at: Option<u64>,
    /// Unix milliseconds.
    updated_at: u64,
    revision: u64,
}

/// The first line of `response`.
#[derive(Serialize, Deserialize)]
struct ResponseHead {
    format: u32,
    status: u16,
    headers: Vec<(String, ValueFile)>,
}

/// A header value: text when it is visible ASCII, hex digits otherwise.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum ValueFile {
    Text(String),
    Bytes { hex: String },
}

pub(super) fn encode_meta(meta: &Meta) -> Vec<u8> {
    let file = MetaFile {
        format: FORMAT,
        method: meta.head.method.as_str().to_owned(),
        uri: meta.head.uri.to_string(),
        version: version_text(meta.head.version).to_owned(),
        headers: encode_headers(&meta.head.headers),
        owner: hex(meta.owner.as_bytes()),
        complete_length: meta.complete_length,
        max_bytes: meta.max_bytes,
        keep_incomplete: meta.keep_incomplete,
        abandoned_length: meta.abandoned,
        responded_at: meta.responded_at.map(unix_millis),
        updated_at: unix_millis(meta.updated_at),
        revision: meta.revision,
    };
    serde_json::to_vec_pretty(&file).expect("a MetaFile always serialises")
}

pub(super) fn decode_meta(bytes: &[u8]) -> io::Result<Meta> {
    let file: MetaFile = serde_json::from_slice(bytes).map_err(invalid)?;
    check_format(file.format)?;
    let owner = unhex(&file.owner)
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| invalid("the owner is not 64 hex digits"))?;
    Ok(Meta {
        head: StoredHead {
            method: Method::from_bytes(file.method.as_bytes()).map_err(invalid)?,
            uri: file.uri.parse::<Uri>().map_err(invalid)?,
            version: parse_version(&file.version)?,
            headers: decode_headers(file.headers)?,
        },
        owner: Owner::from_bytes(owner),
        complete_length: file.complete_length,
        max_bytes: file.max_bytes,
        keep_incomplete: file.keep_incomplete,
        abandoned: file.abandoned_length,
        responded_at: file.responded_at.map(from_unix_millis),
        updated_at: from_unix_millis(file.updated_at),
        revision: file.revision,
    })
}

pub(super) fn encode_response(response: &RecordedResponse) -> Vec<u8> {
    let head = ResponseHead {
        format: FORMAT,
        status: response.status.as_u16(),
        headers: encode_headers(&response.headers),
    };
    // Compact JSON escapes every newline inside strings, so the first `\n` ends the head.
    let mut bytes = serde_json::to_vec(&head).expect("a ResponseHead always serialises");
    bytes.push(b'\n');
    bytes.extend_from_slice(&response.body);
    bytes
}

pub(super) fn decode_response(bytes: Bytes) -> io::Result<RecordedResponse> {
    let newline = bytes
        .iter()
        .position(|&byte| byte == b'\n')
        .ok_or_else(|| invalid("the response head does not end"))?;
    let head: ResponseHead = serde_json::from_slice(&bytes[..newline]).map_err(invalid)?;
    check_format(head.format)?;
    Ok(RecordedResponse {
        status: StatusCode::from_u16(head.status).map_err(invalid)?,
        headers: decode_headers(head.headers)?,
        body: bytes.slice(newline + 1..),
    })
}

fn encode_headers(headers: &HeaderMap) -> Vec<(String, ValueFile)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = match value.to_str() {
                Ok(text) => ValueFile::Text(text.to_owned()),
                Err(_) => ValueFile::Bytes {
                    hex: hex(value.as_bytes()),
                },
            };
            (name.as_str().to_owned(), value)
        })
        .collect()
}

fn decode_headers(headers: Vec<(String, ValueFile)>) -> io::Result<HeaderMap> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(invalid)?;
        let value = match value {
            ValueFile::Text(text) => HeaderValue::from_str(&text).map_err(invalid)?,
            ValueFile::Bytes { hex } => {
                let bytes = unhex(&hex).ok_or_else(|| invalid("a header value is not hex"))?;
                HeaderValue::from_bytes(&bytes).map_err(invalid)?
            }
        };
        map.append(name, value);
    }
    Ok(map)
}

fn version_text(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        // `Version` has no other value today; 1.1 is the safe reading of a future one.
        _ => "HTTP/1.1",
    }
}

fn parse_version(text: &str) -> io::Result<Version> {
    Ok(match text {
        "HTTP/0.9" => Version::HTTP_09,
        "HTTP/1.0" => Version::HTTP_10,
        "HTTP/1.1" => Version::HTTP_11,
        "HTTP/2.0" => Version::HTTP_2,
        "HTTP/3.0" => Version::HTTP_3,
        _ => return Err(invalid("unknown HTTP version")),
    })
}

fn check_format(format: u32) -> io::Result<()> {
    if format == FORMAT {
        Ok(())
    } else {
        Err(invalid(format!(
            "layout version {format}, expected {FORMAT}"
        )))
    }
}

/// The current time, to the millisecond: what `meta.json` can hold, so a resource reads the
/// same before and after a restart.
pub(super) fn now() -> SystemTime {
    from_unix_millis(unix_millis(SystemTime::now()))
}

fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

fn from_unix_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    fn digit(byte: u8) -> Option<u8> {
        char::from(byte).to_digit(16).map(|d| d as u8)
    }
    let text = text.as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks_exact(2)
        .map(|pair| Some((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect()
}

fn invalid(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header_values() -> impl Strategy<Value = HeaderValue> {
        // Every byte a header value may hold: tab, visible ASCII, space, obs-text.
        let byte = prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff];
        proptest::collection::vec(byte, 0..12)
            .prop_map(|bytes| HeaderValue::from_bytes(&bytes).unwrap())
    }

    fn header_maps() -> impl Strategy<Value = HeaderMap> {
        let name = prop_oneof![
            Just("content-type"),
            Just("x-a"),
            Just("x-b"),
            Just("authorization")
        ];
        proptest::collection::vec((name, header_values()), 0..6).prop_map(|pairs| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(name, value);
            }
            map
        })
    }

    fn metas() -> impl Strategy<Value = Meta> {
        let uri = prop_oneof![
            Just("/u"),
            Just("/a/b?c=d&e"),
            Just("http://example.com/x"),
            Just("example.com:443"),
        ];
        let method = prop_oneof![Just(Method::POST), Just(Method::PUT), Just(Method::PATCH)];
        let version = prop_oneof![
            Just(Version::HTTP_10),
            Just(Version::HTTP_11),
            Just(Version::HTTP_2)
        ];
        (
            (method, uri, version, header_maps(), any::<[u8; 32]>()),
            (
                any::<Option<u64>>(),
                any::<u64>(),
                any::<bool>(),
                any::<Option<u64>>(),
            ),
            (any::<Option<u32>>(), any::<u32>(), any::<u64>()),
        )
            .prop_map(
                |(
                    (method, uri, version, headers, owner),
                    (complete_length, max_bytes, keep_incomplete, abandoned),
                    (responded_at, updated_at, revision),
                )| Meta {
                    head: StoredHead {
                        method,
                        uri: uri.parse().unwrap(),
                        version,
                        headers,
                    },
                    owner: Owner::from_bytes(owner),
                    complete_length,
                    max_bytes,
                    keep_incomplete,
                    abandoned,
                    responded_at: responded_at.map(|s| from_unix_millis(u64::from(s) * 7)),
                    updated_at: from_unix_millis(u64::from(updated_at) * 1000),
                    revision,
                },
            )
    }

    fn same_meta(a: &Meta, b: &Meta) -> bool {
        a.head.method == b.head.method
            && a.head.uri == b.head.uri
            && a.head.version == b.head.version
            && a.head.headers == b.head.headers
            && a.owner == b.owner
            && a.complete_length == b.complete_length
            && a.max_bytes == b.max_bytes
            && a.keep_incomplete == b.keep_incomplete
            && a.abandoned == b.abandoned
            && a.responded_at == b.responded_at
            && a.updated_at == b.updated_at
            && a.revision == b.revision
    }

    #[test]
    fn non_ascii_values_are_written_as_hex() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        headers.insert("x-b", HeaderValue::from_static("plain"));
        let bytes = encode_response(&RecordedResponse {
            status: StatusCode::OK,
            headers,
            body: Bytes::new(),
        });
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains(r#"["x-a",{"hex":"636166e9"}]"#), "{text}");
        assert!(text.contains(r#"["x-b","plain"]"#), "{text}");
    }

    #[test]
    fn other_layout_versions_are_refused() {
        let bytes = br#"{"format":2,"status":200,"headers":[]}
"#;
        assert!(decode_response(Bytes::from_static(bytes)).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn meta_round_trips(meta in metas()) {
            let decoded = decode_meta(&encode_meta(&meta)).unwrap();
            prop_assert!(same_meta(&meta, &decoded), "{meta:?} != {decoded:?}");
        }

        #[test]
        fn responses_round_trip(
            status in 100u16..600,
            headers in header_maps(),
            body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let response = RecordedResponse {
                status: StatusCode::from_u16(status).unwrap(),
                headers,
                body: Bytes::from(body),
            };
            let decoded = decode_response(Bytes::from(encode_response(&response))).unwrap();
            prop_assert_eq!(decoded.status, response.status);
            prop_assert_eq!(decoded.headers, response.headers);
            prop_assert_eq!(decoded.body, response.body);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_meta(&bytes);
            let _ = decode_response(Bytes::from(bytes));
        }

        #[test]
        fn hex_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(unhex(&hex(&bytes)), Some(bytes));
        }
    }
}
