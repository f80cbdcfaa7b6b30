//! The harness's deterministic pseudo-random numbers (xorshift64): upload bytes that
//! differ between uploads, and the relay's cut offsets. Not for anything secret.

use bytes::Bytes;

/// The xorshift64 sequence from `state` (made odd, so never zero).
pub(crate) fn xorshift(state: u64) -> impl Iterator<Item = u64> {
    let mut state = state | 1;
    std::iter::repeat_with(move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    })
}

/// `len` bytes that depend on `seed`.
pub(crate) fn bytes(seed: u64, len: usize) -> Bytes {
    let state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    xorshift(state)
        .take(len)
        .map(|word| word as u8)
        .collect::<Vec<u8>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_seeds_differ() {
        assert_eq!(bytes(3, 1000), bytes(3, 1000));
        assert_eq!(bytes(3, 1000)[..10], bytes(3, 10)[..]);
        assert_ne!(bytes(3, 1000), bytes(4, 1000));
        assert!(xorshift(0).take(100).all(|w| w != 0));
    }
}
