//! The leg to Slack: TLS (rustls, system roots plus `egress.ca_file`) over pooled
//! keep-alive connections, one timeout per call.
//!
//! A call is sent at most once: a pooled connection that turns out dead before one byte
//! left is replaced by a fresh one, anything later is a failure (`upstream_error`), never
//! a second send: `chat.postMessage` twice is two messages.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use slackgate_policy::{KeyExchange, SlackApi};

use crate::net::client::{Conn, ExchangeError, Response};
use crate::net::pool::IdlePool;

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
///
/// Each text is the whole message a log line or `/status` shows (they print the top level
/// only), so a variant that wraps an error repeats its text and also gives it as its
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallFailure {
    /// Slack did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host as configured.
        host: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The host name resolved to no address.
    #[error("{0} resolved to no address")]
    NoAddress(String),
    /// Connecting or the TLS handshake failed (on the last address tried).
    #[error("connect to {addr}: {source}")]
    Connect {
        /// The address tried last.
        addr: SocketAddr,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The exchange on a connection failed.
    #[error("{0}")]
    Exchange(#[source] ExchangeError),
    /// The gateway did not send the call, or does not relay its answer, for the reason
    /// given (a fixed text).
    #[error("{0}")]
    Withheld(&'static str),
    /// No client could be built for the host of a held URL (secret custody).
    #[error("a client for a held URL's host: {0}")]
    Client(#[source] SlackClientError),
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
    idle: IdlePool,
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
    /// system roots and `ca_file`, with `timeout` per call, offering the key-exchange
    /// groups `key_exchange` (`tls.key_exchange`) in that order.
    pub(crate) fn new(
        api: &SlackApi,
        ca_file: Option<&std::path::Path>,
        timeout: Duration,
        key_exchange: &[KeyExchange],
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
            let provider = crate::net::tls::provider(key_exchange);
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
            idle: IdlePool::new(MAX_IDLE),
            timeout,
        })
    }

    /// A client with the same settings (base, trust, timeout) and a pool of its own. The
    /// parts that call Slack (the egress door, token rotation, the group reads) run on
    /// runtimes of their own, and a connection belongs to the runtime that opened it (its
    /// I/O driver wakes whoever waits on it), so each part keeps its own connections.
    pub(crate) fn fresh(&self) -> Self {
        Self {
            api: self.api.clone(),
            tls: self.tls.clone(),
            server_name: self.server_name.clone(),
            idle: IdlePool::new(MAX_IDLE),
            timeout: self.timeout,
        }
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

    async fn connect(&self) -> Result<Conn, CallFailure> {
        let bare = self.api.host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, self.api.port))
            .await
            .map_err(|source| CallFailure::Resolve {
                host: self.api.host.clone(),
                source,
            })?
            .collect();
        let mut last = CallFailure::NoAddress(self.api.host.clone());
        for addr in addrs {
            let conn = match &self.tls {
                Some(tls) => Conn::connect_tls(addr, tls, self.server_name.clone()).await,
                None => Conn::connect(addr).await,
            };
            match conn {
                Ok(c) => return Ok(c),
                Err(source) => last = CallFailure::Connect { addr, source },
            }
        }
        Err(last)
    }

    fn checkout(&self) -> Option<Conn> {
        self.idle.checkout(MAX_IDLE_AGE, Instant::now())
    }

    fn checkin(&self, conn: Conn) {
        self.idle.checkin(conn, Instant::now());
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
            Ok(r) => r,
            Err(_) => Err(CallFailure::Timeout(self.timeout)),
        }
    }

    async fn call_once(
        &self,
        head: &[u8],
        body: &[u8],
        is_head: bool,
    ) -> Result<Response, CallFailure> {
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
                Err(e) => return Err(CallFailure::Exchange(e)),
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
            Err(e) => Err(CallFailure::Exchange(e)),
        }
    }
}

/// How long to wait after Slack's 429 without a usable `Retry-After`: a minute, Slack's
/// own advice for the Web API's per-minute tiers.
pub(crate) const DEFAULT_RETRY_AFTER_SECS: u32 = 60;
/// The longest wait a `Retry-After` is taken for: an hour. Slack asks for seconds to a
/// minute; a larger value holds a bot's method, a token refresh or a group read no
/// longer than this (Slack answers 429 again if it still means it).
pub(crate) const MAX_RETRY_AFTER_SECS: u32 = 3600;

/// The one reader of Slack's `Retry-After` (the egress door's calls and webhook posts,
/// token rotation, the group reads): the whole seconds `value` says, at most
/// [`MAX_RETRY_AFTER_SECS`]; [`DEFAULT_RETRY_AFTER_SECS`] when there is none or it is not
/// a number of seconds. A number of seconds is one or more ASCII digits (RFC 9110's
/// `delay-seconds`), with spaces or tabs around them; a sign, a fraction or an HTTP date
/// is not one.
pub(crate) fn retry_after(value: Option<&[u8]>) -> u32 {
    let Some(digits) = value.map(<[u8]>::trim_ascii) else {
        return DEFAULT_RETRY_AFTER_SECS;
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return DEFAULT_RETRY_AFTER_SECS;
    }
    // Any run of digits is a number of seconds; past the cap it is the cap.
    digits
        .iter()
        .try_fold(0u32, |n, d| {
            let n = n * 10 + u32::from(d - b'0');
            (n <= MAX_RETRY_AFTER_SECS).then_some(n)
        })
        .unwrap_or(MAX_RETRY_AFTER_SECS)
}

/// Slack's `Retry-After` on `resp` (its first), read by [`retry_after`].
pub(crate) fn retry_after_of(resp: &Response) -> u32 {
    retry_after(resp.header(b"retry-after"))
}

/// An error code as Slack writes them (`channel_not_found`), else not recorded.
pub(crate) fn error_code(s: &str) -> Option<&str> {
    (!s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    .then_some(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// A plain-HTTP client (a loopback stand-in) for `addr`.
    fn client_for(addr: SocketAddr) -> SlackClient {
        let api = SlackApi::parse(&format!("http://{addr}/api/")).unwrap();
        SlackClient::new(
            &api,
            None,
            Duration::from_secs(5),
            slackgate_policy::DEFAULT_KEY_EXCHANGE,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_failed_exchange_is_the_source_of_the_call_failure() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Slack's side reads the request, then closes without an answer.
        let server = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
        });
        let client = client_for(addr);
        let head = b"POST /api/auth.test HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
        let failure = client.call(head, b"", false).await.unwrap_err();
        server.await.unwrap();
        assert_eq!(failure.to_string(), "connection closed before a response");
        let source = failure.source().unwrap();
        assert!(
            matches!(
                source.downcast_ref::<ExchangeError>(),
                Some(ExchangeError::Closed("before a response"))
            ),
            "{source:?}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_address_and_keeps_the_io_error() {
        // A port nobody listens on: bound, then released.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let failure = client_for(addr).call(b"", b"", false).await.unwrap_err();
        assert!(matches!(failure, CallFailure::Connect { addr: a, .. } if a == addr));
        assert!(failure
            .to_string()
            .starts_with(&format!("connect to {addr}: ")));
        assert!(failure.source().unwrap().is::<std::io::Error>());
    }

    #[test]
    fn retry_after_is_whole_seconds_capped_else_a_minute() {
        let read = |v: &str| retry_after(Some(v.as_bytes()));
        for (v, secs) in [
            ("7", 7),
            (" 7 ", 7),
            ("\t30", 30),
            ("0", 0),
            ("007", 7),
            ("3600", 3600),
            ("3601", MAX_RETRY_AFTER_SECS),
            ("4294967296", MAX_RETRY_AFTER_SECS),
            ("99999999999999999999999999", MAX_RETRY_AFTER_SECS),
        ] {
            assert_eq!(read(v), secs, "{v:?}");
        }
        for v in [
            "",
            " ",
            "soon",
            "+7",
            "-1",
            "7.5",
            "7s",
            "1e3",
            "0x10",
            "Wed, 21 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(read(v), DEFAULT_RETRY_AFTER_SECS, "{v:?}");
        }
        assert_eq!(retry_after(None), DEFAULT_RETRY_AFTER_SECS);
        assert_eq!(retry_after(Some(b"\xff7")), DEFAULT_RETRY_AFTER_SECS);
    }

    #[test]
    fn error_codes_only() {
        assert_eq!(error_code("channel_not_found"), Some("channel_not_found"));
        assert_eq!(error_code("Some message text"), None);
        assert_eq!(error_code(""), None);
    }
}
