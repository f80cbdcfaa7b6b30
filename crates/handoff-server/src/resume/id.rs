//! [`ResourceId`]: the unguessable name of one resumable operation (docs/PROTOCOL.md part B.7).

use std::fmt;
use std::str::FromStr;

/// The number of random bytes in an id: 128 bits, from the operating system's source.
const ID_BYTES: usize = 16;

/// The id of a resumable operation: 128 bits from the OS random source, written as 32
/// lower-case hex digits in the resource paths.
///
/// Locations must be unguessable (docs/PROTOCOL.md part B.7): with 128 random bits, an
/// attacker who does not see the location has no practical chance of hitting a live one.
///
/// ```
/// use handoff_server::resume::ResourceId;
///
/// let id = ResourceId::mint().unwrap();
/// let text = id.to_string();
/// assert_eq!(text.len(), 32);
/// assert_eq!(text.parse::<ResourceId>().unwrap(), id);
/// assert!("not-an-id".parse::<ResourceId>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId([u8; ID_BYTES]);

impl ResourceId {
    /// A fresh id from the operating system's random source.
    pub fn mint() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; ID_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; ID_BYTES] {
        &self.0
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResourceId({self})")
    }
}

/// A string that is not 32 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidResourceId;

impl fmt::Display for InvalidResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a resource id is 32 lower-case hex digits")
    }
}

impl std::error::Error for InvalidResourceId {}

impl FromStr for ResourceId {
    type Err = InvalidResourceId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.as_bytes();
        if digits.len() != ID_BYTES * 2 {
            return Err(InvalidResourceId);
        }
        let mut bytes = [0u8; ID_BYTES];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        Ok(Self(bytes))
    }
}

fn hex_digit(digit: u8) -> Result<u8, InvalidResourceId> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        _ => Err(InvalidResourceId),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn minted_ids_differ() {
        let a = ResourceId::mint().unwrap();
        let b = ResourceId::mint().unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn upper_case_and_wrong_lengths_are_refused() {
        let id = ResourceId::mint().unwrap().to_string();
        assert!(
            id.to_uppercase().parse::<ResourceId>().is_err() || !id.contains(char::is_alphabetic)
        );
        assert!(id[..31].parse::<ResourceId>().is_err());
        assert!(format!("{id}0").parse::<ResourceId>().is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn round_trips(bytes in any::<[u8; 16]>()) {
            let id = ResourceId(bytes);
            prop_assert_eq!(id.to_string().parse::<ResourceId>(), Ok(id));
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,40}") {
            let _ = text.parse::<ResourceId>();
        }
    }
}
