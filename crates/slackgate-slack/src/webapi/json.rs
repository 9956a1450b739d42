//! The JSON scanner: the top-level members of a JSON body with their byte spans, accepting
//! exactly what `serde_json` accepts as an object (see the module doc of `webapi`).

use std::borrow::Cow;
use std::ops::Range;

use super::error::CallError;
use super::form::hex;

/// The deepest nesting of arrays and objects `serde_json` accepts: its recursion limit of
/// 128 fails on the 128th open bracket.
const MAX_JSON_DEPTH: u32 = 127;

/// One member of a JSON body's top-level object, with byte offsets into the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Member<'a> {
    /// The decoded key.
    pub(super) key: Cow<'a, str>,
    /// From the key's opening quote to the value's last byte.
    pub(super) span: Range<usize>,
    /// The value.
    pub(super) value: Range<usize>,
    /// The comma after the value, when another member follows.
    pub(super) comma: Option<usize>,
}

/// The members of a body that must be exactly one JSON object, in order (repeated keys
/// included).
pub(super) fn scan_object(body: &[u8]) -> Result<Vec<Member<'_>>, CallError> {
    let text = simdutf8::basic::from_utf8(body).map_err(|_| CallError::BadUtf8)?;
    let mut scan = Scanner { text, pos: 0 };
    scan.ws();
    if scan.peek() != Some(b'{') {
        scan.value(0)?;
        scan.ws();
        return Err(if scan.pos == body.len() {
            CallError::NotAnObject
        } else {
            CallError::BadJson
        });
    }
    scan.pos += 1;
    scan.ws();
    let mut members = Vec::new();
    if scan.peek() == Some(b'}') {
        scan.pos += 1;
    } else {
        loop {
            let start = scan.pos;
            let key = scan.key()?;
            scan.ws();
            let value_start = scan.pos;
            scan.value(1)?;
            let value = value_start..scan.pos;
            scan.ws();
            let comma = match scan.next()? {
                b',' => Some(scan.pos - 1),
                b'}' => None,
                _ => return Err(CallError::BadJson),
            };
            members.push(Member {
                key,
                span: start..value.end,
                value,
                comma,
            });
            if comma.is_none() {
                break;
            }
            scan.ws();
        }
    }
    scan.ws();
    if scan.pos != body.len() {
        return Err(CallError::BadJson);
    }
    Ok(members)
}

/// A JSON value's text when it is a string; `None` for any other value.
pub(super) fn json_string(raw: &[u8]) -> Result<Option<Cow<'_, str>>, CallError> {
    if raw.first() != Some(&b'"') {
        return Ok(None);
    }
    let text = std::str::from_utf8(raw).map_err(|_| CallError::BadJson)?;
    let mut scan = Scanner { text, pos: 0 };
    scan.string().map(Some)
}

/// Hands each item of a JSON array of strings to `each`, in order, stopping at its first
/// error; `false` when the value is not an array or an item is not a string (items before
/// it were handed over).
pub(super) fn json_string_items(
    raw: &[u8],
    mut each: impl FnMut(Cow<'_, str>) -> Result<(), CallError>,
) -> Result<bool, CallError> {
    let text = std::str::from_utf8(raw).map_err(|_| CallError::BadJson)?;
    let mut scan = Scanner { text, pos: 0 };
    if scan.next()? != b'[' {
        return Ok(false);
    }
    scan.ws();
    if scan.peek() == Some(b']') {
        return Ok(true);
    }
    loop {
        scan.ws();
        if scan.peek() != Some(b'"') {
            return Ok(false);
        }
        each(scan.string()?)?;
        scan.ws();
        match scan.next()? {
            b',' => {}
            b']' => return Ok(true),
            _ => return Err(CallError::BadJson),
        }
    }
}

/// A cursor over UTF-8 text that validates JSON by `serde_json`'s grammar.
struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn next(&mut self) -> Result<u8, CallError> {
        let b = self.peek().ok_or(CallError::BadJson)?;
        self.pos += 1;
        Ok(b)
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// An object key and the `:` after it, whitespace around the colon included.
    fn key(&mut self) -> Result<Cow<'a, str>, CallError> {
        if self.peek() != Some(b'"') {
            return Err(CallError::BadJson);
        }
        let key = self.string()?;
        self.ws();
        if self.next()? != b':' {
            return Err(CallError::BadJson);
        }
        Ok(key)
    }

    /// Skips one value (leading whitespace included) with `outer` containers open around it.
    /// Iterative, so hostile nesting cannot exhaust the stack; bit `i` of `objects` says
    /// whether the `i`-th container this value opened is an object.
    fn value(&mut self, outer: u32) -> Result<(), CallError> {
        let mut objects: u128 = 0;
        let mut depth: u32 = 0;
        'value: loop {
            self.ws();
            match self.peek() {
                Some(open @ (b'{' | b'[')) => {
                    if outer + depth + 1 > MAX_JSON_DEPTH {
                        return Err(CallError::BadJson);
                    }
                    self.pos += 1;
                    let object = open == b'{';
                    if object {
                        objects |= 1 << depth;
                    } else {
                        objects &= !(1 << depth);
                    }
                    depth += 1;
                    self.ws();
                    if self.peek() == Some(if object { b'}' } else { b']' }) {
                        self.pos += 1;
                        depth -= 1;
                    } else {
                        if object {
                            self.key()?;
                        }
                        continue 'value;
                    }
                }
                Some(b'"') => {
                    self.skip_string()?;
                }
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                _ => return Err(CallError::BadJson),
            }
            // After a value: close containers until one continues with a comma.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                self.ws();
                let object = (objects >> (depth - 1)) & 1 == 1;
                match (self.next()?, object) {
                    (b',', _) => {
                        if object {
                            self.ws();
                            self.key()?;
                        }
                        continue 'value;
                    }
                    (b'}', true) | (b']', false) => depth -= 1,
                    _ => return Err(CallError::BadJson),
                }
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), CallError> {
        match self.bytes().get(self.pos..self.pos + word.len()) {
            Some(found) if found == word => {
                self.pos += word.len();
                Ok(())
            }
            _ => Err(CallError::BadJson),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number by JSON's grammar. One with a fraction, an exponent or very many digits is
    /// also read by `serde_json`, which refuses numbers out of `f64`'s range.
    fn number(&mut self) -> Result<(), CallError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return Err(CallError::BadJson),
        }
        let mut plain = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            plain = false;
            if self.digits() == 0 {
                return Err(CallError::BadJson);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            plain = false;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(CallError::BadJson);
            }
        }
        // An integer of up to 300 digits is far inside f64's range (about 1.8e308).
        if !plain || self.pos - start > 300 {
            let token = self
                .bytes()
                .get(start..self.pos)
                .ok_or(CallError::BadJson)?;
            serde_json::from_slice::<serde_json::Number>(token).map_err(|_| CallError::BadJson)?;
        }
        Ok(())
    }

    /// Skips a string starting at its opening quote; returns whether it has escapes.
    fn skip_string(&mut self) -> Result<bool, CallError> {
        self.pos += 1;
        let mut escaped = false;
        loop {
            let rest = self.bytes().get(self.pos..).unwrap_or_default();
            let at = rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .ok_or(CallError::BadJson)?;
            self.pos += at;
            match self.next()? {
                b'"' => return Ok(escaped),
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                _ => return Err(CallError::BadJson),
            }
        }
    }

    /// Checks an escape after its backslash; returns the code unit of a `\u` escape.
    fn escape(&mut self) -> Result<Option<u32>, CallError> {
        match self.next()? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(None),
            b'u' => {
                let unit = self.hex4()?;
                if (0xDC00..=0xDFFF).contains(&unit) {
                    return Err(CallError::BadJson);
                }
                if !(0xD800..=0xDBFF).contains(&unit) {
                    return Ok(Some(unit));
                }
                // A leading surrogate must be followed by a trailing one.
                if self.next()? != b'\\' || self.next()? != b'u' {
                    return Err(CallError::BadJson);
                }
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(CallError::BadJson);
                }
                Ok(Some(0x1_0000 + ((unit - 0xD800) << 10) + (low - 0xDC00)))
            }
            _ => Err(CallError::BadJson),
        }
    }

    fn hex4(&mut self) -> Result<u32, CallError> {
        let mut unit = 0u32;
        for _ in 0..4 {
            let digit = hex(self.bytes().get(self.pos)).ok_or(CallError::BadJson)?;
            self.pos += 1;
            unit = unit << 4 | u32::from(digit);
        }
        Ok(unit)
    }

    /// A string starting at its opening quote, decoded; borrowed when it has no escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, CallError> {
        let start = self.pos;
        let escaped = self.skip_string()?;
        let inner = self
            .text
            .get(start + 1..self.pos - 1)
            .ok_or(CallError::BadJson)?;
        if !escaped {
            return Ok(Cow::Borrowed(inner));
        }
        let mut out = String::with_capacity(inner.len());
        let mut unescape = Scanner {
            text: inner,
            pos: 0,
        };
        while let Some(at) = unescape.text.get(unescape.pos..).and_then(|r| r.find('\\')) {
            out.push_str(
                unescape
                    .text
                    .get(unescape.pos..unescape.pos + at)
                    .ok_or(CallError::BadJson)?,
            );
            unescape.pos += at + 1;
            let letter = unescape.peek();
            match unescape.escape()? {
                Some(unit) => out.push(char::from_u32(unit).ok_or(CallError::BadJson)?),
                None => out.push(match letter {
                    Some(b'b') => '\u{8}',
                    Some(b'f') => '\u{c}',
                    Some(b'n') => '\n',
                    Some(b'r') => '\r',
                    Some(b't') => '\t',
                    Some(other) => char::from(other),
                    None => return Err(CallError::BadJson),
                }),
            }
        }
        out.push_str(unescape.text.get(unescape.pos..).unwrap_or_default());
        Ok(Cow::Owned(out))
    }
}
