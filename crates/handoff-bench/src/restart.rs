//! Scenario `restart`: three origins behind one proxy, many paced uploads in flight, and a
//! rolling restart (each origin SIGTERMed in turn with a drain window, then started again on
//! its port), for every contender, at three timings of the restart.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args as ClapArgs;
use serde::Serialize;
use tokio::process::Command;

use crate::bins::{self, Bins};
use crate::load::{self, Outcome, Pace};
use crate::origins::{OriginSetup, Origins};
use crate::peers::{Peer, RunningPeer};
use crate::procs::{self, Proc};
use crate::report;
use crate::BoxError;

const MIB: u64 = 1024 * 1024;

/// `restart`: rolling restarts under uploads, our proxy against nginx and HAProxy.
#[derive(Debug, Clone, ClapArgs)]
pub(crate) struct Args {
    /// Smaller and shorter: 8 uploads of 4 MiB over 3 s, 0.5 s drain windows and settle
    /// times.
    #[arg(long)]
    quick: bool,
    /// Concurrent uploads.
    #[arg(long, default_value_t = 16)]
    uploads: usize,
    /// Size of each upload, MiB.
    #[arg(long, default_value_t = 8)]
    size_mib: u64,
    /// Seconds over which each client sends its upload.
    #[arg(long, default_value_t = 6.0)]
    upload_secs: f64,
    /// The origins' drain window, seconds.
    #[arg(long, default_value_t = 1.0)]
    drain_secs: f64,
    /// Seconds a rolling restart waits after a replacement is up before it stops the next
    /// origin (readiness, as a deployment would).
    #[arg(long, default_value_t = 1.0)]
    settle_secs: f64,
    /// Read rate of the replacement origins in the slow timing, MiB/s per upload.
    #[arg(long, default_value_t = 1.0)]
    slow_read_mib: f64,
    /// Only contenders whose label contains one of these (repeatable), e.g. `--only ours`.
    #[arg(long)]
    only: Vec<String>,
}

/// Who fronts the origins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Contender {
    /// The workspace's `proxy` example; origins with `--replay` when `replay`.
    Ours {
        replay: bool,
    },
    Peer(Peer),
}

impl Contender {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Contender::Ours { replay: true } => "ours, replay",
            Contender::Ours { replay: false } => "ours, --no-replay",
            Contender::Peer(peer) => peer.label(),
        }
    }
}

/// When the rolling restart happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Timing {
    /// A third of the way through the uploads: streaming proxies have sent part of each
    /// body to an origin.
    Streaming,
    /// As the clients send their last bytes, with origins that read at three times the
    /// clients' rate: store-and-forward proxies are forwarding their buffered copies.
    Forwarding,
    /// As `Streaming`, with replacements that read at a limited rate: where drain windows
    /// bite, since the old origin's echo must not wait for the new one.
    SlowReplacement,
}

impl Timing {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Timing::Streaming => "while the uploads stream",
            Timing::Forwarding => "as the clients send their last bytes",
            Timing::SlowReplacement => "while streaming, replacements read slowly",
        }
    }
}

/// One contender at one timing.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    pub(crate) contender: String,
    pub(crate) timing: Timing,
    pub(crate) uploads: usize,
    pub(crate) ok: usize,
    /// Answered, but not `200` with the right digest: the statuses.
    pub(crate) failed_statuses: Vec<u16>,
    /// No answer at all (a reset connection).
    pub(crate) no_response: usize,
    /// Over the uploads that succeeded.
    pub(crate) latency_p50: Duration,
    pub(crate) latency_p99: Duration,
    /// From the client's last byte to the answer, median over the uploads that succeeded.
    pub(crate) last_byte_to_answer_p50: Option<Duration>,
    /// The proxy's peak memory: the highest sum of its processes' PSS (shared pages counted
    /// once), sampled every 50 ms.
    pub(crate) proxy_peak_memory: u64,
    /// Bytes the proxy's processes wrote to storage (body temp files).
    pub(crate) proxy_disk_writes: u64,
    /// Body bytes the origins' handlers received (what the proxy sent upstream).
    pub(crate) upstream_bytes: u64,
    /// Body bytes the clients sent in uploads that failed: a client must send them again.
    pub(crate) client_bytes_lost: u64,
    /// Requests the proxy sent again to another origin (replays; the peers' retries).
    pub(crate) retried: u64,
    /// The largest peak RSS (`VmHWM`) of the origins running at the end.
    pub(crate) origin_peak_rss: u64,
    pub(crate) errors: Vec<String>,
}

/// When the origins restart, and how many of them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    pub(crate) timing: Timing,
    pub(crate) at: Duration,
    /// The first `origins` origins restart, in turn.
    pub(crate) origins: usize,
    /// The first origins read at this many bytes per second per upload.
    pub(crate) first_read_rate: Option<u64>,
    /// Replacements read at this many bytes per second per upload.
    pub(crate) read_rate: Option<u64>,
}

/// The sizes of a run.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Plan {
    pub(crate) uploads: usize,
    pub(crate) size: u64,
    pub(crate) upload_time: Duration,
    pub(crate) drain: Duration,
    pub(crate) settle: Duration,
    pub(crate) slow_read_rate: u64,
}

pub(crate) async fn run(args: Args) -> Result<(), BoxError> {
    for (name, value) in [
        ("--upload-secs", args.upload_secs),
        ("--drain-secs", args.drain_secs),
        ("--settle-secs", args.settle_secs),
        ("--slow-read-mib", args.slow_read_mib),
    ] {
        if !(value.is_finite() && value > 0.0 && value < 3600.0) {
            return Err(format!("{name} must be a positive number of at most 3600").into());
        }
    }
    let plan = if args.quick {
        Plan {
            uploads: 8,
            size: 4 * MIB,
            upload_time: Duration::from_secs(3),
            drain: Duration::from_millis(500),
            settle: Duration::from_millis(500),
            slow_read_rate: MIB,
        }
    } else {
        Plan {
            uploads: args.uploads,
            size: args.size_mib * MIB,
            upload_time: Duration::from_secs_f64(args.upload_secs),
            drain: Duration::from_secs_f64(args.drain_secs),
            settle: Duration::from_secs_f64(args.settle_secs),
            slow_read_rate: (args.slow_read_mib * MIB as f64) as u64,
        }
    };
    let bins = Bins::prepare()?;
    let ours = [
        Contender::Ours { replay: true },
        Contender::Ours { replay: false },
    ];
    let peers = [
        Peer::NginxStreaming,
        Peer::NginxBuffered,
        Peer::Haproxy,
        Peer::HaproxyBigBuffer,
    ];
    let (mut contenders, mut notes) = contenders(&bins, &ours, &peers);
    // HAProxy refuses a `tune.bufsize` of 256 MB or more in HTTP mode.
    if plan.size + (1 << 20) >= 256_000_000 {
        contenders.retain(|c| *c != Contender::Peer(Peer::HaproxyBigBuffer));
        notes.push(
            "skipped HAProxy with an upload-sized buffer: it allows at most 256 MB".to_owned(),
        );
    }
    if !args.only.is_empty() {
        contenders.retain(|c| args.only.iter().any(|o| c.label().contains(o.as_str())));
    }

    let timings = [
        Timing::Streaming,
        Timing::Forwarding,
        Timing::SlowReplacement,
    ];
    let mut rows = Vec::new();
    for (t, timing) in timings.into_iter().enumerate() {
        // Interleaved: each timing starts with a different contender.
        for offset in 0..contenders.len() {
            let contender = contenders[(offset + t) % contenders.len()];
            eprintln!("restart: {} / {}", timing.label(), contender.label());
            // Forwarding: the origins read at three times the clients' rate, so that a
            // store-and-forward proxy's forward of a whole body takes a while (on 127.0.0.1
            // it would take milliseconds, and whether the restart meets it would be chance),
            // while a streaming proxy's uploads are not slowed.
            let client_rate = (plan.size as f64 / plan.upload_time.as_secs_f64()) as u64;
            let (at, first_read_rate, read_rate) = match timing {
                Timing::Streaming => (plan.upload_time / 3, None, None),
                Timing::Forwarding => (plan.upload_time, Some(client_rate * 3), None),
                Timing::SlowReplacement => (plan.upload_time / 3, None, Some(plan.slow_read_rate)),
            };
            let schedule = Schedule {
                timing,
                at,
                origins: 3,
                first_read_rate,
                read_rate,
            };
            rows.push(run_one(&bins, contender, schedule, plan).await?);
        }
    }
    rows.sort_by_key(|row| {
        let at = contenders.iter().position(|c| c.label() == row.contender);
        (timings.iter().position(|t| *t == row.timing), at)
    });
    report::restart(&plan, &rows, &notes)
}

/// `ours`, then each of `peers` whose binary is installed; a note per peer binary found
/// (its version) or missing (skipped).
pub(crate) fn contenders(
    bins: &Bins,
    ours: &[Contender],
    peers: &[Peer],
) -> (Vec<Contender>, Vec<String>) {
    let mut contenders = ours.to_vec();
    let mut notes = Vec::new();
    for (name, bin, family) in [
        (
            "nginx",
            &bins.nginx,
            [Peer::NginxStreaming, Peer::NginxBuffered],
        ),
        (
            "HAProxy",
            &bins.haproxy,
            [Peer::Haproxy, Peer::HaproxyBigBuffer],
        ),
    ] {
        let wanted: Vec<Peer> = family.into_iter().filter(|p| peers.contains(p)).collect();
        if wanted.is_empty() {
            continue;
        }
        match bin {
            Some(bin) => {
                notes.push(format!("{name}: {}", bins::version(bin)));
                contenders.extend(wanted.into_iter().map(Contender::Peer));
            }
            None => notes.push(format!(
                "skipped {name}: not installed (scripts/install-peers.sh installs it)"
            )),
        }
    }
    for note in &notes {
        eprintln!("{note}");
    }
    (contenders, notes)
}

/// The proxy in front of the origins.
enum Front {
    Ours(Proc, SocketAddr),
    Peer(RunningPeer),
}

impl Front {
    async fn start(
        contender: Contender,
        bins: &Bins,
        origins: &[SocketAddr],
        plan: Plan,
    ) -> Result<Self, BoxError> {
        match contender {
            Contender::Ours { replay } => {
                let mut command = Command::new(&bins.proxy);
                command.arg("--listen").arg("127.0.0.1:0");
                for origin in origins {
                    command.arg("--backend").arg(format!("http://{origin}"));
                }
                if !replay {
                    command.arg("--no-replay");
                }
                command
                    .arg("--drain-timeout")
                    .arg("10")
                    .env("RUST_LOG", "warn");
                let (proc, addr) = Proc::spawn_listening("proxy", command).await?;
                Ok(Front::Ours(proc, addr))
            }
            Contender::Peer(peer) => {
                let bin = bins.peer(peer).ok_or("the peer is not installed")?;
                Ok(Front::Peer(
                    RunningPeer::start(peer, bin, origins, plan.size).await?,
                ))
            }
        }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Front::Ours(_, addr) => *addr,
            Front::Peer(peer) => peer.addr,
        }
    }

    fn pids(&self) -> Vec<u32> {
        match self {
            Front::Ours(proc, _) => vec![proc.pid()],
            Front::Peer(peer) => peer.pids(),
        }
    }

    /// Stops the proxy; how many requests it sent again to another origin.
    async fn stop(self) -> Result<u64, BoxError> {
        match self {
            Front::Ours(mut proc, _) => {
                proc.stop(Duration::from_secs(15)).await?;
                Ok(proc.totals("replays").unwrap_or(0))
            }
            Front::Peer(mut peer) => {
                // Stopped first: the last log lines are then written and read.
                peer.proc.stop(Duration::from_secs(5)).await?;
                Ok(peer.retried())
            }
        }
    }
}

/// One contender through one restart schedule, with three fresh origins.
pub(crate) async fn run_one(
    bins: &Bins,
    contender: Contender,
    schedule: Schedule,
    plan: Plan,
) -> Result<Row, BoxError> {
    let setup = OriginSetup {
        replay: contender == Contender::Ours { replay: true },
        drain: plan.drain,
        settle: plan.settle,
        read_rate: schedule.first_read_rate,
    };
    let mut origins = Origins::start(bins.origin.clone(), 3, setup).await?;
    let front = Front::start(contender, bins, &origins.addrs(), plan).await?;
    // The peers' health checks see every origin up before the load starts.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let pace = Pace {
        size: plan.size,
        over: plan.upload_time,
        chunk: 64 * 1024,
    };
    let memory = procs::MemorySampler::start(front.pids());
    let load = tokio::spawn(load::run(front.addr(), plan.uploads, pace));
    tokio::time::sleep(schedule.at).await;
    origins
        .rolling_restart(schedule.origins, schedule.read_rate)
        .await?;
    let outcomes = load.await?;

    // Read from /proc while the proxy's processes are alive.
    let proxy_peak_memory = memory.stop();
    let pids = front.pids();
    let proxy_disk_writes = pids.iter().filter_map(|p| procs::disk_writes(*p)).sum();
    let origin_peak_rss = origins.peak_rss();
    let retried = front.stop().await?;
    let (upstream_bytes, missing) = origins.stop().await?;
    let mut row = summarize(contender, schedule.timing, &outcomes);
    if missing > 0 {
        row.errors.push(format!(
            "{missing} origin processes printed no totals: upstream bytes undercounted"
        ));
    }
    row.proxy_peak_memory = proxy_peak_memory;
    row.proxy_disk_writes = proxy_disk_writes;
    row.upstream_bytes = upstream_bytes;
    row.retried = retried;
    row.origin_peak_rss = origin_peak_rss;
    Ok(row)
}

/// The clients' side of a row; the proxy's and origins' figures are filled in by the caller.
fn summarize(contender: Contender, timing: Timing, outcomes: &[Outcome]) -> Row {
    // Latencies of the uploads that succeeded: a quick reset must not look fast.
    let mut latencies: Vec<Duration> = outcomes
        .iter()
        .filter(|o| o.ok)
        .map(|o| o.latency)
        .collect();
    latencies.sort_unstable();
    let mut answers: Vec<Duration> = outcomes
        .iter()
        .filter(|o| o.ok)
        .filter_map(|o| o.last_byte_to_answer)
        .collect();
    answers.sort_unstable();
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.ok).collect();
    let mut errors: Vec<String> = failed.iter().filter_map(|o| o.error.clone()).collect();
    errors.sort();
    errors.dedup();
    errors.truncate(5);
    Row {
        contender: contender.label().to_owned(),
        timing,
        uploads: outcomes.len(),
        ok: outcomes.len() - failed.len(),
        failed_statuses: failed.iter().filter_map(|o| o.status).collect(),
        no_response: failed.iter().filter(|o| o.status.is_none()).count(),
        latency_p50: quantile(&latencies, 0.50),
        latency_p99: quantile(&latencies, 0.99),
        last_byte_to_answer_p50: (!answers.is_empty()).then(|| quantile(&answers, 0.50)),
        proxy_peak_memory: 0,
        proxy_disk_writes: 0,
        upstream_bytes: 0,
        client_bytes_lost: failed.iter().map(|o| o.sent).sum(),
        retried: 0,
        origin_peak_rss: 0,
        errors,
    }
}

/// The `q` quantile of sorted values (nearest rank); zero for none.
pub(crate) fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&values, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&values[..1], 0.99), Duration::from_millis(1));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
