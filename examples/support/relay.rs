//! A fault-injecting TCP relay: it sits between an HTTP client and an origin on 127.0.0.1
//! and cuts chosen connections at a chosen byte, so that tests, the demo and the benchmarks
//! can break uploads and downloads at a byte they pick.
//!
//! [`Relay::start`] listens on `127.0.0.1:0` and relays every accepted connection to one
//! upstream address. A [`Plan`] says, for the n-th accepted connection (0-based, counting
//! those whose upstream connect failed), whether to relay it faithfully or to [`Cut`] it:
//!
//! - Faithfully: both directions are copied at the same time, through [`BUFFER`] bytes each.
//!   An end of stream in one direction is passed on as a half-close (`shutdown(SHUT_WR)`)
//!   and the other direction keeps flowing (an HTTP client may send its FIN before it reads
//!   the answer). An I/O error on either side resets both.
//! - Cut after `after` bytes in one direction: exactly that many bytes are forwarded (no
//!   read takes more than what is left before the offset), then both sockets are closed
//!   with `SO_LINGER` 0, so that both peers see a reset instead of a clean end of stream, as
//!   when a network path fails. `after = 0` cuts as soon as the upstream connection is up,
//!   before any byte of that direction. A cut past the end of its direction never fires.
//!
//! The bytes before a cut leave at once (`TCP_NODELAY`), but those beyond the peer's
//! receive window wait in the relay's send queue, and a reset discards that queue. So the
//! relay stops both directions at the cut, waits [`SETTLE`], and only then resets: a peer
//! that keeps reading gets exactly `after` bytes, then `ECONNRESET` (or an end of stream).
//! A peer that reads nothing for that long loses what its window could not hold, as it
//! would on a real network.
//!
//! [`Relay::with_rate`] also limits each direction of each connection to a throughput (a
//! slow peer), [`Relay::stats`] counts connections, cuts and forwarded bytes, and
//! [`Relay::shutdown`] (or dropping the relay) closes the listener and every relayed
//! connection: no task outlives the relay.
//!
//! The offset arithmetic ([`Budget`]) and the pacing schedule ([`Pace`]) are plain types
//! without I/O; `tests/relay.rs` tests them on their own and the relay over real sockets.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Bytes buffered per direction of one relayed connection.
pub(crate) const BUFFER: usize = 16 * 1024;
/// How long the connection to the upstream may take before the client is closed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a cut connection stays silent before the reset, so that a reading peer can
/// take the bytes that were still waiting for room in its receive window.
pub(crate) const SETTLE: Duration = Duration::from_millis(20);
/// Pause after a failed `accept` (out of descriptors and the like) instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// A paced direction moves at most this fraction of a second's worth of bytes at once.
const PACE_SLICES_PER_SEC: u64 = 20;

/// Which way bytes flow through the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Client to origin (the request).
    Upstream,
    /// Origin to client (the response).
    Downstream,
}

/// One fault: once `after` bytes have been forwarded in `direction` on a connection, both
/// of its sockets are reset. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cut {
    /// The direction whose byte count triggers the cut.
    pub(crate) direction: Direction,
    /// How many bytes of that direction get through.
    pub(crate) after: u64,
}

impl Cut {
    /// A cut after `after` bytes from the client to the origin.
    pub(crate) fn upstream(after: u64) -> Self {
        Self {
            direction: Direction::Upstream,
            after,
        }
    }

    /// A cut after `after` bytes from the origin to the client.
    pub(crate) fn downstream(after: u64) -> Self {
        Self {
            direction: Direction::Downstream,
            after,
        }
    }
}

/// What to do with the n-th accepted connection (0-based): a [`Cut`], or `None` to relay
/// it faithfully.
pub(crate) type Plan = Arc<dyn Fn(usize) -> Option<Cut> + Send + Sync>;

/// A plan that relays every connection faithfully.
pub(crate) fn faithful() -> Plan {
    Arc::new(|_: usize| None::<Cut>)
}

/// A plan that cuts the first `cuts.len()` connections at these cuts, in order, and relays
/// the later ones faithfully.
pub(crate) fn cuts_in_order(cuts: Vec<Cut>) -> Plan {
    Arc::new(move |n: usize| cuts.get(n).copied())
}

/// A snapshot of a relay's counters, totals over all its connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RelayStats {
    /// Connections accepted from clients.
    pub(crate) accepted: u64,
    /// Accepted connections closed because the upstream connect failed or timed out.
    pub(crate) connect_failures: u64,
    /// Connections cut by the plan.
    pub(crate) cuts: u64,
    /// Bytes forwarded from clients to the origin.
    pub(crate) upstream_bytes: u64,
    /// Bytes forwarded from the origin to clients.
    pub(crate) downstream_bytes: u64,
}

/// The live counters behind [`RelayStats`].
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    connect_failures: AtomicU64,
    cuts: AtomicU64,
    upstream_bytes: AtomicU64,
    downstream_bytes: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> RelayStats {
        RelayStats {
            accepted: self.accepted.load(Ordering::Relaxed),
            connect_failures: self.connect_failures.load(Ordering::Relaxed),
            cuts: self.cuts.load(Ordering::Relaxed),
            upstream_bytes: self.upstream_bytes.load(Ordering::Relaxed),
            downstream_bytes: self.downstream_bytes.load(Ordering::Relaxed),
        }
    }

    fn forwarded(&self, direction: Direction, n: usize) {
        let counter = match direction {
            Direction::Upstream => &self.upstream_bytes,
            Direction::Downstream => &self.downstream_bytes,
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The offset arithmetic of one direction of one connection: how many bytes may still
/// pass before its cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    forwarded: u64,
    cut_at: Option<u64>,
}

impl Budget {
    /// Nothing forwarded yet; cut after `cut_at` bytes, or never.
    pub(crate) fn new(cut_at: Option<u64>) -> Self {
        Self {
            forwarded: 0,
            cut_at,
        }
    }

    /// Bytes forwarded so far.
    pub(crate) fn forwarded(&self) -> u64 {
        self.forwarded
    }

    /// Whether every byte before the cut has passed: the cut is due now.
    pub(crate) fn cut_due(&self) -> bool {
        self.cut_at.is_some_and(|at| self.forwarded >= at)
    }

    /// How many bytes the next read may take with room for `room`: all of it, or what is
    /// left before the cut (0 once the cut is due).
    pub(crate) fn next_read(&self, room: usize) -> usize {
        match self.cut_at {
            None => room,
            Some(at) => {
                let left = at.saturating_sub(self.forwarded);
                usize::try_from(left).map_or(room, |left| left.min(room))
            }
        }
    }

    /// Records `n` more forwarded bytes.
    pub(crate) fn forward(&mut self, n: usize) {
        self.forwarded += n as u64;
    }
}

/// The throughput limit of one direction of one connection: each chunk may go once the
/// chunks before it have had their time at `bytes_per_sec`. Idle time earns no credit, so
/// nothing goes faster than the rate by more than one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pace {
    bytes_per_sec: u64,
    /// When the next chunk may go; `None` before the first one.
    next: Option<Instant>,
}

impl Pace {
    /// At most `bytes_per_sec` (0 counts as 1).
    pub(crate) fn new(bytes_per_sec: u64) -> Self {
        Self {
            bytes_per_sec: bytes_per_sec.max(1),
            next: None,
        }
    }

    /// The largest chunk to read at once: a twentieth of a second's worth, between one
    /// byte and [`BUFFER`].
    pub(crate) fn chunk_limit(&self) -> usize {
        let slice = (self.bytes_per_sec / PACE_SLICES_PER_SEC).clamp(1, BUFFER as u64);
        usize::try_from(slice).unwrap_or(BUFFER)
    }

    /// How long `n` bytes take at the rate, rounded up.
    pub(crate) fn duration_of(&self, n: usize) -> Duration {
        let nanos = (n as u128 * 1_000_000_000).div_ceil(u128::from(self.bytes_per_sec));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// When a chunk of `n` bytes read at `now` may be written; reserves its time.
    pub(crate) fn schedule(&mut self, now: Instant, n: usize) -> Instant {
        let start = self.next.map_or(now, |next| next.max(now));
        self.next = Some(start + self.duration_of(n));
        start
    }
}

/// A running relay; see the [module docs](self). Dropping it stops it like
/// [`Relay::shutdown`].
#[derive(Debug)]
pub(crate) struct Relay {
    addr: SocketAddr,
    counters: Arc<Counters>,
    /// The accept loop; it owns the listener and the connection tasks.
    task: JoinHandle<()>,
}

impl Relay {
    /// Listens on `127.0.0.1:0` and relays every accepted connection to `upstream`, cut as
    /// `plan` says.
    pub(crate) async fn start(upstream: SocketAddr, plan: Plan) -> io::Result<Self> {
        Self::with_rate(upstream, plan, None).await
    }

    /// Cuts the first `cuts.len()` connections at these cuts, in order, then relays
    /// faithfully ([`cuts_in_order`]).
    pub(crate) async fn with_cuts(upstream: SocketAddr, cuts: Vec<Cut>) -> io::Result<Self> {
        Self::start(upstream, cuts_in_order(cuts)).await
    }

    /// [`Relay::start`], with each direction of each connection limited to
    /// `bytes_per_sec` when it is set.
    pub(crate) async fn with_rate(
        upstream: SocketAddr,
        plan: Plan,
        bytes_per_sec: Option<u64>,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let addr = listener.local_addr()?;
        let route = Route {
            upstream,
            bytes_per_sec,
            counters: Arc::new(Counters::default()),
        };
        let counters = Arc::clone(&route.counters);
        let task = tokio::spawn(accept_loop(listener, plan, route));
        tracing::info!(%addr, %upstream, ?bytes_per_sec, "relay listening");
        Ok(Self {
            addr,
            counters,
            task,
        })
    }

    /// The address clients connect to.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters so far.
    pub(crate) fn stats(&self) -> RelayStats {
        self.counters.snapshot()
    }

    /// Stops accepting and closes every relayed connection: the accept task is aborted,
    /// and with it the listener and every connection task (their sockets close as they
    /// are dropped). Returns at once; the counters stay readable.
    pub(crate) fn shutdown(&self) {
        self.task.abort();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where and how fast the connections of one relay go.
#[derive(Debug, Clone)]
struct Route {
    upstream: SocketAddr,
    bytes_per_sec: Option<u64>,
    counters: Arc<Counters>,
}

async fn accept_loop(listener: TcpListener, plan: Plan, route: Route) {
    // Dropped with this task: aborting it aborts every connection task too.
    let mut connections = JoinSet::new();
    let mut next = 0usize;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    let n = next;
                    next += 1;
                    route.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    let cut = plan(n);
                    tracing::debug!(connection = n, %peer, ?cut, "relay accepted");
                    connections.spawn(relay_connection(client, n, cut, route.clone()));
                }
                Err(error) => {
                    tracing::debug!(%error, "relay accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            // Reaps finished connections so the set holds only live ones.
            Some(joined) = connections.join_next() => {
                if let Err(error) = joined {
                    tracing::debug!(%error, "relayed connection task failed");
                }
            }
        }
    }
}

/// Why a connection stopped before both directions reached their end of stream.
#[derive(Debug)]
enum Stop {
    /// The plan's cut in this direction is due.
    Cut(Direction),
    /// Reading or writing in this direction failed.
    Failed(Direction, io::Error),
}

async fn relay_connection(mut client: TcpStream, n: usize, cut: Option<Cut>, route: Route) {
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(route.upstream));
    let connected = connect.await.unwrap_or_else(|elapsed| Err(elapsed.into()));
    let mut origin = match connected {
        Ok(origin) => origin,
        Err(error) => {
            route
                .counters
                .connect_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                connection = n,
                upstream = %route.upstream,
                %error,
                "upstream connect failed, closing the client"
            );
            return;
        }
    };
    // The last bytes before a cut must leave at once, not wait for an ACK (Nagle) and be
    // discarded by the reset.
    for stream in [&client, &origin] {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(connection = n, %error, "setting TCP_NODELAY failed");
        }
    }

    match forward_both(&mut client, &mut origin, cut, &route).await {
        Ok((upstream, downstream)) => {
            tracing::debug!(
                connection = n,
                upstream,
                downstream,
                "relayed connection ended"
            );
        }
        Err(Stop::Cut(direction)) => {
            route.counters.cuts.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                connection = n,
                ?direction,
                ?cut,
                "cut, resetting both sides"
            );
            // Set first, so that a relay dropped meanwhile still resets. Neither direction
            // moves any more; the close waits for the last bytes to leave.
            reset_on_close(n, &client);
            reset_on_close(n, &origin);
            tokio::time::sleep(SETTLE).await;
        }
        Err(Stop::Failed(direction, error)) => {
            tracing::debug!(
                connection = n,
                ?direction,
                %error,
                "relay failed, resetting both sides"
            );
            reset_on_close(n, &client);
            reset_on_close(n, &origin);
        }
    }
    // `client` and `origin` close here.
}

/// Copies both directions until both ended (`Ok` with the bytes forwarded upstream and
/// downstream) or one of them stopped the connection.
async fn forward_both(
    client: &mut TcpStream,
    origin: &mut TcpStream,
    cut: Option<Cut>,
    route: &Route,
) -> Result<(u64, u64), Stop> {
    let (client_read, client_write) = client.split();
    let (origin_read, origin_write) = origin.split();
    let upstream = Leg::new(Direction::Upstream, cut, route.bytes_per_sec);
    let downstream = Leg::new(Direction::Downstream, cut, route.bytes_per_sec);
    tokio::try_join!(
        upstream.pump(client_read, origin_write, &route.counters),
        downstream.pump(origin_read, client_write, &route.counters)
    )
}

/// One direction of one connection: where it is cut and how fast it may go.
#[derive(Debug)]
struct Leg {
    direction: Direction,
    budget: Budget,
    pace: Option<Pace>,
}

impl Leg {
    fn new(direction: Direction, cut: Option<Cut>, bytes_per_sec: Option<u64>) -> Self {
        let cut_at = cut
            .filter(|cut| cut.direction == direction)
            .map(|cut| cut.after);
        Self {
            direction,
            budget: Budget::new(cut_at),
            pace: bytes_per_sec.map(Pace::new),
        }
    }

    /// Copies `from` to `to` until the end of stream (passed on as a half-close), the cut,
    /// or an error.
    async fn pump(
        mut self,
        mut from: ReadHalf<'_>,
        mut to: WriteHalf<'_>,
        counters: &Counters,
    ) -> Result<u64, Stop> {
        let mut buf = vec![0; BUFFER];
        loop {
            if self.budget.cut_due() {
                // Every byte before the offset is written; the caller resets both sockets.
                if let Err(error) = to.flush().await {
                    tracing::debug!(
                        direction = ?self.direction,
                        %error,
                        "flush before the cut failed"
                    );
                }
                return Err(Stop::Cut(self.direction));
            }
            let room = self.pace.as_ref().map_or(BUFFER, Pace::chunk_limit);
            let want = self.budget.next_read(room);
            let n = match from.read(&mut buf[..want]).await {
                Ok(0) => {
                    // End of stream: half-close the other side; the other direction goes on.
                    if let Err(error) = to.shutdown().await {
                        tracing::debug!(
                            direction = ?self.direction,
                            %error,
                            "passing the half-close on failed"
                        );
                    }
                    return Ok(self.budget.forwarded());
                }
                Ok(n) => n,
                Err(error) => return Err(Stop::Failed(self.direction, error)),
            };
            if let Some(pace) = &mut self.pace {
                tokio::time::sleep_until(pace.schedule(Instant::now(), n)).await;
            }
            if let Err(error) = to.write_all(&buf[..n]).await {
                return Err(Stop::Failed(self.direction, error));
            }
            self.budget.forward(n);
            counters.forwarded(self.direction, n);
        }
    }
}

/// Makes the coming close of `stream` abortive: `SO_LINGER` 0, an RST instead of a FIN.
fn reset_on_close(n: usize, stream: &TcpStream) {
    if let Err(error) = stream.set_zero_linger() {
        tracing::debug!(connection = n, %error, "setting SO_LINGER 0 failed");
    }
}
