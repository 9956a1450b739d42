//! Secret custody at the inbound door, end to end: a route with `resign` forwards the
//! gateway's own signature (over the body as forwarded, verifiable with the route's
//! secret and not with Slack's) and no Slack signature header; with `response_urls` and
//! `workflow_tokens` in custody, the bot receives capabilities held in the guard for the
//! route's bot and nothing else changes; a route without `resign` forwards byte for byte.
//! Both paths: the fast path and the pingora hand-over.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;

use slackgate_guard::ResponseUrl;
use slackgate_slack::{verify, SigningKey};
use slackgate_testkit::creds::{HELPDESK_KEY, HELPDESK_TOKEN, SIGNING_SECRET};
use slackgate_testkit::policy::helpdesk_to;
use slackgate_testkit::{
    fixture, free_port, now_unix, MockBot, Recorded, SignedRequest, TestGateway, TestGatewayBuilder,
};

/// The secret the bot verifies with (never one of the app's signing secrets).
const RESIGN: &str = "bot-only-5ecret-of-the-helpdesk-bot";
const PUBLIC_URL: &str = "http://bots.example:8081/";

fn gateway(bot: &MockBot, fast_path: bool) -> TestGateway {
    let policy = format!(
        r#"version: 1
{head}bots:
  helpdesk:
    app: helpdesk
    key: {{ env: HELPDESK_GATEWAY_KEY }}
    token: {{ env: HELPDESK_BOT_TOKEN }}
    methods: [chat.postMessage]
routes:
  - name: custody
    path: /slack/custody
    app: helpdesk
    upstream: bot
    resign: {{ env: HELPDESK_BOT_SIGNING_SECRET }}
    bot: helpdesk
    response_urls: custody
    workflow_tokens: custody
  - name: resigned
    path: /slack/resigned
    app: helpdesk
    upstream: bot
    resign: {{ env: HELPDESK_BOT_SIGNING_SECRET }}
  - name: shadow
    path: /slack/shadow
    app: helpdesk
    upstream: bot
    mode: shadow
    allow_unverified_shadow: true
    resign: {{ env: HELPDESK_BOT_SIGNING_SECRET }}
    bot: helpdesk
    response_urls: custody
  - name: plain
    path: /slack/plain
    app: helpdesk
    upstream: bot
"#,
        head = helpdesk_to("HELPDESK_SECRET", "bot", bot.addr()),
    );
    TestGatewayBuilder::new(&policy)
        .secret("HELPDESK_SECRET", SIGNING_SECRET)
        .secret("HELPDESK_BOT_SIGNING_SECRET", RESIGN)
        .secret("HELPDESK_GATEWAY_KEY", HELPDESK_KEY)
        .secret("HELPDESK_BOT_TOKEN", HELPDESK_TOKEN)
        .config(&format!(
            "egress:\n  listen: {{ addr: {} }}\n  slack_api: http://127.0.0.1:9/api/\n  public_url: {PUBLIC_URL}\n",
            free_port()
        ))
        .fast_path(fast_path)
        .start()
}

/// A request signed with `secret`, each at another second of the window (the replay cache
/// refuses the same body signed twice at the same one).
fn signed(path: &str, name: &str, secret: &str) -> SignedRequest {
    static BASE: OnceLock<i64> = OnceLock::new();
    static AGO: AtomicI64 = AtomicI64::new(0);
    let base = *BASE.get_or_init(now_unix);
    let ago = AGO.fetch_add(1, Ordering::Relaxed);
    assert!(ago < 200, "more requests than the signature window holds");
    SignedRequest::fixture(path, name).sign_at(secret, base - ago)
}

/// Sends a fixture signed with Slack's secret and returns what the bot received.
fn deliver(gw: &TestGateway, bot: &MockBot, path: &str, name: &str) -> Recorded {
    bot.clear();
    let r = gw
        .client()
        .send(&signed(path, name, SIGNING_SECRET))
        .unwrap();
    assert_eq!(r.status, 200, "{name} on {path}: {:?}", r.reason());
    let got = bot.requests();
    assert_eq!(got.len(), 1, "{name} on {path}");
    got.into_iter().next().unwrap()
}

/// The request carries exactly one signature and one timestamp, the gateway's: fresh,
/// over the body as received, verifiable with the resign secret and not with Slack's.
fn assert_resigned(got: &Recorded) {
    let count = |n: &str| got.headers.iter().filter(|(k, _)| k == n).count();
    assert_eq!(count("x-slack-signature"), 1);
    assert_eq!(count("x-slack-request-timestamp"), 1);
    let sig = got.header("x-slack-signature").unwrap();
    let ts = got.header("x-slack-request-timestamp").unwrap();
    let now = now_unix();
    assert!((ts.parse::<i64>().unwrap() - now).abs() <= 60, "stale {ts}");
    let resign = [SigningKey::new("resign", RESIGN.as_bytes()).unwrap()];
    let slack = [SigningKey::new("slack", SIGNING_SECRET.as_bytes()).unwrap()];
    let check = |keys: &[SigningKey]| {
        verify(
            keys,
            Some(sig.as_bytes()),
            Some(ts.as_bytes()),
            &got.body,
            now,
            300,
        )
        .is_ok()
    };
    assert!(check(&resign), "the resign secret must verify it");
    assert!(!check(&slack), "Slack's secret must not verify it");
}

fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn payload_json(body: &[u8]) -> serde_json::Value {
    let payload = form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .unwrap()
        .1;
    serde_json::from_str(&payload).unwrap()
}

/// A capability URL: the public URL, `respond/`, 40 lower-case hex digits.
fn capability_of(url: &str) -> &str {
    let cap = url
        .strip_prefix(PUBLIC_URL)
        .and_then(|r| r.strip_prefix("respond/"))
        .unwrap_or_else(|| panic!("not a capability URL: {url}"));
    assert_eq!(cap.len(), 40);
    assert!(cap
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    cap
}

fn audit_holds_no_secret(gw: &TestGateway) {
    for line in gw.audit_raw() {
        assert!(!line.contains("hooks.slack.com"), "{line}");
        assert!(!line.contains("xwfp-"), "{line}");
        assert!(!line.contains("respond/"), "{line}");
    }
}

fn custody_round(fast_path: bool) {
    let bot = MockBot::start();
    let gw = gateway(&bot, fast_path);
    let now = || gw.shared().guard.now_secs();
    let custody = || gw.shared().guard.custody();

    // A slash command: its response URL becomes a capability held for the bot and the
    // command's channel and team; every other field is as Slack sent it.
    let sent = fixture("command_ticket.form");
    let got = deliver(&gw, &bot, "/slack/custody", "command_ticket.form");
    assert_resigned(&got);
    let (want, have) = (form_pairs(&sent), form_pairs(&got.body));
    assert_eq!(want.len(), have.len());
    let mut caps = Vec::new();
    for ((k, v), (k2, v2)) in want.iter().zip(&have) {
        assert_eq!(k, k2);
        if k == "response_url" {
            caps.push(capability_of(v2).to_owned());
            let held = custody().response_url(&caps[0], "helpdesk", now()).unwrap();
            assert_eq!(
                held,
                ResponseUrl {
                    bot: "helpdesk".into(),
                    channel: Some("C0HELP".into()),
                    team: Some("T0ACME".into()),
                    url: v.as_str().into(),
                }
            );
            assert!(custody()
                .response_url(&caps[0], "reporter", now())
                .is_none());
        } else {
            assert_eq!(v, v2, "{k}");
        }
    }
    assert_eq!(caps.len(), 1);
    // Only the response_url's bytes changed.
    let sent_text = String::from_utf8(sent).unwrap();
    let cap_url: String =
        form_urlencoded::byte_serialize(format!("{PUBLIC_URL}respond/{}", caps[0]).as_bytes())
            .collect();
    assert_eq!(
        String::from_utf8(got.body.clone()).unwrap(),
        sent_text.replace(
            "https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT0ACME%2F1234%2Fabcd",
            &cap_url
        )
    );

    // An interactivity payload: the JSON's response_url, in place.
    let got = deliver(&gw, &bot, "/slack/custody", "block_actions.form");
    assert_resigned(&got);
    let mut have = payload_json(&got.body);
    let mut want = payload_json(&fixture("block_actions.form"));
    let cap = capability_of(have["response_url"].as_str().unwrap()).to_owned();
    let held = custody().response_url(&cap, "helpdesk", now()).unwrap();
    assert_eq!(held.url.as_ref(), want["response_url"].as_str().unwrap());
    have["response_url"] = serde_json::Value::Null;
    want["response_url"] = serde_json::Value::Null;
    assert_eq!(have, want);

    // A custom workflow step: the event's workflow token becomes an `sgw-` key held for
    // the bot and the function execution.
    let got = deliver(&gw, &bot, "/slack/custody", "event_function_executed.json");
    assert_resigned(&got);
    let mut have: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    let mut want: serde_json::Value =
        serde_json::from_slice(&fixture("event_function_executed.json")).unwrap();
    let key = have["event"]["bot_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(key.starts_with("sgw-") && key.len() == 44, "{key}");
    let held = custody().workflow_token(&key, now()).unwrap();
    assert_eq!(&*held.bot, "helpdesk");
    assert_eq!(&*held.function_execution_id, "Fx0EXEC0001");
    assert_eq!(
        held.token.as_ref(),
        want["event"]["bot_access_token"].as_str().unwrap()
    );
    have["event"]["bot_access_token"] = serde_json::Value::Null;
    want["event"]["bot_access_token"] = serde_json::Value::Null;
    assert_eq!(have, want);

    // Interactivity from a function's context: its token too.
    let got = deliver(&gw, &bot, "/slack/custody", "block_actions_function.form");
    assert_resigned(&got);
    let key = payload_json(&got.body)["bot_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let held = custody().workflow_token(&key, now()).unwrap();
    assert_eq!(&*held.function_execution_id, "Fx0EXEC0001");
    assert!(held.token.starts_with("xwfp-"));

    // `resign` alone: the body is Slack's, byte for byte; only the signature is new.
    let got = deliver(&gw, &bot, "/slack/resigned", "command_ticket.form");
    assert_resigned(&got);
    assert_eq!(got.body, fixture("command_ticket.form"));

    // No `resign`: byte for byte, Slack's own signature headers as sent.
    let req = signed("/slack/plain", "command_ticket.form", SIGNING_SECRET);
    bot.clear();
    assert_eq!(gw.client().send(&req).unwrap().status, 200);
    let got = bot.requests().pop().unwrap();
    assert_eq!(got.body, req.body);
    assert_eq!(
        got.header("x-slack-signature"),
        req.signature.as_deref(),
        "a route without resign forwards Slack's signature"
    );
    assert_eq!(
        got.header("x-slack-request-timestamp"),
        req.timestamp.as_deref()
    );

    // A request no secret verified, forwarded by a shadow route: nothing taken into
    // custody, nothing signed, and Slack's (forged) headers dropped.
    let (held_before, _, _) = custody().held();
    let forged = signed(
        "/slack/shadow",
        "command_ticket.form",
        "not-the-signing-secret-at-all!!!",
    );
    bot.clear();
    assert_eq!(gw.client().send(&forged).unwrap().status, 200);
    let got = bot.requests().pop().unwrap();
    assert_eq!(got.body, forged.body);
    assert!(got.header("x-slack-signature").is_none());
    assert!(got.header("x-slack-request-timestamp").is_none());
    assert_eq!(custody().held().0, held_before);

    audit_holds_no_secret(&gw);
}

#[test]
fn custody_on_the_fast_path() {
    custody_round(true);
}

#[test]
fn custody_through_the_pingora_hand_over() {
    custody_round(false);
}

/// A view submission whose modal asked for a conversation (`response_url_enabled`): every
/// `response_urls[].response_url` becomes a capability held for the channel beside it, and
/// nothing else in the payload changes.
#[test]
fn a_view_submissions_response_urls_are_each_held_for_their_channel() {
    let bot = MockBot::start();
    let gw = gateway(&bot, true);
    let mut payload = payload_json(&fixture("view_submission.form"));
    let entry = |channel: &str, n: u32| {
        serde_json::json!({
            "block_id": "b_conv",
            "action_id": "conv",
            "channel_id": channel,
            "response_url": format!("https://hooks.slack.com/app/T0ACME/{n}/vs{n}"),
        })
    };
    payload["response_urls"] = serde_json::json!([entry("C0HELP", 1), entry("C0OPS", 2)]);
    let json = serde_json::to_string(&payload).unwrap();
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &json)
        .finish();
    bot.clear();
    let req = SignedRequest::new("/slack/custody", body).sign(SIGNING_SECRET);
    let r = gw.client().send(&req).unwrap();
    assert_eq!(r.status, 200, "{:?}", r.reason());
    let got = bot.requests().pop().unwrap();
    assert_resigned(&got);
    let mut have = payload_json(&got.body);
    let guard = &gw.shared().guard;
    for (i, channel) in ["C0HELP", "C0OPS"].into_iter().enumerate() {
        let url = have["response_urls"][i]["response_url"]
            .as_str()
            .unwrap()
            .to_owned();
        let held = guard
            .custody()
            .response_url(capability_of(&url), "helpdesk", guard.now_secs())
            .unwrap();
        assert_eq!(held.channel.as_deref(), Some(channel));
        assert_eq!(
            held.url.as_ref(),
            payload["response_urls"][i]["response_url"]
                .as_str()
                .unwrap()
        );
        have["response_urls"][i]["response_url"] =
            payload["response_urls"][i]["response_url"].clone();
    }
    assert_eq!(have, payload);
    audit_holds_no_secret(&gw);
}
