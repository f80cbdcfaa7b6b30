//! Scenario `overhead`: what the layers cost when nothing restarts.
//!
//! (a) Small POSTs at a fixed concurrency straight to one origin: bare, with the replay
//! layer, with both server layers (replay and resumable requests). (b) Large unthrottled
//! uploads: straight to an origin, through our proxy without and with replay, through nginx
//! streaming and through HAProxy. Every round runs each contender once, in a rotating
//! order; the tables give the median of the rounds, their spread, and each contender's
//! median ratio to its baseline within the same rounds.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args as ClapArgs;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tokio::process::Command;

use crate::bins::Bins;
use crate::load::{self, Pace};
use crate::origins::{OriginSetup, Origins};
use crate::peers::{Peer, RunningPeer};
use crate::procs::{self, Proc};
use crate::report;
use crate::BoxError;

const MIB: u64 = 1024 * 1024;

/// `overhead`: the cost of the layers without restarts.
#[derive(Debug, Clone, ClapArgs)]
pub(crate) struct Args {
    /// 3 rounds, shorter batches.
    #[arg(long)]
    quick: bool,
    /// Rounds (each runs every contender once).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// (a): concurrent connections of small POSTs.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// (a): seconds of small POSTs per contender and round.
    #[arg(long, default_value_t = 3.0)]
    small_secs: f64,
    /// (b): concurrent uploads, and their size in MiB.
    #[arg(long, default_value_t = 16)]
    uploads: usize,
    #[arg(long, default_value_t = 16)]
    upload_mib: u64,
}

/// One measurement: a contender in one round.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Sample {
    pub(crate) part: &'static str,
    pub(crate) contender: String,
    pub(crate) round: usize,
    /// (a) requests per second; (b) MiB per second.
    pub(crate) rate: f64,
    pub(crate) p99: Duration,
    /// CPU the server's processes spent: (a) the origin's, microseconds per request; (b)
    /// the proxy's, seconds per GiB carried (none when going direct).
    pub(crate) cpu_per_unit: Option<f64>,
    pub(crate) failures: usize,
}

pub(crate) async fn run(args: Args) -> Result<(), BoxError> {
    let rounds = if args.quick { 3 } else { args.rounds.max(1) };
    if !(args.small_secs.is_finite() && args.small_secs > 0.0 && args.small_secs < 3600.0) {
        return Err("--small-secs must be a positive number of at most 3600".into());
    }
    let small = Duration::from_secs_f64(if args.quick { 1.5 } else { args.small_secs });
    let bins = Bins::prepare()?;
    let mut samples = Vec::new();
    samples.extend(small_posts(&bins, rounds, args.connections, small).await?);
    let (large, notes) = large_uploads(&bins, rounds, args.uploads, args.upload_mib * MIB).await?;
    samples.extend(large);
    report::overhead(&samples, &notes)
}

/// (a): the origin bare, with the replay layer, with both server layers.
async fn small_posts(
    bins: &Bins,
    rounds: usize,
    connections: usize,
    each: Duration,
) -> Result<Vec<Sample>, BoxError> {
    let variants: [(&str, bool, bool); 3] = [
        ("origin bare (baseline)", false, false),
        ("+ PartialPostReplayLayer", true, false),
        ("+ PartialPostReplayLayer + ResumableLayer", true, true),
    ];
    let mut origins = Vec::new();
    for (label, replay, resume) in variants {
        let mut command = Command::new(&bins.origin);
        command
            .args(["--listen", "127.0.0.1:0", "--name", "o"])
            .env("RUST_LOG", "warn");
        if replay {
            command.arg("--replay");
        }
        if !resume {
            command.arg("--no-resume");
        }
        let (proc, addr) = Proc::spawn_listening(label, command).await?;
        origins.push((label, proc, addr));
    }
    let mut samples = Vec::new();
    for round in 0..rounds {
        for offset in 0..origins.len() {
            let (label, proc, addr) = &origins[(offset + round) % origins.len()];
            eprintln!("overhead (a): round {}/{rounds} / {label}", round + 1);
            let before = procs::cpu_time(proc.pid()).unwrap_or_default();
            let (rate, p99, failures, requests) = post_loop(*addr, connections, each).await;
            let spent = procs::cpu_time(proc.pid())
                .unwrap_or_default()
                .saturating_sub(before);
            let requests = (requests + failures) as f64;
            samples.push(Sample {
                part: "a",
                contender: (*label).to_owned(),
                round,
                rate,
                p99,
                cpu_per_unit: (requests > 0.0).then(|| spent.as_secs_f64() * 1e6 / requests),
                failures,
            });
        }
    }
    for (_, mut proc, _) in origins {
        proc.stop(Duration::from_secs(5)).await?;
    }
    Ok(samples)
}

/// `connections` clients posting 1 KiB bodies in a loop for `each`: requests per second,
/// p99 latency, failures. Each request carries the replay proxy's mark, so the replay layer
/// records it as it would behind our proxy.
async fn post_loop(
    addr: SocketAddr,
    connections: usize,
    each: Duration,
) -> (f64, Duration, usize, usize) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let body = Bytes::from(vec![b'x'; 1024]);
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let client = client.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failures = 0usize;
                while started.elapsed() < each {
                    let at = Instant::now();
                    let request = http::Request::post(format!("http://{addr}/upload"))
                        .header("partial-post-replay", "0")
                        .body(Full::new(body.clone()))
                        .expect("a valid request");
                    let exchange = async {
                        let response = client.request(request).await.ok()?;
                        let status = response.status();
                        let body = response.into_body().collect().await.ok();
                        (status == 200 && body.is_some()).then_some(())
                    };
                    // Bounded: an origin that stops answering must not hang the run.
                    let ok = matches!(
                        tokio::time::timeout(Duration::from_secs(10), exchange).await,
                        Ok(Some(()))
                    );
                    if ok {
                        latencies.push(at.elapsed());
                    } else {
                        failures += 1;
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failures = 0;
    for task in tasks {
        if let Ok((l, f)) = task.await {
            latencies.extend(l);
            failures += f;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let p99 = crate::restart::quantile(&latencies, 0.99);
    let requests = latencies.len();
    (requests as f64 / elapsed, p99, failures, requests)
}

/// Who carries the large uploads in (b).
enum Carrier {
    Direct(SocketAddr),
    Ours(Proc, SocketAddr),
    Peer(RunningPeer),
}

impl Carrier {
    fn addr(&self) -> SocketAddr {
        match self {
            Carrier::Direct(addr) | Carrier::Ours(_, addr) => *addr,
            Carrier::Peer(peer) => peer.addr,
        }
    }

    fn pids(&self) -> Vec<u32> {
        match self {
            Carrier::Direct(_) => Vec::new(),
            Carrier::Ours(proc, _) => vec![proc.pid()],
            Carrier::Peer(peer) => peer.pids(),
        }
    }
}

/// (b): unthrottled large uploads through each carrier.
async fn large_uploads(
    bins: &Bins,
    rounds: usize,
    uploads: usize,
    size: u64,
) -> Result<(Vec<Sample>, Vec<String>), BoxError> {
    let setup = OriginSetup {
        replay: false,
        drain: Duration::from_secs(1),
        settle: Duration::ZERO,
        read_rate: None,
    };
    let origins = Origins::start(bins.origin.clone(), 3, setup).await?;
    let addrs = origins.addrs();
    let mut carriers: Vec<(String, Carrier)> =
        vec![("direct to one origin".to_owned(), Carrier::Direct(addrs[0]))];
    for replay in [false, true] {
        let mut command = Command::new(&bins.proxy);
        command
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn");
        for origin in &addrs {
            command.arg("--backend").arg(format!("http://{origin}"));
        }
        if !replay {
            command.arg("--no-replay");
        }
        let label = if replay {
            "ours, replay"
        } else {
            "ours, --no-replay (baseline)"
        };
        let (proc, addr) = Proc::spawn_listening(label, command).await?;
        carriers.push((label.to_owned(), Carrier::Ours(proc, addr)));
    }
    let (peers, notes) =
        crate::restart::contenders(bins, &[], &[Peer::NginxStreaming, Peer::Haproxy]);
    for contender in peers {
        let crate::restart::Contender::Peer(peer) = contender else {
            continue;
        };
        // `contenders` lists installed peers only.
        let bin = bins.peer(peer).ok_or("the peer is not installed")?;
        let running = RunningPeer::start(peer, bin, &addrs, size).await?;
        carriers.push((peer.label().to_owned(), Carrier::Peer(running)));
    }
    // The peers' health checks see every origin up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pace = Pace {
        size,
        over: Duration::ZERO,
        chunk: 64 * 1024,
    };
    let mut samples = Vec::new();
    // A warm-up batch each, not counted.
    for (_, carrier) in &carriers {
        load::run(carrier.addr(), uploads, pace).await;
    }
    for round in 0..rounds {
        for offset in 0..carriers.len() {
            let (label, carrier) = &carriers[(offset + round) % carriers.len()];
            eprintln!("overhead (b): round {}/{rounds} / {label}", round + 1);
            let pids = carrier.pids();
            let cpu_before: Duration = pids.iter().filter_map(|p| procs::cpu_time(*p)).sum();
            let started = Instant::now();
            let outcomes = load::run(carrier.addr(), uploads, pace).await;
            let elapsed = started.elapsed().as_secs_f64();
            let cpu: Duration = pids.iter().filter_map(|p| procs::cpu_time(*p)).sum();
            let carried: u64 = outcomes.iter().filter(|o| o.ok).map(|o| o.sent).sum();
            let mut latencies: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
            latencies.sort_unstable();
            let gib = carried as f64 / (1u64 << 30) as f64;
            samples.push(Sample {
                part: "b",
                contender: label.clone(),
                round,
                rate: carried as f64 / MIB as f64 / elapsed,
                p99: latencies.last().copied().unwrap_or_default(),
                cpu_per_unit: (!pids.is_empty() && gib > 0.0)
                    .then(|| cpu.saturating_sub(cpu_before).as_secs_f64() / gib),
                failures: outcomes.iter().filter(|o| !o.ok).count(),
            });
        }
    }
    for (_, carrier) in carriers {
        match carrier {
            Carrier::Direct(_) => {}
            Carrier::Ours(mut proc, _) => {
                proc.stop(Duration::from_secs(10)).await?;
            }
            Carrier::Peer(mut peer) => {
                peer.proc.stop(Duration::from_secs(5)).await?;
            }
        }
    }
    origins.stop().await?;
    Ok((samples, notes))
}
