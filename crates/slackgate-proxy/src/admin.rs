//! The admin listener: `GET /metrics /healthz /readyz /status`, `POST /reload`.
//!
//! It binds to its own address (loopback by default) and never serves Slack traffic.
//! `/status` lists secret ids, sources and expiries, never secret values.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::protocols::http::ServerSession;
use serde_json::json;

use slackgate_policy::{BotToken, SecretRef};

use crate::core::audit::rfc3339;
use crate::core::metrics::{BotTokenView, GuardLevels};
use crate::core::state::Shared;
use crate::egress::{ScopeLedger, TokenVault};
use crate::groups::UserGroups;
use crate::net::conn::Linger;
use crate::net::front::{ConnLimits, Door, NoFastPath};

/// The admin HTTP application.
#[derive(Debug, Clone)]
pub struct AdminApp {
    shared: Arc<Shared>,
    features: Features,
}

/// The features' state the server owns and the admin listener reports on.
#[derive(Debug, Clone, Default)]
pub struct Features {
    /// The rotating bots' tokens.
    pub vault: Arc<TokenVault>,
    /// The scopes the bots' calls needed.
    pub ledger: Arc<ScopeLedger>,
    /// The user groups' reads.
    pub groups: Arc<UserGroups>,
    /// The Socket Mode bridges' states.
    pub sockets: Arc<crate::socket::SocketStatus>,
}

impl AdminApp {
    /// An admin app over the gateway's shared state and the features' state.
    pub fn new(shared: Arc<Shared>, features: Features) -> Self {
        Self { shared, features }
    }

    /// The state of `bot`'s token: `revoked` (a verified lifecycle event), else the
    /// vault's `active`, `pending` or `expired`.
    fn token_state(&self, bot: &slackgate_policy::Bot) -> &'static str {
        if self.shared.guard.token_revoked_by(bot).is_some() {
            return "revoked";
        }
        self.features
            .vault
            .state(bot, self.shared.guard.clock().now())
            .as_str()
    }

    /// The `/status` document.
    pub fn status(&self) -> serde_json::Value {
        let snap = self.shared.current();
        let reload = self.shared.reload_status();
        let routes: Vec<_> = snap
            .policy
            .routes
            .iter()
            .map(|r| {
                json!({
                    "name": r.name.as_ref(),
                    "path": r.path.as_ref(),
                    "host": r.host.as_deref(),
                    "app": r.app.name.as_ref(),
                    "upstream": r.upstream.name.as_ref(),
                    "mode": r.mode.as_str(),
                    "on_deny": r.on_deny.as_str(),
                })
            })
            .collect();
        let now = SystemTime::now();
        let secrets: Vec<_> = snap
            .policy
            .apps
            .values()
            .flat_map(|app| {
                app.secrets.iter().map(move |s| {
                    json!({
                        "app": app.name.as_ref(),
                        "id": s.key.id(),
                        "source": match &s.source {
                            SecretRef::Env(name) => format!("env:{name}"),
                            SecretRef::File(path) => format!("file:{}", path.display()),
                        },
                        "expires": s.expires.map(rfc3339),
                        "live": s.expires.is_none_or(|e| e > now),
                    })
                })
            })
            .collect();
        let upstreams: Vec<_> = snap
            .pools
            .values()
            .map(|p| {
                json!({
                    "name": p.name.as_ref(),
                    "targets": p.targets.iter().map(|t| json!({
                        "target": t.spec.as_ref(),
                        "healthy": t.is_healthy(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let source = |r: &SecretRef| match r {
            SecretRef::Env(name) => format!("env:{name}"),
            SecretRef::File(path) => format!("file:{}", path.display()),
        };
        // Per bot: where its key and token come from (never their values) and what its
        // calls showed of its scopes.
        let scopes = self.features.ledger.all();
        let bots: serde_json::Map<String, serde_json::Value> = snap
            .policy
            .bots
            .iter()
            .map(|b| {
                let seen = scopes.get(&*b.name).cloned().unwrap_or_default();
                let token_state = self.token_state(b);
                let token = match &b.token {
                    BotToken::Static(c) => json!(source(&c.source)),
                    BotToken::Rotating(r) => json!({
                        "rotation": {
                            "client_id": &*r.client_id,
                            "client_secret": source(&r.client_secret.source),
                            "refresh_token": source(&r.refresh_token.source),
                        }
                    }),
                };
                (
                    b.name.to_string(),
                    json!({
                        "key": source(&b.key.source),
                        "token": token,
                        "team": b.team.as_deref(),
                        "mode": b.mode.as_str(),
                        "token_state": token_state,
                        "rotation": self.features.vault.status(b),
                        "calls_with_scopes": seen.calls,
                        "granted_scopes": seen.granted,
                        "needed_scopes": seen.needed,
                        "unused_scopes": seen.unused(),
                    }),
                )
            })
            .collect();
        let egress = snap.config.egress.as_ref().map(|e| {
            json!({
                "listen": e.listen.addr.to_string(),
                "slack_api": format!(
                    "{}://{}{}",
                    if e.slack_api.tls { "https" } else { "http" },
                    e.slack_api.authority(),
                    e.slack_api.path
                ),
                "bots": bots,
            })
        });
        json!({
            "ready": self.shared.is_ready(),
            "generation": snap.generation,
            "hash": snap.policy.hash,
            "loaded_at": rfc3339(snap.loaded_at),
            "config": self.shared.config_path.display().to_string(),
            "policy": snap.config.policy_path.display().to_string(),
            "last_reload_attempt": reload.last_attempt,
            "last_reload_error": reload.last_error,
            "routes": routes,
            "secrets": secrets,
            "upstreams": upstreams,
            "egress": egress,
            "groups": crate::groups::status(&self.shared, &self.features.groups),
            "socket_mode": self.features.sockets.to_json(),
            "state": {
                "backend": if self.shared.remote.is_some() { "redis" } else { "local" },
                "redis": self.shared.remote.as_ref().map(|r| r.name()),
                "circuit_open": self.shared.remote.as_ref().is_some_and(|r| r.circuit_open()),
                "error": self.shared.remote.as_ref().and_then(|r| r.last_error()),
            },
        })
    }
}

impl AdminApp {
    /// Whether the shared state answers, where a route needs it: with Redis and a route
    /// with `state_failure: fail_closed`, a Redis that does not answer (or an open circuit)
    /// makes the replica not ready, since that route would answer only 503s. A Redis that
    /// refuses the credentials (or the TLS handshake) makes it not ready whatever the
    /// routes say: no retry mends that. `Err` is the reason, for the answer's body.
    async fn state_ready(&self) -> Result<(), String> {
        let Some(remote) = &self.shared.remote else {
            return Ok(());
        };
        let ping = remote.ping().await;
        if let Some(refused) = remote.refused() {
            return Err(format!("shared state: {refused}"));
        }
        let needed = self
            .shared
            .current()
            .policy
            .routes
            .iter()
            .any(|r| r.state_failure == slackgate_policy::StateFailure::FailClosed);
        match ping {
            Err(e) if needed => Err(format!("shared state: {}: {e}", remote.name())),
            _ => Ok(()),
        }
    }
}

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    let len = resp.body().len();
    resp.headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    resp
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Vec<u8>> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    respond(status, "application/json", body)
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, http: &mut ServerSession) -> Response<Vec<u8>> {
        let method = http.req_header().method.clone();
        let path = http.req_header().uri.path().to_owned();
        match (method, path.as_str()) {
            (Method::GET, "/metrics") => {
                let limiter = self.shared.guard.rate_limiter();
                let replay = self.shared.guard.replay_cache();
                let m = &self.shared.metrics;
                m.observe_guard(GuardLevels {
                    rate_limit_keys: limiter.len(),
                    rate_limit_evictions: limiter.evictions(),
                    replay_entries: replay.len(),
                    replay_evictions: replay.evictions(),
                });
                let open = self
                    .shared
                    .remote
                    .as_ref()
                    .is_some_and(|r| r.circuit_open());
                m.state_circuit_open.set(i64::from(open));
                let snap = self.shared.current();
                m.observe_token_states(snap.policy.bots.iter().map(|b| BotTokenView {
                    name: &b.name,
                    state: self.token_state(b),
                    rotating: b.token.rotation().is_some(),
                    expires_at: self.features.vault.expires_at(b),
                    stuck: self.features.vault.is_stuck(b),
                }));
                respond(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    m.render(),
                )
            }
            (Method::GET, "/healthz") => respond(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            (Method::GET, "/readyz") => {
                let state = self.state_ready().await;
                if let (true, Err(why)) = (self.shared.is_ready(), &state) {
                    respond(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        format!("not ready: {why}\n").into_bytes(),
                    )
                } else if self.shared.is_ready() {
                    respond(StatusCode::OK, "text/plain", b"ready\n".to_vec())
                } else {
                    respond(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        b"not ready\n".to_vec(),
                    )
                }
            }
            (Method::GET, "/status") => json_response(StatusCode::OK, &self.status()),
            (Method::POST, "/reload") => {
                let shared = Arc::clone(&self.shared);
                match tokio::task::spawn_blocking(move || shared.reload()).await {
                    Ok(outcome) => {
                        let status = if outcome.ok {
                            StatusCode::OK
                        } else {
                            StatusCode::UNPROCESSABLE_ENTITY
                        };
                        json_response(status, &json!(outcome))
                    }
                    Err(_) => json_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &json!({"ok": false, "errors": ["reload task failed"]}),
                    ),
                }
            }
            (_, "/metrics" | "/healthz" | "/readyz" | "/status" | "/reload") => respond(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                b"method not allowed\n".to_vec(),
            ),
            _ => respond(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        }
    }
}

/// The most connections the admin listener holds at once: probes and a scraper need a
/// handful, and a flood of them must not take descriptors the doors need.
pub(crate) const ADMIN_MAX_CONNECTIONS: usize = 64;
/// The admin listener's head limits: its requests are a request line and a few headers.
const ADMIN_MAX_HEAD: usize = 8 * 1024;
const ADMIN_HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// The admin listener behind the front: every request goes to pingora's session and
/// [`AdminApp`], after the front judged its head within the admin's own small limits.
pub(crate) struct AdminDoor {
    app: Arc<HttpServer<AdminApp>>,
    shared: Arc<Shared>,
}

impl AdminDoor {
    /// The door of `shared`'s admin listener, reporting on `features`.
    pub(crate) fn new(shared: Arc<Shared>, features: Features) -> Self {
        AdminDoor {
            app: Arc::new(HttpServer::new_app(AdminApp::new(
                Arc::clone(&shared),
                features,
            ))),
            shared,
        }
    }
}

impl Door for AdminDoor {
    type Fast = NoFastPath;
    type Fallback = HttpServer<AdminApp>;

    fn fast(&self) -> Option<&NoFastPath> {
        None
    }

    fn fallback(&self) -> &Arc<HttpServer<AdminApp>> {
        &self.app
    }

    fn limits(&self) -> ConnLimits {
        let limits = &self.shared.current().config.limits;
        let mut conn = ConnLimits::of(limits);
        conn.head.max_bytes = conn.head.max_bytes.min(ADMIN_MAX_HEAD);
        conn.head.timeout = conn.head.timeout.min(ADMIN_HEAD_TIMEOUT);
        // `POST /reload` has no body worth the name.
        conn.linger = Linger {
            time: conn.linger.time.min(ADMIN_HEAD_TIMEOUT),
            bytes: ADMIN_MAX_HEAD,
        };
        conn
    }

    fn refused(&self, _peer: std::net::IpAddr, reason: slackgate_guard::Reason) {
        // Not Slack traffic: no audit record, a line for the operator.
        log::debug!("admin: request head refused: {reason}");
    }
}
