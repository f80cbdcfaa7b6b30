//! An upload origin for tower-handoff: Partial POST Replay (docs/PROTOCOL.md part A) and resumable requests (part B).
//!
//! `POST /upload[?chunk_delay_ms=N]` streams and hashes the body and answers
//! `{"server":"<name>","bytes":N,"sha256":"<hex>"}`; `GET /health` answers 200. HTTP/1.1 and
//! h2c on the same port. An upload with `Prefer: resume` is resumable (docs/PROTOCOL.md
//! part B): its `100 Continue` and answer carry `Request-Content-Location` and
//! `Response-Message-Location` under `--resume-prefix`; with `--store <dir>` it survives a
//! restart of the process. On SIGTERM or SIGINT it shuts down gracefully: with `--replay`,
//! uploads still arriving go back to the proxy with `379`; the rest drain for up to
//! `--drain-timeout` seconds, and prints its totals as its last line on stdout
//! (`totals uploads_started=N uploads_completed=N body_errors=N bytes_received=N`).
//!
//! ```text
//! cargo run --example origin -- --listen 127.0.0.1:8081 --name a --replay
//! ```

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use handoff_server::resume::{Limits, DEFAULT_PREFIX};
use support::cli::{exit_code, parse_secs};
use support::origin::{spawn_origin, OriginConfig, OriginStats, ResumeConfig};
use support::signal::{serve_until_terminated, Termination};
use support::BoxError;

/// Upload origin: streams and hashes POST /upload, makes uploads with Prefer: resume
/// resumable, hands unfinished uploads back to the proxy (379) on shutdown with --replay.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free port; see the first line of stdout).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Name reported as "server" in upload answers.
    #[arg(long, default_value = "origin")]
    name: String,
    /// Answer unfinished uploads with 379 on shutdown. Only behind a proxy that understands
    /// it (prior knowledge): a 379 must never reach an end user.
    #[arg(long)]
    replay: bool,
    /// Seconds in-flight requests may drain after SIGTERM before their connections close.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    drain_timeout: Duration,
    /// Bound on the consumed body bytes kept per request for the echo (on disk past the
    /// first 128 KiB).
    #[arg(long, value_name = "BYTES", default_value_t = handoff_server::replay::DEFAULT_MAX_ECHO_BYTES)]
    max_echo_bytes: u64,
    /// Read upload bodies at most this fast, in bytes per second (a slow replacement).
    #[arg(long, value_name = "BYTES_PER_SEC")]
    read_rate: Option<u64>,
    /// Keep resumable uploads in this directory (they survive a restart, even kill -9)
    /// instead of memory.
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Path prefix of the resumable-request resources.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_PREFIX)]
    resume_prefix: String,
    /// Seconds an unfinished resumable upload waits for its next byte.
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = parse_secs)]
    resume_idle_timeout: Duration,
    /// Serve no resumable requests (Prefer: resume is ignored).
    #[arg(long, conflicts_with = "store")]
    no_resume: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    support::logging::init("info");
    exit_code("origin", run(args).await)
}

async fn run(args: Args) -> Result<ExitCode, BoxError> {
    // Before the address is announced: a SIGTERM right after it must not kill us.
    let termination = Termination::install()?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let cfg = OriginConfig::new(args.name)
        .replay(args.replay)
        .drain_timeout(args.drain_timeout)
        .max_echo_bytes(args.max_echo_bytes)
        .read_rate(args.read_rate)
        .resume((!args.no_resume).then(|| ResumeConfig {
            store: args.store,
            prefix: args.resume_prefix,
            limits: Limits {
                idle_timeout: args.resume_idle_timeout,
                ..Limits::default()
            },
        }));
    let stats = OriginStats::default();
    let origin = spawn_origin(listener, cfg, stats.clone()).await?;
    let addr = origin.addr();
    // `wait` begins the graceful shutdown when it is first polled, after the signal.
    let code = serve_until_terminated(termination, addr, origin.wait()).await?;
    // The last line on stdout, for harnesses (`crates/handoff-bench`) that count what the
    // proxy in front sent this origin.
    println!(
        "totals uploads_started={} uploads_completed={} body_errors={} bytes_received={}",
        stats.uploads_started(),
        stats.uploads_completed(),
        stats.body_errors(),
        stats.bytes_received()
    );
    Ok(code)
}
