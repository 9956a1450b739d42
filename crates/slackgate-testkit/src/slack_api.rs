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
//! - Secret custody's capabilities (`custody`): response URLs under this stand-in
//!   ([`SlackApi::response_url`]: 5 posts in 30 minutes, then `used_url` / `expired_url`),
//!   `files.getUploadURLExternal` with its upload URL and `files.completeUploadExternal`,
//!   workflow tokens ([`SlackApiBuilder::workflow_token`]) and `functions.completeSuccess` /
//!   `completeError`.
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
//!
//! Where things are: `workspace` is the model (tokens, scopes, limits, rotation and the
//! methods' answers, pure, time passed in); `args` reads a call's arguments and
//! credentials as Slack does; `custody` the response URLs, uploads and workflow tokens; `http` frames HTTP/1.1 requests and renders answers (pure);
//! `server` accepts connections and serves them against the workspace, recording each
//! request; `ca` makes the test CA and the server certificate. This file is the builder
//! and the handle tests hold.

mod args;
pub(crate) mod ca;
mod custody;
mod held;
mod http;
mod server;
#[cfg(test)]
mod tests;
mod workspace;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use ca::TestCa;
pub use held::{RESPONSE_URL_TTL, RESPONSE_URL_USES};
pub use server::Received;
use server::{accept_loop, lock, Shared};
pub use workspace::{Answer, APP_ID, BOT_ID, BOT_USER_ID};
use workspace::{Grant, Rotation, RotationSpec, Workspace};

/// Builds a [`SlackApi`].
#[derive(Debug)]
pub struct SlackApiBuilder {
    tokens: Vec<(String, Grant)>,
    revoked: Vec<String>,
    usergroups: Vec<(String, Vec<String>)>,
    rotation: Option<RotationSpec>,
    workflow_tokens: Vec<(String, String, String)>,
    plain: bool,
    threads: usize,
    record: bool,
    classical: bool,
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

/// The scopes the stand-in's answers to `method` list in `x-accepted-oauth-scopes` (any
/// one of them suffices; empty: the method needs none, or the stand-in does not know it).
pub fn accepted_scopes(method: &str) -> &'static [&'static str] {
    workspace::method_spec(method).map_or(&[], |s| s.scopes)
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

    /// Grants a workflow token of the function execution `execution` on `team`: it works
    /// for `functions.completeSuccess` / `completeError` of that execution (and then ends),
    /// and for `chat:write` methods.
    pub fn workflow_token(mut self, token: &str, team: &str, execution: &str) -> Self {
        self.workflow_tokens
            .push((token.to_owned(), team.to_owned(), execution.to_owned()));
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

    /// Offers only classical key exchange (X25519, P-256, P-384), as a server without
    /// post-quantum support; by default the hybrid X25519MLKEM768 comes first.
    pub fn classical_only(mut self) -> Self {
        self.classical = true;
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
        for (token, team, execution) in &self.workflow_tokens {
            workspace.grant_workflow_token(token, team, execution);
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
            use rustls::crypto::aws_lc_rs::kx_group;
            let classical: &[&'static dyn rustls::crypto::SupportedKxGroup] =
                &[kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
            let groups = self.classical.then_some(classical);
            Some(pingora::tls::TlsAcceptor::from(Arc::new(
                ca.server_config(groups),
            )))
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("stand-in addr");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let scheme = if self.plain { "http" } else { "https" };
        workspace.capabilities.base = format!("{scheme}://{addr}");
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
            key_exchanges: Mutex::new(Vec::new()),
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
            workflow_tokens: Vec::new(),
            plain: false,
            threads: 1,
            record: true,
            classical: false,
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

    /// A fresh response URL of a slash command on `team`, as Slack puts in the command's
    /// `response_url`: [`RESPONSE_URL_USES`] posts within [`RESPONSE_URL_TTL`].
    pub fn response_url(&self, team: &str) -> String {
        lock(&self.shared.workspace)
            .capabilities
            .response_url("commands", team, Instant::now())
    }

    /// The requests received on `url` (a response or upload URL this stand-in made), in
    /// order.
    pub fn posts_to(&self, url: &str) -> Vec<Received> {
        let path = url.find("://").map_or(url, |i| {
            let rest = &url[i + 3..];
            rest.find('/').map_or("/", |j| &rest[j..])
        });
        self.received()
            .into_iter()
            .filter(|r| r.target == path)
            .collect()
    }

    /// The bytes uploaded for `file_id`, once its upload URL was posted to.
    pub fn uploaded(&self, file_id: &str) -> Option<Vec<u8>> {
        lock(&self.shared.workspace)
            .capabilities
            .uploads
            .values()
            .find(|u| u.file_id == file_id)
            .and_then(|u| u.bytes.clone())
    }

    /// The files `files.completeUploadExternal` completed, in order.
    pub fn completed_files(&self) -> Vec<String> {
        lock(&self.shared.workspace)
            .capabilities
            .completed_files
            .clone()
    }

    /// The function executions completed, in order: (`function_execution_id`, success).
    pub fn completed_functions(&self) -> Vec<(String, bool)> {
        lock(&self.shared.workspace).capabilities.completed.clone()
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

    /// The key-exchange group of every TLS connection accepted so far, in order, by its
    /// TLS name (`X25519MLKEM768`, `X25519`, `secp256r1`, ...).
    pub fn key_exchanges(&self) -> Vec<String> {
        server::lock(&self.shared.key_exchanges).clone()
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
