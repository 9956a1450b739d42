use super::*;
use crate::lifecycle::Via;

fn json(body: &str) -> Result<Facts<'_>, FactsError> {
    parse_facts(Some("application/json"), body.as_bytes())
}

fn form(body: &str) -> Result<Facts<'_>, FactsError> {
    parse_facts(Some("application/x-www-form-urlencoded"), body.as_bytes())
}

proptest::proptest! {
    /// The body check refuses exactly the bodies std's UTF-8 check refuses.
    #[test]
    fn not_utf8_exactly_when_std_says_so(
        text in "\\PC{0,80}",
        cuts in proptest::collection::vec((0usize..400, proptest::prelude::any::<u8>()), 0..3),
    ) {
        let mut body = format!(r#"{{"type":"url_verification","challenge":"{}"}}"#, text.replace(['"', '\\'], ""))
            .into_bytes();
        for (at, byte) in cuts {
            let at = at % body.len();
            body[at] = byte;
        }
        let ours = parse_facts(Some("application/json"), &body);
        proptest::prop_assert_eq!(
            matches!(ours, Err(FactsError::NotUtf8)),
            std::str::from_utf8(&body).is_err()
        );
    }
}

fn payload(p: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", p)
        .finish()
}

#[test]
fn kind_names_are_snake_case() {
    for kind in RequestKind::ALL {
        let name = kind.as_str();
        assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        assert_eq!(kind.to_string(), name);
        if kind.is_interactive() {
            assert_eq!(RequestKind::from_interaction_type(name), Some(kind));
        }
    }
    for l in Lifecycle::ALL {
        assert_eq!(l.to_string(), l.as_str());
    }
}

#[test]
fn lifecycle_table_names_event_types_and_what_they_carry() {
    for l in Lifecycle::ALL {
        let body =
            format!(r#"{{"type":"event_callback","team_id":"T1","event":{{"type":"{l}"}}}}"#);
        let f = json(&body).unwrap();
        // `app_rate_limited` is a body type of its own, never an event type.
        let expected = (l.via() == Via::Event).then_some(l);
        assert_eq!(f.lifecycle, expected, "{l}");
        assert_eq!(Lifecycle::from_name(l.as_str()), Some(l));
        assert_eq!(l.carries(), Carries::NEITHER, "{l}");
    }
    let f = json(r#"{"type":"app_rate_limited","team_id":"T1","minute_rate_limited":1}"#).unwrap();
    assert_eq!(f.lifecycle, Some(Lifecycle::AppRateLimited));
    assert_eq!(f.carries(), Carries::NEITHER);
    // Events that name a user or a channel, and the admin events about any app, are not
    // lifecycle requests: both dimensions apply to them.
    for t in [
        "message",
        "app_home_opened",
        "app_uninstalled_team",
        "app_installed",
    ] {
        let body = format!(r#"{{"type":"event_callback","event":{{"type":"{t}"}}}}"#);
        let f = json(&body).unwrap();
        assert_eq!(f.lifecycle, None, "{t}");
        assert_eq!(f.carries(), Carries::USER_AND_CHANNEL, "{t}");
    }
}

#[test]
fn encoding_detection() {
    use BodyEncoding::*;
    assert_eq!(BodyEncoding::detect(Some("application/json"), b"a=b"), Json);
    assert_eq!(
        BodyEncoding::detect(Some("Application/JSON; charset=utf-8"), b""),
        Json
    );
    assert_eq!(
        BodyEncoding::detect(Some("application/x-www-form-urlencoded"), b"{}"),
        Form
    );
    assert_eq!(BodyEncoding::detect(None, b" \n{\"a\":1}"), Json);
    assert_eq!(BodyEncoding::detect(Some("text/plain"), b"{}"), Json);
    assert_eq!(BodyEncoding::detect(None, b"a=b"), Form);
    assert_eq!(BodyEncoding::detect(None, b""), Form);
}

#[test]
fn json_strings_borrow_when_unescaped() {
    let f = json(
        r#"{"type":"event_callback","team_id":"T1","event":{"type":"message","user":"U\u0031"}}"#,
    )
    .unwrap();
    assert!(matches!(f.team_id, Some(Cow::Borrowed("T1"))));
    assert!(matches!(f.event_type, Some(Cow::Borrowed("message"))));
    assert!(matches!(f.user_id, Some(Cow::Owned(ref u)) if u == "U1"));
}

#[test]
fn form_fields_borrow_when_undecoded() {
    let f = form("command=%2Fticket&team_id=T1").unwrap();
    assert!(matches!(f.team_id, Some(Cow::Borrowed("T1"))));
    assert!(matches!(f.command, Some(Cow::Owned(ref c)) if c == "/ticket"));
}

#[test]
fn an_unescaped_payload_reads_as_an_escaped_one() {
    // A payload is decoded into a buffer of its own (kept for custody), escaped or not.
    let body = r#"payload={"type":"shortcut","callback_id":"cb"}"#;
    let f = form(body).unwrap();
    assert_eq!(f.callback_id.as_deref(), Some("cb"));
    let encoded = payload(r#"{"type":"shortcut","callback_id":"cb"}"#);
    let escaped = form(&encoded).unwrap();
    assert_eq!(
        Facts { custody: None, ..f },
        Facts {
            custody: None,
            ..escaped
        }
    );
}

#[test]
fn channel_may_be_an_object_and_user_an_object() {
    let f = json(r#"{"type":"event_callback","event":{"type":"channel_created","channel":{"id":"C9","name":"x","creator":"U1"}}}"#).unwrap();
    assert_eq!(f.channel_id.as_deref(), Some("C9"));
    let f = json(r#"{"type":"event_callback","event":{"type":"user_change","user":{"id":"U7","profile":{}}}}"#).unwrap();
    assert_eq!(f.user_id.as_deref(), Some("U7"));
    let f = json(r#"{"type":"event_callback","event":{"type":"reaction_added","user":"U1","item":{"type":"message","channel":"C2","ts":"1"}}}"#).unwrap();
    assert_eq!(f.channel_id.as_deref(), Some("C2"));
    let f = json(r#"{"type":"event_callback","event":{"type":"file_shared","channel_id":"C3","user_id":"U1"}}"#).unwrap();
    assert_eq!(f.channel_id.as_deref(), Some("C3"));
    let f = json(r#"{"type":"event_callback","event":{"type":"message","subtype":"bot_message"}}"#)
        .unwrap();
    assert_eq!(f.user_id, None);
    assert_eq!(f.channel_id, None);
}

#[test]
fn org_wide_install_takes_enterprise_from_authorizations() {
    let f = json(r#"{"type":"event_callback","team_id":null,"enterprise_id":null,"event":{"type":"app_mention"},"authorizations":[{"enterprise_id":"E1","team_id":null,"is_enterprise_install":true}]}"#).unwrap();
    assert_eq!(f.team_id, None);
    assert_eq!(f.enterprise_id.as_deref(), Some("E1"));
    assert!(f.is_enterprise_install);
    let f = json(r#"{"type":"event_callback","is_enterprise_install":true,"context_enterprise_id":"E2","context_team_id":"T2","event":{"type":"app_mention"}}"#).unwrap();
    assert_eq!(f.enterprise_id.as_deref(), Some("E2"));
    assert_eq!(f.team_id.as_deref(), Some("T2"));
    assert!(f.is_enterprise_install);
}

#[test]
fn org_wide_view_has_no_team() {
    let body = payload(
        r#"{"type":"view_closed","team":null,"enterprise":{"id":"E1","name":"Acme"},"user":{"id":"U1","team_id":"E1"},"is_enterprise_install":true,"view":{"callback_id":"cb","app_id":"A1","team_id":""}}"#,
    );
    let f = form(&body).unwrap();
    assert_eq!(f.kind, RequestKind::ViewClosed);
    assert_eq!(f.team_id, None);
    assert_eq!(f.enterprise_id.as_deref(), Some("E1"));
    assert_eq!(f.callback_id.as_deref(), Some("cb"));
    assert_eq!(f.api_app_id.as_deref(), Some("A1"));
    assert!(f.is_enterprise_install);

    let body = payload(
        r#"{"type":"view_submission","team":null,"enterprise":null,"user":{"id":"U1","team_id":"E9"},"view":{"callback_id":"cb"}}"#,
    );
    let f = form(&body).unwrap();
    assert_eq!(f.team_id, None);
    assert_eq!(f.enterprise_id.as_deref(), Some("E9"));
}

#[test]
fn legacy_interactions() {
    let body = payload(
        r#"{"type":"interactive_message","actions":[{"name":"approve","type":"button","value":"yes"}],"callback_id":"approval","team":{"id":"T1","domain":"x"},"channel":{"id":"C1","name":"x"},"user":{"id":"U1","name":"x"}}"#,
    );
    let f = form(&body).unwrap();
    assert_eq!(f.kind, RequestKind::InteractiveMessage);
    assert_eq!(f.callback_id.as_deref(), Some("approval"));
    assert!(f.action_ids.is_empty());
    assert_eq!(f.channel_id.as_deref(), Some("C1"));

    let body = payload(
        r#"{"type":"dialog_submission","submission":{"a":"b"},"callback_id":"d1","team":{"id":"T1"},"user":{"id":"U1"},"channel":{"id":"C1"}}"#,
    );
    let f = form(&body).unwrap();
    assert_eq!(f.kind, RequestKind::DialogSubmission);
    assert_eq!(f.callback_id.as_deref(), Some("d1"));
    assert_eq!(f.user_id.as_deref(), Some("U1"));
}

#[test]
fn block_actions_in_modal_take_view_callback_and_container_channel() {
    let body = payload(
        r#"{"type":"block_actions","container":{"type":"message","channel_id":"C5"},"view":{"callback_id":"modal_1"},"actions":[{"action_id":"a1"},{"action_id":"a2"},{"block_id":"x"}]}"#,
    );
    let f = form(&body).unwrap();
    assert_eq!(f.channel_id.as_deref(), Some("C5"));
    assert_eq!(f.callback_id.as_deref(), Some("modal_1"));
    assert_eq!(f.action_ids, vec!["a1", "a2"]);
}

#[test]
fn wrong_types_are_errors() {
    for body in [
        r#"{"type":1}"#,
        r#"{"type":"event_callback","team_id":5,"event":{"type":"message"}}"#,
        r#"{"type":"event_callback","event":{"type":"message","user":5}}"#,
        r#"{"type":"event_callback","event":{"type":"message","user":{"id":5}}}"#,
        r#"{"type":"event_callback","event":{"type":"message","channel":["C1"]}}"#,
        r#"{"type":"event_callback","event":["message"]}"#,
        r#"{"type":"event_callback","event":{"type":"message"},"authorizations":{}}"#,
        r#"{"type":"event_callback","event":{"type":"message"},"is_enterprise_install":"true"}"#,
        r#"{"type":"url_verification","challenge":{}}"#,
        r#"["url_verification","abc"]"#,
        r#"{"type":"url_verification","type":"event_callback","challenge":"x"}"#,
        r#"{"type":"url_verification","challenge":"x"} trailing"#,
        "{",
        "{}}",
    ] {
        assert_eq!(json(body).unwrap_err(), FactsError::BadJson, "{body}");
    }
    for p in [
        r#"{"type":"block_actions","actions":[{"action_id":1}]}"#,
        r#"{"type":"block_actions","actions":[["a"]]}"#,
        r#"{"type":"block_actions","user":{"id":"U1","id":"U2"}}"#,
        r#"{"type":"view_submission","view":"v"}"#,
        r#"{"type":"shortcut","team":true}"#,
        r#"not json"#,
    ] {
        assert_eq!(form(&payload(p)).unwrap_err(), FactsError::BadJson, "{p}");
    }
}

#[test]
fn unknown_fields_are_ignored() {
    let f = json(r#"{"type":"event_callback","new_field":{"deep":[1,2,{"x":null}]},"event":{"type":"message","blocks":[{"type":"rich_text"}],"user":{"id":"U1","new":[1]}}}"#).unwrap();
    assert_eq!(f.user_id.as_deref(), Some("U1"));
}

#[test]
fn missing_and_unknown_types() {
    assert_eq!(json("{}").unwrap_err(), FactsError::MissingField("type"));
    assert_eq!(
        json(r#"{"type":"url_verification"}"#).unwrap_err(),
        FactsError::MissingField("challenge")
    );
    assert_eq!(
        json(r#"{"type":"event_callback"}"#).unwrap_err(),
        FactsError::MissingField("event")
    );
    assert_eq!(
        json(r#"{"type":"event_callback","event":{}}"#).unwrap_err(),
        FactsError::MissingField("event.type")
    );
    assert_eq!(
        json(r#"{"type":"block_actions"}"#).unwrap_err(),
        FactsError::UnknownType
    );
    assert_eq!(
        form(&payload(r#"{"type":"event_callback"}"#)).unwrap_err(),
        FactsError::UnknownType
    );
    assert_eq!(
        form(&payload("{}")).unwrap_err(),
        FactsError::MissingField("type")
    );
    assert_eq!(form("token=x").unwrap_err(), FactsError::MissingPayload);
    assert_eq!(form("").unwrap_err(), FactsError::MissingPayload);
    assert_eq!(form("command=").unwrap_err(), FactsError::MissingPayload);
}

#[test]
fn form_edge_cases() {
    assert_eq!(
        form("command=/a&command=/b").unwrap_err(),
        FactsError::DuplicateField("command")
    );
    assert_eq!(
        form("payload=%7B%7D&payload=%7B%7D").unwrap_err(),
        FactsError::DuplicateField("payload")
    );
    assert_eq!(
        form("command=/a&is_enterprise_install=yes").unwrap_err(),
        FactsError::BadForm
    );
    let f = form("command=/a&is_enterprise_install=true&enterprise_id=E1&team_id=").unwrap();
    assert!(f.is_enterprise_install);
    assert_eq!(f.enterprise_id.as_deref(), Some("E1"));
    assert_eq!(f.team_id, None);
    assert_eq!(
        parse_facts(None, b"command=/a&x=\xff").unwrap_err(),
        FactsError::NotUtf8
    );
}

#[test]
fn ssl_check_detection() {
    assert!(is_ssl_check(None, b"ssl_check=1&token=x"));
    assert!(is_ssl_check(
        Some("application/x-www-form-urlencoded"),
        b"token=x&ssl_check=1"
    ));
    assert!(!is_ssl_check(None, b"ssl_check=0"));
    assert!(!is_ssl_check(Some("application/json"), b"ssl_check=1"));
    assert!(!is_ssl_check(None, br#"{"ssl_check":1}"#));
    assert_eq!(form("ssl_check=1").unwrap().kind, RequestKind::SslCheck);
}

#[test]
fn deep_nesting_never_crashes() {
    let deep = format!(
        r#"{{"type":"event_callback","event":{{"type":"m","x":{}{}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    // Ignored values are skipped without recursion, so this is accepted.
    assert_eq!(json(&deep).unwrap().event_type.as_deref(), Some("m"));
    let deep = format!(r#"{}{}"#, "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(json(&deep).unwrap_err(), FactsError::BadJson);
    let deep = format!(
        r#"{{"type":"event_callback","event":{}}}"#,
        r#"{"item":"#.repeat(10_000)
    );
    assert_eq!(json(&deep).unwrap_err(), FactsError::BadJson);
}

#[test]
fn errors_never_echo_the_body() {
    let secretish = "xoxb-SECRET-TOKEN";
    let body = format!(r#"{{"type":"{secretish}"}}"#);
    let err = json(&body).unwrap_err();
    assert!(!format!("{err} {err:?}").contains("SECRET"));
    let body = format!(r#"{{"type":"event_callback","team_id":{{"{secretish}":1}}}}"#);
    let err = json(&body).unwrap_err();
    assert!(!format!("{err} {err:?}").contains("SECRET"));
}

#[test]
fn into_owned_keeps_values() {
    let body =
        r#"{"type":"event_callback","team_id":"T1","event_id":"Ev1","event":{"type":"message"}}"#;
    let f = json(body).unwrap();
    let owned: Facts<'static> = f.clone().into_owned();
    // Custody's hint is tied to the body: the owned facts go without it.
    assert!(f.custody.is_some());
    assert_eq!(owned, Facts { custody: None, ..f });
}

/// Form bodies made of the bytes a form reader treats specially.
fn form_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let byte = prop::sample::select(vec![
        b'&', b'=', b'%', b'+', b'a', b'F', b'0', b'9', b'p', b' ', 0xC3, 0xA9, 0xFF,
    ]);
    prop::collection::vec(byte, 0..64)
}

proptest::proptest! {
    /// The facts' own split of a form reads exactly the fields and values
    /// `form_urlencoded::parse` reads, and a payload's decoding reads as its value.
    #[test]
    fn form_fields_are_read_as_form_urlencoded_reads_them(body in form_bytes()) {
        let ours: Vec<(String, String)> = form_pairs(&body)
            .map(|(k, v)| (lossy(k).into_owned(), lossy(hint::decode(v)).into_owned()))
            .collect();
        let reference: Vec<(String, String)> = form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        proptest::prop_assert_eq!(&ours, &reference);
        for ((_, raw), (_, value)) in form_pairs(&body).zip(&reference) {
            let decoded = DecodedPayload::decode(raw);
            proptest::prop_assert_eq!(decoded.text(), value.as_str());
        }
    }
}

#[test]
fn an_interactivity_payload_s_decoding_is_kept_for_custody() {
    let body = form(&format!(
        "token=x&{}",
        payload(r#"{"type":"block_actions","response_url":"https://h/1"}"#)
    ))
    .map(|f| match f.custody {
        Some(CustodyHint::Payload(p)) => Some(p.text().into_owned()),
        _ => None,
    });
    assert_eq!(
        body,
        Ok(Some(
            r#"{"type":"block_actions","response_url":"https://h/1"}"#.to_owned()
        ))
    );
    // Commands have none; owned facts drop it.
    assert!(form("command=%2Fticket&team_id=T1")
        .unwrap()
        .custody
        .is_none());
    let owned = form(&payload(r#"{"type":"shortcut"}"#))
        .unwrap()
        .into_owned();
    assert!(owned.custody.is_none());
}

#[test]
fn custody_s_fields_appear_once_in_a_payload() {
    for field in ["response_url", "response_urls", "bot_access_token"] {
        let body = payload(&format!(
            r#"{{"type":"block_actions","{field}":"a","{field}":"b"}}"#
        ));
        assert_eq!(form(&body).unwrap_err(), FactsError::BadJson, "{field}");
        // Any type once, as before: custody takes only strings.
        let body = payload(&format!(r#"{{"type":"block_actions","{field}":[1,{{}}]}}"#));
        assert!(form(&body).is_ok(), "{field}");
    }
    // The execution id is read as a string, as before.
    let body = payload(r#"{"type":"block_actions","function_data":{"execution_id":5}}"#);
    assert_eq!(form(&body).unwrap_err(), FactsError::BadJson);
    let body = payload(r#"{"type":"block_actions","function_data":{"execution_id":"Fx\u0031"}}"#);
    assert_eq!(
        form(&body).unwrap().function_execution_id.as_deref(),
        Some("Fx1")
    );
}
