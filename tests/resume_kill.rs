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
    let first = Running::start(
        "origin",
        &[
            "--listen",
            "127.0.0.1:0",
            "--name",
            "before",
            "--store",
            &store,
        ],
    );
    let addr = first.addr;
    let body = body_of(3 << 20);
    let sent = 1 << 20;

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(&upload_head(addr, body.len(), None, "resume"))
        .await
        .unwrap();
    let interim = read_interim(&mut stream).await;
    let request = interim
        .header("request-content-location")
        .unwrap()
        .to_owned();
    let response = interim
        .header("response-message-location")
        .unwrap()
        .to_owned();
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
    let second = Running::start(
        "origin",
        &["--listen", &listen, "--name", "after", "--store", &store],
    );
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
