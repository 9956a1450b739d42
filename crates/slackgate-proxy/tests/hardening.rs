//! HTTP hardening, tried as an attacker would over raw sockets, on both paths: every
//! case runs against a gateway with the fast path (the default) and one that hands every
//! request to pingora (`fast_path(false)`). Each class of issue 14 has its tests here:
//! early answers that leave a body unread, head limits, the two paths' agreement,
//! headers, the upstream leg, answers and records.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use parking_lot::Mutex;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{rig_with, rig_with_limits, Rig, SECRET};
use slackgate_testkit::client::read_response;
use slackgate_testkit::{fixture, wait_until, Response, SignedRequest, TestGatewayBuilder};

const PATHS: [bool; 2] = [true, false];

fn rig_on(fast: bool) -> Rig {
    rig_with(|b| b.fast_path(fast))
}

fn rig_on_with(fast: bool, config: &str) -> Rig {
    rig_with(|b| b.fast_path(fast).config(config))
}

fn rig_on_limits(fast: bool, extra: &str) -> Rig {
    rig_with_limits(extra, |b| b.fast_path(fast))
}

/// A signed message event with a unique event id, as raw HTTP.
fn signed(path: &str, tag: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let body = String::from_utf8(fixture("event_message.json"))
        .unwrap()
        .replace("Ev0MESSAGE01", &format!("Ev0H{tag}"));
    let mut req = SignedRequest::new(path, body).sign(SECRET);
    for (k, v) in extra {
        req = req.header(k, v);
    }
    req.to_http("localhost")
}

fn connect(rig: &Rig) -> TcpStream {
    let s = TcpStream::connect(rig.gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Writes `bytes`, half-closes, and reads every answer until the gateway closes.
fn exchange_all(rig: &Rig, bytes: &[u8]) -> Vec<Response> {
    let mut s = connect(rig);
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut reader = BufReader::new(s);
    let mut out = Vec::new();
    while let Ok(r) = read_response(&mut reader) {
        let interim = (100..200).contains(&r.status);
        out.push(r);
        if !interim && out.len() > 16 {
            break;
        }
    }
    out
}

fn one(rig: &Rig, bytes: &[u8]) -> Response {
    let all = exchange_all(rig, bytes);
    assert!(!all.is_empty(), "no answer");
    all.into_iter().next().unwrap()
}

fn post(path: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

// === 1. Early answers leave no body to be read as a request ===

#[test]
fn a_body_behind_an_early_answer_is_never_read_as_a_request() {
    for fast in PATHS {
        let rig = rig_on_with(fast, "trusted_proxies: [127.0.0.0/8]");
        let smuggled = signed("/slack/open", &format!("SMUG{fast}"), &[]);
        // no_route and ip_denied (by the socket peer, and by X-Forwarded-For behind a
        // trusted proxy, with the smuggled request claiming an allowed address).
        let allowed_xff = signed(
            "/slack/office",
            &format!("XFF{fast}"),
            &[("X-Forwarded-For", "10.1.2.3")],
        );
        for (outer, inner, status, reason) in [
            (post("/nowhere", "", &smuggled), &smuggled, 404, "no_route"),
            (
                post(
                    "/slack/office",
                    "X-Forwarded-For: 203.0.113.9\r\n",
                    &allowed_xff,
                ),
                &allowed_xff,
                403,
                "ip_denied",
            ),
        ] {
            let _ = inner;
            let answers = exchange_all(&rig, &outer);
            assert_eq!(answers.len(), 1, "fast={fast}: one request, one answer");
            assert_eq!(answers[0].status, status);
            assert_eq!(answers[0].reason().as_deref(), Some(reason));
        }
        assert_eq!(
            rig.bot.bytes_received(),
            0,
            "fast={fast}: nothing reached the bot"
        );
        // Chunked (pingora's path either way): the same.
        let mut chunked =
            b"POST /nowhere HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        chunked.extend_from_slice(format!("{:x}\r\n", smuggled.len()).as_bytes());
        chunked.extend_from_slice(&smuggled);
        chunked.extend_from_slice(b"\r\n0\r\n\r\n");
        let answers = exchange_all(&rig, &chunked);
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].reason().as_deref(), Some("no_route"));
        assert_eq!(rig.bot.bytes_received(), 0);
    }
}

#[test]
fn an_unfinished_prefix_in_a_body_never_joins_the_next_request() {
    for fast in PATHS {
        let rig = rig_on(fast);
        // Target and headers with no final CRLF, hidden in a denied request's body.
        let prefix = b"POST /slack/open?attacker=1 HTTP/1.1\r\nX-Attacker: 1\r\nX-Pad: ";
        let mut conn = post("/nowhere", "", prefix);
        let genuine = signed("/slack/events", &format!("GEN{fast}"), &[]);
        conn.extend_from_slice(&genuine);
        let answers = exchange_all(&rig, &conn);
        assert_eq!(answers.len(), 2, "fast={fast}");
        assert_eq!(answers[0].reason().as_deref(), Some("no_route"));
        assert_eq!(
            answers[1].status, 200,
            "the genuine request is served as sent"
        );
        let seen = rig.bot.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].target, "/slack/events");
        assert!(seen[0].header("x-attacker").is_none());
    }
}

#[test]
fn a_client_waiting_for_continue_is_answered_finally_and_closed_when_refused_early() {
    for fast in PATHS {
        let rig = rig_on(fast);
        let mut s = connect(&rig);
        s.write_all(b"POST /nowhere HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            .unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let r = read_response(&mut reader).unwrap();
        assert_eq!((r.status, r.reason().as_deref()), (404, Some("no_route")));
        assert_eq!(r.header("connection"), Some("close"));
        // The body the client may still send is never read as a request.
        let _ = s.write_all(b"GET /");
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        assert!(
            rest.is_empty(),
            "fast={fast}: closed after the final answer"
        );
    }
}

// === 2. Head limits ===

#[test]
fn a_dribbled_head_is_cut_off_at_the_deadline() {
    for fast in PATHS {
        let rig = rig_on_limits(fast, ", head_read_timeout: 1s");
        let mut s = connect(&rig);
        let started = Instant::now();
        s.write_all(b"POST /slack/open HTTP/1.1\r\n").unwrap();
        let mut answer = None;
        // One header line every 100 ms: each read would have reset a per-read timer.
        for i in 0..60 {
            if s.write_all(format!("X-Drip-{i}: 1\r\n").as_bytes())
                .is_err()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            if started.elapsed() > Duration::from_millis(1500) {
                break;
            }
        }
        let mut reader = BufReader::new(s);
        if let Ok(r) = read_response(&mut reader) {
            answer = Some(r);
        }
        let r = answer.expect("an answer");
        assert_eq!(
            (r.status, r.reason().as_deref()),
            (408, Some("head_timeout"))
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let a = rig.gw.audit_nth(1);
        assert_eq!(a["reason"], "head_timeout");
        assert_eq!(a["status"], 408);
    }
}

#[test]
fn an_oversized_head_is_refused_as_soon_as_it_exceeds_the_limit() {
    for fast in PATHS {
        let rig = rig_on_limits(fast, ", max_head_bytes: 4096");
        let mut s = connect(&rig);
        let mut head = b"POST /slack/open HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        head.resize(4097, b'a');
        s.write_all(&head).unwrap();
        // The connection stays open on our side: the answer must come without an end.
        let r = read_response(&mut BufReader::new(s)).unwrap();
        assert_eq!(
            (r.status, r.reason().as_deref()),
            (431, Some("head_too_large"))
        );
        // A complete head over the limit (pingora would have taken up to 1 MiB).
        let mut big = b"POST /slack/open HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        big.resize(8000, b'a');
        big.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
        let r = one(&rig, &big);
        assert_eq!(r.status, 431);
        let lines = rig.gw.audit_lines(2);
        assert!(lines.iter().all(|a| a["reason"] == "head_too_large"));
        assert_eq!(rig.bot.bytes_received(), 0);
        let m = rig
            .gw
            .metric(r#"slackgate_requests_total{reason="head_too_large",route=""}"#);
        assert_eq!(m, 2.0);
    }
}

// === 3. The two paths agree ===

#[test]
fn framing_and_target_refusals_are_the_same_on_both_paths() {
    let cases: &[(&[u8], u16, &str)] = &[
        (b"POST /slack/open#frag HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 400, "bad_request"),
        (b"POST /slack/open HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 400, "bad_request"),
        (b"POST /slack/open HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, "unsupported_transfer_coding"),
        (b"POST /slack/open HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, "bad_request"),
        (b"POST /slack/open HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "bad_request"),
        (b"POST http://evil/slack/open HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 400, "bad_request"),
        (b"POST /slack/open HTTP/1.1\nHost: x\nContent-Length: 0\n\n", 400, "bad_request"),
    ];
    for fast in PATHS {
        let rig = rig_on(fast);
        for (i, (raw, status, reason)) in cases.iter().enumerate() {
            let answers = exchange_all(&rig, raw);
            assert_eq!(answers.len(), 1, "fast={fast} case {i}");
            assert_eq!(answers[0].status, *status, "fast={fast} case {i}");
            assert_eq!(answers[0].reason().as_deref(), Some(*reason));
            assert_eq!(answers[0].header("connection"), Some("close"));
            let a = rig.gw.audit_nth(i + 1);
            assert_eq!(a["reason"], *reason, "case {i}: audited");
        }
        assert_eq!(rig.bot.bytes_received(), 0);
        let m = rig
            .gw
            .metric(r#"slackgate_requests_total{reason="bad_request",route=""}"#);
        assert_eq!(m, 6.0, "fast={fast}: counted");
    }
}

#[test]
fn absolute_form_reaches_the_bot_as_origin_form() {
    for fast in PATHS {
        let rig = rig_on(fast);
        let raw = signed("/slack/open", &format!("ABS{fast}"), &[]);
        let text = String::from_utf8(raw).unwrap().replacen(
            "POST /slack/open HTTP/1.1",
            "POST http://localhost/slack/open HTTP/1.1",
            1,
        );
        let r = one(&rig, text.as_bytes());
        assert_eq!(r.status, 200, "fast={fast}");
        let seen = rig.bot.requests();
        assert_eq!(seen[0].target, "/slack/open");
    }
}

#[test]
fn expect_continue_is_answered_and_not_forwarded() {
    for fast in PATHS {
        let rig = rig_on(fast);
        let raw = signed(
            "/slack/open",
            &format!("EXP{fast}"),
            &[("Expect", "100-continue")],
        );
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let mut s = connect(&rig);
        s.write_all(&raw[..split]).unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let interim = read_response(&mut reader).unwrap();
        assert_eq!(interim.status, 100, "fast={fast}");
        s.write_all(&raw[split..]).unwrap();
        let r = read_response(&mut reader).unwrap();
        assert_eq!(r.status, 200);
        let seen = rig.bot.requests();
        assert!(seen[0].header("expect").is_none());
    }
}

// === 4. Headers ===

#[test]
fn gateway_header_twins_and_connection_named_headers_are_stripped() {
    for fast in PATHS {
        let rig = rig_on(fast);
        let raw = signed(
            "/slack/open",
            &format!("HDR{fast}"),
            &[
                ("X_Slackgate_User", "U0ADMIN"),
                ("x-slackgate_team", "T0EVIL"),
                ("Connection", "keep-alive, X-Hop"),
                ("X-Hop", "secret"),
                ("X-Kept", "1"),
            ],
        );
        let r = one(&rig, &raw);
        assert_eq!(r.status, 200);
        let seen = &rig.bot.requests()[0];
        for gone in [
            "x_slackgate_user",
            "x-slackgate_team",
            "x-hop",
            "connection",
        ] {
            assert!(seen.header(gone).is_none(), "fast={fast}: {gone} forwarded");
        }
        assert_eq!(seen.header("x-kept"), Some("1"));
        assert_eq!(seen.header("x-slackgate-route"), Some("open"));
    }
}

// === 5. The upstream leg ===

/// A bot scripted per request, counting what it received.
struct Scripted {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
}

/// For every request read, on any connection, runs `script(conn, index of the request
/// among all the bot received)`; returning false closes the connection.
fn scripted_bot(
    script: impl Fn(&mut TcpStream, usize) -> bool + Send + Sync + 'static,
) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    let script = Arc::new(script);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let (counter, script) = (Arc::clone(&counter), Arc::clone(&script));
            std::thread::spawn(move || {
                while read_one_request(&mut conn) {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    if !script(&mut conn, n) {
                        return;
                    }
                }
            });
        }
    });
    Scripted { addr, requests }
}

fn read_one_request(conn: &mut TcpStream) -> bool {
    let mut reader = BufReader::new(&*conn);
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).is_ok()
}

fn rig_for(bot: SocketAddr, fast: bool) -> slackgate_testkit::TestGateway {
    let policy = format!(
        "version: 1\napps:\n  a:\n    signing_secrets: [{{ id: current, env: S }}]\nupstreams:\n  bot: {{ targets: [\"{bot}\"] }}\nroutes:\n  - {{ name: open, path: /slack/open, app: a, upstream: bot }}\n"
    );
    TestGatewayBuilder::new(&policy)
        .secret("S", SECRET)
        .fast_path(fast)
        .config("limits: { upstream_timeout: 2s }")
        .start()
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[test]
fn a_request_the_bot_read_is_never_sent_again() {
    for fast in PATHS {
        // The second request on a connection is read, then the bot drops the
        // connection without answering (a crash mid-request).
        let bot = scripted_bot(|c, n| n == 0 && c.write_all(OK).is_ok());
        let gw = rig_for(bot.addr, fast);
        let first = gw
            .client()
            .raw(&signed("/slack/open", &format!("ONCE1{fast}"), &[]))
            .unwrap();
        assert_eq!(first.status, 200);
        let second = gw
            .client()
            .raw(&signed("/slack/open", &format!("ONCE2{fast}"), &[]))
            .unwrap();
        assert_eq!(second.status, 502, "fast={fast}");
        assert_eq!(second.reason().as_deref(), Some("upstream_error"));
        // Give a wrong retry every chance to arrive, then count.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(bot.requests.load(Ordering::SeqCst), 2, "sent exactly once");
    }
}

#[test]
fn bytes_a_bot_sends_on_an_idle_connection_are_never_an_answer() {
    for fast in PATHS {
        let wrote = Arc::new(Mutex::new(false));
        let flag = Arc::clone(&wrote);
        let bot = scripted_bot(move |c, n| {
            let mut answer =
                format!("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nreq{n:02}").into_bytes();
            if n == 0 {
                // After the answer, an unasked answer for whoever comes next.
                answer.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!");
                *flag.lock() = true;
            }
            c.write_all(&answer).is_ok()
        });
        let gw = rig_for(bot.addr, fast);
        let a = gw
            .client()
            .raw(&signed("/slack/open", &format!("IDLE1{fast}"), &[]))
            .unwrap();
        assert_eq!(a.body, b"req00");
        assert!(wait_until(Duration::from_secs(2), || *wrote.lock()));
        let b = gw
            .client()
            .raw(&signed("/slack/open", &format!("IDLE2{fast}"), &[]))
            .unwrap();
        assert_eq!(b.status, 200, "fast={fast}");
        assert_eq!(
            b.body, b"req01",
            "its own answer, on a fresh connection, not EVIL!"
        );
    }
}

#[test]
fn an_oversized_answer_head_is_a_502_and_a_204_has_no_length() {
    for fast in PATHS {
        let bot = scripted_bot(|c, n| {
            let answer = if n == 0 {
                let mut a = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Big: ".to_vec();
                a.resize(70 * 1024, b'a');
                a.extend_from_slice(b"\r\n\r\n");
                a
            } else {
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n".to_vec()
            };
            c.write_all(&answer).is_ok()
        });
        let gw = rig_for(bot.addr, fast);
        let big = gw
            .client()
            .raw(&signed("/slack/open", &format!("BIG{fast}"), &[]))
            .unwrap();
        assert_eq!(
            (big.status, big.reason().as_deref()),
            (502, Some("upstream_error"))
        );
        let mut s = TcpStream::connect(gw.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&signed("/slack/open", &format!("NC{fast}"), &[]))
            .unwrap();
        let r = read_response(&mut BufReader::new(s)).unwrap();
        assert_eq!(r.status, 204, "fast={fast}");
        assert!(
            r.header("content-length").is_none(),
            "fast={fast}: {:?}",
            r.headers
        );
        assert!(r.header("transfer-encoding").is_none());
    }
}

// === 6. Answers and records ===

#[test]
fn a_malformed_chunk_size_is_a_400_with_its_record() {
    for fast in PATHS {
        let rig = rig_on(fast);
        let raw = b"POST /slack/open HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n";
        let r = one(&rig, raw);
        assert_eq!(
            (r.status, r.reason().as_deref()),
            (400, Some("bad_request"))
        );
        let a = rig.gw.audit_nth(1);
        assert_eq!(
            (a["reason"].as_str(), a["status"].as_u64()),
            (Some("bad_request"), Some(400))
        );
        assert_eq!(rig.bot.bytes_received(), 0);
    }
}
