//! A byte budget shared by many spools: the bound on what all of them hold together.
//!
//! A per-spool bound alone lets the total grow with the number of spools, which an outsider
//! controls (one spool per upload in flight). Every spool made with one [`SpoolBudget`]
//! draws from it; a spool gives its bytes back when it is dropped.

use std::fmt;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A shared limit on the bytes held by spools (memory and disk together).
///
/// ```
/// use handoff_spool::SpoolBudget;
///
/// let budget = SpoolBudget::new(1 << 20);
/// assert_eq!(budget.limit(), 1 << 20);
/// assert_eq!(budget.available(), 1 << 20);
/// ```
#[derive(Clone)]
pub struct SpoolBudget {
    limit: u64,
    bytes: Arc<Semaphore>,
}

impl SpoolBudget {
    /// A budget of `limit` bytes (capped at what a semaphore can count, about 2^61).
    pub fn new(limit: u64) -> Self {
        let limit = limit.min(Semaphore::MAX_PERMITS as u64);
        SpoolBudget {
            limit,
            bytes: Arc::new(Semaphore::new(limit as usize)),
        }
    }

    /// A budget that never refuses (for a spool whose only bound is its own).
    pub fn unlimited() -> Self {
        SpoolBudget::new(u64::MAX)
    }

    /// The configured limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes not held by any spool right now.
    pub fn available(&self) -> u64 {
        self.bytes.available_permits() as u64
    }

    /// Bytes held by spools right now.
    pub fn used(&self) -> u64 {
        self.limit - self.available()
    }

    pub(crate) fn reservation(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            permit: None,
            held: 0,
        }
    }
}

impl fmt::Debug for SpoolBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpoolBudget")
            .field("limit", &self.limit)
            .field("used", &self.used())
            .finish()
    }
}

/// The part of a budget one spool holds; given back when dropped.
pub(crate) struct Reservation {
    budget: SpoolBudget,
    permit: Option<OwnedSemaphorePermit>,
    held: u64,
}

impl Reservation {
    /// Makes sure `bytes` in all are held, taking the difference from the budget. `false`
    /// (and nothing taken) if the budget cannot give it.
    pub(crate) fn hold(&mut self, bytes: u64) -> bool {
        if bytes <= self.held {
            return true;
        }
        let mut more = bytes - self.held;
        let mut taken: Option<OwnedSemaphorePermit> = None;
        // One acquisition counts at most `u32::MAX` permits.
        while more > 0 {
            let step = more.min(u64::from(u32::MAX));
            match self
                .budget
                .bytes
                .clone()
                .try_acquire_many_owned(step as u32)
            {
                Ok(permit) => match &mut taken {
                    Some(all) => all.merge(permit),
                    None => taken = Some(permit),
                },
                // Dropping `taken` gives back what this call took.
                Err(_) => return false,
            }
            more -= step;
        }
        if let Some(permit) = taken {
            match &mut self.permit {
                Some(held) => held.merge(permit),
                None => self.permit = Some(permit),
            }
        }
        self.held = bytes;
        true
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("held", &self.held)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_limit_and_give_back_on_drop() {
        let budget = SpoolBudget::new(10);
        let mut first = budget.reservation();
        let mut second = budget.reservation();
        assert!(first.hold(6));
        assert!(!second.hold(5), "6 + 5 is over the limit");
        assert_eq!(budget.used(), 6, "a refused hold takes nothing");
        assert!(second.hold(4));
        assert!(first.hold(6), "already held");
        assert_eq!(budget.used(), 10);
        drop(first);
        assert_eq!(budget.used(), 4);
        assert!(second.hold(10));
        assert_eq!(budget.used(), 10);
        drop(second);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn unlimited_is_huge_but_counts() {
        let budget = SpoolBudget::unlimited();
        let mut r = budget.reservation();
        assert!(r.hold(1 << 31));
        assert_eq!(budget.used(), 1 << 31);
    }
}
