//! `slackgate explain` decides exactly as `slackgate run` does: a corpus of requests that
//! covers every reason explain can give is sent to a running gateway and run through the
//! built binary's `explain` with the same config and policy files, and for each request
//! the reason, rule, shadow flag and status of explain's JSON equal the gateway's audit
//! record.
//!
//! The same holds for the egress door: a corpus of bot Web API calls is sent to the
//! gateway's egress listener (allowed calls go on to the testkit's Slack stand-in) and run
//! through `explain --egress`, and reason, rule, status, bot, method, team and channel
//! agree with the egress audit record.
//!
//! `replayed` and `rate_limited` are left out: they depend on what the gateway saw before,
//! and explain starts with an empty replay cache and full buckets on every run (the
//! gateway's answers to them are covered by the proxy's reason tests). Nothing here uses
//! the network beyond loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use slackgate_testkit::policy::{bots_from, helpdesk_policy, helpdesk_route};
use slackgate_testkit::{fixture, now_unix, MockBot, SignedRequest, SlackApi, TestGatewayBuilder};

const SECRET: &str = "explain-matches-run-5ecret-0123456789";
const SECRET_ENV: &str = "HELPDESK_SIGNING_SECRET";
/// The client address of most requests, and one the routes' `source_ips` deny.
const CLIENT: &str = "198.51.100.20";
const DENIED: &str = "192.0.2.7";
const MAX_BODY: usize = 4096;

fn policy(bot: &MockBot) -> String {
    let fenced = "source_ips: { deny: [192.0.2.0/24] }";
    helpdesk_policy(
        SECRET_ENV,
        bot.addr(),
        &[
            helpdesk_route(
                "enforced",
                "/slack/events",
                &format!("{fenced}\nallow: {{ teams: [T0ACME], users: [U0333], channels: [C0HELP] }}\ndeny: {{ users: [U0BAD] }}"),
            ),
            helpdesk_route(
                "acked",
                "/slack/ack",
                "on_deny: ack\nallow: { teams: [T0OTHER] }",
            ),
            helpdesk_route(
                "shadowed",
                "/slack/shadow",
                &format!("mode: shadow\n{fenced}\nallow: {{ users: [U0NOBODY] }}"),
            ),
            helpdesk_route(
                "unverified",
                "/slack/unverified",
                &format!("mode: shadow\nallow_unverified_shadow: true\n{fenced}"),
            ),
        ],
    )
}

/// How a case is signed.
enum Sign {
    /// With the app's secret, `age` seconds ago.
    Good { age: i64 },
    /// With another secret.
    Wrong,
    /// Not at all.
    Unsigned,
}

/// One request of the corpus and the reason both must give (so the corpus provably
/// covers what it claims).
struct Case {
    what: &'static str,
    path: &'static str,
    body: Vec<u8>,
    sign: Sign,
    ip: &'static str,
    reason: &'static str,
}

fn case(
    what: &'static str,
    path: &'static str,
    body: impl Into<Vec<u8>>,
    sign: Sign,
    ip: &'static str,
    reason: &'static str,
) -> Case {
    Case {
        what,
        path,
        body: body.into(),
        sign,
        ip,
        reason,
    }
}

fn fixture_with(name: &str, from: &str, to: &str) -> Vec<u8> {
    String::from_utf8(fixture(name))
        .unwrap()
        .replace(from, to)
        .into_bytes()
}

fn corpus() -> Vec<Case> {
    use Sign::*;
    let mention = || fixture("event_app_mention.json");
    let mut oversized = mention();
    oversized.resize(MAX_BODY + 1, b' ');
    vec![
        case(
            "unknown path",
            "/slack/nowhere",
            mention(),
            Good { age: 0 },
            CLIENT,
            "no_route",
        ),
        case(
            "denied address",
            "/slack/events",
            mention(),
            Good { age: 0 },
            DENIED,
            "ip_denied",
        ),
        case(
            "body over the cap",
            "/slack/events",
            oversized,
            Good { age: 0 },
            CLIENT,
            "body_too_large",
        ),
        case(
            "ssl_check",
            "/slack/events",
            fixture("ssl_check.form"),
            Unsigned,
            CLIENT,
            "ssl_check",
        ),
        case(
            "unsigned",
            "/slack/events",
            mention(),
            Unsigned,
            CLIENT,
            "missing_signature",
        ),
        case(
            "wrong secret",
            "/slack/events",
            mention(),
            Wrong,
            CLIENT,
            "bad_signature",
        ),
        case(
            "old timestamp",
            "/slack/events",
            mention(),
            Good { age: 1000 },
            CLIENT,
            "stale_timestamp",
        ),
        case(
            "no event",
            "/slack/events",
            r#"{"type":"event_callback","team_id":"T0ACME","api_app_id":"A0HELPDESK"}"#,
            Good { age: 1 },
            CLIENT,
            "malformed_payload",
        ),
        case(
            "challenge",
            "/slack/events",
            fixture("url_verification.json"),
            Good { age: 2 },
            CLIENT,
            "url_verification",
        ),
        case(
            "another app",
            "/slack/events",
            fixture_with("event_app_mention.json", "A0HELPDESK", "A0EVIL"),
            Good { age: 3 },
            CLIENT,
            "app_mismatch",
        ),
        case(
            "user not allowed (reject)",
            "/slack/events",
            fixture_with("event_app_mention.json", "U0333", "U0999"),
            Good { age: 4 },
            CLIENT,
            "scope_denied",
        ),
        case(
            "user denied (reject)",
            "/slack/events",
            fixture_with("event_app_mention.json", "U0333", "U0BAD"),
            Good { age: 5 },
            CLIENT,
            "scope_denied",
        ),
        case(
            "team not allowed (ack)",
            "/slack/ack",
            mention(),
            Good { age: 6 },
            CLIENT,
            "scope_denied",
        ),
        case(
            "allowed",
            "/slack/events",
            mention(),
            Good { age: 7 },
            CLIENT,
            "allowed",
        ),
        case(
            "lifecycle on a users and channels route",
            "/slack/events",
            fixture("event_app_uninstalled.json"),
            Good { age: 8 },
            CLIENT,
            "allowed",
        ),
        case(
            "shadow: address and scope denied",
            "/slack/shadow",
            mention(),
            Good { age: 9 },
            DENIED,
            "ip_denied",
        ),
        case(
            "shadow: scope denied",
            "/slack/shadow",
            mention(),
            Good { age: 10 },
            CLIENT,
            "scope_denied",
        ),
        case(
            "shadow: address denied, bad signature",
            "/slack/shadow",
            mention(),
            Wrong,
            DENIED,
            "bad_signature",
        ),
        case(
            "shadow: address denied, ssl_check",
            "/slack/shadow",
            fixture("ssl_check.form"),
            Unsigned,
            DENIED,
            "ssl_check",
        ),
        case(
            "shadow: address denied, challenge",
            "/slack/shadow",
            fixture("url_verification.json"),
            Good { age: 12 },
            DENIED,
            "url_verification",
        ),
        case(
            "unverified shadow: address denied, bad signature",
            "/slack/unverified",
            mention(),
            Wrong,
            DENIED,
            "ip_denied",
        ),
        case(
            "unverified shadow: unsigned",
            "/slack/unverified",
            mention(),
            Unsigned,
            CLIENT,
            "missing_signature",
        ),
    ]
}

fn request(c: &Case, now: i64) -> SignedRequest {
    let req = SignedRequest::new(c.path, c.body.clone());
    match c.sign {
        Sign::Good { age } => req.sign_at(SECRET, now - age),
        Sign::Wrong => req.sign_at("not-the-app-secret", now),
        Sign::Unsigned => req,
    }
}

/// What both must agree on.
fn verdict(v: &Value) -> (Value, Value, Value, Value) {
    let field = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    (
        field("reason"),
        field("rule"),
        field("shadow"),
        field("status"),
    )
}

#[test]
fn explain_gives_the_gateways_decision_for_every_reason() {
    let bot = MockBot::start();
    let gw = TestGatewayBuilder::new(&policy(&bot))
        .secret(SECRET_ENV, SECRET)
        // Client addresses come from X-Forwarded-For, so each case picks its own.
        .config(&format!(
            "trusted_proxies: [127.0.0.1/32]\nlimits: {{ max_body_bytes: {MAX_BODY} }}"
        ))
        .start();
    let config = gw.dir.path().join("config.yaml");
    let now = now_unix();
    let corpus = corpus();
    let mut covered = BTreeSet::new();
    let mut disagreements = Vec::new();
    for (i, c) in corpus.iter().enumerate() {
        let req = request(c, now);
        gw.client()
            .send(&req.clone().header("X-Forwarded-For", c.ip))
            .unwrap();
        let audit = gw.audit_nth(i + 1);
        let explained =
            support::explain(&config, &req, &["--client-ip", c.ip], (SECRET_ENV, SECRET));
        if verdict(&explained) != verdict(&audit) || explained["reason"] != c.reason {
            disagreements.push(format!(
                "{} (expected {}):\n  explain: {:?}\n  run:     {:?}",
                c.what,
                c.reason,
                verdict(&explained),
                verdict(&audit)
            ));
        }
        covered.insert(c.reason);
    }
    assert!(
        disagreements.is_empty(),
        "(reason, rule, shadow, status) differ:\n{}",
        disagreements.join("\n")
    );
    let expected: BTreeSet<&str> = [
        "no_route",
        "ip_denied",
        "body_too_large",
        "ssl_check",
        "missing_signature",
        "bad_signature",
        "stale_timestamp",
        "malformed_payload",
        "url_verification",
        "app_mismatch",
        "scope_denied",
        "allowed",
    ]
    .into();
    assert_eq!(covered, expected);
    // The shadow route denied by address and by scope: the address, first, is reported.
    let shadow = corpus
        .iter()
        .position(|c| c.what == "shadow: address and scope denied")
        .unwrap();
    let a = gw.audit_nth(shadow + 1);
    assert_eq!(
        (&a["reason"], &a["rule"], &a["shadow"]),
        (&"ip_denied".into(), &"source_ips".into(), &true.into())
    );
}

// === egress ===

const KEY: &str = "gk_matches_run_5e1f0a9c3b7d2468ace0";
const TOKEN: &str = "xoxb-1111-2222-matchesrun0t0ken";
const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json; charset=utf-8";

fn egress_policy() -> String {
    format!(
        r#"{}    team: T0ACME
    methods: [chat.postMessage, "reactions.*", "apps.*", conversations.info]
    channels: [C0HELP, C0OPS]
    deny_args: [username]
"#,
        bots_from("helpdesk")
    )
}

/// One Web API call: its request target, headers (name, value) and body.
struct Call {
    what: &'static str,
    target: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    reason: &'static str,
}

fn call(
    what: &'static str,
    target: impl Into<String>,
    headers: &[(&'static str, &str)],
    body: impl Into<Vec<u8>>,
    reason: &'static str,
) -> Call {
    Call {
        what,
        target: target.into(),
        headers: headers.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        body: body.into(),
        reason,
    }
}

fn egress_corpus() -> Vec<Call> {
    let bearer = format!("Bearer {KEY}");
    let b = bearer.as_str();
    let auth_form = [("Authorization", b), ("Content-Type", FORM)];
    let auth_json = [("Authorization", b), ("Content-Type", JSON)];
    vec![
        call(
            "form post",
            "/api/chat.postMessage",
            &auth_form,
            "channel=C0HELP&text=hi",
            "allowed",
        ),
        call(
            "json post with the team",
            "/api/chat.postMessage",
            &auth_json,
            r#"{"channel":"C0OPS","text":"hi","team_id":"T0ACME"}"#,
            "allowed",
        ),
        call(
            "key as a form token argument",
            "/api/reactions.add",
            &[("Content-Type", FORM)],
            format!("token={KEY}&channel=C0HELP&name=eyes&timestamp=1.2"),
            "allowed",
        ),
        call(
            "arguments in the query",
            "/api/conversations.info?channel=C0HELP",
            &[("Authorization", b)],
            "",
            "allowed",
        ),
        call(
            "another key",
            "/api/chat.postMessage",
            &[
                ("Authorization", "Bearer gk_some_other_key_000000000"),
                ("Content-Type", FORM),
            ],
            "channel=C0HELP",
            "unknown_bot",
        ),
        call(
            "no key",
            "/api/chat.postMessage",
            &[("Content-Type", FORM)],
            "channel=C0HELP",
            "unknown_bot",
        ),
        call(
            "unlisted method",
            "/api/users.list",
            &auth_form,
            "",
            "method_denied",
        ),
        call(
            "privileged method under a pattern",
            "/api/apps.uninstall",
            &auth_form,
            "",
            "method_denied",
        ),
        call(
            "another channel",
            "/api/chat.postMessage",
            &auth_form,
            "channel=C0ELSE&text=hi",
            "channel_denied",
        ),
        call(
            "a channel in a JSON list",
            "/api/chat.postMessage",
            &auth_json,
            r#"{"channel":"C0HELP","text":"hi","channels":"C0HELP,C0ELSE"}"#,
            "channel_denied",
        ),
        call(
            "denied argument",
            "/api/chat.postMessage",
            &auth_form,
            "channel=C0HELP&text=hi&username=ceo",
            "argument_denied",
        ),
        call(
            "another team",
            "/api/chat.postMessage",
            &auth_form,
            "channel=C0HELP&team_id=T0OTHER",
            "team_denied",
        ),
        call(
            "token in the query",
            format!("/api/chat.postMessage?token={KEY}"),
            &auth_form,
            "channel=C0HELP",
            "token_in_url",
        ),
        call(
            "channel given twice",
            "/api/chat.postMessage",
            &auth_form,
            "channel=C0HELP&channel=C0OPS",
            "malformed_call",
        ),
        call(
            "broken json",
            "/api/chat.postMessage",
            &auth_json,
            "{not json",
            "malformed_call",
        ),
        call(
            "no method",
            "/api/",
            &auth_form,
            "channel=C0HELP",
            "malformed_call",
        ),
        call(
            "body over the cap",
            "/api/chat.postMessage",
            &auth_form,
            vec![b'a'; MAX_BODY + 1],
            "malformed_call",
        ),
        call(
            "Authorization twice",
            "/api/chat.postMessage",
            &[
                ("Authorization", b),
                ("Authorization", "Bearer gk_some_other_key_000000000"),
                ("Content-Type", FORM),
            ],
            "channel=C0HELP",
            "malformed_call",
        ),
    ]
}

/// The call as raw HTTP/1.1 on its own connection.
fn raw_call(c: &Call) -> Vec<u8> {
    let mut out = format!("POST {} HTTP/1.1\r\nHost: localhost\r\n", c.target);
    for (k, v) in &c.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        c.body.len()
    ));
    let mut out = out.into_bytes();
    out.extend_from_slice(&c.body);
    out
}

/// What explain and the audit record must agree on.
fn egress_verdict(v: &Value) -> Vec<Value> {
    [
        "reason",
        "rule",
        "status",
        "bot",
        "method",
        "team_id",
        "channel_id",
    ]
    .iter()
    .map(|k| v.get(*k).cloned().unwrap_or(Value::Null))
    .collect()
}

#[test]
fn explain_egress_gives_the_gateways_decision_for_every_reason() {
    let slack = SlackApi::builder()
        .token(
            TOKEN,
            "T0ACME",
            &["chat:write", "reactions:write", "channels:read"],
        )
        .start();
    let gw = TestGatewayBuilder::new(&egress_policy())
        .bot("helpdesk", KEY, TOKEN)
        .slack(&slack)
        .config(&format!("limits: {{ max_body_bytes: {MAX_BODY} }}"))
        .start();
    let config = gw.dir.path().join("config.yaml");
    let env = [("HELPDESK_GATEWAY_KEY", KEY), ("HELPDESK_BOT_TOKEN", TOKEN)];
    let mut covered = BTreeSet::new();
    let mut disagreements = Vec::new();
    let corpus = egress_corpus();
    for (i, c) in corpus.iter().enumerate() {
        let answer = gw.egress_client().raw(&raw_call(c)).unwrap();
        let audit = gw.audit_nth(i + 1);
        assert_eq!(audit["direction"], "egress", "{audit}");
        let headers: Vec<String> = c.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let explained = support::explain_egress(&config, &c.target, &headers, &c.body, &env);
        if egress_verdict(&explained) != egress_verdict(&audit) || explained["reason"] != c.reason {
            disagreements.push(format!(
                "{} (expected {}):\n  explain: {:?}\n  run:     {:?}",
                c.what,
                c.reason,
                egress_verdict(&explained),
                egress_verdict(&audit)
            ));
        }
        // The answer the bot got says the same.
        if c.reason == "allowed" {
            assert_eq!(answer.json()["ok"], true, "{}: {:?}", c.what, answer.json());
        } else {
            assert_eq!(
                answer.header("x-slackgate-reason"),
                Some(c.reason),
                "{}",
                c.what
            );
        }
        covered.insert(c.reason);
    }
    assert!(
        disagreements.is_empty(),
        "(reason, rule, status, bot, method, team_id, channel_id) differ:\n{}",
        disagreements.join("\n")
    );
    let expected: BTreeSet<&str> = [
        "allowed",
        "unknown_bot",
        "method_denied",
        "channel_denied",
        "argument_denied",
        "team_denied",
        "token_in_url",
        "malformed_call",
    ]
    .into();
    assert_eq!(covered, expected);
    // Only the allowed calls reached Slack, with the real token and never the key.
    let received = slack.received();
    assert_eq!(received.len(), 4, "{received:?}");
    for r in &received {
        assert_eq!(r.token.as_deref(), Some(TOKEN));
        assert!(!String::from_utf8_lossy(&r.head).contains(KEY));
        assert!(!String::from_utf8_lossy(&r.body).contains(KEY));
    }
}
