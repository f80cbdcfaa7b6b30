//! [`Upload`]: the request body a caller gives the resume layer.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use super::source::{FileSource, Source};

/// A re-readable request body: what the caller of a [`Resume`](super::Resume) service sends.
///
/// ```
/// use bytes::Bytes;
/// use handoff_client::resume::Upload;
///
/// let upload = Upload::from(Bytes::from_static(b"payload"));
/// assert_eq!(upload.len(), Some(7));
/// ```
#[derive(Clone)]
pub struct Upload {
    pub(super) source: Arc<dyn Source>,
}

impl Upload {
    /// Any [`Source`] (for example a [`StreamSource`](super::StreamSource)).
    pub fn new(source: impl Source) -> Self {
        Self {
            source: Arc::new(source),
        }
    }

    /// The body's length, if known.
    pub fn len(&self) -> Option<u64> {
        self.source.len_hint()
    }

    /// Whether the body is known to be empty.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

impl From<Bytes> for Upload {
    fn from(bytes: Bytes) -> Self {
        Self::new(bytes)
    }
}

impl From<FileSource> for Upload {
    fn from(file: FileSource) -> Self {
        Self::new(file)
    }
}

impl fmt::Debug for Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upload").field("len", &self.len()).finish()
    }
}
