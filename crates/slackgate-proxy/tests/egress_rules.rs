//! The egress door's rules on what a call names (issue 26), over raw TCP against the egress
//! listener, in front of the testkit's Slack Web API stand-in. One test per finding: each
//! checks the answer, the audit record and what the stand-in did NOT receive (nothing for a
//! refused call; Slack's spelling of the method for a case variant).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use slackgate_guard::FakeClock;
use slackgate_testkit::creds::{HELPDESK_KEY, HELPDESK_TOKEN, NOW, SIGNING_SECRET as SECRET};
use slackgate_testkit::policy::{self, helpdesk_to, route};
use slackgate_testkit::{
    fixture, wait_until, MockBot, Response, SignedRequest, SlackApi, TestGateway,
    TestGatewayBuilder,
};

const REPLIER_KEY: &str = "gk_replier_0a1b2c3d4e5f60718293";
const COUNTER_KEY: &str = "gk_counter_99aa88bb77cc66dd55ee";
const REPLIER_TOKEN: &str = "xoxb-1111-3333-realrepliertoken";
const COUNTER_TOKEN: &str = "xoxb-1111-4444-realcountertoken";

fn policy(bot: &MockBot) -> String {
    format!(
        r#"version: 1
{head}routes:
{route}    allow: {{ channels: [C0HELP] }}
bots:
{helpdesk}    methods: ["chat.*", "canvases.*", conversations.info]
    channels: [C0HELP, C0OPS]
    rate_limits: [{{ per: channel, rate: 1/min, burst: 1 }}]
{replier}    app: helpdesk
    methods: ["chat.*", "reactions.*"]
    reply_scope: 10m
{counter}    methods: [chat.postMessage]
    rate_limits: [{{ per: method, rate: 1/min, burst: 1 }}]
"#,
        head = helpdesk_to("HELPDESK_SECRET", "bot", bot.addr()),
        route = route("helpdesk", "/slack/events", "helpdesk", "bot"),
        helpdesk = policy::bot("helpdesk"),
        replier = policy::bot("replier"),
        counter = policy::bot("counter"),
    )
}

struct Rig {
    slack: SlackApi,
    gw: TestGateway,
    _bot: MockBot,
}

fn rig() -> Rig {
    let scopes = [
        "chat:write",
        "channels:read",
        "reactions:write",
        "canvases:write",
    ];
    let slack = SlackApi::builder()
        .token(HELPDESK_TOKEN, "T0ACME", &scopes)
        .token(REPLIER_TOKEN, "T0ACME", &scopes)
        .token(COUNTER_TOKEN, "T0ACME", &scopes)
        .start();
    let bot = MockBot::start();
    let gw = TestGatewayBuilder::new(&policy(&bot))
        .secret("HELPDESK_SECRET", SECRET)
        .bot("helpdesk", HELPDESK_KEY, HELPDESK_TOKEN)
        .bot("replier", REPLIER_KEY, REPLIER_TOKEN)
        .bot("counter", COUNTER_KEY, COUNTER_TOKEN)
        .fake_clock(&Arc::new(FakeClock::at(NOW)))
        .slack(&slack)
        .start();
    Rig {
        slack,
        gw,
        _bot: bot,
    }
}

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json; charset=utf-8";

/// `POST {target}` over a fresh TCP connection, with the key (if any) as a bearer token.
fn call(
    gw: &TestGateway,
    target: &str,
    key: Option<&str>,
    content_type: &str,
    body: &str,
) -> Response {
    let bearer = key.map(|key| format!("Bearer {key}"));
    let mut headers = vec![("Content-Type", content_type)];
    headers.extend(bearer.iter().map(|b| ("Authorization", b.as_str())));
    gw.egress_post(target, &headers, body)
}

/// The gateway's answer for a refused call, the way Slack answers a failed one.
fn assert_refused(r: &Response, reason: &str) {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.assert_refused(reason);
}

fn assert_slack_ok(r: &Response) {
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["ok"], true, "{}", String::from_utf8_lossy(&r.body));
}

/// The `n`-th audit record (1-based), which must be an egress one.
fn egress_record(gw: &TestGateway, n: usize) -> serde_json::Value {
    gw.egress_record(n)
}

/// The audit record's fields that say who called what, where.
fn named(r: &serde_json::Value) -> serde_json::Value {
    json!([
        r["bot"],
        r["method"],
        r["team_id"],
        r["channel_id"],
        r["reason"]
    ])
}

// === 1. Channel lists: linear, and capped ===

#[test]
fn a_long_channel_list_is_refused_at_the_cap_quickly_before_the_caller_is_known() {
    let rig = rig();
    // The finding's shape: no key, `channels=0,1,2,...` just under 1 MiB.
    let mut ids = String::from("channels=");
    let mut i = 0u32;
    while ids.len() < 1_000_000 {
        ids.push_str(&format!("{i},"));
        i += 1;
    }
    let started = Instant::now();
    let r = call(&rig.gw, "/api/chat.postMessage", None, FORM, &ids);
    let took = started.elapsed();
    assert_refused(&r, "malformed_call");
    // The quadratic reader kept the door busy for ~37 s (release); reading to the cap and
    // stopping is milliseconds, even in a debug build.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let rec = egress_record(&rig.gw, 1);
    // A caller no key identifies is told the kind of problem, with nothing it wrote.
    assert_eq!(
        rec["rule"],
        "the call names more channels than limits.max_call_channels"
    );
    assert_eq!(
        named(&rec),
        json!([null, "chat.postMessage", null, null, "malformed_call"])
    );

    // A JSON array from a known bot: the same rule, with the bot named.
    let array: Vec<String> = (0..50_000).map(|i| format!("\"C{i}\"")).collect();
    let body = format!(r#"{{"channels":[{}],"text":"x"}}"#, array.join(","));
    let r = call(
        &rig.gw,
        "/api/chat.postMessage",
        Some(HELPDESK_KEY),
        JSON,
        &body,
    );
    assert_refused(&r, "malformed_call");
    let rec = egress_record(&rig.gw, 2);
    assert_eq!(rec["bot"], "helpdesk");
    assert_eq!(
        rec["rule"],
        "the call names more than 100 channels (limits.max_call_channels)"
    );
    // 100 channels, all allowed ones repeated, are read (and then held to `channels`).
    let repeated = ["C0HELP", "C0OPS"].repeat(100).join(",");
    let r = call(
        &rig.gw,
        "/api/chat.postMessage",
        Some(HELPDESK_KEY),
        FORM,
        &format!("channel=C0HELP&channels={repeated}&text=x"),
    );
    assert_slack_ok(&r);
    assert_eq!(
        rig.slack.count(),
        1,
        "only the call within the cap reached Slack"
    );
}

// === 2. Method names in any case ===

#[test]
fn a_case_variant_of_a_method_is_decided_and_forwarded_in_slacks_spelling() {
    let rig = rig();
    // `counter` may call chat.postMessage once a minute (per: method).
    let r = call(
        &rig.gw,
        "/api/chat.PostMessage",
        Some(COUNTER_KEY),
        FORM,
        "channel=C0HELP&text=hi",
    );
    assert_slack_ok(&r);
    let got = rig.slack.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method, "chat.postMessage");
    assert_eq!(got[0].target, "/api/chat.postMessage");
    let rec = egress_record(&rig.gw, 1);
    assert_eq!(
        (&rec["method"], &rec["reason"]),
        (&"chat.postMessage".into(), &"allowed".into())
    );

    // Another spelling shares the method's bucket: no fresh one.
    let r = call(
        &rig.gw,
        "/api/CHAT.POSTMESSAGE",
        Some(COUNTER_KEY),
        FORM,
        "channel=C0HELP&text=hi",
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"], "rate_limited");
    let rec = egress_record(&rig.gw, 2);
    assert_eq!(
        (&rec["method"], &rec["reason"]),
        (&"chat.postMessage".into(), &"rate_limited".into())
    );

    // Slack's 429 for chat.postMessage holds for every spelling.
    rig.slack.rate_limit("chat.postMessage", 30);
    let r = call(
        &rig.gw,
        "/api/chat.postMessage",
        Some(HELPDESK_KEY),
        FORM,
        "channel=C0HELP&text=a",
    );
    assert_eq!(r.status, 429);
    let r = call(
        &rig.gw,
        "/api/Chat.postmessage",
        Some(HELPDESK_KEY),
        FORM,
        "channel=C0OPS&text=b",
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"], "slack_rate_limited");
    let rec = egress_record(&rig.gw, 4);
    assert_eq!(
        (&rec["method"], &rec["reason"]),
        (&"chat.postMessage".into(), &"slack_rate_limited".into())
    );

    // A name Slack does not document is refused, and never forwarded.
    let r = call(
        &rig.gw,
        "/api/chat.postMessageX",
        Some(HELPDESK_KEY),
        FORM,
        "channel=C0HELP",
    );
    assert_refused(&r, "method_denied");
    let rec = egress_record(&rig.gw, 5);
    assert_eq!(
        (&rec["rule"], &rec["method"]),
        (&"methods".into(), &"chat.postMessageX".into())
    );
    let methods: Vec<String> = rig.slack.received().into_iter().map(|g| g.method).collect();
    assert_eq!(
        methods,
        ["chat.postMessage", "chat.postMessage"],
        "only Slack's spelling reached Slack"
    );
}

// === 3. Every channel-naming argument, and the channel acted on ===

#[test]
fn every_channel_naming_argument_is_checked_and_the_channel_acted_on_is_charged() {
    let rig = rig();
    // canvases.access.set names its channels in channel_ids.
    let r = call(
        &rig.gw,
        "/api/canvases.access.set",
        Some(HELPDESK_KEY),
        JSON,
        r#"{"canvas_id":"F0CANVAS","access_level":"write","channel_ids":["C0OTHER"]}"#,
    );
    assert_refused(&r, "channel_denied");
    let rec = egress_record(&rig.gw, 1);
    assert_eq!(
        (&rec["rule"], &rec["channel_id"]),
        (&"channels".into(), &"C0OTHER".into())
    );
    assert_eq!(rig.slack.count(), 0);

    // chat.postMessage acts on `channel`: charged to and audited as C0OPS.
    let r = call(
        &rig.gw,
        "/api/chat.postMessage",
        Some(HELPDESK_KEY),
        FORM,
        "channel_id=C0HELP&channel=C0OPS&text=x",
    );
    assert_slack_ok(&r);
    let rec = egress_record(&rig.gw, 2);
    assert_eq!(rec["channel_id"], "C0OPS");
    // C0OPS's bucket (burst 1) is spent, C0HELP's is not.
    let r = call(
        &rig.gw,
        "/api/chat.postMessage",
        Some(HELPDESK_KEY),
        FORM,
        "channel=C0OPS&text=y",
    );
    assert_eq!(r.status, 429);
    assert_eq!(egress_record(&rig.gw, 3)["channel_id"], "C0OPS");
    let r = call(
        &rig.gw,
        "/api/chat.postMessage",
        Some(HELPDESK_KEY),
        FORM,
        "channel=C0HELP&text=z",
    );
    assert_slack_ok(&r);
    assert_eq!(egress_record(&rig.gw, 4)["channel_id"], "C0HELP");

    // A write into a conversation it does not name: chat.unfurl by unfurl_id, through a glob.
    let r = call(
        &rig.gw,
        "/api/chat.unfurl",
        Some(HELPDESK_KEY),
        FORM,
        "unfurl_id=Uf0001&source=composer&unfurls=%7B%7D",
    );
    assert_refused(&r, "channel_denied");
    let rec = egress_record(&rig.gw, 5);
    assert_eq!(
        (&rec["rule"], &rec["channel_id"]),
        (&"channels".into(), &serde_json::Value::Null)
    );
    let got: Vec<String> = rig
        .slack
        .received()
        .into_iter()
        .map(|g| g.arg("channel").unwrap_or_default())
        .collect();
    assert_eq!(
        got,
        ["C0OPS", "C0HELP"],
        "only the two allowed posts reached Slack"
    );
}

// === 4 and 5. Reply scope: every conversation write; only allowed inbound requests open it ===

fn mention_from(channel: &str, event_id: &str) -> SignedRequest {
    let body = String::from_utf8(fixture("event_app_mention.json"))
        .unwrap()
        .replace("C0HELP", channel)
        .replace("Ev0APPMENTION1", event_id);
    SignedRequest::new("/slack/events", body).sign_at(SECRET, NOW as i64)
}

#[test]
fn reply_scope_covers_every_conversation_write() {
    let rig = rig();
    // C0HELP sent the app an allowed mention: its reply window is open.
    let r = rig
        .gw
        .client()
        .send(&mention_from("C0HELP", "Ev0REPLY0001"))
        .unwrap();
    assert_eq!(r.status, 200);
    // Its record is written once the bot's answer is relayed: wait for it, so the calls'
    // records below are the 2nd and later.
    assert_eq!(rig.gw.audit_nth(1)["direction"], "inbound");
    let mut n = 1;
    for (method, args) in [
        ("chat.startStream", "channel=C0OPS&thread_ts=1.2"),
        ("chat.appendStream", "channel=C0OPS&ts=1.2&markdown_text=x"),
        ("chat.unfurl", "channel=C0OPS&ts=1.2&unfurls=%7B%7D"),
        (
            "chat.deleteScheduledMessage",
            "channel=C0OPS&scheduled_message_id=Q1",
        ),
        ("reactions.add", "channel=C0OPS&timestamp=1.2&name=eyes"),
    ] {
        let r = call(
            &rig.gw,
            &format!("/api/{method}"),
            Some(REPLIER_KEY),
            FORM,
            args,
        );
        assert_refused(&r, "channel_denied");
        n += 1;
        let rec = egress_record(&rig.gw, n);
        assert_eq!(
            (&rec["method"], &rec["rule"], &rec["channel_id"]),
            (&json!(method), &"reply_scope".into(), &"C0OPS".into()),
            "{method}"
        );
    }
    // An unfurl by unfurl_id names no conversation: denied too.
    let r = call(
        &rig.gw,
        "/api/chat.unfurl",
        Some(REPLIER_KEY),
        FORM,
        "unfurl_id=Uf1&source=composer&unfurls=%7B%7D",
    );
    assert_refused(&r, "channel_denied");
    assert_eq!(
        rig.slack.count(),
        0,
        "no write outside the window reached Slack"
    );
    // Into the window, the same writes go through.
    let r = call(
        &rig.gw,
        "/api/chat.startStream",
        Some(REPLIER_KEY),
        FORM,
        "channel=C0HELP&thread_ts=1.2",
    );
    assert_eq!(r.status, 200);
    let got = rig.slack.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].method.as_str(), got[0].arg("channel").as_deref()),
        ("chat.startStream", Some("C0HELP"))
    );
}

#[test]
fn a_denied_inbound_request_opens_no_reply_window() {
    let rig = rig();
    // The replier's post into C0SECRET, refused whatever C0SECRET or C0HELP sent.
    let leak = || {
        let r = call(
            &rig.gw,
            "/api/chat.postMessage",
            Some(REPLIER_KEY),
            JSON,
            r#"{"channel":"C0SECRET","text":"leak"}"#,
        );
        assert_refused(&r, "channel_denied");
    };
    // A verified mention from C0SECRET, which the route does not allow: 403 scope_denied.
    let r = rig
        .gw
        .client()
        .send(&mention_from("C0SECRET", "Ev0SECRET001"))
        .unwrap();
    assert_eq!(r.status, 403);
    let inbound = rig.gw.audit_nth(1);
    assert_eq!(
        (&inbound["reason"], &inbound["channel_id"]),
        (&"scope_denied".into(), &"C0SECRET".into())
    );
    leak();
    let rec = egress_record(&rig.gw, 2);
    assert_eq!(
        (&rec["rule"], &rec["channel_id"]),
        (&"reply_scope".into(), &"C0SECRET".into())
    );
    assert_eq!(rig.slack.count(), 0, "nothing reached Slack");

    // The allowed mention from C0HELP does open one (and only for C0HELP).
    let r = rig
        .gw
        .client()
        .send(&mention_from("C0HELP", "Ev0HELP00001"))
        .unwrap();
    assert_eq!(r.status, 200);
    let r = call(
        &rig.gw,
        "/api/chat.postMessage",
        Some(REPLIER_KEY),
        JSON,
        r#"{"channel":"C0HELP","text":"on it"}"#,
    );
    assert_slack_ok(&r);
    leak();
    let got = rig.slack.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].arg("channel").as_deref(), Some("C0HELP"));
}

// === 6. What an audit record may carry ===

#[test]
fn an_unknown_callers_record_keeps_only_a_documented_method_and_ids_keep_slacks_shape() {
    let rig = rig();
    let r = call(
        &rig.gw,
        "/api/CHAT.postMessage",
        Some("gk_nobody_at_all"),
        FORM,
        "channel=C0HELP&team_id=T0ACME&text=x",
    );
    assert_refused(&r, "unknown_bot");
    let rec = egress_record(&rig.gw, 1);
    assert_eq!(
        named(&rec),
        json!([null, "chat.postMessage", null, null, "unknown_bot"])
    );
    assert_eq!(rec["rule"], "key");
    // A made-up method name, ids and argument names: none of it is written.
    let r = call(
        &rig.gw,
        "/api/exfil.ABCDEFsecret",
        None,
        FORM,
        "channel=Cspoofed%0A%7B%22x%22&team_id=Tforged&mysecretarg=1&mysecretarg=2",
    );
    assert_refused(&r, "malformed_call");
    let line = rig.gw.audit_raw().pop().unwrap();
    for caller_text in ["exfil", "ABCDEF", "spoofed", "forged", "mysecretarg"] {
        assert!(!line.contains(caller_text), "{caller_text} in {line}");
    }
    let rec = egress_record(&rig.gw, 2);
    assert_eq!(
        (&rec["method"], &rec["bot"]),
        (&serde_json::Value::Null, &serde_json::Value::Null)
    );

    // A known bot: ids out of Slack's shape are audited as "invalid", and still denied.
    let r = call(
        &rig.gw,
        "/api/chat.postMessage",
        Some(HELPDESK_KEY),
        FORM,
        "channel=c0help&team_id=t0acme&text=x",
    );
    assert_refused(&r, "channel_denied");
    let rec = egress_record(&rig.gw, 3);
    assert_eq!(
        named(&rec),
        json!([
            "helpdesk",
            "chat.postMessage",
            "invalid",
            "invalid",
            "channel_denied"
        ])
    );
    assert!(wait_until(Duration::from_secs(5), || rig
        .gw
        .audit_raw()
        .len()
        == 3));
    assert_eq!(rig.slack.count(), 0, "nothing reached Slack");
}
