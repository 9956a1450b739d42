//! Every fixture in `tests/data/` yields the expected facts, and the official signature vector
//! verifies. `tests/data` links to `testdata/slack/`, the repository's one copy of the fixtures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use slackgate_slack::{
    is_ssl_check, parse_facts, verify, Facts, Lifecycle, RequestKind, SignatureError, SigningKey,
};

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(name)).unwrap()
}

fn content_type(name: &str) -> &'static str {
    if name.ends_with(".json") {
        JSON
    } else {
        FORM
    }
}

/// The expected facts of one fixture; unlisted fields are expected empty.
#[derive(Default)]
struct Expect {
    api_app_id: Option<&'static str>,
    enterprise_id: Option<&'static str>,
    team_id: Option<&'static str>,
    user_id: Option<&'static str>,
    channel_id: Option<&'static str>,
    event_type: Option<&'static str>,
    command: Option<&'static str>,
    action_ids: &'static [&'static str],
    callback_id: Option<&'static str>,
    function_execution_id: Option<&'static str>,
    event_id: Option<&'static str>,
    challenge: Option<&'static str>,
    is_enterprise_install: bool,
    lifecycle: Option<Lifecycle>,
}

fn check(name: &str, kind: RequestKind, e: Expect) {
    let body = read(name);
    let facts =
        parse_facts(Some(content_type(name)), &body).unwrap_or_else(|err| panic!("{name}: {err}"));
    assert_facts(name, &facts, kind, &e);
    if name.ends_with(".json") || name == "command_ticket.form" {
        assert_borrowed(name, &facts);
    }
    // Sniffing without a content type gives the same answer.
    let sniffed = parse_facts(None, &body).unwrap();
    assert_eq!(sniffed, facts, "{name} sniffed");
    assert_eq!(
        is_ssl_check(Some(content_type(name)), &body),
        kind == RequestKind::SslCheck,
        "{name} ssl_check"
    );
}

/// Ids without escapes borrow from the body (the command is percent-encoded, so it is owned).
fn assert_borrowed(name: &str, f: &Facts<'_>) {
    for value in [
        &f.api_app_id,
        &f.enterprise_id,
        &f.team_id,
        &f.user_id,
        &f.channel_id,
        &f.event_type,
        &f.event_id,
        &f.challenge,
    ]
    .into_iter()
    .flatten()
    {
        assert!(
            matches!(value, Cow::Borrowed(_)),
            "{name}: {value} is owned"
        );
    }
}

fn assert_facts(name: &str, f: &Facts<'_>, kind: RequestKind, e: &Expect) {
    assert_eq!(f.kind, kind, "{name} kind");
    assert_eq!(f.api_app_id.as_deref(), e.api_app_id, "{name} api_app_id");
    assert_eq!(
        f.enterprise_id.as_deref(),
        e.enterprise_id,
        "{name} enterprise_id"
    );
    assert_eq!(f.team_id.as_deref(), e.team_id, "{name} team_id");
    assert_eq!(f.user_id.as_deref(), e.user_id, "{name} user_id");
    assert_eq!(f.channel_id.as_deref(), e.channel_id, "{name} channel_id");
    assert_eq!(f.event_type.as_deref(), e.event_type, "{name} event_type");
    assert_eq!(f.command.as_deref(), e.command, "{name} command");
    assert_eq!(f.action_ids, e.action_ids, "{name} action_ids");
    assert_eq!(
        f.callback_id.as_deref(),
        e.callback_id,
        "{name} callback_id"
    );
    assert_eq!(
        f.function_execution_id.as_deref(),
        e.function_execution_id,
        "{name} function_execution_id"
    );
    assert_eq!(f.event_id.as_deref(), e.event_id, "{name} event_id");
    assert_eq!(f.challenge.as_deref(), e.challenge, "{name} challenge");
    assert_eq!(
        f.is_enterprise_install, e.is_enterprise_install,
        "{name} is_enterprise_install"
    );
    assert_eq!(f.lifecycle, e.lifecycle, "{name} lifecycle");
}

#[test]
fn every_fixture_is_covered() {
    let mut names: Vec<String> = std::fs::read_dir(data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json") || n.ends_with(".form"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "app_rate_limited.json",
            "block_actions.form",
            "block_actions_function.form",
            "block_suggestion.form",
            "command_ticket.form",
            "event_app_mention.json",
            "event_app_uninstalled.json",
            "event_enterprise_org_install.json",
            "event_function_executed.json",
            "event_message.json",
            "event_subteam_members_changed.json",
            "event_tokens_revoked.json",
            "message_action.form",
            "shortcut.form",
            "signature_vector.form",
            "socket_mode.json",
            "ssl_check.form",
            "url_verification.json",
            "view_submission.form",
        ],
        "a fixture was added or removed: add its test below"
    );
}

#[test]
fn url_verification() {
    check(
        "url_verification.json",
        RequestKind::UrlVerification,
        Expect {
            challenge: Some("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"),
            ..Expect::default()
        },
    );
}

#[test]
fn app_rate_limited() {
    check(
        "app_rate_limited.json",
        RequestKind::AppRateLimited,
        Expect {
            api_app_id: Some("A0HELPDESK"),
            team_id: Some("T0ACME"),
            lifecycle: Some(Lifecycle::AppRateLimited),
            ..Expect::default()
        },
    );
}

#[test]
fn event_app_mention() {
    check(
        "event_app_mention.json",
        RequestKind::EventCallback,
        Expect {
            api_app_id: Some("A0HELPDESK"),
            team_id: Some("T0ACME"),
            user_id: Some("U0333"),
            channel_id: Some("C0HELP"),
            event_type: Some("app_mention"),
            event_id: Some("Ev0APPMENTION1"),
            ..Expect::default()
        },
    );
}

#[test]
fn event_message() {
    check(
        "event_message.json",
        RequestKind::EventCallback,
        Expect {
            api_app_id: Some("A0HELPDESK"),
            team_id: Some("T0ACME"),
            user_id: Some("U0444"),
            channel_id: Some("C0HELP"),
            event_type: Some("message"),
            event_id: Some("Ev0MESSAGE01"),
            ..Expect::default()
        },
    );
}

#[test]
fn event_enterprise_org_install() {
    check(
        "event_enterprise_org_install.json",
        RequestKind::EventCallback,
        Expect {
            api_app_id: Some("A0HELPDESK"),
            enterprise_id: Some("E0ACME"),
            team_id: Some("T0GRIDWS"),
            user_id: Some("U0333"),
            channel_id: Some("C0GRID"),
            event_type: Some("app_mention"),
            event_id: Some("Ev0GRIDMENTN"),
            is_enterprise_install: true,
            ..Expect::default()
        },
    );
}

#[test]
fn event_app_uninstalled() {
    check(
        "event_app_uninstalled.json",
        RequestKind::EventCallback,
        Expect {
            api_app_id: Some("A0HELPDESK"),
            team_id: Some("T0ACME"),
            event_type: Some("app_uninstalled"),
            event_id: Some("Ev0UNINSTALL"),
            lifecycle: Some(Lifecycle::AppUninstalled),
            ..Expect::default()
        },
    );
}

#[test]
fn event_tokens_revoked() {
    check(
        "event_tokens_revoked.json",
        RequestKind::EventCallback,
        Expect {
            api_app_id: Some("A0HELPDESK"),
            team_id: Some("T0ACME"),
            event_type: Some("tokens_revoked"),
            event_id: Some("Ev0REVOKED01"),
            lifecycle: Some(Lifecycle::TokensRevoked),
            ..Expect::default()
        },
    );
}

/// A change of a user group's members: no user (the event lists the users added and
/// removed, none of whom acts), no channel; it names the group to read again.
#[test]
fn event_subteam_members_changed() {
    check(
        "event_subteam_members_changed.json",
        RequestKind::EventCallback,
        Expect {
            api_app_id: Some("A0HELPDESK"),
            team_id: Some("T0ACME"),
            event_type: Some("subteam_members_changed"),
            event_id: Some("Ev0SUBTEAM001"),
            ..Expect::default()
        },
    );
    let body = read("event_subteam_members_changed.json");
    assert_eq!(slackgate_slack::changed_usergroup(&body), Some("S0ONCALL"));
}

#[test]
fn command_ticket() {
    check(
        "command_ticket.form",
        RequestKind::SlashCommand,
        Expect {
            api_app_id: Some("A0HELPDESK"),
            team_id: Some("T0ACME"),
            user_id: Some("U0333"),
            channel_id: Some("C0HELP"),
            command: Some("/ticket"),
            ..Expect::default()
        },
    );
}

#[test]
fn signature_vector_is_a_slash_command() {
    check(
        "signature_vector.form",
        RequestKind::SlashCommand,
        Expect {
            team_id: Some("T1DC2JH3J"),
            user_id: Some("U2CERLKJA"),
            channel_id: Some("G8PSS9T3V"),
            command: Some("/webhook-collect"),
            ..Expect::default()
        },
    );
}

#[test]
fn block_actions() {
    check(
        "block_actions.form",
        RequestKind::BlockActions,
        Expect {
            api_app_id: Some("A0HELPDESK"),
            team_id: Some("T0ACME"),
            user_id: Some("U0333"),
            channel_id: Some("C0HELP"),
            action_ids: &["ticket_close"],
            ..Expect::default()
        },
    );
}

#[test]
fn block_suggestion() {
    check(
        "block_suggestion.form",
        RequestKind::BlockSuggestion,
        Expect {
            api_app_id: Some("A0HELPDESK"),
            team_id: Some("T0ACME"),
            user_id: Some("U0333"),
            action_ids: &["ticket_assignee"],
            ..Expect::default()
        },
    );
}

#[test]
fn view_submission() {
    check(
        "view_submission.form",
        RequestKind::ViewSubmission,
        Expect {
            api_app_id: Some("A0HELPDESK"),
            team_id: Some("T0ACME"),
            user_id: Some("U0333"),
            callback_id: Some("ticket_create"),
            ..Expect::default()
        },
    );
}

#[test]
fn shortcut() {
    check(
        "shortcut.form",
        RequestKind::Shortcut,
        Expect {
            team_id: Some("T0ACME"),
            user_id: Some("U0333"),
            callback_id: Some("ticket_new"),
            ..Expect::default()
        },
    );
}

#[test]
fn message_action() {
    check(
        "message_action.form",
        RequestKind::MessageAction,
        Expect {
            team_id: Some("T0ACME"),
            user_id: Some("U0333"),
            channel_id: Some("C0HELP"),
            callback_id: Some("ticket_from_message"),
            ..Expect::default()
        },
    );
}

/// A custom workflow step run: the function's callback id is its action (for
/// `allow.actions`), and the run's id is what a workflow token in custody is bound to.
#[test]
fn event_function_executed() {
    check(
        "event_function_executed.json",
        RequestKind::EventCallback,
        Expect {
            api_app_id: Some("A0HELPDESK"),
            team_id: Some("T0ACME"),
            event_type: Some("function_executed"),
            event_id: Some("Ev0FUNC0001"),
            callback_id: Some("open_ticket"),
            function_execution_id: Some("Fx0EXEC0001"),
            ..Expect::default()
        },
    );
    assert!(is_function_executed("event_function_executed.json"));
    assert!(!is_function_executed("event_app_mention.json"));
}

fn is_function_executed(name: &str) -> bool {
    let body = read(name);
    parse_facts(Some(content_type(name)), &body)
        .unwrap()
        .is_function_executed()
}

/// A request of the helpdesk app by Ada (U0333) in #help (C0HELP) of T0ACME, as most
/// fixtures are.
fn ada_in_help() -> Expect {
    Expect {
        api_app_id: Some("A0HELPDESK"),
        team_id: Some("T0ACME"),
        user_id: Some("U0333"),
        channel_id: Some("C0HELP"),
        ..Expect::default()
    }
}

/// Interactivity from a function's context: the clicked element is the action; the
/// function's callback id and run are facts too.
#[test]
fn block_actions_function() {
    check(
        "block_actions_function.form",
        RequestKind::BlockActions,
        Expect {
            action_ids: &["ticket_approve"],
            callback_id: Some("open_ticket"),
            function_execution_id: Some("Fx0EXEC0001"),
            ..ada_in_help()
        },
    );
    assert!(!is_function_executed("block_actions_function.form"));
}

/// Socket Mode frames are not request bodies, but each envelope's `payload` is the
/// request Slack would have sent over HTTP, with the same facts.
#[test]
fn socket_mode_envelopes_carry_the_http_requests() {
    let frames: serde_json::Value = serde_json::from_slice(&read("socket_mode.json")).unwrap();
    assert!(parse_facts(Some(JSON), &read("socket_mode.json")).is_err());
    assert_eq!(frames["hello"]["type"], "hello");
    assert_eq!(frames["disconnect"]["reason"], "refresh_requested");

    let events = &frames["envelope_events_api"];
    assert_eq!(events["type"], "events_api");
    let body = serde_json::to_vec(&events["payload"]).unwrap();
    assert_facts(
        "events_api",
        &parse_facts(Some(JSON), &body).unwrap(),
        RequestKind::EventCallback,
        &Expect {
            event_type: Some("app_mention"),
            event_id: Some("Ev0APPMENTION1"),
            ..ada_in_help()
        },
    );

    let command = &frames["envelope_slash_commands"];
    assert_eq!(command["accepts_response_payload"], true);
    let fields = command["payload"].as_object().unwrap();
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter().map(|(k, v)| (k, v.as_str().unwrap())))
        .finish();
    assert_facts(
        "slash_commands",
        &parse_facts(Some(FORM), body.as_bytes()).unwrap(),
        RequestKind::SlashCommand,
        &Expect {
            command: Some("/ticket"),
            ..ada_in_help()
        },
    );

    let interactive = &frames["envelope_interactive"];
    let json = serde_json::to_string(&interactive["payload"]).unwrap();
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &json)
        .finish();
    assert_facts(
        "interactive",
        &parse_facts(Some(FORM), body.as_bytes()).unwrap(),
        RequestKind::BlockActions,
        &Expect {
            action_ids: &["ticket_close"],
            ..ada_in_help()
        },
    );
    assert_eq!(
        frames["ack_with_payload"]["envelope_id"],
        command["envelope_id"]
    );
    assert_eq!(frames["apps.connections.open"]["ok"], true);
}

#[test]
fn ssl_check() {
    check("ssl_check.form", RequestKind::SslCheck, Expect::default());
}

// === signatures ===

const VECTOR_SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
const VECTOR_TS: &str = "1531420618";
const VECTOR_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

#[test]
fn official_signature_vector() {
    let body = read("signature_vector.form");
    assert_eq!(
        body.last(),
        Some(&b'c'),
        "the vector body has no trailing newline"
    );
    let key = SigningKey::new("current", VECTOR_SECRET).unwrap();
    assert_eq!(key.sign(VECTOR_TS, &body), VECTOR_SIG);
    let keys = [key];
    let v = verify(
        &keys,
        Some(VECTOR_SIG.as_bytes()),
        Some(VECTOR_TS.as_bytes()),
        &body,
        1_531_420_618 + 299,
        300,
    )
    .unwrap();
    assert_eq!(v.key.id(), "current");
    // A day later the same request is stale.
    assert_eq!(
        verify(
            &keys,
            Some(VECTOR_SIG.as_bytes()),
            Some(VECTOR_TS.as_bytes()),
            &body,
            1_531_420_618 + 86_400,
            300,
        )
        .unwrap_err(),
        SignatureError::StaleTimestamp { skew_secs: 86_400 }
    );
}

#[test]
fn every_fixture_round_trips_through_sign_and_verify() {
    let keys = [
        SigningKey::new("previous", b"old-secret").unwrap(),
        SigningKey::new("current", b"new-secret").unwrap(),
    ];
    for entry in std::fs::read_dir(data_dir()).unwrap() {
        let body = std::fs::read(entry.unwrap().path()).unwrap();
        let ts = "1764377000";
        let sig = keys[1].sign(ts, &body);
        let v = verify(
            &keys,
            Some(sig.as_bytes()),
            Some(ts.as_bytes()),
            &body,
            1_764_377_000,
            300,
        )
        .unwrap();
        assert_eq!(v.key.id(), "current");
    }
}
