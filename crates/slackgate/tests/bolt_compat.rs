//! Compatibility with a real Slack bot: Slack Bolt for Python (`tests/bolt/bot.py`) behind
//! the gateway, verifying every request's signature itself with the same signing secret.
//!
//! A 200 from the gateway proves the request passed the gateway *and* Bolt's own
//! verification (Bolt answers 401 otherwise, and the gateway passes the bot's status on);
//! the bot's `/ran` records prove each Bolt handler ran. Requests the gateway rejects must
//! never reach Bolt at all, which the bot's `/requests` log shows.
//!
//! Needs `python3` with `slack_bolt` (scripts/deps.sh installs it; CI runs that first). A
//! missing interpreter or package fails these tests with a message saying so; they never skip.
//! `SLACKGATE_PYTHON` overrides the interpreter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use slackgate_testkit::policy::{helpdesk_to, keys, route};
use slackgate_testkit::{
    fixture, now_unix, wait_until, Client, SignedRequest, TestGateway, TestGatewayBuilder,
};
use support::python::{python, require, PyServer};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5-bolt-compat";
const PATH: &str = "/slack/events";

fn bot_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bolt/bot.py")
}

/// The Bolt app in a child process, killed when dropped.
struct BoltBot {
    server: PyServer,
    addr: SocketAddr,
}

impl BoltBot {
    fn start(secret: &str) -> Self {
        require("slack_bolt");
        let mut cmd = Command::new(python());
        cmd.arg(bot_script())
            .args(["--port", "0", "--path", PATH])
            .env("SLACK_SIGNING_SECRET", secret);
        let server = PyServer::start(cmd, "bot.py", None);
        Self {
            addr: server.addr,
            server,
        }
    }

    fn client(&self) -> Client {
        self.server.client()
    }

    /// Handler records, in the order the handlers ran.
    fn ran(&self) -> Vec<Value> {
        self.server.records("/ran")
    }

    /// `{path, status, headers, body}` of every POST Bolt answered.
    fn requests(&self) -> Vec<Value> {
        self.server.records("/requests")
    }
}

fn policy(bot: SocketAddr) -> String {
    format!(
        "version: 1\n{head}routes:\n{route}{keys}",
        head = helpdesk_to("HELPDESK_SIGNING_SECRET", "bolt", bot),
        route = route("helpdesk", PATH, "helpdesk", "bolt"),
        keys = keys(
            r#"allow:
  teams: [T0ACME]
  channels: [C0HELP]
  events: [app_mention]
  commands: [/ticket]
  actions: ["ticket_*"]
deny:
  users: [U0BAD]"#
        )
    )
}

/// Bolt behind a gateway, both sharing one signing secret.
struct Rig {
    // Field order: the gateway stops before the bot does.
    gw: TestGateway,
    bot: BoltBot,
}

fn rig() -> Rig {
    let bot = BoltBot::start(SECRET);
    let gw = TestGatewayBuilder::new(&policy(bot.addr))
        .secret("HELPDESK_SIGNING_SECRET", SECRET)
        .start();
    Rig { gw, bot }
}

/// Sends `req` through the gateway and asserts both the gateway and Bolt answered 200.
fn send_allowed(rig: &Rig, req: &SignedRequest) {
    let resp = rig.gw.client().send(req).unwrap();
    assert_eq!(
        resp.status,
        200,
        "gateway answer (a 401 with Bolt's body means Bolt rejected the forwarded signature): {}",
        String::from_utf8_lossy(&resp.body)
    );
    let seen = rig.bot.requests();
    assert_eq!(seen.len(), 1, "Bolt answered exactly one request: {seen:?}");
    assert_eq!(seen[0]["path"], PATH);
    assert_eq!(
        seen[0]["status"], 200,
        "Bolt's own signature and timestamp verification passed"
    );
    let audit = rig.gw.audit_nth(1);
    assert_eq!(audit["reason"], "allowed");
    assert_eq!(audit["upstream_status"], 200);
}

fn only_record(rig: &Rig) -> Value {
    let ran = rig.bot.ran();
    assert_eq!(ran.len(), 1, "exactly one Bolt handler ran: {ran:?}");
    ran[0].clone()
}

#[test]
fn app_mention_event_reaches_bolt_handler() {
    let rig = rig();
    let req = SignedRequest::fixture(PATH, "event_app_mention.json").sign(SECRET);
    assert_eq!(req.content_type, "application/json");
    send_allowed(&rig, &req);
    let r = only_record(&rig);
    assert_eq!(r["handler"], "app_mention");
    assert_eq!(r["user"], "U0333");
    assert_eq!(r["channel"], "C0HELP");
    assert_eq!(r["text"], "<@U0BOT> open a ticket: printer on fire");
}

#[test]
fn ticket_command_reaches_bolt_handler() {
    let rig = rig();
    let req = SignedRequest::fixture(PATH, "command_ticket.form").sign(SECRET);
    assert_eq!(req.content_type, "application/x-www-form-urlencoded");
    send_allowed(&rig, &req);
    let r = only_record(&rig);
    assert_eq!(r["handler"], "ticket");
    assert_eq!(r["user"], "U0333");
    assert_eq!(r["team"], "T0ACME");
    // The form decoding survived the trip byte for byte ("+" and "%26").
    assert_eq!(r["text"], "printer on fire & smoke");
}

#[test]
fn ticket_close_block_action_reaches_bolt_handler() {
    let rig = rig();
    let req = SignedRequest::fixture(PATH, "block_actions.form").sign(SECRET);
    send_allowed(&rig, &req);
    let r = only_record(&rig);
    assert_eq!(r["handler"], "ticket_close");
    assert_eq!(r["user"], "U0333");
    assert_eq!(r["team"], "T0ACME");
    assert_eq!(r["channel"], "C0HELP");
    assert_eq!(r["api_app_id"], "A0HELPDESK");
    assert_eq!(r["value"], "T-42");
}

#[test]
fn three_kinds_in_a_row_reach_their_handlers() {
    // The three kinds back to back through one gateway: Bolt sees each once, in order.
    let rig = rig();
    let ts = now_unix();
    let client = rig.gw.client();
    for name in [
        "event_app_mention.json",
        "command_ticket.form",
        "block_actions.form",
    ] {
        let req = SignedRequest::fixture(PATH, name).sign_at(SECRET, ts);
        let resp = client.send(&req).unwrap();
        assert_eq!(
            resp.status,
            200,
            "{name}: {}",
            String::from_utf8_lossy(&resp.body)
        );
    }
    let handlers: Vec<_> = rig.bot.ran().iter().map(|r| r["handler"].clone()).collect();
    assert_eq!(handlers, ["app_mention", "ticket", "ticket_close"]);
    assert!(rig.bot.requests().iter().all(|r| r["status"] == 200));
}

#[test]
fn forged_requests_never_reach_bolt() {
    let rig = rig();
    let body = fixture("command_ticket.form");
    let forged = [
        (
            "wrong secret",
            SignedRequest::new(PATH, body.clone()).sign("not-the-signing-secret"),
            "bad_signature",
        ),
        (
            "tampered body",
            {
                let mut r = SignedRequest::new(PATH, body.clone()).sign(SECRET);
                r.body = String::from_utf8(body.clone())
                    .unwrap()
                    .replace("U0333", "U0111")
                    .into_bytes();
                r
            },
            "bad_signature",
        ),
        (
            "no signature",
            SignedRequest::new(PATH, body.clone()),
            "missing_signature",
        ),
        (
            "stale timestamp",
            SignedRequest::new(PATH, body.clone()).sign_at(SECRET, now_unix() - 3600),
            "stale_timestamp",
        ),
    ];
    for (what, req, reason) in &forged {
        let resp = rig.gw.client().send(req).unwrap();
        assert_eq!(resp.status, 401, "{what}");
        assert_eq!(resp.reason().as_deref(), Some(*reason), "{what}");
    }
    assert!(rig.bot.requests().is_empty(), "Bolt saw a forged request");
    assert!(
        rig.bot.ran().is_empty(),
        "a Bolt handler ran for a forged request"
    );

    // Control: Bolt's own verification is on, so the 200s above are meaningful.
    let direct = rig.bot.client().send(&forged[0].1).unwrap();
    assert_eq!(
        direct.status, 401,
        "Bolt must reject a forged request sent to it directly"
    );
    assert!(rig.bot.ran().is_empty());
}

#[test]
fn denied_and_replayed_requests_never_reach_bolt() {
    let rig = rig();
    let mention = String::from_utf8(fixture("event_app_mention.json")).unwrap();
    let bad_user = SignedRequest::new(PATH, mention.replace("U0333", "U0BAD")).sign(SECRET);
    let resp = rig.gw.client().send(&bad_user).unwrap();
    assert_eq!(resp.status, 403);
    assert_eq!(resp.reason().as_deref(), Some("scope_denied"));

    let ok = SignedRequest::fixture(PATH, "command_ticket.form").sign(SECRET);
    assert_eq!(rig.gw.client().send(&ok).unwrap().status, 200);
    let replay = rig.gw.client().send(&ok).unwrap();
    assert_eq!(replay.status, 401);
    assert_eq!(replay.reason().as_deref(), Some("replayed"));

    let seen = rig.bot.requests();
    assert_eq!(
        seen.len(),
        1,
        "only the allowed request reached Bolt: {seen:?}"
    );
    let handlers: Vec<_> = rig.bot.ran().iter().map(|r| r["handler"].clone()).collect();
    assert_eq!(handlers, ["ticket"]);
}

/// The same unchanged Bolt HTTP app behind the Socket Mode bridge: the envelopes of the
/// Socket Mode fixture reach its handlers through the route, signed so that Bolt's own
/// verification passes, and each is acked.
#[test]
fn socket_mode_envelopes_reach_bolt_handlers_signed() {
    const APP_TOKEN: &str = "xapp-1-A0HELPDESK-1-bolt0socket0token";
    let slack = slackgate_testkit::SocketModeStandIn::start(APP_TOKEN);
    let bot = BoltBot::start(SECRET);
    let socket = format!(
        "    socket_mode:\n      app_token: {{ env: HELPDESK_APP_TOKEN }}\n      paths: {{ events_api: {PATH}, slash_commands: {PATH}, interactive: {PATH} }}\nupstreams:"
    );
    let gw = TestGatewayBuilder::new(&policy(bot.addr).replacen("upstreams:", &socket, 1))
        .secret("HELPDESK_SIGNING_SECRET", SECRET)
        .secret("HELPDESK_APP_TOKEN", APP_TOKEN)
        .egress(&slack.url(), Some(slack.ca_file()))
        .start();
    assert!(wait_until(Duration::from_secs(15), || slack
        .live_connections()
        == 1));
    let messages: Value = serde_json::from_slice(&fixture("socket_mode.json")).unwrap();
    for name in [
        "envelope_events_api",
        "envelope_slash_commands",
        "envelope_interactive",
    ] {
        let id = messages[name]["envelope_id"].as_str().unwrap();
        slack.send(&messages[name]).unwrap();
        assert!(
            wait_until(Duration::from_secs(15), || slack.acks_of(id).len() == 1),
            "{name} acked"
        );
    }
    let seen = bot.requests();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for s in &seen {
        assert_eq!(
            s["status"], 200,
            "Bolt's own signature and timestamp verification passed"
        );
    }
    let handlers: Vec<Value> = bot.ran().iter().map(|r| r["handler"].clone()).collect();
    assert_eq!(handlers, ["app_mention", "ticket", "ticket_close"]);
    assert_eq!(gw.audit_nth(3)["source"], "socket");
}
