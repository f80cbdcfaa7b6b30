//! The echo check (part A, intermediary 6): a keyed universal hash of a byte stream.
//!
//! The layer must know that an origin echoed exactly the bytes it was forwarded before the
//! frame that completes the echo goes to another origin. It keeps no copy of them; it keeps
//! a 16-byte tag of the forwarded bytes and compares it with the tag of the echo.
//!
//! The tag is POLYVAL (the universal hash of AES-GCM-SIV, RFC 8452; the RustCrypto `polyval`
//! crate, carry-less multiplication where the CPU has it) under a key drawn at random for
//! each client request, over the bytes in 16-byte blocks, the last one zero-padded. Frame
//! boundaries do not matter: a partial block waits for the next frame.
//!
//! # Why an origin cannot make a different echo pass
//!
//! The echo is compared only when its length equals the forwarded count (part A,
//! intermediary 4), so both streams are `n = ceil(len / 16)` blocks padded the same way. For
//! two different streams `M != M'` of `n` blocks, `POLYVAL_H(M) - POLYVAL_H(M')` is a
//! non-zero polynomial in `H` of degree at most `n` over GF(2^128), with at most `n` roots.
//! The key `H` is uniform, drawn for each client request, and never leaves the layer:
//! neither it nor any tag is sent or logged, and nothing an origin sees depends on it until
//! an echo is compared. One key serves every attempt of the request (a replay may itself be
//! handed back), but the first comparison of two different streams decides: a mismatch
//! fails the whole request (every attempt's body fails, no further replay), so the key is
//! never used again. Comparisons of identical streams pass for every key and reveal nothing.
//! So whatever echo an origin chooses, knowing the forwarded bytes but not `H`, a different
//! stream passes with probability at most `n / 2^128` for the longest echo's `n` blocks: for
//! a 4 GiB body (`n = 2^28`), 2^-100. (Counting every allowed replay as a separate try gives
//! the looser `max_replays * n / 2^128`.) The comparison is not constant-time, which is fine
//! for the same reason: a mismatch ends the request.
//!
//! Unlike SHA-256, which the layer used before, this needs the key to stay secret (whoever
//! knows `H` can forge an echo); it stays in the process, out of `Debug` and logs. Against
//! an origin, the guarantee is the same, at about a third of the CPU (0.25 s/GiB against
//! 0.69 s/GiB for SHA-256 on the development machine).

use polyval::universal_hash::UniversalHash;
use polyval::Polyval;

/// POLYVAL's block and key size.
const BLOCK: usize = 16;

/// The per-request key. `None` if the system's random source failed: such a request is
/// forwarded as usual but never replayed (a `379` is answered `502`).
#[derive(Clone, Copy)]
pub(super) struct EchoKey([u8; BLOCK]);

impl EchoKey {
    pub(super) fn random() -> Option<Self> {
        let mut key = [0u8; BLOCK];
        match getrandom::fill(&mut key) {
            Ok(()) => Some(EchoKey(key)),
            Err(err) => {
                tracing::error!(error = %err, "no random echo key: this request cannot be replayed");
                None
            }
        }
    }

    #[cfg(test)]
    pub(super) fn fixed(key: [u8; BLOCK]) -> Self {
        EchoKey(key)
    }
}

/// A tag of the bytes seen so far.
pub(super) type Tag = [u8; BLOCK];

/// The running tag of one stream of bytes: the forwarded bytes of an attempt, or an echo.
#[derive(Clone)]
pub(super) struct StreamTag {
    /// Kept so that the tag of an echo is made under the same key as the forwarded bytes'.
    key: EchoKey,
    mac: Polyval,
    /// A partial block, waiting for the next bytes.
    tail: [u8; BLOCK],
    tail_len: usize,
}

impl StreamTag {
    pub(super) fn new(key: &EchoKey) -> Self {
        StreamTag {
            key: *key,
            mac: Polyval::new(&key.0.into()),
            tail: [0; BLOCK],
            tail_len: 0,
        }
    }

    /// An empty tag under the same key: for the echo of the bytes this one tagged.
    pub(super) fn fresh(&self) -> Self {
        StreamTag::new(&self.key)
    }

    pub(super) fn update(&mut self, mut data: &[u8]) {
        if self.tail_len > 0 {
            let take = (BLOCK - self.tail_len).min(data.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&data[..take]);
            self.tail_len += take;
            data = &data[take..];
            if self.tail_len < BLOCK {
                return;
            }
            self.mac.update_padded(&self.tail);
            self.tail_len = 0;
        }
        let whole = data.len() - data.len() % BLOCK;
        // A whole number of blocks: nothing is padded.
        self.mac.update_padded(&data[..whole]);
        let rest = &data[whole..];
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    /// The tag; the last partial block is zero-padded.
    pub(super) fn finalize(mut self) -> Tag {
        self.mac.update_padded(&self.tail[..self.tail_len]);
        self.mac.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tag_of(key: &EchoKey, frames: &[&[u8]]) -> Tag {
        let mut tag = StreamTag::new(key);
        frames.iter().for_each(|f| tag.update(f));
        tag.finalize()
    }

    /// RFC 8452, Appendix A: POLYVAL(H, X_1, X_2), here with the two blocks split across
    /// three uneven frames.
    #[test]
    fn known_answer_across_frames() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let key: [u8; 16] = hex("25629347589242761d31f826ba4b757b").try_into().unwrap();
        let mut data = hex("4f4f95668c83dfb6401762bb2d01a262");
        data.extend(hex("d1a24ddd2721d006bbe45f20d3c9f362"));
        let tag = tag_of(
            &EchoKey::fixed(key),
            &[&data[..5], &data[5..21], &data[21..]],
        );
        assert_eq!(tag.to_vec(), hex("f7a3b47b846119fae5b7866cf5e5b77e"));
    }

    #[test]
    fn keys_differ_between_requests() {
        let a = EchoKey::random().unwrap();
        let b = EchoKey::random().unwrap();
        assert_ne!(a.0, b.0);
    }

    proptest! {
        /// Frame boundaries never change the tag.
        #[test]
        fn framing_does_not_matter(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
            key in any::<[u8; 16]>(),
        ) {
            let key = EchoKey::fixed(key);
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
            cuts.sort_unstable();
            let mut frames = Vec::new();
            let mut at = 0;
            for cut in cuts {
                frames.push(&data[at..cut]);
                at = cut;
            }
            frames.push(&data[at..]);
            prop_assert_eq!(tag_of(&key, &frames), tag_of(&key, &[&data]));
        }

        /// Any change of any byte (same length, the only case that is compared) changes the
        /// tag under a random key.
        #[test]
        fn an_altered_byte_changes_the_tag(
            data in proptest::collection::vec(any::<u8>(), 1..300),
            at in any::<usize>(),
            flip in 1u8..=255,
        ) {
            let key = EchoKey::random().unwrap();
            let mut altered = data.clone();
            let at = at % data.len();
            altered[at] ^= flip;
            prop_assert_ne!(tag_of(&key, &[&data]), tag_of(&key, &[&altered]));
        }
    }
}
