//! The Slack Web API stand-in over real connections: TLS handshakes with a rustls client
//! that trusts only the stand-in's CA file, keep-alive, framing, recording, the documented
//! error answers, rate limits and single-use refresh tokens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use slackgate_testkit::{read_response, wait_until, Client, Response, SlackApi, TestCerts};

const TOKEN: &str = "xoxb-real-helpdesk";
const SCOPES: &[&str] = &["chat:write", "channels:read", "reactions:write"];

fn helpdesk() -> SlackApi {
    SlackApi::builder().token(TOKEN, "T0ACME", SCOPES).start()
}

/// A rustls client configuration trusting only the certificates in `ca_file`.
fn trusting(ca_file: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// One client connection, kept open across requests.
struct Conn {
    io: BufReader<Box<dyn ReadWrite>>,
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

impl Conn {
    /// A TLS connection that verifies the server as `server_name` against its CA file only.
    fn tls(slack: &SlackApi, server_name: &str) -> std::io::Result<Self> {
        Self::tls_trusting(slack, slack.ca_file(), server_name)
    }

    /// A TLS connection that verifies the server as `server_name` against `ca_file` only.
    fn tls_trusting(slack: &SlackApi, ca_file: &Path, server_name: &str) -> std::io::Result<Self> {
        let tcp = TcpStream::connect(slack.addr())?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let name = ServerName::try_from(server_name.to_owned()).unwrap();
        let conn = rustls::ClientConnection::new(trusting(ca_file), name).unwrap();
        let mut tls: Tls = rustls::StreamOwned::new(conn, tcp);
        // Finish the handshake now, so a failure shows here.
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        Ok(Self {
            io: BufReader::new(Box::new(tls)),
        })
    }

    fn open(slack: &SlackApi) -> Self {
        if slack.is_tls() {
            Self::tls(slack, "127.0.0.1").unwrap()
        } else {
            let tcp = TcpStream::connect(slack.addr()).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            Self {
                io: BufReader::new(Box::new(tcp)),
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        let w = self.io.get_mut();
        w.write_all(bytes).unwrap();
        w.flush().unwrap();
    }

    fn read(&mut self) -> std::io::Result<Response> {
        read_response(&mut self.io)
    }

    fn send(&mut self, bytes: &[u8]) -> Response {
        self.write(bytes);
        self.read().unwrap()
    }

    /// Whether the server closed the connection (end of stream, or TLS close/reset).
    fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        !matches!(self.io.read(&mut byte), Ok(n) if n > 0)
    }
}

fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: slack.com\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn form_post(method: &str, token: Option<&str>, body: &str) -> Vec<u8> {
    let auth = token.map(bearer);
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    request("POST", &format!("/api/{method}"), &headers, body.as_bytes())
}

fn json_post(method: &str, token: Option<&str>, body: &Value) -> Vec<u8> {
    let auth = token.map(bearer);
    let mut headers = vec![("Content-Type", "application/json; charset=utf-8")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    let body = serde_json::to_vec(body).unwrap();
    request("POST", &format!("/api/{method}"), &headers, &body)
}

fn call(slack: &SlackApi, bytes: &[u8]) -> Response {
    Conn::open(slack).send(bytes)
}

fn error(r: &Response) -> Option<String> {
    r.json()
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

#[test]
fn serves_https_to_a_client_trusting_only_its_ca_file() {
    let slack = helpdesk();
    let url = slack.url();
    assert_eq!(url, format!("https://{}/api/", slack.addr()));
    assert!(url.starts_with("https://127.0.0.1:"));
    let pem = std::fs::read_to_string(slack.ca_file()).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(
        CertificateDer::from_pem_file(slack.ca_file())
            .unwrap()
            .as_ref(),
        slack.ca_der()
    );

    for name in ["127.0.0.1", "localhost"] {
        let mut conn = Conn::tls(&slack, name).unwrap();
        let r = conn.send(&form_post("auth.test", Some(TOKEN), ""));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(
            r.header("content-length"),
            Some(r.body.len().to_string().as_str())
        );
        let j = r.json();
        assert_eq!(j["ok"], true);
        assert_eq!(j["team_id"], "T0ACME");
        assert_eq!(j["user_id"], "U0BOT");
    }
    // The testkit's own client, given the CA's DER, gets the same answer.
    let r = Client::tls(slack.addr(), slack.ca_der())
        .raw(&form_post("auth.test", Some(TOKEN), ""))
        .unwrap();
    assert_eq!(r.json()["ok"], true);
}

#[test]
fn a_client_trusting_another_ca_fails_the_handshake() {
    let slack = helpdesk();
    let other = TestCerts::generate();
    assert!(Conn::tls_trusting(&slack, &other.cert, "127.0.0.1").is_err());
    assert!(wait_until(Duration::from_secs(5), || slack
        .handshake_failures()
        == 1));
    // The wrong name fails too: the certificate names 127.0.0.1 and localhost only.
    assert!(Conn::tls(&slack, "slack.com").is_err());
    assert!(wait_until(Duration::from_secs(5), || slack
        .handshake_failures()
        == 2));
    assert_eq!(slack.count(), 0);
}

#[test]
fn auth_errors_are_http_200_with_slack_codes() {
    let slack = SlackApi::builder()
        .token(TOKEN, "T0ACME", SCOPES)
        .token("xoxb-old", "T0ACME", SCOPES)
        .revoke("xoxb-old")
        .start();
    let r = call(
        &slack,
        &form_post("chat.postMessage", None, "channel=C1&text=hi"),
    );
    assert_eq!((r.status, error(&r).as_deref()), (200, Some("not_authed")));
    assert_eq!(r.header("x-oauth-scopes"), None);
    let r = call(
        &slack,
        &form_post("chat.postMessage", Some("xoxb-nope"), "channel=C1&text=hi"),
    );
    assert_eq!(error(&r).as_deref(), Some("invalid_auth"));
    let r = call(
        &slack,
        &form_post("chat.postMessage", Some("xoxb-old"), "channel=C1&text=hi"),
    );
    assert_eq!(error(&r).as_deref(), Some("token_revoked"));

    // Revoked at runtime.
    slack.revoke(TOKEN);
    let r = call(&slack, &form_post("auth.test", Some(TOKEN), ""));
    assert_eq!(error(&r).as_deref(), Some("token_revoked"));
    slack.grant(TOKEN, "T0ACME", SCOPES);
    let r = call(&slack, &form_post("auth.test", Some(TOKEN), ""));
    assert_eq!(r.json()["ok"], true);

    let answers: Vec<_> = slack
        .received()
        .iter()
        .map(|r| r.answer.error.clone())
        .collect();
    assert_eq!(
        answers,
        [
            Some("not_authed".to_owned()),
            Some("invalid_auth".to_owned()),
            Some("token_revoked".to_owned()),
            Some("token_revoked".to_owned()),
            None,
        ]
    );
}

#[test]
fn tokens_are_read_where_slack_reads_them() {
    let slack = helpdesk();
    // A form body's token field authenticates.
    let r = call(
        &slack,
        &form_post("auth.test", None, &format!("token={TOKEN}")),
    );
    assert_eq!(r.json()["ok"], true);
    // A JSON body must use the Authorization header: a token member is not a credential.
    let body = json!({"token": TOKEN, "channel": "C1", "text": "hi"});
    let r = call(&slack, &json_post("chat.postMessage", None, &body));
    assert_eq!(error(&r).as_deref(), Some("not_authed"));
    let r = call(&slack, &json_post("chat.postMessage", Some(TOKEN), &body));
    assert_eq!(r.json()["ok"], true);
    // Nor is a token in the query string.
    let r = call(
        &slack,
        &request("GET", &format!("/api/auth.test?token={TOKEN}"), &[], b""),
    );
    assert_eq!(error(&r).as_deref(), Some("not_authed"));

    let tokens: Vec<_> = slack.take().into_iter().map(|r| r.token).collect();
    assert_eq!(
        tokens,
        [Some(TOKEN.to_owned()), None, Some(TOKEN.to_owned()), None]
    );
}

#[test]
fn scope_headers_and_missing_scope() {
    let slack = helpdesk();
    let r = call(&slack, &form_post("auth.test", Some(TOKEN), ""));
    assert_eq!(
        r.header("x-oauth-scopes"),
        Some("chat:write,channels:read,reactions:write")
    );
    assert_eq!(r.header("x-accepted-oauth-scopes"), Some(""));

    let r = call(
        &slack,
        &form_post("chat.postMessage", Some(TOKEN), "channel=C1&text=hi"),
    );
    assert_eq!(r.header("x-accepted-oauth-scopes"), Some("chat:write"));

    let r = call(
        &slack,
        &form_post("conversations.history", Some(TOKEN), "channel=C1"),
    );
    let j = r.json();
    assert_eq!(j["error"], "missing_scope");
    assert_eq!(
        j["needed"],
        "channels:history,groups:history,im:history,mpim:history"
    );
    assert_eq!(j["provided"], "chat:write,channels:read,reactions:write");
    assert_eq!(
        r.header("x-accepted-oauth-scopes"),
        Some("channels:history,groups:history,im:history,mpim:history")
    );
    assert_eq!(
        r.header("x-oauth-scopes"),
        Some("chat:write,channels:read,reactions:write")
    );

    let r = call(&slack, &form_post("users.info", Some(TOKEN), "user=U1"));
    assert_eq!(r.json()["needed"], "users:read");
}

#[test]
fn unknown_methods_and_paths() {
    let slack = helpdesk();
    let r = call(&slack, &form_post("admin.users.invite", Some(TOKEN), ""));
    assert_eq!(
        (r.status, error(&r).as_deref()),
        (200, Some("unknown_method"))
    );
    let r = call(&slack, &request("GET", "/not-api", &[], b""));
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["ok"], false);
    let rec = slack.received();
    assert_eq!(rec[0].method, "admin.users.invite");
    assert_eq!(rec[1].method, "");
    assert_eq!(rec[1].answer.status, 404);
}

#[test]
fn arguments_from_query_form_and_json() {
    let slack = helpdesk();
    let auth = bearer(TOKEN);
    let get = request(
        "GET",
        "/api/conversations.info?channel=C0QUERY",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(
        call(&slack, &get).json(),
        json!({"ok": true, "channel": {"id": "C0QUERY"}})
    );
    let form = form_post("conversations.info", Some(TOKEN), "channel=C0FORM");
    assert_eq!(call(&slack, &form).json()["channel"]["id"], "C0FORM");
    let j = json_post(
        "conversations.info",
        Some(TOKEN),
        &json!({"channel": "C0JSON"}),
    );
    assert_eq!(call(&slack, &j).json()["channel"]["id"], "C0JSON");
    // A mix: query and body.
    let mixed = request(
        "POST",
        "/api/chat.postMessage?channel=C0MIX",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"text=hello",
    );
    let r = call(&slack, &mixed).json();
    assert_eq!(r["channel"], "C0MIX");
    assert_eq!(r["message"]["text"], "hello");

    let rec = slack.received();
    assert_eq!(rec[0].query, "channel=C0QUERY");
    assert_eq!(rec[0].arg("channel").as_deref(), Some("C0QUERY"));
    assert_eq!(rec[1].arg("channel").as_deref(), Some("C0FORM"));
    assert_eq!(rec[2].arg("channel").as_deref(), Some("C0JSON"));
    assert_eq!(rec[2].json()["channel"], "C0JSON");
    assert_eq!(rec[3].arg("channel").as_deref(), Some("C0MIX"));
}

#[test]
fn body_errors_and_charset_warnings() {
    let slack = helpdesk();
    let auth = bearer(TOKEN);
    let send = |ct: &str, body: &[u8]| {
        call(
            &slack,
            &request(
                "POST",
                "/api/auth.test",
                &[("Authorization", &auth), ("Content-Type", ct)],
                body,
            ),
        )
    };
    assert_eq!(
        error(&send("application/json; charset=utf-8", b"{no")).as_deref(),
        Some("invalid_json")
    );
    assert_eq!(
        error(&send("application/json; charset=utf-8", b"[]")).as_deref(),
        Some("json_not_object")
    );
    assert_eq!(
        error(&send("text/xml", b"<a/>")).as_deref(),
        Some("invalid_post_type")
    );
    let r = send("application/json", b"{}").json();
    assert_eq!(r["ok"], true);
    assert_eq!(r["warning"], "missing_charset");
    let r = send("application/x-www-form-urlencoded; charset=utf-8", b"a=1").json();
    assert_eq!(r["warning"], "superfluous_charset");
    let no_type = request(
        "POST",
        "/api/auth.test",
        &[("Authorization", &auth)],
        b"a=1",
    );
    assert_eq!(
        error(&call(&slack, &no_type)).as_deref(),
        Some("missing_post_type")
    );
}

#[test]
fn success_shapes() {
    let slack = SlackApi::builder()
        .token(
            TOKEN,
            "T0ACME",
            &[
                "chat:write",
                "channels:read",
                "channels:history",
                "reactions:write",
                "users:read",
                "usergroups:read",
            ],
        )
        .usergroup("S0ONCALL", &["U1", "U2"])
        .start();
    let mut conn = Conn::open(&slack);
    let mut post = |m: &str, body: Value| conn.send(&json_post(m, Some(TOKEN), &body)).json();

    let a = post(
        "chat.postMessage",
        json!({"channel": "C0HELP", "text": "first"}),
    );
    let b = post(
        "chat.postMessage",
        json!({"channel": "C0HELP", "text": "second"}),
    );
    assert_eq!(a["ok"], true);
    assert_eq!(a["channel"], "C0HELP");
    assert_eq!(a["message"]["text"], "first");
    assert_eq!(a["message"]["ts"], a["ts"]);
    let (ta, tb): (f64, f64) = (
        a["ts"].as_str().unwrap().parse().unwrap(),
        b["ts"].as_str().unwrap().parse().unwrap(),
    );
    assert!(ta < tb);
    assert_eq!(
        post("chat.postMessage", json!({"text": "x"}))["error"],
        "channel_not_found"
    );

    let h = post("conversations.history", json!({"channel": "C0HELP"}));
    assert_eq!(h["messages"][0]["text"], "second");
    let u = post(
        "chat.update",
        json!({"channel": "C0HELP", "ts": a["ts"], "text": "edited"}),
    );
    assert_eq!(
        (u["ok"].clone(), u["ts"].clone()),
        (json!(true), a["ts"].clone())
    );
    assert_eq!(
        post("chat.delete", json!({"channel": "C0HELP", "ts": a["ts"]}))["ok"],
        true
    );
    assert_eq!(
        post(
            "reactions.add",
            json!({"channel": "C0HELP", "timestamp": a["ts"], "name": "eyes"})
        ),
        json!({"ok": true})
    );
    let e = post(
        "chat.postEphemeral",
        json!({"channel": "C0HELP", "user": "U1", "text": "psst"}),
    );
    assert!(e["message_ts"].is_string(), "{e}");
    assert_eq!(
        post(
            "chat.postEphemeral",
            json!({"channel": "C0HELP", "user": "U1"})
        )["error"],
        "no_text"
    );
    assert_eq!(
        post("users.info", json!({"user": "U1"}))["user"]["id"],
        "U1"
    );
    assert_eq!(
        post("usergroups.users.list", json!({"usergroup": "S0ONCALL"})),
        json!({"ok": true, "users": ["U1", "U2"]})
    );
    slack.set_usergroup("S0ONCALL", &["U3"]);
    assert_eq!(
        post("usergroups.users.list", json!({"usergroup": "S0ONCALL"}))["users"],
        json!(["U3"])
    );
    assert_eq!(
        post("usergroups.users.list", json!({"usergroup": "S0NONE"}))["error"],
        "no_such_subteam"
    );
}

#[test]
fn keep_alive_reuses_one_connection() {
    let slack = helpdesk();
    let mut conn = Conn::open(&slack);
    for i in 0..5 {
        let r = conn.send(&form_post(
            "chat.postMessage",
            Some(TOKEN),
            &format!("channel=C1&text={i}"),
        ));
        assert_eq!(r.json()["ok"], true);
        assert_eq!(r.header("connection"), None);
    }
    // Two requests in one write (pipelined) get two answers, in order.
    let mut both = form_post("conversations.info", Some(TOKEN), "channel=CA");
    both.extend(form_post("conversations.info", Some(TOKEN), "channel=CB"));
    conn.write(&both);
    assert_eq!(conn.read().unwrap().json()["channel"]["id"], "CA");
    assert_eq!(conn.read().unwrap().json()["channel"]["id"], "CB");
    // `Connection: close` is honoured: answered, then closed.
    let close = request(
        "POST",
        "/api/auth.test",
        &[("Authorization", &bearer(TOKEN)), ("Connection", "close")],
        b"",
    );
    let r = conn.send(&close);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(conn.closed());

    let rec = slack.received();
    assert_eq!(rec.len(), 8);
    assert!(rec.iter().all(|r| r.conn == rec[0].conn));
    assert_eq!(slack.connections(), 1);
    Conn::open(&slack).send(&form_post("auth.test", Some(TOKEN), ""));
    assert_eq!(slack.received().last().unwrap().conn, rec[0].conn + 1);
}

#[test]
fn http_1_0_closes_unless_kept_alive() {
    let slack = helpdesk();
    let mut conn = Conn::open(&slack);
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let r = conn.send(
        format!("POST /api/auth.test HTTP/1.0\r\n{auth}Connection: keep-alive\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.json()["ok"], true);
    let r = conn.send(format!("POST /api/auth.test HTTP/1.0\r\n{auth}\r\n").as_bytes());
    assert_eq!(r.json()["ok"], true);
    assert!(conn.closed());
}

#[test]
fn chunked_and_expect_continue_bodies() {
    let slack = helpdesk();
    let mut conn = Conn::open(&slack);
    let head = format!(
        "POST /api/chat.postMessage HTTP/1.1\r\nHost: slack.com\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    conn.write(head.as_bytes());
    conn.write(b"b\r\nchannel=C1&\r\n");
    conn.write(b"9;ext=1\r\ntext=hell\r\n1\r\no\r\n0\r\n\r\n");
    let r = conn.read().unwrap();
    assert_eq!(r.json()["message"]["text"], "hello", "{:?}", r.json());

    // Expect: 100-continue: the interim answer comes before the body is sent.
    let body = br#"{"channel":"C2","text":"after continue"}"#;
    let head = format!(
        "POST /api/chat.postMessage HTTP/1.1\r\nHost: slack.com\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    conn.write(head.as_bytes());
    assert_eq!(conn.read().unwrap().status, 100);
    conn.write(body);
    let r = conn.read().unwrap();
    assert_eq!(r.json()["channel"], "C2");

    let rec = slack.received();
    assert!(rec[0].chunked);
    assert_eq!(rec[0].body, b"channel=C1&text=hello");
    assert!(!rec[1].chunked);
    assert_eq!(rec[1].body, body);
    assert_eq!(rec[0].conn, rec[1].conn);
}

#[test]
fn a_one_mebibyte_body_arrives_whole() {
    let slack = helpdesk();
    let text = "x".repeat(1024 * 1024);
    let body = json!({"channel": "C1", "text": text});
    let r = call(&slack, &json_post("chat.postMessage", Some(TOKEN), &body));
    assert_eq!(r.json()["ok"], true);
    let rec = slack.take();
    assert_eq!(rec[0].body, serde_json::to_vec(&body).unwrap());
}

#[test]
fn records_every_request_with_its_answer() {
    let slack = helpdesk();
    let raw = form_post("chat.postMessage", Some(TOKEN), "channel=C0HELP&text=hi");
    call(&slack, &raw);
    assert_eq!(slack.count(), 1);
    let rec = slack.received().remove(0);
    assert_eq!(rec.method, "chat.postMessage");
    assert_eq!(rec.http_method, "POST");
    assert_eq!(rec.target, "/api/chat.postMessage");
    assert_eq!(rec.query, "");
    let head_len = raw.len() - rec.body.len();
    assert_eq!(rec.head, &raw[..head_len]);
    assert_eq!(rec.body, b"channel=C0HELP&text=hi");
    assert_eq!(
        rec.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(rec
        .headers
        .iter()
        .all(|(k, _)| *k == k.to_ascii_lowercase()));
    assert_eq!(rec.token.as_deref(), Some(TOKEN));
    assert_eq!(rec.answer.status, 200);
    assert!(rec.answer.ok);
    assert_eq!(rec.answer.error, None);

    let taken = slack.take();
    assert_eq!(taken.len(), 1);
    assert_eq!(slack.count(), 0);
    assert!(slack.received().is_empty());
    assert!(slack.bytes_received() >= raw.len() as u64);
}

#[test]
fn rate_limit_answers_429_once_then_normally() {
    let slack = helpdesk();
    slack.rate_limit("chat.postMessage", 30);
    let mut conn = Conn::open(&slack);
    let post = form_post("chat.postMessage", Some(TOKEN), "channel=C1&text=hi");
    // Another method is not limited.
    assert_eq!(
        conn.send(&form_post("auth.test", Some(TOKEN), "")).status,
        200
    );
    let r = conn.send(&post);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("30"));
    assert_eq!(r.json(), json!({"ok": false, "error": "ratelimited"}));
    assert_eq!(r.header("x-accepted-oauth-scopes"), Some("chat:write"));
    let r = conn.send(&post);
    assert_eq!((r.status, r.json()["ok"].clone()), (200, json!(true)));

    // A window keeps limiting, counting down.
    slack.rate_limit_for("reactions.add", Duration::from_secs(120));
    let react = form_post(
        "reactions.add",
        Some(TOKEN),
        "channel=C1&timestamp=1.2&name=x",
    );
    for _ in 0..2 {
        let r = conn.send(&react);
        assert_eq!(r.status, 429);
        let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=120).contains(&secs), "{secs}");
    }
    let statuses: Vec<u16> = slack.received().iter().map(|r| r.answer.status).collect();
    assert_eq!(statuses, [200, 429, 200, 429, 429]);
    assert_eq!(
        slack.received()[1].answer.error.as_deref(),
        Some("ratelimited")
    );
}

#[test]
fn bad_requests_get_400_are_recorded_and_close() {
    let slack = helpdesk();
    let cases: &[&[u8]] = &[
        b"THIS IS NOT HTTP\r\n\r\n",
        b"POST /api/chat.postMessage HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /api/chat.postMessage HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"POST /api/chat.postMessage HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /api/chat.postMessage HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    ];
    for raw in cases {
        let mut conn = Conn::open(&slack);
        let r = conn.send(raw);
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(raw));
        assert_eq!(r.json()["ok"], false);
        assert_eq!(r.header("connection"), Some("close"));
        assert!(conn.closed());
    }
    let rec = slack.received();
    assert_eq!(rec.len(), cases.len());
    assert!(rec.iter().all(|r| r.answer.status == 400));
    assert_eq!(rec[0].method, "");
    assert_eq!(rec[1].method, "chat.postMessage");
    assert!(rec[0].head.starts_with(b"THIS IS NOT HTTP"));

    // Odd but framable input is answered, not refused, and the server carries on.
    let r = call(&slack, b"GET /api/%%%?%%=%zz&&== HTTP/1.1\r\n\r\n");
    assert_eq!(error(&r).as_deref(), Some("unknown_method"));
    let r = call(&slack, &form_post("auth.test", Some(TOKEN), ""));
    assert_eq!(r.json()["ok"], true);
}

#[test]
fn a_client_that_vanishes_mid_request_harms_nothing() {
    let slack = helpdesk();
    {
        let mut conn = Conn::open(&slack);
        conn.write(b"POST /api/chat.postMessage HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort");
    }
    {
        let mut tcp = TcpStream::connect(slack.addr()).unwrap();
        tcp.write_all(b"\x16\x03\x01 not a client hello").unwrap();
    }
    let r = call(&slack, &form_post("auth.test", Some(TOKEN), ""));
    assert_eq!(r.json()["ok"], true);
    assert_eq!(slack.count(), 1);
}

#[test]
fn concurrent_clients_are_all_answered() {
    let slack = Arc::new(
        SlackApi::builder()
            .token(TOKEN, "T0ACME", SCOPES)
            .threads(2)
            .start(),
    );
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let slack = Arc::clone(&slack);
            std::thread::spawn(move || {
                let mut conn = Conn::open(&slack);
                for i in 0..10 {
                    let body = format!("channel=C{w}&text={i}");
                    let r = conn.send(&form_post("chat.postMessage", Some(TOKEN), &body));
                    assert_eq!(r.json()["ok"], true);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let rec = slack.received();
    assert_eq!(rec.len(), 40);
    assert!(rec.iter().all(|r| r.answer.ok));
    assert_eq!(slack.connections(), 4);
}

#[test]
fn refresh_tokens_work_exactly_once() {
    let slack = SlackApi::builder()
        .token(TOKEN, "T0ACME", SCOPES)
        .rotation("1234.5678", "client-secret", "xoxe-1-first", 43_200)
        .start();
    let mut conn = Conn::open(&slack);
    let refresh = |rt: &str| {
        let body = format!(
            "grant_type=refresh_token&client_id=1234.5678&client_secret=client-secret&refresh_token={rt}"
        );
        form_post("oauth.v2.access", None, &body)
    };
    let r = conn.send(&refresh("xoxe-1-first")).json();
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["token_type"], "bot");
    assert_eq!(r["expires_in"], 43_200);
    assert_eq!(r["team"]["id"], "T0ACME");
    let access = r["access_token"].as_str().unwrap().to_owned();
    let next = r["refresh_token"].as_str().unwrap().to_owned();
    assert!(access.starts_with("xoxe.xoxb-"), "{access}");
    assert!(next.starts_with("xoxe-1-"), "{next}");
    assert_eq!(
        slack.current_refresh_token().as_deref(),
        Some(next.as_str())
    );

    // The new access token works with the installation's team and scopes.
    let r = conn.send(&form_post("auth.test", Some(&access), ""));
    assert_eq!(r.json()["team_id"], "T0ACME");
    assert_eq!(
        r.header("x-oauth-scopes"),
        Some("chat:write,channels:read,reactions:write")
    );

    // A refresh token used twice is refused.
    let again = conn.send(&refresh("xoxe-1-first")).json();
    assert_eq!(again["error"], "invalid_refresh_token");
    let r = conn.send(&refresh(&next)).json();
    assert_eq!(r["ok"], true);

    let presented = slack.refresh_tokens_presented();
    assert_eq!(presented, ["xoxe-1-first", "xoxe-1-first", next.as_str()]);
    let mut unique = presented.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        presented.len() - 1,
        "exactly one token was sent twice"
    );
    assert_eq!(slack.access_tokens_issued().len(), 2);
    // The refresh call carries no token, and its answer is recorded like any other.
    let rec = slack.received();
    assert_eq!(rec[0].method, "oauth.v2.access");
    assert_eq!(rec[0].token, None);
    assert_eq!(
        rec[2].answer.error.as_deref(),
        Some("invalid_refresh_token")
    );
}

#[test]
fn rotated_tokens_expire() {
    // A lifetime of 0 s expires the minted token at once: no waiting needed.
    let slack = SlackApi::builder()
        .token(TOKEN, "T0ACME", SCOPES)
        .rotation("1234.5678", "client-secret", "xoxe-1-first", 0)
        .start();
    let body = "grant_type=refresh_token&refresh_token=xoxe-1-first";
    let basic = "Basic MTIzNC41Njc4OmNsaWVudC1zZWNyZXQ="; // 1234.5678:client-secret
    let r = call(
        &slack,
        &request(
            "POST",
            "/api/oauth.v2.access",
            &[
                ("Authorization", basic),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        ),
    )
    .json();
    assert_eq!(r["ok"], true, "{r}");
    let access = r["access_token"].as_str().unwrap();
    let r = call(&slack, &form_post("auth.test", Some(access), ""));
    assert_eq!(error(&r).as_deref(), Some("token_expired"));
}

#[test]
fn unrecorded_only_counts() {
    let slack = SlackApi::builder()
        .token(TOKEN, "T0ACME", SCOPES)
        .unrecorded()
        .plain()
        .start();
    let mut conn = Conn::open(&slack);
    for _ in 0..3 {
        assert_eq!(
            conn.send(&form_post("auth.test", Some(TOKEN), "")).status,
            200
        );
    }
    assert_eq!(slack.count(), 3);
    assert!(slack.received().is_empty());
    assert!(slack.take().is_empty());
    assert_eq!(slack.count(), 0);
}

#[test]
fn plain_http_for_the_benchmark() {
    let slack = SlackApi::builder()
        .token(TOKEN, "T0ACME", SCOPES)
        .plain()
        .start();
    assert!(!slack.is_tls());
    assert_eq!(slack.url(), format!("http://{}/api/", slack.addr()));
    let r = Client::plain(slack.addr())
        .raw(&form_post("auth.test", Some(TOKEN), ""))
        .unwrap();
    assert_eq!(r.json()["ok"], true);
    let mut conn = Conn::open(&slack);
    for _ in 0..3 {
        assert_eq!(
            conn.send(&form_post("auth.test", Some(TOKEN), "")).status,
            200
        );
    }
    assert_eq!(slack.connections(), 2);
}

#[test]
fn stop_closes_the_listener_and_open_connections() {
    let mut slack = helpdesk();
    let addr = slack.addr();
    let mut idle = Conn::open(&slack);
    assert_eq!(
        idle.send(&form_post("auth.test", Some(TOKEN), "")).status,
        200
    );
    slack.stop();
    assert!(idle.closed());
    assert!(TcpStream::connect(addr).is_err());
    // What was recorded stays readable after stop.
    assert_eq!(slack.count(), 1);
}
