//! Waiting for the signals that ask a server to stop gracefully.

use std::io;

use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGTERM and SIGINT handlers.
///
/// Install them before announcing the listening address: from then on the signals no longer
/// kill the process with the default action, they only wake [`Termination::recv`].
#[derive(Debug)]
pub(crate) struct Termination {
    term: Signal,
    int: Signal,
}

impl Termination {
    /// Registers the handlers.
    pub(crate) fn install() -> io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves on the next SIGTERM or SIGINT, with the signal's name.
    pub(crate) async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Resolves on SIGTERM or SIGINT (installing the handlers on first poll).
pub(crate) async fn terminated() -> io::Result<&'static str> {
    Ok(Termination::install()?.recv().await)
}
