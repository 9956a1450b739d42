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
