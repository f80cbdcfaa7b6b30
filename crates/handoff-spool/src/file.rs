//! The blocking file operations of a spool, run on tokio's blocking pool.
//!
//! Reads and writes are positional (`pread`/`pwrite`), so the writer and the reader share
//! one unlinked file without sharing a cursor.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::task::JoinHandle;

/// The most a spool moves to or from its file in one operation.
pub(crate) const CHUNK: usize = 256 * 1024;

/// A write in flight; yields the file (created by the first write).
pub(crate) type Write = JoinHandle<io::Result<Arc<File>>>;

/// A read in flight.
pub(crate) type Read = JoinHandle<io::Result<Bytes>>;

/// Writes `chunk` at `offset`, creating the unlinked temporary file first if there is none.
pub(crate) fn write(
    file: Option<Arc<File>>,
    dir: Option<PathBuf>,
    chunk: Bytes,
    offset: u64,
) -> Write {
    tokio::task::spawn_blocking(move || {
        let file = match file {
            Some(file) => file,
            None => Arc::new(match dir {
                Some(dir) => tempfile::tempfile_in(dir)?,
                None => tempfile::tempfile()?,
            }),
        };
        file.write_all_at(&chunk, offset)?;
        Ok(file)
    })
}

/// Reads `len` bytes at `offset`.
pub(crate) fn read(file: Arc<File>, offset: u64, len: usize) -> Read {
    tokio::task::spawn_blocking(move || {
        let mut buf = BytesMut::zeroed(len);
        file.read_exact_at(&mut buf, offset)?;
        Ok(buf.freeze())
    })
}

/// A blocking task that panicked or was cancelled, as an I/O error.
pub(crate) fn joined<T>(result: Result<io::Result<T>, tokio::task::JoinError>) -> io::Result<T> {
    result.unwrap_or_else(|err| Err(io::Error::other(err)))
}
