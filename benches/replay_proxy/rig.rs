//! The bench's two tokio runtimes, and starting servers on them.
//!
//! The proxy runs on a runtime of its own, whose threads are registered with a
//! [`ThreadCpu`], so that its CPU time can be told apart from the load it serves: the upload
//! clients and the origins (SHA-256 over every byte, on both ends) run on the other runtime.
//! Both share the machine's cores, as a proxy and its neighbours do on one host.

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::runtime::{Builder, Handle, Runtime};

use crate::probe::ThreadCpu;
use crate::support::origin::{spawn_origin, OriginConfig, OriginHandle, OriginStats};
use crate::support::proxy::{spawn_proxy, ProxyConfig, ProxyHandle};
use crate::support::BoxError;

/// The runtimes.
#[derive(Debug)]
pub(crate) struct Rig {
    /// Clients and origins.
    pub(crate) load: Runtime,
    /// The proxies under test.
    pub(crate) proxy: Runtime,
    /// CPU time of [`Self::proxy`]'s threads.
    pub(crate) proxy_cpu: ThreadCpu,
    /// Worker threads per runtime.
    pub(crate) workers: usize,
}

impl Rig {
    /// Two multi-thread runtimes with `workers` worker threads each.
    pub(crate) fn new(workers: usize) -> io::Result<Self> {
        let proxy_cpu = ThreadCpu::default();
        let (on_start, on_stop) = (proxy_cpu.clone(), proxy_cpu.clone());
        let proxy = Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("bench-proxy")
            .on_thread_start(move || on_start.register_current())
            .on_thread_stop(move || on_stop.retire_current())
            .enable_all()
            .build()?;
        let load = Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("bench-load")
            .enable_all()
            .build()?;
        Ok(Self {
            load,
            proxy,
            proxy_cpu,
            workers,
        })
    }
}

/// Starts a proxy whose tasks all run on `rt`: its listener, its connections and its
/// upstream client are created there, so `rt`'s threads do (and account for) its work.
pub(crate) async fn start_proxy(rt: &Handle, cfg: ProxyConfig) -> Result<ProxyHandle, BoxError> {
    rt.spawn(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        spawn_proxy(listener, cfg).await
    })
    .await?
}

/// Two origins on ephemeral ports, on the calling runtime, named `<prefix>1` and
/// `<prefix>2`.
pub(crate) async fn start_origins(
    prefix: &str,
    replay: bool,
) -> Result<(Vec<OriginHandle>, Vec<SocketAddr>), BoxError> {
    let mut origins = Vec::new();
    for index in 1..=2 {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let cfg = OriginConfig::new(format!("{prefix}{index}")).replay(replay);
        origins.push(spawn_origin(listener, cfg, OriginStats::default()).await?);
    }
    let addrs = origins.iter().map(OriginHandle::addr).collect();
    Ok((origins, addrs))
}
