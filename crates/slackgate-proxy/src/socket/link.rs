//! One Socket Mode connection: `apps.connections.open` at `egress.slack_api` with the app
//! token in `Authorization` (its only place), the WebSocket to the URL it answers (TLS by
//! the same connector as the API calls: system roots plus `egress.ca_file`), and `hello`.
//! Then [`spawn`] serves it on a task of its own: envelopes go to the bridge, acks come
//! back, Slack's pings are answered (tungstenite does that while reading) and the gateway
//! pings too, so a dead connection is noticed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::WebSocketStream;

use crate::net::slack_client::{OutHead, SlackClient};
use crate::socket::envelope::{self, Message};

/// How long `hello` may take after the WebSocket is up.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the gateway pings.
const PING_EVERY: Duration = Duration::from_secs(10);
/// A connection that sent nothing (not even a pong) for this long is dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(35);
/// The most a closing connection waits for its envelopes in flight.
pub(crate) const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// The largest frame read (Slack's envelopes are well under it).
const MAX_FRAME: usize = 4 * 1024 * 1024;

/// The byte stream under the WebSocket: TLS, or plain for a loopback stand-in.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open WebSocket that said `hello`.
pub(crate) type Socket = WebSocketStream<Box<dyn Io>>;

/// Why no connection could be opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// Slack refused the app token for good (`invalid_auth`, `account_inactive`, ...):
    /// retrying cannot help.
    Fatal(String),
    /// Try again later: after `after` when Slack said so (429 `Retry-After`).
    Retry {
        why: String,
        after: Option<Duration>,
    },
}

/// `apps.connections.open` errors that retrying cannot cure.
fn is_fatal(error: &str) -> bool {
    matches!(
        error,
        "invalid_auth"
            | "account_inactive"
            | "not_authed"
            | "token_revoked"
            | "token_expired"
            | "not_allowed_token_type"
            | "missing_scope"
            | "no_permission"
            | "org_login_required"
            | "ekm_access_denied"
    )
}

/// Opens one connection and waits for its `hello`.
pub(crate) async fn open(client: &SlackClient, token: &str) -> Result<Socket, OpenError> {
    let url = connections_open(client, token).await?;
    let retry = |why: String| OpenError::Retry { why, after: None };
    let target = Target::parse(&url, client.api().tls).ok_or_else(|| {
        retry("apps.connections.open answered a URL that is not a wss:// URL".to_owned())
    })?;
    let stream = connect(client, &target).await.map_err(retry)?;
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
        max_message_size: Some(MAX_FRAME),
        max_frame_size: Some(MAX_FRAME),
        ..Default::default()
    };
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(url.as_str(), stream, Some(config))
            .await
            .map_err(|e| retry(format!("WebSocket handshake with {}: {e}", target.host)))?;
    let hello = tokio::time::timeout(HELLO_TIMEOUT, async {
        while let Some(frame) = ws.next().await {
            match frame {
                Ok(Frame::Text(t)) => return matches!(envelope::parse(&t), Message::Hello),
                Ok(Frame::Close(_)) | Err(_) => return false,
                Ok(_) => {}
            }
        }
        false
    })
    .await;
    if hello != Ok(true) {
        return Err(retry(format!("no hello from {}", target.host)));
    }
    Ok(ws)
}

/// Calls `apps.connections.open` and reads the WebSocket URL from its answer.
async fn connections_open(client: &SlackClient, token: &str) -> Result<String, OpenError> {
    let head = client.head(
        &OutHead {
            http_method: b"POST",
            target: &[client.api().path.as_bytes(), b"apps.connections.open"],
            token: Some(token),
            content_type: Some(b"application/x-www-form-urlencoded"),
            user_agent: Some(b"slackgate (socket mode)"),
        },
        0,
    );
    let answer = client
        .call(&head, b"", false)
        .await
        .map_err(|e| OpenError::Retry {
            why: format!("apps.connections.open: {e}"),
            after: None,
        })?;
    if answer.status == 429 {
        let after = answer
            .header_pairs()
            .find(|(n, _)| n.eq_ignore_ascii_case(b"retry-after"))
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.clamp(1, 300)));
        return Err(OpenError::Retry {
            why: "apps.connections.open: rate limited (429)".to_owned(),
            after,
        });
    }
    let parsed: Option<Value> = serde_json::from_slice(&answer.body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let ok = parsed
        .as_ref()
        .and_then(|v| v.get("ok"))
        .and_then(Value::as_bool)
        == Some(true);
    if ok {
        if let Some(url) = field("url") {
            return Ok(url);
        }
    }
    let error = field("error")
        .as_deref()
        .and_then(crate::net::slack_client::error_code)
        .map(str::to_owned);
    match error {
        Some(e) if is_fatal(&e) => Err(OpenError::Fatal(e)),
        Some(e) => Err(OpenError::Retry {
            why: format!("apps.connections.open: {e}"),
            after: None,
        }),
        None => Err(OpenError::Retry {
            why: format!(
                "apps.connections.open: HTTP {} without a usable answer",
                answer.status
            ),
            after: None,
        }),
    }
}

/// Where a WebSocket URL points.
#[derive(Debug, PartialEq)]
struct Target {
    tls: bool,
    host: String,
    port: u16,
}

impl Target {
    /// `wss://host[:port]/...`; `ws://` only when the API itself is plain HTTP (a loopback
    /// stand-in).
    fn parse(url: &str, api_tls: bool) -> Option<Target> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("wss://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("ws://") {
            (false, r)
        } else {
            return None;
        };
        if api_tls && !tls {
            return None;
        }
        let authority = rest.split(['/', '?']).next()?;
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
                Ok(p) => (h, p),
                Err(_) if authority.starts_with('[') && authority.ends_with(']') => {
                    (authority, if tls { 443 } else { 80 })
                }
                Err(_) => return None,
            },
            _ => (authority, if tls { 443 } else { 80 }),
        };
        Some(Target {
            tls,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        })
    }
}

/// TCP, then TLS with the API client's connector (the same trust).
async fn connect(client: &SlackClient, target: &Target) -> Result<Box<dyn Io>, String> {
    let addrs: Vec<std::net::SocketAddr> =
        tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", target.host))?
            .collect();
    let mut last = format!("{} resolved to no address", target.host);
    for addr in addrs {
        let tcp = match tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                last = format!("connect to {addr}: {e}");
                continue;
            }
            Err(_) => {
                last = format!("connect to {addr}: timed out");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        if !target.tls {
            return Ok(Box::new(tcp));
        }
        let Some(tls) = client.tls_connector() else {
            return Err("a wss:// URL needs egress.slack_api over https".to_owned());
        };
        let name = ServerName::try_from(target.host.clone())
            .map_err(|_| format!("{} is not a TLS server name", target.host))?;
        return match tls.connect(name, tcp).await {
            Ok(s) => Ok(Box::new(s)),
            Err(e) => Err(format!("TLS with {}: {e}", target.host)),
        };
    }
    Err(last)
}

/// What a served connection tells its slot.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// Slack announced the end of the connection (`disconnect` and its reason); the
    /// connection goes on serving until it is closed.
    Disconnect(String),
    /// The connection ended (the reason label).
    Closed(&'static str),
}

/// What the bridge sends back for an envelope: the ack text, or none (not acked, so
/// Slack redelivers).
pub(crate) type Done = Option<String>;

/// A served connection.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) events: mpsc::Receiver<LinkEvent>,
    close: Option<oneshot::Sender<()>>,
}

impl Link {
    /// Closes the connection once its envelopes in flight are acked (within
    /// [`DRAIN_LIMIT`]); it goes on reading until then.
    pub(crate) fn close(&mut self) {
        if let Some(c) = self.close.take() {
            let _ = c.send(());
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.close();
    }
}

/// What a connection does with an envelope: delivers it and sends what to answer on
/// `done` (exactly once).
pub(crate) type Dispatch = Arc<dyn Fn(envelope::Envelope, mpsc::Sender<Done>) + Send + Sync>;

/// Serves `ws` on a task of its own.
pub(crate) fn spawn(ws: Socket, dispatch: Dispatch, other: impl Fn(&str) + Send + 'static) -> Link {
    let (events_tx, events) = mpsc::channel(4);
    let (close, closed) = oneshot::channel();
    tokio::spawn(serve(ws, dispatch, other, events_tx, closed));
    Link {
        events,
        close: Some(close),
    }
}

async fn serve(
    mut ws: Socket,
    dispatch: Dispatch,
    other: impl Fn(&str) + Send,
    events: mpsc::Sender<LinkEvent>,
    mut closed: oneshot::Receiver<()>,
) {
    let (done_tx, mut done_rx) = mpsc::channel::<Done>(256);
    let mut in_flight: usize = 0;
    let mut draining: Option<tokio::time::Instant> = None;
    let mut last_heard = tokio::time::Instant::now();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end: &'static str = loop {
        if let Some(deadline) = draining {
            if in_flight == 0 || tokio::time::Instant::now() >= deadline {
                let _ = ws.close(None).await;
                break "";
            }
        }
        let drain_tick = async {
            match draining {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut closed, if draining.is_none() => {
                draining = Some(tokio::time::Instant::now() + DRAIN_LIMIT);
            }
            _ = drain_tick => {}
            Some(done) = done_rx.recv() => {
                in_flight = in_flight.saturating_sub(1);
                if let Some(ack) = done {
                    if ws.send(Frame::text(ack)).await.is_err() {
                        break "closed";
                    }
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    break "ping_timeout";
                }
                if ws.send(Frame::Ping(Vec::new())).await.is_err() {
                    break "closed";
                }
            }
            frame = ws.next() => {
                last_heard = tokio::time::Instant::now();
                match frame {
                    None | Some(Err(_)) | Some(Ok(Frame::Close(_))) => break "closed",
                    Some(Ok(Frame::Text(t))) => match envelope::parse(&t) {
                        Message::Envelope(e) => {
                            in_flight += 1;
                            dispatch(e, done_tx.clone());
                        }
                        Message::Other { id } => {
                            other(&id);
                            if ws.send(Frame::text(envelope::ack(&id, None))).await.is_err() {
                                break "closed";
                            }
                        }
                        Message::Disconnect(reason) => {
                            // Never waits: a busy slot (opening the replacement) must not
                            // stall this connection's acks; one pending notice is enough.
                            let _ = events.try_send(LinkEvent::Disconnect(reason));
                        }
                        Message::Hello | Message::Invalid => {}
                    },
                    Some(Ok(_)) => {}
                }
            }
        }
    };
    if !end.is_empty() {
        // When the notice does not fit, the slot still sees the channel close.
        let _ = events.try_send(LinkEvent::Closed(end));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls() {
        let t = |host: &str, port, tls| {
            Some(Target {
                tls,
                host: host.to_owned(),
                port,
            })
        };
        assert_eq!(
            Target::parse("wss://wss-primary.slack.com/link/?ticket=x&app_id=A1", true),
            t("wss-primary.slack.com", 443, true)
        );
        assert_eq!(
            Target::parse("wss://127.0.0.1:8443/link?ticket=1", true),
            t("127.0.0.1", 8443, true)
        );
        assert_eq!(
            Target::parse("ws://127.0.0.1:80/", false),
            t("127.0.0.1", 80, false)
        );
        assert_eq!(Target::parse("ws://127.0.0.1:80/", true), None);
        for bad in ["https://x/", "wss://", "wss://u@h/", "wss://h:99999/", ""] {
            assert_eq!(Target::parse(bad, true), None, "{bad}");
        }
        assert!(is_fatal("invalid_auth") && !is_fatal("ratelimited"));
    }
}
