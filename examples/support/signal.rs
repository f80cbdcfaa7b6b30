//! Waiting for the signals that ask a server to stop gracefully.

use std::future::Future;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;

use super::connections::Ended;

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

/// The life of an example server after it started: prints `listening on <addr>` (the first
/// stdout line), waits for SIGTERM or SIGINT, then runs `drain` (the server's graceful
/// shutdown). Exits with success once drained; a second signal exits at once with failure.
pub(crate) async fn serve_until_terminated(
    mut termination: Termination,
    addr: SocketAddr,
    drain: impl Future<Output = Ended>,
) -> io::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {addr}")?;
    stdout.flush()?;
    drop(stdout);

    let signal = termination.recv().await;
    tracing::info!(signal, "shutting down");
    tokio::select! {
        ended = drain => {
            if let Ended::Forced(closed) = ended {
                tracing::warn!(closed, "drain timeout reached");
            }
            Ok(ExitCode::SUCCESS)
        }
        signal = termination.recv() => {
            tracing::warn!(signal, "second signal, exiting without draining");
            Ok(ExitCode::FAILURE)
        }
    }
}
