//! What every connection of every listener shares, whichever side serves it: the
//! keep-alive idle time, the lingering close, and which answers have no body.

use std::time::Duration;

use pingora::protocols::Shutdown;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

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
    S: tokio::io::AsyncRead + Shutdown + Unpin + Send + ?Sized,
{
    Shutdown::shutdown(stream).await;
    let Some(linger) = linger else {
        return;
    };
    let mut scratch = [0u8; 4096];
    let mut left = linger.bytes;
    let until = Instant::now() + linger.time;
    while left > 0 {
        match tokio::time::timeout_at(until, stream.read(&mut scratch)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => break,
        }
    }
}

/// Statuses whose answers never have a body (RFC 9110 6.4.1).
pub(crate) fn is_bodyless(status: u16) -> bool {
    matches!(status, 100..=199 | 204 | 304)
}
