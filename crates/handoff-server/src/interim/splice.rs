//! The pure core of the hook: decides, write by write, which of the writer's bytes pass
//! through and where the interim responses go. No I/O; [`InterimStream`](super::InterimStream)
//! moves the bytes.

use std::fmt;
use std::io::IoSlice;

use bytes::{Buf, BytesMut};

use super::head::{BARE_CONTINUE, MAX_INTERIM_BYTES};

/// The connection's outgoing side as the hook sees it.
///
/// The writer is hyper; its bytes are either passed through untouched ([`Step::Pass`]) or
/// taken ([`Step::Took`]) into `owed`, the bytes the socket must receive before any further
/// byte of the writer's. `owed` holds the armed replacement of hyper's `100 Continue`, the
/// interim responses queued after it, and writer bytes given back by a partial match.
pub(super) struct Splice {
    phase: Phase,
    owed: BytesMut,
}

/// Every state of the connection, with the edges between them.
///
/// ```text
/// Unarmed/Answered --arm--> Armed --hyper's 100 taken--> Continued --hyper writes--> Answered
///                    Armed --disarm--> Unarmed
///             any of them --HTTP/2 request seen--> Http2 (for good)
/// ```
enum Phase {
    /// Nothing armed: every byte passes through.
    Unarmed,
    /// Waiting for hyper's bare `100 Continue`. `matched` bytes of it were already taken
    /// (it arrived split across writes); `interim` replaces it, queued interim responses
    /// included.
    Armed { interim: Vec<u8>, matched: usize },
    /// The armed `100` was taken and hyper has written nothing since: the final response has
    /// not begun, so more interim responses may still go out.
    Continued,
    /// Hyper wrote on after the armed `100`: the final response began.
    Answered,
    /// An HTTP/2 connection: its bytes are frames, nothing is ever rewritten.
    Http2,
}

/// What to do with the bytes a writer offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Write the first `n` offered bytes through to the socket, then report what it took.
    Pass(usize),
    /// The first `n` offered bytes were taken into [`Splice::owed`]: report `n` written.
    Took(usize),
    /// Writer bytes taken earlier were given back to `owed`: write those, then ask again.
    GaveBack,
}

impl Splice {
    pub(super) fn new() -> Self {
        Self {
            phase: Phase::Unarmed,
            owed: BytesMut::new(),
        }
    }

    /// The next bare `100 Continue` is replaced by `interim`. Replaces an earlier arm.
    pub(super) fn arm(&mut self, interim: Vec<u8>) -> bool {
        if self.owed.len() + interim.len() > MAX_INTERIM_BYTES {
            return false;
        }
        self.phase = match self.phase {
            Phase::Http2 => return false,
            // A split `100` keeps its taken bytes; only the replacement changes.
            Phase::Armed { matched, .. } => Phase::Armed { interim, matched },
            Phase::Unarmed | Phase::Continued | Phase::Answered => Phase::Armed {
                interim,
                matched: 0,
            },
        };
        true
    }

    /// Cancels a pending arm. True if writer bytes were given back to `owed` (the connection
    /// should be woken to write them).
    pub(super) fn disarm(&mut self) -> bool {
        if !matches!(self.phase, Phase::Armed { .. }) {
            return false;
        }
        let gave_back = self.give_back();
        self.phase = Phase::Unarmed;
        gave_back
    }

    /// Queues one more interim response, if the final response has not begun: behind the
    /// armed `100` while it is still awaited, or straight into `owed` once it was taken.
    pub(super) fn send(&mut self, head: &[u8]) -> bool {
        let pending = self.owed.len() + head.len();
        match &mut self.phase {
            Phase::Armed { interim, .. } if pending + interim.len() <= MAX_INTERIM_BYTES => {
                interim.extend_from_slice(head);
                true
            }
            Phase::Continued if pending <= MAX_INTERIM_BYTES => {
                self.owed.extend_from_slice(head);
                true
            }
            _ => false,
        }
    }

    /// The connection carries HTTP/2: nothing is rewritten from now on.
    pub(super) fn disable(&mut self) {
        self.give_back();
        self.phase = Phase::Http2;
    }

    /// Whether the armed `100 Continue` was taken (and its replacement owed or written).
    pub(super) fn continue_sent(&self) -> bool {
        matches!(self.phase, Phase::Continued | Phase::Answered)
    }

    /// Whether a `100` is armed and not yet seen.
    pub(super) fn is_armed(&self) -> bool {
        matches!(self.phase, Phase::Armed { .. })
    }

    /// Decides what happens to the bytes the writer offers (`bufs`, in order). Call only
    /// when nothing is [`owed`](Self::owed).
    pub(super) fn on_write(&mut self, bufs: &[IoSlice<'_>]) -> Step {
        debug_assert!(self.owed.is_empty(), "owed bytes go out first");
        let offered = bufs.iter().map(|b| b.len()).sum();
        let Phase::Armed { matched, .. } = &mut self.phase else {
            return Step::Pass(offered);
        };
        let bytes = bufs.iter().flat_map(|b| b.iter().copied());
        if *matched > 0 {
            // The previous write ended inside what may be hyper's `100`: go on from there.
            let rest = &BARE_CONTINUE[*matched..];
            let agreeing = bytes.zip(rest).take_while(|(b, c)| b == *c).count();
            return if agreeing == rest.len() {
                self.take_continue();
                Step::Took(agreeing)
            } else if agreeing == offered {
                *matched += agreeing;
                Step::Took(agreeing)
            } else {
                self.give_back();
                Step::GaveBack
            };
        }
        match find(bytes) {
            None => Step::Pass(offered),
            Some(at) if at > 0 => Step::Pass(at),
            Some(_) if offered >= BARE_CONTINUE.len() => {
                self.take_continue();
                Step::Took(BARE_CONTINUE.len())
            }
            Some(_) => {
                *matched = offered;
                Step::Took(offered)
            }
        }
    }

    /// `n` bytes of a [`Step::Pass`] reached the socket.
    pub(super) fn on_passed(&mut self, n: usize) {
        if n > 0 && matches!(self.phase, Phase::Continued) {
            self.phase = Phase::Answered;
        }
    }

    /// The writer flushes: it wants every byte it handed over on the socket, so a `100`
    /// begun and not finished is not one; its bytes are given back as they were.
    pub(super) fn on_flush(&mut self) {
        self.give_back();
    }

    /// The bytes the socket must receive before any further byte of the writer's.
    pub(super) fn owed(&self) -> &[u8] {
        &self.owed
    }

    /// `n` owed bytes reached the socket.
    pub(super) fn advance(&mut self, n: usize) {
        self.owed.advance(n);
    }

    fn take_continue(&mut self) {
        let phase = std::mem::replace(&mut self.phase, Phase::Continued);
        if let Phase::Armed { interim, .. } = phase {
            self.owed.extend_from_slice(&interim);
        }
    }

    /// Moves the taken start of a split `100` back to `owed`, as plain writer bytes.
    fn give_back(&mut self) -> bool {
        match &mut self.phase {
            Phase::Armed { matched, .. } if *matched > 0 => {
                self.owed
                    .extend_from_slice(&BARE_CONTINUE[..std::mem::take(matched)]);
                true
            }
            _ => false,
        }
    }
}

/// The position of the first bare `100 Continue` in `bytes`, or of a start of one that the
/// bytes end in the middle of.
///
/// A one-state matcher is enough: the only `H` of the pattern is its first byte, so after a
/// mismatch no match can have begun inside the bytes that agreed.
fn find(bytes: impl Iterator<Item = u8>) -> Option<usize> {
    let mut matched = 0;
    let mut seen = 0;
    for b in bytes {
        seen += 1;
        if b == BARE_CONTINUE[matched] {
            matched += 1;
            if matched == BARE_CONTINUE.len() {
                break;
            }
        } else {
            matched = usize::from(b == BARE_CONTINUE[0]);
        }
    }
    (matched > 0).then(|| seen - matched)
}

impl fmt::Debug for Splice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match &self.phase {
            Phase::Unarmed => "unarmed",
            Phase::Armed { .. } => "armed",
            Phase::Continued => "continued",
            Phase::Answered => "answered",
            Phase::Http2 => "http2",
        };
        f.debug_struct("Splice")
            .field("phase", &phase)
            .field("owed", &self.owed.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(splice: &mut Splice, bytes: &[u8]) -> Step {
        splice.on_write(&[IoSlice::new(bytes)])
    }

    #[test]
    fn the_pattern_has_one_h() {
        // `find` relies on it (see there).
        assert_eq!(BARE_CONTINUE.iter().filter(|b| **b == b'H').count(), 1);
        assert_eq!(BARE_CONTINUE[0], b'H');
    }

    #[test]
    fn find_reports_whole_and_cut_matches() {
        let at = |bytes: &[u8]| find(bytes.iter().copied());
        assert_eq!(at(b""), None);
        assert_eq!(at(b"HTTP/1.1 200 OK\r\n"), None);
        assert_eq!(at(b"xxHTTP/1.1 100 Continue\r\n\r\nyy"), Some(2));
        assert_eq!(at(b"HHTTP/1.1 100 Continue\r\n\r\n"), Some(1));
        assert_eq!(at(b"abcHTTP/1."), Some(3), "the bytes end inside a match");
        assert_eq!(at(b"HTTP/1.1 100 Continue\r\n\r"), Some(0));
        assert_eq!(at(b"HTTP/1.1 100 Continue\r\nX"), None);
    }

    #[test]
    fn unarmed_passes_everything() {
        let mut splice = Splice::new();
        assert_eq!(write(&mut splice, BARE_CONTINUE), Step::Pass(25));
        assert!(!splice.send(b"HTTP/1.1 100 Continue\r\n\r\n"));
        assert!(!splice.continue_sent());
    }

    #[test]
    fn armed_passes_what_precedes_then_takes_the_100() {
        let mut splice = Splice::new();
        assert!(splice.arm(b"NEW".to_vec()));
        let bytes = [
            &b"tail of a response"[..],
            BARE_CONTINUE,
            b"HTTP/1.1 200 OK",
        ]
        .concat();
        assert_eq!(write(&mut splice, &bytes), Step::Pass(18));
        splice.on_passed(18);
        assert_eq!(write(&mut splice, &bytes[18..]), Step::Took(25));
        assert!(splice.continue_sent());
        assert_eq!(splice.owed(), b"NEW");
        assert!(splice.send(b"+ACK"));
        assert_eq!(splice.owed(), b"NEW+ACK");
        splice.advance(7);
        assert_eq!(write(&mut splice, &bytes[43..]), Step::Pass(15));
        assert!(
            splice.send(b"+ACK"),
            "nothing of the final response went out yet"
        );
        splice.advance(4);
        splice.on_passed(3);
        assert!(!splice.send(b"+ACK"), "the final response began");
        assert!(splice.continue_sent());
    }

    #[test]
    fn a_split_100_is_taken_in_pieces_or_given_back() {
        let mut splice = Splice::new();
        assert!(splice.arm(b"NEW".to_vec()));
        assert_eq!(write(&mut splice, &BARE_CONTINUE[..10]), Step::Took(10));
        assert!(splice.send(b"+ACK"), "queued behind the awaited 100");
        assert_eq!(write(&mut splice, &BARE_CONTINUE[10..20]), Step::Took(10));
        assert_eq!(write(&mut splice, &BARE_CONTINUE[20..]), Step::Took(5));
        assert_eq!(splice.owed(), b"NEW+ACK");

        let mut splice = Splice::new();
        assert!(splice.arm(b"NEW".to_vec()));
        assert_eq!(write(&mut splice, b"HTTP/1.1 1"), Step::Took(10));
        assert_eq!(write(&mut splice, b"01 Switching"), Step::GaveBack);
        assert_eq!(splice.owed(), b"HTTP/1.1 1");
        splice.advance(10);
        assert_eq!(write(&mut splice, b"01 Switching"), Step::Pass(12));
        assert!(splice.is_armed(), "still waiting for the real 100");
    }

    #[test]
    fn flush_and_disarm_give_taken_bytes_back() {
        let mut splice = Splice::new();
        assert!(splice.arm(b"NEW".to_vec()));
        assert_eq!(write(&mut splice, b"HTTP/1"), Step::Took(6));
        splice.on_flush();
        assert_eq!(splice.owed(), b"HTTP/1");
        assert!(splice.is_armed());
        splice.advance(6);

        assert_eq!(write(&mut splice, b"HTTP/1"), Step::Took(6));
        assert!(splice.disarm());
        assert_eq!(splice.owed(), b"HTTP/1");
        assert!(!splice.is_armed());
        assert!(!splice.disarm());
    }

    #[test]
    fn http2_refuses_everything() {
        let mut splice = Splice::new();
        assert!(splice.arm(b"NEW".to_vec()));
        splice.disable();
        assert!(!splice.arm(b"NEW".to_vec()));
        assert_eq!(write(&mut splice, BARE_CONTINUE), Step::Pass(25));
        assert!(!splice.send(b"+ACK"));
    }

    #[test]
    fn interim_bytes_are_bounded() {
        let mut splice = Splice::new();
        assert!(!splice.arm(vec![b'x'; MAX_INTERIM_BYTES + 1]));
        assert!(splice.arm(vec![b'x'; MAX_INTERIM_BYTES - 10]));
        assert!(splice.send(&[b'y'; 10]));
        assert!(!splice.send(b"y"));
        assert_eq!(write(&mut splice, BARE_CONTINUE), Step::Took(25));
        assert!(!splice.send(b"y"), "nothing was written yet");
        splice.advance(100);
        assert!(splice.send(&[b'y'; 100]));
    }
}
