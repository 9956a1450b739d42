//! Webhooks (held by the gateway for the egress door): their URL reference (never a
//! literal URL, never echoed) and the bots that may post to them.
//!
//! That a URL starts with `egress.hooks_base` is checked where config and policy meet
//! (`check_webhooks` in `joins.rs`, run by the loader for every command):
//! the policy is compiled without the config.

use std::sync::Arc;

use marked_yaml::Spanned;

use super::apps::Hints;
use super::{names, shown, Compiler};
use crate::bots::Bot;
use crate::config::SlackApi;
use crate::matcher::IdSet;
use crate::spec::WebhookSpec;
use crate::webhooks::Webhook;

/// Why a webhook URL is unusable (the fix), or `None`. The URL itself is never in it.
fn check_url(url: &str) -> Option<&'static str> {
    let Some(scheme_end) = url.find("://") else {
        return Some("point `url` at a secret holding the webhook URL, e.g. https://hooks.slack.com/services/T000/B000/XXXX");
    };
    let rest = &url[scheme_end + 3..];
    let Some(path_at) = rest.find('/') else {
        return Some("the webhook URL has no path: use the whole URL Slack gave, e.g. https://hooks.slack.com/services/T000/B000/XXXX");
    };
    if url.contains('#') {
        return Some("the webhook URL must not have a fragment (`#...`): use the URL exactly as Slack gave it");
    }
    // The scheme and host are checked as the Web API base is: https, or http to loopback.
    let origin = &url[..scheme_end + 3 + path_at + 1];
    SlackApi::parse(origin).err().map(|_| {
        "the webhook URL must be https:// (http:// only for a loopback stand-in) with a plain host name or IP address"
    })
}

impl Compiler<'_> {
    /// Compiles every webhook; `bots` are the bots that compiled.
    pub(super) fn webhooks(
        &mut self,
        specs: Vec<(Spanned<String>, WebhookSpec)>,
        bots: &[Arc<Bot>],
    ) -> Vec<Arc<Webhook>> {
        specs
            .into_iter()
            .filter_map(|(name, spec)| self.webhook(&name, spec, bots).map(Arc::new))
            .collect()
    }

    fn webhook(
        &mut self,
        name: &Spanned<String>,
        spec: WebhookSpec,
        bots: &[Arc<Bot>],
    ) -> Option<Webhook> {
        let WebhookSpec { url, bots: listed } = spec;
        let start = self.errs.len();
        self.check_name("webhook", name);
        let label = shown(name);

        let url = self.credential(
            &format!("url of webhook `{label}`"),
            &url,
            &Hints {
                env_example: "ALERTS_WEBHOOK_URL",
                file_example: "/run/secrets/alerts-webhook-url",
                content: "the incoming webhook's URL",
            },
        );
        if let Some((u, span)) = &url {
            if let Some(fix) = check_url(u.expose()) {
                self.errs.at(
                    span,
                    format!("the url of webhook `{label}` is not a usable webhook URL"),
                    fix,
                );
            }
        }

        if listed.is_empty() {
            self.errs.at(
                listed.span(),
                format!("webhook `{label}` lists no bots: no one could post to it"),
                "list the bots that may post to it, e.g. bots: [helpdesk]",
            );
        }
        for b in listed.iter() {
            let defined = bots.iter().any(|bot| *bot.name == **b);
            if !defined && !self.declared.bots.contains(b.as_str()) {
                self.errs.at(
                    b.span(),
                    format!(
                        "webhook `{label}` names bot `{}`, which is not defined",
                        shown(b)
                    ),
                    format!(
                        "use one of the bots under `bots:` ({})",
                        names(bots.iter().map(|b| &*b.name))
                    ),
                );
            }
        }

        let (url, span) = url?;
        let (line, column) = crate::error::span_pos(&span);
        (self.errs.len() == start).then(|| Webhook {
            at: crate::bots::Location { line, column },
            name: Arc::from(name.as_str()),
            method: Arc::from(format!("hooks.{}", name.as_str())),
            url,
            bots: listed.iter().map(|b| b.as_str()).collect::<IdSet>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls() {
        assert_eq!(
            check_url("https://hooks.slack.com/services/T0/B0/abc"),
            None
        );
        assert_eq!(check_url("http://127.0.0.1:9000/services/x"), None);
        assert!(check_url("http://hooks.slack.com/services/x").is_some());
        assert!(check_url("hooks.slack.com/services/x").is_some());
        assert!(check_url("https://hooks.slack.com").is_some());
        assert!(check_url("https://user@hooks.slack.com/x").is_some());
        assert!(check_url("https://hooks.slack.com/x#frag").is_some());
    }
}
