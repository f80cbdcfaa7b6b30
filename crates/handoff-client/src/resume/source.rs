//! [`Source`]: an upload body that can be read again from an offset, so that a resume sends
//! only what the server does not hold (docs/PROTOCOL.md part B.4).

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::stream::{self, Stream, StreamExt};
use http_body::Body;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::BoxError;

/// The bytes of a source from some offset on.
pub type SourceStream = Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send>>;

/// The most bytes one chunk read from a file carries.
const FILE_CHUNK: usize = 64 * 1024;

/// An upload body that can be read again from an offset.
///
/// Implemented for [`Bytes`] (the bytes themselves), [`FileSource`] (a file, read from the
/// offset and streamed, never loaded whole) and [`StreamSource`] (any body, with a bounded
/// replay buffer).
///
/// ```
/// use bytes::Bytes;
/// use futures_util::StreamExt;
/// use handoff_client::resume::Source;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let body = Bytes::from_static(b"hello world");
/// assert_eq!(body.len_hint(), Some(11));
/// let mut rest = body.read_from(6).unwrap();
/// assert_eq!(rest.next().await.unwrap().unwrap(), "world");
/// # }
/// ```
pub trait Source: Send + Sync + 'static {
    /// The body's length, when known in advance.
    fn len_hint(&self) -> Option<u64>;

    /// The body's bytes from `offset` on. Fails if those bytes can no longer be produced
    /// (a [`StreamSource`] past its replay buffer).
    fn read_from(&self, offset: u64) -> Result<SourceStream, BoxError>;

    /// The server holds everything below `offset` durably (an `Acknowledge`, or a `HEAD`):
    /// a buffering source may free it. The default does nothing.
    fn release(&self, offset: u64) {
        let _ = offset;
    }

    /// Whether the source holds a bounded buffer that `Acknowledge` interim responses
    /// (docs/PROTOCOL.md part B.9) help free: the layer then asks for them. Default `false`.
    fn buffered(&self) -> bool {
        false
    }
}

impl Source for Bytes {
    fn len_hint(&self) -> Option<u64> {
        Some(self.len() as u64)
    }

    fn read_from(&self, offset: u64) -> Result<SourceStream, BoxError> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let rest = self.slice(start..);
        // Zero-copy slices of a file's chunk size, so that progress and the count of bytes
        // handed over move as the connection takes them.
        let chunks: Vec<_> = (0..rest.len())
            .step_by(FILE_CHUNK)
            .map(|at| Ok(rest.slice(at..(at + FILE_CHUNK).min(rest.len()))))
            .collect();
        Ok(Box::pin(stream::iter(chunks)))
    }
}

/// A file uploaded from disk: each read opens it, seeks to the offset and streams it in
/// 64 KiB chunks.
///
/// ```no_run
/// use handoff_client::resume::FileSource;
///
/// # #[tokio::main]
/// # async fn main() -> std::io::Result<()> {
/// let file = FileSource::open("upload.bin").await?;
/// println!("{} bytes", file.len());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FileSource {
    path: Arc<PathBuf>,
    len: u64,
}

impl FileSource {
    /// The file at `path`, whose length is read now (the upload's `Content-Length`).
    pub async fn open(path: impl Into<PathBuf>) -> io::Result<Self> {
        let path = path.into();
        let len = tokio::fs::metadata(&path).await?.len();
        Ok(Self {
            path: Arc::new(path),
            len,
        })
    }

    /// The file's length when it was opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file was empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Source for FileSource {
    fn len_hint(&self) -> Option<u64> {
        Some(self.len)
    }

    fn read_from(&self, offset: u64) -> Result<SourceStream, BoxError> {
        let path = self.path.clone();
        let end = self.len;
        let chunks = stream::try_unfold((None::<tokio::fs::File>, offset), move |(file, at)| {
            let path = path.clone();
            async move {
                if at >= end {
                    return Ok(None);
                }
                let mut file = match file {
                    Some(file) => file,
                    None => {
                        let mut file = tokio::fs::File::open(path.as_ref()).await?;
                        file.seek(io::SeekFrom::Start(at)).await?;
                        file
                    }
                };
                let want = FILE_CHUNK.min(usize::try_from(end - at).unwrap_or(FILE_CHUNK));
                let mut buf = vec![0; want];
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{} shrank while being uploaded", path.display()),
                    ));
                }
                buf.truncate(n);
                Ok::<_, io::Error>(Some((Bytes::from(buf), (Some(file), at + n as u64))))
            }
        });
        Ok(Box::pin(chunks.map(|chunk| chunk.map_err(BoxError::from))))
    }
}

/// Any body, kept in a bounded replay buffer so that a resume can start a little behind
/// what was sent.
///
/// The buffer holds at most `replay_buffer` bytes behind the body's read position; the
/// server's `Acknowledge` interim responses and `HEAD` offsets [release](Source::release)
/// what it holds durably. Bytes pushed out of a full buffer before the server acknowledged
/// them cannot be sent again: a resume that needs them fails with an error that says so.
///
/// ```
/// use bytes::Bytes;
/// use futures_util::StreamExt;
/// use handoff_client::resume::{Source, StreamSource};
/// use http_body_util::Full;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let source = StreamSource::new(Full::new(Bytes::from_static(b"abcdef")), 4, None);
/// let mut first = source.read_from(0).unwrap();
/// assert_eq!(first.next().await.unwrap().unwrap(), "abcdef");
/// // Only the last 4 bytes are kept: a resume from 2 works, from 1 it cannot.
/// let mut again = source.read_from(2).unwrap();
/// assert_eq!(again.next().await.unwrap().unwrap(), "cdef");
/// assert!(source.read_from(1).is_err());
/// # }
/// ```
pub struct StreamSource {
    shared: Arc<Mutex<Buffered>>,
    len: Option<u64>,
}

type BoxBody = Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>;

struct Buffered {
    body: Option<BoxBody>,
    /// The body failed: every later read fails too (its bytes cannot be produced again).
    failed: Option<String>,
    /// Only the newest stream reads the body: an older one (an abandoned attempt) stops,
    /// so the body's waker always belongs to the stream that matters.
    generation: u64,
    /// Bytes from `start` to `end` (the body's read position).
    chunks: VecDeque<Bytes>,
    start: u64,
    end: u64,
    max: u64,
}

impl StreamSource {
    /// Reads `body` on demand, keeping at most `replay_buffer` bytes for resumes. `len` is
    /// the body's length when known (needed to resume: a `PATCH` names the complete length).
    pub fn new<B>(body: B, replay_buffer: u64, len: Option<u64>) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let body = http_body_util::BodyExt::map_err(body, Into::into);
        Self {
            shared: Arc::new(Mutex::new(Buffered {
                body: Some(Box::pin(body)),
                failed: None,
                generation: 0,
                chunks: VecDeque::new(),
                start: 0,
                end: 0,
                max: replay_buffer,
            })),
            len,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buffered> {
        lock(&self.shared)
    }
}

fn lock(shared: &Mutex<Buffered>) -> MutexGuard<'_, Buffered> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Buffered {
    /// Drops buffered bytes below `offset`.
    fn release(&mut self, offset: u64) {
        while self.start < offset {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let drop = (offset - self.start).min(front.len() as u64);
            if drop == front.len() as u64 {
                self.chunks.pop_front();
            } else {
                *front = front.slice(drop as usize..);
            }
            self.start += drop;
        }
    }

    /// The buffered bytes at `offset`, if any.
    fn buffered_at(&self, offset: u64) -> Option<Bytes> {
        let mut at = self.start;
        for chunk in &self.chunks {
            let end = at + chunk.len() as u64;
            if offset < end {
                return Some(chunk.slice((offset - at) as usize..));
            }
            at = end;
        }
        None
    }

    /// Reads the next chunk of the body into the buffer.
    fn poll_pull(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BoxError>>> {
        loop {
            let Some(body) = self.body.as_mut() else {
                return Poll::Ready(None);
            };
            match body.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.body = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(error))) => {
                    self.body = None;
                    self.failed = Some(error.to_string());
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    self.end += data.len() as u64;
                    self.chunks.push_back(data.clone());
                    // Keep at most `max` bytes: what falls out can never be sent again.
                    let keep_from = self.end.saturating_sub(self.max);
                    self.release(keep_from);
                    return Poll::Ready(Some(Ok(data)));
                }
            }
        }
    }
}

impl Source for StreamSource {
    fn len_hint(&self) -> Option<u64> {
        self.len
    }

    fn read_from(&self, offset: u64) -> Result<SourceStream, BoxError> {
        let mut buffered = self.lock();
        if let Some(failed) = &buffered.failed {
            return Err(format!("the body failed and cannot be sent again: {failed}").into());
        }
        let (start, end) = (buffered.start, buffered.end);
        if offset > end {
            return Err(format!("cannot resume from byte {offset}: only {end} were read").into());
        }
        buffered.generation += 1;
        let generation = buffered.generation;
        drop(buffered);
        if offset < start {
            return Err(format!(
                "cannot resume from byte {offset}: the replay buffer only holds bytes from {start} \
                 (raise the replay buffer, or let the server acknowledge sooner)"
            )
            .into());
        }
        let shared = self.shared.clone();
        let mut at = offset;
        Ok(Box::pin(stream::poll_fn(move |cx| {
            let mut buffered = lock(&shared);
            if buffered.generation != generation {
                return Poll::Ready(Some(Err("a newer attempt reads this body".into())));
            }
            if at < buffered.start {
                let start = buffered.start;
                return Poll::Ready(Some(Err(format!(
                    "byte {at} fell out of the replay buffer (now from {start})"
                )
                .into())));
            }
            if at < buffered.end {
                let data = buffered
                    .buffered_at(at)
                    .expect("bytes between start and end are held");
                at += data.len() as u64;
                return Poll::Ready(Some(Ok(data)));
            }
            match buffered.poll_pull(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    at += data.len() as u64;
                    Poll::Ready(Some(Ok(data)))
                }
                other => other,
            }
        })))
    }

    fn release(&self, offset: u64) {
        self.lock().release(offset);
    }

    fn buffered(&self) -> bool {
        true
    }
}

impl fmt::Debug for StreamSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buffered = self.lock();
        f.debug_struct("StreamSource")
            .field("len", &self.len)
            .field("buffered_from", &buffered.start)
            .field("read", &buffered.end)
            .field("max", &buffered.max)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    async fn collect(mut stream: SourceStream) -> Result<Vec<u8>, BoxError> {
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn a_file_reads_from_any_offset() {
        let dir = std::env::temp_dir().join(format!("handoff-source-{}", std::process::id()));
        tokio::fs::create_dir_all(&dir).await.unwrap();
        let path = dir.join("f.bin");
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        tokio::fs::write(&path, &content).await.unwrap();
        let file = FileSource::open(&path).await.unwrap();
        for offset in [0, 1, 65_535, 65_536, 199_999, 200_000] {
            let read = collect(file.read_from(offset).unwrap()).await.unwrap();
            assert_eq!(read, &content[offset as usize..], "offset {offset}");
        }
        tokio::fs::remove_dir_all(&dir).await.unwrap();
    }

    #[tokio::test]
    async fn a_stream_replays_within_its_buffer_and_says_when_it_cannot() {
        let chunks =
            (0..10u8).map(|i| Ok::<_, BoxError>(http_body::Frame::data(Bytes::from(vec![i; 10]))));
        let source = StreamSource::new(StreamBody::new(stream::iter(chunks)), 25, Some(100));
        let mut first = source.read_from(0).unwrap();
        let mut read = 0;
        while read < 60 {
            read += first.next().await.unwrap().unwrap().len();
        }
        // A newer attempt supersedes the old stream.
        let newer = source.read_from(60).unwrap();
        assert!(first.next().await.unwrap().is_err());
        drop((first, newer));
        assert!(source.read_from(61).is_err(), "past what was read");
        // 25 bytes are kept behind position 60: from 35 on.
        assert!(source.read_from(34).is_err());
        let rest = collect(source.read_from(40).unwrap()).await.unwrap();
        let expected: Vec<u8> = (4..10u8).flat_map(|i| vec![i; 10]).collect();
        assert_eq!(rest, expected);
        source.release(100);
        assert!(source.read_from(99).is_err());
    }
}
