//! `kill -9` of an `origin --store <dir>` process mid-upload, then a restart on the same
//! port and directory: `HEAD` reports the bytes on disk, the `PATCH` completes the upload,
//! and the handler runs once, in the new process, over the whole body.

mod raw;
mod running;

use std::time::Duration;

use raw::*;
use running::Running;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn a_killed_disk_store_origin_resumes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap().to_owned();
    let first = Running::disk_origin("127.0.0.1:0", "before", &store);
    let addr = first.addr;
    let body = body_of(3 << 20);
    let sent = 1 << 20;

    let (mut stream, interim) = open_upload(addr, body.len(), None, "resume").await;
    let (request, response) = interim.locations();
    stream.write_all(&body[..sent]).await.unwrap();
    stream.flush().await.unwrap();
    // Until the origin holds most of it, then no shutdown of any kind.
    for _ in 0..200 {
        let held = head(addr, &request, None).await;
        let held: usize = held.header("content-length").unwrap().parse().unwrap();
        if held == sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill9();
    drop(stream);

    let listen = addr.to_string();
    let second = Running::disk_origin(&listen, "after", &store);
    let held = head(second.addr, &request, None).await;
    assert_eq!(held.status, 299, "{held:?}\n{}", second.log());
    let held: u64 = held.header("content-length").unwrap().parse().unwrap();
    eprintln!("after kill -9 the restarted origin holds {held} of {sent} bytes sent");
    assert!(held <= sent as u64);
    assert!(held > 0, "the bytes that reached the disk survive the kill");
    complete(second.addr, &request, &body, None).await;
    let (status, answer) = fetch_response(second.addr, &response, None).await;
    assert_eq!(status, 200, "{}", second.log());
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(
        answer["server"], "after",
        "the handler ran in the new process"
    );
    assert_eq!(answer["bytes"], body.len() as u64);
    assert_eq!(answer["sha256"], hex(&Sha256::digest(&body)));
    let log = second.log();
    assert_eq!(log.matches("adopted").count(), 1, "one adoption:\n{log}");
}

/// Starts an upload of `body` on `addr`, sends `sent` bytes, and returns the locations
/// (request content, response message) and the open connection.
async fn partial_upload(
    addr: std::net::SocketAddr,
    body: &[u8],
    sent: usize,
) -> (String, String, tokio::net::TcpStream) {
    let (mut stream, interim) = open_upload(addr, body.len(), None, "resume").await;
    stream.write_all(&body[..sent]).await.unwrap();
    stream.flush().await.unwrap();
    let (request, response) = interim.locations();
    for _ in 0..200 {
        let held = head(addr, &request, None).await;
        if held.header("content-length") == Some(sent.to_string().as_str()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (request, response, stream)
}

#[tokio::test]
async fn a_graceful_restart_keeps_a_disk_store_upload_and_loses_a_memory_one() {
    let body = body_of(1 << 20);
    let sent = 300_000;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap().to_owned();
    for disk in [true, false] {
        let mut args = vec!["--listen", "127.0.0.1:0", "--drain-timeout", "0.3"];
        if disk {
            args.extend(["--store", &store]);
        }
        let first = Running::start("origin", &args);
        let addr = first.addr;
        let (request, response, stream) = partial_upload(addr, &body, sent).await;
        // SIGTERM: the upload is still arriving, so the drain window runs out and the
        // connection is closed; the process exits 0.
        first.stop_with(running::Signal::Term).await;
        drop(stream);

        let listen = addr.to_string();
        let mut args = vec!["--listen", listen.as_str()];
        if disk {
            args.extend(["--store", &store]);
        }
        let second = Running::start("origin", &args);
        let held = head(second.addr, &request, None).await;
        if !disk {
            // The memory store died with the process: the client must start over.
            assert_eq!(held.status, 404);
            continue;
        }
        assert_eq!(held.status, 299, "{held:?}");
        assert_eq!(
            held.header("content-length"),
            Some(sent.to_string().as_str())
        );
        complete(second.addr, &request, &body, None).await;
        let (status, answer) = fetch_response(second.addr, &response, None).await;
        assert_eq!(status, 200);
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(answer["sha256"], hex(&Sha256::digest(&body)));
    }
}
