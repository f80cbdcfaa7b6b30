//! Example binaries run as real processes by the integration tests: built once if missing,
//! started with `--listen`, their `listening on <addr>` line read, and killed on every path
//! (a failing assertion included).
//!
//! `cargo test` builds the examples next to the test binaries (`target/<profile>/examples/`);
//! when they are missing (`cargo test --test <name>` alone does not build them), the first
//! use builds them once with `cargo build --examples`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Safety net for every wait on a child.
pub(crate) const LIMIT: Duration = Duration::from_secs(20);

/// Which signal asks for the graceful shutdown.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Signal {
    Term,
    Int,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Term => "TERM",
            Signal::Int => "INT",
        }
    }
}

/// The folder holding the example binaries, built once if they are not there.
pub(crate) fn examples_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // target/<profile>/deps/examples_cli-<hash>
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("the test binary sits in target/<profile>/deps");
        let dir = profile_dir.join("examples");
        let missing = ["origin", "proxy"]
            .iter()
            .any(|name| !dir.join(binary_name(name)).exists());
        if missing {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
            let mut build = Command::new(cargo);
            build
                .args(["build", "--examples"])
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            match profile_dir.file_name().and_then(|name| name.to_str()) {
                Some("debug") | None => {}
                Some("release") => {
                    build.arg("--release");
                }
                Some(profile) => {
                    build.args(["--profile", profile]);
                }
            }
            let status = build.status().expect("running cargo build --examples");
            assert!(status.success(), "cargo build --examples: {status}");
        }
        dir
    })
}

fn binary_name(name: &str) -> String {
    format!("{name}{}", std::env::consts::EXE_SUFFIX)
}

/// A running example. Dropping it kills the process if it is still running.
pub(crate) struct Running {
    name: String,
    child: Child,
    pub(crate) addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    /// Starts the `origin` example named `name` on `listen`, keeping resumable uploads in
    /// the directory `store` (so that they survive the process).
    pub(crate) fn disk_origin(listen: &str, name: &str, store: &str) -> Self {
        Running::start(
            "origin",
            &["--listen", listen, "--name", name, "--store", store],
        )
    }

    /// Starts example `name` with `args` and waits for its `listening on <addr>` line.
    pub(crate) fn start(name: &str, args: &[&str]) -> Self {
        let mut child = Command::new(examples_dir().join(binary_name(name)))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("starting example {name}: {error}"));

        // The log goes to stderr: keep it for the failure messages (and keep the pipe
        // drained, so that the child never blocks on it).
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let log = stderr.clone();
        thread::spawn(move || {
            let mut chunk = [0; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        let (lines, first_lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });

        // From here on the guard kills the child if anything fails.
        let mut running = Running {
            name: name.to_owned(),
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            stderr,
        };
        let first = match first_lines.recv_timeout(LIMIT) {
            Ok(line) => line,
            Err(error) => panic!(
                "{name}: no first line on stdout ({error}); log:\n{}",
                running.log()
            ),
        };
        let addr = first
            .strip_prefix("listening on ")
            .and_then(|addr| addr.parse::<SocketAddr>().ok())
            .unwrap_or_else(|| panic!("{name}: first stdout line is {first:?}"));
        assert_eq!(addr.ip().to_string(), "127.0.0.1", "{name}: {first}");
        assert_ne!(addr.port(), 0, "{name} reports the port it bound: {first}");
        running.addr = addr;
        running
    }

    pub(crate) fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends `signal` with kill(1).
    pub(crate) fn signal(&self, signal: Signal) {
        let status = Command::new("kill")
            .args(["-s", signal.name(), &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -s {} {}", signal.name(), self.name);
    }

    /// Waits (bounded) for the process to exit.
    pub(crate) async fn exit_status(&mut self) -> ExitStatus {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {LIMIT:?}; log:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends `signal` and checks for a graceful exit: status 0.
    pub(crate) async fn stop_with(mut self, signal: Signal) {
        self.signal(signal);
        let status = self.exit_status().await;
        assert_eq!(
            status.code(),
            Some(0),
            "{} after SIG{}: {status}; log:\n{}",
            self.name,
            signal.name(),
            self.log()
        );
    }
}

impl Running {
    /// Kills the process with SIGKILL (no shutdown of any kind) and reaps it.
    pub(crate) fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaping the killed child");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
