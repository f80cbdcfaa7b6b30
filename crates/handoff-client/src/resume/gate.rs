//! [`Gate`]: `Expect: 100-continue` from the client's side. The body waits for the server's
//! `100 Continue` (or any interim response), at most a short timeout, before its first byte,
//! so that a resumable server's locations are known before anything could need them
//! (docs/PROTOCOL.md part B.1): every cut after that point can be resumed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;

/// The opening side, held by the interim-response callback.
#[derive(Debug, Clone, Default)]
pub(crate) struct Opener {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    open: AtomicBool,
    waker: AtomicWaker,
}

impl Opener {
    /// Lets the body go.
    pub(crate) fn open(&self) {
        self.shared.open.store(true, Ordering::Release);
        self.shared.waker.wake();
    }

    /// The body's side, which waits at most `timeout` (servers that ignore `Expect` send no
    /// `100`; RFC 9110 §10.1.1 lets the client go on after a while).
    pub(crate) fn gate(&self, timeout: Duration) -> Gate {
        Gate {
            shared: self.shared.clone(),
            timeout: Some(timeout),
            sleep: None,
        }
    }
}

/// The body's side of the gate.
#[derive(Debug)]
pub(crate) struct Gate {
    shared: Arc<Shared>,
    timeout: Option<Duration>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Gate {
    /// Ready once the interim response came or the timeout passed.
    pub(crate) fn poll_open(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.shared.waker.register(cx.waker());
        if self.shared.open.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        if let Some(timeout) = self.timeout.take() {
            self.sleep = Some(Box::pin(tokio::time::sleep(timeout)));
        }
        match self.sleep.as_mut() {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_on_the_interim_response_or_after_the_timeout() {
        let opener = Opener::default();
        let mut gate = opener.gate(Duration::from_secs(1));
        let waiter =
            tokio::spawn(async move { std::future::poll_fn(|cx| gate.poll_open(cx)).await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        opener.open();
        waiter.await.unwrap();

        let mut gate = Opener::default().gate(Duration::from_secs(1));
        let started = tokio::time::Instant::now();
        std::future::poll_fn(|cx| gate.poll_open(cx)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }
}
