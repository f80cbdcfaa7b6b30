use std::future::poll_fn;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;
use proptest::prelude::*;

use super::*;

async fn write_all(writer: &mut SpoolWriter, parts: &[&[u8]]) -> Result<(), SpoolError> {
    for part in parts {
        poll_fn(|cx| writer.poll_ready(cx)).await?;
        writer.push(part)?;
    }
    Ok(())
}

async fn next(reader: &mut SpoolReader) -> Option<Result<Bytes, String>> {
    let frame = poll_fn(|cx| Pin::new(&mut *reader).poll_frame(cx)).await?;
    Some(
        frame
            .map(|f| f.into_data().expect("data only"))
            .map_err(|e| e.to_string()),
    )
}

#[tokio::test]
async fn small_streams_stay_in_memory() {
    let (mut writer, reader) = spool(&SpoolConfig::new().memory_limit(16));
    write_all(&mut writer, &[b"abc", b"def"]).await.unwrap();
    assert!(!writer.has_spilled());
    assert_eq!(writer.in_memory(), 6);
    writer.finish();
    assert_eq!(reader.collect().await.unwrap().to_bytes(), "abcdef");
}

#[tokio::test]
async fn large_streams_spill_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig::new().memory_limit(1000).dir(dir.path());
    let (mut writer, reader) = spool(&config);
    let frame: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let mut max_in_memory = 0;
    for _ in 0..100 {
        write_all(&mut writer, &[&frame]).await.unwrap();
        max_in_memory = max_in_memory.max(writer.in_memory());
    }
    assert!(writer.has_spilled());
    assert_eq!(writer.len(), 1_000_000);
    // The memory tier, plus what waits for the disk (two chunks), plus one frame.
    assert!(
        max_in_memory <= 1000 + 2 * crate::file::CHUNK + 10_000,
        "{max_in_memory}"
    );
    writer.finish();
    let all = reader.collect().await.unwrap().to_bytes();
    assert_eq!(all.len(), 1_000_000);
    assert!(all.chunks(10_000).all(|c| c == &frame[..]));
    // The file is unlinked from the start: nothing is ever visible in the directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn the_reader_follows_the_writer_across_the_tiers() {
    let (mut writer, mut reader) = spool(&SpoolConfig::new().memory_limit(4));
    write_all(&mut writer, &[b"abc"]).await.unwrap();
    assert_eq!(next(&mut reader).await.unwrap().unwrap(), "abc");
    // Nothing more yet: the reader waits.
    assert!(futures_now(&mut reader).is_none());
    write_all(&mut writer, &[b"defgh"]).await.unwrap();
    let mut got = BytesMut::new();
    while got.len() < 5 {
        got.extend_from_slice(&next(&mut reader).await.unwrap().unwrap());
    }
    assert_eq!(got, "defgh");
    writer.finish();
    assert!(next(&mut reader).await.is_none());
}

fn futures_now(reader: &mut SpoolReader) -> Option<Option<Result<Bytes, String>>> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match Pin::new(reader).poll_frame(&mut cx) {
        std::task::Poll::Pending => None,
        std::task::Poll::Ready(frame) => {
            Some(frame.map(|f| f.map(|f| f.into_data().unwrap()).map_err(|e| e.to_string())))
        }
    }
}

#[tokio::test]
async fn bounds_refuse_without_appending() {
    let budget = SpoolBudget::new(10);
    let config = SpoolConfig::new().max_bytes(8).budget(budget.clone());
    let (mut one, _r1) = spool(&config);
    let (mut two, _r2) = spool(&config);
    one.push(b"12345678").unwrap();
    assert!(matches!(
        one.push(b"9"),
        Err(SpoolError::TooLarge { max: 8 })
    ));
    assert_eq!(one.len(), 8);
    let err = two.push(b"123").unwrap_err();
    assert!(matches!(err, SpoolError::BudgetExhausted { limit: 10 }));
    assert!(err.is_full());
    assert_eq!(two.len(), 0);
    two.push(b"12").unwrap();
    assert_eq!(budget.used(), 10);
    drop((one, _r1));
    assert_eq!(budget.used(), 2);
}

#[tokio::test]
async fn a_reservation_is_taken_up_front() {
    let budget = SpoolBudget::new(10);
    let config = SpoolConfig::new().budget(budget.clone());
    let (mut one, _r1) = spool(&config);
    one.reserve(7).unwrap();
    assert_eq!(budget.used(), 7);
    let (mut two, _r2) = spool(&config);
    assert!(two.reserve(4).unwrap_err().is_full());
    one.push(b"1234567").unwrap();
    assert_eq!(
        budget.used(),
        7,
        "pushes within the reservation take nothing more"
    );
}

#[tokio::test]
async fn a_failure_comes_after_the_bytes() {
    let (mut writer, mut reader) = spool(&SpoolConfig::new().memory_limit(0));
    write_all(&mut writer, &[b"xy"]).await.unwrap();
    writer.fail("upstream went away");
    assert_eq!(next(&mut reader).await.unwrap().unwrap(), "xy");
    assert_eq!(
        next(&mut reader).await.unwrap().unwrap_err(),
        "upstream went away"
    );
}

#[tokio::test]
async fn a_dropped_writer_is_an_error_not_an_end() {
    let (mut writer, mut reader) = spool(&SpoolConfig::new());
    write_all(&mut writer, &[b"xy"]).await.unwrap();
    drop(writer);
    assert_eq!(next(&mut reader).await.unwrap().unwrap(), "xy");
    let err = next(&mut reader).await.unwrap().unwrap_err();
    assert_eq!(err, WriterGone.to_string());
}

#[tokio::test]
async fn a_dropped_reader_stops_the_writer() {
    let (mut writer, reader) = spool(&SpoolConfig::new());
    drop(reader);
    let ready = poll_fn(|cx| writer.poll_ready(cx)).await;
    assert!(matches!(ready, Err(SpoolError::ReaderGone)));
    assert!(matches!(writer.push(b"x"), Err(SpoolError::ReaderGone)));
}

#[tokio::test]
async fn a_missing_dir_is_an_io_error() {
    let config = SpoolConfig::new()
        .memory_limit(0)
        .dir("/nonexistent/handoff-spool");
    let (mut writer, _reader) = spool(&config);
    writer.push(&[0; 300_000]).unwrap();
    // The failed write is seen by the first `poll_ready` after it completed.
    let mut result = Ok(());
    for _ in 0..500 {
        result = poll_fn(|cx| writer.poll_ready(cx)).await;
        if result.is_err() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(matches!(result, Err(SpoolError::Io(_))), "{result:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the frames, the memory limit and how reads interleave with writes, the
    /// reader yields exactly the bytes pushed, in order.
    #[test]
    fn reads_what_was_written(
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40_000), 0..12),
        memory_limit in 0usize..100_000,
        reads_between in proptest::collection::vec(0usize..3, 12),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (mut writer, mut reader) = spool(&SpoolConfig::new().memory_limit(memory_limit));
            let mut expected = Vec::new();
            let mut got = Vec::new();
            for (frame, reads) in frames.iter().zip(&reads_between) {
                write_all(&mut writer, &[frame]).await.unwrap();
                expected.extend_from_slice(frame);
                for _ in 0..*reads {
                    if got.len() == expected.len() {
                        break;
                    }
                    got.extend_from_slice(&next(&mut reader).await.unwrap().unwrap());
                }
            }
            writer.finish();
            while let Some(data) = next(&mut reader).await {
                got.extend_from_slice(&data.unwrap());
            }
            prop_assert_eq!(got, expected);
            Ok(())
        })?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_waiting_in_another_task_is_woken_for_every_tier() {
    let (mut writer, reader) = spool(&SpoolConfig::new().memory_limit(1000));
    let frame: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let sent = frame.clone();
    let writing = tokio::spawn(async move {
        for _ in 0..3 {
            // The reader is parked on `Wait` by now: only the writer's wake gets it going.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            write_all(&mut writer, &[&sent]).await.unwrap();
        }
        writer.finish();
    });
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), reader.collect())
        .await
        .expect("a lost wake-up would hang here")
        .unwrap()
        .to_bytes();
    writing.await.unwrap();
    assert_eq!(read.len(), 300_000);
    assert!(read.chunks(100_000).all(|c| c == &frame[..]));
}

#[tokio::test]
async fn a_failed_write_stays_failed() {
    let config = SpoolConfig::new()
        .memory_limit(0)
        .dir("/nonexistent/handoff-spool");
    let (mut writer, _reader) = spool(&config);
    writer.push(&[0; 300_000]).unwrap();
    let mut failed = false;
    for _ in 0..500 {
        if poll_fn(|cx| writer.poll_ready(cx)).await.is_err() {
            failed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(failed);
    assert!(
        poll_fn(|cx| writer.poll_ready(cx)).await.is_err(),
        "still failed"
    );
    assert!(matches!(writer.push(b"more"), Err(SpoolError::Io(_))));
}
