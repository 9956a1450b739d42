//! A Slack Socket Mode stand-in: HTTPS `apps.connections.open` and the WSS endpoint it
//! hands out, both on `127.0.0.1:0`, with scripted envelopes and disconnects; it records
//! every `apps.connections.open` call and every ack.
//!
//! What is modelled, from Slack's Socket Mode documentation
//! (<https://docs.slack.dev/apis/events-api/using-socket-mode>) and python-slack-sdk's
//! `socket_mode` client:
//! - `POST /api/apps.connections.open` with `Authorization: Bearer xapp-...` answers
//!   `{"ok":true,"url":"wss://.../link/?ticket=...&app_id=..."}`; no token: `not_authed`;
//!   another token: `invalid_auth`; [`SocketModeStandIn::rate_limit_next`]: HTTP 429 with
//!   `Retry-After` and `ratelimited`.
//! - A ticket opens one WebSocket, once; the server speaks first with `hello`
//!   (`num_connections`, `debug_info`, `connection_info.app_id`).
//! - Envelopes are text frames `{"envelope_id","type","payload","accepts_response_payload",
//!   "retry_attempt","retry_reason"}`; the client acks with `{"envelope_id", "payload"?}`.
//! - `disconnect` with `reason` `warning` / `refresh_requested` keeps the connection open
//!   (the client opens a new one and closes the old one); `link_disabled` is followed by
//!   the server's close.
//!
//! Envelopes go to the newest connection that was not told to disconnect, as Slack stops
//! sending on a connection it asked to go. Not modelled: Slack's own redelivery timers
//! (tests resend by hand), `too_many_websockets` limits, Slack's pings (tungstenite
//! answers the client's).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::slack_api::ca::TestCa;

/// The app id the stand-in's `hello` names.
pub const SOCKET_APP_ID: &str = "A0HELPDESK";

/// One ack the stand-in received.
#[derive(Debug, Clone)]
pub struct Ack {
    /// The connection it came on (1, 2, ... in order of opening).
    pub conn: usize,
    /// `envelope_id`.
    pub envelope_id: String,
    /// `payload`, if the ack had one.
    pub payload: Option<Value>,
    /// When the stand-in read it.
    pub at: std::time::Instant,
}

#[derive(Debug)]
struct Conn {
    id: usize,
    out: mpsc::UnboundedSender<Frame>,
    /// Told to disconnect: no envelope is sent on it any more.
    leaving: bool,
    open: bool,
}

#[derive(Debug, Default)]
struct State {
    /// The `Authorization` header of every `apps.connections.open` call (`None`: none).
    opens: Vec<Option<String>>,
    /// Every byte of every API request, for checks that a token travels nowhere else.
    raw: Vec<u8>,
    tickets: Vec<(String, bool)>,
    conns: Vec<Conn>,
    acks: Vec<Ack>,
    /// Text frames from clients that were not acks.
    other: Vec<String>,
    rate_limit_next: Option<u64>,
    fail_next: Vec<String>,
}

/// A running Socket Mode stand-in. Stops when dropped.
#[derive(Debug)]
pub struct SocketModeStandIn {
    api: SocketAddr,
    token: String,
    ca: TestCa,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SocketModeStandIn {
    /// Starts a stand-in that accepts `app_token`.
    pub fn start(app_token: &str) -> Self {
        let ca = TestCa::generate();
        let acceptor = pingora::tls::TlsAcceptor::from(Arc::new(ca.server_config(None)));
        let api = std::net::TcpListener::bind("127.0.0.1:0").expect("bind api");
        let wss = std::net::TcpListener::bind("127.0.0.1:0").expect("bind wss");
        api.set_nonblocking(true).expect("non-blocking");
        wss.set_nonblocking(true).expect("non-blocking");
        let api_addr = api.local_addr().expect("api addr");
        let wss_addr = wss.local_addr().expect("wss addr");
        let state = Arc::new(Mutex::new(State::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let token = app_token.to_owned();
        let st = Arc::clone(&state);
        let tok = token.clone();
        let thread = std::thread::Builder::new()
            .name("socket-standin".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let api = tokio::net::TcpListener::from_std(api).expect("api listener");
                    let wss = tokio::net::TcpListener::from_std(wss).expect("wss listener");
                    let serve = async {
                        loop {
                            tokio::select! {
                                Ok((tcp, _)) = api.accept() => {
                                    let (acceptor, st, tok) = (acceptor.clone(), Arc::clone(&st), tok.clone());
                                    tokio::spawn(async move {
                                        if let Ok(tls) = acceptor.accept(tcp).await {
                                            api_call(tls, &st, &tok, wss_addr).await;
                                        }
                                    });
                                }
                                Ok((tcp, _)) = wss.accept() => {
                                    let _ = tcp.set_nodelay(true);
                                    let (acceptor, st) = (acceptor.clone(), Arc::clone(&st));
                                    tokio::spawn(async move {
                                        if let Ok(tls) = acceptor.accept(tcp).await {
                                            socket(tls, st).await;
                                        }
                                    });
                                }
                            }
                        }
                    };
                    tokio::select! {
                        _ = stopped => {}
                        _ = serve => {}
                    }
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("stand-in thread");
        SocketModeStandIn {
            api: api_addr,
            token,
            ca,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The Web API base for `egress.slack_api`: `https://127.0.0.1:PORT/api/`.
    pub fn url(&self) -> String {
        format!("https://{}/api/", self.api)
    }

    /// The test CA's PEM file, for `egress.ca_file`.
    pub fn ca_file(&self) -> &Path {
        &self.ca.pem_file
    }

    /// The app token it accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The `Authorization` header of every `apps.connections.open` call so far.
    pub fn opens(&self) -> Vec<Option<String>> {
        self.state.lock().opens.clone()
    }

    /// Every byte of every API request received so far.
    pub fn raw_requests(&self) -> Vec<u8> {
        self.state.lock().raw.clone()
    }

    /// Connections open now (said hello, not closed).
    pub fn open_connections(&self) -> usize {
        self.state.lock().conns.iter().filter(|c| c.open).count()
    }

    /// Connections open now that were not told to disconnect.
    pub fn live_connections(&self) -> usize {
        self.state
            .lock()
            .conns
            .iter()
            .filter(|c| c.open && !c.leaving)
            .count()
    }

    /// Connections ever opened.
    pub fn connections_opened(&self) -> usize {
        self.state.lock().conns.len()
    }

    /// The next `apps.connections.open` answers 429 with `Retry-After: secs`.
    pub fn rate_limit_next(&self, secs: u64) {
        self.state.lock().rate_limit_next = Some(secs);
    }

    /// The next `apps.connections.open` answers `{"ok":false,"error":error}`.
    pub fn fail_next(&self, error: &str) {
        self.state.lock().fail_next.push(error.to_owned());
    }

    /// Sends an envelope (a whole message, e.g. from the fixture) to the newest live
    /// connection; the connection's number, or `None` when none is live.
    pub fn send(&self, envelope: &Value) -> Option<usize> {
        let st = self.state.lock();
        let conn = st.conns.iter().rev().find(|c| c.open && !c.leaving)?;
        conn.out.send(Frame::text(envelope.to_string())).ok()?;
        Some(conn.id)
    }

    /// Sends an envelope on connection `conn` (as numbered in [`Ack::conn`]), live or
    /// leaving; `false` when it is closed.
    pub fn send_on(&self, conn: usize, envelope: &Value) -> bool {
        let st = self.state.lock();
        st.conns
            .iter()
            .find(|c| c.id == conn && c.open)
            .is_some_and(|c| c.out.send(Frame::text(envelope.to_string())).is_ok())
    }

    /// Sends `disconnect` with `reason` on every live connection. With `link_disabled`
    /// the stand-in then closes them; otherwise they stay open until the client closes
    /// them, and no envelope is sent on them any more.
    pub fn disconnect(&self, reason: &str) {
        let mut st = self.state.lock();
        let msg = json!({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-standin"}});
        for c in st.conns.iter_mut().filter(|c| c.open && !c.leaving) {
            c.leaving = true;
            let _ = c.out.send(Frame::text(msg.to_string()));
            if reason == "link_disabled" {
                let _ = c.out.send(Frame::Close(None));
            }
        }
    }

    /// Every ack so far.
    pub fn acks(&self) -> Vec<Ack> {
        self.state.lock().acks.clone()
    }

    /// How many acks so far.
    pub fn ack_count(&self) -> usize {
        self.state.lock().acks.len()
    }

    /// The acks of `envelope_id`.
    pub fn acks_of(&self, envelope_id: &str) -> Vec<Ack> {
        self.acks()
            .into_iter()
            .filter(|a| a.envelope_id == envelope_id)
            .collect()
    }

    /// Text frames from the client that were not acks.
    pub fn other_frames(&self) -> Vec<String> {
        self.state.lock().other.clone()
    }

    /// Stops the stand-in.
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SocketModeStandIn {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One HTTPS request on `tls`, answered and closed.
async fn api_call<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut tls: S,
    st: &Mutex<State>,
    token: &str,
    wss: SocketAddr,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_len, auth, path, content_length) = loop {
        let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut chunk)).await
        else {
            return;
        };
        if n == 0 || buf.len() > 64 * 1024 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(len)) = req.parse(&buf) {
            let find = |name: &str| {
                req.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .map(str::to_owned)
            };
            let cl = find("content-length")
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (
                len,
                find("authorization"),
                req.path.unwrap_or("").to_owned(),
                cl,
            );
        }
    };
    while buf.len() < head_len + content_length {
        let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut chunk)).await
        else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let (status, extra, body) = {
        let mut s = st.lock();
        s.raw.extend_from_slice(&buf);
        if path != "/api/apps.connections.open" {
            (
                404,
                String::new(),
                json!({"ok": false, "error": "unknown_method"}),
            )
        } else {
            s.opens.push(auth.clone());
            let presented = auth.as_deref().and_then(|a| a.strip_prefix("Bearer "));
            if let Some(secs) = s.rate_limit_next.take() {
                (
                    429,
                    format!("Retry-After: {secs}\r\n"),
                    json!({"ok": false, "error": "ratelimited"}),
                )
            } else if presented.is_none() {
                (
                    200,
                    String::new(),
                    json!({"ok": false, "error": "not_authed"}),
                )
            } else if presented != Some(token) {
                (
                    200,
                    String::new(),
                    json!({"ok": false, "error": "invalid_auth"}),
                )
            } else if !s.fail_next.is_empty() {
                let e = s.fail_next.remove(0);
                (200, String::new(), json!({"ok": false, "error": e}))
            } else {
                let ticket = format!("ticket-{}", s.tickets.len() + 1);
                s.tickets.push((ticket.clone(), false));
                let url = format!("wss://{wss}/link/?ticket={ticket}&app_id={SOCKET_APP_ID}");
                (200, String::new(), json!({"ok": true, "url": url}))
            }
        }
    };
    let body = body.to_string();
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Too Many Requests",
    };
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tls.write_all(answer.as_bytes()).await;
    let _ = tls.shutdown().await;
}

/// One WebSocket: checks the ticket, says hello, then relays frames both ways.
async fn socket<S>(tls: S, st: Arc<Mutex<State>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let ticket = Arc::new(Mutex::new(None::<String>));
    let seen = Arc::clone(&ticket);
    // The handshake callback's error type is tungstenite's HTTP response, not ours.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
        let t = req.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("ticket="))
                .map(str::to_owned)
        });
        *seen.lock() = t;
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tls, callback).await else {
        return;
    };
    let valid = {
        let mut s = st.lock();
        let t = ticket.lock().clone();
        match s.tickets.iter_mut().find(|(k, _)| Some(k) == t.as_ref()) {
            Some((_, used)) if !*used => {
                *used = true;
                true
            }
            _ => false,
        }
    };
    if !valid {
        let _ = ws.close(None).await;
        return;
    }
    let (out, mut rx) = mpsc::unbounded_channel();
    let id = {
        let mut s = st.lock();
        let id = s.conns.len() + 1;
        s.conns.push(Conn {
            id,
            out,
            leaving: false,
            open: false,
        });
        id
    };
    let hello = json!({
        "type": "hello",
        "num_connections": id,
        "debug_info": {"host": "applink-standin", "build_number": 1, "approximate_connection_time": 18060},
        "connection_info": {"app_id": SOCKET_APP_ID},
    });
    if ws.send(Frame::text(hello.to_string())).await.is_err() {
        return;
    }
    if let Some(c) = st.lock().conns.iter_mut().find(|c| c.id == id) {
        c.open = true;
    }
    loop {
        tokio::select! {
            frame = rx.recv() => {
                let Some(frame) = frame else { break };
                let close = matches!(frame, Frame::Close(_));
                if ws.send(frame).await.is_err() || close {
                    break;
                }
            }
            frame = ws.next() => match frame {
                Some(Ok(Frame::Text(t))) => {
                    let v: Option<Value> = serde_json::from_str(&t).ok();
                    let id_field = v.as_ref().and_then(|v| v.get("envelope_id")).and_then(Value::as_str);
                    let mut s = st.lock();
                    match id_field {
                        Some(e) => {
                            let payload = v.as_ref().and_then(|v| v.get("payload")).cloned();
                            s.acks.push(Ack { conn: id, envelope_id: e.to_owned(), payload, at: std::time::Instant::now() });
                        }
                        None => s.other.push(t.to_string()),
                    }
                }
                Some(Ok(Frame::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    }
    if let Some(c) = st.lock().conns.iter_mut().find(|c| c.id == id) {
        c.open = false;
    }
}
