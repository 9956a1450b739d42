use proptest::prelude::*;

use super::*;
use crate::facts::{envelope_facts, json_object};

/// What the gateway would conclude with serde_json alone.
fn by_serde(text: &str) -> Result<crate::Facts<'_>, crate::FactsError> {
    json_object::<EventsEnvelope<'_>>(text).and_then(envelope_facts)
}

/// The quick reader must never accept what serde rejects, nor read other values.
fn agrees(text: &str) -> bool {
    let Some((env, _)) = events_envelope(text) else {
        return false;
    };
    let quick = envelope_facts(env);
    assert_eq!(quick, by_serde(text), "{text}");
    assert!(json_object::<EventsEnvelope<'_>>(text).is_ok(), "{text}");
    true
}

#[test]
fn the_first_flagged_lane_is_the_first_special_byte() {
    let special = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..200_000 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Mostly bytes near the interesting values, so matches and borrows are common.
        let lanes = rng.to_le_bytes().map(|r| match r % 8 {
            0 => b'"',
            1 => b'\\',
            2 => r % 0x20,
            3 => 0x20,
            4 => b'"' + 1,
            5 => 0x80 | r,
            _ => b'a' + r % 26,
        });
        let flags = special_bytes(u64::from_le_bytes(lanes));
        let first = lanes.iter().position(|&b| special(b));
        match first {
            None => assert_eq!(flags, 0, "{lanes:?}"),
            Some(i) => assert_eq!((flags.trailing_zeros() / 8) as usize, i, "{lanes:?}"),
        }
    }
}

#[test]
fn every_events_fixture_takes_the_quick_path_with_serde_s_facts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        // socket_mode.json holds Socket Mode frames, not one Events API body.
        if path.extension().is_some_and(|e| e == "json")
            && path.file_name().is_some_and(|n| n != "socket_mode.json")
        {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(agrees(&text), "{} fell back to serde", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 6, "{seen} fixtures");
    let bench = r#"{"token":"Z","team_id":"T0ACME","api_app_id":"A0HELPDESK","event":{"type":"message","channel":"C0HELP","user":"U0444","text":"xxxx","ts":"1.2","channel_type":"channel"},"type":"event_callback","event_id":"Ev1","event_time":1764377001,"authorizations":[{"enterprise_id":null,"team_id":"T0ACME","user_id":"U0BOT","is_bot":true,"is_enterprise_install":false}]}"#;
    assert!(agrees(bench));
}

#[test]
fn unusual_but_valid_bodies_fall_back_and_still_get_serde_s_answer() {
    let deep = format!(
        r#"{{"type":"event_callback","x":{}1{},"event":{{"type":"message"}}}}"#,
        "[".repeat(70),
        "]".repeat(70)
    );
    let cases = [
        // An escaped key may spell a field name.
        r#"{"type":"event_callback","t\u0065am_id":"T1","event":{"type":"message"}}"#.to_owned(),
        // An escaped value the gateway reads is decoded by serde.
        r#"{"type":"event_callback","team_id":"T\u0031","event":{"type":"message"}}"#.to_owned(),
        deep,
    ];
    for text in &cases {
        assert!(events_envelope(text).is_none(), "{text}");
        assert!(by_serde(text).is_ok(), "{text}");
    }
}

#[test]
fn invalid_or_ambiguous_bodies_are_never_answered_by_the_quick_reader() {
    let cases = [
        r#"{"type":"event_callback","type":"url_verification","challenge":"c"}"#,
        r#"{"type":"event_callback","event":{"type":"message",}}"#,
        r#"{"type":"event_callback","event":{"type":"message"}} x"#,
        r#"{"type":"event_callback","event":{"type":"message"},"n":01}"#,
        r#"{"type":"event_callback","event":{"type":"message"},"n":1.}"#,
        r#"{"type":"event_callback","event":{"type":"message"},"n":-}"#,
        r#"{"type":"event_callback","event":{"type":"message"},"s":"a\x"}"#,
        "{\"type\":\"event_callback\",\"event\":{\"type\":\"message\"},\"s\":\"a\u{1}\"}",
        r#"{"type":"event_callback","event":{"type":"message"},"b":tru}"#,
        r#"{"type":"event_callback","event":{"type":"message"},"u":"\u12"}"#,
        r#"{"type":"event_callback","team_id":5,"event":{"type":"message"}}"#,
        r#"{"type":"event_callback","event":{"type":"message","user":[1]}}"#,
        r#"{"type":"event_callback","authorizations":[null],"event":{"type":"m"}}"#,
        r#"{"type":"event_callback","is_enterprise_install":"yes","event":{"type":"m"}}"#,
        r#"["type","event_callback"]"#,
        r#"{"type":"event_callback""#,
        "",
    ];
    for text in cases {
        assert!(events_envelope(text).is_none(), "{text}");
    }
}

/// JSON-ish text built from the field names and value shapes the reader cares about,
/// valid and invalid, with random whitespace.
fn value(depth: u32) -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        6 => Just("null".to_owned()),
        2 => Just("true".to_owned()),
        2 => Just("false".to_owned()),
        2 => Just("0".to_owned()),
        2 => Just("-12.5e+3".to_owned()),
        8 => prop::sample::select(vec![
            "T1", "", "E1", "U1", "C1", "event_callback", "url_verification",
            "app_rate_limited", "message", "app_mention", "tokens_revoked", "ok",
        ])
        .prop_map(|s| format!("\"{s}\"")),
        4 => prop::sample::select(vec![
            r#""a\nb""#, r#""\u00e9t\u00e9""#, r#""\ud800""#, r#""https:\/\/x""#,
            r#""\"q\"""#, "\"ünïcødé\"",
        ])
        .prop_map(str::to_owned),
        // Longer than the byte-by-byte start, so the memchr part is exercised too.
        3 => (
            24usize..80,
            prop::sample::select(vec!["", r"\n", r"\u00e9", r#"\""#, "\u{1}", r"\x", r"\u12"]),
        )
            .prop_map(|(n, mid)| format!("\"{}{mid}{}\"", "x".repeat(n), "y".repeat(n % 7))),
        1 => prop::sample::select(vec![
            "01", "1.", "-", "1e", "nul", "tru", r#""bad\x""#, "\"ctl\u{1}\"",
            r#""\u12""#, r#""open"#, "", ",",
        ])
        .prop_map(str::to_owned),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    let key = prop::sample::select(vec![
        "type",
        "event",
        "team_id",
        "enterprise_id",
        "api_app_id",
        "challenge",
        "context_team_id",
        "context_enterprise_id",
        "event_id",
        "is_enterprise_install",
        "authorizations",
        "user",
        "channel",
        "channel_id",
        "item",
        "id",
        "text",
        r"t\u0065am_id",
        "x",
    ]);
    let ws = prop::sample::select(vec!["", "", "", " ", "\n", "\t "]);
    let entry =
        (key, ws.clone(), value(depth - 1)).prop_map(|(k, w, v)| format!("{w}\"{k}\"{w}:{w}{v}"));
    let object =
        (prop::collection::vec(entry, 0..6), any::<bool>()).prop_map(|(entries, trailing)| {
            let comma = if trailing && !entries.is_empty() {
                ","
            } else {
                ""
            };
            format!("{{{}{comma}}}", entries.join(","))
        });
    let array = prop::collection::vec(value(depth - 1), 0..4)
        .prop_map(|items| format!("[{}]", items.join(", ")));
    prop_oneof![4 => leaf, 4 => object, 1 => array].boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn quick_answers_are_serde_s_answers(text in value(4)) {
        agrees(&text);
    }

    #[test]
    fn quick_answers_on_event_shaped_bodies_are_serde_s_answers(
        kind in prop::sample::select(vec!["event_callback", "url_verification", "app_rate_limited"]),
        event in value(3),
        extra in value(3),
        tail in prop::sample::select(vec!["", " ", "\n", "x", "}"]),
    ) {
        let text = format!(
            r#"{{"type":"{kind}","challenge":"c","team_id":"T1","event":{event},"extra":{extra},"authorizations":[{{"team_id":"T2","is_enterprise_install":true}}]}}{tail}"#
        );
        agrees(&text);
    }
}

/// Every string length around the word-at-a-time start (8-byte words, [`SHORT_WORDS`] of
/// them) and the memchr rest, with an escape, a raw control byte, a non-ASCII character, a
/// quote or nothing at every position, as a value the reader keeps and as one it skips,
/// terminated or not: the quick reader answers as serde does, or leaves it to serde.
#[test]
fn strings_of_every_length_and_special_position_agree_with_serde() {
    let inserts = [
        "", r#"\""#, r"\\", r"\n", r"\u00e9", r"\u12", r"\x", "\u{1}", "\u{1f}", "\u{7f}", "é",
        "\u{2028}", "\"",
    ];
    let mut quick = 0;
    for len in 0..=(8 * SHORT_WORDS + 9) {
        for insert in inserts {
            for at in 0..=len {
                let s = format!("{}{insert}{}", "x".repeat(at), "y".repeat(len - at));
                for body in [
                    format!(
                        r#"{{"type":"event_callback","team_id":"{s}","event":{{"type":"m"}}}}"#
                    ),
                    format!(r#"{{"type":"event_callback","{s}":"{s}","event":{{"type":"m"}}}}"#),
                    format!(r#"{{"type":"event_callback","event":{{"type":"m"}},"team_id":"{s}"#),
                ] {
                    if agrees(&body) {
                        quick += 1;
                    }
                }
                if insert.is_empty() || insert == "é" || insert == "\u{7f}" {
                    // Plain strings are the quick reader's to answer.
                    let body = format!(
                        r#"{{"type":"event_callback","team_id":"{s}","event":{{"type":"m"}}}}"#
                    );
                    assert!(events_envelope(&body).is_some(), "{body}");
                }
            }
        }
    }
    assert!(quick > 1000, "{quick}");
}

#[test]
fn content_types_are_read_as_before() {
    use crate::facts::BodyEncoding;
    // What `split(';').next().trim()` read: the essence up to the first `;`, trimmed of
    // Unicode whitespace, compared without case.
    for (ct, want) in [
        ("application/json", BodyEncoding::Json),
        ("Application/JSON; charset=utf-8", BodyEncoding::Json),
        (" application/json ;x", BodyEncoding::Json),
        ("application/json\u{a0}", BodyEncoding::Json),
        (
            "\u{2003}application/x-www-form-urlencoded;",
            BodyEncoding::Form,
        ),
        (";application/json", BodyEncoding::Form),
        ("application/jsonx", BodyEncoding::Form),
        ("", BodyEncoding::Form),
        ("é;application/json", BodyEncoding::Form),
    ] {
        assert_eq!(BodyEncoding::detect(Some(ct), b"a=1"), want, "{ct:?}");
        let old = ct.split(';').next().unwrap_or("").trim();
        let json = old.eq_ignore_ascii_case("application/json");
        assert_eq!(json, want == BodyEncoding::Json, "{ct:?}");
    }
    assert_eq!(BodyEncoding::detect(Some(";"), b" {}"), BodyEncoding::Json);
}
