//! The tag of the echo check (part A, intermediary 6): a keyed hash of a byte stream.
//!
//! The layer must know that an origin echoed exactly the bytes it was forwarded before the
//! frame that completes the echo goes to another origin. It keeps no copy of them; it keeps
//! a 128-bit tag of the forwarded bytes and compares it with the tag of the echo
//! ([`EchoCheck`](super::verify::EchoCheck)).
//!
//! The tag is HighwayHash-128 (the `highway` crate: AVX2, SSE4.1 or NEON where the CPU has
//! them, portable code elsewhere) under a 256-bit key drawn at random for each client
//! request. Frame boundaries do not matter: the hasher buffers a partial 32-byte packet.
//!
//! Why an origin cannot make a different echo pass, and why HighwayHash rather than a
//! universal hash: see "The echo check" in the [module docs](super).

use highway::{HighwayHash, HighwayHasher, Key};

/// The per-request key. `None` if the system's random source failed: such a request is
/// forwarded as usual but never replayed (a `379` is answered `502`).
#[derive(Clone, Copy)]
pub(super) struct EchoKey([u64; 4]);

impl EchoKey {
    pub(super) fn random() -> Option<Self> {
        let mut bytes = [0u8; 32];
        match getrandom::fill(&mut bytes) {
            Ok(()) => {
                let word = |i: usize| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
                    u64::from_le_bytes(w)
                };
                Some(EchoKey([word(0), word(1), word(2), word(3)]))
            }
            Err(err) => {
                tracing::error!(error = %err, "no random echo key: this request cannot be replayed");
                None
            }
        }
    }

    #[cfg(test)]
    pub(super) fn fixed(key: [u64; 4]) -> Self {
        EchoKey(key)
    }
}

/// A tag of the bytes seen so far.
pub(super) type Tag = [u64; 2];

/// The running tag of one stream of bytes: the forwarded bytes of an attempt, or an echo.
#[derive(Clone)]
pub(super) struct StreamTag {
    /// Kept so that the tag of an echo is made under the same key as the forwarded bytes'.
    key: EchoKey,
    hasher: HighwayHasher,
}

impl StreamTag {
    pub(super) fn new(key: &EchoKey) -> Self {
        StreamTag {
            key: *key,
            hasher: HighwayHasher::new(Key(key.0)),
        }
    }

    /// An empty tag under the same key: for the echo of the bytes this one tagged.
    pub(super) fn fresh(&self) -> Self {
        StreamTag::new(&self.key)
    }

    pub(super) fn update(&mut self, data: &[u8]) {
        self.hasher.append(data);
    }

    pub(super) fn finalize(self) -> Tag {
        self.hasher.finalize128()
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

    #[test]
    fn keys_differ_between_requests() {
        let a = EchoKey::random().unwrap();
        let b = EchoKey::random().unwrap();
        assert_ne!(a.0, b.0);
    }

    #[test]
    fn the_tag_depends_on_the_key() {
        let data = b"the same bytes under two keys";
        let a = tag_of(&EchoKey::fixed([1, 2, 3, 4]), &[data]);
        let b = tag_of(&EchoKey::fixed([1, 2, 3, 5]), &[data]);
        assert_ne!(a, b);
    }

    #[test]
    fn a_fresh_tag_uses_the_same_key() {
        let key = EchoKey::random().unwrap();
        let mut forwarded = StreamTag::new(&key);
        forwarded.update(b"abc");
        let mut echo = forwarded.fresh();
        echo.update(b"abc");
        assert_eq!(echo.finalize(), forwarded.finalize());
    }

    proptest! {
        /// Frame boundaries never change the tag.
        #[test]
        fn framing_does_not_matter(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
            key in any::<[u64; 4]>(),
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
