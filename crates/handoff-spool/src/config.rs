//! How a spool is bounded and where it spills.

use std::path::PathBuf;

use crate::budget::SpoolBudget;

/// Bytes a spool keeps in memory before it spills to a temporary file, by default.
pub const DEFAULT_MEMORY_LIMIT: usize = 128 * 1024;

/// The bounds of the spools made from it; cheap to clone and shared by every spool of a
/// layer.
///
/// ```
/// use handoff_spool::{SpoolBudget, SpoolConfig};
///
/// let config = SpoolConfig::new()
///     .memory_limit(16 * 1024)
///     .max_bytes(1 << 30)
///     .budget(SpoolBudget::new(8 << 30))
///     .dir(std::env::temp_dir());
/// assert_eq!(config.get_memory_limit(), 16 * 1024);
/// assert_eq!(config.get_max_bytes(), 1 << 30);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct SpoolConfig {
    pub(crate) memory_limit: usize,
    pub(crate) max_bytes: u64,
    pub(crate) budget: SpoolBudget,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) frame_size: usize,
}

impl SpoolConfig {
    /// 128 KiB in memory, no per-spool or total bound, files in the system's temp dir.
    pub fn new() -> Self {
        SpoolConfig {
            memory_limit: DEFAULT_MEMORY_LIMIT,
            max_bytes: u64::MAX,
            budget: SpoolBudget::unlimited(),
            dir: None,
            frame_size: crate::file::CHUNK,
        }
    }

    /// The bytes one spool keeps in memory; what comes after goes to its temporary file
    /// (like nginx's `client_body_buffer_size`). `0` spills from the first byte.
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// The most bytes one spool accepts, memory and disk together.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The budget every spool made from this configuration draws from.
    pub fn budget(mut self, budget: SpoolBudget) -> Self {
        self.budget = budget;
        self
    }

    /// Where temporary files are created (unlinked at once: nothing is left behind, even
    /// after a crash). Default: the system's temp dir.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The largest data frame the reader yields (default and most: 256 KiB). Bytes are
    /// copied in, so frame boundaries are not kept: the reader yields what is there, in
    /// frames of up to this size.
    pub fn frame_size(mut self, bytes: usize) -> Self {
        self.frame_size = bytes.clamp(1, crate::file::CHUNK);
        self
    }

    /// See [`memory_limit`](Self::memory_limit).
    pub fn get_memory_limit(&self) -> usize {
        self.memory_limit
    }

    /// See [`max_bytes`](Self::max_bytes).
    pub fn get_max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// See [`budget`](Self::budget).
    pub fn get_budget(&self) -> &SpoolBudget {
        &self.budget
    }
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig::new()
    }
}
