//! [`ResumeReport`]: what it took to get the response (a response extension).

/// How a [`Resume`](super::Resume) request went, in the response's extensions.
///
/// ```
/// use handoff_client::resume::ResumeReport;
///
/// let report = ResumeReport::default();
/// assert_eq!((report.attempts, report.resumes, report.bytes_resent), (0, 0, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResumeReport {
    /// Exchanges with the server: the request, its re-sends, and every `HEAD`, `PATCH` and
    /// `GET` of the protocol.
    pub attempts: u32,
    /// `PATCH`es sent to complete the body.
    pub resumes: u32,
    /// Times the request was sent again from the first byte (no location yet).
    pub restarts: u32,
    /// Body bytes handed to the connection more than once: the ones in flight when a
    /// connection failed (hyper's buffer, the local socket's send buffer, the network),
    /// beyond what the server holds. On loopback most of them never left the machine; the
    /// bytes that crossed the network twice are at most this.
    pub bytes_resent: u64,
    /// Whether the response came from the response-message resource (`message/http`)
    /// rather than the original exchange.
    pub fetched: bool,
}
