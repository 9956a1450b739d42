//! Secret custody at the egress door ([`Custodian`]): posts to the response and upload
//! URLs the gateway holds in place of a bot, and the `files.getUploadURLExternal` answers
//! whose `upload_url` it takes into custody.
//!
//! - `POST /respond/<capability>`: a capability of the wrong shape is refused before any
//!   lookup; the guard decides the post ([`slackgate_guard::Guard::decide_response_url`]);
//!   an allowed one spends one of the URL's uses and goes to Slack's URL, body byte for
//!   byte, with the bot's `Content-Type` (as read) and `User-Agent` and nothing else.
//! - `POST /upload/<capability>`: bound to its bot; the body is read within the `length`
//!   the bot declared (a `multipart/form-data` body within [`MULTIPART_ALLOWANCE`] more, for
//!   its framing) and within `limits.max_body_bytes`; a bigger one is refused
//!   (`malformed_call`, 413) before anything is sent. An allowed upload spends the URL
//!   and goes to Slack's URL once.
//! - An allowed `files.getUploadURLExternal` answered `ok`, with `egress.public_url` set:
//!   the answer's `upload_url` becomes `<public_url>upload/<capability>`, held with the
//!   bot, its declared `length` and the `file_id`. An answer that cannot be taken into
//!   custody is not relayed (`upstream_error`): the real URL never reaches the bot.
//!
//! Where a held URL is sent ([`Custodian::route`]): under `egress.hooks_base` (Slack's
//! `https://hooks.slack.com/commands/…` and `/actions/…`) over the webhook client; on
//! the origin of `egress.slack_api` over the Web API client (a stand-in's URLs); else only
//! `https://<host>.slack.com/…` on port 443 (`https://<workspace>.slack.com/…` response
//! URLs, `https://files.slack.com/…` upload URLs), over a client per host (at most
//! [`MAX_HOSTS`] kept). Anything else is refused with a log line that names no URL.
//! Neither a URL nor a body is ever logged, audited or answered.
//!
//! With Redis (`crate::core::held`), a response URL or workflow key another replica minted
//! is looked up when this one does not hold it, a response URL's use is spent in the
//! shared gate (five across replicas), and a `complete*` answered `ok` ends its execution
//! on every replica. Upload URLs stay this replica's.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use slackgate_guard::{
    presented_workflow_key, CapabilityPost, EgressCall, EgressDecision, EgressReason,
    EgressSettings, StateOp, Unreadable, UploadUrl, FILE_UPLOAD_METHOD, RESPONSE_URL_METHOD,
};
use slackgate_policy::{Egress, KeyExchange, SlackApi, Tls};

use super::call::{clean_value, content_type_sent, Answer, CallHead, Outcome, SlackOutcome};
use crate::core::capability::{is_capability, mint, WORKFLOW_TOKEN_TTL};
use crate::core::state::Shared;
use crate::net::client::Response;
use crate::net::slack_client::{CallFailure, OutHead, SlackClient};

/// The most `<host>.slack.com` clients kept; past it, a post gets a client of its own.
pub(super) const MAX_HOSTS: usize = 64;

/// What a `multipart/form-data` upload may add to the declared length: its boundaries
/// and part headers.
pub(super) const MULTIPART_ALLOWANCE: u64 = 16 * 1024;

/// The method whose answer carries an upload URL.
const GET_UPLOAD_URL: &str = "files.getUploadURLExternal";

/// The methods that end a function execution, and with it its workflow keys.
const COMPLETE: [&str; 2] = ["functions.completeSuccess", "functions.completeError"];

/// A path of a capability URL the door serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CapabilityPath<'p> {
    /// `/respond/<capability>`.
    Respond(&'p str),
    /// `/upload/<capability>`.
    Upload(&'p str),
}

impl<'p> CapabilityPath<'p> {
    /// The capability URL `path` names, if it is one: `/respond/<capability>` or
    /// `/upload/<capability>`, also under the path of `public_url` (when bots reach the
    /// listener through a proxy that keeps it).
    pub(super) fn of(path: &'p str, public_url: Option<&str>) -> Option<Self> {
        let prefix = public_url
            .and_then(|u| u.split_once("://"))
            .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
            .filter(|p| *p != "/");
        let path = prefix
            .and_then(|p| path.strip_prefix(p.trim_end_matches('/')))
            .unwrap_or(path);
        path.strip_prefix("/respond/")
            .map(CapabilityPath::Respond)
            .or_else(|| path.strip_prefix("/upload/").map(CapabilityPath::Upload))
    }
}

/// A post to a capability URL as it arrived.
#[derive(Clone, Copy)]
struct Posted<'a> {
    head: &'a CallHead,
    body: &'a [u8],
    /// Why its body could not be read whole, if it could not.
    unreadable: Option<Unreadable>,
}

/// The egress door's custody of response and upload URLs: the clients that reach them.
pub(super) struct Custodian {
    /// The client for `egress.slack_api` (whose origin a stand-in serves its URLs on).
    slack: Arc<SlackClient>,
    /// The client for `egress.hooks_base`.
    hooks: Arc<SlackClient>,
    /// Clients for `https://<host>.slack.com/`, by host.
    hosts: Mutex<HashMap<String, Arc<SlackClient>>>,
    ca_file: Option<std::path::PathBuf>,
    timeout: std::time::Duration,
    key_exchange: Vec<KeyExchange>,
}

impl std::fmt::Debug for Custodian {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Custodian").finish_non_exhaustive()
    }
}

/// A request target the gateway may write after a host: visible ASCII from a `/`, no
/// fragment (a held URL came from a request body; it must not split a head).
fn is_target(path: &str) -> bool {
    path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic() && b != b'#')
}

/// The host of `https://<host>.slack.com/<path>` (no port, no user), lowercased.
fn slack_host(url: &str) -> Option<(String, &str)> {
    let rest = url
        .get(..8)
        .filter(|s| s.eq_ignore_ascii_case("https://"))
        .and_then(|_| url.get(8..))?;
    let at = rest.find('/')?;
    let (host, path) = rest.split_at(at);
    let host = host.to_ascii_lowercase();
    let label = host.strip_suffix(".slack.com")?;
    let fine = !label.is_empty()
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !label.starts_with(['.', '-'])
        && !label.contains("..");
    fine.then_some((host, path))
}

/// The `length` argument of a `files.getUploadURLExternal` call, from its query or body
/// (form or JSON, as a number or a string of digits).
fn declared_length(query: Option<&[u8]>, content_type: Option<&[u8]>, body: &[u8]) -> Option<u64> {
    let from_form = |bytes: &[u8]| {
        form_urlencoded::parse(bytes)
            .find(|(k, _)| k == "length")
            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
    };
    let json = content_type
        .is_some_and(|ct| ct.len() >= 16 && ct[..16].eq_ignore_ascii_case(b"application/json"));
    let in_body = if json {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| match v.get("length")? {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
    } else {
        from_form(body)
    };
    in_body.or_else(|| query.and_then(from_form))
}

/// What Slack's answer to a held URL tells: a JSON `ok`/`error`, or a plain-text `ok`
/// (response URLs) or `OK …` (uploads), else an error code in the text.
fn note_answer(resp: &Response, o: &mut Outcome) {
    o.upstream_status = Some(resp.status);
    if let Ok(json) = serde_json::from_slice::<SlackOutcome<'_>>(&resp.body) {
        o.slack_ok = json.ok;
        o.slack_error = json.error.filter(|e| e.len() <= 64).map(String::from);
        return;
    }
    let text = std::str::from_utf8(&resp.body).map(str::trim).unwrap_or("");
    let ok = resp.status == 200;
    o.slack_ok = Some(ok);
    // Written only with an error code's shape (the audit checks it again).
    o.slack_error = (!ok && text.len() <= 64).then(|| text.to_owned());
}

impl Custodian {
    /// The custodian for `egress`, sharing the door's Web API and webhook clients.
    pub(super) fn new(
        egress: &Egress,
        tls: &Tls,
        slack: Arc<SlackClient>,
        hooks: Arc<SlackClient>,
    ) -> Self {
        Custodian {
            slack,
            hooks,
            hosts: Mutex::new(HashMap::new()),
            ca_file: egress.ca_file.clone(),
            timeout: egress.timeout,
            key_exchange: tls.key_exchange.clone(),
        }
    }

    /// The client and request target a held URL is sent with (see the module doc).
    fn route<'u>(&self, url: &'u str) -> Result<(Arc<SlackClient>, &'u str), CallFailure> {
        let refused = CallFailure::Withheld;
        if let Some(path) = self.hooks.api().path_of(url) {
            return is_target(path)
                .then(|| (Arc::clone(&self.hooks), path))
                .ok_or_else(|| refused("a held URL has a path that cannot be sent"));
        }
        let origin = SlackApi {
            path: "/".to_owned(),
            ..self.slack.api().clone()
        };
        if let Some(path) = origin.path_of(url) {
            return is_target(path)
                .then(|| (Arc::clone(&self.slack), path))
                .ok_or_else(|| refused("a held URL has a path that cannot be sent"));
        }
        let Some((host, path)) = slack_host(url).filter(|(_, p)| is_target(p)) else {
            return Err(refused(
                "a held URL is not under egress.hooks_base, egress.slack_api or https://*.slack.com/",
            ));
        };
        if let Some(c) = self.hosts.lock().get(&host) {
            return Ok((Arc::clone(c), path));
        }
        let api = SlackApi::parse(&format!("https://{host}/"))
            .map_err(|_| refused("a held URL has a host that cannot be used"))?;
        let client = SlackClient::new(
            &api,
            self.ca_file.as_deref(),
            self.timeout,
            &self.key_exchange,
        )
        .map_err(CallFailure::Client)?;
        let client = Arc::new(client);
        let mut hosts = self.hosts.lock();
        if hosts.len() < MAX_HOSTS {
            hosts.insert(host, Arc::clone(&client));
        }
        Ok((client, path))
    }

    /// Sends `body` to a held URL once: Slack's answer.
    async fn send(
        &self,
        url: &str,
        content_type: Option<&[u8]>,
        head: &CallHead,
        body: &[u8],
    ) -> Result<Response, CallFailure> {
        let (client, path) = self.route(url)?;
        let out = client.head(
            &OutHead {
                http_method: b"POST",
                target: &[path.as_bytes()],
                token: None,
                content_type,
                user_agent: head.user_agent.as_deref().filter(|v| clean_value(v)),
            },
            body.len(),
        );
        client.call(&out, body, false).await
    }

    /// The answer of a post that reached Slack, or of one that did not.
    fn sent(result: Result<Response, CallFailure>, o: &mut Outcome, what: &str) -> Answer {
        match result {
            Ok(resp) => {
                note_answer(&resp, o);
                o.status = resp.status;
                Answer::relayed(&resp)
            }
            Err(failure) => {
                // The failure's text names a host at most, never the URL.
                let bot = o.decision.bot.as_ref().map_or("", |b| &*b.name);
                log::warn!("egress: bot {bot} {what}: {failure}");
                o.failed(&failure)
            }
        }
    }

    /// A capability that names nothing: refused before any lookup.
    fn invalid(method: &'static str) -> Outcome {
        let mut d = EgressDecision::refused(EgressReason::ResponseUrlInvalid, "capability");
        d.method = Some(Box::from(method));
        Self::labelled(d, method)
    }

    fn labelled(decision: EgressDecision, method: &'static str) -> Outcome {
        let mut o = Outcome::of(decision);
        o.method_label = Some(Arc::from(method));
        o
    }

    /// The post to `cap` as the guard reads it; `None` for a capability of the wrong
    /// shape, which nothing is looked up for.
    fn post<'h>(cap: &'h str, head: &'h CallHead, body: &'h [u8]) -> Option<CapabilityPost<'h>> {
        is_capability(cap).then(|| CapabilityPost {
            capability: cap,
            is_post: head.is(b"POST"),
            authorization: head.authorization.as_deref(),
            content_type: head.content_type.as_deref(),
            body,
        })
    }

    /// The refusal of a capability that names nothing.
    fn refused(method: &'static str) -> (Outcome, Answer) {
        let o = Self::invalid(method);
        let a = Answer::local(&o.decision);
        (o, a)
    }

    /// An allowed decision whose use could not be spent (another post spent the last one
    /// since it was decided) is for an unknown capability.
    fn unless_spent(d: EgressDecision, spent: bool) -> EgressDecision {
        if d.reason != EgressReason::Allowed || spent {
            return d;
        }
        EgressDecision {
            reason: EgressReason::ResponseUrlInvalid,
            rule: Some(Arc::from("capability")),
            ..d
        }
    }

    /// With Redis: holds here the capability `cap` another replica minted, when this one
    /// does not hold it; true when it did (deciding again finds it). A Redis failure
    /// leaves it unknown (refused), counted in `slackgate_state_fallbacks_total{op="custody"}`.
    async fn adopt(shared: &Shared, cap: &str) -> bool {
        let Some(redis) = shared.remote.as_deref() else {
            return false;
        };
        let (custody, now) = (shared.guard.custody(), shared.guard.now_secs());
        match crate::core::held::adopt(redis, custody, cap, now).await {
            Ok(adopted) => adopted,
            Err(e) => {
                log::warn!("egress: a capability unknown here could not be looked up in Redis ({e}); refused");
                shared.metrics.count_fallback(StateOp::Custody);
                false
            }
        }
    }

    /// For a call refused as `unknown_bot` that presents a workflow key: whether another
    /// replica minted the key (then held here too, see [`Self::adopt`]).
    pub(super) async fn adopt_workflow_key(
        shared: &Shared,
        d: &EgressDecision,
        call: &EgressCall<'_>,
        settings: &EgressSettings,
    ) -> bool {
        if shared.remote.is_none()
            || d.reason != EgressReason::UnknownBot
            || d.rule.as_deref() != Some("key")
        {
            return false;
        }
        match presented_workflow_key(call, settings) {
            Some(key) => Self::adopt(shared, &key).await,
            None => false,
        }
    }

    /// One post to a capability URL, decided and sent: its outcome and its answer. An
    /// upload's body was read within [`Self::upload_limit`].
    pub(super) async fn handle(
        &self,
        shared: &Shared,
        path: CapabilityPath<'_>,
        head: &CallHead,
        body: &[u8],
        unreadable: Option<Unreadable>,
    ) -> (Outcome, Answer) {
        let posted = Posted {
            head,
            body,
            unreadable,
        };
        match path {
            CapabilityPath::Respond(cap) => self.respond(shared, cap, &posted).await,
            CapabilityPath::Upload(cap) => self.upload(shared, cap, &posted).await,
        }
    }

    /// One post to `/respond/<cap>`.
    async fn respond(&self, shared: &Shared, cap: &str, posted: &Posted<'_>) -> (Outcome, Answer) {
        let Posted {
            head,
            body,
            unreadable,
        } = *posted;
        let Some(post) = Self::post(cap, head, body) else {
            return Self::refused(RESPONSE_URL_METHOD);
        };
        let snap = shared.current();
        let settings = EgressSettings::from(&snap.config.limits);
        let guard = &shared.guard;
        let (mut decision, mut held) = guard.decide_response_url(&snap.policy, &post, &settings);
        // Unknown here: another replica may have minted it.
        if decision.reason == EgressReason::ResponseUrlInvalid && Self::adopt(shared, cap).await {
            (decision, held) = guard.decide_response_url(&snap.policy, &post, &settings);
        }
        if let Some(why) = unreadable {
            decision.unreadable(why);
        }
        // With Redis: the URL's uses and the bot's buckets as every replica sees them.
        let passed = super::shared::gate(shared, &mut decision, None, Some(cap)).await;
        let allowed = decision.reason == EgressReason::Allowed;
        // This replica's count follows; it decides when Redis did not count the use.
        let spent_here = allowed && guard.custody().spend_response_url(cap, guard.now_secs());
        let spent = spent_here || allowed && passed.is_some_and(|p| p.counted);
        let decision = Self::unless_spent(decision, spent);
        let mut o = Self::labelled(decision, RESPONSE_URL_METHOD);
        let answer = match held.filter(|_| spent) {
            Some(held) => {
                let ct = content_type_sent(o.decision.encoding, head.content_type.as_deref());
                let result = self.send(&held.url, ct, head, body).await;
                Self::sent(result, &mut o, "response_url")
            }
            None => Answer::local(&o.decision),
        };
        (o, answer)
    }

    /// The most body bytes read for a post to `/upload/<cap>`: the held upload's declared
    /// length (with [`MULTIPART_ALLOWANCE`] for a multipart body), within `max`.
    pub(super) fn upload_limit(shared: &Shared, cap: &str, head: &CallHead, max: usize) -> usize {
        shared
            .guard
            .custody()
            .held_upload_url(cap, shared.guard.now_secs())
            .map_or(max, |held| Self::upload_limit_of(&held, head, max))
    }

    fn upload_limit_of(held: &UploadUrl, head: &CallHead, max: usize) -> usize {
        let allowance = if Self::is_multipart(head) {
            MULTIPART_ALLOWANCE
        } else {
            0
        };
        usize::try_from(held.length.saturating_add(allowance)).map_or(max, |n| n.min(max))
    }

    fn is_multipart(head: &CallHead) -> bool {
        head.content_type.as_deref().is_some_and(|ct| {
            ct.len() >= 19 && ct[..19].eq_ignore_ascii_case(b"multipart/form-data")
        })
    }

    /// One post to `/upload/<cap>`.
    async fn upload(&self, shared: &Shared, cap: &str, posted: &Posted<'_>) -> (Outcome, Answer) {
        let Posted {
            head,
            body,
            unreadable,
        } = *posted;
        // The guard does not read an upload's bytes.
        let Some(post) = Self::post(cap, head, b"") else {
            return Self::refused(FILE_UPLOAD_METHOD);
        };
        let snap = shared.current();
        let (mut decision, held) = shared.guard.decide_upload(&snap.policy, &post);
        let allowed = decision.reason == EgressReason::Allowed;
        let oversize = allowed
            && (unreadable == Some(Unreadable::BodyTooLarge)
                || held
                    .as_ref()
                    .is_some_and(|h| body.len() > Self::upload_limit_of(h, head, usize::MAX)));
        if oversize {
            // Over the declared length, or over limits.max_body_bytes when that is less.
            let max = snap.config.limits.max_body_bytes;
            let declared = held
                .as_ref()
                .is_none_or(|h| Self::upload_limit_of(h, head, usize::MAX) <= max);
            decision.reason = EgressReason::MalformedCall;
            decision.rule = Some(Arc::from(if declared {
                "body over the declared length"
            } else {
                Unreadable::BodyTooLarge.rule()
            }));
        } else if let Some(why) = unreadable {
            decision.unreadable(why);
        }
        let spent = decision.reason == EgressReason::Allowed
            && shared
                .guard
                .custody()
                .spend_upload_url(cap, shared.guard.now_secs());
        let decision = Self::unless_spent(decision, spent);
        let mut o = Self::labelled(decision, FILE_UPLOAD_METHOD);
        let answer = match held.filter(|_| spent) {
            Some(held) => {
                let ct = head.content_type.as_deref().filter(|v| clean_value(v));
                let result = self.send(&held.url, ct, head, body).await;
                Self::sent(result, &mut o, "file_upload")
            }
            None => {
                let mut a = Answer::local(&o.decision);
                if oversize {
                    (a.status, o.status) = (413, 413);
                }
                a
            }
        };
        (o, answer)
    }

    /// After an allowed call Slack answered: a `files.getUploadURLExternal` answer's
    /// `upload_url` is taken into custody (with `egress.public_url`), and a `complete*`
    /// answered `ok` ends the workflow keys of its execution. `Err` is why the answer
    /// cannot be relayed (it would show the real URL). With Redis, an execution ended
    /// here is ended on every replica before the bot has the answer.
    pub(super) async fn after_call(
        &self,
        shared: &Shared,
        o: &Outcome,
        head: &CallHead,
        body: &[u8],
        answer: &mut Answer,
    ) -> Result<(), &'static str> {
        let method = o.decision.method.as_deref().unwrap_or("");
        if let (Some(w), true, Some(true)) =
            (&o.decision.workflow, COMPLETE.contains(&method), o.slack_ok)
        {
            let id = &w.function_execution_id;
            shared.guard.custody().end_function_execution(id);
            if let Some(redis) = &shared.remote {
                let ttl = std::time::Duration::from_secs_f64(WORKFLOW_TOKEN_TTL);
                if let Err(e) = redis.end_execution(&w.bot, id, ttl).await {
                    log::warn!("egress: bot {}: ending function execution {id} through Redis failed ({e}); its keys still work on other replicas until they end", w.bot);
                }
            }
        }
        if method != GET_UPLOAD_URL {
            return Ok(());
        }
        let snap = shared.current();
        let Some(public) = snap
            .config
            .egress
            .as_ref()
            .and_then(|e| e.public_url.as_deref())
        else {
            return Ok(());
        };
        let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&answer.body) else {
            return Ok(());
        };
        let Some(url) = json.get("upload_url").and_then(|u| u.as_str()) else {
            return Ok(());
        };
        let url: Arc<str> = Arc::from(url);
        let length = declared_length(head.query.as_deref(), head.content_type.as_deref(), body)
            .ok_or("the call's length could not be read")?;
        let bot = o.decision.bot.as_ref().ok_or("no bot")?;
        let cap = mint().ok_or("the system's random source failed")?;
        let file_id = json.get("file_id").and_then(|f| f.as_str()).map(Arc::from);
        let held = UploadUrl {
            bot: Arc::clone(&bot.name),
            length,
            file_id,
            url,
        };
        json["upload_url"] = serde_json::Value::from(format!("{public}upload/{cap}"));
        let rewritten = serde_json::to_vec(&json).map_err(|_| "the answer could not be written")?;
        shared
            .guard
            .custody()
            .hold_upload_url(&cap, held, shared.guard.now_secs());
        answer.body = bytes::Bytes::from(rewritten);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_slack_hosts_and_clean_paths() {
        let ok = slack_host("https://acme.slack.com/commands/T0/1/x");
        assert_eq!(ok, Some(("acme.slack.com".to_owned(), "/commands/T0/1/x")));
        assert!(slack_host("HTTPS://Files.Slack.com/upload/v1/x").is_some());
        for bad in [
            "http://acme.slack.com/x",
            "https://acme.slack.com:8443/x",
            "https://evil.com/.slack.com/x",
            "https://acme.slack.com.evil.com/x",
            "https://user@acme.slack.com/x",
            "https://.slack.com/x",
            "https://slack.com/x",
            "https://acme.slack.com",
        ] {
            assert_eq!(slack_host(bad), None, "{bad}");
        }
        assert!(is_target("/commands/T0/1/x?y=1"));
        assert!(!is_target("/a b"));
        assert!(!is_target("/a\r\nHost: x"));
        assert!(!is_target("/a#b"));
        assert!(!is_target("a"));
    }

    #[test]
    fn lengths_as_sdks_send_them() {
        let form = Some(&b"application/x-www-form-urlencoded"[..]);
        let json = Some(&b"application/json; charset=utf-8"[..]);
        assert_eq!(
            declared_length(None, form, b"filename=a&length=12"),
            Some(12)
        );
        assert_eq!(declared_length(None, json, br#"{"length":12}"#), Some(12));
        assert_eq!(declared_length(None, json, br#"{"length":"12"}"#), Some(12));
        assert_eq!(declared_length(Some(b"length=7"), None, b""), Some(7));
        assert_eq!(declared_length(None, form, b"length=-1"), None);
        assert_eq!(declared_length(None, json, b"{"), None);
    }

    #[test]
    fn capability_paths() {
        let root = Some("http://gw:8081/");
        let under = Some("https://gw.example/slack/egress/");
        assert_eq!(
            CapabilityPath::of("/respond/abc", root),
            Some(CapabilityPath::Respond("abc"))
        );
        assert_eq!(
            CapabilityPath::of("/upload/abc", None),
            Some(CapabilityPath::Upload("abc"))
        );
        assert_eq!(
            CapabilityPath::of("/slack/egress/upload/abc", under),
            Some(CapabilityPath::Upload("abc"))
        );
        assert_eq!(
            CapabilityPath::of("/respond/abc", under),
            Some(CapabilityPath::Respond("abc"))
        );
        assert_eq!(CapabilityPath::of("/api/chat.postMessage", root), None);
    }
}
