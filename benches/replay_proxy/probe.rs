//! What the bench reads about itself and about nginx, without `unsafe`.
//!
//! - CPU time of the whole process (`/proc/self/stat`), of a set of threads (the proxy's
//!   tokio runtime, `/proc/self/task/<tid>/schedstat`), or of other processes (nginx).
//! - Peak resident memory (`VmHWM` in `/proc/self/status`), which the kernel lets a process
//!   reset to its current RSS (`5` into `/proc/self/clear_refs`) so that each batch reports
//!   its own peak.
//! - Live heap bytes and their peak, counted by the global allocator (`peak_alloc`, which
//!   wraps the system allocator). Unlike RSS they do not hide memory that a batch allocates
//!   in pages the allocator kept resident from an earlier batch.

use std::fs;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use peak_alloc::PeakAlloc;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

/// Heap bytes allocated and not yet freed, by the whole process.
pub(crate) fn heap_live() -> u64 {
    HEAP.current_usage() as u64
}

/// The peak of [`heap_live`] since the last [`reset_peak_heap`].
pub(crate) fn heap_peak() -> u64 {
    HEAP.peak_usage() as u64
}

/// Starts a new peak of [`heap_live`] from its current value.
pub(crate) fn reset_peak_heap() {
    HEAP.reset_peak_usage();
}

/// Clock ticks per second of the `/proc` `stat` CPU counters (`getconf CLK_TCK`, 100 if
/// unknown).
pub(crate) fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|&ticks: &u64| ticks > 0)
            .unwrap_or(100)
    })
}

/// `utime + stime` of a `/proc/.../stat` file (clock-tick resolution); `None` if it is gone
/// (the thread or process ended) or unreadable.
fn stat_cpu(path: &str) -> Option<Duration> {
    let text = fs::read_to_string(path).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count the fields
    // after its closing one. Field 3 (state) comes first; utime is field 14, stime 15.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / clock_ticks() as f64,
    ))
}

/// CPU time of one thread (`/proc/.../task/<tid>`): the nanosecond counter of its
/// `schedstat` when the kernel keeps one, the tick counters of its `stat` otherwise.
fn task_cpu(task: &str) -> Option<Duration> {
    let precise = fs::read_to_string(format!("{task}/schedstat"))
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u64>().ok())
        .filter(|&nanos| nanos > 0)
        .map(Duration::from_nanos);
    precise.or_else(|| stat_cpu(&format!("{task}/stat")))
}

/// The parent pid of `/proc/<pid>/stat` (field 4).
fn stat_ppid(pid: u32) -> Option<u32> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time of this process, every thread (also the ended ones) included.
pub(crate) fn process_cpu() -> Duration {
    stat_cpu("/proc/self/stat").unwrap_or_default()
}

/// CPU time of the processes `pids` (live ones only).
pub(crate) fn processes_cpu(pids: &[u32]) -> Duration {
    pids.iter()
        .filter_map(|pid| stat_cpu(&format!("/proc/{pid}/stat")))
        .sum()
}

/// The live children of process `parent`.
pub(crate) fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat_ppid(pid) == Some(parent))
        .collect()
}

/// The CPU time of a set of threads: the workers of one tokio runtime, registered from its
/// `on_thread_start` / `on_thread_stop` hooks. Cheap to clone; clones share the set.
#[derive(Debug, Clone, Default)]
pub(crate) struct ThreadCpu {
    inner: Arc<Mutex<ThreadSet>>,
}

#[derive(Debug, Default)]
struct ThreadSet {
    live: Vec<String>,
    ended: Duration,
}

impl ThreadCpu {
    /// Registers the calling thread (`on_thread_start`).
    pub(crate) fn register_current(&self) {
        if let Some(tid) = current_tid() {
            self.lock().live.push(tid);
        }
    }

    /// Moves the calling thread's CPU time to the ended total (`on_thread_stop`).
    pub(crate) fn retire_current(&self) {
        let Some(tid) = current_tid() else { return };
        let spent = task_cpu("/proc/thread-self").unwrap_or_default();
        let mut set = self.lock();
        set.live.retain(|live| *live != tid);
        set.ended += spent;
    }

    /// CPU time of every registered thread so far.
    pub(crate) fn total(&self) -> Duration {
        let set = self.lock();
        let live: Duration = set
            .live
            .iter()
            .filter_map(|tid| task_cpu(&format!("/proc/self/task/{tid}")))
            .sum();
        set.ended + live
    }

    fn lock(&self) -> MutexGuard<'_, ThreadSet> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The calling thread's id, from the `/proc/thread-self` link (`<pid>/task/<tid>`).
fn current_tid() -> Option<String> {
    let link = fs::read_link("/proc/thread-self").ok()?;
    Some(link.file_name()?.to_str()?.to_owned())
}

/// A `kB` line (`VmRSS`, `VmHWM`) of `/proc/self/status`, in bytes.
pub(crate) fn status_bytes(field: &str) -> Option<u64> {
    let text = fs::read_to_string("/proc/self/status").ok()?;
    let line = text
        .lines()
        .find(|line| line.split(':').next() == Some(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`), as printed there.
pub(crate) fn load_average() -> Option<String> {
    let text = fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Resets this process's `VmHWM` to its current RSS; false if the kernel refused.
pub(crate) fn reset_peak_rss() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The value at quantile `q` (0..=1) of `sorted`, nearest rank; zero when empty.
pub(crate) fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// SHA-256 throughput of the `sha2` crate on one core, bytes per second: the work
/// `ReplayLayer` adds per forwarded byte (PROTOCOL.md part A, intermediary 6).
pub(crate) fn sha256_bytes_per_sec() -> f64 {
    use sha2::{Digest, Sha256};
    let block = vec![0x5a_u8; 1024 * 1024];
    let mut hasher = Sha256::new();
    let started = std::time::Instant::now();
    let mut hashed = 0u64;
    while hashed < 64 * 1024 * 1024 || started.elapsed() < Duration::from_millis(100) {
        hasher.update(&block);
        hashed += block.len() as u64;
    }
    std::hint::black_box(hasher.finalize());
    hashed as f64 / started.elapsed().as_secs_f64()
}
