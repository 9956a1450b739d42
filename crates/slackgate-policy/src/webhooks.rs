//! Incoming webhooks the gateway holds in custody: a bot posts to `/hooks/<name>` on the
//! egress listener with its gateway key, and the gateway posts to the webhook's URL,
//! which the bots never see ([`Webhook`], [`WebhookTable`]).
//!
//! A webhook URL is a secret (whoever holds it can post into the channel), so it is a
//! [`Credential`]: read from `env:` or `file:`, never shown by `Debug`, and rotated by
//! changing the secret and reloading.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::bots::{Credential, Location};
use crate::matcher::IdSet;

/// One incoming webhook.
#[derive(Debug)]
pub struct Webhook {
    /// The webhook's name in the policy (the `<name>` of `/hooks/<name>`).
    pub name: Arc<str>,
    /// `hooks.<name>`: the method the audit record and the metrics name a post by.
    pub method: Arc<str>,
    /// The URL (`https://hooks.slack.com/services/...`). Read it only where the post is
    /// written to it.
    pub url: Credential,
    /// The bots that may post to it, by name. Never empty; every one is a defined bot.
    pub bots: IdSet,
    /// Where its `url` reference stands in the policy.
    pub at: Location,
}

impl Webhook {
    /// Whether the bot named `bot` may post to this webhook.
    pub fn permits(&self, bot: &str) -> bool {
        self.bots.contains(bot)
    }
}

/// The webhooks of a policy, by name.
#[derive(Debug, Default)]
pub struct WebhookTable {
    by_name: BTreeMap<Arc<str>, Arc<Webhook>>,
}

impl WebhookTable {
    pub(crate) fn new(hooks: Vec<Arc<Webhook>>) -> Self {
        Self {
            by_name: hooks
                .into_iter()
                .map(|h| (Arc::clone(&h.name), h))
                .collect(),
        }
    }

    /// The webhook with this name.
    pub fn get(&self, name: &str) -> Option<&Arc<Webhook>> {
        self.by_name.get(name)
    }

    /// Every webhook, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Webhook>> {
        self.by_name.values()
    }

    /// The number of webhooks.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True when the policy holds no webhook.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}
