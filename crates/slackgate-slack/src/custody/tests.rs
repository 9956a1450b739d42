use super::*;

const BOTH: Wants = Wants {
    response_urls: true,
    workflow_tokens: true,
};
const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
const JSON: Option<&str> = Some("application/json");

/// Runs custody with replacements `cap0`, `cap1`, ... and returns the body and what was
/// held, as `url:<..>` or `token:<..>@<execution>`.
fn take(ct: Option<&str>, body: &str, wants: Wants) -> (Option<String>, Vec<String>) {
    let mut held = Vec::new();
    let out = take_into_custody(ct, body.as_bytes(), wants, |h| {
        held.push(match h {
            Held::ResponseUrl { url, channel: None } => format!("url:{url}"),
            Held::ResponseUrl {
                url,
                channel: Some(c),
            } => format!("url:{url}#{c}"),
            Held::WorkflowToken {
                token,
                function_execution_id,
            } => format!("token:{token}@{}", function_execution_id.unwrap_or("-")),
        });
        Some(format!("cap{}", held.len() - 1))
    })
    .unwrap();
    (out.map(|b| String::from_utf8(b).unwrap()), held)
}

/// Every Slack fixture of the repository (`testdata/slack/*.form` and `*.json`): name,
/// content type and body.
fn fixtures() -> Vec<(String, Option<&'static str>, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/slack");
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let ct = match p.extension()?.to_str()? {
                "form" => FORM,
                "json" => JSON,
                _ => return None,
            };
            Some((p.display().to_string(), ct, std::fs::read(&p).unwrap()))
        })
        .collect();
    all.sort();
    assert!(all.len() >= 10, "{all:?}");
    all
}

/// Custody's answer for `body` (the rewritten body, what it held, or the error), with the
/// facts' hint handed in or not.
fn answer(ct: Option<&str>, body: &[u8], hint: Option<&CustodyHint<'_>>) -> String {
    let mut held = Vec::new();
    let out = take_into_custody_decoded(ct, body, BOTH, hint, |h| {
        held.push(format!("{h:?}"));
        Some(format!("cap{}", held.len()))
    });
    // Each pattern set alone too (a route may take response URLs or tokens only).
    let mut alone = Vec::new();
    for wants in [
        Wants {
            response_urls: true,
            workflow_tokens: false,
        },
        Wants {
            response_urls: false,
            workflow_tokens: true,
        },
    ] {
        alone.push(take_into_custody_decoded(ct, body, wants, hint, |_| {
            Some("c".into())
        }));
    }
    format!("{out:?} {held:?} {alone:?}")
}

/// The spots a hint carries, if it has any.
fn spots_of(hint: Option<&CustodyHint<'_>>) -> Option<usize> {
    match hint? {
        CustodyHint::Payload(p) => p.spots.as_ref().map(Vec::len),
        CustodyHint::Event(e) => Some(e.spots.len()),
    }
}

#[test]
fn the_facts_hint_is_reused_with_the_same_answer() {
    for (name, ct, body) in fixtures() {
        let Ok(facts) = crate::parse_facts(ct, &body) else {
            continue;
        };
        let hint = facts.custody.as_ref();
        // Every interactivity payload and every events body of the fixtures is read by a
        // reader that vouches for its spots: custody walks none of them.
        let interactive = body.starts_with(b"payload=");
        let events = ct == JSON;
        assert_eq!(spots_of(hint).is_some(), interactive || events, "{name}");
        assert_eq!(answer(ct, &body, hint), answer(ct, &body, None), "{name}");
        // A hint is used only for its own body: with a copy of the body, or another
        // body, custody reads again and answers for what it was given.
        let copy = body.clone();
        assert_eq!(answer(ct, &copy, hint), answer(ct, &body, None), "{name}");
        let other = br#"{"type":"event_callback","event":{"bot_access_token":"xwfp-9"}}"#;
        assert_eq!(
            answer(JSON, other, hint),
            answer(JSON, other, None),
            "{name}"
        );
        let other = b"payload=%7B%22response_url%22%3A%22https%3A%2F%2Fh%2F1%22%7D";
        assert_eq!(
            answer(FORM, other, hint),
            answer(FORM, other, None),
            "{name}"
        );
    }
    // The shapes custody takes something from have it spotted.
    let spotted = |name: &str, ct, want| {
        let body = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../testdata/slack")
                .join(name),
        )
        .unwrap();
        let facts = crate::parse_facts(ct, &body).unwrap();
        assert_eq!(spots_of(facts.custody.as_ref()), Some(want), "{name}");
    };
    spotted("block_actions.form", FORM, 1);
    spotted("view_submission.form", FORM, 0);
    spotted("block_actions_function.form", FORM, 2);
    spotted("event_function_executed.json", JSON, 2);
    spotted("event_message.json", JSON, 0);
}

#[test]
fn a_hint_moves_to_the_body_it_was_read_from_only() {
    let body = b"a=1&payload=%7B%22type%22%3A%22block_actions%22%2C%22response_url%22%3A%22https%3A%2F%2Fh%2F1%22%7D".to_vec();
    let facts = crate::parse_facts(FORM, &body).unwrap_or_else(|e| panic!("{e}"));
    let hint = facts.custody.clone().unwrap();
    // The same bytes at another address is another body.
    let copy = body.clone();
    assert!(hint.clone().within(&copy).is_none());
    assert!(hint.clone().within(&body[..10]).is_none());
    let moved = hint.within(&body).unwrap();
    let CustodyHint::Payload(p) = &moved else {
        panic!("{moved:?}")
    };
    assert!(p.decodes(&body[12..]));
    assert_eq!(answer(FORM, &body, Some(&moved)), answer(FORM, &body, None));
    assert_eq!(
        format!("{moved:?}"),
        format!(
            "Payload(DecodedPayload {{ raw_len: {}, utf8: true, .. }})",
            body.len() - 12
        )
    );
    // An events body's hint: the whole body, at the same address.
    let json = br#"{"type":"event_callback","event":{"type":"function_executed","bot_access_token":"xwfp-1"}}"#.to_vec();
    let facts = crate::parse_facts(JSON, &json).unwrap();
    let hint = facts.custody.clone().unwrap();
    assert!(hint.clone().within(&json[1..]).is_none());
    assert!(hint.clone().within(&json.clone()).is_none());
    let moved = hint.within(&json).unwrap();
    assert_eq!(format!("{moved:?}"), "Event(EventSpots { spots: 1, .. })");
    assert_eq!(answer(JSON, &json, Some(&moved)), answer(JSON, &json, None));
}

/// A JSON value of the shapes custody meets, as text: custody's keys (some spelled with
/// escapes, some repeated), strings with and without escapes, other types, nesting.
fn json_value(depth: u32) -> proptest::strategy::BoxedStrategy<String> {
    use proptest::prelude::*;
    let leaf = prop::sample::select(vec![
        r#""https://hooks.slack.com/actions/T1/2/3""#,
        r#""https:\/\/hooks.slack.com\/commands\/T1\/2\/3""#,
        r#""xwfp-1-2-3""#,
        r#""Fx0EXEC""#,
        r#""C0HELP""#,
        r#""""#,
        r#""\u0041\"é""#,
        "null",
        "5",
        "true",
        "[]",
        "{}",
    ])
    .prop_map(str::to_owned);
    leaf.prop_recursive(depth, 48, 6, |inner| {
        let key = prop::sample::select(vec![
            "type",
            "response_url",
            "response_urls",
            "response\\u005furl",
            "bot_access_token",
            "bot_access_t\\u006fken",
            "channel_id",
            "function_data",
            "execution_id",
            "event",
            "function_execution_id",
            "x",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((key, inner), 0..5).prop_map(|members| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
    .boxed()
}

/// A JSON string literal of the kinds custody meets (with and without escapes).
fn string_leaf() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop::sample::select(vec![
        r#""https://hooks.slack.com/actions/T1/2/3""#,
        r#""https:\/\/hooks.slack.com\/commands\/T1\/2\/3""#,
        r#""xwfp-1-2-3""#,
        r#""Fx0EXEC""#,
        r#""F\u0078ESC""#,
        r#""C0HELP""#,
        r#""""#,
        r#""\u0041\"é""#,
    ])
    .prop_map(str::to_owned)
}

/// Mostly a string, sometimes anything.
fn mostly_string() -> proptest::strategy::BoxedStrategy<String> {
    use proptest::prelude::*;
    prop_oneof![3 => string_leaf(), 1 => json_value(3)].boxed()
}

/// `"key":value` for one of `keys`.
fn member(
    keys: Vec<&'static str>,
    value: impl proptest::strategy::Strategy<Value = String>,
) -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    (prop::sample::select(keys), value).prop_map(|(k, v)| format!("\"{k}\":{v}"))
}

/// An object of 0 to `n` members drawn from `member`, as text.
fn object_of(
    member: impl proptest::strategy::Strategy<Value = String>,
    n: usize,
) -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop::collection::vec(member, 0..n).prop_map(|m| format!("{{{}}}", m.join(",")))
}

/// Members (each after a comma) for an interactivity payload's top level: custody's
/// fields of every shape, spelled plainly or with escapes, and others.
fn payload_members() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let url_entry = object_of(
        member(
            vec![
                "response_url",
                "channel_id",
                "response\\u005furl",
                "block_id",
            ],
            mostly_string(),
        ),
        4,
    );
    let one = prop_oneof![
        3 => member(vec!["response_url", "response\\u005furl"], mostly_string()),
        2 => member(
            vec!["response_urls"],
            prop_oneof![
                3 => proptest::collection::vec(url_entry, 0..3)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                1 => json_value(3),
            ],
        ),
        2 => member(vec!["bot_access_token", "bot_access_t\\u006fken"], mostly_string()),
        2 => member(
            vec!["function_data"],
            prop_oneof![
                3 => object_of(member(vec!["execution_id", "function", "x"], mostly_string()), 3),
                1 => json_value(3),
            ],
        ),
        2 => member(vec!["x", "event", "token", "view"], json_value(4)),
    ];
    proptest::collection::vec(one, 0..5)
        .prop_map(|m| m.into_iter().map(|m| format!(",{m}")).collect::<String>())
}

/// Members (each after a comma) for an Events API `event` object.
fn event_members() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let one = prop_oneof![
        3 => member(vec!["bot_access_token", "bot_access_t\\u006fken"], mostly_string()),
        2 => member(vec!["function_execution_id"], mostly_string()),
        2 => member(vec!["x", "function", "inputs", "response_url"], json_value(4)),
    ];
    proptest::collection::vec(one, 0..4)
        .prop_map(|m| m.into_iter().map(|m| format!(",{m}")).collect::<String>())
}

/// `text` cut at `cut` (per mille of its length, when below 1,000) with `flips` bytes
/// replaced.
fn mutate(text: &str, cut: usize, flips: &[(proptest::sample::Index, u8)]) -> Vec<u8> {
    let mut out = text.as_bytes().to_vec();
    if cut < 1_000 {
        out.truncate(out.len() * cut / 1_000);
    }
    for (at, b) in flips {
        if !out.is_empty() {
            let i = at.index(out.len());
            out[i] = *b;
        }
    }
    out
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

    /// Interactivity payloads of every shape: whenever the facts read one, custody with
    /// their hint answers byte for byte as custody reading the payload itself.
    #[test]
    fn a_payload_s_hint_gives_the_walk_s_answer(
        kind in proptest::sample::select(vec!["block_actions", "view_submission"]),
        members in payload_members(),
        cut in 0usize..4_000,
        flips in proptest::collection::vec(
            (proptest::prelude::any::<proptest::sample::Index>(),
             proptest::sample::select(vec![b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'a'])),
            0..2,
        ),
    ) {
        let text = format!(r#"{{"type":"{kind}"{members}}}"#);
        let json = mutate(&text, cut, &flips);
        let mut body = b"token=x&payload=".to_vec();
        body.extend(form_urlencoded::byte_serialize(&json).flat_map(str::bytes));
        if let Ok(facts) = crate::parse_facts(FORM, &body) {
            proptest::prop_assert_eq!(
                answer(FORM, &body, facts.custody.as_ref()),
                answer(FORM, &body, None),
                "{}", String::from_utf8_lossy(&json)
            );
        }
    }

    /// Events API bodies of every shape: whenever the quick reader reads one, custody
    /// with its spots answers as custody walking the body.
    #[test]
    fn an_event_s_hint_gives_the_walk_s_answer(
        event in event_members(),
        members in proptest::sample::select(vec!["", r#","x":{"bot_access_token":"xwfp-2"}"#, r#","event":{}"#, r#","event":{}"#]),
        cut in 0usize..4_000,
        flips in proptest::collection::vec(
            (proptest::prelude::any::<proptest::sample::Index>(),
             proptest::sample::select(vec![b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'a'])),
            0..2,
        ),
    ) {
        let text = format!(
            r#"{{"type":"event_callback","event":{{"type":"function_executed"{event}}}{members}}}"#
        );
        let body = mutate(&text, cut, &flips);
        if let Ok(facts) = crate::parse_facts(JSON, &body) {
            proptest::prop_assert_eq!(
                answer(JSON, &body, facts.custody.as_ref()),
                answer(JSON, &body, None),
                "{}", String::from_utf8_lossy(&body)
            );
        }
    }

    /// Cut and mutated interactivity forms: each `payload` field's decoding, handed in,
    /// gives the answer custody gives decoding for itself.
    #[test]
    fn custody_answers_alike_with_and_without_the_facts_decoding(raw in raw_field()) {
        let mut body = b"token=x&payload=".to_vec();
        body.extend_from_slice(&raw);
        if let Ok(facts) = crate::parse_facts(FORM, &body) {
            proptest::prop_assert_eq!(
                answer(FORM, &body, facts.custody.as_ref()),
                answer(FORM, &body, None)
            );
        }
        for (key, value) in crate::facts::form_pairs(&body) {
            if key.as_ref() == b"payload" {
                let decoded = CustodyHint::Payload(DecodedPayload::decode(value));
                proptest::prop_assert_eq!(
                    answer(FORM, &body, Some(&decoded)),
                    answer(FORM, &body, None)
                );
            }
        }
    }
}

#[test]
fn deep_nesting_gets_the_walk_s_answer_with_a_hint() {
    for depth in 120..132 {
        let deep = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let docs = [
            format!(r#"{{"type":"block_actions","x":{deep},"response_url":"https://h/1"}}"#),
            format!(r#"{{"type":"view_submission","response_urls":[{{"channel_id":{deep}}}]}}"#),
        ];
        for doc in docs {
            let body: Vec<u8> = b"payload="
                .iter()
                .copied()
                .chain(form_urlencoded::byte_serialize(doc.as_bytes()).flat_map(str::bytes))
                .collect();
            if let Ok(facts) = crate::parse_facts(FORM, &body) {
                assert_eq!(
                    answer(FORM, &body, facts.custody.as_ref()),
                    answer(FORM, &body, None),
                    "{depth}"
                );
            }
        }
        let event = format!(
            r#"{{"type":"event_callback","x":{deep},"event":{{"bot_access_token":"xwfp-1"}}}}"#
        );
        if let Ok(facts) = crate::parse_facts(JSON, event.as_bytes()) {
            assert_eq!(
                answer(JSON, event.as_bytes(), facts.custody.as_ref()),
                answer(JSON, event.as_bytes(), None),
                "{depth}"
            );
        }
    }
}

#[test]
fn a_command_form_s_response_url_is_replaced_in_place() {
    let body =
        "token=x&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1%2F2%2F3&text=a+b%21";
    let (out, held) = take(FORM, body, BOTH);
    assert_eq!(out.unwrap(), "token=x&response_url=cap0&text=a+b%21");
    assert_eq!(held, ["url:https://hooks.slack.com/commands/T1/2/3"]);
}

#[test]
fn the_replacement_is_percent_encoded_in_a_form() {
    let body = "response_url=https%3A%2F%2Fh%2F1";
    let out = take_into_custody(FORM, body.as_bytes(), BOTH, |_| {
        Some("http://gw:8081/respond/ab".into())
    })
    .unwrap()
    .unwrap();
    assert_eq!(out, b"response_url=http%3A%2F%2Fgw%3A8081%2Frespond%2Fab");
}

#[test]
fn every_duplicate_and_an_encoded_key_are_replaced_too() {
    let body = "response_url=a&response%5Furl=b&x=1&response_url=c";
    let (out, held) = take(FORM, body, BOTH);
    assert_eq!(
        out.unwrap(),
        "response_url=cap0&response%5Furl=cap1&x=1&response_url=cap2"
    );
    assert_eq!(held, ["url:a", "url:b", "url:c"]);
}

#[test]
fn a_payload_s_json_is_edited_in_place_and_only_the_value_re_encoded() {
    // Slack escapes slashes in JSON; the rest of the payload keeps its exact encoding
    // (here a `%20` and a `+` for spaces, and an unencoded `*`).
    let json = r#"{"type":"block_actions","response_url":"https:\/\/hooks.slack.com\/actions\/T1\/2\/3","x":"a b*"}"#;
    let raw = json
        .replace('%', "%25")
        .replace('{', "%7B")
        .replace('}', "%7D")
        .replace('"', "%22")
        .replace(':', "%3A")
        .replace(',', "%2C")
        .replace('/', "%2F")
        .replace('\\', "%5C")
        .replacen(' ', "%20", 1);
    let body = format!("payload={raw}");
    let (out, held) = take(FORM, &body, BOTH);
    assert_eq!(held, ["url:https://hooks.slack.com/actions/T1/2/3"]);
    let want = body.replace(
        "%22https%3A%5C%2F%5C%2Fhooks.slack.com%5C%2Factions%5C%2FT1%5C%2F2%5C%2F3%22",
        "%22cap0%22",
    );
    assert_ne!(want, body);
    assert_eq!(out.unwrap(), want);
}

#[test]
fn view_submissions_response_urls_are_all_replaced() {
    let json = r#"{"type":"view_submission","response_urls":[{"block_id":"b","action_id":"a","channel_id":"C1","response_url":"https://h/1"},{"response_url":"https://h/2","x":{"channel_id":"C9"}}],"view":{"response_url":"not-this"},"channel_id":"C8"}"#;
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", json)
        .finish();
    let (out, held) = take(FORM, &body, BOTH);
    assert_eq!(held, ["url:https://h/1#C1", "url:https://h/2"]);
    let out = out.unwrap();
    let payload = form_urlencoded::parse(out.as_bytes())
        .find(|(k, _)| k == "payload")
        .unwrap()
        .1;
    let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(v["response_urls"][0]["response_url"], "cap0");
    assert_eq!(v["response_urls"][1]["response_url"], "cap1");
    assert_eq!(v["response_urls"][0]["channel_id"], "C1");
    assert_eq!(v["view"]["response_url"], "not-this");
}

#[test]
fn a_function_context_token_is_bound_to_its_execution_wherever_it_stands() {
    let json = r#"{"type":"block_actions","bot_access_token":"xwfp-1","function_data":{"execution_id":"Fx1","function":{"callback_id":"f"}},"response_url":"https://h/1"}"#;
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", json)
        .finish();
    let (_, held) = take(FORM, &body, BOTH);
    assert_eq!(held, ["token:xwfp-1@Fx1", "url:https://h/1"]);
    // Only what is wanted is taken.
    let urls_only = Wants {
        response_urls: true,
        workflow_tokens: false,
    };
    let (_, held) = take(FORM, &body, urls_only);
    assert_eq!(held, ["url:https://h/1"]);
    let tokens_only = Wants {
        response_urls: false,
        workflow_tokens: true,
    };
    let (_, held) = take(FORM, &body, tokens_only);
    assert_eq!(held, ["token:xwfp-1@Fx1"]);
}

#[test]
fn an_event_s_token_is_replaced_in_the_json_body() {
    let body = r#"{"type":"event_callback","event":{"type":"function_executed","bot_access_token":"xwfp-\u0031","function_execution_id":"Fx9","inputs":{"bot_access_token":"user input"}},"bot_access_token":"top"}"#;
    let (out, held) = take(JSON, body, BOTH);
    assert_eq!(held, ["token:xwfp-1@Fx9"]);
    assert_eq!(out.unwrap(), body.replace(r#""xwfp-\u0031""#, r#""cap0""#));
    // Response URLs alone take nothing from an event.
    let urls_only = Wants {
        response_urls: true,
        workflow_tokens: false,
    };
    assert_eq!(take(JSON, body, urls_only), (None, vec![]));
}

#[test]
fn nothing_to_take_leaves_the_body_alone() {
    for (ct, body) in [
        (FORM, "command=%2Fticket&text=hi"),
        (
            JSON,
            r#"{"type":"event_callback","event":{"type":"message"}}"#,
        ),
        (FORM, "ssl_check=1&token=x"),
        (FORM, "response_url="),
        (FORM, ""),
    ] {
        assert_eq!(take(ct, body, BOTH), (None, vec![]), "{body}");
    }
    assert_eq!(
        take(FORM, "response_url=x", Wants::default()),
        (None, vec![])
    );
}

#[test]
fn a_refused_capability_refuses_the_body() {
    let r = take_into_custody(FORM, b"response_url=https%3A%2F%2Fh", BOTH, |_| None);
    assert_eq!(r, Err(CustodyError::Refused));
}

#[test]
fn unreadable_bodies_are_errors_not_panics() {
    for (ct, body) in [
        (JSON, &b"{\"event\":{\"bot_access_token\":\"x"[..]),
        (JSON, b"{\"bot_access_token\":1,\"event\":"),
        (JSON, b"{\"event\":{\"bot_access_token\":1}} trailing"),
        (FORM, b"payload=%7B%22response_url%22%3A"),
        (FORM, b"payload=%FF%FE"),
        (FORM, b"response_url=%FF"),
        (JSON, b"{\"event\":{\"bot_access_token\":\"\\"),
    ] {
        assert_eq!(
            take_into_custody(ct, body, BOTH, |_| Some("c".into())),
            Err(CustodyError::Unreadable),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    // A value off custody's paths is skipped however deep (as serde_json skips a field it
    // does not read), in a loop: no recursion, no bound to refuse at.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let body = format!("{{\"bot_access_token\":1,\"event\":{deep}}}");
    assert_eq!(
        take_into_custody(JSON, body.as_bytes(), BOTH, |_| Some("c".into())),
        Ok(None)
    );
    let cut = format!("{{\"bot_access_token\":1,\"event\":{}", &deep[..150_000]);
    assert_eq!(
        take_into_custody(JSON, cut.as_bytes(), BOTH, |_| Some("c".into())),
        Err(CustodyError::Unreadable)
    );
}

#[test]
fn raw_offsets_follow_percent_and_plus_tokens() {
    assert_eq!(token_len(b"%41", 0), 3);
    assert_eq!(token_len(b"%4", 0), 1);
    assert_eq!(token_len(b"%zz", 0), 1);
    assert_eq!(decode(b"a+%41%zz%").as_ref(), b"a A%zz%");
}

#[test]
fn an_event_without_the_token_s_name_is_not_walked_but_an_escaped_key_is() {
    assert!(!may_hold_token(
        br#"{"event":{"type":"message","text":"a\/b"}}"#
    ));
    assert!(may_hold_token(br#"{"event":{"bot_access_token":"x"}}"#));
    let escaped = r#"{"event":{"bot\u005faccess_token":"xwfp-2","function_execution_id":"Fx2"}}"#;
    assert!(may_hold_token(escaped.as_bytes()));
    let (out, held) = take(JSON, escaped, BOTH);
    assert_eq!(held, ["token:xwfp-2@Fx2"]);
    assert!(out.unwrap().contains(r#""bot\u005faccess_token":"cap0""#));
}

#[test]
fn skipping_counts_only_the_value_s_own_brackets() {
    // Brackets of the other kind, and both kinds inside strings, do not end a value early.
    let body = r#"{"view":{"a":[{"b":"}]"},"]"],"c":"{"},"response_url":"https://h/9"}"#;
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", body)
        .finish();
    let (_, held) = take(FORM, &form, BOTH);
    assert_eq!(held, ["url:https://h/9"]);
}

/// The decoding before the marks: one token at a time into a fresh buffer.
fn decode_reference(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        let (byte, n) = match (b, raw.get(i + 1..i + 3)) {
            (b'+', _) => (b' ', 1),
            (b'%', Some(&[h, l])) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                let hex = |d: u8| char::from(d).to_digit(16).unwrap() as u8;
                (hex(h) << 4 | hex(l), 3)
            }
            _ => (b, 1),
        };
        out.push(byte);
        i += n;
    }
    out
}

/// The mapping before the marks: every raw token from the start.
fn raw_offset_reference(raw: &[u8], want: usize) -> usize {
    let (mut at, mut decoded) = (0, 0);
    while decoded < want && at < raw.len() {
        at += token_len(raw, at);
        decoded += 1;
    }
    at
}

/// A form field's raw bytes: percent-encoded JSON, cut and mutated with bytes a form
/// decoder treats specially (`%`, `+`, hex digits, non-ASCII).
fn raw_field() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let json = r#"{"type":"block_actions","response_url":"https://hooks.slack.com/actions/T1/2/3","x":"é ✓"}"#;
    let encoded: Vec<u8> = form_urlencoded::byte_serialize(json.as_bytes())
        .flat_map(str::bytes)
        .collect();
    let special = prop::sample::select(vec![b'%', b'+', b'a', b'F', b'0', b'9', b'g', 0xC3, b'"']);
    (
        0..=encoded.len(),
        prop::collection::vec((any::<prop::sample::Index>(), special), 0..8),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(move |(cut, flips, tail)| {
            let mut raw = encoded[..cut].to_vec();
            raw.extend_from_slice(&tail);
            for (at, b) in flips {
                if !raw.is_empty() {
                    let i = at.index(raw.len());
                    raw[i] = b;
                }
            }
            raw
        })
}

proptest::proptest! {
    /// The marked decoding and the mapping from its marks give exactly what the one-pass
    /// decoding and the token-by-token mapping gave, for every decoded offset.
    #[test]
    fn marked_decoding_and_mapping_match_the_token_by_token_ones(raw in raw_field()) {
        let (decoded, marks) = decode_marked(&raw);
        let reference = decode_reference(&raw);
        proptest::prop_assert_eq!(&decoded, &reference);
        let plain = decode(&raw);
        proptest::prop_assert_eq!(plain.as_ref(), reference.as_slice());
        for want in 0..=decoded.len() + 2 {
            proptest::prop_assert_eq!(
                raw_offset(&raw, &marks, want),
                raw_offset_reference(&raw, want)
            );
        }
    }
}

#[test]
fn marks_fall_every_stride_decoded_bytes() {
    let raw = "%41".repeat(STRIDE * 2 + 1);
    let (decoded, marks) = decode_marked(raw.as_bytes());
    assert_eq!(decoded, vec![b'A'; STRIDE * 2 + 1]);
    assert_eq!(marks, [0, 3 * STRIDE, 6 * STRIDE]);
    assert_eq!(
        raw_offset(raw.as_bytes(), &marks, STRIDE * 2 + 1),
        raw.len()
    );
    assert_eq!(raw_offset(b"", &[], 3), 0);
}

proptest::proptest! {
    /// The walk's searches answer as `memchr` does, short and long haystacks alike.
    #[test]
    fn the_walk_s_searches_find_what_memchr_finds(
        hay in proptest::collection::vec(
            proptest::sample::select(vec![b'a', b'"', b'\\', b'{', b'}', b'[', b']', b' ']),
            0..3 * SHORT,
        ),
        cut in 0..3 * SHORT,
    ) {
        let hay = &hay[..cut.min(hay.len())];
        proptest::prop_assert_eq!(find2(b'"', b'\\', hay), memchr::memchr2(b'"', b'\\', hay));
        for (open, close) in [(b'{', b'}'), (b'[', b']')] {
            proptest::prop_assert_eq!(
                find3(b'"', open, close, hay),
                memchr::memchr3(b'"', open, close, hay)
            );
        }
    }
}
