//! Taking a `379`'s echo as fast as the origin sends it (part A, intermediary 3).
//!
//! An origin that hands a request back is shutting down, usually with a short drain
//! window. If the layer pulled its echo only as fast as the replacement origin reads the
//! replay, a slow replacement would keep the old origin's connection open past that
//! window, and the old origin's exit would cut the echo short. So each echo is read by its
//! own task into a spool (`handoff-spool`: memory, then an unlinked temporary file) as fast
//! as it arrives, and the replay reads the spool. Over HTTP/2 no echo waits on another's
//! flow-control window: each is drained at once.
//!
//! The task reads exactly the bytes that were forwarded to that origin (a frame that would
//! go past them fails the echo as too long), then lets the old exchange go: the attempt's body
//! is released (it fails, so hyper closes that connection) and the `379`'s body is dropped.
//! Checking the bytes stays with the reader ([`EchoCheck`](super::verify::EchoCheck), in the
//! chain), before the frame that completes them is sent on. Each wait for the origin's next
//! frame is bounded by `echo_timeout` (tower-http's `TimeoutBody`); waits for the spool's
//! disk writes are not counted.

use std::error::Error;
use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use handoff_spool::{spool, SpoolConfig, SpoolError, SpoolReader, SpoolWriter};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use tower_http::timeout::{TimeoutBody, TimeoutError};

use super::error::Kind;
use super::stats::ReplayStats;
use crate::BoxError;

/// The body of a `379`, boxed so the request body type does not depend on the response's.
pub(super) type EchoBody = UnsyncBoxBody<Bytes, BoxError>;

/// What the echo task does once it is done with the old exchange: `Ok` once it holds every
/// forwarded byte, or why it could not take them all. Either way the old attempt ends.
pub(super) type OnDone = Box<dyn FnOnce(Result<(), Kind>) + Send>;

/// Starts reading `echo`, of which `sent` bytes are expected, into a spool bounded by
/// `config`; returns the spool's reader. Refused when the spool's bounds cannot
/// hold `sent` bytes: the echo comes back with the error, for the caller to drop outside its
/// lock (it may hold a request body whose drop takes that lock).
pub(super) fn spawn(
    echo: EchoBody,
    sent: u64,
    config: &SpoolConfig,
    timeout: Duration,
    stats: ReplayStats,
    on_done: OnDone,
) -> Result<SpoolReader, (EchoBody, SpoolError)> {
    let (mut writer, reader) = spool(config);
    if let Err(err) = writer.reserve(sent) {
        return Err((echo, err));
    }
    let task = EchoTask {
        echo: Box::pin(TimeoutBody::new(timeout, echo)),
        writer,
        sent,
        timeout,
        stats,
    };
    tokio::spawn(task.run(on_done));
    Ok(reader)
}

struct EchoTask {
    echo: Pin<Box<TimeoutBody<EchoBody>>>,
    writer: SpoolWriter,
    sent: u64,
    timeout: Duration,
    stats: ReplayStats,
}

/// How the task stopped.
enum End {
    Complete,
    Short,
    /// What the reader gets, and why the old attempt ends.
    Failed(Box<dyn Error + Send + Sync>, Kind),
    ReaderGone,
}

enum Step {
    Data(Bytes),
    Skip,
    End,
    Failed(Box<dyn Error + Send + Sync>),
    /// The reader is gone (the request ended) or the spool failed.
    Stop(SpoolError),
}

impl EchoTask {
    async fn run(mut self, on_done: OnDone) {
        let mut received = 0u64;
        let end = loop {
            let data = match self.next().await {
                Step::Data(data) => data,
                Step::Skip => continue,
                Step::End => break End::Short,
                Step::Failed(err) if err.is::<TimeoutError>() => {
                    let timeout = self.timeout;
                    break End::Failed(
                        Box::new(EchoStalled { timeout }),
                        Kind::EchoTimeout { timeout },
                    );
                }
                Step::Failed(err) => break End::Failed(err, self.short(received)),
                Step::Stop(SpoolError::ReaderGone) => break End::ReaderGone,
                Step::Stop(err) => {
                    tracing::warn!(error = %err, "echo spool failed");
                    break End::Failed(Box::new(err), self.short(received));
                }
            };
            // Part A, intermediary 4: more echoed bytes than were forwarded. Nothing of the
            // frame goes in, so the reader fails before it could complete the echo.
            if data.len() as u64 > self.sent - received {
                let kind = Kind::EchoTooLong {
                    expected: self.sent,
                };
                break End::Failed(Box::new(EchoOverflow), kind);
            }
            if let Err(err) = self.writer.push(&data) {
                break End::Failed(Box::new(err), self.short(received));
            }
            self.stats.add_spooled(data.len() as u64);
            received += data.len() as u64;
            if received == self.sent {
                break End::Complete;
            }
        };
        let outcome = match end {
            End::Complete => {
                tracing::debug!(
                    bytes = received,
                    "echo taken in full; releasing the old exchange"
                );
                self.writer.finish();
                Ok(())
            }
            // Too short: the reader sees the end before the count and says so.
            End::Short => {
                let kind = self.short(received);
                self.writer.finish();
                Err(kind)
            }
            End::Failed(err, kind) => {
                self.writer.fail(err);
                Err(kind)
            }
            End::ReaderGone => Err(Kind::Abandoned),
        };
        // Whatever happened, the old exchange ends now, not when the replay gets this far
        // (its origin is draining). Dropping `self.echo` ends the 379's body.
        on_done(outcome);
    }

    fn short(&self, received: u64) -> Kind {
        Kind::EchoTooShort {
            expected: self.sent,
            received,
            source: None,
        }
    }

    /// The next frame of the echo, once the spool can take it; stops early if the reader
    /// goes away (the writer's waker is registered by `poll_ready`).
    async fn next(&mut self) -> Step {
        poll_fn(|cx| {
            match self.writer.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(err)) => return Poll::Ready(Step::Stop(err)),
                Poll::Ready(Ok(())) => {}
            }
            Poll::Ready(match std::task::ready!(self.echo.as_mut().poll_frame(cx)) {
                None => Step::End,
                Some(Err(err)) => Step::Failed(err),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => Step::Data(data),
                    // Trailers of a 379 carry nothing to replay.
                    _ => Step::Skip,
                },
            })
        })
        .await
    }
}

/// A frame of the echo went past the forwarded bytes; the reader reports it as too long.
#[derive(Debug, Clone, Copy)]
pub(super) struct EchoOverflow;

impl fmt::Display for EchoOverflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the echo went past the forwarded bytes")
    }
}

impl Error for EchoOverflow {}

/// The echo's origin sent nothing for `echo_timeout`; the reader reports it as a timeout.
#[derive(Debug, Clone, Copy)]
pub(super) struct EchoStalled {
    pub(super) timeout: Duration,
}

impl fmt::Display for EchoStalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no echoed bytes within {:?}", self.timeout)
    }
}

impl Error for EchoStalled {}
