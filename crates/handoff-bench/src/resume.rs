//! Scenario `resume`: uploads through a relay that cuts each upload's connections K times at
//! random offsets; the `upload` example (the resume layer over hyper-util's client, a
//! process of its own) against a plain client that must start over from byte 0 after each
//! cut. The origin is the `origin` example with resumable requests on.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args as ClapArgs;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

use crate::bins::Bins;
use crate::procs::Proc;
use crate::random::xorshift;
use crate::report;
use crate::BoxError;

const MIB: u64 = 1024 * 1024;

/// `resume`: bytes sent and handler runs through a cutting relay.
#[derive(Debug, Clone, ClapArgs)]
pub(crate) struct Args {
    /// 2 uploads of 16 MiB.
    #[arg(long)]
    quick: bool,
    /// Uploads, one after the other.
    #[arg(long, default_value_t = 4)]
    uploads: usize,
    /// Size of each upload, MiB.
    #[arg(long, default_value_t = 64)]
    size_mib: u64,
    /// Cuts per upload.
    #[arg(long, default_value_t = 3)]
    cuts: usize,
}

/// One client kind over all its uploads.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ResumeRow {
    pub(crate) client: String,
    pub(crate) uploads: usize,
    pub(crate) ok: usize,
    pub(crate) size: u64,
    pub(crate) cuts_per_upload: usize,
    /// Connections the relay cut, over all uploads.
    pub(crate) cuts_made: usize,
    /// Bytes the relay read from the clients (what left their sockets, the bytes dropped at
    /// each cut included), over all uploads.
    pub(crate) bytes_carried: u64,
    /// Bytes the client itself counts as sent again (the resume layer's `ResumeReport`):
    /// what was in flight at each cut, kernel buffers included. `None` for the plain
    /// client, which sends everything again.
    pub(crate) client_resent: Option<u64>,
    /// Median wall time of one upload.
    pub(crate) wall_p50: Duration,
    /// Upload handler runs at the origin, over all uploads.
    pub(crate) handler_runs: u64,
}

pub(crate) async fn run(args: Args) -> Result<(), BoxError> {
    let (uploads, size) = if args.quick {
        (2, 16 * MIB)
    } else {
        (args.uploads.max(1), args.size_mib * MIB)
    };
    let bins = Bins::prepare()?;
    let dir = tempfile::Builder::new()
        .prefix("handoff-bench-resume-")
        .tempdir()?;
    let mut rows = Vec::new();
    for client in [Kind::ResumeLayer, Kind::StartOver] {
        rows.push(run_client(&bins, client, uploads, size, args.cuts, dir.path()).await?);
    }
    report::resume(&rows)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The `upload` example: the resume layer.
    ResumeLayer,
    /// A plain hyper-util client that sends the whole upload again after each cut.
    StartOver,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::ResumeLayer => "resume layer (`upload` example)",
            Kind::StartOver => "plain client, starts over after a cut",
        }
    }
}

async fn run_client(
    bins: &Bins,
    kind: Kind,
    uploads: usize,
    size: u64,
    cuts: usize,
    dir: &std::path::Path,
) -> Result<ResumeRow, BoxError> {
    let mut command = Command::new(&bins.origin);
    command
        .args(["--listen", "127.0.0.1:0", "--name", "r"])
        .env("RUST_LOG", "warn");
    let (mut origin, origin_addr) = Proc::spawn_listening("origin", command).await?;
    let relay = Relay::start(origin_addr).await?;
    let mut ok = 0;
    let mut walls = Vec::new();
    let mut resent = 0;
    for upload in 0..uploads {
        let data = crate::random::bytes(upload as u64, size as usize);
        relay.schedule(cut_offsets(upload as u64, size, cuts));
        eprintln!("resume: {} / upload {}/{uploads}", kind.label(), upload + 1);
        // Written before the clock starts: only the upload is timed.
        let file = dir.join(format!("upload-{upload}.bin"));
        if kind == Kind::ResumeLayer {
            tokio::fs::write(&file, &data).await?;
        }
        let started = Instant::now();
        let passed = match kind {
            Kind::ResumeLayer => {
                let (passed, bytes) = resume_upload(bins, &file, &data, relay.addr).await?;
                tokio::fs::remove_file(&file).await?;
                resent += bytes;
                passed
            }
            Kind::StartOver => start_over_upload(relay.addr, data.clone(), cuts + 2).await,
        };
        walls.push(started.elapsed());
        ok += usize::from(passed);
    }
    walls.sort_unstable();
    origin.stop(Duration::from_secs(10)).await?;
    Ok(ResumeRow {
        client: kind.label().to_owned(),
        uploads,
        ok,
        size,
        cuts_per_upload: cuts,
        cuts_made: relay.cuts_made(),
        bytes_carried: relay.carried(),
        client_resent: (kind == Kind::ResumeLayer).then_some(resent),
        wall_p50: walls[walls.len() / 2],
        handler_runs: origin.totals("uploads_started").unwrap_or(0),
    })
}

/// The `upload` example, a process of its own, on a file of `data`: whether the answer
/// carries the file's digest, and the bytes it says it re-sent (its summary line).
async fn resume_upload(
    bins: &Bins,
    file: &std::path::Path,
    data: &Bytes,
    relay: SocketAddr,
) -> Result<(bool, u64), BoxError> {
    let mut command = Command::new(&bins.upload);
    command
        .args(["--deadline", "120", "--retries", "20"])
        .arg(file)
        .arg(format!("http://{relay}/upload"));
    let mut proc = Proc::spawn("upload", command)?;
    let status = proc.wait(Duration::from_secs(150)).await?;
    let digest = format!("{:x}", Sha256::digest(data));
    let lines = proc.lines();
    // `... 412.0 KiB re-sent (421888 bytes)`
    let resent = lines
        .iter()
        .find_map(|l| l.split("re-sent (").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or(0);
    Ok((
        status.success() && lines.iter().any(|l| l.contains(&digest)),
        resent,
    ))
}

/// A plain POST of `data`, sent again from byte 0 after each failure, at most `attempts`
/// times.
async fn start_over_upload(relay: SocketAddr, data: Bytes, attempts: usize) -> bool {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let digest = format!("{:x}", Sha256::digest(&data));
    for _ in 0..attempts {
        let request = http::Request::post(format!("http://{relay}/upload"))
            .body(Full::new(data.clone()))
            .expect("a valid request");
        let exchange = async {
            let response = client.request(request).await.ok()?;
            let ok = response.status() == 200;
            let body = response.into_body().collect().await.ok()?.to_bytes();
            Some((ok, body))
        };
        // Bounded: a relay or origin that stops must not hang the run.
        let Ok(Some((ok, body))) = tokio::time::timeout(Duration::from_secs(60), exchange).await
        else {
            continue;
        };
        if ok {
            return String::from_utf8_lossy(&body).contains(&digest);
        }
    }
    false
}

/// `cuts` offsets, each within the first `size / (cuts + 1)` bytes of a connection (past
/// 256 KiB), so that every connection of a resumed upload is long enough to be cut.
fn cut_offsets(seed: u64, size: u64, cuts: usize) -> VecDeque<u64> {
    let state = seed
        .wrapping_add(0x0005_DEEC_E66D)
        .wrapping_mul(0x2545_F491_4F6C_DD1D);
    let low = 256 * 1024;
    let high = (size / (cuts as u64 + 1)).max(low + 1);
    xorshift(state)
        .take(cuts)
        .map(|word| low + word % (high - low))
        .collect()
}

/// A TCP relay to the origin that cuts a connection once it carried the next scheduled
/// number of bytes from the client; it counts what it read from the clients.
struct Relay {
    addr: SocketAddr,
    cuts: Arc<Mutex<VecDeque<u64>>>,
    made: Arc<AtomicU64>,
    carried: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(origin: SocketAddr) -> Result<Self, BoxError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let cuts = Arc::new(Mutex::new(VecDeque::new()));
        let made = Arc::new(AtomicU64::new(0));
        let carried = Arc::new(AtomicU64::new(0));
        let (c, m, b) = (cuts.clone(), made.clone(), carried.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (c, m, b) = (c.clone(), m.clone(), b.clone());
                tokio::spawn(async move {
                    if let Ok(upstream) = TcpStream::connect(origin).await {
                        relay_one(client, upstream, c, m, b).await;
                    }
                });
            }
        });
        Ok(Relay {
            addr,
            cuts,
            made,
            carried,
            task,
        })
    }

    fn schedule(&self, cuts: VecDeque<u64>) {
        *self.cuts.lock().unwrap_or_else(|e| e.into_inner()) = cuts;
    }

    fn cuts_made(&self) -> usize {
        self.made.load(Ordering::SeqCst) as usize
    }

    fn carried(&self) -> u64 {
        self.carried.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways; the client's side is cut (both sockets closed) when it reaches the
/// next scheduled offset.
async fn relay_one(
    client: TcpStream,
    upstream: TcpStream,
    cuts: Arc<Mutex<VecDeque<u64>>>,
    made: Arc<AtomicU64>,
    carried: Arc<AtomicU64>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let down = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut upstream_read, &mut client_write).await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut passed = 0u64;
    loop {
        let n = match client_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let cut_at = cuts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .front()
            .copied();
        let mut take = n as u64;
        let cut = cut_at.is_some_and(|at| passed + take >= at);
        if let Some(at) = cut_at.filter(|_| cut) {
            take = at.saturating_sub(passed);
        }
        carried.fetch_add(n as u64, Ordering::SeqCst);
        if upstream_write
            .write_all(&buf[..take as usize])
            .await
            .is_err()
        {
            break;
        }
        passed += take;
        if cut {
            cuts.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
            made.fetch_add(1, Ordering::SeqCst);
            down.abort();
            return;
        }
    }
    let _ = upstream_write.shutdown().await;
    let _ = down.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cut_fits_a_resumed_connection() {
        let size = 64 * MIB;
        for seed in 0..50 {
            let cuts = cut_offsets(seed, size, 3);
            assert_eq!(cuts.len(), 3);
            assert!(cuts.iter().all(|c| *c >= 256 * 1024 && *c < size / 4));
            // What is left after every cut is longer than the next cut.
            let mut left = size;
            for cut in &cuts {
                assert!(left > *cut);
                left -= cut;
            }
        }
    }
}
