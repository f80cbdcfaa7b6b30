//! Scenario `memory`: the proxy's peak memory against the body size, 16 uploads in flight
//! and one origin restarted while they stream; our proxy against nginx store-and-forward
//! and HAProxy with `http-buffer-request` (its default buffer: an upload-sized one cannot
//! hold 256 MiB), and the origins' own peak RSS with the replay layer.

use std::time::Duration;

use clap::Args as ClapArgs;

use crate::bins::Bins;
use crate::peers::Peer;
use crate::report;
use crate::restart::{self, Contender, Plan, Schedule, Timing};
use crate::BoxError;

const MIB: u64 = 1024 * 1024;

/// `memory`: proxy peak RSS against body size.
#[derive(Debug, Clone, ClapArgs)]
pub(crate) struct Args {
    /// Sizes 1 and 16 MiB only.
    #[arg(long)]
    quick: bool,
    /// Body sizes, MiB (repeatable).
    #[arg(long = "size-mib", default_values_t = [1, 16, 64, 256])]
    sizes_mib: Vec<u64>,
    /// Concurrent uploads.
    #[arg(long, default_value_t = 16)]
    uploads: usize,
    /// Each client's send rate, MiB/s (uploads take at least 3 s).
    #[arg(long, default_value_t = 16.0)]
    rate_mib: f64,
    /// The restarted origin's drain window, seconds: its echoes must fit in it.
    #[arg(long, default_value_t = 1.0)]
    drain_secs: f64,
    /// Only contenders whose label contains one of these (repeatable).
    #[arg(long)]
    only: Vec<String>,
}

pub(crate) async fn run(args: Args) -> Result<(), BoxError> {
    if !(args.rate_mib.is_finite() && args.rate_mib > 0.0) {
        return Err("--rate-mib must be a positive number".into());
    }
    if !(args.drain_secs.is_finite() && args.drain_secs > 0.0 && args.drain_secs < 3600.0) {
        return Err("--drain-secs must be a positive number of at most 3600".into());
    }
    let sizes: Vec<u64> = if args.quick {
        vec![1, 16]
    } else {
        args.sizes_mib.clone()
    };
    let bins = Bins::prepare()?;
    let ours = [Contender::Ours { replay: true }];
    let peers = [Peer::NginxBuffered, Peer::Haproxy];
    let (mut contenders, notes) = restart::contenders(&bins, &ours, &peers);
    if !args.only.is_empty() {
        contenders.retain(|c| args.only.iter().any(|o| c.label().contains(o.as_str())));
    }
    let mut rows = Vec::new();
    for (s, size_mib) in sizes.iter().copied().enumerate() {
        let size = size_mib * MIB;
        let secs = (size_mib as f64 / args.rate_mib).max(3.0);
        let plan = Plan {
            uploads: args.uploads,
            size,
            upload_time: Duration::from_secs_f64(secs),
            drain: Duration::from_secs_f64(args.drain_secs),
            settle: Duration::from_secs(1),
            slow_read_rate: 0,
        };
        // One origin restarts a third of the way in, while the bodies stream.
        let schedule = Schedule {
            timing: Timing::Streaming,
            at: plan.upload_time / 3,
            origins: 1,
            first_read_rate: None,
            read_rate: None,
        };
        for offset in 0..contenders.len() {
            let contender = contenders[(offset + s) % contenders.len()];
            eprintln!("memory: {size_mib} MiB / {}", contender.label());
            let row = restart::run_one(&bins, contender, schedule, plan).await?;
            rows.push((size, row));
        }
    }
    rows.sort_by_key(|(size, row)| {
        let at = contenders.iter().position(|c| c.label() == row.contender);
        (at, *size)
    });
    report::memory(args.uploads, &rows, &notes)
}
