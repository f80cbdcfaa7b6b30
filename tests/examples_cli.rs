//! Issue #3 items 7 and 8: the contract of the `origin` and `proxy` example binaries.
//!
//! Each runs as a real process: started with `--listen 127.0.0.1:0`, its first line on stdout
//! must be `listening on <addr>` with the port it bound; an upload goes through the proxy to
//! the origin; then SIGTERM or SIGINT must end each one with a graceful shutdown and exit
//! status 0, within a bounded time.
//! The processes are managed by `running` (shared with the other process tests).

mod running;
#[path = "../examples/support/mod.rs"]
mod support;

use std::time::Duration;

use running::{Running, Signal, LIMIT};
use support::upload::upload;

/// Starts an origin and a proxy in front of it, runs an upload through both, then stops the
/// proxy with `proxy_signal` and the origin with `origin_signal`.
async fn upload_then_stop(origin_signal: Signal, proxy_signal: Signal) {
    let origin = Running::start(
        "origin",
        &[
            "--listen",
            "127.0.0.1:0",
            "--name",
            "cli-origin",
            "--replay",
            "--drain-timeout",
            "5",
        ],
    );
    let backend = format!("http://{}", origin.addr);
    let proxy = Running::start(
        "proxy",
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            &backend,
            "--drain-timeout",
            "5",
        ],
    );

    let outcome = tokio::time::timeout(
        LIMIT,
        upload(proxy.addr, 256 << 10, 32 << 10, Duration::ZERO, 11),
    )
    .await
    .expect("the upload finished in time")
    .expect("the proxy answered");
    assert!(
        outcome.succeeded(),
        "{outcome:?}\nproxy log:\n{}\norigin log:\n{}",
        proxy.log(),
        origin.log()
    );
    assert_eq!(outcome.server(), Some("cli-origin"));

    proxy.stop_with(proxy_signal).await;
    origin.stop_with(origin_signal).await;
}

#[tokio::test]
async fn origin_and_proxy_serve_an_upload_then_exit_0_on_sigterm() {
    upload_then_stop(Signal::Term, Signal::Term).await;
}

#[tokio::test]
async fn origin_and_proxy_serve_an_upload_then_exit_0_on_sigint() {
    upload_then_stop(Signal::Int, Signal::Int).await;
}
