//! Tokens and the randomness they come from: the injected [`RandomSource`] port (ids too),
//! [`AcceptToken`] and its stored [`TokenHash`].

use sha2::{Digest, Sha256};
use std::fmt;
use uuid::Uuid;

/// A source of random bytes. Injected so tests can make ids and tokens reproducible.
///
/// Production code uses [`OsRandom`]; accept tokens are only as strong as this source.
pub trait RandomSource: Send + Sync + fmt::Debug + 'static {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);

    /// A random (version 4) UUID.
    fn uuid(&self) -> Uuid {
        let mut b = [0u8; 16];
        self.fill(&mut b);
        uuid::Builder::from_random_bytes(b).into_uuid()
    }

    /// `n` random (version 4) UUIDs from ONE [`fill`](RandomSource::fill) (one system call
    /// for [`OsRandom`] instead of `n`); the same ids as `n` calls of
    /// [`uuid`](RandomSource::uuid) on a source that hands out the same bytes.
    fn uuids(&self, n: usize) -> Vec<Uuid> {
        let mut bytes = vec![0u8; 16 * n];
        self.fill(&mut bytes);
        bytes
            .chunks_exact(16)
            .map(|b| {
                let b: [u8; 16] = b.try_into().expect("chunks of 16");
                uuid::Builder::from_random_bytes(b).into_uuid()
            })
            .collect()
    }
}

/// The operating system's random source (`getrandom`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        // The OS source failing is not recoverable and must never degrade to weak tokens.
        getrandom::fill(buf).expect("the operating system random source failed");
    }
}

/// A secret accept token: 256 random bits, written as 64 lowercase hex characters (URL-safe).
///
/// Only its [`TokenHash`] is ever stored. `Debug` does not print the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AcceptToken(String);

impl AcceptToken {
    /// Draws a new token from `rng`.
    pub fn generate(rng: &dyn RandomSource) -> Self {
        let mut b = [0u8; 32];
        rng.fill(&mut b);
        AcceptToken(hex(&b))
    }

    /// Length of every token this crate issues: 64 lowercase hex characters.
    pub const LEN: usize = 64;

    /// Wraps a token received from a user (an accept link) without checking its shape: an
    /// ill-formed token simply matches no stored hash. Prefer [`AcceptToken::from_link`] for
    /// untrusted input, which refuses a wrong shape before any hashing.
    pub fn from_user(raw: &str) -> Self {
        AcceptToken(raw.trim().to_owned())
    }

    /// A token received from a user, if it has the shape of one this crate issues
    /// ([`AcceptToken::LEN`] lowercase hex characters, surrounding whitespace ignored).
    /// The length is checked before anything else, so oversized input costs nothing.
    pub fn from_link(raw: &str) -> Option<Self> {
        // Allow a little surrounding whitespace (a pasted link), nothing more.
        if raw.len() > Self::LEN + 16 {
            return None;
        }
        let t = raw.trim();
        (t.len() == Self::LEN && t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| AcceptToken(t.to_owned()))
    }

    /// The secret text, for building the accept link.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 hash that is stored and looked up.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for AcceptToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AcceptToken({})", crate::REDACTED)
    }
}

/// The SHA-256 of an [`AcceptToken`]: what stores keep and look up.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", &self.to_hex()[..8])
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hashed() {
        let a = AcceptToken::generate(&OsRandom);
        let b = AcceptToken::generate(&OsRandom);
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 64);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a.hash(), AcceptToken::from_user(a.expose()).hash());
        assert_ne!(a.hash(), b.hash());
        assert!(!format!("{a:?}").contains(a.expose()));
        // Known SHA-256 vector.
        assert_eq!(
            AcceptToken::from_user("abc").hash().to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn user_tokens_are_shape_checked() {
        let a = AcceptToken::generate(&OsRandom);
        assert_eq!(AcceptToken::from_link(a.expose()), Some(a.clone()));
        assert_eq!(
            AcceptToken::from_link(&format!("  {}\n", a.expose())),
            Some(a.clone())
        );
        let upper = a.expose().to_ascii_uppercase();
        for bad in [
            "",
            "abc",
            &a.expose()[..63],
            &format!("{}0", a.expose()),
            upper.as_str(),
            &"g".repeat(64),
            &"a".repeat(1 << 20),
        ] {
            assert!(AcceptToken::from_link(bad).is_none(), "{}", bad.len());
        }
    }

    #[test]
    fn uuids_are_v4() {
        let u = OsRandom.uuid();
        assert_eq!(u.get_version_num(), 4);
    }
}
