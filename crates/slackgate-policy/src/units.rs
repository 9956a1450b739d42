//! Small value parsers: durations ("5s", "2800ms", "1m", "2h") and rates
//! ("20/s", "600/min", "5/h").

use std::time::Duration;

// === durations ===

/// Why a duration string was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string was empty.
    #[error("empty duration")]
    Empty,
    /// The number had no unit, e.g. "5".
    #[error("missing unit")]
    MissingUnit,
    /// The number part was not a whole number, e.g. "x5s" or "1.5s".
    #[error("not a whole number")]
    BadNumber,
    /// The unit was not one of ms, s, m, h.
    #[error("unknown unit")]
    BadUnit,
    /// The value does not fit in a duration.
    #[error("too large")]
    Overflow,
}

/// Parses a duration written as a whole number followed by `ms`, `s`, `m` or `h`.
///
/// Surrounding whitespace is ignored. Zero is accepted here; callers reject it
/// where it makes no sense.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(DurationError::BadNumber);
    }
    if unit.is_empty() {
        return Err(DurationError::MissingUnit);
    }
    let n: u64 = num.parse().map_err(|_| DurationError::Overflow)?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ if unit.starts_with('.') => return Err(DurationError::BadNumber),
        _ => return Err(DurationError::BadUnit),
    };
    n.checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or(DurationError::Overflow)
}

// === rates ===

/// A token refill rate, parsed from "20/s", "600/min" or "5/h".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second. Always finite and greater than zero when
    /// produced by [`Rate::parse`].
    pub tokens_per_sec: f64,
}

/// Why a rate string was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// No "/unit" part, e.g. "20".
    #[error("missing time unit")]
    MissingUnit,
    /// The count was not a whole number, e.g. "x/s".
    #[error("count is not a whole number")]
    BadCount,
    /// The count was zero: nothing would ever be allowed.
    #[error("count is zero")]
    Zero,
    /// The unit was not s, min or h (or their long forms).
    #[error("unknown time unit")]
    BadUnit,
}

impl Rate {
    /// Parses `COUNT/UNIT` where COUNT is a whole number above zero and UNIT is
    /// `s`/`sec`/`second`, `m`/`min`/`minute` or `h`/`hour`.
    pub fn parse(s: &str) -> Result<Rate, RateError> {
        let (count, unit) = s.trim().split_once('/').ok_or(RateError::MissingUnit)?;
        let count = count.trim();
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RateError::BadCount);
        }
        let n: u32 = count.parse().map_err(|_| RateError::BadCount)?;
        if n == 0 {
            return Err(RateError::Zero);
        }
        let secs: f64 = match unit.trim() {
            "s" | "sec" | "second" => 1.0,
            "m" | "min" | "minute" => 60.0,
            "h" | "hour" => 3600.0,
            _ => return Err(RateError::BadUnit),
        };
        Ok(Rate {
            tokens_per_sec: f64::from(n) / secs,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2800ms"), Ok(Duration::from_millis(2800)));
        assert_eq!(parse_duration("300s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration(" 0s "), Ok(Duration::ZERO));
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("5"), Err(DurationError::MissingUnit));
        assert_eq!(parse_duration("s"), Err(DurationError::BadNumber));
        assert_eq!(parse_duration("1.5s"), Err(DurationError::BadNumber));
        assert_eq!(parse_duration("5d"), Err(DurationError::BadUnit));
        assert_eq!(parse_duration("5 s"), Err(DurationError::BadUnit));
        assert_eq!(
            parse_duration("99999999999999999999s"),
            Err(DurationError::Overflow)
        );
        assert_eq!(
            parse_duration("18446744073709551615h"),
            Err(DurationError::Overflow)
        );
    }

    #[test]
    fn rates() {
        assert_eq!(Rate::parse("20/s").map(|r| r.tokens_per_sec), Ok(20.0));
        assert_eq!(Rate::parse("600/min").map(|r| r.tokens_per_sec), Ok(10.0));
        assert_eq!(
            Rate::parse("5/h").map(|r| r.tokens_per_sec),
            Ok(5.0 / 3600.0)
        );
        assert_eq!(Rate::parse("20"), Err(RateError::MissingUnit));
        assert_eq!(Rate::parse("x/s"), Err(RateError::BadCount));
        assert_eq!(Rate::parse("-1/s"), Err(RateError::BadCount));
        assert_eq!(Rate::parse("0/s"), Err(RateError::Zero));
        assert_eq!(Rate::parse("20/fortnight"), Err(RateError::BadUnit));
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,40}") {
            let _ = parse_duration(&s);
            let _ = Rate::parse(&s);
        }

        #[test]
        fn rate_roundtrip(n in 1u32..1_000_000) {
            let r = Rate::parse(&format!("{n}/s")).map(|r| r.tokens_per_sec);
            proptest::prop_assert_eq!(r, Ok(f64::from(n)));
        }
    }
}
