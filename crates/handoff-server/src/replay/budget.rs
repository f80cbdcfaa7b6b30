//! The bound on consumed bytes kept for echoes across all requests of a layer.
//!
//! The per-request bound (`max_echo_bytes`) alone lets memory grow with the number of
//! concurrent uploads, which an outsider controls. Every service made from one
//! [`PartialPostReplayLayer`](super::PartialPostReplayLayer) shares one budget.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A shared count of the bytes kept for echoes, with its limit.
#[derive(Clone)]
pub(super) struct EchoBudget {
    limit: usize,
    used: Arc<AtomicUsize>,
}

impl EchoBudget {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            limit,
            used: Arc::default(),
        }
    }

    /// An empty reservation against this budget.
    pub(super) fn reservation(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }

    pub(super) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

impl fmt::Debug for EchoBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EchoBudget")
            .field("limit", &self.limit)
            .field("used", &self.used())
            .finish()
    }
}

/// The part of the budget one request holds; given back when dropped.
#[derive(Debug)]
pub(super) struct Reservation {
    budget: EchoBudget,
    bytes: usize,
}

impl Reservation {
    /// Takes `bytes` more from the budget, or nothing if that would exceed its limit.
    pub(super) fn grow(&mut self, bytes: usize) -> bool {
        let used = &self.budget.used;
        let limit = self.budget.limit;
        let taken = used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
            now.checked_add(bytes).filter(|after| *after <= limit)
        });
        if taken.is_ok() {
            self.bytes += bytes;
        }
        taken.is_ok()
    }

    /// Gives `bytes` back (what a sent echo frame no longer needs).
    pub(super) fn shrink(&mut self, bytes: usize) {
        let bytes = bytes.min(self.bytes);
        self.budget.used.fetch_sub(bytes, Ordering::AcqRel);
        self.bytes -= bytes;
    }

    /// Moves this reservation out, leaving an empty one behind.
    pub(super) fn take(&mut self) -> Reservation {
        Reservation {
            budget: self.budget.clone(),
            bytes: std::mem::take(&mut self.bytes),
        }
    }

    /// Gives everything back now.
    pub(super) fn release(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
        self.bytes = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_limit_and_give_back_on_drop() {
        let budget = EchoBudget::new(10);
        let mut first = budget.reservation();
        let mut second = budget.reservation();
        assert!(first.grow(6));
        assert!(!second.grow(5), "6 + 5 is over the limit");
        assert!(second.grow(4));
        assert_eq!(budget.used(), 10);
        drop(first);
        assert_eq!(budget.used(), 4);
        let mut moved = second.take();
        assert_eq!(budget.used(), 4, "moving a reservation keeps it");
        drop(second);
        moved.shrink(3);
        assert_eq!(budget.used(), 1);
        moved.release();
        assert_eq!(budget.used(), 0);
        assert!(budget.reservation().grow(10));
        assert_eq!(budget.used(), 0, "the temporary reservation was dropped");
    }
}
