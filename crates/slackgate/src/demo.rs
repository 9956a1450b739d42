//! `slackgate demo`: the gateway on an embedded policy in front of a built-in echo bot,
//! with a generated signing secret and ready-to-paste signed `curl` commands.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};

use slackgate_policy::SecretSource;
use slackgate_slack::SigningKey;

const POLICY: &str = include_str!("demo/policy.yaml");
const SECRET_ENV: &str = "SLACKGATE_DEMO_SIGNING_SECRET";

const ALLOWED: &str = r#"{"token":"demo","team_id":"T0ACME","api_app_id":"A0HELPDESK","event":{"type":"app_mention","user":"U0333","text":"<@U0BOT> open a ticket","ts":"1764377000.000100","channel":"C0HELP","event_ts":"1764377000.000100"},"type":"event_callback","event_id":"Ev0DEMO0001","event_time":1764377000}"#;
const DENIED: &str = r#"{"token":"demo","team_id":"T0ACME","api_app_id":"A0HELPDESK","event":{"type":"app_mention","user":"U0BAD","text":"<@U0BOT> let me in","ts":"1764377001.000100","channel":"C0HELP","event_ts":"1764377001.000100"},"type":"event_callback","event_id":"Ev0DEMO0002","event_time":1764377001}"#;

/// The demo's one secret, served to the policy loader without touching the environment.
struct DemoSecrets(String);

impl SecretSource for DemoSecrets {
    fn env(&self, name: &str) -> Option<String> {
        (name == SECRET_ENV).then(|| self.0.clone())
    }

    fn read_file(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

fn random_secret() -> String {
    let a = RandomState::new().hash_one(SystemTime::now());
    let b = RandomState::new().hash_one(std::process::id());
    format!("{a:016x}{b:016x}")
}

/// Starts the echo bot on a free loopback port; returns its address.
fn start_echo_bot() -> anyhow::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the echo bot")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || echo(conn));
        }
    });
    Ok(addr)
}

/// Answers each request with what the bot saw: the gateway's headers and the body size.
fn echo(stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(&stream);
    loop {
        let mut line = String::new();
        if !matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            return;
        }
        let mut len = 0usize;
        let mut seen = serde_json::Map::new();
        loop {
            let mut h = String::new();
            if !matches!(reader.read_line(&mut h), Ok(n) if n > 0) {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                if k == "content-length" {
                    len = v.trim().parse().unwrap_or(0);
                }
                if k.starts_with("x-slackgate-") {
                    seen.insert(k, v.trim().into());
                }
            }
        }
        let mut body = vec![0; len.min(16 * 1024 * 1024)];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let out = serde_json::json!({"bot": "echo", "body_bytes": len, "gateway_headers": seen})
            .to_string();
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{out}",
            out.len()
        );
        if (&stream).write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

fn curl(listen: &str, key: &SigningKey, ts: &str, body: &str) -> String {
    format!(
        "curl -sS -i http://{listen}/slack/events -H 'Content-Type: application/json' \\\n  -H 'X-Slack-Request-Timestamp: {ts}' \\\n  -H 'X-Slack-Signature: {}' \\\n  --data-raw '{body}'",
        key.sign(ts, body.as_bytes())
    )
}

/// Sends one signed request with a plain socket and returns (status, body).
fn send(listen: &str, ts: &str, sig: &str, body: &str) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect(listen)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "POST /slack/events HTTP/1.1\r\nHost: {listen}\r\nContent-Type: application/json\r\nX-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Fails early, with the flag to change, when an address cannot be bound: pingora would
/// otherwise retry in the background while the demo talks to whoever holds the port.
fn ensure_bindable(flag: &str, addr: &str) -> anyhow::Result<()> {
    TcpListener::bind(addr)
        .map(drop)
        .with_context(|| format!("{flag} {addr} cannot be bound (in use?); pass another {flag}"))
}

pub fn run(listen: &str, admin: &str, self_test: bool) -> anyhow::Result<ExitCode> {
    ensure_bindable("--listen", listen)?;
    ensure_bindable("--admin", admin)?;
    let bot = start_echo_bot()?;
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let policy = POLICY.replace("{BOT}", &bot.to_string());
    std::fs::write(dir.path().join("policy.yaml"), policy)?;
    std::fs::write(
        dir.path().join("config.yaml"),
        format!("listen:\n  - addr: {listen}\nadmin: {{ addr: {admin} }}\naudit: {{ path: \"-\" }}\npolicy: policy.yaml\n"),
    )?;
    let secret = random_secret();
    let mut opts = slackgate_proxy::Options::new(dir.path().join("config.yaml"));
    opts.secrets = Arc::new(DemoSecrets(secret.clone()));
    opts.threads = 2;
    opts.signals = true;
    opts.upgrade_sock = Some(dir.path().join("upgrade.sock"));
    opts.pid_file = Some(dir.path().join("slackgate.pid"));
    let running = slackgate_proxy::start(opts)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !running.shared.is_ready() {
        if Instant::now() > deadline {
            bail!("the gateway did not become ready on {listen} / {admin}; are the ports free?");
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    let key = SigningKey::new("demo", secret.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let ts = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_secs()
        .to_string();
    eprintln!(
        "slackgate demo: gateway on http://{listen}, admin on http://{admin}, echo bot on {bot}"
    );
    eprintln!("demo signing secret: in memory only (export it with `slackgate sign` if you need more requests)");
    eprintln!("signatures below are valid for 5 minutes (max_clock_skew).\n");
    let a = curl(listen, &key, &ts, ALLOWED);
    let d = curl(listen, &key, &ts, DENIED);
    println!("# 1. allowed: an app_mention from U0333 in T0ACME reaches the echo bot\n{a}\n");
    println!(
        "# 2. denied by scope: the same from U0BAD (group @blocked) gets 403 scope_denied\n{d}\n"
    );
    println!("# 3. replayed: run command 1 again; the gateway answers 401 replayed\n");
    println!("# metrics: curl -s http://{admin}/metrics | grep slackgate_requests_total");
    println!("# status:  curl -s http://{admin}/status\n");

    if self_test {
        let sig_a = key.sign(&ts, ALLOWED.as_bytes());
        let sig_d = key.sign(&ts, DENIED.as_bytes());
        let mut results = Vec::new();
        for (name, sig, body) in [
            ("allowed", &sig_a, ALLOWED),
            ("denied", &sig_d, DENIED),
            ("replayed", &sig_a, ALLOWED),
        ] {
            match send(listen, &ts, sig, body) {
                Ok(answer) => results.push((name, answer)),
                Err(e) => {
                    running.shutdown();
                    return Err(e.context(format!("self-test {name}: sending to {listen}")));
                }
            }
        }
        for (name, (status, body)) in &results {
            println!("self-test {name}: {status} {body}");
        }
        running.shutdown();
        let ok = results
            .iter()
            .map(|(_, (status, _))| *status)
            .eq([200, 403, 401]);
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    eprintln!("press Ctrl-C to stop");
    loop {
        std::thread::park();
    }
}
