//! What remains to send of one client request, owned by the attempt that sends it.
//!
//! Attempt `k` forwards a prefix of the client's body; when it is answered `379`, its origin
//! echoes those bytes back (part A, server 4) and what remains is "the echo, then whatever
//! came after". A [`Chain`] is exactly that: the echoes still to send (a stack, the newest
//! on top, each read from its spool and checked as it goes), then the rest of the client's
//! body, then the client's trailers. The response future moves the chain from an attempt
//! that was handed back to the next one (intermediary 2); it also counts and tags what the
//! current attempt sent, so that the next `379` can be checked (intermediary 1 and 6).
//!
//! A replay that is itself handed back while it still sends an older echo pushes its own
//! echo on top: the bytes it forwarded are a prefix of what remains below.

use std::error::Error;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use handoff_spool::SpoolReader;
use http::uri::Authority;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::check::{EchoKey, StreamTag};
use super::error::Kind;
use super::prefetch::{EchoOverflow, EchoStalled};
use super::stats::ReplayStats;
use super::verify::EchoCheck;
use crate::BoxError;

pub(super) struct Chain<B> {
    /// Echoes still to send, the newest last.
    echoes: Vec<PendingEcho>,
    client: Client<B>,
    /// The client's trailers, once its body yielded them: a replay sends them again after
    /// the echo and the rest of the body (a `379`'s echo carries body bytes only).
    trailers: Option<HeaderMap>,
    /// What the attempt that owns the chain sent.
    sent: Sent,
    /// Echoed bytes sent on or discarded so far, for the response future's hold timer.
    echo_progress: u64,
    stats: ReplayStats,
}

/// One echo still to send: read from its spool, checked frame by frame.
pub(super) struct PendingEcho {
    reader: SpoolReader,
    check: EchoCheck,
    backend: Authority,
}

impl PendingEcho {
    pub(super) fn new(reader: SpoolReader, check: EchoCheck, backend: Authority) -> Self {
        PendingEcho {
            reader,
            check,
            backend,
        }
    }
}

enum Client<B> {
    Streaming(Pin<Box<B>>),
    Ended,
    Failed,
}

/// What one attempt sent: the count and running tag of its bytes (part A, intermediary 1
/// and 6), and whether it sent the trailers.
pub(super) struct Sent {
    pub(super) bytes: u64,
    /// `None` without a key (the request is never replayed).
    pub(super) tag: Option<StreamTag>,
    trailers: bool,
}

impl Sent {
    fn new(key: Option<&EchoKey>) -> Self {
        Sent {
            bytes: 0,
            tag: key.map(StreamTag::new),
            trailers: false,
        }
    }

    fn record(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        if let Some(tag) = &mut self.tag {
            tag.update(data);
        }
    }
}

/// Why a chain stopped.
pub(super) enum Failure {
    /// An echo is wrong, or could not be read: the request fails.
    Echo(Kind),
    /// The client's body failed: its error goes upstream as is.
    Client(BoxError),
}

impl<B> Chain<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    pub(super) fn new(body: B, key: Option<&EchoKey>, stats: ReplayStats) -> Self {
        Chain {
            echoes: Vec::new(),
            client: Client::Streaming(Box::pin(body)),
            trailers: None,
            sent: Sent::new(key),
            echo_progress: 0,
            stats,
        }
    }

    /// What the attempt that owned the chain sent; the next attempt starts from nothing.
    pub(super) fn take_sent(&mut self, key: Option<&EchoKey>) -> Sent {
        std::mem::replace(&mut self.sent, Sent::new(key))
    }

    /// The echo of the attempt that was just handed back goes first (part A,
    /// intermediary 2).
    pub(super) fn push_echo(&mut self, echo: PendingEcho) {
        self.echoes.push(echo);
    }

    /// Whether echoed bytes are still to be sent (and verified).
    pub(super) fn echo_pending(&self) -> bool {
        !self.echoes.is_empty()
    }

    pub(super) fn echo_progress(&self) -> u64 {
        self.echo_progress
    }

    /// The next frame for the attempt that owns the chain: echoed bytes first, then the
    /// client's, then its trailers. Counts and tags what it yields.
    pub(super) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Failure>>> {
        match ready!(self.poll_echo(cx)) {
            Some(Ok(data)) => {
                let _held = self.stats.hold(data.len() as u64);
                self.sent.record(&data);
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            Some(Err(kind)) => return Poll::Ready(Some(Err(Failure::Echo(kind)))),
            None => {}
        }
        self.poll_client(cx)
    }

    /// Reads every pending echo to its end, checking it, and drops the bytes: the layer's
    /// own reading when nobody pulls the chain any more (see `future`). `Ok` once every
    /// echo is verified.
    pub(super) fn poll_discard_echoes(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Kind>> {
        loop {
            match ready!(self.poll_echo(cx)) {
                None => return Poll::Ready(Ok(())),
                Some(Ok(_discarded)) => {}
                Some(Err(kind)) => return Poll::Ready(Err(kind)),
            }
        }
    }

    /// A checked frame of the top echo; `None` when no echo is pending. The frame that
    /// completes an echo is yielded only if the echo matched (part A, intermediary 6).
    fn poll_echo(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Kind>>> {
        loop {
            let Some(top) = self.echoes.last_mut() else {
                return Poll::Ready(None);
            };
            let data = match ready!(Pin::new(&mut top.reader).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => data,
                    _ => continue,
                },
                Some(Err(err)) => return Poll::Ready(Some(Err(read_failure(err, &top.check)))),
                // A complete echo is popped with its last frame: this one ended short.
                None => return Poll::Ready(Some(Err(top.check.ended(None)))),
            };
            self.stats.add_echoed(data.len() as u64);
            match top.check.feed(&data) {
                Ok(false) => {}
                Ok(true) => {
                    tracing::debug!(backend = %top.backend, "echo verified");
                    self.echoes.pop();
                }
                Err(kind) => return Poll::Ready(Some(Err(kind))),
            }
            self.echo_progress += data.len() as u64;
            return Poll::Ready(Some(Ok(data)));
        }
    }

    /// The rest of the client's body, once every echo was sent on.
    fn poll_client(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Failure>>> {
        let polled = match &mut self.client {
            Client::Streaming(body) => body.as_mut().poll_frame(cx),
            Client::Ended => return Poll::Ready(self.resend_trailers().map(Ok)),
            Client::Failed => return Poll::Ready(Some(Err(Failure::Echo(Kind::ClientBody)))),
        };
        match ready!(polled) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let _held = self.stats.hold(data.len() as u64);
                    self.sent.record(data);
                }
                if let Some(trailers) = frame.trailers_ref() {
                    // Kept for a replay: the origin may hand the request back after it got
                    // them, and its echo carries body bytes only.
                    self.trailers = Some(trailers.clone());
                    self.sent.trailers = true;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(err)) => {
                self.client = Client::Failed;
                Poll::Ready(Some(Err(Failure::Client(err.into()))))
            }
            // hyper stops polling after the trailers, so this is where a replay whose
            // client already ended sees the end: it still sends the kept trailers.
            None => {
                self.client = Client::Ended;
                Poll::Ready(self.resend_trailers().map(Ok))
            }
        }
    }

    /// The end of a replay's body: the client's trailers first, if an earlier attempt
    /// forwarded them, then the end.
    fn resend_trailers(&mut self) -> Option<Frame<Bytes>> {
        if self.sent.trailers {
            return None;
        }
        self.sent.trailers = true;
        self.trailers.clone().map(Frame::trailers)
    }

    pub(super) fn is_end_stream(&self) -> bool {
        !self.echo_pending()
            // Not while kept trailers are still to be re-sent.
            && (self.trailers.is_none() || self.sent.trailers)
            && match &self.client {
                Client::Streaming(body) => body.is_end_stream(),
                Client::Ended => true,
                Client::Failed => false,
            }
    }

    /// What is left: the unread echoes, then the rest of the client's body.
    pub(super) fn size_hint(&self) -> SizeHint {
        let echoed: u64 = self.echoes.iter().map(|e| e.check.remaining()).sum();
        let client = match &self.client {
            Client::Streaming(body) => body.size_hint(),
            Client::Ended => SizeHint::with_exact(0),
            Client::Failed => return SizeHint::default(),
        };
        let mut hint = SizeHint::new();
        hint.set_lower(client.lower().saturating_add(echoed));
        if let Some(upper) = client.upper() {
            hint.set_upper(upper.saturating_add(echoed));
        }
        hint
    }
}

/// Why an echo's spool failed: what its task saw (see `prefetch`), or a spool error.
fn read_failure(err: Box<dyn Error + Send + Sync>, check: &EchoCheck) -> Kind {
    if let Some(stalled) = err.downcast_ref::<EchoStalled>() {
        return Kind::EchoTimeout {
            timeout: stalled.timeout,
        };
    }
    if err.is::<EchoOverflow>() {
        return check.too_long();
    }
    check.ended(Some(err))
}
