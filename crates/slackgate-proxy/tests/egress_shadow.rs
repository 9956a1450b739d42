//! A bot in `mode: shadow` behind the egress door, end to end in front of the testkit's
//! Slack stand-in: its would-be denials reach Slack with the real token and are audited
//! with `"shadow": true` and counted; privileged methods and unknown keys stay refused;
//! every record of an answered call carries Slack's `x-accepted-oauth-scopes` as
//! `scopes_needed`, and the grant as `scopes_granted` when it changed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::Value;
use slackgate_guard::FakeClock;
use slackgate_testkit::creds::{HELPDESK_KEY as KEY, HELPDESK_TOKEN as TOKEN, NOW};
use slackgate_testkit::policy::bots_from;
use slackgate_testkit::{wait_until, SlackApi, TestGateway, TestGatewayBuilder};

const GRANTED: &[&str] = &["chat:write", "channels:read", "reactions:write"];

fn policy(mode: &str) -> String {
    format!(
        r#"{}    mode: {mode}
    team: T0ACME
    methods: [chat.postMessage, conversations.info]
    channels: [C0HELP]
    deny_args: [username]
    rate_limits:
      - {{ per: method, rate: 1/min, burst: 1 }}
"#,
        bots_from("helpdesk")
    )
}

fn rig(mode: &str) -> (SlackApi, TestGateway) {
    let slack = SlackApi::builder().token(TOKEN, "T0ACME", GRANTED).start();
    let clock = Arc::new(FakeClock::at(NOW));
    let gw = TestGatewayBuilder::new(&policy(mode))
        .bot("helpdesk", KEY, TOKEN)
        .fake_clock(&clock)
        .slack(&slack)
        .start();
    (slack, gw)
}

fn call(gw: &TestGateway, key: &str, method: &str, form: &str) -> slackgate_testkit::Response {
    gw.egress_post(
        &format!("/api/{method}"),
        &[
            ("Authorization", &format!("Bearer {key}")),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        form,
    )
}

fn egress_records(gw: &TestGateway, n: usize) -> Vec<Value> {
    let read = || -> Vec<Value> {
        gw.audit_raw()
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r["direction"] == "egress")
            .collect()
    };
    assert!(
        wait_until(std::time::Duration::from_secs(5), || read().len() >= n),
        "wanted {n} egress records: {:?}",
        read()
    );
    read()
}

/// (method, form, would-be reason, shadowed, reaches Slack)
type Case = (&'static str, &'static str, &'static str, bool, bool);

const CASES: [Case; 9] = [
    (
        "chat.postMessage",
        "channel=C0HELP&text=hi",
        "allowed",
        false,
        true,
    ),
    (
        "chat.delete",
        "channel=C0HELP&ts=1.2",
        "method_denied",
        true,
        true,
    ),
    (
        "chat.postMessage",
        "channel=C0OTHER&text=hi",
        "channel_denied",
        true,
        true,
    ),
    (
        "chat.postMessage",
        "channel=C0HELP&text=hi&team_id=T0EVIL",
        "team_denied",
        true,
        true,
    ),
    (
        "chat.postMessage",
        "channel=C0HELP&text=hi&username=ceo",
        "argument_denied",
        true,
        true,
    ),
    (
        "conversations.info",
        "channel=C0HELP",
        "allowed",
        false,
        true,
    ),
    // The method's bucket (burst 1) is spent by the allowed post: reported only.
    (
        "chat.postMessage",
        "channel=C0HELP&text=hi",
        "rate_limited",
        true,
        true,
    ),
    // Privileged and unlisted: refused even in shadow mode.
    ("admin.users.list", "", "method_denied", false, false),
    ("auth.revoke", "", "method_denied", false, false),
];

#[test]
fn a_shadow_bot_reaches_slack_with_its_would_be_denials_audited() {
    let (slack, gw) = rig("shadow");
    for (method, form, reason, _, reaches) in CASES {
        let r = call(&gw, KEY, method, form);
        if reaches {
            // Slack's answer, whatever it said (chat.delete of no message fails there).
            assert_eq!(r.status, 200, "{method} {form}");
            assert_eq!(r.header("x-slackgate-reason"), None, "{method} {form}");
        } else {
            r.assert_refused(reason);
        }
    }
    // An unknown key is never shadowed.
    call(
        &gw,
        "gk_nobody_0000zzzz9999yyyy",
        "chat.delete",
        "channel=C0HELP",
    )
    .assert_refused("unknown_bot");

    let want: Vec<&str> = CASES.iter().filter(|c| c.4).map(|c| c.0).collect();
    let got: Vec<String> = slack.received().iter().map(|r| r.method.clone()).collect();
    assert_eq!(
        got, want,
        "the stand-in got every shadowed call, no refused one"
    );
    for r in slack.received() {
        assert_eq!(
            r.token.as_deref(),
            Some(TOKEN),
            "{}: the real token",
            r.method
        );
    }

    let records = egress_records(&gw, CASES.len() + 1);
    for (rec, (method, form, reason, shadow, reaches)) in records.iter().zip(CASES) {
        let what = format!("{method} {form}: {rec}");
        assert_eq!(rec["method"], method, "{what}");
        assert_eq!(rec["reason"], reason, "{what}");
        assert_eq!(rec["shadow"], shadow, "{what}");
        if reaches {
            assert_eq!(rec["upstream_status"], 200, "{what}");
            assert_eq!(rec["status"], 200, "{what}");
        } else {
            assert_eq!(rec["upstream_status"], Value::Null, "{what}");
            assert_eq!(rec["scopes_needed"], Value::Null, "{what}");
        }
    }
    // The denied channel is the one audited.
    assert_eq!(records[2]["channel_id"], "C0OTHER");
    assert_eq!(records[2]["rule"], "channels");
    let unknown = &records[CASES.len()];
    assert_eq!(
        (unknown["reason"].as_str(), unknown["shadow"].as_bool()),
        (Some("unknown_bot"), Some(false))
    );

    // Slack's scope headers: what each method accepted, and the grant once.
    assert_eq!(records[0]["scopes_needed"], "chat:write");
    assert_eq!(
        records[5]["scopes_needed"],
        "channels:read,groups:read,im:read,mpim:read"
    );
    assert_eq!(records[0]["scopes_granted"], GRANTED.join(","));
    assert_eq!(
        records[1]["scopes_granted"],
        Value::Null,
        "the grant did not change"
    );

    for (reason, n) in [
        ("method_denied", 1.0),
        ("channel_denied", 1.0),
        ("team_denied", 1.0),
        ("argument_denied", 1.0),
        ("rate_limited", 1.0),
    ] {
        assert_eq!(
            gw.metric(&format!(
                "slackgate_egress_shadowed_total{{bot=\"helpdesk\",reason=\"{reason}\"}}"
            )),
            n,
            "{reason}"
        );
    }
    for line in gw.audit_raw() {
        assert!(!line.contains(KEY) && !line.contains(TOKEN), "{line}");
    }
    let status = gw.admin_client().get("/status").unwrap();
    let status: Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(status["egress"]["bots"]["helpdesk"]["mode"], "shadow");
}

#[test]
fn the_same_bot_enforced_refuses_what_shadow_forwarded() {
    let (slack, gw) = rig("enforce");
    for (method, form, reason, _, _) in CASES {
        let r = call(&gw, KEY, method, form);
        if reason == "allowed" {
            assert_eq!(r.json()["ok"], true, "{method} {form}");
        } else {
            r.assert_refused(reason);
        }
    }
    let records = egress_records(&gw, CASES.len());
    assert!(records.iter().all(|r| r["shadow"] == false));
    let got: Vec<String> = slack.received().iter().map(|r| r.method.clone()).collect();
    assert_eq!(got, ["chat.postMessage", "conversations.info"]);
}
