//! The fault-injecting relay (`examples/support/relay.rs`) over real TCP on 127.0.0.1:
//! faithful relaying with half-closes, cuts in each direction at chosen bytes, the cut
//! plan, pacing, a failed upstream connect, shutdown and drop; then its offset and pacing
//! arithmetic on their own.

#[path = "../examples/support/mod.rs"]
mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use support::pattern::Pattern;
use support::relay::{faithful, Budget, Cut, Pace, Relay, RelayStats, BUFFER};

/// Safety net for every wait: a hang fails the test instead of stalling the suite.
const LIMIT: Duration = Duration::from_secs(5);
const MIB: usize = 1 << 20;
/// What a [`Mode::Serve`] upstream sends.
const SERVED_SEED: u64 = 3;
const SERVED: usize = 256 * 1024;

async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(LIMIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {LIMIT:?}"))
}

/// `len` pseudo-random bytes from `seed` (no period an off-by-some could hide in).
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    Pattern::new(seed).fill(&mut out);
    out
}

async fn connect(addr: SocketAddr) -> TcpStream {
    within("connecting", TcpStream::connect(addr))
        .await
        .expect("connect")
}

/// How a stream's reading side ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Eof,
    /// A reset or another error.
    Error,
}

/// Reads until the end of stream or an error; returns what came before it.
async fn drain<R: AsyncRead + Unpin>(mut reader: R) -> (Vec<u8>, End) {
    let mut got = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) => return (got, End::Eof),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(_) => return (got, End::Error),
        }
    }
}

/// Sends `data` then half-closes, while reading whatever comes back until the end of
/// stream or an error.
async fn exchange(stream: &mut TcpStream, data: &[u8]) -> (Vec<u8>, End) {
    let (reader, mut writer) = stream.split();
    let send = async move {
        // On a cut connection the write fails: what counts is what got through.
        if writer.write_all(data).await.is_ok() {
            let _ = writer.shutdown().await;
        }
    };
    let ((), received) = tokio::join!(send, drain(reader));
    received
}

/// Waits (at most [`LIMIT`]) until the relay's counters satisfy `done`; returns the last
/// snapshot either way, for the caller to assert on.
async fn settled(relay: &Relay, done: impl Fn(&RelayStats) -> bool) -> RelayStats {
    let deadline = Instant::now() + LIMIT;
    loop {
        let stats = relay.stats();
        if done(&stats) || Instant::now() >= deadline {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The origin behind the relay.

/// What the upstream does with each connection.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Writes every byte back; half-closes after the end of stream.
    Echo,
    /// Reads everything, sends nothing.
    Sink,
    /// Sends this many bytes of [`SERVED_SEED`] then half-closes, while reading everything.
    Serve(usize),
}

/// What one upstream connection received, and how its reading side ended.
#[derive(Debug)]
struct Report {
    received: Vec<u8>,
    end: End,
}

/// An upstream on 127.0.0.1 that reports every connection once it is over.
struct Upstream {
    addr: SocketAddr,
    reports: mpsc::Receiver<Report>,
    task: JoinHandle<()>,
}

impl Upstream {
    async fn spawn(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the upstream");
        let addr = listener.local_addr().expect("the upstream's address");
        let (sender, reports) = mpsc::channel(16);
        let task = tokio::spawn(async move {
            // Dropped with this task: the connection tasks end with the upstream.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            connections.spawn(serve(stream, mode, sender.clone()));
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    },
                    Some(_) = connections.join_next() => {}
                }
            }
        });
        Self {
            addr,
            reports,
            task,
        }
    }

    /// The report of the next connection to end.
    async fn next_report(&mut self) -> Report {
        within("the upstream's report", self.reports.recv())
            .await
            .expect("the upstream is running")
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, mode: Mode, reports: mpsc::Sender<Report>) {
    let (received, end) = match mode {
        Mode::Echo => echo(&mut stream).await,
        Mode::Sink => drain(&mut stream).await,
        Mode::Serve(len) => exchange(&mut stream, &bytes(SERVED_SEED, len)).await,
    };
    let _ = reports.send(Report { received, end }).await;
}

async fn echo(stream: &mut TcpStream) -> (Vec<u8>, End) {
    let mut received = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) => {
                let _ = stream.shutdown().await;
                return (received, End::Eof);
            }
            Ok(n) => n,
            Err(_) => return (received, End::Error),
        };
        received.extend_from_slice(&chunk[..n]);
        if stream.write_all(&chunk[..n]).await.is_err() {
            return (received, End::Error);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Over the wire.

#[tokio::test]
async fn a_faithful_relay_passes_a_mebibyte_each_way_byte_for_byte() {
    let mut upstream = Upstream::spawn(Mode::Echo).await;
    let relay = Relay::start(upstream.addr, faithful())
        .await
        .expect("relay");
    let sent = bytes(1, MIB);

    let mut client = connect(relay.addr()).await;
    // The client half-closes after its last byte and the echo ends only once that FIN got
    // through: both half-closes cross the relay.
    let (echoed, end) = within("the echo", exchange(&mut client, &sent)).await;
    assert_eq!(end, End::Eof);
    assert_eq!(echoed.len(), sent.len());
    assert!(echoed == sent, "the echo differs from what was sent");

    let report = upstream.next_report().await;
    assert_eq!(report.end, End::Eof);
    assert_eq!(report.received.len(), sent.len());
    assert!(report.received == sent, "the upstream got other bytes");

    let expected = RelayStats {
        accepted: 1,
        upstream_bytes: MIB as u64,
        downstream_bytes: MIB as u64,
        ..RelayStats::default()
    };
    assert_eq!(settled(&relay, |stats| *stats == expected).await, expected);
}

#[tokio::test]
async fn an_upstream_cut_lets_exactly_its_bytes_through_then_resets() {
    let sent = bytes(2, MIB);
    for after in [0_u64, 1, 1000, 65_537] {
        let mut upstream = Upstream::spawn(Mode::Sink).await;
        let relay = Relay::with_cuts(upstream.addr, vec![Cut::upstream(after)])
            .await
            .expect("relay");

        let mut client = connect(relay.addr()).await;
        // The client's write fails or its read ends (a reset): `within` checks it does.
        let (back, _) = within("the client's exchange", exchange(&mut client, &sent)).await;
        assert!(back.is_empty(), "cut at {after}: a sink answered");

        // The upstream got exactly the prefix, then an end of stream or a reset.
        let report = upstream.next_report().await;
        let prefix = usize::try_from(after).expect("small offset");
        assert_eq!(report.received.len(), prefix, "cut at {after}");
        assert!(
            report.received[..] == sent[..prefix],
            "cut at {after}: the upstream got other bytes"
        );

        let expected = RelayStats {
            accepted: 1,
            cuts: 1,
            upstream_bytes: after,
            ..RelayStats::default()
        };
        let stats = settled(&relay, |stats| *stats == expected).await;
        assert_eq!(stats, expected, "cut at {after}");
    }
}

#[tokio::test]
async fn a_downstream_cut_delivers_exactly_its_bytes_then_resets() {
    let served = bytes(SERVED_SEED, SERVED);
    for after in [0_u64, 1, 1000, 65_537] {
        let mut upstream = Upstream::spawn(Mode::Serve(SERVED)).await;
        let relay = Relay::with_cuts(upstream.addr, vec![Cut::downstream(after)])
            .await
            .expect("relay");

        let client = connect(relay.addr()).await;
        let (got, _) = within("the client's read", drain(client)).await;
        let prefix = usize::try_from(after).expect("small offset");
        assert_eq!(got.len(), prefix, "cut at {after}");
        assert!(
            got[..] == served[..prefix],
            "cut at {after}: the client got other bytes"
        );

        // The upstream's connection ends too (its write or read fails).
        let report = upstream.next_report().await;
        assert!(report.received.is_empty(), "cut at {after}");

        let expected = RelayStats {
            accepted: 1,
            cuts: 1,
            downstream_bytes: after,
            ..RelayStats::default()
        };
        let stats = settled(&relay, |stats| *stats == expected).await;
        assert_eq!(stats, expected, "cut at {after}");
    }
}

#[tokio::test]
async fn with_cuts_cuts_only_the_first_connections() {
    let mut upstream = Upstream::spawn(Mode::Echo).await;
    let cuts = vec![Cut::upstream(10), Cut::downstream(20)];
    let relay = Relay::with_cuts(upstream.addr, cuts).await.expect("relay");

    // Connection 0: ten bytes reach the upstream, then both sides are reset.
    let sent = bytes(40, 1000);
    let mut client = connect(relay.addr()).await;
    let (echoed, _) = within("connection 0", exchange(&mut client, &sent)).await;
    assert!(
        echoed.len() <= 10 && sent.starts_with(&echoed),
        "{echoed:?}"
    );
    let report = upstream.next_report().await;
    assert!(report.received[..] == sent[..10], "{:?}", report.received);

    // Connection 1: the upstream echoes what it gets; exactly twenty bytes come back.
    let sent = bytes(41, 1000);
    let mut client = connect(relay.addr()).await;
    let (echoed, _) = within("connection 1", exchange(&mut client, &sent)).await;
    assert!(echoed[..] == sent[..20], "{echoed:?}");
    let report = upstream.next_report().await;
    assert!(report.received.len() >= 20 && sent.starts_with(&report.received));

    // Connection 2: relayed faithfully.
    let sent = bytes(42, 1000);
    let mut client = connect(relay.addr()).await;
    let (echoed, end) = within("connection 2", exchange(&mut client, &sent)).await;
    assert_eq!(end, End::Eof);
    assert!(echoed == sent, "connection 2: the echo differs");
    let report = upstream.next_report().await;
    assert_eq!(report.end, End::Eof);
    assert!(
        report.received == sent,
        "connection 2: the upstream got other bytes"
    );

    let stats = settled(&relay, |stats| stats.accepted == 3 && stats.cuts == 2).await;
    assert_eq!(
        (stats.accepted, stats.cuts, stats.connect_failures),
        (3, 2, 0)
    );
    // 0 or a few bytes of connection 0's echo, then 20 and 1000.
    assert!((1020..=1030).contains(&stats.downstream_bytes), "{stats:?}");
}

#[tokio::test]
async fn a_failed_upstream_connect_closes_the_client() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("address")
    };
    let relay = Relay::with_cuts(closed, vec![Cut::upstream(0)])
        .await
        .expect("relay");

    let client = connect(relay.addr()).await;
    let (got, _) = within("the client's read", drain(client)).await;
    assert!(got.is_empty());

    // The cut needs an upstream connection: none was made.
    let expected = RelayStats {
        accepted: 1,
        connect_failures: 1,
        ..RelayStats::default()
    };
    assert_eq!(settled(&relay, |stats| *stats == expected).await, expected);
}

#[tokio::test]
async fn a_paced_relay_is_no_faster_than_its_rate() {
    const RATE: u64 = 200 * 1024;
    let mut upstream = Upstream::spawn(Mode::Sink).await;
    let relay = Relay::with_rate(upstream.addr, faithful(), Some(RATE))
        .await
        .expect("relay");
    let sent = bytes(5, 100 * 1024);

    let mut client = connect(relay.addr()).await;
    let started = Instant::now();
    let (back, end) = within("the paced upload", exchange(&mut client, &sent)).await;
    let report = upstream.next_report().await;
    let elapsed = started.elapsed();
    assert!(back.is_empty());
    assert_eq!(end, End::Eof);
    assert!(report.received == sent, "the upstream got other bytes");
    // 100 KiB at 200 KiB/s is 0.5 s, less the first chunk (1/20 s) that goes at once. A
    // lower bound only: a busy machine may take longer.
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
}

/// A client and an upstream with one relayed connection open, its echo checked.
async fn open_connection(relay: &Relay) -> TcpStream {
    let mut client = connect(relay.addr()).await;
    client.write_all(b"ping").await.expect("write to the relay");
    let mut pong = [0; 4];
    within("the echo", client.read_exact(&mut pong))
        .await
        .expect("the echo");
    assert_eq!(&pong, b"ping");
    client
}

#[tokio::test]
async fn dropping_the_relay_closes_its_connections() {
    let mut upstream = Upstream::spawn(Mode::Echo).await;
    let relay = Relay::start(upstream.addr, faithful())
        .await
        .expect("relay");
    let mut client = open_connection(&relay).await;

    drop(relay);
    // The client, blocked in a read, sees the end of stream or a reset.
    let (rest, _) = within("the client's read after the drop", drain(&mut client)).await;
    assert!(rest.is_empty());
    // So does the upstream.
    let report = upstream.next_report().await;
    assert!(report.received[..] == b"ping"[..]);
}

#[tokio::test]
async fn shutdown_closes_the_connections_and_keeps_the_counters() {
    let mut upstream = Upstream::spawn(Mode::Echo).await;
    let relay = Relay::start(upstream.addr, faithful())
        .await
        .expect("relay");
    let mut client = open_connection(&relay).await;

    relay.shutdown();
    let (rest, _) = within("the client's read after shutdown", drain(&mut client)).await;
    assert!(rest.is_empty());
    let report = upstream.next_report().await;
    assert!(report.received[..] == b"ping"[..]);

    // Nobody accepts any more (the connect is refused); the counters stay readable.
    let _ = TcpStream::connect(relay.addr()).await;
    let expected = RelayStats {
        accepted: 1,
        upstream_bytes: 4,
        downstream_bytes: 4,
        ..RelayStats::default()
    };
    assert_eq!(settled(&relay, |stats| *stats == expected).await, expected);
}

// ---------------------------------------------------------------------------------------
// The pure cores.

#[test]
fn a_budget_reads_no_further_than_its_cut() {
    let mut budget = Budget::new(Some(1000));
    assert_eq!(budget.next_read(BUFFER), 1000);
    assert_eq!(budget.next_read(10), 10);
    budget.forward(999);
    assert!(!budget.cut_due());
    assert_eq!(budget.next_read(BUFFER), 1);
    budget.forward(1);
    assert!(budget.cut_due());
    assert_eq!(budget.next_read(BUFFER), 0);
    assert_eq!(budget.forwarded(), 1000);

    assert!(Budget::new(Some(0)).cut_due());
    let unlimited = Budget::new(None);
    assert!(!unlimited.cut_due());
    assert_eq!(unlimited.next_read(BUFFER), BUFFER);
}

proptest! {
    /// The relay's read loop, modelled: whatever sizes the reads come in, exactly
    /// `min(cut, total)` bytes pass, and the cut fires exactly when the stream reaches it.
    #[test]
    fn a_budget_forwards_up_to_its_cut_however_reads_split(
        cut_at in proptest::option::of(0_u64..4096),
        offers in proptest::collection::vec(1_usize..1500, 0..12),
        room in 1_usize..2048,
    ) {
        let total: u64 = offers.iter().map(|&n| n as u64).sum();
        let mut offers = offers.into_iter();
        let mut pending = 0_usize;
        let mut budget = Budget::new(cut_at);
        let cut = loop {
            if budget.cut_due() {
                break true;
            }
            let want = budget.next_read(room);
            prop_assert!((1..=room).contains(&want));
            if pending == 0 {
                match offers.next() {
                    Some(n) => pending = n,
                    // End of stream.
                    None => break false,
                }
            }
            let n = want.min(pending);
            pending -= n;
            budget.forward(n);
            if let Some(at) = cut_at {
                prop_assert!(budget.forwarded() <= at);
            }
        };
        let expected = cut_at.map_or(total, |at| at.min(total));
        prop_assert_eq!(budget.forwarded(), expected);
        prop_assert_eq!(cut, cut_at.is_some_and(|at| at <= total));
    }
}

#[test]
fn pace_spaces_chunks_by_their_size_and_earns_no_credit_when_idle() {
    let ms = Duration::from_millis;
    let mut pace = Pace::new(1000);
    let t0 = Instant::now();
    assert_eq!(pace.schedule(t0, 100), t0);
    assert_eq!(pace.schedule(t0, 50), t0 + ms(100));
    assert_eq!(pace.schedule(t0 + ms(10), 10), t0 + ms(150));
    let later = t0 + ms(10_000);
    assert_eq!(pace.schedule(later, 10), later);
    assert_eq!(pace.schedule(later, 1), later + ms(10));
}

#[test]
fn pace_reads_a_twentieth_of_a_second_at_most() {
    assert_eq!(Pace::new(200 * 1024).chunk_limit(), 10 * 1024);
    assert_eq!(Pace::new(1).chunk_limit(), 1);
    assert_eq!(Pace::new(0).chunk_limit(), 1);
    assert_eq!(Pace::new(u64::MAX).chunk_limit(), BUFFER);
    // Rounded up: never faster than the rate.
    assert_eq!(
        Pace::new(3).duration_of(1),
        Duration::from_nanos(333_333_334)
    );
}
