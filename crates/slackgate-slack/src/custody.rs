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

pub(crate) mod hint;
pub(crate) mod json;

use crate::facts::BodyEncoding;

pub use hint::{CustodyHint, DecodedPayload, EventSpots};
pub use json::CustodyError;

use hint::{decode, raw_offset};
use json::{find, string_text, Found, Pattern, Role, Spot};
#[cfg(test)]
use {
    hint::{decode_marked, token_len, STRIDE},
    json::{find2, find3, SHORT},
};

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
        (BodyEncoding::Json, Some(CustodyHint::Event(e))) if e.reads(body) => {
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
                text: string_text(doc, spot.at.clone(), escaped(doc, &spot.at))?,
                object: spot.object,
            });
        }
    }
    Ok(found)
}

/// Whether the string at `at` in `doc` has an escape (what the walk notes as it reads it).
fn escaped(doc: &[u8], at: &std::ops::Range<usize>) -> bool {
    doc.get(at.clone())
        .is_some_and(|s| memchr::memchr(b'\\', s).is_some())
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

/// `bytes` percent-encoded as a form value.
fn form_encode(bytes: &[u8]) -> Vec<u8> {
    form_urlencoded::byte_serialize(bytes)
        .collect::<String>()
        .into_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
