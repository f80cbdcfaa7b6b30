//! [`ResumeEvent`]: what a resumable request is doing, for progress displays and logs.

use std::fmt;
use std::sync::Arc;

use super::Step;

/// One step of a resumable request, reported to the observer set with
/// [`ResumeLayer::on_event`](super::ResumeLayer::on_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResumeEvent {
    /// Body bytes up to `offset` were handed to the connection.
    Sent {
        /// The absolute offset reached.
        offset: u64,
    },
    /// An exchange failed; the request goes on after a backoff.
    Interrupted {
        /// The step that failed.
        step: Step,
        /// What went wrong.
        error: String,
    },
    /// The body continues from the server's offset (a `PATCH`).
    Resuming {
        /// The offset the server holds.
        from: u64,
        /// Bytes sent before that the server did not keep (they go again).
        resent: u64,
    },
    /// The request starts over from its first byte (no location had arrived).
    Restarting {
        /// Bytes sent in the failed attempt.
        resent: u64,
    },
    /// The response is fetched from the response-message resource.
    Fetching,
}

/// The observer of a layer's requests.
#[derive(Clone)]
pub(crate) struct Observer(Arc<dyn Fn(&ResumeEvent) + Send + Sync>);

impl Observer {
    pub(crate) fn new(f: impl Fn(&ResumeEvent) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    pub(crate) fn emit(&self, event: ResumeEvent) {
        (self.0)(&event);
    }
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Observer")
    }
}
