//! A reverse proxy with tower-handoff's Partial POST Replay (PROTOCOL.md part A).
//!
//! Round robin over `--backend` origins through hyper-util's client (h2c with `--h2`). A
//! backend that answered `379` or refused a connection is skipped until `GET /health`
//! passes again. When an origin hands an upload back with `379`, `ReplayLayer` replays it on
//! another origin; the client never notices. Request bodies stream through, never buffered.
//! On SIGTERM it drains, then prints the replay totals as its last line on stdout
//! (`totals replays=N echoed_bytes=N failed=N max_held_bytes=N spooled_bytes=N`).
//!
//! ```text
//! cargo run --example proxy -- --listen 127.0.0.1:8080 \
//!     --backend http://127.0.0.1:8081 --backend http://127.0.0.1:8082
//! ```

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use http::Uri;
use support::cli::{exit_code, parse_secs};
use support::proxy::{spawn_proxy, ProxyConfig};
use support::signal::{serve_until_terminated, Termination};
use support::BoxError;

/// Reverse proxy load balancer that replays uploads handed back by restarting origins.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free port; see the first line of stdout).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// An origin, `http://host:port` (repeat for several).
    #[arg(long = "backend", value_name = "URL", required = true)]
    backends: Vec<Uri>,
    /// Speak h2c (HTTP/2 with prior knowledge) to the origins.
    #[arg(long)]
    h2: bool,
    /// Replays of one request before it fails with 502.
    #[arg(long, value_name = "N", default_value_t = 3)]
    max_replays: u32,
    /// Forward without the replay layer (a 379 would then reach the client).
    #[arg(long)]
    no_replay: bool,
    /// Seconds in-flight requests may finish after SIGTERM.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    drain_timeout: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    support::logging::init("info");
    exit_code("proxy", run(args).await)
}

async fn run(args: Args) -> Result<ExitCode, BoxError> {
    let termination = Termination::install()?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let cfg = ProxyConfig::new(args.backends)
        .h2(args.h2)
        .max_replays(args.max_replays)
        .replay(!args.no_replay)
        .drain_timeout(args.drain_timeout);
    let proxy = spawn_proxy(listener, cfg).await?;
    let addr = proxy.addr();
    let stats = proxy.stats();
    // `wait` begins the graceful shutdown when it is first polled, after the signal.
    let code = serve_until_terminated(termination, addr, proxy.wait()).await?;
    tracing::info!(
        replays = stats.replays(),
        echoed_bytes = stats.echoed_bytes(),
        failed = stats.failed(),
        max_held_bytes = stats.max_held_bytes(),
        "replay totals"
    );
    // The last line on stdout, for harnesses (`crates/handoff-bench`).
    println!(
        "totals replays={} echoed_bytes={} failed={} max_held_bytes={} spooled_bytes={}",
        stats.replays(),
        stats.echoed_bytes(),
        stats.failed(),
        stats.max_held_bytes(),
        stats.spooled_bytes()
    );
    Ok(code)
}
