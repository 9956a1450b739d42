//! Token rotation end to end, against the testkit's Slack stand-in with single-use refresh
//! tokens: the gateway mints a rotating bot's token from the first refresh token, refreshes
//! it before it expires (fake clock), keeps the pair sealed under `state.path` or in Redis,
//! carries on from the stored pair after a restart, never sends a refresh token twice, and
//! fails closed (`token_unavailable`, nothing reaches Slack) while it has no token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use slackgate_guard::{Clock, FakeClock};
use slackgate_testkit::creds::{HELPDESK_KEY as KEY, NOW};
use slackgate_testkit::{wait_until, Redis, Response, SlackApi, TestGateway, TestGatewayBuilder};

const CLIENT_ID: &str = "1234.5678";
const CLIENT_SECRET: &str = "planted0client0secret0value0abc";
const FIRST_REFRESH: &str = "xoxe-1-planted0first0refresh";
/// 32 bytes in base64.
const STATE_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const OTHER_STATE_KEY: &str = "HwAeHR0cGxoZGBcWFRQTEhEQDw4NDAsKCQgHBgUEAwI=";
/// Slack's rotating tokens live 12 hours.
const LIFETIME: u64 = 43_200;

fn policy() -> String {
    r#"version: 1
routes: []
bots:
  helpdesk:
    key: { env: HELPDESK_GATEWAY_KEY }
    token:
      rotation:
        client_id: "1234.5678"
        client_secret: { env: HELPDESK_CLIENT_SECRET }
        refresh_token: { env: HELPDESK_REFRESH_TOKEN }
    methods: [chat.postMessage]
"#
    .to_owned()
}

fn slack() -> SlackApi {
    SlackApi::builder()
        .token("xoxb-install-never-used", "T0ACME", &["chat:write"])
        .rotation(CLIENT_ID, CLIENT_SECRET, FIRST_REFRESH, LIFETIME)
        .start()
}

/// A gateway whose state lives in `state` (a directory or a Redis `state:` block).
fn builder(slack: &SlackApi, clock: &Arc<FakeClock>, state: &str, key: &str) -> TestGatewayBuilder {
    TestGatewayBuilder::new(&policy())
        .secret("HELPDESK_GATEWAY_KEY", KEY)
        .secret("HELPDESK_CLIENT_SECRET", CLIENT_SECRET)
        .secret("HELPDESK_REFRESH_TOKEN", FIRST_REFRESH)
        .secret("STATE_KEY", key)
        .clock(Arc::clone(clock) as Arc<dyn Clock>)
        .egress(&slack.url(), Some(slack.ca_file()))
        .config(state)
}

fn local_state(dir: &Path) -> String {
    format!(
        "state:\n  path: {}\n  encryption_key: {{ env: STATE_KEY }}\n",
        dir.display()
    )
}

fn post(gw: &TestGateway) -> Response {
    let body = r#"{"channel":"C0HELP","text":"hi"}"#;
    let req = format!(
        "POST /api/chat.postMessage HTTP/1.1\r\nHost: slackgate\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    gw.egress_client().raw(req.as_bytes()).expect("an answer")
}

/// The tokens Slack received `chat.postMessage` with, in order.
fn posted_with(slack: &SlackApi) -> Vec<String> {
    slack
        .received()
        .into_iter()
        .filter(|r| r.method == "chat.postMessage")
        .map(|r| r.token.unwrap_or_default())
        .collect()
}

/// Posts once and checks Slack got it with the `n`-th minted token (1-based).
fn assert_posts_with(gw: &TestGateway, slack: &SlackApi, n: usize) {
    let r = post(gw);
    assert_eq!(r.json()["ok"], true, "{}", String::from_utf8_lossy(&r.body));
    let issued = slack.access_tokens_issued();
    assert_eq!(
        posted_with(slack).last(),
        issued.get(n - 1),
        "the call did not carry minted token {n}"
    );
}

fn unavailable_records(gw: &TestGateway) -> Vec<serde_json::Value> {
    gw.audit_raw()
        .into_iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(&l).unwrap())
        .filter(|v| v["reason"] == "token_unavailable")
        .collect()
}

fn assert_unavailable(gw: &TestGateway, slack: &SlackApi, rule: &str) {
    let before = posted_with(slack).len();
    let records = unavailable_records(gw).len();
    let r = post(gw);
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"], "token_unavailable");
    assert_eq!(r.header("x-slackgate-reason"), Some("token_unavailable"));
    assert_eq!(
        posted_with(slack).len(),
        before,
        "a call without a token reached Slack"
    );
    assert!(
        wait_until(Duration::from_secs(5), || unavailable_records(gw).len()
            > records),
        "no audit record"
    );
    let rec = unavailable_records(gw).pop().unwrap();
    assert_eq!(rec["rule"], rule);
    assert_eq!(rec["bot"], "helpdesk");
    assert_eq!(rec["direction"], "egress");
}

fn refreshes(gw: &TestGateway, result: &str) -> f64 {
    gw.metric(&format!(
        "slackgate_token_refreshes_total{{bot=\"helpdesk\",result=\"{result}\"}}"
    ))
}

fn status_rotation(gw: &TestGateway) -> serde_json::Value {
    let s = gw.admin_client().get("/status").unwrap().json();
    s["egress"]["bots"]["helpdesk"].clone()
}

fn wait_presented(slack: &SlackApi, n: usize) {
    assert!(
        wait_until(Duration::from_secs(10), || slack
            .refresh_tokens_presented()
            .len()
            >= n),
        "the gateway did not refresh: presented {:?}",
        slack.refresh_tokens_presented().len()
    );
}

fn wait_minted(gw: &TestGateway, n: f64) {
    assert!(
        wait_until(Duration::from_secs(10), || refreshes(gw, "ok") >= n),
        "no new token was stored"
    );
}

/// No refresh token was ever presented twice.
fn assert_each_refresh_token_once(slack: &SlackApi) {
    let presented = slack.refresh_tokens_presented();
    let mut unique = presented.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        presented.len(),
        "a refresh token was sent twice"
    );
}

/// Every file under `dir`, as bytes.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn a_token_is_minted_then_refreshed_before_expiry_and_each_refresh_token_is_sent_once() {
    let slack = slack();
    let clock = Arc::new(FakeClock::at(NOW));
    let state = tempfile::tempdir().unwrap();
    let gw = builder(&slack, &clock, &local_state(state.path()), STATE_KEY).start();

    // At start the gateway trades the policy's first refresh token for a pair.
    wait_presented(&slack, 1);
    wait_minted(&gw, 1.0);
    assert_eq!(slack.refresh_tokens_presented(), vec![FIRST_REFRESH]);
    assert_posts_with(&gw, &slack, 1);
    let s = status_rotation(&gw);
    assert_eq!(s["token_state"], "active");
    assert_eq!(s["rotation"]["last_result"], "ok");
    assert!(
        s["token"]["rotation"]["refresh_token"] == "env:HELPDESK_REFRESH_TOKEN",
        "{s}"
    );
    assert_eq!(
        gw.metric("slackgate_token_expiry_timestamp_seconds{bot=\"helpdesk\"}"),
        (NOW + LIFETIME) as f64
    );
    assert_eq!(
        gw.metric("slackgate_token_refresh_stuck{bot=\"helpdesk\"}"),
        0.0
    );

    // Short of half its life, the token serves on.
    clock.advance(Duration::from_secs(LIFETIME / 2 - 10));
    assert_posts_with(&gw, &slack, 1);
    assert_eq!(slack.refresh_tokens_presented().len(), 1);

    // Half-way, it is refreshed with the stored refresh token, and calls switch over.
    clock.advance(Duration::from_secs(11));
    wait_presented(&slack, 2);
    wait_minted(&gw, 2.0);
    assert_eq!(
        slack.refresh_tokens_presented()[1],
        "xoxe-1-standin-refresh-1",
        "the second refresh did not use the refresh token Slack gave"
    );
    assert_posts_with(&gw, &slack, 2);
    clock.advance(Duration::from_secs(LIFETIME / 2 + 1));
    wait_presented(&slack, 3);
    wait_minted(&gw, 3.0);
    assert_posts_with(&gw, &slack, 3);
    assert_each_refresh_token_once(&slack);

    // No token, refresh token or client secret in /status, /metrics or the audit.
    let status = gw.admin_client().get("/status").unwrap().body;
    let shown = [
        status,
        gw.metrics().into_bytes(),
        gw.audit_raw().join("\n").into_bytes(),
    ];
    for text in &shown {
        for secret in slack
            .access_tokens_issued()
            .iter()
            .map(String::as_str)
            .chain([FIRST_REFRESH, "xoxe-1-standin-refresh", CLIENT_SECRET])
        {
            assert!(!contains(text, secret), "a credential is shown");
        }
    }
}

#[test]
fn the_stored_pair_survives_a_restart_and_holds_no_token_in_plain_text() {
    let slack = slack();
    let clock = Arc::new(FakeClock::at(NOW));
    let state = tempfile::tempdir().unwrap();
    let gw = builder(&slack, &clock, &local_state(state.path()), STATE_KEY).start();
    wait_minted(&gw, 1.0);
    assert_posts_with(&gw, &slack, 1);
    drop(gw);

    let files = files_under(state.path());
    assert!(files
        .iter()
        .any(|(p, _)| p.extension().is_some_and(|e| e == "sealed")));
    for (path, bytes) in &files {
        for secret in [
            "xoxe",
            "xoxb",
            "standin",
            FIRST_REFRESH,
            CLIENT_SECRET,
            STATE_KEY,
        ] {
            assert!(
                !contains(bytes, secret),
                "{} holds {secret:?} in plain text",
                path.display()
            );
        }
        #[cfg(unix)]
        if path.extension().is_some_and(|e| e == "sealed") {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{} is readable by others", path.display());
        }
    }

    // A new process carries on from the stored pair: no refresh at start, the same token.
    let gw = builder(&slack, &clock, &local_state(state.path()), STATE_KEY).start();
    assert_posts_with(&gw, &slack, 1);
    assert_eq!(slack.refresh_tokens_presented().len(), 1);
    // Its next refresh spends the stored refresh token, not the policy's spent one.
    clock.advance(Duration::from_secs(LIFETIME / 2 + 1));
    wait_presented(&slack, 2);
    wait_minted(&gw, 1.0);
    assert_eq!(
        slack.refresh_tokens_presented(),
        vec![FIRST_REFRESH, "xoxe-1-standin-refresh-1"]
    );
    assert_posts_with(&gw, &slack, 2);
    assert_each_refresh_token_once(&slack);
}

#[test]
fn a_wrong_encryption_key_is_a_start_up_error_not_garbage_tokens() {
    let slack = slack();
    let clock = Arc::new(FakeClock::at(NOW));
    let state = tempfile::tempdir().unwrap();
    let gw = builder(&slack, &clock, &local_state(state.path()), STATE_KEY).start();
    wait_minted(&gw, 1.0);
    drop(gw);

    let err = builder(&slack, &clock, &local_state(state.path()), OTHER_STATE_KEY)
        .try_start()
        .expect_err("started with the wrong key");
    assert!(
        err.contains("cannot be opened with state.encryption_key") && err.contains("helpdesk"),
        "{err}"
    );
    assert!(
        !err.contains(OTHER_STATE_KEY) && !err.contains(STATE_KEY),
        "{err}"
    );
    assert_eq!(
        slack.refresh_tokens_presented().len(),
        1,
        "a refresh token was spent"
    );
    assert!(posted_with(&slack).is_empty());

    // A missing key is a load error at its place in the config.
    let err = TestGatewayBuilder::new(&policy())
        .secret("HELPDESK_GATEWAY_KEY", KEY)
        .secret("HELPDESK_CLIENT_SECRET", CLIENT_SECRET)
        .secret("HELPDESK_REFRESH_TOKEN", FIRST_REFRESH)
        .egress(&slack.url(), Some(slack.ca_file()))
        .config(&local_state(state.path()))
        .try_start()
        .expect_err("started without the key");
    assert!(err.contains("`STATE_KEY` is not set"), "{err}");
}

#[test]
fn a_refused_refresh_is_stuck_not_retried_and_nothing_reaches_slack_until_fixed() {
    let slack = slack();
    let clock = Arc::new(FakeClock::at(NOW));
    let state = tempfile::tempdir().unwrap();
    let gw = builder(&slack, &clock, &local_state(state.path()), STATE_KEY)
        .secret("HELPDESK_REFRESH_TOKEN", "xoxe-1-spent-long-ago")
        .secret("GOOD_REFRESH_TOKEN", FIRST_REFRESH)
        .start();
    assert!(wait_until(Duration::from_secs(10), || refreshes(
        &gw,
        "invalid_refresh_token"
    ) == 1.0));
    assert_eq!(
        gw.metric("slackgate_token_refresh_stuck{bot=\"helpdesk\"}"),
        1.0
    );
    assert_unavailable(&gw, &slack, "rotation.pending");
    let s = status_rotation(&gw);
    assert_eq!(s["token_state"], "pending");
    assert_eq!(s["rotation"]["stuck"], "invalid_refresh_token");
    assert_eq!(
        gw.metric("slackgate_egress_token_state{bot=\"helpdesk\",state=\"pending\"}"),
        1.0
    );

    // Not a retry loop: hours later, still the one attempt.
    for _ in 0..5 {
        clock.advance(Duration::from_secs(3600));
        assert_unavailable(&gw, &slack, "rotation.pending");
    }
    assert_eq!(slack.refresh_tokens_presented().len(), 1);

    // A new refresh token in the policy (the app reinstalled) starts over.
    let before = gw.shared().current().generation;
    gw.write_policy(&policy().replace("HELPDESK_REFRESH_TOKEN", "GOOD_REFRESH_TOKEN"));
    assert!(wait_until(Duration::from_secs(10), || gw
        .shared()
        .current()
        .generation
        > before));
    wait_minted(&gw, 1.0);
    assert_posts_with(&gw, &slack, 1);
    assert_eq!(
        gw.metric("slackgate_token_refresh_stuck{bot=\"helpdesk\"}"),
        0.0
    );
}

#[test]
fn slack_busy_keeps_the_current_token_retries_later_and_an_expired_token_fails_closed() {
    let slack = slack();
    let clock = Arc::new(FakeClock::at(NOW));
    let state = tempfile::tempdir().unwrap();
    let gw = builder(&slack, &clock, &local_state(state.path()), STATE_KEY).start();
    wait_minted(&gw, 1.0);

    // Slack answers the refresh 429: retried after Retry-After, the current token serves.
    slack.rate_limit_for("oauth.v2.access", Duration::from_secs(3600));
    clock.advance(Duration::from_secs(LIFETIME / 2 + 1));
    assert!(wait_until(Duration::from_secs(10), || refreshes(
        &gw, "retry"
    ) >= 1.0));
    assert_posts_with(&gw, &slack, 1);
    assert_eq!(status_rotation(&gw)["rotation"]["last_result"], "retry");
    assert_eq!(
        gw.metric("slackgate_token_refresh_stuck{bot=\"helpdesk\"}"),
        0.0
    );
    // Each retry waits for Retry-After (the stand-in says up to an hour): the clock moves
    // a minute, and at most one more attempt follows.
    let tries = refreshes(&gw, "retry");
    clock.advance(Duration::from_secs(60));
    assert_posts_with(&gw, &slack, 1);
    assert!(refreshes(&gw, "retry") <= tries + 1.0);

    // Past its expiry with no new token: calls fail closed.
    clock.advance(Duration::from_secs(LIFETIME));
    assert_unavailable(&gw, &slack, "rotation.expired");
    assert_eq!(status_rotation(&gw)["token_state"], "expired");

    // Slack is back: the next retry mints a token and calls go on.
    slack.rate_limit_for("oauth.v2.access", Duration::from_millis(1));
    assert!(wait_until(Duration::from_secs(10), || {
        clock.advance(Duration::from_secs(300));
        refreshes(&gw, "ok") >= 2.0
    }));
    assert_posts_with(&gw, &slack, 2);
    assert_each_refresh_token_once(&slack);
}

#[test]
fn two_replicas_on_one_redis_refresh_exactly_once_and_both_use_the_new_token() {
    let redis = Redis::start();
    let slack = slack();
    let clock = Arc::new(FakeClock::at(NOW));
    let state = format!(
        "state:\n  backend: redis\n  redis: {{ url: \"redis://{}\", timeout: 1s }}\n  encryption_key: {{ env: STATE_KEY }}\n",
        redis.addr
    );
    let a = builder(&slack, &clock, &state, STATE_KEY).start();
    let b = builder(&slack, &clock, &state, STATE_KEY).start();
    // Both replicas get the one minted pair: one refreshed, the other read it.
    assert!(wait_until(Duration::from_secs(10), || {
        status_rotation(&a)["token_state"] == "active"
            && status_rotation(&b)["token_state"] == "active"
    }));
    assert_eq!(slack.refresh_tokens_presented(), vec![FIRST_REFRESH]);
    assert_eq!(refreshes(&a, "ok") + refreshes(&b, "ok"), 1.0);
    assert_posts_with(&a, &slack, 1);
    assert_posts_with(&b, &slack, 1);

    for round in 2..=3 {
        clock.advance(Duration::from_secs(LIFETIME / 2 + 1));
        assert!(wait_until(Duration::from_secs(10), || {
            let issued = slack.access_tokens_issued();
            let want = issued.get(round - 1).cloned();
            let at = |gw: &TestGateway| {
                post(gw);
                posted_with(&slack).last().cloned() == want
            };
            want.is_some() && at(&a) && at(&b)
        }));
        assert_eq!(slack.refresh_tokens_presented().len(), round);
        assert_eq!(slack.access_tokens_issued().len(), round);
        assert_eq!(refreshes(&a, "ok") + refreshes(&b, "ok"), round as f64);
    }
    assert_each_refresh_token_once(&slack);

    // Redis holds the pair sealed: no token in it in plain text.
    let dump = redis_get(&redis, "slackgate:token:helpdesk");
    assert!(dump.starts_with(b"SGT1"));
    for secret in ["xoxe", "xoxb", "standin"] {
        assert!(
            !contains(&dump, secret),
            "redis holds {secret:?} in plain text"
        );
    }
}

/// `GET key` on a raw connection.
fn redis_get(redis: &Redis, key: &str) -> Vec<u8> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut s = std::net::TcpStream::connect(redis.addr).unwrap();
    write!(s, "*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let len: usize = line
        .trim_start_matches('$')
        .trim()
        .parse()
        .expect("a value");
    let mut buf = vec![0; len];
    r.read_exact(&mut buf).unwrap();
    buf
}
