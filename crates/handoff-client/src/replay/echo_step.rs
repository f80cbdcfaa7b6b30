//! One frame pulled from the top pending echo, for the replay's body and for the layer
//! reading the echo itself (see `drain`).
//!
//! The echo is checked out of the stack and polled without the lock (see `source`), then
//! checked back in. A wrong echo fails the request; a checked frame counts as echo progress,
//! and the frame that completes an echo releases the detached attempt (part A,
//! intermediary 3). Nothing that may drop an upstream body is dropped under the lock: a
//! failure's garbage is dropped here, the old exchange by the caller.

use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;

use super::echo::{Echo, EchoBody, EchoData};
use super::error::Kind;
use super::source::{lock, Source};
use super::stats::Held;

/// What [`poll_top_echo`] did.
// Returned and taken apart at once: boxing the frame would cost an allocation per frame.
#[allow(clippy::large_enum_variant)]
pub(super) enum EchoStep<'a, B> {
    /// No echo is pending: the rest comes from the client's body.
    Empty(MutexGuard<'a, Source<B>>),
    /// Another puller has the top echo checked out; it wakes the others when it is back.
    CheckedOut(MutexGuard<'a, Source<B>>),
    /// The echo has no frame yet: it is back on the stack, and will wake the task.
    Pending(MutexGuard<'a, Source<B>>),
    /// The request failed, now or meanwhile. The lock is released.
    Failed(Kind),
    /// A checked frame of the echo.
    Frame(EchoFrame<'a, B>),
}

/// A checked frame, with what the caller needs to finish the step: it puts `echo` back at
/// `depth` while the echo is pending, then drops `source` and only then `old_exchange`.
pub(super) struct EchoFrame<'a, B> {
    pub(super) source: MutexGuard<'a, Source<B>>,
    /// Off the stack: back at `depth`, or dropped (after the lock) once complete.
    pub(super) echo: Echo,
    pub(super) depth: usize,
    pub(super) data: Bytes,
    /// `data` holds the last forwarded byte: the detached attempt is released.
    pub(super) complete: bool,
    /// The `379`'s body once the echo is complete, to drop outside the lock.
    pub(super) old_exchange: Option<EchoBody>,
    /// Counts `data` as held until the caller is done with it.
    pub(super) held: Held,
}

/// Pulls one frame from the top pending echo, starting under the lock `source` of `shared`.
///
/// `checked_in` runs under the lock as soon as the echo is checked back in, before
/// anything else: for the caller to wake whoever waited for it.
pub(super) fn poll_top_echo<'a, B>(
    shared: &'a Mutex<Source<B>>,
    mut source: MutexGuard<'a, Source<B>>,
    cx: &mut Context<'_>,
    checked_in: impl FnOnce(&mut Source<B>),
) -> EchoStep<'a, B> {
    if source.checked_out {
        return EchoStep::CheckedOut(source);
    }
    let Some(mut echo) = source.echoes.pop() else {
        return EchoStep::Empty(source);
    };

    // The echo is polled without the lock (see `source`).
    source.checked_out = true;
    let depth = source.echoes.len();
    let stats = source.stats.clone();
    drop(source);
    let polled = echo.poll_data(cx, &stats);
    let mut source = lock(shared);
    source.checked_out = false;
    checked_in(&mut source);

    let EchoData { data, complete } = match polled {
        Poll::Pending => {
            source.echoes.insert(depth, echo);
            return EchoStep::Pending(source);
        }
        Poll::Ready(Err(kind)) => {
            let garbage = source.fail(kind.clone());
            drop(source);
            drop((garbage, echo));
            return EchoStep::Failed(kind);
        }
        Poll::Ready(Ok(data)) => data,
    };
    let held = stats.hold(data.len() as u64);
    if let Some(kind) = &source.failure {
        let kind = kind.clone();
        drop(source);
        drop(echo);
        return EchoStep::Failed(kind);
    }
    source.echo_progress += data.len() as u64;
    // Part A, intermediary 3: once the echo holds every forwarded byte, the old exchange
    // is dropped, and releasing the detached attempt fails its body so hyper closes that
    // connection.
    let old_exchange = echo.take_body();
    if complete {
        source.release(echo.attempt);
    }
    EchoStep::Frame(EchoFrame {
        source,
        echo,
        depth,
        data,
        complete,
        old_exchange,
        held,
    })
}
