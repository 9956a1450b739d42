//! [`strip_body_token`]: the body without the bot's `token` argument, every other byte as
//! it was.

use std::borrow::Cow;
use std::ops::Range;

use super::encoding::CallEncoding;
use super::error::CallError;
use super::form::form_pair;
use super::json::scan_object;

/// The body with its `token` argument removed and every other byte unchanged.
///
/// Form: each `token` piece goes with one adjacent `&` (the one after it, or before it for
/// the last piece). JSON: each top-level `token` member goes with one adjacent comma;
/// whitespace around it may stay. Borrowed when the body has no token. Precondition:
/// [`read_call`](crate::read_call) accepted the same body with this encoding; else the answer may be an error.
pub fn strip_body_token(encoding: CallEncoding, body: &[u8]) -> Result<Cow<'_, [u8]>, CallError> {
    match encoding {
        CallEncoding::None => Ok(Cow::Borrowed(body)),
        CallEncoding::Form => strip_form_token(body),
        CallEncoding::Json => strip_json_token(body),
    }
}

fn strip_form_token(body: &[u8]) -> Result<Cow<'_, [u8]>, CallError> {
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut stripped = false;
    for piece in body.split(|&b| b == b'&') {
        if !piece.is_empty() && form_pair(piece)?.0 == "token" {
            stripped = true;
        } else {
            kept.push(piece);
        }
    }
    if !stripped {
        return Ok(Cow::Borrowed(body));
    }
    Ok(Cow::Owned(kept.join(&b'&')))
}

fn strip_json_token(body: &[u8]) -> Result<Cow<'_, [u8]>, CallError> {
    let members = scan_object(body)?;
    if !members.iter().any(|m| m.key == "token") {
        return Ok(Cow::Borrowed(body));
    }
    // A removed member takes the comma after it. When the last member goes, the comma
    // after the last member that stays goes too.
    let mut cuts: Vec<Range<usize>> = Vec::new();
    for member in members.iter().filter(|m| m.key == "token") {
        cuts.push(member.span.clone());
        if let Some(comma) = member.comma {
            cuts.push(comma..comma + 1);
        }
    }
    if members.last().is_some_and(|m| m.key == "token") {
        if let Some(comma) = members
            .iter()
            .rev()
            .find(|m| m.key != "token")
            .and_then(|m| m.comma)
        {
            cuts.push(comma..comma + 1);
        }
    }
    cuts.sort_by_key(|cut| cut.start);
    let mut out = Vec::with_capacity(body.len());
    let mut at = 0;
    for cut in cuts {
        out.extend_from_slice(body.get(at..cut.start).ok_or(CallError::BadJson)?);
        at = cut.end;
    }
    out.extend_from_slice(body.get(at..).ok_or(CallError::BadJson)?);
    Ok(Cow::Owned(out))
}
