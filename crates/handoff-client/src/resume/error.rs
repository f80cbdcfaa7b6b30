//! [`ResumeError`]: why a resumable request failed, and at which step.

use std::error::Error;
use std::fmt;

use http::StatusCode;

use crate::BoxError;

/// The exchange of the protocol that failed (docs/PROTOCOL.md part B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The request itself (first or re-sent from the start).
    Send,
    /// `HEAD` on the request-content resource: how much the server holds.
    Head,
    /// `PATCH` on the request-content resource: the rest of the body.
    Patch,
    /// `GET` on the response-message resource: the recorded response.
    Fetch,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Send => "sending the request",
            Self::Head => "HEAD on the request content",
            Self::Patch => "PATCH of the request content",
            Self::Fetch => "GET of the response message",
        })
    }
}

#[derive(Debug)]
enum Kind {
    /// The overall deadline passed.
    Deadline,
    /// Every retry the budget allows failed.
    Exhausted,
    /// The server answered with a status that ends the operation.
    Status,
    /// The server said something impossible (an offset beyond what was sent, a shrinking
    /// offset, a malformed `message/http`, a location on another authority).
    Protocol(String),
    /// The upload's body could not be produced again (past the replay buffer, a file that
    /// changed, a body of unknown length).
    Source,
}

/// Why a [`Resume`](super::Resume) request failed. Opaque, with `is_*` queries in the
/// hyper-util style; [`step`](Self::step) says which exchange failed and
/// [`status`](Self::status) what the server answered, if it answered.
///
/// ```
/// use handoff_client::resume::{ResumeError, Step};
///
/// fn explain(error: &ResumeError) -> String {
///     match (error.step(), error.status()) {
///         (Some(Step::Patch), Some(status)) => format!("the server refused the rest: {status}"),
///         _ if error.is_deadline() => "gave up: out of time".to_owned(),
///         _ => error.to_string(),
///     }
/// }
/// # let _ = explain;
/// ```
pub struct ResumeError {
    kind: Kind,
    step: Option<Step>,
    status: Option<StatusCode>,
    source: Option<BoxError>,
}

impl ResumeError {
    fn new(kind: Kind, step: Option<Step>) -> Self {
        Self {
            kind,
            step,
            status: None,
            source: None,
        }
    }

    pub(crate) fn deadline(step: Option<Step>) -> Self {
        Self::new(Kind::Deadline, step)
    }

    pub(crate) fn exhausted(step: Step, source: Option<BoxError>) -> Self {
        Self {
            source,
            ..Self::new(Kind::Exhausted, Some(step))
        }
    }

    pub(crate) fn refused(step: Step, status: StatusCode, body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)])
            .trim()
            .to_owned();
        Self {
            status: Some(status),
            source: (!text.is_empty()).then(|| text.into()),
            ..Self::new(Kind::Status, Some(step))
        }
    }

    /// The same error, naming what the server answered last.
    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status.get_or_insert(status);
        self
    }

    pub(crate) fn protocol(step: Step, what: impl Into<String>) -> Self {
        Self::new(Kind::Protocol(what.into()), Some(step))
    }

    pub(crate) fn source(step: Step, source: BoxError) -> Self {
        Self {
            source: Some(source),
            ..Self::new(Kind::Source, Some(step))
        }
    }

    /// The overall deadline passed.
    pub fn is_deadline(&self) -> bool {
        matches!(self.kind, Kind::Deadline)
    }

    /// Every retry the budget allows failed.
    pub fn is_exhausted(&self) -> bool {
        matches!(self.kind, Kind::Exhausted)
    }

    /// The server answered a protocol step with a status that ends the operation (see
    /// [`status`](Self::status)).
    pub fn is_status(&self) -> bool {
        matches!(self.kind, Kind::Status)
    }

    /// The server said something impossible: an offset beyond what was sent, a `HEAD` that
    /// shrank, a malformed `message/http`, a location on another authority.
    pub fn is_protocol(&self) -> bool {
        matches!(self.kind, Kind::Protocol(_))
    }

    /// The upload's body could not be read again from the server's offset.
    pub fn is_source(&self) -> bool {
        matches!(self.kind, Kind::Source)
    }

    /// The step that failed.
    pub fn step(&self) -> Option<Step> {
        self.step
    }

    /// What the server answered at that step, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }
}

impl fmt::Debug for ResumeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumeError")
            .field("kind", &self.kind)
            .field("step", &self.step)
            .field("status", &self.status)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for ResumeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let step = self.step.map_or(String::new(), |s| format!(" ({s})"));
        match &self.kind {
            Kind::Deadline => write!(f, "resumable request: deadline passed{step}")?,
            Kind::Exhausted => write!(f, "resumable request: retries exhausted{step}")?,
            Kind::Status => write!(
                f,
                "resumable request: the server answered {}{step}",
                self.status.map_or(0, |s| s.as_u16())
            )?,
            Kind::Protocol(what) => write!(f, "resumable request: the server {what}{step}")?,
            Kind::Source => write!(f, "resumable request: the body cannot be sent again{step}")?,
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl Error for ResumeError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// A body error that came from the upload's [`Source`](super::Source), not from the network:
/// its bytes cannot be produced, so retrying cannot help.
#[derive(Debug)]
pub(crate) struct SourceFailed(pub(crate) BoxError);

impl fmt::Display for SourceFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the upload's body failed: {}", self.0)
    }
}

impl Error for SourceFailed {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.0.as_ref())
    }
}

/// The [`SourceFailed`] somewhere in `error`'s chain, if any.
pub(crate) fn source_failure<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a SourceFailed> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(failed) = error.downcast_ref::<SourceFailed>() {
            return Some(failed);
        }
        next = error.source();
    }
    None
}
