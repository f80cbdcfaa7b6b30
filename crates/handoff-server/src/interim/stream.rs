//! The I/O wrapper: moves bytes between hyper, the [`Splice`] and the socket.

use std::fmt;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::handle::{InterimHandle, Shared};
use super::splice::{Splice, Step};

pin_project! {
    /// A connection whose HTTP/1.1 `100 Continue` interim responses can carry headers.
    ///
    /// Transparent, byte for byte, until its [`InterimHandle`] arms a `100`. See the
    /// [module docs](super).
    pub struct InterimStream<IO> {
        #[pin]
        io: IO,
        shared: Arc<Shared>,
    }
}

impl<IO> InterimStream<IO> {
    /// Wraps a connection.
    pub fn new(io: IO) -> Self {
        Self {
            io,
            shared: Arc::new(Shared::new()),
        }
    }

    /// A handle on this connection's interim responses.
    pub fn handle(&self) -> InterimHandle {
        InterimHandle::new(self.shared.clone())
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// The wrapped connection. Writing to it directly bypasses the interim bytes still owed.
    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }

    /// The wrapped connection. Interim bytes not yet written are lost: flush first.
    pub fn into_inner(self) -> IO {
        self.io
    }
}

/// Writes everything the socket owes before the writer's next byte.
fn poll_owed<IO: AsyncWrite>(
    mut io: Pin<&mut IO>,
    splice: &mut Splice,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while !splice.owed().is_empty() {
        let n = ready!(io.as_mut().poll_write(cx, splice.owed()))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        splice.advance(n);
    }
    Poll::Ready(Ok(()))
}

impl<IO: AsyncWrite> InterimStream<IO> {
    fn poll_write_slices(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
        vectored: bool,
    ) -> Poll<io::Result<usize>> {
        let mut this = self.project();
        this.shared.register(cx.waker());
        // Held across the socket write: a handle sees each write as done or not begun.
        let mut splice = this.shared.lock();
        loop {
            ready!(poll_owed(this.io.as_mut(), &mut splice, cx))?;
            match splice.on_write(bufs) {
                Step::Pass(n) => {
                    let written = ready!(pass(this.io.as_mut(), cx, bufs, n, vectored))?;
                    splice.on_passed(written);
                    return Poll::Ready(Ok(written));
                }
                Step::Took(n) => {
                    // Reported written: the bytes are owed now and go out before any other.
                    // Pending or an error surfaces on the next poll, which writes them first.
                    let _ = poll_owed(this.io.as_mut(), &mut splice, cx);
                    return Poll::Ready(Ok(n));
                }
                Step::GaveBack => continue,
            }
        }
    }
}

/// Writes at most the first `n` bytes of `bufs`, the way the writer asked (vectored or not).
fn pass<IO: AsyncWrite>(
    io: Pin<&mut IO>,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
    n: usize,
    vectored: bool,
) -> Poll<io::Result<usize>> {
    if !vectored {
        return io.poll_write(cx, &bufs[0][..n]);
    }
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    if n == total {
        return io.poll_write_vectored(cx, bufs);
    }
    let mut left = n;
    let mut cut = Vec::with_capacity(bufs.len());
    for buf in bufs {
        if left == 0 {
            break;
        }
        let take = buf.len().min(left);
        cut.push(IoSlice::new(&buf[..take]));
        left -= take;
    }
    io.poll_write_vectored(cx, &cut)
}

impl<IO: AsyncWrite> AsyncWrite for InterimStream<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_slices(cx, &[IoSlice::new(buf)], false)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_slices(cx, bufs, true)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        this.shared.register(cx.waker());
        {
            let mut splice = this.shared.lock();
            splice.on_flush();
            ready!(poll_owed(this.io.as_mut(), &mut splice, cx))?;
        }
        this.io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        {
            let mut splice = this.shared.lock();
            splice.on_flush();
            ready!(poll_owed(this.io.as_mut(), &mut splice, cx))?;
        }
        this.io.poll_shutdown(cx)
    }
}

impl<IO: AsyncRead + AsyncWrite> AsyncRead for InterimStream<IO> {
    /// Reads, after writing what is owed: hyper polls reads while the upload runs and may
    /// have nothing to write, so the interim responses a handler queues go out from here.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut this = self.project();
        this.shared.register(cx.waker());
        {
            let mut splice = this.shared.lock();
            if let Poll::Ready(Err(e)) = poll_owed(this.io.as_mut(), &mut splice, cx) {
                return Poll::Ready(Err(e));
            }
        }
        this.io.poll_read(cx, buf)
    }
}

impl<IO: fmt::Debug> fmt::Debug for InterimStream<IO> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InterimStream")
            .field("io", &self.io)
            .field("interim", &*self.shared.lock())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use http::{HeaderMap, HeaderValue};
    use proptest::prelude::*;

    use super::*;
    use crate::interim::head::{encode_continue, BARE_CONTINUE};

    /// A socket that takes a varying number of bytes per write (0: not now) and never has
    /// anything to read.
    #[derive(Debug, Default)]
    struct Choppy {
        written: Vec<u8>,
        accepts: Vec<usize>,
        calls: usize,
        vectored: bool,
        vectored_calls: usize,
    }

    impl Choppy {
        fn new(accepts: Vec<usize>, vectored: bool) -> Self {
            Self {
                accepts,
                vectored,
                ..Self::default()
            }
        }

        fn next_accept(&mut self, cx: &mut Context<'_>) -> Option<usize> {
            let accept = match self.accepts.len() {
                0 => usize::MAX,
                len => self.accepts[self.calls % len],
            };
            self.calls += 1;
            if accept == 0 {
                cx.waker().wake_by_ref();
                return None;
            }
            Some(accept)
        }
    }

    impl AsyncWrite for Choppy {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let Some(accept) = self.next_accept(cx) else {
                return Poll::Pending;
            };
            let n = accept.min(buf.len());
            self.written.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            if !self.vectored {
                // What tokio's default does: the first non-empty buffer.
                let buf = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
                return self.poll_write(cx, buf);
            }
            self.vectored_calls += 1;
            let Some(mut accept) = self.next_accept(cx) else {
                return Poll::Pending;
            };
            let mut n = 0;
            for buf in bufs {
                let take = accept.min(buf.len());
                self.written.extend_from_slice(&buf[..take]);
                accept -= take;
                n += take;
            }
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncRead for Choppy {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    fn noop() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    fn ack(n: u32) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("acknowledge", HeaderValue::from(n));
        headers
    }

    fn first_continue(bytes: &[u8]) -> Option<usize> {
        bytes
            .windows(BARE_CONTINUE.len())
            .position(|w| w == BARE_CONTINUE)
    }

    /// What the writer (hyper) does next.
    #[derive(Debug, Clone)]
    enum Op {
        /// Offer up to `len` of the remaining bytes, cut into slices of these lengths (the
        /// rest in a last one), vectored or not.
        Write {
            len: usize,
            cuts: Vec<usize>,
            vectored: bool,
        },
        Read,
        Flush,
        Send(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1..64usize, proptest::collection::vec(0..16usize, 0..4), any::<bool>())
                .prop_map(|(len, cuts, vectored)| Op::Write { len, cuts, vectored }),
            1 => Just(Op::Read),
            1 => Just(Op::Flush),
            1 => (0..100_000u32).prop_map(Op::Send),
        ]
    }

    /// Byte streams rich in whole and cut-off `100 Continue`s.
    fn stream_bytes() -> impl Strategy<Value = Vec<u8>> {
        let token = prop_oneof![
            3 => any::<u8>().prop_map(|b| vec![b]),
            2 => (1..BARE_CONTINUE.len()).prop_map(|n| BARE_CONTINUE[..n].to_vec()),
            1 => Just(BARE_CONTINUE.to_vec()),
            1 => Just(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec()),
        ];
        proptest::collection::vec(token, 0..24).prop_map(|tokens| tokens.concat())
    }

    fn socket() -> impl Strategy<Value = Choppy> {
        (proptest::collection::vec(0..40usize, 1..6), any::<bool>()).prop_map(
            |(mut accepts, vectored)| {
                accepts.push(1 + accepts.len()); // progress, eventually
                Choppy::new(accepts, vectored)
            },
        )
    }

    fn offer<'a>(rest: &'a [u8], cuts: &[usize]) -> Vec<IoSlice<'a>> {
        let mut slices = Vec::new();
        let mut at = 0;
        for cut in cuts {
            let end = (at + cut).min(rest.len());
            slices.push(IoSlice::new(&rest[at..end]));
            at = end;
        }
        slices.push(IoSlice::new(&rest[at..]));
        slices
    }

    /// Plays `ops` as the writer of `input`, then writes the rest and flushes. Returns the
    /// socket's bytes and the outcome of each `Send`, with how far the writer was.
    fn play(
        stream: &mut InterimStream<Choppy>,
        input: &[u8],
        ops: &[Op],
        may_flush: impl Fn(usize) -> bool,
    ) -> Result<Vec<(usize, u32, bool)>, TestCaseError> {
        let handle = stream.handle();
        let mut done = 0;
        let mut sends = Vec::new();
        let write = |stream: &mut InterimStream<Choppy>, done: &mut usize, op: &Op| {
            let Op::Write {
                len,
                cuts,
                vectored,
            } = op
            else {
                unreachable!()
            };
            let rest = &input[*done..input.len().min(*done + len)];
            if rest.is_empty() {
                return Ok(());
            }
            let polled = if *vectored {
                Pin::new(&mut *stream).poll_write_vectored(&mut noop(), &offer(rest, cuts))
            } else {
                Pin::new(&mut *stream).poll_write(&mut noop(), rest)
            };
            match polled {
                Poll::Ready(Ok(n)) => {
                    prop_assert!(n > 0 && n <= rest.len(), "reported {n} of {}", rest.len());
                    *done += n;
                }
                Poll::Ready(Err(e)) => prop_assert!(false, "write failed: {e}"),
                Poll::Pending => {}
            }
            Ok(())
        };
        for op in ops {
            match op {
                Op::Write { .. } => write(stream, &mut done, op)?,
                Op::Read => {
                    let mut space = [0; 8];
                    let polled = Pin::new(&mut *stream)
                        .poll_read(&mut noop(), &mut ReadBuf::new(&mut space));
                    prop_assert!(polled.is_pending());
                }
                Op::Flush if may_flush(done) => {
                    let polled = Pin::new(&mut *stream).poll_flush(&mut noop());
                    prop_assert!(!matches!(polled, Poll::Ready(Err(_))));
                }
                Op::Flush => {}
                Op::Send(n) => sends.push((done, *n, handle.send_continue(&ack(*n)))),
            }
        }
        let all = Op::Write {
            len: usize::MAX / 2,
            cuts: vec![3, 0, 7],
            vectored: true,
        };
        for _ in 0..10_000 {
            if done == input.len() {
                break;
            }
            write(stream, &mut done, &all)?;
        }
        prop_assert_eq!(done, input.len());
        for _ in 0..10_000 {
            if Pin::new(&mut *stream).poll_flush(&mut noop()).is_ready() {
                break;
            }
        }
        Ok(sends)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Nothing armed: the socket gets exactly the writer's bytes, however they are cut,
        /// and no interim response is accepted.
        #[test]
        fn unarmed_is_transparent(input in stream_bytes(), ops in proptest::collection::vec(op(), 0..40), socket in socket()) {
            let mut stream = InterimStream::new(socket);
            let sends = play(&mut stream, &input, &ops, |_| true)?;
            prop_assert!(sends.iter().all(|(_, _, queued)| !queued));
            prop_assert_eq!(&stream.get_ref().written, &input);
        }

        /// Armed: the first `100 Continue` is replaced by the armed one, followed by every
        /// accepted extra `100`; nothing else changes. An extra is accepted exactly while
        /// the writer has not gone past the `100`.
        #[test]
        fn armed_rewrites_the_first_continue(
            input in stream_bytes(),
            ops in proptest::collection::vec(op(), 0..40),
            socket in socket(),
            value in "[a-z0-9/]{0,300}",
        ) {
            let mut armed = HeaderMap::new();
            armed.insert("request-content-location", HeaderValue::from_str(&value).unwrap());
            armed.insert("preference-applied", HeaderValue::from_static("resume"));
            let mut stream = InterimStream::new(socket);
            prop_assert!(stream.handle().arm_continue(&armed));

            let at = first_continue(&input);
            let inside = |done: usize| at.is_some_and(|at| done > at && done < at + BARE_CONTINUE.len());
            let sends = play(&mut stream, &input, &ops, |done| !inside(done))?;

            let Some(at) = at else {
                prop_assert_eq!(&stream.get_ref().written, &input);
                prop_assert!(!stream.handle().continue_sent());
                return Ok(());
            };
            let end = at + BARE_CONTINUE.len();
            let mut expected = input[..at].to_vec();
            expected.extend(encode_continue(&armed).unwrap());
            for (done, n, queued) in sends {
                prop_assert_eq!(queued, done <= end, "send at {} (100 ends at {})", done, end);
                if queued {
                    expected.extend(encode_continue(&ack(n)).unwrap());
                }
            }
            expected.extend_from_slice(&input[end..]);
            prop_assert_eq!(&stream.get_ref().written, &expected);
            prop_assert!(stream.handle().continue_sent());
        }
    }

    #[test]
    fn forwards_vectored_writes_and_the_capability() {
        let mut stream = InterimStream::new(Choppy::new(vec![], true));
        assert!(stream.is_write_vectored());
        let bufs = [IoSlice::new(b"ab"), IoSlice::new(b"cd")];
        let polled = Pin::new(&mut stream).poll_write_vectored(&mut noop(), &bufs);
        assert!(matches!(polled, Poll::Ready(Ok(4))));
        assert_eq!(stream.get_ref().vectored_calls, 1);
        assert!(!InterimStream::new(Choppy::new(vec![], false)).is_write_vectored());
    }

    #[test]
    fn bytes_before_the_continue_in_one_write_go_first_alone() {
        let mut stream = InterimStream::new(Choppy::new(vec![], true));
        assert!(stream.handle().arm_continue(&ack(1)));
        let bufs = [
            IoSlice::new(b"tail HTTP/1.1 100 Con"),
            IoSlice::new(b"tinue\r\n\r\nHTTP/1.1 200 OK"),
        ];
        let polled = Pin::new(&mut stream).poll_write_vectored(&mut noop(), &bufs);
        assert!(matches!(polled, Poll::Ready(Ok(5))), "{polled:?}");
        assert_eq!(stream.get_ref().written, b"tail ");
        let bufs = [IoSlice::new(b"HTTP/1.1 100 Con"), bufs[1]];
        let polled = Pin::new(&mut stream).poll_write_vectored(&mut noop(), &bufs);
        assert!(matches!(polled, Poll::Ready(Ok(25))), "{polled:?}");
        assert_eq!(
            stream.get_ref().written,
            b"tail HTTP/1.1 100 Continue\r\nacknowledge: 1\r\n\r\n"
        );
    }

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn queued_interim_goes_out_from_poll_read_and_wakes_the_connection() {
        let mut stream = InterimStream::new(Choppy::new(vec![], true));
        let handle = stream.handle();
        assert!(handle.arm_continue(&HeaderMap::new()));
        let polled = Pin::new(&mut stream).poll_write(&mut noop(), BARE_CONTINUE);
        assert!(matches!(polled, Poll::Ready(Ok(25))));
        assert!(handle.continue_sent());

        // The connection task waits for upload bytes.
        let woken = Arc::new(CountingWaker::default());
        let waker = Waker::from(woken.clone());
        let mut space = [0; 8];
        let mut read = ReadBuf::new(&mut space);
        let polled = Pin::new(&mut stream).poll_read(&mut Context::from_waker(&waker), &mut read);
        assert!(polled.is_pending());

        assert!(handle.send_continue(&ack(123)));
        assert_eq!(woken.0.load(Ordering::SeqCst), 1, "the connection is woken");
        assert_eq!(stream.get_ref().written, BARE_CONTINUE, "not written yet");
        let polled = Pin::new(&mut stream).poll_read(&mut noop(), &mut read);
        assert!(polled.is_pending());
        assert_eq!(
            stream.get_ref().written,
            [
                &BARE_CONTINUE[..],
                b"HTTP/1.1 100 Continue\r\nacknowledge: 123\r\n\r\n"
            ]
            .concat()
        );
    }

    #[test]
    fn a_stuck_socket_holds_the_writer_until_the_interim_bytes_are_out() {
        // The socket takes 10 bytes of the rewritten 100, then nothing 3 times, then all.
        let accepts = vec![10, 0, 0, 0, usize::MAX, usize::MAX];
        let mut stream = InterimStream::new(Choppy::new(accepts, false));
        let handle = stream.handle();
        assert!(handle.arm_continue(&ack(7)));
        let polled = Pin::new(&mut stream).poll_write(&mut noop(), BARE_CONTINUE);
        assert!(matches!(polled, Poll::Ready(Ok(25))), "taken, owed");
        assert_eq!(stream.get_ref().written, b"HTTP/1.1 1");
        let polled = Pin::new(&mut stream).poll_write(&mut noop(), b"HTTP/1.1 200 OK");
        assert!(polled.is_pending(), "hyper's bytes wait for the owed ones");
        assert!(
            handle.send_continue(&ack(8)),
            "the final response has not begun"
        );
        let polled = Pin::new(&mut stream).poll_flush(&mut noop());
        assert!(polled.is_pending());
        let polled = Pin::new(&mut stream).poll_write(&mut noop(), b"HTTP/1.1 200 OK");
        assert!(matches!(polled, Poll::Ready(Ok(15))));
        assert!(!handle.send_continue(&ack(9)));
        assert_eq!(
            stream.get_ref().written,
            b"HTTP/1.1 100 Continue\r\nacknowledge: 7\r\n\r\nHTTP/1.1 100 Continue\r\nacknowledge: 8\r\n\r\nHTTP/1.1 200 OK"
        );
    }

    #[test]
    fn shutdown_writes_owed_bytes_first() {
        let mut stream = InterimStream::new(Choppy::new(vec![0, usize::MAX], false));
        assert!(stream.handle().arm_continue(&ack(1)));
        let polled = Pin::new(&mut stream).poll_write(&mut noop(), b"HTTP/1.1 100 Cont");
        assert!(matches!(polled, Poll::Ready(Ok(17))), "a 100 begun: held");
        assert!(Pin::new(&mut stream)
            .poll_shutdown(&mut noop())
            .is_pending());
        assert!(Pin::new(&mut stream).poll_shutdown(&mut noop()).is_ready());
        assert_eq!(
            stream.get_ref().written,
            b"HTTP/1.1 100 Cont",
            "given back as is"
        );
    }
}
