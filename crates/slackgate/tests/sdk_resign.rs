//! A real Bolt for JavaScript app in HTTP mode (`tests/sdk/node/bolt_resign.js`) as the bot
//! behind a route with `resign`: its `signingSecret` is the route's resign secret, not
//! Slack's. A request Slack signed reaches its handlers through the gateway (Bolt's own
//! receiver verified the gateway's signature), with the command's response URL and the
//! workflow step's token taken into custody; the same request sent straight to the bot,
//! signed with Slack's secret, is refused by Bolt (401) and runs nothing.
//!
//! The same app with the gateway's Socket Mode bridge in front (the testkit's Socket Mode
//! stand-in as Slack): each envelope reaches Bolt's handlers as the request Slack would have
//! POSTed, signed with the resign secret; Bolt's acks (the command's reply, the view's
//! `response_action`) come back as the envelopes' ack payloads; a denied envelope is acked
//! and runs nothing.
//!
//! Needs `node` with `tests/sdk/node/node_modules` (`npm ci` there; scripts/deps.sh does
//! it). A missing interpreter or package fails the test with a message saying so; it never
//! skips. `SLACKGATE_NODE` overrides the interpreter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;
use serde_json::Value;
use slackgate_testkit::policy::helpdesk_to;
use slackgate_testkit::{
    fixture, free_port, wait_until, Client, SignedRequest, SocketModeStandIn, TestGateway,
    TestGatewayBuilder,
};

/// The app's signing secret: only Slack and the gateway hold it.
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5-bolt-js";
/// The route's resign secret: what the Bolt app verifies with.
const BOT_SECRET: &str = "b0lt-js-0wn-5ecret-never-slacks";
const PUBLIC_URL: &str = "http://slackgate-egress.bots.svc:8081/";

fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/node")
}

/// The Bolt app: its process and the JSON lines it prints.
struct Bolt {
    child: Child,
    lines: mpsc::Receiver<Value>,
    port: u16,
}

impl Drop for Bolt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bolt {
    fn start() -> Bolt {
        let node = std::env::var("SLACKGATE_NODE").unwrap_or_else(|_| "node".to_owned());
        assert!(
            node_dir()
                .join("node_modules/@slack/bolt/package.json")
                .exists(),
            "tests/sdk/node/node_modules has no @slack/bolt: run scripts/deps.sh (npm ci in crates/slackgate/tests/sdk/node)"
        );
        let mut child = Command::new(&node)
            .arg(node_dir().join("bolt_resign.js"))
            .current_dir(node_dir())
            .env("BOLT_SIGNING_SECRET", BOT_SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{node}` ({e}): scripts/deps.sh installs Node"));
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line).unwrap_or_else(|_| Value::String(line.clone()));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        let mut bolt = Bolt {
            child,
            lines,
            port: 0,
        };
        let first = bolt.next_line(Duration::from_secs(30));
        bolt.port = first["listening"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("the Bolt app did not start: {first}"));
        bolt
    }

    /// The next line the app prints, waiting at most `limit`.
    fn next_line(&self, limit: Duration) -> Value {
        self.lines
            .recv_timeout(limit)
            .unwrap_or_else(|e| panic!("the Bolt app printed nothing within {limit:?}: {e}"))
    }

    /// The next handler line (the Bolt app prints nothing else after starting).
    fn handled(&self) -> Value {
        let v = self.next_line(Duration::from_secs(20));
        assert!(v["handler"].is_string(), "not a handler line: {v}");
        v
    }
}

/// The policy: one route, `/slack/events`, to the Bolt app, with `resign` and custody;
/// `app_extra` is added to the app `helpdesk` (indented four spaces) and `route_extra` to
/// the route.
fn policy(bolt: &Bolt, app_extra: &str, route_extra: &str) -> String {
    let head = helpdesk_to(
        "SLACK_SIGNING_SECRET",
        "bolt",
        format!("127.0.0.1:{}", bolt.port),
    )
    .replacen("upstreams:", &format!("{app_extra}upstreams:"), 1);
    format!(
        "version: 1\n{head}bots:\n  helpdesk:\n    app: helpdesk\n    key: {{ env: GATEWAY_KEY }}\n    token: {{ env: BOT_TOKEN }}\n    methods: [chat.postMessage]\nroutes:\n  - name: bolt\n    path: /slack/events\n    app: helpdesk\n    upstream: bolt\n    resign: {{ env: BOT_SIGNING_SECRET }}\n    bot: helpdesk\n    response_urls: custody\n    workflow_tokens: custody\n{route_extra}",
    )
}

fn builder(policy: &str) -> TestGatewayBuilder {
    TestGatewayBuilder::new(policy)
        .secret("SLACK_SIGNING_SECRET", SLACK_SECRET)
        .secret("BOT_SIGNING_SECRET", BOT_SECRET)
        .secret("GATEWAY_KEY", "gk_boltjs_6f1d9a3c7e5b4d2a8c0e")
        .secret("BOT_TOKEN", "xoxb-1234-5678-boltjs0real0token")
}

fn gateway(bolt: &Bolt) -> TestGateway {
    builder(&policy(bolt, "", ""))
        .config(&format!(
            "egress:\n  listen: {{ addr: {} }}\n  slack_api: http://127.0.0.1:9/api/\n  public_url: {PUBLIC_URL}\n",
            free_port()
        ))
        .start()
}

#[test]
fn bolt_js_verifies_the_gateway_s_signature_and_refuses_slack_s() {
    let bolt = Bolt::start();
    let gw = gateway(&bolt);
    let through = gw.client();

    // An event Slack signed, through the gateway: Bolt verified the gateway's signature
    // with the resign secret and ran its handler.
    let event =
        SignedRequest::fixture("/slack/events", "event_app_mention.json").sign(SLACK_SECRET);
    let r = through.send(&event).unwrap();
    assert_eq!(r.status, 200, "{:?}", r.reason());
    let got = bolt.handled();
    assert_eq!(got["handler"], "app_mention", "{got}");
    assert_eq!(got["event_id"], "Ev0APPMENTION1");

    // A command: the handler's response_url is the gateway's capability, not Slack's.
    let command = SignedRequest::fixture("/slack/events", "command_ticket.form").sign(SLACK_SECRET);
    assert_eq!(through.send(&command).unwrap().status, 200);
    let got = bolt.handled();
    assert_eq!(got["handler"], "command", "{got}");
    let url = got["response_url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{PUBLIC_URL}respond/")), "{url}");

    // A custom workflow step: Bolt's function handler gets the capability key as its
    // token, bound to the execution.
    let step =
        SignedRequest::fixture("/slack/events", "event_function_executed.json").sign(SLACK_SECRET);
    assert_eq!(through.send(&step).unwrap().status, 200);
    let got = bolt.handled();
    assert_eq!(got["handler"], "function", "{got}");
    assert!(got["token"].as_str().unwrap().starts_with("sgw-"), "{got}");
    assert_eq!(got["execution"], "Fx0EXEC0001");

    // Slack's own signature, straight to the bot: Bolt refuses it and runs nothing.
    let direct = Client::plain(format!("127.0.0.1:{}", bolt.port).parse().unwrap());
    let fresh = SignedRequest::fixture("/slack/events", "event_app_mention.json")
        .sign_at(SLACK_SECRET, slackgate_testkit::now_unix() - 1);
    let r = direct.send(&fresh).unwrap();
    assert_eq!(r.status, 401, "Bolt must refuse Slack's signature");
    // The next handler line is the next request through the gateway: the refused one ran
    // nothing.
    let again = SignedRequest::fixture("/slack/events", "command_ticket.form")
        .sign_at(SLACK_SECRET, slackgate_testkit::now_unix() - 120);
    assert_eq!(through.send(&again).unwrap().status, 200);
    assert_eq!(bolt.handled()["handler"], "command");

    // Nothing of Slack's reached the audit.
    for line in gw.audit_raw() {
        assert!(
            !line.contains("hooks.slack.com") && !line.contains("xwfp-"),
            "{line}"
        );
    }
}

#[test]
fn socket_mode_envelopes_reach_bolt_js_signed_with_the_resign_secret() {
    const APP_TOKEN: &str = "xapp-1-A0HELPDESK-1-boltjs0socket0token";
    let bolt = Bolt::start();
    let slack = SocketModeStandIn::start(APP_TOKEN);
    let socket = "    socket_mode:\n      app_token: { env: HELPDESK_APP_TOKEN }\n      paths: { events_api: /slack/events, slash_commands: /slack/events, interactive: /slack/events }\n";
    let gw = builder(&policy(&bolt, socket, "    deny: { users: [U0EVIL] }\n"))
        .secret("HELPDESK_APP_TOKEN", APP_TOKEN)
        .egress(&slack.url(), Some(slack.ca_file()))
        .egress_public_url()
        .start();
    let limit = Duration::from_secs(15);
    assert!(wait_until(limit, || slack.live_connections() == 1));
    let respond = format!("http://{}/respond/", gw.egress_addr.unwrap());
    let messages: Value = serde_json::from_slice(&fixture("socket_mode.json")).unwrap();
    let ack_of = |id: &str| {
        assert!(
            wait_until(limit, || slack.acks_of(id).len() == 1),
            "{id} acked once: {:?}",
            slack.acks()
        );
        slack.acks_of(id).remove(0).payload
    };

    // An event: Bolt verified the bridge's signature with the resign secret; no payload.
    slack.send(&messages["envelope_events_api"]).unwrap();
    let got = bolt.handled();
    assert_eq!(
        (got["handler"].as_str(), got["event_id"].as_str()),
        (Some("app_mention"), Some("Ev0APPMENTION1")),
        "{got}"
    );
    assert_eq!(ack_of(envelope_id(&messages["envelope_events_api"])), None);

    // A command: Bolt's ack({text}) is the envelope's ack payload, and the handler's
    // response_url is the gateway's capability.
    slack.send(&messages["envelope_slash_commands"]).unwrap();
    let got = bolt.handled();
    assert_eq!(got["handler"], "command", "{got}");
    assert!(
        got["response_url"].as_str().unwrap().starts_with(&respond),
        "{got}"
    );
    assert_eq!(
        ack_of(envelope_id(&messages["envelope_slash_commands"])),
        Some(json!({"text": "ticket noted"}))
    );

    // block_actions, as the payload= form Bolt parses.
    slack.send(&messages["envelope_interactive"]).unwrap();
    let got = bolt.handled();
    assert_eq!(
        (got["handler"].as_str(), got["value"].as_str()),
        (Some("action"), Some("T-42")),
        "{got}"
    );
    assert!(
        got["response_url"].as_str().unwrap().starts_with(&respond),
        "{got}"
    );
    assert_eq!(ack_of(envelope_id(&messages["envelope_interactive"])), None);

    // A view submission: Bolt's response_action is the ack payload.
    let view = &messages["envelope_view_submission"];
    slack.send(view).unwrap();
    assert_eq!(bolt.handled()["handler"], "view");
    assert_eq!(
        ack_of(envelope_id(view)),
        Some(json!({"response_action": "errors", "errors": {"title": "too short"}}))
    );

    // A denied envelope is acked without payload and runs nothing: the next handler line
    // is the next allowed envelope's.
    let mut denied = messages["envelope_events_api"].clone();
    denied["envelope_id"] = json!("env-boltjs-denied");
    denied["payload"]["event_id"] = json!("Ev0DENIED");
    denied["payload"]["event"]["user"] = json!("U0EVIL");
    slack.send(&denied).unwrap();
    assert_eq!(ack_of("env-boltjs-denied"), None);
    let mut after = messages["envelope_events_api"].clone();
    after["envelope_id"] = json!("env-boltjs-after");
    after["payload"]["event_id"] = json!("Ev0AFTER");
    slack.send(&after).unwrap();
    assert_eq!(
        bolt.handled()["event_id"],
        "Ev0AFTER",
        "the denied one ran nothing"
    );
    ack_of("env-boltjs-after");
    gw.audit_nth(6);
    let audit: Vec<Value> = gw
        .audit_raw()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(audit.iter().all(|a| a["source"] == "socket"), "{audit:?}");
    let denied: Vec<&Value> = audit.iter().filter(|a| a["reason"] != "allowed").collect();
    assert_eq!(denied.len(), 1, "{audit:?}");
    assert_eq!(denied[0]["event_id"], "Ev0DENIED");
    assert!(!gw.audit_raw().join("\n").contains("xapp-"));
}

/// A fixture envelope's `envelope_id`.
fn envelope_id(envelope: &Value) -> &str {
    envelope["envelope_id"].as_str().unwrap()
}
