//! Timestamps as audit records and `/status` write them (RFC 3339, microseconds).

use std::time::SystemTime;

/// RFC 3339 time with microseconds.
pub fn rfc3339(t: SystemTime) -> String {
    use std::fmt::Write;
    if let Some(text) = TsText::new(t) {
        return text.as_str().to_owned();
    }
    // Outside 1970..=9999 (a broken clock): humantime's Display fails there, and
    // `to_string` would panic; say what it is instead.
    let mut out = String::new();
    if write!(out, "{}", humantime::format_rfc3339_micros(t)).is_err() || out.is_empty() {
        out = format!("{t:?}");
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS.uuuuuuZ` without an allocation or `fmt`, for times from 1970
/// through 9999 (what `humantime::format_rfc3339_micros` writes for them).
#[derive(Clone, Copy)]
pub struct TsText([u8; 27]);

impl std::fmt::Debug for TsText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TsText {
    /// The text of `t`, or `None` outside 1970..=9999.
    pub fn new(t: SystemTime) -> Option<Self> {
        let since = t.duration_since(SystemTime::UNIX_EPOCH).ok()?;
        let secs = since.as_secs();
        let (days, rem) = (secs / 86_400, secs % 86_400);
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = i64::try_from(days).ok()? + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        if !(1970..=9999).contains(&year) {
            return None;
        }
        let mut b = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |at: usize, width: usize, mut v: u64| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year as u64);
        put(5, 2, month as u64);
        put(8, 2, day as u64);
        put(11, 2, rem / 3_600);
        put(14, 2, rem / 60 % 60);
        put(17, 2, rem % 60);
        put(20, 6, u64::from(since.subsec_micros()));
        Some(Self(b))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}
