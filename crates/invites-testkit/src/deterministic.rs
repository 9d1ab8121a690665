//! Deterministic time and randomness for tests: a clock that moves only when told, and
//! reproducible "random" ids and tokens.

use invites_core::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A clock that moves only when told. Clones share the time.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// Starts at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start.as_millis())))
    }

    /// Starts at 2026-11-26T09:00:00Z.
    pub fn standard() -> Self {
        Self::new(Timestamp::from_millis(1_795_683_600_000))
    }

    /// Moves forward.
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(
            i64::try_from(d.as_millis()).expect("small duration"),
            Ordering::SeqCst,
        );
    }

    /// Sets the time.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.as_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// Reproducible "randomness" (SplitMix64) for deterministic ids and tokens in tests. Never
/// use it in production: tokens would be guessable.
#[derive(Clone, Debug)]
pub struct SeededRandom(Arc<AtomicU64>);

impl SeededRandom {
    /// From a seed.
    pub fn new(seed: u64) -> Self {
        SeededRandom(Arc::new(AtomicU64::new(seed)))
    }
}

impl RandomSource for SeededRandom {
    fn fill(&self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let mut z = self
                .0
                .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::SeqCst)
                .wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// Deterministic ids for fixtures: `id(7)` is the UUID with value 7.
pub(crate) fn id(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_random_is_reproducible() {
        let a = SeededRandom::new(7);
        let b = SeededRandom::new(7);
        assert_eq!(a.uuid(), b.uuid());
        assert_ne!(a.uuid(), SeededRandom::new(8).uuid());
    }

    #[test]
    fn manual_clock_moves_when_told() {
        let c = ManualClock::standard();
        let t = c.now();
        c.advance(Duration::from_secs(2));
        assert_eq!(c.now().as_millis() - t.as_millis(), 2000);
    }
}
