//! Route scope: `allow` (every listed dimension must match) and `deny` (any match denies).
//!
//! Identity dimensions apply to every request whose kind can carry them; a request
//! without the fact does not match it, so an `allow` on it fails closed. `enterprises` and
//! `teams` apply to every request. `users` and `channels`, in `allow` and in `deny`, do not
//! apply to a kind that cannot carry a user or a channel: Slack's lifecycle requests, such
//! as `app_uninstalled` and `tokens_revoked` (the one list of them, with what each lacks,
//! is [`slackgate_slack::Lifecycle`]). So a route restricted to some users still hears
//! that it was uninstalled or lost its tokens, from the teams it allows. A kind that
//! can carry a user or a channel but arrives without one (a `message` from a bot, a global
//! shortcut) still fails closed.
//!
//! `users` may name user groups (`@oncall` of a `usergroup:` group), whose members the
//! [`GroupMembers`] store holds; a group never read yet fails closed both ways: in `allow`
//! it admits nobody, in `deny` it denies every request that names a user (see `members`).
//!
//! Kind dimensions apply only to the requests that carry them: `events` to Events API
//! callbacks, `commands` to slash commands, `actions` to interactivity (action ids,
//! else callback id) and to `function_executed` events (a custom workflow step: the
//! function's callback id). A slash command is therefore not denied by an `events` list.

use slackgate_policy::{GlobSet, IdSet, Route, Scope, UserSet};
use slackgate_slack::{Facts, RequestKind};

use crate::members::{GroupMembers, Membership};

/// The first rule that denies the request, or `None` when the scope admits it.
pub(crate) fn denied_by(
    route: &Route,
    facts: &Facts<'_>,
    members: &GroupMembers,
) -> Option<&'static str> {
    if let Some(rule) = deny_match(&route.deny, facts, members) {
        return Some(rule);
    }
    allow_miss(&route.allow, facts, members)
}

fn id_hit(set: &Option<IdSet>, value: Option<&str>) -> Option<bool> {
    set.as_ref().map(|s| value.is_some_and(|v| s.contains(v)))
}

/// Whether `user` is in `set`: one of its ids, or a member of one of its user groups
/// (the store is read only when the set names one). A user group never read counts as
/// holding `user` when `unknown_is_member` (a deny list), else not (an allow list).
fn user_hit(
    set: &Option<UserSet>,
    user: Option<&str>,
    members: &GroupMembers,
    unknown_is_member: bool,
) -> Option<bool> {
    let set = set.as_ref()?;
    let Some(user) = user else {
        return Some(false);
    };
    if set.ids.contains(user) {
        return Some(true);
    }
    if set.groups.is_empty() {
        return Some(false);
    }
    Some(match members.membership(&set.groups, user) {
        Membership::Member => true,
        Membership::Unknown => unknown_is_member,
        Membership::NotMember => false,
    })
}

fn team_value<'f>(facts: &'f Facts<'_>) -> Option<&'f str> {
    facts.team_id.as_deref()
}

fn applies_events(facts: &Facts<'_>) -> bool {
    facts.kind == RequestKind::EventCallback
}

fn applies_commands(facts: &Facts<'_>) -> bool {
    facts.kind == RequestKind::SlashCommand
}

fn applies_actions(facts: &Facts<'_>) -> bool {
    facts.is_function_executed()
        || matches!(
            facts.kind,
            RequestKind::BlockActions
                | RequestKind::BlockSuggestion
                | RequestKind::ViewSubmission
                | RequestKind::ViewClosed
                | RequestKind::Shortcut
                | RequestKind::MessageAction
                | RequestKind::InteractiveMessage
                | RequestKind::DialogSubmission
        )
}

/// The action identifiers of an interactivity request: its action ids, else its callback id.
fn action_names<'f>(facts: &'f Facts<'_>) -> Vec<&'f str> {
    if facts.action_ids.is_empty() {
        facts.callback_id.as_deref().into_iter().collect()
    } else {
        facts.action_ids.iter().map(|a| a.as_ref()).collect()
    }
}

fn actions_all_match(set: &GlobSet, facts: &Facts<'_>) -> bool {
    let names = action_names(facts);
    !names.is_empty() && names.iter().all(|n| set.matches(n))
}

fn actions_any_match(set: &GlobSet, facts: &Facts<'_>) -> bool {
    action_names(facts).iter().any(|n| set.matches(n))
}

fn deny_match(deny: &Scope, f: &Facts<'_>, members: &GroupMembers) -> Option<&'static str> {
    let carries = f.carries();
    if id_hit(&deny.enterprises, f.enterprise_id.as_deref()) == Some(true) {
        return Some("deny.enterprises");
    }
    if id_hit(&deny.teams, team_value(f)) == Some(true) {
        return Some("deny.teams");
    }
    if carries.channel && id_hit(&deny.channels, f.channel_id.as_deref()) == Some(true) {
        return Some("deny.channels");
    }
    if carries.user && user_hit(&deny.users, f.user_id.as_deref(), members, true) == Some(true) {
        return Some("deny.users");
    }
    if applies_events(f) && id_hit(&deny.events, f.event_type.as_deref()) == Some(true) {
        return Some("deny.events");
    }
    if applies_commands(f) && id_hit(&deny.commands, f.command.as_deref()) == Some(true) {
        return Some("deny.commands");
    }
    if applies_actions(f)
        && deny
            .actions
            .as_ref()
            .is_some_and(|s| actions_any_match(s, f))
    {
        return Some("deny.actions");
    }
    None
}

fn allow_miss(allow: &Scope, f: &Facts<'_>, members: &GroupMembers) -> Option<&'static str> {
    let carries = f.carries();
    if id_hit(&allow.enterprises, f.enterprise_id.as_deref()) == Some(false) {
        return Some("allow.enterprises");
    }
    if id_hit(&allow.teams, team_value(f)) == Some(false) {
        return Some("allow.teams");
    }
    if carries.channel && id_hit(&allow.channels, f.channel_id.as_deref()) == Some(false) {
        return Some("allow.channels");
    }
    if carries.user && user_hit(&allow.users, f.user_id.as_deref(), members, false) == Some(false) {
        return Some("allow.users");
    }
    if applies_events(f) && id_hit(&allow.events, f.event_type.as_deref()) == Some(false) {
        return Some("allow.events");
    }
    if applies_commands(f) && id_hit(&allow.commands, f.command.as_deref()) == Some(false) {
        return Some("allow.commands");
    }
    if applies_actions(f)
        && allow
            .actions
            .as_ref()
            .is_some_and(|s| !actions_all_match(s, f))
    {
        return Some("allow.actions");
    }
    None
}
