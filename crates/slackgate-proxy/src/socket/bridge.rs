//! The bridge: for every app with `socket_mode`, its connections kept open
//! ([`Slot`]s), each envelope run through the inbound pipeline (`Gateway::handle`, the
//! HTTP path's own code, over [`SocketRequest`]) and acked exactly as the HTTP path would
//! have answered: the bot's 2xx is acked (its answer as the ack's `payload` when the
//! envelope accepts one), a gateway denial is acked without payload and never reaches the
//! bot, a bot failure, timeout or gateway 5xx is not acked (Slack redelivers).
//! Duplicates (the same `envelope_id`, on any connection, and with the Redis backend on any
//! replica) reach the bot once.
//!
//! Connections: `disconnect` `warning` / `refresh_requested` / `too_many_websockets`
//! open the replacement first and close the old one after (it keeps serving and acking
//! until then); `link_disabled` stops the app's bridge with an alert; a failed open backs
//! off with jitter (Slack's `Retry-After` on 429); `invalid_auth` and the other token
//! errors stop the app's bridge with an alert rather than loop. The policy is read again
//! every second: an app whose `socket_mode` changed is restarted.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use parking_lot::Mutex;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::{mpsc, watch};

use slackgate_guard::{RemoteState, StateOp};
use slackgate_policy::{Egress, KeyExchange, SocketMode, Tls};

use crate::core::state::Shared;
use crate::inbound::gateway::Gateway;
use crate::net::slack_client::SlackClient;
use crate::socket::envelope::{self, Envelope};
use crate::socket::link::{self, Dispatch, Done, LinkEvent, OpenError};
use crate::socket::request::SocketRequest;
use crate::socket::status::{SocketMetrics, SocketStatus};

/// The longest back-off between failed opens.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Envelope ids remembered for dedupe, per app.
const DEDUPE_CAP: usize = 20_000;
/// How long an envelope id is remembered.
const DEDUPE_TTL: Duration = Duration::from_secs(3600);

/// The Socket Mode bridge of a running gateway.
pub(crate) struct SocketBridge {
    pub(crate) shared: Arc<Shared>,
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) status: Arc<SocketStatus>,
    pub(crate) metrics: SocketMetrics,
}

/// What an app's bridge runs with; a change restarts it.
#[derive(Clone, PartialEq)]
struct Wanted {
    token: [u8; 32],
    connections: u8,
    slack_api: String,
    ca_file: Option<std::path::PathBuf>,
    key_exchange: Vec<KeyExchange>,
}

impl Wanted {
    fn of(s: &SocketMode, e: &Egress, tls: &Tls) -> Self {
        Wanted {
            token: *s.app_token.fingerprint(),
            connections: s.connections,
            slack_api: format!("{:?}", e.slack_api),
            ca_file: e.ca_file.clone(),
            key_exchange: tls.key_exchange.clone(),
        }
    }
}

#[async_trait]
impl BackgroundService for SocketBridge {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut running: BTreeMap<String, (Wanted, watch::Sender<bool>)> = BTreeMap::new();
        let mut tasks = tokio::task::JoinSet::new();
        let mut generation: u64 = 0;
        loop {
            let snap = self.shared.current();
            let mut wanted: BTreeMap<String, (Wanted, SocketMode)> = BTreeMap::new();
            if let Some(egress) = &snap.config.egress {
                for app in snap.policy.apps.values() {
                    if let Some(s) = &app.socket_mode {
                        wanted.insert(
                            app.name.to_string(),
                            (Wanted::of(s, egress, &snap.config.tls), s.clone()),
                        );
                    }
                }
            }
            running.retain(|name, (w, stop)| {
                let keep = wanted.get(name).is_some_and(|(now, _)| now == w);
                if !keep {
                    let _ = stop.send(true);
                    if !wanted.contains_key(name) {
                        self.status.remove(name);
                        let _ = self.metrics.connections.remove_label_values(&[name]);
                    }
                }
                keep
            });
            for (name, (w, socket)) in wanted {
                if running.contains_key(&name) {
                    continue;
                }
                let Some(egress) = &snap.config.egress else {
                    continue;
                };
                let (stop, stopped) = watch::channel(false);
                generation += 1;
                match self.app(&name, socket, egress, &w, stopped, generation) {
                    Ok(app) => {
                        tasks.spawn(app.run());
                    }
                    Err(e) => {
                        log::error!("socket mode: app {name}: {e}");
                        self.status.update(&name, generation, |s| {
                            s.state = "stopped";
                            s.last_error = Some(e);
                        });
                    }
                }
                running.insert(name, (w, stop));
            }
            while tasks.try_join_next().is_some() {}
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        // Shutdown (or an upgrade's old process): every connection stops taking envelopes
        // and closes once those in flight are acked, within the drain limit.
        for (_, (_, stop)) in running {
            let _ = stop.send(true);
        }
        let _ = tokio::time::timeout(link::DRAIN_LIMIT + Duration::from_secs(1), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
    }
}

impl SocketBridge {
    fn app(
        &self,
        name: &str,
        socket: SocketMode,
        egress: &Egress,
        wanted: &Wanted,
        stopped: watch::Receiver<bool>,
        generation: u64,
    ) -> Result<Arc<AppBridge>, String> {
        let client = SlackClient::new(
            &egress.slack_api,
            egress.ca_file.as_deref(),
            egress.timeout,
            &wanted.key_exchange,
        )
        .map_err(|e| e.to_string())?;
        let (stop, _) = watch::channel(false);
        Ok(Arc::new(AppBridge {
            name: Arc::from(name),
            socket,
            client,
            gateway: Arc::clone(&self.gateway),
            status: Arc::clone(&self.status),
            metrics: self.metrics.clone(),
            seen: Mutex::new(Seen::default()),
            stopped,
            stop_all: stop,
            generation,
            live: std::sync::atomic::AtomicI64::new(0),
        }))
    }
}

/// One app's bridge.
struct AppBridge {
    name: Arc<str>,
    socket: SocketMode,
    client: SlackClient,
    gateway: Arc<Gateway>,
    status: Arc<SocketStatus>,
    metrics: SocketMetrics,
    seen: Mutex<Seen>,
    /// Set by the supervisor (policy changed, shutdown).
    stopped: watch::Receiver<bool>,
    /// Set by the app's own slots (link_disabled, a fatal token error).
    stop_all: watch::Sender<bool>,
    /// Which start of the app's bridge this is (see [`SocketStatus::update`]).
    generation: u64,
    /// This start's connections that said hello and are served now.
    live: std::sync::atomic::AtomicI64,
}

impl AppBridge {
    async fn run(self: Arc<Self>) {
        self.metrics.preregister(&self.name);
        self.status.update(&self.name, self.generation, |s| {
            s.state = "connecting";
            s.configured = self.socket.connections;
            s.connections = 0;
            s.last_error = None;
        });
        let slots: Vec<_> = (0..self.socket.connections)
            .map(|_| tokio::spawn(Arc::clone(&self).slot()))
            .collect();
        for s in slots {
            let _ = s.await;
        }
        // Each slot took its own connections off the gauge as they ended.
        self.status.update(&self.name, self.generation, |s| {
            s.connections = 0;
            if s.state != "stopped" {
                s.state = "stopped";
            }
        });
    }

    fn stopping(&self) -> bool {
        *self.stopped.borrow() || *self.stop_all.borrow()
    }

    async fn wait_stop(&self) {
        let mut a = self.stopped.clone();
        let mut b = self.stop_all.subscribe();
        loop {
            if *a.borrow() || *b.borrow() {
                return;
            }
            tokio::select! {
                r = a.changed() => if r.is_err() { return },
                r = b.changed() => if r.is_err() { return },
            }
        }
    }

    fn reconnect(&self, reason: &str) {
        self.metrics
            .reconnects
            .with_label_values(&[&self.name, SocketMetrics::reason_label(reason)])
            .inc();
    }

    fn connected(&self, delta: i64) {
        let gauge = self.metrics.connections.with_label_values(&[&self.name]);
        gauge.add(delta);
        let now = self
            .live
            .fetch_add(delta, std::sync::atomic::Ordering::SeqCst)
            + delta;
        let now = usize::try_from(now).unwrap_or(0);
        self.status.update(&self.name, self.generation, |s| {
            s.connections = now;
            if now > 0 {
                s.state = "connected";
            }
        });
    }

    /// One of the app's connections, kept open until the bridge stops.
    async fn slot(self: Arc<Self>) {
        let Some(mut link) = self.open().await else {
            return;
        };
        loop {
            let event = tokio::select! {
                _ = self.wait_stop() => None,
                e = link.events.recv() => Some(e),
            };
            let Some(event) = event else {
                link.close();
                self.connected(-1);
                return;
            };
            match event {
                Some(LinkEvent::Disconnect(reason)) if reason == "link_disabled" => {
                    log::error!(
                        "socket mode: app {}: Slack disabled the Socket Mode link (link_disabled): the bridge stops; turn Socket Mode on again in the app's settings and reload",
                        self.name
                    );
                    self.reconnect("link_disabled");
                    self.status.update(&self.name, self.generation, |s| {
                        s.state = "stopped";
                        s.last_error = Some("link_disabled".to_owned());
                    });
                    let _ = self.stop_all.send(true);
                    link.close();
                    self.connected(-1);
                    return;
                }
                Some(LinkEvent::Disconnect(reason)) => {
                    // The replacement first; the old one serves until it is up.
                    self.reconnect(&reason);
                    log::info!(
                        "socket mode: app {}: disconnect ({reason}): opening the replacement",
                        self.name
                    );
                    let Some(next) = self.open().await else {
                        link.close();
                        self.connected(-1);
                        return;
                    };
                    link.close();
                    self.connected(-1);
                    link = next;
                }
                Some(LinkEvent::Closed(reason)) => {
                    self.reconnect(reason);
                    self.connected(-1);
                    let Some(next) = self.open().await else {
                        return;
                    };
                    link = next;
                }
                None => {
                    self.reconnect("closed");
                    self.connected(-1);
                    let Some(next) = self.open().await else {
                        return;
                    };
                    link = next;
                }
            }
        }
    }

    /// Opens a connection, backing off with jitter; `None` when the bridge stops (a
    /// fatal token error stops it here).
    async fn open(self: &Arc<Self>) -> Option<link::Link> {
        let mut failures: u32 = 0;
        loop {
            if self.stopping() {
                return None;
            }
            match link::open(&self.client, self.socket.app_token.expose()).await {
                Ok(ws) => {
                    let me = Arc::clone(self);
                    let dispatch: Dispatch = Arc::new(move |e, done| {
                        tokio::spawn(Arc::clone(&me).envelope(e, done));
                    });
                    let me = Arc::clone(self);
                    let other = move |_id: &str| me.count("other", "unsupported");
                    let link = link::spawn(ws, dispatch, other);
                    self.connected(1);
                    return Some(link);
                }
                Err(OpenError::Fatal(error)) => {
                    log::error!(
                        "socket mode: app {}: apps.connections.open answered {error}: the bridge stops; check the app token ({:?}, an xapp- token with connections:write) and reload",
                        self.name,
                        self.socket.app_token.source
                    );
                    self.reconnect("fatal");
                    self.status.update(&self.name, self.generation, |s| {
                        s.state = "stopped";
                        s.last_error = Some(error);
                    });
                    let _ = self.stop_all.send(true);
                    return None;
                }
                Err(OpenError::Retry { why, after }) => {
                    failures = failures.saturating_add(1);
                    self.reconnect(if after.is_some() {
                        "rate_limited"
                    } else {
                        "open_failed"
                    });
                    let wait = after.unwrap_or_else(|| backoff(failures));
                    log::warn!(
                        "socket mode: app {}: {why}; next try in {wait:?}",
                        self.name
                    );
                    self.status.update(&self.name, self.generation, |s| {
                        if s.connections == 0 {
                            s.state = "backing_off";
                        }
                        s.last_error = Some(why);
                    });
                    tokio::select! {
                        _ = self.wait_stop() => return None,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    fn count(&self, kind: &str, result: &str) {
        self.metrics
            .envelopes
            .with_label_values(&[&self.name, kind, result])
            .inc();
    }

    /// One envelope: dedupe, the pipeline, the ack.
    async fn envelope(self: Arc<Self>, e: Envelope, done: mpsc::Sender<Done>) {
        let kind = e.kind.as_str();
        let mut first = self.seen.lock().arrive(&e.id, Instant::now());
        if matches!(first, Arrival::New) && self.shared_done(&e.id).await {
            self.seen.lock().finish(&e.id, true);
            first = Arrival::Done;
        }
        let (answer, result) = match first {
            Arrival::Done => (Some(envelope::ack(&e.id, None)), "duplicate"),
            Arrival::InFlight => (None, "duplicate"),
            Arrival::New => {
                let (ack, result) = self.deliver(&e).await;
                self.seen.lock().finish(&e.id, ack.is_some());
                if ack.is_some() {
                    self.mark_shared_done(&e.id).await;
                }
                (ack, result)
            }
        };
        self.count(kind, result);
        let _ = done.send(answer).await;
    }

    /// Whether another replica already acked envelope `id` (with the Redis backend; a
    /// failed read counts a fallback and goes on with this replica's own memory).
    async fn shared_done(&self, id: &str) -> bool {
        let shared = &self.gateway.shared;
        let Some(redis) = &shared.remote else {
            return false;
        };
        match redis.was_delivered(&self.name, &shared_key(id)).await {
            Ok(done) => done,
            Err(_) => {
                shared.metrics.count_fallback(StateOp::Dedupe);
                false
            }
        }
    }

    /// Records for every replica that envelope `id` was acked.
    async fn mark_shared_done(&self, id: &str) {
        let shared = &self.gateway.shared;
        let Some(redis) = &shared.remote else {
            return;
        };
        if redis
            .mark_delivered(&self.name, &shared_key(id), DEDUPE_TTL.as_secs())
            .await
            .is_err()
        {
            shared.metrics.count_fallback(StateOp::Dedupe);
        }
    }

    async fn deliver(&self, e: &Envelope) -> (Option<String>, &'static str) {
        let snap = self.gateway.shared.current();
        let route = self
            .socket
            .paths
            .for_type(e.kind.as_str())
            .and_then(|path| {
                snap.policy
                    .routes
                    .iter()
                    .find(|r| r.app.name == self.name && r.path == *path)
            });
        let Some(route) = route.cloned() else {
            return (Some(envelope::ack(&e.id, None)), "unrouted");
        };
        drop(snap);
        let mut req = SocketRequest::new(&route, e, SystemTime::now());
        let mut ctx = self.gateway.context();
        let ran = self.gateway.handle(&mut req, &mut ctx).await;
        let forwarded = ctx.upstream_status.is_some();
        self.gateway.record(&mut ctx);
        let Some(answer) = req.answer.filter(|_| ran.is_ok()) else {
            return (None, "failed");
        };
        let ok = (200..300).contains(&answer.status);
        if forwarded {
            if !ok {
                return (None, "failed");
            }
            let payload = e
                .accepts_response_payload
                .then(|| envelope::answer_payload(&answer.body))
                .flatten();
            return (Some(envelope::ack(&e.id, payload)), "delivered");
        }
        if answer.status >= 500 {
            // The gateway could not decide (state unavailable, no upstream): Slack retries.
            return (None, "failed");
        }
        (Some(envelope::ack(&e.id, None)), "denied")
    }
}

/// The shared-state key of an envelope id: apart from the Events API `event_id`s that
/// `dedupe: event_id` records under the same app.
fn shared_key(id: &str) -> String {
    format!("envelope:{id}")
}

/// A back-off of 1 s doubling to [`MAX_BACKOFF`], with full jitter.
fn backoff(failures: u32) -> Duration {
    let cap = Duration::from_secs(1u64 << failures.min(6).saturating_sub(1)).min(MAX_BACKOFF);
    let mut b = [0u8; 2];
    let r = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    let frac = if r.is_ok() {
        f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX)
    } else {
        0.5
    };
    Duration::from_millis(250) + cap.mul_f64(frac)
}

/// Envelope ids seen, per app.
#[derive(Default)]
struct Seen {
    ids: HashMap<String, (bool, Instant)>,
    order: VecDeque<(String, Instant)>,
}

enum Arrival {
    New,
    InFlight,
    Done,
}

impl Seen {
    fn arrive(&mut self, id: &str, now: Instant) -> Arrival {
        while let Some((old, at)) = self.order.front() {
            if self.order.len() <= DEDUPE_CAP && now.duration_since(*at) < DEDUPE_TTL {
                break;
            }
            if self.ids.get(old).is_some_and(|(_, t)| t == at) {
                self.ids.remove(old);
            }
            self.order.pop_front();
        }
        match self.ids.get(id) {
            Some((true, _)) => Arrival::Done,
            Some((false, _)) => Arrival::InFlight,
            None => {
                self.ids.insert(id.to_owned(), (false, now));
                self.order.push_back((id.to_owned(), now));
                Arrival::New
            }
        }
    }

    /// An acked envelope stays done; one not acked is forgotten, so Slack's redelivery
    /// goes through.
    fn finish(&mut self, id: &str, acked: bool) {
        if acked {
            if let Some(e) = self.ids.get_mut(id) {
                e.0 = true;
            }
        } else {
            self.ids.remove(id);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn dedupe_keeps_acked_ids_and_forgets_failed_ones() {
        let mut s = Seen::default();
        let t = Instant::now();
        assert!(matches!(s.arrive("a", t), Arrival::New));
        assert!(matches!(s.arrive("a", t), Arrival::InFlight));
        s.finish("a", true);
        assert!(matches!(s.arrive("a", t), Arrival::Done));
        assert!(matches!(s.arrive("b", t), Arrival::New));
        s.finish("b", false);
        assert!(matches!(s.arrive("b", t), Arrival::New));
        let later = t + DEDUPE_TTL + Duration::from_secs(1);
        assert!(matches!(s.arrive("a", later), Arrival::New));
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for n in 0..40 {
            let b = backoff(n);
            assert!(b >= Duration::from_millis(250) && b <= MAX_BACKOFF + Duration::from_secs(1));
        }
        assert!(backoff(1) <= Duration::from_millis(1250));
    }
}
