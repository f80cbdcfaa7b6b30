//! The origins of a run: the workspace's `origin` example, one process each, restarted in
//! turn on the same port (a rolling restart).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;

use crate::procs::{self, Proc};
use crate::BoxError;

/// How the origins run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OriginSetup {
    /// `--replay`: answer unfinished uploads with `379` on shutdown.
    pub(crate) replay: bool,
    /// `--drain-timeout`: how long a shutting-down origin lets uploads finish.
    pub(crate) drain: Duration,
    /// How long a rolling restart waits after a replacement is up before it stops the next
    /// origin, as a deployment waits for readiness: the proxies' health checks need a
    /// moment to see it.
    pub(crate) settle: Duration,
    /// The first processes read each upload at most this fast (bytes per second).
    pub(crate) read_rate: Option<u64>,
}

struct Slot {
    addr: SocketAddr,
    running: Proc,
    stopped: Vec<Proc>,
}

pub(crate) struct Origins {
    bin: PathBuf,
    setup: OriginSetup,
    slots: Vec<Slot>,
}

impl Origins {
    pub(crate) async fn start(
        bin: PathBuf,
        count: usize,
        setup: OriginSetup,
    ) -> Result<Self, BoxError> {
        let mut slots = Vec::with_capacity(count);
        for i in 0..count {
            let listen: SocketAddr = "127.0.0.1:0".parse().expect("an address");
            let (running, addr) = spawn(&bin, i, listen, setup, setup.read_rate).await?;
            slots.push(Slot {
                addr,
                running,
                stopped: Vec::new(),
            });
        }
        Ok(Origins { bin, setup, slots })
    }

    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.slots.iter().map(|s| s.addr).collect()
    }

    /// The largest peak RSS of the origin processes running now.
    pub(crate) fn peak_rss(&self) -> u64 {
        let peaks = self
            .slots
            .iter()
            .filter_map(|s| procs::peak_rss(s.running.pid()));
        peaks.max().unwrap_or(0)
    }

    /// SIGTERMs each of the first `count` origins in turn, waits for it to exit (at most its drain window and a
    /// margin), starts it again on the same port, reading at `read_rate` bytes per second
    /// per upload if given (a slow replacement), and lets it settle before the next one.
    ///
    /// Origin `i` is stopped at `i` times the drain window plus the settle time after the
    /// first, whatever the earlier ones took: an origin that hands its uploads back exits at
    /// once, one that drains them waits out its window, and the schedule must not depend on
    /// which.
    pub(crate) async fn rolling_restart(
        &mut self,
        count: usize,
        read_rate: Option<u64>,
    ) -> Result<(), BoxError> {
        let limit = self.setup.drain + Duration::from_secs(5);
        let period = self.setup.drain + self.setup.settle;
        let start = tokio::time::Instant::now();
        for i in 0..count.min(self.slots.len()) {
            tokio::time::sleep_until(start + period * i as u32).await;
            let slot = &mut self.slots[i];
            slot.running.stop(limit).await?;
            let (next, _) = spawn(&self.bin, i, slot.addr, self.setup, read_rate).await?;
            let old = std::mem::replace(&mut slot.running, next);
            slot.stopped.push(old);
        }
        tokio::time::sleep(self.setup.settle).await;
        Ok(())
    }

    /// Stops every origin; the body bytes their handlers received in all, over every
    /// process (what the proxy sent upstream that reached a handler), and how many
    /// processes printed no totals (killed at their deadline: their bytes are missing).
    pub(crate) async fn stop(mut self) -> Result<(u64, usize), BoxError> {
        let mut received = 0;
        let mut missing = 0;
        for slot in &mut self.slots {
            let limit = self.setup.drain + Duration::from_secs(5);
            slot.running.stop(limit).await?;
            for proc in slot.stopped.iter().chain([&slot.running]) {
                match proc.totals("bytes_received") {
                    Some(bytes) => received += bytes,
                    None => missing += 1,
                }
            }
        }
        Ok((received, missing))
    }
}

/// Starts origin `index` on `listen`. A restarted origin binds the port its predecessor
/// had, which an outgoing connection may hold for a moment: up to five tries.
async fn spawn(
    bin: &PathBuf,
    index: usize,
    listen: SocketAddr,
    setup: OriginSetup,
    read_rate: Option<u64>,
) -> Result<(Proc, SocketAddr), BoxError> {
    let mut tries = 0;
    loop {
        match spawn_once(bin, index, listen, setup, read_rate).await {
            Ok(started) => return Ok(started),
            Err(err) if tries < 4 => {
                tries += 1;
                eprintln!("origin o{index} did not start ({err}); trying again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => return Err(err),
        }
    }
}

async fn spawn_once(
    bin: &PathBuf,
    index: usize,
    listen: SocketAddr,
    setup: OriginSetup,
    read_rate: Option<u64>,
) -> Result<(Proc, SocketAddr), BoxError> {
    let mut command = Command::new(bin);
    command
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--name")
        .arg(format!("o{index}"))
        .arg("--drain-timeout")
        .arg(format!("{}", setup.drain.as_secs_f64()))
        .arg("--no-resume")
        .env("RUST_LOG", "warn");
    if setup.replay {
        command.arg("--replay");
    }
    if let Some(rate) = read_rate {
        command.arg("--read-rate").arg(rate.to_string());
    }
    Proc::spawn_listening(format!("origin o{index}"), command).await
}
