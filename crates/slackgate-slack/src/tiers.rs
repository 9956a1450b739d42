//! Slack's documented Web API rate limits, per method: the tier (the calls per minute
//! Slack allows one app in one workspace) and `chat.postMessage`'s special limit of one
//! message per second per channel. The gateway's pacing (`egress.pacing`) holds calls
//! back, or answers `slack_rate_limited`, before Slack would answer 429.
//!
//! The numbers are the tiers' documented floors ("1+", "20+", "50+", "100+ per minute"):
//! pacing by them never sends faster than Slack promises to accept. A method not in the
//! table is not paced.

/// How Slack limits one method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Calls per minute (per app and workspace, or per channel when `per_channel`).
    pub per_minute: u32,
    /// How many may go at once after a quiet spell.
    pub burst: u32,
    /// Counted per channel (`chat.postMessage`), not per method.
    pub per_channel: bool,
    /// The tier's name, for the audit rule: `tier1` .. `tier4`, `special`.
    pub tier: &'static str,
}

const fn tier(n: u8) -> Pace {
    let (per_minute, tier) = match n {
        1 => (1, "tier1"),
        2 => (20, "tier2"),
        3 => (50, "tier3"),
        _ => (100, "tier4"),
    };
    Pace {
        per_minute,
        burst: per_minute,
        per_channel: false,
        tier,
    }
}

/// `chat.postMessage`: one message per second per channel, short bursts allowed.
const POST_MESSAGE: Pace = Pace {
    per_minute: 60,
    burst: 1,
    per_channel: true,
    tier: "special",
};

/// The documented tier of each method (sorted by name for the binary search).
const TIERS: &[(&str, u8)] = &[
    ("apps.connections.open", 1),
    ("auth.test", 4),
    ("bookmarks.add", 2),
    ("bookmarks.edit", 2),
    ("bookmarks.list", 3),
    ("bookmarks.remove", 2),
    ("bots.info", 3),
    ("chat.delete", 3),
    ("chat.deleteScheduledMessage", 3),
    ("chat.getPermalink", 4),
    ("chat.meMessage", 3),
    ("chat.postEphemeral", 4),
    ("chat.scheduleMessage", 3),
    ("chat.scheduledMessages.list", 3),
    ("chat.unfurl", 3),
    ("chat.update", 3),
    ("conversations.archive", 2),
    ("conversations.close", 2),
    ("conversations.create", 2),
    ("conversations.history", 3),
    ("conversations.info", 3),
    ("conversations.invite", 3),
    ("conversations.join", 3),
    ("conversations.kick", 3),
    ("conversations.leave", 3),
    ("conversations.list", 2),
    ("conversations.mark", 3),
    ("conversations.members", 4),
    ("conversations.open", 3),
    ("conversations.rename", 2),
    ("conversations.replies", 3),
    ("conversations.setPurpose", 2),
    ("conversations.setTopic", 2),
    ("conversations.unarchive", 2),
    ("dnd.info", 3),
    ("emoji.list", 2),
    ("files.completeUploadExternal", 4),
    ("files.delete", 3),
    ("files.getUploadURLExternal", 4),
    ("files.info", 4),
    ("files.list", 3),
    ("files.upload", 2),
    ("pins.add", 2),
    ("pins.list", 2),
    ("pins.remove", 2),
    ("reactions.add", 3),
    ("reactions.get", 3),
    ("reactions.list", 2),
    ("reactions.remove", 2),
    ("reminders.add", 2),
    ("reminders.list", 2),
    ("search.messages", 2),
    ("team.info", 3),
    ("usergroups.create", 2),
    ("usergroups.list", 2),
    ("usergroups.update", 2),
    ("usergroups.users.list", 2),
    ("usergroups.users.update", 2),
    ("users.conversations", 3),
    ("users.getPresence", 3),
    ("users.info", 4),
    ("users.list", 2),
    ("users.lookupByEmail", 3),
    ("users.profile.get", 4),
    ("users.profile.set", 3),
    ("views.open", 4),
    ("views.publish", 4),
    ("views.push", 4),
    ("views.update", 4),
];

/// How Slack limits `method` (in Slack's spelling), if the table knows it.
pub fn slack_pace(method: &str) -> Option<Pace> {
    if method == "chat.postMessage" {
        return Some(POST_MESSAGE);
    }
    TIERS
        .binary_search_by(|(m, _)| (*m).cmp(method))
        .ok()
        .map(|i| tier(TIERS[i].1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_known_methods() {
        assert!(
            TIERS.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, no twice"
        );
        for (m, _) in TIERS {
            assert!(
                crate::canonical_method(m).is_some(),
                "{m} is a documented method"
            );
        }
        assert_eq!(
            slack_pace("chat.postMessage").map(|p| p.per_channel),
            Some(true)
        );
        assert_eq!(
            slack_pace("conversations.list").map(|p| p.per_minute),
            Some(20)
        );
        assert_eq!(slack_pace("users.info").map(|p| p.tier), Some("tier4"));
        assert_eq!(slack_pace("made.up"), None);
    }
}
