//! `read_call` and `strip_body_token` on arbitrary calls, held to a plain reference reader
//! built on `serde_json` and `form_urlencoded`. Neither may panic, and:
//! - `read_call` accepts exactly the calls the reference accepts, and then reads the same
//!   token, channels (every channel-naming argument, deduplicated, the first channel of each
//!   argument, refused past the cap: checked with no cap and with a cap of 3), team, names
//!   and encoding; `CallArgs::acted_on` picks the method's own argument as the table says;
//! - reading is linear: the call (as its first line says) repeated 256 times takes at most
//!   32x the time of 32 repeats (8x is linear; the quadratic channel reader took 64x) plus
//!   10 ms;
//! - `canonical_method` finds exactly the names equal to a table entry ignoring ASCII case,
//!   and gives that entry, which `method_from_path` accepts;
//! - a JSON body's scanner accepts exactly what `serde_json` accepts as an object;
//! - `strip_body_token` borrows exactly when there is no body token; a stripped form is the
//!   original without its `token` pieces; a stripped JSON body is the original object less
//!   `token`; reading the stripped body again gives the same arguments less the body token.
//!
//! Input: `CONTENT-TYPE\nQUERY\nBODY`, where a `-` line means "absent" (so seeds are
//! readable). Each body is also read as a form and as JSON whatever the first line says.
//! The query line is also looked up as a method name.

#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::time::{Duration, Instant};

use slackgate_slack::{
    canonical_method, conversation_use, method_from_path, read_call, strip_body_token, CallArgs,
    CallEncoding, CallLimits, CHANNEL_ARGUMENTS, METHODS,
};

/// Caps to read every call with: none, and one small enough for inputs to pass it.
const CAPS: [usize; 2] = [usize::MAX, 3];

/// A header line, `-` meaning absent.
fn line(part: Option<&[u8]>) -> Option<&[u8]> {
    part.filter(|p| *p != b"-")
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let content_type = line(parts.next());
    let query = line(parts.next());
    let body = parts.next().unwrap_or_default();
    for ct in [
        content_type,
        Some(&b"application/x-www-form-urlencoded"[..]),
        Some(&b"application/json; charset=utf-8"[..]),
    ] {
        for cap in CAPS {
            check(query, ct, body, cap);
        }
    }
    check_linear(query, content_type, body);
    if let Some(name) = query.and_then(|q| std::str::from_utf8(q).ok()) {
        check_method(name);
    }
});

fn check_method(name: &str) {
    let expected = METHODS
        .iter()
        .find(|m| m.eq_ignore_ascii_case(name))
        .copied();
    assert_eq!(canonical_method(name), expected, "canonical_method");
    if let Some(canonical) = expected {
        assert_eq!(
            method_from_path(&format!("/api/{canonical}")),
            Some(canonical)
        );
    }
}

/// The call with its body repeated `times` over: a form's pieces or a JSON object's
/// members given again (the same values, so the arguments read are the same).
fn repeated(content_type: Option<&[u8]>, body: &[u8], times: usize) -> Option<Vec<u8>> {
    let json =
        content_type.is_some_and(|ct| ct.windows(4).any(|w| w.eq_ignore_ascii_case(b"json")));
    if !json {
        return Some(vec![body; times].join(&b'&'));
    }
    let text = std::str::from_utf8(body).ok()?.trim();
    let inner = text.strip_prefix('{')?.strip_suffix('}')?.trim();
    if inner.is_empty() {
        return None;
    }
    Some(format!("{{{}}}", vec![inner; times].join(",")).into_bytes())
}

/// Reading a call given 256 times over takes no more than about eight times reading it given
/// 32 times over.
fn check_linear(query: Option<&[u8]>, content_type: Option<&[u8]>, body: &[u8]) {
    let limits = CallLimits {
        max_channels: usize::MAX,
    };
    if body.len() < 8 || read_call(query, content_type, body, &limits).is_err() {
        return;
    }
    let (Some(small), Some(large)) = (
        repeated(content_type, body, 32),
        repeated(content_type, body, 256),
    ) else {
        return;
    };
    let fastest = |input: &[u8]| {
        (0..3)
            .map(|_| {
                let started = Instant::now();
                let _ = read_call(query, content_type, input, &limits);
                started.elapsed()
            })
            .min()
            .unwrap_or_default()
    };
    let (t_small, t_large) = (fastest(&small), fastest(&large));
    assert!(
        t_large <= t_small * 32 + Duration::from_millis(10),
        "not linear: 32 repeats {t_small:?}, 256 repeats {t_large:?}"
    );
}

fn check(query: Option<&[u8]>, content_type: Option<&[u8]>, body: &[u8], cap: usize) {
    let limits = CallLimits { max_channels: cap };
    let ours = read_call(query, content_type, body, &limits);
    let reference = reference_read(query, content_type, body, cap);
    match (&ours, &reference) {
        (Ok(args), Some(expected)) => {
            assert_eq!(args, expected, "read_call and the reference disagree");
            for method in [
                "chat.postMessage",
                "files.completeUploadExternal",
                "canvases.access.set",
                "auth.test",
            ] {
                assert_eq!(
                    args.acted_on(method),
                    reference_acted_on(args, method),
                    "acted_on {method}"
                );
            }
        }
        (Ok(args), None) => panic!("read_call accepts what the reference refuses: {args:?}"),
        (Err(e), Some(expected)) => {
            panic!("read_call refuses ({e}) what the reference reads: {expected:?}")
        }
        (Err(e), None) => {
            // Error texts are fixed phrases and at most a plain name.
            let text = e.to_string();
            assert!(text.len() < 120, "long error text");
        }
    }
    let Ok(args) = ours else { return };
    let stripped = strip_body_token(args.encoding, body).expect("strip after read");
    assert_eq!(
        matches!(stripped, Cow::Borrowed(_)),
        args.body_token.is_none()
    );
    match args.encoding {
        CallEncoding::None => assert_eq!(&stripped[..], body),
        CallEncoding::Form => {
            let kept: Vec<&[u8]> = body
                .split(|&b| b == b'&')
                .filter(|piece| form_name(piece).as_deref() != Some("token"))
                .collect();
            assert_eq!(&stripped[..], &kept.join(&b'&')[..]);
        }
        CallEncoding::Json => {
            let mut original: Value = serde_json::from_slice(body).expect("accepted JSON");
            if let Some(object) = original.as_object_mut() {
                object.remove("token");
            }
            let after: Value = serde_json::from_slice(&stripped).expect("stripped JSON parses");
            assert_eq!(after, original);
        }
    }
    let again = read_call(query, content_type, &stripped, &limits).expect("stripped body reads");
    assert_eq!(again, args.after_strip(&stripped));
}

// === The reference reader ===

const WATCHED: [&str; 7] = [
    "token",
    "team_id",
    "channel",
    "channel_id",
    "channels",
    "channel_ids",
    "context_channel_id",
];

/// The channel a method acts on, from the table's targets and the channels each argument
/// named first; the first channel named for a method the table does not know.
fn reference_acted_on<'a>(args: &'a CallArgs, method: &str) -> Option<&'a str> {
    match conversation_use(method) {
        Some(u) => u.targets.iter().find_map(|t| {
            args.by_argument
                .iter()
                .find(|(a, _)| a == t)
                .map(|(_, c)| c.as_str())
        }),
        None => args.channels.first().map(String::as_str),
    }
}

#[derive(Debug, PartialEq)]
enum Arg {
    Text(String),
    Json(Value),
}

fn reference_read(
    query: Option<&[u8]>,
    content_type: Option<&[u8]>,
    body: &[u8],
    cap: usize,
) -> Option<CallArgs> {
    let encoding = if body.is_empty() {
        CallEncoding::None
    } else {
        match content_type {
            None => CallEncoding::Form,
            Some(ct) => {
                let essence = std::str::from_utf8(ct).ok()?.split(';').next()?;
                let essence = essence.trim_matches(|c: char| c.is_ascii_whitespace());
                if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
                    CallEncoding::Form
                } else if essence.eq_ignore_ascii_case("application/json") {
                    CallEncoding::Json
                } else {
                    return None;
                }
            }
        }
    };
    // (name, value, from the body, may have PHP-style aliases)
    let mut given: Vec<(String, Arg, bool, bool)> = Vec::new();
    if let Some(query) = query {
        for (name, value) in reference_form(query)? {
            given.push((name, Arg::Text(value), false, true));
        }
    }
    match encoding {
        CallEncoding::None => {}
        CallEncoding::Form => {
            for (name, value) in reference_form(body)? {
                given.push((name, Arg::Text(value), true, true));
            }
        }
        CallEncoding::Json => {
            let object = matches!(serde_json::from_slice::<Value>(body), Ok(Value::Object(_)));
            let members = serde_json::from_slice::<Members>(body).ok();
            assert_eq!(
                object,
                members.is_some(),
                "serde's map and Value readers disagree"
            );
            for (name, value) in members?.0 {
                given.push((name, Arg::Json(value), true, false));
            }
        }
    }

    let mut args = CallArgs::new(encoding);
    let mut first: Vec<(&str, &Arg)> = Vec::new();
    for (name, value, from_body, aliased) in &given {
        match first.iter().find(|(n, _)| n == name) {
            Some((_, seen)) => {
                if !same(seen, value) {
                    return None;
                }
            }
            None => first.push((name, value)),
        }
        if !args.names.contains(name) {
            args.names.push(name.clone());
        }
        if *aliased {
            for alias in php_names(name) {
                if WATCHED.contains(&alias.as_str()) {
                    return None;
                }
                if !args.names.contains(&alias) {
                    args.names.push(alias);
                }
            }
        }
        let text = match value {
            Arg::Text(t) => Some(t.as_str()),
            Arg::Json(Value::String(s)) => Some(s.as_str()),
            Arg::Json(_) => None,
        };
        match name.as_str() {
            "token" => {
                let token = text?;
                if *from_body {
                    args.body_token.get_or_insert_with(|| token.to_owned());
                } else {
                    args.token_in_query = true;
                }
            }
            "team_id" => {
                let team = text?;
                args.team_id.get_or_insert_with(|| team.to_owned());
            }
            "channel" | "channel_id" | "context_channel_id" => {
                let argument = CHANNEL_ARGUMENTS.iter().find(|a| **a == name.as_str())?;
                push_channel(&mut args, argument, text?, cap)?;
            }
            "channels" | "channel_ids" => {
                let argument = CHANNEL_ARGUMENTS.iter().find(|a| **a == name.as_str())?;
                match value {
                    Arg::Json(Value::Array(items)) => {
                        for item in items {
                            push_list(&mut args, argument, item.as_str()?, cap)?;
                        }
                    }
                    _ => push_list(&mut args, argument, text?, cap)?,
                }
            }
            _ => {}
        }
    }
    Some(args)
}

fn same(a: &Arg, b: &Arg) -> bool {
    match (a, b) {
        (Arg::Text(t), Arg::Json(Value::String(s)))
        | (Arg::Json(Value::String(s)), Arg::Text(t)) => t == s,
        _ => a == b,
    }
}

/// Records a channel; `None` past the cap.
fn push_channel(
    args: &mut CallArgs,
    argument: &'static str,
    channel: &str,
    cap: usize,
) -> Option<()> {
    if !args.channels.iter().any(|c| c == channel) {
        if args.channels.len() == cap {
            return None;
        }
        args.channels.push(channel.to_owned());
    }
    if !args.by_argument.iter().any(|(a, _)| *a == argument) {
        args.by_argument.push((argument, channel.to_owned()));
    }
    Some(())
}

fn push_list(args: &mut CallArgs, argument: &'static str, list: &str, cap: usize) -> Option<()> {
    for item in list.split(',') {
        let item = item.trim();
        if !item.is_empty() {
            push_channel(args, argument, item, cap)?;
        }
    }
    Some(())
}

/// `form_urlencoded`'s pairs; `None` when any name or value was decoded lossily.
fn reference_form(input: &[u8]) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for piece in input.split(|&b| b == b'&') {
        let Some((name, value)) = form_urlencoded::parse(piece).next() else {
            continue;
        };
        let eq = piece.iter().position(|&b| b == b'=').unwrap_or(piece.len());
        let raw_value = piece.get(eq + 1..).unwrap_or_default();
        for (decoded, raw) in [(&name, &piece[..eq]), (&value, raw_value)] {
            if decoded.contains('\u{fffd}') && std::str::from_utf8(&percent_decode(raw)).is_err() {
                return None;
            }
        }
        pairs.push((name.into_owned(), value.into_owned()));
    }
    Some(pairs)
}

fn form_name(piece: &[u8]) -> Option<String> {
    form_urlencoded::parse(piece)
        .next()
        .map(|(n, _)| n.into_owned())
}

fn percent_decode(raw: &[u8]) -> Vec<u8> {
    let digit = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match (b, digit(raw.get(i + 1)), digit(raw.get(i + 2))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The names PHP's form parser files `name` under, besides `name` itself.
fn php_names(name: &str) -> Vec<String> {
    let mut s = name;
    if let Some(nul) = s.find('\0') {
        s = &s[..nul];
    }
    let s = s.trim_start_matches(' ');
    let plain = |x: &str| x.replace([' ', '.'], "_");
    let mut names = Vec::new();
    match s.find('[') {
        Some(at) => {
            let base = plain(&s[..at]);
            let rest = &s[at + 1..];
            names.push(base.clone());
            if !rest.contains(']') {
                names.push(format!("{base}_{rest}"));
            }
        }
        None => names.push(plain(s)),
    }
    names.retain(|n| n != name);
    names
}

/// A JSON object's members in order, repeats included, read by serde_json.
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}
