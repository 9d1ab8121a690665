//! Time: [`Timestamp`] and the injected [`Clock`] port.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A point in time, in whole milliseconds since the Unix epoch (UTC).
///
/// Serialized as an RFC 3339 string (`2026-11-26T09:00:00.000Z`) in JSON output.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From milliseconds since the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(&self) -> i64 {
        self.0
    }

    /// `self + d`, saturating.
    pub fn plus(&self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }

    /// `self - d`, saturating at the earliest time.
    pub fn minus(&self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(ms))
    }

    /// Whole seconds from `self` until `later` (0 when `later` is not after `self`), rounded up.
    pub fn seconds_until(&self, later: Timestamp) -> u64 {
        let ms = later.0.saturating_sub(self.0);
        if ms <= 0 {
            0
        } else {
            (ms as u64).div_ceil(1000)
        }
    }

    /// RFC 3339 in UTC with milliseconds.
    pub fn to_rfc3339(&self) -> String {
        let ms = self.0.rem_euclid(1000);
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            sod / 3600,
            (sod % 3600) / 60,
            sod % 60
        )
    }

    /// A human date for emails: `2026-12-03 09:00 UTC`.
    pub fn to_human(&self) -> String {
        let s = self.to_rfc3339();
        format!("{} {} UTC", &s[0..10], &s[11..16])
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Only our own output is read back (stored responses), so accept the millis form too.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Millis(i64),
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Millis(ms) => Ok(Timestamp(ms)),
            Repr::Text(t) => parse_rfc3339(&t)
                .map(Timestamp)
                .ok_or_else(|| serde::de::Error::custom("invalid timestamp")),
        }
    }
}

fn parse_rfc3339(t: &str) -> Option<i64> {
    // Exactly the form `to_rfc3339` writes.
    let b = t.as_bytes();
    if b.len() != 24
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[19] != b'.'
        || b[23] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    // days_from_civil
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + ms)
}

/// The source of the current time. Injected so tests control expiry, backoff and rate limits.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned reading of the wall clock
    fn now(&self) -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        for ms in [0, 1, 86_399_999, 1_795_683_600_123, 951_782_400_000, -1] {
            let t = Timestamp(ms);
            assert_eq!(
                parse_rfc3339(&t.to_rfc3339()),
                Some(ms),
                "{}",
                t.to_rfc3339()
            );
        }
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp(951_782_400_000).to_rfc3339(),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn plus_and_minus_saturate() {
        let t = Timestamp(10_000);
        assert_eq!(t.minus(Duration::from_secs(3)), Timestamp(7_000));
        assert_eq!(t.plus(Duration::from_secs(3)), Timestamp(13_000));
        assert_eq!(
            Timestamp(i64::MIN + 1).minus(Duration::MAX),
            Timestamp(i64::MIN)
        );
        assert_eq!(t.plus(Duration::MAX), Timestamp(i64::MAX));
    }

    #[test]
    fn seconds_until_rounds_up() {
        let t = Timestamp(1000);
        assert_eq!(t.seconds_until(Timestamp(1001)), 1);
        assert_eq!(t.seconds_until(Timestamp(61_000)), 60);
        assert_eq!(t.seconds_until(Timestamp(0)), 0);
    }
}
