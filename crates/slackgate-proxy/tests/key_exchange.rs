//! Post-quantum key exchange on both doors (issue 33): real rustls handshakes against the
//! gateway's TLS listeners (inbound and egress) and from its client to the TLS Slack
//! stand-in. The listeners choose the group by the gateway's order (`tls.key_exchange`,
//! default X25519MLKEM768, X25519, P-256, P-384), not the client's: a client that lists
//! P-384 first is asked for X25519 by HelloRetryRequest, unless P-384 is all it offers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::aws_lc_rs::kx_group::{SECP256R1, SECP384R1, X25519, X25519MLKEM768};
use rustls::crypto::SupportedKxGroup;
use rustls::{HandshakeKind, NamedGroup};
use slackgate_testkit::creds::{HELPDESK_KEY as KEY, HELPDESK_TOKEN as TOKEN};
use slackgate_testkit::policy::bots_from;
use slackgate_testkit::{wait_until, SlackApi, TestCerts, TestGateway, TestGatewayBuilder};

fn policy() -> String {
    format!(
        "{}    team: T0ACME\n    methods: [auth.test]\n",
        bots_from("helpdesk")
    )
}

fn slack(classical: bool) -> SlackApi {
    let b = SlackApi::builder().token(TOKEN, "T0ACME", &[]);
    if classical { b.classical_only() } else { b }.start()
}

/// A gateway with a TLS inbound listener, a TLS egress listener and the egress door in
/// front of `slack`, with `extra` config.
fn gateway(slack: &SlackApi, extra: &str) -> TestGateway {
    TestGatewayBuilder::new(&policy())
        .bot("helpdesk", KEY, TOKEN)
        .slack(slack)
        .tls_only()
        .egress_tls()
        .config(extra)
        .start()
}

/// A client offering exactly `groups`, in that order, TLS 1.3 and 1.2 (or `versions`).
fn client(
    certs: &TestCerts,
    groups: &[&'static dyn SupportedKxGroup],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let provider = rustls::crypto::CryptoProvider {
        kx_groups: groups.to_vec(),
        ..rustls::crypto::aws_lc_rs::default_provider()
    };
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(certs.der.clone()))
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// What one handshake (and one request on it) was.
#[derive(Debug)]
struct Handshake {
    group: Option<NamedGroup>,
    kind: Option<HandshakeKind>,
    answer: Vec<u8>,
}

/// A handshake with `addr` and `GET /nowhere` on it; `Err` when the handshake failed.
fn handshake(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> Result<Handshake, String> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::clone(config), name).unwrap();
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    // The gateway ends with close_notify; an error after the answer changes nothing here.
    let read = tls.read_to_end(&mut answer);
    if answer.is_empty() {
        return Err(format!("no answer: {read:?}"));
    }
    Ok(Handshake {
        group: conn.negotiated_key_exchange_group().map(|g| g.name()),
        kind: conn.handshake_kind(),
        answer,
    })
}

/// Both TLS listeners of `gw`, with the certificate each serves.
fn listeners(gw: &TestGateway) -> [(SocketAddr, &TestCerts); 2] {
    [
        (gw.tls_addr.unwrap(), gw.certs.as_ref().unwrap()),
        (gw.egress_addr.unwrap(), gw.egress_certs.as_ref().unwrap()),
    ]
}

#[test]
fn a_client_offering_the_hybrid_gets_it_on_both_doors() {
    let slack = slack(false);
    let gw = gateway(&slack, "");
    for (addr, certs) in listeners(&gw) {
        // What browsers, OpenSSL 3.5 and rustls' default provider send: the hybrid first,
        // with a share for it (and for X25519) in the first flight.
        let h = handshake(addr, &client(certs, &[X25519MLKEM768, X25519], BOTH)).unwrap();
        assert_eq!(h.group, Some(NamedGroup::X25519MLKEM768), "{addr}");
        assert_eq!(h.kind, Some(HandshakeKind::Full), "no retry needed");
        assert!(h.answer.starts_with(b"HTTP/1.1 "), "{:?}", h.answer);
        // The hybrid listed after X25519: still the hybrid (the gateway's order), by retry.
        let h = handshake(addr, &client(certs, &[X25519, X25519MLKEM768], BOTH)).unwrap();
        assert_eq!(h.group, Some(NamedGroup::X25519MLKEM768), "{addr}");
        assert_eq!(h.kind, Some(HandshakeKind::FullWithHelloRetryRequest));
    }
    // Counted per listener and group: the share of post-quantum connections.
    for listener in ["inbound", "egress"] {
        let sample = |group: &str| {
            gw.metric(&format!(
                "slackgate_tls_handshakes_total{{group=\"{group}\",listener=\"{listener}\"}}"
            ))
        };
        assert_eq!(sample("X25519MLKEM768"), 2.0, "{listener}");
        assert_eq!(sample("X25519"), 0.0, "{listener}: pre-registered");
        assert_eq!(sample("failed"), 0.0, "{listener}");
    }
}

#[test]
fn a_p384_first_client_is_asked_for_x25519_unless_p384_is_all_it_offers() {
    let slack = slack(false);
    let gw = gateway(&slack, "");
    for (addr, certs) in listeners(&gw) {
        let h = handshake(addr, &client(certs, &[SECP384R1, X25519, SECP256R1], BOTH)).unwrap();
        assert_eq!(h.group, Some(NamedGroup::X25519), "{addr}");
        assert_eq!(h.kind, Some(HandshakeKind::FullWithHelloRetryRequest));

        let h = handshake(addr, &client(certs, &[SECP256R1, X25519], BOTH)).unwrap();
        assert_eq!(h.group, Some(NamedGroup::X25519), "{addr}");

        let h = handshake(addr, &client(certs, &[SECP384R1], BOTH)).unwrap();
        assert_eq!(h.group, Some(NamedGroup::secp384r1), "{addr}");
        assert_eq!(h.kind, Some(HandshakeKind::Full));
    }
}

#[test]
fn a_tls12_client_gets_a_classical_group() {
    let slack = slack(false);
    let gw = gateway(&slack, "");
    for (addr, certs) in listeners(&gw) {
        let tls12 = &[&rustls::version::TLS12][..];
        // The hybrid is TLS 1.3 only; a TLS 1.2 client that lists it anyway is still served.
        let h = handshake(
            addr,
            &client(certs, &[X25519MLKEM768, SECP256R1, X25519], tls12),
        )
        .unwrap();
        assert_eq!(h.group, Some(NamedGroup::X25519), "{addr}");
        assert!(h.answer.starts_with(b"HTTP/1.1 "));
    }
}

#[test]
fn tls_key_exchange_restricts_both_listeners() {
    let slack = slack(false);
    let gw = gateway(&slack, "tls: { key_exchange: [X25519, P-256] }");
    let failed = |listener: &str| {
        gw.metric(&format!(
            "slackgate_tls_handshakes_total{{group=\"failed\",listener=\"{listener}\"}}"
        ))
    };
    // (The start's readiness probes connect and close without a ClientHello: no
    // handshake began, none failed.)
    for (addr, certs) in listeners(&gw) {
        let h = handshake(addr, &client(certs, &[X25519MLKEM768, X25519], BOTH)).unwrap();
        assert_eq!(h.group, Some(NamedGroup::X25519), "{addr}");
        let h = handshake(addr, &client(certs, &[SECP384R1, SECP256R1], BOTH)).unwrap();
        assert_eq!(h.group, Some(NamedGroup::secp256r1), "{addr}");
        // A client with nothing in common is refused in the handshake: no answer at all.
        assert!(
            handshake(addr, &client(certs, &[SECP384R1], BOTH)).is_err(),
            "{addr}"
        );
    }
    // The refused handshake, on each listener (counted as the server side ends it).
    let counted = || [failed("inbound"), failed("egress")] == [1.0, 1.0];
    assert!(
        wait_until(Duration::from_secs(5), counted),
        "{:?}",
        [failed("inbound"), failed("egress")]
    );
}

/// `auth.test` through the egress door; the stand-in's groups of every TLS connection.
fn call_through(slack: &SlackApi, gw: &TestGateway) -> Vec<String> {
    let r = gw.egress_post(
        "/api/auth.test",
        &[("Authorization", &format!("Bearer {KEY}"))],
        "",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(slack.received().len(), 1);
    slack.key_exchanges()
}

#[test]
fn the_client_to_slack_uses_the_hybrid_when_slack_offers_it() {
    let slack = slack(false);
    let gw = gateway(&slack, "");
    assert_eq!(call_through(&slack, &gw), ["X25519MLKEM768"]);

    // A Slack without post-quantum support: X25519, with no retry needed (the client's
    // first flight carries an X25519 share beside the hybrid's).
    let slack = slack_classical();
    let gw = gateway(&slack, "");
    assert_eq!(call_through(&slack, &gw), ["X25519"]);

    // `tls.key_exchange` restricts the client too.
    let slack = self::slack(false);
    let gw = gateway(&slack, "tls: { key_exchange: [P-256] }");
    assert_eq!(call_through(&slack, &gw), ["secp256r1"]);
}

fn slack_classical() -> SlackApi {
    slack(true)
}
