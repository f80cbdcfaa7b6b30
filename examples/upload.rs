//! `upload <FILE> <URL>`: uploads a file with tower-handoff's resume layer
//! (docs/PROTOCOL.md part B), so that a cut connection costs only the bytes that were in
//! flight, never the whole upload.
//!
//! The file goes as the body of a `POST` through `handoff_client::resume::Resume` over
//! hyper-util's legacy client (HTTP/1.1, `http://` URLs). It is read from disk in 64 KiB
//! chunks from the offset each attempt starts at ([`FileSource`]), never loaded whole. When
//! the connection fails, the layer asks the server how much it holds (`HEAD`) and sends the
//! rest (`PATCH`); if the answer is what got lost, it fetches the stored copy (`GET`).
//!
//! The server's response body goes to stdout. On stderr: a progress bar (only when stderr is
//! a terminal), one line for every resume (`resumed at 12.3 MiB (412.0 KiB re-sent)`), and a
//! one-line summary at the end. `--quiet` prints none of it. The exit status is 0 for a 2xx
//! answer; otherwise 1, with one line on stderr that starts with `upload:` (the server's
//! status and the first line of its answer, or why the upload could not be finished), or 2
//! for a bad command line.
//!
//! ```text
//! cargo run --example origin -- --listen 127.0.0.1:8081 &
//! head -c 50000000 /dev/urandom > upload.bin
//! cargo run --example upload -- upload.bin http://127.0.0.1:8081/upload
//! cargo run --example upload -- --header 'Authorization: Bearer t' --deadline 60 upload.bin http://127.0.0.1:8081/upload
//! ```
//!
//! A server without resume support gets a plain `POST` (with `Expect: 100-continue` and
//! `Prefer: resume`, which it may ignore).

#[path = "support/mod.rs"]
mod support;

use std::error::Error;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use handoff_client::resume::{
    FileSource, Resume, ResumeError, ResumeEvent, ResumeLayer, ResumeReport, Upload, UploadBody,
};
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Request, Uri};
use http_body_util::BodyExt;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use support::cli::parse_secs;
use tower::ServiceExt as _;

/// Uploads FILE to URL with a POST that survives cut connections (Prefer: resume): the
/// upload goes on from the server's offset instead of starting over.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The file to upload.
    file: PathBuf,
    /// Where to POST it (http:// only).
    url: Uri,
    /// An extra request header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<HeaderArg>,
    /// Seconds the whole upload may take, every retry included.
    #[arg(long, value_name = "SECS", default_value = "600", value_parser = parse_secs)]
    deadline: Duration,
    /// Failed exchanges (cut connections, 5xx) the upload may meet before it gives up.
    #[arg(long, value_name = "N", default_value_t = 10)]
    retries: u32,
    /// No progress bar, no progress lines, no summary (errors are still reported).
    #[arg(long, short)]
    quiet: bool,
}

/// One `--header`.
#[derive(Debug, Clone)]
struct HeaderArg {
    name: HeaderName,
    value: HeaderValue,
}

fn parse_header(text: &str) -> Result<HeaderArg, String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not `Name: value`"))?;
    let name = HeaderName::try_from(name.trim()).map_err(|e| format!("{name:?}: {e}"))?;
    let value = HeaderValue::try_from(value.trim()).map_err(|e| format!("{value:?}: {e}"))?;
    Ok(HeaderArg { name, value })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // Quiet unless RUST_LOG asks: stderr carries the progress and the one error line.
    support::logging::init("off");
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("upload: {}", reason.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

/// Uploads the file; `Err` is the reason of the failure, one line.
async fn run(args: Args) -> Result<(), String> {
    if args.url.scheme_str() != Some("http") || args.url.authority().is_none() {
        return Err(format!("{}: only http:// URLs are supported", args.url));
    }
    let file = FileSource::open(&args.file)
        .await
        .map_err(|error| format!("{}: {error}", args.file.display()))?;
    let len = file.len();
    let progress = Progress::new(len, args.quiet);

    let observer = progress.clone();
    let layer = ResumeLayer::new()
        .deadline(args.deadline)
        .max_retries(args.retries)
        .on_event(move |event| observer.on_event(event));
    let client: Client<HttpConnector, UploadBody> =
        Client::builder(TokioExecutor::new()).build_http();
    let service: Resume<_> = tower::Layer::layer(&layer, client);

    let mut request = Request::post(args.url.clone())
        .body(Upload::from(file))
        .map_err(|error| error.to_string())?;
    for HeaderArg { name, value } in args.headers {
        request.headers_mut().append(name, value);
    }
    if !request.headers().contains_key(CONTENT_TYPE) {
        let octets = HeaderValue::from_static("application/octet-stream");
        request.headers_mut().insert(CONTENT_TYPE, octets);
    }

    let started = Instant::now();
    let outcome = service.oneshot(request).await;
    progress.finish();
    let response = outcome.map_err(|error| progress.explain(&error))?;
    let status = response.status();
    let report = response
        .extensions()
        .get::<ResumeReport>()
        .copied()
        .unwrap_or_default();
    let body: Bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|error| format!("reading the answer: {}", chain(&*error)))?
        .to_bytes();
    let elapsed = started.elapsed();

    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        let first = text.lines().map(str::trim).find(|l| !l.is_empty());
        return Err(match first {
            Some(line) => format!("server answered {}: {}", status.as_u16(), clip(line)),
            None => format!("server answered {status}"),
        });
    }
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_all(&body).and_then(|()| {
        // A shell prompt (or the summary) should not land on the answer's last line.
        if stdout.is_terminal() && !body.ends_with(b"\n") {
            stdout.write_all(b"\n")?;
        }
        stdout.flush()
    });
    written.map_err(|error| format!("writing the answer: {error}"))?;
    drop(stdout);
    progress.summary(len, elapsed, &report);
    Ok(())
}

/// The progress display: a bar on a terminal, plain lines otherwise, nothing with
/// `--quiet`. Clones share it (the layer's observer holds one).
#[derive(Debug, Clone)]
struct Progress {
    /// `None` with `--quiet`.
    bar: Option<ProgressBar>,
    /// The last interruption the layer reported, to say why a deadline passed.
    last_error: Arc<Mutex<Option<String>>>,
}

impl Progress {
    fn new(len: u64, quiet: bool) -> Self {
        let bar = (!quiet).then(|| {
            // Hidden when stderr is not a terminal (indicatif checks).
            let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{elapsed:>4} [{wide_bar}] {binary_bytes}/{binary_total_bytes} \
                 {binary_bytes_per_sec} eta {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        Self {
            bar,
            last_error: Arc::default(),
        }
    }

    /// Called by the resume layer for every step (on the request's task).
    fn on_event(&self, event: &ResumeEvent) {
        if let ResumeEvent::Interrupted { error, .. } = event {
            *self.last_error.lock().expect("last error lock") = Some(error.clone());
        }
        let Some(bar) = &self.bar else { return };
        match event {
            ResumeEvent::Sent { offset } => bar.set_position(*offset),
            ResumeEvent::Resuming { from, resent } => {
                self.line(&format!(
                    "resumed at {} ({} re-sent)",
                    fmt_bytes(*from),
                    fmt_bytes(*resent)
                ));
                bar.set_position(*from);
            }
            // A retry after nothing was sent (a refused connection) is not worth a line.
            ResumeEvent::Restarting { resent } => {
                if *resent > 0 {
                    self.line(&format!(
                        "restarted from the first byte ({} re-sent)",
                        fmt_bytes(*resent)
                    ));
                }
                bar.set_position(0);
            }
            ResumeEvent::Fetching => self.line("fetching the stored response"),
            _ => {}
        }
    }

    /// A line above the bar, or on its own when the bar is not drawn.
    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(text),
            Some(_) => eprintln!("{text}"),
            None => {}
        }
    }

    /// Removes the bar, before the answer and the summary are printed.
    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// The failure in one line, with the last interruption when the deadline ended it.
    fn explain(&self, error: &ResumeError) -> String {
        let mut text = chain(error);
        if error.is_deadline() {
            if let Some(last) = self.last_error.lock().expect("last error lock").as_deref() {
                text.push_str(&format!("; last error: {last}"));
            }
        }
        text
    }

    fn summary(&self, len: u64, elapsed: Duration, report: &ResumeReport) {
        if self.bar.is_none() {
            return;
        }
        let mut text = format!(
            "uploaded {} ({len} bytes) in {:.2} s: {}, {}, {} re-sent ({} bytes)",
            fmt_bytes(len),
            elapsed.as_secs_f64(),
            count(report.attempts, "attempt"),
            count(report.resumes, "resume"),
            fmt_bytes(report.bytes_resent),
            report.bytes_resent,
        );
        if report.restarts > 0 {
            text.push_str(&format!(", {}", count(report.restarts, "restart")));
        }
        if report.fetched {
            text.push_str(", answer fetched from the server's copy");
        }
        eprintln!("{text}");
    }
}

/// `3 resumes`, `1 resume`.
fn count(n: u32, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// `error` and its sources, each cause added unless the text already says it.
fn chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// At most 200 characters of a server's text.
fn clip(line: &str) -> String {
    match line.char_indices().nth(200) {
        Some((at, _)) => format!("{}...", &line[..at]),
        None => line.to_owned(),
    }
}

fn fmt_bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    const MIB: f64 = KIB * 1024.0;
    const GIB: f64 = MIB * 1024.0;
    let b = bytes as f64;
    if b >= GIB {
        format!("{:.2} GiB", b / GIB)
    } else if b >= MIB {
        format!("{:.1} MiB", b / MIB)
    } else if b >= KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{bytes} B")
    }
}
