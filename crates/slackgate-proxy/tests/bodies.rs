//! Body sizes around pingora's 64 KiB retry-buffer trap reach the bot byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use slackgate_testkit::SignedRequest;

#[test]
fn bodies_up_to_the_cap_arrive_intact() {
    let rig = rig();
    for size in [1024, 64 * 1024, 64 * 1024 + 1, 1024 * 1024] {
        rig.bot.clear();
        let body = mention_of_size(size);
        let req = SignedRequest::new("/slack/open", body.clone()).sign(SECRET);
        let resp = rig.gw.client().send(&req).unwrap();
        assert_eq!(resp.status, 200, "size {size}");
        let got = rig.bot.requests();
        assert_eq!(got.len(), 1, "size {size}");
        assert_eq!(got[0].body.len(), size);
        assert!(got[0].body == body, "size {size}: body differs");
    }
    let req = SignedRequest::new("/slack/open", mention_of_size(1024 * 1024 + 1)).sign(SECRET);
    rig.bot.clear();
    assert_eq!(rig.gw.client().send(&req).unwrap().status, 413);
    assert_eq!(rig.bot.bytes_received(), 0);
}

#[test]
fn chunked_request_is_forwarded_with_a_length() {
    let rig = rig();
    let req = SignedRequest::new("/slack/open", mention_of_size(100 * 1024)).sign(SECRET);
    let mut raw = format!(
        "POST /slack/open HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slack-Request-Timestamp: {}\r\nX-Slack-Signature: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        req.timestamp.as_deref().unwrap(),
        req.signature.as_deref().unwrap()
    )
    .into_bytes();
    for piece in req.body.chunks(7000) {
        raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        raw.extend_from_slice(piece);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let resp = rig.gw.client().raw(&raw).unwrap();
    assert_eq!(resp.status, 200);
    let got = rig.bot.requests();
    assert_eq!(got[0].body, req.body);
    assert_eq!(got[0].header("content-length"), Some("102400"));
    assert_eq!(got[0].header("transfer-encoding"), None);
}
