//! The load generator's TLS client: rustls (ring), trusting exactly one certificate.
//!
//! The benchmark's certificate is self-signed and generated at run time, so the client
//! pins it: the server's end-entity certificate must be byte-for-byte the one in the
//! file, and the handshake signature is verified with it (the server proves it holds the
//! key, as with any real client). No chain building, no name check: the work a real
//! client spends on its trust store is not the server's cost and would only slow the
//! load generator down. Loopback only.

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

/// A client config that trusts only the certificate in `pem_path`, TLS 1.2 and 1.3,
/// rustls's default cipher suites and key exchange (X25519 first), HTTP/1.1 by ALPN,
/// with or without session resumption (rustls's in-memory store, shared by every
/// connection made with this config).
pub fn client_config(pem_path: &str, resume: bool) -> Result<Arc<ClientConfig>, String> {
    let cert = first_cert(pem_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
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
    if !resume {
        config.resumption = Resumption::disabled();
    }
    Ok(Arc::new(config))
}
