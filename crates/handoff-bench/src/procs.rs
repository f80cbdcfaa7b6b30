//! Child processes (origins, proxies, peers) and what `/proc` says about them.
//!
//! Every child is killed when its [`Proc`] drops, on every path out of the harness
//! (errors, panics): nothing outlives a run.

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::BoxError;

/// How long a child may take to print its address, or to exit once asked to.
const START_LIMIT: Duration = Duration::from_secs(20);

/// A running child; killed on drop.
pub(crate) struct Proc {
    name: String,
    child: Child,
    pid: u32,
    /// Every line it printed on stdout (and stderr, when captured), for its totals.
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // `kill_on_drop` kills the child only: a process that has children of its own
        // (nginx's workers) must not leave them behind.
        if self.child.id().is_some() {
            self.kill_children();
        }
    }
}

impl Proc {
    /// Starts `command`, capturing stdout and stderr line by line.
    pub(crate) fn spawn(name: impl Into<String>, mut command: Command) -> Result<Self, BoxError> {
        let name = name.into();
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|err| format!("cannot start {name}: {err}"))?;
        let pid = child.id().ok_or("the child exited at once")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(collect(BufReader::new(stdout), lines.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(collect(BufReader::new(stderr), lines.clone()));
        }
        Ok(Proc {
            name,
            child,
            pid,
            lines,
            readers,
        })
    }

    /// Starts one of the workspace's example binaries and waits for its first line,
    /// `listening on ADDR`.
    pub(crate) async fn spawn_listening(
        name: impl Into<String>,
        command: Command,
    ) -> Result<(Self, SocketAddr), BoxError> {
        let mut proc = Proc::spawn(name, command)?;
        let addr = tokio::time::timeout(START_LIMIT, async {
            loop {
                if let Some(addr) = proc.announced() {
                    return Ok(addr);
                }
                // A child that exits first (a port still taken) is not waited for; what it
                // printed is read to its end first.
                if let Ok(Some(status)) = proc.child.try_wait() {
                    for reader in proc.readers.drain(..) {
                        let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
                    }
                    return proc.announced().ok_or_else(|| {
                        format!("{} exited ({status}): {:?}", proc.name, proc.lines())
                    });
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .map_err(|_| {
            format!(
                "{} did not announce its address: {:?}",
                proc.name,
                proc.lines()
            )
        })??;
        Ok((proc, addr))
    }

    /// The address of its `listening on ADDR` line, once printed.
    fn announced(&self) -> Option<SocketAddr> {
        self.lines().iter().find_map(|line| {
            line.strip_prefix("listening on ")
                .and_then(|addr| addr.trim().parse::<SocketAddr>().ok())
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends `signal` (SIGTERM: graceful shutdown).
    pub(crate) fn signal(&self, signal: Signal) {
        let Ok(pid) = i32::try_from(self.pid) else {
            return;
        };
        let _ = kill(Pid::from_raw(pid), signal);
    }

    /// Waits for the child to exit, at most `limit`, then kills it; its output is then
    /// complete.
    pub(crate) async fn wait(&mut self, limit: Duration) -> Result<ExitStatus, BoxError> {
        let status = match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                self.kill_children();
                self.child.start_kill()?;
                self.child.wait().await?
            }
        };
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
        }
        Ok(status)
    }

    fn kill_children(&self) {
        for pid in children(self.pid) {
            if let Ok(pid) = i32::try_from(pid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }

    /// SIGTERM, then [`wait`](Self::wait).
    pub(crate) async fn stop(&mut self, limit: Duration) -> Result<ExitStatus, BoxError> {
        self.signal(Signal::SIGTERM);
        self.wait(limit).await
    }

    /// The `key=value` pairs of its `totals ...` line, if it printed one.
    pub(crate) fn totals(&self, key: &str) -> Option<u64> {
        self.lines().iter().rev().find_map(|line| {
            let rest = line.strip_prefix("totals ")?;
            rest.split_whitespace().find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k == key).then(|| v.parse().ok()).flatten()
            })
        })
    }
}

fn collect<R>(mut reader: BufReader<R>, lines: Arc<Mutex<Vec<String>>>) -> JoinHandle<()>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut line = Vec::new();
        loop {
            line.clear();
            // Bytes, not a String: output that is not UTF-8 must not stop the reading (the
            // child would block on a full pipe).
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
                    // Bounded: a chatty child cannot grow the harness without limit.
                    if lines.len() < 200_000 {
                        lines.push(String::from_utf8_lossy(&line).trim_end().to_owned());
                    }
                }
            }
        }
    })
}

/// Proportional set size of a process now (`Pss` of `/proc/PID/smaps_rollup`), in bytes:
/// pages shared between processes (nginx's master and workers) count once in all.
pub(crate) fn pss(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = rollup.lines().find(|l| l.starts_with("Pss:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Samples the summed [`pss`] of a set of processes (and their children) every 50 ms until
/// stopped; the highest sum seen.
pub(crate) struct MemorySampler {
    peak: Arc<std::sync::atomic::AtomicU64>,
    task: JoinHandle<()>,
}

impl MemorySampler {
    pub(crate) fn start(pids: Vec<u32>) -> Self {
        let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                let all = pids
                    .iter()
                    .flat_map(|p| std::iter::once(*p).chain(children(*p)));
                let sum: u64 = all.filter_map(pss).sum();
                seen.fetch_max(sum, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        MemorySampler { peak, task }
    }

    /// Stops sampling; the peak in bytes.
    pub(crate) fn stop(self) -> u64 {
        self.task.abort();
        self.peak.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Peak resident set size (`VmHWM`) of a process, in bytes.
pub(crate) fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Bytes a process caused to be written to storage (`write_bytes` of `/proc/PID/io`):
/// temp files, which nginx and HAProxy use to buffer request bodies.
pub(crate) fn disk_writes(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let line = io.lines().find(|l| l.starts_with("write_bytes:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time (user + system) of a process so far, from `/proc/PID/stat`.
pub(crate) fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Clock ticks: USER_HZ is 100 on Linux.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// The direct children of a process (nginx's workers).
pub(crate) fn children(pid: u32) -> Vec<u32> {
    let path = format!("/proc/{pid}/task/{pid}/children");
    std::fs::read_to_string(path)
        .map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_is_heard_and_its_totals_read() {
        let mut command = Command::new("sh");
        command.arg("-c").arg(
            "echo 'listening on 127.0.0.1:9'; echo 'totals a=1 b=2'; echo noise >&2; echo 'totals a=3'",
        );
        let (mut proc, addr) = Proc::spawn_listening("sh", command).await.unwrap();
        assert_eq!(addr, "127.0.0.1:9".parse::<SocketAddr>().unwrap());
        assert!(proc.wait(Duration::from_secs(5)).await.unwrap().success());
        assert_eq!(proc.totals("a"), Some(3), "the last line that has it");
        assert_eq!(proc.totals("b"), Some(2));
        assert_eq!(proc.totals("c"), None);
        assert!(proc.lines().contains(&"noise".to_owned()));
        // Gone from /proc once reaped.
        assert_eq!(peak_rss(proc.pid()), None);
    }

    #[test]
    fn this_process_has_a_peak_rss_and_spends_cpu() {
        assert!(peak_rss(std::process::id()).is_some_and(|b| b > 0));
        assert!(disk_writes(std::process::id()).is_some());
        let before = cpu_time(std::process::id()).unwrap();
        let mut x = 0u64;
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        assert!(cpu_time(std::process::id()).unwrap() > before);
    }
}
