//! Secret custody at the egress door, end to end: a gateway in front of the testkit's
//! Slack stand-in (real TLS with a test CA), its response URLs served under
//! `egress.hooks_base`. Response URLs and workflow tokens are held directly in the running
//! gateway's `Custody` (what the inbound door does when it rewrites what it forwards);
//! upload URLs are taken into custody by the door itself. Each test checks the answer, the
//! audit record and the metric, and above all what the stand-in did NOT receive, and that
//! no held URL or token shows anywhere the bot or the audit can see.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use slackgate_guard::{ResponseUrl, WorkflowToken};
use slackgate_testkit::creds::{
    HELPDESK_KEY as KEY, HELPDESK_TOKEN as TOKEN, REPORTER_KEY as OTHER_KEY, REPORTER_TOKEN,
};
use slackgate_testkit::{Response, SlackApi, TestGateway, TestGatewayBuilder};

const POLICY: &str = r#"version: 1
apps:
  helpdesk:
    signing_secrets: [{ id: current, env: CUSTODY_SIGNING_SECRET }]
bots:
  helpdesk:
    methods: [response_url, chat.postMessage, files.getUploadURLExternal, files.completeUploadExternal, functions.completeSuccess, functions.completeError]
    channels: [C0HELP]
    deny_args: [username]
    team: T0ACME
    token: { env: CUSTODY_HELPDESK_TOKEN }
    key: { env: CUSTODY_HELPDESK_KEY }
  reporter:
    methods: [chat.postMessage]
    token: { env: CUSTODY_REPORTER_TOKEN }
    key: { env: CUSTODY_REPORTER_KEY }
  limited:
    methods: [response_url]
    rate_limits: [{ per: method, rate: 1/min, burst: 1 }]
    token: { env: CUSTODY_HELPDESK_TOKEN }
    key: { env: CUSTODY_LIMITED_KEY }
  scoped:
    app: helpdesk
    methods: [response_url]
    reply_scope: 10m
    token: { env: CUSTODY_HELPDESK_TOKEN }
    key: { env: CUSTODY_SCOPED_KEY }
routes: []
"#;

/// The workflow token the stand-in grants for [`EXECUTION`].
const WORKFLOW_TOKEN: &str = "xwfp-1111-standin-workflow-token";
const EXECUTION: &str = "Fx0EXEC1";

struct Rig {
    slack: SlackApi,
    gw: TestGateway,
}

fn rig() -> Rig {
    let slack = SlackApi::builder()
        .token(TOKEN, "T0ACME", &["chat:write", "files:write"])
        .token(REPORTER_TOKEN, "T0ACME", &["chat:write"])
        .workflow_token(WORKFLOW_TOKEN, "T0ACME", EXECUTION)
        .start();
    let gw = TestGatewayBuilder::new(POLICY)
        .secret("CUSTODY_HELPDESK_KEY", KEY)
        .secret("CUSTODY_HELPDESK_TOKEN", TOKEN)
        .secret("CUSTODY_REPORTER_KEY", OTHER_KEY)
        .secret("CUSTODY_REPORTER_TOKEN", REPORTER_TOKEN)
        .secret("CUSTODY_LIMITED_KEY", "gk_custody_limited_0f1e2d3c4b5a")
        .secret("CUSTODY_SCOPED_KEY", "gk_custody_scoped_a5b4c3d2e1f0")
        .secret("CUSTODY_SIGNING_SECRET", "custody-egress-signing-secret-00")
        .egress(&slack.url(), Some(slack.ca_file()))
        .hooks_base(&format!("https://{}/", slack.addr()))
        .egress_public_url()
        .start();
    Rig { slack, gw }
}

/// A capability of the shape the gateway mints (40 hex digits), numbered.
fn cap(n: u32) -> String {
    format!("{n:040x}")
}

impl Rig {
    /// Holds a fresh stand-in response URL for `bot` on `channel` under `cap`; the URL.
    fn hold_response_url(&self, cap: &str, bot: &str, channel: &str) -> String {
        let url = self.slack.response_url("T0ACME");
        let guard = &self.gw.shared().guard;
        guard.custody().hold_response_url(
            cap,
            ResponseUrl {
                bot: Arc::from(bot),
                channel: Some(Arc::from(channel)),
                team: Some(Arc::from("T0ACME")),
                url: Arc::from(url.as_str()),
            },
            guard.now_secs(),
        );
        url
    }

    /// Holds the stand-in's workflow token for `helpdesk` under `key`.
    fn hold_workflow_key(&self, key: &str) {
        let guard = &self.gw.shared().guard;
        let now = guard.now_secs();
        guard.custody().hold_workflow_token(
            key,
            WorkflowToken {
                bot: Arc::from("helpdesk"),
                function_execution_id: Arc::from(EXECUTION),
                token: Arc::from(WORKFLOW_TOKEN),
            },
            now + 900.0,
        );
    }

    /// Everything the bot and the operator can see: the audit lines, `/metrics`, `/status`.
    fn visible(&self) -> String {
        let status = self.gw.admin_client().get("/status").unwrap();
        format!(
            "{}\n{}\n{}",
            self.gw.audit_raw().join("\n"),
            self.gw.metrics(),
            String::from_utf8_lossy(&status.body)
        )
    }
}

/// `POST {target}` on the egress listener with these headers and body.
fn post(gw: &TestGateway, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut req = format!("POST {target} HTTP/1.1\r\nHost: slackgate\r\n").into_bytes();
    for (k, v) in headers {
        req.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    req.extend_from_slice(body);
    gw.egress_client().raw(&req).expect("an answer")
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

const JSON: (&str, &str) = ("Content-Type", "application/json");
const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

fn respond(gw: &TestGateway, cap: &str, auth: Option<&str>, body: &str) -> Response {
    let auth = auth.map(bearer);
    let mut headers = vec![JSON];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    post(gw, &format!("/respond/{cap}"), &headers, body.as_bytes())
}

fn text(r: &Response) -> String {
    let mut t = String::from_utf8_lossy(&r.body).into_owned();
    for (k, v) in &r.headers {
        t.push_str(&format!("\n{k}: {v}"));
    }
    t
}

fn assert_refused(r: &Response, reason: &str, status: u16) {
    assert_eq!(r.status, status, "{}", text(r));
    assert_eq!(r.json()["ok"], false);
    assert_eq!(r.json()["error"], reason);
    assert_eq!(r.header("x-slackgate-reason"), Some(reason));
}

/// The path of a URL (what a leak of it would show).
fn path_of(url: &str) -> &str {
    let rest = &url[url.find("://").unwrap() + 3..];
    &rest[rest.find('/').unwrap()..]
}

fn egress_count(gw: &TestGateway, bot: &str, method: &str, reason: &str) -> f64 {
    gw.metric(&format!(
        "slackgate_egress_requests_total{{bot=\"{bot}\",method=\"{method}\",reason=\"{reason}\"}}"
    ))
}

#[test]
fn a_response_url_post_reaches_slack_once_with_its_body() {
    let rig = rig();
    let url = rig.hold_response_url(&cap(1), "helpdesk", "C0HELP");
    let body = r#"{"text":"ticket #42 opened","response_type":"in_channel"}"#;
    let r = respond(&rig.gw, &cap(1), None, body);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["ok"], true);
    let got = rig.slack.posts_to(&url);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body, body.as_bytes());
    assert_eq!(got[0].header("authorization"), None);
    assert_eq!(
        got[0].header("content-type"),
        Some("application/json; charset=utf-8")
    );

    let rec = rig.gw.audit_nth(1);
    assert_eq!(rec["direction"], "egress", "{rec}");
    assert_eq!(rec["bot"], "helpdesk");
    assert_eq!(rec["method"], "response_url");
    assert_eq!(rec["channel_id"], "C0HELP");
    assert_eq!(rec["team_id"], "T0ACME");
    assert_eq!(rec["reason"], "allowed");
    assert_eq!(rec["upstream_status"], 200);
    assert_eq!(
        egress_count(&rig.gw, "helpdesk", "response_url", "allowed"),
        1.0
    );

    // The bot's own key may come along: it names the same bot.
    let r = respond(&rig.gw, &cap(1), Some(KEY), body);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(rig.slack.posts_to(&url).len(), 2);
    let seen = rig.visible();
    assert!(
        !seen.contains(path_of(&url)),
        "a response URL shows: {seen}"
    );
    assert!(!text(&r).contains(path_of(&url)));
}

#[test]
fn the_sixth_use_another_bots_key_and_unknown_capabilities_reach_nothing() {
    let rig = rig();
    let url = rig.hold_response_url(&cap(1), "helpdesk", "C0HELP");
    for _ in 0..5 {
        let r = respond(&rig.gw, &cap(1), None, r#"{"text":"x"}"#);
        assert_eq!(r.status, 200, "{}", text(&r));
    }
    let r = respond(&rig.gw, &cap(1), None, r#"{"text":"6th"}"#);
    assert_refused(&r, "response_url_invalid", 404);
    assert_eq!(rig.slack.posts_to(&url).len(), 5);
    let rec = rig.gw.audit_nth(6);
    assert_eq!(rec["reason"], "response_url_invalid", "{rec}");
    assert_eq!(rec["method"], "response_url");
    assert_eq!(rec["status"], 404);

    // Another bot's key on a live capability: as if it did not exist, and it stays live.
    let url2 = rig.hold_response_url(&cap(2), "helpdesk", "C0HELP");
    let r = respond(&rig.gw, &cap(2), Some(OTHER_KEY), r#"{"text":"x"}"#);
    assert_refused(&r, "response_url_invalid", 404);
    assert_eq!(rig.gw.audit_nth(7)["bot"], "reporter");
    // A key of no bot, an unknown capability and one of the wrong shape.
    let r = respond(&rig.gw, &cap(2), Some("gk_not_a_key_of_any_bot_0000"), "{}");
    assert_refused(&r, "unknown_bot", 200);
    assert_refused(
        &respond(&rig.gw, &cap(3), None, "{}"),
        "response_url_invalid",
        404,
    );
    assert_refused(
        &respond(&rig.gw, "not-one", None, "{}"),
        "response_url_invalid",
        404,
    );
    let rec = rig.gw.audit_nth(10);
    assert_eq!(
        (&rec["bot"], &rec["method"], &rec["rule"]),
        (
            &serde_json::Value::Null,
            &serde_json::json!("response_url"),
            &serde_json::json!("capability")
        ),
        "{rec}"
    );
    assert!(rig.slack.posts_to(&url2).is_empty());
    assert_eq!(
        egress_count(&rig.gw, "unknown", "response_url", "response_url_invalid"),
        3.0
    );
    // What was refused spent nothing.
    let r = respond(&rig.gw, &cap(2), None, r#"{"text":"x"}"#);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(rig.slack.posts_to(&url2).len(), 1);
}

#[test]
fn response_url_posts_follow_the_bots_rules() {
    let rig = rig();
    // `reporter` does not list response_url.
    let url1 = rig.hold_response_url(&cap(1), "reporter", "C0HELP");
    assert_refused(&respond(&rig.gw, &cap(1), None, "{}"), "method_denied", 200);
    // helpdesk's channels do not include C0OTHER, whatever the body names.
    let url2 = rig.hold_response_url(&cap(2), "helpdesk", "C0OTHER");
    let r = respond(&rig.gw, &cap(2), None, r#"{"text":"x","channel":"C0HELP"}"#);
    assert_refused(&r, "channel_denied", 200);
    assert_eq!(rig.gw.audit_nth(2)["channel_id"], "C0OTHER");
    // deny_args on the JSON body, and no token travels to a response URL.
    let url3 = rig.hold_response_url(&cap(3), "helpdesk", "C0HELP");
    let r = respond(&rig.gw, &cap(3), None, r#"{"text":"x","username":"CEO"}"#);
    assert_refused(&r, "argument_denied", 200);
    let r = respond(&rig.gw, &cap(3), None, r#"{"text":"x","token":"xoxb-x"}"#);
    assert_refused(&r, "malformed_call", 200);
    for url in [&url1, &url2, &url3] {
        assert!(rig.slack.posts_to(url).is_empty());
    }
    // A GET is not a post.
    let get = format!(
        "GET /respond/{} HTTP/1.1\r\nHost: slackgate\r\n\r\n",
        cap(3)
    );
    let r = rig.gw.egress_client().raw(get.as_bytes()).unwrap();
    assert_refused(&r, "malformed_call", 200);
    assert_eq!(
        egress_count(&rig.gw, "helpdesk", "response_url", "argument_denied"),
        1.0
    );
    // None of it spent a use.
    for _ in 0..5 {
        assert_eq!(
            respond(&rig.gw, &cap(3), None, "{\"text\":\"y\"}").status,
            200
        );
    }
}

#[test]
fn response_url_posts_count_against_rate_limits_and_reply_scope() {
    let rig = rig();
    // One post a minute for `limited`: the second capability's post is refused and sent
    // nowhere.
    let url1 = rig.hold_response_url(&cap(1), "limited", "C0HELP");
    let url2 = rig.hold_response_url(&cap(2), "limited", "C0HELP");
    assert_eq!(respond(&rig.gw, &cap(1), None, "{}").status, 200);
    let r = respond(&rig.gw, &cap(2), None, r#"{"text":"x"}"#);
    assert_refused(&r, "rate_limited", 429);
    assert!(r.header("retry-after").is_some(), "{}", text(&r));
    assert_eq!(
        (
            rig.slack.posts_to(&url1).len(),
            rig.slack.posts_to(&url2).len()
        ),
        (1, 0)
    );
    // `scoped` replies only where its app heard from within 10 minutes, and nothing came
    // in from C0HELP.
    let url3 = rig.hold_response_url(&cap(3), "scoped", "C0HELP");
    let r = respond(&rig.gw, &cap(3), None, r#"{"text":"x"}"#);
    assert_refused(&r, "channel_denied", 200);
    let rec = rig.gw.audit_nth(3);
    assert_eq!(
        (&rec["bot"], &rec["rule"], &rec["channel_id"]),
        (&"scoped".into(), &"reply_scope".into(), &"C0HELP".into()),
        "{rec}"
    );
    assert!(rig.slack.posts_to(&url3).is_empty());
}

/// `files.getUploadURLExternal` through the door; the answer as the bot sees it.
fn get_upload_url(gw: &TestGateway, length: usize) -> serde_json::Value {
    let body = format!("filename=report.txt&length={length}");
    let r = post(
        gw,
        "/api/files.getUploadURLExternal",
        &[("Authorization", &bearer(KEY)), FORM],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    r.json()
}

#[test]
fn an_upload_goes_through_the_door_once_within_its_declared_length() {
    let rig = rig();
    let answer = get_upload_url(&rig.gw, 5);
    assert_eq!(answer["ok"], true, "{answer}");
    let upload_url = answer["upload_url"].as_str().unwrap().to_owned();
    let file_id = answer["file_id"].as_str().unwrap().to_owned();
    let public = format!("http://{}/upload/", rig.gw.egress_addr.unwrap());
    assert!(upload_url.starts_with(&public), "{upload_url}");
    // The stand-in's own upload URL never reached the bot.
    assert!(!answer.to_string().contains("/upload/v1/"), "{answer}");
    let target = path_of(&upload_url).to_owned();

    let r = post(
        &rig.gw,
        &target,
        &[("Content-Type", "application/octet-stream")],
        b"hello",
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(rig.slack.uploaded(&file_id).as_deref(), Some(&b"hello"[..]));
    let rec = rig.gw.audit_nth(2);
    assert_eq!(
        (&rec["method"], &rec["reason"]),
        (&"file_upload".into(), &"allowed".into()),
        "{rec}"
    );
    assert_eq!(rec["bot"], "helpdesk");
    assert_eq!(
        egress_count(&rig.gw, "helpdesk", "file_upload", "allowed"),
        1.0
    );

    // Once only.
    let before = rig.slack.count();
    let r = post(&rig.gw, &target, &[], b"again");
    assert_refused(&r, "response_url_invalid", 404);
    assert_eq!(rig.slack.count(), before);

    // The file completes as usual.
    let files = format!(r#"{{"files":[{{"id":"{file_id}","title":"r"}}],"channel_id":"C0HELP"}}"#);
    let r = post(
        &rig.gw,
        "/api/files.completeUploadExternal",
        &[
            ("Authorization", &bearer(KEY)),
            ("Content-Type", "application/json; charset=utf-8"),
        ],
        files.as_bytes(),
    );
    assert_eq!(r.json()["ok"], true, "{}", text(&r));
    assert_eq!(rig.slack.completed_files(), vec![file_id]);
    assert!(!rig.visible().contains("/upload/v1/"));
}

#[test]
fn an_oversize_upload_or_another_bots_is_refused_and_nothing_is_sent() {
    let rig = rig();
    let answer = get_upload_url(&rig.gw, 3);
    let target = path_of(answer["upload_url"].as_str().unwrap()).to_owned();
    let file_id = answer["file_id"].as_str().unwrap().to_owned();
    let before = rig.slack.count();
    let r = post(&rig.gw, &target, &[], b"more than three");
    assert_refused(&r, "malformed_call", 413);
    let rec = rig.gw.audit_nth(2);
    assert_eq!(rec["rule"], "body over the declared length", "{rec}");
    assert_eq!(rec["status"], 413);
    // Another bot's key.
    let r = post(
        &rig.gw,
        &target,
        &[("Authorization", &bearer(OTHER_KEY))],
        b"abc",
    );
    assert_refused(&r, "response_url_invalid", 404);
    assert_eq!(rig.slack.count(), before, "{:?}", rig.slack.received());
    assert_eq!(rig.slack.uploaded(&file_id), None);
    // Neither spent it: the declared bytes still go through, once.
    let r = post(&rig.gw, &target, &[("Authorization", &bearer(KEY))], b"abc");
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(rig.slack.uploaded(&file_id).as_deref(), Some(&b"abc"[..]));
}

#[test]
fn a_workflow_key_reaches_slack_with_the_workflow_token_until_completed() {
    let rig = rig();
    let key = format!("sgw-{}", cap(9));
    rig.hold_workflow_key(&key);
    let r = post(
        &rig.gw,
        "/api/chat.postMessage",
        &[("Authorization", &bearer(&key)), FORM],
        b"channel=C0HELP&text=step+running",
    );
    assert_eq!(r.json()["ok"], true, "{}", text(&r));
    let got = rig.slack.received();
    assert_eq!(got.last().unwrap().token.as_deref(), Some(WORKFLOW_TOKEN));
    let rec = rig.gw.audit_nth(1);
    assert_eq!(rec["bot"], "helpdesk", "{rec}");
    assert_eq!(rec["function_execution_id"], EXECUTION);

    // The bot's rules apply to the key: helpdesk's channels.
    let r = post(
        &rig.gw,
        "/api/chat.postMessage",
        &[("Authorization", &bearer(&key)), FORM],
        b"channel=C0OTHER&text=x",
    );
    assert_eq!(r.json()["error"], "channel_denied", "{}", text(&r));

    // Bolt's complete(): the key as the `token` argument of a form.
    let body = format!("token={key}&function_execution_id={EXECUTION}&outputs=%7B%7D");
    let r = post(
        &rig.gw,
        "/api/functions.completeSuccess",
        &[FORM],
        body.as_bytes(),
    );
    assert_eq!(r.json()["ok"], true, "{}", text(&r));
    assert_eq!(
        rig.slack.completed_functions(),
        vec![(EXECUTION.to_owned(), true)]
    );
    let last = rig.slack.received().last().cloned().unwrap();
    assert_eq!(last.token.as_deref(), Some(WORKFLOW_TOKEN));
    assert!(!String::from_utf8_lossy(&last.body).contains(&key));

    // Completed: the key names nobody any more, and nothing more reaches Slack.
    let before = rig.slack.count();
    let r = post(
        &rig.gw,
        "/api/chat.postMessage",
        &[("Authorization", &bearer(&key)), FORM],
        b"channel=C0HELP&text=late",
    );
    assert_refused(&r, "unknown_bot", 200);
    assert_eq!(rig.slack.count(), before);
    let seen = rig.visible();
    assert!(
        !seen.contains(WORKFLOW_TOKEN) && !seen.contains(&key),
        "{seen}"
    );
}

#[test]
fn only_a_completion_slack_answered_ok_ends_the_key_and_complete_error_does() {
    let rig = rig();
    let key = format!("sgw-{}", cap(8));
    rig.hold_workflow_key(&key);
    let auth = bearer(&key);
    let complete = |execution: &str| {
        let body = format!("function_execution_id={execution}&error=printer+gone");
        post(
            &rig.gw,
            "/api/functions.completeError",
            &[("Authorization", &auth), FORM],
            body.as_bytes(),
        )
    };
    let chat = || {
        post(
            &rig.gw,
            "/api/chat.postMessage",
            &[("Authorization", &auth), FORM],
            b"channel=C0HELP&text=still+running",
        )
    };
    // Slack refuses a completion of another execution: the key lives on.
    let r = complete("Fx0OTHER");
    assert_eq!(
        r.json()["error"],
        "function_execution_not_found",
        "{}",
        text(&r)
    );
    assert_eq!(chat().json()["ok"], true);
    // completeError answered ok ends it, as completeSuccess does.
    let r = complete(EXECUTION);
    assert_eq!(r.json()["ok"], true, "{}", text(&r));
    assert_eq!(
        rig.slack.completed_functions(),
        vec![(EXECUTION.to_owned(), false)]
    );
    let sent = rig.slack.received();
    assert!(sent
        .iter()
        .all(|r| r.token.as_deref() == Some(WORKFLOW_TOKEN)));
    assert_refused(&chat(), "unknown_bot", 200);
    assert_eq!(
        rig.slack.count(),
        sent.len(),
        "nothing after the completion"
    );
    assert_eq!(rig.gw.audit_nth(3)["function_execution_id"], EXECUTION);
}

#[test]
fn a_multipart_upload_may_add_its_framing_and_no_more() {
    let rig = rig();
    let boundary = "sgwtestboundary";
    let ct = format!("multipart/form-data; boundary={boundary}");
    let part = |framing: usize| {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"r.txt\"\r\nX-Pad: {}\r\n\r\nhello\r\n--{boundary}--\r\n",
            "p".repeat(framing)
        )
        .into_bytes()
    };
    // Within the declared 5 bytes and the framing allowance (16 KiB): sent as it is.
    let answer = get_upload_url(&rig.gw, 5);
    let target = path_of(answer["upload_url"].as_str().unwrap()).to_owned();
    let file_id = answer["file_id"].as_str().unwrap().to_owned();
    let body = part(100);
    let r = post(&rig.gw, &target, &[("Content-Type", &ct)], &body);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(rig.slack.uploaded(&file_id), Some(body));
    let got = rig.slack.received().pop().unwrap();
    assert_eq!(got.header("content-type"), Some(ct.as_str()));

    // Framing beyond the allowance: refused, nothing sent, the URL unspent.
    let answer = get_upload_url(&rig.gw, 5);
    let target = path_of(answer["upload_url"].as_str().unwrap()).to_owned();
    let file_id = answer["file_id"].as_str().unwrap().to_owned();
    let before = rig.slack.count();
    let over = part(16 * 1024);
    assert!(over.len() > 5 + 16 * 1024);
    let r = post(&rig.gw, &target, &[("Content-Type", &ct)], &over);
    assert_refused(&r, "malformed_call", 413);
    // The allowance is for multipart framing: the same bytes as raw data are over 5.
    let r = post(&rig.gw, &target, &[], &part(0));
    assert_refused(&r, "malformed_call", 413);
    assert_eq!(rig.slack.count(), before);
    assert_eq!(rig.slack.uploaded(&file_id), None);
}

#[test]
fn a_held_url_off_slack_is_never_posted_to() {
    let rig = rig();
    // Where a forged response_url would point: a listener of the test's own, the
    // stand-in's port without TLS, and targets that would split a request head.
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    elsewhere.set_nonblocking(true).unwrap();
    let standin = rig.slack.addr();
    let forged = [
        format!(
            "https://{}/commands/T0ACME/1/x",
            elsewhere.local_addr().unwrap()
        ),
        format!("http://{standin}/commands/T0ACME/1/x"),
        format!(
            "https://{standin}@{}/commands/T0ACME/1/x",
            elsewhere.local_addr().unwrap()
        ),
        format!("https://{standin}/commands/T0ACME/1/x\r\nX-Injected: 1"),
        format!("https://{standin}/commands/T0ACME/1/x y"),
    ];
    let guard = &rig.gw.shared().guard;
    for (n, url) in forged.iter().enumerate() {
        let c = cap(100 + u32::try_from(n).unwrap());
        guard.custody().hold_response_url(
            &c,
            ResponseUrl {
                bot: Arc::from("helpdesk"),
                channel: Some(Arc::from("C0HELP")),
                team: Some(Arc::from("T0ACME")),
                url: Arc::from(url.as_str()),
            },
            guard.now_secs(),
        );
        let r = respond(&rig.gw, &c, None, r#"{"text":"x"}"#);
        assert_refused(&r, "upstream_error", 502);
        assert!(!text(&r).contains("/commands/"), "{url}: {}", text(&r));
    }
    assert!(
        elsewhere.accept().is_err(),
        "the gateway connected to a forged URL's host"
    );
    assert_eq!(rig.slack.connections(), 0, "{:?}", rig.slack.received());
    assert!(!rig.visible().contains("/commands/T0ACME/1/x"));
}
