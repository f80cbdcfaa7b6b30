//! [`Core`]: what every request of one layer shares: the store, the bounds, the paths and the
//! registry of this process's runs.

use std::sync::Arc;

use super::paths::Paths;
use super::runs::Runs;
use super::store::{Quota, Store};
use super::{Limits, OwnerOf};

#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) limits: Limits,
    pub(crate) paths: Paths,
    pub(crate) owner_of: OwnerOf,
    pub(crate) runs: Runs,
    pub(crate) sweeper: super::sweep::Sweeper,
}

impl Core {
    pub(crate) fn quota(&self) -> Quota {
        Quota {
            max_open: self.limits.max_open,
            max_open_per_owner: self.limits.max_open_per_owner,
        }
    }
}
