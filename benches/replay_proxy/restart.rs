//! Row 3: the demo's rolling restart (`examples/demo.rs`), with and without replay.
//!
//! Two origins behind the proxy; paced uploads all start together; origin A restarts at a
//! quarter of an upload's time, origin B once A is back and half the time has passed. Each
//! origin drains for a window much shorter than an upload. With replay the origins answer
//! their unfinished uploads with `379` (PROTOCOL.md part A, server 1) and the proxy replays
//! them on the other origin; without it the uploads still running at the end of the drain
//! window are cut.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::runtime::Handle;

use crate::rig::start_proxy;
use crate::support::origin::{spawn_origin, OriginConfig, OriginHandle, OriginStats};
use crate::support::proxy::ProxyConfig;
use crate::support::rolling::restart_origin;
use crate::support::upload::{upload_with, UploadOutcome, UploadSpec};
use crate::support::BoxError;

/// The scenario's shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scenario {
    /// Concurrent uploads.
    pub(crate) uploads: u64,
    /// Bytes per upload.
    pub(crate) size: u64,
    /// Bytes per body frame.
    pub(crate) chunk: usize,
    /// How long the client takes for one upload (it paces itself).
    pub(crate) upload_time: Duration,
    /// How long a restarting origin lets requests drain.
    pub(crate) drain: Duration,
}

/// How one run of the scenario went.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// Uploads started.
    pub(crate) started: usize,
    /// Uploads answered 200 with the right length and digest.
    pub(crate) succeeded: usize,
    /// What the others got, `(label, count)`.
    pub(crate) failures: Vec<(String, usize)>,
    /// From the first upload's start to the last one's end.
    pub(crate) wall: Duration,
    /// Body bytes the clients sent in uploads that failed (work to do again).
    pub(crate) wasted: u64,
    /// Replays sent by the proxy.
    pub(crate) replays: u64,
    /// Bytes read from `379` echoes.
    pub(crate) echoed: u64,
    /// Client requests a replay could not save.
    pub(crate) replay_failed: u64,
    /// The replay layer's peak of held bytes.
    pub(crate) max_held: u64,
}

/// Runs the scenario once; the proxy is started on `proxy_rt`, everything else on the
/// calling runtime.
pub(crate) async fn run(
    proxy_rt: &Handle,
    scenario: Scenario,
    replay: bool,
) -> Result<Outcome, BoxError> {
    let origin_cfg = |name: &str| {
        OriginConfig::new(name)
            .replay(replay)
            .drain_timeout(scenario.drain)
    };
    let stats = [OriginStats::default(), OriginStats::default()];
    let mut first = Vec::new();
    for (name, stats) in ["a1", "b1"].into_iter().zip(&stats) {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        first.push(spawn_origin(listener, origin_cfg(name), stats.clone()).await?);
    }
    let addrs: Vec<SocketAddr> = first.iter().map(OriginHandle::addr).collect();
    let proxy = start_proxy(
        proxy_rt,
        ProxyConfig::with_addrs(addrs)
            .replay(replay)
            .drain_timeout(Duration::from_secs(5)),
    )
    .await?;

    let chunks = scenario.size.div_ceil(scenario.chunk as u64).max(2);
    let pace = scenario.upload_time / u32::try_from(chunks - 1).unwrap_or(u32::MAX);
    let started = Instant::now();
    let uploads: Vec<_> = (0..scenario.uploads)
        .map(|seed| {
            let spec = UploadSpec::new(scenario.size, scenario.chunk, pace, seed);
            let addr = proxy.addr();
            tokio::spawn(async move { upload_with(addr, &spec).await })
        })
        .collect();

    let plan = [
        ("a2", scenario.upload_time / 4),
        ("b2", scenario.upload_time / 2),
    ];
    let mut successors = Vec::new();
    for ((name, at), (old, stats)) in plan.into_iter().zip(first.into_iter().zip(&stats)) {
        tokio::time::sleep_until((started + at).into()).await;
        successors.push(restart_origin(&proxy, old, origin_cfg(name), stats, |_| {}).await?);
    }

    let mut outcomes = Vec::new();
    for task in uploads {
        outcomes.push(task.await?);
    }
    let wall = started.elapsed();

    let replay_stats = proxy.stats();
    proxy.wait().await;
    for origin in successors {
        origin.wait().await;
    }

    let mut outcome = Outcome {
        started: outcomes.len(),
        succeeded: 0,
        failures: Vec::new(),
        wall,
        wasted: 0,
        replays: replay_stats.replays(),
        echoed: replay_stats.echoed_bytes(),
        replay_failed: replay_stats.failed(),
        max_held: replay_stats.max_held_bytes(),
    };
    for result in &outcomes {
        let label = match result {
            Ok(upload) if upload.succeeded() => {
                outcome.succeeded += 1;
                continue;
            }
            Ok(upload) => failure_label(upload),
            Err(_) => "connection error".to_owned(),
        };
        if let Ok(upload) = result {
            outcome.wasted += upload.sent_bytes;
        }
        match outcome.failures.iter_mut().find(|(l, _)| *l == label) {
            Some((_, count)) => *count += 1,
            None => outcome.failures.push((label, 1)),
        }
    }
    Ok(outcome)
}

fn failure_label(upload: &UploadOutcome) -> String {
    if upload.status.is_success() {
        "200 with wrong bytes".to_owned()
    } else {
        upload.status.as_u16().to_string()
    }
}
