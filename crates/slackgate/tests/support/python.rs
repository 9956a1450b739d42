//! Python scripts the compatibility tests run: the interpreter, and a script that serves
//! HTTP on loopback in a child process (tests/bolt/bot.py, tests/sdk/bolt_say.py).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use slackgate_testkit::{wait_until, Client};

/// How long a script may take to start listening.
const START_LIMIT: Duration = Duration::from_secs(60);

/// The Python interpreter: `SLACKGATE_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("SLACKGATE_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Fails (never skips) with an actionable message when the interpreter cannot import
/// `modules` (comma-separated, as `import` takes them).
pub fn require(modules: &str) {
    let py = python();
    let out = Command::new(&py)
        .args(["-c", &format!("import {modules}")])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{py}` ({e}): these tests need Python 3 with {modules}; install \
                 them with scripts/deps.sh (CI does)"
            )
        });
    assert!(
        out.status.success(),
        "`{py}` cannot import {modules}: run scripts/deps.sh (pip install -r \
         scripts/python-requirements.txt); python said:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Python script serving HTTP in a child process, killed when dropped.
#[derive(Debug)]
pub struct PyServer {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl PyServer {
    /// Runs `cmd` (the script `name` with its arguments and environment; unbuffered, its
    /// stdout piped, its stderr the test's) and waits for the first line it prints,
    /// `listening HOST:PORT`, naming `expect` when given; then until it answers `GET /ran`.
    /// The line is read on a thread so a hung interpreter cannot hang the test.
    pub fn start(mut cmd: Command, name: &str, expect: Option<SocketAddr>) -> Self {
        let mut child = cmd
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(START_LIMIT).unwrap_or_default();
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .filter(|a| expect.is_none_or(|e| e == *a));
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let Some(addr) = addr else {
            let status = server.child.try_wait().ok().flatten();
            let on = expect.map_or(String::new(), |e| format!(" on {e}"));
            panic!(
                "{name} did not report listening{on} (exit status {status:?}, first line \
                 {line:?}); see its stderr above"
            );
        };
        server.addr = addr;
        let client = server.client();
        assert!(
            wait_until(Duration::from_secs(30), || client
                .get("/ran")
                .is_ok_and(|r| r.status == 200)),
            "{name} on {addr} never answered GET /ran"
        );
        server
    }

    /// A client for it.
    pub fn client(&self) -> Client {
        Client::plain(self.addr)
    }

    /// The JSON list it serves at `GET path` (the records of tests/bolt/bot.py: `/ran`,
    /// `/requests`).
    pub fn records(&self, path: &str) -> Vec<serde_json::Value> {
        let r = self
            .client()
            .get(path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(r.status, 200, "GET {path}");
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e})"))
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
