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

/// One request on a new TLS connection made with `config`: what the handshake was, the
/// ALPN protocol and the answer's bytes.
fn tls_request(
    addr: std::net::SocketAddr,
    config: &std::sync::Arc<rustls::ClientConfig>,
) -> (Option<rustls::HandshakeKind>, Option<Vec<u8>>, Vec<u8>) {
    use std::io::{Read, Write};
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    // The gateway ends with close_notify; an error after the answer changes nothing here.
    let _ = tls.read_to_end(&mut answer);
    (
        conn.handshake_kind(),
        conn.alpn_protocol().map(<[u8]>::to_vec),
        answer,
    )
}

#[test]
fn tls_sessions_resume_from_tickets_and_alpn_picks_http1() {
    let rig = rig_with(|b| b.tls_only());
    let addr = rig.gw.tls_addr.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(
            rig.gw.certs.as_ref().unwrap().der.clone(),
        ))
        .unwrap();
    // The groups of rustls' default provider with `prefer-post-quantum` (its default
    // features): the hybrid first, so the first handshake needs no retry.
    use rustls::crypto::aws_lc_rs::{default_provider, kx_group};
    let provider = rustls::crypto::CryptoProvider {
        kx_groups: vec![
            kx_group::X25519MLKEM768,
            kx_group::X25519,
            kx_group::SECP256R1,
        ],
        ..default_provider()
    };
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let config = std::sync::Arc::new(config);
    let mut kinds = Vec::new();
    for _ in 0..3 {
        let (kind, alpn, answer) = tls_request(addr, &config);
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert!(answer.starts_with(b"HTTP/1.1 404"), "{answer:?}");
        kinds.push(kind);
    }
    assert_eq!(
        kinds,
        [
            Some(rustls::HandshakeKind::Full),
            Some(rustls::HandshakeKind::Resumed),
            Some(rustls::HandshakeKind::Resumed)
        ]
    );
}

#[test]
fn a_tls_client_that_never_handshakes_is_closed_at_the_head_deadline() {
    use std::io::Read;
    let rig = rig_with_limits(", head_read_timeout: 1s", |b| b.tls_only());
    let mut sock = std::net::TcpStream::connect(rig.gw.tls_addr.unwrap()).unwrap();
    // Far longer than the deadline: a read that times out means the gateway kept it open.
    sock.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut b = [0u8; 16];
    match sock.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the gateway to close the silent connection: {other:?}"),
    }
    assert_eq!(rig.bot.bytes_received(), 0);
}
