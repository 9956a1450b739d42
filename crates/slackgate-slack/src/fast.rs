//! A quick reader for the usual shape of an Events API body, tried before `serde_json`.
//!
//! It reads the same fields as [`EventsEnvelope`] and validates the whole document as
//! strict JSON, but it only answers when the answer is plain: every string it keeps is
//! free of escapes, every field it reads appears once with the expected type, objects and
//! arrays nest at most [`MAX_DEPTH`] deep, and nothing but whitespace follows the body.
//! Anything else, valid or not, makes it return `None`, and the caller asks `serde_json`,
//! whose answer (value or error) is then the only one. So it never accepts what `serde_json`
//! rejects, and where both accept they read the same values (a differential property test
//! holds it to that).
//!
//! It exists because the serde reader was about a fifth of the gateway's own instructions
//! per request (callgrind); most of a Slack body is text nobody reads, which this skips with
//! `memchr` instead of byte by byte.

use std::borrow::Cow;

use crate::custody::hint::span_in;
use crate::custody::json::{Role, Spot};
use crate::wire::{text, Authorization, Event, EventItem, EventsEnvelope, Function, Obj, Ref, Str};

/// The deepest nesting of objects and arrays the quick reader follows.
pub(crate) const MAX_DEPTH: u32 = 64;

/// Reads an Events API envelope, or `None` when the body is not plain (see the module docs).
///
/// With it, where secret custody's fields are (`event.bot_access_token`,
/// `event.function_execution_id`): having read the body whole, with every key of the
/// envelope and the event unescaped and read once, the reader vouches these are the only
/// values at custody's paths (`custody::Spot`).
pub(crate) fn events_envelope(text: &str) -> Option<(EventsEnvelope<'_>, Vec<Spot>)> {
    let mut scan = Scan {
        s: text.as_bytes(),
        text,
        i: 0,
        depth: 0,
        spots: Vec::new(),
    };
    let env = scan.envelope()?;
    scan.ws();
    (scan.i == scan.s.len()).then_some((env, scan.spots))
}

/// How many 8-byte words of a string are checked in place before searching with `memchr`.
const SHORT_WORDS: usize = 4;

/// The high bit of each byte of `word` that is a quote, a backslash or a control byte (below
/// 0x20).
/// A lane above a flagged one may be flagged falsely (a borrow), never one below it.
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let zero = |v: u64| v.wrapping_sub(ONES) & !v;
    (zero(quote) | zero(backslash) | (word.wrapping_sub(ONES * 0x20) & !word)) & HIGH
}

/// A key of an object: its text when it has no escapes; `None` for an escaped key, which
/// the quick reader cannot compare with field names.
type Key<'a> = Option<&'a str>;

struct Scan<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
    depth: u32,
    /// Custody's fields, where they are.
    spots: Vec<Spot>,
}

/// Stores a field's value unless the field was seen before (then the quick reader gives up,
/// as `serde_json` would fail on the duplicate).
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

impl<'a> Scan<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.i += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i.checked_add(word.len())?;
        (self.s.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// A JSON number, checked against the grammar and skipped.
    fn number(&mut self) -> Option<()> {
        let digits = |scan: &mut Self| {
            let start = scan.i;
            while scan.s.get(scan.i).is_some_and(u8::is_ascii_digit) {
                scan.i += 1;
            }
            (scan.i > start).then_some(())
        };
        if self.s.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.s.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => digits(self)?,
            _ => return None,
        }
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            digits(self)?;
        }
        if let Some(b'e' | b'E') = self.s.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.s.get(self.i) {
                self.i += 1;
            }
            digits(self)?;
        }
        Some(())
    }

    /// A string starting at the next non-whitespace byte. Returns its text when it has no
    /// escapes, `Some(None)` when it has valid ones; `None` for anything invalid.
    ///
    /// Inlined: most strings are keys and ids that end within the first words, and this
    /// part needs few registers; the rest is [`Scan::string_rest`].
    #[inline(always)]
    fn string(&mut self) -> Option<Key<'a>> {
        self.eat(b'"')?;
        let start = self.i;
        // Keys and ids are short: look at the first words eight bytes at a time before
        // calling memchr. A word with a quote, a backslash or a control byte stops the scan
        // at the first such byte (the lowest flagged lane is always a true match).
        let mut i = start;
        for _ in 0..SHORT_WORDS {
            let Some(word) = self.s.get(i..).and_then(<[u8]>::first_chunk::<8>) else {
                break;
            };
            let flags = special_bytes(u64::from_le_bytes(*word));
            if flags == 0 {
                i += 8;
                continue;
            }
            i += (flags.trailing_zeros() / 8) as usize;
            if self.s.get(i) == Some(&b'"') {
                self.i = i + 1;
                // The quotes are ASCII, so the slice between them lies on character
                // boundaries.
                return Some(Some(self.text.get(start..i)?));
            }
            break;
        }
        self.i = i;
        self.string_rest(start)
    }

    /// The rest of a string from `self.i` (no special byte before it), which started at
    /// `start`: see [`Scan::string`].
    #[inline(never)]
    fn string_rest(&mut self, start: usize) -> Option<Key<'a>> {
        let mut escaped = false;
        loop {
            let rest = self.s.get(self.i..)?;
            let at = memchr::memchr2(b'"', b'\\', rest)?;
            let end = self.i + at;
            // Raw control characters are not allowed inside JSON strings. (A fold without
            // an early exit, so the compiler checks many bytes per instruction.)
            let span = self.s.get(self.i..end)?;
            if span.iter().fold(0u8, |seen, &b| seen | u8::from(b < 0x20)) != 0 {
                return None;
            }
            self.i = end + 1;
            if self.s.get(end) == Some(&b'"') {
                break;
            }
            escaped = true;
            match self.s.get(self.i)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                b'u' => {
                    let hex = self.s.get(self.i + 1..self.i + 5)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    self.i += 5;
                }
                _ => return None,
            }
        }
        if escaped {
            return Some(None);
        }
        // The quotes are ASCII, so the slice between them lies on character boundaries.
        Some(Some(self.text.get(start..self.i - 1)?))
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// An object; `field` reads (or skips) the value of each key.
    fn object(&mut self, mut field: impl FnMut(&mut Self, Key<'a>) -> Option<()>) -> Option<()> {
        self.container(b'{', b'}', |scan| {
            let key = scan.string()?;
            scan.eat(b':')?;
            field(scan, key)
        })
    }

    /// An array; `item` reads (or skips) each element.
    fn array(&mut self, item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.container(b'[', b']', item)
    }

    /// `open`, members separated by commas (no trailing one), `close`.
    fn container(
        &mut self,
        open: u8,
        close: u8,
        mut member: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        self.enter()?;
        if self.peek()? == close {
            self.i += 1;
        } else {
            loop {
                member(self)?;
                match self.peek()? {
                    b',' => self.i += 1,
                    b if b == close => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// Any value, validated and skipped.
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(|scan, _| scan.skip()),
            b'[' => self.array(Self::skip),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// `null` (then `Some(None)`), or the value `read` reads, as serde reads an `Option`.
    fn nullable<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        read(self).map(Some)
    }

    /// An optional string without escapes, as `Option<Str>` reads it.
    fn opt_str(&mut self) -> Option<Option<Str<'a>>> {
        self.nullable(|scan| Some(Str(Cow::Borrowed(scan.string()??))))
    }

    /// Notes where `value` (a string just read, borrowed from the text) is, for custody.
    fn spot(&mut self, value: &Option<Str<'a>>, role: Role) -> Option<()> {
        if let Some(Str(Cow::Borrowed(s))) = value {
            let start = span_in(self.s, s.as_bytes())?.start;
            self.spots.push(Spot {
                at: start.checked_sub(1)?..start + s.len() + 1,
                role,
                object: 0,
            });
        }
        Some(())
    }

    /// An optional boolean.
    fn opt_bool(&mut self) -> Option<Option<bool>> {
        match self.peek()? {
            b'n' => self.literal(b"null").map(|()| None),
            b't' => self.literal(b"true").map(|()| Some(true)),
            b'f' => self.literal(b"false").map(|()| Some(false)),
            _ => None,
        }
    }

    /// An optional entity reference: an id string or an object with `id`, `team_id` and
    /// `enterprise_id` (each empty string counting as absent, as [`Ref`] reads them).
    fn opt_ref(&mut self) -> Option<Option<Ref<'a>>> {
        self.nullable(|scan| {
            if scan.peek()? == b'"' {
                return Some(Ref {
                    id: text(scan.opt_str()?),
                    ..Ref::default()
                });
            }
            let (mut id, mut team_id, mut enterprise_id) = (None, None, None);
            scan.object(|scan, key| match key? {
                "id" => once(&mut id, scan.opt_str()?),
                "team_id" => once(&mut team_id, scan.opt_str()?),
                "enterprise_id" => once(&mut enterprise_id, scan.opt_str()?),
                _ => scan.skip(),
            })?;
            Some(Ref {
                id: text(id.flatten()),
                team_id: text(team_id.flatten()),
                enterprise_id: text(enterprise_id.flatten()),
            })
        })
    }

    fn event(&mut self) -> Option<Event<'a>> {
        let (mut kind, mut user, mut channel, mut channel_id, mut item) =
            (None, None, None, None, None);
        let (mut function, mut function_execution_id, mut bot_access_token) = (None, None, None);
        self.object(|scan, key| match key? {
            "type" => once(&mut kind, scan.opt_str()?),
            "user" => once(&mut user, scan.opt_ref()?),
            "channel" => once(&mut channel, scan.opt_ref()?),
            "channel_id" => once(&mut channel_id, scan.opt_str()?),
            "item" => {
                let value = scan.nullable(|scan| {
                    let mut channel = None;
                    scan.object(|scan, key| match key? {
                        "channel" => once(&mut channel, scan.opt_ref()?),
                        _ => scan.skip(),
                    })?;
                    Some(Obj(EventItem {
                        channel: channel.flatten(),
                    }))
                })?;
                once(&mut item, value)
            }
            "function" => {
                let value = scan.nullable(|scan| {
                    let mut callback_id = None;
                    scan.object(|scan, key| match key? {
                        "callback_id" => once(&mut callback_id, scan.opt_str()?),
                        _ => scan.skip(),
                    })?;
                    Some(Obj(Function {
                        callback_id: callback_id.flatten(),
                    }))
                })?;
                once(&mut function, value)
            }
            "function_execution_id" => {
                let value = scan.opt_str()?;
                scan.spot(&value, Role::ExecutionId)?;
                once(&mut function_execution_id, value)
            }
            // Not a fact; read (once, a string or null) for custody to know where it is.
            "bot_access_token" => {
                let value = scan.opt_str()?;
                scan.spot(&value, Role::WorkflowToken)?;
                once(&mut bot_access_token, value)
            }
            _ => scan.skip(),
        })?;
        Some(Event {
            kind: kind.flatten(),
            user: user.flatten(),
            channel: channel.flatten(),
            channel_id: channel_id.flatten(),
            item: item.flatten(),
            function: function.flatten(),
            function_execution_id: function_execution_id.flatten(),
        })
    }

    fn authorization(&mut self) -> Option<Authorization<'a>> {
        let (mut enterprise_id, mut team_id, mut is_enterprise_install) = (None, None, None);
        self.object(|scan, key| match key? {
            "enterprise_id" => once(&mut enterprise_id, scan.opt_str()?),
            "team_id" => once(&mut team_id, scan.opt_str()?),
            "is_enterprise_install" => once(&mut is_enterprise_install, scan.opt_bool()?),
            _ => scan.skip(),
        })?;
        Some(Authorization {
            enterprise_id: enterprise_id.flatten(),
            team_id: team_id.flatten(),
            is_enterprise_install: is_enterprise_install.flatten(),
        })
    }

    fn envelope(&mut self) -> Option<EventsEnvelope<'a>> {
        let mut kind = None;
        let mut challenge = None;
        let mut api_app_id = None;
        let mut team_id = None;
        let mut enterprise_id = None;
        let mut context_team_id = None;
        let mut context_enterprise_id = None;
        let mut event_id = None;
        let mut is_enterprise_install = None;
        let mut authorizations = None;
        let mut event = None;
        self.object(|scan, key| match key? {
            "type" => once(&mut kind, scan.opt_str()?),
            "challenge" => once(&mut challenge, scan.opt_str()?),
            "api_app_id" => once(&mut api_app_id, scan.opt_str()?),
            "team_id" => once(&mut team_id, scan.opt_str()?),
            "enterprise_id" => once(&mut enterprise_id, scan.opt_str()?),
            "context_team_id" => once(&mut context_team_id, scan.opt_str()?),
            "context_enterprise_id" => once(&mut context_enterprise_id, scan.opt_str()?),
            "event_id" => once(&mut event_id, scan.opt_str()?),
            "is_enterprise_install" => once(&mut is_enterprise_install, scan.opt_bool()?),
            "authorizations" => {
                let value = scan.nullable(|scan| {
                    // Only the first entry is used, but every entry is read and checked.
                    let mut list = Vec::with_capacity(1);
                    scan.array(|scan| {
                        let auth = scan.authorization()?;
                        if list.is_empty() {
                            list.push(Obj(auth));
                        }
                        Some(())
                    })?;
                    Some(list)
                })?;
                once(&mut authorizations, value)
            }
            "event" => {
                let value = scan.nullable(|scan| scan.event().map(Obj))?;
                once(&mut event, value)
            }
            _ => scan.skip(),
        })?;
        Some(EventsEnvelope {
            kind: kind.flatten(),
            challenge: challenge.flatten(),
            api_app_id: api_app_id.flatten(),
            team_id: team_id.flatten(),
            enterprise_id: enterprise_id.flatten(),
            context_team_id: context_team_id.flatten(),
            context_enterprise_id: context_enterprise_id.flatten(),
            event_id: event_id.flatten(),
            is_enterprise_install: is_enterprise_install.flatten(),
            authorizations: authorizations.flatten(),
            event: event.flatten(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
