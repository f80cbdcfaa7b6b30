//! One step of a rolling restart: replace an origin by a new one on the same port.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::connections::{rebind, Ended};
use super::origin::{spawn_origin, OriginConfig, OriginHandle, OriginStats};
use super::proxy::ProxyHandle;
use super::BoxError;

/// What happened during [`restart_origin`], in order.
#[derive(Debug)]
pub(crate) enum RestartEvent<'a> {
    /// The successor listens on the old origin's address.
    Listening { name: &'a str, addr: SocketAddr },
    /// The old origin's graceful shutdown ended.
    OldEnded { name: &'a str, ended: Ended },
    /// The proxy considers the address usable again (`false`: still down after 5 s).
    Routed { addr: SocketAddr, again: bool },
}

/// Shuts `old` down, starts `cfg` on its port (the proxy's backend list is fixed), waits for
/// `old` to end and for the proxy to route to the port again (at most 5 s).
pub(crate) async fn restart_origin(
    proxy: &ProxyHandle,
    old: OriginHandle,
    cfg: OriginConfig,
    stats: &OriginStats,
    mut event: impl FnMut(RestartEvent<'_>),
) -> Result<OriginHandle, BoxError> {
    let addr = old.addr();
    old.shutdown();
    let listener = rebind(addr, Duration::from_secs(5)).await?;
    let new = spawn_origin(listener, cfg, stats.clone()).await?;
    event(RestartEvent::Listening {
        name: new.name(),
        addr,
    });

    let old_name = old.name().to_owned();
    let ended = old.wait().await;
    event(RestartEvent::OldEnded {
        name: &old_name,
        ended,
    });

    let deadline = Instant::now() + Duration::from_secs(5);
    while !proxy.backend_up(addr) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    event(RestartEvent::Routed {
        addr,
        again: proxy.backend_up(addr),
    });
    Ok(new)
}
