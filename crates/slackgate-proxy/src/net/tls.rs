//! TLS termination with rustls, with certificates that reload without a restart.
//!
//! The listener uses a certificate resolver whose key pair sits behind an `ArcSwap`.
//! The proxy's listeners (inbound and egress) are plain TCP to pingora: the front runs the
//! handshake itself with [`server_config`] (session tickets, ALPN, the key-exchange group
//! by the gateway's preference: [`groups`]), and [`TlsConn`] carries the connection on as
//! pingora's `Stream`.
//! [`ReloadingCert::reload`] reads the files again and swaps the pair only when both
//! parse and belong together; a broken file leaves the serving certificate in place.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, ResolvesServerCert, ServerConfig, ServerTlsStream};
use rustls::crypto::aws_lc_rs;
use rustls::server::{Acceptor, ServerSessionMemoryCache};
use slackgate_policy::KeyExchange;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_rustls::LazyConfigAcceptor;

mod groups;

pub use groups::{install_process_default, provider};
use groups::{named_group, Preference};

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
    let signing_key = aws_lc_rs::default_provider()
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

/// How many TLS 1.2 sessions (by session id) the listener remembers for resumption;
/// TLS 1.3 and ticket-capable TLS 1.2 clients resume from stateless tickets instead.
const SESSION_CACHE: usize = 4096;

/// Why a TLS listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// rustls refused the protocol versions, or the ticket key could not be made.
    #[error("TLS listener setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The rustls settings of a TLS listener (inbound or egress): the reloading certificate,
/// TLS 1.2 and 1.3 with aws-lc-rs' default suites, the key-exchange `groups`
/// (`tls.key_exchange`) chosen by the gateway's order ([`groups`]), ALPN `http/1.1`,
/// stateless session tickets (a random key, rotated every 6 hours, never written
/// anywhere) and a bounded session-id cache. With pingora's defaults the only store
/// was a 256-entry cache of single-use TLS 1.3 tickets, so under many clients most
/// resumptions found their session evicted and fell back to a full handshake.
///
/// Every handshake is counted in `handshakes` (`slackgate_tls_handshakes_total`) under
/// `listener` and the group it agreed, or `failed`.
pub fn server_config(
    cert: Arc<ReloadingCert>,
    groups: &[KeyExchange],
    handshakes: &prometheus::IntCounterVec,
    listener: &str,
) -> Result<ServerTls, TlsSetupError> {
    let resolver = Arc::new(CertResolver(cert));
    let ticketer = aws_lc_rs::Ticketer::new()?;
    let sessions = ServerSessionMemoryCache::new(SESSION_CACHE);
    let preference = Preference::new(groups, |provider| {
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.ticketer = Arc::clone(&ticketer);
        config.session_storage = sessions.clone();
        Ok(config)
    })?;
    let counts = HandshakeCounts {
        by_group: groups
            .iter()
            .map(|&k| {
                let counter = handshakes.with_label_values(&[listener, k.as_str()]);
                (named_group(k), counter)
            })
            .collect(),
        failed: handshakes.with_label_values(&[listener, "failed"]),
    };
    Ok(ServerTls(Arc::new(ListenerTls { preference, counts })))
}

/// A TLS listener's settings, as [`server_config`] builds them.
#[derive(Debug, Clone)]
pub struct ServerTls(Arc<ListenerTls>);

#[derive(Debug)]
struct ListenerTls {
    preference: Preference,
    counts: HandshakeCounts,
}

/// The listener's `slackgate_tls_handshakes_total` counters, resolved once.
#[derive(Debug)]
struct HandshakeCounts {
    by_group: Vec<(rustls::NamedGroup, prometheus::IntCounter)>,
    failed: prometheus::IntCounter,
}

impl HandshakeCounts {
    fn agreed(&self, group: Option<rustls::NamedGroup>) {
        match self.by_group.iter().find(|(g, _)| Some(*g) == group) {
            Some((_, counter)) => counter.inc(),
            // Cannot happen (rustls agrees on a configured group or fails); counted as
            // failed rather than lost.
            None => self.failed.inc(),
        }
    }
}

/// The inbound TLS listeners of the proxy service: the front does their handshakes
/// itself (pingora's listener would build its own rustls settings, without tickets).
#[derive(Clone, Default)]
pub struct TlsListeners(Vec<(SocketAddr, ServerTls)>);

impl fmt::Debug for TlsListeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(a, _)| a))
            .finish()
    }
}

impl TlsListeners {
    /// Adds a listener address (as configured: `0.0.0.0`/`::` match every local address).
    pub fn add(&mut self, addr: SocketAddr, tls: ServerTls) {
        self.0.push((addr, tls));
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The settings of the listener a connection arrived on (by its local address).
    pub fn for_local(&self, local: SocketAddr) -> Option<&ServerTls> {
        self.0
            .iter()
            .find(|(a, _)| {
                a.port() == local.port() && (a.ip().is_unspecified() || a.ip() == local.ip())
            })
            .map(|(_, tls)| tls)
    }
}

/// Runs the server side of a TLS handshake on `stream` within `deadline`; `None` when it
/// fails or times out (nothing to answer: the client gets rustls's alert, if any).
pub async fn accept(
    tls: &ServerTls,
    stream: Stream,
    deadline: tokio::time::Instant,
) -> Option<Stream> {
    let handshake = async {
        // The ClientHello first: which groups it lists decides the config (`groups`).
        // A connection closed before a whole ClientHello (a TCP health check, a port
        // probe) began no handshake: `true` keeps it out of the failed ones.
        let start = LazyConfigAcceptor::new(Acceptor::default(), stream)
            .await
            .map_err(|e| (e.kind() == std::io::ErrorKind::UnexpectedEof, e))?;
        let hello = start.client_hello();
        let config = tls
            .0
            .preference
            .config_for(hello.named_groups(), hello.cipher_suites());
        start
            .into_stream(Arc::clone(config))
            .await
            .map_err(|e| (false, e))
    };
    let counts = &tls.0.counts;
    match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(tls)) => {
            let group = tls.get_ref().1.negotiated_key_exchange_group();
            counts.agreed(group.map(|g| g.name()));
            let alpn = match tls.get_ref().1.alpn_protocol() {
                Some(b"h2") => Some(ALPN::H2),
                Some(b"http/1.1") => Some(ALPN::H1),
                _ => None,
            };
            Some(Box::new(TlsConn { inner: tls, alpn }))
        }
        Ok(Err((closed_before_hello, e))) => {
            if !closed_before_hello {
                counts.failed.inc();
            }
            log::debug!("TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            counts.failed.inc();
            log::debug!("TLS handshake timed out");
            None
        }
    }
}

/// A server TLS connection as pingora's `Stream`.
struct TlsConn {
    inner: ServerTlsStream<Stream>,
    alpn: Option<ALPN>,
}

impl fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConn")
            .field("alpn", &self.alpn)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

crate::net::forward::forward_async_write!(TlsConn);

#[async_trait]
impl Shutdown for TlsConn {
    async fn shutdown(&mut self) {
        // close_notify, then the socket's own shutdown (which flushes its buffer).
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut self.inner).await;
    }
}

impl UniqueID for TlsConn {
    fn id(&self) -> UniqueIDType {
        self.inner.get_ref().0.id()
    }
}

impl Ssl for TlsConn {
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.alpn.clone()
    }
}

impl GetTimingDigest for TlsConn {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_ref().0.get_timing_digest()
    }
}

impl GetProxyDigest for TlsConn {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_ref().0.get_proxy_digest()
    }
}

impl GetSocketDigest for TlsConn {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_ref().0.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.get_mut().0.set_socket_digest(digest);
    }
}

// Peeking under TLS would see ciphertext: not supported (pingora's default).
impl Peek for TlsConn {}
