//! Secret custody keeps everything else byte for byte: for every fixture (and for
//! generated interactivity payloads), the body sent to the bot differs from Slack's only in
//! the response URLs and workflow tokens taken into custody, and it verifies with the
//! route's `resign` secret (not with Slack's).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::Value;
use slackgate_slack::{take_into_custody, verify, Held, SignatureError, SigningKey, Wants};

const BOTH: Wants = Wants {
    response_urls: true,
    workflow_tokens: true,
};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn content_type(body: &[u8]) -> &'static str {
    if body.first() == Some(&b'{') {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    }
}

/// The body as the bot gets it, and each capability with what it stands for.
fn rewrite(body: &[u8]) -> (Vec<u8>, HashMap<String, String>) {
    let mut held = HashMap::new();
    let out = take_into_custody(Some(content_type(body)), body, BOTH, |h| {
        let (cap, real) = match h {
            Held::ResponseUrl { url, .. } => (
                format!("http://gw.example:8081/respond/{:040x}", held.len()),
                url.to_owned(),
            ),
            Held::WorkflowToken { token, .. } => {
                (format!("sgw-{:040x}", held.len()), token.to_owned())
            }
        };
        held.insert(cap.clone(), real);
        Some(cap)
    })
    .unwrap();
    (out.unwrap_or_else(|| body.to_vec()), held)
}

/// A body decoded: a JSON document, or a form's pairs with `payload` decoded as JSON.
#[derive(Debug, PartialEq)]
enum Decoded {
    Json(Value),
    Form(Vec<(String, Value)>),
}

fn decoded(body: &[u8]) -> Decoded {
    if content_type(body) == "application/json" {
        return Decoded::Json(serde_json::from_slice(body).unwrap());
    }
    Decoded::Form(
        form_urlencoded::parse(body)
            .map(|(k, v)| {
                let v = if k == "payload" {
                    serde_json::from_str(&v).unwrap()
                } else {
                    Value::String(v.into_owned())
                };
                (k.into_owned(), v)
            })
            .collect(),
    )
}

/// Puts back what each capability stands for.
fn restore(v: &mut Value, held: &HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(real) = held.get(s.as_str()) {
                *s = real.clone();
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|v| restore(v, held)),
        Value::Object(o) => o.values_mut().for_each(|v| restore(v, held)),
        _ => {}
    }
}

/// Every string the document holds, keys aside.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(o) => o.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// Checks the rewrite of one body; returns how many capabilities it took.
fn check(name: &str, body: &[u8]) -> usize {
    let (out, held) = rewrite(body);
    let mut got = decoded(&out);
    let mut seen = Vec::new();
    match &got {
        Decoded::Json(v) => strings(v, &mut seen),
        Decoded::Form(pairs) => pairs.iter().for_each(|(_, v)| strings(v, &mut seen)),
    }
    for real in held.values() {
        assert!(!seen.contains(real), "{name}: a held value reached the bot");
    }
    match &mut got {
        Decoded::Json(v) => restore(v, &held),
        Decoded::Form(pairs) => pairs.iter_mut().for_each(|(_, v)| restore(v, &held)),
    }
    assert_eq!(
        got,
        decoded(body),
        "{name}: more than the held fields changed"
    );

    // What is forwarded is signed with the route's resign secret.
    let slack = SigningKey::new("current", b"slack-signing-secret").unwrap();
    let resign = SigningKey::new("resign", b"bot-signing-secret").unwrap();
    let ts = "1764377000";
    let sig = resign.sign(ts, &out);
    let ok = verify(
        [&resign],
        Some(sig.as_bytes()),
        Some(ts.as_bytes()),
        &out,
        1_764_377_000,
        300,
    );
    assert!(ok.is_ok(), "{name}");
    let slack_s = slack.sign(ts, body);
    assert_eq!(
        verify(
            [&resign],
            Some(slack_s.as_bytes()),
            Some(ts.as_bytes()),
            body,
            1_764_377_000,
            300
        )
        .unwrap_err(),
        SignatureError::BadSignature,
        "{name}: Slack's signature must not verify with the resign secret"
    );
    held.len()
}

#[test]
fn every_fixture_differs_only_in_the_held_fields_and_verifies_with_resign() {
    let mut taken = HashMap::new();
    for entry in std::fs::read_dir(data_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.ends_with(".json") || name.ends_with(".form")) || name == "socket_mode.json" {
            continue;
        }
        let body = std::fs::read(&path).unwrap();
        taken.insert(name.clone(), check(&name, &body));
    }
    // The envelopes of Socket Mode, as the HTTP requests they stand for.
    let frames: Value =
        serde_json::from_slice(&std::fs::read(data_dir().join("socket_mode.json")).unwrap())
            .unwrap();
    let events = serde_json::to_vec(&frames["envelope_events_api"]["payload"]).unwrap();
    taken.insert("socket events".into(), check("socket events", &events));
    let fields = frames["envelope_slash_commands"]["payload"]
        .as_object()
        .unwrap();
    let command = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter().map(|(k, v)| (k, v.as_str().unwrap())))
        .finish();
    taken.insert(
        "socket command".into(),
        check("socket command", command.as_bytes()),
    );
    let json = serde_json::to_string(&frames["envelope_interactive"]["payload"]).unwrap();
    let interactive = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &json)
        .finish();
    taken.insert(
        "socket interactive".into(),
        check("socket interactive", interactive.as_bytes()),
    );

    // Each shape holds what Slack puts there.
    for (name, n) in [
        ("command_ticket.form", 1),
        ("signature_vector.form", 1),
        ("block_actions.form", 1),
        ("message_action.form", 1),
        ("event_function_executed.json", 1),
        ("block_actions_function.form", 1),
        ("event_app_mention.json", 0),
        ("url_verification.json", 0),
        ("ssl_check.form", 0),
        ("socket command", 1),
        ("socket interactive", 1),
        ("socket events", 0),
    ] {
        assert_eq!(taken.get(name), Some(&n), "{name}");
    }
}

/// A value of a generated payload: any JSON, with strings of any text.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Percent-encodes every byte but ASCII letters and digits (so spaces become `%20`).
fn encode_all(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_payloads_differ_only_in_the_held_fields(
        extra in prop::collection::btree_map("[a-z_]{1,8}", any_value(), 0..5),
        url in ".{1,40}",
        urls in prop::collection::vec(".{1,20}", 0..3),
        token in "[a-z0-9-]{1,30}",
        execution in "[A-Za-z0-9]{1,12}",
        escape_slashes in any::<bool>(),
        plus_for_space in any::<bool>(),
        other in "[a-z ]{0,10}",
    ) {
        let mut payload: serde_json::Map<String, Value> = extra.into_iter().collect();
        payload.insert("type".into(), "block_actions".into());
        // Held values are told apart from the other strings by their prefix.
        payload.insert("response_url".into(), format!("https://hooks.slack.com/{url}").into());
        payload.insert(
            "response_urls".into(),
            urls
                .into_iter()
                .map(|u| serde_json::json!({"response_url": format!("https://hooks.slack.com/a/{u}")}))
                .collect(),
        );
        payload.insert("bot_access_token".into(), format!("xwfp-{token}").into());
        payload.insert("function_data".into(), serde_json::json!({"execution_id": execution}));
        let mut json = serde_json::to_string(&Value::Object(payload)).unwrap();
        if escape_slashes {
            json = json.replace('/', "\\/");
        }
        let encoded = if plus_for_space {
            form_urlencoded::byte_serialize(json.as_bytes()).collect::<String>()
        } else {
            encode_all(&json)
        };
        let body = format!("payload={encoded}&other={}", encode_all(&other));
        check("generated", body.as_bytes());
    }

    #[test]
    fn custody_never_panics(body in prop::collection::vec(any::<u8>(), 0..256), json in any::<bool>()) {
        let ct = if json { "application/json" } else { "application/x-www-form-urlencoded" };
        let _ = take_into_custody(Some(ct), &body, BOTH, |_| Some("cap".into()));
    }

    #[test]
    fn custody_never_panics_on_payload_like_forms(s in "(payload=|response_url=|%7B|%22|%5C|%3A|%2C|%7D|\\{|\\}|\"|:|,|\\\\|&|response_url|bot_access_token|event|[a-z])*") {
        let _ = take_into_custody(Some("application/x-www-form-urlencoded"), s.as_bytes(), BOTH, |_| Some("cap".into()));
        let _ = take_into_custody(Some("application/json"), s.as_bytes(), BOTH, |_| Some("cap".into()));
    }
}
