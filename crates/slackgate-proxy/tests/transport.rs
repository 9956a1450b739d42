//! TLS termination with a real handshake, and X-Forwarded-For trust.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[test]
fn https_end_to_end() {
    let rig = rig_with(|b| b.tls_only());
    let resp = rig
        .gw
        .tls_client()
        .send(&mention("/slack/events").sign(SECRET))
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(rig.bot.requests().len(), 1);
}

#[test]
fn tls_rejects_a_client_that_does_not_trust_the_cert() {
    let rig = rig_with(|b| b.tls_only());
    let other = slackgate_testkit::TestCerts::generate();
    let c = slackgate_testkit::Client::tls(rig.gw.tls_addr.unwrap(), &other.der);
    assert!(c.send(&mention("/slack/events").sign(SECRET)).is_err());
    assert_eq!(rig.bot.bytes_received(), 0);
}

#[test]
fn forwarded_for_is_ignored_from_untrusted_peers() {
    let rig = rig();
    let req = mention("/slack/events")
        .sign(SECRET)
        .header("X-Forwarded-For", "203.0.113.9");
    let resp = rig.gw.client().send(&req).unwrap();
    assert_eq!(
        resp.status, 200,
        "spoofed XFF from an untrusted peer must be ignored"
    );
    assert_eq!(rig.gw.audit_nth(1)["client_ip"], "127.0.0.1");
}

#[test]
fn forwarded_for_is_honoured_from_trusted_proxies() {
    let rig = rig_with(|b| b.config("trusted_proxies: [127.0.0.0/8]"));
    let req = mention("/slack/events")
        .sign(SECRET)
        .header("X-Forwarded-For", "203.0.113.9, 127.0.0.5");
    let resp = rig.gw.client().send(&req).unwrap();
    assert_eq!(resp.status, 403);
    assert_eq!(resp.reason().as_deref(), Some("ip_denied"));
    assert_eq!(rig.bot.bytes_received(), 0);
    assert_eq!(rig.gw.audit_nth(1)["client_ip"], "203.0.113.9");
    // A client behind the trusted proxy cannot hide behind a forged leftmost entry.
    let req = mention("/slack/events")
        .sign(SECRET)
        .header("X-Forwarded-For", "10.1.1.1, 203.0.113.10");
    let resp = rig.gw.client().send(&req).unwrap();
    assert_eq!(resp.reason().as_deref(), Some("ip_denied"));
}

#[test]
fn one_worker_thread_serves_plain_and_tls_over_reused_upstream_connections() {
    // `--threads 1` runs pingora's current-thread (no work stealing) runtime.
    let rig = rig_with(|b| b.tls().threads(1));
    let unique = |i: usize| {
        let body = mention_of_size(600 + i);
        slackgate_testkit::SignedRequest::new("/slack/open", body).sign(SECRET)
    };
    for i in 0..5 {
        let resp = rig.gw.client().send(&unique(i)).unwrap();
        assert_eq!(resp.status, 200);
    }
    let resp = rig.gw.tls_client().send(&unique(5)).unwrap();
    assert_eq!(resp.status, 200);
    let seen = rig.bot.requests();
    assert_eq!(seen.len(), 6);
    // Requests one after another share one pooled upstream connection.
    assert!(
        seen.iter().all(|r| r.conn == seen[0].conn),
        "upstream connections: {:?}",
        seen.iter().map(|r| r.conn).collect::<Vec<_>>()
    );
}
