//! [`ResumableLayer`]: the configuration.

use std::sync::Arc;

use tower::Layer;

use super::core::Core;
use super::paths::Paths;
use super::runs::Runs;
use super::store::{MemoryStore, Store};
use super::sweep::Sweeper;
use super::{Limits, OwnerOf, Resumable};

/// The default path prefix of the resources: `/.resumable/`.
pub const DEFAULT_PREFIX: &str = "/.resumable/";

/// Applies [`Resumable`] to a service. See the [module docs](super) for an example.
///
/// Every service made from one layer (and from its clones) shares one store and one
/// registry of running operations.
#[must_use]
#[derive(Debug, Clone)]
pub struct ResumableLayer {
    store: Arc<dyn Store>,
    limits: Limits,
    prefix: String,
    owner_of: OwnerOf,
    runs: Runs,
    sweeper: Sweeper,
}

impl ResumableLayer {
    /// A layer over a [`MemoryStore`] with default [`Limits`].
    pub fn new() -> Self {
        Self::with_store(MemoryStore::new())
    }

    /// A layer over `store` (a [`MemoryStore`], a [`DiskStore`](super::store::DiskStore),
    /// or your own) with default [`Limits`].
    pub fn with_store(store: impl Store) -> Self {
        Self::with_shared_store(Arc::new(store))
    }

    /// A layer over a store shared with other code.
    pub fn with_shared_store(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            limits: Limits::default(),
            prefix: DEFAULT_PREFIX.to_owned(),
            owner_of: OwnerOf::default(),
            runs: Runs::default(),
            sweeper: Sweeper::default(),
        }
    }

    /// Sets the bounds.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Serves the resources under `prefix` (default [`DEFAULT_PREFIX`]) on the authority of
    /// the request that created them. Requests under the prefix never reach the inner
    /// service.
    ///
    /// # Panics
    ///
    /// If `prefix` names no path segment (`""`, `"/"`: the layer would take every route
    /// over) or holds a byte that is not allowed in a path: a configuration mistake.
    pub fn prefix(mut self, prefix: &str) -> Self {
        let trimmed = prefix.trim_matches('/');
        let valid = !trimmed.is_empty()
            && trimmed
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b));
        assert!(
            valid,
            "invalid resumable-request prefix {prefix:?}: it needs a path segment of plain path characters"
        );
        self.prefix = prefix.to_owned();
        self
    }

    /// Names the owner of each request (default [`OwnerOf::authorization`]).
    pub fn owner_of(mut self, owner_of: OwnerOf) -> Self {
        self.owner_of = owner_of;
        self
    }

    pub(crate) fn core(&self) -> Arc<Core> {
        Arc::new(Core {
            store: self.store.clone(),
            limits: self.limits,
            paths: Paths::new(&self.prefix),
            owner_of: self.owner_of.clone(),
            runs: self.runs.clone(),
            sweeper: self.sweeper.clone(),
        })
    }
}

impl Default for ResumableLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for ResumableLayer {
    type Service = Resumable<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Resumable::from_core(inner, self.core())
    }
}
