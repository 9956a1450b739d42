//! Compatibility of the egress door with the real Slack SDKs: Python's `slack_sdk`
//! (`tests/sdk/python_client.py`), Node's `@slack/web-api` (`tests/sdk/node/client.js`), and a
//! Bolt for Python app that answers an inbound event with `say()` (`tests/sdk/bolt_say.py`).
//!
//! Each SDK only changes its base URL to the gateway's egress listener and holds the gateway
//! key instead of its token. The Slack side is the testkit's Web API stand-in, which records
//! every request: allowed calls must reach it with the real token in `Authorization: Bearer`
//! and nowhere else, denied calls must not reach it at all, and each denial must surface as
//! the SDK's ordinary API error carrying the reason code. The scripts print what the SDK
//! handed back, one JSON line per call, and neither the key nor the token may appear in it,
//! nor in any audit line.
//!
//! Needs `python3` with `slack_bolt` (which brings `slack_sdk`) and `node` with
//! `tests/sdk/node/node_modules` (`npm ci` there); scripts/deps.sh installs both and CI runs it
//! first. A missing interpreter or package fails these tests with a message saying so; they
//! never skip. `SLACKGATE_PYTHON` and `SLACKGATE_NODE` override the interpreters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use slackgate_testkit::policy::{helpdesk_to, keys, route};
use slackgate_testkit::{
    accepted_scopes, free_port, wait_until, Client, Received, SignedRequest, SlackApi, TestGateway,
    TestGatewayBuilder,
};
use support::python::{python, require, PyServer};

/// The bot's gateway key: what the SDKs hold instead of the token.
const KEY: &str = "gk_sdkcompat_6f1d9a3c7e5b4d2a8c0e";
/// A well-formed key that no bot has.
const WRONG_KEY: &str = "gk_sdkcompat_0000ffff1111eeee2222";
/// The bot's real token: only the gateway and the stand-in know it.
const TOKEN: &str = "xoxb-1234-5678-sdkcompat0real0token";
const TEAM: &str = "T0ACME";
const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5-sdk-compat";
const PATH: &str = "/slack/events";
/// The message text the SDK clients post (audit lines must never show it).
const TEXT: &str = "printer on fire";
/// What bolt_say.py's handler says.
const REPLY: &str = "ticket T-42 opened";
/// How long one script may run.
const SCRIPT_LIMIT: Duration = Duration::from_secs(60);

// === Interpreters and scripts ===

fn node() -> String {
    std::env::var("SLACKGATE_NODE").unwrap_or_else(|_| "node".to_owned())
}

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

/// Fails (never skips) with an actionable message when Node or `@slack/web-api` is missing.
fn require_node_sdk() {
    let node = node();
    let dir = sdk_dir().join("node");
    let out = Command::new(&node)
        .args(["-e", "require('@slack/web-api')"])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{node}` ({e}): the SDK compatibility tests need Node.js 20 or \
                 later; install it with scripts/deps.sh (CI does)"
            )
        });
    assert!(
        out.status.success(),
        "`{node}` cannot load @slack/web-api from {}: run scripts/deps.sh (it runs `npm ci` \
         there); node said:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

// === The call plan, shared by both SDKs ===

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Good,
    Wrong,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// The gateway sends it on; the stand-in answers ok.
    Allowed,
    /// The gateway answers itself with this reason; the stand-in never sees it.
    Denied(&'static str),
    /// The gateway sends it on, and the stand-in answers 429 `ratelimited` (Retry-After 30).
    SlackLimited,
}

impl Expect {
    fn reaches_slack(self) -> bool {
        !matches!(self, Expect::Denied(_))
    }

    /// The audit `reason` of the call.
    fn audit_reason(self) -> &'static str {
        match self {
            Expect::Allowed | Expect::SlackLimited => "allowed",
            Expect::Denied(r) => r,
        }
    }

    fn is_429(self) -> bool {
        matches!(
            self,
            Expect::SlackLimited | Expect::Denied("rate_limited" | "slack_rate_limited")
        )
    }
}

#[derive(Clone)]
struct Call {
    id: &'static str,
    key: Key,
    method: &'static str,
    args: Value,
    expect: Expect,
}

impl Call {
    fn new(id: &'static str, key: Key, method: &'static str, args: Value, expect: Expect) -> Self {
        Call {
            id,
            key,
            method,
            args,
            expect,
        }
    }

    fn plan_line(&self) -> String {
        let key = match self.key {
            Key::Good => "good",
            Key::Wrong => "wrong",
        };
        let line = json!({"id": self.id, "key": key, "method": self.method, "args": self.args});
        format!("{line}\n")
    }
}

/// Seconds the stand-in asks for when it rate-limits `reactions.remove`.
const SLACK_RETRY_AFTER: u64 = 30;

/// One call of each shape: four allowed methods in both body encodings, then every denial,
/// then Slack's own 429 and the gateway's memory of it. Runs against a fresh gateway, in
/// order (the rate limit is one call per method per minute).
fn plan() -> Vec<Call> {
    let ts = "1764377000.000100";
    let call = Call::new;
    use Expect::{Allowed, Denied, SlackLimited};
    use Key::{Good, Wrong};
    vec![
        call(
            "post",
            Good,
            "chat.postMessage",
            json!({"channel": "C0HELP", "text": TEXT}),
            Allowed,
        ),
        call(
            "info",
            Good,
            "conversations.info",
            json!({"channel": "C0HELP"}),
            Allowed,
        ),
        call("auth", Good, "auth.test", json!({}), Allowed),
        call(
            "react",
            Good,
            "reactions.add",
            json!({"channel": "C0HELP", "timestamp": ts, "name": "eyes"}),
            Allowed,
        ),
        call(
            "wrong_key",
            Wrong,
            "chat.postMessage",
            json!({"channel": "C0HELP", "text": TEXT}),
            Denied("unknown_bot"),
        ),
        call(
            "unlisted_method",
            Good,
            "chat.delete",
            json!({"channel": "C0HELP", "ts": ts}),
            Denied("method_denied"),
        ),
        call(
            "revoke",
            Good,
            "auth.revoke",
            json!({}),
            Denied("method_denied"),
        ),
        call(
            "other_channel",
            Good,
            "chat.postMessage",
            json!({"channel": "C0OTHER", "text": TEXT}),
            Denied("channel_denied"),
        ),
        call(
            "username",
            Good,
            "chat.postMessage",
            json!({"channel": "C0HELP", "text": TEXT, "username": "The CEO"}),
            Denied("argument_denied"),
        ),
        call(
            "other_team",
            Good,
            "chat.postMessage",
            json!({"channel": "C0HELP", "text": TEXT, "team_id": "T0EVIL"}),
            Denied("team_denied"),
        ),
        call(
            "react_again",
            Good,
            "reactions.add",
            json!({"channel": "C0HELP", "timestamp": ts, "name": "fire"}),
            Denied("rate_limited"),
        ),
        call(
            "slack_429",
            Good,
            "reactions.remove",
            json!({"channel": "C0HELP", "timestamp": ts, "name": "eyes"}),
            SlackLimited,
        ),
        call(
            "after_slack_429",
            Good,
            "reactions.remove",
            json!({"channel": "C0HELP", "timestamp": ts, "name": "eyes"}),
            Denied("slack_rate_limited"),
        ),
    ]
}

// === The gateway and the stand-in ===

const BOT: &str = r#"bots:
  helpdesk:
    key: { env: HELPDESK_GATEWAY_KEY }
    token: { env: HELPDESK_BOT_TOKEN }
    team: T0ACME
    methods: [chat.postMessage, conversations.info, auth.test, "reactions.*"]
    channels: [C0HELP]
    deny_args: [username, icon_url, icon_emoji]
    rate_limits:
      - { per: method, rate: 1/min, burst: 1 }
"#;

/// The policy: the helpdesk bot, and when `bolt` is given an inbound route to it.
fn policy(bolt: Option<SocketAddr>) -> String {
    let inbound = match bolt {
        None => "routes: []\n".to_owned(),
        Some(bolt) => format!(
            "{head}routes:\n{route}{keys}",
            head = helpdesk_to("HELPDESK_SIGNING_SECRET", "bolt", bolt),
            route = route("helpdesk", PATH, "helpdesk", "bolt"),
            keys = keys("allow:\n  teams: [T0ACME]\n  channels: [C0HELP]\n  events: [app_mention]")
        ),
    };
    format!("version: 1\n{inbound}{BOT}")
}

/// The gateway with its egress door in front of the stand-in.
struct Rig {
    // Field order: the gateway stops before the stand-in does.
    gw: TestGateway,
    slack: SlackApi,
}

impl Rig {
    fn start(bolt: Option<SocketAddr>) -> Self {
        Self::with(
            &policy(bolt),
            &["chat:write", "channels:read", "reactions:write"],
        )
    }

    /// The gateway on `policy`, in front of a stand-in that grants the token `scopes`.
    fn with(policy: &str, scopes: &[&str]) -> Self {
        let slack = SlackApi::builder().token(TOKEN, TEAM, scopes).start();
        let gw = TestGatewayBuilder::new(policy)
            .secret("HELPDESK_GATEWAY_KEY", KEY)
            .secret("HELPDESK_BOT_TOKEN", TOKEN)
            .secret("HELPDESK_SIGNING_SECRET", SECRET)
            .egress(&slack.url(), Some(slack.ca_file()))
            .start();
        Rig { gw, slack }
    }

    fn egress(&self) -> String {
        self.gw.egress_addr.expect("egress listener").to_string()
    }

    /// The egress audit records, waiting for `n` of them.
    fn egress_audit(&self, n: usize) -> Vec<Value> {
        assert!(
            wait_until(Duration::from_secs(5), || self.egress_records().len() >= n),
            "wanted {n} egress audit records, have {:?}",
            self.egress_records()
        );
        self.egress_records()
    }

    fn egress_records(&self) -> Vec<Value> {
        self.gw
            .audit_raw()
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r["direction"] == "egress")
            .collect()
    }

    /// No audit line shows the key, the wrong key, the token, the signing secret or the text.
    fn assert_audit_clean(&self) {
        for line in self.gw.audit_raw() {
            for secret in [KEY, WRONG_KEY, TOKEN, SECRET, TEXT, REPLY] {
                assert!(
                    !line.contains(secret),
                    "an audit line shows {secret:?}: {line}"
                );
            }
        }
    }
}

/// `text` (what an SDK handed back, as JSON) shows neither the key nor the token.
fn assert_no_credentials(what: &str, text: &str) {
    for secret in [KEY, WRONG_KEY, TOKEN] {
        assert!(
            !text.contains(secret),
            "{what} shows {secret:?} to the bot: {text}"
        );
    }
}

/// The stand-in's requests are exactly the plan's calls that reach Slack, in order, each
/// with the real token in `Authorization: Bearer` and the key nowhere.
fn assert_slack_saw(rig: &Rig, plan: &[Call], encoding: &str) -> Vec<Received> {
    let got = rig.slack.received();
    let methods: Vec<&str> = got.iter().map(|r| r.method.as_str()).collect();
    let want: Vec<&str> = plan
        .iter()
        .filter(|c| c.expect.reaches_slack())
        .map(|c| c.method)
        .collect();
    assert_eq!(
        methods, want,
        "the stand-in got exactly the allowed calls (no denied one)"
    );
    let bearer = format!("Bearer {TOKEN}");
    for r in &got {
        let what = format!("{} to the stand-in", r.method);
        assert_eq!(r.header("authorization"), Some(bearer.as_str()), "{what}");
        assert_eq!(r.token.as_deref(), Some(TOKEN), "{what}");
        assert_eq!(
            r.headers
                .iter()
                .filter(|(n, _)| n == "authorization")
                .count(),
            1,
            "{what}: one Authorization header"
        );
        assert_eq!(
            r.arg("token"),
            None,
            "{what}: no token argument is forwarded"
        );
        for secret in [KEY, WRONG_KEY] {
            let raw =
                String::from_utf8_lossy(&r.head).into_owned() + &String::from_utf8_lossy(&r.body);
            assert!(!raw.contains(secret), "{what} carries the key: {raw}");
        }
        assert_eq!(r.http_method, "POST", "{what}");
        if r.method != "auth.test" {
            let ct = r.header("content-type").unwrap_or_default();
            let json_body = encoding == "json-post" && r.method == "chat.postMessage";
            let want_ct = if json_body {
                "application/json"
            } else {
                "application/x-www-form-urlencoded"
            };
            assert!(ct.starts_with(want_ct), "{what}: content-type {ct:?}");
        }
        if r.answer.status == 200 {
            assert!(r.answer.ok, "{what}: the stand-in answered {:?}", r.answer);
        }
    }
    got
}

/// The egress audit has one record per call, with the plan's reasons in order.
fn assert_audit_follows(rig: &Rig, plan: &[Call]) {
    let records = rig.egress_audit(plan.len());
    let reasons: Vec<&str> = records
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or("?"))
        .collect();
    let want: Vec<&str> = plan.iter().map(|c| c.expect.audit_reason()).collect();
    assert_eq!(reasons, want, "egress audit reasons, call by call");
    for (r, c) in records.iter().zip(plan) {
        // A call with an unknown key has no bot, but what it tried to call is recorded.
        let (bot, method) = match c.expect {
            Expect::Denied("unknown_bot") => (Value::Null, json!(c.method)),
            _ => (json!("helpdesk"), json!(c.method)),
        };
        assert_eq!(r["bot"], bot, "audit of {}", c.id);
        assert_eq!(r["method"], method, "audit of {}", c.id);
    }
    for (r, c) in records.iter().zip(plan) {
        match c.expect {
            Expect::Allowed => assert_eq!(r["upstream_status"], 200, "audit of {}", c.id),
            Expect::SlackLimited => {
                assert_eq!(r["upstream_status"], 429, "audit of {}", c.id);
                assert_eq!(r["slack_error"], "ratelimited", "audit of {}", c.id);
            }
            Expect::Denied(_) => assert_eq!(r["upstream_status"], Value::Null, "audit of {}", c.id),
        }
    }
    rig.assert_audit_clean();
}

// === Running a script ===

/// Runs `cmd` with the plan on stdin and returns its JSON lines, one per call.
fn run_plan(mut cmd: Command, what: &str, plan: &[Call]) -> Vec<Value> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let input: String = plan.iter().map(Call::plan_line).collect();
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input.as_bytes()).expect("writing the plan");
    drop(stdin);
    let mut stdout = child.stdout.take().expect("piped stdout");
    // Read on a thread so a hung interpreter cannot hang the test.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = tx.send(out);
    });
    let Ok(out) = rx.recv_timeout(SCRIPT_LIMIT) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} did not finish within {SCRIPT_LIMIT:?}; see its stderr above");
    };
    let status = child.wait().expect("waiting for the script");
    assert!(
        status.success(),
        "{what} failed ({status}); see its stderr above; stdout:\n{out}"
    );
    assert_no_credentials(what, &out);
    let lines: Vec<Value> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{what} printed a line that is not JSON ({e}): {l}"))
        })
        .collect();
    let ids: Vec<&str> = lines
        .iter()
        .map(|l| l["id"].as_str().unwrap_or("?"))
        .collect();
    let want: Vec<&str> = plan.iter().map(|c| c.id).collect();
    assert_eq!(
        ids, want,
        "{what} answered every call once, in order:\n{out}"
    );
    lines
}

fn script_env(cmd: &mut Command, rig: &Rig) {
    cmd.env("SLACKGATE_EGRESS", rig.egress())
        .env("SLACKGATE_KEY", KEY)
        .env("SLACKGATE_WRONG_KEY", WRONG_KEY);
}

/// The SDK a plan runs through.
#[derive(Clone, Copy, Debug)]
enum Sdk {
    Python,
    Node,
}

impl Sdk {
    fn require(self) {
        match self {
            Sdk::Python => require("slack_sdk, slack_bolt"),
            Sdk::Node => require_node_sdk(),
        }
    }

    /// Runs `plan` through this SDK's script against `rig`, checking each call's result.
    fn run(self, rig: &Rig, plan: &[Call]) -> Vec<Value> {
        let (mut cmd, what) = match self {
            Sdk::Python => {
                let mut cmd = Command::new(python());
                cmd.arg(sdk_dir().join("python_client.py"))
                    .env("PYTHONUNBUFFERED", "1");
                (cmd, "python_client.py")
            }
            Sdk::Node => {
                let mut cmd = Command::new(node());
                cmd.arg(sdk_dir().join("node/client.js"))
                    .current_dir(sdk_dir().join("node"));
                (cmd, "client.js")
            }
        };
        script_env(&mut cmd, rig);
        let lines = run_plan(cmd, what, plan);
        for (c, got) in plan.iter().zip(&lines) {
            match self {
                Sdk::Python => check_python(c, got),
                Sdk::Node => check_node(c, got),
            }
        }
        lines
    }

    /// How this SDK encodes a call's body (`chat.postMessage` is JSON in slack_sdk).
    fn encoding(self) -> &'static str {
        match self {
            Sdk::Python => "json-post",
            Sdk::Node => "form",
        }
    }
}

// === slack_sdk (Python) ===

/// What `slack_sdk` must have handed back for `c`.
fn check_python(c: &Call, got: &Value) {
    let what = format!("slack_sdk, call {} ({}): {got}", c.id, c.method);
    match c.expect {
        Expect::Allowed => {
            assert_eq!(got["exception"], Value::Null, "{what}");
            assert_eq!(got["ok"], true, "{what}");
            assert_eq!(got["status"], 200, "{what}");
            assert_eq!(got["reason"], Value::Null, "{what}");
        }
        Expect::Denied(reason) => {
            assert_eq!(got["exception"], "SlackApiError", "{what}");
            assert_eq!(got["ok"], false, "{what}");
            assert_eq!(got["error"], reason, "{what}: response[\"error\"]");
            assert_eq!(got["reason"], reason, "{what}: X-Slackgate-Reason");
            assert_eq!(got["data"], json!({"ok": false, "error": reason}), "{what}");
            if c.expect.is_429() {
                assert_eq!(got["status"], 429, "{what}");
                let secs: u64 = got["retry_after"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("{what}: no numeric Retry-After"));
                assert!((1..=60).contains(&secs), "{what}: Retry-After {secs}");
            } else {
                assert_eq!(got["status"], 200, "{what}");
            }
        }
        Expect::SlackLimited => {
            assert_eq!(got["exception"], "SlackApiError", "{what}");
            assert_eq!(got["status"], 429, "{what}");
            assert_eq!(got["error"], "ratelimited", "{what}: Slack's own error");
            assert_eq!(
                got["reason"],
                Value::Null,
                "{what}: not the gateway's answer"
            );
            assert_eq!(got["retry_after"], SLACK_RETRY_AFTER.to_string(), "{what}");
        }
    }
}

#[test]
fn python_slack_sdk_calls_through_the_door() {
    calls_through_the_door(Sdk::Python);
}

// === @slack/web-api (Node) ===

/// What `@slack/web-api` must have handed back for `c`.
fn check_node(c: &Call, got: &Value) {
    let what = format!("@slack/web-api, call {} ({}): {got}", c.id, c.method);
    match c.expect {
        Expect::Allowed => {
            assert_eq!(got["exception"], Value::Null, "{what}");
            assert_eq!(got["ok"], true, "{what}");
        }
        // The SDK rejects every 429 as a WebAPIRateLimitedError with Retry-After; it does not
        // read the body. Which 429 it was shows in the audit and the stand-in's log.
        _ if c.expect.is_429() => {
            assert_eq!(got["exception"], "WebAPIRateLimitedError", "{what}");
            assert_eq!(got["code"], "slack_webapi_rate_limited_error", "{what}");
            let secs = got["retry_after"]
                .as_u64()
                .unwrap_or_else(|| panic!("{what}: no retryAfter"));
            if c.expect == Expect::SlackLimited {
                assert_eq!(secs, SLACK_RETRY_AFTER, "{what}");
            } else {
                assert!((1..=60).contains(&secs), "{what}: retryAfter {secs}");
            }
        }
        Expect::Denied(reason) => {
            assert_eq!(got["exception"], "WebAPIPlatformError", "{what}");
            assert_eq!(got["code"], "slack_webapi_platform_error", "{what}");
            assert_eq!(got["error"], reason, "{what}: data.error");
            assert_eq!(got["data"]["ok"], false, "{what}");
            assert_eq!(got["data"]["error"], reason, "{what}");
        }
        Expect::SlackLimited => unreachable!("a 429"),
    }
}

#[test]
fn node_web_api_calls_through_the_door() {
    calls_through_the_door(Sdk::Node);
}

// === Both SDKs ===

/// The plan through `sdk`: allowed calls reach Slack with the token, each denial is the
/// SDK's ordinary API error, and no denied call reaches Slack.
fn calls_through_the_door(sdk: Sdk) {
    sdk.require();
    let started = Instant::now();
    let rig = Rig::start(None);
    rig.slack.rate_limit("reactions.remove", SLACK_RETRY_AFTER);
    let plan = plan();
    let lines = sdk.run(&rig, &plan);
    // What the SDK saw of the allowed calls is Slack's answer, relayed.
    assert_eq!(lines[0]["data"]["channel"], "C0HELP");
    assert_eq!(lines[0]["data"]["message"]["text"], TEXT);
    assert_eq!(lines[1]["data"]["channel"]["id"], "C0HELP");
    assert_eq!(lines[2]["data"]["team_id"], TEAM);
    assert_eq!(lines[2]["data"]["user_id"], "U0BOT");
    if let Sdk::Node = sdk {
        // The SDK read the scope headers of Slack's answer through the door.
        let scopes = &lines[0]["data"]["response_metadata"]["scopes"];
        assert!(
            scopes
                .as_array()
                .is_some_and(|s| s.iter().any(|x| x == "chat:write")),
            "x-oauth-scopes relayed to the SDK: {scopes}"
        );
    }

    let got = assert_slack_saw(&rig, &plan, sdk.encoding());
    assert_eq!(got[0].arg("channel").as_deref(), Some("C0HELP"));
    assert_eq!(got[0].arg("text").as_deref(), Some(TEXT));
    assert_audit_follows(&rig, &plan);
    eprintln!("{sdk:?} SDK through the door: {:?}", started.elapsed());
}

/// Call shapes beyond the plain ones: the key also given as a `token` argument (which
/// slack_sdk moves to the header and @slack/web-api sends in both places), non-ASCII text,
/// nested `channel` and `username` members (which are not arguments), booleans.
fn shapes() -> Vec<Call> {
    let metadata = json!({
        "event_type": "ticket_opened",
        "event_payload": {"channel": "C0OTHER", "username": "The CEO", "team_id": "T0EVIL"},
    });
    vec![
        Call {
            id: "post_token_arg",
            key: Key::Good,
            method: "chat.postMessage",
            args: json!({
                "token": KEY,
                "channel": "C0HELP",
                "text": UNICODE_TEXT,
                "metadata": metadata,
                "unfurl_links": false,
            }),
            expect: Expect::Allowed,
        },
        Call {
            id: "info_bool",
            key: Key::Good,
            method: "conversations.info",
            args: json!({"token": KEY, "channel": "C0HELP", "include_num_members": true}),
            expect: Expect::Allowed,
        },
        Call {
            id: "auth_token_only",
            key: Key::Good,
            method: "auth.test",
            args: json!({"token": KEY}),
            expect: Expect::Allowed,
        },
        Call {
            id: "wrong_token_arg",
            key: Key::Good,
            method: "reactions.add",
            args: json!({"token": WRONG_KEY, "channel": "C0HELP", "timestamp": "1.2", "name": "eyes"}),
            expect: Expect::Denied("unknown_bot"),
        },
    ]
}

/// Text with characters outside ASCII (JSON `\u` escapes in slack_sdk, percent-encoded UTF-8
/// in @slack/web-api).
const UNICODE_TEXT: &str = "printer on fire \u{1f525} \u{2014} caf\u{e9} & 100% <done>";

fn shapes_through_the_door(sdk: Sdk) {
    sdk.require();
    let rig = Rig::start(None);
    let plan = shapes();
    let lines = sdk.run(&rig, &plan);
    assert_eq!(lines[0]["data"]["message"]["text"], UNICODE_TEXT);
    let got = assert_slack_saw(&rig, &plan, sdk.encoding());
    let post = &got[0];
    assert_eq!(post.arg("channel").as_deref(), Some("C0HELP"));
    assert_eq!(post.arg("text").as_deref(), Some(UNICODE_TEXT));
    let metadata: Value = serde_json::from_str(&post.arg("metadata").unwrap()).unwrap();
    assert_eq!(metadata["event_payload"]["channel"], "C0OTHER");
    assert_eq!(
        got[1]
            .arg("include_num_members")
            .as_deref()
            .map(|v| v == "1" || v == "true"),
        Some(true)
    );
    assert_audit_follows(&rig, &plan);
}

#[test]
fn python_slack_sdk_call_shapes_through_the_door() {
    shapes_through_the_door(Sdk::Python);
}

#[test]
fn node_web_api_call_shapes_through_the_door() {
    shapes_through_the_door(Sdk::Node);
}

// === Bolt for Python, both doors ===

/// bolt_say.py in a child process, killed when dropped.
struct BoltApp {
    server: PyServer,
}

impl BoltApp {
    /// Starts the app on `addr` (the port the gateway's route names). Its constructor calls
    /// auth.test through the door before it listens.
    fn start(addr: SocketAddr, egress: &str) -> Self {
        let mut cmd = Command::new(python());
        cmd.arg(sdk_dir().join("bolt_say.py"))
            .args(["--port", &addr.port().to_string(), "--path", PATH])
            .env("SLACK_SIGNING_SECRET", SECRET)
            .env("SLACKGATE_KEY", KEY)
            .env("SLACKGATE_EGRESS", egress);
        Self {
            server: PyServer::start(cmd, "bolt_say.py", Some(addr)),
        }
    }

    fn client(&self) -> Client {
        self.server.client()
    }

    fn get_json(&self, path: &str) -> (String, Vec<Value>) {
        let r = self.client().get(path).expect("GET from bolt_say.py");
        assert_eq!(r.status, 200, "GET {path} from bolt_say.py");
        let text = String::from_utf8(r.body).expect("UTF-8 from bolt_say.py");
        let list = serde_json::from_str(&text).expect("JSON list from bolt_say.py");
        (text, list)
    }
}

#[test]
fn bolt_app_says_through_the_door() {
    require("slack_sdk, slack_bolt");
    let started = Instant::now();
    let bolt_addr = free_port();
    let rig = Rig::start(Some(bolt_addr));
    let app = BoltApp::start(bolt_addr, &rig.egress());

    // Bolt's token verification: auth.test, with the key, through the door.
    let startup = rig.slack.received();
    assert_eq!(
        startup
            .iter()
            .map(|r| r.method.as_str())
            .collect::<Vec<_>>(),
        ["auth.test"],
        "Bolt's startup calls"
    );

    let mention = SignedRequest::fixture(PATH, "event_app_mention.json").sign(SECRET);
    let resp = rig.gw.client().send(&mention).unwrap();
    assert_eq!(
        resp.status,
        200,
        "the gateway and Bolt took the event (Bolt answers 200 after its handler returned): {}",
        String::from_utf8_lossy(&resp.body)
    );
    let (_, requests) = app.get_json("/requests");
    assert_eq!(
        requests.len(),
        1,
        "Bolt got one inbound request: {requests:?}"
    );
    assert_eq!(
        requests[0]["status"], 200,
        "Bolt's own signature check passed"
    );

    let (ran_text, ran) = app.get_json("/ran");
    assert_no_credentials("Bolt's say()", &ran_text);
    assert_eq!(ran.len(), 1, "the app_mention handler ran once: {ran:?}");
    let said = &ran[0];
    assert_eq!(said["handler"], "app_mention_say");
    assert_eq!(said["exception"], Value::Null, "say() raised: {said}");
    assert_eq!(said["ok"], true, "{said}");
    assert_eq!(said["status"], 200, "{said}");
    assert_eq!(said["posted_channel"], "C0HELP", "{said}");
    assert_eq!(said["data"]["message"]["text"], REPLY, "{said}");

    let got = rig.slack.received();
    let methods: Vec<&str> = got.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(
        methods,
        ["auth.test", "chat.postMessage"],
        "the stand-in's calls"
    );
    let bearer = format!("Bearer {TOKEN}");
    for r in &got {
        assert_eq!(
            r.header("authorization"),
            Some(bearer.as_str()),
            "{}",
            r.method
        );
        assert_eq!(r.token.as_deref(), Some(TOKEN), "{}", r.method);
        assert_eq!(r.arg("token"), None, "{}: no token argument", r.method);
        let raw = String::from_utf8_lossy(&r.head).into_owned() + &String::from_utf8_lossy(&r.body);
        assert!(!raw.contains(KEY), "{} carries the key: {raw}", r.method);
    }
    let post = &got[1];
    assert_eq!(post.arg("channel").as_deref(), Some("C0HELP"));
    assert_eq!(post.arg("text").as_deref(), Some(REPLY));
    // Bolt's per-request client names the event's team, which the bot's `team` pin checks.
    assert_eq!(post.arg("team_id").as_deref(), Some(TEAM));
    assert!(
        post.header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json")),
        "say() posts JSON: {:?}",
        post.header("content-type")
    );

    // say() returned before Bolt answered, so the inbound record comes last.
    let audit = rig.gw.audit_lines(3);
    let summary: Vec<(String, String, String)> = audit
        .iter()
        .map(|r| {
            (
                r["direction"].as_str().unwrap_or("?").to_owned(),
                r["reason"].as_str().unwrap_or("?").to_owned(),
                r["method"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        summary,
        [
            s("egress", "allowed", "auth.test"),
            s("egress", "allowed", "chat.postMessage"),
            s("inbound", "allowed", ""),
        ],
        "audit records: {audit:?}"
    );
    assert_eq!(audit[1]["channel_id"], "C0HELP");
    rig.assert_audit_clean();
    eprintln!("Bolt say() through both doors: {:?}", started.elapsed());
}

// === Shadow mode, `slackgate suggest`, then enforce ===

/// The bot in shadow mode, with rules its calls break.
const SHADOW_POLICY: &str = r#"version: 1
routes: []
bots:
  helpdesk:
    mode: shadow
    key: { env: HELPDESK_GATEWAY_KEY }
    token: { env: HELPDESK_BOT_TOKEN }
    team: T0ACME
    methods: [chat.postMessage, conversations.info]
    channels: [C0HELP]
    deny_args: [username]
"#;

/// What the token is granted: `files:write` is never needed.
const SHADOW_GRANT: &[&str] = &[
    "chat:write",
    "channels:read",
    "reactions:write",
    "users:read",
    "files:write",
];

/// A call of the shadow plan, and its audit (reason, shadow) under the shadow policy.
fn shadow_plan() -> Vec<(Call, &'static str, bool)> {
    let ts = "1764377000.000100";
    let c = Call::new;
    use Expect::{Allowed, Denied};
    use Key::{Good, Wrong};
    vec![
        (
            c(
                "post",
                Good,
                "chat.postMessage",
                json!({"channel": "C0HELP", "text": TEXT}),
                Allowed,
            ),
            "allowed",
            false,
        ),
        (
            c(
                "info",
                Good,
                "conversations.info",
                json!({"channel": "C0HELP"}),
                Allowed,
            ),
            "allowed",
            false,
        ),
        (
            c(
                "post_ops",
                Good,
                "chat.postMessage",
                json!({"channel": "C0OPS", "text": TEXT}),
                Allowed,
            ),
            "channel_denied",
            true,
        ),
        (
            c(
                "username",
                Good,
                "chat.postMessage",
                json!({"channel": "C0HELP", "text": TEXT, "username": "Helpdesk"}),
                Allowed,
            ),
            "argument_denied",
            true,
        ),
        (
            c(
                "react",
                Good,
                "reactions.add",
                json!({"channel": "C0HELP", "timestamp": ts, "name": "eyes"}),
                Allowed,
            ),
            "method_denied",
            true,
        ),
        (
            c(
                "user",
                Good,
                "users.info",
                json!({"user": "U0333"}),
                Allowed,
            ),
            "method_denied",
            true,
        ),
        (
            c(
                "revoke",
                Good,
                "auth.revoke",
                json!({}),
                Denied("method_denied"),
            ),
            "method_denied",
            false,
        ),
        (
            c(
                "wrong_key",
                Wrong,
                "chat.postMessage",
                json!({"channel": "C0HELP", "text": TEXT}),
                Denied("unknown_bot"),
            ),
            "unknown_bot",
            false,
        ),
    ]
}

/// The calls the enforced suggestion must refuse: nothing like them was seen.
fn unseen_calls() -> Vec<Call> {
    let ts = "1764377000.000100";
    vec![
        Call {
            id: "post_new",
            key: Key::Good,
            method: "chat.postMessage",
            args: json!({"channel": "C0NEW", "text": TEXT}),
            expect: Expect::Denied("channel_denied"),
        },
        Call {
            id: "delete",
            key: Key::Good,
            method: "chat.delete",
            args: json!({"channel": "C0HELP", "ts": ts}),
            expect: Expect::Denied("method_denied"),
        },
        Call {
            id: "unreact",
            key: Key::Good,
            method: "reactions.remove",
            args: json!({"channel": "C0HELP", "timestamp": ts, "name": "eyes"}),
            expect: Expect::Denied("method_denied"),
        },
    ]
}

/// Runs `slackgate` with `args` and the bot's secrets in its environment: its stdout.
fn slackgate(args: &[&std::path::Path]) -> String {
    let args: Vec<&str> = args
        .iter()
        .map(|a| a.to_str().expect("a UTF-8 path"))
        .collect();
    let out = support::slackgate(
        &args,
        &[("HELPDESK_GATEWAY_KEY", KEY), ("HELPDESK_BOT_TOKEN", TOKEN)],
        b"",
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "slackgate {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The scopes of bot `bot`'s manifest fragment in a suggestion, and those to remove.
fn manifest_scopes(text: &str, bot: &str) -> (Vec<String>, Vec<String>) {
    let start = text
        .find(&format!("# bot {bot}:\n"))
        .unwrap_or_else(|| panic!("no manifest fragment for {bot}:\n{text}"));
    let mut minimal = Vec::new();
    let mut remove = Vec::new();
    for line in text[start..].lines().skip(1) {
        if let Some(scope) = line.strip_prefix("#       - ") {
            minimal.push(scope.to_owned());
        } else if let Some(rest) = line.strip_prefix("# granted scopes to remove: ") {
            remove = rest.split(", ").map(str::to_owned).collect();
            break;
        }
    }
    (minimal, remove)
}

/// Shadow mode forwards every call the bot's own rules would deny and audits it; the
/// suggestion from that trail (half of it rotated and gzipped), checked by `slackgate
/// check` and enforced, allows exactly those calls and refuses the unseen ones; its
/// minimal scopes are what the stand-in's answers accepted of the grant.
fn shadow_suggest_enforce(sdk: Sdk) {
    sdk.require();
    let dir = tempfile::tempdir().unwrap();
    let plan = shadow_plan();
    let calls: Vec<Call> = plan.iter().map(|(c, _, _)| c.clone()).collect();

    // 1. Shadow: everything but the privileged call and the wrong key reaches Slack.
    let rig = Rig::with(SHADOW_POLICY, SHADOW_GRANT);
    sdk.run(&rig, &calls);
    let got = assert_slack_saw(&rig, &calls, sdk.encoding());
    assert_eq!(got.len(), 6);
    let records = rig.egress_audit(calls.len());
    for (r, (c, reason, shadow)) in records.iter().zip(&plan) {
        assert_eq!(r["reason"], *reason, "audit of {}: {r}", c.id);
        assert_eq!(r["shadow"], *shadow, "audit of {}: {r}", c.id);
    }
    rig.assert_audit_clean();

    // 2. The trail, half rotated and gzipped, half live.
    let lines = rig.gw.audit_raw();
    let (old, new) = lines.split_at(lines.len() / 2);
    let rotated = dir.path().join("audit.log.1.gz");
    let mut gz = flate2_writer(&rotated);
    for l in old {
        writeln!(gz, "{l}").unwrap();
    }
    gz.finish().unwrap();
    let live = dir.path().join("audit.log");
    std::fs::write(
        &live,
        new.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let policy_file = dir.path().join("policy.yaml");
    std::fs::write(&policy_file, SHADOW_POLICY).unwrap();
    drop(rig);
    let suggested = slackgate(&[
        "suggest".as_ref(),
        "-c".as_ref(),
        &policy_file,
        "--audit".as_ref(),
        &rotated,
        &live,
    ]);
    for secret in [KEY, TOKEN, TEXT] {
        assert!(
            !suggested.contains(secret),
            "the suggestion shows {secret:?}"
        );
    }
    let suggested_file = dir.path().join("suggested.yaml");
    std::fs::write(&suggested_file, &suggested).unwrap();
    eprintln!("the suggestion:\n{suggested}");
    let check = slackgate(&["check".as_ref(), &suggested_file]);
    assert!(check.starts_with("ok:"), "{check}");

    // 3. Enforced: the seen calls pass, the unseen ones are refused.
    let mut enforce_plan = calls;
    enforce_plan.extend(unseen_calls());
    let rig = Rig::with(&suggested, SHADOW_GRANT);
    sdk.run(&rig, &enforce_plan);
    let got = assert_slack_saw(&rig, &enforce_plan, sdk.encoding());
    assert_eq!(got.len(), 6, "exactly the calls seen reach Slack");
    let records = rig.egress_audit(enforce_plan.len());
    assert!(
        records.iter().all(|r| r["shadow"] == false),
        "the suggestion is enforced: {records:?}"
    );

    // 4. Minimal scopes: what the stand-in accepted for the calls that reached it, of the
    //    grant; the rest of the grant is to remove.
    let mut want: Vec<String> = got
        .iter()
        .flat_map(|r| accepted_scopes(&r.method).iter())
        .filter(|s| SHADOW_GRANT.contains(s))
        .map(|s| (*s).to_owned())
        .collect();
    want.sort();
    want.dedup();
    let (minimal, remove) = manifest_scopes(&suggested, "helpdesk");
    assert_eq!(minimal, want, "{suggested}");
    assert_eq!(remove, ["files:write"], "{suggested}");
}

fn flate2_writer(path: &std::path::Path) -> flate2::write::GzEncoder<std::fs::File> {
    flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    )
}

#[test]
fn python_slack_sdk_shadow_then_suggest_then_enforce() {
    shadow_suggest_enforce(Sdk::Python);
}

#[test]
fn node_web_api_shadow_then_suggest_then_enforce() {
    shadow_suggest_enforce(Sdk::Node);
}
