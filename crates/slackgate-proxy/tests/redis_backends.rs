//! Shared state in production Redis set-ups, each a real server the test starts itself:
//! a TLS-only Redis with an ACL user (and the default user off), a three-master Redis
//! Cluster, and a master with a replica behind a Sentinel, failed over while the gateways
//! run. Against each, two gateway replicas share one replay cache and one combined limit.
//!
//! Wrong credentials are one clear start-up error naming the Redis (never the password),
//! and a password changed under a running replica makes `/readyz` say so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use redis::IntoConnectionInfo;

use slackgate_testkit::{
    wait_until, MockBot, Redis, RedisCluster, Response, Sentinel, SignedRequest, SlackApi, TestCa,
    TestGateway, TestGatewayBuilder,
};

const SECRET: &str = "redis-backends-secret-0123456789abcdef";
const USER: &str = "gateway";
const PASSWORD: &str = "s3cret-redis-pass-42";

/// App `helpdesk` with two routes that need Redis (`fail_closed`), and bot `helpdesk`.
fn policy(bot: &MockBot) -> String {
    let routes = r#"routes:
  - { name: limited, path: /slack/limited, app: helpdesk, upstream: bot, state_failure: fail_closed, rate_limits: [{ per: team, rate: 1/h, burst: 3 }] }
  - { name: events, path: /slack/events, app: helpdesk, upstream: bot, state_failure: fail_closed, dedupe: event_id }
bots:
"#;
    format!(
        "version: 1\n{}{routes}{}    team: T0ACME\n    methods: [chat.postMessage, conversations.info, reactions.add]\n    rate_limits: [{{ per: method, rate: 1/h, burst: 3 }}]\n",
        slackgate_testkit::policy::helpdesk_to("SECRET_A", "bot", bot.addr()),
        slackgate_testkit::policy::bot("helpdesk"),
    )
}

/// How a replica reaches Redis: its `state.redis` YAML and the secrets it reads.
struct Backend {
    redis: String,
    secrets: Vec<(&'static str, String)>,
}

const KEY: &str = "sgk-helpdesk-key-0123456789abcdef";
const TOKEN: &str = "xoxb-helpdesk-token-redis-backends";

/// The bot token's scopes at the Slack stand-in.
const SCOPES: &[&str] = &[
    "chat:write",
    "channels:read",
    "reactions:write",
    "users:read",
];

fn slack() -> SlackApi {
    SlackApi::builder().token(TOKEN, "T0ACME", SCOPES).start()
}

impl Backend {
    fn gateway(&self, bot: &MockBot, slack: &SlackApi) -> Result<TestGateway, String> {
        let mut b = TestGatewayBuilder::new(&policy(bot))
            .secret("SECRET_A", SECRET)
            .bot("helpdesk", KEY, TOKEN)
            .slack(slack);
        for (k, v) in &self.secrets {
            b = b.secret(k, v);
        }
        b.config(&format!(
            "state: {{ backend: redis, redis: {} }}",
            self.redis
        ))
        .try_start()
    }
}

/// The TLS-only Redis with the ACL user, as a replica with `password` reaches it.
fn tls_backend(redis: &Redis, ca: &TestCa, password: &str) -> Backend {
    Backend {
        redis: format!(
            "{{ url: \"rediss://127.0.0.1:{}\", ca_file: \"{}\", username_env: REDIS_USER, password_env: REDIS_PASSWORD, timeout: 500ms }}",
            redis.addr.port(),
            ca.ca.display()
        ),
        secrets: vec![
            ("REDIS_USER", USER.to_owned()),
            ("REDIS_PASSWORD", password.to_owned()),
        ],
    }
}

fn event(path: &str, id: &str) -> SignedRequest {
    let body = String::from_utf8(slackgate_testkit::fixture("event_message.json"))
        .unwrap()
        .replace("Ev0MESSAGE01", id);
    SignedRequest::new(path, body).sign(SECRET)
}

fn call(gw: &TestGateway, target: &str, headers: &[(&str, &str)], body: &str) -> Response {
    let auth = format!("Bearer {KEY}");
    let mut all = vec![("Authorization", auth.as_str())];
    all.extend_from_slice(headers);
    gw.egress_post(target, &all, body)
}

fn post(gw: &TestGateway, method: &str, body: &str) -> Response {
    call(
        gw,
        &format!("/api/{method}"),
        &[("Content-Type", "application/json; charset=utf-8")],
        body,
    )
}

/// Two replicas: one combined limit (burst 3 across both), one replay cache, one bot
/// bucket, Slack's 429 seen on one honoured on the other, one scope ledger.
fn two_replicas_share_state(a: &TestGateway, b: &TestGateway, slack: &SlackApi, tag: &str) {
    let send =
        |gw: &TestGateway, path: &str, id: String| gw.client().send(&event(path, &id)).unwrap();
    for (i, gw) in [a, b, a].into_iter().enumerate() {
        let r = send(gw, "/slack/limited", format!("Ev{tag}L{i}"));
        assert_eq!(r.status, 200, "{tag}: call {i} within the combined burst");
    }
    let r = send(b, "/slack/limited", format!("Ev{tag}L4"));
    assert_eq!(r.status, 429, "{tag}: the other replica's tokens count");
    assert_eq!(r.reason().as_deref(), Some("rate_limited"));

    let req = event("/slack/events", &format!("Ev{tag}R1"));
    assert_eq!(a.client().send(&req).unwrap().status, 200);
    let r = b.client().send(&req).unwrap();
    assert_eq!(
        r.reason().as_deref(),
        Some("replayed"),
        "{tag}: one replay cache"
    );

    // One bot bucket (burst 3 per method) across both replicas.
    for (i, gw) in [a, b, a].into_iter().enumerate() {
        let r = post(gw, "chat.postMessage", r#"{"channel":"C0HELP","text":"x"}"#);
        assert_eq!(
            r.status,
            200,
            "{tag}: egress call {i}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let r = post(b, "chat.postMessage", r#"{"channel":"C0HELP","text":"x"}"#);
    assert_eq!(r.status, 429, "{tag}: {}", String::from_utf8_lossy(&r.body));
    r.assert_refused("rate_limited");

    // Slack's 429 seen on one replica is honoured on the other, before Slack says it.
    slack.rate_limit("conversations.info", 30);
    let r = post(a, "conversations.info", r#"{"channel":"C0HELP"}"#);
    assert_eq!(r.status, 429, "{tag}: Slack's own 429");
    let asked = slack.received().len();
    assert!(
        wait_until(Duration::from_secs(10), || {
            let r = post(b, "conversations.info", r#"{"channel":"C0HELP"}"#);
            r.status == 429 && r.json()["error"] == "slack_rate_limited"
        }),
        "{tag}: the other replica did not honour Slack's 429"
    );
    assert_eq!(
        slack.received().len(),
        asked,
        "{tag}: Slack was not asked again"
    );

    // unused_scopes identical on both: channels:read needed on a only (its 429 carried
    // the scope headers), reactions:write on b only.
    let r = call(
        b,
        "/api/reactions.add",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "channel=C0HELP&name=x&timestamp=1.2",
    );
    assert_eq!(r.status, 200, "{tag}: {}", String::from_utf8_lossy(&r.body));
    let unused = |gw: &TestGateway| {
        gw.admin_client().get("/status").unwrap().json()["egress"]["bots"]["helpdesk"]
            ["unused_scopes"]
            .clone()
    };
    let same = wait_until(Duration::from_secs(10), || {
        let (ua, ub) = (unused(a), unused(b));
        ua == ub && ua == serde_json::json!(["users:read"])
    });
    assert!(
        same,
        "{tag}: unused_scopes differ: {} vs {}",
        unused(a),
        unused(b)
    );

    for gw in [a, b] {
        assert_eq!(
            gw.metric("slackgate_state_fallbacks_total{op=\"rate_limit\"}"),
            0.0
        );
        assert_eq!(
            gw.metric("slackgate_state_fallbacks_total{op=\"replay\"}"),
            0.0
        );
        assert_eq!(
            gw.admin_client().get("/readyz").unwrap().status,
            200,
            "{tag}: ready"
        );
    }
}

#[test]
fn tls_only_redis_with_an_acl_user() {
    let ca = TestCa::generate();
    let redis = Redis::builder().tls(&ca).acl_user(USER, PASSWORD).start();
    let bot = MockBot::start();
    let slack = slack();
    let backend = tls_backend(&redis, &ca, PASSWORD);
    let a = backend.gateway(&bot, &slack).unwrap();
    let b = backend.gateway(&bot, &slack).unwrap();
    two_replicas_share_state(&a, &b, &slack, "Tls");
    let status = a.admin_client().get("/status").unwrap().json();
    let name = status["state"]["redis"].as_str().unwrap();
    assert_eq!(name, format!("rediss://127.0.0.1:{}", redis.addr.port()));
    assert!(status["state"]["error"].is_null());
    // The keys are the ACL user's, written over TLS.
    let keys: Vec<String> = redis.query(&["KEYS", "slackgate:*"]).unwrap();
    assert!(
        keys.iter().any(|k| k.starts_with("slackgate:replay:")),
        "{keys:?}"
    );
}

/// A wrong password is one start-up error that names the Redis and the variables, and
/// never the password; a CA that does not vouch for the server is one too.
#[test]
fn wrong_credentials_and_wrong_ca_are_one_clear_error() {
    let ca = TestCa::generate();
    let redis = Redis::builder().tls(&ca).acl_user(USER, PASSWORD).start();
    let bot = MockBot::start();
    let slack = slack();
    let wrong = "not-the-password-0451";
    let err = tls_backend(&redis, &ca, wrong)
        .gateway(&bot, &slack)
        .unwrap_err();
    let at = format!("rediss://127.0.0.1:{}", redis.addr.port());
    assert!(err.contains(&at), "{err}");
    assert!(err.contains("refused"), "{err}");
    assert!(
        err.contains("REDIS_USER") && err.contains("REDIS_PASSWORD"),
        "{err}"
    );
    assert!(!err.contains(wrong) && !err.contains(PASSWORD), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let other = TestCa::generate();
    let err = tls_backend(&redis, &other, PASSWORD)
        .gateway(&bot, &slack)
        .unwrap_err();
    assert!(err.contains(&at) && err.contains("TLS"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");

    // A password variable that is not set is a load error naming it.
    let mut backend = tls_backend(&redis, &ca, PASSWORD);
    backend.secrets.retain(|(k, _)| *k != "REDIS_PASSWORD");
    let err = backend.gateway(&bot, &slack).unwrap_err();
    assert!(err.contains("password_env names REDIS_PASSWORD"), "{err}");
}

/// The ACL user's password changes under a running replica: its next connection is
/// refused, `/readyz` answers 503 naming the Redis, `/status` carries the error; the
/// password put back, it is ready again without a restart.
#[test]
fn a_password_changed_under_a_running_replica_shows_in_readiness() {
    let ca = TestCa::generate();
    let redis = Redis::builder().tls(&ca).acl_user(USER, PASSWORD).start();
    let bot = MockBot::start();
    let slack = slack();
    let gw = tls_backend(&redis, &ca, PASSWORD)
        .gateway(&bot, &slack)
        .unwrap();
    assert_eq!(gw.admin_client().get("/readyz").unwrap().status, 200);

    let _: () = redis
        .query(&["ACL", "SETUSER", USER, "resetpass", ">another-pass-77"])
        .unwrap();
    // The admin connection of the test is the new password's now.
    let admin = |args: &[&str]| -> redis::RedisResult<redis::Value> {
        let c = redis::Client::build_with_tls(
            redis::ConnectionAddr::TcpTls {
                host: "127.0.0.1".into(),
                port: redis.addr.port(),
                insecure: false,
                tls_params: None,
            }
            .into_connection_info()?
            .set_redis_settings(
                redis::RedisConnectionInfo::default()
                    .set_username(USER)
                    .set_password("another-pass-77"),
            ),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(&ca.ca).unwrap()),
            },
        )?;
        let mut conn = c.get_connection()?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut conn)
    };
    admin(&["CLIENT", "KILL", "USER", USER]).unwrap();
    let refused = wait_until(Duration::from_secs(15), || {
        let r = gw.admin_client().get("/readyz").unwrap();
        r.status == 503 && String::from_utf8_lossy(&r.body).contains("refused")
    });
    assert!(refused, "readiness did not report the refused password");
    let r = gw.admin_client().get("/readyz").unwrap();
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        text.contains(&format!("127.0.0.1:{}", redis.addr.port())),
        "{text}"
    );
    assert!(
        !text.contains(PASSWORD) && !text.contains("another-pass"),
        "{text}"
    );
    let status = gw.admin_client().get("/status").unwrap().json();
    assert!(
        status["state"]["error"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{status}"
    );

    // The old password back: ready again, no restart.
    let _: () = redis
        .query(&["ACL", "SETUSER", USER, "resetpass", &format!(">{PASSWORD}")])
        .unwrap_or_else(|_| {
            admin(&["ACL", "SETUSER", USER, "resetpass", &format!(">{PASSWORD}")])
                .map(|_| ())
                .unwrap()
        });
    assert!(
        wait_until(Duration::from_secs(15), || gw
            .admin_client()
            .get("/readyz")
            .unwrap()
            .status
            == 200),
        "the replica did not become ready again"
    );
}

#[test]
fn redis_cluster_of_three_masters() {
    let cluster = RedisCluster::start();
    let bot = MockBot::start();
    let slack = slack();
    let backend = Backend {
        redis: format!(
            "{{ url: \"redis://{}\", mode: cluster, timeout: 500ms }}",
            cluster.seed()
        ),
        secrets: Vec::new(),
    };
    let a = backend.gateway(&bot, &slack).unwrap();
    let b = backend.gateway(&bot, &slack).unwrap();
    two_replicas_share_state(&a, &b, &slack, "Cluster");
    // The keys spread over the masters: the gateway follows the slots.
    let holding = cluster
        .nodes
        .iter()
        .filter(|n| n.query::<i64>(&["DBSIZE"]).unwrap() > 0)
        .count();
    assert!(holding >= 1);
}

#[test]
fn sentinel_failover_is_followed_without_a_restart() {
    let master = Redis::start();
    let replica = Redis::builder().replica_of(master.addr).start();
    assert!(
        wait_until(Duration::from_secs(30), || replica.replica_synced()),
        "the replica did not sync"
    );
    let sentinel = Sentinel::start("sg", master.addr);
    assert!(
        wait_until(Duration::from_secs(30), || sentinel.replicas_up("sg") == 1),
        "the sentinel did not find the replica"
    );
    let bot = MockBot::start();
    let slack = slack();
    let backend = Backend {
        redis: format!(
            "{{ url: \"redis://{}\", mode: sentinel, sentinel: {{ master: sg }}, timeout: 500ms }}",
            sentinel.addr
        ),
        secrets: Vec::new(),
    };
    let a = backend.gateway(&bot, &slack).unwrap();
    let b = backend.gateway(&bot, &slack).unwrap();
    two_replicas_share_state(&a, &b, &slack, "Sentinel1");

    // Forced failover: the replica becomes the master, the old master a replica.
    let _: String = sentinel.query(&["SENTINEL", "FAILOVER", "sg"]).unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || sentinel.master("sg")
            == Some(replica.addr)
            && replica.role().as_deref() == Some("master")
            && master.role().as_deref() == Some("slave")),
        "the sentinel did not promote the replica"
    );
    // Both replicas write to the new master, without a restart: a fresh limit and
    // replay cache on the new master (the limit keys of the first round were replicated).
    let mut n = 0;
    let mut accepted = None;
    let fresh = wait_until(Duration::from_secs(30), || {
        n += 1;
        let req = event("/slack/events", &format!("EvAfterFailover{n}"));
        let ok = a.client().send(&req).unwrap().status == 200;
        if ok {
            accepted = Some(req);
        }
        ok
    });
    assert!(fresh, "the gateway did not follow the failover");
    let r = b.client().send(&accepted.unwrap()).unwrap();
    assert_eq!(r.reason().as_deref(), Some("replayed"));
    let written: i64 = replica.query(&["DBSIZE"]).unwrap();
    assert!(written > 0);
    for gw in [&a, &b] {
        assert!(wait_until(Duration::from_secs(15), || gw
            .admin_client()
            .get("/readyz")
            .unwrap()
            .status
            == 200));
    }
}

/// Slack's pacing across replicas: `chat.postMessage` goes at one message per second per
/// channel, counted on both replicas together: the second post (on the other replica) is
/// held back about a second, the third, which would wait past `max_wait`, is answered
/// `slack_rate_limited` before Slack says 429; another channel is not held.
#[test]
fn slack_pacing_holds_calls_back_across_replicas() {
    let redis = Redis::start();
    let bot = MockBot::start();
    let slack = slack();
    let start = || {
        TestGatewayBuilder::new(&policy(&bot))
            .secret("SECRET_A", SECRET)
            .bot("helpdesk", KEY, TOKEN)
            .slack(&slack)
            .egress_pacing("1500ms")
            .config(&format!(
                "state: {{ backend: redis, redis: {{ url: \"redis://{}\", timeout: 500ms }} }}",
                redis.addr
            ))
            .start()
    };
    let (a, b) = (start(), start());
    let body = r#"{"channel":"C0OPS","text":"x"}"#;
    let t = std::time::Instant::now();
    assert_eq!(post(&a, "chat.postMessage", body).status, 200);
    assert!(
        t.elapsed() < Duration::from_millis(800),
        "the first goes at once"
    );
    // The second, on the other replica, is held back (on a thread); once it took its
    // turn (the shared bucket is below zero), a third on the first replica would wait
    // past max_wait.
    let second = std::thread::scope(|scope| {
        let held = scope.spawn(|| {
            let t = std::time::Instant::now();
            let status = post(&b, "chat.postMessage", body).status;
            (status, t.elapsed())
        });
        let key = "slackgate:{e:helpdesk}:pace:chat.postMessage:C0OPS";
        assert!(wait_until(Duration::from_secs(5), || redis
            .query::<Option<f64>>(&["HGET", key, "tokens"])
            .is_ok_and(|t| t.is_some_and(|t| t < 0.0))));
        let r = post(&a, "chat.postMessage", body);
        assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
        r.assert_refused("slack_rate_limited");
        held.join().unwrap()
    });
    assert_eq!(second.0, 200);
    assert!(
        second.1 >= Duration::from_millis(700),
        "the second is held back by the other replica's post: {:?}",
        second.1
    );
    let record = a.egress_record(2);
    assert_eq!(record["rule"], "slack pacing: special", "{record}");
    let t = std::time::Instant::now();
    let other = post(&a, "chat.postMessage", r#"{"channel":"C0HELP","text":"x"}"#);
    assert_eq!(other.status, 200);
    assert!(
        t.elapsed() < Duration::from_millis(800),
        "another channel goes at once"
    );
    assert_eq!(
        slack
            .received()
            .iter()
            .filter(|r| r.method == "chat.postMessage")
            .count(),
        3
    );
}

/// Redis dies under a replica: its egress calls go on by its own state (its own bucket of
/// the bot's limit, its own pacing), each failed gate counted as a fallback, and no call
/// waits past the timeout.
#[test]
fn egress_goes_on_by_its_own_state_when_redis_is_down() {
    let mut redis = Redis::start();
    let bot = MockBot::start();
    let slack = slack();
    let gw = TestGatewayBuilder::new(&policy(&bot))
        .secret("SECRET_A", SECRET)
        .bot("helpdesk", KEY, TOKEN)
        .slack(&slack)
        .egress_pacing("0s")
        .config(&format!(
            "state: {{ backend: redis, redis: {{ url: \"redis://{}\", timeout: 100ms }} }}",
            redis.addr
        ))
        .start();
    redis.kill();
    let started = std::time::Instant::now();
    let to = |channel: &str| {
        post(
            &gw,
            "chat.postMessage",
            &format!(r#"{{"channel":"{channel}","text":"x"}}"#),
        )
    };
    assert_eq!(to("C0A").status, 200);
    // Its own pacing: a second post to one channel within the second (no wait allowed).
    let r = to("C0A");
    r.assert_refused("slack_rate_limited");
    assert_eq!(gw.egress_record(2)["rule"], "slack pacing: special");
    assert_eq!(to("C0B").status, 200);
    // Its own bucket of the bot's limit (burst 3 per method: the refused post took one).
    to("C0C").assert_refused("rate_limited");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a dead Redis costs at most its timeout per call: {:?}",
        started.elapsed()
    );
    assert!(gw.metric("slackgate_state_fallbacks_total{op=\"rate_limit\"}") >= 1.0);
}

/// Webhook posts count against the bot's buckets as every replica sees them (burst 3 per
/// method across both), as Web API calls do.
#[test]
fn webhook_posts_share_the_bots_bucket_across_replicas() {
    let redis = Redis::start();
    let bot = MockBot::start();
    let slack = slack();
    let origin = slack.url().trim_end_matches("api/").to_owned();
    let hook_url = format!("{origin}services/T0ACME/B0ALERTS/hook0secret");
    let policy = format!(
        "{}webhooks:\n  alerts: {{ url: {{ env: ALERTS_URL }}, bots: [helpdesk] }}\n",
        policy(&bot)
    );
    let start = || {
        TestGatewayBuilder::new(&policy)
            .secret("SECRET_A", SECRET)
            .secret("ALERTS_URL", &hook_url)
            .bot("helpdesk", KEY, TOKEN)
            .slack(&slack)
            .hooks_base(&origin)
            .config(&format!(
                "state: {{ backend: redis, redis: {{ url: \"redis://{}\", timeout: 500ms }} }}",
                redis.addr
            ))
            .start()
    };
    let (a, b) = (start(), start());
    let hook = |gw: &TestGateway| {
        call(
            gw,
            "/hooks/alerts",
            &[("Content-Type", "application/json")],
            r#"{"text":"disk full"}"#,
        )
    };
    for (i, gw) in [&a, &b, &a].into_iter().enumerate() {
        hook(gw);
        let n = [1, 1, 2][i];
        let rec = gw.egress_record(n);
        assert_eq!(rec["reason"], "allowed", "post {i}: {rec}");
    }
    let r = hook(&b);
    r.assert_refused("rate_limited");
    assert_eq!(
        slack
            .received()
            .iter()
            .filter(|r| r.target.starts_with("/services/"))
            .count(),
        3,
        "the refused post reached nothing"
    );
}
