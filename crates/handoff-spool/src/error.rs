//! Why a spool refused bytes.

use std::fmt;
use std::io;

/// What [`SpoolWriter`](crate::SpoolWriter) reports when it cannot take more bytes.
#[derive(Debug)]
#[non_exhaustive]
pub enum SpoolError {
    /// The spool holds its [`max_bytes`](crate::SpoolConfig::max_bytes).
    TooLarge {
        /// The per-spool bound.
        max: u64,
    },
    /// The shared [`SpoolBudget`](crate::SpoolBudget) has no room left.
    BudgetExhausted {
        /// The budget's limit.
        limit: u64,
    },
    /// Creating or writing the temporary file failed.
    Io(io::Error),
    /// The reader was dropped: nobody will read what the writer would add.
    ReaderGone,
}

impl SpoolError {
    /// Whether a bound refused the bytes (as opposed to a failure).
    pub fn is_full(&self) -> bool {
        matches!(
            self,
            SpoolError::TooLarge { .. } | SpoolError::BudgetExhausted { .. }
        )
    }
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::TooLarge { max } => write!(f, "spool full: it holds its {max} bytes"),
            SpoolError::BudgetExhausted { limit } => {
                write!(f, "spool budget of {limit} bytes exhausted")
            }
            SpoolError::Io(err) => write!(f, "spool file: {err}"),
            SpoolError::ReaderGone => f.write_str("the spool's reader is gone"),
        }
    }
}

impl std::error::Error for SpoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpoolError::Io(err) => Some(err),
            _ => None,
        }
    }
}

/// The error a [`SpoolReader`](crate::SpoolReader) yields when its writer was dropped
/// without [`finish`](crate::SpoolWriter::finish) or [`fail`](crate::SpoolWriter::fail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterGone;

impl fmt::Display for WriterGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the spool's writer stopped before the end")
    }
}

impl std::error::Error for WriterGone {}
