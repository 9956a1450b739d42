//! Token lifecycle end to end: a verified `tokens_revoked` or `app_uninstalled` arriving
//! at the inbound door for a bot's app and team revokes the bot's token at the egress
//! door (`token_revoked`, nothing reaches Slack) until its token reference changes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use slackgate_guard::FakeClock;
use slackgate_testkit::creds::{
    HELPDESK_KEY as KEY, HELPDESK_TOKEN as TOKEN, NOW, SIGNING_SECRET as SECRET,
};
use slackgate_testkit::policy::{self, helpdesk_to};
use slackgate_testkit::{
    fixture, wait_until, MockBot, Redis, Response, SignedRequest, SlackApi, TestGateway,
    TestGatewayBuilder,
};

const REPORTS_SECRET: &str = "5ec0nd5ecret5ec0nd5ecret5ec0nd5e";
const ANY_TEAM_KEY: &str = "gk_anyteam_0a1b2c3d4e5f60718293";
const REPORTS_KEY: &str = "gk_reports_99887766554433221100";
const ANY_TEAM_TOKEN: &str = "xoxb-1111-3333-realanyteamtoken";
const REPORTS_TOKEN: &str = "xoxb-1111-4444-realreportstoken";

/// `helpdesk` and `anyteam` belong to app `helpdesk` (the first pinned to T0ACME),
/// `reports` to app `reports`.
fn policy(bot: &MockBot, helpdesk_token_env: &str) -> String {
    format!(
        r#"version: 1
{apps}  reports:
    signing_secrets:
      - {{ id: current, env: REPORTS_SECRET }}
{upstreams}routes:
{helpdesk_route}{reports_route}bots:
  helpdesk:
    app: helpdesk
    key: {{ env: HELPDESK_GATEWAY_KEY }}
    token: {{ env: {helpdesk_token_env} }}
    team: T0ACME
    methods: [chat.postMessage]
{anyteam}    app: helpdesk
    methods: [chat.postMessage]
{reports}    app: reports
    methods: [chat.postMessage]
"#,
        apps = policy::helpdesk_app("HELPDESK_SECRET"),
        upstreams = policy::upstream("bot", bot.addr()),
        helpdesk_route = policy::route("helpdesk", "/slack/events", "helpdesk", "bot"),
        reports_route = policy::route("reports", "/slack/reports", "reports", "bot"),
        anyteam = policy::bot("anyteam"),
        reports = policy::bot("reports"),
    )
}

struct Rig {
    slack: SlackApi,
    bot: MockBot,
    gw: TestGateway,
}

fn rig() -> Rig {
    let slack = SlackApi::builder()
        .token(TOKEN, "T0ACME", &["chat:write"])
        .token(ANY_TEAM_TOKEN, "T0ACME", &["chat:write"])
        .token(REPORTS_TOKEN, "T0ACME", &["chat:write"])
        .start();
    let bot = MockBot::start();
    let gw = TestGatewayBuilder::new(&policy(&bot, "HELPDESK_BOT_TOKEN"))
        .secret("HELPDESK_SECRET", SECRET)
        .secret("REPORTS_SECRET", REPORTS_SECRET)
        .bot("helpdesk", KEY, TOKEN)
        .secret("HELPDESK_BOT_TOKEN_COPY", TOKEN)
        .bot("anyteam", ANY_TEAM_KEY, ANY_TEAM_TOKEN)
        .bot("reports", REPORTS_KEY, REPORTS_TOKEN)
        .fake_clock(&Arc::new(FakeClock::at(NOW)))
        .slack(&slack)
        .start();
    Rig { slack, bot, gw }
}

/// A bot's `chat.postMessage`.
fn post(gw: &TestGateway, key: &str) -> Response {
    post_json(
        gw,
        key,
        "chat.postMessage",
        r#"{"channel":"C0HELP","text":"hi"}"#,
    )
}

/// `POST /api/{method}` with `key` as the bearer token and this JSON body.
fn post_json(gw: &TestGateway, key: &str, method: &str, body: &str) -> Response {
    let auth = format!("Bearer {key}");
    gw.egress_post(
        &format!("/api/{method}"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body,
    )
}

fn assert_allowed(rig: &Rig, key: &str) {
    let before = rig.slack.count();
    let r = post(&rig.gw, key);
    assert_eq!(r.json()["ok"], true, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(rig.slack.count(), before + 1);
}

fn assert_revoked(rig: &Rig, key: &str) {
    let before = rig.slack.count();
    let r = post(&rig.gw, key);
    assert_eq!(r.status, 200);
    r.assert_refused("token_revoked");
    assert_eq!(
        rig.slack.count(),
        before,
        "a revoked bot's call reached Slack"
    );
}

/// `name` fixture with every T0ACME replaced by `team`.
fn body(name: &str, team: &str) -> Vec<u8> {
    String::from_utf8(fixture(name))
        .unwrap()
        .replace("T0ACME", team)
        .into_bytes()
}

fn send(gw: &TestGateway, req: &SignedRequest) -> Response {
    gw.client().send(req).unwrap()
}

fn token_state(gw: &TestGateway, bot: &str, state: &str) -> f64 {
    gw.metric(&format!(
        "slackgate_egress_token_state{{bot=\"{bot}\",state=\"{state}\"}}"
    ))
}

fn status_token_state(gw: &TestGateway, bot: &str) -> String {
    let s = gw.admin_client().get("/status").unwrap().json();
    s["egress"]["bots"][bot]["token_state"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Writes `yaml` and waits until the gateway runs a newer policy generation.
fn reload(gw: &TestGateway, yaml: &str) {
    let before = gw.shared().current().generation;
    gw.write_policy(yaml);
    assert!(
        wait_until(Duration::from_secs(10), || gw.shared().current().generation
            > before),
        "the policy was not reloaded"
    );
}

#[test]
fn a_verified_tokens_revoked_revokes_until_the_token_reference_changes() {
    let rig = rig();
    let gw = &rig.gw;
    let ts = NOW as i64;
    assert_allowed(&rig, KEY);
    assert_eq!(token_state(gw, "helpdesk", "active"), 1.0);
    assert_eq!(token_state(gw, "helpdesk", "revoked"), 0.0);
    assert_eq!(status_token_state(gw, "helpdesk"), "active");

    // Unsigned, or signed with another secret: never verified, nothing revoked.
    let unsigned = SignedRequest::new("/slack/events", body("event_tokens_revoked.json", "T0ACME"));
    assert_eq!(send(gw, &unsigned).status, 401);
    let forged = SignedRequest::new("/slack/events", body("event_tokens_revoked.json", "T0ACME"))
        .sign_at("not-the-secret-not-the-secret-00", ts);
    assert_eq!(send(gw, &forged).status, 401);
    assert_eq!(rig.bot.requests().len(), 0);
    assert_allowed(&rig, KEY);
    assert_allowed(&rig, ANY_TEAM_KEY);

    // Another team's: the bot pinned to T0ACME keeps its token, the unpinned one of the
    // same app does not.
    let other_team = SignedRequest::new(
        "/slack/events",
        body("event_tokens_revoked.json", "T0OTHER"),
    )
    .sign_at(SECRET, ts);
    assert_eq!(send(gw, &other_team).status, 200);
    assert_allowed(&rig, KEY);
    assert_revoked(&rig, ANY_TEAM_KEY);

    // The bot's own team: revoked. The inbound record is the lifecycle request as before.
    let revoked = SignedRequest::new("/slack/events", body("event_tokens_revoked.json", "T0ACME"))
        .sign_at(SECRET, ts + 1);
    assert_eq!(send(gw, &revoked).status, 200);
    assert_revoked(&rig, KEY);
    // Records are written after the answers: found by what they hold, not by position.
    let find = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        let mut found = None;
        wait_until(Duration::from_secs(5), || {
            found = gw
                .audit_raw()
                .iter()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .find(|r| pred(r));
            found.is_some()
        });
        found.expect("the audit record")
    };
    let inbound = find(&|r| r["direction"] == "inbound" && r["team_id"] == "T0ACME");
    assert_eq!(inbound["lifecycle"], true, "{inbound}");
    assert_eq!(inbound["reason"], "allowed");
    assert_eq!(inbound["event_type"], "tokens_revoked");
    let r = find(&|r| r["bot"] == "helpdesk" && r["reason"] == "token_revoked");
    assert_eq!(r["direction"], "egress");
    assert_eq!(r["rule"], "tokens_revoked");
    assert_eq!(r["status"], 200);
    assert!(wait_until(Duration::from_secs(5), || {
        gw.metric(
        "slackgate_egress_requests_total{bot=\"helpdesk\",method=\"chat.postMessage\",reason=\"token_revoked\"}"
    ) == 1.0
    }));
    assert_eq!(token_state(gw, "helpdesk", "active"), 0.0);
    assert_eq!(token_state(gw, "helpdesk", "revoked"), 1.0);
    assert_eq!(status_token_state(gw, "helpdesk"), "revoked");
    // Another app's bot is untouched.
    assert_allowed(&rig, REPORTS_KEY);
    assert_eq!(status_token_state(gw, "reports"), "active");

    // A reload that keeps the token reference keeps the revocation.
    let same = policy(&rig.bot, "HELPDESK_BOT_TOKEN");
    reload(gw, &format!("{same}# unchanged\n"));
    assert_revoked(&rig, KEY);

    // A new token reference (here the same value from another source) clears it.
    reload(gw, &policy(&rig.bot, "HELPDESK_BOT_TOKEN_COPY"));
    assert_allowed(&rig, KEY);
    assert_eq!(status_token_state(gw, "helpdesk"), "active");
    assert_eq!(token_state(gw, "helpdesk", "revoked"), 0.0);

    // A replay of the revoking request is refused and revokes nothing.
    let replayed = send(gw, &revoked);
    assert_eq!(
        replayed.status,
        401,
        "{}",
        String::from_utf8_lossy(&replayed.body)
    );
    assert_allowed(&rig, KEY);

    // No token in any audit line.
    for line in gw.audit_raw() {
        for t in [TOKEN, ANY_TEAM_TOKEN, REPORTS_TOKEN, KEY] {
            assert!(!line.contains(t), "{line}");
        }
    }
}

#[test]
fn a_verified_app_uninstalled_revokes_the_bots_of_that_app_only() {
    let rig = rig();
    let gw = &rig.gw;
    let ts = NOW as i64;
    // Sent to the reports route: only the reports app's bot.
    let req = SignedRequest::new(
        "/slack/reports",
        body("event_app_uninstalled.json", "T0ACME"),
    )
    .sign_at(REPORTS_SECRET, ts);
    assert_eq!(send(gw, &req).status, 200);
    assert_revoked(&rig, REPORTS_KEY);
    assert_allowed(&rig, KEY);
    assert_allowed(&rig, ANY_TEAM_KEY);
    // Signed with the reports secret but sent to the helpdesk route: not verified there.
    let wrong_route = SignedRequest::new(
        "/slack/events",
        body("event_app_uninstalled.json", "T0ACME"),
    )
    .sign_at(REPORTS_SECRET, ts + 1);
    assert_eq!(send(gw, &wrong_route).status, 401);
    assert_allowed(&rig, KEY);
    // To the helpdesk route: both of its bots.
    let req = SignedRequest::new(
        "/slack/events",
        body("event_app_uninstalled.json", "T0ACME"),
    )
    .sign_at(SECRET, ts + 2);
    assert_eq!(send(gw, &req).status, 200);
    assert_revoked(&rig, KEY);
    assert_revoked(&rig, ANY_TEAM_KEY);
}

// === reply_scope ===

fn reply_policy(bot: &MockBot) -> String {
    format!(
        r#"version: 1
{head}routes:
{route}bots:
{helpdesk}    app: helpdesk
    methods: [chat.postMessage, chat.update, conversations.info]
    reply_scope: 10m
"#,
        head = helpdesk_to("HELPDESK_SECRET", "bot", bot.addr()),
        route = policy::route("helpdesk", "/slack/events", "helpdesk", "bot"),
        helpdesk = policy::bot("helpdesk"),
    )
}

/// A gateway on [`reply_policy`] in front of `slack`, with bot `helpdesk`'s credentials.
fn reply_gateway(bot: &MockBot, slack: &SlackApi, clock: &Arc<FakeClock>) -> TestGatewayBuilder {
    TestGatewayBuilder::new(&reply_policy(bot))
        .secret("HELPDESK_SECRET", SECRET)
        .bot("helpdesk", KEY, TOKEN)
        .fake_clock(clock)
        .slack(slack)
}

fn call(gw: &TestGateway, method: &str, body: &str) -> Response {
    post_json(gw, KEY, method, body)
}

#[test]
fn reply_scope_allows_chat_writes_only_into_channels_seen_inbound_within_the_window() {
    let slack = SlackApi::builder()
        .token(TOKEN, "T0ACME", &["chat:write", "channels:read"])
        .start();
    let bot = MockBot::start();
    let clock = Arc::new(FakeClock::at(NOW));
    let gw = reply_gateway(&bot, &slack, &clock).start();
    let help = r#"{"channel":"C0HELP","text":"on it"}"#;
    let denied = |r: &Response, channel: &str| {
        assert_eq!(r.status, 200);
        assert_eq!(
            r.json()["error"],
            "channel_denied",
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let mut rec = None;
        wait_until(Duration::from_secs(5), || {
            rec = gw
                .audit_raw()
                .iter()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .rfind(|r| r["direction"] == "egress");
            rec.as_ref()
                .is_some_and(|r| r["channel_id"] == channel && r["reason"] == "channel_denied")
        });
        let rec = rec.unwrap();
        assert_eq!(rec["rule"], "reply_scope", "{rec}");
        assert_eq!(rec["channel_id"], channel);
    };

    // A channel that never sent the app anything.
    denied(&call(&gw, "chat.postMessage", help), "C0HELP");
    // An unsigned mention from C0HELP does not open it.
    let unsigned = SignedRequest::fixture("/slack/events", "event_app_mention.json");
    assert_eq!(send(&gw, &unsigned).status, 401);
    denied(&call(&gw, "chat.postMessage", help), "C0HELP");
    assert_eq!(slack.count(), 0);

    // A verified mention from C0HELP: replies go there for 10 minutes.
    let mention = SignedRequest::fixture("/slack/events", "event_app_mention.json")
        .sign_at(SECRET, NOW as i64);
    assert_eq!(send(&gw, &mention).status, 200);
    let r = call(&gw, "chat.postMessage", help);
    assert_eq!(r.json()["ok"], true, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(slack.count(), 1);
    // Not into another channel, and not a write naming no channel.
    denied(
        &call(&gw, "chat.postMessage", r#"{"channel":"C0OPS","text":"x"}"#),
        "C0OPS",
    );
    let r = call(&gw, "chat.update", r#"{"ts":"1.2","text":"x"}"#);
    assert_eq!(r.json()["error"], "channel_denied");
    // Methods other than chat writes are not scoped.
    let r = call(&gw, "conversations.info", r#"{"channel":"C0OPS"}"#);
    assert_eq!(r.json()["ok"], true, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(slack.count(), 2);

    clock.advance(Duration::from_secs(9 * 60 + 59));
    let r = call(&gw, "chat.postMessage", help);
    assert_eq!(r.json()["ok"], true);
    assert_eq!(slack.count(), 3);
    // After the window: denied again.
    clock.advance(Duration::from_secs(2));
    denied(&call(&gw, "chat.postMessage", help), "C0HELP");
    assert_eq!(slack.count(), 3);
}

// === shared through Redis ===

#[test]
fn two_replicas_on_one_redis_share_reply_windows_and_revocations() {
    let redis = Redis::start();
    let slack = SlackApi::builder()
        .token(TOKEN, "T0ACME", &["chat:write"])
        .start();
    let bot = MockBot::start();
    let clock = Arc::new(FakeClock::at(NOW));
    let replica = || {
        reply_gateway(&bot, &slack, &clock)
            .config(&format!(
                "state:\n  backend: redis\n  redis: {{ url: \"redis://{}\", timeout: 1s }}\n",
                redis.addr
            ))
            .start()
    };
    let (a, b) = (replica(), replica());
    let help = r#"{"channel":"C0HELP","text":"on it"}"#;
    assert_eq!(
        call(&b, "chat.postMessage", help).json()["error"],
        "channel_denied"
    );

    // A verified mention reaches replica a; replica b may then reply there, not elsewhere.
    let mention = SignedRequest::fixture("/slack/events", "event_app_mention.json")
        .sign_at(SECRET, NOW as i64);
    assert_eq!(send(&a, &mention).status, 200);
    assert!(wait_until(Duration::from_secs(5), || call(
        &b,
        "chat.postMessage",
        help
    )
    .json()["ok"]
        == true));
    let r = call(&b, "chat.postMessage", r#"{"channel":"C0OPS","text":"x"}"#);
    assert_eq!(r.json()["error"], "channel_denied");
    // The shared window ends when the local one would.
    clock.advance(Duration::from_secs(10 * 60 + 1));
    assert_eq!(
        call(&b, "chat.postMessage", help).json()["error"],
        "channel_denied"
    );
    let before = slack.count();

    // A verified tokens_revoked on replica a stops the bot's calls on replica b too.
    let revoked = SignedRequest::new("/slack/events", body("event_tokens_revoked.json", "T0ACME"))
        .sign_at(SECRET, NOW as i64 + 601);
    assert_eq!(send(&a, &revoked).status, 200);
    assert!(wait_until(Duration::from_secs(10), || status_token_state(
        &b, "helpdesk"
    ) == "revoked"));
    let r = call(&b, "conversations.info", r#"{"channel":"C0HELP"}"#);
    assert_eq!(r.json()["error"], "token_revoked");
    assert_eq!(slack.count(), before, "a revoked bot's call reached Slack");
}
