//! The upstream leg against bots that frame their answers in every legal way, close
//! pooled connections, or break the framing: what the client gets, and that a request
//! is never delivered twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use parking_lot::Mutex;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{mention_of_size, SECRET};
use slackgate_testkit::policy::{helpdesk_policy, helpdesk_route};
use slackgate_testkit::{SignedRequest, TestGateway, TestGatewayBuilder};

/// A bot that answers each request on a connection with the next scripted answer;
/// `close_after` answers per connection it closes the connection.
struct ScriptBot {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    /// Connections the bot closed after `close_after` answers.
    closed: Arc<AtomicUsize>,
}

impl ScriptBot {
    fn start(answer: &'static [u8], close_after: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (r, c, d) = (
            Arc::clone(&requests),
            Arc::clone(&connections),
            Arc::clone(&closed),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (r, c, d) = (Arc::clone(&r), Arc::clone(&c), Arc::clone(&d));
                std::thread::spawn(move || {
                    let mut served = 0;
                    let mut counted = false;
                    while served < close_after {
                        if !read_request(&mut conn) {
                            return;
                        }
                        if !counted {
                            // Health checks connect without sending: count carriers only.
                            c.fetch_add(1, Ordering::SeqCst);
                            counted = true;
                        }
                        r.fetch_add(1, Ordering::SeqCst);
                        if conn.write_all(answer).is_err() {
                            return;
                        }
                        served += 1;
                    }
                    drop(conn);
                    d.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            addr,
            requests,
            connections,
            closed,
        }
    }
}

/// Reads one request with a Content-Length body; false on EOF.
fn read_request(conn: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).is_ok()
}

fn gateway(bot: SocketAddr) -> TestGateway {
    let policy = helpdesk_policy(
        "HELPDESK_SECRET",
        bot,
        &[helpdesk_route("open", "/slack/open", "")],
    );
    TestGatewayBuilder::new(&policy)
        .secret("HELPDESK_SECRET", SECRET)
        .config("limits: { upstream_timeout: 2s }")
        .start()
}

fn request(i: usize) -> SignedRequest {
    SignedRequest::new("/slack/open", mention_of_size(600 + i)).sign(SECRET)
}

#[test]
fn chunked_answers_are_relayed_whole_with_a_length() {
    let bot = ScriptBot::start(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Bot: yes\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        usize::MAX,
    );
    let gw = gateway(bot.addr);
    for i in 0..3 {
        let resp = gw.client().send(&request(i)).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"hello world");
        assert_eq!(resp.header("content-length"), Some("11"));
        assert_eq!(resp.header("transfer-encoding"), None);
        assert_eq!(resp.header("x-bot"), Some("yes"));
    }
    assert_eq!(bot.connections.load(Ordering::SeqCst), 1, "kept alive");
}

#[test]
fn a_pooled_connection_the_bot_closed_is_never_used() {
    // The bot answers one request per connection, then closes (without saying so):
    // every request after the first finds a pooled connection the bot closed while it
    // was idle; the gateway sees that before it writes, and uses a fresh one. (A close
    // that races the write cannot be told from a bot that read the request and died:
    // that is a 502, never a second delivery; see tests/hardening.rs.)
    let bot = ScriptBot::start(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 1);
    let gw = gateway(bot.addr);
    for i in 0..4 {
        let resp = gw.client().send(&request(i)).unwrap();
        assert_eq!(resp.status, 200, "request {i}");
        assert_eq!(resp.body, b"ok");
        let closed = i + 1;
        assert!(slackgate_testkit::wait_until(
            std::time::Duration::from_secs(5),
            || bot.closed.load(Ordering::SeqCst) >= closed
        ));
    }
    // Each request reached the bot exactly once.
    assert_eq!(bot.requests.load(Ordering::SeqCst), 4);
}

#[test]
fn connection_close_and_close_delimited_answers_are_not_pooled() {
    let bot = ScriptBot::start(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        1,
    );
    let gw = gateway(bot.addr);
    for i in 0..3 {
        assert_eq!(gw.client().send(&request(i)).unwrap().status, 200);
    }
    assert_eq!(bot.connections.load(Ordering::SeqCst), 3);
    assert_eq!(bot.requests.load(Ordering::SeqCst), 3);

    let bot = ScriptBot::start(b"HTTP/1.0 200 OK\r\n\r\nuntil the end", 1);
    let gw = gateway(bot.addr);
    let resp = gw.client().send(&request(9)).unwrap();
    assert_eq!((resp.status, &resp.body[..]), (200, &b"until the end"[..]));
}

#[test]
fn broken_framing_is_a_502_and_the_request_is_not_repeated() {
    let bot = ScriptBot::start(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        usize::MAX,
    );
    let gw = gateway(bot.addr);
    let resp = gw.client().send(&request(0)).unwrap();
    assert_eq!(resp.status, 502);
    assert_eq!(resp.reason().as_deref(), Some("upstream_error"));
    assert_eq!(bot.requests.load(Ordering::SeqCst), 1);
    let audit = gw.audit_nth(1);
    assert_eq!(audit["reason"], "upstream_error");

    let bot = ScriptBot::start(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 1);
    let gw = gateway(bot.addr);
    let resp = gw.client().send(&request(1)).unwrap();
    assert_eq!(resp.status, 502, "body cut short");
    assert_eq!(bot.requests.load(Ordering::SeqCst), 1);
}

#[test]
fn interim_answers_are_skipped() {
    let bot = ScriptBot::start(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx",
        usize::MAX,
    );
    let gw = gateway(bot.addr);
    let resp = gw.client().send(&request(0)).unwrap();
    assert_eq!((resp.status, &resp.body[..]), (201, &b"x"[..]));
}

#[test]
fn concurrent_requests_each_get_their_own_answer() {
    let bot = ScriptBot::start(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        usize::MAX,
    );
    let gw = Arc::new(gateway(bot.addr));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let gw = Arc::clone(&gw);
            let failures = Arc::clone(&failures);
            std::thread::spawn(move || {
                for i in 0..20 {
                    let resp = gw.client().send(&request(t * 100 + i)).unwrap();
                    if resp.status != 200 || resp.body != b"ok" {
                        failures.lock().push((t, i, resp.status));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(failures.lock().is_empty(), "{:?}", failures.lock());
    assert_eq!(bot.requests.load(Ordering::SeqCst), 160);
    assert!(bot.connections.load(Ordering::SeqCst) <= 8 + 1);
}
