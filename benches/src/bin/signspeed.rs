//! How long the server's handshake signature takes with the TLS stack slackgate uses.
//!
//! `signspeed KEY.pem [KEY.pem ...]`: for each private key (PKCS#8, SEC1 or PKCS#1 PEM),
//! loads it as slackgate's TLS listener does (rustls with aws-lc-rs), lets it choose its scheme
//! from what the load generator's TLS 1.3 client offers (so the one the bench handshakes use:
//! RSA-PSS-SHA512 for RSA, ECDSA-P256-SHA256), and signs a 130-byte message (the size of a
//! TLS 1.3 CertificateVerify input) for about a second on one thread. Prints one `SIGN` line
//! per key:
//!
//! ```text
//! SIGN key=rsa.pem scheme=RSA_PSS_SHA512 signs=1187 us_per_sign=842.5 signs_per_s=1187
//! ```
//!
//! `openssl speed rsa2048` times the bare private-key operation, which is nearly all of a
//! signature's cost: hashing 130 bytes is well under a microsecond of the ~800.
//!
//! `compare.sh MODE=tls` runs it on the run's own certificates next to `openssl speed` (the
//! library nginx and HAProxy sign with), so the full-handshake rows can be read against the
//! cost of the one operation they are bound by.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use rustls::crypto::aws_lc_rs::sign::any_supported_type;
use rustls::pki_types::PrivateKeyDer;
use rustls::SignatureScheme;

/// What the load generator's client (rustls with aws-lc-rs) offers, less the schemes TLS 1.3
/// forbids in a CertificateVerify (PKCS#1 v1.5 and SHA-1), as a TLS 1.3 server filters them.
fn offered_in_tls13() -> Vec<SignatureScheme> {
    let mut offered = rustls::crypto::aws_lc_rs::default_provider()
        .signature_verification_algorithms
        .supported_schemes();
    offered.retain(|s| {
        !matches!(
            s,
            SignatureScheme::RSA_PKCS1_SHA1
                | SignatureScheme::RSA_PKCS1_SHA256
                | SignatureScheme::RSA_PKCS1_SHA384
                | SignatureScheme::RSA_PKCS1_SHA512
                | SignatureScheme::ECDSA_SHA1_Legacy
        )
    });
    offered
}

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    assert!(!paths.is_empty(), "usage: signspeed KEY.pem [KEY.pem ...]");
    let message = [0x20u8; 130];
    let offered = offered_in_tls13();
    for path in paths {
        let pem = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let der: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut pem.as_slice())
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .unwrap_or_else(|| panic!("{path}: no private key"));
        let key = any_supported_type(&der).unwrap_or_else(|e| panic!("{path}: {e}"));
        let signer = key
            .choose_scheme(&offered)
            .unwrap_or_else(|| panic!("{path}: no TLS 1.3 scheme for this key"));
        let scheme = signer.scheme();
        for _ in 0..20 {
            signer.sign(&message).expect("sign");
        }
        let started = Instant::now();
        let mut signs = 0u64;
        while started.elapsed() < Duration::from_secs(1) {
            std::hint::black_box(signer.sign(std::hint::black_box(&message)).expect("sign"));
            signs += 1;
        }
        let secs = started.elapsed().as_secs_f64();
        let name = std::path::Path::new(&path)
            .file_name()
            .map_or(path.clone(), |n| n.to_string_lossy().into_owned());
        println!(
            "SIGN key={name} scheme={scheme:?} signs={signs} us_per_sign={:.1} signs_per_s={:.0}",
            secs * 1e6 / signs as f64,
            signs as f64 / secs
        );
    }
}
