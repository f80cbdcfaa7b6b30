//! The per-connection handle through which handlers arm and send interim responses.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::task::AtomicWaker;
use http::{HeaderMap, Version};

use super::head::encode_continue;
use super::splice::Splice;

/// State shared by an [`InterimStream`](super::InterimStream) and its handles.
pub(super) struct Shared {
    splice: Mutex<Splice>,
    /// The task that last polled the stream: woken when a handle owes the socket bytes.
    connection: AtomicWaker,
}

impl Shared {
    pub(super) fn new() -> Self {
        Self {
            splice: Mutex::new(Splice::new()),
            connection: AtomicWaker::new(),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Splice> {
        // Nothing in `Splice` is left half-done by a panic: carry on with it.
        self.splice.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn register(&self, waker: &std::task::Waker) {
        self.connection.register(waker);
    }
}

/// Arms and sends HTTP/1.1 `100 Continue` interim responses with headers on one connection.
///
/// Cheap to clone; every clone acts on the same connection. Get one from
/// [`InterimStream::handle`](super::InterimStream::handle) or, in a handler, from the
/// request extensions ([`AddInterimHandle`](super::AddInterimHandle) puts it there). See the
/// [module docs](super) for an example.
#[derive(Clone)]
pub struct InterimHandle {
    shared: Arc<Shared>,
}

impl InterimHandle {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Replaces the next bare `HTTP/1.1 100 Continue` hyper writes on this connection with
    /// one that carries `headers`.
    ///
    /// hyper writes that `100` when the handler first polls the body of a request that
    /// carried `Expect: 100-continue`, so arm before reading the body. One arm is used by one
    /// `100`; arming again replaces the headers. Returns false, and arms nothing, on an
    /// HTTP/2 connection or when the head would exceed
    /// [`MAX_INTERIM_BYTES`](super::MAX_INTERIM_BYTES).
    #[must_use = "arming fails on HTTP/2 and for oversized heads"]
    pub fn arm_continue(&self, headers: &HeaderMap) -> bool {
        let Some(head) = encode_continue(headers) else {
            return false;
        };
        self.shared.lock().arm(head)
    }

    /// Cancels an arm whose `100` has not been written.
    ///
    /// Call it when the request ends without its body ever being polled (no `100` was
    /// written), so that a later request on the same keep-alive connection does not get
    /// these headers. Does nothing once the `100` went out.
    pub fn disarm(&self) {
        let gave_back = self.shared.lock().disarm();
        if gave_back {
            self.shared.connection.wake();
        }
    }

    /// Queues one more `100 Continue` interim response carrying `headers` (say
    /// `Acknowledge: N` while the upload runs).
    ///
    /// It is written after the armed `100` and before any byte of the final response, never
    /// inside hyper's bytes: if the armed `100` was written and hyper has written nothing
    /// since, it goes out as soon as the socket takes it (the connection is woken for it);
    /// if the armed `100` is still awaited, it goes out right behind it (and is dropped
    /// with it by [`disarm`](Self::disarm)). Returns false, and queues nothing, when no `100`
    /// is armed or pending on this connection, when the final response has begun, on
    /// HTTP/2, or when the interim bytes not yet written would exceed [`MAX_INTERIM_BYTES`](super::MAX_INTERIM_BYTES).
    #[must_use = "the interim response is refused once the final response began"]
    pub fn send_continue(&self, headers: &HeaderMap) -> bool {
        let Some(head) = encode_continue(headers) else {
            return false;
        };
        let queued = self.shared.lock().send(&head);
        if queued {
            self.shared.connection.wake();
        }
        queued
    }

    /// Whether hyper wrote the armed `100 Continue` (it was rewritten, and goes out before
    /// any later byte). Reset by the next [`arm_continue`](Self::arm_continue).
    ///
    /// hyper buffers the `100` before it hands the first body bytes to the handler, and
    /// writes it a moment later: a handler that already has body bytes may still see false.
    pub fn continue_sent(&self) -> bool {
        self.shared.lock().continue_sent()
    }

    /// Whether a `100` is armed and hyper has not written it yet.
    pub fn is_armed(&self) -> bool {
        self.shared.lock().is_armed()
    }

    /// Called with every request served on the connection: an HTTP/2 request means the
    /// connection's bytes are frames, which are never rewritten.
    pub(super) fn on_request(&self, version: Version) {
        if version == Version::HTTP_2 {
            self.shared.lock().disable();
        }
    }
}

impl fmt::Debug for InterimHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("InterimHandle")
            .field(&*self.shared.lock())
            .finish()
    }
}
