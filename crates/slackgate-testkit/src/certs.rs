//! Temporary TLS certificates for `localhost` / `127.0.0.1`.

use std::path::PathBuf;

/// A self-signed certificate and key written to a temporary directory.
#[derive(Debug)]
pub struct TestCerts {
    _dir: tempfile::TempDir,
    /// PEM certificate path.
    pub cert: PathBuf,
    /// PEM key path.
    pub key: PathBuf,
    /// The certificate in DER, for the client's trust store.
    pub der: Vec<u8>,
}

impl TestCerts {
    /// Generates a fresh pair.
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, der) = write_pair(&dir.path().join("tls"));
        Self {
            _dir: dir,
            cert,
            key,
            der,
        }
    }

    /// Replaces the files with a newly generated pair; returns its DER.
    pub fn rotate(&mut self) -> Vec<u8> {
        let stem = self.cert.with_extension("");
        let (_, _, der) = write_pair(&stem);
        self.der = der.clone();
        der
    }
}

fn write_pair(stem: &std::path::Path) -> (PathBuf, PathBuf, Vec<u8>) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = stem.with_extension("crt");
    let key = stem.with_extension("key");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key, ck.cert.der().to_vec())
}

/// A test CA and a server certificate it signed for `localhost` / `127.0.0.1`: for servers
/// that are checked against a CA file (Redis over TLS), not against themselves.
#[derive(Debug)]
pub struct TestCa {
    _dir: tempfile::TempDir,
    /// The CA's PEM certificate: what a client trusts.
    pub ca: PathBuf,
    /// The server's PEM certificate, signed by the CA.
    pub cert: PathBuf,
    /// The server's PEM key.
    pub key: PathBuf,
}

impl TestCa {
    /// Generates a fresh CA and server pair.
    pub fn generate() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "slackgate test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("ca.crt"), ca.pem()).unwrap();
        std::fs::write(path("server.crt"), server.pem()).unwrap();
        std::fs::write(path("server.key"), server_key.serialize_pem()).unwrap();
        Self {
            ca: path("ca.crt"),
            cert: path("server.crt"),
            key: path("server.key"),
            _dir: dir,
        }
    }
}
