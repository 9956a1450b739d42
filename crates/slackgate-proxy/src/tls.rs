//! TLS termination with rustls, with certificates that reload without a restart.
//!
//! The listener uses a certificate resolver whose key pair sits behind an `ArcSwap`.
//! [`ReloadingCert::reload`] reads the files again and swaps the pair only when both
//! parse and belong together; a broken file leaves the serving certificate in place.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};

/// Why a certificate pair could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The files are missing, unreadable or hold no certificate/key.
    #[error("{cert}, {key}: cannot load a PEM certificate chain and private key; check both files exist and are PEM")]
    Unreadable {
        /// The certificate chain path.
        cert: PathBuf,
        /// The private key path.
        key: PathBuf,
    },
    /// The key type is not supported or the key does not match.
    #[error("{key}: unsupported or invalid private key ({detail}); use an RSA, ECDSA or Ed25519 PEM key")]
    BadKey {
        /// The private key path.
        key: PathBuf,
        /// What rustls said.
        detail: String,
    },
}

/// A certificate and key pair read from files, swapped in place on reload.
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    /// Loads the pair once; fails when it cannot be used.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, CertError> {
        let key = read_pair(cert_path, key_path)?;
        Ok(Self {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            current: ArcSwap::from_pointee(key),
        })
    }

    /// Reads the files again and swaps the pair in; on error the old pair keeps serving.
    pub fn reload(&self) -> Result<(), CertError> {
        let key = read_pair(&self.cert_path, &self.key_path)?;
        self.current.store(Arc::new(key));
        Ok(())
    }

    /// The certificate and key files.
    pub fn paths(&self) -> (&Path, &Path) {
        (&self.cert_path, &self.key_path)
    }
}

fn read_pair(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, CertError> {
    pingora::tls::install_default_crypto_provider();
    let unreadable = || CertError::Unreadable {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
    };
    let (Some(cert), Some(key)) = (cert_path.to_str(), key_path.to_str()) else {
        return Err(unreadable());
    };
    let (certs, key) = match pingora::tls::load_certs_and_key_files(cert, key) {
        Ok(Some(pair)) => pair,
        _ => return Err(unreadable()),
    };
    if certs.is_empty() {
        return Err(unreadable());
    }
    let Some(provider) = CryptoProvider::get_default() else {
        return Err(CertError::BadKey {
            key: key_path.to_path_buf(),
            detail: "no crypto provider installed".into(),
        });
    };
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| CertError::BadKey {
                key: key_path.to_path_buf(),
                detail: e.to_string(),
            })?;
    let certified = CertifiedKey::new(certs, signing_key);
    if let Err(e) = certified.keys_match() {
        return Err(CertError::BadKey {
            key: key_path.to_path_buf(),
            detail: e.to_string(),
        });
    }
    Ok(certified)
}

/// Resolves every handshake to the current pair.
#[derive(Debug, Clone)]
pub struct CertResolver(pub Arc<ReloadingCert>);

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load_full())
    }
}
