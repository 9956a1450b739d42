//! Zero-downtime binary upgrade and graceful drain, with the real binary and signals.
//!
//! The drill: an old process serves while a client sends signed requests without
//! pause; a new process starts with `--upgrade`, the old one gets SIGQUIT, hands its
//! listening sockets over and drains. No request may fail. Then SIGTERM on the new
//! process lets an in-flight request finish before the process exits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slackgate_testkit::{free_port, wait_until, BotBehavior, Client, MockBot, SignedRequest};

const SECRET: &str = "upgrade-drill-secret-0123456789ab";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} failed");
}

fn spawn(dir: &std::path::Path, upgrade: bool) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slackgate"));
    cmd.args(["run", "-c"])
        .arg(dir.join("config.yaml"))
        .arg("--upgrade-sock")
        .arg(dir.join("upgrade.sock"))
        .args(["--threads", "1"])
        .env("DRILL_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if upgrade {
        cmd.arg("--upgrade");
    }
    Proc(cmd.spawn().unwrap())
}

fn setup(
    bot: &MockBot,
    slow: &MockBot,
) -> (
    tempfile::TempDir,
    std::net::SocketAddr,
    std::net::SocketAddr,
) {
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (free_port(), free_port());
    std::fs::write(
        dir.path().join("config.yaml"),
        format!(
            "listen:\n  - addr: {listen}\nadmin: {{ addr: {admin} }}\naudit: {{ path: audit.log }}\nlimits: {{ shutdown_grace: 3s }}\npolicy: policy.yaml\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("policy.yaml"),
        format!(
            "version: 1\napps:\n  app:\n    signing_secrets: [{{ id: current, env: DRILL_SECRET }}]\nupstreams:\n  bot: {{ targets: [\"{}\"] }}\n  slow: {{ targets: [\"{}\"] }}\nroutes:\n  - {{ name: r, path: /slack/events, app: app, upstream: bot }}\n  - {{ name: s, path: /slack/slow, app: app, upstream: slow }}\n",
            bot.addr(),
            slow.addr()
        ),
    )
    .unwrap();
    (dir, listen, admin)
}

fn ready(admin: std::net::SocketAddr) -> bool {
    Client::plain(admin)
        .timeout(Duration::from_secs(2))
        .get("/readyz")
        .map(|r| r.status == 200)
        .unwrap_or(false)
}

fn request(i: usize, path: &str) -> SignedRequest {
    let body = String::from_utf8(slackgate_testkit::fixture("event_message.json"))
        .unwrap()
        .replace("Ev0MESSAGE01", &format!("Ev0UPG{i}"));
    SignedRequest::new(path, body).sign(SECRET)
}

#[test]
fn upgrade_under_load_drops_nothing_and_sigterm_drains() {
    let bot = MockBot::start();
    let slow = MockBot::with(BotBehavior::Delay(Duration::from_millis(1500)));
    let (dir, listen, admin) = setup(&bot, &slow);
    let old = spawn(dir.path(), false);
    assert!(
        wait_until(Duration::from_secs(30), || ready(admin)),
        "old process not ready"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let load = {
        let (stop, sent, failures) = (stop.clone(), sent.clone(), failures.clone());
        std::thread::spawn(move || {
            let client = Client::plain(listen);
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) && i < 100_000 {
                i += 1;
                match client.send(&request(i, "/slack/events")) {
                    Ok(r) if r.status == 200 => {}
                    Ok(r) => failures
                        .lock()
                        .unwrap()
                        .push(format!("status {}", r.status)),
                    Err(e) => failures.lock().unwrap().push(format!("io: {e}")),
                }
                sent.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    assert!(wait_until(Duration::from_secs(10), || sent
        .load(Ordering::SeqCst)
        >= 50));

    let mut new = spawn(dir.path(), true);
    // The new process waits for the listeners on the upgrade socket.
    assert!(wait_until(Duration::from_secs(30), || dir
        .path()
        .join("upgrade.sock")
        .exists()));
    let before = sent.load(Ordering::SeqCst);
    let mut old = old;
    signal(&old.0, "QUIT");
    let deadline = Instant::now() + Duration::from_secs(30);
    while old.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "old process did not exit after SIGQUIT"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(new.0.try_wait().unwrap().is_none(), "new process died");
    // Keep the load on the new process for a while.
    let after_old_exit = sent.load(Ordering::SeqCst);
    assert!(wait_until(Duration::from_secs(30), || sent
        .load(Ordering::SeqCst)
        >= after_old_exit + 200));
    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();
    let total = sent.load(Ordering::SeqCst);
    let failed = failures.lock().unwrap().clone();
    eprintln!(
        "upgrade drill: {total} requests ({before} before SIGQUIT, {} after the old process exited), {} failed",
        total - after_old_exit,
        failed.len()
    );
    assert!(failed.is_empty(), "failed during upgrade: {failed:?}");
    assert!(ready(admin), "the new process serves the admin listener");

    // Graceful drain: an in-flight request to the slow bot completes after SIGTERM.
    let inflight =
        std::thread::spawn(move || Client::plain(listen).send(&request(0, "/slack/slow")));
    assert!(wait_until(Duration::from_secs(10), || !slow
        .requests()
        .is_empty()));
    signal(&new.0, "TERM");
    let resp = inflight
        .join()
        .unwrap()
        .expect("in-flight request completes during drain");
    assert_eq!(resp.status, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while new.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "new process did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
