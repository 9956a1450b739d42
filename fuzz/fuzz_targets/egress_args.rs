//! `read_call` and `strip_body_token` on arbitrary calls, held to a plain reference reader
//! built on `serde_json` and `form_urlencoded`. Neither may panic, and:
//! - `read_call` accepts exactly the calls the reference accepts, and then reads the same
//!   token, channels, team, names and encoding;
//! - a JSON body's scanner accepts exactly what `serde_json` accepts as an object;
//! - `strip_body_token` borrows exactly when there is no body token; a stripped form is the
//!   original without its `token` pieces; a stripped JSON body is the original object less
//!   `token`; reading the stripped body again gives the same arguments less the body token.
//!
//! Input: `CONTENT-TYPE\nQUERY\nBODY`, where a `-` line means "absent" (so seeds are
//! readable). Each body is also read as a form and as JSON whatever the first line says.

#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use slackgate_slack::{read_call, strip_body_token, CallArgs, CallEncoding};

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
        check(query, ct, body);
    }
});

fn check(query: Option<&[u8]>, content_type: Option<&[u8]>, body: &[u8]) {
    let ours = read_call(query, content_type, body);
    let reference = reference_read(query, content_type, body);
    match (&ours, &reference) {
        (Ok(args), Some(expected)) => {
            assert_eq!(args, expected, "read_call and the reference disagree")
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
    let again = read_call(query, content_type, &stripped).expect("stripped body reads");
    let mut expected = args.clone();
    expected.body_token = None;
    if !args.token_in_query {
        expected.names.retain(|n| n != "token");
    }
    if stripped.is_empty() {
        expected.encoding = CallEncoding::None;
    }
    assert_eq!(again, expected);
}

// === The reference reader ===

const WATCHED: [&str; 5] = ["token", "team_id", "channel", "channel_id", "channels"];

#[derive(Debug, PartialEq)]
enum Arg {
    Text(String),
    Json(Value),
}

fn reference_read(
    query: Option<&[u8]>,
    content_type: Option<&[u8]>,
    body: &[u8],
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

    let mut args = CallArgs {
        token_in_query: false,
        body_token: None,
        channels: Vec::new(),
        team_id: None,
        names: Vec::new(),
        encoding,
    };
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
            "channel" | "channel_id" => push_channel(&mut args.channels, text?),
            "channels" => match value {
                Arg::Json(Value::Array(items)) => {
                    for item in items {
                        push_list(&mut args.channels, item.as_str()?);
                    }
                }
                _ => push_list(&mut args.channels, text?),
            },
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

fn push_channel(channels: &mut Vec<String>, channel: &str) {
    if !channels.iter().any(|c| c == channel) {
        channels.push(channel.to_owned());
    }
}

fn push_list(channels: &mut Vec<String>, list: &str) {
    for item in list.split(',') {
        let item = item.trim();
        if !item.is_empty() {
            push_channel(channels, item);
        }
    }
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
