//! Secret custody end to end with a real Slack Bolt for Python app in HTTP mode as the bot
//! (`tests/bolt/custody.py`), behind a route with `resign`, `response_urls: custody` and
//! `workflow_tokens: custody`, its WebClient pointed at the egress door with the bot's
//! gateway key as its token, and the testkit's Slack stand-in behind the door.
//!
//! Bolt verifies what it gets with the resign secret: a 200 from it means it verified the
//! gateway's signature; it records the headers and body of each request, which show that
//! neither Slack's signature nor anything Slack handed out (the response URL, the workflow
//! token) reached it. Its handlers use the capabilities with the SDK's own calls
//! (`respond()`, `files_upload_v2`, `complete()`), and the stand-in's records show what
//! arrived at Slack, with which token, and above all what did not. The bot has `channels`
//! and `reply_scope`: what its handlers send goes into the conversation the request came
//! from, which the request itself opened.
//!
//! Needs `python3` with `slack_bolt` and `slack_sdk` (scripts/deps.sh installs them; CI
//! runs it first). A missing interpreter or package fails these tests with a message saying
//! so; they never skip. `SLACKGATE_PYTHON` overrides the interpreter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};
use slackgate_testkit::creds::{HELPDESK_KEY, HELPDESK_TOKEN, REPORTER_KEY, REPORTER_TOKEN};
use slackgate_testkit::policy::{bot, helpdesk_to, keys, route};
use slackgate_testkit::{
    fixture, fixture_with, free_port, Client, Received, SignedRequest, Signer, SlackApi,
    TestGateway, TestGatewayBuilder,
};
use support::python::{python, require, PyServer};

/// The app's signing secret: only Slack and the gateway hold it.
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5-bolt-custody";
/// The route's resign secret: what the Bolt app verifies with.
const BOT_SECRET: &str = "b0lt-py-0wn-5ecret-never-slacks";
const PATH: &str = "/slack/events";
const TEAM: &str = "T0ACME";
/// What custody.py uploads.
const UPLOAD: &[u8] = b"ticket T-42: printer on fire\n";
/// The command fixture's response URL, as its form carries it.
const FIXTURE_RESPONSE_URL: &str =
    "https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT0ACME%2F1234%2Fabcd";

fn policy(bolt: std::net::SocketAddr) -> String {
    format!(
        "version: 1\n{head}bots:\n{helpdesk}{helpdesk_keys}{reporter}{reporter_keys}routes:\n{route}{route_keys}",
        head = helpdesk_to("HELPDESK_SIGNING_SECRET", "bolt", bolt),
        helpdesk = bot("helpdesk"),
        helpdesk_keys = keys(
            "app: helpdesk\nmethods: [auth.test, response_url, chat.postMessage, \
             files.getUploadURLExternal, files.completeUploadExternal, \
             functions.completeSuccess, functions.completeError]\nchannels: [C0HELP]\n\
             reply_scope: 10m"
        ),
        reporter = bot("reporter"),
        reporter_keys = keys("methods: [chat.postMessage]"),
        route = route("helpdesk", PATH, "helpdesk", "bolt"),
        route_keys = keys(
            "resign: { env: HELPDESK_BOT_SIGNING_SECRET }\nbot: helpdesk\n\
             response_urls: custody\nworkflow_tokens: custody"
        ),
    )
}

/// The Bolt app, the gateway and the stand-in. Field order: the app stops first, the
/// stand-in last.
struct Rig {
    bolt: PyServer,
    gw: TestGateway,
    slack: SlackApi,
}

impl Rig {
    /// The stand-in (the helpdesk bot's token, and `workflow` as (token, execution) when
    /// given), the gateway in front of it and of the app, and the app, whose constructor
    /// calls auth.test through the door before it listens.
    fn start(workflow: Option<(&str, &str)>) -> Rig {
        require("slack_bolt, slack_sdk");
        let mut slack =
            SlackApi::builder().token(HELPDESK_TOKEN, TEAM, &["chat:write", "files:write"]);
        if let Some((token, execution)) = workflow {
            slack = slack.workflow_token(token, TEAM, execution);
        }
        let slack = slack.start();
        let bolt_addr = free_port();
        let gw = TestGatewayBuilder::new(&policy(bolt_addr))
            .secret("HELPDESK_SIGNING_SECRET", SLACK_SECRET)
            .secret("HELPDESK_BOT_SIGNING_SECRET", BOT_SECRET)
            .bot("helpdesk", HELPDESK_KEY, HELPDESK_TOKEN)
            .bot("reporter", REPORTER_KEY, REPORTER_TOKEN)
            .slack(&slack)
            .egress_public_url()
            // The handlers make several calls through the door before Bolt answers.
            .config("limits: { upstream_timeout: 30s }")
            .start();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bolt/custody.py");
        let mut cmd = Command::new(python());
        cmd.arg(script)
            .args(["--port", &bolt_addr.port().to_string(), "--path", PATH])
            .env("BOLT_SIGNING_SECRET", BOT_SECRET)
            .env("SLACKGATE_KEY", HELPDESK_KEY)
            .env("SLACKGATE_OTHER_KEY", REPORTER_KEY)
            .env("SLACKGATE_EGRESS", gw.egress_addr.unwrap().to_string());
        let bolt = PyServer::start(cmd, "custody.py", Some(bolt_addr));
        let startup: Vec<String> = slack.received().into_iter().map(|r| r.method).collect();
        assert_eq!(startup, ["auth.test"], "Bolt's startup calls");
        Rig { bolt, gw, slack }
    }

    /// Sends `body` to the route signed by Slack, and returns the one handler record and
    /// the request as Bolt got it, after checking that Bolt verified the gateway's
    /// signature (and could not have verified Slack's).
    fn deliver(&self, body: Vec<u8>) -> (Value, Value) {
        let req = SignedRequest::new(PATH, body).sign(SLACK_SECRET);
        let r = self
            .gw
            .client()
            .timeout(std::time::Duration::from_secs(60))
            .send(&req)
            .unwrap();
        assert_eq!(
            r.status,
            200,
            "the gateway and Bolt took it (401 from Bolt: it refused the signature): {}",
            String::from_utf8_lossy(&r.body)
        );
        let seen = self.bolt.records("/requests");
        assert_eq!(seen.len(), 1, "Bolt got one request: {seen:?}");
        let got = seen[0].clone();
        assert_eq!(got["status"], 200, "Bolt's own verification passed");
        let h = &got["headers"];
        let sig = h["x-slack-signature"].as_str().expect("a signature");
        let ts = h["x-slack-request-timestamp"]
            .as_str()
            .expect("a timestamp");
        let body = got["body"].as_str().unwrap().as_bytes();
        assert_eq!(
            sig,
            Signer::new(BOT_SECRET).sign(ts, body),
            "the gateway's signature"
        );
        assert_ne!(sig, Signer::new(SLACK_SECRET).sign(ts, body));
        assert_ne!(
            Some(sig),
            req.signature.as_deref(),
            "Slack's signature reached Bolt"
        );
        let headers = h.to_string();
        assert!(
            !headers.contains(req.signature.as_deref().unwrap()),
            "{headers}"
        );
        let ran = self.bolt.records("/ran");
        assert_eq!(ran.len(), 1, "one handler ran: {ran:?}");
        (ran[0].clone(), got)
    }

    /// What arrived at the stand-in after Bolt's startup: (method, or the path for a
    /// capability URL).
    fn at_slack(&self) -> Vec<(String, String)> {
        self.slack
            .received()
            .into_iter()
            .skip(1)
            .map(|r| {
                let path = r.target.split('?').next().unwrap_or_default().to_owned();
                (r.method, path)
            })
            .collect()
    }

    /// Nothing of Slack's, and no credential, in any audit line.
    fn assert_audit_clean(&self, more: &[&str]) {
        for line in self.gw.audit_raw() {
            for secret in [
                SLACK_SECRET,
                BOT_SECRET,
                HELPDESK_KEY,
                HELPDESK_TOKEN,
                REPORTER_KEY,
            ]
            .iter()
            .chain(more)
            {
                assert!(
                    !line.contains(secret),
                    "an audit line shows {secret:?}: {line}"
                );
            }
        }
    }
}

/// One step custody.py recorded, by name.
fn step<'a>(record: &'a Value, what: &str) -> &'a Value {
    record["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["what"] == what))
        .unwrap_or_else(|| panic!("no step {what:?} in {record}"))
}

/// A webhook step the gateway refused as an unknown capability.
fn assert_invalid(record: &Value, what: &str) {
    let s = step(record, what);
    assert_eq!(s["status"], 404, "{what}: {s}");
    let body: Value = serde_json::from_str(s["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"], "response_url_invalid", "{what}: {s}");
}

fn body_text(r: &Received) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn a_command_runs_bolt_and_respond_reaches_slacks_url_once_per_use_and_five_times_at_most() {
    let rig = Rig::start(None);
    let url = rig.slack.response_url(TEAM);
    let encoded: String = form_urlencoded::byte_serialize(url.as_bytes()).collect();
    let command = fixture_with("command_ticket.form", FIXTURE_RESPONSE_URL, &encoded);
    let (ran, got) = rig.deliver(command);
    assert_eq!(ran["handler"], "ticket");
    assert_eq!(ran["text"], "printer on fire & smoke");

    // Bolt saw the gateway's capability, never Slack's URL.
    let public = format!("http://{}/respond/", rig.gw.egress_addr.unwrap());
    let cap_url = ran["response_url"].as_str().unwrap();
    assert!(cap_url.starts_with(&public), "{cap_url}");
    let path = url
        .split("://")
        .nth(1)
        .and_then(|u| u.find('/').map(|i| &u[i..]))
        .unwrap();
    let body = got["body"].as_str().unwrap();
    assert!(!body.contains(&encoded) && !body.contains(path), "{body}");

    // Another bot's key and an unknown capability: refused, nothing sent, nothing spent.
    assert_invalid(&ran, "other_key");
    assert_invalid(&ran, "unknown");
    // respond() five times: each reached Slack's URL once, in order; the sixth did not.
    for n in 1..=5 {
        let s = step(&ran, &format!("respond {n}"));
        assert_eq!(
            (s["status"].clone(), s["body"].clone()),
            (json!(200), json!(r#"{"ok":true}"#)),
            "{s}"
        );
    }
    assert_invalid(&ran, "respond 6");
    let posts = rig.slack.posts_to(&url);
    let texts: Vec<Value> = posts
        .iter()
        .map(|p| serde_json::from_slice::<Value>(&p.body).unwrap()["text"].clone())
        .collect();
    let want: Vec<Value> = (1..=5)
        .map(|n| json!(format!("ticket T-42, reply {n}")))
        .collect();
    assert_eq!(texts, want);
    for p in &posts {
        assert_eq!(
            p.header("authorization"),
            None,
            "no key travels to a response URL"
        );
    }
    assert_eq!(
        rig.at_slack().len(),
        5,
        "nothing else reached Slack: {:?}",
        rig.at_slack()
    );

    // auth.test, the eight posts, the command.
    let egress: Vec<(Value, Value)> = rig
        .gw
        .audit_lines(10)
        .into_iter()
        .filter(|r| r["direction"] == "egress" && r["method"] == "response_url")
        .map(|r| (r["reason"].clone(), r["bot"].clone()))
        .collect();
    let allowed = egress.iter().filter(|(r, _)| r == "allowed").count();
    let refused = egress
        .iter()
        .filter(|(r, _)| r == "response_url_invalid")
        .count();
    assert_eq!((allowed, refused), (5, 3), "{egress:?}");
    rig.assert_audit_clean(&[path, cap_url]);

    // Slack's own signature, straight to Bolt: refused, and nothing ran.
    let direct = SignedRequest::new(PATH, fixture("command_ticket.form")).sign(SLACK_SECRET);
    assert_eq!(rig.bolt.client().send(&direct).unwrap().status, 401);
    assert_eq!(rig.bolt.records("/ran").len(), 1);
}

#[test]
fn an_event_runs_bolt_whose_upload_lands_through_the_door_and_an_oversize_one_does_not() {
    let rig = Rig::start(None);
    let (ran, _) = rig.deliver(fixture("event_app_mention.json"));
    assert_eq!(ran["handler"], "app_mention");
    assert_eq!(ran["channel"], "C0HELP");

    // files_upload_v2: getUploadURLExternal, the bytes to the door's upload URL, then
    // completeUploadExternal; the bytes landed at Slack's upload URL.
    let upload = step(&ran, "upload");
    assert_eq!(upload["ok"], true, "{upload}");
    let file_id = upload["file_id"].as_str().unwrap();
    assert_eq!(rig.slack.uploaded(file_id).as_deref(), Some(UPLOAD));
    assert_eq!(rig.slack.completed_files(), [file_id]);

    // Declaring fewer bytes than it sends: 413 from the door, and the bytes never left.
    let over = step(&ran, "oversize");
    assert_eq!(
        (&over["status"], &over["error"]),
        (&json!(413), &json!("malformed_call")),
        "{over}"
    );
    let at_slack = rig.at_slack();
    let methods: Vec<&str> = at_slack.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        methods,
        [
            "files.getUploadURLExternal",
            "",
            "files.completeUploadExternal",
            "files.getUploadURLExternal"
        ],
        "{at_slack:?}"
    );
    assert!(at_slack[1].1.starts_with("/upload/v1/"), "{at_slack:?}");
    let uploaded: Vec<Received> = rig
        .slack
        .received()
        .into_iter()
        .filter(|r| r.method.is_empty())
        .collect();
    assert_eq!(uploaded.len(), 1);
    assert_eq!(uploaded[0].body, UPLOAD);

    // auth.test, the two uploads' three and two calls, the event.
    let audit = rig.gw.audit_lines(7);
    let uploads: Vec<(&Value, &Value)> = audit
        .iter()
        .filter(|r| r["method"] == "file_upload")
        .map(|r| (&r["reason"], &r["status"]))
        .collect();
    assert_eq!(uploads.len(), 2, "{uploads:?}");
    assert_eq!(uploads[0].0, "allowed");
    assert_eq!(
        (uploads[1].0, uploads[1].1),
        (&json!("malformed_call"), &json!(413))
    );
    rig.assert_audit_clean(&["/upload/v1/", &body_text(&uploaded[0])]);
}

#[test]
fn a_workflow_step_completes_with_the_real_token_and_its_key_then_dies() {
    let event: Value = serde_json::from_slice(&fixture("event_function_executed.json")).unwrap();
    let token = event["event"]["bot_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let execution = event["event"]["function_execution_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rig = Rig::start(Some((&token, &execution)));
    let (ran, got) = rig.deliver(fixture("event_function_executed.json"));
    assert_eq!(ran["handler"], "open_ticket");
    assert_eq!(ran["execution"], execution.as_str());
    assert_eq!(ran["inputs"], json!({"user_id": "U0333"}));

    // Bolt's function handler only ever had the capability key.
    let key = ran["token"].as_str().unwrap();
    assert!(key.starts_with("sgw-"), "{ran}");
    assert_eq!(
        ran["client_token"], key,
        "Bolt's client for the function holds the key"
    );
    let body = got["body"].as_str().unwrap();
    assert!(body.contains(key) && !body.contains(&token), "{body}");

    // complete() reached functions.completeSuccess with the real workflow token.
    assert_eq!(step(&ran, "complete")["ok"], true, "{ran}");
    assert_eq!(rig.slack.completed_functions(), [(execution.clone(), true)]);
    let at_slack = rig.slack.received();
    let complete = at_slack
        .iter()
        .find(|r| r.method == "functions.completeSuccess")
        .unwrap();
    assert_eq!(complete.token.as_deref(), Some(token.as_str()));
    assert_eq!(
        complete.arg("function_execution_id").as_deref(),
        Some(execution.as_str())
    );
    assert!(
        !body_text(complete).contains(key)
            && !String::from_utf8_lossy(&complete.head).contains(key)
    );

    // After completion the key is refused, and nothing more reached Slack.
    let after = step(&ran, "after");
    assert_eq!(
        (&after["exception"], &after["error"]),
        (&json!("SlackApiError"), &json!("unknown_bot")),
        "{after}"
    );
    let methods: Vec<String> = rig.at_slack().into_iter().map(|(m, _)| m).collect();
    assert_eq!(methods, ["functions.completeSuccess"]);
    let r = Client::plain(rig.gw.egress_addr.unwrap()).raw(
        format!(
            "POST /api/chat.postMessage HTTP/1.1\r\nHost: slackgate\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 14\r\n\r\nchannel=C0HELP"
        )
        .as_bytes(),
    );
    assert_eq!(r.unwrap().json()["error"], "unknown_bot");
    assert_eq!(rig.slack.received().len(), at_slack.len());

    // auth.test, completeSuccess, the two refused posts, the event.
    let record = rig
        .gw
        .audit_lines(5)
        .into_iter()
        .find(|r| r["method"] == "functions.completeSuccess")
        .unwrap();
    assert_eq!(
        record["function_execution_id"],
        execution.as_str(),
        "{record}"
    );
    assert_eq!(record["bot"], "helpdesk");
    rig.assert_audit_clean(&[&token, key]);
}
