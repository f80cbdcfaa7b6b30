//! A listener that remembers its open connections so they can all be closed at once.
//!
//! `axum::serve` runs every connection in a task of its own, so ending the serving task does
//! not end its connections. A real server process that gives up draining simply exits and the
//! kernel closes its sockets; [`Connections::close_all`] does the same for a server that lives
//! inside a test or the demo: it shuts down both directions of every accepted socket, and
//! hyper fails the connection at its next read or write.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream as StdTcpStream};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// How a server with a [`TrackedListener`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Every connection finished within the drain timeout.
    Drained,
    /// The drain timeout ran out and this many connections were closed.
    Forced(usize),
}

/// The open connections of one [`TrackedListener`]: a duplicate of each socket's descriptor.
#[derive(Debug, Clone, Default)]
pub(crate) struct Connections {
    inner: Arc<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, StdTcpStream>>,
}

impl Connections {
    /// How many accepted connections are still open.
    pub(crate) fn open(&self) -> usize {
        self.inner.open.lock().expect("registry lock").len()
    }

    /// Shuts down both directions of every open connection; returns how many there were.
    pub(crate) fn close_all(&self) -> usize {
        let open = self.inner.open.lock().expect("registry lock");
        for socket in open.values() {
            // Already closed by the peer: nothing left to do.
            let _ = socket.shutdown(Shutdown::Both);
        }
        open.len()
    }

    fn track(&self, stream: TcpStream) -> io::Result<TrackedStream> {
        let duplicate = StdTcpStream::from(stream.as_fd().try_clone_to_owned()?);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner
            .open
            .lock()
            .expect("registry lock")
            .insert(id, duplicate);
        Ok(TrackedStream {
            stream,
            id,
            connections: self.clone(),
        })
    }

    fn forget(&self, id: u64) {
        // Dropping the duplicate descriptor; the socket closes with the last one.
        self.inner.open.lock().expect("registry lock").remove(&id);
    }
}

/// A [`TcpListener`] for `axum::serve` whose connections can be closed through
/// [`Connections`].
#[derive(Debug)]
pub(crate) struct TrackedListener {
    listener: TcpListener,
    connections: Connections,
}

impl TrackedListener {
    /// Wraps `listener`.
    pub(crate) fn new(listener: TcpListener) -> Self {
        Self {
            listener,
            connections: Connections::default(),
        }
    }

    /// The handle through which the accepted connections can be closed.
    pub(crate) fn connections(&self) -> Connections {
        self.connections.clone()
    }
}

impl axum::serve::Listener for TrackedListener {
    type Io = TrackedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let accepted = self.listener.accept().await;
            match accepted.and_then(|(stream, peer)| Ok((self.connections.track(stream)?, peer))) {
                Ok(pair) => return pair,
                Err(error) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// A [`TcpStream`] registered with [`Connections`] until it is dropped.
#[derive(Debug)]
pub(crate) struct TrackedStream {
    stream: TcpStream,
    id: u64,
    connections: Connections,
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        self.connections.forget(self.id);
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Binds `addr` again after its previous listener was closed (an origin restarting on its
/// port), retrying for up to `patience` while the old socket is still being released.
pub(crate) async fn rebind(
    addr: SocketAddr,
    patience: std::time::Duration,
) -> io::Result<TcpListener> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(1024)) {
            Ok(listener) => return Ok(listener),
            Err(error)
                if error.kind() == io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Err(error) => return Err(error),
        }
    }
}
