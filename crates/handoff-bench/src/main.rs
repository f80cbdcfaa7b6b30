//! The benchmark harness of tower-handoff: our proxy against the proxies people use today
//! (nginx, HAProxy), each in its own process in front of real origin processes, in one
//! run that anyone can repeat.
//!
//! ```text
//! bash scripts/install-peers.sh                          # nginx and HAProxy (Debian)
//! cargo run --release -p handoff-bench -- restart        # every contender, three timings
//! cargo run --release -p handoff-bench -- restart --quick --only ours
//! cargo run --release -p handoff-bench -- memory         # peak RSS against body size
//! cargo run --release -p handoff-bench -- overhead       # the layers' cost, no restarts
//! cargo run --release -p handoff-bench -- resume         # cut uploads, resumed or restarted
//! ```
//!
//! Each scenario prints a table and writes JSON, text and an SVG chart under
//! `target/bench/`. A peer that is not installed is skipped with one line; the harness never
//! installs anything. See `BENCHMARKS.md` at the root for a real run and what each number
//! means.

mod bins;
mod load;
mod memory;
mod origins;
mod overhead;
mod peers;
mod procs;
mod random;
mod report;
mod restart;
mod resume;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Parser)]
#[command(about = "tower-handoff's proxy against nginx and HAProxy, in separate processes")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Rolling restarts under paced uploads: failures, latency, proxy memory and disk.
    Restart(restart::Args),
    /// Proxy peak RSS against body size, with one origin restart.
    Memory(memory::Args),
    /// The layers' cost without restarts: small POSTs to an origin, large uploads through
    /// each proxy.
    Overhead(overhead::Args),
    /// Uploads through a relay that cuts their connections: the resume layer against a
    /// client that starts over.
    Resume(resume::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("handoff-bench: cannot start a runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let scenario = async {
            match cli.scenario {
                Scenario::Restart(args) => restart::run(args).await,
                Scenario::Memory(args) => memory::run(args).await,
                Scenario::Overhead(args) => overhead::run(args).await,
                Scenario::Resume(args) => resume::run(args).await,
            }
        };
        // Ctrl-C drops the scenario: every child is killed and every temp dir removed.
        tokio::select! {
            result = scenario => result,
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("handoff-bench: {err}");
            ExitCode::FAILURE
        }
    }
}
