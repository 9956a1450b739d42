//! What the facts readers learnt that custody reuses ([`CustodyHint`]): an interactivity
//! form's `payload` decoded once, with marks that map decoded offsets back to raw bytes,
//! and where custody's fields are in a JSON document the reader read whole.

use std::borrow::Cow;

use super::json::{find, Pattern, Role, Spot};

/// A form's `payload` field as the facts decoded it ([`CustodyHint::Payload`]), handed to
/// [`crate::take_into_custody_decoded`] so that the payload of an interactivity request is
/// percent-decoded once per request, not once for the facts and again for custody.
///
/// It remembers the raw field it was decoded from (a slice of the body it borrows); custody
/// uses it only for that very field of that very body (the same address and length, both
/// borrowed and so unchanged), and decodes any other field itself. Its `Debug` shows
/// lengths only: a payload can hold a workflow token.
#[derive(Clone, PartialEq, Eq)]
pub struct DecodedPayload<'a> {
    /// The field's raw (percent-encoded) value, in the body.
    pub(crate) raw: &'a [u8],
    /// The decoded JSON text, or the decoded bytes when they are not UTF-8 (custody then
    /// refuses the body as unreadable, as it does when it decodes them itself).
    pub(crate) json: Result<String, Vec<u8>>,
    /// The raw offset of every [`STRIDE`]th decoded byte ([`decode_marked`]).
    pub(crate) marks: Vec<usize>,
    /// Where custody's fields are in `json`, when the facts reader could vouch for them
    /// ([`Spot`]); `None` has custody walk the JSON itself.
    pub(crate) spots: Option<Vec<Spot>>,
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
        let raw = body.get(span_in(body, self.raw)?)?;
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
    pub(crate) fn decodes(&self, raw: &[u8]) -> bool {
        span_in(raw, self.raw) == Some(0..raw.len())
    }
}

/// Where the quick Events API reader found custody's fields (`event.bot_access_token`,
/// `event.function_execution_id`) in the body it read whole.
#[derive(Clone, PartialEq, Eq)]
pub struct EventSpots<'a> {
    /// The body they are in.
    pub(crate) body: &'a [u8],
    pub(crate) spots: Vec<Spot>,
}

impl<'a> EventSpots<'a> {
    pub(crate) fn new(body: &'a [u8], spots: Vec<Spot>) -> Self {
        Self { body, spots }
    }

    /// True when these are the spots of `body` itself (the same address and length).
    pub(crate) fn reads(&self, body: &[u8]) -> bool {
        span_in(body, self.body) == Some(0..body.len())
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
            Self::Event(e) => e
                .reads(body)
                .then(|| CustodyHint::Event(EventSpots::new(body, e.spots))),
        }
    }
}

/// Where `part` lies in `whole`, by address, or `None` when it is not a part of it. Both
/// are borrowed, so a part found there holds the same bytes: a hint read from one borrow
/// of a body is found again in another, and never in a copy.
pub(crate) fn span_in(whole: &[u8], part: &[u8]) -> Option<std::ops::Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len()).then_some(start..end)
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
        let at = span_in(json.as_bytes(), raw.as_bytes())?;
        (json.get(at.clone()) == Some(raw)).then_some(at)
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

/// Decoded bytes between two marks of [`decode_marked`].
pub(crate) const STRIDE: usize = 32;

/// The raw offset of decoded byte `want` of `raw` (its raw length when `want` is past
/// the end): from the mark at or before it, one token per decoded byte (each raw token,
/// `%XX`, `+` or one byte, is one decoded byte).
pub(crate) fn raw_offset(raw: &[u8], marks: &[usize], want: usize) -> usize {
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
pub(crate) fn token_len(raw: &[u8], i: usize) -> usize {
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
pub(crate) fn decode_marked(raw: &[u8]) -> (Vec<u8>, Vec<usize>) {
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
