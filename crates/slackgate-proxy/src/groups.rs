//! User groups read from Slack: the policy's `groups: { oncall: { usergroup: S…, bot,
//! refresh } }` get their members from `usergroups.users.list` on `egress.slack_api`,
//! called with the named bot's token.
//!
//! One task per group ([`GroupRefresher`], a background service) reads the members at
//! start, then every `refresh`, and promptly when a verified inbound
//! `subteam_members_changed` (or `subteam_updated`) names the group's user group
//! ([`UserGroups::wake`], called by the gateway). A good answer replaces the members in the
//! guard's store ([`slackgate_guard::GroupMembers`]), which outlives reloads; a failed one
//! (`ok:false`, an answer that is not the documented shape, a 429, no answer) keeps the
//! last good members and is counted. Before the first good answer the group is unknown
//! and fails closed (see the guard's `members` module).
//!
//! Reloads: the supervisor compares the running tasks with the new policy; a group whose
//! definition changed (user group, bot or refresh) gets a new task (which reads at once),
//! a removed one is stopped and its members and series forgotten. At shutdown every task
//! is stopped.
//!
//! The client for `egress.slack_api` is built by the server at start, as the egress door's
//! and token rotation's are (each keeping its own connections): a change of `egress` takes
//! effect after a restart, for all three alike.
//!
//! The bot's token is read in exactly one place ([`token_of`]) and written only into the
//! `Authorization` header of the call; it is never in `/status`, a metric, a log line or an
//! audit record. The gateway's own calls are not audit records (those are the requests
//! and calls of Slack and the bots); they are counted in
//! `slackgate_group_refreshes_total{group,result}` and shown in `/status`.

use parking_lot::{Mutex, MutexGuard};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::{json, Value};
use slackgate_guard::{unix_secs_f64, Clock};
use slackgate_policy::{Bot, IdSet, UserGroup};
use tokio::sync::Notify;

pub use crate::core::labels::GroupReadResult as RefreshResult;
use crate::core::state::Shared;
use crate::net::slack_client::{error_code, retry_after, CallFailure, OutHead, SlackClient};

/// The Web API method that lists a user group's members.
const METHOD: &str = "usergroups.users.list";
/// The most members accepted in one answer; a larger one counts as a bad answer (a
/// user group that large is not an access list).
pub const MAX_MEMBERS: usize = 100_000;
/// The least time between two reads of one group that an event triggers (a burst of
/// `subteam_members_changed` is one read, not one per event).
const MIN_WAKE_GAP: Duration = Duration::from_secs(1);

/// Where the group reads take a bot's token from: the token vault, which the server owns
/// and hands in (the group reads do not know the egress door).
pub(crate) trait BotTokens: Send + Sync {
    /// The token calls for `bot` are sent with at `now` (for a rotating bot, its current
    /// token; `None` while it has none).
    fn token_at(&self, bot: &Bot, now: SystemTime) -> Option<String>;
}

/// The token a group refresh sends for `bot`: the one place group refreshes read a bot's
/// token (for a rotating bot, its current token from the vault; `None` while it has none).
fn token_of(r: &GroupRefresher, bot: &Bot) -> Option<String> {
    r.tokens.token_at(bot, r.shared.guard.clock().now())
}

// === RefreshResult ===

/// What one read came to: its result, what `/status` says about a failure, and how long
/// Slack asked to wait.
#[derive(Debug)]
struct Refresh {
    result: RefreshResult,
    /// Slack's error code, or a description of the failure (never answer bytes).
    error: Option<String>,
    /// With [`RefreshResult::RateLimited`]: Slack's `Retry-After`.
    retry_after: Option<Duration>,
    /// With [`RefreshResult::Ok`]: the members.
    members: Option<IdSet>,
}

impl Refresh {
    fn failed(result: RefreshResult, error: impl Into<String>) -> Self {
        Refresh {
            result,
            error: Some(error.into()),
            retry_after: None,
            members: None,
        }
    }
}

// === UserGroups ===

/// The last read of one group, for `/status`.
#[derive(Debug, Clone, Default)]
struct GroupStatus {
    /// When the last read finished (the guard's clock).
    last_refresh: Option<SystemTime>,
    last_result: Option<RefreshResult>,
    /// Slack's error code or the failure of the last read, when it failed.
    last_error: Option<String>,
}

/// A running task's wake-up, with the user group id events name it by.
type Waker = (Arc<str>, Arc<Notify>);

/// What the gateway keeps about its user groups besides their members (which the guard
/// holds): the running tasks' wake-ups and the last read of each group.
#[derive(Debug, Default)]
pub struct UserGroups {
    /// Fired after every successful load (first or reload): the supervisor reconciles.
    loaded: Notify,
    /// By group name: its user group id (events name it) and its task's wake-up.
    wakers: Mutex<HashMap<Arc<str>, Waker>>,
    status: Mutex<HashMap<Arc<str>, GroupStatus>>,
    /// Refresh tasks alive (each holds a [`Running`] guard).
    running: Arc<AtomicUsize>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
}

impl UserGroups {
    /// Tells the supervisor that a policy was loaded.
    pub(crate) fn policy_loaded(&self) {
        // `notify_one` keeps a permit when the supervisor is busy: no load is missed.
        self.loaded.notify_one();
    }

    /// Reads the members of every group reading user group `usergroup` again, soon (a
    /// verified event said they changed). Returns how many groups were woken.
    pub fn wake(&self, usergroup: &str) -> usize {
        let wakers = lock(&self.wakers);
        let mut woken = 0;
        for (ug, notify) in wakers.values() {
            if &**ug == usergroup {
                notify.notify_one();
                woken += 1;
            }
        }
        woken
    }

    /// The number of refresh tasks alive (0 once the gateway stopped).
    pub fn tasks_running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    fn note(&self, group: &UserGroup, at: SystemTime, r: &Refresh) {
        let mut status = lock(&self.status);
        let s = status.entry(Arc::clone(&group.name)).or_default();
        s.last_refresh = Some(at);
        s.last_result = Some(r.result);
        s.last_error = r.error.clone();
    }
}

/// The `groups` section of `/status`: per user group of the running policy, where its
/// members come from, how many it has, and what the last read said. Never a token.
pub(crate) fn status(shared: &Shared, groups: &UserGroups) -> Value {
    let snap = shared.current();
    let status = lock(&groups.status).clone();
    let members = shared.guard.group_members();
    let groups: serde_json::Map<String, Value> = snap
        .policy
        .usergroups
        .values()
        .map(|g| {
            let loaded = members.get(g);
            let s = status.get(&g.name).cloned().unwrap_or_default();
            (
                g.name.to_string(),
                json!({
                    "usergroup": &*g.usergroup,
                    "bot": &*g.bot,
                    "refresh": humantime::format_duration(g.refresh).to_string(),
                    "members": loaded.as_ref().map(|l| l.members.len()),
                    "loaded_at": loaded.as_ref().map(|l| crate::core::audit::rfc3339(l.at)),
                    "last_refresh": s.last_refresh.map(crate::core::audit::rfc3339),
                    "last_result": s.last_result.map(RefreshResult::as_str),
                    "last_error": s.last_error,
                }),
            )
        })
        .collect();
    Value::Object(groups)
}

// === the refresh ===

/// Counts a task alive while it exists; dropped when the task ends or is aborted.
struct Running(Arc<AtomicUsize>);

impl Running {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Running(Arc::clone(count))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The form body of the call: the user group, and for a bot pinned to a team its
/// `team_id` (required with an org-level token, ignored with a workspace one).
fn call_body(group: &UserGroup, bot: &Bot) -> String {
    // Both ids are upper-case letters and digits (checked at load): nothing to encode.
    match &bot.team {
        Some(team) => format!("usergroup={}&team_id={team}", group.usergroup),
        None => format!("usergroup={}", group.usergroup),
    }
}

/// The head of the call, with the bot's token in `Authorization` (its only place).
fn call_head(client: &SlackClient, token: &str, body_len: usize) -> Vec<u8> {
    client.head(
        &OutHead {
            http_method: b"POST",
            target: &[client.api().path.as_bytes(), METHOD.as_bytes()],
            token: Some(token),
            content_type: Some(b"application/x-www-form-urlencoded"),
            user_agent: Some(b"slackgate (usergroup refresh)"),
        },
        body_len,
    )
}

/// `usergroups.users.list`'s answer, the part read.
#[derive(serde::Deserialize)]
struct Answer {
    ok: bool,
    error: Option<String>,
    users: Option<Vec<String>>,
}

/// Whether `s` is a user id as Slack writes them: `U` or `W`, then upper-case letters
/// and digits.
fn is_user_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b.len() <= 32
        && matches!(b[0], b'U' | b'W')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// What Slack's answer says (a 429, `ok:false`, the members, or not the documented shape).
fn read_answer(status: u16, retry_after_header: Option<&[u8]>, body: &[u8]) -> Refresh {
    if status == 429 {
        let secs = Duration::from_secs(u64::from(retry_after(retry_after_header)));
        return Refresh {
            result: RefreshResult::RateLimited,
            error: Some(format!("rate limited, Retry-After {}s", secs.as_secs())),
            retry_after: Some(secs),
            members: None,
        };
    }
    if status != 200 {
        return Refresh::failed(RefreshResult::BadAnswer, format!("HTTP status {status}"));
    }
    let Ok(answer) = serde_json::from_slice::<Answer>(body) else {
        return Refresh::failed(RefreshResult::BadAnswer, "the answer is not Slack's JSON");
    };
    if !answer.ok {
        let code = answer
            .error
            .as_deref()
            .and_then(error_code)
            .unwrap_or("unknown");
        return Refresh::failed(RefreshResult::SlackError, code);
    }
    let Some(users) = answer.users else {
        return Refresh::failed(RefreshResult::BadAnswer, "the answer has no users");
    };
    if users.len() > MAX_MEMBERS {
        return Refresh::failed(
            RefreshResult::BadAnswer,
            format!("more than {MAX_MEMBERS} members"),
        );
    }
    if !users.iter().all(|u| is_user_id(u)) {
        return Refresh::failed(
            RefreshResult::BadAnswer,
            "the answer lists something that is not a user id",
        );
    }
    Refresh {
        result: RefreshResult::Ok,
        error: None,
        retry_after: None,
        members: Some(users.iter().map(String::as_str).collect()),
    }
}

/// One read of `group`'s members with its bot's token, over the running policy and config.
async fn read_members(r: &GroupRefresher, group: &UserGroup) -> Refresh {
    let shared = &*r.shared;
    let snap = shared.current();
    let Some(bot) = snap.policy.bots.by_name(&group.bot) else {
        // The policy compiler makes this impossible; a task of an older policy may see it.
        return Refresh::failed(RefreshResult::UpstreamError, "the bot is not in the policy");
    };
    if shared.guard.token_revoked_by(bot).is_some() {
        return Refresh::failed(
            RefreshResult::TokenRevoked,
            "the bot's token was revoked by a verified lifecycle event",
        );
    }
    let Some(client) = &r.slack else {
        return Refresh::failed(RefreshResult::UpstreamError, "the config has no egress");
    };
    let Some(token) = token_of(r, bot) else {
        return Refresh::failed(
            RefreshResult::TokenUnavailable,
            "the bot rotates its token and has none now (see /status egress.bots.<bot>.rotation)",
        );
    };
    let body = call_body(group, bot);
    let head = call_head(client, &token, body.len());
    match client.call(&head, body.as_bytes(), false).await {
        Ok(resp) => read_answer(resp.status, resp.header(b"retry-after"), &resp.body),
        Err(e @ CallFailure::Timeout(_)) => {
            Refresh::failed(RefreshResult::UpstreamTimeout, e.to_string())
        }
        Err(e) => Refresh::failed(RefreshResult::UpstreamError, e.to_string()),
    }
}

/// Reads `group` once and records what came of it: members, metrics, status, log.
async fn refresh(refresher: &GroupRefresher, group: &UserGroup) -> Refresh {
    let shared = &*refresher.shared;
    let mut r = read_members(refresher, group).await;
    // A reload may have changed or removed the group while Slack answered: its
    // supervisor then stopped this task, and what it read is not recorded.
    let current = shared
        .current()
        .policy
        .usergroups
        .get(&group.name)
        .is_some_and(|g| g.same_definition(group));
    if !current {
        return r;
    }
    let now = shared.guard.clock().now();
    let m = &shared.metrics;
    m.group_refreshes
        .with_label_values(&[&group.name, r.result.as_str()])
        .inc();
    if let Some(members) = r.members.take() {
        let count = members.len();
        shared.guard.group_members().set(group, members, now);
        m.group_members
            .with_label_values(&[&group.name])
            .set(i64::try_from(count).unwrap_or(i64::MAX));
        m.group_last_success
            .with_label_values(&[&group.name])
            .set(unix_secs_f64(now));
        log::debug!(
            "group {}: {count} members read from user group {}",
            group.name,
            group.usergroup
        );
    } else {
        let kept = shared.guard.group_members().get(group).is_some();
        log::warn!(
            "group {}: reading user group {} with bot {} failed ({}: {}); {}",
            group.name,
            group.usergroup,
            group.bot,
            r.result.as_str(),
            r.error.as_deref().unwrap_or(""),
            if kept {
                "the last members read stay in force"
            } else {
                "the group has no members yet (allow lists naming it admit nobody, deny lists deny every user)"
            }
        );
    }
    refresher.groups.note(group, now, &r);
    r
}

/// A group's task: read now, then every `refresh`, or soon after a wake-up.
async fn run_group(refresher: GroupRefresher, group: Arc<UserGroup>, wake: Arc<Notify>) {
    let _alive = Running::new(&refresher.groups.running);
    loop {
        let r = refresh(&refresher, &group).await;
        let started = tokio::time::Instant::now();
        // After a 429 nothing is sent before Slack's Retry-After, not even for an event.
        let (next, earliest) = match r.retry_after {
            Some(wait) => (wait, wait),
            None => (group.refresh, MIN_WAKE_GAP.min(group.refresh)),
        };
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = wake.notified() => tokio::time::sleep_until(started + earliest).await,
        }
    }
}

// === GroupRefresher ===

/// One running group task.
struct Task {
    group: Arc<UserGroup>,
    handle: tokio::task::JoinHandle<()>,
}

/// The background service that runs one refresh task per user group of the running
/// policy, and follows reloads. The server hands it the groups' state, the bots' tokens
/// (its token vault) and its client to Slack, which it owns.
#[derive(Clone)]
pub(crate) struct GroupRefresher {
    pub(crate) shared: Arc<Shared>,
    pub(crate) groups: Arc<UserGroups>,
    pub(crate) tokens: Arc<dyn BotTokens>,
    /// The client for `egress.slack_api`; `None` without `egress`.
    pub(crate) slack: Option<Arc<SlackClient>>,
}

impl GroupRefresher {
    /// Makes the running tasks match the running policy.
    fn reconcile(&self, tasks: &mut HashMap<Arc<str>, Task>) {
        let shared = &self.shared;
        let snap = shared.current();
        let groups = &snap.policy.usergroups;
        let m = &shared.metrics;
        tasks.retain(|name, task| {
            let keep = groups
                .get(name)
                .is_some_and(|g| g.same_definition(&task.group));
            if !keep {
                task.handle.abort();
                if !groups.contains_key(name) {
                    m.forget_group(name);
                    lock(&self.groups.status).remove(name);
                }
            }
            keep
        });
        // Members of a group removed, or pointed at another user group, no longer count.
        shared
            .guard
            .group_members()
            .retain(|name, usergroup| groups.get(name).is_some_and(|g| &*g.usergroup == usergroup));
        let mut wakers = lock(&self.groups.wakers);
        wakers.retain(|name, _| tasks.contains_key(name));
        for g in groups.values() {
            if tasks.contains_key(&g.name) {
                continue;
            }
            let loaded = shared.guard.group_members().get(g);
            m.register_group(
                &g.name,
                loaded
                    .as_ref()
                    .map(|l| (l.members.len(), unix_secs_f64(l.at))),
            );
            let wake = Arc::new(Notify::new());
            wakers.insert(
                Arc::clone(&g.name),
                (Arc::clone(&g.usergroup), Arc::clone(&wake)),
            );
            let handle = tokio::spawn(run_group(self.clone(), Arc::clone(g), wake));
            tasks.insert(
                Arc::clone(&g.name),
                Task {
                    group: Arc::clone(g),
                    handle,
                },
            );
        }
    }
}

#[async_trait]
impl BackgroundService for GroupRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tasks: HashMap<Arc<str>, Task> = HashMap::new();
        loop {
            self.reconcile(&mut tasks);
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = self.groups.loaded.notified() => {}
            }
        }
        for task in tasks.values() {
            task.handle.abort();
        }
        lock(&self.groups.wakers).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::slack_client::DEFAULT_RETRY_AFTER_SECS;

    fn result(status: u16, body: &str) -> (RefreshResult, Option<String>, Option<usize>) {
        let r = read_answer(status, None, body.as_bytes());
        (r.result, r.error, r.members.map(|m| m.len()))
    }

    #[test]
    fn answers_are_read_as_slack_documents_them() {
        assert_eq!(
            result(200, r#"{"ok":true,"users":["U0111","W0222"]}"#),
            (RefreshResult::Ok, None, Some(2))
        );
        assert_eq!(
            result(200, r#"{"ok":true,"users":[]}"#),
            (RefreshResult::Ok, None, Some(0))
        );
        assert_eq!(
            result(200, r#"{"ok":false,"error":"no_such_subteam"}"#),
            (
                RefreshResult::SlackError,
                Some("no_such_subteam".into()),
                None
            )
        );
        // An error code that is not one is not repeated.
        assert_eq!(
            result(200, r#"{"ok":false,"error":"<script>"}"#)
                .1
                .as_deref(),
            Some("unknown")
        );
        for broken in [
            r#"{"ok":true}"#,
            r#"{"ok":true,"users":"U0111"}"#,
            r#"{"ok":true,"users":["U0111","not-a-user"]}"#,
            r#"{"ok":true,"users":[7]}"#,
            r#"{"users":["U0111"]}"#,
            "<html>",
            "",
        ] {
            assert_eq!(result(200, broken).0, RefreshResult::BadAnswer, "{broken}");
        }
        assert_eq!(result(500, "{}").0, RefreshResult::BadAnswer);
    }

    #[test]
    fn a_429_waits_for_retry_after() {
        let r = read_answer(429, Some(b" 7 "), br#"{"ok":false,"error":"ratelimited"}"#);
        assert_eq!(r.result, RefreshResult::RateLimited);
        assert_eq!(r.retry_after, Some(Duration::from_secs(7)));
        let r = read_answer(429, Some(b"soon"), b"");
        let default = Duration::from_secs(u64::from(DEFAULT_RETRY_AFTER_SECS));
        assert_eq!(r.retry_after, Some(default));
    }

    #[test]
    fn too_many_members_is_a_bad_answer() {
        let users: Vec<String> = (0..=MAX_MEMBERS).map(|i| format!("U{i}")).collect();
        let body = serde_json::json!({"ok": true, "users": users}).to_string();
        assert_eq!(result(200, &body).0, RefreshResult::BadAnswer);
    }

    #[test]
    fn user_ids() {
        assert!(is_user_id("U0111"));
        assert!(is_user_id("W0RM2"));
        assert!(!is_user_id("U"));
        assert!(!is_user_id("B0BOT"));
        assert!(!is_user_id("u0111"));
    }
}
