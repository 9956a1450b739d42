//! Groups whose members Slack holds: a `groups:` entry written as
//! `{ usergroup: S0ONCALL, bot: helpdesk, refresh: 5m }` ([`UserGroup`]), and the user
//! sets of route scopes that name them ([`UserSet`]).
//!
//! A group written as a list of user ids is expanded into the routes that name it when
//! the policy is compiled. A user group cannot be: its members change without a reload.
//! The gateway reads them from Slack (`usergroups.users.list` with the bot's token) every
//! `refresh` and when a verified `subteam_members_changed` names the group, and keeps them
//! outside the policy, so a reload keeps them. A route's [`UserSet`] names the user groups
//! it refers to; the guard looks their members up per request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::matcher::IdSet;

/// The shortest `refresh` accepted. `usergroups.users.list` is in Slack's Tier 2 (about 20
/// calls a minute per workspace), so production policies use minutes; one second is for
/// tests and a single group.
pub const MIN_GROUP_REFRESH: Duration = Duration::from_secs(1);

/// A group whose members are those of a Slack user group.
#[derive(Debug, Clone)]
pub struct UserGroup {
    /// The group's name in the policy (`@name` in scopes; a metric label).
    pub name: Arc<str>,
    /// The Slack user group id (`S…`).
    pub usergroup: Arc<str>,
    /// The bot whose token reads the members (a bot of the policy's `bots:`).
    pub bot: Arc<str>,
    /// How often the members are read again.
    pub refresh: Duration,
    /// Where the group is defined (1-based line and column of its name), for errors that
    /// join it with the server config.
    pub defined_at: (usize, usize),
}

impl UserGroup {
    /// Whether `other` reads the same members the same way: same name, user group, bot
    /// and refresh (where in the file it is written does not matter).
    pub fn same_definition(&self, other: &UserGroup) -> bool {
        self.name == other.name
            && self.usergroup == other.usergroup
            && self.bot == other.bot
            && self.refresh == other.refresh
    }
}

/// The users of a scope's `users` dimension: user ids, and user groups whose members
/// are looked up when a request is decided.
#[derive(Debug, Clone, Default)]
pub struct UserSet {
    /// User ids, with the members of list groups expanded.
    pub ids: IdSet,
    /// The user groups named (`@name` of a `usergroup:` group), in policy order.
    pub groups: Box<[Arc<UserGroup>]>,
}

impl UserSet {
    /// True when `user` is one of the ids (user groups are not consulted).
    pub fn has_id(&self, user: &str) -> bool {
        self.ids.contains(user)
    }
}

/// The user groups of a policy, by name.
pub type UserGroups = BTreeMap<Arc<str>, Arc<UserGroup>>;
