//! The external baseline: nginx as a reverse proxy in front of the same origins, when it is
//! installed (the bench never installs it).
//!
//! One nginx serves two ports: one streams request bodies (`proxy_request_buffering off`,
//! like our proxy), the other keeps nginx's default (it reads the whole body, spilling to
//! temp files, before it contacts an origin). Its config, pid file, logs and temp files live
//! in a fresh temp directory; [`Nginx`]'s `Drop` stops it and removes the directory, on
//! every path out of the bench (errors, panics, Ctrl-C).

use std::fmt::Write as _;
use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::probe;
use crate::support::BoxError;

/// The nginx binary on `PATH` (or in the usual sbin folders), if any.
pub(crate) fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
}

/// `nginx/1.24.0` (what `nginx -v` prints), if it runs.
pub(crate) fn version(bin: &Path) -> Option<String> {
    let out = Command::new(bin).arg("-v").output().ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text.lines().next()?.trim();
    Some(line.trim_start_matches("nginx version:").trim().to_owned())
}

/// A running nginx; stopped, and its directory removed, on drop.
#[derive(Debug)]
pub(crate) struct Nginx {
    bin: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
    workers: Vec<u32>,
    /// The port that streams request bodies (`proxy_request_buffering off`).
    pub(crate) streaming: SocketAddr,
    /// The port with nginx's default request buffering.
    pub(crate) buffering: SocketAddr,
}

impl Nginx {
    /// Starts `bin` with `workers` worker processes in front of `origins` and waits until
    /// both ports accept connections.
    pub(crate) async fn start(
        bin: &Path,
        origins: &[SocketAddr],
        workers: usize,
    ) -> Result<Self, BoxError> {
        let streaming = free_port()?;
        let buffering = free_port()?;
        let dir = std::env::temp_dir().join(format!(
            "replay-proxy-bench-nginx-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        fs::create_dir(&dir)?;
        // From here on, dropping `nginx` cleans up.
        let mut nginx = Self {
            bin: bin.to_owned(),
            dir,
            child: None,
            workers: Vec::new(),
            streaming,
            buffering,
        };
        fs::write(
            nginx.conf(),
            config(&nginx.dir, origins, workers, streaming, buffering),
        )?;
        let stderr = File::create(nginx.dir.join("stderr.log"))?;
        let child = nginx
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()?;
        nginx.child = Some(child);
        nginx.wait_ready().await?;
        let master = nginx.child.as_ref().map_or(0, Child::id);
        nginx.workers = probe::children(master);
        Ok(nginx)
    }

    /// The master and worker processes.
    pub(crate) fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.child.iter().map(Child::id).collect();
        pids.extend(&self.workers);
        pids
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("nginx.conf")
    }

    /// `nginx -p <dir> -e <dir>/error.log -c <dir>/nginx.conf`: nothing outside the temp
    /// directory (`-e` keeps nginx from opening its compiled-in error log first).
    fn command(&self) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .arg("-p")
            .arg(&self.dir)
            .arg("-e")
            .arg(self.dir.join("error.log"))
            .arg("-c")
            .arg(self.conf());
        command
    }

    async fn wait_ready(&mut self) -> Result<(), BoxError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    return Err(format!("nginx exited ({status}): {}", self.logs()).into());
                }
            }
            let both = tokio::net::TcpStream::connect(self.streaming).await.is_ok()
                && tokio::net::TcpStream::connect(self.buffering).await.is_ok();
            if both {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("nginx did not listen within 5 s: {}", self.logs()).into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The last lines nginx logged, for error messages.
    fn logs(&self) -> String {
        let mut text = String::new();
        for name in ["stderr.log", "error.log"] {
            if let Ok(log) = fs::read_to_string(self.dir.join(name)) {
                text.push_str(log.trim());
                text.push(' ');
            }
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Fast shutdown through the pid file (SIGTERM to the master, which stops the
        // workers); SIGKILL if it is still there after 5 s.
        let _ = self
            .command()
            .args(["-s", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Workers orphaned by a killed master.
        let master = child.id();
        for pid in &self.workers {
            let orphaned = fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| cmd.contains("nginx"))
                && !probe::children(master).contains(pid);
            if orphaned {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> std::io::Result<SocketAddr> {
    StdTcpListener::bind("127.0.0.1:0")?.local_addr()
}

fn config(
    dir: &Path,
    origins: &[SocketAddr],
    workers: usize,
    streaming: SocketAddr,
    buffering: SocketAddr,
) -> String {
    let dir = dir.display();
    let mut servers = String::new();
    for origin in origins {
        let _ = writeln!(servers, "        server {origin};");
    }
    let location = |request_buffering: &str| {
        format!(
            "        location / {{\n\
             \x20           proxy_pass http://origins;\n\
             \x20           proxy_http_version 1.1;\n\
             \x20           proxy_set_header Connection \"\";\n\
             {request_buffering}\
             \x20       }}\n"
        )
    };
    format!(
        "daemon off;\n\
         master_process on;\n\
         worker_processes {workers};\n\
         pid {dir}/nginx.pid;\n\
         error_log {dir}/error.log warn;\n\
         events {{\n\
         \x20   worker_connections 1024;\n\
         }}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   client_max_body_size 0;\n\
         \x20   client_body_temp_path {dir}/client_body;\n\
         \x20   proxy_temp_path {dir}/proxy;\n\
         \x20   fastcgi_temp_path {dir}/fastcgi;\n\
         \x20   uwsgi_temp_path {dir}/uwsgi;\n\
         \x20   scgi_temp_path {dir}/scgi;\n\
         \x20   upstream origins {{\n\
         {servers}\
         \x20       keepalive 32;\n\
         \x20   }}\n\
         \x20   server {{\n\
         \x20       listen {streaming};\n\
         {streaming_location}\
         \x20   }}\n\
         \x20   server {{\n\
         \x20       listen {buffering};\n\
         {buffering_location}\
         \x20   }}\n\
         }}\n",
        streaming_location = location("            proxy_request_buffering off;\n"),
        buffering_location = location(""),
    )
}
