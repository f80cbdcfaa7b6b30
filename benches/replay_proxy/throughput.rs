//! Rows 1 and 2: concurrent unthrottled uploads through one proxy, no restarts.
//!
//! A batch starts `uploads` uploads at once and waits for all of them; it records the wall
//! time, every upload's latency, the CPU time of the proxy and of everything, and how far
//! the process's RSS and live heap rose above their values at the start of the batch.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use handoff_client::replay::ReplayStats;

use crate::probe::{self, ThreadCpu};
use crate::support::upload::{upload_with, UploadSpec};
use crate::support::BoxError;

/// Whose CPU time is "the proxy's".
#[derive(Debug, Clone)]
pub(crate) enum ProxyCpu {
    /// The threads of the proxy's own tokio runtime (this process).
    Threads(ThreadCpu),
    /// Other processes (nginx master and workers).
    Processes(Vec<u32>),
}

impl ProxyCpu {
    fn read(&self) -> Duration {
        match self {
            ProxyCpu::Threads(threads) => threads.total(),
            ProxyCpu::Processes(pids) => probe::processes_cpu(pids),
        }
    }

    /// The proxy runs outside this process, so "everything" is this process plus it.
    fn is_external(&self) -> bool {
        matches!(self, ProxyCpu::Processes(_))
    }
}

/// One proxy under test.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The row's name.
    pub(crate) label: String,
    /// Where the clients send their uploads.
    pub(crate) addr: SocketAddr,
    /// How to read the proxy's CPU time.
    pub(crate) cpu: ProxyCpu,
    /// The replay layer's counters, when the proxy has one.
    pub(crate) replay: Option<ReplayStats>,
}

/// The load of one batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    /// Concurrent uploads.
    pub(crate) uploads: u64,
    /// Bytes per upload.
    pub(crate) size: u64,
    /// Bytes per body frame the client sends.
    pub(crate) chunk: usize,
}

impl Load {
    /// Body bytes a proxy would have to keep to replay any in-flight upload from its own
    /// copy: every upload, whole, until its response.
    pub(crate) fn in_flight_bytes(&self) -> u64 {
        self.uploads * self.size
    }
}

/// What one batch measured.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    wall: Duration,
    latencies: Vec<Duration>,
    sent: u64,
    succeeded: usize,
    uploads: usize,
    replays: u64,
    proxy_cpu: Duration,
    all_cpu: Duration,
    rss_growth: Option<u64>,
    heap_growth: u64,
}

/// Runs one batch of `load` against `target`; `round` varies the bodies between batches.
pub(crate) async fn run_batch(target: &Target, load: Load, round: u64) -> Result<Batch, BoxError> {
    let replays_before = target.replay.as_ref().map_or(0, ReplayStats::replays);
    let rss_before = probe::status_bytes("VmRSS");
    let peak_reset = probe::reset_peak_rss();
    let heap_before = probe::heap_live();
    probe::reset_peak_heap();
    let proxy_before = target.cpu.read();
    let process_before = probe::process_cpu();
    let started = Instant::now();

    let tasks: Vec<_> = (0..load.uploads)
        .map(|index| {
            let spec = UploadSpec::new(load.size, load.chunk, Duration::ZERO, round * 1000 + index);
            let addr = target.addr;
            tokio::spawn(async move { upload_with(addr, &spec).await })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await?);
    }

    let wall = started.elapsed();
    let proxy_cpu = target.cpu.read().saturating_sub(proxy_before);
    let process_cpu = probe::process_cpu().saturating_sub(process_before);
    let rss_peak = probe::status_bytes("VmHWM");
    let heap_growth = probe::heap_peak().saturating_sub(heap_before);
    let all_cpu = if target.cpu.is_external() {
        process_cpu + proxy_cpu
    } else {
        process_cpu
    };
    let rss_growth = match (peak_reset, rss_before, rss_peak) {
        (true, Some(before), Some(peak)) => Some(peak.saturating_sub(before)),
        _ => None,
    };

    let mut batch = Batch {
        wall,
        latencies: Vec::with_capacity(outcomes.len()),
        sent: 0,
        succeeded: 0,
        uploads: outcomes.len(),
        replays: target.replay.as_ref().map_or(0, ReplayStats::replays) - replays_before,
        proxy_cpu,
        all_cpu,
        rss_growth,
        heap_growth,
    };
    for outcome in outcomes.into_iter().flatten() {
        batch.sent += outcome.sent_bytes;
        batch.latencies.push(outcome.elapsed);
        if outcome.succeeded() {
            batch.succeeded += 1;
        }
    }
    Ok(batch)
}

/// The batches of one target.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    /// The target's row name.
    pub(crate) label: String,
    batches: Vec<Batch>,
}

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

impl Summary {
    /// No batch yet.
    pub(crate) fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            batches: Vec::new(),
        }
    }

    /// Adds a measured batch.
    pub(crate) fn push(&mut self, batch: Batch) {
        self.batches.push(batch);
    }

    /// Bytes sent over all batches.
    pub(crate) fn sent(&self) -> u64 {
        self.batches.iter().map(|b| b.sent).sum()
    }

    /// Throughput over all batches (sent bytes / summed wall time), MiB/s.
    pub(crate) fn mib_per_sec(&self) -> f64 {
        let wall: f64 = self.batches.iter().map(|b| b.wall.as_secs_f64()).sum();
        if wall > 0.0 {
            self.sent() as f64 / MIB / wall
        } else {
            0.0
        }
    }

    /// Each batch's throughput, MiB/s, in the order measured.
    pub(crate) fn rates(&self) -> Vec<f64> {
        self.batches
            .iter()
            .map(|b| b.sent as f64 / MIB / b.wall.as_secs_f64().max(f64::MIN_POSITIVE))
            .collect()
    }

    /// The median over rounds of this target's throughput divided by `base`'s in the same
    /// round: the rounds are close in time, so the machine's drift mostly cancels.
    pub(crate) fn paired_ratio(&self, base: &Summary) -> Option<f64> {
        let mut ratios: Vec<f64> = self
            .rates()
            .into_iter()
            .zip(base.rates())
            .filter(|&(_, base)| base > 0.0)
            .map(|(rate, base)| rate / base)
            .collect();
        ratios.sort_by(f64::total_cmp);
        ratios.get(ratios.len().checked_sub(1)? / 2).copied()
    }

    /// The slowest and fastest batch, MiB/s.
    pub(crate) fn mib_per_sec_range(&self) -> (f64, f64) {
        self.rates()
            .into_iter()
            .fold((f64::INFINITY, 0.0), |(lo, hi), r| (lo.min(r), hi.max(r)))
    }

    /// Every upload's latency, sorted.
    pub(crate) fn latencies(&self) -> Vec<Duration> {
        let mut all: Vec<Duration> = self
            .batches
            .iter()
            .flat_map(|b| b.latencies.iter().copied())
            .collect();
        all.sort();
        all
    }

    /// Seconds of proxy CPU per GiB forwarded.
    pub(crate) fn proxy_cpu_per_gib(&self) -> f64 {
        self.per_gib(self.batches.iter().map(|b| b.proxy_cpu).sum())
    }

    /// Seconds of CPU of everything (clients, origins, proxy) per GiB forwarded.
    pub(crate) fn all_cpu_per_gib(&self) -> f64 {
        self.per_gib(self.batches.iter().map(|b| b.all_cpu).sum())
    }

    fn per_gib(&self, cpu: Duration) -> f64 {
        let gib = self.sent() as f64 / GIB;
        if gib > 0.0 {
            cpu.as_secs_f64() / gib
        } else {
            0.0
        }
    }

    /// Uploads that arrived intact, and uploads started.
    pub(crate) fn succeeded(&self) -> (usize, usize) {
        (
            self.batches.iter().map(|b| b.succeeded).sum(),
            self.batches.iter().map(|b| b.uploads).sum(),
        )
    }

    /// Replays during the batches (there should be none: no origin restarts).
    pub(crate) fn replays(&self) -> u64 {
        self.batches.iter().map(|b| b.replays).sum()
    }

    /// The median and the largest of the batches' peak RSS growth, if the kernel let us
    /// reset the peak.
    pub(crate) fn rss_growth(&self) -> Option<(u64, u64)> {
        median_max(self.batches.iter().filter_map(|b| b.rss_growth).collect())
    }

    /// The median and the largest of the batches' peak live-heap growth.
    pub(crate) fn heap_growth(&self) -> Option<(u64, u64)> {
        median_max(self.batches.iter().map(|b| b.heap_growth).collect())
    }
}

fn median_max(mut values: Vec<u64>) -> Option<(u64, u64)> {
    values.sort_unstable();
    let median = *values.get(values.len().checked_sub(1)? / 2)?;
    Some((median, *values.last()?))
}
