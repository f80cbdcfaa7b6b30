//! The binaries a run needs: the workspace's `origin`, `proxy` and `upload` examples (built here,
//! release, once), and the peers found on the machine (installed by
//! `scripts/install-peers.sh`, never by the harness).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::peers::Peer;
use crate::BoxError;

#[derive(Debug, Clone)]
pub(crate) struct Bins {
    pub(crate) origin: PathBuf,
    pub(crate) proxy: PathBuf,
    /// The resume layer as a command-line client.
    pub(crate) upload: PathBuf,
    pub(crate) nginx: Option<PathBuf>,
    pub(crate) haproxy: Option<PathBuf>,
}

/// The workspace root: this crate lives in `crates/handoff-bench`.
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where cargo puts build output: `CARGO_TARGET_DIR`, or `target/` at the root.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

impl Bins {
    /// Builds the examples (`cargo build --release --example origin --example proxy
    /// --example upload`) and
    /// looks for nginx and HAProxy.
    pub(crate) fn prepare() -> Result<Self, BoxError> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!("building the origin, proxy and upload examples (release)");
        let status = Command::new(cargo)
            .current_dir(workspace_root())
            .args(["build", "--release", "--quiet", "-p", "tower-handoff"])
            .args([
                "--example",
                "origin",
                "--example",
                "proxy",
                "--example",
                "upload",
            ])
            .status()?;
        if !status.success() {
            return Err(format!("building the examples failed: {status}").into());
        }
        let examples = target_dir().join("release/examples");
        Ok(Bins {
            origin: examples.join("origin"),
            proxy: examples.join("proxy"),
            upload: examples.join("upload"),
            nginx: find("nginx"),
            haproxy: find("haproxy"),
        })
    }
}

impl Bins {
    /// The binary that runs `peer`, if installed.
    pub(crate) fn peer(&self, peer: Peer) -> Option<&Path> {
        match peer {
            Peer::NginxStreaming | Peer::NginxBuffered => self.nginx.as_deref(),
            Peer::Haproxy | Peer::HaproxyBigBuffer => self.haproxy.as_deref(),
        }
    }
}

/// `name` on `PATH` or in the usual sbin folders.
fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// `nginx/1.22.1` or `HAProxy 2.6.12`: the first line a `-v` prints, trimmed.
pub(crate) fn version(bin: &Path) -> String {
    let Ok(out) = Command::new(bin).arg("-v").output() else {
        return "unknown version".to_owned();
    };
    let text = if out.stderr.is_empty() {
        out.stdout
    } else {
        out.stderr
    };
    let text = String::from_utf8_lossy(&text);
    let line = text.lines().next().unwrap_or_default();
    line.trim_start_matches("nginx version: ")
        .replace("HAProxy version ", "HAProxy ")
        .split(" - ")
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}
