//! The leg to Slack: TLS (rustls, system roots plus `egress.ca_file`) over pooled
//! keep-alive connections, one timeout per call.
//!
//! A call is sent at most once: a pooled connection that turns out dead before one byte
//! left is replaced by a fresh one, anything later is a failure (`upstream_error`), never
//! a second send: `chat.postMessage` twice is two messages.

use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use slackgate_policy::SlackApi;

use crate::net::client::{Conn, ExchangeError, Response};

/// Idle connections kept per gateway.
const MAX_IDLE: usize = 64;
/// An idle connection older than this is closed rather than used (Slack's edge closes
/// idle keep-alive connections after about a minute).
const MAX_IDLE_AGE: Duration = Duration::from_secs(30);
/// The largest answer relayed (conversations.history pages are well under it).
pub(crate) const MAX_ANSWER: usize = 32 * 1024 * 1024;

/// Why the Slack client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SlackClientError {
    /// `egress.ca_file` cannot be read or holds no certificate.
    #[error("egress.ca_file {0}: cannot read a PEM certificate from it; check the path and that it holds a CA certificate")]
    CaFile(std::path::PathBuf),
    /// No trust root at all.
    #[error("no CA certificates to trust for egress.slack_api and egress.hooks_base: the system has none and egress.ca_file is not set")]
    NoRoots,
    /// The host cannot be a TLS server name.
    #[error("egress host {0} (egress.slack_api or egress.hooks_base) cannot be used as a TLS server name")]
    ServerName(String),
    /// rustls refused the configuration.
    #[error("TLS client configuration: {0}")]
    Tls(String),
}

/// Why a call to Slack failed. The texts never hold request or answer bytes.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallFailure {
    /// Slack did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Resolving, connecting, TLS or the exchange failed.
    #[error("{0}")]
    Failed(String),
}

/// What a request head the gateway writes says besides its host and length
/// ([`SlackClient::head`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutHead<'a> {
    /// `GET`, `POST`, ...
    pub(crate) http_method: &'a [u8],
    /// The request target, in parts written one after the other.
    pub(crate) target: &'a [&'a [u8]],
    /// The token for `Authorization: Bearer`, if one travels.
    pub(crate) token: Option<&'a str>,
    /// `Content-Type`, if any (already checked as a clean header value).
    pub(crate) content_type: Option<&'a [u8]>,
    /// `User-Agent`, if any (already checked as a clean header value).
    pub(crate) user_agent: Option<&'a [u8]>,
}

/// The client for `egress.slack_api`.
pub(crate) struct SlackClient {
    api: SlackApi,
    tls: Option<tokio_rustls::TlsConnector>,
    server_name: ServerName<'static>,
    idle: Mutex<Vec<Conn>>,
    timeout: Duration,
}

impl std::fmt::Debug for SlackClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackClient")
            .field("api", &self.api)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn trust_roots(
    ca_file: Option<&std::path::Path>,
) -> Result<rustls::RootCertStore, SlackClientError> {
    let mut roots = rustls::RootCertStore::empty();
    // The system's roots; unreadable ones are skipped (a minimal container has none).
    if let Ok(certs) = rustls_native_certs::load_native_certs() {
        for c in certs {
            let _ = roots.add(c);
        }
    }
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|_| SlackClientError::CaFile(path.to_path_buf()))?;
        let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
            .filter_map(Result::ok)
            .collect();
        if certs.is_empty() {
            return Err(SlackClientError::CaFile(path.to_path_buf()));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|_| SlackClientError::CaFile(path.to_path_buf()))?;
        }
    }
    if roots.is_empty() {
        return Err(SlackClientError::NoRoots);
    }
    Ok(roots)
}

impl SlackClient {
    /// A client for `api` (`egress.slack_api` or `egress.hooks_base`), trusting the
    /// system roots and `ca_file`, with `timeout` per call.
    pub(crate) fn new(
        api: &SlackApi,
        ca_file: Option<&std::path::Path>,
        timeout: Duration,
    ) -> Result<Self, SlackClientError> {
        let api = api.clone();
        let bare = api
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let server_name = ServerName::try_from(bare.clone())
            .map_err(|_| SlackClientError::ServerName(api.host.clone()))?;
        let tls = if api.tls {
            let roots = trust_roots(ca_file)?;
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| SlackClientError::Tls(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Self {
            api,
            tls,
            server_name,
            idle: Mutex::new(Vec::new()),
            timeout,
        })
    }

    /// The API base as split from the config.
    pub(crate) fn api(&self) -> &SlackApi {
        &self.api
    }

    /// The TLS connector (system roots plus `egress.ca_file`), when the API is https:
    /// Socket Mode's WebSockets trust exactly what the API calls trust.
    pub(crate) fn tls_connector(&self) -> Option<&tokio_rustls::TlsConnector> {
        self.tls.as_ref()
    }

    /// The head of a request the gateway writes itself to this client's host: the
    /// request line (`target` is the concatenated path and query), `Host`, then
    /// `Authorization: Bearer`, `Content-Type` and `User-Agent` when given, and
    /// `Content-Length`. Nothing else travels.
    pub(crate) fn head(&self, h: &OutHead<'_>, body_len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(h.http_method);
        out.push(b' ');
        for part in h.target {
            out.extend_from_slice(part);
        }
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(self.api.authority().as_bytes());
        if let Some(token) = h.token {
            out.extend_from_slice(b"\r\nAuthorization: Bearer ");
            out.extend_from_slice(token.as_bytes());
        }
        if let Some(ct) = h.content_type {
            out.extend_from_slice(b"\r\nContent-Type: ");
            out.extend_from_slice(ct);
        }
        if let Some(ua) = h.user_agent {
            out.extend_from_slice(b"\r\nUser-Agent: ");
            out.extend_from_slice(ua);
        }
        out.extend_from_slice(b"\r\nContent-Length: ");
        out.extend_from_slice(body_len.to_string().as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out
    }

    async fn connect(&self) -> Result<Conn, String> {
        let bare = self.api.host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, self.api.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", self.api.host))?
            .collect();
        let mut last = format!("{} resolved to no address", self.api.host);
        for addr in addrs {
            let conn = match &self.tls {
                Some(tls) => Conn::connect_tls(addr, tls, self.server_name.clone()).await,
                None => Conn::connect(addr).await,
            };
            match conn {
                Ok(c) => return Ok(c),
                Err(e) => last = format!("connect to {addr}: {e}"),
            }
        }
        Err(last)
    }

    fn checkout(&self) -> Option<Conn> {
        let now = Instant::now();
        let mut idle = self.idle.lock();
        while let Some(c) = idle.pop() {
            if !c.idle_longer_than(MAX_IDLE_AGE, now) && c.is_clean() {
                return Some(c);
            }
        }
        None
    }

    fn checkin(&self, mut conn: Conn) {
        conn.mark_idle(Instant::now());
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// Sends one request (`head` and `body`) and reads Slack's whole answer, within the
    /// timeout.
    pub(crate) async fn call(
        &self,
        head: &[u8],
        body: &[u8],
        is_head: bool,
    ) -> Result<Response, CallFailure> {
        match tokio::time::timeout(self.timeout, self.call_once(head, body, is_head)).await {
            Ok(r) => r.map_err(CallFailure::Failed),
            Err(_) => Err(CallFailure::Timeout(self.timeout)),
        }
    }

    async fn call_once(&self, head: &[u8], body: &[u8], is_head: bool) -> Result<Response, String> {
        if let Some(mut conn) = self.checkout() {
            match conn.exchange(head, body, is_head, MAX_ANSWER).await {
                Ok((resp, reusable)) => {
                    if reusable {
                        self.checkin(conn);
                    }
                    return Ok(resp);
                }
                // Not one byte left on the pooled connection: a fresh one may carry it.
                Err(ExchangeError::NotSent(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        let mut conn = self.connect().await?;
        match conn.exchange(head, body, is_head, MAX_ANSWER).await {
            Ok((resp, reusable)) => {
                if reusable {
                    self.checkin(conn);
                }
                Ok(resp)
            }
            Err(e) => Err(e.to_string()),
        }
    }
}
