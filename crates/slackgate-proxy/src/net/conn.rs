//! What every connection of every listener shares, whichever side serves it: the
//! keep-alive idle time, the lingering close, and which answers have no body.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pingora::protocols::Shutdown;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::Sleep;

/// How long a keep-alive connection may wait for the first byte of its next request.
pub(crate) const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);

/// The lingering close: after an answer given before the request was read whole (a
/// refused head, a body over the limit, a failed read), the front stops writing, then
/// reads and discards what the client still sends, for at most `time` and `bytes`,
/// before it closes. A client that writes its whole body before it reads (many do) then
/// reads the answer instead of a connection reset (nginx's `lingering_close`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Linger {
    /// `limits.body_read_timeout`.
    pub time: Duration,
    /// Twice `limits.max_body_bytes`.
    pub bytes: usize,
}

impl Linger {
    /// The linger for these limits.
    pub(crate) fn of(limits: &slackgate_policy::Limits) -> Self {
        Linger {
            time: limits.body_read_timeout,
            bytes: limits.max_body_bytes.saturating_mul(2),
        }
    }
}

/// Closes a connection after its last answer: the write side first (the client reads
/// the answer, then the end), then, with `linger`, what the client still sends is read
/// and discarded within its bounds, so the close does not reset the connection under
/// the answer before the client read it.
pub(crate) async fn close_gently<S>(stream: &mut S, linger: Option<Linger>)
where
    S: AsyncRead + Shutdown + Unpin + Send + ?Sized,
{
    Shutdown::shutdown(stream).await;
    if let Some(linger) = linger {
        let mut lingering = Lingering::new(linger);
        std::future::poll_fn(|cx| lingering.poll_discard(&mut *stream, cx)).await;
    }
}

/// A lingering close under way: how much more may be discarded, and until when. The
/// fast path awaits it ([`close_gently`]); the hand-over's stream polls it from
/// `poll_shutdown`, which is how pingora closes.
#[derive(Debug)]
pub(crate) struct Lingering {
    left: usize,
    until: Pin<Box<Sleep>>,
}

impl Lingering {
    /// A lingering close within `linger`'s bounds, its time running from now.
    pub(crate) fn new(linger: Linger) -> Self {
        Lingering {
            left: linger.bytes,
            until: Box::pin(tokio::time::sleep(linger.time)),
        }
    }

    /// Reads and discards what `stream` still sends until the client's end, an error,
    /// the byte bound or the deadline; then ready, and ready at once from then on.
    pub(crate) fn poll_discard<S>(&mut self, stream: &mut S, cx: &mut Context<'_>) -> Poll<()>
    where
        S: AsyncRead + Unpin + ?Sized,
    {
        let mut scratch = [0u8; 4096];
        while self.left > 0 && self.until.as_mut().poll(cx).is_pending() {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut *stream).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    self.left = self.left.saturating_sub(buf.filled().len());
                }
                // The client's end, or an error: nothing more to wait for.
                Poll::Ready(_) => self.left = 0,
            }
        }
        self.left = 0;
        Poll::Ready(())
    }
}

/// Statuses whose answers never have a body (RFC 9110 6.4.1).
pub(crate) fn is_bodyless(status: u16) -> bool {
    matches!(status, 100..=199 | 204 | 304)
}

/// Whether a status line can be written as it is: three digits and a reason without
/// line ends.
pub(crate) fn is_writable_status(status: u16, reason: &str) -> bool {
    (100..1000).contains(&status) && !reason.bytes().any(|b| b == b'\r' || b == b'\n')
}

/// Whether a header can be written as it is, by the rules pingora applies when it builds
/// one: a token for the name, no CR, LF or NUL in the value (an upstream cannot split the
/// answer).
pub(crate) fn is_writable_header(name: &[u8], value: &[u8]) -> bool {
    http::HeaderName::from_bytes(name).is_ok() && http::HeaderValue::from_bytes(value).is_ok()
}
