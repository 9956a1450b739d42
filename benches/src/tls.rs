//! The load generator's TLS client: rustls (ring), trusting exactly one certificate.
//!
//! The benchmark's certificate is self-signed and generated at run time, so the client
//! pins it: the server's end-entity certificate must be byte-for-byte the one in the
//! file, and the handshake signature is verified with it (the server proves it holds the
//! key, as with any real client). No chain building, no name check: the work a real
//! client spends on its trust store is not the server's cost and would only slow the
//! load generator down. Loopback only.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// Accepts exactly one certificate (and checks the handshake signature against it).
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The first certificate of a PEM file, in DER.
pub fn first_cert(pem_path: &str) -> Result<CertificateDer<'static>, String> {
    CertificateDer::pem_file_iter(pem_path)
        .map_err(|e| format!("{pem_path}: {e}"))?
        .next()
        .ok_or_else(|| format!("{pem_path}: no PEM certificate in the file"))?
        .map_err(|e| format!("{pem_path}: {e}"))
}

/// Which key-exchange groups the load generator's client offers, in order (`--kx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kx {
    /// X25519, P-256, P-384: a classical client (rustls' ring provider's defaults).
    X25519,
    /// X25519MLKEM768 first, then X25519, P-256, P-384 (browsers, OpenSSL 3.5, rustls'
    /// default provider).
    Hybrid,
    /// P-384, X25519, P-256: a client that prefers the slow curve (its share is P-384's,
    /// so a server that wants X25519 has to ask for it by HelloRetryRequest).
    P384First,
}

impl Kx {
    /// Reads `--kx`: `x25519`, `hybrid` or `p384-first`.
    pub fn parse(word: &str) -> Option<Kx> {
        match word {
            "x25519" => Some(Kx::X25519),
            "hybrid" => Some(Kx::Hybrid),
            "p384-first" => Some(Kx::P384First),
            _ => None,
        }
    }

    fn groups(self) -> Vec<&'static dyn rustls::crypto::SupportedKxGroup> {
        use rustls::crypto::aws_lc_rs::kx_group::{SECP256R1, SECP384R1, X25519, X25519MLKEM768};
        match self {
            Kx::X25519 => vec![X25519, SECP256R1, SECP384R1],
            Kx::Hybrid => vec![X25519MLKEM768, X25519, SECP256R1, SECP384R1],
            Kx::P384First => vec![SECP384R1, X25519, SECP256R1],
        }
    }
}

/// A client config that trusts only the certificate in `pem_path`, TLS 1.2 and 1.3,
/// aws-lc-rs' cipher suites, the key-exchange groups of `kx`, HTTP/1.1 by ALPN, with or
/// without session resumption (rustls's in-memory store, shared by every connection made
/// with this config).
pub fn client_config(
    pem_path: &str,
    resume: bool,
    counts: Arc<TicketCounts>,
    kx: Kx,
) -> Result<Arc<ClientConfig>, String> {
    let cert = first_cert(pem_path)?;
    let provider = Arc::new(rustls::crypto::CryptoProvider {
        kx_groups: kx.groups(),
        ..rustls::crypto::aws_lc_rs::default_provider()
    });
    let verifier = Arc::new(Pinned {
        cert,
        provider: Arc::clone(&provider),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = if resume {
        // Tickets shared by every connection, as in one client process, counted.
        Resumption::store(Arc::new(CountingStore {
            inner: rustls::client::ClientSessionMemoryCache::new(256),
            tickets: parking_lot::Mutex::default(),
            counts,
        }))
    } else {
        Resumption::disabled()
    };
    Ok(Arc::new(config))
}

/// Counts of the client's TLS 1.3 ticket store (to tell a server that issues no usable
/// tickets from a client that ran out of them).
#[derive(Debug, Default)]
pub struct TicketCounts {
    /// Tickets received and stored.
    pub inserted: std::sync::atomic::AtomicU64,
    /// Connections that found a ticket to offer.
    pub offered: std::sync::atomic::AtomicU64,
    /// Connections that found none.
    pub missing: std::sync::atomic::AtomicU64,
}

/// rustls's client store for everything but TLS 1.3 tickets, which it keeps here: up to
/// [`MAX_TICKETS`] (rustls keeps 8 per server, too few for one process with 64
/// connections to one server: they ran out in bursts and the client fell back to full
/// handshakes whichever server it measured). The load generator talks to one server.
#[derive(Debug)]
struct CountingStore {
    inner: rustls::client::ClientSessionMemoryCache,
    tickets:
        parking_lot::Mutex<std::collections::VecDeque<rustls::client::Tls13ClientSessionValue>>,
    counts: Arc<TicketCounts>,
}

/// The most TLS 1.3 tickets the load generator keeps (newest used first).
const MAX_TICKETS: usize = 4096;

impl rustls::client::ClientSessionStore for CountingStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: rustls::NamedGroup) {
        self.inner.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.inner.kx_hint(server_name)
    }

    fn set_tls12_session(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(server_name, value);
    }

    fn tls12_session(
        &self,
        server_name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.inner.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        let _ = server_name;
        self.counts.inserted.fetch_add(1, Ordering::Relaxed);
        let mut t = self.tickets.lock();
        if t.len() == MAX_TICKETS {
            t.pop_front();
        }
        t.push_back(value);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        let _ = server_name;
        let t = self.tickets.lock().pop_back();
        let slot = if t.is_some() {
            &self.counts.offered
        } else {
            &self.counts.missing
        };
        slot.fetch_add(1, Ordering::Relaxed);
        t
    }
}
