//! What an audit record may hold: values a caller or Slack names are checked against
//! their field's shape (Slack ids, event ids, error codes, documented method names,
//! bounded free text) or written as [`INVALID`], so no request can make a line large or
//! write text of its choosing.

/// What a field that does not have its shape is written as.
pub const INVALID: &str = "invalid";

/// The longest audit line, in bytes (without its newline), whatever a request holds.
pub const MAX_LINE: usize = 4096;

/// The longest free-text value kept, in bytes. Free text has no control characters, so
/// each byte is written as at most two (`\"`, `\\`); with every text field of a record
/// at this length a line stays under [`MAX_LINE`] (the tests check it).
/// Names from the policy are at most 64 bytes, rules and Slack's event types and
/// commands far shorter: a value this long was not written by anyone honest.
pub(crate) const MAX_TEXT: usize = 128;

/// A Slack id (`T0ACME`, `C0HELP`, `U0333`, `E0ACME`, `A0HELPDESK`): 2 to 32 uppercase
/// ASCII letters and digits, else [`INVALID`]. The first letter is not checked against
/// the field: Slack uses several per field (`team_id` holds an `E…` id in org-wide
/// installs, `channel` a `C…`, `G…`, `D…` or, for a DM, a user's `U…`/`W…` id).
pub fn slack_id(v: &str) -> &str {
    let shaped = (2..=32).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if shaped {
        v
    } else {
        INVALID
    }
}

/// An Events API `event_id` (`Ev0APPMENTION1`): `Ev` and 1 to 30 uppercase ASCII
/// letters and digits, else [`INVALID`].
pub fn event_id(v: &str) -> &str {
    prefixed_id(v, "Ev")
}

/// A workflow step's `function_execution_id` (`Fx0EXEC1`): `Fx` and 1 to 30 uppercase
/// ASCII letters and digits, else [`INVALID`].
pub fn function_execution_id(v: &str) -> &str {
    prefixed_id(v, "Fx")
}

/// `prefix` and 1 to 30 uppercase ASCII letters and digits, else [`INVALID`].
fn prefixed_id<'v>(v: &'v str, prefix: &str) -> &'v str {
    match v.strip_prefix(prefix) {
        Some(rest)
            if (1..=30).contains(&rest.len())
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) =>
        {
            v
        }
        _ => INVALID,
    }
}

/// Free text (names, rules, event types, commands, timestamps): at most [`MAX_TEXT`]
/// bytes without control characters (which would reach a terminal reading the audit
/// as escapes, and cost six bytes each), else [`INVALID`]. Whole or not at all: a cut
/// value could read as another, valid one.
pub fn short_text(v: &str) -> &str {
    if v.len() <= MAX_TEXT && !has_control(v) {
        v
    } else {
        INVALID
    }
}

/// [`short_text`] for the code's own `&'static` texts (reasons, kinds).
pub(crate) fn short_static(v: &'static str) -> &'static str {
    short_text(v)
}

/// `v.chars().any(char::is_control)`, decoding only text that may hold one: the control
/// characters are U+0000-U+001F, U+007F and U+0080-U+009F, whose UTF-8 is a byte below
/// 0x20, 0x7F, or 0xC2 and a second byte. A text without those bytes (nearly every
/// audited value) is cleared by a test of each byte, without an early exit (so the
/// compiler tests several at once) and without decoding a character.
pub(crate) fn has_control(v: &str) -> bool {
    let maybe = v.bytes().fold(false, |seen, b| {
        seen | (b < 0x20) | (b == 0x7f) | (b == 0xc2)
    });
    maybe && v.chars().any(char::is_control)
}

/// A Slack `error` code (`channel_not_found`): 1 to 64 lowercase ASCII letters, digits
/// and `_`, else [`INVALID`].
pub fn slack_error_code(v: &str) -> &str {
    let shaped = (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if shaped {
        v
    } else {
        INVALID
    }
}

/// The longest `scopes_needed` kept (Slack's `x-accepted-oauth-scopes`), in bytes.
pub const MAX_SCOPES_NEEDED: usize = 512;

/// The longest `scopes_granted` kept (Slack's `x-oauth-scopes`), in bytes.
pub const MAX_SCOPES_GRANTED: usize = 1536;

/// One OAuth scope as Slack writes it (`chat:write`, `users.profile:read`,
/// `channels:history`): 1 to 64 ASCII letters, digits, `:`, `.`, `_` or `-`.
fn is_scope(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":._-".contains(&b))
}

/// A scope header (`x-accepted-oauth-scopes`, `x-oauth-scopes`) as the audit writes it:
/// its entries trimmed, empty ones dropped, joined by `,` (`""` when Slack lists none:
/// the method needs no scope). [`INVALID`] when an entry is not a scope or the list is
/// over `max` bytes: whole or not at all.
pub fn scope_header(header: &[u8], max: usize) -> String {
    let Ok(text) = std::str::from_utf8(header) else {
        return INVALID.to_owned();
    };
    let mut out = String::with_capacity(text.len().min(max));
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let len = out.len() + usize::from(!out.is_empty()) + entry.len();
        if !is_scope(entry) || len > max {
            return INVALID.to_owned();
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(entry);
    }
    out
}

/// A scope list as [`scope_header`] writes it: itself when every entry is a scope and it
/// is at most `max` bytes, else [`INVALID`].
pub fn scope_list(v: &str, max: usize) -> &str {
    let shaped = v.is_empty() || (v.len() <= max && v.split(',').all(is_scope));
    if shaped {
        v
    } else {
        INVALID
    }
}

/// The method an unknown caller named, kept only when it is a documented Slack method in
/// Slack's spelling, a webhook post's `hooks.<name>` (the guard names only webhooks
/// that exist), or a post to a held capability (`response_url`, `file_upload`), else
/// [`INVALID`].
pub fn method_name(v: &str) -> &str {
    let webhook = v
        .strip_prefix("hooks.")
        .is_some_and(slackgate_guard::is_hook_name);
    let custody = [
        slackgate_guard::RESPONSE_URL_METHOD,
        slackgate_guard::FILE_UPLOAD_METHOD,
    ]
    .contains(&v);
    if webhook || custody || slackgate_slack::canonical_method(v) == Some(v) {
        v
    } else {
        INVALID
    }
}

/// The rules an unknown caller's record may carry: the gateway's own fixed texts for
/// the refusals that come before a bot is known. Any other rule (a reading error that
/// names an argument the caller sent, say) is written as [`INVALID`].
pub(crate) fn unknown_caller_rule(rule: &str) -> &'static str {
    use slackgate_guard::Unreadable;
    use slackgate_slack::CallError;
    const FIXED: [&str; 10] = [
        "key",
        "no key",
        // A capability URL that names nothing held (secret custody).
        "capability",
        "query",
        "path",
        "Authorization and the token argument differ",
        Unreadable::BodyTooLarge.rule(),
        Unreadable::BodyFraming.rule(),
        Unreadable::BodyTimeout.rule(),
        Unreadable::HeaderTwice.rule(),
    ];
    // The front's refusals of a head (`EgressDoor::refused`), named by their reason.
    const HEAD: [slackgate_guard::Reason; 4] = [
        slackgate_guard::Reason::BadRequest,
        slackgate_guard::Reason::HeadTooLarge,
        slackgate_guard::Reason::HeadTimeout,
        slackgate_guard::Reason::UnsupportedTransferCoding,
    ];
    if let Some(fixed) = FIXED.into_iter().find(|f| *f == rule) {
        return fixed;
    }
    if let Some(head) = HEAD.into_iter().find(|r| r.as_str() == rule) {
        return head.as_str();
    }
    // A call that could not be read: the guard names an unknown caller's by its kind.
    CallError::KINDS
        .into_iter()
        .find(|k| *k == rule)
        .unwrap_or(INVALID)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]

        /// The byte test answers as decoding every character did.
        #[test]
        fn control_characters_are_found_as_by_decoding(
            chars in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::char::range('\u{0}', '\u{ff}'),
                    proptest::sample::select(vec!['a', 'é', 'Â', '\u{100}', '\u{2028}', '\u{feff}', '😀']),
                ],
                0..40,
            ),
        ) {
            let v: String = chars.into_iter().collect();
            proptest::prop_assert_eq!(has_control(&v), v.chars().any(char::is_control));
        }
    }

    #[test]
    fn every_character_below_u_0200_is_judged_as_by_decoding() {
        for c in (0..0x200).filter_map(char::from_u32) {
            let v = format!("ab{c}cd");
            assert_eq!(has_control(&v), c.is_control(), "{c:?}");
        }
    }
}
