//! Certificates: a test CA and the server certificate it signs.

use std::path::PathBuf;
use std::sync::Arc;

/// A test CA and a server certificate it signed for `127.0.0.1` and `localhost`.
pub(crate) struct TestCa {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) pem_file: PathBuf,
    pub(crate) der: Vec<u8>,
    pub(crate) leaf_der: Vec<u8>,
    pub(crate) leaf_key_der: Vec<u8>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("pem_file", &self.pem_file)
            .finish_non_exhaustive()
    }
}

impl TestCa {
    pub(crate) fn generate() -> Self {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "slackgate test CA (Slack stand-in)",
        );
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let mut leaf_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("leaf params");
        leaf_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "slack.com stand-in");
        leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf = leaf_params
            .signed_by(&leaf_key, &issuer)
            .expect("leaf cert");

        let dir = tempfile::tempdir().expect("temp dir");
        let pem_file = dir.path().join("slack-standin-ca.pem");
        std::fs::write(&pem_file, ca_cert.pem()).expect("write ca pem");
        Self {
            _dir: dir,
            pem_file,
            der: ca_cert.der().to_vec(),
            leaf_der: leaf.der().to_vec(),
            leaf_key_der: leaf_key.serialize_der(),
        }
    }

    /// The stand-in's TLS settings: aws-lc-rs with the key-exchange groups `groups` in
    /// that order (`None`: the hybrid X25519MLKEM768 first, then X25519, P-256, P-384,
    /// as a server that offers post-quantum key exchange answers).
    pub(crate) fn server_config(
        &self,
        groups: Option<&[&'static dyn rustls::crypto::SupportedKxGroup]>,
    ) -> rustls::ServerConfig {
        use rustls::crypto::aws_lc_rs::{self, kx_group};
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let default = [
            kx_group::X25519MLKEM768,
            kx_group::X25519,
            kx_group::SECP256R1,
            kx_group::SECP384R1,
        ];
        let groups = groups.unwrap_or(&default);
        let provider = Arc::new(rustls::crypto::CryptoProvider {
            kx_groups: groups.to_vec(),
            ..aws_lc_rs::default_provider()
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("tls versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![
                    CertificateDer::from(self.leaf_der.clone()),
                    CertificateDer::from(self.der.clone()),
                ],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key_der.clone())),
            )
            .expect("server cert");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }
}
