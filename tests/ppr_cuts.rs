//! Connections cut at an arbitrary byte around a Partial POST Replay, over real TCP on
//! 127.0.0.1 (issue #3; `PROTOCOL.md` part A, intermediary 3 and 4).
//!
//! Four places where a connection breaks, each tried at every boundary (a deterministic
//! sweep) and at bytes that proptest picks:
//!
//! - a. the client's connection to the proxy, cut after byte k of the upload request;
//! - b. a raw origin's connection, cut after byte k of its `379` (head, chunked echo,
//!   terminator);
//! - c. the replayed request, cut after byte k by a middlebox in front of the second origin;
//! - d. the client's connection, cut right after its origin began shutting down (mid-echo).
//!
//! What must hold every time: the proxy answers within a bounded time, `502` when the echo or
//! the replay broke; no origin completes a request whose body it did not fully receive;
//! origins and proxy drain on shutdown; the proxy keeps serving; nothing panics. Each case
//! runs on a runtime of its own whose threads carry a unique name, so that a panic hook can
//! pin a panicking task (which tokio would otherwise just drop) on its case.

#[path = "../examples/support/mod.rs"]
mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::uri::Authority;
use http::{Request, StatusCode};
use http_body_util::channel::{Channel, Sender};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

use support::connections::Ended;
use support::origin::{spawn_origin, OriginConfig, OriginHandle, OriginStats, UploadReply};
use support::pattern::{expected_sha256, Pattern};
use support::proxy::{spawn_proxy, ProxyConfig, ProxyHandle};
use support::upload::upload;

/// Safety net for every wait: a hang fails the case instead of stalling the suite.
const LIMIT: Duration = Duration::from_secs(5);
/// How long origins and proxy may drain; a connection still open after it shows as
/// `Ended::Forced`.
const DRAIN: Duration = Duration::from_secs(2);
/// Far beyond [`LIMIT`]: a case that only ends through the echo timeout fails as a hang.
const ECHO_TIMEOUT: Duration = Duration::from_secs(60);

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // A failing case may take up to a few LIMITs: keep shrinking short.
        max_shrink_iters: 16,
        // No regression files next to the tests; proptest prints the failing input.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// One runtime per case, and the panics of its threads.

const THREAD_PREFIX: &str = "ppr-cuts-";
/// Names of the case threads on which a panic happened.
static PANICKED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(name) = std::thread::current().name() {
                if name.starts_with(THREAD_PREFIX) {
                    PANICKED
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(name.to_owned());
                }
            }
            previous(info);
        }));
    });
}

/// Runs `case` on a fresh two-thread runtime, shuts the runtime down, and fails if any of
/// its tasks panicked.
fn run_case(case: impl Future<Output = ()>) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    record_panics();
    let name = format!("{THREAD_PREFIX}{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(&name)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(case);
    runtime.shutdown_timeout(Duration::from_secs(1));
    let panics = PANICKED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|thread| **thread == name)
        .count();
    assert_eq!(panics, 0, "a task of this case panicked (message above)");
}

// ---------------------------------------------------------------------------------------
// Shared pieces.

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(LIMIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out: {what}"),
    }
}

async fn until(what: &str, ready: impl Fn() -> bool) {
    within(what, async {
        while !ready() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

/// An upload origin with the replay layer.
async fn origin(name: &str) -> (OriginHandle, OriginStats) {
    let stats = OriginStats::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = OriginConfig::new(name).drain_timeout(DRAIN);
    let origin = spawn_origin(listener, cfg, stats.clone()).await.unwrap();
    (origin, stats)
}

/// A proxy with the replay layer; `h2`: h2c to the origins.
async fn proxy(backends: &[SocketAddr], h2: bool) -> ProxyHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = ProxyConfig::with_addrs(backends.iter().copied())
        .h2(h2)
        .echo_timeout(ECHO_TIMEOUT)
        .drain_timeout(DRAIN);
    spawn_proxy(listener, cfg).await.unwrap()
}

async fn assert_proxy_drains(proxy: ProxyHandle, context: &str) {
    let ended = within("the proxy's shutdown", proxy.wait()).await;
    assert_eq!(ended, Ended::Drained, "{context}: the proxy drained");
}

async fn assert_origin_drains(origin: OriginHandle, context: &str) {
    let name = origin.name().to_owned();
    let ended = within("an origin's shutdown", origin.wait()).await;
    assert_eq!(ended, Ended::Drained, "{context}: origin {name} drained");
}

/// Requests an origin answered after receiving the whole body: `uploads_completed` counts
/// every answer, `body_errors` those whose body failed.
fn whole_bodies(stats: &OriginStats) -> u64 {
    stats.uploads_completed() - stats.body_errors()
}

fn pattern(seed: u64, len: usize) -> Bytes {
    let mut bytes = vec![0; len];
    Pattern::new(seed).fill(&mut bytes);
    bytes.into()
}

/// The head of an HTTP/1.1 upload with a body of `len` bytes. The proxy ignores `Host`.
fn upload_head(len: usize) -> String {
    format!(
        "POST /upload HTTP/1.1\r\nhost: proxy.test\r\n\
         content-type: application/octet-stream\r\ncontent-length: {len}\r\n\r\n"
    )
}

/// How a client's connection to the proxy ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientEnd {
    /// The client goes away: FIN.
    Fin,
    /// The client goes away: RST.
    Reset,
    /// The client stops sending (FIN) but reads whatever the proxy answers.
    HalfClose,
}

const CLIENT_ENDS: [ClientEnd; 3] = [ClientEnd::Fin, ClientEnd::Reset, ClientEnd::HalfClose];

fn any_client_end() -> impl Strategy<Value = ClientEnd> {
    prop::sample::select(CLIENT_ENDS.to_vec())
}

/// Ends the client's side of `stream`. A half-closed request is incomplete: the proxy may
/// close without a word, or answer 4xx/5xx, never 2xx, and never leave the client waiting.
async fn end_client(mut stream: TcpStream, how: ClientEnd, context: &str) {
    match how {
        ClientEnd::Fin => drop(stream),
        ClientEnd::Reset => {
            stream.set_zero_linger().expect("SO_LINGER");
            drop(stream);
        }
        ClientEnd::HalfClose => {
            let _ = stream.shutdown().await;
            let mut answer = Vec::new();
            // A reset still ends the wait; what was read before it counts.
            let _ = within("the proxy's answer", stream.read_to_end(&mut answer)).await;
            let answer = String::from_utf8_lossy(&answer);
            let status = answer.lines().next().unwrap_or_default();
            assert!(
                status.is_empty()
                    || status.starts_with("HTTP/1.1 4")
                    || status.starts_with("HTTP/1.1 5"),
                "{context}: an incomplete request was answered {status:?}"
            );
        }
    }
}

/// A normal upload through the proxy succeeds (right length and SHA-256); returns the
/// origin that answered.
async fn proxy_still_serves(proxy: SocketAddr, seed: u64, context: &str) -> String {
    let outcome = within(
        "a following upload",
        upload(proxy, 64 << 10, 16 << 10, Duration::ZERO, seed),
    )
    .await
    .expect("a response to the following upload");
    assert!(outcome.succeeded(), "{context}: {outcome:?}");
    outcome.server().unwrap_or_default().to_owned()
}

/// Where the end of a request or response head is, once it is all in `buf`.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

// ---------------------------------------------------------------------------------------
// a. The client's connection to the proxy is cut after byte k of its request.

const A_BODY: usize = 20_000;

fn a_request() -> (Vec<u8>, usize) {
    let head = upload_head(A_BODY);
    let mut request = head.clone().into_bytes();
    request.extend_from_slice(&pattern(1, A_BODY));
    (request, head.len())
}

/// Byte counts to cut after: never the whole request, so the body is never complete.
fn a_boundaries() -> Vec<usize> {
    let (request, head) = a_request();
    let len = request.len();
    vec![
        0,
        1,
        head - 3,
        head - 1,
        head,
        head + 1,
        head + A_BODY / 2,
        len - 1,
    ]
}

async fn client_cut(k: usize, how: ClientEnd, h2: bool) {
    let (origin, stats) = origin("a").await;
    let proxy = proxy(&[origin.addr()], h2).await;
    let (request, head) = a_request();
    let context = format!(
        "request cut after {k} of {} bytes (head {head}), {how:?}, h2 {h2}",
        request.len()
    );

    let mut client = within("connecting", TcpStream::connect(proxy.addr()))
        .await
        .unwrap();
    within("sending k bytes", client.write_all(&request[..k]))
        .await
        .unwrap();
    end_client(client, how, &context).await;

    let server = proxy_still_serves(proxy.addr(), 2, &context).await;
    assert_eq!(server, "a");

    assert_proxy_drains(proxy, &context).await;
    assert_origin_drains(origin, &context).await;
    // Counted once everything drained: the cut request can no longer complete late.
    assert_eq!(
        whole_bodies(&stats),
        1,
        "{context}: only the following upload reached the origin whole"
    );
}

#[test]
fn a_client_cut_at_every_boundary_leaves_the_proxy_healthy() {
    for k in a_boundaries() {
        for how in CLIENT_ENDS {
            for h2 in [false, true] {
                run_case(client_cut(k, how, h2));
            }
        }
    }
}

fn a_offsets() -> impl Strategy<Value = usize> {
    let (request, head) = a_request();
    // Half in the head, half in the body.
    prop_oneof![0..head, head..request.len()]
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn a_client_cut_at_an_arbitrary_byte_leaves_the_proxy_healthy(
        k in a_offsets(),
        how in any_client_end(),
        h2 in any::<bool>(),
    ) {
        run_case(client_cut(k, how, h2));
    }
}

// ---------------------------------------------------------------------------------------
// b and c: a hand-written origin that answers uploads with a 379.

/// What the client sends before the raw origin answers `379`.
const FIRST_PART: usize = 1000;
/// What the client sends after it.
const SECOND_PART: usize = 3000;
/// The echo goes out in two chunks, split here.
const ECHO_SPLIT: usize = 300;

/// A `379` echoing `echo` in two chunks, and where its parts are.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Replay379 {
    bytes: Vec<u8>,
    /// Length of the status line and headers.
    head: usize,
    /// Where each chunk's data begins.
    data_starts: [usize; 2],
    /// Just past the last echoed byte: from here on the whole echo went through.
    echo_end: usize,
}

impl Replay379 {
    /// With `terminated`, the last chunk follows the echo; otherwise the echo stays open
    /// (a faithful origin echoes whatever still arrives until the proxy ends the request).
    fn new(echo: &[u8], terminated: bool) -> Self {
        let mut bytes = format!(
            "HTTP/1.1 379 Partial POST Replay\r\ntransfer-encoding: chunked\r\n\
             connection: close\r\npseudo-echo-method: POST\r\npseudo-echo-path: /upload\r\n\
             echo-content-length: {}\r\n\r\n",
            FIRST_PART + SECOND_PART
        )
        .into_bytes();
        let head = bytes.len();
        let mut data_starts = [0; 2];
        let (first, second) = echo.split_at(ECHO_SPLIT.min(echo.len()));
        for (start, chunk) in data_starts.iter_mut().zip([first, second]) {
            bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            *start = bytes.len();
            bytes.extend_from_slice(chunk);
            bytes.extend_from_slice(b"\r\n");
        }
        let echo_end = bytes.len() - 2;
        if terminated {
            bytes.extend_from_slice(b"0\r\n\r\n");
        }
        Replay379 {
            bytes,
            head,
            data_starts,
            echo_end,
        }
    }
}

/// How the raw origin answers the upload.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// The whole `379` and its terminator, cut after byte k: a FIN, or with `true` a RST.
    /// Bytes written before a RST still arrive first (loopback does not reorder, and Linux
    /// hands out queued data before it reports the reset).
    CutAfter(usize, bool),
    /// The whole echo, then every further byte, until the proxy ends the exchange.
    Hold,
}

#[derive(Debug, Default)]
struct RawShared {
    uploads: AtomicUsize,
    /// Body bytes in the first echo it sent.
    echoed: AtomicUsize,
    answered: Notify,
}

/// An HTTP/1.1 origin that answers every upload with a `379` once it got [`FIRST_PART`]
/// bytes of body, and the proxy's health checks with `503` (it is shutting down).
struct RawOrigin {
    addr: SocketAddr,
    shared: Arc<RawShared>,
    _accept: JoinSet<()>,
}

impl RawOrigin {
    async fn spawn(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(RawShared::default());
        let mut accept = JoinSet::new();
        accept.spawn({
            let shared = shared.clone();
            async move {
                let mut connections = JoinSet::new();
                while let Ok((stream, _)) = listener.accept().await {
                    connections.spawn(serve_raw(stream, answer, shared.clone()));
                }
            }
        });
        RawOrigin {
            addr,
            shared,
            _accept: accept,
        }
    }

    fn uploads(&self) -> usize {
        self.shared.uploads.load(Ordering::SeqCst)
    }

    fn echoed(&self) -> usize {
        self.shared.echoed.load(Ordering::SeqCst)
    }
}

async fn serve_raw(mut stream: TcpStream, answer: Answer, shared: Arc<RawShared>) {
    let mut buf = Vec::new();
    loop {
        while head_end(&buf).is_none() {
            let mut chunk = [0; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = head_end(&buf).unwrap_or_default();
        let is_get = buf.starts_with(b"GET ");
        buf.drain(..head);
        if is_get {
            let unavailable = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
            if stream.write_all(unavailable).await.is_err() {
                return;
            }
            continue;
        }
        shared.uploads.fetch_add(1, Ordering::SeqCst);
        while buf.len() < FIRST_PART {
            let mut chunk = [0; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        // Everything received is echoed (the client sends no more until the 379 is out).
        shared.echoed.store(buf.len(), Ordering::SeqCst);
        match answer {
            Answer::CutAfter(k, reset) => {
                let response = Replay379::new(&buf, true);
                let k = k.min(response.bytes.len());
                let _ = stream.write_all(&response.bytes[..k]).await;
                if reset {
                    stream.set_zero_linger().expect("SO_LINGER");
                } else {
                    // Nothing is left unread, so this is a clean FIN right after byte k.
                    let _ = stream.shutdown().await;
                }
                drop(stream);
                shared.answered.notify_one();
            }
            Answer::Hold => {
                let response = Replay379::new(&buf, false);
                if stream.write_all(&response.bytes).await.is_err() {
                    return;
                }
                shared.answered.notify_one();
                // Then every further byte, until the proxy ends the exchange (part A,
                // server 4).
                let mut chunk = [0; 4096];
                while let Ok(n @ 1..) = stream.read(&mut chunk).await {
                    let mut framed = format!("{n:x}\r\n").into_bytes();
                    framed.extend_from_slice(&chunk[..n]);
                    framed.extend_from_slice(b"\r\n");
                    if stream.write_all(&framed).await.is_err() {
                        return;
                    }
                }
            }
        }
        return;
    }
}

/// Starts an upload of FIRST_PART + SECOND_PART bytes whose body the test feeds by hand;
/// the task yields the status and body of the answer.
fn start_upload(proxy: SocketAddr) -> (Sender<Bytes>, JoinHandle<(StatusCode, Bytes)>) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Channel<Bytes>>();
    let (sender, body) = Channel::new(4);
    let request = Request::post(format!("http://{proxy}/upload"))
        .header(CONTENT_LENGTH, FIRST_PART + SECOND_PART)
        .body(body)
        .unwrap();
    let answer = tokio::spawn(async move {
        let response = client.request(request).await.expect("the proxy answered");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("the answer's body");
        (status, body.to_bytes())
    });
    (sender, answer)
}

/// Runs one upload whose first part goes to the raw origin: sends the first part, waits for
/// the 379 (or its cut) to be dealt with, sends the rest, and returns the answer.
async fn upload_through(proxy: &ProxyHandle, raw: &RawOrigin, body: &Bytes) -> (StatusCode, Bytes) {
    let (mut sender, answer) = start_upload(proxy.addr());
    within(
        "sending the first part",
        sender.send_data(body.slice(..FIRST_PART)),
    )
    .await
    .expect("the proxy takes the first part");
    within("the raw origin's 379", raw.shared.answered.notified()).await;
    // Until the proxy has seen the 379, it forwards whatever the client sends to the raw
    // origin, whose echo holds only the first part: let the proxy stop first.
    let stats = proxy.stats();
    until("the proxy replays or answers", || {
        stats.replays() > 0 || answer.is_finished()
    })
    .await;
    // The channel has room for it: this does not wait for the proxy. The proxy may have
    // given up on the request already, which is fine.
    let _ = within(
        "sending the rest",
        sender.send_data(body.slice(FIRST_PART..)),
    )
    .await;
    drop(sender);
    within("the proxy's answer", answer)
        .await
        .expect("the client task")
}

// ---------------------------------------------------------------------------------------
// b. The raw origin's 379 is cut after byte k.

fn b_response() -> Replay379 {
    Replay379::new(&[0; FIRST_PART], true)
}

/// Around the head's end, each chunk's size line and data, the echo's end, the terminator.
fn b_boundaries() -> Vec<usize> {
    let r = b_response();
    let [first, second] = r.data_starts;
    let first_end = first + ECHO_SPLIT;
    let second_size_line = first_end + 2;
    vec![
        0,
        r.head - 1,
        r.head,
        first - 1,
        first,
        first + 1,
        first_end,
        second_size_line,
        second,
        r.echo_end - 1,
        r.echo_end,
        r.echo_end + 1,
        r.bytes.len() - 1,
        r.bytes.len(),
    ]
}

async fn echo_cut(k: usize, reset: bool) {
    let raw = RawOrigin::spawn(Answer::CutAfter(k, reset)).await;
    let (good, good_stats) = origin("good").await;
    let proxy = proxy(&[raw.addr, good.addr()], false).await;
    let layout = b_response();
    let context = format!(
        "379 cut after {k} of {} bytes (head {}, echo complete at {}), reset {reset}",
        layout.bytes.len(),
        layout.head,
        layout.echo_end
    );

    let body = pattern(3, FIRST_PART + SECOND_PART);
    let (status, answer) = upload_through(&proxy, &raw, &body).await;
    let stats = proxy.stats();
    if k < layout.head {
        // No 379 at all: an upstream error on the first attempt, nothing was replayed.
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{context}: {answer:?}");
        assert_eq!(stats.replays(), 0, "{context}");
    } else if k < layout.echo_end {
        // A 379 whose echo ends short: part A, intermediary 4.
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{context}: {answer:?}");
        assert_eq!((stats.replays(), stats.failed()), (1, 1), "{context}");
    } else {
        // Every echoed byte arrived; the missing tail is of no use to the proxy.
        assert_eq!(status, StatusCode::OK, "{context}: {answer:?}");
        let reply: UploadReply = serde_json::from_slice(&answer).expect("an upload answer");
        assert_eq!(reply.server, "good", "{context}");
        assert_eq!(reply.bytes, body.len() as u64, "{context}");
        assert_eq!(
            reply.sha256,
            expected_sha256(3, body.len() as u64),
            "{context}"
        );
        assert_eq!((stats.replays(), stats.failed()), (1, 0), "{context}");
    }
    assert_eq!(
        raw.uploads(),
        1,
        "{context}: one upload reached the raw origin"
    );
    assert_eq!(
        raw.echoed(),
        FIRST_PART,
        "{context}: the 379 is laid out as expected"
    );

    assert_proxy_drains(proxy, &context).await;
    assert_origin_drains(good, &context).await;
    if k < layout.head {
        assert_eq!(
            good_stats.uploads_started(),
            0,
            "{context}: nothing replayed"
        );
    }
    assert_eq!(
        whole_bodies(&good_stats),
        u64::from(k >= layout.echo_end),
        "{context}: the good origin completes only a replay with the whole echo"
    );
}

#[test]
fn b_a_379_cut_at_every_boundary_gives_502_unless_the_echo_was_whole() {
    for k in b_boundaries() {
        for reset in [false, true] {
            run_case(echo_cut(k, reset));
        }
    }
}

fn b_offsets() -> impl Strategy<Value = usize> {
    let r = b_response();
    prop_oneof![0..r.head, r.head..=r.bytes.len()]
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn b_a_379_cut_at_an_arbitrary_byte_gives_502_unless_the_echo_was_whole(
        k in b_offsets(),
        reset in any::<bool>(),
    ) {
        run_case(echo_cut(k, reset));
    }
}

// ---------------------------------------------------------------------------------------
// c. The replayed request is cut after byte k by a middlebox in front of the second origin.

/// Where in the replayed request the middlebox cuts (its head's length is known only once
/// it arrives: it names the middlebox's port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// After byte `n` of the request.
    Start(usize),
    /// `n` bytes after the end of the head (negative: inside the head).
    Body(i64),
}

impl At {
    /// The byte count, given the head's length, clamped to `0..=max`.
    fn resolve(self, head: usize, max: usize) -> usize {
        let k = match self {
            At::Start(n) => n as i64,
            At::Body(n) => head as i64 + n,
        };
        k.clamp(0, max as i64) as usize
    }
}

/// What the middlebox saw.
#[derive(Debug, Clone, Default)]
struct Seen {
    connections: usize,
    /// The replayed request's head, lower-cased.
    head: String,
    /// Bytes it let through, of `len`.
    forwarded: usize,
    len: usize,
    /// The proxy closed its side of the cut connection.
    released: bool,
}

/// A TCP relay to `to` that lets the first `at` bytes of the first request through, then
/// cuts: drops the connection to `to`, and resets the proxy's (`reset`) or sends it a FIN
/// and reads on until the proxy closes. It never relays an answer.
struct Middlebox {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    _accept: JoinSet<()>,
}

impl Middlebox {
    async fn spawn(to: SocketAddr, at: At, reset: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut accept = JoinSet::new();
        accept.spawn({
            let seen = seen.clone();
            async move {
                let mut connections = JoinSet::new();
                while let Ok((stream, _)) = listener.accept().await {
                    let first = {
                        let mut seen = seen.lock().unwrap();
                        seen.connections += 1;
                        seen.connections == 1
                    };
                    if first {
                        connections.spawn(relay_then_cut(stream, to, at, reset, seen.clone()));
                    }
                }
            }
        });
        Middlebox {
            addr,
            seen,
            _accept: accept,
        }
    }

    fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }
}

async fn relay_then_cut(
    mut from: TcpStream,
    to: SocketAddr,
    at: At,
    reset: bool,
    seen: Arc<Mutex<Seen>>,
) {
    // Look at the head without taking it, to place the cut relative to it.
    let mut peeked = vec![0; 64 << 10];
    let head = loop {
        let Ok(n) = from.peek(&mut peeked).await else {
            return;
        };
        if let Some(end) = head_end(&peeked[..n]) {
            break end;
        }
        if n == 0 || n == peeked.len() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let len = head + FIRST_PART + SECOND_PART;
    let k = at.resolve(head, len);
    {
        let mut seen = seen.lock().unwrap();
        seen.head = String::from_utf8_lossy(&peeked[..head]).to_ascii_lowercase();
        seen.len = len;
    }

    let Ok(mut upstream) = TcpStream::connect(to).await else {
        return;
    };
    let mut buf = vec![0; 8192];
    let mut forwarded = 0;
    while forwarded < k {
        let want = (k - forwarded).min(buf.len());
        match from.read(&mut buf[..want]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if upstream.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                forwarded += n;
            }
        }
    }
    seen.lock().unwrap().forwarded = forwarded;
    drop(upstream);
    if reset {
        from.set_zero_linger().expect("SO_LINGER");
        drop(from);
    } else {
        let _ = from.shutdown().await;
        while let Ok(1..) = from.read(&mut buf).await {}
    }
    seen.lock().unwrap().released = true;
}

fn c_boundaries() -> Vec<At> {
    let first = FIRST_PART as i64;
    let body = (FIRST_PART + SECOND_PART) as i64;
    vec![
        At::Start(0),
        At::Start(1),
        At::Body(-1),
        At::Body(0),
        At::Body(1),
        At::Body(first - 1),
        At::Body(first),
        At::Body(first + 1),
        At::Body(body - 1),
        At::Body(body),
    ]
}

async fn replay_cut(at: At, reset: bool) {
    let raw = RawOrigin::spawn(Answer::Hold).await;
    let (good, good_stats) = origin("good").await;
    let middlebox = Middlebox::spawn(good.addr(), at, reset).await;
    let proxy = proxy(&[raw.addr, middlebox.addr], false).await;

    let body = pattern(5, FIRST_PART + SECOND_PART);
    let (status, answer) = upload_through(&proxy, &raw, &body).await;
    let seen = middlebox.seen();
    let context = format!(
        "{at:?}: replay cut after {} of {} bytes, reset {reset}",
        seen.forwarded, seen.len
    );
    // Part A, intermediary 4 (and the module docs of the replay layer): an upstream error
    // during a replay answers 502.
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{context}: {answer:?}");
    assert_eq!(proxy.stats().replays(), 1, "{context}");
    assert_eq!(raw.uploads(), 1, "{context}");
    assert_eq!(seen.connections, 1, "{context}: the replay was not retried");
    assert!(
        seen.head.contains("\r\npartial-post-replay: 1\r\n"),
        "{context}: {}",
        seen.head
    );
    // The proxy does not keep a cut connection open (with a FIN, the middlebox waits).
    until("the proxy closed the cut connection", || {
        middlebox.seen().released
    })
    .await;

    assert_proxy_drains(proxy, &context).await;
    assert_origin_drains(good, &context).await;
    // A request cut short never completes. One that went through whole may have been
    // answered (that answer was lost with the connection), or cancelled by hyper when it
    // saw the connection close: both are fine.
    let whole = whole_bodies(&good_stats);
    if seen.forwarded < seen.len {
        assert_eq!(whole, 0, "{context}: a cut request never completes");
    } else {
        assert!(whole <= 1, "{context}: {whole}");
    }
}

#[test]
fn c_a_replay_cut_at_every_boundary_gives_502() {
    for at in c_boundaries() {
        for reset in [false, true] {
            run_case(replay_cut(at, reset));
        }
    }
}

fn c_offsets() -> impl Strategy<Value = At> {
    let body = (FIRST_PART + SECOND_PART) as i64;
    prop_oneof![
        (0usize..200).prop_map(At::Start),
        (-10i64..=body).prop_map(At::Body),
    ]
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn c_a_replay_cut_at_an_arbitrary_byte_gives_502(at in c_offsets(), reset in any::<bool>()) {
        run_case(replay_cut(at, reset));
    }
}

// ---------------------------------------------------------------------------------------
// d. An origin shuts down and the client goes away right after: mid-echo.

/// The part of the upload the client never sends.
const D_UNSENT: usize = 1 << 20;

async fn client_gone_during_shutdown(sent: usize, pause: Duration, how: ClientEnd, h2: bool) {
    let (a, a_stats) = origin("a").await;
    let (b, b_stats) = origin("b").await;
    let a_addr = a.addr();
    let proxy = proxy(&[a_addr, b.addr()], h2).await;
    let context = format!("{sent} bytes sent, {how:?} {pause:?} after the shutdown, h2 {h2}");

    let mut request = upload_head(sent + D_UNSENT).into_bytes();
    request.extend_from_slice(&pattern(6, sent));
    let mut client = within("connecting", TcpStream::connect(proxy.addr()))
        .await
        .unwrap();
    within("sending the first part", client.write_all(&request))
        .await
        .unwrap();
    until("origin a received the first part", || {
        a_stats.bytes_received() >= sent as u64
    })
    .await;

    a.shutdown();
    if !pause.is_zero() {
        tokio::time::sleep(pause).await;
    }
    end_client(client, how, &context).await;

    // Origin a's 379 exchange ends once the proxy lets go of it: its shutdown completes.
    assert_origin_drains(a, &context).await;
    // A balancer takes a stopped origin out of rotation when it sees its 379 or when a
    // connection to it is refused. Whether the 379 reached the balancer depends on the
    // timing of the cut, so spare the next upload the refused connection.
    let a_authority: Authority = a_addr.to_string().parse().unwrap();
    if let Some(index) = proxy.backends().find(&a_authority) {
        proxy.backends().mark_down(index, "stopped by the test");
    }
    let server = proxy_still_serves(proxy.addr(), 7, &context).await;
    assert_eq!(server, "b", "{context}");

    assert_proxy_drains(proxy, &context).await;
    assert_origin_drains(b, &context).await;
    assert_eq!(
        whole_bodies(&a_stats),
        0,
        "{context}: the cut upload never completed on a"
    );
    assert_eq!(
        whole_bodies(&b_stats),
        1,
        "{context}: only the following upload completed on b"
    );
}

#[test]
fn d_a_client_gone_during_an_origin_shutdown_hangs_nothing() {
    for sent in [1, 64 << 10, 1 << 20] {
        for pause in [Duration::ZERO, Duration::from_millis(1)] {
            for how in CLIENT_ENDS {
                for h2 in [false, true] {
                    run_case(client_gone_during_shutdown(sent, pause, how, h2));
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn d_a_client_gone_at_an_arbitrary_moment_of_an_origin_shutdown_hangs_nothing(
        sent in prop_oneof![1usize..4096, 4096usize..=(1 << 20)],
        pause_us in prop_oneof![Just(0u64), 0u64..3000],
        how in any_client_end(),
        h2 in any::<bool>(),
    ) {
        let pause = Duration::from_micros(pause_us);
        run_case(client_gone_during_shutdown(sent, pause, how, h2));
    }
}
