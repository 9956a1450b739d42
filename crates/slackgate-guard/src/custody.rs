//! [`Custody`]: the Slack capabilities the gateway keeps in place of the bot.
//!
//! With `response_urls: custody` and `workflow_tokens: custody` on a route (and
//! `egress.public_url` for upload URLs), what Slack hands a bot as a bearer capability
//! stays here, and the bot receives a capability of the gateway's that works only
//! through the egress door (the contract: `docs/policy.md`, "Secret custody"):
//!
//! | held | the bot gets | spent |
//! |---|---|---|
//! | a `response_url` | `<public_url>respond/<capability>` | Slack's limits: [`RESPONSE_URL_USES`] posts within [`RESPONSE_URL_TTL`] |
//! | an `upload_url` of `files.getUploadURLExternal` | `<public_url>upload/<capability>` | one upload, within [`UPLOAD_URL_TTL`] |
//! | a workflow `bot_access_token` | a key `sgw-<capability>` | when `functions.completeSuccess`/`completeError` answered `ok`, or at the token's end |
//!
//! Every capability is bound to one bot: another bot presenting it is refused as if it
//! were unknown. Capabilities are made by the caller (128 random bits or more, from the
//! proxy's system random source: this crate does no I/O) and are compared as whole
//! strings through a hash map, never by prefix.
//!
//! The store is bounded: each kind holds at most [`MAX_HELD`] entries; a full map drops
//! the entry held longest ago, which (each kind living a fixed time from when it is held)
//! is the one that ends first, ended ones before live ones: one entry per hold, never a
//! pass over the map. It is the replica's own record; with the Redis backend the proxy
//! shares it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

/// How many posts Slack accepts on one response URL.
pub const RESPONSE_URL_USES: u8 = 5;

/// How long Slack accepts posts on a response URL, in seconds (30 minutes).
pub const RESPONSE_URL_TTL: f64 = 1_800.0;

/// How long an upload capability lives, in seconds. Slack does not document the life
/// of an `upload_url`; an upload follows `files.getUploadURLExternal` at once, so an
/// hour is generous and still bounds what is held.
pub const UPLOAD_URL_TTL: f64 = 3_600.0;

/// The prefix of a workflow-token capability key, so that the egress door tells one from a
/// bot's gateway key without a lookup (and never compares one with the bots' keys).
pub const WORKFLOW_KEY_PREFIX: &str = "sgw-";

/// The most entries of each kind the store holds.
pub const MAX_HELD: usize = 100_000;

/// A response URL held for a bot.
#[derive(Clone, PartialEq, Eq)]
pub struct ResponseUrl {
    /// The bot the capability is bound to.
    pub bot: Arc<str>,
    /// The channel the URL posts into, when the request named one (for `channels` and
    /// `reply_scope`).
    pub channel: Option<Arc<str>>,
    /// The team of the request, when it named one.
    pub team: Option<Arc<str>>,
    /// Slack's URL. Never logged, never audited, never sent to the bot.
    pub url: Arc<str>,
}

/// An upload URL held for a bot.
#[derive(Clone, PartialEq, Eq)]
pub struct UploadUrl {
    /// The bot the capability is bound to.
    pub bot: Arc<str>,
    /// The `length` the bot declared to `files.getUploadURLExternal`: the upload's cap.
    pub length: u64,
    /// The `file_id` Slack answered with (audited).
    pub file_id: Option<Arc<str>>,
    /// Slack's URL. Never logged, never audited, never sent to the bot.
    pub url: Arc<str>,
}

/// A workflow token held for a bot.
#[derive(Clone, PartialEq, Eq)]
pub struct WorkflowToken {
    /// The bot the capability key is bound to.
    pub bot: Arc<str>,
    /// The function execution the token belongs to (audited).
    pub function_execution_id: Arc<str>,
    /// Slack's token. Never logged, never audited, never sent to the bot.
    pub token: Arc<str>,
}

// Slack's URL or token is never printed, not even by `{:?}` in a log line or a failed
// assertion: Debug writes what the audit may carry and hides the rest.
impl std::fmt::Debug for ResponseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseUrl")
            .field("bot", &self.bot)
            .field("channel", &self.channel)
            .field("team", &self.team)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for UploadUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadUrl")
            .field("bot", &self.bot)
            .field("length", &self.length)
            .field("file_id", &self.file_id)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for WorkflowToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowToken")
            .field("bot", &self.bot)
            .field("function_execution_id", &self.function_execution_id)
            .finish_non_exhaustive()
    }
}

/// One held capability with its end and uses left.
#[derive(Debug)]
struct Entry<T> {
    held: T,
    /// Unix seconds after which it no longer works.
    until: f64,
    /// Uses left (response URLs: Slack's five; uploads: one; tokens: unlimited).
    uses: u8,
}

/// One kind of held capability, by capability.
#[derive(Debug)]
struct Held<T> {
    store: Mutex<Store<T>>,
}

/// The entries of one kind, and the order they were held in.
#[derive(Debug)]
struct Store<T> {
    map: HashMap<Arc<str>, Entry<T>>,
    /// Every key in the order it was held, including keys since spent or ended (stale:
    /// the map no longer holds that very key) until they reach the front or the queue
    /// is compacted. Each kind lives a fixed time from when it is held (an adopted
    /// response URL, less), so the front ends first: a full map drops it, one entry per
    /// hold, without a pass over the map.
    order: VecDeque<Arc<str>>,
}

impl<T> Default for Held<T> {
    fn default() -> Self {
        Self {
            store: Mutex::new(Store {
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
        }
    }
}

impl<T> Store<T> {
    /// True when `key` (from the queue) is still the map's own key for its entry.
    fn is_live(&self, key: &Arc<str>) -> bool {
        self.map
            .get_key_value(&**key)
            .is_some_and(|(held, _)| Arc::ptr_eq(held, key))
    }

    /// Drops the entries held longest ago until the map has room for one more: one map
    /// lookup each (a stale key, whose capability was spent and then held again, puts the
    /// newer entry back).
    fn make_room(&mut self) {
        while self.map.len() >= MAX_HELD {
            let Some(front) = self.order.pop_front() else {
                break;
            };
            if let Some((key, entry)) = self.map.remove_entry(&*front) {
                if !Arc::ptr_eq(&key, &front) {
                    self.map.insert(key, entry);
                }
            }
        }
    }

    /// Drops the queue's stale front, and compacts the queue once it carries too many
    /// stale keys (those spent or ended in its middle): at twice the map (and some), so
    /// each hold pays for it a bounded number of times.
    fn trim(&mut self) {
        while let Some(front) = self.order.front() {
            if self.is_live(front) {
                break;
            }
            self.order.pop_front();
        }
        if self.order.len() > 2 * self.map.len() + COMPACT_SLACK {
            let order = std::mem::take(&mut self.order);
            self.order = order.into_iter().filter(|k| self.is_live(k)).collect();
        }
    }
}

/// Stale keys the queue may carry beyond twice the map before it is compacted.
const COMPACT_SLACK: usize = 1_024;

impl<T: Clone> Held<T> {
    fn hold(&self, cap: &str, held: T, until: f64, uses: u8) {
        let mut store = self.store.lock();
        let entry = Entry { held, until, uses };
        if store.map.len() >= MAX_HELD {
            store.make_room();
        }
        let Store { map, order } = &mut *store;
        match map.entry(Arc::from(cap)) {
            // Held again (a capability is fresh, so only in tests): the entry changes,
            // its place in the queue does not.
            std::collections::hash_map::Entry::Occupied(mut held) => *held.get_mut() = entry,
            std::collections::hash_map::Entry::Vacant(slot) => {
                order.push_back(Arc::clone(slot.key()));
                slot.insert(entry);
            }
        }
    }

    /// The entry for `cap` when it is live and bound to `bot`.
    fn peek(&self, cap: &str, bot: &dyn Fn(&T) -> bool, now: f64) -> Option<T> {
        let store = self.store.lock();
        let e = store.map.get(cap)?;
        (e.until > now && e.uses > 0 && bot(&e.held)).then(|| e.held.clone())
    }

    /// Spends one use of `cap`; false when it is no longer live (another request spent
    /// the last use, or it ended, since it was looked at). A spent-out entry is removed.
    fn spend(&self, cap: &str, now: f64) -> bool {
        let mut store = self.store.lock();
        let map = &mut store.map;
        let Some(e) = map.get_mut(cap) else {
            return false;
        };
        let live = e.until > now && e.uses > 0;
        if live {
            e.uses -= 1;
        }
        if !live || e.uses == 0 {
            map.remove(cap);
            store.trim();
        }
        live
    }

    fn remove_where(&self, f: impl Fn(&T) -> bool) -> usize {
        let mut store = self.store.lock();
        let before = store.map.len();
        store.map.retain(|_, e| !f(&e.held));
        let removed = before - store.map.len();
        store.trim();
        removed
    }

    fn len(&self) -> usize {
        self.store.lock().map.len()
    }

    #[cfg(test)]
    fn queued(&self) -> usize {
        self.store.lock().order.len()
    }
}

/// The capabilities held for bots: response URLs, upload URLs and workflow tokens.
#[derive(Debug, Default)]
pub struct Custody {
    responses: Held<ResponseUrl>,
    uploads: Held<UploadUrl>,
    workflows: Held<WorkflowToken>,
}

impl Custody {
    /// Holds a response URL under `cap` from `now` for Slack's 30 minutes and 5 uses.
    pub fn hold_response_url(&self, cap: &str, held: ResponseUrl, now: f64) {
        self.responses
            .hold(cap, held, now + RESPONSE_URL_TTL, RESPONSE_URL_USES);
    }

    /// Holds a response URL another replica took into custody (shared through Redis)
    /// under `cap` until `until` (unix seconds) with the `uses` it had left.
    pub fn adopt_response_url(&self, cap: &str, held: ResponseUrl, until: f64, uses: u8) {
        self.responses.hold(cap, held, until, uses);
    }

    /// The response URL held under `cap` for `bot`, if it is live. Nothing is spent:
    /// the door decides the post first and spends a use ([`Custody::spend_response_url`])
    /// only for a post it sends to Slack.
    pub fn response_url(&self, cap: &str, bot: &str, now: f64) -> Option<ResponseUrl> {
        self.responses.peek(cap, &|h| &*h.bot == bot, now)
    }

    /// The response URL held under `cap`, if it is live, whichever bot it is bound to:
    /// Slack's response URLs carry no credential, so the capability itself names the bot
    /// (the egress door then holds a key the post presents to that bot).
    pub fn held_response_url(&self, cap: &str, now: f64) -> Option<ResponseUrl> {
        self.responses.peek(cap, &|_| true, now)
    }

    /// Spends one of the response URL's uses; false when none is left (or it ended).
    pub fn spend_response_url(&self, cap: &str, now: f64) -> bool {
        self.responses.spend(cap, now)
    }

    /// Holds an upload URL under `cap` from `now` for one upload within an hour.
    pub fn hold_upload_url(&self, cap: &str, held: UploadUrl, now: f64) {
        self.uploads.hold(cap, held, now + UPLOAD_URL_TTL, 1);
    }

    /// The upload URL held under `cap` for `bot`, if it is live (nothing spent).
    pub fn upload_url(&self, cap: &str, bot: &str, now: f64) -> Option<UploadUrl> {
        self.uploads.peek(cap, &|h| &*h.bot == bot, now)
    }

    /// The upload URL held under `cap`, if it is live, whichever bot it is bound to (as
    /// [`Custody::held_response_url`]).
    pub fn held_upload_url(&self, cap: &str, now: f64) -> Option<UploadUrl> {
        self.uploads.peek(cap, &|_| true, now)
    }

    /// Spends the upload URL; false when it was already used (or ended).
    pub fn spend_upload_url(&self, cap: &str, now: f64) -> bool {
        self.uploads.spend(cap, now)
    }

    /// Holds a workflow token under the key `key` until `until` (unix seconds).
    pub fn hold_workflow_token(&self, key: &str, held: WorkflowToken, until: f64) {
        self.workflows.hold(key, held, until, u8::MAX);
    }

    /// The workflow token held under `key`, if it is live. The key itself names the
    /// bot, so any caller presenting it acts as that bot.
    pub fn workflow_token(&self, key: &str, now: f64) -> Option<WorkflowToken> {
        self.workflows.peek(key, &|_| true, now)
    }

    /// Ends every key of the function execution `id` (its `complete*` was answered
    /// `ok`); returns how many ended.
    pub fn end_function_execution(&self, id: &str) -> usize {
        self.workflows
            .remove_where(|w| &*w.function_execution_id == id)
    }

    /// How many entries of each kind are held: (response URLs, upload URLs, workflow
    /// tokens).
    pub fn held(&self) -> (usize, usize, usize) {
        (
            self.responses.len(),
            self.uploads.len(),
            self.workflows.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(bot: &str) -> ResponseUrl {
        ResponseUrl {
            bot: Arc::from(bot),
            channel: Some(Arc::from("C0123")),
            team: Some(Arc::from("T0123")),
            url: Arc::from("https://hooks.slack.com/commands/T0123/1/abc"),
        }
    }

    #[test]
    fn a_response_url_works_five_times_for_its_bot_only() {
        let c = Custody::default();
        c.hold_response_url("cap1", response("helpdesk"), 1000.0);
        assert_eq!(c.response_url("cap1", "other", 1000.0), None);
        assert_eq!(c.response_url("nope", "helpdesk", 1000.0), None);
        for _ in 0..RESPONSE_URL_USES {
            assert_eq!(
                c.response_url("cap1", "helpdesk", 1001.0),
                Some(response("helpdesk"))
            );
            assert!(c.spend_response_url("cap1", 1001.0));
        }
        assert_eq!(c.response_url("cap1", "helpdesk", 1001.0), None);
        assert!(!c.spend_response_url("cap1", 1001.0));
        assert_eq!(c.held().0, 0);
        // Adopted from another replica: its own end and the uses it had left.
        c.adopt_response_url("cap2", response("helpdesk"), 1100.0, 2);
        assert!(c.spend_response_url("cap2", 1050.0));
        assert!(c.response_url("cap2", "helpdesk", 1100.0).is_none());
        assert!(c.spend_response_url("cap2", 1050.0));
        assert!(!c.spend_response_url("cap2", 1050.0));
    }

    #[test]
    fn a_response_url_ends_after_thirty_minutes() {
        let c = Custody::default();
        c.hold_response_url("cap1", response("helpdesk"), 1000.0);
        assert!(c
            .response_url("cap1", "helpdesk", 1000.0 + RESPONSE_URL_TTL - 1.0)
            .is_some());
        assert!(c
            .response_url("cap1", "helpdesk", 1000.0 + RESPONSE_URL_TTL)
            .is_none());
        assert!(!c.spend_response_url("cap1", 1000.0 + RESPONSE_URL_TTL));
    }

    #[test]
    fn debug_never_shows_the_url_or_token() {
        let shown = format!("{:?}", response("helpdesk"));
        assert!(shown.contains("helpdesk") && !shown.contains("hooks.slack.com"));
        let c = Custody::default();
        c.hold_response_url("cap1", response("helpdesk"), 0.0);
        assert_eq!(c.held_response_url("cap1", 1.0), Some(response("helpdesk")));
        assert_eq!(c.held_response_url("cap2", 1.0), None);
    }

    #[test]
    fn an_upload_url_works_once() {
        let c = Custody::default();
        let held = UploadUrl {
            bot: Arc::from("helpdesk"),
            length: 10,
            file_id: Some(Arc::from("F0123")),
            url: Arc::from("https://files.slack.com/upload/v1/abc"),
        };
        c.hold_upload_url("up1", held.clone(), 5.0);
        assert_eq!(c.upload_url("up1", "other", 5.0), None);
        assert_eq!(c.upload_url("up1", "helpdesk", 5.0), Some(held));
        assert!(c.spend_upload_url("up1", 5.0));
        assert!(!c.spend_upload_url("up1", 5.0));
        assert_eq!(c.upload_url("up1", "helpdesk", 5.0), None);
    }

    #[test]
    fn a_workflow_key_ends_with_its_execution_or_its_time() {
        let c = Custody::default();
        let held = |id: &str| WorkflowToken {
            bot: Arc::from("helpdesk"),
            function_execution_id: Arc::from(id),
            token: Arc::from("xwfp-not-a-real-token"),
        };
        c.hold_workflow_token("sgw-a", held("Fx1"), 100.0);
        c.hold_workflow_token("sgw-b", held("Fx1"), 100.0);
        c.hold_workflow_token("sgw-c", held("Fx2"), 100.0);
        assert_eq!(c.workflow_token("sgw-a", 50.0), Some(held("Fx1")));
        assert_eq!(c.workflow_token("sgw-c", 100.0), None);
        assert_eq!(c.end_function_execution("Fx1"), 2);
        assert_eq!(c.workflow_token("sgw-a", 50.0), None);
        assert_eq!(c.workflow_token("sgw-c", 50.0), Some(held("Fx2")));
    }

    #[test]
    fn a_full_store_drops_what_was_held_longest_ago() {
        let c = Custody::default();
        for i in 0..MAX_HELD {
            c.hold_response_url(&format!("cap{i}"), response("b"), i as f64);
        }
        // cap0 ends first (each lives the same time from when it was held): it goes.
        c.hold_response_url("new", response("b"), MAX_HELD as f64);
        assert_eq!(c.held().0, MAX_HELD);
        assert!(c.held_response_url("cap0", 10.0).is_none());
        assert!(c.held_response_url("cap1", 10.0).is_some());
        assert!(c.held_response_url("new", 10.0).is_some());
        // A spent entry leaves room: the next hold drops nothing live.
        for _ in 0..RESPONSE_URL_USES {
            assert!(c.spend_response_url("cap7", 10.0));
        }
        c.hold_response_url("newer", response("b"), MAX_HELD as f64);
        assert_eq!(c.held().0, MAX_HELD);
        assert!(c.held_response_url("cap1", 10.0).is_some());
        // Then cap1 is the front.
        c.hold_response_url("newest", response("b"), MAX_HELD as f64);
        assert!(c.held_response_url("cap1", 10.0).is_none());
        assert!(c.held_response_url("cap2", 10.0).is_some());
    }

    #[test]
    fn adopting_again_keeps_the_place_and_takes_the_new_entry() {
        let c = Custody::default();
        c.hold_response_url("cap1", response("a"), 0.0);
        c.adopt_response_url("cap1", response("b"), 50.0, 1);
        assert_eq!(c.held_response_url("cap1", 10.0), Some(response("b")));
        assert_eq!(c.responses.queued(), 1);
        assert!(c.spend_response_url("cap1", 10.0));
        assert!(!c.spend_response_url("cap1", 10.0));
    }

    #[test]
    fn the_queue_of_a_store_whose_entries_are_spent_stays_bounded() {
        let c = Custody::default();
        // Held and spent in turn, with one long-lived entry at the front.
        c.hold_response_url("first", response("b"), 0.0);
        for i in 0..50_000 {
            let cap = format!("cap{i}");
            c.hold_response_url(&cap, response("b"), 0.0);
            if i % 10 != 0 {
                for _ in 0..RESPONSE_URL_USES {
                    assert!(c.spend_response_url(&cap, 1.0));
                }
            }
        }
        assert_eq!(c.held().0, 5_001);
        assert!(c.responses.queued() <= 2 * 5_001 + 1_024 + 1);
        // Ending an execution's keys leaves them stale too.
        let token = |id: &str| WorkflowToken {
            bot: Arc::from("b"),
            function_execution_id: Arc::from(id),
            token: Arc::from("xwfp-x"),
        };
        for i in 0..3_000 {
            c.hold_workflow_token(&format!("sgw-{i}"), token("Fx1"), 100.0);
        }
        assert_eq!(c.end_function_execution("Fx1"), 3_000);
        assert_eq!(c.held().2, 0);
        assert!(c.workflows.queued() <= 1_024);
    }
}
