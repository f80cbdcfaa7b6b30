//! The axum listener whose connections carry an [`InterimHandle`](super::InterimHandle).

use std::io;

use axum::serve::Listener;

use super::InterimStream;

/// Wraps every connection another [`Listener`] accepts in an [`InterimStream`].
///
/// Composes with other listener wrappers (`axum::serve::ListenerExt::tap_io`, ...), inside
/// or outside. Pair it with [`WithInterimHandle`](super::WithInterimHandle) so that handlers
/// find the handle in their request extensions. See the [module docs](super).
#[derive(Debug)]
pub struct InterimListener<L> {
    inner: L,
}

impl<L> InterimListener<L> {
    /// Wraps `inner`.
    pub fn new(inner: L) -> Self {
        Self { inner }
    }

    /// The wrapped listener.
    pub fn get_ref(&self) -> &L {
        &self.inner
    }

    /// The wrapped listener.
    pub fn get_mut(&mut self) -> &mut L {
        &mut self.inner
    }

    /// The wrapped listener.
    pub fn into_inner(self) -> L {
        self.inner
    }
}

impl<L: Listener> Listener for InterimListener<L> {
    type Io = InterimStream<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = self.inner.accept().await;
        (InterimStream::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}
