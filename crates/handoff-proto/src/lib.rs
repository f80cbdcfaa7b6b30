//! Wire formats of [tower-handoff](https://example.invalid/tower-handoff): everything the
//! two protocols put on the wire, with no async and no I/O.
//!
//! tower-handoff makes HTTP requests survive what normally kills them. Its server and
//! client layers (`handoff-server`, `handoff-client`) speak two protocols; this crate holds
//! their vocabulary so that both sides, and your own code, parse and build it the same way:
//!
//! - **Partial POST Replay** ([`ppr`]): the `379 Partial POST Replay` status, the `Echo-*` /
//!   `Pseudo-Echo-*` header set that hands a request back to the proxy, and the
//!   `Partial-Post-Replay` replay counter.
//! - **Resumable requests**: the `Prefer` / `Preference-Applied` headers ([`prefer`]),
//!   `Request-Content-Location` / `Response-Message-Location` ([`location`]), request
//!   `Content-Range` ([`content_range`]), the `message/byterange` patch body
//!   ([`byterange`]) and `message/http` with `299 Incomplete Content` ([`message_http`]).
//!
//! Every parser returns an error value that says what is wrong; none panics on any input.
//!
//! ```
//! use handoff_proto::ppr;
//! use http::{HeaderMap, Method, Uri};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("content-type", "application/octet-stream".parse().unwrap());
//! let uri: Uri = "/upload?id=7".parse().unwrap();
//! let echo = ppr::echo_headers(&Method::POST, &uri, &headers);
//! assert_eq!(echo["echo-content-type"], "application/octet-stream");
//! assert_eq!(echo["pseudo-echo-path"], "/upload?id=7");
//! ```

pub mod byterange;
pub mod content_range;
pub mod location;
pub mod message_http;
pub mod ppr;
pub mod prefer;
