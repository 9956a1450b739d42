//! `slackgate demo`: the gateway on an embedded policy in front of a built-in echo bot,
//! with a generated signing secret and ready-to-paste signed `curl` commands; and its
//! egress door, in front of a built-in Slack Web API stand-in, with a demo bot whose
//! gateway key is printed (it is worth nothing outside this demo) and whose token is not.
//! The route re-signs what it forwards (`resign`): the echo bot verifies the gateway's
//! signature with its own secret, as Bolt would, and answers 401 to anything else.

mod slack;

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
const KEY_ENV: &str = "SLACKGATE_DEMO_GATEWAY_KEY";
const TOKEN_ENV: &str = "SLACKGATE_DEMO_BOT_TOKEN";
const RESIGN_ENV: &str = "SLACKGATE_DEMO_BOT_SIGNING_SECRET";
const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

const ALLOWED: &str = r#"{"token":"demo","team_id":"T0ACME","api_app_id":"A0HELPDESK","event":{"type":"app_mention","user":"U0333","text":"<@U0BOT> open a ticket","ts":"1764377000.000100","channel":"C0HELP","event_ts":"1764377000.000100"},"type":"event_callback","event_id":"Ev0DEMO0001","event_time":1764377000}"#;
const DENIED: &str = r#"{"token":"demo","team_id":"T0ACME","api_app_id":"A0HELPDESK","event":{"type":"app_mention","user":"U0BAD","text":"<@U0BOT> let me in","ts":"1764377001.000100","channel":"C0HELP","event_ts":"1764377001.000100"},"type":"event_callback","event_id":"Ev0DEMO0002","event_time":1764377001}"#;

/// The demo's secrets, served to the policy loader without touching the environment.
struct DemoSecrets {
    signing_secret: String,
    gateway_key: String,
    bot_token: String,
    /// The route's `resign` secret: the only one the echo bot knows.
    bot_signing_secret: String,
}

impl SecretSource for DemoSecrets {
    fn env(&self, name: &str) -> Option<String> {
        match name {
            SECRET_ENV => Some(self.signing_secret.clone()),
            KEY_ENV => Some(self.gateway_key.clone()),
            TOKEN_ENV => Some(self.bot_token.clone()),
            RESIGN_ENV => Some(self.bot_signing_secret.clone()),
            _ => None,
        }
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

/// A bot token the stand-in accepts: Slack's shape, random, never printed.
fn random_token() -> String {
    format!("xoxb-0000-0000-{}", random_secret())
}

/// Starts the echo bot on a free loopback port; returns its address. It verifies requests
/// with `key` (the route's `resign` secret), as an HTTP-mode Bolt app does.
fn start_echo_bot(listener: TcpListener, key: SigningKey) -> anyhow::Result<std::net::SocketAddr> {
    let addr = listener.local_addr()?;
    let key = Arc::new(key);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let key = Arc::clone(&key);
            std::thread::spawn(move || echo(conn, &key));
        }
    });
    Ok(addr)
}

/// Whether the signature headers verify with the bot's own secret, now.
fn bot_verifies(key: &SigningKey, sig: Option<&str>, ts: Option<&str>, body: &[u8]) -> bool {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    slackgate_slack::verify(
        [key],
        sig.map(str::as_bytes),
        ts.map(str::as_bytes),
        body,
        now,
        300,
    )
    .is_ok()
}

/// The `response_url` of a form body, as the bot reads it.
fn response_url_of(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "response_url")
        .map(|(_, v)| v.into_owned())
}

/// Answers each request with what the bot saw: the gateway's headers, the body size,
/// whether the gateway's signature verified with the bot's own secret (401 otherwise),
/// and a form's `response_url`.
fn echo(stream: TcpStream, key: &SigningKey) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(&stream);
    while let Some((_, headers)) = read_head(&mut reader) {
        let mut len = 0usize;
        let mut seen = serde_json::Map::new();
        let (mut sig, mut ts) = (None, None);
        for (k, v) in headers {
            if k == "content-length" {
                len = v.parse().unwrap_or(0);
            }
            match k.as_str() {
                "x-slack-signature" => sig = Some(v),
                "x-slack-request-timestamp" => ts = Some(v),
                _ if k.starts_with("x-slackgate-") => {
                    seen.insert(k, v.into());
                }
                _ => {}
            }
        }
        let mut body = vec![0; len.min(16 * 1024 * 1024)];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let verified = bot_verifies(key, sig.as_deref(), ts.as_deref(), &body);
        let mut out =
            serde_json::json!({"bot": "echo", "body_bytes": len, "gateway_headers": seen});
        let status = if verified {
            out["signature"] = "verified with the bot's own secret (resign)".into();
            if let Some(url) = response_url_of(&body) {
                out["response_url"] = url.into();
            }
            "200 OK"
        } else {
            out = serde_json::json!({"bot": "echo", "error": "invalid signature"});
            "401 Unauthorized"
        };
        let out = out.to_string();
        let resp = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{out}",
            out.len()
        );
        if (&stream).write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// One request head from `reader`: its request line and its header fields, names
/// lowercased and values trimmed; `None` once the connection ends or fails.
fn read_head(reader: &mut impl BufRead) -> Option<(String, Vec<(String, String)>)> {
    let mut line = String::new();
    if !matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if !matches!(reader.read_line(&mut h), Ok(n) if n > 0) {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            return Some((line, headers));
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
}

/// The `curl` command of one signed request to the inbound door.
fn curl(listen: &str, key: &SigningKey, ts: &str, content_type: &str, body: &str) -> String {
    format!(
        "curl -sS -i http://{listen}/slack/events -H 'Content-Type: {content_type}' \\\n  -H 'X-Slack-Request-Timestamp: {ts}' \\\n  -H 'X-Slack-Signature: {}' \\\n  --data-raw '{body}'",
        key.sign(ts, body.as_bytes())
    )
}

/// The `curl` command of one Web API call by the demo bot, form-encoded as `-d` sends it.
fn curl_call(egress: &str, key: &str, method: &str, args: &[(&str, &str)]) -> String {
    let mut out =
        format!("curl -sS -i http://{egress}/api/{method} -H 'Authorization: Bearer {key}'");
    for (k, v) in args {
        out.push_str(&format!(" -d {k}={v}"));
    }
    out
}

/// Sends one signed request with a plain socket and returns (status, body).
fn send(listen: &str, ts: &str, sig: &str, body: &str) -> anyhow::Result<(u16, String)> {
    exchange(
        listen,
        &format!(
            "POST /slack/events HTTP/1.1\r\nHost: {listen}\r\nContent-Type: application/json\r\nX-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// Sends one Web API call as `curl -d` would (a form body) and returns (status, body).
fn send_call(
    egress: &str,
    key: &str,
    method: &str,
    args: &[(&str, &str)],
) -> anyhow::Result<(u16, String)> {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(args)
        .finish();
    exchange(
        egress,
        &format!(
            "POST /api/{method} HTTP/1.1\r\nHost: {egress}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// Writes `request` on a new connection to `addr` and returns the answer's (status, body).
fn exchange(addr: &str, request: &str) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request.as_bytes())?;
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

/// A loopback listener on a port the system picks, never the port of one of `given`
/// (addresses checked free by [`ensure_bindable`] but not held: the system may hand one
/// out again, and the gateway would then fail to bind it). A colliding listener is kept
/// open until another port is found, so the next pick differs.
fn bind_beside(what: &str, given: &[&str]) -> anyhow::Result<TcpListener> {
    let taken: Vec<u16> = given
        .iter()
        .filter_map(|a| a.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.port())
        .collect();
    let mut colliding = Vec::new();
    while colliding.len() <= taken.len() {
        let listener =
            TcpListener::bind("127.0.0.1:0").with_context(|| format!("binding {what}"))?;
        if !taken.contains(&listener.local_addr()?.port()) {
            return Ok(listener);
        }
        colliding.push(listener);
    }
    bail!("binding {what}: every port picked is one the gateway was given")
}

/// The demo bot's unused scopes, from the admin listener's `/status`.
fn unused_scopes(admin: &str) -> anyhow::Result<serde_json::Value> {
    let (_, body) = exchange(
        admin,
        &format!("GET /status HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"),
    )?;
    let status: serde_json::Value = serde_json::from_str(&body).context("/status is not JSON")?;
    Ok(status["egress"]["bots"]["helpdesk"]["unused_scopes"].clone())
}

pub(crate) fn run(
    listen: &str,
    admin: &str,
    egress: &str,
    self_test: bool,
) -> anyhow::Result<ExitCode> {
    ensure_bindable("--listen", listen)?;
    ensure_bindable("--admin", admin)?;
    ensure_bindable("--egress", egress)?;
    let bot_signing_secret = format!("bot{}", random_secret());
    let bot_key = SigningKey::new("resign", bot_signing_secret.as_bytes())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // The gateway's own addresses are free but not held until it starts: the echo bot
    // and the stand-in must not be handed one of their ports meanwhile.
    let given = [listen, admin, egress];
    let bot = start_echo_bot(bind_beside("the echo bot", &given)?, bot_key)?;
    let secrets = DemoSecrets {
        signing_secret: random_secret(),
        gateway_key: format!("gk_demo_{}", random_secret()),
        bot_token: random_token(),
        bot_signing_secret,
    };
    let slack = slack::start(
        bind_beside("the Slack stand-in", &given)?,
        secrets.bot_token.clone(),
    )?;
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let policy = POLICY.replace("{BOT}", &bot.to_string());
    std::fs::write(dir.path().join("policy.yaml"), policy)?;
    std::fs::write(
        dir.path().join("config.yaml"),
        format!("listen:\n  - addr: {listen}\nadmin: {{ addr: {admin} }}\naudit: {{ path: \"-\" }}\npolicy: policy.yaml\negress:\n  listen: {{ addr: {egress} }}\n  slack_api: http://{slack}/api/\n  public_url: http://{egress}/\n"),
    )?;
    let secret = secrets.signing_secret.clone();
    let gateway_key = secrets.gateway_key.clone();
    let mut opts = slackgate_proxy::Options::new(dir.path().join("config.yaml"));
    opts.secrets = Arc::new(secrets);
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
    eprintln!(
        "egress door on http://{egress}/api/ in front of a Slack Web API stand-in on http://{slack}/api/"
    );
    eprintln!("demo bot token: in memory only; the bot holds the gateway key below instead");
    eprintln!("demo signing secret: in memory only (export it with `slackgate sign` if you need more requests)");
    eprintln!("the echo bot holds only its own secret (the route's `resign`): it verifies the gateway's signature, never Slack's");
    eprintln!("signatures below are valid for 5 minutes (max_clock_skew).\n");
    let a = curl(listen, &key, &ts, JSON, ALLOWED);
    let d = curl(listen, &key, &ts, JSON, DENIED);
    println!("# 1. allowed: an app_mention from U0333 in T0ACME reaches the echo bot\n{a}\n");
    println!(
        "# 2. denied by scope: the same from U0BAD (group @blocked) gets 403 scope_denied\n{d}\n"
    );
    println!("# 3. replayed: run command 1 again; the gateway answers 401 replayed\n");
    let allowed_args = [("channel", "C0DEMO"), ("text", "hi")];
    let channel_args = [("channel", "C0SECRET"), ("text", "hi")];
    let method_args = [("limit", "10")];
    println!(
        "# 4. egress, allowed: the demo bot posts with its gateway key; the gateway sends the call to\n\
         #    Slack with the real token (which the bot never holds) and relays Slack's answer: 200 {{\"ok\":true,...}}\n{}\n",
        curl_call(egress, &gateway_key, "chat.postMessage", &allowed_args)
    );
    println!(
        "# 5. egress, denied by channel: C0SECRET is not in the bot's channels; the gateway answers\n\
         #    as Slack answers a failed call: 200 {{\"ok\":false,\"error\":\"channel_denied\"}}\n{}\n",
        curl_call(egress, &gateway_key, "chat.postMessage", &channel_args)
    );
    println!(
        "# 6. egress, denied by method: users.list is not in the bot's methods: 200 {{\"ok\":false,\"error\":\"method_denied\"}}\n{}\n",
        curl_call(egress, &gateway_key, "users.list", &method_args)
    );
    let command = "token=demo&team_id=T0ACME&channel_id=C0HELP&user_id=U0333&command=%2Fticket&text=printer&api_app_id=A0HELPDESK&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT0ACME%2F1%2Fdemo";
    println!(
        "# 7. custody: a /ticket command; the echo bot gets http://{egress}/respond/<capability>, never Slack's response_url\n{}\n",
        curl(listen, &key, &ts, FORM, command)
    );
    println!(
        "# metrics: curl -s http://{admin}/metrics | grep -E 'slackgate_(egress_)?requests_total'"
    );
    println!("# status:  curl -s http://{admin}/status   (egress.bots.helpdesk.unused_scopes: scopes to trim)\n");

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
        for (name, method, args) in [
            ("egress allowed", "chat.postMessage", &allowed_args[..]),
            (
                "egress channel_denied",
                "chat.postMessage",
                &channel_args[..],
            ),
            ("egress method_denied", "users.list", &method_args[..]),
        ] {
            match send_call(egress, &gateway_key, method, args) {
                Ok(answer) => results.push((name, answer)),
                Err(e) => {
                    running.shutdown();
                    return Err(e.context(format!("self-test {name}: sending to {egress}")));
                }
            }
        }
        let unused = unused_scopes(admin);
        for (name, (status, body)) in &results {
            println!("self-test {name}: {status} {body}");
        }
        running.shutdown();
        let unused = unused?;
        println!("self-test unused_scopes: {unused}");
        let ok = results
            .iter()
            .map(|(_, (status, _))| *status)
            .eq([200, 403, 401, 200, 200, 200])
            && results[0]
                .1
                 .1
                .contains("verified with the bot's own secret")
            && results[3].1 .1.contains(r#""ok":true"#)
            && results[4].1 .1.contains(r#""error":"channel_denied""#)
            && results[5].1 .1.contains(r#""error":"method_denied""#);
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
