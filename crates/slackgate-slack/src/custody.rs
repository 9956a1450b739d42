//! Secret custody, inbound: the bearer capabilities Slack puts into what it sends a bot
//! (response URLs, workflow tokens), found and replaced in place.
//!
//! [`take_into_custody`] finds them where Slack puts them:
//!
//! | body | field | kind |
//! |---|---|---|
//! | slash command form | `response_url` | [`Held::ResponseUrl`] |
//! | interactivity form, `payload` JSON | `response_url`, `response_urls[].response_url` (view submissions) | [`Held::ResponseUrl`] |
//! | interactivity form, `payload` JSON | `bot_access_token` (function context; bound to `function_data.execution_id`) | [`Held::WorkflowToken`] |
//! | Events API JSON | `event.bot_access_token` of `function_executed` (bound to `event.function_execution_id`) | [`Held::WorkflowToken`] |
//!
//! and hands each to the caller, which keeps it and answers with what the bot gets
//! instead. Everything else stays byte for byte: only the changed value is re-encoded (a
//! form field's value is percent-encoded in place; a JSON string value is replaced in
//! place; inside a form's `payload`, the JSON string is replaced and only its own bytes
//! are percent-encoded again). Every occurrence is replaced, duplicates included, and
//! keys are compared decoded (a `response%5Furl` or `response\u005furl` is the same
//! field to the bot's parser, so it is to this one too).
//!
//! Pure: no I/O, no clock, no randomness (the caller mints), never panics on any input.

use std::borrow::Cow;

use crate::facts::BodyEncoding;

/// Which capabilities to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Wants {
    /// `response_url`s (forms and interactivity payloads).
    pub response_urls: bool,
    /// Workflow `bot_access_token`s (`function_executed` events and function-context
    /// interactivity).
    pub workflow_tokens: bool,
}

impl Wants {
    /// True when anything is to be taken.
    pub fn any(self) -> bool {
        self.response_urls || self.workflow_tokens
    }
}

/// One capability found in the body, decoded; the caller keeps it and returns what the
/// bot receives in its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held<'a> {
    /// A response URL, with the channel it posts into when the body names one next to it
    /// (`response_urls[].channel_id` of a view submission; otherwise the request's own
    /// channel is the one).
    ResponseUrl {
        /// Slack's URL.
        url: &'a str,
        /// `channel_id` beside it in `response_urls[]`.
        channel: Option<&'a str>,
    },
    /// A workflow token with the function execution it belongs to, when the body names it.
    WorkflowToken {
        /// Slack's token.
        token: &'a str,
        /// `function_execution_id` (events) or `function_data.execution_id` (interactivity).
        function_execution_id: Option<&'a str>,
    },
}

/// Why a body was not taken into custody. No variant carries body content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CustodyError {
    /// The body (or its `payload`) is not the form or JSON it claims to be.
    #[error("the body cannot be read for secret custody")]
    Unreadable,
    /// The caller could not keep a capability (its replacement was `None`).
    #[error("a capability could not be taken into custody")]
    Refused,
}

/// A form's `payload` field as the facts decoded it ([`crate::Facts::payload`]), handed to
/// [`take_into_custody_decoded`] so that the payload of an interactivity request is
/// percent-decoded once per request, not once for the facts and again for custody.
///
/// It remembers the raw field it was decoded from (a slice of the body it borrows); custody
/// uses it only for that very field of that very body (the same address and length, both
/// borrowed and so unchanged), and decodes any other field itself. Its `Debug` shows
/// lengths only: a payload can hold a workflow token.
#[derive(Clone, PartialEq, Eq)]
pub struct DecodedPayload<'a> {
    /// The field's raw (percent-encoded) value, in the body.
    raw: &'a [u8],
    /// The decoded JSON text, or the decoded bytes when they are not UTF-8 (custody then
    /// refuses the body as unreadable, as it does when it decodes them itself).
    json: Result<String, Vec<u8>>,
    /// The raw offset of every [`STRIDE`]th decoded byte ([`decode_marked`]).
    marks: Vec<usize>,
}

impl std::fmt::Debug for DecodedPayload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedPayload")
            .field("raw_len", &self.raw.len())
            .field("utf8", &self.json.is_ok())
            .finish_non_exhaustive()
    }
}

impl<'a> DecodedPayload<'a> {
    /// Decodes the raw `payload` value `raw` (a slice of the body) as a form value.
    pub(crate) fn decode(raw: &'a [u8]) -> Self {
        let (bytes, marks) = decode_marked(raw);
        // Checked once here, by std (which keeps the `String`); custody reuses the answer.
        let json = String::from_utf8(bytes).map_err(std::string::FromUtf8Error::into_bytes);
        Self { raw, json, marks }
    }

    /// The decoded text, lossy where it is not UTF-8 (what a form parser hands on).
    pub(crate) fn text(&self) -> Cow<'_, str> {
        match &self.json {
            Ok(text) => Cow::Borrowed(text),
            Err(bytes) => String::from_utf8_lossy(bytes),
        }
    }

    /// The same decoding borrowing `body` instead, when its field is a part of `body`
    /// (for a caller whose borrow of the body outlives the one the facts were read with);
    /// `None` otherwise.
    pub fn within<'b>(self, body: &'b [u8]) -> Option<DecodedPayload<'b>> {
        let start = (self.raw.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
        let raw = body.get(start..start.checked_add(self.raw.len())?)?;
        let Self { json, marks, .. } = self;
        Some(DecodedPayload { raw, json, marks })
    }

    /// True when this is the decoding of `raw` itself (the same bytes of the same body).
    fn decodes(&self, raw: &[u8]) -> bool {
        std::ptr::eq(self.raw.as_ptr(), raw.as_ptr()) && self.raw.len() == raw.len()
    }
}

/// Replaces every wanted capability of `body` by what `replace` returns for it; the body
/// as it is sent to the bot, or `None` when it holds none (forward it unchanged).
/// `content_type` decides form or JSON as for the facts ([`BodyEncoding::detect`]).
/// `replace` returning `None` refuses the whole body ([`CustodyError::Refused`]).
pub fn take_into_custody(
    content_type: Option<&str>,
    body: &[u8],
    wants: Wants,
    replace: impl FnMut(Held<'_>) -> Option<String>,
) -> Result<Option<Vec<u8>>, CustodyError> {
    take_into_custody_decoded(content_type, body, wants, None, replace)
}

/// [`take_into_custody`] reusing the facts' decoding of the body's `payload` field
/// ([`crate::Facts::payload`]): the same answer, byte for byte, with or without it (a
/// decoding of another field or another body is not used).
pub fn take_into_custody_decoded(
    content_type: Option<&str>,
    body: &[u8],
    wants: Wants,
    payload: Option<&DecodedPayload<'_>>,
    mut replace: impl FnMut(Held<'_>) -> Option<String>,
) -> Result<Option<Vec<u8>>, CustodyError> {
    if !wants.any() {
        return Ok(None);
    }
    let edits = match BodyEncoding::detect(content_type, body) {
        BodyEncoding::Json if wants.workflow_tokens && may_hold_token(body) => {
            json_edits(body, &EVENTS, &mut replace)?
        }
        BodyEncoding::Json => Vec::new(),
        BodyEncoding::Form => form_edits(body, wants, payload, &mut replace)?,
    };
    Ok((!edits.is_empty()).then(|| splice(body, &edits)))
}

/// False when a JSON body cannot hold a workflow token: it has neither the field's name
/// nor a `\u` escape (the one escape that could spell it in a key). Most events are such.
fn may_hold_token(body: &[u8]) -> bool {
    memchr::memmem::find(body, b"bot_access_token").is_some()
        || memchr::memmem::find(body, b"\\u").is_some()
}

// === edits ===

/// Bytes `at` of the original replaced by `with`.
struct Edit {
    at: std::ops::Range<usize>,
    with: Vec<u8>,
}

/// The body with the edits (in order, not overlapping) applied.
fn splice(body: &[u8], edits: &[Edit]) -> Vec<u8> {
    let grow: usize = edits.iter().map(|e| e.with.len()).sum();
    let mut out = Vec::with_capacity(body.len() + grow);
    let mut from = 0;
    for e in edits {
        out.extend_from_slice(body.get(from..e.at.start).unwrap_or_default());
        out.extend_from_slice(&e.with);
        from = e.at.end;
    }
    out.extend_from_slice(body.get(from..).unwrap_or_default());
    out
}

/// What a path in a JSON document holds for custody.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    ResponseUrl,
    /// The `channel_id` beside a response URL in `response_urls[]`.
    Channel,
    WorkflowToken,
    ExecutionId,
}

/// A path pattern: keys, with `None` for any array index.
type Pattern = (&'static [Option<&'static str>], Role);

/// Where an Events API body holds a workflow token and its execution.
const EVENTS: [Pattern; 2] = [
    (
        &[Some("event"), Some("bot_access_token")],
        Role::WorkflowToken,
    ),
    (
        &[Some("event"), Some("function_execution_id")],
        Role::ExecutionId,
    ),
];

/// Where an interactivity payload holds response URLs (the first three), a workflow token
/// and its execution (the last two).
const PAYLOAD: [Pattern; 5] = [
    (&[Some("response_url")], Role::ResponseUrl),
    (
        &[Some("response_urls"), None, Some("response_url")],
        Role::ResponseUrl,
    ),
    (
        &[Some("response_urls"), None, Some("channel_id")],
        Role::Channel,
    ),
    (&[Some("bot_access_token")], Role::WorkflowToken),
    (
        &[Some("function_data"), Some("execution_id")],
        Role::ExecutionId,
    ),
];

/// One string value found at a pattern's path: its span (quotes included), text, and the
/// object it stands in (numbered in document order).
struct Found<'a> {
    at: std::ops::Range<usize>,
    role: Role,
    text: Cow<'a, str>,
    object: usize,
}

/// The edits of a JSON document: each wanted string value replaced by the JSON string of
/// its replacement.
fn json_edits(
    doc: &[u8],
    patterns: &[Pattern],
    replace: &mut dyn FnMut(Held<'_>) -> Option<String>,
) -> Result<Vec<Edit>, CustodyError> {
    let found = find(doc, patterns)?;
    let execution = found
        .iter()
        .filter(|f| f.role == Role::ExecutionId)
        .map(|f| f.text.as_ref())
        .next_back();
    let mut edits = Vec::new();
    for f in &found {
        let held = match f.role {
            Role::ExecutionId | Role::Channel => continue,
            Role::ResponseUrl => Held::ResponseUrl {
                url: &f.text,
                channel: found
                    .iter()
                    .filter(|c| c.role == Role::Channel && c.object == f.object)
                    .map(|c| c.text.as_ref())
                    .next_back(),
            },
            Role::WorkflowToken => Held::WorkflowToken {
                token: &f.text,
                function_execution_id: execution,
            },
        };
        if f.text.is_empty() {
            continue;
        }
        let with = replace(held).ok_or(CustodyError::Refused)?;
        edits.push(Edit {
            at: f.at.clone(),
            with: json_string(&with),
        });
    }
    Ok(edits)
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> Vec<u8> {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        let mut out = Vec::with_capacity(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return out;
    }
    serde_json::to_vec(s).unwrap_or_default()
}

/// The edits of a form: `response_url` fields replaced; each `payload` field's JSON
/// edited in place, only the replaced bytes percent-encoded again.
fn form_edits(
    body: &[u8],
    wants: Wants,
    decoded: Option<&DecodedPayload<'_>>,
    replace: &mut dyn FnMut(Held<'_>) -> Option<String>,
) -> Result<Vec<Edit>, CustodyError> {
    let mut edits = Vec::new();
    let mut start = 0;
    while start <= body.len() {
        let end = memchr::memchr(b'&', body.get(start..).unwrap_or_default())
            .map_or(body.len(), |i| start + i);
        let pair = body.get(start..end).unwrap_or_default();
        if let Some(eq) = memchr::memchr(b'=', pair) {
            let (key, value) = (&pair[..eq], &pair[eq + 1..]);
            let value_at = start + eq + 1;
            let key = decode(key);
            if wants.response_urls && key.as_ref() == b"response_url" {
                let url = String::from_utf8(decode(value).into_owned())
                    .map_err(|_| CustodyError::Unreadable)?;
                if !url.is_empty() {
                    let held = Held::ResponseUrl {
                        url: &url,
                        channel: None,
                    };
                    let with = replace(held).ok_or(CustodyError::Refused)?;
                    edits.push(Edit {
                        at: value_at..value_at + value.len(),
                        with: form_encode(with.as_bytes()),
                    });
                }
            } else if key.as_ref() == b"payload" {
                let own;
                let decoded = match decoded.filter(|d| d.decodes(value)) {
                    Some(d) => d,
                    None => {
                        own = DecodedPayload::decode(value);
                        &own
                    }
                };
                payload_edits(decoded, value_at, wants, replace, &mut edits)?;
            }
        }
        start = end + 1;
    }
    Ok(edits)
}

/// The edits inside one `payload` field, `decoded`, whose raw (encoded) value starts at
/// `value_at`.
fn payload_edits(
    decoded: &DecodedPayload<'_>,
    value_at: usize,
    wants: Wants,
    replace: &mut dyn FnMut(Held<'_>) -> Option<String>,
    edits: &mut Vec<Edit>,
) -> Result<(), CustodyError> {
    let DecodedPayload {
        raw: value,
        json,
        marks,
    } = decoded;
    let json = json.as_ref().map_err(|_| CustodyError::Unreadable)?;
    // PAYLOAD holds the response URLs' patterns first, then the workflow token's.
    let patterns = match (wants.response_urls, wants.workflow_tokens) {
        (true, true) => &PAYLOAD[..],
        (true, false) => &PAYLOAD[..3],
        (false, true) => &PAYLOAD[3..],
        (false, false) => &[],
    };
    let inner = json_edits(json.as_bytes(), patterns, replace)?;
    for e in inner {
        let start = raw_offset(value, marks, e.at.start);
        let end = raw_offset(value, marks, e.at.end);
        edits.push(Edit {
            at: value_at + start..value_at + end,
            with: form_encode(&e.with),
        });
    }
    Ok(())
}

/// Decoded bytes between two marks of [`decode_marked`].
const STRIDE: usize = 32;

/// The raw offset of decoded byte `want` of `raw` (its raw length when `want` is past
/// the end): from the mark at or before it, one token per decoded byte (each raw token,
/// `%XX`, `+` or one byte, is one decoded byte).
fn raw_offset(raw: &[u8], marks: &[usize], want: usize) -> usize {
    let k = (want / STRIDE).min(marks.len().saturating_sub(1));
    let mut at = marks.get(k).copied().unwrap_or(0);
    let mut decoded = k * STRIDE;
    while decoded < want && at < raw.len() {
        at += token_len(raw, at);
        decoded += 1;
    }
    at
}

/// The length of the raw form token at `i`: 3 for `%` and two hex digits, else 1.
fn token_len(raw: &[u8], i: usize) -> usize {
    match raw.get(i..i + 3) {
        Some([b'%', h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => 3,
        _ => 1,
    }
}

/// Form decoding as `application/x-www-form-urlencoded` parsers do it: `+` is a space,
/// `%` and two hex digits a byte, anything else itself. Borrowed when nothing changes.
pub(crate) fn decode(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.iter().any(|&b| b == b'%' || b == b'+') {
        return Cow::Borrowed(raw);
    }
    Cow::Owned(decode_marked(raw).0)
}

/// [`decode`], owned, with the raw offset of every [`STRIDE`]th decoded byte (the marks
/// [`raw_offset`] starts from).
///
/// One pass, token by token: a `payload` is mostly escapes, so looking for the next one
/// (`memchr`) costs more per escape than it saves between them. The decoded bytes are
/// written by index into a buffer as long as the raw field (a token decodes to one byte,
/// so they never outgrow it) and cut to length at the end: pushing each byte onto a
/// `Vec` kept its length in memory, a store and a load per byte.
fn decode_marked(raw: &[u8]) -> (Vec<u8>, Vec<usize>) {
    let mut out = vec![0u8; raw.len()];
    let mut marks = Vec::with_capacity(raw.len() / STRIDE + 1);
    let (mut i, mut o) = (0, 0);
    while let Some(&b) = raw.get(i) {
        if o % STRIDE == 0 {
            marks.push(i);
        }
        let mut byte = if b == b'+' { b' ' } else { b };
        if b == b'%' {
            let h = HEX[usize::from(raw.get(i + 1).copied().unwrap_or(0))];
            let l = HEX[usize::from(raw.get(i + 2).copied().unwrap_or(0))];
            if h | l < 16 {
                byte = h << 4 | l;
                i += 2;
            }
        }
        if let Some(slot) = out.get_mut(o) {
            *slot = byte;
        }
        o += 1;
        i += 1;
    }
    out.truncate(o);
    (out, marks)
}

/// Each byte's value as a hex digit, `0xFF` when it is none.
const HEX: [u8; 256] = {
    let mut table = [0xFF; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match b as u8 {
            d @ b'0'..=b'9' => d - b'0',
            d @ b'a'..=b'f' => d - b'a' + 10,
            d @ b'A'..=b'F' => d - b'A' + 10,
            _ => 0xFF,
        };
        b += 1;
    }
    table
};

/// `bytes` percent-encoded as a form value.
fn form_encode(bytes: &[u8]) -> Vec<u8> {
    form_urlencoded::byte_serialize(bytes)
        .collect::<String>()
        .into_bytes()
}

// === the JSON walk ===

/// How many bytes the walk looks at one by one before it asks `memchr`: most of what it
/// searches in a Slack body is a short key or id, where a `memchr` call costs more than
/// the bytes it skips.
const SHORT: usize = 16;

/// The first byte of `hay` that is `a` or `b` (as `memchr::memchr2`).
fn find2(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    let head = hay.get(..SHORT).unwrap_or(hay);
    if let Some(at) = head.iter().position(|&x| x == a || x == b) {
        return Some(at);
    }
    memchr::memchr2(a, b, hay.get(SHORT..)?).map(|at| at + SHORT)
}

/// The first byte of `hay` that is `a`, `b` or `c` (as `memchr::memchr3`).
fn find3(a: u8, b: u8, c: u8, hay: &[u8]) -> Option<usize> {
    let head = hay.get(..SHORT).unwrap_or(hay);
    if let Some(at) = head.iter().position(|&x| x == a || x == b || x == c) {
        return Some(at);
    }
    memchr::memchr3(a, b, c, hay.get(SHORT..)?).map(|at| at + SHORT)
}

/// The deepest nesting followed (deeper documents are refused, as `serde_json` does).
const MAX_DEPTH: usize = 128;

/// One step of the path to a value: an object key (decoded) or an array element.
enum Seg<'a> {
    Key(Cow<'a, str>),
    Index,
}

/// How a path relates to the patterns.
enum Fit {
    /// It is a pattern's path, with its role.
    Is(Role),
    /// A pattern's path goes through it.
    Within,
    /// No pattern's path goes through it: the value is skipped.
    Outside,
}

fn fit(path: &[Seg<'_>], patterns: &[Pattern]) -> Fit {
    let mut within = false;
    for (pattern, role) in patterns {
        if pattern.len() < path.len() {
            continue;
        }
        let same = path
            .iter()
            .zip(pattern.iter())
            .all(|(seg, want)| match (seg, want) {
                (Seg::Key(k), Some(w)) => k == w,
                (Seg::Index, None) => true,
                _ => false,
            });
        if same {
            if pattern.len() == path.len() {
                return Fit::Is(*role);
            }
            within = true;
        }
    }
    if within {
        Fit::Within
    } else {
        Fit::Outside
    }
}

/// Every string value at a pattern's path, in document order.
fn find<'a>(doc: &'a [u8], patterns: &[Pattern]) -> Result<Vec<Found<'a>>, CustodyError> {
    let mut walk = Walk {
        s: doc,
        i: 0,
        found: Vec::new(),
        path: Vec::with_capacity(4),
        objects: 0,
        object: 0,
    };
    walk.value(patterns, 0)?;
    walk.ws();
    if walk.i != doc.len() {
        return Err(CustodyError::Unreadable);
    }
    Ok(walk.found)
}

struct Walk<'a> {
    s: &'a [u8],
    i: usize,
    found: Vec<Found<'a>>,
    path: Vec<Seg<'a>>,
    /// Objects entered so far, and the number of the one the walk is in.
    objects: usize,
    object: usize,
}

const BAD: CustodyError = CustodyError::Unreadable;

impl<'a> Walk<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Result<u8, CustodyError> {
        self.ws();
        self.s.get(self.i).copied().ok_or(BAD)
    }

    /// A string at `i` (which holds `"`): its span with the quotes, and whether it has
    /// escapes.
    fn string(&mut self) -> Result<(std::ops::Range<usize>, bool), CustodyError> {
        let start = self.i;
        self.i += 1;
        let mut escaped = false;
        loop {
            let rest = self.s.get(self.i..).ok_or(BAD)?;
            let at = find2(b'"', b'\\', rest).ok_or(BAD)?;
            self.i += at;
            if self.s.get(self.i) == Some(&b'"') {
                self.i += 1;
                return Ok((start..self.i, escaped));
            }
            escaped = true;
            self.i += 2;
        }
    }

    /// The text of the string at `at`.
    fn text(
        &self,
        at: std::ops::Range<usize>,
        escaped: bool,
    ) -> Result<Cow<'a, str>, CustodyError> {
        let raw = self.s.get(at.clone()).ok_or(BAD)?;
        if escaped {
            return serde_json::from_slice::<String>(raw)
                .map(Cow::Owned)
                .map_err(|_| BAD);
        }
        let inner = self.s.get(at.start + 1..at.end - 1).ok_or(BAD)?;
        std::str::from_utf8(inner)
            .map(Cow::Borrowed)
            .map_err(|_| BAD)
    }

    /// A value whose path is `self.path`, recording it when a pattern names it.
    fn value(&mut self, patterns: &[Pattern], depth: usize) -> Result<(), CustodyError> {
        let fits = fit(&self.path, patterns);
        if matches!(fits, Fit::Outside) {
            return self.skip(depth);
        }
        match self.peek()? {
            b'"' => {
                let (at, escaped) = self.string()?;
                if let Fit::Is(role) = fits {
                    let text = self.text(at.clone(), escaped)?;
                    let object = self.object;
                    self.found.push(Found {
                        at,
                        role,
                        text,
                        object,
                    });
                }
                Ok(())
            }
            b'{' => {
                self.i += 1;
                let outer = self.object;
                self.objects += 1;
                self.object = self.objects;
                let r = self.members(b'}', depth, |walk| {
                    if walk.peek()? != b'"' {
                        return Err(BAD);
                    }
                    let (at, escaped) = walk.string()?;
                    let key = walk.text(at, escaped)?;
                    if walk.peek()? != b':' {
                        return Err(BAD);
                    }
                    walk.i += 1;
                    walk.path.push(Seg::Key(key));
                    let r = walk.value(patterns, depth + 1);
                    walk.path.pop();
                    r
                });
                self.object = outer;
                r
            }
            b'[' => {
                self.i += 1;
                self.members(b']', depth, |walk| {
                    walk.path.push(Seg::Index);
                    let r = walk.value(patterns, depth + 1);
                    walk.path.pop();
                    r
                })
            }
            _ => self.skip(depth),
        }
    }

    /// Members up to `close` (the opening byte already read), separated by commas.
    fn members(
        &mut self,
        close: u8,
        depth: usize,
        mut member: impl FnMut(&mut Self) -> Result<(), CustodyError>,
    ) -> Result<(), CustodyError> {
        if depth >= MAX_DEPTH {
            return Err(BAD);
        }
        if self.peek()? != close {
            member(self)?;
            while self.peek()? == b',' {
                self.i += 1;
                member(self)?;
            }
        }
        (self.peek()? == close).then(|| self.i += 1).ok_or(BAD)
    }

    /// Skips one value (of a document already checked as JSON by the facts: this only
    /// needs to find its end, strings and nesting included).
    fn skip(&mut self, depth: usize) -> Result<(), CustodyError> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            open @ (b'{' | b'[') => {
                // In a well-formed document the brackets of one kind balance by
                // themselves, strings aside: only those of the value's own kind are
                // counted (the other kind's depth is bounded by the facts' parse).
                let close = if open == b'{' { b'}' } else { b']' };
                let mut nest = 0usize;
                loop {
                    let rest = self.s.get(self.i..).ok_or(BAD)?;
                    self.i += find3(b'"', open, close, rest).ok_or(BAD)?;
                    match self.s.get(self.i).copied().ok_or(BAD)? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b if b == open => {
                            nest += 1;
                            if depth + nest > MAX_DEPTH {
                                return Err(BAD);
                            }
                        }
                        _ => nest -= 1,
                    }
                    self.i += 1;
                    if nest == 0 {
                        return Ok(());
                    }
                }
            }
            _ => {
                // A number or a literal: up to the next delimiter.
                let start = self.i;
                while let Some(&b) = self.s.get(self.i) {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                        break;
                    }
                    self.i += 1;
                }
                if self.i == start {
                    return Err(BAD);
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
