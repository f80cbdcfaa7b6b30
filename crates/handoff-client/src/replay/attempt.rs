//! One upstream attempt of a client request: the state its body and the response future
//! share.
//!
//! An attempt is in one of three stages:
//!
//! - [`Stage::Sending`]: its body owns the [`Chain`] and sends it. The response future takes
//!   the chain away on a `379` (part A, intermediary 2), or when the attempt's upstream
//!   stopped pulling the echo and the layer reads it itself (see `future`).
//! - [`Stage::Parked`]: the chain was taken. The body forwards nothing more and stays
//!   pending: it neither ends (hyper would refuse a body shorter than its
//!   `Content-Length`, or take a chunked one as complete) nor lingers for ever.
//! - [`Stage::Ended`]: the body fails with the kind, and hyper ends that exchange: a
//!   handed-back attempt once its whole echo is spooled (intermediary 3), a taken-over one
//!   once the response passed for it is done, any attempt when the request fails
//!   (intermediary 4 and 6).
//!
//! The chain is taken under the stage's lock, which the body holds while it polls the
//! chain: the count of forwarded bytes cannot move between being read and the attempt
//! being stopped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::task::AtomicWaker;

use super::chain::Chain;
use super::error::Kind;

pub(super) struct Attempt<B> {
    stage: Mutex<Stage<B>>,
    /// The task that polls this attempt's body.
    pub(super) body_waker: AtomicWaker,
    /// The response future, when it waits for this attempt's echo to be verified.
    pub(super) future_waker: AtomicWaker,
    /// An upstream took this attempt: hyper wrote its head (asked the body's size or end)
    /// or polled its body.
    taken: AtomicBool,
    /// The body was dropped.
    dropped: AtomicBool,
}

// One per attempt, inside its `Arc`: boxing the chain would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(super) enum Stage<B> {
    Sending(Chain<B>),
    Parked,
    Ended(Kind),
}

impl<B> Attempt<B> {
    pub(super) fn new(chain: Chain<B>) -> Arc<Self> {
        Arc::new(Attempt {
            stage: Mutex::new(Stage::Sending(chain)),
            body_waker: AtomicWaker::new(),
            future_waker: AtomicWaker::new(),
            taken: AtomicBool::new(false),
            dropped: AtomicBool::new(false),
        })
    }

    /// A panic in a body poll cannot leave the stage half-changed in a way that matters
    /// more than failing the request, so a poisoned lock is used as is.
    pub(super) fn lock(&self) -> MutexGuard<'_, Stage<B>> {
        self.stage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the chain from a sending attempt, which parks. The error the attempt ended
    /// with, if it did.
    pub(super) fn take_chain(&self) -> Result<Chain<B>, Kind> {
        let mut stage = self.lock();
        match std::mem::replace(&mut *stage, Stage::Parked) {
            Stage::Sending(chain) => Ok(chain),
            Stage::Ended(kind) => {
                *stage = Stage::Ended(kind.clone());
                Err(kind)
            }
            // Only the response future parks an attempt, once.
            Stage::Parked => Err(Kind::TakenOver),
        }
    }

    /// Takes the chain, as [`take_chain`](Self::take_chain) does, only from a sending
    /// attempt whose chain passes `check` under the lock.
    pub(super) fn take_chain_if(&self, check: impl FnOnce(&Chain<B>) -> bool) -> Option<Chain<B>> {
        let mut stage = self.lock();
        match &*stage {
            Stage::Sending(chain) if check(chain) => {}
            _ => return None,
        }
        match std::mem::replace(&mut *stage, Stage::Parked) {
            Stage::Sending(chain) => Some(chain),
            other => {
                *stage = other;
                None
            }
        }
    }

    /// Ends the attempt with `kind` unless it ended already, and wakes its body. Returns
    /// the chain if it was still sending, for the caller to drop outside the lock.
    #[must_use = "drop the chain outside the lock"]
    pub(super) fn end(&self, kind: Kind) -> Option<Chain<B>> {
        let previous = {
            let mut stage = self.lock();
            if let Stage::Ended(_) = &*stage {
                return None;
            }
            std::mem::replace(&mut *stage, Stage::Ended(kind))
        };
        self.body_waker.wake();
        match previous {
            Stage::Sending(chain) => Some(chain),
            Stage::Parked | Stage::Ended(_) => None,
        }
    }

    /// Ends a parked attempt: its echo task is done (with [`Kind::Detached`] once the echo
    /// is spooled in full), or the response passed for it is done ([`Kind::TakenOver`]).
    pub(super) fn end_parked(&self, kind: Kind) {
        {
            let mut stage = self.lock();
            if !matches!(&*stage, Stage::Parked) {
                return;
            }
            *stage = Stage::Ended(kind);
        }
        self.body_waker.wake();
    }

    /// The kind the attempt ended with, if it did.
    pub(super) fn failure(&self) -> Option<Kind> {
        match &*self.lock() {
            Stage::Ended(kind) => Some(kind.clone()),
            Stage::Sending(_) | Stage::Parked => None,
        }
    }

    pub(super) fn set_taken(&self) {
        // Read first: every poll asks, and only the first one needs to write.
        if !self.taken.load(Ordering::Relaxed) {
            self.taken.store(true, Ordering::Relaxed);
        }
    }

    pub(super) fn is_taken(&self) -> bool {
        self.taken.load(Ordering::Relaxed)
    }

    pub(super) fn set_dropped(&self) {
        self.dropped.store(true, Ordering::Release);
        self.future_waker.wake();
    }

    pub(super) fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }
}
