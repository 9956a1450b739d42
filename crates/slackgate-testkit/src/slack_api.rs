//! A Slack Web API stand-in: an HTTPS (or plain HTTP) server on `127.0.0.1:0` that answers
//! `/api/<method>` calls the way Slack documents them, and records every request it got.
//!
//! The gateway's egress door forwards bot calls to `egress.slack_api`; tests, the benchmark
//! and `slackgate demo` point that at [`SlackApi::url`] and trust [`SlackApi::ca_file`].
//!
//! What is modelled, and where Slack documents it:
//! - Methods live at `/api/METHOD`; arguments come from the query string and from
//!   `application/x-www-form-urlencoded` or `application/json` POST bodies; a failed call is
//!   HTTP 200 with `{"ok":false,"error":...}`; a POST body without a charset in a JSON
//!   content type earns the `missing_charset` warning, a form content type with one
//!   `superfluous_charset` (<https://docs.slack.dev/apis/web-api>).
//! - Tokens are read from `Authorization: Bearer` or a `token` form field of the POST body.
//!   A JSON body must present its token in the header: a `token` member of a JSON body is not
//!   a credential (<https://docs.slack.dev/apis/web-api#posting_json>,
//!   <https://docs.slack.dev/changelog/2017-10-keeping-up-with-the-jsons>). A `token` in the
//!   query string is not read either, as for every app created after 2021-02-24
//!   (<https://docs.slack.dev/changelog/2020-11-no-more-tokens-in-querystrings-for-newly-created-apps>).
//!   No token: `not_authed`; an unknown one: `invalid_auth`; a revoked one: `token_revoked`;
//!   an expired rotated one: `token_expired` (<https://docs.slack.dev/authentication/tokens>).
//! - Every answer to an authenticated call carries `x-oauth-scopes` (granted) and
//!   `x-accepted-oauth-scopes` (what the method accepts); a token holding none of the accepted
//!   scopes gets `missing_scope` with `needed` and `provided`
//!   (<https://docs.slack.dev/reference/scopes>, each method's page under
//!   <https://docs.slack.dev/reference/methods>).
//! - Rate limits: HTTP 429, `Retry-After: <seconds>`, `{"ok":false,"error":"ratelimited"}`
//!   (<https://docs.slack.dev/apis/web-api/rate-limits>).
//! - Token rotation: `oauth.v2.access` with `grant_type=refresh_token` trades a refresh token,
//!   once, for a new expiring access token and a new refresh token
//!   (<https://docs.slack.dev/authentication/using-token-rotation>,
//!   <https://docs.slack.dev/reference/methods/oauth.v2.access>).
//!
//! Not modelled: `multipart/form-data` and `text/plain` bodies (answered `invalid_post_type`,
//! though Slack lists both as valid), `invalid_form_data` and `request_timeout`, OAuth installs
//! (`grant_type=authorization_code`), pagination, channel membership, real message storage
//! beyond what `conversations.history` returns from this stand-in's own posts.
//!
//! The HTTP side is HTTP/1.1 with keep-alive, `Content-Length` and chunked request bodies,
//! `Expect: 100-continue`; every answer is JSON (`application/json; charset=utf-8`) framed by
//! `Content-Length`. A request that cannot be framed gets 400 (413 above 16 MiB), is recorded,
//! and ends its connection. Nothing on the network path panics.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest request head read, in bytes.
const MAX_HEAD: usize = 64 * 1024;
/// The largest request body read, in bytes (Slack's own limits are far below).
const MAX_BODY: usize = 16 * 1024 * 1024;
/// How long a connection may sit idle, or a request may take to arrive.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The user id of the stand-in's bot user (`auth.test`, posted messages).
pub const BOT_USER_ID: &str = "U0BOT";
/// The bot id of the stand-in's bot (`auth.test`, posted messages).
pub const BOT_ID: &str = "B0BOT";
/// The app id the stand-in reports (`oauth.v2.access`).
pub const APP_ID: &str = "A0STANDIN";

// === Public types ===

/// One request as the stand-in saw it, with the answer it gave.
#[derive(Debug, Clone)]
pub struct Received {
    /// Which connection carried it, numbered from 1 in accept order (keep-alive reuse shows
    /// as several requests with one number).
    pub conn: u64,
    /// The Web API method: the path after `/api/` (empty when the path is not `/api/...`
    /// or the head could not be parsed).
    pub method: String,
    /// The HTTP method (`GET`, `POST`; empty when the head could not be parsed).
    pub http_method: String,
    /// The request target as sent (path and query).
    pub target: String,
    /// The raw head bytes, request line to the blank line (for a head that could not be
    /// parsed: what had arrived).
    pub head: Vec<u8>,
    /// Headers in arrival order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The query string, without the `?`.
    pub query: String,
    /// The body bytes (for a chunked body: the payload, de-chunked).
    pub body: Vec<u8>,
    /// Whether the body arrived chunked.
    pub chunked: bool,
    /// The token presented where Slack reads one (`Authorization: Bearer`, else a `token`
    /// field of a form body), valid or not. A query-string or JSON-body `token` is not one.
    pub token: Option<String>,
    /// The answer given.
    pub answer: Answer,
}

/// What the stand-in answered to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The `ok` member of the JSON body.
    pub ok: bool,
    /// The `error` member of the JSON body, if any.
    pub error: Option<String>,
}

impl Received {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::first_header(&self.headers, name)
    }

    /// An argument as Slack reads it: a JSON body member, else a form body field, else a
    /// query-string parameter. Non-string JSON members come back as JSON text.
    pub fn arg(&self, name: &str) -> Option<String> {
        Args::read(&self.query, &self.headers, &self.body)
            .ok()
            .and_then(|a| a.get(name))
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Builds a [`SlackApi`].
#[derive(Debug)]
pub struct SlackApiBuilder {
    tokens: Vec<(String, Grant)>,
    revoked: Vec<String>,
    usergroups: Vec<(String, Vec<String>)>,
    rotation: Option<RotationSpec>,
    plain: bool,
    threads: usize,
    record: bool,
}

#[derive(Debug, Clone)]
struct RotationSpec {
    client_id: String,
    client_secret: String,
    first_refresh_token: String,
    lifetime_secs: u64,
}

/// A running Slack Web API stand-in. Stops (blocking) when dropped.
#[derive(Debug)]
pub struct SlackApi {
    addr: SocketAddr,
    tls: bool,
    ca: TestCa,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    workspace: Mutex<Workspace>,
    received: Mutex<Vec<Received>>,
    /// Whether requests are kept in `received` (else only counted in `unrecorded`).
    record: bool,
    unrecorded: AtomicU64,
    conns: AtomicU64,
    bytes: AtomicU64,
    handshake_failures: AtomicU64,
}

// === impl SlackApiBuilder ===

impl SlackApiBuilder {
    /// Grants `token` to an installation on `team` with these scopes.
    ///
    /// The first token given is also the installation that [`Self::rotation`] refreshes.
    pub fn token(mut self, token: &str, team: &str, scopes: &[&str]) -> Self {
        self.tokens
            .push((token.to_owned(), Grant::new(team, scopes)));
        self
    }

    /// Marks a token revoked from the start: its calls answer `token_revoked`.
    pub fn revoke(mut self, token: &str) -> Self {
        self.revoked.push(token.to_owned());
        self
    }

    /// Sets the members of a user group (`usergroups.users.list`).
    pub fn usergroup(mut self, id: &str, members: &[&str]) -> Self {
        self.usergroups.push((
            id.to_owned(),
            members.iter().map(|m| (*m).to_owned()).collect(),
        ));
        self
    }

    /// Turns on token rotation for the first installation: `oauth.v2.access` with
    /// `grant_type=refresh_token`, this client id and secret and `first_refresh_token`
    /// answers a new access token valid for `lifetime_secs` and a new refresh token. Each
    /// refresh token works once.
    pub fn rotation(
        mut self,
        client_id: &str,
        client_secret: &str,
        first_refresh_token: &str,
        lifetime_secs: u64,
    ) -> Self {
        self.rotation = Some(RotationSpec {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            first_refresh_token: first_refresh_token.to_owned(),
            lifetime_secs,
        });
        self
    }

    /// Serves plain HTTP instead of HTTPS (the certificate is still generated).
    pub fn plain(mut self) -> Self {
        self.plain = true;
        self
    }

    /// Keeps no [`Received`] records, only their count: for the benchmark, whose millions
    /// of requests would otherwise all stay in memory.
    pub fn unrecorded(mut self) -> Self {
        self.record = false;
        self
    }

    /// How many runtime worker threads serve connections (default 1).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    /// Binds `127.0.0.1:0` and starts serving on a thread of its own. The listener is bound
    /// before this returns, so the stand-in accepts connections at once.
    pub fn start(self) -> SlackApi {
        let mut workspace = Workspace::new(u64::try_from(crate::now_unix()).unwrap_or(0));
        for (token, grant) in &self.tokens {
            workspace.tokens.insert(token.clone(), grant.clone());
        }
        for token in &self.revoked {
            workspace.revoke(token);
        }
        for (id, members) in self.usergroups {
            workspace.usergroups.insert(id, members);
        }
        if let Some(spec) = self.rotation {
            let grant = self
                .tokens
                .first()
                .map(|(_, g)| g.clone())
                .unwrap_or_else(|| Grant::new("T0STANDIN", &[]));
            workspace.rotation = Some(Rotation::new(spec, grant));
        }

        let ca = TestCa::generate();
        let acceptor = if self.plain {
            None
        } else {
            Some(pingora::tls::TlsAcceptor::from(Arc::new(
                ca.server_config(),
            )))
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("stand-in addr");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.threads)
            .thread_name("slack-standin")
            .enable_all()
            .build()
            .expect("stand-in runtime");
        let shared = Arc::new(Shared {
            workspace: Mutex::new(workspace),
            received: Mutex::new(Vec::new()),
            record: self.record,
            unrecorded: AtomicU64::new(0),
            conns: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            handshake_failures: AtomicU64::new(0),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let accept_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("slack-standin-accept".into())
            .spawn(move || {
                runtime.block_on(accept_loop(listener, acceptor, accept_shared, stopped));
                // Dropping the runtime cancels every open connection.
                drop(runtime);
            })
            .expect("stand-in thread");
        SlackApi {
            addr,
            tls: !self.plain,
            ca,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

// === impl SlackApi ===

impl SlackApi {
    /// A builder with no tokens.
    pub fn builder() -> SlackApiBuilder {
        SlackApiBuilder {
            tokens: Vec::new(),
            revoked: Vec::new(),
            usergroups: Vec::new(),
            rotation: None,
            plain: false,
            threads: 1,
            record: true,
        }
    }

    /// The base URL, as `egress.slack_api` takes it: `https://127.0.0.1:PORT/api/`
    /// (`http://` with [`SlackApiBuilder::plain`]).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/api/", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The PEM file of the test CA that signed the server certificate (SANs `127.0.0.1`,
    /// `localhost`), for `egress.ca_file`.
    pub fn ca_file(&self) -> &Path {
        &self.ca.pem_file
    }

    /// The test CA certificate in DER, for building client trust stores.
    pub fn ca_der(&self) -> &[u8] {
        &self.ca.der
    }

    /// The next call to `method` by a valid token answers 429 with `Retry-After: secs`;
    /// later calls answer normally.
    pub fn rate_limit(&self, method: &str, secs: u64) {
        lock(&self.shared.workspace).limits.once(method, secs);
    }

    /// Every call to `method` by a valid token (for `oauth.v2.access`: every call)
    /// answers 429 for the next `window`, with
    /// `Retry-After` the whole seconds left (at least 1).
    pub fn rate_limit_for(&self, method: &str, window: Duration) {
        lock(&self.shared.workspace)
            .limits
            .window(method, Instant::now() + window);
    }

    /// Revokes a token: its calls answer `token_revoked` from now on (a token it never
    /// knew is then known, and revoked). [`Self::grant`] undoes it.
    pub fn revoke(&self, token: &str) {
        lock(&self.shared.workspace).revoke(token);
    }

    /// Grants (or re-grants, un-revoking) `token` on `team` with these scopes.
    pub fn grant(&self, token: &str, team: &str, scopes: &[&str]) {
        lock(&self.shared.workspace)
            .tokens
            .insert(token.to_owned(), Grant::new(team, scopes));
    }

    /// Sets the members of a user group from now on.
    pub fn set_usergroup(&self, id: &str, members: &[&str]) {
        lock(&self.shared.workspace).usergroups.insert(
            id.to_owned(),
            members.iter().map(|m| (*m).to_owned()).collect(),
        );
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.shared.received).clone()
    }

    /// Every request received so far, forgetting them.
    pub fn take(&self) -> Vec<Received> {
        self.shared.unrecorded.store(0, Ordering::SeqCst);
        std::mem::take(&mut *lock(&self.shared.received))
    }

    /// How many requests were received (and not yet taken), recorded or not.
    pub fn count(&self) -> usize {
        let unrecorded = self.shared.unrecorded.load(Ordering::SeqCst);
        lock(&self.shared.received).len() + usize::try_from(unrecorded).unwrap_or(usize::MAX)
    }

    /// Bytes received on all connections (after TLS), including requests never completed.
    pub fn bytes_received(&self) -> u64 {
        self.shared.bytes.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.conns.load(Ordering::SeqCst)
    }

    /// TLS handshakes that failed (for example a client that does not trust the CA).
    pub fn handshake_failures(&self) -> u64 {
        self.shared.handshake_failures.load(Ordering::SeqCst)
    }

    /// Every refresh token ever presented to `oauth.v2.access`, in order, valid or not.
    pub fn refresh_tokens_presented(&self) -> Vec<String> {
        lock(&self.shared.workspace)
            .rotation
            .as_ref()
            .map(|r| r.presented.clone())
            .unwrap_or_default()
    }

    /// The refresh token that works now, if rotation is on.
    pub fn current_refresh_token(&self) -> Option<String> {
        lock(&self.shared.workspace)
            .rotation
            .as_ref()
            .map(|r| r.current.clone())
    }

    /// Every access token minted by rotation, in order.
    pub fn access_tokens_issued(&self) -> Vec<String> {
        lock(&self.shared.workspace)
            .rotation
            .as_ref()
            .map(|r| r.issued.clone())
            .unwrap_or_default()
    }

    /// Stops accepting, closes every connection and waits for the server thread.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SlackApi {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    fn record(&self, received: Received) {
        if self.record {
            lock(&self.received).push(received);
        } else {
            self.unrecorded.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// === The workspace: tokens, scopes, limits and method answers (pure, time passed in) ===

#[derive(Debug, Clone)]
struct Grant {
    team: String,
    scopes: Vec<String>,
    revoked: bool,
    expires: Option<Instant>,
}

impl Grant {
    fn new(team: &str, scopes: &[&str]) -> Self {
        Self {
            team: team.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            revoked: false,
            expires: None,
        }
    }
}

/// Per-method rate limits set by the test.
#[derive(Debug, Default)]
struct Limits {
    once: HashMap<String, u64>,
    until: HashMap<String, Instant>,
}

impl Limits {
    fn once(&mut self, method: &str, secs: u64) {
        self.once.insert(method.to_owned(), secs);
    }

    fn window(&mut self, method: &str, until: Instant) {
        self.until.insert(method.to_owned(), until);
    }

    /// The `Retry-After` seconds when this call is limited.
    fn check(&mut self, method: &str, now: Instant) -> Option<u64> {
        if let Some(&until) = self.until.get(method) {
            if now < until {
                let left = until - now;
                let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                return Some(secs.max(1));
            }
            self.until.remove(method);
        }
        self.once.remove(method)
    }
}

#[derive(Debug)]
struct Rotation {
    client_id: String,
    client_secret: String,
    lifetime_secs: u64,
    grant: Grant,
    /// The one refresh token that works now.
    current: String,
    /// Every refresh token ever presented, in order.
    presented: Vec<String>,
    /// Every access token minted, in order.
    issued: Vec<String>,
    seq: u64,
}

impl Rotation {
    fn new(spec: RotationSpec, grant: Grant) -> Self {
        Self {
            client_id: spec.client_id,
            client_secret: spec.client_secret,
            lifetime_secs: spec.lifetime_secs,
            grant,
            current: spec.first_refresh_token,
            presented: Vec::new(),
            issued: Vec::new(),
            seq: 0,
        }
    }
}

#[derive(Debug)]
struct Workspace {
    tokens: HashMap<String, Grant>,
    usergroups: HashMap<String, Vec<String>>,
    limits: Limits,
    rotation: Option<Rotation>,
    /// Messages posted through the stand-in: (channel, message), oldest first.
    messages: Vec<(String, Value)>,
    ts_base: u64,
    ts_seq: u64,
}

/// One call as the workspace sees it.
#[derive(Debug, Clone, Copy)]
struct Call<'a> {
    http_method: &'a str,
    target: &'a str,
    headers: &'a [(String, String)],
    body: &'a [u8],
}

/// The answer to one call, and what the record needs.
#[derive(Debug, Clone, PartialEq)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Value,
    method: String,
    token: Option<String>,
}

impl Reply {
    fn new(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body,
            method: String::new(),
            token: None,
        }
    }

    fn error(error: &str) -> Self {
        Self::new(200, json!({"ok": false, "error": error}))
    }

    fn answer(&self) -> Answer {
        Answer {
            status: self.status,
            ok: self
                .body
                .get("ok")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            error: self
                .body
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }
}

/// How a method authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthKind {
    /// A token, checked and scoped.
    Token,
    /// No credential (`api.test`).
    None,
    /// Client id and secret (`oauth.v2.access`).
    Client,
}

#[derive(Debug)]
struct MethodSpec {
    name: &'static str,
    auth: AuthKind,
    /// The scopes the method accepts; any one of them suffices (empty: none needed).
    scopes: &'static [&'static str],
}

const CONVERSATIONS_READ: &[&str] = &["channels:read", "groups:read", "im:read", "mpim:read"];
const CONVERSATIONS_HISTORY: &[&str] = &[
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
];

/// The methods the stand-in knows, with the scopes their reference pages list
/// (<https://docs.slack.dev/reference/methods>). Any other method is `unknown_method`.
const METHODS: &[MethodSpec] = &[
    MethodSpec {
        name: "api.test",
        auth: AuthKind::None,
        scopes: &[],
    },
    MethodSpec {
        name: "auth.test",
        auth: AuthKind::Token,
        scopes: &[],
    },
    MethodSpec {
        name: "auth.revoke",
        auth: AuthKind::Token,
        scopes: &[],
    },
    MethodSpec {
        name: "chat.postMessage",
        auth: AuthKind::Token,
        scopes: &["chat:write"],
    },
    MethodSpec {
        name: "chat.postEphemeral",
        auth: AuthKind::Token,
        scopes: &["chat:write"],
    },
    MethodSpec {
        name: "chat.update",
        auth: AuthKind::Token,
        scopes: &["chat:write"],
    },
    MethodSpec {
        name: "chat.delete",
        auth: AuthKind::Token,
        scopes: &["chat:write"],
    },
    MethodSpec {
        name: "conversations.info",
        auth: AuthKind::Token,
        scopes: CONVERSATIONS_READ,
    },
    MethodSpec {
        name: "conversations.list",
        auth: AuthKind::Token,
        scopes: CONVERSATIONS_READ,
    },
    MethodSpec {
        name: "conversations.history",
        auth: AuthKind::Token,
        scopes: CONVERSATIONS_HISTORY,
    },
    MethodSpec {
        name: "reactions.add",
        auth: AuthKind::Token,
        scopes: &["reactions:write"],
    },
    MethodSpec {
        name: "reactions.remove",
        auth: AuthKind::Token,
        scopes: &["reactions:write"],
    },
    MethodSpec {
        name: "users.info",
        auth: AuthKind::Token,
        scopes: &["users:read"],
    },
    MethodSpec {
        name: "usergroups.users.list",
        auth: AuthKind::Token,
        scopes: &["usergroups:read"],
    },
    MethodSpec {
        name: "oauth.v2.access",
        auth: AuthKind::Client,
        scopes: &[],
    },
];

fn method_spec(name: &str) -> Option<&'static MethodSpec> {
    METHODS.iter().find(|m| m.name == name)
}

impl Workspace {
    fn new(ts_base: u64) -> Self {
        Self {
            tokens: HashMap::new(),
            usergroups: HashMap::new(),
            limits: Limits::default(),
            rotation: None,
            messages: Vec::new(),
            ts_base,
            ts_seq: 0,
        }
    }

    fn revoke(&mut self, token: &str) {
        match self.tokens.get_mut(token) {
            Some(g) => g.revoked = true,
            None => {
                let mut g = Grant::new("", &[]);
                g.revoked = true;
                self.tokens.insert(token.to_owned(), g);
            }
        }
    }

    /// A fresh message timestamp, increasing: `<secs>.<6 digits>`.
    fn next_ts(&mut self) -> String {
        self.ts_seq += 1;
        format!(
            "{}.{:06}",
            self.ts_base + self.ts_seq / 1_000_000,
            self.ts_seq % 1_000_000
        )
    }

    /// Answers one call.
    fn call(&mut self, call: Call<'_>, now: Instant) -> Reply {
        let (path, query) = split_target(call.target);
        let Some(name) = path.strip_prefix("/api/") else {
            return Reply::new(404, json!({"ok": false, "error": "not_found"}));
        };
        let mut reply = self.call_method(name, query, call, now);
        reply.method = name.to_owned();
        reply
    }

    fn call_method(&mut self, name: &str, query: &str, call: Call<'_>, now: Instant) -> Reply {
        let Some(spec) = method_spec(name) else {
            return Reply::new(
                200,
                json!({"ok": false, "error": "unknown_method", "req_method": name}),
            );
        };
        if !matches!(call.http_method, "GET" | "POST") {
            return Reply::new(405, json!({"ok": false, "error": "method_not_allowed"}));
        }
        let args = match Args::read(query, call.headers, call.body) {
            Ok(a) => a,
            Err(e) => return Reply::error(e),
        };
        let token = presented_token(call.headers, &args);
        let mut reply = match spec.auth {
            AuthKind::None => api_test(&args),
            // Slack rate-limits oauth.v2.access too (Tier 4); a 429 is answered before the
            // call is read, so its refresh token counts as neither presented nor spent.
            AuthKind::Client => match self.limits.check(spec.name, now) {
                Some(secs) => {
                    let mut r = Reply::new(429, json!({"ok": false, "error": "ratelimited"}));
                    r.headers.push(("retry-after", secs.to_string()));
                    r
                }
                None => self.oauth_v2_access(call.headers, &args, now),
            },
            AuthKind::Token => self.authed(spec, token.as_deref(), &args, now),
        };
        reply.token = token;
        if let (Some(obj), false) = (reply.body.as_object_mut(), args.warnings.is_empty()) {
            obj.insert("warning".into(), Value::from(args.warnings.join(",")));
            obj.insert(
                "response_metadata".into(),
                json!({ "warnings": args.warnings }),
            );
        }
        reply
    }

    fn authed(
        &mut self,
        spec: &MethodSpec,
        token: Option<&str>,
        args: &Args,
        now: Instant,
    ) -> Reply {
        let Some(token) = token else {
            return Reply::error("not_authed");
        };
        let grant = match self.tokens.get(token) {
            None => return Reply::error("invalid_auth"),
            Some(g) if g.revoked => return Reply::error("token_revoked"),
            Some(Grant {
                expires: Some(t), ..
            }) if now >= *t => return Reply::error("token_expired"),
            Some(g) => g.clone(),
        };
        let scope_headers = vec![
            ("x-oauth-scopes", grant.scopes.join(",")),
            ("x-accepted-oauth-scopes", spec.scopes.join(",")),
        ];
        let mut reply = if let Some(secs) = self.limits.check(spec.name, now) {
            let mut r = Reply::new(429, json!({"ok": false, "error": "ratelimited"}));
            r.headers.push(("retry-after", secs.to_string()));
            r
        } else if !spec.scopes.is_empty()
            && !spec
                .scopes
                .iter()
                .any(|s| grant.scopes.iter().any(|g| g == s))
        {
            Reply::new(
                200,
                json!({
                    "ok": false,
                    "error": "missing_scope",
                    "needed": spec.scopes.join(","),
                    "provided": grant.scopes.join(","),
                }),
            )
        } else {
            self.method(spec.name, token, &grant, args)
        };
        reply.headers.extend(scope_headers);
        reply
    }

    /// A call that passed authentication, rate limit and scopes.
    fn method(&mut self, name: &str, token: &str, grant: &Grant, args: &Args) -> Reply {
        let ok = |mut v: Value| {
            if let Some(o) = v.as_object_mut() {
                o.insert("ok".into(), Value::Bool(true));
            }
            Reply::new(200, v)
        };
        match name {
            "auth.test" => ok(json!({
                "url": format!("https://{}.slack.com/", grant.team.to_ascii_lowercase()),
                "team": grant.team,
                "user": "standin-bot",
                "team_id": grant.team,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": false,
            })),
            "auth.revoke" => {
                let test = args.get("test").is_some_and(|t| t == "true" || t == "1");
                if !test {
                    self.revoke(token);
                }
                ok(json!({"revoked": !test}))
            }
            "chat.postMessage" => {
                let Some(channel) = args.get("channel").filter(|c| !c.is_empty()) else {
                    return Reply::error("channel_not_found");
                };
                if !has_content(args) {
                    return Reply::error("no_text");
                }
                let ts = self.next_ts();
                let message = json!({
                    "type": "message",
                    "user": BOT_USER_ID,
                    "bot_id": BOT_ID,
                    "text": args.get("text").unwrap_or_default(),
                    "ts": ts,
                });
                self.messages.push((channel.clone(), message.clone()));
                ok(json!({"channel": channel, "ts": ts, "message": message}))
            }
            "chat.postEphemeral" => {
                if args.get("channel").is_none_or(|c| c.is_empty()) {
                    return Reply::error("channel_not_found");
                }
                if args.get("user").is_none_or(|u| u.is_empty()) {
                    return Reply::error("user_not_in_channel");
                }
                if !has_content(args) {
                    return Reply::error("no_text");
                }
                let ts = self.next_ts();
                ok(json!({"message_ts": ts}))
            }
            "chat.update" | "chat.delete" => {
                let Some(channel) = args.get("channel").filter(|c| !c.is_empty()) else {
                    return Reply::error("channel_not_found");
                };
                let Some(ts) = args.get("ts").filter(|t| !t.is_empty()) else {
                    return Reply::error("message_not_found");
                };
                if name == "chat.update" {
                    let text = args.get("text").unwrap_or_default();
                    ok(json!({"channel": channel, "ts": ts, "text": text}))
                } else {
                    ok(json!({"channel": channel, "ts": ts}))
                }
            }
            "conversations.info" => match args.get("channel").filter(|c| !c.is_empty()) {
                Some(channel) => ok(json!({"channel": {"id": channel}})),
                None => Reply::error("channel_not_found"),
            },
            "conversations.list" => ok(json!({
                "channels": [],
                "response_metadata": {"next_cursor": ""},
            })),
            "conversations.history" => {
                let Some(channel) = args.get("channel").filter(|c| !c.is_empty()) else {
                    return Reply::error("channel_not_found");
                };
                let messages: Vec<Value> = self
                    .messages
                    .iter()
                    .rev()
                    .filter(|(c, _)| *c == channel)
                    .map(|(_, m)| m.clone())
                    .collect();
                ok(json!({"messages": messages, "has_more": false}))
            }
            "reactions.add" | "reactions.remove" => {
                let item = args.get("channel").is_some() && args.get("timestamp").is_some();
                if !item {
                    return Reply::error("no_item_specified");
                }
                if args.get("name").is_none_or(|n| n.is_empty()) {
                    return Reply::error("invalid_name");
                }
                ok(json!({}))
            }
            "users.info" => match args.get("user").filter(|u| !u.is_empty()) {
                Some(user) => ok(json!({"user": {
                    "id": user,
                    "team_id": grant.team,
                    "name": user.to_ascii_lowercase(),
                    "deleted": false,
                    "is_bot": false,
                }})),
                None => Reply::error("user_not_found"),
            },
            "usergroups.users.list" => {
                let group = args.get("usergroup").unwrap_or_default();
                match self.usergroups.get(&group) {
                    Some(users) => ok(json!({"users": users})),
                    None => Reply::error("no_such_subteam"),
                }
            }
            _ => ok(json!({})),
        }
    }

    /// `oauth.v2.access` with `grant_type=refresh_token`. The client authenticates with
    /// HTTP Basic (preferred by the docs) or `client_id` / `client_secret` arguments.
    fn oauth_v2_access(
        &mut self,
        headers: &[(String, String)],
        args: &Args,
        now: Instant,
    ) -> Reply {
        let refresh = args.get("refresh_token");
        let Some(rotation) = self.rotation.as_mut() else {
            return Reply::error("invalid_client_id");
        };
        if let Some(r) = &refresh {
            rotation.presented.push(r.clone());
        }
        let (id, secret) = match basic_credentials(headers) {
            Some(pair) => (Some(pair.0), Some(pair.1)),
            None => (args.get("client_id"), args.get("client_secret")),
        };
        if id.as_deref() != Some(rotation.client_id.as_str()) {
            return Reply::error("invalid_client_id");
        }
        if secret.as_deref() != Some(rotation.client_secret.as_str()) {
            return Reply::error("bad_client_secret");
        }
        match args.get("grant_type").as_deref() {
            Some("refresh_token") => {}
            None | Some("authorization_code") => return Reply::error("invalid_code"),
            Some(_) => return Reply::error("invalid_grant_type"),
        }
        match refresh {
            Some(r) if r == rotation.current => {}
            _ => return Reply::error("invalid_refresh_token"),
        }
        rotation.seq += 1;
        let n = rotation.seq;
        let access = format!("xoxe.xoxb-1-standin-{n}");
        rotation.current = format!("xoxe-1-standin-refresh-{n}");
        rotation.issued.push(access.clone());
        let mut grant = rotation.grant.clone();
        grant.expires = Some(now + Duration::from_secs(rotation.lifetime_secs));
        let body = json!({
            "ok": true,
            "app_id": APP_ID,
            "authed_user": {"id": "U0INSTALLER"},
            "scope": grant.scopes.join(","),
            "token_type": "bot",
            "access_token": access,
            "bot_user_id": BOT_USER_ID,
            "refresh_token": rotation.current,
            "expires_in": rotation.lifetime_secs,
            "team": {"id": grant.team, "name": grant.team},
            "enterprise": null,
            "is_enterprise_install": false,
        });
        self.tokens.insert(access, grant);
        Reply::new(200, body)
    }
}

/// Whether a message call names its content: one of `text`, `blocks`, `attachments`,
/// `markdown_text` (else `no_text`, <https://docs.slack.dev/reference/methods/chat.postMessage>).
fn has_content(args: &Args) -> bool {
    ["text", "blocks", "attachments", "markdown_text"]
        .iter()
        .any(|k| args.get(k).is_some_and(|v| !v.is_empty()))
}

/// `api.test`: echoes its arguments; an `error` argument makes it fail with that error.
fn api_test(args: &Args) -> Reply {
    let echoed: Map<String, Value> = args
        .names()
        .into_iter()
        .filter(|n| n != "token")
        .filter_map(|n| args.get(&n).map(|v| (n, Value::from(v))))
        .collect();
    match args.get("error") {
        Some(e) => Reply::new(200, json!({"ok": false, "error": e, "args": echoed})),
        None if echoed.is_empty() => Reply::new(200, json!({"ok": true})),
        None => Reply::new(200, json!({"ok": true, "args": echoed})),
    }
}

/// Splits a request target into path and query; an absolute-form target loses its
/// scheme and authority.
fn split_target(target: &str) -> (&str, &str) {
    let target = ["http://", "https://"]
        .iter()
        .find_map(|s| target.strip_prefix(s))
        .map(|rest| rest.find('/').map_or("/", |i| &rest[i..]))
        .unwrap_or(target);
    target.split_once('?').unwrap_or((target, ""))
}

/// The token Slack would read: `Authorization: Bearer`, else a `token` field of a form body.
fn presented_token(headers: &[(String, String)], args: &Args) -> Option<String> {
    let bearer = headers
        .iter()
        .filter(|(k, _)| k == "authorization")
        .find_map(|(_, v)| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            let token = rest.trim();
            (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
        });
    bearer.or_else(|| {
        args.form
            .iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.clone())
    })
}

/// `Authorization: Basic base64(id:secret)`.
fn basic_credentials(headers: &[(String, String)]) -> Option<(String, String)> {
    let value = crate::first_header(headers, "authorization")?;
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(b64.trim())?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// Standard base64 with optional padding; `None` on any other byte.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in s.trim_end_matches('=').bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

// === Arguments, as Slack reads them ===

/// A call's arguments: query string, form body, JSON body.
#[derive(Debug, Default)]
struct Args {
    query: Vec<(String, String)>,
    form: Vec<(String, String)>,
    json: Option<Map<String, Value>>,
    warnings: Vec<&'static str>,
}

impl Args {
    /// Reads the query and the body by its content type. The error is the Slack error code
    /// for a body it cannot read.
    fn read(query: &str, headers: &[(String, String)], body: &[u8]) -> Result<Self, &'static str> {
        let mut args = Args {
            query: form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            ..Args::default()
        };
        let content_type = crate::first_header(headers, "content-type");
        if body.is_empty() {
            return Ok(args);
        }
        let Some(content_type) = content_type else {
            return Err("missing_post_type");
        };
        let mut parts = content_type.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let charset = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))
            .map(|(_, v)| v.trim().trim_matches('"').to_ascii_lowercase());
        if let Some(c) = &charset {
            if c != "utf-8" && c != "iso-8859-1" {
                return Err("invalid_charset");
            }
        }
        match media.as_str() {
            "application/x-www-form-urlencoded" => {
                if charset.is_some() {
                    args.warnings.push("superfluous_charset");
                }
                args.form = form_urlencoded::parse(body)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
            }
            "application/json" => {
                if charset.is_none() {
                    args.warnings.push("missing_charset");
                }
                match serde_json::from_slice::<Value>(body) {
                    Ok(Value::Object(map)) => args.json = Some(map),
                    Ok(_) => return Err("json_not_object"),
                    Err(_) => return Err("invalid_json"),
                }
            }
            _ => return Err("invalid_post_type"),
        }
        Ok(args)
    }

    /// An argument: JSON member, else form field, else query parameter (first wins).
    fn get(&self, name: &str) -> Option<String> {
        if let Some(v) = self.json.as_ref().and_then(|j| j.get(name)) {
            return Some(match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        }
        let find = |pairs: &[(String, String)]| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        find(&self.form).or_else(|| find(&self.query))
    }

    /// Every argument name, once, in a stable order.
    fn names(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        let json_keys = self.json.iter().flat_map(|j| j.keys().cloned());
        let pair_keys = self.form.iter().chain(&self.query).map(|(k, _)| k.clone());
        json_keys
            .chain(pair_keys)
            .filter(|k| seen.insert(k.clone()))
            .collect()
    }
}

// === HTTP/1.1 request framing (pure) ===

/// Why a request could not be framed: the status it gets and a short reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bad {
    status: u16,
    why: &'static str,
}

const fn bad(why: &'static str) -> Bad {
    Bad { status: 400, why }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    method: String,
    target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    version: u8,
    headers: Vec<(String, String)>,
    /// Bytes of the head, blank line included.
    len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
}

/// Parses a head from the start of `buf`; `Ok(None)` while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Bad> {
    let mut slots = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => Err(bad("head too large")),
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => Err(bad("head too large")),
        Ok(httparse::Status::Complete(len)) => Ok(Some(Head {
            method: req.method.unwrap_or_default().to_owned(),
            target: req.path.unwrap_or_default().to_owned(),
            version: req.version.unwrap_or(1),
            headers: req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).trim().to_owned(),
                    )
                })
                .collect(),
            len,
        })),
        Err(httparse::Error::TooManyHeaders) => Err(bad("too many headers")),
        Err(_) => Err(bad("malformed head")),
    }
}

impl Head {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// How the body is framed. Both `Transfer-Encoding` and `Content-Length`, a coding
    /// other than `chunked`, or disagreeing lengths are refused (no guessing where a
    /// request ends).
    fn framing(&self) -> Result<Framing, Bad> {
        let te: Vec<&str> = self.values("transfer-encoding").collect();
        let cl: Vec<&str> = self.values("content-length").collect();
        if !te.is_empty() {
            if !cl.is_empty() {
                return Err(bad("both transfer-encoding and content-length"));
            }
            let codings: Vec<String> = te
                .iter()
                .flat_map(|v| v.split(','))
                .map(|c| c.trim().to_ascii_lowercase())
                .collect();
            return if codings == ["chunked"] {
                Ok(Framing::Chunked)
            } else {
                Err(bad("unsupported transfer-encoding"))
            };
        }
        let mut length = None;
        for v in cl {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("invalid content-length"));
            }
            let n: usize = v.parse().map_err(|_| bad("invalid content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(bad("conflicting content-length"));
            }
            length = Some(n);
        }
        let n = length.unwrap_or(0);
        if n > MAX_BODY {
            return Err(Bad {
                status: 413,
                why: "body too large",
            });
        }
        Ok(Framing::Length(n))
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.values(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the connection stays open after this request.
    fn keep_alive(&self) -> bool {
        if self.version == 0 {
            self.has_token("connection", "keep-alive")
        } else {
            !self.has_token("connection", "close")
        }
    }

    fn expects_continue(&self) -> bool {
        self.version == 1 && self.has_token("expect", "100-continue")
    }
}

/// Decodes a chunked body from the start of `buf`: the payload and the bytes it took on
/// the wire (trailers included), or `Ok(None)` while incomplete.
fn decode_chunked(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, Bad> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let Some(eol) = find_crlf(&buf[pos..]) else {
            return if buf.len() - pos > 1024 {
                Err(bad("chunk size line too long"))
            } else {
                Ok(None)
            };
        };
        let line = &buf[pos..pos + eol];
        let size = line.split(|b| *b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size)
            .map_err(|_| bad("invalid chunk size"))?
            .trim_end_matches([' ', '\t']);
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("invalid chunk size"));
        }
        let size = usize::from_str_radix(size, 16).map_err(|_| bad("invalid chunk size"))?;
        pos += eol + 2;
        if size == 0 {
            // Trailer section, up to the blank line.
            loop {
                let Some(eol) = find_crlf(&buf[pos..]) else {
                    return if buf.len() - pos > MAX_HEAD {
                        Err(bad("trailers too large"))
                    } else {
                        Ok(None)
                    };
                };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some((out, pos)));
                }
            }
        }
        if out.len().saturating_add(size) > MAX_BODY {
            return Err(Bad {
                status: 413,
                why: "body too large",
            });
        }
        let end = pos + size;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(bad("chunk not followed by CRLF"));
        }
        out.extend_from_slice(&buf[pos..end]);
        pos = end + 2;
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        _ => "",
    }
}

/// The bytes of an answer: status line, headers, JSON body framed by `Content-Length`.
fn render(status: u16, headers: &[(&str, String)], body: &[u8], close: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    out.push_str("content-type: application/json; charset=utf-8\r\n");
    out.push_str(&format!("content-length: {}\r\n", body.len()));
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if close {
        out.push_str("connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

// === The server ===

async fn accept_loop(
    listener: std::net::TcpListener,
    acceptor: Option<pingora::tls::TlsAcceptor>,
    shared: Arc<Shared>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            a = listener.accept() => a,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let _ = tcp.set_nodelay(true);
        let conn = shared.conns.fetch_add(1, Ordering::SeqCst) + 1;
        let shared = Arc::clone(&shared);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve(tcp, &shared, conn).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => serve(tls, &shared, conn).await,
                        _ => {
                            shared.handshake_failures.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            }
        });
    }
}

/// Reads more bytes into `buf`; 0 on end of stream, error or timeout.
async fn read_more<S: AsyncRead + Unpin>(io: &mut S, buf: &mut Vec<u8>, shared: &Shared) -> usize {
    let mut chunk = [0u8; 16 * 1024];
    match tokio::time::timeout(READ_TIMEOUT, io.read(&mut chunk)).await {
        Ok(Ok(n)) => {
            buf.extend_from_slice(&chunk[..n]);
            shared.bytes.fetch_add(n as u64, Ordering::SeqCst);
            n
        }
        _ => 0,
    }
}

/// Serves requests on one connection until it closes, asks to close, or goes bad.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, shared: &Shared, conn: u64) {
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        let head = loop {
            match parse_head(&buf) {
                Ok(Some(head)) => break head,
                Ok(None) => {}
                Err(b) => return refuse(&mut io, shared, conn, &buf, None, b).await,
            }
            if read_more(&mut io, &mut buf, shared).await == 0 {
                return;
            }
        };
        let framing = match head.framing() {
            Ok(f) => f,
            Err(b) => return refuse(&mut io, shared, conn, &buf, Some(&head), b).await,
        };
        let mut continued = false;
        let (body, wire) = loop {
            let rest = &buf[head.len..];
            let done = match framing {
                Framing::Length(n) => (rest.len() >= n).then(|| (rest[..n].to_vec(), n)),
                Framing::Chunked => match decode_chunked(rest) {
                    Ok(d) => d,
                    Err(b) => return refuse(&mut io, shared, conn, &buf, Some(&head), b).await,
                },
            };
            if let Some(d) = done {
                break d;
            }
            if head.expects_continue() && !continued {
                continued = true;
                if io
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let _ = io.flush().await;
            }
            if read_more(&mut io, &mut buf, shared).await == 0 {
                return;
            }
        };
        let raw_head = buf[..head.len].to_vec();
        buf.drain(..head.len + wire);
        let keep_alive = head.keep_alive();
        let reply = lock(&shared.workspace).call(
            Call {
                http_method: &head.method,
                target: &head.target,
                headers: &head.headers,
                body: &body,
            },
            Instant::now(),
        );
        let body_bytes = serde_json::to_vec(&reply.body).unwrap_or_default();
        let bytes = render(reply.status, &reply.headers, &body_bytes, !keep_alive);
        shared.record(Received {
            conn,
            method: reply.method.clone(),
            http_method: head.method.clone(),
            query: split_target(&head.target).1.to_owned(),
            target: head.target,
            head: raw_head,
            headers: head.headers,
            body,
            chunked: framing == Framing::Chunked,
            token: reply.token.clone(),
            answer: reply.answer(),
        });
        if io.write_all(&bytes).await.is_err() || io.flush().await.is_err() {
            return;
        }
        if !keep_alive {
            let _ = io.shutdown().await;
            return;
        }
    }
}

/// Answers a request that cannot be framed, records it, and ends the connection.
async fn refuse<S: AsyncWrite + Unpin>(
    io: &mut S,
    shared: &Shared,
    conn: u64,
    buf: &[u8],
    head: Option<&Head>,
    bad: Bad,
) {
    let body = json!({"ok": false, "error": "invalid_request", "detail": bad.why});
    let body_bytes = serde_json::to_vec(&body).unwrap_or_default();
    let raw_head = match head {
        Some(h) => buf[..h.len].to_vec(),
        None => buf[..buf.len().min(MAX_HEAD)].to_vec(),
    };
    let (http_method, target, headers) = head
        .map(|h| (h.method.clone(), h.target.clone(), h.headers.clone()))
        .unwrap_or_default();
    let (path, query) = split_target(&target);
    shared.record(Received {
        conn,
        method: path.strip_prefix("/api/").unwrap_or_default().to_owned(),
        http_method,
        query: query.to_owned(),
        target: target.clone(),
        head: raw_head,
        headers,
        body: Vec::new(),
        chunked: false,
        token: None,
        answer: Answer {
            status: bad.status,
            ok: false,
            error: Some("invalid_request".into()),
        },
    });
    let bytes = render(bad.status, &[], &body_bytes, true);
    let _ = io.write_all(&bytes).await;
    let _ = io.flush().await;
    let _ = io.shutdown().await;
}

// === Certificates ===

/// A test CA and a server certificate it signed for `127.0.0.1` and `localhost`.
struct TestCa {
    _dir: tempfile::TempDir,
    pem_file: PathBuf,
    der: Vec<u8>,
    leaf_der: Vec<u8>,
    leaf_key_der: Vec<u8>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("pem_file", &self.pem_file)
            .finish_non_exhaustive()
    }
}

impl TestCa {
    fn generate() -> Self {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "slackgate test CA (Slack stand-in)",
        );
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let mut leaf_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("leaf params");
        leaf_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "slack.com stand-in");
        leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf = leaf_params
            .signed_by(&leaf_key, &issuer)
            .expect("leaf cert");

        let dir = tempfile::tempdir().expect("temp dir");
        let pem_file = dir.path().join("slack-standin-ca.pem");
        std::fs::write(&pem_file, ca_cert.pem()).expect("write ca pem");
        Self {
            _dir: dir,
            pem_file,
            der: ca_cert.der().to_vec(),
            leaf_der: leaf.der().to_vec(),
            leaf_key_der: leaf_key.serialize_der(),
        }
    }

    fn server_config(&self) -> rustls::ServerConfig {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("tls versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![
                    CertificateDer::from(self.leaf_der.clone()),
                    CertificateDer::from(self.der.clone()),
                ],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key_der.clone())),
            )
            .expect("server cert");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
            .collect()
    }

    fn workspace() -> Workspace {
        let mut w = Workspace::new(1_700_000_000);
        w.tokens.insert(
            "xoxb-good".into(),
            Grant::new("T0ACME", &["chat:write", "channels:read"]),
        );
        w
    }

    fn post(w: &mut Workspace, method: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let target = format!("/api/{method}");
        let headers = h(headers);
        w.call(
            Call {
                http_method: "POST",
                target: &target,
                headers: &headers,
                body: body.as_bytes(),
            },
            Instant::now(),
        )
    }

    const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
    const JSON: (&str, &str) = ("content-type", "application/json; charset=utf-8");
    const BEARER: (&str, &str) = ("authorization", "Bearer xoxb-good");

    fn error(r: &Reply) -> Option<&str> {
        r.body.get("error").and_then(Value::as_str)
    }

    // --- framing ---

    #[test]
    fn head_parses_and_lowercases() {
        let raw =
            b"POST /api/chat.postMessage?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
        let head = parse_head(raw).unwrap().unwrap();
        assert_eq!(head.method, "POST");
        assert_eq!(head.target, "/api/chat.postMessage?x=1");
        assert_eq!(head.len, raw.len() - 3);
        assert_eq!(head.headers[1], ("content-length".into(), "3".into()));
        assert_eq!(head.framing(), Ok(Framing::Length(3)));
        assert!(head.keep_alive());
    }

    #[test]
    fn head_partial_and_garbage() {
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost"), Ok(None));
        assert_eq!(parse_head(b""), Ok(None));
        assert!(parse_head(b"\x00\x01 nonsense\r\n\r\n").is_err());
        let huge = vec![b'a'; MAX_HEAD + 10];
        assert!(parse_head(&huge).is_err());
    }

    #[test]
    fn framing_refuses_ambiguity() {
        let head = |extra: &str| {
            let raw = format!("POST / HTTP/1.1\r\n{extra}\r\n");
            parse_head(raw.as_bytes()).unwrap().unwrap()
        };
        assert_eq!(head("").framing(), Ok(Framing::Length(0)));
        assert_eq!(
            head("Transfer-Encoding: chunked\r\n").framing(),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            head("Content-Length: 5\r\nContent-Length: 5\r\n").framing(),
            Ok(Framing::Length(5))
        );
        for bad_head in [
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: +5\r\n",
            "Content-Length: 5, 5\r\n",
            "Content-Length: 99999999999999999999999\r\n",
            "Transfer-Encoding: gzip, chunked\r\n",
            "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
        ] {
            assert_eq!(
                head(bad_head).framing().map_err(|b| b.status),
                Err(400),
                "{bad_head:?}"
            );
        }
        assert_eq!(
            head("Content-Length: 999999999\r\n")
                .framing()
                .map_err(|b| b.status),
            Err(413)
        );
    }

    #[test]
    fn connection_persistence() {
        let head = |raw: &str| parse_head(raw.as_bytes()).unwrap().unwrap();
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
        assert!(head("POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n").expects_continue());
        assert!(!head("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expects_continue());
    }

    #[test]
    fn chunked_bodies() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: y\r\n\r\nNEXT";
        let (body, used) = decode_chunked(wire).unwrap().unwrap();
        assert_eq!(body, b"hello world");
        assert_eq!(&wire[used..], b"NEXT");
        for cut in 0..wire.len() - 4 {
            assert_eq!(decode_chunked(&wire[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(decode_chunked(b"zz\r\n").is_err());
        assert!(decode_chunked(b"\r\n").is_err());
        assert!(decode_chunked(b"3\r\nabcX\r\n").is_err());
        assert!(decode_chunked(b"ffffffffffffffffffffffff\r\n").is_err());
        assert_eq!(
            decode_chunked(b"2000000\r\n").map_err(|b| b.status),
            Err(413)
        );
    }

    #[test]
    fn targets() {
        assert_eq!(split_target("/api/a.b?x=1&y"), ("/api/a.b", "x=1&y"));
        assert_eq!(split_target("/api/a.b"), ("/api/a.b", ""));
        assert_eq!(
            split_target("https://slack.com/api/a.b?q"),
            ("/api/a.b", "q")
        );
        assert_eq!(split_target("http://host"), ("/", ""));
    }

    #[test]
    fn render_frames_by_length() {
        let bytes = render(429, &[("retry-after", "30".into())], b"{}", true);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"));
        assert!(text.contains("content-type: application/json; charset=utf-8\r\n"));
        assert!(text.contains("content-length: 2\r\n"));
        assert!(text.contains("retry-after: 30\r\n"));
        assert!(text.ends_with("connection: close\r\n\r\n{}"));
    }

    // --- arguments and tokens ---

    #[test]
    fn args_precedence_and_types() {
        let body = br#"{"channel":"C1","n":3,"blocks":[{"type":"x"}]}"#;
        let a = Args::read("channel=CQ&only=q", &h(&[JSON]), body).unwrap();
        assert_eq!(a.get("channel").as_deref(), Some("C1"));
        assert_eq!(a.get("n").as_deref(), Some("3"));
        assert_eq!(a.get("blocks").as_deref(), Some(r#"[{"type":"x"}]"#));
        assert_eq!(a.get("only").as_deref(), Some("q"));
        assert!(a.warnings.is_empty());

        let a = Args::read("", &h(&[FORM]), b"text=a%20b&channel=C2&channel=C3").unwrap();
        assert_eq!(a.get("text").as_deref(), Some("a b"));
        assert_eq!(a.get("channel").as_deref(), Some("C2"));
    }

    #[test]
    fn body_errors_are_slack_errors() {
        let read = |ct: &[(&str, &str)], body: &[u8]| Args::read("", &h(ct), body).err();
        assert_eq!(read(&[], b"x=1"), Some("missing_post_type"));
        assert_eq!(read(&[JSON], b"{nope"), Some("invalid_json"));
        assert_eq!(read(&[JSON], b"[1]"), Some("json_not_object"));
        assert_eq!(read(&[JSON], b"\xff\xfe"), Some("invalid_json"));
        assert_eq!(
            read(
                &[("content-type", "multipart/form-data; boundary=x")],
                b"--x"
            ),
            Some("invalid_post_type")
        );
        assert_eq!(
            read(
                &[("content-type", "application/json; charset=koi8-r")],
                b"{}"
            ),
            Some("invalid_charset")
        );
        assert_eq!(read(&[], b""), None);
    }

    #[test]
    fn charset_warnings() {
        let a = Args::read("", &h(&[("content-type", "application/json")]), b"{}").unwrap();
        assert_eq!(a.warnings, ["missing_charset"]);
        let ct = (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        );
        let a = Args::read("", &h(&[ct]), b"a=1").unwrap();
        assert_eq!(a.warnings, ["superfluous_charset"]);
    }

    #[test]
    fn tokens_slack_reads() {
        let form = Args::read("token=xoxb-q", &h(&[FORM]), b"token=xoxb-form").unwrap();
        assert_eq!(
            presented_token(&h(&[BEARER]), &form).as_deref(),
            Some("xoxb-good")
        );
        assert_eq!(presented_token(&[], &form).as_deref(), Some("xoxb-form"));
        assert_eq!(
            presented_token(&h(&[("authorization", "bearer  xoxb-lower ")]), &form).as_deref(),
            Some("xoxb-lower")
        );
        let query_only = Args::read("token=xoxb-q", &[], b"").unwrap();
        assert_eq!(presented_token(&[], &query_only), None);
        let json = Args::read("", &h(&[JSON]), br#"{"token":"xoxb-json"}"#).unwrap();
        assert_eq!(presented_token(&[], &json), None);
        assert_eq!(
            presented_token(&h(&[("authorization", "Basic abc")]), &query_only),
            None
        );
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aWQ6c2VjcmV0").unwrap(), b"id:secret");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert!(base64_decode("a*b").is_none());
        let headers = h(&[("authorization", "Basic aWQ6c2VjcmV0")]);
        assert_eq!(
            basic_credentials(&headers),
            Some(("id".into(), "secret".into()))
        );
    }

    // --- the workspace ---

    #[test]
    fn auth_errors() {
        let mut w = workspace();
        w.revoke("xoxb-gone");
        let r = post(&mut w, "auth.test", &[], "");
        assert_eq!((r.status, error(&r)), (200, Some("not_authed")));
        assert!(r.headers.is_empty());
        let r = post(&mut w, "auth.test", &[("authorization", "Bearer nope")], "");
        assert_eq!(error(&r), Some("invalid_auth"));
        assert_eq!(r.token.as_deref(), Some("nope"));
        let r = post(
            &mut w,
            "auth.test",
            &[("authorization", "Bearer xoxb-gone")],
            "",
        );
        assert_eq!(error(&r), Some("token_revoked"));
        let r = post(&mut w, "auth.test", &[JSON], r#"{"token":"xoxb-good"}"#);
        assert_eq!(error(&r), Some("not_authed"));
        let r = post(&mut w, "auth.test", &[FORM], "token=xoxb-good");
        assert_eq!(r.body["ok"], true);
        assert_eq!(r.body["team_id"], "T0ACME");
        assert_eq!(r.body["user_id"], BOT_USER_ID);
    }

    #[test]
    fn scopes_headers_and_missing_scope() {
        let mut w = workspace();
        let r = post(&mut w, "auth.test", &[BEARER], "");
        assert!(r
            .headers
            .contains(&("x-oauth-scopes", "chat:write,channels:read".into())));
        assert!(r
            .headers
            .contains(&("x-accepted-oauth-scopes", String::new())));
        let r = post(&mut w, "conversations.info", &[BEARER, FORM], "channel=C1");
        assert_eq!(r.body, json!({"ok": true, "channel": {"id": "C1"}}));
        assert!(r.headers.contains(&(
            "x-accepted-oauth-scopes",
            "channels:read,groups:read,im:read,mpim:read".into()
        )));
        let r = post(
            &mut w,
            "reactions.add",
            &[BEARER, FORM],
            "channel=C1&timestamp=1.2&name=x",
        );
        assert_eq!(error(&r), Some("missing_scope"));
        assert_eq!(r.body["needed"], "reactions:write");
        assert_eq!(r.body["provided"], "chat:write,channels:read");
        assert!(r
            .headers
            .contains(&("x-accepted-oauth-scopes", "reactions:write".into())));
    }

    #[test]
    fn unknown_method_and_paths() {
        let mut w = workspace();
        let r = post(&mut w, "admin.everything", &[BEARER], "");
        assert_eq!((r.status, error(&r)), (200, Some("unknown_method")));
        assert_eq!(r.method, "admin.everything");
        let headers = h(&[BEARER]);
        let call = |target: &'static str, m: &'static str| Call {
            http_method: m,
            target,
            headers: &[],
            body: b"",
        };
        assert_eq!(w.call(call("/other", "GET"), Instant::now()).status, 404);
        assert_eq!(
            w.call(call("/api/auth.test", "PUT"), Instant::now()).status,
            405
        );
        let get = Call {
            headers: &headers,
            ..call("/api/conversations.info?channel=C9", "GET")
        };
        assert_eq!(w.call(get, Instant::now()).body["channel"]["id"], "C9");
    }

    #[test]
    fn post_message_shapes_and_increasing_ts() {
        let mut w = workspace();
        let r = post(
            &mut w,
            "chat.postMessage",
            &[BEARER, JSON],
            r#"{"text":"hi"}"#,
        );
        assert_eq!(error(&r), Some("channel_not_found"));
        let r = post(
            &mut w,
            "chat.postMessage",
            &[BEARER, JSON],
            r#"{"channel":"C1"}"#,
        );
        assert_eq!(error(&r), Some("no_text"));
        let a = post(
            &mut w,
            "chat.postMessage",
            &[BEARER, JSON],
            r#"{"channel":"C1","text":"one"}"#,
        );
        let b = post(
            &mut w,
            "chat.postMessage",
            &[BEARER, FORM],
            "channel=C1&text=two",
        );
        assert_eq!(a.body["channel"], "C1");
        assert_eq!(a.body["message"]["text"], "one");
        let (ta, tb) = (
            a.body["ts"].as_str().unwrap(),
            b.body["ts"].as_str().unwrap(),
        );
        assert!(ta < tb, "{ta} < {tb}");
        assert_eq!(ta.parse::<f64>().unwrap(), 1_700_000_000.000001);
        let hist = post(
            &mut w,
            "conversations.history",
            &[("authorization", "Bearer xoxb-hist")],
            "",
        );
        assert_eq!(error(&hist), Some("invalid_auth"));
        w.tokens.insert(
            "xoxb-hist".into(),
            Grant::new("T0ACME", &["channels:history"]),
        );
        let hist = post(
            &mut w,
            "conversations.history",
            &[("authorization", "Bearer xoxb-hist"), FORM],
            "channel=C1",
        );
        assert_eq!(hist.body["messages"][0]["text"], "two");
        assert_eq!(hist.body["messages"][1]["text"], "one");
    }

    #[test]
    fn rate_limit_once_then_window() {
        let mut limits = Limits::default();
        let t0 = Instant::now();
        limits.once("chat.postMessage", 30);
        assert_eq!(limits.check("chat.update", t0), None);
        assert_eq!(limits.check("chat.postMessage", t0), Some(30));
        assert_eq!(limits.check("chat.postMessage", t0), None);
        limits.window("chat.postMessage", t0 + Duration::from_millis(2500));
        assert_eq!(limits.check("chat.postMessage", t0), Some(3));
        assert_eq!(
            limits.check("chat.postMessage", t0 + Duration::from_millis(2400)),
            Some(1)
        );
        assert_eq!(
            limits.check("chat.postMessage", t0 + Duration::from_millis(2500)),
            None
        );
    }

    #[test]
    fn ratelimited_answer() {
        let mut w = workspace();
        w.limits.once("chat.postMessage", 7);
        let body = r#"{"channel":"C1","text":"x"}"#;
        // An unauthenticated call does not use up the limit.
        assert_eq!(
            error(&post(&mut w, "chat.postMessage", &[JSON], body)),
            Some("not_authed")
        );
        let r = post(&mut w, "chat.postMessage", &[BEARER, JSON], body);
        assert_eq!(r.status, 429);
        assert_eq!(r.body, json!({"ok": false, "error": "ratelimited"}));
        assert!(r.headers.contains(&("retry-after", "7".into())));
        assert_eq!(
            post(&mut w, "chat.postMessage", &[BEARER, JSON], body).status,
            200
        );
    }

    #[test]
    fn usergroups_and_revoke() {
        let mut w = workspace();
        w.tokens
            .insert("xoxb-ug".into(), Grant::new("T0ACME", &["usergroups:read"]));
        w.usergroups
            .insert("S0ONCALL".into(), vec!["U1".into(), "U2".into()]);
        let auth = ("authorization", "Bearer xoxb-ug");
        let r = post(
            &mut w,
            "usergroups.users.list",
            &[auth, FORM],
            "usergroup=S0ONCALL",
        );
        assert_eq!(r.body, json!({"ok": true, "users": ["U1", "U2"]}));
        let r = post(
            &mut w,
            "usergroups.users.list",
            &[auth, FORM],
            "usergroup=S0NONE",
        );
        assert_eq!(error(&r), Some("no_such_subteam"));
        let r = post(&mut w, "auth.revoke", &[auth, FORM], "test=true");
        assert_eq!(r.body["revoked"], false);
        let r = post(&mut w, "auth.revoke", &[auth], "");
        assert_eq!(r.body["revoked"], true);
        assert_eq!(
            error(&post(&mut w, "auth.test", &[auth], "")),
            Some("token_revoked")
        );
    }

    #[test]
    fn api_test_echoes_without_auth() {
        let mut w = workspace();
        let r = post(&mut w, "api.test", &[FORM], "foo=bar");
        assert_eq!(r.body, json!({"ok": true, "args": {"foo": "bar"}}));
        let r = post(&mut w, "api.test", &[FORM], "error=my_error");
        assert_eq!(error(&r), Some("my_error"));
        let r = post(
            &mut w,
            "api.test",
            &[("content-type", "application/json")],
            "{}",
        );
        assert_eq!(r.body["warning"], "missing_charset");
        assert_eq!(
            r.body["response_metadata"]["warnings"][0],
            "missing_charset"
        );
    }

    fn rotating() -> Workspace {
        let mut w = workspace();
        let spec = RotationSpec {
            client_id: "1234.5678".into(),
            client_secret: "shh".into(),
            first_refresh_token: "xoxe-1-first".into(),
            lifetime_secs: 43_200,
        };
        w.rotation = Some(Rotation::new(spec, Grant::new("T0ACME", &["chat:write"])));
        w
    }

    fn refresh(w: &mut Workspace, extra: &str, now: Instant) -> Reply {
        let headers = h(&[FORM]);
        let body = format!("client_id=1234.5678&client_secret=shh&{extra}");
        w.call(
            Call {
                http_method: "POST",
                target: "/api/oauth.v2.access",
                headers: &headers,
                body: body.as_bytes(),
            },
            now,
        )
    }

    #[test]
    fn refresh_tokens_work_once() {
        let mut w = rotating();
        let t0 = Instant::now();
        let r = refresh(
            &mut w,
            "grant_type=refresh_token&refresh_token=xoxe-1-first",
            t0,
        );
        assert_eq!(r.body["ok"], true, "{}", r.body);
        assert_eq!(r.body["token_type"], "bot");
        assert_eq!(r.body["expires_in"], 43_200);
        assert_eq!(r.body["team"]["id"], "T0ACME");
        let access = r.body["access_token"].as_str().unwrap().to_owned();
        let next = r.body["refresh_token"].as_str().unwrap().to_owned();
        assert!(access.starts_with("xoxe.xoxb-"));
        assert!(next.starts_with("xoxe-1-"));

        let again = refresh(
            &mut w,
            "grant_type=refresh_token&refresh_token=xoxe-1-first",
            t0,
        );
        assert_eq!(error(&again), Some("invalid_refresh_token"));
        let r2 = refresh(
            &mut w,
            &format!("grant_type=refresh_token&refresh_token={next}"),
            t0,
        );
        assert_eq!(r2.body["ok"], true);
        let rot = w.rotation.as_ref().unwrap();
        assert_eq!(
            rot.presented,
            ["xoxe-1-first", "xoxe-1-first", next.as_str()]
        );
        assert_eq!(rot.issued.len(), 2);

        // The minted token works, with the installation's scopes, until it expires.
        let auth = format!("Bearer {access}");
        let headers = h(&[("authorization", &auth)]);
        let call = Call {
            http_method: "POST",
            target: "/api/auth.test",
            headers: &headers,
            body: b"",
        };
        let r = w.call(call, t0 + Duration::from_secs(60));
        assert_eq!(r.body["ok"], true);
        assert!(r.headers.contains(&("x-oauth-scopes", "chat:write".into())));
        let r = w.call(call, t0 + Duration::from_secs(43_200));
        assert_eq!(error(&r), Some("token_expired"));
    }

    #[test]
    fn refresh_client_checks() {
        let mut w = rotating();
        let now = Instant::now();
        let ok_tail = "grant_type=refresh_token&refresh_token=xoxe-1-first";
        let headers = h(&[FORM]);
        let call = |body: &'static str| Call {
            http_method: "POST",
            target: "/api/oauth.v2.access",
            headers: &headers,
            body: body.as_bytes(),
        };
        let r = w.call(call("client_id=nope&client_secret=shh"), now);
        assert_eq!(error(&r), Some("invalid_client_id"));
        let r = w.call(call("client_id=1234.5678&client_secret=bad"), now);
        assert_eq!(error(&r), Some("bad_client_secret"));
        assert_eq!(
            error(&refresh(&mut w, "grant_type=password", now)),
            Some("invalid_grant_type")
        );
        assert_eq!(
            error(&refresh(&mut w, "code=abc", now)),
            Some("invalid_code")
        );
        assert_eq!(
            error(&refresh(
                &mut w,
                "grant_type=refresh_token&refresh_token=xoxe-1-other",
                now
            )),
            Some("invalid_refresh_token")
        );
        // HTTP Basic client authentication, as the method's page prefers.
        let basic = h(&[FORM, ("authorization", "Basic MTIzNC41Njc4OnNoaA==")]);
        let r = w.call(
            Call {
                http_method: "POST",
                target: "/api/oauth.v2.access",
                headers: &basic,
                body: ok_tail.as_bytes(),
            },
            now,
        );
        assert_eq!(r.body["ok"], true, "{}", r.body);
        assert_eq!(r.token, None);
        // Without rotation configured, nobody is a client.
        let mut plain = workspace();
        assert_eq!(
            error(&refresh(&mut plain, ok_tail, now)),
            Some("invalid_client_id")
        );
    }
}
