//! Zero-downtime binary upgrade and graceful drain, with the real binary and signals.
//!
//! The drill: an old process serves while a client sends signed requests without
//! pause; a new process starts with `--upgrade`, the old one gets SIGQUIT, hands its
//! listening sockets over and drains. No request may fail. Then SIGTERM on the new
//! process lets an in-flight request finish before the process exits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use parking_lot::Mutex;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
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
                    Ok(r) => failures.lock().push(format!("status {}", r.status)),
                    Err(e) => failures.lock().push(format!("io: {e}")),
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
    wait_exit(&mut old, "old process after SIGQUIT");
    assert!(new.0.try_wait().unwrap().is_none(), "new process died");
    // Keep the load on the new process for a while.
    let after_old_exit = sent.load(Ordering::SeqCst);
    assert!(wait_until(Duration::from_secs(30), || sent
        .load(Ordering::SeqCst)
        >= after_old_exit + 200));
    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();
    let total = sent.load(Ordering::SeqCst);
    let failed = failures.lock().clone();
    eprintln!(
        "upgrade drill: {total} requests ({before} before SIGQUIT, {} after the old process exited), {} failed",
        total - after_old_exit,
        failed.len()
    );
    assert!(failed.is_empty(), "failed during upgrade: {failed:?}");
    assert!(ready(admin), "the new process serves the admin listener");

    // Graceful drain: an in-flight request to the slow bot completes after SIGTERM.
    drain_with_one_in_flight(&mut new, listen, &slow);
}

/// SIGTERM while a request to the slow bot is in flight: it completes, then the
/// process exits.
fn drain_with_one_in_flight(p: &mut Proc, listen: std::net::SocketAddr, slow: &MockBot) {
    let inflight =
        std::thread::spawn(move || Client::plain(listen).send(&request(0, "/slack/slow")));
    assert!(wait_until(Duration::from_secs(10), || !slow
        .requests()
        .is_empty()));
    signal(&p.0, "TERM");
    let resp = inflight
        .join()
        .unwrap()
        .expect("in-flight request completes during drain");
    assert_eq!(resp.status, 200);
    wait_exit(p, "process after SIGTERM");
}

/// What the keep-alive clients saw.
#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    /// Requests written whose answer never came (the connection closed or reset under
    /// them): what a keep-alive race loses.
    lost: Vec<String>,
    /// Answers other than 200.
    bad: Vec<u16>,
    /// Connections that answered with `Connection: close` (and were replaced).
    closed_by_server: usize,
    /// (when the request was sent, how long its answer took)
    latencies: Vec<(Instant, Duration)>,
}

/// A keep-alive client: one connection reused for request after request, replaced when
/// the server says `Connection: close`; some pauses leave it idle, as pooled
/// connections are. Stops when `stop` is set, or, once `no_new` is set (the drain: the
/// load balancer sends no new connections), when its connection ends.
fn keep_alive_client(
    id: usize,
    listen: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    no_new: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
) -> std::thread::JoinHandle<()> {
    use std::io::{BufReader, Write};
    std::thread::spawn(move || {
        let mut conn: Option<(std::net::TcpStream, BufReader<std::net::TcpStream>)> = None;
        let mut i = 0usize;
        while !stop.load(Ordering::SeqCst) {
            i += 1;
            if conn.is_none() {
                if no_new.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(s) = std::net::TcpStream::connect(listen) else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let reader = BufReader::new(s.try_clone().unwrap());
                conn = Some((s, reader));
            }
            let Some((w, r)) = conn.as_mut() else {
                continue;
            };
            let req = request(id * 1_000_000 + i, "/slack/events").to_http("localhost");
            let sent_at = Instant::now();
            if let Err(e) = w.write_all(&req) {
                tally.lock().lost.push(format!("write: {e}"));
                conn = None;
                continue;
            }
            match slackgate_testkit::client::read_response(r) {
                Ok(resp) => {
                    let mut t = tally.lock();
                    t.latencies.push((sent_at, sent_at.elapsed()));
                    if resp.status == 200 {
                        t.ok += 1;
                    } else {
                        t.bad.push(resp.status);
                    }
                    if resp.header("connection") == Some("close") {
                        t.closed_by_server += 1;
                        conn = None;
                    }
                }
                Err(e) => {
                    tally.lock().lost.push(format!("read: {e}"));
                    conn = None;
                }
            }
            // Every few requests the connection sits idle, as a pooled one does.
            if i.is_multiple_of(7) {
                std::thread::sleep(Duration::from_millis(20 + (i % 5) as u64 * 30));
            }
        }
    })
}

fn wait_exit(p: &mut Proc, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "{what} did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn p999(lat: &[(Instant, Duration)], from: Instant, to: Instant) -> (usize, Duration) {
    let mut window: Vec<Duration> = lat
        .iter()
        .filter(|(at, _)| *at >= from && *at <= to)
        .map(|(_, d)| *d)
        .collect();
    window.sort_unstable();
    let n = window.len();
    let at = (n * 999).div_ceil(1000).saturating_sub(1);
    (n, window.get(at).copied().unwrap_or_default())
}

#[test]
fn keep_alive_clients_lose_nothing_across_an_upgrade_and_a_drain() {
    let bot = MockBot::start();
    let slow = MockBot::with(BotBehavior::Delay(Duration::from_millis(1500)));
    let (dir, listen, admin) = setup(&bot, &slow);
    let mut old = spawn(dir.path(), false);
    assert!(wait_until(Duration::from_secs(30), || ready(admin)));

    let stop = Arc::new(AtomicBool::new(false));
    let no_new = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let clients: Vec<_> = (0..8)
        .map(|id| keep_alive_client(id, listen, stop.clone(), no_new.clone(), tally.clone()))
        .collect();
    let served = || tally.lock().ok;
    assert!(wait_until(Duration::from_secs(20), || served() >= 300));

    // The README's procedure: start the new process, wait until it listens on the
    // upgrade socket, then SIGQUIT the old one.
    let mut new = spawn(dir.path(), true);
    let sock = dir.path().join("upgrade.sock");
    assert!(wait_until(Duration::from_secs(30), || {
        slackgate_proxy::signals::is_listening(&sock)
    }));
    // `kill -QUIT "$(cat "${S%.sock}.pid")"`: until the new process took over, the pid
    // file names the old one.
    let pid_file = dir.path().join("upgrade.pid");
    let named = || std::fs::read_to_string(&pid_file).unwrap_or_default();
    assert_eq!(
        named().trim(),
        old.0.id().to_string(),
        "the pid file names the old process"
    );
    let quit_at = Instant::now();
    signal(&old.0, "QUIT");
    wait_exit(&mut old, "old process after SIGQUIT");
    let old_gone = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || named().trim()
            == new.0.id().to_string()),
        "the pid file names the new process once it serves"
    );
    let at_exit = served();
    assert!(wait_until(Duration::from_secs(20), || served() >= at_exit + 300));
    assert!(new.0.try_wait().unwrap().is_none(), "new process died");
    let upgrade_end = Instant::now();

    // Drain: the load balancer stops sending new connections; open ones keep being
    // used until the server closes them.
    no_new.store(true, Ordering::SeqCst);
    drain_with_one_in_flight(&mut new, listen, &slow);
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }

    let t = tally.lock();
    let (n, p) = p999(&t.latencies, quit_at, upgrade_end);
    eprintln!(
        "keep-alive drill: {} answered 200, {} lost, {} non-200, {} connections closed by the server with Connection: close; \
         {} requests during the upgrade (SIGQUIT to {:?} after the old exit), p99.9 {:?}; old process exited {:?} after SIGQUIT",
        t.ok,
        t.lost.len(),
        t.bad.len(),
        t.closed_by_server,
        n,
        upgrade_end - old_gone,
        p,
        old_gone - quit_at
    );
    assert!(t.lost.is_empty(), "requests lost: {:?}", t.lost);
    assert!(t.bad.is_empty(), "non-200 answers: {:?}", t.bad);
    assert!(
        t.closed_by_server >= 8,
        "connections were handed over by Connection: close"
    );
    assert!(
        p < Duration::from_millis(200),
        "p99.9 {p:?} during the upgrade"
    );
}

#[test]
fn an_early_sigquit_is_ignored_and_said_so() {
    let bot = MockBot::start();
    let slow = MockBot::start();
    let (dir, listen, admin) = setup(&bot, &slow);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slackgate"));
    cmd.args(["run", "-c"])
        .arg(dir.path().join("config.yaml"))
        .arg("--upgrade-sock")
        .arg(dir.path().join("upgrade.sock"))
        .args(["--threads", "1"])
        .env("DRILL_SECRET", SECRET)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut old = Proc(cmd.spawn().unwrap());
    assert!(wait_until(Duration::from_secs(30), || ready(admin)));
    // No new process is waiting: the old one must say so and keep serving.
    signal(&old.0, "QUIT");
    let stderr = old.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut said = false;
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.contains("SIGQUIT ignored") {
            said = true;
            break;
        }
    }
    assert!(
        said,
        "the old process said nothing at the default log level"
    );
    let r = Client::plain(listen)
        .send(&request(1, "/slack/events"))
        .unwrap();
    assert_eq!(r.status, 200, "still serving");
    assert!(old.0.try_wait().unwrap().is_none(), "still running");
    signal(&old.0, "TERM");
    wait_exit(&mut old, "process after SIGTERM");
}
