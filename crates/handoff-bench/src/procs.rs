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
        let proc = Proc::spawn(name, command)?;
        let addr = tokio::time::timeout(START_LIMIT, async {
            loop {
                let found = proc.lines().iter().find_map(|line| {
                    line.strip_prefix("listening on ")
                        .and_then(|addr| addr.trim().parse::<SocketAddr>().ok())
                });
                if let Some(addr) = found {
                    return addr;
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
        })?;
        Ok((proc, addr))
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
                self.child.start_kill()?;
                self.child.wait().await?
            }
        };
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
        }
        Ok(status)
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
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
                    // Bounded: a chatty child cannot grow the harness without limit.
                    if lines.len() < 200_000 {
                        lines.push(line.trim_end().to_owned());
                    }
                }
            }
        }
    })
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
    fn this_process_has_a_peak_rss() {
        assert!(peak_rss(std::process::id()).is_some_and(|b| b > 0));
        assert!(disk_writes(std::process::id()).is_some());
    }
}
