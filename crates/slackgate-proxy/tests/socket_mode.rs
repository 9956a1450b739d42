//! The Socket Mode bridge end to end, against the testkit's Socket Mode stand-in (HTTPS
//! `apps.connections.open` + WSS) and the recording mock bot: each envelope of the fixture
//! reaches the bot as the request Slack would have POSTed, signed with the app's secret,
//! through the route's whole pipeline, and is acked exactly as the HTTP path would have
//! answered; duplicates reach the bot once; a bot failure is not acked; `refresh_requested`
//! swaps connections without losing an envelope; `link_disabled` and a bad token stop the
//! bridge. The app token travels only in `apps.connections.open`'s `Authorization`.
//!
//! Waits poll (acks, the bot's requests, metrics, `/status`); nothing sleeps for readiness.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{json, Value};
use slackgate_testkit::creds::SIGNING_SECRET as SECRET;
use slackgate_testkit::{
    fixture, wait_until, BotBehavior, MockBot, Recorded, Signer, SocketModeStandIn, TestGateway,
    TestGatewayBuilder,
};

const APP_TOKEN: &str = "xapp-1-A0HELPDESK-1111-realapptoken0secret";

/// Every log line of this test process (info and above), to show the token is in none.
static LOGS: parking_lot::Mutex<Vec<String>> = parking_lot::Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        LOGS.lock().push(line);
    }
    fn flush(&self) {}
}

fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = log::set_logger(&Capture);
        log::set_max_level(log::LevelFilter::Info);
    });
}

fn logs_mention(needle: &str) -> bool {
    LOGS.lock().iter().any(|l| l.contains(needle))
}
const WAIT: Duration = Duration::from_secs(15);

/// The fixture's messages by name.
fn messages() -> Value {
    serde_json::from_slice(&fixture("socket_mode.json")).unwrap()
}

/// The fixture's envelope `name` with its `envelope_id` set to `id`.
fn envelope(name: &str, id: &str) -> Value {
    let mut e = messages()[name].clone();
    e["envelope_id"] = json!(id);
    e
}

fn policy(bot: &MockBot, connections: u8, extra_commands: &str) -> String {
    format!(
        r#"version: 1
apps:
  helpdesk:
    signing_secrets: [{{ id: current, env: HELPDESK_SECRET }}]
    socket_mode:
      app_token: {{ env: HELPDESK_APP_TOKEN }}
      connections: {connections}
      paths:
        events_api: /slack/events
        slash_commands: /slack/commands
        interactive: /slack/interactive
upstreams:
  bot: {{ targets: ["{bot}"] }}
routes:
  - {{ name: events, path: /slack/events, app: helpdesk, upstream: bot }}
  - name: commands
    path: /slack/commands
    app: helpdesk
    upstream: bot
{extra_commands}
  - {{ name: interactive, path: /slack/interactive, app: helpdesk, upstream: bot }}
"#,
        bot = bot.addr()
    )
}

struct Rig {
    slack: SocketModeStandIn,
    bot: MockBot,
    gw: TestGateway,
}

fn rig_with(connections: u8, extra_commands: &str, token: &str) -> Rig {
    capture_logs();
    let slack = SocketModeStandIn::start(APP_TOKEN);
    let bot = MockBot::start();
    let gw = TestGatewayBuilder::new(&policy(&bot, connections, extra_commands))
        .secret("HELPDESK_SECRET", SECRET)
        .secret("HELPDESK_APP_TOKEN", token)
        .egress(&slack.url(), Some(slack.ca_file()))
        .start();
    Rig { slack, bot, gw }
}

/// A rig whose bridge holds `connections` open connections.
fn rig(connections: u8, extra_commands: &str) -> Rig {
    let r = rig_with(connections, extra_commands, APP_TOKEN);
    assert!(
        wait_until(WAIT, || r.slack.live_connections()
            == usize::from(connections)),
        "the bridge opens its connections"
    );
    r
}

fn wait_acks(
    slack: &SocketModeStandIn,
    id: &str,
    n: usize,
) -> Vec<slackgate_testkit::socket_mode::Ack> {
    assert!(
        wait_until(WAIT, || slack.acks_of(id).len() >= n),
        "{n} ack(s) of {id}: {:?}",
        slack.acks()
    );
    slack.acks_of(id)
}

fn socket_status(gw: &TestGateway) -> Value {
    gw.admin_client().get("/status").unwrap().json()["socket_mode"]["helpdesk"].clone()
}

/// The request carries a signature of its body the app's secret verifies, made now.
fn assert_signed(r: &Recorded) {
    let ts = r.header("x-slack-request-timestamp").expect("timestamp");
    let sig = r.header("x-slack-signature").expect("signature");
    assert_eq!(sig, Signer::new(SECRET).sign(ts, &r.body));
    let age = slackgate_testkit::now_unix() - ts.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "fresh timestamp");
}

/// The app token appears in no audit record, metric, status, bot request or API request
/// other than as `apps.connections.open`'s `Authorization`.
fn assert_token_contained(r: &Rig) {
    let opens = r.slack.opens();
    assert!(!opens.is_empty());
    for o in &opens {
        assert_eq!(o.as_deref(), Some(format!("Bearer {APP_TOKEN}").as_str()));
    }
    let raw = String::from_utf8_lossy(&r.slack.raw_requests()).to_string();
    assert_eq!(
        raw.matches(APP_TOKEN).count(),
        opens.len(),
        "only in Authorization"
    );
    assert_eq!(
        raw.matches(&format!("Authorization: Bearer {APP_TOKEN}\r\n"))
            .count(),
        opens.len()
    );
    assert!(!r.gw.audit_raw().join("\n").contains("xapp-"));
    assert!(!r.gw.metrics().contains("xapp-"));
    let status = r.gw.admin_client().get("/status").unwrap().body;
    assert!(!String::from_utf8_lossy(&status).contains("xapp-"));
    for req in r.bot.requests() {
        let all = format!("{:?}{}", req.headers, String::from_utf8_lossy(&req.body));
        assert!(!all.contains("xapp-"));
    }
    assert!(!r
        .slack
        .acks()
        .iter()
        .any(|a| format!("{a:?}").contains("xapp-")));
}

#[test]
fn an_event_reaches_the_bot_signed_through_the_pipeline_and_is_acked() {
    let r = rig(1, "");
    let mut e = envelope("envelope_events_api", "env-event-1");
    e["retry_attempt"] = json!(1);
    e["retry_reason"] = json!("timeout");
    r.slack.send(&e).expect("a live connection");
    let acks = wait_acks(&r.slack, "env-event-1", 1);
    assert_eq!(acks[0].payload, None, "events accept no payload");

    let reqs = r.bot.requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(
        (req.method.as_str(), req.target.as_str()),
        ("POST", "/slack/events")
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body, messages()["envelope_events_api"]["payload"]);
    assert_signed(req);
    assert_eq!(req.header("x-slack-retry-num"), Some("1"));
    assert_eq!(req.header("x-slack-retry-reason"), Some("timeout"));
    assert_eq!(req.header("x-slackgate-secret-id"), Some("socket"));
    assert_eq!(req.header("x-slackgate-route"), Some("events"));

    let audit = r.gw.audit_nth(1);
    assert_eq!(audit["secret_id"], "socket");
    assert_eq!(audit["source"], "socket");
    assert_eq!(audit["route"], "events");
    assert_eq!(audit["event_id"], "Ev0APPMENTION1");
    assert_eq!(audit["upstream_status"], 200);
    assert_eq!(
        r.gw.metric(r#"slackgate_socket_envelopes_total{app="helpdesk",result="delivered",type="events_api"}"#),
        1.0
    );
    assert_eq!(
        r.gw.metric(r#"slackgate_socket_connections{app="helpdesk"}"#),
        1.0
    );
    let st = socket_status(&r.gw);
    assert_eq!(st["state"], "connected");
    assert_eq!(st["connections"], 1);
    assert_token_contained(&r);
}

#[test]
fn a_command_is_posted_as_its_form_and_the_reply_is_the_ack_payload() {
    let r = rig(1, "");
    r.bot.set_behavior(BotBehavior::Status(
        200,
        br#"{"text":"ticket noted"}"#.to_vec(),
    ));
    r.slack
        .send(&envelope("envelope_slash_commands", "env-cmd-1"))
        .unwrap();
    let acks = wait_acks(&r.slack, "env-cmd-1", 1);
    assert_eq!(
        acks[0].payload,
        Some(messages()["ack_with_payload"]["payload"].clone())
    );
    let req = &r.bot.requests()[0];
    assert_eq!(req.target, "/slack/commands");
    assert_eq!(
        req.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
    assert!(form.contains(&("command".to_owned(), "/ticket".to_owned())));
    assert!(form.contains(&("text".to_owned(), "printer on fire & smoke".to_owned())));
    assert_signed(req);
    assert_eq!(r.gw.audit_nth(1)["command"], "/ticket");
    assert_token_contained(&r);
}

#[test]
fn block_actions_arrive_as_a_payload_form() {
    let r = rig(1, "");
    r.slack
        .send(&envelope("envelope_interactive", "env-act-1"))
        .unwrap();
    let acks = wait_acks(&r.slack, "env-act-1", 1);
    assert_eq!(acks[0].payload, None);
    let req = &r.bot.requests()[0];
    assert_eq!(req.target, "/slack/interactive");
    let form: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
    assert_eq!(form.len(), 1);
    assert_eq!(form[0].0, "payload");
    let payload: Value = serde_json::from_str(&form[0].1).unwrap();
    assert_eq!(payload, messages()["envelope_interactive"]["payload"]);
    assert_signed(req);
}

#[test]
fn a_view_submission_response_action_is_the_ack_payload() {
    let r = rig(1, "");
    let answer = json!({"response_action": "errors", "errors": {"title": "too short"}});
    r.bot
        .set_behavior(BotBehavior::Status(200, answer.to_string().into_bytes()));
    r.slack
        .send(&envelope("envelope_view_submission", "env-view-1"))
        .unwrap();
    let acks = wait_acks(&r.slack, "env-view-1", 1);
    assert_eq!(acks[0].payload, Some(answer));
}

#[test]
fn a_policy_denial_is_acked_without_payload_and_never_reaches_the_bot() {
    let r = rig(1, "    allow: { commands: [/other] }");
    r.slack
        .send(&envelope("envelope_slash_commands", "env-denied-1"))
        .unwrap();
    let acks = wait_acks(&r.slack, "env-denied-1", 1);
    assert_eq!(acks[0].payload, None);
    assert!(r.bot.requests().is_empty(), "not forwarded");
    assert_eq!(r.bot.bytes_received(), 0);
    let audit = r.gw.audit_nth(1);
    assert_eq!(audit["reason"], "scope_denied");
    assert_eq!(audit["source"], "socket");
    assert_eq!(
        r.gw.metric(r#"slackgate_socket_envelopes_total{app="helpdesk",result="denied",type="slash_commands"}"#),
        1.0
    );
}

#[test]
fn a_duplicate_envelope_reaches_the_bot_once() {
    let r = rig(2, "");
    let e = envelope("envelope_events_api", "env-dup-1");
    r.slack.send(&e).unwrap();
    wait_acks(&r.slack, "env-dup-1", 1);
    // Slack redelivers it (on any connection): acked again, not delivered again.
    r.slack.send(&e).unwrap();
    wait_acks(&r.slack, "env-dup-1", 2);
    assert_eq!(r.bot.requests().len(), 1);
    assert_eq!(
        r.gw.metric(r#"slackgate_socket_envelopes_total{app="helpdesk",result="duplicate",type="events_api"}"#),
        1.0
    );
}

#[test]
fn a_bot_failure_is_not_acked_and_the_redelivery_goes_through() {
    let r = rig(1, "");
    r.bot
        .set_behavior(BotBehavior::Status(500, b"oops".to_vec()));
    let e = envelope("envelope_events_api", "env-500-1");
    r.slack.send(&e).unwrap();
    let failed =
        r#"slackgate_socket_envelopes_total{app="helpdesk",result="failed",type="events_api"}"#;
    assert!(wait_until(WAIT, || r.gw.metric(failed) == 1.0));
    assert_eq!(r.bot.requests().len(), 1);
    assert!(
        r.slack.acks_of("env-500-1").is_empty(),
        "not acked: Slack redelivers"
    );

    // The redelivery is not a duplicate: it reaches the bot, which now answers.
    r.bot.set_behavior(BotBehavior::Echo);
    let mut again = e.clone();
    again["retry_attempt"] = json!(1);
    again["retry_reason"] = json!("http_error");
    r.slack.send(&again).unwrap();
    wait_acks(&r.slack, "env-500-1", 1);
    let reqs = r.bot.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].header("x-slack-retry-num"), Some("1"));
    assert_eq!(reqs[1].header("x-slack-retry-reason"), Some("http_error"));
}

#[test]
fn refresh_requested_swaps_the_connection_without_losing_an_envelope() {
    let r = rig(1, "");
    let total = 60;
    let mut sent = 0;
    let mut swapped = false;
    while sent < total {
        if sent == 20 && !swapped {
            r.slack.disconnect("refresh_requested");
            swapped = true;
        }
        let e = envelope("envelope_events_api", &format!("env-swap-{sent}"));
        // While the old connection is leaving and the new one not yet up, Slack holds
        // the envelope; so does this test.
        if r.slack.send(&e).is_some() {
            sent += 1;
        } else {
            std::thread::yield_now();
        }
    }
    for i in 0..total {
        wait_acks(&r.slack, &format!("env-swap-{i}"), 1);
    }
    assert!(
        wait_until(WAIT, || r.slack.open_connections() == 1),
        "the old one closed"
    );
    assert_eq!(r.slack.connections_opened(), 2);
    assert_eq!(r.bot.requests().len(), total, "each delivered once");
    for i in 0..total {
        assert_eq!(r.slack.acks_of(&format!("env-swap-{i}")).len(), 1);
    }
    assert_eq!(
        r.gw.metric(
            r#"slackgate_socket_reconnects_total{app="helpdesk",reason="refresh_requested"}"#
        ),
        1.0
    );
    assert_token_contained(&r);
}

#[test]
fn link_disabled_stops_the_bridge_with_an_alert() {
    let r = rig(1, "");
    r.slack.disconnect("link_disabled");
    assert!(wait_until(WAIT, || socket_status(&r.gw)["state"] == "stopped"));
    assert_eq!(socket_status(&r.gw)["last_error"], "link_disabled");
    assert_eq!(
        r.gw.metric(r#"slackgate_socket_reconnects_total{app="helpdesk",reason="link_disabled"}"#),
        1.0
    );
    assert!(wait_until(WAIT, || r
        .gw
        .metric(r#"slackgate_socket_connections{app="helpdesk"}"#)
        == 0.0));
    assert_eq!(r.slack.opens().len(), 1, "no new connection");
    assert!(logs_mention("link_disabled"), "an alert in the log");
}

#[test]
fn a_bad_token_stops_the_bridge_instead_of_looping() {
    let r = rig_with(2, "", "xapp-1-A0HELPDESK-9999-wrongtoken");
    assert!(wait_until(WAIT, || socket_status(&r.gw)["state"] == "stopped"));
    assert_eq!(socket_status(&r.gw)["last_error"], "invalid_auth");
    let opens = r.slack.opens().len();
    assert!((1..=2).contains(&opens), "{opens} opens");
    assert_eq!(r.slack.connections_opened(), 0);
    assert!(!r.gw.audit_raw().join("\n").contains("wrongtoken"));
    assert!(!r.gw.metrics().contains("wrongtoken"));
    assert!(logs_mention("apps.connections.open answered invalid_auth"));
    assert!(!logs_mention("wrongtoken"));
}

#[test]
fn a_rate_limited_open_backs_off_and_then_connects() {
    let slack = SocketModeStandIn::start(APP_TOKEN);
    slack.rate_limit_next(1);
    let bot = MockBot::start();
    let gw = TestGatewayBuilder::new(&policy(&bot, 1, ""))
        .secret("HELPDESK_SECRET", SECRET)
        .secret("HELPDESK_APP_TOKEN", APP_TOKEN)
        .egress(&slack.url(), Some(slack.ca_file()))
        .start();
    assert!(wait_until(WAIT, || slack.live_connections() == 1));
    assert_eq!(slack.opens().len(), 2);
    assert_eq!(
        gw.metric(r#"slackgate_socket_reconnects_total{app="helpdesk",reason="rate_limited"}"#),
        1.0
    );
}

#[test]
fn a_warning_swap_under_a_steady_stream_loses_and_doubles_nothing() {
    let r = rig(2, "");
    let total = 200;
    std::thread::scope(|s| {
        let sender = s.spawn(|| {
            let mut sent = 0;
            while sent < total {
                let e = envelope("envelope_events_api", &format!("env-warn-{sent}"));
                if r.slack.send(&e).is_some() {
                    sent += 1;
                } else {
                    std::thread::yield_now();
                }
            }
        });
        assert!(wait_until(WAIT, || r.slack.acks().len() >= 50));
        r.slack.disconnect("warning");
        sender.join().unwrap();
    });
    for i in 0..total {
        wait_acks(&r.slack, &format!("env-warn-{i}"), 1);
    }
    // Both replaced (two open, four opened in all); the second replacement may still be
    // under way when the first is done.
    assert!(
        wait_until(WAIT, || r.slack.open_connections() == 2
            && r.slack.connections_opened() >= 4),
        "each replaced"
    );
    assert_eq!(r.slack.connections_opened(), 4, "each replaced once");
    assert_eq!(r.bot.requests().len(), total);
    assert_eq!(r.slack.acks().len(), total, "each acked once");
    assert!(wait_until(WAIT, || r.gw.metric(
        r#"slackgate_socket_reconnects_total{app="helpdesk",reason="warning"}"#
    ) == 2.0));
    assert!(wait_until(WAIT, || r
        .gw
        .metric(r#"slackgate_socket_connections{app="helpdesk"}"#)
        == 2.0));
}

#[test]
fn a_reload_that_changes_socket_mode_restarts_the_app_bridge() {
    let r = rig(1, "");
    r.gw.reload_policy(&policy(&r.bot, 2, ""));
    assert!(wait_until(WAIT, || r.slack.open_connections() == 2
        && r.slack.connections_opened() == 3));
    assert!(wait_until(WAIT, || socket_status(&r.gw)["connections"] == 2));
    assert_eq!(socket_status(&r.gw)["configured"], 2);
    assert_eq!(
        r.gw.metric(r#"slackgate_socket_connections{app="helpdesk"}"#),
        2.0
    );
    r.slack
        .send(&envelope("envelope_events_api", "env-after-reload"))
        .unwrap();
    wait_acks(&r.slack, "env-after-reload", 1);
}

#[test]
fn with_redis_a_duplicate_on_another_replica_reaches_the_bot_once() {
    capture_logs();
    let redis = slackgate_testkit::Redis::start();
    let slack = SocketModeStandIn::start(APP_TOKEN);
    let bot = MockBot::start();
    let replica = || {
        TestGatewayBuilder::new(&policy(&bot, 1, ""))
            .secret("HELPDESK_SECRET", SECRET)
            .secret("HELPDESK_APP_TOKEN", APP_TOKEN)
            .egress(&slack.url(), Some(slack.ca_file()))
            .config(&format!(
                "state: {{ backend: redis, redis: {{ url: \"redis://{}\", key_prefix: \"sock:\", timeout: 200ms }} }}",
                redis.addr
            ))
            .start()
    };
    let (a, b) = (replica(), replica());
    assert!(wait_until(WAIT, || slack.live_connections() == 2));
    let e = envelope("envelope_events_api", "env-replicas-1");
    assert!(slack.send_on(1, &e));
    wait_acks(&slack, "env-replicas-1", 1);
    // Slack redelivers it on the other replica's connection.
    assert!(slack.send_on(2, &e));
    let acks = wait_acks(&slack, "env-replicas-1", 2);
    assert_eq!(acks.iter().map(|a| a.conn).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(bot.requests().len(), 1, "delivered once");
    let duplicate =
        r#"slackgate_socket_envelopes_total{app="helpdesk",result="duplicate",type="events_api"}"#;
    assert_eq!(a.metric(duplicate) + b.metric(duplicate), 1.0);
}

#[test]
fn a_gracefully_stopping_gateway_acks_what_it_took_before_it_closes() {
    capture_logs();
    let slack = SocketModeStandIn::start(APP_TOKEN);
    let bot = MockBot::with(BotBehavior::Delay(Duration::from_millis(700)));
    let mut gw = TestGatewayBuilder::new(&policy(&bot, 1, ""))
        .secret("HELPDESK_SECRET", SECRET)
        .secret("HELPDESK_APP_TOKEN", APP_TOKEN)
        .egress(&slack.url(), Some(slack.ca_file()))
        .config("limits: { shutdown_grace: 2s }")
        .start();
    assert!(wait_until(WAIT, || slack.live_connections() == 1));
    slack
        .send(&envelope("envelope_events_api", "env-drain-1"))
        .unwrap();
    assert!(wait_until(WAIT, || bot.requests().len() == 1));
    // Like SIGTERM (and an upgrade's old process): the envelope in flight is acked, then
    // the connection closes.
    gw.running.take().unwrap().shutdown_graceful();
    assert_eq!(
        slack.acks_of("env-drain-1").len(),
        1,
        "acked before the close"
    );
    assert!(wait_until(WAIT, || slack.open_connections() == 0));
}

#[test]
fn too_many_websockets_replaces_the_connection_like_a_warning() {
    let r = rig(1, "");
    r.slack.disconnect("too_many_websockets");
    assert!(wait_until(WAIT, || r.slack.connections_opened() == 2
        && r.slack.open_connections() == 1
        && r.slack.live_connections() == 1));
    assert_eq!(
        r.gw.metric(
            r#"slackgate_socket_reconnects_total{app="helpdesk",reason="too_many_websockets"}"#
        ),
        1.0
    );
    r.slack
        .send(&envelope("envelope_events_api", "env-after-tmw"))
        .unwrap();
    wait_acks(&r.slack, "env-after-tmw", 1);
}
