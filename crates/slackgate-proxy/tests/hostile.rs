//! A hostile-input corpus driven end to end through the running gateway. Each case
//! gets its expected status and reason, the bot receives nothing it should not, and
//! the gateway keeps serving afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use slackgate_testkit::{now_unix, Response, SignedRequest};

/// Sends raw bytes; returns the first response, or None when the gateway closed
/// without one (also an acceptable answer to garbage).
fn raw(rig: &Rig, bytes: &[u8]) -> Option<Response> {
    let mut s = TcpStream::connect(rig.gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    slackgate_testkit::client::read_response(&mut &buf[..]).ok()
}

fn still_serving(rig: &Rig) {
    let body = String::from_utf8(slackgate_testkit::fixture("event_message.json"))
        .unwrap()
        .replace(
            "Ev0MESSAGE01",
            &format!("Ev0ALIVE{}", rig.bot.requests().len()),
        );
    let r = rig
        .gw
        .client()
        .send(&SignedRequest::new("/slack/open", body).sign(SECRET))
        .unwrap();
    assert_eq!(r.status, 200, "gateway stopped serving");
}

fn head(path: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

fn sig_headers(body: &[u8], secret: &str) -> (String, String) {
    let r = SignedRequest::new("/", body.to_vec()).sign(secret);
    (r.timestamp.unwrap(), r.signature.unwrap())
}

fn expect(rig: &Rig, bytes: &[u8], status: u16, reason: &str) {
    let r = raw(rig, bytes).unwrap_or_else(|| panic!("no answer, expected {status} {reason}"));
    assert_eq!(
        r.status,
        status,
        "{reason}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.reason().as_deref(), Some(reason));
    assert_eq!(
        rig.bot.bytes_received(),
        0,
        "bot received bytes for a {reason} case"
    );
}

#[test]
fn signature_header_abuse() {
    let rig = rig();
    let body = slackgate_testkit::fixture("event_message.json");
    let (ts, sig) = sig_headers(&body, SECRET);
    let cases: Vec<(String, &str)> = vec![
        // Duplicated signature: one good, one bad, in both orders.
        (format!("X-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: {sig}\r\nX-Slack-Signature: v0=00\r\n"), "bad_signature"),
        (format!("X-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: v0=00\r\nX-Slack-Signature: {sig}\r\n"), "bad_signature"),
        // Duplicated timestamp.
        (format!("X-Slack-Request-Timestamp: {ts}\r\nX-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: {sig}\r\n"), "bad_signature"),
        // Non-hex, v1, wrong length, empty.
        (format!("X-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: v0={}\r\n", "zz".repeat(32)), "bad_signature"),
        (format!("X-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: {}\r\n", sig.replace("v0=", "v1=")), "bad_signature"),
        (format!("X-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: {}\r\n", &sig[..40]), "bad_signature"),
        (format!("X-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: \r\n"), "bad_signature"),
        // Timestamps with signs, spaces, overflow, fractions.
        (format!("X-Slack-Request-Timestamp: +{ts}\r\nX-Slack-Signature: {sig}\r\n"), "bad_signature"),
        (format!("X-Slack-Request-Timestamp: -{ts}\r\nX-Slack-Signature: {sig}\r\n"), "bad_signature"),
        (format!("X-Slack-Request-Timestamp: {ts}.0\r\nX-Slack-Signature: {sig}\r\n"), "bad_signature"),
        (format!("X-Slack-Request-Timestamp: 99999999999999999999999\r\nX-Slack-Signature: {sig}\r\n"), "bad_signature"),
        (format!("X-Slack-Request-Timestamp: 0\r\nX-Slack-Signature: {sig}\r\n"), "stale_timestamp"),
        // Only one of the two.
        (format!("X-Slack-Signature: {sig}\r\n"), "missing_signature"),
    ];
    for (headers, reason) in cases {
        expect(&rig, &head("/slack/events", &headers, &body), 401, reason);
    }
    // A correctly signed request from the epoch is stale.
    let r = SignedRequest::new("/slack/events", body.clone()).sign_at(SECRET, 0);
    expect(&rig, &r.to_http("x"), 401, "stale_timestamp");
    still_serving(&rig);
}

#[test]
fn payload_abuse() {
    let rig = rig();
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"\xff\xfe{not utf-8".to_vec(), "application/json"),
        (nested.clone().into_bytes(), "application/json"),
        (
            format!("{{\"type\":\"event_callback\",\"event\":{}}}", nested).into_bytes(),
            "application/json",
        ),
        (
            b"payload=%7Bnot%20json".to_vec(),
            "application/x-www-form-urlencoded",
        ),
        (
            b"payload=%FF%FE".to_vec(),
            "application/x-www-form-urlencoded",
        ),
        (
            b"payload=1&payload=2".to_vec(),
            "application/x-www-form-urlencoded",
        ),
        (
            b"command=%2Fticket&command=%2Fadmin&team_id=T0ACME".to_vec(),
            "application/x-www-form-urlencoded",
        ),
        (
            b"{\"type\":\"event_callback\",\"team_id\":7}".to_vec(),
            "application/json",
        ),
        (b"{\"type\":\"something_new\"}".to_vec(), "application/json"),
        (b"".to_vec(), "application/json"),
    ];
    for (body, ct) in cases {
        let mut req = SignedRequest::new("/slack/open", body.clone()).sign(SECRET);
        req.content_type = ct.to_owned();
        let r = rig.gw.client().send(&req).unwrap();
        assert_eq!(
            r.status,
            400,
            "{:?}",
            String::from_utf8_lossy(&body[..body.len().min(40)])
        );
        assert_eq!(r.reason().as_deref(), Some("malformed_payload"));
    }
    assert_eq!(rig.bot.bytes_received(), 0);
    still_serving(&rig);
}

#[test]
fn forwarded_values_cannot_inject_headers() {
    let rig = rig();
    let body = String::from_utf8(slackgate_testkit::fixture("event_message.json"))
        .unwrap()
        .replace("\"U0444\"", "\"U0444\\r\\nX-Evil: 1\"")
        .replace("\"T0ACME\"", "\"T0ACME\\nX-Evil: 2\"");
    let r = rig
        .gw
        .client()
        .send(&SignedRequest::new("/slack/open", body.clone()).sign(SECRET))
        .unwrap();
    assert_eq!(r.status, 200);
    let got = &rig.bot.requests()[0];
    assert_eq!(got.header("x-evil"), None);
    assert_eq!(got.header("x-slackgate-user"), None);
    assert_eq!(got.header("x-slackgate-team"), None);
    assert_eq!(got.body, body.as_bytes());
}

#[test]
fn framing_abuse() {
    let rig = rig();
    let body = slackgate_testkit::fixture("event_message.json");
    let (ts, sig) = sig_headers(&body, SECRET);
    let signed = format!("X-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: {sig}\r\n");

    // Chunked body with an invalid chunk size.
    let bad_chunk = format!(
        "POST /slack/open HTTP/1.1\r\nHost: x\r\n{signed}Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        String::from_utf8_lossy(&body)
    );
    let r = raw(&rig, bad_chunk.as_bytes());
    assert!(
        r.as_ref().is_none_or(|r| r.status >= 400),
        "bad chunk size accepted: {r:?}"
    );

    // Content-Length larger than the body: the body never completes.
    let mut short = format!(
        "POST /slack/open HTTP/1.1\r\nHost: x\r\n{signed}Content-Length: {}\r\n\r\n",
        body.len() + 50
    )
    .into_bytes();
    short.extend_from_slice(&body);
    let mut s = TcpStream::connect(rig.gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&short).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let r = slackgate_testkit::client::read_response(&mut &buf[..]).unwrap();
    assert_eq!(r.status, 408);

    // Content-Length smaller than the body: the signature covers the whole body, so the
    // truncated one fails; the rest is never a request of its own at the bot.
    let mut long = format!(
        "POST /slack/open HTTP/1.1\r\nHost: x\r\n{signed}Content-Length: {}\r\n\r\n",
        body.len() - 10
    )
    .into_bytes();
    long.extend_from_slice(&body);
    let r = raw(&rig, &long).unwrap();
    assert_eq!(r.reason().as_deref(), Some("bad_signature"));

    // Content-Length that is not a number, or two different ones.
    let r = raw(
        &rig,
        format!("POST /slack/open HTTP/1.1\r\nHost: x\r\n{signed}Content-Length: abc\r\n\r\n")
            .as_bytes(),
    );
    assert!(r.as_ref().is_none_or(|r| r.status == 400), "{r:?}");
    let r = raw(&rig, format!("POST /slack/open HTTP/1.1\r\nHost: x\r\n{signed}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!").as_bytes());
    assert!(r.as_ref().is_none_or(|r| r.status == 400), "{r:?}");

    assert_eq!(rig.bot.bytes_received(), 0);
    still_serving(&rig);
}

#[test]
fn smuggling_cl_te_reaches_the_bot_as_one_request_at_most() {
    let rig = rig();
    // The smuggled request inside the chunked body would be a second, unsigned
    // request if any hop honoured Content-Length instead of the chunking.
    let smuggled = b"POST /slack/open HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    let body = slackgate_testkit::fixture("event_message.json");
    let (ts, sig) = sig_headers(&body, SECRET);
    let mut req = format!(
        "POST /slack/open HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: {sig}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    req.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    req.extend_from_slice(&body);
    req.extend_from_slice(b"\r\n0\r\n\r\n");
    req.extend_from_slice(smuggled);
    let _ = raw(&rig, &req);
    let got = rig.bot.requests();
    assert!(got.len() <= 1, "bot saw {} requests", got.len());
    for g in &got {
        assert_eq!(g.body, body, "the bot only ever gets the verified body");
        assert!(g.header("x-slack-signature").is_some());
    }
    // TE.CL the other way round: a bogus transfer coding.
    let _ = raw(&rig, format!("POST /slack/open HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: {}\r\n\r\n", smuggled.len()).as_bytes().iter().chain(smuggled.iter()).copied().collect::<Vec<u8>>().as_slice());
    assert!(rig.bot.requests().len() <= 1);
    still_serving(&rig);
}

#[test]
fn paths_are_matched_exactly() {
    let rig = rig();
    for path in [
        "/slack/open/",
        "/slack/./open",
        "/slack/x/../open",
        "/slack/%6Fpen",
        "/SLACK/OPEN",
        "/slack/open%00",
        "//slack/open",
    ] {
        let r = rig.gw.client().send(&mention(path).sign(SECRET)).unwrap();
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.reason().as_deref(), Some("no_route"));
    }
    // A query string does not change the route; it is forwarded as it came.
    let r = rig
        .gw
        .client()
        .send(&mention("/slack/open?x=1").sign(SECRET))
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(rig.bot.requests()[0].target, "/slack/open?x=1");
}

#[test]
fn http_versions_and_pipelining() {
    let rig = rig();
    // HTTP/1.0 with a Content-Length works.
    let req = mention("/slack/open").sign(SECRET);
    let mut bytes = req.to_http("x");
    let pos = bytes.windows(8).position(|w| w == b"HTTP/1.1").unwrap();
    bytes[pos..pos + 8].copy_from_slice(b"HTTP/1.0");
    let r = raw(&rig, &bytes).unwrap();
    assert_eq!(r.status, 200);
    // Two pipelined requests: the first is answered; the second is answered too or
    // dropped with the connection, never forwarded without its own checks.
    rig.bot.clear();
    let a = SignedRequest::fixture("/slack/open", "command_ticket.form").sign(SECRET);
    let b = SignedRequest::fixture("/slack/open", "event_app_mention.json"); // unsigned
    let mut both = a.to_http("x");
    both.extend_from_slice(&b.to_http("x"));
    let _ = rig.gw.client().raw_all(&both);
    let got = rig.bot.requests();
    assert!(got.len() <= 1);
    assert!(got.iter().all(|g| g.body == a.body));
    still_serving(&rig);
}

#[test]
fn huge_headers_are_refused_without_harm() {
    let rig = rig();
    let huge = format!(
        "POST /slack/open HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    let r = raw(&rig, huge.as_bytes());
    assert!(r.as_ref().is_none_or(|r| r.status >= 400), "{r:?}");
    let many: String = (0..10_000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let r = raw(
        &rig,
        format!("POST /slack/open HTTP/1.1\r\nHost: x\r\n{many}Content-Length: 0\r\n\r\n")
            .as_bytes(),
    );
    assert!(r.as_ref().is_none_or(|r| r.status >= 400), "{r:?}");
    let _ = raw(
        &rig,
        b"\x16\x03\x01\x02\x00garbage that is not http\r\n\r\n",
    );
    let _ = raw(&rig, b"GET / HTTP/9.9\r\n\r\n");
    assert_eq!(rig.bot.bytes_received(), 0);
    still_serving(&rig);
}

#[test]
fn future_and_far_past_timestamps_are_stale() {
    let rig = rig();
    for ts in [now_unix() + 301 + 5, now_unix() - 301 - 5, i64::MAX / 2] {
        let r = rig
            .gw
            .client()
            .send(&mention("/slack/open").sign_at(SECRET, ts))
            .unwrap();
        assert_eq!(r.reason().as_deref(), Some("stale_timestamp"), "ts {ts}");
    }
    assert_eq!(rig.bot.bytes_received(), 0);
}
