//! The audit trail, aggregated: per bot the methods, channels, teams and scopes its
//! calls used, per route the teams, channels, events and commands its requests carried,
//! each with a count and the last time seen. Memory grows with the number of distinct
//! values, never with the number of lines: a line is parsed where it lies and folded
//! into sets.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;

/// How often a value was seen, and when last (the latest `ts`, RFC 3339 UTC, which
/// compares as text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) count: u64,
    pub(crate) last: String,
}

impl Seen {
    fn note(&mut self, ts: &str) {
        self.count += 1;
        if ts > self.last.as_str() {
            // Reuses the allocation: lines mostly come in time order.
            self.last.clear();
            self.last.push_str(ts);
        }
    }
}

/// A set of values with their [`Seen`]; a value already held costs no allocation.
pub(crate) type Tally = BTreeMap<String, Seen>;

fn tally(map: &mut Tally, key: &str, ts: &str) {
    match map.get_mut(key) {
        Some(s) => s.note(ts),
        None => {
            let mut s = Seen::default();
            s.note(ts);
            map.insert(key.to_owned(), s);
        }
    }
}

/// What one bot's calls showed.
#[derive(Debug, Clone, Default)]
pub(crate) struct BotSeen {
    /// Calls that reached Slack: allowed, or shadowed would-be denials.
    pub(crate) calls: Seen,
    /// Of them, shadowed would-be denials.
    pub(crate) shadowed: u64,
    pub(crate) methods: Tally,
    /// Channels the calls acted on (or were denied for), in Slack's id shape.
    pub(crate) channels: Tally,
    pub(crate) teams: Tally,
    /// Calls whose channel or team the audit wrote `invalid` (not a Slack id).
    pub(crate) invalid_channel: Seen,
    pub(crate) invalid_team: Seen,
    /// Shadowed writes that named no conversation (denied by `channels` or `reply_scope`
    /// whatever the channel list): only omitting the rule allows them.
    pub(crate) unnamed_writes: Tally,
    /// Shadowed `deny_args: NAME` denials, by argument name.
    pub(crate) denied_args: Tally,
    /// Shadowed `reply_scope` denials.
    pub(crate) reply_scope: Seen,
    /// Shadowed rate limits, by rule.
    pub(crate) rate_limited: Tally,
    /// Calls refused and not shadowed, by `method reason` (not suggested).
    pub(crate) refused: Tally,
    /// Slack's `x-accepted-oauth-scopes` of the answers, by value.
    pub(crate) scopes_needed: Tally,
    /// The latest `x-oauth-scopes` written, and when.
    pub(crate) scopes_granted: Option<(String, String)>,
}

/// What one route's requests showed.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteSeen {
    /// Requests forwarded to the bot: allowed, or shadowed would-be denials.
    pub(crate) requests: Seen,
    pub(crate) shadowed: u64,
    pub(crate) teams: Tally,
    pub(crate) channels: Tally,
    pub(crate) events: Tally,
    pub(crate) commands: Tally,
    /// Action ids (else callback ids) of interactivity and custom-step requests.
    pub(crate) actions: Tally,
    pub(crate) kinds: Tally,
    /// Requests without a team (org-wide installs), or whose team was not a Slack id.
    pub(crate) no_team: Seen,
    /// Requests that can carry a channel but came without one (or with no Slack id).
    pub(crate) no_channel: Seen,
    /// Requests `actions` rules apply to that named no action (a record from before the
    /// audit had `action_id`, or a payload without one): `actions` cannot be listed.
    pub(crate) no_action: Seen,
    /// Shadowed denials, by rule (`allow.users`, `deny.channels`, `rate_limits[0] ...`).
    pub(crate) shadow_rules: Tally,
}

/// The whole trail, aggregated.
#[derive(Debug, Clone, Default)]
pub(crate) struct Trail {
    pub(crate) bots: BTreeMap<String, BotSeen>,
    pub(crate) routes: BTreeMap<String, RouteSeen>,
    /// Lines read, records used, and lines that were no audit record.
    pub(crate) lines: u64,
    pub(crate) used: u64,
    pub(crate) unreadable: u64,
    /// Records before `since`, or of bots and routes not asked for.
    pub(crate) skipped: u64,
    /// The first and last `ts` used.
    pub(crate) first: Option<String>,
    pub(crate) last: String,
}

/// A string of a line, borrowed from it unless it holds an escape.
#[derive(Debug, Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Text<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The fields of an audit line the suggestion reads (docs/audit.md); the others are
/// skipped.
#[derive(Debug, Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    ts: Option<Text<'a>>,
    #[serde(borrow)]
    direction: Option<Text<'a>>,
    #[serde(borrow, default)]
    bot: Option<Text<'a>>,
    #[serde(borrow, default)]
    route: Option<Text<'a>>,
    #[serde(borrow, default)]
    method: Option<Text<'a>>,
    #[serde(borrow, default)]
    team_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    channel_id: Option<Text<'a>>,
    #[serde(borrow)]
    reason: Option<Text<'a>>,
    #[serde(borrow, default)]
    rule: Option<Text<'a>>,
    #[serde(default)]
    shadow: bool,
    #[serde(default)]
    lifecycle: bool,
    #[serde(borrow, default)]
    kind: Option<Text<'a>>,
    #[serde(borrow, default)]
    event_type: Option<Text<'a>>,
    #[serde(borrow, default)]
    command: Option<Text<'a>>,
    #[serde(borrow, default)]
    action_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    scopes_needed: Option<Text<'a>>,
    #[serde(borrow, default)]
    scopes_granted: Option<Text<'a>>,
}

/// Which records to use.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    /// Records at or after this time (an RFC 3339 prefix, compared as text).
    pub(crate) since: Option<String>,
    /// Only these bots' egress records (none given: every bot's).
    pub(crate) bots: Vec<String>,
    /// Only these routes' inbound records (none given: every route's).
    pub(crate) routes: Vec<String>,
}

impl Filter {
    fn wants_bot(&self, bot: &str) -> bool {
        (self.bots.is_empty() && self.routes.is_empty()) || self.bots.iter().any(|b| b == bot)
    }

    fn wants_route(&self, route: &str) -> bool {
        (self.bots.is_empty() && self.routes.is_empty()) || self.routes.iter().any(|r| r == route)
    }
}

/// A Slack id as the audit writes it (`invalid` otherwise).
fn is_id(v: &str) -> bool {
    slackgate_slack::is_slack_id(v)
}

/// Whether a call of `method` that names no conversation is still a write into one that
/// a bot's `channels` or `reply_scope` refuses (Slack's `Writes::Yes`; an `EvenUnnamed`
/// method listed by its exact name passes, and the suggestion lists methods by name).
fn writes_unnamed(method: &str) -> bool {
    use slackgate_slack::{conversation_use, Writes};
    if method == slackgate_policy::RESPONSE_URL_METHOD {
        return false;
    }
    conversation_use(method).is_some_and(|u| u.writes == Writes::Yes)
}

/// Whether a route's `actions` rules apply to the request (the gateway's `applies_actions`):
/// interactivity, and a custom step's `function_executed` event.
fn takes_actions(r: &Record<'_>) -> bool {
    matches!(
        r.kind.as_deref(),
        Some(
            "block_actions"
                | "block_suggestion"
                | "view_submission"
                | "view_closed"
                | "shortcut"
                | "message_action"
                | "interactive_message"
                | "dialog_submission"
        )
    ) || r.event_type.as_deref() == Some("function_executed")
}

/// Kinds that cannot carry a channel (the channel dimension does not apply).
fn carries_channel(r: &Record<'_>) -> bool {
    !r.lifecycle && r.kind.as_deref() != Some("app_rate_limited")
}

impl Trail {
    /// Folds one line in. `Err` is the parser's error for a line that is no JSON
    /// audit record (its line and column are the caller's to name).
    pub(crate) fn add_line(
        &mut self,
        line: &[u8],
        filter: &Filter,
    ) -> Result<(), serde_json::Error> {
        self.lines += 1;
        let r: Record<'_> = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) => {
                self.unreadable += 1;
                return Err(e);
            }
        };
        let (Some(ts), Some(direction), Some(reason)) = (&r.ts, &r.direction, &r.reason) else {
            self.unreadable += 1;
            return Ok(());
        };
        if filter.since.as_deref().is_some_and(|s| ts.as_ref() < s) {
            self.skipped += 1;
            return Ok(());
        }
        let used = match direction.as_ref() {
            "egress" => self.add_egress(&r, ts, reason, filter),
            "inbound" => self.add_inbound(&r, ts, reason, filter),
            _ => false,
        };
        if used {
            self.used += 1;
            if self.first.as_deref().is_none_or(|f| ts.as_ref() < f) {
                self.first = Some(ts.as_ref().to_owned());
            }
            if ts.as_ref() > self.last.as_str() {
                self.last.clear();
                self.last.push_str(ts);
            }
        } else {
            self.skipped += 1;
        }
        Ok(())
    }

    fn add_egress(&mut self, r: &Record<'_>, ts: &str, reason: &str, filter: &Filter) -> bool {
        let Some(bot) = r.bot.as_deref() else {
            // An unknown caller is nobody's to suggest for.
            return false;
        };
        if !filter.wants_bot(bot) {
            return false;
        }
        if !self.bots.contains_key(bot) {
            self.bots.insert(bot.to_owned(), BotSeen::default());
        }
        let Some(b) = self.bots.get_mut(bot) else {
            return false;
        };
        let method = r.method.as_deref().unwrap_or("");
        if let Some(granted) = r.scopes_granted.as_deref() {
            if granted != "invalid"
                && b.scopes_granted
                    .as_ref()
                    .is_none_or(|(t, _)| ts >= t.as_str())
            {
                b.scopes_granted = Some((ts.to_owned(), granted.to_owned()));
            }
        }
        if let Some(needed) = r.scopes_needed.as_deref() {
            if needed != "invalid" {
                tally(&mut b.scopes_needed, needed, ts);
            }
        }
        // Slack's own 429 memory, a revoked token, the listener's refusals: not a call the
        // bot's rules decided. An allowed call whose sending failed still was one.
        let forwarded = reason == "allowed"
            || r.shadow
            || matches!(reason, "upstream_error" | "upstream_timeout");
        if !forwarded {
            let key = format!("{method} {reason}");
            tally(&mut b.refused, &key, ts);
            return true;
        }
        b.calls.note(ts);
        if r.shadow {
            b.shadowed += 1;
        }
        if !method.is_empty() {
            tally(&mut b.methods, method, ts);
        }
        match r.channel_id.as_deref() {
            Some(c) if is_id(c) => tally(&mut b.channels, c, ts),
            Some(_) => b.invalid_channel.note(ts),
            // A write that names no conversation passes only a bot without `channels`
            // (and `reply_scope`), unless Slack finds its conversation otherwise.
            None if writes_unnamed(method) => tally(&mut b.unnamed_writes, method, ts),
            None => {}
        }
        match r.team_id.as_deref() {
            Some(t) if is_id(t) => tally(&mut b.teams, t, ts),
            Some(_) => b.invalid_team.note(ts),
            None => {}
        }
        if r.shadow {
            let rule = r.rule.as_deref().unwrap_or("");
            match (reason, rule) {
                ("channel_denied", "channels" | "reply_scope")
                    if r.channel_id.is_none() && !writes_unnamed(method) =>
                {
                    tally(&mut b.unnamed_writes, method, ts);
                }
                // Tallied above as a write that names no conversation.
                ("channel_denied", "channels" | "reply_scope") if r.channel_id.is_none() => {}
                ("channel_denied", "reply_scope") => b.reply_scope.note(ts),
                ("argument_denied", _) => {
                    if let Some(name) = rule.strip_prefix("deny_args: ") {
                        tally(&mut b.denied_args, name, ts);
                    }
                }
                ("rate_limited", _) => tally(&mut b.rate_limited, rule, ts),
                _ => {}
            }
        }
        true
    }

    fn add_inbound(&mut self, r: &Record<'_>, ts: &str, reason: &str, filter: &Filter) -> bool {
        let Some(route) = r.route.as_deref() else {
            return false;
        };
        // A shadowed verification failure (`allow_unverified_shadow`) may be forged: what
        // it names is nobody's to allow.
        let unverified = matches!(
            reason,
            "missing_signature" | "bad_signature" | "stale_timestamp" | "replayed"
        );
        if !filter.wants_route(route) || !(reason == "allowed" || r.shadow) || unverified {
            return false;
        }
        if !self.routes.contains_key(route) {
            self.routes.insert(route.to_owned(), RouteSeen::default());
        }
        let Some(s) = self.routes.get_mut(route) else {
            return false;
        };
        s.requests.note(ts);
        if r.shadow {
            s.shadowed += 1;
            if let Some(rule) = r.rule.as_deref() {
                tally(&mut s.shadow_rules, rule, ts);
            }
        }
        if let Some(k) = r.kind.as_deref() {
            tally(&mut s.kinds, k, ts);
        }
        match r.team_id.as_deref() {
            Some(t) if is_id(t) => tally(&mut s.teams, t, ts),
            _ => s.no_team.note(ts),
        }
        match r.channel_id.as_deref() {
            Some(c) if is_id(c) => tally(&mut s.channels, c, ts),
            _ if carries_channel(r) => s.no_channel.note(ts),
            _ => {}
        }
        if r.kind.as_deref() == Some("event_callback") {
            if let Some(e) = r.event_type.as_deref() {
                tally(&mut s.events, e, ts);
            }
        }
        if takes_actions(r) {
            match r.action_id.as_deref() {
                Some(a) if a != "invalid" => tally(&mut s.actions, a, ts),
                _ => s.no_action.note(ts),
            }
        }
        if r.kind.as_deref() == Some("slash_command") {
            if let Some(c) = r.command.as_deref() {
                tally(&mut s.commands, c, ts);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fold_into_sets_with_counts_and_last_times() {
        let mut t = Trail::default();
        let f = Filter::default();
        let lines = [
            r#"{"ts":"2026-12-01T10:00:00.000000Z","direction":"egress","bot":"hd","method":"chat.postMessage","team_id":"T0ACME","channel_id":"C0HELP","reason":"allowed","status":200,"rule":null,"scopes_needed":"chat:write","scopes_granted":"chat:write,users:read"}"#,
            r#"{"ts":"2026-12-02T10:00:00.000000Z","direction":"egress","bot":"hd","method":"chat.postMessage","team_id":null,"channel_id":"C0OPS","reason":"channel_denied","status":200,"rule":"channels","shadow":true,"scopes_needed":"chat:write"}"#,
            r#"{"ts":"2026-12-03T10:00:00.000000Z","direction":"egress","bot":"hd","method":"admin.users.list","reason":"method_denied","status":200,"rule":"methods","shadow":false}"#,
            r#"{"ts":"2026-12-03T11:00:00.000000Z","direction":"egress","bot":null,"method":"chat.postMessage","reason":"unknown_bot","status":200}"#,
            r#"{"ts":"2026-12-03T12:00:00.000000Z","direction":"inbound","route":"r","reason":"allowed","status":200,"shadow":false,"kind":"event_callback","team_id":"T0ACME","channel_id":"C0HELP","event_type":"app_mention"}"#,
            r#"{"ts":"2026-12-03T13:00:00.000000Z","direction":"inbound","route":"r","reason":"scope_denied","status":403,"shadow":false,"kind":"slash_command","team_id":"T0ACME","channel_id":"C0HELP","command":"/x"}"#,
            r#"{"ts":"2026-12-03T14:00:00.000000Z","direction":"inbound","route":"r","reason":"bad_signature","status":200,"shadow":true,"rule":"signature"}"#,
        ];
        for l in lines {
            t.add_line(l.as_bytes(), &f).unwrap();
        }
        assert!(t.add_line(b"{not json", &f).is_err());
        let b = &t.bots["hd"];
        assert_eq!(b.calls.count, 2);
        assert_eq!(b.shadowed, 1);
        assert_eq!(b.methods["chat.postMessage"].count, 2);
        assert_eq!(
            b.methods["chat.postMessage"].last,
            "2026-12-02T10:00:00.000000Z"
        );
        assert_eq!(b.channels.keys().collect::<Vec<_>>(), ["C0HELP", "C0OPS"]);
        assert_eq!(b.teams.keys().collect::<Vec<_>>(), ["T0ACME"]);
        assert_eq!(b.refused["admin.users.list method_denied"].count, 1);
        assert_eq!(b.scopes_needed["chat:write"].count, 2);
        assert_eq!(
            b.scopes_granted.as_ref().map(|g| g.1.as_str()),
            Some("chat:write,users:read")
        );
        let r = &t.routes["r"];
        assert_eq!(
            r.requests.count, 1,
            "an enforced denial is not a request to allow"
        );
        assert_eq!(r.events.keys().collect::<Vec<_>>(), ["app_mention"]);
        assert!(r.commands.is_empty());
        assert_eq!((t.lines, t.unreadable), (8, 1));
        // --since and --bot
        let mut t = Trail::default();
        let f = Filter {
            since: Some("2026-12-02".into()),
            bots: vec!["other".into()],
            routes: vec![],
        };
        for l in lines {
            t.add_line(l.as_bytes(), &f).unwrap();
        }
        assert!(t.bots.is_empty() && t.routes.is_empty());
        assert_eq!(t.skipped, 7);
    }
}
