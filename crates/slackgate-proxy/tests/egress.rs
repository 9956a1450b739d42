//! The egress door end to end: a gateway with `bots:` in front of the testkit's Slack Web
//! API stand-in (real TLS with a test CA). One test per egress reason code, each checking
//! the answer, the audit record, the metric and what the stand-in received -- above all
//! what it did NOT receive.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use slackgate_guard::FakeClock;
use slackgate_testkit::creds::{
    HELPDESK_KEY as KEY, HELPDESK_TOKEN as TOKEN, NOW, REPORTER_KEY as OTHER_KEY, REPORTER_TOKEN,
};
use slackgate_testkit::policy::{bot, bots_from};
use slackgate_testkit::{wait_until, Response, SlackApi, TestGateway, TestGatewayBuilder};

fn policy() -> String {
    format!(
        r#"{}    team: T0ACME
    methods: [chat.postMessage, "reactions.*", conversations.info, auth.test, "users.*"]
    channels: [C0HELP, C0OPS]
    deny_args: [username, icon_url]
{}    methods: [chat.postMessage]
    rate_limits:
      - {{ per: method, rate: 1/min, burst: 2 }}
"#,
        bots_from("helpdesk"),
        bot("reporter")
    )
}

struct Rig {
    slack: SlackApi,
    gw: TestGateway,
    clock: Arc<FakeClock>,
}

fn slack() -> SlackApi {
    SlackApi::builder()
        .token(
            TOKEN,
            "T0ACME",
            &[
                "chat:write",
                "channels:read",
                "reactions:write",
                "users:read",
            ],
        )
        .token(REPORTER_TOKEN, "T0ACME", &["chat:write"])
        .start()
}

/// The policy's gateway with both bots' credentials, on `clock`; the egress door still to
/// be pointed at a Slack.
fn builder(clock: &Arc<FakeClock>) -> TestGatewayBuilder {
    TestGatewayBuilder::new(&policy())
        .bot("helpdesk", KEY, TOKEN)
        .bot("reporter", OTHER_KEY, REPORTER_TOKEN)
        .fake_clock(clock)
}

fn gateway(slack_api: &str, ca: Option<&std::path::Path>, clock: &Arc<FakeClock>) -> TestGateway {
    builder(clock).egress(slack_api, ca).start()
}

fn rig() -> Rig {
    let slack = slack();
    let clock = Arc::new(FakeClock::at(NOW));
    let gw = gateway(&slack.url(), Some(slack.ca_file()), &clock);
    Rig { slack, gw, clock }
}

/// A raw call: `POST /api/{method}{query}` with these headers and body.
fn call(gw: &TestGateway, target: &str, headers: &[(&str, &str)], body: &str) -> Response {
    gw.egress_post(target, headers, body)
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

const JSON: (&str, &str) = ("Content-Type", "application/json; charset=utf-8");
const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

fn post_json(gw: &TestGateway, key: &str, method: &str, body: &str) -> Response {
    call(
        gw,
        &format!("/api/{method}"),
        &[("Authorization", &bearer(key)), JSON],
        body,
    )
}

/// Bot `helpdesk`'s `chat.postMessage` with this JSON body.
fn post_message(gw: &TestGateway, body: &str) -> Response {
    post_json(gw, KEY, "chat.postMessage", body)
}

/// The gateway's answer for a refused call, the way Slack answers a failed one.
fn assert_refused(r: &Response, reason: &str, status: u16) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    r.assert_refused(reason);
}

/// The last egress audit record, waiting for the `n`-th line.
fn record(gw: &TestGateway, n: usize) -> serde_json::Value {
    gw.egress_record(n)
}

fn egress_metric(gw: &TestGateway, bot: &str, method: &str, reason: &str) -> f64 {
    gw.metric(&format!(
        "slackgate_egress_requests_total{{bot=\"{bot}\",method=\"{method}\",reason=\"{reason}\"}}"
    ))
}

/// No answer, audit line or record of the stand-in holds the key; the stand-in never
/// saw the key, and the only token it saw travelled in Authorization.
fn assert_no_leaks(rig: &Rig, answers: &[&Response]) {
    for a in answers {
        let text = String::from_utf8_lossy(&a.body);
        for secret in [KEY, OTHER_KEY, TOKEN, REPORTER_TOKEN] {
            assert!(
                !text.contains(secret),
                "an answer holds a credential: {text}"
            );
            for (_, v) in &a.headers {
                assert!(!v.contains(secret), "an answer header holds a credential");
            }
        }
    }
    for line in rig.gw.audit_raw() {
        for secret in [KEY, OTHER_KEY, TOKEN, REPORTER_TOKEN] {
            assert!(
                !line.contains(secret),
                "an audit line holds a credential: {line}"
            );
        }
    }
    for got in rig.slack.received() {
        let head = String::from_utf8_lossy(&got.head);
        let body = String::from_utf8_lossy(&got.body);
        for key in [KEY, OTHER_KEY] {
            assert!(
                !head.contains(key) && !body.contains(key),
                "Slack got a gateway key"
            );
        }
        assert!(
            !body.contains("xoxb-"),
            "a token travelled in the body to Slack"
        );
    }
}

#[test]
fn allowed_calls_reach_slack_with_the_real_token_only() {
    let rig = rig();
    let gw = &rig.gw;
    // JSON with the key in Authorization (slack_sdk's shape).
    let a = post_message(gw, r#"{"channel":"C0HELP","text":"hi"}"#);
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["ok"], true, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["channel"], "C0HELP");
    // Slack's own headers are relayed.
    assert!(a
        .header("x-oauth-scopes")
        .is_some_and(|s| s.contains("chat:write")));
    // A form body (@slack/web-api's shape).
    let b = call(
        gw,
        "/api/reactions.add",
        &[("Authorization", &bearer(KEY)), FORM],
        "channel=C0HELP&name=thumbsup&timestamp=1.2",
    );
    assert_eq!(b.json()["ok"], true, "{}", String::from_utf8_lossy(&b.body));
    // The key as a form field (legacy bots): removed, the rest byte for byte.
    let c = call(
        gw,
        "/api/chat.postMessage",
        &[FORM],
        &format!("token={KEY}&channel=C0OPS&text=hello%20there"),
    );
    assert_eq!(c.json()["ok"], true, "{}", String::from_utf8_lossy(&c.body));
    // A GET with the arguments in the query string.
    let d = gw
        .egress_client()
        .raw(
            format!(
                "GET /api/conversations.info?channel=C0HELP HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    assert_eq!(d.json()["ok"], true, "{}", String::from_utf8_lossy(&d.body));

    let got = rig.slack.received();
    assert_eq!(got.len(), 4);
    for g in &got {
        assert_eq!(
            g.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(g.token.as_deref(), Some(TOKEN));
        assert!(g.header("cookie").is_none() && g.header("x-forwarded-for").is_none());
    }
    assert_eq!(got[0].body, br#"{"channel":"C0HELP","text":"hi"}"#);
    assert_eq!(got[1].body, b"channel=C0HELP&name=thumbsup&timestamp=1.2");
    assert_eq!(got[2].body, b"channel=C0OPS&text=hello%20there");
    assert_eq!(got[3].method, "conversations.info");
    assert_eq!(got[3].query, "channel=C0HELP");

    let r = record(gw, 4);
    assert_eq!(r["reason"], "allowed");
    assert_eq!(r["bot"], "helpdesk");
    assert_eq!(r["method"], "conversations.info");
    assert_eq!(r["channel_id"], "C0HELP");
    assert_eq!(r["slack_ok"], true);
    assert_eq!(r["upstream_status"], 200);
    assert_eq!(
        egress_metric(gw, "helpdesk", "chat.postMessage", "allowed"),
        2.0
    );
    // reactions.add is matched by a pattern: counted as `other`.
    assert_eq!(egress_metric(gw, "helpdesk", "other", "allowed"), 1.0);
    assert_no_leaks(&rig, &[&a, &b, &c, &d]);
}

#[test]
fn unknown_bot() {
    let rig = rig();
    let gw = &rig.gw;
    let wrong = post_json(
        gw,
        "gk_nobody_000000000000000000",
        "chat.postMessage",
        r#"{"channel":"C0HELP","text":"x"}"#,
    );
    assert_refused(&wrong, "unknown_bot", 200);
    // The real token is no key either: a bot that still holds it gets nothing.
    let token = post_json(
        gw,
        TOKEN,
        "chat.postMessage",
        r#"{"channel":"C0HELP","text":"x"}"#,
    );
    assert_refused(&token, "unknown_bot", 200);
    let none = call(gw, "/api/auth.test", &[FORM], "");
    assert_refused(&none, "unknown_bot", 200);
    let r = record(gw, 3);
    assert_eq!(r["reason"], "unknown_bot");
    assert_eq!(r["bot"], serde_json::Value::Null);
    // What an unknown caller tried is recorded.
    assert_eq!(r["method"], "auth.test");
    assert_eq!(egress_metric(gw, "unknown", "other", "unknown_bot"), 3.0);
    assert_eq!(rig.slack.count(), 0, "Slack got a call from an unknown bot");
    assert_no_leaks(&rig, &[&wrong, &token, &none]);
}

#[test]
fn method_denied_including_privileged_families() {
    let rig = rig();
    let gw = &rig.gw;
    let del = post_json(gw, KEY, "chat.delete", r#"{"channel":"C0HELP","ts":"1.2"}"#);
    assert_refused(&del, "method_denied", 200);
    // `users.*` does not reach `users.admin.*`: privileged methods need their exact name.
    let admin = post_json(gw, KEY, "users.admin.invite", r#"{"email":"a@b.c"}"#);
    assert_refused(&admin, "method_denied", 200);
    let ok = post_json(gw, KEY, "users.info", r#"{"user":"U0AAA"}"#);
    assert_eq!(
        ok.json()["ok"],
        true,
        "{}",
        String::from_utf8_lossy(&ok.body)
    );
    let r = record(gw, 2);
    assert_eq!(
        (r["reason"].as_str(), r["rule"].as_str()),
        (Some("method_denied"), Some("methods"))
    );
    assert_eq!(r["method"], "users.admin.invite");
    assert_eq!(rig.slack.count(), 1);
    assert_eq!(rig.slack.received()[0].method, "users.info");
    assert_eq!(egress_metric(gw, "helpdesk", "other", "method_denied"), 2.0);
}

#[test]
fn channel_denied_wherever_the_channel_is_named() {
    let rig = rig();
    let gw = &rig.gw;
    let json = post_message(gw, r#"{"channel":"C0SECRET","text":"x"}"#);
    assert_refused(&json, "channel_denied", 200);
    let form = call(
        gw,
        "/api/chat.postMessage",
        &[("Authorization", &bearer(KEY)), FORM],
        "channel=C0SECRET&text=x",
    );
    assert_refused(&form, "channel_denied", 200);
    let query = call(
        gw,
        "/api/conversations.info?channel=C0SECRET",
        &[("Authorization", &bearer(KEY))],
        "",
    );
    assert_refused(&query, "channel_denied", 200);
    // An escaped key name is the same argument.
    let escaped = post_message(gw, r#"{"chan\u006eel":"C0SECRET","text":"x"}"#);
    assert_refused(&escaped, "channel_denied", 200);
    let r = record(gw, 4);
    assert_eq!(r["channel_id"], "C0SECRET");
    assert_eq!(r["rule"], "channels");
    assert_eq!(rig.slack.count(), 0);
    assert_eq!(
        egress_metric(gw, "helpdesk", "chat.postMessage", "channel_denied"),
        3.0
    );
}

#[test]
fn argument_denied() {
    let rig = rig();
    let gw = &rig.gw;
    let r1 = post_message(gw, r#"{"channel":"C0HELP","text":"x","username":"CEO"}"#);
    assert_refused(&r1, "argument_denied", 200);
    let r2 = call(
        gw,
        "/api/chat.postMessage?icon_url=https://x",
        &[("Authorization", &bearer(KEY)), FORM],
        "channel=C0HELP&text=x",
    );
    assert_refused(&r2, "argument_denied", 200);
    let r = record(gw, 2);
    assert_eq!(r["rule"], "deny_args: icon_url");
    assert_eq!(rig.slack.count(), 0);
}

#[test]
fn team_denied() {
    let rig = rig();
    let gw = &rig.gw;
    let r1 = post_message(gw, r#"{"channel":"C0HELP","text":"x","team_id":"T0OTHER"}"#);
    assert_refused(&r1, "team_denied", 200);
    let ok = post_message(gw, r#"{"channel":"C0HELP","text":"x","team_id":"T0ACME"}"#);
    assert_eq!(ok.json()["ok"], true);
    let r = record(gw, 1);
    assert_eq!(
        (r["reason"].as_str(), r["team_id"].as_str()),
        (Some("team_denied"), Some("T0OTHER"))
    );
    assert_eq!(rig.slack.count(), 1);
}

#[test]
fn token_in_url() {
    let rig = rig();
    let gw = &rig.gw;
    let r1 = call(gw, &format!("/api/auth.test?token={KEY}"), &[], "");
    assert_refused(&r1, "token_in_url", 200);
    // Even with the key in Authorization too.
    let r2 = call(
        gw,
        "/api/auth.test?token=anything",
        &[("Authorization", &bearer(KEY))],
        "",
    );
    assert_refused(&r2, "token_in_url", 200);
    let r = record(gw, 2);
    assert_eq!(r["reason"], "token_in_url");
    assert_eq!(r["bot"], "helpdesk");
    assert_eq!(rig.slack.count(), 0);
    assert_no_leaks(&rig, &[&r1, &r2]);
}

#[test]
fn malformed_calls() {
    let rig = rig();
    let gw = &rig.gw;
    let auth = bearer(KEY);
    let cases: Vec<Response> = vec![
        // The channel twice with different values (query and body).
        call(
            gw,
            "/api/chat.postMessage?channel=C0HELP",
            &[("Authorization", &auth), FORM],
            "channel=C0SECRET&text=x",
        ),
        // Twice in one JSON object.
        post_message(gw, r#"{"channel":"C0HELP","channel":"C0SECRET"}"#),
        // Not JSON, not an object.
        post_message(gw, r#"{"channel":"C0HELP""#),
        post_message(gw, r#"["C0HELP"]"#),
        // A body Slack would read but the gateway cannot check.
        call(
            gw,
            "/api/chat.postMessage",
            &[
                ("Authorization", &auth),
                ("Content-Type", "multipart/form-data; boundary=x"),
            ],
            "--x\r\n",
        ),
        // No method in the path.
        call(gw, "/api/", &[("Authorization", &auth)], ""),
        call(gw, "/v2/chat.postMessage", &[("Authorization", &auth)], ""),
        // Two different keys.
        call(
            gw,
            "/api/auth.test",
            &[("Authorization", &auth), FORM],
            &format!("token={OTHER_KEY}"),
        ),
        // Authorization twice.
        call(
            gw,
            "/api/auth.test",
            &[
                ("Authorization", &auth),
                ("Authorization", &bearer(OTHER_KEY)),
            ],
            "",
        ),
    ];
    for (i, r) in cases.iter().enumerate() {
        assert_eq!(
            r.json()["error"],
            "malformed_call",
            "case {i}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(
            r.header("x-slackgate-reason"),
            Some("malformed_call"),
            "case {i}"
        );
    }
    let lines = gw.audit_lines(cases.len());
    assert!(lines
        .iter()
        .all(|l| l["reason"] == "malformed_call" && l["direction"] == "egress"));
    assert_eq!(
        rig.slack.count(),
        0,
        "Slack got a call the gateway could not read"
    );
    assert_no_leaks(&rig, &cases.iter().collect::<Vec<_>>());
}

#[test]
fn rate_limited_by_the_bots_own_limit() {
    let rig = rig();
    let gw = &rig.gw;
    let body = r#"{"channel":"C0HELP","text":"x"}"#;
    for _ in 0..2 {
        assert_eq!(
            post_json(gw, OTHER_KEY, "chat.postMessage", body).json()["ok"],
            true
        );
    }
    let limited = post_json(gw, OTHER_KEY, "chat.postMessage", body);
    assert_refused(&limited, "rate_limited", 429);
    let retry: u32 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let r = record(gw, 3);
    assert_eq!(r["rule"], "rate_limits[0] per method 1/min burst 2");
    assert_eq!(rig.slack.count(), 2);
    // A token comes back after a minute (1/min).
    rig.clock.advance(Duration::from_secs(61));
    assert_eq!(
        post_json(gw, OTHER_KEY, "chat.postMessage", body).json()["ok"],
        true
    );
    assert_eq!(
        egress_metric(gw, "reporter", "chat.postMessage", "rate_limited"),
        1.0
    );
}

#[test]
fn slacks_429_is_honoured_until_retry_after_passes() {
    let rig = rig();
    let gw = &rig.gw;
    let body = r#"{"channel":"C0HELP","text":"x"}"#;
    rig.slack.rate_limit("chat.postMessage", 30);
    // Slack's own 429 is relayed unchanged.
    let first = post_message(gw, body);
    assert_eq!(first.status, 429);
    assert_eq!(first.header("retry-after"), Some("30"));
    assert_eq!(first.json()["error"], "ratelimited");
    let r = record(gw, 1);
    assert_eq!(
        (r["reason"].as_str(), r["upstream_status"].as_u64()),
        (Some("allowed"), Some(429))
    );
    assert_eq!(r["slack_error"], "ratelimited");
    // Then answered locally, without calling Slack.
    let second = post_message(gw, body);
    assert_refused(&second, "slack_rate_limited", 429);
    assert_eq!(second.header("retry-after"), Some("30"));
    rig.clock.advance(Duration::from_secs(20));
    let third = post_message(gw, body);
    assert_refused(&third, "slack_rate_limited", 429);
    assert_eq!(third.header("retry-after"), Some("10"));
    // Other methods of the bot are not affected.
    assert_eq!(post_json(gw, KEY, "auth.test", "{}").json()["ok"], true);
    assert_eq!(rig.slack.count(), 2);
    rig.clock.advance(Duration::from_secs(11));
    assert_eq!(post_message(gw, body).json()["ok"], true);
    assert_eq!(rig.slack.count(), 3);
    assert_eq!(
        egress_metric(gw, "helpdesk", "chat.postMessage", "slack_rate_limited"),
        2.0
    );
    assert_eq!(
        gw.metric("slackgate_egress_slack_rate_limits_total{bot=\"helpdesk\"}"),
        1.0
    );
}

#[test]
fn upstream_error_when_slack_cannot_be_reached() {
    // A port that refuses connections.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/", closed.local_addr().unwrap());
    drop(closed);
    let clock = Arc::new(FakeClock::at(NOW));
    let gw = gateway(&url, None, &clock);
    let r1 = post_message(&gw, r#"{"channel":"C0HELP","text":"x"}"#);
    assert_refused(&r1, "upstream_error", 502);
    let r = record(&gw, 1);
    assert_eq!(r["reason"], "upstream_error");
    assert_eq!(r["upstream_status"], serde_json::Value::Null);
}

#[test]
fn upstream_error_when_slacks_certificate_is_not_trusted() {
    let slack = slack();
    let clock = Arc::new(FakeClock::at(NOW));
    // No ca_file: the stand-in's test CA is not among the system roots.
    let gw = gateway(&slack.url(), None, &clock);
    let r1 = post_json(&gw, KEY, "auth.test", "{}");
    assert_refused(&r1, "upstream_error", 502);
    assert_eq!(slack.count(), 0, "a call went to an untrusted Slack");
    // The stand-in counts the failed handshake once it sees the client's alert.
    assert!(wait_until(Duration::from_secs(5), || slack
        .handshake_failures()
        >= 1));
}

#[test]
fn upstream_timeout_when_slack_does_not_answer() {
    // Accepts, reads, never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/", silent.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let (s, _) = silent.accept().unwrap();
        std::thread::sleep(Duration::from_secs(8));
        drop(s);
    });
    let clock = Arc::new(FakeClock::at(NOW));
    let gw = builder(&clock)
        .egress(&url, None)
        .egress_timeout("300ms")
        .start();
    let r1 = post_json(&gw, KEY, "auth.test", "{}");
    assert_refused(&r1, "upstream_timeout", 504);
    assert_eq!(record(&gw, 1)["reason"], "upstream_timeout");
    drop(gw);
    let _ = held.join();
}

#[test]
fn unused_scopes_are_shown_per_bot() {
    let rig = rig();
    let gw = &rig.gw;
    post_message(gw, r#"{"channel":"C0HELP","text":"x"}"#);
    call(
        gw,
        "/api/conversations.info?channel=C0HELP",
        &[("Authorization", &bearer(KEY))],
        "",
    );
    let status = gw.admin_client().get("/status").unwrap().json();
    let bot = &status["egress"]["bots"]["helpdesk"];
    assert_eq!(
        bot["unused_scopes"],
        serde_json::json!(["reactions:write", "users:read"]),
        "{status}"
    );
    assert_eq!(bot["token"], "env:HELPDESK_BOT_TOKEN");
    assert!(!status.to_string().contains(TOKEN) && !status.to_string().contains(KEY));
    assert_eq!(
        gw.metric("slackgate_egress_unused_scopes{bot=\"helpdesk\"}"),
        2.0
    );
    // A reactions call needs reactions:write: one fewer unused.
    call(
        gw,
        "/api/reactions.add",
        &[("Authorization", &bearer(KEY)), FORM],
        "channel=C0HELP&name=x&timestamp=1.2",
    );
    assert!(wait_until(Duration::from_secs(2), || gw
        .metric("slackgate_egress_unused_scopes{bot=\"helpdesk\"}")
        == 1.0));
}

#[test]
fn pooled_connections_to_slack_and_a_policy_reload_applies_at_once() {
    let rig = rig();
    let gw = &rig.gw;
    let one = format!(
        "POST /api/chat.postMessage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: 31\r\n\r\n{{\"channel\":\"C0HELP\",\"text\":\"x\"}}"
    );
    // Pipelined calls (a second sent before the first is answered): each is answered,
    // in order, and reaches Slack once; nothing is answered twice.
    let answers = gw
        .egress_client()
        .raw_all(one.repeat(3).as_bytes())
        .unwrap();
    assert_eq!(answers.len(), 3);
    assert!(answers.iter().all(|a| a.json()["ok"] == true));
    assert_eq!(rig.slack.count(), 3);
    // Calls one after another go out on pooled connections to Slack.
    for _ in 0..4 {
        let a = gw.egress_client().raw(one.as_bytes()).unwrap();
        assert_eq!(a.json()["ok"], true);
    }
    assert_eq!(rig.slack.count(), 7);
    assert!(rig.slack.connections() < 5, "{}", rig.slack.connections());
    // Drop chat.postMessage from the bot: the next call is denied.
    gw.write_policy(&policy().replace(
        "methods: [chat.postMessage, \"reactions.*\"",
        "methods: [\"reactions.*\"",
    ));
    assert!(wait_until(Duration::from_secs(5), || {
        post_message(gw, r#"{"channel":"C0HELP","text":"x"}"#).json()["error"] == "method_denied"
    }));
}

#[test]
fn the_key_in_a_json_field_and_an_egress_listener_over_tls() {
    let slack = slack();
    let clock = Arc::new(FakeClock::at(NOW));
    let gw = builder(&clock).slack(&slack).egress_tls().start();
    // A real TLS handshake with the egress listener; the key as a JSON member.
    let body = format!(r#"{{"token":"{KEY}","channel":"C0HELP","text":"hi"}}"#);
    let a = call(&gw, "/api/chat.postMessage", &[JSON], &body);
    assert_eq!(a.json()["ok"], true, "{}", String::from_utf8_lossy(&a.body));
    let got = slack.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].token.as_deref(), Some(TOKEN));
    // The member is cut out, every other byte as sent.
    assert_eq!(got[0].body, br#"{"channel":"C0HELP","text":"hi"}"#);
    assert!(!String::from_utf8_lossy(&got[0].head).contains(KEY));
}

/// The egress listener keeps a connection exactly as long as the client lets it: every
/// `Connection` line counts (pingora's own reading takes the first), and an HTTP/1.0
/// client that did not ask for `keep-alive` gets its answer and the close it reads to.
/// A kept connection answers a call written before the previous answer was read
/// (pipelined) too, in order.
#[test]
fn connections_persist_as_the_client_says() {
    use std::io::{Read, Write};
    let rig = rig();
    let addr = rig.gw.egress_addr.unwrap();
    let body = r#"{"channel":"C0HELP","text":"hi"}"#;
    let request = |version: &str, lines: &[&str]| {
        let mut r = format!(
            "POST /api/chat.postMessage {version}\r\nHost: slackgate\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        for l in lines {
            r.push_str(l);
            r.push_str("\r\n");
        }
        r.push_str("\r\n");
        r.push_str(body);
        r
    };
    let answers = |got: &[u8]| got.windows(12).filter(|w| w == b"HTTP/1.1 200").count();
    // Two requests back to back; what came back before the gateway closed (or within
    // the deadline, when it kept the connection).
    let exchange = |first: String| -> (Vec<u8>, bool) {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let second = request("HTTP/1.1", &[]);
        s.write_all(format!("{first}{second}").as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let closed = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("{e} after {}", String::from_utf8_lossy(&got)),
            }
            if answers(&got) == 2 {
                break false;
            }
        };
        (got, closed)
    };

    for (name, version, lines, keeps) in [
        ("HTTP/1.1", "HTTP/1.1", &[][..], true),
        ("HTTP/1.0", "HTTP/1.0", &[][..], false),
        (
            "HTTP/1.0 with keep-alive",
            "HTTP/1.0",
            &["Connection: keep-alive"][..],
            true,
        ),
        (
            "HTTP/1.0 with keep-alive on a second line",
            "HTTP/1.0",
            &["Connection: X-Trace", "Connection: keep-alive"][..],
            true,
        ),
        (
            "close on a second line",
            "HTTP/1.1",
            &["Connection: keep-alive", "Connection: close"][..],
            false,
        ),
    ] {
        let (got, closed) = exchange(request(version, lines));
        let text = String::from_utf8_lossy(&got);
        if keeps {
            assert_eq!(answers(&got), 2, "{name}: {text}");
        } else {
            assert_eq!(answers(&got), 1, "{name}: {text}");
            assert!(closed, "{name}: not closed");
            assert!(
                text.to_ascii_lowercase().contains("connection: close"),
                "{name}: {text}"
            );
        }
    }
}
