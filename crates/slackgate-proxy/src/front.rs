//! The front door: a fast path for the requests Slack actually sends, pingora for the rest.
//!
//! Every connection (after pingora's listener did the TLS handshake) starts here. The
//! request head is read and parsed with `httparse`. A request that is plainly well formed
//! (`POST`, HTTP/1.1, origin-form target, exactly one decimal `Content-Length` within
//! `max_body_bytes`, no `Transfer-Encoding`, `Expect` or `Upgrade`, at most one `Host`,
//! `Connection` only `keep-alive` or `close`) runs the pipeline right here: body read by
//! its length, guard, upstream, one write of the answer. Anything else (chunked bodies,
//! other methods or versions, oversized or odd heads, HTTP/2) is handed with the bytes
//! already read to pingora's HTTP proxy, which answers it exactly as before. Both paths run
//! the same `Gateway::handle`; the split only saves pingora's per-request header maps,
//! session objects and response serialization on the hot path (about a tenth of the CPU
//! per request, see `benches/README.md`).

use std::net::IpAddr;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, Bytes, BytesMut};
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::gateway::{request_head, BodyError, Downstream, Forwarded, Gateway};
use crate::wire::{parse_decimal, push_decimal, push_header, span_in};

/// Most headers the fast path parses; more go to pingora.
const MAX_HEADERS: usize = 64;
/// Largest head the fast path reads; a longer one goes to pingora (which refuses it).
const MAX_HEAD: usize = 16 * 1024;
/// How long a connection may wait for (the rest of) a request head, like pingora's
/// downstream read timeout (give or take the one second the deadline may lag).
const HEAD_TIMEOUT: Duration = Duration::from_secs(60);

/// The service's app: the fast path in front of pingora's proxy.
pub struct Front {
    gateway: Gateway,
    proxy: Arc<HttpProxy<Gateway>>,
}

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front").finish_non_exhaustive()
    }
}

impl Front {
    /// A front over `gateway` that hands other requests to `proxy` (built on the same
    /// shared state).
    pub fn new(gateway: Gateway, proxy: Arc<HttpProxy<Gateway>>) -> Self {
        Self { gateway, proxy }
    }
}

#[async_trait]
impl ServerApp for Front {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let mut stream = unwrap_drained(stream)?;
        if stream.selected_alpn_proto() == Some(ALPN::H2) {
            return ServerApp::process_new(&self.proxy, stream, shutdown).await;
        }
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()))
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let mut buf = BytesMut::with_capacity(4096);
        let mut shutdown_rx = shutdown.clone();
        // One timer per connection, moved forward at most once a second: arming and
        // cancelling a timer for every read showed up in profiles (~1.5 % of the CPU).
        let idle = tokio::time::sleep(HEAD_TIMEOUT);
        tokio::pin!(idle);
        loop {
            // Wait for a complete head (or proof that this request is not for the fast path).
            let max_body = self.gateway.max_body_bytes();
            let head = loop {
                match parse(&buf, max_body) {
                    Parsed::Simple(head) => break head,
                    Parsed::Other => {
                        let prefixed: Stream = Box::new(Prefixed {
                            prefix: buf.split().freeze(),
                            inner: stream,
                        });
                        return ServerApp::process_new(&self.proxy, prefixed, shutdown).await;
                    }
                    Parsed::Partial => {}
                }
                if *shutdown_rx.borrow() && buf.is_empty() {
                    return None;
                }
                let now = tokio::time::Instant::now();
                if idle.deadline() < now + HEAD_TIMEOUT - Duration::from_secs(1) {
                    idle.as_mut().reset(now + HEAD_TIMEOUT);
                }
                let read = tokio::select! {
                    biased;
                    r = stream.read_buf(&mut buf) => Ok(r),
                    () = &mut idle => Err(()),
                    _ = shutdown_rx.changed(), if buf.is_empty() => return None,
                };
                match read {
                    Ok(Ok(n)) if n > 0 => {}
                    // Closed, failed or idle too long: nothing to answer.
                    _ => return None,
                }
            };
            let head_bytes = buf.split_to(head.len).freeze();
            let mut down = FastDownstream {
                stream: &mut stream,
                buf: &mut buf,
                head_bytes,
                head,
                peer,
                close: false,
            };
            if *shutdown_rx.borrow() {
                down.close = true;
            }
            let mut ctx = self.gateway.context();
            let result = self.gateway.handle(&mut down, &mut ctx).await;
            let close = down.close;
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

/// A stream handed back by pingora after a fallback: once its prefix is used up, the
/// wrapper is dropped so wrappers do not pile up on a long connection.
fn unwrap_drained(stream: Stream) -> Option<Stream> {
    let drained = stream
        .as_any()
        .downcast_ref::<Prefixed>()
        .is_some_and(|p| p.prefix.is_empty());
    if !drained {
        return Some(stream);
    }
    // Cannot fail (checked above); if it did, the stream could not be rebuilt from
    // `Any` and the connection is dropped rather than served wrongly.
    stream
        .into_any()
        .downcast::<Prefixed>()
        .ok()
        .map(|p| p.inner)
}

/// The parsed head of a fast-path request; ranges index the head bytes.
#[derive(Debug)]
struct Head {
    len: usize,
    target: Range<usize>,
    path: Range<usize>,
    headers: Vec<(Range<usize>, Range<usize>)>,
    content_length: usize,
    close: bool,
}

enum Parsed {
    Simple(Head),
    Other,
    Partial,
}

fn parse(buf: &[u8], max_body: usize) -> Parsed {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Parsed::Partial,
        _ => return Parsed::Other,
    };
    // Bare-LF line ends are legal for a lenient parser but never sent by Slack: pingora's.
    if len > MAX_HEAD
        || req.version != Some(1)
        || req.method != Some("POST")
        || !buf[..len].ends_with(b"\r\n\r\n")
    {
        return Parsed::Other;
    }
    let Some(target) = req.path.filter(|p| p.starts_with('/')) else {
        return Parsed::Other;
    };
    let mut content_length = None;
    let mut hosts = 0;
    let mut close = false;
    let mut headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            if content_length.is_some() {
                return Parsed::Other;
            }
            match parse_decimal(h.value).and_then(|n| usize::try_from(n).ok()) {
                Some(n) if n <= max_body => content_length = Some(n),
                _ => return Parsed::Other,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"upgrade")
        {
            return Parsed::Other;
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            if hosts > 1 {
                return Parsed::Other;
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            let value = h.value.trim_ascii();
            if value.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if !value.eq_ignore_ascii_case(b"keep-alive") {
                return Parsed::Other;
            }
        }
        let (Some(n), Some(v)) = (span_in(buf, name), span_in(buf, h.value)) else {
            return Parsed::Other;
        };
        headers.push((n, v));
    }
    let Some(content_length) = content_length else {
        return Parsed::Other;
    };
    let Some(target_range) = span_in(buf, target.as_bytes()) else {
        return Parsed::Other;
    };
    let path_len = target.find('?').unwrap_or(target.len());
    Parsed::Simple(Head {
        len,
        path: target_range.start..target_range.start + path_len,
        target: target_range,
        headers,
        content_length,
        close,
    })
}

/// One fast-path request on its connection.
struct FastDownstream<'a> {
    stream: &'a mut Stream,
    /// Bytes read after the head (body, then possibly pipelined requests).
    buf: &'a mut BytesMut,
    head_bytes: Bytes,
    head: Head,
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

    fn upstream_head(&self, add: &Forwarded<'_>) -> Vec<u8> {
        let headers = self
            .head
            .headers
            .iter()
            .map(|(n, v)| (self.bytes(n), self.bytes(v)));
        request_head(b"POST", self.bytes(&self.head.target), headers, add)
    }

    async fn read_body(&mut self, max: usize, timeout: Duration) -> Result<Bytes, BodyError> {
        // Checked when the head was parsed too; a reload in between may have lowered it.
        let want = self.head.content_length;
        if want > max {
            return Err(BodyError::TooLarge);
        }
        // The clock is read only when the body is not all here yet (rarely, for small bodies).
        let mut deadline = None;
        while self.buf.len() < want {
            let deadline = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + timeout);
            self.buf.reserve(want - self.buf.len());
            match tokio::time::timeout_at(deadline, self.stream.read_buf(self.buf)).await {
                Err(_) => return Err(BodyError::Timeout),
                Ok(Ok(0)) => {
                    return Err(BodyError::Downstream(pingora::Error::explain(
                        pingora::ErrorType::ConnectionClosed,
                        "client closed inside the body",
                    )))
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err(BodyError::Downstream(pingora::Error::because(
                        pingora::ErrorType::ReadError,
                        "reading the body",
                        e,
                    )))
                }
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
        let invalid = |what: &'static str| {
            pingora::Error::explain(pingora::ErrorType::InvalidHTTPHeader, what)
        };
        let reason = reason.unwrap_or_else(|| {
            http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("")
        });
        if !(100..1000).contains(&status) || reason.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(invalid("bad status line"));
        }
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
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(&mut out, body.len() as u64);
        out.extend_from_slice(b"\r\n");
        if self.close || self.head.close {
            self.close = true;
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&body);
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

/// A stream that first yields bytes already read from it.
#[derive(Debug)]
struct Prefixed {
    prefix: Bytes,
    inner: Stream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(out.remaining());
            out.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, out)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Prefixed {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(self.inner.as_mut()).await;
    }
}

impl UniqueID for Prefixed {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Prefixed {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Prefixed {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Prefixed {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for Prefixed {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
}

#[async_trait]
impl Peek for Prefixed {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        if self.prefix.is_empty() {
            return self.inner.try_peek(buf).await;
        }
        let n = self.prefix.len().min(buf.len());
        buf[..n].copy_from_slice(&self.prefix[..n]);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simple(raw: &[u8]) -> Option<Head> {
        match parse(raw, 1024) {
            Parsed::Simple(h) => Some(h),
            _ => None,
        }
    }

    #[test]
    fn the_common_slack_request_is_simple() {
        let raw = b"POST /slack/events?x=1 HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\nX-Slack-Signature: v0=ab\r\n\r\n{}";
        let h = simple(raw).unwrap();
        assert_eq!(&raw[h.path.clone()], b"/slack/events");
        assert_eq!(&raw[h.target.clone()], b"/slack/events?x=1");
        assert_eq!((h.content_length, h.close, h.headers.len()), (2, false, 3));
        assert_eq!(h.len, raw.len() - 2);
    }

    #[test]
    fn everything_unusual_goes_to_pingora() {
        let others: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n",
            b"POST / HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
            b"POST http://gw/ HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n",
            b"POST / HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nUpgrade: h2c\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nConnection: upgrade\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\n folded\r\n\r\n",
            b"POST / HTTP/1.1\nContent-Length: 1\n\n",
            b"\x16\x03\x01\x02\x00",
        ];
        for raw in others {
            assert!(
                matches!(parse(raw, 1024), Parsed::Other),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn partial_heads_wait_and_oversized_ones_go_to_pingora() {
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nHost", 1024),
            Parsed::Partial
        ));
        assert!(matches!(parse(b"", 1024), Parsed::Partial));
        let mut huge = b"POST / HTTP/1.1\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_HEAD + 1));
        assert!(matches!(parse(&huge, 1024), Parsed::Other));
    }

    const VALID: &[u8] = b"POST /slack/events HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 2\r\nX-Slack-Signature: v0=ab\r\nX-Slack-Request-Timestamp: 1\r\n\r\n{}";

    /// What the fast path may assume about a head it accepted.
    fn check_invariants(raw: &[u8], h: &Head) {
        assert!(h.len <= raw.len() && h.len <= MAX_HEAD);
        assert!(raw[..h.len].ends_with(b"\r\n\r\n"));
        assert!(h.content_length <= 1024);
        let at = |r: &Range<usize>| &raw[r.clone()];
        assert!(at(&h.target).starts_with(b"/"));
        assert!(at(&h.target).starts_with(at(&h.path)));
        assert!(!at(&h.path).contains(&b'?'));
        let named = |n: &[u8]| {
            h.headers
                .iter()
                .filter(|(k, _)| at(k).eq_ignore_ascii_case(n))
                .count()
        };
        assert_eq!(named(b"content-length"), 1);
        assert_eq!(named(b"transfer-encoding"), 0);
        assert!(named(b"host") <= 1);
        for (k, v) in &h.headers {
            assert!(k.end <= h.len && v.end <= h.len);
            assert!(!at(v).contains(&b'\r') && !at(v).contains(&b'\n'));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic_and_accepted_heads_hold(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            if let Parsed::Simple(h) = parse(&raw, 1024) {
                check_invariants(&raw, &h);
            }
        }

        #[test]
        fn mutated_valid_requests_never_panic_and_accepted_heads_hold(
            edits in proptest::collection::vec((0..VALID.len(), proptest::prelude::any::<u8>()), 1..6),
            cut in 0..VALID.len() + 1,
        ) {
            let mut raw = VALID.to_vec();
            for (at, b) in edits {
                raw[at] = b;
            }
            raw.truncate(cut);
            if let Parsed::Simple(h) = parse(&raw, 1024) {
                check_invariants(&raw, &h);
            }
        }
    }

    #[test]
    fn the_valid_sample_is_simple() {
        let h = simple(VALID).unwrap();
        check_invariants(VALID, &h);
    }

    #[test]
    fn connection_close_is_honoured() {
        let h =
            simple(b"POST / HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert!(h.close);
    }
}
