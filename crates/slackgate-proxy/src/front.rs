//! The front door: every HTTP/1 request head is read and judged here, then served on a
//! fast path or handed to pingora.
//!
//! Every connection (after pingora's listener did the TLS handshake) starts here. The
//! request head is read within `limits.max_head_bytes` and `limits.head_read_timeout`
//! (a deadline for the whole head, not reset by reads) and judged by `http1.rs`, the one
//! definition of a valid request for both paths; a refused head is answered here
//! (400/431/501, or 408 when the deadline passes), recorded, and the connection closed.
//! A plain request (`POST`, HTTP/1.1, origin-form, `Content-Length` body, no
//! `Expect`) runs the pipeline right here: body read by its length, guard, upstream, one
//! write of the answer. Anything else the checks accept (chunked bodies, `Expect:
//! 100-continue`, other methods, HTTP/1.0) is handed, one request at a time and with the
//! bytes already read, to pingora's HTTP session and proxy, which run the same
//! `Gateway::handle`; the connection comes back here for its next request, so every
//! head on it is judged by the same rules. HTTP/2 (by ALPN) goes to pingora whole.
//! The split only saves pingora's per-request header maps, session objects and response
//! serialization on the hot path (about a tenth of the CPU per request, see
//! `benches/README.md`).

use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Shutdown, Stream, ALPN};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use slackgate_guard::Reason;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::downstream::{answer_body, request_head, BodyError, Downstream, Forwarded};
use crate::gateway::Gateway;
use crate::handover::{hand_over, unwrap_prefixed};
use crate::http1::{self, Framing, Parsed, RequestHead};
use crate::tls::TlsListeners;
use crate::wire::{push_decimal, push_header};

/// How long a keep-alive connection may wait for the first byte of its next request.
pub(crate) const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// The longest a keep-alive connection stays open, idle, once the server drains.
const DRAIN_IDLE_MAX: Duration = Duration::from_secs(5);
/// After a refusal, how long and how much the front keeps reading (and discarding) what
/// the client still sends, so that closing does not reset the connection under the
/// answer before the client read it (a "lingering close", as nginx does).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// The service's app: the head checks and the fast path in front of pingora's proxy.
pub struct Front {
    gateway: Gateway,
    proxy: Arc<HttpProxy<Gateway>>,
    fast_path: bool,
    tls: TlsListeners,
}

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front").finish_non_exhaustive()
    }
}

impl Front {
    /// A front over `gateway` that hands other requests to `proxy` (built on the same
    /// shared state); with `fast_path` off, every request goes to `proxy`. Connections
    /// that arrive on one of the `tls` listeners get their handshake here first.
    pub fn new(
        gateway: Gateway,
        proxy: Arc<HttpProxy<Gateway>>,
        fast_path: bool,
        tls: TlsListeners,
    ) -> Self {
        Self {
            gateway,
            proxy,
            fast_path,
            tls,
        }
    }

    /// The connection after its TLS handshake, when it arrived on a TLS listener; the
    /// handshake counts against the first head's deadline (`limits.head_read_timeout`
    /// from the accept), so a client cannot hold a connection longer by handshaking
    /// slowly. `None`: the handshake failed or timed out.
    async fn terminate_tls(&self, stream: Stream, accepted: Instant) -> Option<Stream> {
        if self.tls.is_empty() {
            return Some(stream);
        }
        let local = stream
            .get_socket_digest()
            .and_then(|d| d.local_addr().and_then(|a| a.as_inet()).copied());
        let Some(acceptor) = local.and_then(|l| self.tls.for_local(l)) else {
            return Some(stream);
        };
        let deadline = accepted + self.gateway.head_limits().timeout;
        crate::tls::accept(acceptor, stream, deadline).await
    }
}

/// Why no head could be had.
enum NoHead {
    /// The connection closed, failed, stayed idle, or the server is shutting down:
    /// nothing to answer.
    Gone,
    /// A head was refused (or timed out): answer with this reason and close.
    Refused(Reason),
}

#[async_trait]
impl ServerApp for Front {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let accepted = Instant::now();
        let stream = self.terminate_tls(stream, accepted).await?;
        if stream.selected_alpn_proto() == Some(ALPN::H2) {
            return ServerApp::process_new(&self.proxy, stream, shutdown).await;
        }
        let mut buf = BytesMut::with_capacity(4096);
        let mut stream = unwrap_prefixed(stream, &mut buf)?;
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()))
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let mut shutdown_rx = shutdown.clone();
        // The first head's deadline runs from the accept (the handshake counts).
        let mut first = Some(accepted);
        loop {
            let limits = self.gateway.head_limits();
            let head =
                match read_head(&mut stream, &mut buf, &limits, first, &mut shutdown_rx).await {
                    Ok(head) => head,
                    Err(NoHead::Gone) => return None,
                    Err(NoHead::Refused(reason)) => {
                        self.refuse(&mut stream, peer, reason).await;
                        return None;
                    }
                };
            first = None;
            if !(self.fast_path && head.is_simple(&buf)) {
                // pingora answers this one request; the connection comes back for the next.
                // A drain closes it after this request, as on the fast path.
                let draining = *shutdown_rx.borrow();
                let mut head = head;
                head.keep_alive &= !draining;
                let prefixed = hand_over(stream, &mut buf, head);
                let mut session = ServerSession::new_http1(prefixed);
                session.set_keepalive((!draining).then_some(KEEPALIVE_IDLE.as_secs()));
                let reused =
                    HttpServerApp::process_new_http(&self.proxy, session, shutdown).await?;
                let (returned, _settings) = reused.consume();
                stream = unwrap_prefixed(returned, &mut buf)?;
                continue;
            }
            let head_bytes = buf.split_to(head.len).freeze();
            let mut down = FastDownstream {
                stream: &mut stream,
                buf: &mut buf,
                head_bytes,
                head,
                peer,
                close: *shutdown_rx.borrow(),
            };
            let mut ctx = self.gateway.context();
            let result = self.gateway.handle(&mut down, &mut ctx).await;
            let close = down.close || !down.head.keep_alive;
            self.gateway.record(&mut ctx);
            if result.is_err() || close {
                Shutdown::shutdown(stream.as_mut()).await;
                return None;
            }
        }
    }

    async fn cleanup(&self) {
        ServerApp::cleanup(self.proxy.as_ref()).await;
    }
}

impl Front {
    /// Answers a refused head (`Connection: close`), records it, and closes gently.
    async fn refuse(&self, stream: &mut Stream, peer: IpAddr, reason: Reason) {
        let body = answer_body(reason);
        let headers: [(&[u8], &[u8]); 1] = [(b"Content-Type", b"application/json")];
        if let Ok(out) = answer_bytes(reason.status(), None, &headers, &body, true) {
            let _ = stream.write_all(&out).await;
            let _ = stream.flush().await;
        }
        self.gateway.record_refusal(peer, reason);
        linger(stream).await;
    }
}

/// Reads until `buf` starts with a complete head the checks accept, within the limits.
/// Absolute-form targets are rewritten to origin-form in `buf`. `first`: the instant the
/// connection was accepted, for its first request.
async fn read_head(
    stream: &mut Stream,
    buf: &mut BytesMut,
    limits: &HeadLimits,
    first: Option<Instant>,
    shutdown: &mut ShutdownWatch,
) -> Result<RequestHead, NoHead> {
    // A connection's first request has its whole head deadline from the accept; a later
    // one waits up to KEEPALIVE_IDLE for its first byte, then has the deadline from there.
    let now = Instant::now();
    let mut deadline = match first {
        Some(accepted) => Some(accepted + limits.timeout),
        None if !buf.is_empty() => Some(now + limits.timeout),
        None => None,
    };
    let idle = tokio::time::sleep_until(deadline.unwrap_or(now + KEEPALIVE_IDLE));
    tokio::pin!(idle);
    // A head can only end, or go wrong, at a line end: parsing again only when a read
    // brought a LF (or filled the window) bounds the work on a dribbled head to one parse
    // per line, and a head has at most `MAX_HEADERS` + 1 lines before it is refused.
    let mut need_parse = true;
    let mut draining = false;
    loop {
        let parsed = if need_parse || buf.len() >= limits.max_bytes {
            http1::parse(buf, limits.max_bytes)
        } else {
            Parsed::Partial
        };
        match parsed {
            Parsed::Complete(head) => {
                let Some(rewritten) = http1::to_origin_form(buf, &head) else {
                    return Ok(head);
                };
                *buf = BytesMut::from(&rewritten[..]);
                return match http1::parse(buf, limits.max_bytes) {
                    Parsed::Complete(h) if h.origin_form.is_none() => Ok(h),
                    Parsed::Refused(r) => Err(NoHead::Refused(r.reason)),
                    _ => Err(NoHead::Refused(Reason::BadRequest)),
                };
            }
            Parsed::Refused(r) => {
                log::debug!("request head refused: {}", r.detail);
                return Err(NoHead::Refused(r.reason));
            }
            Parsed::Partial => {}
        }
        if buf.is_empty() && *shutdown.borrow() && !draining {
            // Draining (an upgrade or SIGTERM): closing an idle keep-alive connection
            // now would lose a request its client may be writing at this instant. It
            // stays open a little longer; a request on it is served with
            // `Connection: close`, and only one that stays idle is closed.
            draining = true;
            let d = Instant::now() + limits.drain_idle;
            if d < idle.deadline() {
                idle.as_mut().reset(d);
            }
        }
        // Never buffer past the limit: `parse` refuses a full window that is still partial.
        let room = limits.max_bytes.saturating_sub(buf.len()).max(1);
        buf.reserve(room.min(8192));
        let was_empty = buf.is_empty();
        let before = buf.len();
        let mut window = (&mut *buf).limit(room);
        let read = tokio::select! {
            biased;
            r = stream.read_buf(&mut window) => Some(r),
            () = &mut idle => None,
            changed = shutdown.changed(), if was_empty && !draining => {
                if changed.is_err() {
                    // The server is gone: nobody will say when to stop.
                    return Err(NoHead::Gone);
                }
                continue;
            }
        };
        match read {
            Some(Ok(n)) if n > 0 => {
                need_parse = buf[before..].contains(&b'\n');
                if was_empty && deadline.is_none() {
                    let d = Instant::now() + limits.timeout;
                    deadline = Some(d);
                    idle.as_mut().reset(d);
                }
            }
            // Closed or failed: nothing to answer.
            Some(_) => return Err(NoHead::Gone),
            None if buf.is_empty() => return Err(NoHead::Gone),
            None => return Err(NoHead::Refused(Reason::HeadTimeout)),
        }
    }
}

/// Reads and discards what the client still sends, within bounds, then lets it go.
async fn linger(stream: &mut Stream) {
    let mut scratch = [0u8; 4096];
    let mut left = LINGER_BYTES;
    let until = Instant::now() + LINGER_TIME;
    while left > 0 {
        match tokio::time::timeout_at(until, stream.read(&mut scratch)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => break,
        }
    }
    Shutdown::shutdown(stream.as_mut()).await;
}

/// The head limits in force.
pub(crate) struct HeadLimits {
    pub max_bytes: usize,
    pub timeout: Duration,
    /// How long an idle keep-alive connection stays open once the server drains: half
    /// of `limits.shutdown_grace`, at most [`DRAIN_IDLE_MAX`].
    pub drain_idle: Duration,
}

impl HeadLimits {
    pub(crate) fn drain_idle_for(shutdown_grace: Duration) -> Duration {
        (shutdown_grace / 2).min(DRAIN_IDLE_MAX)
    }
}

/// One fast-path request on its connection.
struct FastDownstream<'a> {
    stream: &'a mut Stream,
    /// Bytes read after the head (body, then possibly pipelined requests).
    buf: &'a mut BytesMut,
    head_bytes: Bytes,
    head: RequestHead,
    peer: IpAddr,
    close: bool,
}

impl FastDownstream<'_> {
    fn bytes(&self, r: &Range<usize>) -> &[u8] {
        self.head_bytes.get(r.clone()).unwrap_or_default()
    }

    fn str(&self, r: &Range<usize>) -> &str {
        std::str::from_utf8(self.bytes(r)).unwrap_or_default()
    }

    fn named<'s, 'n>(&'s self, name: &'n str) -> impl Iterator<Item = &'s [u8]> + use<'s, 'n> {
        let bytes = &self.head_bytes;
        let at = move |r: &Range<usize>| -> &'s [u8] { bytes.get(r.clone()).unwrap_or_default() };
        self.head
            .headers
            .iter()
            .filter(move |(n, _)| at(n).eq_ignore_ascii_case(name.as_bytes()))
            .map(move |(_, v)| at(v))
    }

    fn declared(&self) -> u64 {
        match self.head.framing {
            Framing::Length(n) => n,
            // The fast path serves Content-Length bodies only.
            Framing::Chunked => u64::MAX,
        }
    }
}

#[async_trait]
impl Downstream for FastDownstream<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.named(name).next()
    }

    fn header_all(&self, name: &str) -> Vec<&[u8]> {
        self.named(name).collect()
    }

    fn single_header(&self, name: &str) -> Option<&[u8]> {
        let mut values = self.named(name);
        let first = values.next()?;
        if values.next().is_some() {
            return Some(b"");
        }
        Some(first)
    }

    fn host(&self) -> Option<&str> {
        self.header("host")
            .and_then(|h| std::str::from_utf8(h).ok())
    }

    fn path(&self) -> &str {
        self.str(&self.head.path)
    }

    fn is_head(&self) -> bool {
        false
    }

    fn peer_ip(&self) -> IpAddr {
        self.peer
    }

    fn declared_length(&self) -> Option<u64> {
        Some(self.declared())
    }

    fn expects_continue(&self) -> bool {
        false
    }

    async fn send_continue(&mut self) -> pingora::Result<()> {
        Ok(())
    }

    fn upstream_head(&self, add: &Forwarded<'_>) -> Vec<u8> {
        let headers = self
            .head
            .headers
            .iter()
            .map(|(n, v)| (self.bytes(n), self.bytes(v)));
        request_head(b"POST", self.bytes(&self.head.target), headers, add)
    }

    async fn read_body(&mut self, max: usize, timeout: Duration) -> Result<Bytes, BodyError> {
        let want = match usize::try_from(self.declared()) {
            Ok(n) if n <= max => n,
            _ => return Err(BodyError::TooLarge),
        };
        // The clock is read only when the body is not all here yet (rarely, for small bodies).
        let mut deadline = None;
        while self.buf.len() < want {
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + timeout);
            self.buf.reserve(want - self.buf.len());
            match tokio::time::timeout_at(deadline, self.stream.read_buf(self.buf)).await {
                Err(_) => return Err(BodyError::Timeout),
                Ok(Ok(0)) => return Err(BodyError::Closed),
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return Err(BodyError::Closed),
            }
        }
        Ok(self.buf.split_to(want).freeze())
    }

    fn close_after(&mut self) {
        self.close = true;
    }

    async fn respond(
        &mut self,
        status: u16,
        reason: Option<&str>,
        headers: &[(&[u8], &[u8])],
        body: Bytes,
    ) -> pingora::Result<()> {
        self.close |= !self.head.keep_alive;
        let out = answer_bytes(status, reason, headers, &body, self.close)?;
        let write = async {
            self.stream.write_all(&out).await?;
            self.stream.flush().await
        };
        write.await.map_err(|e| {
            self.close = true;
            pingora::Error::because(pingora::ErrorType::WriteError, "writing the answer", e)
        })
    }
}

/// The bytes of a whole HTTP/1.1 answer. 1xx, 204 and 304 answers carry no body and
/// no `Content-Length` (RFC 9110 8.6); every other answer carries its length.
fn answer_bytes(
    status: u16,
    reason: Option<&str>,
    headers: &[(&[u8], &[u8])],
    body: &[u8],
    close: bool,
) -> pingora::Result<Vec<u8>> {
    let invalid =
        |what: &'static str| pingora::Error::explain(pingora::ErrorType::InvalidHTTPHeader, what);
    let reason = reason.unwrap_or_else(|| {
        http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("")
    });
    if !(100..1000).contains(&status) || reason.bytes().any(|b| b == b'\r' || b == b'\n') {
        return Err(invalid("bad status line"));
    }
    let bodyless = is_bodyless(status);
    let mut out = Vec::with_capacity(128 + headers.len() * 32 + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(&mut out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        // The same rules pingora applies when it builds a header: a token for the
        // name, no CR/LF/NUL in the value (a bot cannot split the answer).
        if http::HeaderName::from_bytes(name).is_err()
            || http::HeaderValue::from_bytes(value).is_err()
        {
            return Err(invalid("upstream header not relayable"));
        }
        push_header(&mut out, name, value);
    }
    if !bodyless {
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(&mut out, body.len() as u64);
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !bodyless {
        out.extend_from_slice(body);
    }
    Ok(out)
}

/// Statuses whose answers never have a body (RFC 9110 6.4.1).
pub(crate) fn is_bodyless(status: u16) -> bool {
    matches!(status, 100..=199 | 204 | 304)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodyless_answers_have_no_length_and_no_body() {
        for status in [100, 204, 304] {
            let out = answer_bytes(status, None, &[], b"ignored", false).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(
                !text.to_ascii_lowercase().contains("content-length"),
                "{text}"
            );
            assert!(text.ends_with("\r\n\r\n"), "{text}");
        }
        let out = answer_bytes(200, None, &[], b"ok", true).unwrap();
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        );
        assert!(answer_bytes(200, Some("a\r\nb"), &[], b"", false).is_err());
        let bad: [(&[u8], &[u8]); 1] = [(b"X", b"a\r\nInjected: 1")];
        assert!(answer_bytes(200, None, &bad, b"", false).is_err());
    }
}
