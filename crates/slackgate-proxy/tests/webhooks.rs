//! Webhook custody end to end: bots post to `/hooks/<name>` on the egress door with
//! their key; the gateway holds the incoming-webhook URL and posts to it. The receiver is
//! a plain-HTTP loopback stand-in (`egress.hooks_base: http://127.0.0.1:PORT/`) that
//! records what it got and answers `200 ok` the way Slack's hooks do. Above all: the URL
//! appears in no answer, audit line, `/status` or reload error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use parking_lot::Mutex;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use slackgate_testkit::creds::{
    HELPDESK_KEY as KEY, HELPDESK_TOKEN as TOKEN, REPORTER_KEY as OTHER_KEY, REPORTER_TOKEN,
};
use slackgate_testkit::policy::{bot, bots_from};
use slackgate_testkit::{read_head, wait_until, Response, TestGateway, TestGatewayBuilder};

/// The secret part of the webhook paths: it must never leave the gateway but to the
/// receiver.
const HOOK_SECRET: &str = "planted0hook0secret";

/// Bot `helpdesk` as the policy first writes it.
fn helpdesk() -> String {
    format!("{}    methods: [chat.postMessage]\n", bots_from("helpdesk"))
}

fn policy() -> String {
    format!(
        "{}{}    methods: [chat.postMessage]
webhooks:
  alerts: {{ url: {{ env: ALERTS_WEBHOOK_URL }}, bots: [helpdesk] }}
",
        helpdesk(),
        bot("reporter")
    )
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A plain-HTTP stand-in for hooks.slack.com: keep-alive, answers `200 ok`.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&got);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let sink = Arc::clone(&sink);
                std::thread::spawn(move || serve(conn, &sink));
            }
        });
        Receiver { addr, got }
    }

    fn base(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().clone()
    }
}

fn serve(conn: TcpStream, sink: &Mutex<Vec<Received>>) {
    let mut out = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let Ok((request_line, headers)) = read_head(&mut r) else {
            return;
        };
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let request_line = request_line.trim_end().to_owned();
        sink.lock().push(Received {
            request_line: request_line.clone(),
            headers,
            body,
        });
        // A webhook whose path has `/busy/` is rate-limited, as Slack answers one.
        let answer: &[u8] = if request_line.contains("/busy/") {
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 30\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nrate_limited"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
        };
        if out.write_all(answer).is_err() {
            return;
        }
    }
}

struct Rig {
    receiver: Receiver,
    gw: TestGateway,
}

fn rig() -> Rig {
    let receiver = Receiver::start();
    let gw = TestGatewayBuilder::new(&policy())
        .bot("helpdesk", KEY, TOKEN)
        .bot("reporter", OTHER_KEY, REPORTER_TOKEN)
        .secret(
            "ALERTS_WEBHOOK_URL",
            &receiver.url(&format!("/services/T0ACME/B0ALERT/{HOOK_SECRET}")),
        )
        // Nothing listens there: these tests make no Web API call.
        .egress("http://127.0.0.1:9/api/", None)
        .hooks_base(&receiver.base())
        .start();
    Rig { receiver, gw }
}

/// `POST {target}` on the egress listener with these headers and body.
fn post(gw: &TestGateway, target: &str, headers: &[(&str, &str)], body: &str) -> Response {
    gw.egress_post(target, headers, body)
}

/// A JSON post to webhook `alerts` with `key` as the bearer token.
fn alert(gw: &TestGateway, key: &str, body: &str) -> Response {
    post(
        gw,
        "/hooks/alerts",
        &[("Authorization", &bearer(key)), JSON],
        body,
    )
}

/// `POST /reload`, which must succeed: its answer.
fn reload_ok(gw: &TestGateway) -> Response {
    let reload = gw.admin_client().post("/reload").unwrap();
    assert_eq!(
        reload.json()["ok"],
        true,
        "{}",
        String::from_utf8_lossy(&reload.body)
    );
    reload
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

const JSON: (&str, &str) = ("Content-Type", "application/json");
const MESSAGE: &str = r#"{"text":"disk  full on db-1 \u2014 <!here>","blocks":[]}"#;

fn assert_refused(r: &Response, reason: &str) {
    r.assert_refused(reason);
}

fn assert_no_url(what: &str, text: &str) {
    assert!(
        !text.contains(HOOK_SECRET),
        "{what} shows a webhook URL: {text}"
    );
    assert!(
        !text.contains("/services/"),
        "{what} shows a webhook path: {text}"
    );
}

fn answer_text(r: &Response) -> String {
    let mut t = String::from_utf8_lossy(&r.body).into_owned();
    for (k, v) in &r.headers {
        t.push_str(&format!("\n{k}: {v}"));
    }
    t
}

#[test]
fn an_allowed_post_reaches_the_webhook_byte_for_byte() {
    let rig = rig();
    let r = post(
        &rig.gw,
        "/hooks/alerts",
        &[
            ("Authorization", &bearer(KEY)),
            JSON,
            ("Cookie", "session=1"),
        ],
        MESSAGE,
    );
    assert_eq!(r.status, 200, "{}", answer_text(&r));
    assert_eq!(r.body, b"ok");
    assert_no_url("the answer", &answer_text(&r));

    let got = rig.receiver.got();
    assert_eq!(got.len(), 1, "{got:?}");
    let g = &got[0];
    assert_eq!(
        g.request_line,
        format!("POST /services/T0ACME/B0ALERT/{HOOK_SECRET} HTTP/1.1")
    );
    assert_eq!(g.body, MESSAGE.as_bytes());
    assert_eq!(g.header("content-type"), Some("application/json"));
    assert_eq!(
        g.header("host"),
        Some(rig.receiver.addr.to_string().as_str())
    );
    // Nothing of the bot's credentials or cookies travels to the webhook.
    assert_eq!(g.header("authorization"), None);
    assert_eq!(g.header("cookie"), None);
    for (_, v) in &g.headers {
        assert!(!v.contains(KEY) && !v.contains(TOKEN), "{g:?}");
    }

    let rec = rig.gw.audit_nth(1);
    assert_eq!(rec["direction"], "egress", "{rec}");
    assert_eq!(rec["bot"], "helpdesk");
    assert_eq!(rec["method"], "hooks.alerts");
    assert_eq!(rec["reason"], "allowed");
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["upstream_status"], 200);
    assert_eq!(rec["slack_ok"], true);
    assert_no_url("the audit line", &rig.gw.audit_raw().join("\n"));
    assert_eq!(
        rig.gw.metric(
            "slackgate_egress_requests_total{bot=\"helpdesk\",method=\"hooks.alerts\",reason=\"allowed\"}"
        ),
        1.0
    );
    let status = rig.gw.admin_client().get("/status").unwrap();
    assert_no_url("/status", &String::from_utf8_lossy(&status.body));
    assert_no_url("/metrics", &rig.gw.metrics());
}

#[test]
fn a_bot_not_listed_is_denied_and_nothing_is_posted() {
    let rig = rig();
    let r = alert(&rig.gw, OTHER_KEY, MESSAGE);
    assert_refused(&r, "method_denied");
    assert_no_url("the answer", &answer_text(&r));
    let rec = rig.gw.audit_nth(1);
    assert_eq!(rec["bot"], "reporter");
    assert_eq!(rec["method"], "hooks.alerts");
    assert_eq!(rec["reason"], "method_denied");
    assert_eq!(rec["rule"], "webhooks");
    assert_eq!(
        rig.gw.metric(
            "slackgate_egress_requests_total{bot=\"reporter\",method=\"hooks.alerts\",reason=\"method_denied\"}"
        ),
        1.0
    );

    // A webhook that is not defined is refused the same way, and a GET is malformed.
    let r = post(
        &rig.gw,
        "/hooks/nosuch",
        &[("Authorization", &bearer(KEY)), JSON],
        MESSAGE,
    );
    assert_refused(&r, "method_denied");
    assert_eq!(rig.gw.audit_nth(2)["rule"], "webhooks: not defined");
    let get = format!(
        "GET /hooks/alerts HTTP/1.1\r\nHost: slackgate\r\nAuthorization: {}\r\n\r\n",
        bearer(KEY)
    );
    let r = rig.gw.egress_client().raw(get.as_bytes()).unwrap();
    assert_refused(&r, "malformed_call");
    assert!(rig.receiver.got().is_empty(), "{:?}", rig.receiver.got());
    assert_no_url("the audit lines", &rig.gw.audit_raw().join("\n"));
}

#[test]
fn a_bad_key_is_an_unknown_bot() {
    let rig = rig();
    let r = post(
        &rig.gw,
        "/hooks/alerts",
        &[
            ("Authorization", "Bearer gk_not_a_key_of_any_bot_0000"),
            JSON,
        ],
        MESSAGE,
    );
    assert_refused(&r, "unknown_bot");
    let r2 = post(&rig.gw, "/hooks/alerts", &[JSON], MESSAGE);
    assert_refused(&r2, "unknown_bot");
    let rec = rig.gw.audit_nth(1);
    assert_eq!(rec["reason"], "unknown_bot");
    assert_eq!(rec["rule"], "key");
    assert_eq!(rec["method"], "hooks.alerts");
    assert_eq!(rig.gw.audit_nth(2)["rule"], "no key");
    assert!(rig.receiver.got().is_empty());
    assert_no_url("the answer", &answer_text(&r));
    assert_no_url("the audit lines", &rig.gw.audit_raw().join("\n"));
}

#[test]
fn rotating_the_url_is_a_secret_change_and_a_reload() {
    let rig = rig();
    let r = alert(&rig.gw, KEY, "{}");
    assert_eq!(r.status, 200);
    rig.gw.secrets.set(
        "ALERTS_WEBHOOK_URL",
        &rig.receiver
            .url(&format!("/services/T0ACME/B0ALERT/{HOOK_SECRET}2")),
    );
    let reload = reload_ok(&rig.gw);
    assert_no_url("/reload", &String::from_utf8_lossy(&reload.body));
    let r = alert(&rig.gw, KEY, "{}");
    assert_eq!(r.status, 200);
    let got = rig.receiver.got();
    assert_eq!(got.len(), 2);
    assert!(got[0].request_line.contains(&format!("/{HOOK_SECRET} ")));
    assert!(got[1].request_line.contains(&format!("/{HOOK_SECRET}2 ")));
}

/// Reloads files or secrets that must be refused and returns the `/reload` answer,
/// checking that neither it nor `/status` shows a URL.
fn refused_reload(rig: &Rig) -> String {
    let reload = rig.gw.admin_client().post("/reload").unwrap();
    let text = String::from_utf8_lossy(&reload.body).into_owned();
    assert_eq!(reload.json()["ok"], false, "{text}");
    assert_no_url("/reload", &text);
    let status = rig.gw.admin_client().get("/status").unwrap();
    assert_no_url("/status", &String::from_utf8_lossy(&status.body));
    text
}

fn still_posts_to_the_first_url(rig: &Rig) {
    let before = rig.receiver.got().len();
    let r = alert(&rig.gw, KEY, "{}");
    assert_eq!(r.status, 200);
    assert!(wait_until(Duration::from_secs(5), || rig
        .receiver
        .got()
        .len()
        > before));
    let got = rig.receiver.got();
    assert!(
        got[before]
            .request_line
            .ends_with(&format!("/{HOOK_SECRET} HTTP/1.1")),
        "{:?}",
        got[before]
    );
}

#[test]
fn a_url_outside_hooks_base_is_a_load_error() {
    let rig = rig();
    rig.gw.secrets.set(
        "ALERTS_WEBHOOK_URL",
        &format!("https://hooks.example.com/services/T0ACME/B0ALERT/{HOOK_SECRET}"),
    );
    let e = refused_reload(&rig);
    assert!(
        e.contains("the url of webhook `alerts` does not start with egress.hooks_base"),
        "{e}"
    );
    // At the `url` reference in the policy.
    let (line, column) = policy()
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find("ALERTS_WEBHOOK_URL").map(|c| (i + 1, c + 1)))
        .unwrap();
    assert!(e.contains(&format!("policy.yaml:{line}:{column}: ")), "{e}");
    still_posts_to_the_first_url(&rig);
}

#[test]
fn a_literal_url_or_an_unknown_bot_is_a_policy_error() {
    let rig = rig();
    rig.gw.write_policy(&policy().replace(
        "url: { env: ALERTS_WEBHOOK_URL }",
        &format!(
            "url: {}",
            rig.receiver.url(&format!("/services/T0/B0/{HOOK_SECRET}"))
        ),
    ));
    let e = refused_reload(&rig);
    assert!(e.contains("literal secrets are not allowed"), "{e}");
    still_posts_to_the_first_url(&rig);

    rig.gw
        .write_policy(&policy().replace("bots: [helpdesk] }", "bots: [helpdesk, nobody] }"));
    let e = refused_reload(&rig);
    assert!(
        e.contains("webhook `alerts` names bot `nobody`, which is not defined"),
        "{e}"
    );
    still_posts_to_the_first_url(&rig);
}

/// A post counts against the bot's rate limits like a call: over them it is answered 429
/// `rate_limited` with Retry-After, and nothing reaches the webhook.
#[test]
fn a_post_over_the_bots_rate_limit_is_answered_locally() {
    let rig = rig();
    let helpdesk = helpdesk();
    rig.gw.write_policy(&policy().replace(
        &helpdesk,
        &format!("{helpdesk}    rate_limits: [{{ per: bot, rate: 1/min, burst: 1 }}]\n"),
    ));
    reload_ok(&rig.gw);
    let first = alert(&rig.gw, KEY, "{}");
    assert_eq!(first.status, 200, "{}", answer_text(&first));
    let second = alert(&rig.gw, KEY, "{}");
    assert_eq!(second.status, 429, "{}", answer_text(&second));
    assert_eq!(second.json()["error"], "rate_limited");
    assert!(second.header("retry-after").is_some());
    assert_eq!(
        rig.receiver.got().len(),
        1,
        "a post over the limit reached the webhook"
    );
    let lines = rig.gw.audit_lines(2);
    let last = lines.last().unwrap();
    assert_eq!(last["reason"], "rate_limited");
    assert_eq!(last["method"], "hooks.alerts");
    assert_eq!(last["rule"], "rate_limits[0] per bot 1/min burst 1");
}

/// Slack's 429 to a webhook post is relayed, and remembered: until its Retry-After passes,
/// the bot's posts to that webhook are answered locally (`slack_rate_limited`) and none
/// reaches it.
#[test]
fn a_webhook_slack_rate_limits_is_waited_out_locally() {
    let rig = rig();
    rig.gw.secrets.set(
        "ALERTS_WEBHOOK_URL",
        &rig.receiver
            .url(&format!("/busy/services/T0ACME/B0ALERT/{HOOK_SECRET}")),
    );
    reload_ok(&rig.gw);
    let first = alert(&rig.gw, KEY, MESSAGE);
    assert_eq!(first.status, 429, "{}", answer_text(&first));
    assert_eq!(first.header("retry-after"), Some("30"));
    assert_eq!(
        first.header("x-slackgate-reason"),
        None,
        "Slack's own answer is relayed"
    );
    let second = alert(&rig.gw, KEY, MESSAGE);
    assert_eq!(second.status, 429, "{}", answer_text(&second));
    assert_refused(&second, "slack_rate_limited");
    assert!(second.header("retry-after").is_some());
    assert_eq!(
        rig.receiver.got().len(),
        1,
        "a post reached the rate-limited webhook"
    );
    let lines = rig.gw.audit_lines(2);
    assert_eq!(lines[0]["upstream_status"], 429);
    assert_eq!(lines[1]["reason"], "slack_rate_limited");
    assert_eq!(lines[1]["method"], "hooks.alerts");
    assert_eq!(
        rig.gw
            .metric("slackgate_egress_slack_rate_limits_total{bot=\"helpdesk\"}"),
        1.0
    );
    for l in &lines {
        assert_no_url("audit", &l.to_string());
    }
}
