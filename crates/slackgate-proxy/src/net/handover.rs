//! The hand-over of one request to pingora: the stream pingora reads ([`Prefixed`]:
//! the bytes the front already read, then the socket, never a byte past the request's
//! end) and the head the front judged ([`HandedHead`]), from which pingora's path takes
//! headers, framing and persistence. When pingora gives the connection back,
//! [`unwrap_prefixed`] returns what it did not read to the front.

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, Bytes, BytesMut};
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use tokio::io::{AsyncRead, ReadBuf};

use crate::net::conn::{Linger, Lingering};
use crate::net::http1::{list, ChunkedEnd, Framing, RequestHead};
use crate::net::upstream_head::{request_head, Forwarded};

/// The stream pingora reads for the request whose judged `head` starts `buf`: exactly
/// that request's bytes (it can never read, and drop or serve, what follows on the
/// connection), with the head attached. `buf` is left empty.
/// A connection pingora closes under a request it did not read to its end is let go
/// with `linger` (as `crate::net::conn::close_gently` does).
pub(crate) fn hand_over(
    inner: Stream,
    buf: &mut BytesMut,
    head: RequestHead,
    linger: Linger,
) -> Stream {
    let limit = ReadLimit::for_request(&head);
    let pending = buf.split();
    let handed = HandedHead {
        bytes: Bytes::copy_from_slice(pending.get(..head.len).unwrap_or_default()),
        head,
    };
    Box::new(Prefixed {
        pending,
        inner,
        limit,
        scratch: Vec::new(),
        handed: Some(handed),
        linger,
        lingering: None,
    })
}

/// The head the front judged, handed to pingora with the request: the pipeline reads
/// the request's headers, framing and persistence from it on pingora's path too, so both
/// paths forward the very same bytes (pingora's header map groups repeated names and
/// reads only the first `Connection` header).
#[derive(Debug)]
pub(crate) struct HandedHead {
    bytes: Bytes,
    head: RequestHead,
}

impl HandedHead {
    fn at(&self, r: &Range<usize>) -> &[u8] {
        self.bytes.get(r.clone()).unwrap_or_default()
    }

    /// The header pairs in arrival order.
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
        self.head
            .headers
            .iter()
            .map(|(n, v)| (self.at(n), self.at(v)))
    }

    /// The head to send upstream: method and origin-form target as received.
    pub(crate) fn upstream_head(&self, add: &Forwarded<'_>) -> Vec<u8> {
        request_head(
            self.at(&self.head.method),
            self.at(&self.head.target),
            self.headers(),
            add,
        )
    }

    /// The declared body length (`None` for chunked).
    pub(crate) fn declared_length(&self) -> Option<u64> {
        match self.head.framing {
            Framing::Length(n) => Some(n),
            Framing::Chunked => None,
        }
    }

    /// Whether the client waits for `100 Continue`.
    pub(crate) fn expects_continue(&self) -> bool {
        self.head.expect_continue
    }

    /// Whether the connection may carry another request.
    pub(crate) fn keep_alive(&self) -> bool {
        self.head.keep_alive
    }

    /// Whether pingora, reading only the first `Connection` line, ends a connection the
    /// front keeps: an HTTP/1.0 request whose `keep-alive` stands on a later line. (A
    /// `close` on a later line is the other way round, and [`Self::keep_alive`] says it.)
    pub(crate) fn keep_alive_missed_by_pingora(&self) -> bool {
        if !self.head.keep_alive || self.head.http11 {
            return false;
        }
        let first = self
            .headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(b"connection"));
        !first.is_some_and(|(_, v)| list(v).any(|t| t.eq_ignore_ascii_case(b"keep-alive")))
    }
}

/// The head the front handed over with `stream`, when it is one of the front's.
pub(crate) fn handed_head(stream: &Stream) -> Option<&HandedHead> {
    stream
        .as_any()
        .downcast_ref::<Prefixed>()
        .and_then(|p| p.handed.as_ref())
}

/// How much of the connection pingora may read for the one request it is handed.
#[derive(Debug)]
enum ReadLimit {
    /// Head and `Content-Length` body: this many bytes are left.
    Exactly(usize),
    /// Head (this many bytes left of it), then a chunked body up to its end.
    Chunked { head_left: usize, scan: ChunkedEnd },
}

impl ReadLimit {
    fn for_request(head: &RequestHead) -> Self {
        match head.framing {
            Framing::Length(n) => ReadLimit::Exactly(
                usize::try_from(n)
                    .ok()
                    .and_then(|n| n.checked_add(head.len))
                    .unwrap_or(usize::MAX),
            ),
            Framing::Chunked => ReadLimit::Chunked {
                head_left: head.len,
                scan: ChunkedEnd::default(),
            },
        }
    }

    /// How many of `avail` (the next bytes of the connection) belong to the request;
    /// they count as delivered. Broken chunked framing lets everything through: pingora
    /// then refuses the same bytes itself, and the connection is not kept.
    fn take(&mut self, avail: &[u8]) -> usize {
        match self {
            ReadLimit::Exactly(left) => {
                let n = (*left).min(avail.len());
                *left -= n;
                n
            }
            ReadLimit::Chunked { head_left, scan } => {
                let head = (*head_left).min(avail.len());
                *head_left -= head;
                if scan.broken() {
                    return avail.len();
                }
                let body = scan.feed(&avail[head..]);
                if scan.broken() {
                    return avail.len();
                }
                head + body
            }
        }
    }

    /// Whether the request's last byte was delivered.
    fn complete(&self) -> bool {
        match self {
            ReadLimit::Exactly(left) => *left == 0,
            ReadLimit::Chunked { head_left, scan } => *head_left == 0 && scan.done(),
        }
    }
}

/// The connection as pingora sees it for one request: the bytes the front already read
/// first, then the socket, and never a byte past the request's end (pingora then reads
/// end of stream). What it did not read, a pipelined request included, goes back to
/// the front with the connection ([`unwrap_prefixed`]).
#[derive(Debug)]
struct Prefixed {
    /// Bytes of the connection read but not yet given to pingora.
    pending: BytesMut,
    inner: Stream,
    limit: ReadLimit,
    /// Where reads from the socket land first.
    scratch: Vec<u8>,
    /// The judged head of the request this stream carries to pingora.
    handed: Option<HandedHead>,
    linger: Linger,
    /// Set once a gentle close began.
    lingering: Option<Lingering>,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = &mut *self;
        if me.limit.complete() || out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if me.pending.is_empty() {
            if me.scratch.is_empty() {
                me.scratch = vec![0; 8192];
            }
            let mut tmp = ReadBuf::new(&mut me.scratch);
            std::task::ready!(Pin::new(&mut me.inner).poll_read(cx, &mut tmp))?;
            if tmp.filled().is_empty() {
                return Poll::Ready(Ok(()));
            }
            me.pending.extend_from_slice(tmp.filled());
        }
        let avail = me.pending.len().min(out.remaining());
        let n = me.limit.take(&me.pending[..avail]);
        out.put_slice(&me.pending[..n]);
        me.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}

crate::net::forward::forward_async_write!(Prefixed, shutdown: poll_close_gently);

impl Prefixed {
    /// pingora shuts a connection it does not keep (`AsyncWriteExt::shutdown` on its
    /// stream). The write side is shut first; then, when the request was not read to its
    /// end (pingora's path answered early: a body over the limit, a failed read) or more
    /// bytes followed it, what the client still sends is read and discarded within the
    /// linger's bounds, as `crate::net::conn::close_gently` does on the fast path.
    fn poll_close_gently(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = &mut *self;
        let lingering = match &mut me.lingering {
            Some(l) => l,
            None => {
                std::task::ready!(tokio::io::AsyncWrite::poll_shutdown(
                    Pin::new(&mut me.inner),
                    cx
                ))?;
                let unread = !me.limit.complete() || !me.pending.is_empty();
                let bytes = if unread { me.linger.bytes } else { 0 };
                me.lingering
                    .insert(Lingering::new(Linger { bytes, ..me.linger }))
            }
        };
        std::task::ready!(lingering.poll_discard(me.inner.as_mut(), cx));
        Poll::Ready(Ok(()))
    }
}

#[async_trait]
impl Shutdown for Prefixed {
    async fn shutdown(&mut self) {
        let _ = tokio::io::AsyncWriteExt::shutdown(self).await;
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
        if self.pending.is_empty() {
            return self.inner.try_peek(buf).await;
        }
        let n = self.pending.len().min(buf.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        Ok(true)
    }
}

/// A stream handed back by pingora after a request: what it did not read goes back
/// into `buf`, and the wrapper is dropped so wrappers do not pile up on a long
/// connection. A request pingora did not read to its exact end (it would only give the
/// connection back after draining the body) means the two disagree on the framing: the
/// connection is dropped rather than its next bytes read as a request.
pub(crate) fn unwrap_prefixed(stream: Stream, buf: &mut BytesMut) -> Option<Stream> {
    if stream.as_any().downcast_ref::<Prefixed>().is_none() {
        return Some(stream);
    }
    // Cannot fail (checked above); if it did, the stream could not be rebuilt from
    // `Any` and the connection is dropped rather than served wrongly.
    let p = stream.into_any().downcast::<Prefixed>().ok()?;
    if p.handed.is_some() && !p.limit.complete() {
        log::debug!("pingora gave back a request it did not read to its end; closing");
        return None;
    }
    let mut rest = p.pending;
    rest.unsplit(buf.split());
    *buf = rest;
    Some(p.inner)
}
