//! The members of the policy's user groups (`groups: { oncall: { usergroup: S… } }`), as
//! last read from Slack: the store a route's `users` consults for `@oncall` per request.
//!
//! The store outlives policy reloads because the [`Guard`](crate::Guard) holds it, so a
//! reload keeps the members it read. Members are kept by group name with the user group
//! id they were read from: when a reload points a group at another user group, the old
//! members no longer count (they belong to the old one), and the group is unknown again
//! until its new members are read.
//!
//! A group is **unknown** until the first successful read. Fail closed: an unknown group
//! admits nobody in an `allow` list (no one is known to be a member), and in a `deny`
//! list it denies every request that names a user (anyone might be a member). A failed
//! read keeps the last members read (stale but known, see the refresh metrics and
//! `/status`).
//!
//! Cost: a route whose user sets name no user group never touches the store. One that
//! does takes one lock-free `ArcSwap` load per decision and one hash lookup per group
//! named; writers (a refresh every `refresh`) copy the small map of groups and swap it.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use slackgate_policy::{IdSet, UserGroup};

/// A user group's members as read at one time.
#[derive(Debug)]
pub struct Loaded {
    /// The user group id (`S…`) they were read from.
    pub usergroup: Arc<str>,
    /// The user ids.
    pub members: IdSet,
    /// When they were read (the guard's clock).
    pub at: SystemTime,
}

/// Whether a user is in one of some user groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// A member of at least one of them.
    Member,
    /// In none of them, and at least one has never been read: it cannot be told.
    Unknown,
    /// In none of them, and all of them were read.
    NotMember,
}

/// The members of every user group read so far, by group name.
#[derive(Debug, Default)]
pub struct GroupMembers {
    loaded: ArcSwap<HashMap<Arc<str>, Arc<Loaded>>>,
    /// Serializes writers: each copies the map, changes it and swaps it in.
    write: Mutex<()>,
}

impl GroupMembers {
    /// Whether `user` is a member of one of `groups` (one load of the store).
    pub fn membership(&self, groups: &[Arc<UserGroup>], user: &str) -> Membership {
        let map = self.loaded.load();
        let mut unknown = false;
        for g in groups {
            match map.get(&*g.name).filter(|l| l.usergroup == g.usergroup) {
                Some(l) if l.members.contains(user) => return Membership::Member,
                Some(_) => {}
                None => unknown = true,
            }
        }
        if unknown {
            Membership::Unknown
        } else {
            Membership::NotMember
        }
    }

    /// The members last read for `group` (`None` while it is unknown).
    pub fn get(&self, group: &UserGroup) -> Option<Arc<Loaded>> {
        self.loaded
            .load()
            .get(&*group.name)
            .filter(|l| l.usergroup == group.usergroup)
            .cloned()
    }

    /// Records `members` read for `group` at `at`, replacing what was there.
    pub fn set(&self, group: &UserGroup, members: IdSet, at: SystemTime) {
        let loaded = Arc::new(Loaded {
            usergroup: Arc::clone(&group.usergroup),
            members,
            at,
        });
        self.update(|map| {
            map.insert(Arc::clone(&group.name), loaded);
        });
    }

    /// Forgets every group that is not `keep(name, usergroup)` (a reload removed it or
    /// pointed it at another user group).
    pub fn retain(&self, keep: impl Fn(&str, &str) -> bool) {
        let stale = self
            .loaded
            .load()
            .iter()
            .any(|(name, l)| !keep(name, &l.usergroup));
        if stale {
            self.update(|map| map.retain(|name, l| keep(name, &l.usergroup)));
        }
    }

    /// The number of groups whose members are held.
    pub fn len(&self) -> usize {
        self.loaded.load().len()
    }

    /// True when no group's members are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn update(&self, f: impl FnOnce(&mut HashMap<Arc<str>, Arc<Loaded>>)) {
        let _serial = self.write.lock();
        let mut next = HashMap::clone(&self.loaded.load());
        f(&mut next);
        self.loaded.store(Arc::new(next));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn group(name: &str, usergroup: &str) -> Arc<UserGroup> {
        Arc::new(UserGroup {
            name: name.into(),
            usergroup: usergroup.into(),
            bot: "helpdesk".into(),
            refresh: Duration::from_secs(60),
            defined_at: (1, 1),
        })
    }

    fn ids(v: &[&str]) -> IdSet {
        v.iter().copied().collect()
    }

    #[test]
    fn a_group_is_unknown_until_read_and_then_known_even_when_empty() {
        let m = GroupMembers::default();
        let oncall = group("oncall", "S0ONCALL");
        let both = [Arc::clone(&oncall)];
        assert_eq!(m.membership(&both, "U1"), Membership::Unknown);
        assert!(m.get(&oncall).is_none());
        m.set(&oncall, ids(&[]), UNIX_EPOCH);
        assert_eq!(m.membership(&both, "U1"), Membership::NotMember);
        m.set(&oncall, ids(&["U1"]), UNIX_EPOCH + Duration::from_secs(5));
        assert_eq!(m.membership(&both, "U1"), Membership::Member);
        assert_eq!(
            m.get(&oncall).unwrap().at,
            UNIX_EPOCH + Duration::from_secs(5)
        );
    }

    #[test]
    fn a_member_of_any_group_is_a_member_even_when_another_is_unknown() {
        let m = GroupMembers::default();
        let (a, b) = (group("a", "S0A"), group("b", "S0B"));
        m.set(&a, ids(&["U1"]), UNIX_EPOCH);
        let groups = [Arc::clone(&b), Arc::clone(&a)];
        assert_eq!(m.membership(&groups, "U1"), Membership::Member);
        assert_eq!(m.membership(&groups, "U2"), Membership::Unknown);
        m.set(&b, ids(&["U3"]), UNIX_EPOCH);
        assert_eq!(m.membership(&groups, "U2"), Membership::NotMember);
        assert_eq!(m.membership(&groups, "U3"), Membership::Member);
    }

    #[test]
    fn members_of_another_user_group_do_not_count() {
        let m = GroupMembers::default();
        m.set(&group("oncall", "S0OLD"), ids(&["U1"]), UNIX_EPOCH);
        let moved = group("oncall", "S0NEW");
        assert_eq!(
            m.membership(&[Arc::clone(&moved)], "U1"),
            Membership::Unknown
        );
        assert!(m.get(&moved).is_none());
        m.retain(|name, ug| name == "oncall" && ug == "S0NEW");
        assert!(m.is_empty());
    }

    #[test]
    fn retain_keeps_what_is_kept() {
        let m = GroupMembers::default();
        let (a, b) = (group("a", "S0A"), group("b", "S0B"));
        m.set(&a, ids(&["U1"]), UNIX_EPOCH);
        m.set(&b, ids(&["U2"]), UNIX_EPOCH);
        m.retain(|name, _| name == "a");
        assert_eq!(m.len(), 1);
        assert!(m.get(&a).is_some());
        assert!(m.get(&b).is_none());
    }
}
