//! The shutdown handle shared by the application, its server and the replay layer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// A cheap-to-clone signal that graceful shutdown has begun.
///
/// The application triggers it (typically on `SIGTERM`), hands [`Shutdown::signalled`] to
/// `axum::serve(..).with_graceful_shutdown(..)` so the server stops accepting and drains, and
/// gives a clone to [`PartialPostReplayLayer`](crate::replay::PartialPostReplayLayer), which
/// then hands every request whose body is still arriving back to the proxy
/// (`PROTOCOL.md` part A, server 1).
///
/// ```
/// use handoff_server::Shutdown;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let shutdown = Shutdown::new();
/// let signalled = shutdown.signalled();
/// assert!(!shutdown.is_triggered());
///
/// shutdown.clone().trigger();
/// signalled.await;
/// assert!(shutdown.is_triggered());
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A handle that has not been triggered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Begins graceful shutdown. Triggering twice is harmless.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether [`trigger`](Self::trigger) was called on this handle or a clone of it.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// A future that completes once shutdown has been triggered (at once if it already was).
    pub fn signalled(&self) -> Signalled {
        Signalled {
            inner: self.token.clone().cancelled_owned(),
        }
    }
}

pin_project! {
    /// The future returned by [`Shutdown::signalled`].
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct Signalled {
        #[pin]
        inner: WaitForCancellationFutureOwned,
    }
}

impl Future for Signalled {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().inner.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_trigger() {
        let shutdown = Shutdown::new();
        let waiters: Vec<_> = (0..3).map(|_| tokio::spawn(shutdown.signalled())).collect();
        tokio::task::yield_now().await;
        assert!(waiters.iter().all(|w| !w.is_finished()));
        shutdown.clone().trigger();
        for waiter in waiters {
            waiter.await.unwrap();
        }
        shutdown.signalled().await;
    }
}
