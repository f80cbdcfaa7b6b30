//! Checking one echo against what was forwarded (part A, intermediary 4 and 6), frame by
//! frame. Pure: it sees bytes and answers, and does no I/O.
//!
//! An echo must be exactly the bytes forwarded to its origin: as many (intermediary 4) and
//! the same (intermediary 6, by their tag, see `check`). [`EchoCheck::feed`] refuses a frame
//! that goes past the count, and compares the tags when a frame reaches it, *before* that
//! frame is handed on: the frame that would complete an altered request is never sent.

use std::error::Error;
use std::sync::Arc;

use super::check::{StreamTag, Tag};
use super::error::Kind;

/// The check of one echo of `expected` bytes.
pub(super) struct EchoCheck {
    expected: u64,
    received: u64,
    /// The tag of the forwarded bytes, and the running tag of the echo under the same key.
    /// `None` without a key: every echo then fails (such a request is never replayed).
    tags: Option<(Tag, StreamTag)>,
}

impl EchoCheck {
    /// The check of an echo of `expected` forwarded bytes whose running tag is `forwarded`.
    pub(super) fn new(expected: u64, forwarded: Option<StreamTag>) -> Self {
        EchoCheck {
            expected,
            received: 0,
            tags: forwarded.map(|tag| {
                let echo = tag.fresh();
                (tag.finalize(), echo)
            }),
        }
    }

    /// Takes the next frame. `Ok(true)` when it completes the echo, which then matched.
    pub(super) fn feed(&mut self, data: &[u8]) -> Result<bool, Kind> {
        let len = data.len() as u64;
        if len > self.remaining() {
            return Err(self.too_long());
        }
        self.received += len;
        if let Some((_, echo)) = &mut self.tags {
            echo.update(data);
        }
        if !self.is_complete() {
            return Ok(false);
        }
        match &self.tags {
            Some((forwarded, echo)) if echo.clone().finalize() == *forwarded => Ok(true),
            _ => Err(Kind::EchoMismatch {
                expected: self.expected,
            }),
        }
    }

    /// The echo went past the forwarded bytes.
    pub(super) fn too_long(&self) -> Kind {
        Kind::EchoTooLong {
            expected: self.expected,
        }
    }

    /// The echo ended (or failed with `source`) where it stands.
    pub(super) fn ended(&self, source: Option<Box<dyn Error + Send + Sync>>) -> Kind {
        Kind::EchoTooShort {
            expected: self.expected,
            received: self.received,
            source: source.map(Arc::from),
        }
    }

    /// Bytes still to come.
    pub(super) fn remaining(&self) -> u64 {
        self.expected - self.received
    }

    pub(super) fn is_complete(&self) -> bool {
        self.received == self.expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::check::EchoKey;
    use proptest::prelude::*;

    fn check_of(sent: &[u8]) -> EchoCheck {
        let mut forwarded = StreamTag::new(&EchoKey::random().unwrap());
        forwarded.update(sent);
        EchoCheck::new(sent.len() as u64, Some(forwarded))
    }

    /// Feeds `frames` until one is refused; the outcome of each frame fed.
    fn run(check: &mut EchoCheck, frames: &[&[u8]]) -> Vec<Result<bool, String>> {
        let mut out = Vec::new();
        for frame in frames {
            let step = check.feed(frame).map_err(|k| k.to_string());
            let stop = step.is_err();
            out.push(step);
            if stop {
                break;
            }
        }
        out
    }

    #[test]
    fn without_a_forwarded_tag_even_an_exact_echo_fails() {
        let mut check = EchoCheck::new(5, None);
        assert!(matches!(
            check.feed(b"hello"),
            Err(Kind::EchoMismatch { expected: 5 })
        ));
    }

    #[test]
    fn nothing_is_complete_before_the_last_byte() {
        let mut check = check_of(b"hello");
        assert_eq!(run(&mut check, &[b"hel", b"", b"l"]), vec![Ok(false); 3]);
        assert_eq!(check.remaining(), 1);
        assert!(matches!(
            check.ended(None),
            Kind::EchoTooShort {
                expected: 5,
                received: 4,
                source: None
            }
        ));
        assert!(matches!(check.feed(b"o"), Ok(true)));
    }

    fn split(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        cuts.sort_unstable();
        let mut frames = Vec::new();
        let mut at = 0;
        for cut in cuts {
            frames.push(data[at..cut].to_vec());
            at = cut;
        }
        frames.push(data[at..].to_vec());
        frames
    }

    proptest! {
        /// The exact bytes pass however they are framed, and only the last frame completes.
        #[test]
        fn an_exact_echo_passes_split_at_any_boundaries(
            data in proptest::collection::vec(any::<u8>(), 1..400),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let mut check = check_of(&data);
            let frames = split(&data, &cuts);
            let last = frames.iter().rposition(|f| !f.is_empty()).unwrap();
            for (i, frame) in frames.iter().enumerate() {
                let complete = check.feed(frame).unwrap();
                prop_assert_eq!(complete, i >= last);
            }
        }

        /// An echo split after every single byte passes too.
        #[test]
        fn an_exact_echo_passes_byte_by_byte(data in proptest::collection::vec(any::<u8>(), 1..100)) {
            let mut check = check_of(&data);
            for (i, byte) in data.iter().enumerate() {
                prop_assert_eq!(check.feed(&[*byte]).unwrap(), i + 1 == data.len());
            }
        }

        /// Any altered byte, in any framing, is refused by the frame that completes the echo,
        /// and no earlier frame completes it.
        #[test]
        fn an_altered_echo_fails_on_its_last_frame(
            data in proptest::collection::vec(any::<u8>(), 1..400),
            at in any::<usize>(),
            flip in 1u8..=255,
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let mut check = check_of(&data);
            let mut altered = data.clone();
            let at = at % data.len();
            altered[at] ^= flip;
            let frames = split(&altered, &cuts);
            let last = frames.iter().rposition(|f| !f.is_empty()).unwrap();
            for (i, frame) in frames.iter().enumerate() {
                let step = check.feed(frame);
                if i < last {
                    prop_assert!(matches!(step, Ok(false)));
                } else {
                    prop_assert!(matches!(step, Err(Kind::EchoMismatch { .. })), "{:?}", step);
                    break;
                }
            }
        }

        /// More bytes than were sent are refused by the frame that goes past the count,
        /// before it is handed on, whatever the framing.
        #[test]
        fn a_longer_echo_fails_on_the_frame_past_the_count(
            data in proptest::collection::vec(any::<u8>(), 1..400),
            extra in proptest::collection::vec(any::<u8>(), 1..20),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let mut check = check_of(&data);
            let mut longer = data.clone();
            longer.extend(&extra);
            let mut fed = 0usize;
            for frame in split(&longer, &cuts) {
                let step = check.feed(&frame);
                if fed + frame.len() > data.len() {
                    prop_assert!(matches!(step, Err(Kind::EchoTooLong { .. })), "{:?}", step);
                    return Ok(());
                }
                fed += frame.len();
                prop_assert!(step.is_ok());
            }
            prop_assert!(false, "never refused");
        }

        /// A prefix never completes: the end of the echo reports it as too short.
        #[test]
        fn a_shorter_echo_never_completes(
            data in proptest::collection::vec(any::<u8>(), 1..400),
            keep in any::<usize>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let keep = keep % data.len();
            let mut check = check_of(&data);
            for frame in split(&data[..keep], &cuts) {
                prop_assert!(matches!(check.feed(&frame), Ok(false)));
            }
            let short = matches!(check.ended(None), Kind::EchoTooShort { received, .. } if received == keep as u64);
            prop_assert!(short);
        }
    }
}
