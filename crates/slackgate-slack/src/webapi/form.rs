//! Form bodies and query strings: one `name=value` piece decoded as Slack's form parser
//! reads it, and the other names that parser may file it under.

use std::borrow::Cow;

use super::error::CallError;

/// The decoded name and value of one non-empty `&`-separated piece of a form.
pub(super) fn form_pair(piece: &[u8]) -> Result<(Cow<'_, str>, Cow<'_, str>), CallError> {
    let (name, value) = match piece.iter().position(|&b| b == b'=') {
        Some(eq) => (&piece[..eq], &piece[eq + 1..]),
        None => (piece, &[][..]),
    };
    Ok((form_decode(name)?, form_decode(value)?))
}

/// Decodes one form name or value as `form_urlencoded` does (`+` is a space, `%XY` a byte, a
/// `%` without two hex digits itself), refusing bytes that are not UTF-8 where
/// `form_urlencoded` would substitute U+FFFD.
fn form_decode(raw: &[u8]) -> Result<Cow<'_, str>, CallError> {
    let escaped = raw.contains(&b'%');
    if !escaped {
        // Without `%`, decoding only turns `+` into ` `, and both are ASCII: the bytes are
        // UTF-8 exactly when the decoded ones are.
        let text = simdutf8::basic::from_utf8(raw).map_err(|_| CallError::BadUtf8)?;
        if !raw.contains(&b'+') {
            return Ok(Cow::Borrowed(text));
        }
        let mut out = raw.to_vec();
        for b in &mut out {
            if *b == b'+' {
                *b = b' ';
            }
        }
        return String::from_utf8(out)
            .map(Cow::Owned)
            .map_err(|_| CallError::BadUtf8);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (hex(raw.get(i + 1)), hex(raw.get(i + 2))) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| CallError::BadUtf8)
}

/// The value of one hex digit.
pub(super) fn hex(b: Option<&u8>) -> Option<u8> {
    match *b? {
        b @ b'0'..=b'9' => Some(b - b'0'),
        b @ b'a'..=b'f' => Some(b - b'a' + 10),
        b @ b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The other names a PHP-style form parser (Slack's) may file a form argument under: it
/// stops at a NUL, drops leading spaces, turns ` ` and `.` into `_`, and reads `name[...]`
/// as an array `name`, or, when the bracket is not closed, turns the `[` into `_`. `None`
/// where the name is the only reading.
pub(super) fn form_aliases(name: &str) -> [Option<String>; 2] {
    // Without a NUL, a space, a dot or a bracket the name is read only as itself.
    if !name
        .bytes()
        .any(|b| matches!(b, b'\0' | b' ' | b'.' | b'['))
    {
        return [None, None];
    }
    let cut = name.split('\0').next().unwrap_or_default();
    let cut = cut.trim_start_matches(' ');
    let (base, bracket) = match cut.find('[') {
        Some(at) => (&cut[..at], Some(&cut[at + 1..])),
        None => (cut, None),
    };
    let base: String = base
        .chars()
        .map(|c| if c == ' ' || c == '.' { '_' } else { c })
        .collect();
    let unclosed = bracket
        .filter(|rest| !rest.contains(']'))
        .map(|rest| format!("{base}_{rest}"));
    let base = (base != name).then_some(base);
    [base, unclosed.filter(|u| u != name)]
}
