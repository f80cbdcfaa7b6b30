use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The error a [`ReplayBody`](super::ReplayBody) ends with when the layer stops an upstream
/// request body.
///
/// hyper tears the upstream connection down when a request body fails, which is how the
/// layer ends an exchange: the origin that sent a `379` once its echo is complete (part A,
/// intermediary 3), and the replayed request when the echo is wrong (intermediary 4 and 6),
/// so that the new origin never receives a complete request. It reaches the caller boxed;
/// downcast to query it.
///
/// ```
/// use handoff_client::replay::ReplayError;
///
/// fn describe(err: &(dyn std::error::Error + 'static)) -> &'static str {
///     match err.downcast_ref::<ReplayError>() {
///         Some(e) if e.is_detached() => "handed back with a 379",
///         Some(e) if e.is_echo_mismatch() => "echo differs from what was sent",
///         Some(_) => "replay failed",
///         None => "another error",
///     }
/// }
/// # let _ = describe;
/// ```
pub struct ReplayError {
    kind: Kind,
}

#[derive(Clone)]
pub(super) enum Kind {
    /// This attempt was answered with a 379 and its echo is complete.
    Detached,
    /// The echo went past the bytes forwarded to that origin.
    EchoTooLong { expected: u64 },
    /// The echo ended, or its body failed, before every forwarded byte came back.
    EchoTooShort {
        expected: u64,
        received: u64,
        source: Option<Arc<dyn Error + Send + Sync>>,
    },
    /// The echo's keyed tag differs from that of the forwarded bytes.
    EchoMismatch { expected: u64 },
    /// No echoed frame within the configured time.
    EchoTimeout { timeout: Duration },
    /// The client's body failed earlier.
    ClientBody,
    /// A 379 beyond the configured number of replays.
    TooManyReplays { max: u32 },
    /// A 379 from a backend the layer cannot name.
    UnnamedBackend,
    /// The inner service failed while replaying.
    Upstream,
    /// The replay's upstream stopped pulling its body before the end of the echo; the layer
    /// read the rest of the echo itself, so this upload can never be completed.
    TakenOver,
    /// The policy found no backend left for an attempt.
    NoBackendLeft,
    /// The caller dropped the response future.
    Abandoned,
    /// The layer's echo spool cannot hold the `expected` bytes (its per-request bound or
    /// its total budget).
    SpoolFull { expected: u64 },
    /// The request has no echo key (the system's random source failed).
    NoEchoKey,
    /// No upstream started to take a replay within the replay timeout.
    ReplayNotTaken { timeout: Duration },
}

impl Kind {
    /// The status of the layer's own answer: `503` when it had no room, `502` otherwise.
    pub(super) fn status(&self) -> http::StatusCode {
        match self {
            Kind::SpoolFull { .. } | Kind::NoBackendLeft => http::StatusCode::SERVICE_UNAVAILABLE,
            _ => http::StatusCode::BAD_GATEWAY,
        }
    }
}

impl ReplayError {
    pub(super) fn new(kind: Kind) -> Self {
        ReplayError { kind }
    }

    /// This upstream request was answered with a `379` and its echo is complete: the layer
    /// ends the old exchange (part A, intermediary 3).
    pub fn is_detached(&self) -> bool {
        matches!(self.kind, Kind::Detached)
    }

    /// An origin echoed more bytes than it was sent (part A, intermediary 4).
    pub fn is_echo_too_long(&self) -> bool {
        matches!(self.kind, Kind::EchoTooLong { .. })
    }

    /// An echo ended, or its body failed, before every forwarded byte came back (part A,
    /// intermediary 4).
    pub fn is_echo_too_short(&self) -> bool {
        matches!(self.kind, Kind::EchoTooShort { .. })
    }

    /// An echo has the right length but not the bytes that were sent (part A,
    /// intermediary 6).
    pub fn is_echo_mismatch(&self) -> bool {
        matches!(self.kind, Kind::EchoMismatch { .. })
    }

    /// No echoed frame arrived within [`ReplayLayer::echo_timeout`](super::ReplayLayer::echo_timeout).
    pub fn is_echo_timeout(&self) -> bool {
        matches!(self.kind, Kind::EchoTimeout { .. })
    }

    /// The client's own request body failed earlier.
    pub fn is_client_body(&self) -> bool {
        matches!(self.kind, Kind::ClientBody)
    }

    /// The layer ended the upstream request for another reason (too many replays, no
    /// backend to name or none left, an upstream error, the caller went away, no room to
    /// spool the echo, or an upstream that answered before reading the whole echo, which
    /// the layer then read itself): the upstream request is aborted.
    pub fn is_aborted(&self) -> bool {
        matches!(
            self.kind,
            Kind::TooManyReplays { .. }
                | Kind::UnnamedBackend
                | Kind::Upstream
                | Kind::TakenOver
                | Kind::NoBackendLeft
                | Kind::Abandoned
                | Kind::SpoolFull { .. }
                | Kind::NoEchoKey
                | Kind::ReplayNotTaken { .. }
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Detached => f.write_str("the origin handed the request back (379)"),
            Kind::EchoTooLong { expected } => {
                write!(f, "the echo is longer than the {expected} bytes sent")
            }
            Kind::EchoTooShort {
                expected, received, ..
            } => write!(f, "the echo ended after {received} of {expected} bytes"),
            Kind::EchoMismatch { expected } => {
                write!(f, "the {expected} echoed bytes differ from the bytes sent")
            }
            Kind::EchoTimeout { timeout } => write!(f, "no echoed bytes within {timeout:?}"),
            Kind::ClientBody => f.write_str("the client's request body failed"),
            Kind::TooManyReplays { max } => write!(f, "more than {max} replays"),
            Kind::UnnamedBackend => f.write_str("the backend that answered 379 is unknown"),
            Kind::Upstream => f.write_str("the upstream service failed during a replay"),
            Kind::TakenOver => f.write_str(
                "the upstream stopped reading before the end of the echo; the layer read the rest",
            ),
            Kind::NoBackendLeft => {
                f.write_str("no backend left that did not hand the request back")
            }
            Kind::Abandoned => f.write_str("the response future was dropped"),
            Kind::SpoolFull { expected } => {
                write!(f, "no room in the echo spool for {expected} bytes")
            }
            Kind::NoEchoKey => f.write_str("no random echo key for this request"),
            Kind::ReplayNotTaken { timeout } => {
                write!(f, "no upstream took the replay within {timeout:?}")
            }
        }
    }
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "partial POST replay: {}", self.kind)
    }
}

impl fmt::Debug for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReplayError").field(&self.kind).finish()
    }
}

impl Error for ReplayError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.kind {
            Kind::EchoTooShort {
                source: Some(source),
                ..
            } => Some(&**source as &(dyn Error + 'static)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_messages() {
        let short = ReplayError::new(Kind::EchoTooShort {
            expected: 10,
            received: 4,
            source: Some(Arc::new(std::io::Error::other("reset"))),
        });
        assert!(short.is_echo_too_short());
        assert!(!short.is_aborted());
        assert_eq!(
            short.to_string(),
            "partial POST replay: the echo ended after 4 of 10 bytes"
        );
        assert_eq!(short.source().unwrap().to_string(), "reset");

        let aborted = ReplayError::new(Kind::TooManyReplays { max: 3 });
        assert!(aborted.is_aborted());
        assert!(ReplayError::new(Kind::TakenOver).is_aborted());
        assert!(ReplayError::new(Kind::NoBackendLeft).is_aborted());
        assert_eq!(
            Kind::NoBackendLeft.status(),
            http::StatusCode::SERVICE_UNAVAILABLE
        );
        let full = Kind::SpoolFull { expected: 9 };
        assert_eq!(full.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(ReplayError::new(full).is_aborted());
        let not_taken = Kind::ReplayNotTaken {
            timeout: Duration::from_secs(2),
        };
        assert_eq!(not_taken.status(), http::StatusCode::BAD_GATEWAY);
        assert_eq!(
            not_taken.to_string(),
            "no upstream took the replay within 2s"
        );
        assert!(aborted.source().is_none());
        assert!(ReplayError::new(Kind::Detached).is_detached());
        assert!(ReplayError::new(Kind::EchoMismatch { expected: 1 }).is_echo_mismatch());
        assert!(ReplayError::new(Kind::EchoTooLong { expected: 1 }).is_echo_too_long());
        assert!(ReplayError::new(Kind::ClientBody).is_client_body());
        let timeout = ReplayError::new(Kind::EchoTimeout {
            timeout: Duration::from_secs(1),
        });
        assert!(timeout.is_echo_timeout());
        assert_eq!(
            format!("{timeout:?}"),
            "ReplayError(no echoed bytes within 1s)"
        );
    }
}
