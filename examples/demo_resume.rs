//! tower-handoff's resumable requests (docs/PROTOCOL.md part B) in one process: uploads
//! whose connections are cut again and again finish with one handler run each, and send
//! little more than their own bytes.
//!
//! Starts the upload origin (resumable layer on) and, for each upload, a fault-injecting
//! relay in front of it that cuts the upload's connections `--cuts` times, each at an offset
//! drawn from `--seed` (below a `1/(cuts + 1)` share of the file, so that every cut falls
//! inside a body for both clients). Then it runs `--uploads` concurrent uploads of `--size-mib` MiB files
//! twice, each time through fresh relays with the same cut plan:
//!
//! 1. with `handoff_client::resume::Resume` over hyper-util's client: after each cut it asks
//!    the origin how much it holds and sends only the rest (`HEAD`, then `PATCH`);
//! 2. with the same hyper-util client alone, which can only send the whole `POST` again,
//!    up to `--max-attempts` times.
//!
//! Every origin answer (`{"server","bytes","sha256"}`) is checked against the file. The
//! table compares the runs: uploads verified, resumes and restarts, bytes sent, bytes
//! re-sent, upload handler runs per upload on the origin, wall time.
//!
//! ```text
//! cargo run --example demo_resume
//! cargo run --release --example demo_resume -- --uploads 16 --size-mib 32 --cuts 5 --seed 7
//! ```
//!
//! Exits non-zero if, with the resume layer, an upload fails, an answer is wrong, or the
//! origin ran the upload handler other than once per upload.

#[path = "support/mod.rs"]
mod support;

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use futures_util::StreamExt as _;
use handoff_client::resume::{
    FileSource, Resume, ResumeLayer, ResumeReport, Source as _, Upload, UploadBody,
};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{Request, Uri};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, StreamBody};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};
use support::origin::{spawn_origin, OriginConfig, OriginStats, UploadReply};
use support::pattern::{hex, Pattern};
use support::relay::{Cut, Plan, Relay};
use support::BoxError;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

/// Uploads cut at random offsets, with the resume layer and with a plain client that
/// starts over.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Concurrent uploads.
    #[arg(long, default_value_t = 8)]
    uploads: u64,
    /// Size of each upload, MiB.
    #[arg(long, value_name = "MIB", default_value_t = 8)]
    size_mib: u64,
    /// Connections cut per upload.
    #[arg(long, default_value_t = 3)]
    cuts: usize,
    /// Seed of the cut offsets and of the files' bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Attempts the plain client makes per upload before it gives up.
    #[arg(long, value_name = "N", default_value_t = 10)]
    max_attempts: u32,
}

/// Everything stops after this, whatever happens.
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// The smallest cut offset: past the request head and the first body chunks.
const MIN_CUT: u64 = 64 * 1024;
/// The plain client's pause before its first re-send, doubling for each next one up to
/// [`PLAIN_RETRY_MAX`]: the resume layer's default backoff, without its jitter.
const PLAIN_RETRY_MIN: Duration = Duration::from_millis(50);
const PLAIN_RETRY_MAX: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    support::logging::init("error");
    support::cli::exit_code_within("demo_resume", RUN_LIMIT, run(args)).await
}

/// The two clients compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `Resume` over hyper-util's client.
    Resume,
    /// hyper-util's client, re-sending the whole upload after each failure.
    Plain,
}

/// One upload to make: the file, its digest, and where its connections are cut.
#[derive(Debug, Clone)]
struct Job {
    file: FileSource,
    len: u64,
    sha256: String,
    /// Where the relay cuts the upload's connections, in order (see [`cutting_relay`]):
    /// after this many bytes from the client.
    cuts: Arc<Vec<u64>>,
}

async fn run(args: Args) -> Result<ExitCode, BoxError> {
    let len = args.size_mib.max(1) * 1024 * 1024;
    println!(
        "tower-handoff resume demo: {} uploads x {} MiB, each cut {} times at random offsets \
         (seed {}) by a relay in front of the origin",
        args.uploads,
        len >> 20,
        args.cuts,
        args.seed
    );
    let dir = tempfile::tempdir()?;
    let jobs = prepare(dir.path(), &args, len).await?;

    println!("  with the resume layer ...");
    let resumed = run_mode(Mode::Resume, &jobs, args.max_attempts).await?;
    println!("  with a plain client that starts over ...");
    let plain = run_mode(Mode::Plain, &jobs, args.max_attempts).await?;
    println!();

    let planned = jobs.iter().map(|job| job.cuts.len() as u64).sum();
    print_table(&[&resumed, &plain], args.uploads, len, planned);

    let mut problems = Vec::new();
    for (n, outcome) in resumed.outcomes.iter().enumerate() {
        if let Err(reason) = &outcome.verdict {
            problems.push(format!("upload {n}: {reason}"));
        }
    }
    if resumed.handler_runs != args.uploads || resumed.handlers_completed != args.uploads {
        problems.push(format!(
            "the origin entered the upload handler {} times and completed it {} times for {} \
             uploads",
            resumed.handler_runs, resumed.handlers_completed, args.uploads
        ));
    }
    for (n, outcome) in plain.outcomes.iter().enumerate() {
        if let Err(reason) = &outcome.verdict {
            println!("plain client, upload {n}: {reason}");
        }
    }
    if problems.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    println!();
    for problem in &problems {
        println!("FAIL (resume layer): {problem}");
    }
    Ok(ExitCode::FAILURE)
}

/// Writes the upload files (pattern bytes) and draws each upload's cuts.
async fn prepare(dir: &Path, args: &Args, len: u64) -> Result<Vec<Job>, BoxError> {
    // Below a `1/(cuts + 1)` share of the file, so that the cuts never use up the body: each
    // connection of the resumed upload, starting from the server's offset, still carries
    // enough bytes to reach its cut.
    let max_cut = (len / (args.cuts as u64 + 1)).max(MIN_CUT.min(len / 2) + 1);
    let min_cut = MIN_CUT.min(max_cut - 1);
    let mut rng = Pattern::new(args.seed);
    let mut jobs = Vec::new();
    for n in 0..args.uploads {
        let path = dir.join(format!("upload-{n}.bin"));
        let seed = args.seed.wrapping_mul(1_000_003).wrapping_add(n);
        let sha256 = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || write_pattern(&path, seed, len)).await??
        };
        let cuts = (0..args.cuts)
            .map(|_| min_cut + draw(&mut rng) % (max_cut - min_cut))
            .collect();
        jobs.push(Job {
            file: FileSource::open(path).await?,
            len,
            sha256,
            cuts: Arc::new(cuts),
        });
    }
    Ok(jobs)
}

/// Writes `len` pattern bytes from `seed` to `path`; returns their SHA-256.
fn write_pattern(path: &Path, seed: u64, len: u64) -> io::Result<String> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut pattern = Pattern::new(seed);
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left).map_or(buf.len(), |left| left.min(buf.len()));
        pattern.fill(&mut buf[..n]);
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(hex(&hasher.finalize()))
}

/// The next pseudo-random number of `rng`.
fn draw(rng: &mut Pattern) -> u64 {
    let mut word = [0; 8];
    rng.fill(&mut word);
    u64::from_le_bytes(word)
}

/// How one upload went.
#[derive(Debug)]
struct Outcome {
    /// `Ok` when the origin answered with the file's length and digest.
    verdict: Result<(), String>,
    /// `PATCH`es that completed the body.
    resumes: u64,
    /// Times the upload was sent again from its first byte.
    restarts: u64,
    /// Body bytes handed to the connection more than once.
    resent: u64,
}

/// How one run went.
#[derive(Debug)]
struct RunReport {
    mode: Mode,
    outcomes: Vec<Outcome>,
    /// Connections the relays cut.
    cuts: u64,
    /// Bytes the relays carried from the client to the origin (HTTP heads included).
    wire_bytes: u64,
    /// Upload handlers the origin entered, and those that produced a response.
    handler_runs: u64,
    handlers_completed: u64,
    wall: Duration,
}

/// Every upload at once, each through its own relay, against a fresh origin.
async fn run_mode(mode: Mode, jobs: &[Job], max_attempts: u32) -> Result<RunReport, BoxError> {
    let stats = OriginStats::default();
    let cfg = OriginConfig::new("origin")
        .replay(false)
        .drain_timeout(Duration::from_secs(2));
    let origin = spawn_origin(TcpListener::bind("127.0.0.1:0").await?, cfg, stats.clone()).await?;
    let mut relays = Vec::new();
    for job in jobs {
        relays.push(cutting_relay(origin.addr(), job.cuts.clone()).await?);
    }

    let started = Instant::now();
    let resume: Resume<Client<HttpConnector, UploadBody>> = tower::Layer::layer(
        &ResumeLayer::new().deadline(Duration::from_secs(60)),
        Client::builder(TokioExecutor::new()).build_http(),
    );
    let plain: PlainClient = Client::builder(TokioExecutor::new()).build_http();
    let tasks: Vec<_> = jobs
        .iter()
        .zip(&relays)
        .map(|(job, relay)| {
            let uri: Uri = format!("http://{}/upload", relay.addr())
                .parse()
                .expect("a valid URI");
            let job = job.clone();
            let (resume, plain) = (resume.clone(), plain.clone());
            tokio::spawn(async move {
                match mode {
                    Mode::Resume => resume_upload(resume, uri, &job).await,
                    Mode::Plain => plain_upload(&plain, uri, &job, max_attempts).await,
                }
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await?);
    }
    let wall = started.elapsed();

    let (mut cuts, mut wire_bytes) = (0, 0);
    for relay in &relays {
        let relayed = relay.stats();
        cuts += relayed.cuts;
        wire_bytes += relayed.upstream_bytes;
        relay.shutdown();
    }
    drop(relays);
    origin.wait().await;
    Ok(RunReport {
        mode,
        outcomes,
        cuts,
        wire_bytes,
        handler_runs: stats.uploads_started(),
        handlers_completed: stats.uploads_completed(),
        wall,
    })
}

/// A relay that cuts the connections of one upload at `offsets`, in order: each accepted
/// connection is cut at the first offset no cut has used yet (after that many bytes from
/// the client), or relayed faithfully once every offset is used.
///
/// Counting cuts rather than connections keeps the plan the same for both clients: a plain
/// client opens one connection per attempt, but the resume layer's `HEAD` may leave its
/// connection idle while the `PATCH` after it goes on a fresh one (hyper-util's pool); that
/// `HEAD` connection never carries enough bytes to reach its cut and uses up no offset.
async fn cutting_relay(origin: SocketAddr, offsets: Arc<Vec<u64>>) -> io::Result<Arc<Relay>> {
    let this: Arc<OnceLock<Weak<Relay>>> = Arc::default();
    let cuts_so_far = {
        let this = this.clone();
        move || {
            this.get()
                .and_then(Weak::upgrade)
                .map_or(0, |relay| relay.stats().cuts)
        }
    };
    let plan: Plan = Arc::new(move |_connection: usize| {
        let next = usize::try_from(cuts_so_far()).unwrap_or(usize::MAX);
        offsets.get(next).map(|&at| Cut::upstream(at))
    });
    let relay = Arc::new(Relay::start(origin, plan).await?);
    // Connections accepted before this see no cut yet, which is right.
    let _ = this.set(Arc::downgrade(&relay));
    Ok(relay)
}

/// One upload with the resume layer.
async fn resume_upload(
    client: Resume<Client<HttpConnector, UploadBody>>,
    uri: Uri,
    job: &Job,
) -> Outcome {
    let request = Request::post(uri)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(Upload::from(job.file.clone()))
        .expect("a valid request");
    let (verdict, report) = match client.oneshot(request).await {
        Ok(response) => {
            let report = response
                .extensions()
                .get::<ResumeReport>()
                .copied()
                .unwrap_or_default();
            let status = response.status();
            let verdict = match response.into_body().collect().await {
                Ok(body) => check(job, status, &body.to_bytes()),
                Err(error) => Err(format!("reading the answer: {error}")),
            };
            (verdict, report)
        }
        Err(error) => (Err(error.to_string()), ResumeReport::default()),
    };
    Outcome {
        verdict,
        resumes: report.resumes.into(),
        restarts: report.restarts.into(),
        resent: report.bytes_resent,
    }
}

/// The plain client: hyper-util's, with a streamed body whose bytes are counted.
type PlainClient = Client<HttpConnector, UnsyncBoxBody<Bytes, BoxError>>;

/// One upload without the layer: the whole `POST` again after every failure, up to
/// `max_attempts` times.
async fn plain_upload(client: &PlainClient, uri: Uri, job: &Job, max_attempts: u32) -> Outcome {
    let mut restarts = 0;
    let mut resent = 0;
    let mut last_error = String::from("no attempt made");
    for attempt in 1..=max_attempts.max(1) {
        if attempt > 1 {
            let pause = PLAIN_RETRY_MIN.saturating_mul(1 << (attempt - 2).min(16));
            tokio::time::sleep(pause.min(PLAIN_RETRY_MAX)).await;
        }
        let sent = Arc::new(AtomicU64::new(0));
        let outcome = plain_attempt(client, &uri, job, sent.clone()).await;
        match outcome {
            Ok((status, body)) if status.is_success() => {
                return Outcome {
                    verdict: check(job, status, &body),
                    resumes: 0,
                    restarts,
                    resent,
                }
            }
            Ok((status, _)) => last_error = format!("the origin answered {status}"),
            Err(error) => last_error = error.to_string(),
        }
        if attempt < max_attempts {
            restarts += 1;
            resent += sent.load(Ordering::Relaxed);
        }
    }
    Outcome {
        verdict: Err(format!(
            "gave up after {max_attempts} attempts: {last_error}"
        )),
        resumes: 0,
        restarts,
        resent,
    }
}

/// One `POST` of the whole file; counts in `sent` the body bytes handed to the connection.
async fn plain_attempt(
    client: &PlainClient,
    uri: &Uri,
    job: &Job,
    sent: Arc<AtomicU64>,
) -> Result<(http::StatusCode, Bytes), BoxError> {
    let chunks = job.file.read_from(0)?.map(move |chunk| {
        chunk.map(|chunk| {
            sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            Frame::data(chunk)
        })
    });
    let request = Request::post(uri.clone())
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, job.len)
        .body(UnsyncBoxBody::new(StreamBody::new(chunks)))?;
    let response = client.request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Whether the origin's answer names the file's length and digest.
fn check(job: &Job, status: http::StatusCode, body: &[u8]) -> Result<(), String> {
    if !status.is_success() {
        let text = String::from_utf8_lossy(body);
        return Err(format!("the origin answered {status}: {}", text.trim()));
    }
    let reply: UploadReply = serde_json::from_slice(body)
        .map_err(|error| format!("the answer is not an upload reply ({error})"))?;
    if reply.bytes != job.len || reply.sha256 != job.sha256 {
        return Err(format!(
            "wrong answer: {} bytes, sha256 {} (sent {} bytes, sha256 {})",
            reply.bytes, reply.sha256, job.len, job.sha256
        ));
    }
    Ok(())
}

fn print_table(runs: &[&RunReport], uploads: u64, len: u64, planned_cuts: u64) {
    let total = uploads * len;
    let column = |run: &RunReport| {
        let ok = run.outcomes.iter().filter(|o| o.verdict.is_ok()).count();
        let resumes: u64 = run.outcomes.iter().map(|o| o.resumes).sum();
        let restarts: u64 = run.outcomes.iter().map(|o| o.restarts).sum();
        let resent: u64 = run.outcomes.iter().map(|o| o.resent).sum();
        vec![
            match run.mode {
                Mode::Resume => "resume layer".to_owned(),
                Mode::Plain => "plain client".to_owned(),
            },
            format!("{ok}/{}", run.outcomes.len()),
            format!("{}/{planned_cuts}", run.cuts),
            resumes.to_string(),
            restarts.to_string(),
            format!("{} / {}", fmt_mib(run.wire_bytes), fmt_mib(total)),
            fmt_mib(run.wire_bytes.saturating_sub(total)),
            fmt_mib(resent),
            format!(
                "{:.2} ({} runs)",
                run.handler_runs as f64 / uploads.max(1) as f64,
                run.handler_runs
            ),
            format!("{:.2} s", run.wall.as_secs_f64()),
        ]
    };
    let names = [
        "",
        "uploads ok (answer verified)",
        "connections cut",
        "resumes (HEAD + PATCH)",
        "restarts from byte 0",
        "bytes sent / bytes of the uploads",
        "bytes re-sent",
        "bytes the client wrote again",
        "handler runs per upload",
        "wall time",
    ];
    let columns: Vec<Vec<String>> = runs.iter().map(|run| column(run)).collect();
    let name_width = names.iter().map(|n| n.len()).max().unwrap_or(0);
    let widths: Vec<usize> = columns
        .iter()
        .map(|c| c.iter().map(String::len).max().unwrap_or(0))
        .collect();
    let rule = "-".repeat(name_width + 2 + widths.iter().map(|w| w + 3).sum::<usize>());
    println!("{rule}");
    for (row, name) in names.iter().enumerate() {
        let mut line = format!("  {name:<name_width$}");
        for (column, width) in columns.iter().zip(&widths) {
            line.push_str(&format!("   {:>width$}", column[row]));
        }
        println!("{line}");
        if row == 0 {
            println!("{rule}");
        }
    }
    println!("{rule}");
    println!(
        "bytes sent: what the relays carried to the origin (HTTP heads included). Bytes the \
         client wrote\nagain: body bytes it handed to its socket more than once; most were \
         still in the kernel's\nsocket buffers when a cut came and never reached the relay."
    );
}

fn fmt_mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
