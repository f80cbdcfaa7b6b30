//! [`Limits`]: every bound an outsider could otherwise grow (docs/PROTOCOL.md part B.7).

use std::time::Duration;

/// The bounds of a [`ResumableLayer`](super::ResumableLayer), with safe defaults.
///
/// Past a bound a request gets a clear `4xx` with a reason (`413` for sizes, `429` for
/// counts), logged once, never a panic, a hang or unbounded growth.
///
/// ```
/// use std::time::Duration;
/// use handoff_server::resume::Limits;
///
/// let limits = Limits {
///     max_body_bytes: 64 * 1024 * 1024,
///     idle_timeout: Duration::from_secs(30),
///     ..Limits::default()
/// };
/// assert_eq!(limits.max_open_per_owner, Limits::default().max_open_per_owner);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Body bytes one resumable request may carry (default 1 GiB). A larger
    /// `Content-Length` is refused up front with `413`; a body or `PATCH` that grows past it
    /// gets `413`.
    pub max_body_bytes: u64,
    /// Operations open at once, every owner together (default 1024). Past it: `429`.
    pub max_open: usize,
    /// Operations open at once for one owner (default 64). Past it: `429`.
    pub max_open_per_owner: usize,
    /// How long an unfinished upload waits for its next byte (default 5 minutes). Then it is
    /// abandoned: the handler's body ends with [`UploadAbandoned`](super::UploadAbandoned)
    /// and the bytes are freed.
    pub idle_timeout: Duration,
    /// How long a recorded response is kept after the operation ended (default 1 hour),
    /// unless the client `DELETE`s it first.
    pub response_ttl: Duration,
    /// Bytes of one recorded response body (default 16 MiB). A handler that answers with
    /// more gets its response replaced by a `500` that says so: a response that cannot be
    /// recorded could not be fetched again.
    pub max_response_bytes: usize,
    /// The longest `Prefer: wait=N` honoured on the response-message resource (default 30 s).
    pub max_wait: Duration,
    /// How long the `PATCH` that completes a body waits for the operation's response before
    /// answering `202` (default 10 s).
    pub completion_wait: Duration,
    /// How long a writer waits for room in a full store (the memory store's budget) before
    /// its request is answered `429` with `Retry-After` (default 10 s).
    pub full_wait: Duration,
    /// A writer that made no progress for this long may be replaced by a new `PATCH` from
    /// the owner (default 5 s); before that a second writer gets `409`.
    pub writer_takeover: Duration,
    /// `Acknowledge` interim responses: at most one per this many newly durable bytes
    /// (default 1 MiB)...
    pub ack_every_bytes: u64,
    /// ... and at most one per this interval (default 250 ms).
    pub ack_every: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024 * 1024,
            max_open: 1024,
            max_open_per_owner: 64,
            idle_timeout: Duration::from_secs(300),
            response_ttl: Duration::from_secs(3600),
            max_response_bytes: 16 * 1024 * 1024,
            max_wait: Duration::from_secs(30),
            completion_wait: Duration::from_secs(10),
            full_wait: Duration::from_secs(10),
            writer_takeover: Duration::from_secs(5),
            ack_every_bytes: 1024 * 1024,
            ack_every: Duration::from_millis(250),
        }
    }
}
