//! Secret custody across replicas, in a real `redis-server` the test starts: a response
//! URL and a workflow key minted by the inbound door of replica A (a slash command and a
//! `function_executed` event on a route with `response_urls: custody` and
//! `workflow_tokens: custody`) work at the egress door of replica B, which holds neither.
//! Slack's five uses count across both replicas (never a sixth at the Slack stand-in), a
//! function execution completed on A ends its keys on B, and with Redis down a capability
//! B cannot look up is refused while one A minted still works on A. The same against a
//! three-master Redis Cluster, where the keys of one capability live on several slots.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use slackgate_testkit::creds::{HELPDESK_KEY as KEY, HELPDESK_TOKEN as TOKEN, SIGNING_SECRET};
use slackgate_testkit::{
    MockBot, Recorded, Redis, RedisCluster, Response, SignedRequest, SlackApi, TestGateway,
    TestGatewayBuilder,
};

const RESIGN: &str = "bot-only-5ecret-of-the-helpdesk-bot";
const WORKFLOW_TOKEN: &str = "xwfp-2222-standin-workflow-token";
const EXECUTION: &str = "Fx0EXEC0001";

fn policy(bot: &MockBot) -> String {
    format!(
        r#"version: 1
{head}bots:
  helpdesk:
    app: helpdesk
    methods: [response_url, chat.postMessage, functions.completeSuccess]
    channels: [C0HELP]
    team: T0ACME
    key: {{ env: HELPDESK_GATEWAY_KEY }}
    token: {{ env: HELPDESK_BOT_TOKEN }}
routes:
  - name: custody
    path: /slack/custody
    app: helpdesk
    upstream: bot
    resign: {{ env: HELPDESK_BOT_SIGNING_SECRET }}
    bot: helpdesk
    response_urls: custody
    workflow_tokens: custody
  - name: custody-closed
    path: /slack/closed
    app: helpdesk
    upstream: bot
    state_failure: fail_closed
    resign: {{ env: HELPDESK_BOT_SIGNING_SECRET }}
    bot: helpdesk
    response_urls: custody
"#,
        head = slackgate_testkit::policy::helpdesk_to("HELPDESK_SECRET", "bot", bot.addr()),
    )
}

struct Rig {
    slack: SlackApi,
    bot: MockBot,
    /// The standalone Redis (`None` for the cluster).
    redis: Option<Redis>,
    _cluster: Option<RedisCluster>,
    a: TestGateway,
    b: TestGateway,
}

/// A replica reaching Redis as the `state.redis` YAML `redis` says.
fn replica(bot: &MockBot, slack: &SlackApi, redis: &str) -> TestGateway {
    TestGatewayBuilder::new(&policy(bot))
        .secret("HELPDESK_SECRET", SIGNING_SECRET)
        .secret("HELPDESK_BOT_SIGNING_SECRET", RESIGN)
        .secret("HELPDESK_GATEWAY_KEY", KEY)
        .secret("HELPDESK_BOT_TOKEN", TOKEN)
        .slack(slack)
        .hooks_base(&format!("https://{}/", slack.addr()))
        .egress_public_url()
        .config(&format!("state: {{ backend: redis, redis: {redis} }}"))
        .start()
}

/// Two replicas on a standalone Redis, or on a three-master cluster.
fn rig_on(cluster: bool) -> Rig {
    let slack = SlackApi::builder()
        .token(TOKEN, "T0ACME", &["chat:write"])
        .workflow_token(WORKFLOW_TOKEN, "T0ACME", EXECUTION)
        .start();
    let bot = MockBot::start();
    let (redis, cluster, yaml) = if cluster {
        let c = RedisCluster::start();
        let yaml = format!(
            "{{ url: \"redis://{}\", mode: cluster, timeout: 500ms }}",
            c.seed()
        );
        (None, Some(c), yaml)
    } else {
        let r = Redis::start();
        let yaml = format!(
            "{{ url: \"redis://{}\", key_prefix: \"c{}:\", timeout: 200ms }}",
            r.addr,
            r.addr.port()
        );
        (Some(r), None, yaml)
    };
    let a = replica(&bot, &slack, &yaml);
    let b = replica(&bot, &slack, &yaml);
    Rig {
        slack,
        bot,
        redis,
        _cluster: cluster,
        a,
        b,
    }
}

fn rig() -> Rig {
    rig_on(false)
}

/// What the bot received for one request to `gw`'s inbound `path`.
fn deliver(rig: &Rig, gw: &TestGateway, path: &str, body: String) -> Recorded {
    rig.bot.clear();
    let r = gw
        .client()
        .send(&SignedRequest::new(path, body).sign(SIGNING_SECRET))
        .unwrap();
    assert_eq!(r.status, 200, "{path}: {:?}", r.reason());
    let got = rig.bot.requests();
    assert_eq!(got.len(), 1);
    got.into_iter().next().unwrap()
}

/// A `/ticket` command (`n` makes each body, so each signature, distinct) whose response
/// URL is `url`.
fn command(url: &str, n: u32) -> String {
    let url: String = form_urlencoded::byte_serialize(url.as_bytes()).collect();
    format!(
        "token=x&team_id=T0ACME&channel_id=C0HELP&user_id=U0333&command=%2Fticket&text=n{n}&api_app_id=A0HELPDESK&response_url={url}&trigger_id=1.2.{n}"
    )
}

/// The path (`/respond/<capability>`) of the response URL the bot received.
fn respond_path(got: &Recorded) -> String {
    let url = form_urlencoded::parse(&got.body)
        .find(|(k, _)| k == "response_url")
        .unwrap()
        .1
        .into_owned();
    let rest = &url[url.find("://").unwrap() + 3..];
    let path = rest[rest.find('/').unwrap()..].to_owned();
    assert!(path.starts_with("/respond/") && path.len() == 49, "{url}");
    path
}

/// A stand-in response URL taken into custody by replica `gw`'s inbound door: Slack's
/// URL and the path the bot posts to.
fn minted_response_url(rig: &Rig, gw: &TestGateway, path: &str, n: u32) -> (String, String) {
    let url = rig.slack.response_url("T0ACME");
    let got = deliver(rig, gw, path, command(&url, n));
    (url, respond_path(&got))
}

fn respond(gw: &TestGateway, path: &str, text: &str) -> Response {
    let body = format!(r#"{{"text":"{text}"}}"#);
    gw.egress_post(path, &[("Content-Type", "application/json")], &body)
}

fn assert_refused(r: &Response, reason: &str, status: u16) {
    let body = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, status, "{body}");
    assert_eq!(r.json()["error"], reason, "{body}");
}

fn fallbacks(gw: &TestGateway, op: &str) -> f64 {
    gw.metric(&format!("slackgate_state_fallbacks_total{{op=\"{op}\"}}"))
}

#[test]
fn a_response_url_minted_on_one_replica_is_used_five_times_across_both() {
    five_uses_across_both(&rig());
}

fn five_uses_across_both(rig: &Rig) {
    let (url, path) = minted_response_url(rig, &rig.a, "/slack/custody", 1);
    // B holds nothing of it: it finds it in Redis.
    let r = respond(&rig.b, &path, "first, on B");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let got = rig.slack.posts_to(&url);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, br#"{"text":"first, on B"}"#);
    let rec = rig.b.audit_nth(1);
    assert_eq!(
        (
            &rec["bot"],
            &rec["method"],
            &rec["reason"],
            &rec["channel_id"]
        ),
        (
            &"helpdesk".into(),
            &"response_url".into(),
            &"allowed".into(),
            &"C0HELP".into()
        ),
        "{rec}"
    );
    for (i, gw) in [&rig.a, &rig.b, &rig.a, &rig.b].into_iter().enumerate() {
        let r = respond(gw, &path, &format!("use {}", i + 2));
        assert_eq!(r.status, 200, "use {}", i + 2);
    }
    assert_eq!(rig.slack.posts_to(&url).len(), 5);
    // The sixth, on either replica, reaches nothing.
    for gw in [&rig.a, &rig.b] {
        assert_refused(&respond(gw, &path, "sixth"), "response_url_invalid", 404);
    }
    assert_eq!(rig.slack.posts_to(&url).len(), 5);
    // Slack's URL showed nowhere the bots or the operator see.
    let secret = &url[url.find("/commands/").unwrap()..];
    for gw in [&rig.a, &rig.b] {
        assert!(!gw.audit_raw().join("\n").contains(secret));
        assert_eq!(fallbacks(gw, "custody"), 0.0);
        assert_eq!(fallbacks(gw, "rate_limit"), 0.0);
    }
}

#[test]
fn uses_race_across_replicas_and_never_reach_six() {
    let rig = rig();
    let (url, path) = minted_response_url(&rig, &rig.a, "/slack/custody", 1);
    // Twelve posts at once, six on each replica: five go, whoever sends them.
    let answers: Vec<u16> = std::thread::scope(|s| {
        let posts: Vec<_> = (0..12)
            .map(|i| {
                let gw = if i % 2 == 0 { &rig.a } else { &rig.b };
                let path = &path;
                s.spawn(move || respond(gw, path, &format!("race {i}")).status)
            })
            .collect();
        posts.into_iter().map(|p| p.join().unwrap()).collect()
    });
    assert_eq!(
        answers.iter().filter(|s| **s == 200).count(),
        5,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|s| **s == 404).count(),
        7,
        "{answers:?}"
    );
    assert_eq!(rig.slack.posts_to(&url).len(), 5);
}

/// A `function_executed` event whose token the stand-in grants for [`EXECUTION`].
fn function_executed(event_id: &str) -> String {
    String::from_utf8(slackgate_testkit::fixture("event_function_executed.json"))
        .unwrap()
        .replace(
            "xwfp-0000000000-0000000000000-0000000000000-fixturenotarealtoken0000000000",
            WORKFLOW_TOKEN,
        )
        .replace("Ev0FUNC0001", event_id)
}

fn workflow_key(got: &Recorded) -> String {
    let json: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    let key = json["event"]["bot_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(key.starts_with("sgw-"), "{key}");
    key
}

fn chat(gw: &TestGateway, key: &str) -> Response {
    gw.egress_post(
        "/api/chat.postMessage",
        &[
            ("Authorization", &format!("Bearer {key}")),
            ("Content-Type", "application/json; charset=utf-8"),
        ],
        r#"{"channel":"C0HELP","text":"from the workflow step"}"#,
    )
}

#[test]
fn a_workflow_key_minted_on_one_replica_works_on_the_other_until_completed() {
    workflow_key_ended_everywhere(&rig());
}

/// `gw`'s audit records of `chat.postMessage` calls, once there are `n`.
fn chat_records(gw: &TestGateway, n: usize) -> Vec<serde_json::Value> {
    let records = || -> Vec<serde_json::Value> {
        gw.audit_raw()
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["method"] == "chat.postMessage")
            .collect()
    };
    let there =
        slackgate_testkit::wait_until(std::time::Duration::from_secs(5), || records().len() >= n);
    assert!(there, "fewer than {n} chat.postMessage records");
    records()
}

fn workflow_key_ended_everywhere(rig: &Rig) {
    let key = workflow_key(&deliver(
        rig,
        &rig.a,
        "/slack/custody",
        function_executed("Ev0FUNC0001"),
    ));
    // A second key of the same execution (Slack retried the event): never used before the
    // execution ends.
    let unused = workflow_key(&deliver(
        rig,
        &rig.a,
        "/slack/custody",
        function_executed("Ev0FUNC0002"),
    ));
    let r = chat(&rig.b, &key);
    assert_eq!(r.json()["ok"], true, "{}", String::from_utf8_lossy(&r.body));
    let sent = rig.slack.received();
    assert_eq!(sent.last().unwrap().token.as_deref(), Some(WORKFLOW_TOKEN));
    assert_eq!(chat_records(&rig.b, 1)[0]["bot"], "helpdesk");

    // Completed on A: ended on B too, before A's answer reached the bot.
    let body = format!("token={key}&function_execution_id={EXECUTION}&outputs=%7B%7D");
    let r = rig.a.egress_post(
        "/api/functions.completeSuccess",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &body,
    );
    assert_eq!(r.json()["ok"], true, "{}", String::from_utf8_lossy(&r.body));
    let before = rig.slack.count();
    for k in [&key, &unused] {
        assert_refused(&chat(&rig.b, k), "unknown_bot", 200);
        assert_refused(&chat(&rig.a, k), "unknown_bot", 200);
    }
    assert_eq!(rig.slack.count(), before, "nothing reached Slack");
    let rec = &chat_records(&rig.b, 3)[1];
    assert_eq!(
        (&rec["reason"], &rec["rule"], &rec["bot"]),
        (
            &"unknown_bot".into(),
            &"key".into(),
            &serde_json::Value::Null
        ),
        "{rec}"
    );
    let seen = format!("{}\n{}", rig.a.audit_raw().join("\n"), rig.b.metrics());
    assert!(!seen.contains(WORKFLOW_TOKEN));
}

/// A command (`n`) on A's `fail_closed` custody route is answered 503
/// `state_unavailable` and reaches neither the bot nor Slack.
fn refused_on_the_fail_closed_route(rig: &Rig, n: u32) {
    rig.bot.clear();
    let url = rig.slack.response_url("T0ACME");
    let r = rig
        .a
        .client()
        .send(&SignedRequest::new("/slack/closed", command(&url, n)).sign(SIGNING_SECRET))
        .unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.reason().as_deref(), Some("state_unavailable"));
    assert!(rig.bot.requests().is_empty());
    assert!(rig.slack.posts_to(&url).is_empty());
}

#[test]
fn with_redis_down_only_the_minting_replica_honours_its_capabilities() {
    let mut rig = rig();
    let (url, path) = minted_response_url(&rig, &rig.a, "/slack/custody", 1);
    rig.redis.as_mut().unwrap().kill();
    // B cannot vouch for it: refused, nothing sent, counted.
    assert_refused(&respond(&rig.b, &path, "on B"), "response_url_invalid", 404);
    assert!(rig.slack.posts_to(&url).is_empty());
    assert_eq!(fallbacks(&rig.b, "custody"), 1.0);
    // A minted it: A's own count decides.
    let r = respond(&rig.a, &path, "on A");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(rig.slack.posts_to(&url).len(), 1);
    assert!(fallbacks(&rig.a, "rate_limit") >= 1.0);

    // Minting while Redis is down: forwarded on a fail_open route (the capability works on
    // this replica only, counted); a fail_closed route forwards nothing.
    let (url2, path2) = minted_response_url(&rig, &rig.a, "/slack/custody", 2);
    assert_eq!(fallbacks(&rig.a, "custody"), 1.0);
    assert_eq!(respond(&rig.a, &path2, "x").status, 200);
    assert_eq!(rig.slack.posts_to(&url2).len(), 1);
    refused_on_the_fail_closed_route(&rig, 3);
}

#[test]
fn a_capability_redis_refuses_to_keep_follows_the_routes_state_failure() {
    let rig = rig();
    // The gateway's Redis user may keep replay checks and nothing else: the capability
    // writes, lookups and the gate are refused (NOPERM) while the replay check passes.
    let addr = rig.redis.as_ref().unwrap().addr;
    let client = redis::Client::open(format!("redis://{addr}")).unwrap();
    let mut admin = client.get_connection().unwrap();
    let replay_only = format!("~c{}:replay:*", addr.port());
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg("default")
        .arg("resetkeys")
        .arg(&replay_only)
        .query::<()>(&mut admin)
        .unwrap();

    // fail_open: forwarded, counted; the capability works on the replica that minted it.
    let (url, path) = minted_response_url(&rig, &rig.a, "/slack/custody", 1);
    assert_eq!(fallbacks(&rig.a, "custody"), 1.0);
    assert_refused(&respond(&rig.b, &path, "on B"), "response_url_invalid", 404);
    assert_eq!(fallbacks(&rig.b, "custody"), 1.0);
    assert_eq!(respond(&rig.a, &path, "on A").status, 200);
    assert_eq!(rig.slack.posts_to(&url).len(), 1);

    // fail_closed: refused before anything reaches the bot.
    refused_on_the_fail_closed_route(&rig, 2);
    // A's records: the minting request, its post, this one.
    let rec = rig.a.audit_nth(3);
    assert_eq!(
        (&rec["route"], &rec["rule"]),
        (&"custody-closed".into(), &"state.custody".into()),
        "{rec}"
    );
}

/// The same on a three-master Redis Cluster: a capability's record, its uses and its
/// execution's end live on whichever slots their keys hash to, and the gate's script finds
/// a response URL's uses and an execution's end on its bot's slot.
#[test]
fn capabilities_are_shared_through_a_redis_cluster() {
    let rig = rig_on(true);
    five_uses_across_both(&rig);
    workflow_key_ended_everywhere(&rig);
}
