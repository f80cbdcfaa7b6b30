//! A spool of body bytes: memory first, then a temporary file, read back in order.
//!
//! tower-handoff keeps request-body bytes for a short while in two places: a shutting-down
//! origin keeps what its handler consumed, to echo it in a `379`; a proxy keeps the echo it
//! takes from that origin as fast as it comes, until the replacement origin has read it.
//! Both want the same thing, built once here: a single-writer, single-reader byte stream
//! that holds at most [`memory_limit`](SpoolConfig::memory_limit) bytes in memory (plus two
//! 256 KiB chunks on their way to disk), spills the rest to an unlinked temporary file
//! (`tempfile`, so nothing is left behind even after a crash), and has two bounds: bytes per
//! spool ([`max_bytes`](SpoolConfig::max_bytes)) and bytes of all spools together
//! ([`SpoolBudget`]).
//!
//! The reader may run while the writer still writes, or after it finished. File I/O runs
//! on tokio's blocking pool with positional reads and writes; neither half ever blocks the
//! task that polls it. Bytes are copied in, so a frame's larger buffer is never kept alive
//! by a small slice of it.
//!
//! ```
//! use bytes::Bytes;
//! use handoff_spool::{spool, SpoolBudget, SpoolConfig};
//! use http_body_util::BodyExt;
//! use std::future::poll_fn;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let budget = SpoolBudget::new(1 << 20);
//! let config = SpoolConfig::new().memory_limit(4).budget(budget.clone());
//! let (mut writer, reader) = spool(&config);
//! for part in ["hello ", "spooled ", "world"] {
//!     poll_fn(|cx| writer.poll_ready(cx)).await?;
//!     writer.push(part.as_bytes())?;
//! }
//! assert!(writer.has_spilled(), "past 4 bytes, the rest went to the file tier");
//! assert_eq!(budget.used(), 19);
//! writer.finish();
//! assert_eq!(reader.collect().await?.to_bytes(), Bytes::from("hello spooled world"));
//! assert_eq!(budget.used(), 0, "the spool gave its bytes back when it was dropped");
//! # Ok(())
//! # }
//! ```

mod budget;
mod config;
mod error;
mod file;
mod reader;
mod state;
mod writer;

use std::sync::{Arc, Mutex};

pub use self::budget::SpoolBudget;
pub use self::config::{SpoolConfig, DEFAULT_MEMORY_LIMIT};
pub use self::error::{SpoolError, WriterGone};
pub use self::reader::SpoolReader;
pub use self::writer::SpoolWriter;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A new, empty spool bounded by `config`.
pub fn spool(config: &SpoolConfig) -> (SpoolWriter, SpoolReader) {
    let state = state::State::new(config.budget.reservation());
    let shared = Arc::new(Mutex::new(state));
    (
        SpoolWriter::new(shared.clone(), config),
        SpoolReader::new(shared, config.frame_size),
    )
}

#[cfg(test)]
mod tests;
