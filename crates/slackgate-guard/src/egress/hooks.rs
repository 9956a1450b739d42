//! Posts to a webhook the gateway holds (`POST /hooks/<name>`): [`decide_hook`], and the
//! rate limits on an allowed post.

use std::sync::Arc;

use slackgate_policy::{Policy, Webhook};

use crate::ratelimit::RateLimiter;

use super::decision::EgressDecision;
use super::key::bearer;
use super::rate_limits::take_limits;
use super::reason::EgressReason;
use super::slack_limits::SlackLimits;

/// The bot's rate limits on an allowed webhook post (method `hooks.<name>`, no channel):
/// a post is a write like `chat.postMessage`, and counts against `per: bot` limits too.
pub(crate) fn limit_hook(
    d: &mut EgressDecision,
    limiter: &RateLimiter,
    slack: &SlackLimits,
    now: f64,
) {
    if d.reason != EgressReason::Allowed {
        return;
    }
    let (Some(bot), Some(method)) = (d.bot.clone(), d.method.clone()) else {
        return;
    };
    // Slack's own 429 to this bot's posts to this webhook, until its Retry-After passes.
    if let Some(secs) = slack.remaining(&bot.name, &method, now) {
        d.reason = EgressReason::SlackRateLimited;
        d.retry_after_secs = Some(secs);
        d.rule = Some(Arc::from("slack retry_after"));
        return;
    }
    if let Some((retry_after_secs, label)) = take_limits(&bot, &method, "", limiter, now) {
        d.reason = EgressReason::RateLimited;
        d.retry_after_secs = Some(retry_after_secs);
        d.rule = Some(label);
    }
}

/// One post to a webhook the gateway holds, as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct HookPost<'a> {
    /// The `<name>` of `/hooks/<name>`.
    pub name: &'a str,
    /// Whether the HTTP method is `POST` (the only one a webhook takes).
    pub is_post: bool,
    /// The raw `Authorization` value, if any.
    pub authorization: Option<&'a [u8]>,
}

/// A webhook name as the policy may write it (so it is safe in audit and metrics).
pub fn is_hook_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// Decides a post to a webhook; when allowed, the webhook comes with the decision.
pub fn decide_hook(policy: &Policy, post: &HookPost<'_>) -> (EgressDecision, Option<Arc<Webhook>>) {
    let presented = post.authorization.and_then(bearer);
    let bot = presented.and_then(|k| policy.bots.by_key(k)).cloned();
    let mut d = EgressDecision::new(EgressReason::Allowed);
    let hook = is_hook_name(post.name)
        .then(|| policy.webhooks.get(post.name))
        .flatten();
    // A caller no key identifies gets a method only for a webhook that exists.
    d.method = match hook {
        Some(h) => Some(Box::from(&*h.method)),
        None if is_hook_name(post.name) && bot.is_some() => {
            Some(Box::from(format!("hooks.{}", post.name)))
        }
        None => None,
    };
    let Some(bot) = bot else {
        d.reason = EgressReason::UnknownBot;
        return (
            d.rule(if presented.is_some() { "key" } else { "no key" }),
            None,
        );
    };
    d.bot = Some(Arc::clone(&bot));
    if !is_hook_name(post.name) {
        d.reason = EgressReason::MalformedCall;
        return (d.rule("path"), None);
    }
    if !post.is_post {
        d.reason = EgressReason::MalformedCall;
        return (d.rule("a webhook takes POST"), None);
    }
    let Some(hook) = hook else {
        d.reason = EgressReason::MethodDenied;
        return (d.rule("webhooks: not defined"), None);
    };
    if !hook.permits(&bot.name) {
        d.reason = EgressReason::MethodDenied;
        return (d.rule("webhooks"), None);
    }
    (d, Some(Arc::clone(hook)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook_policy() -> Policy {
        let secrets = slackgate_fixtures::MapSecrets::in_memory(&[
            ("A_KEY", "gk_aaaa1111bbbb2222cccc3333"),
            ("B_KEY", "gk_dddd4444eeee5555ffff6666"),
            ("A_TOKEN", "xoxb-1-a"),
            ("B_TOKEN", "xoxb-1-b"),
            ("HOOK", "https://hooks.slack.com/services/T0/B0/x"),
        ]);
        let text = "version: 1\nroutes: []\nbots:\n  a: { key: { env: A_KEY }, token: { env: A_TOKEN }, methods: [chat.postMessage] }\n  b: { key: { env: B_KEY }, token: { env: B_TOKEN }, methods: [chat.postMessage] }\nwebhooks:\n  alerts: { url: { env: HOOK }, bots: [a] }\n";
        slackgate_fixtures::policy::compiled(text, &secrets, 0)
    }

    #[test]
    fn hook_posts() {
        let p = hook_policy();
        let decide = |name: &str, is_post: bool, auth: Option<&str>| {
            decide_hook(
                &p,
                &HookPost {
                    name,
                    is_post,
                    authorization: auth.map(str::as_bytes),
                },
            )
        };
        let a = Some("Bearer gk_aaaa1111bbbb2222cccc3333");
        let b = Some("Bearer gk_dddd4444eeee5555ffff6666");
        let (d, hook) = decide("alerts", true, a);
        assert_eq!(d.reason, EgressReason::Allowed);
        assert_eq!(d.method.as_deref(), Some("hooks.alerts"));
        assert_eq!(hook.map(|h| Arc::clone(&h.name)).as_deref(), Some("alerts"));
        let cases = [
            (
                decide("alerts", true, b),
                EgressReason::MethodDenied,
                "webhooks",
            ),
            (
                decide("nosuch", true, a),
                EgressReason::MethodDenied,
                "webhooks: not defined",
            ),
            (
                decide("alerts", false, a),
                EgressReason::MalformedCall,
                "a webhook takes POST",
            ),
            (decide("a/b", true, a), EgressReason::MalformedCall, "path"),
            (
                decide("alerts", true, Some("Bearer nope")),
                EgressReason::UnknownBot,
                "key",
            ),
            (
                decide("alerts", true, None),
                EgressReason::UnknownBot,
                "no key",
            ),
        ];
        for ((d, hook), reason, rule) in cases {
            assert_eq!((d.reason, d.rule.as_deref()), (reason, Some(rule)));
            assert!(hook.is_none());
        }
        assert!(!is_hook_name(""));
        assert!(!is_hook_name(&"x".repeat(65)));
    }
}
