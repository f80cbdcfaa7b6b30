//! What a resumable upload costs the origin, measured in one process on 127.0.0.1 against
//! baselines in the same run.
//!
//! ```text
//! cargo bench --bench resume             # about 15 s after the build
//! cargo bench --bench resume -- --quick  # a smaller run, a few seconds
//! ```
//!
//! 1. Memory per open upload: N uploads cut after 256 KiB stay open (their handlers wait for
//!    a `PATCH`). Live heap growth per upload (a global allocator wrapper, `peak_alloc`) and,
//!    for the memory store, the body bytes it holds; for the disk store, the bytes on disk.
//!    Baseline: the same cut uploads to the same app without the layer (nothing stays open).
//! 3. Pass-through cost: small POSTs without `Prefer: resume` through the layer, against the
//!    same app without it (requests/s at 16 in flight over keep-alive connections, A/B
//!    interleaved rounds, medians).
//! 2. Resume time: uploads of 4 MiB cut at 2 MiB and completed with `HEAD` + `PATCH` (and the
//!    recorded answer), against a fresh plain `POST` of the same 2 MiB: the difference is
//!    what resuming costs beyond sending the missing bytes.
//!
//! It runs only when given `--bench` (which `cargo bench` passes).

#[allow(unused_imports)]
#[path = "../tests/raw/mod.rs"]
mod raw;

use std::sync::Arc;
use std::time::{Duration, Instant};

use handoff_server::resume::store::{DiskStore, MemoryStore};
use handoff_server::resume::{Limits, ResumableLayer};
use peak_alloc::PeakAlloc;
use raw::*;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

fn heap() -> i64 {
    HEAP.current_usage() as i64
}

fn limits() -> Limits {
    Limits {
        writer_takeover: Duration::from_millis(100),
        max_open: 10_000,
        max_open_per_owner: 10_000,
        ..Limits::default()
    }
}

/// Opens `n` uploads of 1 MiB cut after 256 KiB; returns the live heap growth.
async fn open_uploads(origin: &Origin, n: usize) -> i64 {
    let body = body_of(1 << 20);
    let head_len = upload_head(origin.addr, body.len(), None, "resume").len();
    let before = heap();
    for _ in 0..n {
        cut_upload(origin.addr, &body, head_len + (256 << 10), None).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    heap() - before
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

async fn memory(n: usize) {
    println!("1. memory per open upload ({n} uploads of 1 MiB cut after 256 KiB)");
    let plain = origin_with(boxed, Duration::ZERO).await;
    let baseline = open_uploads(&plain, n).await;
    drop(plain);

    let store = MemoryStore::new();
    let layer = ResumableLayer::with_shared_store(Arc::new(store.clone())).limits(limits());
    let memory_origin = origin(layer, Duration::ZERO).await;
    let grown = open_uploads(&memory_origin, n).await;
    let held = store.held_bytes();
    drop(memory_origin);

    let dir = tempfile::tempdir().unwrap();
    let layer =
        ResumableLayer::with_store(DiskStore::open(dir.path()).await.unwrap()).limits(limits());
    let disk_origin = origin(layer, Duration::ZERO).await;
    let disk_grown = open_uploads(&disk_origin, n).await;
    let on_disk = dir_bytes(dir.path());
    drop(disk_origin);

    let per = |bytes: i64| format!("{:.1} KiB", bytes as f64 / n as f64 / 1024.0);
    println!(
        "   {:<44} {:>14} {:>16}",
        "", "heap / upload", "store / upload"
    );
    println!(
        "   {:<44} {:>14} {:>16}",
        "no layer (baseline: nothing stays open)",
        per(baseline),
        "-"
    );
    println!(
        "   {:<44} {:>14} {:>16}",
        "ResumableLayer, MemoryStore (bytes held)",
        per(grown),
        per(held as i64)
    );
    println!(
        "   {:<44} {:>14} {:>16}",
        "ResumableLayer, DiskStore (bytes on disk)",
        per(disk_grown),
        per(on_disk as i64)
    );
    println!(
        "   The memory store frees body bytes as the handler reads them: an open upload costs its\n   \
         handler's task and the operation's bookkeeping, not its body."
    );
}

async fn resume_time(rounds: usize) {
    println!("2. resume time (4 MiB uploads cut at 2 MiB; median of {rounds})");
    let origin = raw::origin(ResumableLayer::new().limits(limits()), Duration::ZERO).await;
    let body = body_of(4 << 20);
    let head_len = upload_head(origin.addr, body.len(), None, "resume").len();
    let half = body.len() / 2;
    let mut resumes = Vec::new();
    let mut fresh = Vec::new();
    for _ in 0..rounds {
        let interim = cut_upload(origin.addr, &body, head_len + half, None)
            .await
            .unwrap();
        let (request, response) = interim.locations();
        let started = Instant::now();
        complete(origin.addr, &request, &body, None).await;
        resumes.push(started.elapsed());
        delete(origin.addr, &response, None).await;

        // Baseline: a plain POST of the missing half.
        let plain_body = &body[half..];
        let mut plain = format!(
            "POST /upload HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            origin.addr,
            plain_body.len()
        )
        .into_bytes();
        plain.extend_from_slice(plain_body);
        let started = Instant::now();
        exchange(origin.addr, &plain).await;
        fresh.push(started.elapsed());
    }
    let (resume, baseline) = (median(resumes), median(fresh));
    println!(
        "   {:<52} {:>10}",
        "HEAD + PATCH of 2 MiB + recorded answer",
        ms(resume)
    );
    println!(
        "   {:<52} {:>10}",
        "baseline: plain POST of the same 2 MiB",
        ms(baseline)
    );
    println!(
        "   {:<52} {:>10}",
        "resuming costs beyond the missing bytes",
        ms(resume.saturating_sub(baseline))
    );
}

async fn pass_through(rounds: usize, per_round: usize) {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    println!("3. pass-through cost ({per_round} small POSTs at 16 in flight; median of {rounds} rounds each)");
    let plain = origin_with(boxed, Duration::ZERO).await;
    let layered = raw::origin(ResumableLayer::new(), Duration::ZERO).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let run = |addr: std::net::SocketAddr| {
        let client = client.clone();
        async move {
            let started = Instant::now();
            let mut tasks = Vec::new();
            for worker in 0..16 {
                let client = client.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in (worker..per_round).step_by(16) {
                        let request = http::Request::post(format!("http://{addr}/upload"))
                            .body(Full::new(Bytes::from_static(b"0123456789")))
                            .unwrap();
                        let response = client.request(request).await.unwrap();
                        response.into_body().collect().await.unwrap();
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            per_round as f64 / started.elapsed().as_secs_f64()
        }
    };
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        without.push(run(plain.addr).await);
        with.push(run(layered.addr).await);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (median(without), median(with));
    println!("   {:<44} {:>12.0} req/s", "baseline: no layer", a);
    println!(
        "   {:<44} {:>12.0} req/s   x{:.3}",
        "ResumableLayer, no Prefer: resume",
        b,
        b / a
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("resume bench: run with `cargo bench --bench resume`");
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        memory(if quick { 50 } else { 200 }).await;
        resume_time(if quick { 5 } else { 21 }).await;
        pass_through(if quick { 3 } else { 7 }, if quick { 2000 } else { 10_000 }).await;
    });
}
