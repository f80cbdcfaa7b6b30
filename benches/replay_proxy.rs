//! What Partial POST Replay costs a proxy, and what it saves, measured in one process on
//! 127.0.0.1 against baselines run in the same process and the same run.
//!
//! ```text
//! cargo bench --bench replay_proxy             # about 25 s on 2 cores, after the build
//! cargo bench --bench replay_proxy -- --quick  # smaller sizes, about 5 s
//! ```
//!
//! 1. Throughput, latency and CPU time of unthrottled concurrent uploads through the proxy of
//!    `examples/support` with `ReplayLayer`, against the same proxy without it (the balancer
//!    alone), and with the origins' `PartialPostReplayLayer` added; no restarts.
//! 2. Memory: the layer's `ReplayStats::max_held_bytes`, and the process's peak heap and RSS
//!    growth per batch, against what a proxy that replays from its own copy would hold.
//! 3. The demo's rolling restart (`examples/demo.rs`) with and without replay.
//! 4. When nginx is installed, row 1 through nginx (streaming and default request
//!    buffering) as an external baseline; skipped with a message otherwise.
//!
//! The proxy runs on a tokio runtime of its own so that its CPU time is measured apart from
//! the clients and origins, which run on another runtime in the same process.
//!
//! It runs only when given `--bench` (which `cargo bench` passes), so that a
//! `cargo test --all-targets` does not start it.

// `cargo check` / `clippy` build benches with `--cfg test` but, with `harness = false`,
// without the test harness: the `#[test]` functions of the support code's test modules
// vanish and leave their `use super::*` unused.
#[allow(unused_imports)]
#[path = "../examples/support/mod.rs"]
mod support;

#[path = "replay_proxy/nginx.rs"]
mod nginx;
#[path = "replay_proxy/probe.rs"]
mod probe;
#[path = "replay_proxy/report.rs"]
mod report;
#[path = "replay_proxy/restart.rs"]
mod restart;
#[path = "replay_proxy/rig.rs"]
mod rig;
#[path = "replay_proxy/table.rs"]
mod table;
#[path = "replay_proxy/throughput.rs"]
mod throughput;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use support::proxy::ProxyConfig;
use support::BoxError;

use rig::{start_origins, start_proxy, Rig};
use throughput::{Load, ProxyCpu, Summary, Target};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * 1024 * 1024;

/// Everything stops after this, whatever happens.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// Sizes of one run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    quick: bool,
    load: Load,
    rounds: u64,
    restart: restart::Scenario,
}

impl Plan {
    fn new(quick: bool) -> Self {
        let chunk = 64 * KIB as usize;
        if quick {
            Self {
                quick,
                load: Load {
                    uploads: 8,
                    size: 4 * MIB,
                    chunk,
                },
                rounds: 2,
                restart: restart::Scenario {
                    uploads: 16,
                    size: 2 * MIB,
                    chunk,
                    upload_time: Duration::from_millis(1500),
                    drain: Duration::from_millis(250),
                },
            }
        } else {
            Self {
                quick,
                load: Load {
                    uploads: 16,
                    size: 16 * MIB,
                    chunk,
                },
                rounds: 8,
                restart: restart::Scenario {
                    uploads: 32,
                    size: 4 * MIB,
                    chunk,
                    upload_time: Duration::from_secs(3),
                    drain: Duration::from_millis(500),
                },
            }
        }
    }
}

fn main() -> ExitCode {
    let mut quick = false;
    let mut bench = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => quick = true,
            "--bench" => bench = true,
            "-h" | "--help" => {
                println!("usage: cargo bench --bench replay_proxy [-- --quick]");
                return ExitCode::SUCCESS;
            }
            _ => {}
        }
    }
    if !bench {
        println!("replay_proxy: not run (no --bench); use `cargo bench --bench replay_proxy`");
        return ExitCode::SUCCESS;
    }
    support::logging::init("error");

    let started = Instant::now();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rig = match Rig::new(workers) {
        Ok(rig) => rig,
        Err(error) => {
            eprintln!("replay_proxy: cannot build the runtimes: {error}");
            return ExitCode::FAILURE;
        }
    };
    let plan = Plan::new(quick);
    let nginx_bin = nginx::find();
    let sha256 = probe::sha256_bytes_per_sec();
    report::print_environment(&rig, &plan, nginx_bin.as_deref(), sha256);

    let proxy_rt = rig.proxy.handle().clone();
    let outcome = rig.load.block_on(async {
        // Ctrl-C and the time limit drop `run`, and with it nginx's guard (stop, clean up).
        let work = tokio::time::timeout(RUN_LIMIT, run(&rig, &proxy_rt, plan, nginx_bin, sha256));
        tokio::select! {
            result = work => result.unwrap_or_else(|_| {
                Err(format!("did not finish within {RUN_LIMIT:?}").into())
            }),
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        }
    });
    println!();
    println!(
        "bench finished in {} (load average now {})",
        table::secs(started.elapsed()),
        probe::load_average().unwrap_or_else(|| "unknown".to_owned())
    );
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("replay_proxy: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    rig: &Rig,
    proxy_rt: &tokio::runtime::Handle,
    plan: Plan,
    nginx_bin: Option<std::path::PathBuf>,
    sha256: f64,
) -> Result<(), BoxError> {
    let (plain_origins, plain_addrs) = start_origins("plain-", false).await?;
    let (ppr_origins, ppr_addrs) = start_origins("ppr-", true).await?;
    let base = start_proxy(
        proxy_rt,
        ProxyConfig::with_addrs(plain_addrs.clone()).replay(false),
    )
    .await?;
    let replay = start_proxy(
        proxy_rt,
        ProxyConfig::with_addrs(plain_addrs.clone()).replay(true),
    )
    .await?;
    let full = start_proxy(proxy_rt, ProxyConfig::with_addrs(ppr_addrs).replay(true)).await?;

    let ours = |label: &str, proxy: &support::proxy::ProxyHandle, replay: bool| Target {
        label: label.to_owned(),
        addr: proxy.addr(),
        cpu: ProxyCpu::Threads(rig.proxy_cpu.clone()),
        replay: replay.then(|| proxy.stats()),
    };
    let mut targets = vec![
        ours("balancer only (baseline)", &base, false),
        ours("+ ReplayLayer", &replay, true),
        ours("+ ReplayLayer, origins + PPR layer", &full, true),
    ];
    let ours_count = targets.len();

    let mut nginx_note = None;
    let nginx = match nginx_bin {
        None => {
            nginx_note = Some(
                "nginx rows skipped: nginx is not installed (`which nginx` finds nothing)"
                    .to_owned(),
            );
            None
        }
        Some(bin) => match nginx::Nginx::start(&bin, &plain_addrs, rig.workers).await {
            Ok(nginx) => Some(nginx),
            Err(error) => {
                nginx_note = Some(format!("nginx rows skipped: nginx did not start: {error}"));
                None
            }
        },
    };
    if let Some(nginx) = &nginx {
        let cpu = ProxyCpu::Processes(nginx.pids());
        targets.push(Target {
            label: "nginx, proxy_request_buffering off".to_owned(),
            addr: nginx.streaming,
            cpu: cpu.clone(),
            replay: None,
        });
        targets.push(Target {
            label: "nginx, default request buffering".to_owned(),
            addr: nginx.buffering,
            cpu,
            replay: None,
        });
    }

    // Row 1 (and the batches row 2 reads): one warm-up round, then interleaved rounds, each
    // starting with a different target so that none always follows the same one.
    let load = plan.load;
    eprint!("rows 1-2: warm-up");
    for target in &targets {
        throughput::run_batch(target, load, 0).await?;
    }
    let mut summaries: Vec<Summary> = targets.iter().map(|t| Summary::new(&t.label)).collect();
    for round in 1..=plan.rounds {
        eprint!(", round {round}/{}", plan.rounds);
        for offset in 0..targets.len() {
            let index = (offset + round as usize) % targets.len();
            let batch = throughput::run_batch(&targets[index], load, round).await?;
            summaries[index].push(batch);
        }
    }
    eprintln!();
    drop(nginx);

    report::print_throughput(&plan, &summaries, sha256);
    if let Some(note) = nginx_note {
        println!("  {note}");
    }
    println!();
    let held: Vec<Option<u64>> = targets[..ours_count]
        .iter()
        .map(|target| target.replay.as_ref().map(|stats| stats.max_held_bytes()))
        .collect();
    report::print_memory(&plan, &summaries[..ours_count], &held);
    println!();

    for proxy in [base, replay, full] {
        proxy.wait().await;
    }
    for origin in plain_origins.into_iter().chain(ppr_origins) {
        origin.wait().await;
    }

    eprintln!("row 3: rolling restart with replay, then without");
    let with = restart::run(proxy_rt, plan.restart, true).await?;
    let without = restart::run(proxy_rt, plan.restart, false).await?;
    report::print_restart(&plan, &with, &without);
    Ok(())
}
