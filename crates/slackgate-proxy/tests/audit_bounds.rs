//! Issue 26, finding 2: what a caller sends cannot make an audit line large or put text of
//! its choosing in the audit, through either door's listener.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use slackgate_testkit::creds::{HELPDESK_KEY as KEY, HELPDESK_TOKEN as TOKEN};
use slackgate_testkit::policy::bots_from;
use slackgate_testkit::{Response, TestGateway, TestGatewayBuilder};

fn gateway() -> TestGateway {
    let policy = format!(
        "{}    methods: [chat.postMessage]\n    channels: [C0HELP]\n",
        bots_from("helpdesk")
    );
    // Nothing here reaches Slack: every call is refused before it would be sent.
    TestGatewayBuilder::new(&policy)
        .bot("helpdesk", KEY, TOKEN)
        .egress("http://127.0.0.1:9/api/", None)
        .start()
}

fn post_form(gw: &TestGateway, auth: Option<&str>, body: &str) -> Response {
    let bearer = auth.map(|key| format!("Bearer {key}"));
    let mut headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    headers.push(("Content-Type", "application/x-www-form-urlencoded"));
    gw.egress_post("/api/chat.postMessage", &headers, body)
}

/// A form-encoded `channel` of `n` control bytes (3 bytes each on the wire).
fn control_channel(n: usize) -> String {
    let mut s = String::with_capacity(n * 3 + 16);
    s.push_str("channel=");
    for i in 0..n {
        s.push_str(&format!("%{:02X}", 1 + i % 31));
    }
    s.push_str("&text=hi");
    s
}

#[test]
fn an_unknown_callers_oversized_channel_leaves_a_short_record_without_it() {
    let gw = gateway();
    // 300 KiB of control bytes: 1.8 MB of escapes in a line before the fix.
    let body = control_channel(300 * 1024);
    let r = post_form(&gw, None, &body);
    assert_eq!(r.header("x-slackgate-reason"), Some("unknown_bot"));
    gw.audit_nth(1);
    let raw = gw.audit_raw();
    assert_eq!(raw.len(), 1, "one record");
    assert!(raw[0].len() < 400, "{} bytes", raw[0].len());
    let rec: serde_json::Value = serde_json::from_str(&raw[0]).unwrap();
    assert_eq!(rec["reason"], "unknown_bot");
    assert_eq!(rec["method"], "chat.postMessage");
    assert_eq!(rec["rule"], "no key");
    assert_eq!(rec["channel_id"], serde_json::Value::Null);
    assert_eq!(rec["team_id"], serde_json::Value::Null);

    // A wrong key that names a team and a channel: none of it is kept.
    let r = post_form(
        &gw,
        Some("gk_nobody_000000000000000000"),
        "channel=C0HELP&team_id=T0ACME&text=hi",
    );
    assert_eq!(r.header("x-slackgate-reason"), Some("unknown_bot"));
    let rec = gw.audit_nth(2);
    assert_eq!(rec["rule"], "key");
    assert_eq!(rec["channel_id"], serde_json::Value::Null);
    assert_eq!(rec["team_id"], serde_json::Value::Null);
}

#[test]
fn a_known_bots_channel_is_kept_only_with_slacks_id_shape() {
    let gw = gateway();
    let r = post_form(&gw, Some(KEY), &control_channel(300 * 1024));
    assert_eq!(r.header("x-slackgate-reason"), Some("channel_denied"));
    // Its own key as the channel: not an id, so not written.
    let r = post_form(&gw, Some(KEY), &format!("channel={KEY}&text=hi"));
    assert_eq!(r.header("x-slackgate-reason"), Some("channel_denied"));
    gw.audit_nth(2);
    let raw = gw.audit_raw();
    assert_eq!(raw.len(), 2);
    for line in &raw {
        assert!(line.len() < 400, "{} bytes", line.len());
        assert!(!line.contains(KEY), "the key reached the audit: {line}");
        let rec: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(rec["bot"], "helpdesk");
        assert_eq!(rec["channel_id"], "invalid");
    }
}
