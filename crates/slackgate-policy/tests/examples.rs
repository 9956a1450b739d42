//! Every file in policies/ loads: configs (`*.config.yaml`) with their policy,
//! and policies on their own, with every referenced env var provided.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use slackgate_fixtures::MapSecrets;
use slackgate_policy::{load, AuditPath, LimitKey, Mode, OnDeny};
use support::now;

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

#[test]
fn every_example_loads() {
    let secrets = MapSecrets::any_env();
    let mut files: Vec<PathBuf> = std::fs::read_dir(policies_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy();
        let loaded = load(f, &secrets, now()).unwrap_or_else(|e| panic!("{e}"));
        // Configs are told from policies by their keys, not their names.
        assert_eq!(
            loaded.config.is_some(),
            name.ends_with(".config.yaml"),
            "{name}"
        );
    }
}

#[test]
fn example_config_matches_the_design() {
    let c = load(
        &policies_dir().join("example.config.yaml"),
        &MapSecrets::any_env(),
        now(),
    )
    .unwrap()
    .config
    .unwrap();
    assert_eq!(c.listen.len(), 1);
    assert_eq!(c.listen[0].addr.to_string(), "127.0.0.1:8080");
    assert!(c.listen[0].tls.is_none());
    assert_eq!(c.admin.unwrap().addr.to_string(), "127.0.0.1:9090");
    assert_eq!(c.audit.path, AuditPath::Stdout);
    assert!(c.trusted_proxies.is_empty());
    assert_eq!(c.limits, slackgate_policy::Limits::default());
    assert_eq!(c.policy_path, policies_dir().join("example.yaml"));
}

#[test]
fn example_policy_compiles_to_the_expected_model() {
    let secrets = MapSecrets::any_env();
    let p = load(&policies_dir().join("example.yaml"), &secrets, now())
        .unwrap()
        .policy;
    assert_eq!(p.hash.len(), 16);
    assert_eq!(p.routes.len(), 1);
    let r = p
        .routes
        .find(Some("anything.example"), "/slack/helpdesk")
        .unwrap();
    assert_eq!(&*r.name, "helpdesk");
    assert_eq!(r.mode, Mode::Enforce);
    assert_eq!(r.on_deny, OnDeny::Reject);
    assert!(!r.allow_unverified_shadow);
    assert!(p.routes.find(None, "/slack/helpdesk/").is_none());
    let users = r.allow.users.as_ref().unwrap();
    for u in ["U0333", "U0111", "U0222"] {
        assert!(users.has_id(u), "{u}");
    }
    assert!(!users.has_id("@oncall"));
    assert!(users.groups.is_empty());
    assert!(r.allow.actions.as_ref().unwrap().matches("ticket_close"));
    assert!(r.deny.users.as_ref().unwrap().has_id("U0BAD"));
    assert!(r.source_ips.permits("203.0.113.9".parse().unwrap()));
    assert!(!r.source_ips.permits("192.0.2.9".parse().unwrap()));
    assert_eq!(r.rate_limits.len(), 2);
    assert_eq!(r.rate_limits[0].per, LimitKey::Team);
    assert_eq!(r.rate_limits[0].rate.tokens_per_sec, 20.0);
    assert_eq!(r.rate_limits[0].burst.get(), 40);
    assert_eq!(
        &*r.rate_limits[0].label,
        "rate_limits[0] per team 20/s burst 40"
    );
    assert_eq!(r.rate_limits[1].rate.tokens_per_sec, 1.0);
    let app = &r.app;
    assert_eq!(app.api_app_id.as_deref(), Some("A0HELPDESK"));
    let ids: Vec<&str> = app.live_keys(now()).map(|k| k.id()).collect();
    assert_eq!(ids, ["current", "previous"]);
    assert!(Arc::ptr_eq(app, &p.apps["helpdesk"]));
    assert_eq!(&*r.upstream.targets[0], "127.0.0.1:3000");
}

#[test]
fn multi_bot_policy_routes_by_host_and_path() {
    let secrets = MapSecrets::any_env();
    let p = load(&policies_dir().join("multi-bot.yaml"), &secrets, now())
        .unwrap()
        .policy;
    assert_eq!(p.apps.len(), 3);
    assert_eq!(p.routes.len(), 4);
    let d = "/slack/deploybot/actions";
    assert!(p.routes.find(Some("slack.example.com"), d).is_some());
    assert!(p.routes.find(Some("SLACK.example.com:443"), d).is_some());
    assert!(p.routes.find(Some("other.example.com"), d).is_none());
    assert!(p.routes.find(None, d).is_none());
    let shadow = p.routes.by_name("standup-shadow").unwrap();
    assert_eq!(shadow.mode, Mode::Shadow);
    let deploy = p.routes.find(Some("slack.example.com"), d).unwrap();
    assert!(deploy.allow.users.as_ref().unwrap().has_id("W0RM2"));
    assert!(deploy.source_ips.permits("10.3.3.3".parse().unwrap()));
    assert!(!deploy.source_ips.permits("192.0.2.1".parse().unwrap()));
    assert!(deploy
        .source_ips
        .permits("::ffff:10.3.3.3".parse().unwrap()));
}
