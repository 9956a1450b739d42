//! Routes whose `users` name user groups (`groups: { oncall: { usergroup: S… } }`): the
//! members the guard's store holds decide, a group never read fails closed both ways, and
//! a verified `subteam_members_changed` names the group to read again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use slackgate_fixtures::policy::compiled;
use slackgate_fixtures::{content_type_for, fixture, fixture_with, MapSecrets, Signer};
use slackgate_guard::{Decision, FakeClock, Guard, GuardSettings, Inbound, Reason};
use slackgate_policy::{IdSet, Policy};

const NOW: u64 = 1_800_000_000;
const SECRET: &str = "guard-test-secret-0123456789abcdef";

fn policy(routes: &str) -> Policy {
    policy_with(routes, "S0ONCALL")
}

/// The policy with `oncall` reading user group `oncall`.
fn policy_with(routes: &str, oncall: &str) -> Policy {
    let text = format!(
        r#"version: 1
apps:
  app:
    signing_secrets:
      - {{ id: current, env: S1 }}
upstreams:
  bot: {{ targets: ["127.0.0.1:3000"] }}
bots:
  helpdesk:
    key: {{ env: KEY }}
    token: {{ env: TOKEN }}
    methods: [chat.postMessage]
groups:
  oncall: {{ usergroup: {oncall}, bot: helpdesk, refresh: 1m }}
  contractors: {{ usergroup: S0CONTRACT, bot: helpdesk, refresh: 1m }}
  admins: [U0111]
routes:
{routes}"#
    );
    let env = MapSecrets::new(&[
        ("S1", SECRET),
        ("KEY", "gk_guard_test_0123456789ab"),
        ("TOKEN", "xoxb-guard-test-token"),
    ]);
    compiled(&text, &env, NOW)
}

const SETTINGS: GuardSettings = GuardSettings {
    max_clock_skew: Duration::from_secs(300),
};

/// A guard and a counter making every request's signature new (no `replayed`).
struct Rig {
    guard: Guard<Arc<FakeClock>>,
    policy: Policy,
    n: std::cell::Cell<u64>,
}

impl Rig {
    fn new(routes: &str) -> Self {
        Rig {
            guard: Guard::new(Arc::new(FakeClock::at(NOW)), 10_000, 10_000),
            policy: policy(routes),
            n: std::cell::Cell::new(0),
        }
    }

    /// The reason and rule for `body` on `/s`, signed with `secret`.
    fn decide_signed(&self, body: &[u8], secret: &str) -> (Reason, Option<String>) {
        self.with_decision(body, secret, |d, _| {
            (d.reason, d.rule.as_ref().map(|r| r.as_str().to_owned()))
        })
    }

    fn decide(&self, body: &[u8]) -> (Reason, Option<String>) {
        self.decide_signed(body, SECRET)
    }

    fn with_decision<T>(
        &self,
        body: &[u8],
        secret: &str,
        f: impl FnOnce(&Decision<'_>, &Guard<Arc<FakeClock>>) -> T,
    ) -> T {
        self.n.set(self.n.get() + 1);
        let ts = (NOW - self.n.get()).to_string();
        let sig = Signer::new(secret).sign(&ts, body);
        let route = self.policy.routes.find(None, "/s").unwrap();
        let req = Inbound {
            client_ip: "127.0.0.1".parse().unwrap(),
            signature: Some(sig.as_bytes()),
            timestamp: Some(ts.as_bytes()),
            content_type: Some(content_type_for(body)),
            body,
        };
        let d = self.guard.decide(route, &req, &SETTINGS);
        f(&d, &self.guard)
    }

    fn set(&self, group: &str, members: &[&str]) {
        let g = &self.policy.usergroups[group];
        let ids: IdSet = members.iter().copied().collect();
        self.guard
            .group_members()
            .set(g, ids, UNIX_EPOCH + Duration::from_secs(NOW));
    }
}

/// `event_app_mention.json` (a message naming a user) from `user`.
fn from(user: &str) -> Vec<u8> {
    fixture_with("event_app_mention.json", "U0333", user)
}

fn allowed() -> (Reason, Option<String>) {
    (Reason::Allowed, None)
}

fn denied(rule: &str) -> (Reason, Option<String>) {
    (Reason::ScopeDenied, Some(rule.to_owned()))
}

#[test]
fn an_allow_list_of_a_user_group_admits_its_members_once_read() {
    let rig = Rig::new(
        "  - { name: r, path: /s, app: app, upstream: bot, allow: { users: [\"@oncall\"] } }\n",
    );
    // Never read: nobody is known to be a member.
    assert_eq!(rig.decide(&from("U0333")), denied("allow.users"));
    rig.set("oncall", &["U0333"]);
    assert_eq!(rig.decide(&from("U0333")), allowed());
    assert_eq!(rig.decide(&from("U0444")), denied("allow.users"));
    // Read again without U0333, with U0444.
    rig.set("oncall", &["U0444"]);
    assert_eq!(rig.decide(&from("U0333")), denied("allow.users"));
    assert_eq!(rig.decide(&from("U0444")), allowed());
    // Read as empty: known, and nobody.
    rig.set("oncall", &[]);
    assert_eq!(rig.decide(&from("U0444")), denied("allow.users"));
}

#[test]
fn ids_list_groups_and_user_groups_mix_in_one_allow_list() {
    let rig = Rig::new("  - { name: r, path: /s, app: app, upstream: bot, allow: { users: [U0999, \"@admins\", \"@oncall\"] } }\n");
    // The ids and the list group decide without the user group being read.
    assert_eq!(rig.decide(&from("U0999")), allowed());
    assert_eq!(rig.decide(&from("U0111")), allowed());
    assert_eq!(rig.decide(&from("U0333")), denied("allow.users"));
    rig.set("oncall", &["U0333"]);
    assert_eq!(rig.decide(&from("U0333")), allowed());
}

/// Fail closed for a deny list: until the group was read, anyone might be in it, so
/// every request naming a user is denied; a request naming no user is not.
#[test]
fn a_deny_list_of_a_user_group_never_read_denies_every_user() {
    let rig = Rig::new(
        "  - { name: r, path: /s, app: app, upstream: bot, deny: { users: [\"@contractors\"] } }\n",
    );
    assert_eq!(rig.decide(&from("U0333")), denied("deny.users"));
    assert_eq!(rig.decide(&from("U0444")), denied("deny.users"));
    // A lifecycle request carries no user: users do not apply to it at all.
    assert_eq!(
        rig.decide(&fixture("event_app_uninstalled.json")),
        allowed()
    );
    // A message without a user (a bot's) is nobody's: not denied by a deny list.
    let no_user = String::from_utf8(fixture("event_message.json"))
        .unwrap()
        .replace("\"user\":\"U0444\",", "");
    assert_eq!(rig.decide(no_user.as_bytes()), allowed());
    rig.set("contractors", &["U0444"]);
    assert_eq!(rig.decide(&from("U0333")), allowed());
    assert_eq!(rig.decide(&from("U0444")), denied("deny.users"));
}

#[test]
fn deny_wins_over_an_allow_by_user_group() {
    let rig = Rig::new("  - { name: r, path: /s, app: app, upstream: bot, allow: { users: [\"@oncall\"] }, deny: { users: [\"@contractors\"] } }\n");
    rig.set("oncall", &["U0333", "U0444"]);
    rig.set("contractors", &["U0444"]);
    assert_eq!(rig.decide(&from("U0333")), allowed());
    assert_eq!(rig.decide(&from("U0444")), denied("deny.users"));
}

#[test]
fn members_survive_a_new_policy_but_not_a_new_usergroup() {
    const ROUTE: &str =
        "  - { name: r, path: /s, app: app, upstream: bot, allow: { users: [\"@oncall\"] } }\n";
    let mut rig = Rig::new(ROUTE);
    rig.set("oncall", &["U0333"]);
    // The guard holds the members: a recompiled policy (a reload) decides with them.
    rig.policy = policy(ROUTE);
    assert_eq!(rig.decide(&from("U0333")), allowed());
    // Pointed at another user group, the old members no longer count.
    rig.policy = policy_with(ROUTE, "S0OTHER");
    assert!(rig
        .guard
        .group_members()
        .get(&rig.policy.usergroups["oncall"])
        .is_none());
    assert_eq!(rig.decide(&from("U0333")), denied("allow.users"));
}

#[test]
fn a_verified_subteam_event_names_its_group() {
    let rig = Rig::new(
        "  - { name: r, path: /s, app: app, upstream: bot, allow: { users: [\"@oncall\"] } }\n",
    );
    let body = fixture("event_subteam_members_changed.json");
    // Verified: the group is named, whatever the scope said (the event names no user in
    // the group, so it is denied by the allow list, and still counts).
    let named = rig.with_decision(&body, SECRET, |d, g| {
        (d.reason, g.changed_usergroup(d, &body).map(str::to_owned))
    });
    assert_eq!(named, (Reason::ScopeDenied, Some("S0ONCALL".to_owned())));
    // Not verified: nothing.
    let forged = rig.with_decision(&body, "another-secret-0123456789abcdef00", |d, g| {
        (d.reason, g.changed_usergroup(d, &body).map(str::to_owned))
    });
    assert_eq!(forged, (Reason::BadSignature, None));
    // Another event: nothing.
    let mention = from("U0333");
    let other = rig.with_decision(&mention, SECRET, |d, g| {
        g.changed_usergroup(d, &mention).is_some()
    });
    assert!(!other);
}
