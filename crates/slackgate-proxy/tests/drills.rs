//! Failure drills: broken upstreams, slow and vanishing clients, many connections, and
//! a stalled audit sink. The gateway answers, keeps serving and loses nothing silently.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use slackgate_testkit::{wait_until, BotBehavior, SignedRequest};

fn fresh(path: &str, n: usize) -> SignedRequest {
    let body = String::from_utf8(slackgate_testkit::fixture("event_message.json"))
        .unwrap()
        .replace("Ev0MESSAGE01", &format!("Ev0DRILL{n}"));
    SignedRequest::new(path, body).sign(SECRET)
}

fn assert_serving(rig: &Rig, n: usize) {
    for i in 0..n {
        let r = rig
            .gw
            .client()
            .send(&fresh("/slack/open", 1_000_000 + i))
            .unwrap();
        assert_eq!(r.status, 200);
    }
}

#[test]
fn upstream_that_resets_is_a_502_and_recovers() {
    let rig = rig();
    rig.bot.set_behavior(BotBehavior::Close);
    let r = rig.gw.client().send(&fresh("/slack/open", 1)).unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(r.reason().as_deref(), Some("upstream_error"));
    rig.bot.set_behavior(BotBehavior::Echo);
    // The target was marked down by the failure; the pool still tries it (it is the
    // only one) and the next request goes through.
    assert_serving(&rig, 3);
}

#[test]
fn upstream_answering_errors_is_relayed_not_rewritten() {
    let rig = rig();
    rig.bot
        .set_behavior(BotBehavior::Status(500, b"bot broke".to_vec()));
    let r = rig.gw.client().send(&fresh("/slack/open", 1)).unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(r.body, b"bot broke");
    let a = rig.gw.audit_nth(1);
    assert_eq!(a["reason"], "allowed");
    assert_eq!(a["upstream_status"], 500);
}

#[test]
fn hanging_upstream_times_out_and_others_are_unaffected() {
    let rig = rig();
    let slow = std::thread::spawn({
        let client = rig.gw.client();
        let req = fresh("/slack/slow", 1);
        move || client.send(&req).unwrap()
    });
    assert_serving(&rig, 5);
    let r = slow.join().unwrap();
    assert_eq!(r.status, 504);
}

#[test]
fn slowloris_headers_and_bodies_do_not_starve_others() {
    let rig = rig();
    let mut header_lorises = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(rig.gw.addr).unwrap();
        s.write_all(b"POST /slack/open HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        header_lorises.push(s);
    }
    let mut body_lorises = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(rig.gw.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"POST /slack/open HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"a\":")
            .unwrap();
        body_lorises.push(s);
    }
    let started = Instant::now();
    assert_serving(&rig, 20);
    eprintln!(
        "20 requests beside 400 slow clients took {:?}",
        started.elapsed()
    );
    // Body lorises are cut off by body_read_timeout (1 s in this rig) with a 408.
    for mut s in body_lorises {
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let r = slackgate_testkit::client::read_response(&mut &buf[..]).unwrap();
        assert_eq!(r.status, 408);
    }
    drop(header_lorises);
    assert_eq!(rig.bot.requests().len(), 20);
}

#[test]
fn thousands_of_concurrent_connections() {
    let rig = rig();
    let idle: Vec<TcpStream> = (0..3000)
        .map(|_| TcpStream::connect(rig.gw.addr).unwrap())
        .collect();
    // Half of them send a whole request at once and read the answer.
    let workers: Vec<_> = idle
        .chunks(250)
        .enumerate()
        .map(|(w, chunk)| {
            let conns: Vec<TcpStream> = chunk.iter().map(|c| c.try_clone().unwrap()).collect();
            let reqs: Vec<Vec<u8>> = (0..conns.len())
                .map(|i| fresh("/slack/open", w * 1000 + i).to_http("x"))
                .collect();
            std::thread::spawn(move || {
                let mut ok = 0;
                for (i, (mut c, req)) in conns.into_iter().zip(reqs).enumerate() {
                    if i % 2 == 1 {
                        continue;
                    }
                    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                    c.write_all(&req).unwrap();
                    let mut r = std::io::BufReader::new(c);
                    if slackgate_testkit::client::read_response(&mut r)
                        .is_ok_and(|r| r.status == 200)
                    {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let ok: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(ok, 1500);
    assert_serving(&rig, 5);
    drop(idle);
}

#[test]
fn client_disconnecting_mid_body_reaches_no_bot_and_is_audited() {
    let rig = rig();
    let req = fresh("/slack/open", 1);
    let bytes = req.to_http("x");
    {
        let mut s = TcpStream::connect(rig.gw.addr).unwrap();
        s.write_all(&bytes[..bytes.len() - 100]).unwrap();
    }
    let a = rig.gw.audit_nth(1);
    assert_eq!(a["reason"], "body_timeout");
    assert_eq!(rig.bot.bytes_received(), 0);
    assert_serving(&rig, 2);
}

#[test]
fn stalled_audit_sink_drops_are_counted_and_serving_continues() {
    let rig = rig_with(|b| b.audit_queue(8));
    let stall = rig.gw.block_audit();
    // Wait until the writer is parked on the lock with one record in hand.
    let started = Instant::now();
    for i in 0..40 {
        let r = rig.gw.client().send(&fresh("/slack/open", i)).unwrap();
        assert_eq!(r.status, 200, "serving must not wait for the audit sink");
    }
    eprintln!(
        "40 requests with the audit sink stalled took {:?}",
        started.elapsed()
    );
    assert!(wait_until(Duration::from_secs(5), || rig
        .gw
        .metric("slackgate_audit_dropped_total")
        >= 30.0));
    drop(stall);
    let dropped = rig.gw.metric("slackgate_audit_dropped_total") as usize;
    assert!(wait_until(Duration::from_secs(5), || rig
        .gw
        .audit_raw()
        .len()
        + dropped
        == 40));
}
