//! The one connection front of every listener: every HTTP/1 request head is read and
//! judged here, then served on its door's fast path or handed to pingora.
//!
//! The inbound listeners, the egress listener and the admin listener each have a
//! [`Front`] over their [`Door`]: the same head judge, whole-head deadline, head and body
//! limits, keep-alive idle timeout, drain, lingering close and connection cap
//! ([`Slots`]), from this one code. Every connection starts here. The
//! request head is read within `limits.max_head_bytes` and `limits.head_read_timeout`
//! (a deadline for the whole head, not reset by reads) and judged by `http1.rs`, the one
//! definition of a valid request for both paths; a refused head is answered here
//! (400/431/501, or 408 when the deadline passes), recorded, and the connection closed.
//! A plain request (`POST`, HTTP/1.1, origin-form, `Content-Length` body, no
//! `Expect`) runs the pipeline right here: body read by its length, guard, upstream, one
//! write of the answer. Anything else the checks accept (chunked bodies, `Expect:
//! 100-continue`, other methods, HTTP/1.0) is handed, one request at a time and with the
//! bytes already read, to pingora's HTTP session and the door's pingora app, which runs
//! the same pipeline (`Gateway::handle`, `EgressApp::handle`); the connection comes back here for its next request, so every
//! head on it is judged by the same rules. HTTP/2 (by ALPN) goes to pingora whole.
//! The split only saves pingora's per-request header maps, session objects and response
//! serialization on the hot path (about a tenth of the CPU per request, see
//! `benches/README.md`).

use std::future::Future;
use std::net::IpAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use prometheus::IntCounter;
use slackgate_guard::Reason;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::net::conn::{
    close_gently, is_bodyless, is_writable_header, is_writable_status, Linger, KEEPALIVE_IDLE,
};
use crate::net::downstream::{answer_body, BodyError, Downstream};
use crate::net::handover::{hand_over, unwrap_prefixed};
use crate::net::http1::{self, Framing, Parsed, RequestHead};
use crate::net::tls::TlsListeners;
use crate::net::upstream_head::{request_head, Forwarded};
use crate::net::wire::{push_decimal, push_header};

/// The longest a keep-alive connection stays open, idle, once the server drains.
const DRAIN_IDLE_MAX: Duration = Duration::from_secs(5);

/// What serves one listener behind the front: its limits, its fast path (if any) and
/// pingora's app for every other request. The inbound door (`gateway.rs`), the egress
/// door (`egress.rs`) and the admin listener (`admin.rs`) are doors; the front is the
/// same for all of them.
pub(crate) trait Door: Send + Sync + 'static {
    /// The fast path: the door's own pipeline over a request the front parsed.
    type Fast: FastPath;
    /// pingora's app, for the requests the fast path does not take.
    type Fallback: HttpServerApp + Send + Sync + 'static;

    /// The fast path, when this door has one and it is on.
    fn fast(&self) -> Option<&Self::Fast>;
    /// pingora's app.
    fn fallback(&self) -> &Arc<Self::Fallback>;
    /// The limits in force for the next head.
    fn limits(&self) -> ConnLimits;
    /// Records a request whose head the front refused (answered and closed).
    fn refused(&self, peer: IpAddr, reason: Reason);
}

/// A door's own pipeline, run on a request whose head the front judged and parsed.
pub(crate) trait FastPath: Send + Sync + 'static {
    /// Per-request state, from the head to the record.
    type Ctx: Send;

    /// Whether the fast path serves this request (else pingora's app does).
    fn takes(&self, head: &RequestHead, buf: &[u8]) -> bool {
        head.is_simple(buf)
    }
    /// A fresh per-request state.
    fn context(&self) -> Self::Ctx;
    /// Runs the pipeline for one request and answers it through `down`.
    fn handle<S: Downstream>(
        &self,
        down: &mut S,
        ctx: &mut Self::Ctx,
    ) -> impl Future<Output = pingora::Result<()>> + Send;
    /// The request's one audit record and its metrics.
    fn record(&self, ctx: &mut Self::Ctx);
}

/// The fast path of a door that has none (the admin listener): it cannot be built.
#[derive(Debug)]
pub(crate) enum NoFastPath {}

impl FastPath for NoFastPath {
    type Ctx = ();

    fn takes(&self, _: &RequestHead, _: &[u8]) -> bool {
        match *self {}
    }

    fn context(&self) {
        match *self {}
    }

    #[allow(clippy::manual_async_fn)]
    fn handle<S: Downstream>(
        &self,
        _: &mut S,
        _: &mut (),
    ) -> impl Future<Output = pingora::Result<()>> + Send {
        async move { match *self {} }
    }

    fn record(&self, _: &mut ()) {
        match *self {}
    }
}

/// The connection limits of a door, read for each head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    pub head: HeadLimits,
    /// How a connection closed under a request not read to its end is let go.
    pub linger: Linger,
}

impl ConnLimits {
    /// The limits of the inbound and egress doors: the config's `limits`.
    pub(crate) fn of(limits: &slackgate_policy::Limits) -> Self {
        ConnLimits {
            head: HeadLimits {
                max_bytes: limits.max_head_bytes,
                timeout: limits.head_read_timeout,
                drain_idle: HeadLimits::drain_idle_for(limits.shutdown_grace),
            },
            linger: Linger::of(limits),
        }
    }
}

/// The connections one listener holds, up to its cap; past it a new connection is
/// closed at accept and counted (`slackgate_connections_refused_total{listener}`), so a
/// flood on one listener cannot take the descriptors every other one needs.
#[derive(Debug)]
pub(crate) struct Slots {
    open: AtomicUsize,
    cap: usize,
    refused: IntCounter,
}

impl Slots {
    /// Room for `cap` connections; refusals are counted in `refused`.
    pub(crate) fn new(cap: usize, refused: IntCounter) -> Self {
        Slots {
            open: AtomicUsize::new(0),
            cap,
            refused,
        }
    }

    /// A slot for a new connection, held until it is dropped; `None` when full.
    fn take(self: &Arc<Self>) -> Option<Slot> {
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.cap).then_some(n + 1)
            })
            .is_ok();
        if !taken {
            self.refused.inc();
            return None;
        }
        Some(Slot(Arc::clone(self)))
    }
}

/// One connection's place in its listener's [`Slots`].
struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The front of one listener: every connection's heads are read and judged here, then
/// served by its door.
pub(crate) struct Front<D> {
    door: D,
    tls: TlsListeners,
    slots: Arc<Slots>,
}

impl<D> std::fmt::Debug for Front<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front")
            .field("slots", &self.slots)
            .finish_non_exhaustive()
    }
}

impl<D: Door> Front<D> {
    /// A front for `door`; connections that arrive on one of the `tls` listeners get
    /// their handshake here first; at most `slots` connections at once.
    pub(crate) fn new(door: D, tls: TlsListeners, slots: Arc<Slots>) -> Self {
        Self { door, tls, slots }
    }

    /// The connection after its TLS handshake, when it arrived on a TLS listener; the
    /// handshake counts against the first head's deadline (`limits.head_read_timeout`
    /// from the accept), so a client cannot hold a connection longer by handshaking
    /// slowly. `None`: the handshake failed or timed out.
    async fn terminate_tls(
        &self,
        stream: Stream,
        accepted: Instant,
        limits: &HeadLimits,
    ) -> Option<Stream> {
        if self.tls.is_empty() {
            return Some(stream);
        }
        let local = stream
            .get_socket_digest()
            .and_then(|d| d.local_addr().and_then(|a| a.as_inet()).copied());
        let Some(acceptor) = local.and_then(|l| self.tls.for_local(l)) else {
            return Some(stream);
        };
        crate::net::tls::accept(acceptor, stream, accepted + limits.timeout).await
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
impl<D: Door> ServerApp for Front<D> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // Past the cap the connection is dropped unread: closing is the cheapest answer.
        let _slot = self.slots.take()?;
        let accepted = Instant::now();
        let limits = self.door.limits();
        let stream = self.terminate_tls(stream, accepted, &limits.head).await?;
        if stream.selected_alpn_proto() == Some(ALPN::H2) {
            return ServerApp::process_new(self.door.fallback(), stream, shutdown).await;
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
            let limits = self.door.limits();
            let head = match read_head(&mut stream, &mut buf, &limits.head, first, &mut shutdown_rx)
                .await
            {
                Ok(head) => head,
                Err(NoHead::Gone) => return None,
                Err(NoHead::Refused(reason)) => {
                    self.refuse(&mut stream, peer, reason, limits.linger).await;
                    return None;
                }
            };
            first = None;
            let Some(fast) = self.door.fast().filter(|f| f.takes(&head, &buf)) else {
                // pingora answers this one request; the connection comes back for the next.
                // A drain closes it after this request, as on the fast path.
                let draining = *shutdown_rx.borrow();
                let mut head = head;
                head.keep_alive &= !draining;
                let prefixed = hand_over(stream, &mut buf, head, limits.linger);
                let mut session = ServerSession::new_http1(prefixed);
                session.set_keepalive((!draining).then_some(KEEPALIVE_IDLE.as_secs()));
                let reused =
                    HttpServerApp::process_new_http(self.door.fallback(), session, shutdown)
                        .await?;
                let (returned, _settings) = reused.consume();
                stream = unwrap_prefixed(returned, &mut buf)?;
                continue;
            };
            let head_bytes = buf.split_to(head.len).freeze();
            let mut down = FastDownstream {
                stream: &mut stream,
                buf: &mut buf,
                head_bytes,
                head,
                peer,
                close: *shutdown_rx.borrow(),
                unread: false,
            };
            let mut ctx = fast.context();
            let result = fast.handle(&mut down, &mut ctx).await;
            let close = down.close || !down.head.keep_alive;
            // The request was not read to its end, or more was sent behind it.
            let unread = down.unread || !buf.is_empty();
            fast.record(&mut ctx);
            if result.is_err() || close {
                close_gently(stream.as_mut(), unread.then_some(limits.linger)).await;
                return None;
            }
        }
    }

    async fn cleanup(&self) {
        ServerApp::cleanup(self.door.fallback().as_ref()).await;
    }
}

impl<D: Door> Front<D> {
    /// Answers a refused head (`Connection: close`), records it, and closes gently.
    async fn refuse(&self, stream: &mut Stream, peer: IpAddr, reason: Reason, linger: Linger) {
        let body = answer_body(reason);
        let headers: [(&[u8], &[u8]); 1] = [(b"Content-Type", b"application/json")];
        if let Ok(out) = answer_bytes(reason.status(), None, &headers, &body, true) {
            let _ = stream.write_all(&out).await;
            let _ = stream.flush().await;
        }
        self.door.refused(peer, reason);
        close_gently(stream.as_mut(), Some(linger)).await;
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

/// The head limits in force.
#[derive(Debug, Clone, Copy)]
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
    /// The gateway answered before it read the request to its end.
    unread: bool,
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

    fn method(&self) -> &[u8] {
        self.bytes(&self.head.method)
    }

    fn query(&self) -> Option<&[u8]> {
        let target = self.bytes(&self.head.target);
        let at = memchr::memchr(b'?', target)?;
        target.get(at + 1..)
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
        self.unread = true;
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
    if !is_writable_status(status, reason) {
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
        if !is_writable_header(name, value) {
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
