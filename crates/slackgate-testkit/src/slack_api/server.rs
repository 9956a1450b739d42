//! The server: accepts connections (TLS or plain), frames each request, answers it from
//! the workspace and records it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::args::Args;
use super::http::{decode_chunked, parse_head, render, split_target, Bad, Framing, Head, MAX_HEAD};
use super::workspace::{Answer, Call, Workspace};

/// How long a connection may sit idle, or a request may take to arrive.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One request as the stand-in saw it, with the answer it gave.
#[derive(Debug, Clone)]
pub struct Received {
    /// Which connection carried it, numbered from 1 in accept order (keep-alive reuse shows
    /// as several requests with one number).
    pub conn: u64,
    /// The Web API method: the path after `/api/` (empty when the path is not `/api/...`
    /// or the head could not be parsed).
    pub method: String,
    /// The HTTP method (`GET`, `POST`; empty when the head could not be parsed).
    pub http_method: String,
    /// The request target as sent (path and query).
    pub target: String,
    /// The raw head bytes, request line to the blank line (for a head that could not be
    /// parsed: what had arrived).
    pub head: Vec<u8>,
    /// Headers in arrival order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The query string, without the `?`.
    pub query: String,
    /// The body bytes (for a chunked body: the payload, de-chunked).
    pub body: Vec<u8>,
    /// Whether the body arrived chunked.
    pub chunked: bool,
    /// The token presented where Slack reads one (`Authorization: Bearer`, else a `token`
    /// field of a form body), valid or not. A query-string or JSON-body `token` is not one.
    pub token: Option<String>,
    /// The answer given.
    pub answer: Answer,
}

impl Received {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::first_header(&self.headers, name)
    }

    /// An argument as Slack reads it: a JSON body member, else a form body field, else a
    /// query-string parameter. Non-string JSON members come back as JSON text.
    pub fn arg(&self, name: &str) -> Option<String> {
        Args::read(&self.query, &self.headers, &self.body)
            .ok()
            .and_then(|a| a.get(name))
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) workspace: Mutex<Workspace>,
    pub(super) received: Mutex<Vec<Received>>,
    /// Whether requests are kept in `received` (else only counted in `unrecorded`).
    pub(super) record: bool,
    pub(super) unrecorded: AtomicU64,
    pub(super) conns: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) handshake_failures: AtomicU64,
    /// The negotiated key-exchange group of each TLS connection.
    pub(super) key_exchanges: Mutex<Vec<String>>,
}

impl Shared {
    pub(super) fn record(&self, received: Received) {
        if self.record {
            lock(&self.received).push(received);
        } else {
            self.unrecorded.fetch_add(1, Ordering::SeqCst);
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
}

pub(super) async fn accept_loop(
    listener: std::net::TcpListener,
    acceptor: Option<pingora::tls::TlsAcceptor>,
    shared: Arc<Shared>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            a = listener.accept() => a,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let _ = tcp.set_nodelay(true);
        let conn = shared.conns.fetch_add(1, Ordering::SeqCst) + 1;
        let shared = Arc::clone(&shared);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve(tcp, &shared, conn).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let group = tls.get_ref().1.negotiated_key_exchange_group();
                            let name =
                                group.map_or_else(String::new, |g| format!("{:?}", g.name()));
                            lock(&shared.key_exchanges).push(name);
                            serve(tls, &shared, conn).await
                        }
                        _ => {
                            shared.handshake_failures.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            }
        });
    }
}

/// Reads more bytes into `buf`; 0 on end of stream, error or timeout.
pub(super) async fn read_more<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut Vec<u8>,
    shared: &Shared,
) -> usize {
    let mut chunk = [0u8; 16 * 1024];
    match tokio::time::timeout(READ_TIMEOUT, io.read(&mut chunk)).await {
        Ok(Ok(n)) => {
            buf.extend_from_slice(&chunk[..n]);
            shared.bytes.fetch_add(n as u64, Ordering::SeqCst);
            n
        }
        _ => 0,
    }
}

/// Serves requests on one connection until it closes, asks to close, or goes bad.
pub(super) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    shared: &Shared,
    conn: u64,
) {
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        let head = loop {
            match parse_head(&buf) {
                Ok(Some(head)) => break head,
                Ok(None) => {}
                Err(b) => return refuse(&mut io, shared, conn, &buf, None, b).await,
            }
            if read_more(&mut io, &mut buf, shared).await == 0 {
                return;
            }
        };
        let framing = match head.framing() {
            Ok(f) => f,
            Err(b) => return refuse(&mut io, shared, conn, &buf, Some(&head), b).await,
        };
        let mut continued = false;
        let (body, wire) = loop {
            let rest = &buf[head.len..];
            let done = match framing {
                Framing::Length(n) => (rest.len() >= n).then(|| (rest[..n].to_vec(), n)),
                Framing::Chunked => match decode_chunked(rest) {
                    Ok(d) => d,
                    Err(b) => return refuse(&mut io, shared, conn, &buf, Some(&head), b).await,
                },
            };
            if let Some(d) = done {
                break d;
            }
            if head.expects_continue() && !continued {
                continued = true;
                if io
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let _ = io.flush().await;
            }
            if read_more(&mut io, &mut buf, shared).await == 0 {
                return;
            }
        };
        let raw_head = buf[..head.len].to_vec();
        buf.drain(..head.len + wire);
        let keep_alive = head.keep_alive();
        let reply = lock(&shared.workspace).call(
            Call {
                http_method: &head.method,
                target: &head.target,
                headers: &head.headers,
                body: &body,
            },
            Instant::now(),
        );
        let body_bytes = serde_json::to_vec(&reply.body).unwrap_or_default();
        let bytes = render(reply.status, &reply.headers, &body_bytes, !keep_alive);
        shared.record(Received {
            conn,
            method: reply.method.clone(),
            http_method: head.method.clone(),
            query: split_target(&head.target).1.to_owned(),
            target: head.target,
            head: raw_head,
            headers: head.headers,
            body,
            chunked: framing == Framing::Chunked,
            token: reply.token.clone(),
            answer: reply.answer(),
        });
        if io.write_all(&bytes).await.is_err() || io.flush().await.is_err() {
            return;
        }
        if !keep_alive {
            let _ = io.shutdown().await;
            return;
        }
    }
}

/// Answers a request that cannot be framed, records it, and ends the connection.
pub(super) async fn refuse<S: AsyncWrite + Unpin>(
    io: &mut S,
    shared: &Shared,
    conn: u64,
    buf: &[u8],
    head: Option<&Head>,
    bad: Bad,
) {
    let body = json!({"ok": false, "error": "invalid_request", "detail": bad.why});
    let body_bytes = serde_json::to_vec(&body).unwrap_or_default();
    let raw_head = match head {
        Some(h) => buf[..h.len].to_vec(),
        None => buf[..buf.len().min(MAX_HEAD)].to_vec(),
    };
    let (http_method, target, headers) = head
        .map(|h| (h.method.clone(), h.target.clone(), h.headers.clone()))
        .unwrap_or_default();
    let (path, query) = split_target(&target);
    shared.record(Received {
        conn,
        method: path.strip_prefix("/api/").unwrap_or_default().to_owned(),
        http_method,
        query: query.to_owned(),
        target: target.clone(),
        head: raw_head,
        headers,
        body: Vec::new(),
        chunked: false,
        token: None,
        answer: Answer {
            status: bad.status,
            ok: false,
            error: Some("invalid_request".into()),
        },
    });
    let bytes = render(bad.status, &[], &body_bytes, true);
    let _ = io.write_all(&bytes).await;
    let _ = io.flush().await;
    let _ = io.shutdown().await;
}
