//! tower-handoff's Partial POST Replay in one process: a rolling restart that fails no
//! upload.
//!
//! Starts a proxy and two origins on ephemeral ports, sends 32 concurrent throttled uploads
//! of 4 MiB through the proxy, and restarts each origin in turn while they are in flight
//! (shutdown, then a new origin on the same port; the proxy's backend list is fixed). The
//! origins drain for only 0.5 s, far less than an upload takes, like production drain
//! windows are shorter than the longest uploads.
//!
//! With replay the origins hand every unfinished upload back to the proxy (`379`), which
//! replays it on the other origin: every upload succeeds. `--no-replay` runs the same
//! scenario without the layers: the uploads cut by the drain window fail.
//!
//! With `--read-rate`, every origin reads uploads at most that fast (a slow replacement:
//! cold caches, slow storage), so a replay takes far longer than the old origin's drain
//! window. The proxy takes each echo into its spool as fast as the old origin sends it, so
//! the old origin still exits within its window and no upload fails.
//!
//! ```text
//! cargo run --release --example demo
//! cargo run --release --example demo -- --no-replay
//! cargo run --release --example demo -- --h2 --read-rate 2 --uploads 8 --size-mib 16 --upload-secs 2
//! ```
//!
//! Exits non-zero if any upload fails with replay on.

#[path = "support/mod.rs"]
mod support;

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use support::cli::parse_secs;
use support::connections::Ended;
use support::origin::{spawn_origin, OriginConfig, OriginHandle, OriginStats};
use support::proxy::{spawn_proxy, ProxyConfig, ProxyHandle};
use support::rolling::{restart_origin, RestartEvent};
use support::upload::{upload_with, UploadOutcome, UploadSpec};
use support::BoxError;
use tokio::net::TcpListener;

/// Rolling restart of two origins under 32 concurrent uploads, with and without Partial
/// POST Replay.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Run the same scenario without replay (origins without the layer, proxy without
    /// ReplayLayer).
    #[arg(long)]
    no_replay: bool,
    /// h2c between the proxy and the origins (HTTP/1.1 otherwise).
    #[arg(long)]
    h2: bool,
    /// Concurrent uploads.
    #[arg(long, default_value_t = 32)]
    uploads: u64,
    /// Size of each upload, MiB.
    #[arg(long, value_name = "MIB", default_value_t = 4)]
    size_mib: u64,
    /// Bytes per body chunk, KiB.
    #[arg(long, value_name = "KIB", default_value_t = 64)]
    chunk_kib: usize,
    /// How long one upload takes (the client throttles itself to this).
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = parse_secs)]
    upload_secs: Duration,
    /// Origins read uploads at most this fast, MiB/s (slow replacements).
    #[arg(long, value_name = "MIB_PER_S")]
    read_rate: Option<f64>,
    /// How long a restarting origin lets requests drain before it closes them.
    #[arg(long, value_name = "SECS", default_value = "0.5", value_parser = parse_secs)]
    drain_timeout: Duration,
}

/// Everything stops after this, whatever happens.
const RUN_LIMIT: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    support::logging::init("error");
    support::cli::exit_code_within("demo", RUN_LIMIT, run(args)).await
}

/// Prints a timestamped line of the scenario.
struct Timeline {
    start: Instant,
}

impl Timeline {
    fn event(&self, text: impl std::fmt::Display) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(
            stdout,
            "  {:>6.2} s  {text}",
            self.start.elapsed().as_secs_f64()
        );
        let _ = stdout.flush();
    }
}

async fn run(args: Args) -> Result<ExitCode, BoxError> {
    let replay = !args.no_replay;
    let total_bytes = args.size_mib * 1024 * 1024;
    let chunk_bytes = args.chunk_kib.max(1) * 1024;
    let chunks = total_bytes.div_ceil(chunk_bytes as u64).max(2);
    let chunk_delay = args.upload_secs / u32::try_from(chunks - 1).unwrap_or(u32::MAX);

    println!(
        "tower-handoff demo: {} uploads x {} MiB through a proxy, rolling restart of 2 origins \
         ({} drain window{}), replay {}, proxy -> origins over {}",
        args.uploads,
        args.size_mib,
        fmt_secs(args.drain_timeout),
        match args.read_rate {
            Some(mib) => format!(", origins reading at {mib} MiB/s"),
            None => String::new(),
        },
        if replay { "ON" } else { "OFF" },
        if args.h2 { "h2c" } else { "HTTP/1.1" },
    );
    println!();

    let stats = [OriginStats::default(), OriginStats::default()];
    let read_rate = args.read_rate.map(|mib| (mib * 1024.0 * 1024.0) as u64);
    let origin_cfg = |name: &str| {
        OriginConfig::new(name)
            .replay(replay)
            .drain_timeout(args.drain_timeout)
            .read_rate(read_rate)
    };
    let mut origins = Vec::new();
    for (name, stats) in ["a1", "b1"].into_iter().zip(&stats) {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        origins.push(spawn_origin(listener, origin_cfg(name), stats.clone()).await?);
    }
    let addrs: Vec<SocketAddr> = origins.iter().map(OriginHandle::addr).collect();
    let proxy_cfg = ProxyConfig::with_addrs(addrs.clone())
        .h2(args.h2)
        .replay(replay)
        .drain_timeout(Duration::from_secs(5));
    let proxy = spawn_proxy(TcpListener::bind("127.0.0.1:0").await?, proxy_cfg).await?;

    let timeline = Timeline {
        start: Instant::now(),
    };
    timeline.event(format!(
        "proxy on {}, origin a1 on {}, origin b1 on {}; starting {} uploads",
        proxy.addr(),
        addrs[0],
        addrs[1],
        args.uploads
    ));
    let uploads: Vec<_> = (0..args.uploads)
        .map(|seed| {
            let spec = UploadSpec::new(total_bytes, chunk_bytes, chunk_delay, seed);
            let proxy_addr = proxy.addr();
            tokio::spawn(async move { upload_with(proxy_addr, &spec).await })
        })
        .collect();

    // Rolling restart: a at a quarter of an upload's time, b once a is back and at least
    // half of an upload's time has passed, so both restarts hit uploads in flight.
    let mut successors = Vec::new();
    let schedule = [
        (0, "a2", args.upload_secs / 4),
        (1, "b2", args.upload_secs / 2),
    ];
    let mut retired = origins.into_iter();
    for (index, successor, at) in schedule {
        let old = retired.next().expect("two origins");
        tokio::time::sleep_until((timeline.start + at).into()).await;
        let new = restart(&timeline, &proxy, old, origin_cfg(successor), &stats[index]).await?;
        successors.push(new);
    }

    let mut outcomes = Vec::new();
    for task in uploads {
        outcomes.push(task.await?);
    }
    let wall = timeline.start.elapsed();
    timeline.event("all uploads finished");

    let replay_stats = proxy.stats();
    proxy.wait().await;
    for origin in successors {
        origin.wait().await;
    }

    let report = Report::new(&outcomes, wall);
    println!();
    report.print(replay, &replay_stats, &stats);
    if replay && report.failed > 0 {
        println!();
        println!("FAIL: {} upload(s) failed with replay on", report.failed);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Replaces `old` by its successor on the same port, telling the timeline how it went.
async fn restart(
    timeline: &Timeline,
    proxy: &ProxyHandle,
    old: OriginHandle,
    cfg: OriginConfig,
    stats: &OriginStats,
) -> Result<OriginHandle, BoxError> {
    let in_flight = stats.uploads_started() - stats.uploads_completed();
    timeline.event(format!(
        "restarting origin {} ({in_flight} uploads in its handlers)",
        old.name()
    ));
    restart_origin(proxy, old, cfg, stats, |event| match event {
        RestartEvent::Listening { name, addr } => {
            timeline.event(format!("origin {name} listening on {addr}"))
        }
        RestartEvent::OldEnded {
            name,
            ended: Ended::Drained,
        } => timeline.event(format!("origin {name} drained and exited")),
        RestartEvent::OldEnded {
            name,
            ended: Ended::Forced(closed),
        } => timeline.event(format!(
            "origin {name} exited after its drain window, cutting {closed} connection(s)"
        )),
        RestartEvent::Routed { addr, again: true } => {
            timeline.event(format!("proxy routes to {addr} again"))
        }
        RestartEvent::Routed { addr, again: false } => {
            timeline.event(format!("proxy still has {addr} marked down"))
        }
    })
    .await
}

/// The outcome counts of a run.
struct Report {
    started: usize,
    succeeded: usize,
    failed: usize,
    statuses: Vec<(String, usize)>,
    wall: Duration,
}

impl Report {
    fn new(outcomes: &[Result<UploadOutcome, BoxError>], wall: Duration) -> Self {
        let mut statuses: Vec<(String, usize)> = Vec::new();
        let mut succeeded = 0;
        for outcome in outcomes {
            let label = match outcome {
                Ok(outcome) if outcome.succeeded() => {
                    succeeded += 1;
                    continue;
                }
                Ok(outcome) if outcome.status.is_success() => "200 wrong bytes".to_owned(),
                Ok(outcome) => outcome.status.as_u16().to_string(),
                Err(_) => "connection error".to_owned(),
            };
            match statuses.iter_mut().find(|(l, _)| *l == label) {
                Some((_, count)) => *count += 1,
                None => statuses.push((label, 1)),
            }
        }
        Self {
            started: outcomes.len(),
            succeeded,
            failed: outcomes.len() - succeeded,
            statuses,
            wall,
        }
    }

    fn print(
        &self,
        replay: bool,
        stats: &handoff_client::replay::ReplayStats,
        origins: &[OriginStats],
    ) {
        let failures = if self.statuses.is_empty() {
            "-".to_owned()
        } else {
            self.statuses
                .iter()
                .map(|(label, count)| format!("{count} x {label}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let abandoned: u64 = origins
            .iter()
            .map(|o| o.uploads_started() - o.uploads_completed())
            .sum();
        let cut: u64 = origins.iter().map(OriginStats::body_errors).sum();
        let (replays, echoed, replay_failed, held, spooled) = if replay {
            (
                stats.replays().to_string(),
                fmt_bytes(stats.echoed_bytes()),
                stats.failed().to_string(),
                fmt_bytes(stats.max_held_bytes()),
                fmt_bytes(stats.spooled_bytes()),
            )
        } else {
            ("-".into(), "-".into(), "-".into(), "-".into(), "-".into())
        };
        let rows = [
            ("replay", if replay { "on" } else { "off" }.to_owned()),
            ("uploads started", self.started.to_string()),
            ("uploads succeeded", self.succeeded.to_string()),
            ("uploads failed", self.failed.to_string()),
            ("failures", failures),
            ("replays", replays),
            ("replays failed", replay_failed),
            ("bytes echoed", echoed),
            ("echo bytes spooled by the proxy", spooled),
            ("max proxy-held bytes", held),
            ("origin handlers abandoned", abandoned.to_string()),
            ("origin handlers cut mid-body", cut.to_string()),
            ("wall time", fmt_secs(self.wall)),
        ];
        let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        let value_width = rows.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        let rule = "-".repeat(width + value_width + 5);
        println!("{rule}");
        for (name, value) in rows {
            println!("  {name:<width$}   {value:>value_width$}");
        }
        println!("{rule}");
    }
}

fn fmt_bytes(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes >= 1024 * 1024 {
        format!("{:.1} MiB", bytes as f64 / MIB)
    } else if bytes >= 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

fn fmt_secs(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}
