//! The fast path and pingora's proxy behind it, on one connection: keep-alive,
//! pipelining, hand-over of requests the fast path does not take, `Connection: close`,
//! and idle connections at shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use slackgate_testkit::{read_response, SignedRequest};

fn unique(i: usize) -> SignedRequest {
    SignedRequest::new("/slack/open", mention_of_size(600 + i)).sign(SECRET)
}

/// The same request with a chunked body instead of a Content-Length: pingora's path.
fn chunked(req: &SignedRequest) -> Vec<u8> {
    let plain = req.to_http("x");
    let text = String::from_utf8(plain).unwrap();
    let (head, _) = text.split_once("\r\n\r\n").unwrap();
    let head: Vec<&str> = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("content-length"))
        .collect();
    let mut out = format!(
        "{}\r\nTransfer-Encoding: chunked\r\n\r\n",
        head.join("\r\n")
    )
    .into_bytes();
    for part in req.body.chunks(100) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn pipelined_requests_on_the_fast_path_are_answered_in_order() {
    let rig = rig();
    let reqs: Vec<_> = (0..3).map(unique).collect();
    let mut bytes = Vec::new();
    for r in &reqs {
        bytes.extend_from_slice(&r.to_http("x"));
    }
    let mut s = TcpStream::connect(rig.gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&bytes).unwrap();
    let mut reader = BufReader::new(s);
    for i in 0..3 {
        let r = read_response(&mut reader).unwrap();
        assert_eq!(r.status, 200, "request {i}");
    }
    let got = rig.bot.requests();
    assert_eq!(got.len(), 3);
    for (g, r) in got.iter().zip(&reqs) {
        assert_eq!(g.body, r.body);
    }
}

#[test]
fn fast_and_handed_over_requests_share_one_connection() {
    let rig = rig();
    let reqs: Vec<_> = (0..5).map(unique).collect();
    let wire = [
        reqs[0].to_http("x"),
        chunked(&reqs[1]),
        reqs[2].to_http("x"),
        chunked(&reqs[3]),
        reqs[4].to_http("x"),
    ];
    let mut s = TcpStream::connect(rig.gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    for (i, bytes) in wire.iter().enumerate() {
        s.write_all(bytes).unwrap();
        let r = read_response(&mut reader).unwrap();
        assert_eq!(r.status, 200, "request {i}");
    }
    let got = rig.bot.requests();
    assert_eq!(got.len(), 5);
    for (g, r) in got.iter().zip(&reqs) {
        assert_eq!(g.body, r.body, "every body arrives whole, with a length");
        assert_eq!(
            g.header("content-length"),
            Some(r.body.len().to_string().as_str())
        );
        assert_eq!(g.header("transfer-encoding"), None);
    }
    let audit = rig.gw.audit_lines(5);
    assert!(audit.iter().all(|a| a["reason"] == "allowed"), "{audit:?}");
}

#[test]
fn connection_close_is_answered_and_honoured() {
    let rig = rig();
    let mut bytes = unique(1).to_http("x");
    let at = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    bytes.splice(at + 2..at + 2, b"Connection: close\r\n".iter().copied());
    let mut s = TcpStream::connect(rig.gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&bytes).unwrap();
    let mut reader = BufReader::new(s);
    let r = read_response(&mut reader).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    let mut rest = Vec::new();
    assert_eq!(
        reader.read_to_end(&mut rest).unwrap(),
        0,
        "closed after the answer"
    );
}

#[test]
fn a_denied_request_on_a_kept_alive_connection_leaves_it_usable() {
    let rig = rig();
    let mut s = TcpStream::connect(rig.gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let forged = SignedRequest::new("/slack/open", mention_of_size(700)).sign("wrong-secret");
    s.write_all(&forged.to_http("x")).unwrap();
    let r = read_response(&mut reader).unwrap();
    assert_eq!(r.reason().as_deref(), Some("bad_signature"));
    s.write_all(&unique(2).to_http("x")).unwrap();
    assert_eq!(read_response(&mut reader).unwrap().status, 200);
    assert_eq!(rig.bot.requests().len(), 1);
}

#[test]
fn at_graceful_shutdown_keep_alive_connections_are_answered_with_close_then_idle_ones_closed() {
    // shutdown_grace 2s: an idle connection stays open for 1 s of the drain.
    let mut rig = rig_with_limits(", shutdown_grace: 2s", |b| b);
    let connect = || {
        let s = TcpStream::connect(rig.gw.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        s
    };
    let (mut busy, idle) = (connect(), connect());
    busy.write_all(&unique(3).to_http("x")).unwrap();
    let mut busy_reader = BufReader::new(busy.try_clone().unwrap());
    assert_eq!(read_response(&mut busy_reader).unwrap().status, 200);
    let mut idle_writer = idle.try_clone().unwrap();
    idle_writer.write_all(&unique(4).to_http("x")).unwrap();
    let mut idle_reader = BufReader::new(idle);
    assert_eq!(read_response(&mut idle_reader).unwrap().status, 200);

    let running = rig.gw.running.take().unwrap();
    let started = Instant::now();
    // Not joined: pingora then waits out the grace period for other work.
    std::thread::spawn(move || running.shutdown_graceful());
    // A client writing on its keep-alive connection as the drain starts is answered,
    // and told to go elsewhere next time.
    std::thread::sleep(Duration::from_millis(200));
    busy.write_all(&unique(5).to_http("x")).unwrap();
    let r = read_response(&mut busy_reader).unwrap();
    assert_eq!(
        r.status, 200,
        "a request on a draining connection is served"
    );
    assert_eq!(r.header("connection"), Some("close"));

    // A connection that stays idle is closed, but only after the drain's idle grace.
    let mut rest = Vec::new();
    match idle_reader.read_to_end(&mut rest) {
        Ok(0) => {}
        // A reset is a close too; a timeout is not.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!(
            "idle connection not closed: {other:?} after {:?}",
            started.elapsed()
        ),
    }
    let held = started.elapsed();
    assert!(
        held >= Duration::from_millis(900) && held < Duration::from_secs(4),
        "idle connection closed after {held:?}, expected about 1 s"
    );
}
