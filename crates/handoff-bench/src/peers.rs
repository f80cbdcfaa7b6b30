//! The proxies people use today, configured the way a user who wants retries would, each in
//! a temp dir of its own (config, pid file, logs, body temp files) on an ephemeral port.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use crate::procs::Proc;
use crate::BoxError;

/// Which peer, and how it is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    /// nginx streaming request bodies (`proxy_request_buffering off`), with
    /// `proxy_next_upstream error timeout non_idempotent`: it cannot retry a request whose
    /// body it has started to send.
    NginxStreaming,
    /// nginx store-and-forward (its default buffering, to temp files past 16 KiB) with
    /// `proxy_next_upstream error timeout non_idempotent`: it retries POSTs from its copy.
    NginxBuffered,
    /// HAProxy with `retry-on all-retryable-errors`, `option redispatch` and
    /// `option http-buffer-request`, at its default `tune.bufsize` (16 KiB).
    Haproxy,
    /// The same with `tune.bufsize` large enough to hold a whole upload.
    HaproxyBigBuffer,
}

impl Peer {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Peer::NginxStreaming => "nginx streaming",
            Peer::NginxBuffered => "nginx store-and-forward",
            Peer::Haproxy => "HAProxy, default buffer",
            Peer::HaproxyBigBuffer => "HAProxy, upload-sized buffer",
        }
    }
}

/// A running peer, stopped (and its dir removed) on drop.
pub(crate) struct RunningPeer {
    pub(crate) proc: Proc,
    pub(crate) addr: SocketAddr,
    dir: tempfile::TempDir,
    peer: Peer,
}

impl RunningPeer {
    /// Starts `peer` (binary `bin`) in front of `origins`. `upload` is the largest body,
    /// for the buffer size of [`Peer::HaproxyBigBuffer`].
    pub(crate) async fn start(
        peer: Peer,
        bin: &Path,
        origins: &[SocketAddr],
        upload: u64,
    ) -> Result<Self, BoxError> {
        let dir = tempfile::Builder::new()
            .prefix("handoff-bench-")
            .tempdir()?;
        let addr = free_port()?;
        let mut command = Command::new(bin);
        match peer {
            Peer::NginxStreaming | Peer::NginxBuffered => {
                for sub in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
                    std::fs::create_dir(dir.path().join(sub))?;
                }
                let conf = dir.path().join("nginx.conf");
                std::fs::write(&conf, nginx_config(dir.path(), addr, origins, peer))?;
                command
                    .arg("-p")
                    .arg(dir.path())
                    .arg("-e")
                    .arg(dir.path().join("error.log"))
                    .arg("-c")
                    .arg(&conf);
            }
            Peer::Haproxy | Peer::HaproxyBigBuffer => {
                let bufsize = (peer == Peer::HaproxyBigBuffer).then_some(upload + (1 << 20));
                let conf = dir.path().join("haproxy.cfg");
                std::fs::write(&conf, haproxy_config(addr, origins, bufsize))?;
                command.arg("-db").arg("-f").arg(&conf);
            }
        }
        let proc = Proc::spawn(peer.label(), command)?;
        wait_listening(addr, &proc).await?;
        Ok(RunningPeer {
            proc,
            addr,
            dir,
            peer,
        })
    }

    /// Every process of the peer (nginx's master and workers).
    pub(crate) fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.proc.pid()];
        pids.extend(crate::procs::children(self.proc.pid()));
        pids
    }

    /// Requests the peer sent to more than one origin, from its logs.
    pub(crate) fn retried(&self) -> u64 {
        match self.peer {
            // The access log's `$upstream_addr` lists every origin tried: "a, b".
            Peer::NginxStreaming | Peer::NginxBuffered => {
                let log =
                    std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
                log.lines().filter(|l| l.contains(", ")).count() as u64
            }
            // The log line's retry count (`%rc`, `+N` when redispatched).
            Peer::Haproxy | Peer::HaproxyBigBuffer => self
                .proc
                .lines()
                .iter()
                .filter_map(|l| l.strip_prefix("bench "))
                .filter_map(|l| l.split_whitespace().nth(1))
                .filter(|rc| {
                    rc.trim_start_matches('+')
                        .parse::<u64>()
                        .is_ok_and(|n| n > 0)
                })
                .count() as u64,
        }
    }
}

fn nginx_config(dir: &Path, addr: SocketAddr, origins: &[SocketAddr], peer: Peer) -> String {
    let mut upstream = String::new();
    for origin in origins {
        // One failure takes an origin out for 2 s (passive health: nginx OSS has no active
        // checks), so a restarting origin is skipped.
        let _ = writeln!(
            upstream,
            "        server {origin} max_fails=1 fail_timeout=2s;"
        );
    }
    // Both may retry a POST on another origin; the streaming one only until it has started
    // to send the body (it has no copy), which is what its row shows.
    let body = match peer {
        Peer::NginxStreaming => "proxy_request_buffering off;",
        _ => "proxy_request_buffering on;",
    };
    let dir = dir.display();
    format!(
        "daemon off;
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format bench '$status $request_time $upstream_addr $upstream_status';
    access_log {dir}/access.log bench;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 0;
    upstream origins {{
{upstream}        keepalive 32;
    }}
    server {{
        listen {addr};
        location / {{
            proxy_pass http://origins;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_read_timeout 60s;
            proxy_send_timeout 60s;
            proxy_next_upstream error timeout non_idempotent;
            {body}
        }}
    }}
}}
"
    )
}

fn haproxy_config(addr: SocketAddr, origins: &[SocketAddr], bufsize: Option<u64>) -> String {
    let mut servers = String::new();
    for (i, origin) in origins.iter().enumerate() {
        // Active health checks on the origins' /health, so a restarting one is skipped.
        let _ = writeln!(
            servers,
            "    server o{i} {origin} check inter 200ms fall 1 rise 1"
        );
    }
    let tune = bufsize.map_or(String::new(), |b| format!("    tune.bufsize {b}\n"));
    format!(
        "global
    maxconn 4096
    log stdout format raw local0
{tune}
defaults
    mode http
    log global
    log-format \"bench %ST %rc %s\"
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    retries 3
    retry-on all-retryable-errors
    option redispatch 1
    option http-buffer-request

frontend bench
    bind {addr}
    default_backend origins

backend origins
    balance roundrobin
    option httpchk GET /health
{servers}"
    )
}

/// A port nobody listens on right now (the peer binds it next).
fn free_port() -> Result<SocketAddr, BoxError> {
    let listener = StdTcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

async fn wait_listening(addr: SocketAddr, proc: &Proc) -> Result<(), BoxError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("the peer did not listen on {addr}: {:?}", proc.lines()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins() -> Vec<SocketAddr> {
        vec![
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        ]
    }

    #[test]
    fn nginx_streams_or_buffers_and_retries_as_configured() {
        let addr = "127.0.0.1:3".parse().unwrap();
        let streaming = nginx_config(Path::new("/d"), addr, &origins(), Peer::NginxStreaming);
        assert!(streaming.contains("proxy_request_buffering off;"));
        assert!(streaming.contains("proxy_next_upstream error timeout non_idempotent;"));
        assert!(streaming.contains("server 127.0.0.1:2 max_fails=1"));
        let buffered = nginx_config(Path::new("/d"), addr, &origins(), Peer::NginxBuffered);
        assert!(buffered.contains("proxy_request_buffering on;"));
        assert!(buffered.contains("proxy_next_upstream error timeout non_idempotent;"));
        assert!(buffered.contains("client_body_temp_path /d/body;"));
    }

    #[test]
    fn haproxy_buffers_and_retries_and_logs_its_retries() {
        let addr = "127.0.0.1:3".parse().unwrap();
        let default = haproxy_config(addr, &origins(), None);
        for line in [
            "retry-on all-retryable-errors",
            "option redispatch 1",
            "option http-buffer-request",
            "log-format \"bench %ST %rc %s\"",
            "server o1 127.0.0.1:2 check",
        ] {
            assert!(default.contains(line), "{line}");
        }
        assert!(!default.contains("tune.bufsize"));
        assert!(haproxy_config(addr, &origins(), Some(9 << 20)).contains("tune.bufsize 9437184"));
    }
}
