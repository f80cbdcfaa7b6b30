//! The clients: concurrent uploads, each paced by the client over a given time (bytes per
//! second, not a per-frame delay), each answer checked against the SHA-256 of what was
//! sent.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::Request;
use http_body_util::channel::Channel;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The longest a client waits for the proxy to take the next chunk or to finish its answer.
const STALL_LIMIT: Duration = Duration::from_secs(60);

/// One upload's size and pace.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    pub(crate) size: u64,
    /// The client sends the body evenly over this time.
    pub(crate) over: Duration,
    pub(crate) chunk: usize,
}

/// What happened to one upload.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Outcome {
    /// `200` with the right length and SHA-256.
    pub(crate) ok: bool,
    /// The status, or `None` when no response came (a reset, a closed connection).
    pub(crate) status: Option<u16>,
    pub(crate) error: Option<String>,
    /// From the request's start to the end of the response.
    pub(crate) latency: Duration,
    /// From the client's last byte to the response head.
    pub(crate) last_byte_to_answer: Option<Duration>,
    /// Body bytes the client sent.
    pub(crate) sent: u64,
}

#[derive(Debug, Deserialize)]
struct Reply {
    bytes: u64,
    sha256: String,
}

/// Runs `count` uploads to `proxy` at once; the outcomes in order.
pub(crate) async fn run(proxy: SocketAddr, count: usize, pace: Pace) -> Vec<Outcome> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Channel<Bytes, Infallible>>();
    let uploads: Vec<_> = (0..count)
        .map(|i| tokio::spawn(upload(client.clone(), proxy, pace, i as u64)))
        .collect();
    let mut outcomes = Vec::with_capacity(count);
    for upload in uploads {
        outcomes.push(upload.await.unwrap_or_else(|err| Outcome {
            ok: false,
            status: None,
            error: Some(format!("the upload task failed: {err}")),
            latency: Duration::ZERO,
            last_byte_to_answer: None,
            sent: 0,
        }));
    }
    outcomes
}

async fn upload(
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Channel<Bytes, Infallible>>,
    proxy: SocketAddr,
    pace: Pace,
    seed: u64,
) -> Outcome {
    let started = Instant::now();
    let (mut tx, body) = Channel::<Bytes, Infallible>::new(2);
    let request = Request::post(format!("http://{proxy}/upload"))
        .header(CONTENT_LENGTH, pace.size)
        .body(body)
        .expect("a valid request");
    let response = tokio::spawn(client.request(request));

    // Bytes that depend on the upload, so that uploads differ.
    let chunk = crate::random::bytes(seed, pace.chunk);
    let chunks = pace.size.div_ceil(pace.chunk as u64).max(1);
    let step = pace.over.div_f64(chunks as f64);
    let mut hash = Sha256::new();
    let mut sent = 0u64;
    let mut send_error = None;
    for i in 0..chunks {
        let len = (pace.size - sent).min(pace.chunk as u64) as usize;
        let data = chunk.slice(..len);
        hash.update(&data);
        // Bounded: a proxy that stops reading without closing must not hang the run.
        match tokio::time::timeout(STALL_LIMIT, tx.send_data(data)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                send_error = Some("the connection stopped taking the body".to_owned());
                break;
            }
            Err(_) => {
                send_error = Some(format!("the body was not taken for {STALL_LIMIT:?}"));
                break;
            }
        }
        sent += len as u64;
        if i + 1 < chunks {
            let due = started + step * (i as u32 + 1);
            tokio::time::sleep_until(due.into()).await;
        }
    }
    drop(tx);
    // The last chunk is queued to hyper: from here on, the answer waits for the proxy.
    let last_byte = Instant::now();
    let digest = format!("{:x}", hash.finalize());

    let failed = |status, error: String| Outcome {
        ok: false,
        status,
        error: Some(error),
        latency: started.elapsed(),
        last_byte_to_answer: None,
        sent,
    };
    let response = match tokio::time::timeout(Duration::from_secs(120), response).await {
        Ok(Ok(Ok(response))) => response,
        Ok(Ok(Err(err))) => return failed(None, format!("no response: {err}")),
        Ok(Err(err)) => return failed(None, format!("the request task failed: {err}")),
        Err(_) => return failed(None, "no response within 120 s".to_owned()),
    };
    let answered = Instant::now();
    let status = response.status().as_u16();
    let body = match tokio::time::timeout(STALL_LIMIT, response.into_body().collect()).await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(err)) => return failed(Some(status), format!("the response body failed: {err}")),
        Err(_) => return failed(Some(status), "the response body stalled".to_owned()),
    };
    let ok = status == 200
        && sent == pace.size
        && serde_json::from_slice::<Reply>(&body)
            .is_ok_and(|reply| reply.bytes == pace.size && reply.sha256 == digest);
    Outcome {
        ok,
        status: Some(status),
        error: (!ok).then(|| {
            send_error.unwrap_or_else(|| {
                format!(
                    "{status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(120)])
                )
            })
        }),
        latency: started.elapsed(),
        last_byte_to_answer: Some(answered.saturating_duration_since(last_byte)),
        sent,
    }
}
