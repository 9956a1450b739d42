//! Shared state in a real `redis-server`: two gateway instances enforce one combined
//! limit, reject each other's replays and absorb Slack retries of delivered events;
//! Redis dying and coming back under load is survived as each route's failure policy
//! says, without hanging and without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use slackgate_testkit::{
    wait_until, MockBot, Redis, SignedRequest, TestGateway, TestGatewayBuilder,
};

const SECRET: &str = "redis-test-secret-0123456789abcdef";

fn policy(bot: &MockBot) -> String {
    format!(
        r#"version: 1
apps:
  app:
    signing_secrets: [{{ id: current, env: SECRET_A }}]
upstreams:
  bot: {{ targets: ["{bot}"] }}
routes:
  - name: limited
    path: /slack/limited
    app: app
    upstream: bot
    rate_limits: [{{ per: team, rate: 1/h, burst: 3 }}]
  - name: events
    path: /slack/events
    app: app
    upstream: bot
    dedupe: event_id
  - name: open
    path: /slack/open
    app: app
    upstream: bot
    state_failure: fail_open
    rate_limits: [{{ per: team, rate: 1000/s, burst: 1000 }}]
  - name: closed
    path: /slack/closed
    app: app
    upstream: bot
    state_failure: fail_closed
  - name: all
    path: /slack/all
    app: app
    upstream: bot
    dedupe: event_id
    rate_limits: [{{ per: team, rate: 1000/s, burst: 1000 }}, {{ per: user, rate: 1000/s, burst: 1000 }}]
"#,
        bot = bot.addr()
    )
}

fn gateway(bot: &MockBot, redis: SocketAddr) -> TestGateway {
    TestGatewayBuilder::new(&policy(bot))
        .secret("SECRET_A", SECRET)
        .config(&format!(
            "state: {{ backend: redis, redis: {{ url: \"redis://{redis}\", key_prefix: \"t{}:\", timeout: 100ms }} }}",
            redis.port()
        ))
        .start()
}

fn event(path: &str, id: &str) -> SignedRequest {
    let body = String::from_utf8(slackgate_testkit::fixture("event_message.json"))
        .unwrap()
        .replace("Ev0MESSAGE01", id);
    SignedRequest::new(path, body).sign(SECRET)
}

/// Slack's redelivery: the same body, signed again a little later, with the retry header.
fn retry(path: &str, id: &str, num: u32) -> SignedRequest {
    let body = String::from_utf8(slackgate_testkit::fixture("event_message.json"))
        .unwrap()
        .replace("Ev0MESSAGE01", id);
    SignedRequest::new(path, body)
        .sign_at(SECRET, slackgate_testkit::now_unix() + i64::from(num))
        .header("X-Slack-Retry-Num", &num.to_string())
        .header("X-Slack-Retry-Reason", "http_timeout")
}

#[test]
fn two_instances_share_one_limit_one_replay_cache_and_absorb_retries() {
    let redis = Redis::start();
    let bot = MockBot::start();
    let a = gateway(&bot, redis.addr);
    let b = gateway(&bot, redis.addr);

    // One combined limit: burst 3 across both instances.
    assert_eq!(
        a.client()
            .send(&event("/slack/limited", "EvL1"))
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        b.client()
            .send(&event("/slack/limited", "EvL2"))
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        a.client()
            .send(&event("/slack/limited", "EvL3"))
            .unwrap()
            .status,
        200
    );
    let r = b.client().send(&event("/slack/limited", "EvL4")).unwrap();
    assert_eq!(
        r.status, 429,
        "the second instance must see the first one's tokens"
    );
    assert_eq!(r.reason().as_deref(), Some("rate_limited"));

    // A request replayed to the other instance is rejected.
    let req = event("/slack/events", "EvR1");
    assert_eq!(a.client().send(&req).unwrap().status, 200);
    let r = b.client().send(&req).unwrap();
    assert_eq!(r.reason().as_deref(), Some("replayed"));

    // A Slack retry (same event id, new signature) of a delivered event is absorbed,
    // on either instance.
    bot.clear();
    assert_eq!(
        a.client()
            .send(&event("/slack/events", "EvD1"))
            .unwrap()
            .status,
        200
    );
    let r = b.client().send(&retry("/slack/events", "EvD1", 1)).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        bot.requests().len(),
        1,
        "the retry must not reach the bot again"
    );
    let last = b.audit_nth(4);
    assert_eq!(last["reason"], "deduplicated");
    assert_eq!(last["retry_num"], 1);
    assert_eq!(
        b.metric("slackgate_requests_total{reason=\"deduplicated\",route=\"events\"}"),
        1.0
    );
    assert_eq!(
        a.metric("slackgate_state_fallbacks_total{op=\"replay\"}"),
        0.0
    );
}

#[test]
fn undelivered_events_are_not_absorbed() {
    let redis = Redis::start();
    let bot = MockBot::start();
    bot.set_behavior(slackgate_testkit::BotBehavior::Status(
        500,
        b"down".to_vec(),
    ));
    let a = gateway(&bot, redis.addr);
    assert_eq!(
        a.client()
            .send(&event("/slack/events", "EvU1"))
            .unwrap()
            .status,
        500
    );
    bot.set_behavior(slackgate_testkit::BotBehavior::Echo);
    assert_eq!(
        a.client()
            .send(&retry("/slack/events", "EvU1", 1))
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        bot.requests().len(),
        2,
        "a failed delivery is retried to the bot"
    );
}

#[test]
fn local_dedupe_without_redis() {
    let bot = MockBot::start();
    let gw = TestGatewayBuilder::new(&policy(&bot))
        .secret("SECRET_A", SECRET)
        .start();
    assert_eq!(
        gw.client()
            .send(&event("/slack/events", "EvX"))
            .unwrap()
            .status,
        200
    );
    let r = gw.client().send(&retry("/slack/events", "EvX", 2)).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(bot.requests().len(), 1);
    assert_eq!(gw.audit_nth(2)["reason"], "deduplicated");
}

/// Redis is killed while requests flow: the fail_open route keeps answering from
/// local state (counted), the fail_closed route answers 503, no request takes longer
/// than a few timeouts, and when Redis is back the gateway uses it again on its own.
#[test]
fn redis_killed_and_restarted_under_load() {
    let mut redis = Redis::start();
    let bot = MockBot::start();
    let gw = gateway(&bot, redis.addr);
    let mut n = 0;
    let mut send = |path: &str| {
        n += 1;
        let started = Instant::now();
        let r = gw.client().send(&event(path, &format!("EvK{n}"))).unwrap();
        (r, started.elapsed())
    };
    for _ in 0..20 {
        assert_eq!(send("/slack/open").0.status, 200);
        assert_eq!(send("/slack/closed").0.status, 200);
    }
    redis.kill();
    let mut slowest = Duration::ZERO;
    let mut closed_503 = 0;
    for _ in 0..50 {
        let (open, t1) = send("/slack/open");
        assert_eq!(open.status, 200, "fail_open keeps serving");
        let (closed, t2) = send("/slack/closed");
        assert_eq!(closed.status, 503);
        assert_eq!(closed.reason().as_deref(), Some("state_unavailable"));
        closed_503 += 1;
        slowest = slowest.max(t1).max(t2);
    }
    eprintln!("redis down: 100 requests, slowest {slowest:?}, {closed_503} x 503 on fail_closed");
    assert!(
        slowest < Duration::from_secs(2),
        "a dead Redis must cost at most the timeout"
    );
    assert!(gw.metric("slackgate_state_fallbacks_total{op=\"replay\"}") >= 50.0);
    assert!(gw.metric("slackgate_state_fallbacks_total{op=\"rate_limit\"}") >= 1.0);
    let status = gw.admin_client().get("/status").unwrap().json();
    assert_eq!(status["state"]["backend"], "redis");

    // Back on the same address: recovery without a restart.
    let _redis = Redis::start_on(redis.addr);
    assert!(
        wait_until(Duration::from_secs(15), || send("/slack/closed").0.status
            == 200),
        "the gateway did not return to Redis"
    );
    let before = gw.metric("slackgate_state_fallbacks_total{op=\"replay\"}");
    for _ in 0..10 {
        assert_eq!(send("/slack/open").0.status, 200);
    }
    assert_eq!(
        gw.metric("slackgate_state_fallbacks_total{op=\"replay\"}"),
        before
    );
    assert_eq!(gw.metric("slackgate_state_circuit_open"), 0.0);
}

/// What one request cost Redis, watched with `MONITOR`: the commands sent to it, by name
/// in order, each one round trip (the gateway pipelines nothing), and the commands a script
/// ran inside Redis (from client `lua`), which are none.
fn cost(redis: SocketAddr, send: impl FnOnce()) -> (Vec<String>, Vec<String>) {
    use std::io::{BufRead, BufReader, Write};
    let mut monitor = std::net::TcpStream::connect(redis).unwrap();
    // Against a hang only: every line below is awaited, none is waited for by time.
    monitor
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    monitor.write_all(b"MONITOR\r\n").unwrap();
    let mut lines = BufReader::new(monitor).lines().map(Result::unwrap);
    assert_eq!(lines.next().as_deref(), Some("+OK"));
    send();
    // Every command before this one was shown before it.
    let marker = "slackgate-cost-counted";
    let client = redis::Client::open(format!("redis://{redis}")).unwrap();
    let echo: String = redis::cmd("ECHO")
        .arg(marker)
        .query(&mut client.get_connection().unwrap())
        .unwrap();
    assert_eq!(echo, marker);
    let (mut sent, mut inside) = (Vec::new(), Vec::new());
    for line in lines {
        // `+<time> [<db> <client>] "<command>" "<arg>"...`
        let (client, command) = line.split_once("] ").unwrap();
        if command.contains(marker) {
            break;
        }
        let name = command.split('"').nth(1).unwrap().to_lowercase();
        if client.ends_with(" lua") {
            inside.push(name);
        } else {
            sent.push(name);
        }
    }
    (sent, inside)
}

/// What an inbound decision costs in Redis round trips: one script for all its questions
/// (the replay check, the dedupe lookup, every rate limit), and for a route with `dedupe`,
/// after a 2xx, the delivered mark.
#[test]
fn round_trips_of_an_inbound_decision() {
    let redis = Redis::start();
    let bot = MockBot::start();
    let gw = gateway(&bot, redis.addr);
    let send = |path: &str, id: &str| {
        assert_eq!(gw.client().send(&event(path, id)).unwrap().status, 200);
    };
    // The script loaded once (`EVAL` on `NOSCRIPT`) before counting.
    send("/slack/open", "EvW1");
    let plain = cost(redis.addr, || send("/slack/closed", "EvW4"));
    let limited = cost(redis.addr, || send("/slack/open", "EvW2"));
    let dedupe = cost(redis.addr, || send("/slack/events", "EvW3"));
    let all = cost(redis.addr, || send("/slack/all", "EvW5"));
    eprintln!("replay only: {plain:?}\none rate limit: {limited:?}\ndedupe: {dedupe:?}\ndedupe and two rate limits: {all:?}");
    assert_eq!(plain, (vec!["evalsha".into()], vec!["set".into()]));
    let bucket = ["time", "hmget", "hset", "pexpire"];
    let inside = |parts: &[&[&str]]| -> Vec<String> {
        parts.concat().into_iter().map(str::to_owned).collect()
    };
    assert_eq!(
        limited,
        (vec!["evalsha".into()], inside(&[&["set"], &bucket]))
    );
    let marked = vec!["evalsha".to_owned(), "set".to_owned()];
    assert_eq!(dedupe, (marked.clone(), inside(&[&["set", "exists"]])));
    assert_eq!(
        all,
        (marked, inside(&[&["set", "exists"], &bucket, &bucket[1..]]))
    );
}
