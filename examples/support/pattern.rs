//! The deterministic upload body: pseudo-random bytes from a seed, streamed in throttled
//! chunks, hashed as they go out.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use sha2::{Digest, Sha256};
use tokio::time::Sleep;

/// An endless pseudo-random byte stream (splitmix64); the same seed gives the same bytes,
/// however they are split into chunks.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl Pattern {
    /// The stream for `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            state: seed,
            word: [0; 8],
            used: 8,
        }
    }

    fn next_word(&mut self) -> [u8; 8] {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)).to_le_bytes()
    }

    /// Fills `buf` with the next bytes of the stream.
    pub(crate) fn fill(&mut self, mut buf: &mut [u8]) {
        // Leftover bytes of the current word first.
        let leftover = (8 - self.used).min(buf.len());
        buf[..leftover].copy_from_slice(&self.word[self.used..self.used + leftover]);
        self.used += leftover;
        buf = &mut buf[leftover..];

        let mut words = buf.chunks_exact_mut(8);
        for out in &mut words {
            out.copy_from_slice(&self.next_word());
        }
        let tail = words.into_remainder();
        if !tail.is_empty() {
            self.word = self.next_word();
            tail.copy_from_slice(&self.word[..tail.len()]);
            self.used = tail.len();
        }
    }
}

/// Lower-case hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The SHA-256 (hex) of the first `len` bytes of the stream for `seed`, computed without
/// sending anything.
pub(crate) fn expected_sha256(seed: u64, len: u64) -> String {
    let mut pattern = Pattern::new(seed);
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        pattern.fill(&mut buf[..n]);
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    hex(&hasher.finalize())
}

/// What a [`PatternBody`] has sent so far; shared with whoever built the body.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sent {
    inner: Arc<Mutex<SentState>>,
}

#[derive(Debug, Default)]
struct SentState {
    bytes: u64,
    sha256: Option<String>,
}

impl Sent {
    /// Bytes handed to the HTTP client so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.inner.lock().expect("sent lock").bytes
    }

    /// The digest of the whole body, once its last byte was handed over.
    pub(crate) fn sha256(&self) -> Option<String> {
        self.inner.lock().expect("sent lock").sha256.clone()
    }
}

/// A request body of `len` pattern bytes in chunks of `chunk` bytes, with `delay` between
/// chunks. Its size hint is exact, so hyper frames it with `Content-Length`.
#[derive(Debug)]
pub(crate) struct PatternBody {
    pattern: Pattern,
    remaining: u64,
    chunk: usize,
    delay: Duration,
    pause: Option<Pin<Box<Sleep>>>,
    hasher: Sha256,
    sent: Sent,
}

impl PatternBody {
    /// The body, and the record of what it sends.
    pub(crate) fn new(seed: u64, len: u64, chunk: usize, delay: Duration) -> (Self, Sent) {
        let sent = Sent::default();
        let body = Self {
            pattern: Pattern::new(seed),
            remaining: len,
            chunk: chunk.max(1),
            delay,
            pause: None,
            hasher: Sha256::new(),
            sent: sent.clone(),
        };
        if len == 0 {
            body.sent.inner.lock().expect("sent lock").sha256 =
                Some(hex(&Sha256::new().finalize()));
        }
        (body, sent)
    }
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        if let Some(pause) = self.pause.as_mut() {
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.pause = None;
        }

        let this = &mut *self;
        let n = this.remaining.min(this.chunk as u64) as usize;
        let mut buf = BytesMut::zeroed(n);
        this.pattern.fill(&mut buf);
        this.hasher.update(&buf);
        this.remaining -= n as u64;
        {
            let mut sent = this.sent.inner.lock().expect("sent lock");
            sent.bytes += n as u64;
            if this.remaining == 0 {
                sent.sha256 = Some(hex(&this.hasher.clone().finalize()));
            }
        }
        if this.remaining > 0 && !this.delay.is_zero() {
            this.pause = Some(Box::pin(tokio::time::sleep(this.delay)));
        }
        Poll::Ready(Some(Ok(Frame::data(buf.freeze()))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunking_does_not_change_the_stream() {
        let mut whole = vec![0; 1000];
        Pattern::new(7).fill(&mut whole);
        let mut pieces = vec![0; 1000];
        let mut pattern = Pattern::new(7);
        let mut at = 0;
        for step in [1, 3, 8, 13, 5, 64, 7].iter().cycle() {
            let end = (at + step).min(pieces.len());
            pattern.fill(&mut pieces[at..end]);
            at = end;
            if at == pieces.len() {
                break;
            }
        }
        assert_eq!(whole, pieces);
        assert_ne!(whole[..8], whole[8..16]);
    }
}
