//! Small HTTP/1.1 byte helpers shared by the fast path (`front.rs`), the pipeline
//! (`gateway.rs`) and the upstream client (`client.rs`).

use std::ops::Range;

/// Appends `n` in decimal (no `fmt`, no allocation).
pub(crate) fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends one `name: value` header line.
pub(crate) fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A length field: 1 to 19 ASCII digits (always fits a `u64`), nothing else.
pub(crate) fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Where `part` lies inside `base`, if it is a sub-slice of it (e.g. a header a parser
/// returned, or a string borrowed from a body); `None` for memory elsewhere.
pub(crate) fn span_in(base: &[u8], part: &[u8]) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
    let end = start.checked_add(part.len())?;
    let inside = base.get(start..end)?;
    (inside.as_ptr() == part.as_ptr()).then_some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_decimal_matches_to_string() {
        for n in [0, 1, 9, 10, 99, 100, 65_535, 1_048_576, u64::MAX] {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }

    #[test]
    fn parse_decimal_takes_only_plain_digits() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"1048576"), Some(1_048_576));
        assert_eq!(
            parse_decimal(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        for bad in [
            &b""[..],
            b" 1",
            b"1 ",
            b"+1",
            b"-1",
            b"0x1",
            b"1,2",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_decimal(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn span_in_finds_sub_slices_only() {
        let base = b"hello world".to_vec();
        assert_eq!(span_in(&base, &base[6..]), Some(6..11));
        assert_eq!(span_in(&base, &base[..0]), Some(0..0));
        let other = b"world".to_vec();
        assert_eq!(span_in(&base, &other), None);
        assert_eq!(span_in(&base[..5], &base[3..8]), None, "runs past the end");
    }
}
