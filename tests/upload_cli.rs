//! The `upload` example binary as a real process, against the in-process upload origin
//! (resumable layer on): through a relay that cuts the upload three times it exits 0
//! with the origin's answer for the whole file on stdout and one resume mark per cut on
//! stderr; with nothing listening it exits non-zero with one `upload:` line; `--quiet`
//! prints nothing on stderr.
//!
//! The binary is found next to the other examples (`running::examples_dir`) and built with
//! `cargo build --example upload` if it is missing.

mod running;
#[path = "../examples/support/mod.rs"]
mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use running::LIMIT;
use sha2::{Digest, Sha256};
use support::origin::{spawn_origin, OriginConfig, OriginHandle, OriginStats, UploadReply};
use support::pattern::{hex, Pattern};
use support::relay::{Cut, Plan, Relay};
use tokio::net::TcpListener;

/// The `upload` binary, built once if it is not there yet.
fn upload_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let dir = running::examples_dir();
        let binary = dir.join(format!("upload{}", std::env::consts::EXE_SUFFIX));
        if !binary.exists() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
            let mut build = Command::new(cargo);
            build
                .args(["build", "--example", "upload"])
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            // target/<profile>/examples
            match dir
                .parent()
                .and_then(Path::file_name)
                .and_then(|name| name.to_str())
            {
                Some("debug") | None => {}
                Some("release") => {
                    build.arg("--release");
                }
                Some(profile) => {
                    build.args(["--profile", profile]);
                }
            }
            let status = build
                .status()
                .expect("running cargo build --example upload");
            assert!(status.success(), "cargo build --example upload: {status}");
        }
        binary
    })
}

/// A finished `upload` process.
#[derive(Debug)]
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Kills the child unless it was reaped (a failing assertion, a timeout).
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Reads a pipe to its end on a thread, so that the child never blocks on it.
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs `upload` with `args` and waits for its exit, at most [`LIMIT`] (then it is killed
/// and the test fails). Polls without blocking the runtime that serves the origin.
async fn run_upload(args: &[&str]) -> Finished {
    let mut child = Command::new(upload_binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the upload example");
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let mut child = Reaper(child);
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "upload {args:?} did not exit within {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    Finished {
        status,
        stdout: stdout.join().expect("the stdout reader"),
        stderr: stderr.join().expect("the stderr reader"),
    }
}

/// A file of `len` pattern bytes, and its SHA-256 (hex).
fn upload_file(dir: &Path, len: usize) -> (PathBuf, String) {
    let mut bytes = vec![0; len];
    Pattern::new(42).fill(&mut bytes);
    let path = dir.join("upload.bin");
    std::fs::write(&path, &bytes).expect("writing the upload file");
    (path, hex(&Sha256::digest(&bytes)))
}

async fn origin(stats: &OriginStats) -> OriginHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = OriginConfig::new("cli-origin")
        .replay(false)
        .drain_timeout(Duration::from_secs(2));
    spawn_origin(listener, cfg, stats.clone()).await.unwrap()
}

fn reply(finished: &Finished) -> UploadReply {
    serde_json::from_str(finished.stdout.trim())
        .unwrap_or_else(|error| panic!("stdout is not the origin's answer ({error}): {finished:?}"))
}

#[tokio::test]
async fn three_cuts_are_resumed_and_the_answer_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    // Every connection is cut once 1 MiB of it has passed: the POST, then each HEAD and
    // PATCH from the server's offset. Three cuts leave about 100 KiB, which no connection
    // can carry to its cut: exactly three, whichever connection hyper-util's pool picks
    // for each request (a PATCH may go on a fresh connection while the HEAD's sits idle).
    let cut = 1 << 20;
    let len = 3 * cut + (100 << 10);
    let (path, sha256) = upload_file(dir.path(), len);
    let stats = OriginStats::default();
    let origin = origin(&stats).await;
    let plan: Plan = Arc::new(move |_connection: usize| Some(Cut::upstream(cut as u64)));
    let relay = Relay::start(origin.addr(), plan).await.unwrap();
    let url = format!("http://{}/upload", relay.addr());

    let finished = run_upload(&[path.to_str().unwrap(), &url]).await;
    assert!(finished.status.success(), "{finished:?}");
    let answer = reply(&finished);
    assert_eq!(answer.server, "cli-origin");
    assert_eq!(answer.bytes, len as u64, "{finished:?}");
    assert_eq!(answer.sha256, sha256, "{finished:?}");
    assert_eq!(
        finished.stderr.matches("resumed at").count(),
        3,
        "one mark per cut: {finished:?}"
    );
    assert!(finished.stderr.contains("3 resumes"), "{finished:?}");
    assert_eq!(relay.stats().cuts, 3);
    assert_eq!(stats.uploads_started(), 1, "the handler ran once");
    assert_eq!(stats.uploads_completed(), 1);

    relay.shutdown();
    origin.wait().await;
}

#[tokio::test]
async fn nothing_listening_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = upload_file(dir.path(), 10_000);
    // A port that was just free.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}/upload");

    let finished = run_upload(&["--retries", "1", path.to_str().unwrap(), &url]).await;
    assert!(!finished.status.success(), "{finished:?}");
    assert_eq!(finished.stdout, "", "{finished:?}");
    let lines: Vec<&str> = finished.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{finished:?}");
    assert!(lines[0].starts_with("upload: "), "{finished:?}");
    assert!(lines[0].contains("retries exhausted"), "{finished:?}");
}

#[tokio::test]
async fn quiet_prints_only_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let len = 200_000;
    let (path, sha256) = upload_file(dir.path(), len);
    let stats = OriginStats::default();
    let origin = origin(&stats).await;
    let url = format!("http://{}/upload", origin.addr());

    let finished = run_upload(&[
        "--quiet",
        "--header",
        "Authorization: Bearer cli",
        path.to_str().unwrap(),
        &url,
    ])
    .await;
    assert!(finished.status.success(), "{finished:?}");
    assert_eq!(finished.stderr, "", "{finished:?}");
    let answer = reply(&finished);
    assert_eq!((answer.bytes, answer.sha256), (len as u64, sha256));

    origin.wait().await;
}
