//! Live policy: reloads by every trigger, invalid files keep the old policy, state
//! (rate limits, replay cache) survives, and a reload storm tears nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use slackgate_testkit::{wait_until, MockBot, SignedRequest, TestGateway, TestGatewayBuilder};

const SECRET: &str = "reload-test-secret-0123456789abcd";

/// Captures log lines so tests can assert the log channel too.
struct CaptureLog(Mutex<Vec<String>>);

impl log::Log for CaptureLog {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        if record.level() <= log::Level::Warn {
            self.0.lock().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

fn logs() -> &'static CaptureLog {
    static LOG: OnceLock<&'static CaptureLog> = OnceLock::new();
    LOG.get_or_init(|| {
        let l: &'static CaptureLog = Box::leak(Box::new(CaptureLog(Mutex::new(Vec::new()))));
        let _ = log::set_logger(l);
        log::set_max_level(log::LevelFilter::Warn);
        l
    })
}

fn policy(route: &str, bot: &MockBot, extra: &str) -> String {
    format!(
        r#"version: 1
apps:
  app:
    signing_secrets:
      - {{ id: current, env: SECRET_A }}
upstreams:
  bot: {{ targets: ["{bot}"] }}
routes:
  - name: {route}
    path: /slack/events
    app: app
    upstream: bot
{extra}"#,
        bot = bot.addr()
    )
}

fn start(p: &str) -> TestGateway {
    TestGatewayBuilder::new(p)
        .secret("SECRET_A", SECRET)
        .start()
}

fn send(gw: &TestGateway, event_id: &str) -> slackgate_testkit::Response {
    let body = String::from_utf8(slackgate_testkit::fixture("event_message.json"))
        .unwrap()
        .replace("Ev0MESSAGE01", event_id);
    gw.client()
        .send(&SignedRequest::new("/slack/events", body).sign(SECRET))
        .unwrap()
}

fn generation(gw: &TestGateway) -> u64 {
    gw.shared().current().generation
}

#[test]
fn file_change_is_picked_up_by_the_watcher() {
    let bot = MockBot::start();
    let gw = start(&policy("alpha", &bot, ""));
    assert_eq!(generation(&gw), 1);
    gw.write_policy(&policy("beta", &bot, ""));
    assert!(wait_until(Duration::from_secs(10), || generation(&gw) == 2));
    assert_eq!(send(&gw, "Ev1").status, 200);
    assert_eq!(bot.requests()[0].header("x-slackgate-route"), Some("beta"));
    assert_eq!(gw.metric("slackgate_policy_generation"), 2.0);
    assert_eq!(
        gw.metric("slackgate_policy_reloads_total{result=\"success\"}"),
        2.0
    );
}

#[test]
fn post_reload_answers_generation_hash_and_errors() {
    let bot = MockBot::start();
    let gw = start(&policy("alpha", &bot, ""));
    let r = gw.admin_client().post("/reload").unwrap();
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["ok"], true);
    assert_eq!(j["generation"], 2);
    assert_eq!(j["hash"].as_str().unwrap().len(), 16);
    assert_eq!(j["errors"].as_array().unwrap().len(), 0);
}

#[test]
fn configmap_symlink_swap_is_picked_up() {
    let bot = MockBot::start();
    let gw = start(&policy("alpha", &bot, ""));
    let dir = gw.dir.path();
    // Lay the policy out like a ConfigMap volume: policy.yaml -> ..data/policy.yaml,
    // ..data -> ..v1; then swap ..data to ..v2 atomically.
    let v1 = dir.join("..v1");
    std::fs::create_dir(&v1).unwrap();
    std::fs::write(v1.join("policy.yaml"), policy("alpha", &bot, "")).unwrap();
    std::os::unix::fs::symlink("..v1", dir.join("..data")).unwrap();
    let link_tmp = dir.join("policy.yaml.link");
    std::os::unix::fs::symlink("..data/policy.yaml", &link_tmp).unwrap();
    std::fs::rename(&link_tmp, gw.policy_path()).unwrap();
    // Same content: no new generation needed, but allow one if the watcher reloads.
    let g = generation(&gw);
    let v2 = dir.join("..v2");
    std::fs::create_dir(&v2).unwrap();
    std::fs::write(v2.join("policy.yaml"), policy("swapped", &bot, "")).unwrap();
    std::os::unix::fs::symlink("..v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        gw.shared()
            .current()
            .policy
            .routes
            .by_name("swapped")
            .is_some()
    }));
    assert!(generation(&gw) > g);
    assert_eq!(send(&gw, "Ev2").status, 200);
    assert_eq!(
        bot.requests()[0].header("x-slackgate-route"),
        Some("swapped")
    );
}

#[test]
fn secret_file_rotation_without_restart() {
    let bot = MockBot::start();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "first-secret-value-aaaaaaaaaaaaa\n").unwrap();
    let p = format!(
        r#"version: 1
apps:
  app:
    signing_secrets:
      - {{ id: mounted, file: {} }}
upstreams:
  bot: {{ targets: ["{}"] }}
routes:
  - {{ name: r, path: /slack/events, app: app, upstream: bot }}
"#,
        secret_file.display(),
        bot.addr()
    );
    let gw = TestGatewayBuilder::new(&p).start();
    let req = |s: &str| SignedRequest::fixture("/slack/events", "event_message.json").sign(s);
    assert_eq!(
        gw.client()
            .send(&req("first-secret-value-aaaaaaaaaaaaa"))
            .unwrap()
            .status,
        200
    );
    std::fs::write(&secret_file, "second-secret-value-bbbbbbbbbbbb\n").unwrap();
    assert!(wait_until(Duration::from_secs(10), || generation(&gw) == 2));
    assert_eq!(
        gw.client()
            .send(&req("second-secret-value-bbbbbbbbbbbb"))
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        gw.client()
            .send(&req("first-secret-value-aaaaaaaaaaaaa"))
            .unwrap()
            .status,
        401
    );
}

#[test]
fn rotation_by_adding_then_removing_a_secret() {
    let bot = MockBot::start();
    let two = policy("r", &bot, "").replace(
        "      - { id: current, env: SECRET_A }\n",
        "      - { id: current, env: SECRET_A }\n      - { id: next, env: SECRET_B }\n",
    );
    let gw = start(&policy("r", &bot, ""));
    gw.secrets
        .set("SECRET_B", "the-next-secret-0123456789abcdef");
    gw.write_policy(&two);
    assert!(wait_until(Duration::from_secs(10), || generation(&gw) == 2));
    let new = SignedRequest::fixture("/slack/events", "event_message.json")
        .sign("the-next-secret-0123456789abcdef");
    assert_eq!(gw.client().send(&new).unwrap().status, 200);
    assert_eq!(
        bot.requests()[0].header("x-slackgate-secret-id"),
        Some("next")
    );
    // Slack switched over; drop the old one.
    gw.write_policy(&two.replace("      - { id: current, env: SECRET_A }\n", ""));
    assert!(wait_until(Duration::from_secs(10), || generation(&gw) == 3));
    let old = SignedRequest::fixture("/slack/events", "event_message.json").sign(SECRET);
    assert_eq!(gw.client().send(&old).unwrap().status, 401);
}

#[test]
fn expired_secret_stops_matching_on_its_own() {
    use slackgate_guard::FakeClock;
    let bot = MockBot::start();
    let now = slackgate_testkit::now_unix() as u64;
    let clock = Arc::new(FakeClock::at(now));
    let expires = humantime::format_rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(now + 60));
    let p = policy("r", &bot, "").replace(
        "      - { id: current, env: SECRET_A }\n",
        &format!("      - {{ id: current, env: SECRET_A }}\n      - {{ id: old, env: SECRET_OLD, expires: {expires} }}\n"),
    );
    let gw = TestGatewayBuilder::new(&p)
        .secret("SECRET_A", SECRET)
        .secret("SECRET_OLD", "old-secret-0123456789abcdef01234")
        .clock(clock.clone())
        .start();
    let ts = now as i64;
    let req = |id: &str| {
        let body = String::from_utf8(slackgate_testkit::fixture("event_message.json"))
            .unwrap()
            .replace("Ev0MESSAGE01", id);
        SignedRequest::new("/slack/events", body).sign_at("old-secret-0123456789abcdef01234", ts)
    };
    assert_eq!(gw.client().send(&req("Ev1")).unwrap().status, 200);
    clock.advance(Duration::from_secs(61));
    let r = gw.client().send(&req("Ev2")).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.reason().as_deref(), Some("bad_signature"));
}

fn assert_rejected_reload(gw: &TestGateway, bad: &str, expect: &str) {
    let before = generation(gw);
    let errors_before = gw.metric("slackgate_policy_reloads_total{result=\"error\"}");
    gw.write_policy(bad);
    let r = gw.admin_client().post("/reload").unwrap();
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["ok"], false);
    assert_eq!(j["generation"], before);
    let errs = j["errors"].to_string();
    assert!(
        errs.contains(expect),
        "errors {errs} should mention {expect}"
    );
    assert!(
        errs.contains("policy.yaml:"),
        "errors name the file: {errs}"
    );
    // Channel 2: /status.
    let status = gw.admin_client().get("/status").unwrap().json();
    assert!(status["last_reload_error"].to_string().contains(expect));
    assert_eq!(status["generation"], before);
    // Channel 3: metrics.
    assert!(gw.metric("slackgate_policy_reloads_total{result=\"error\"}") > errors_before);
    // Channel 4: the log.
    assert!(wait_until(Duration::from_secs(5), || logs()
        .0
        .lock()
        .iter()
        .any(|l| l.contains(expect))));
    // And the old policy keeps serving.
    assert_eq!(send(gw, &format!("Ev{before}{expect:.3}")).status, 200);
}

#[test]
fn invalid_policies_keep_the_old_one_serving() {
    logs();
    let bot = MockBot::start();
    let gw = start(&policy("alpha", &bot, ""));
    let good = policy("alpha", &bot, "");
    assert_rejected_reload(
        &gw,
        &format!("{good}  - name: [oops\n"),
        "YAML syntax error",
    );
    assert_rejected_reload(
        &gw,
        &good.replace("upstream: bot", "upstream: nowhere"),
        "unknown upstream",
    );
    assert_rejected_reload(
        &gw,
        &good.replace(
            "{ id: current, env: SECRET_A }",
            "{ id: current, secret: hunter2hunter2hunter2 }",
        ),
        "literal secrets are not allowed",
    );
    assert_rejected_reload(
        &gw,
        &good.replace(
            "{ id: current, env: SECRET_A }",
            "{ id: current, file: /nonexistent/secret }",
        ),
        "cannot read secret file",
    );
    let all = logs().0.lock().join("\n");
    assert!(
        !all.contains("hunter2hunter2hunter2"),
        "a literal secret was logged"
    );
    let status = gw.admin_client().get("/status").unwrap();
    assert!(!String::from_utf8_lossy(&status.body).contains("hunter2"));
}

#[test]
fn rate_limits_and_replay_cache_survive_reloads() {
    let bot = MockBot::start();
    let limited = "    rate_limits:\n      - { per: team, rate: 1/h, burst: 2 }\n";
    let gw = start(&policy("r", &bot, limited));
    assert_eq!(send(&gw, "Ev1").status, 200);
    let replay = SignedRequest::fixture("/slack/events", "event_message.json").sign(SECRET);
    assert_eq!(gw.client().send(&replay).unwrap().status, 200);
    // Reload (a real change, so a new generation) and the bucket is still empty.
    gw.write_policy(&policy("r", &bot, limited).replace("version: 1", "version: 1\n# edited"));
    assert!(wait_until(Duration::from_secs(10), || generation(&gw) == 2));
    let r = send(&gw, "Ev3");
    assert_eq!(r.status, 429, "a reload must not reset rate limits");
    let r = gw.client().send(&replay).unwrap();
    assert_eq!(
        r.reason().as_deref(),
        Some("replayed"),
        "a reload must not re-open replays"
    );
}

/// A client sends signed requests without pause while the policy flips between two
/// versions hundreds of times. Every response must be a success, and every request
/// the bots saw must be consistent with exactly one version (route name and upstream
/// belong together): nothing failed, nothing was torn.
#[test]
fn reload_storm_drops_and_tears_nothing() {
    let bot_a = MockBot::start();
    let bot_b = MockBot::start();
    let (pa, pb) = (policy("alpha", &bot_a, ""), policy("beta", &bot_b, ""));
    let gw = Arc::new(start(&pa));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..2)
        .map(|c| {
            let (gw, stop, sent, failures) =
                (gw.clone(), stop.clone(), sent.clone(), failures.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) && i < 20_000 {
                    i += 1;
                    let r = send(&gw, &format!("Ev{c}x{i}"));
                    sent.fetch_add(1, Ordering::SeqCst);
                    if r.status != 200 {
                        failures.lock().push(r.status);
                    }
                }
            })
        })
        .collect();
    // At least 300 flips, and keep flipping until 600 requests went through them
    // (bounded in time so the test stops by itself).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut flips = 0;
    while (flips < 300 || sent.load(Ordering::SeqCst) < 600) && std::time::Instant::now() < deadline
    {
        let p = if flips % 2 == 0 { &pb } else { &pa };
        std::fs::write(gw.policy_path(), p).unwrap();
        let outcome = gw.shared().reload();
        assert!(outcome.ok, "{:?}", outcome.errors);
        flips += 1;
        // Pacing, not waiting: leave the clients CPU on this 2-core machine.
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let sent = sent.load(Ordering::SeqCst);
    assert!(
        failures.lock().is_empty(),
        "failed responses: {:?}",
        failures.lock()
    );
    let a = bot_a.requests();
    let b = bot_b.requests();
    assert!(a
        .iter()
        .all(|r| r.header("x-slackgate-route") == Some("alpha")));
    assert!(b
        .iter()
        .all(|r| r.header("x-slackgate-route") == Some("beta")));
    assert_eq!(
        a.len() + b.len(),
        sent,
        "every request reached exactly one bot"
    );
    assert!(generation(&gw) >= flips as u64);
    assert!(sent >= 600, "only {sent} requests during the storm");
    eprintln!(
        "reload storm: {flips} reloads, {sent} requests, {} to alpha, {} to beta",
        a.len(),
        b.len()
    );
}
