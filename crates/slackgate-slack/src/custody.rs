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
//! Custody reads nothing twice: the facts readers, which read every verified body first,
//! leave what they learnt ([`CustodyHint`], [`crate::Facts::custody`]): a form's `payload`
//! already decoded, and where custody's fields are ([`Spot`]) when the reader read the
//! document whole and can vouch that those are every value at custody's paths. With a hint
//! custody walks nothing; without one (a body the quick events reader left to `serde_json`,
//! or a caller without facts) it decodes and walks the body itself, and the answer is the
//! same byte for byte (property tests and the `custody` fuzz target).
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

/// A form's `payload` field as the facts decoded it ([`CustodyHint::Payload`]), handed to
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
    /// Where custody's fields are in `json`, when the facts reader could vouch for them
    /// ([`Spot`]); `None` has custody walk the JSON itself.
    spots: Option<Vec<Spot>>,
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
        Self {
            raw,
            json,
            marks,
            spots: None,
        }
    }

    /// Where custody's fields are in the decoded text (offsets into [`Self::text`]).
    pub(crate) fn set_spots(&mut self, spots: Vec<Spot>) {
        self.spots = Some(spots);
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
        let Self {
            json, marks, spots, ..
        } = self;
        Some(DecodedPayload {
            raw,
            json,
            marks,
            spots,
        })
    }

    /// True when this is the decoding of `raw` itself (the same bytes of the same body).
    fn decodes(&self, raw: &[u8]) -> bool {
        std::ptr::eq(self.raw.as_ptr(), raw.as_ptr()) && self.raw.len() == raw.len()
    }
}

/// A string value custody takes or reads, where a facts reader found it: its span in the
/// document (quotes included), its role and the object it stands in (for a channel beside
/// a response URL). A reader makes spots only for a document it read whole and strictly,
/// and only when it can vouch that they are every value at custody's paths: then custody
/// needs no walk of its own (property tests and the `custody` fuzz target hold the two to
/// the same answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spot {
    pub(crate) at: std::ops::Range<usize>,
    pub(crate) role: Role,
    pub(crate) object: usize,
}

/// Where the quick Events API reader found custody's fields (`event.bot_access_token`,
/// `event.function_execution_id`) in the body it read whole.
#[derive(Clone, PartialEq, Eq)]
pub struct EventSpots<'a> {
    /// The body they are in.
    body: &'a [u8],
    spots: Vec<Spot>,
}

impl<'a> EventSpots<'a> {
    pub(crate) fn new(body: &'a [u8], spots: Vec<Spot>) -> Self {
        Self { body, spots }
    }
}

/// What the facts reader learnt that custody reuses ([`crate::Facts::custody`]): an
/// interactivity form's decoded `payload`, or where custody's fields are in an Events API
/// body. Tied to the body it was read from; `Debug` shows no content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustodyHint<'a> {
    /// An interactivity form's `payload`, decoded once.
    Payload(DecodedPayload<'a>),
    /// An Events API body's custody fields.
    Event(EventSpots<'a>),
}

impl std::fmt::Debug for EventSpots<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSpots")
            .field("spots", &self.spots.len())
            .finish_non_exhaustive()
    }
}

impl CustodyHint<'_> {
    /// The same hint borrowing `body` instead, when what it was read from is (a part of)
    /// `body` itself; `None` otherwise. For a caller whose borrow of the body outlives
    /// the one the facts were read with.
    pub fn within(self, body: &[u8]) -> Option<CustodyHint<'_>> {
        match self {
            Self::Payload(p) => p.within(body).map(CustodyHint::Payload),
            Self::Event(e) => {
                let same =
                    std::ptr::eq(e.body.as_ptr(), body.as_ptr()) && e.body.len() == body.len();
                same.then(|| CustodyHint::Event(EventSpots::new(body, e.spots)))
            }
        }
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

/// [`take_into_custody`] reusing what the facts reader learnt of `body`
/// ([`crate::Facts::custody`]): the same answer, byte for byte, with or without it (a
/// hint read from another body, or another field, is not used).
pub fn take_into_custody_decoded(
    content_type: Option<&str>,
    body: &[u8],
    wants: Wants,
    hint: Option<&CustodyHint<'_>>,
    mut replace: impl FnMut(Held<'_>) -> Option<String>,
) -> Result<Option<Vec<u8>>, CustodyError> {
    if !wants.any() {
        return Ok(None);
    }
    let edits = match (BodyEncoding::detect(content_type, body), hint) {
        (BodyEncoding::Json, _) if !wants.workflow_tokens => Vec::new(),
        (BodyEncoding::Json, Some(CustodyHint::Event(e)))
            if std::ptr::eq(e.body.as_ptr(), body.as_ptr()) && e.body.len() == body.len() =>
        {
            edits_of(spotted(body, &e.spots, &EVENTS)?, &mut replace)?
        }
        (BodyEncoding::Json, _) if may_hold_token(body) => json_edits(body, &EVENTS, &mut replace)?,
        (BodyEncoding::Json, _) => Vec::new(),
        (BodyEncoding::Form, hint) => {
            let payload = match hint {
                Some(CustodyHint::Payload(p)) => Some(p),
                _ => None,
            };
            form_edits(body, wants, payload, &mut replace)?
        }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
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

/// Where `response_urls[]` holds response URLs and their channels, from inside it.
const RESPONSE_URLS_ITEMS: [Pattern; 2] = [
    (&[None, Some("response_url")], Role::ResponseUrl),
    (&[None, Some("channel_id")], Role::Channel),
];

/// Custody's fields of an interactivity payload `json` that `serde_json` read whole for
/// the facts, which hands over the raw JSON values (borrowed from `json`, any type) of its
/// top-level `response_url`, `bot_access_token` and `response_urls` and of
/// `function_data.execution_id`: the same spots the walk would find, in document order.
/// `serde_json` refused duplicate fields and decoded escaped keys, so each is the only one
/// at its path; `response_urls` (view submissions only, and small) is walked here.
/// `None` when that walk fails: custody then walks the payload itself, and fails alike.
pub(crate) fn payload_spots(
    json: &str,
    top: [(Option<&str>, Role); 3],
    response_urls: Option<&str>,
) -> Option<Vec<Spot>> {
    let at = |raw: &str| {
        let start = (raw.as_ptr() as usize).checked_sub(json.as_ptr() as usize)?;
        let end = start.checked_add(raw.len())?;
        (json.get(start..end) == Some(raw)).then_some(start..end)
    };
    let mut spots = Vec::with_capacity(2);
    for (raw, role) in top {
        if let Some(raw) = raw.filter(|r| r.starts_with('"')) {
            spots.push(Spot {
                at: at(raw)?,
                role,
                object: 0,
            });
        }
    }
    if let Some(raw) = response_urls {
        let base = at(raw)?.start;
        let found = find(raw.as_bytes(), &RESPONSE_URLS_ITEMS).ok()?;
        spots.extend(found.into_iter().map(|f| Spot {
            at: base + f.at.start..base + f.at.end,
            role: f.role,
            object: f.object,
        }));
    }
    // In document order, as the walk finds them (the order custody hands them over in).
    spots.sort_by_key(|s| s.at.start);
    Some(spots)
}

/// The edits of a JSON document: each wanted string value replaced by the JSON string of
/// its replacement.
fn json_edits(
    doc: &[u8],
    patterns: &[Pattern],
    replace: &mut dyn FnMut(Held<'_>) -> Option<String>,
) -> Result<Vec<Edit>, CustodyError> {
    edits_of(find(doc, patterns)?, replace)
}

/// What the walk would find in `doc` for `patterns`, from a reader's spots: those of the
/// patterns' roles, with their texts.
fn spotted<'a>(
    doc: &'a [u8],
    spots: &[Spot],
    patterns: &[Pattern],
) -> Result<Vec<Found<'a>>, CustodyError> {
    let mut found = Vec::with_capacity(spots.len());
    for spot in spots {
        if patterns.iter().any(|(_, role)| *role == spot.role) {
            found.push(Found {
                at: spot.at.clone(),
                role: spot.role,
                text: string_text(doc, spot.at.clone())?,
                object: spot.object,
            });
        }
    }
    Ok(found)
}

/// The text of the JSON string at `at` in `doc` (quotes included), as the walk reads it:
/// decoded by `serde_json` when it has an escape, else the bytes between the quotes.
fn string_text(doc: &[u8], at: std::ops::Range<usize>) -> Result<Cow<'_, str>, CustodyError> {
    let raw = doc.get(at.clone()).ok_or(CustodyError::Unreadable)?;
    if memchr::memchr(b'\\', raw).is_some() {
        return serde_json::from_slice::<String>(raw)
            .map(Cow::Owned)
            .map_err(|_| CustodyError::Unreadable);
    }
    let inner = doc
        .get(at.start + 1..at.end.saturating_sub(1))
        .ok_or(CustodyError::Unreadable)?;
    std::str::from_utf8(inner)
        .map(Cow::Borrowed)
        .map_err(|_| CustodyError::Unreadable)
}

/// The edits for what was found: each wanted string value replaced by the JSON string of
/// its replacement.
fn edits_of(
    found: Vec<Found<'_>>,
    replace: &mut dyn FnMut(Held<'_>) -> Option<String>,
) -> Result<Vec<Edit>, CustodyError> {
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
        spots,
    } = decoded;
    let json = json.as_ref().map_err(|_| CustodyError::Unreadable)?;
    // PAYLOAD holds the response URLs' patterns first, then the workflow token's.
    let patterns = match (wants.response_urls, wants.workflow_tokens) {
        (true, true) => &PAYLOAD[..],
        (true, false) => &PAYLOAD[..3],
        (false, true) => &PAYLOAD[3..],
        (false, false) => &[],
    };
    let inner = match spots {
        Some(spots) => edits_of(spotted(json.as_bytes(), spots, patterns)?, replace)?,
        None => json_edits(json.as_bytes(), patterns, replace)?,
    };
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

/// The deepest nesting the walk follows (it follows only the patterns' paths, a few
/// levels: this bounds its recursion whatever the patterns).
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
            return self.skip();
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
            _ => self.skip(),
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
    /// needs to find its end, strings and nesting included). It counts brackets in a
    /// loop, so it needs no bound on their nesting: like `serde_json` skipping a field it
    /// does not read, it skips a value however deep.
    fn skip(&mut self) -> Result<(), CustodyError> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            open @ (b'{' | b'[') => {
                // In a well-formed document the brackets of one kind balance by
                // themselves, strings aside: only those of the value's own kind are
                // counted.
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
                        b if b == open => nest += 1,
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
