//! Slack's Web API methods by name, and what each does with a conversation.
//!
//! Slack compares method names case-sensitively, and a gateway that decides on a spelling
//! Slack would not route the same way can be steered around its own rules: reply scope,
//! rate-limit buckets and Slack's 429s are all keyed on the name. [`canonical_method`]
//! finds a name in [`METHODS`] ignoring ASCII case and gives Slack's own spelling, which is
//! the one every rule sees and the one forwarded.
//!
//! [`conversation_use`] says, for a method that acts on a conversation, which arguments
//! name the conversation it acts on ([`ConversationUse::targets`], in the order Slack
//! prefers them) and whether it writes into it ([`Writes`]). The arguments that name a
//! conversation at all ([`CHANNEL_ARGUMENTS`]) are read on every call, whatever the method,
//! so that no channel a call names escapes the `channels` check.
//!
//! The table follows Slack's method reference (api.slack.com/methods), including methods
//! Slack has retired (`channels.*`, `groups.*`, `im.*`, `mpim.*`, `files.upload`): a bot
//! calling one gets Slack's own error, not the gateway's.

/// The arguments that name a conversation, on any method: `channel`, `channel_id` and
/// `context_channel_id` name one, `channels` and `channel_ids` a list (a comma-separated
/// string or, in JSON, an array of such strings).
pub const CHANNEL_ARGUMENTS: [&str; 5] = [
    "channel",
    "channel_id",
    "channels",
    "channel_ids",
    "context_channel_id",
];

/// Whether a channel-naming argument takes a list.
pub(crate) fn is_list_argument(name: &str) -> bool {
    matches!(name, "channels" | "channel_ids")
}

/// Every Web API method Slack documents, in Slack's spelling, sorted by the ASCII-lowercase
/// name (so that [`canonical_method`] can search it). No two differ only in case.
pub const METHODS: [&str; 349] = [
    "admin.analytics.getFile",
    "admin.apps.activities.list",
    "admin.apps.approve",
    "admin.apps.approved.list",
    "admin.apps.clearResolution",
    "admin.apps.config.lookup",
    "admin.apps.config.set",
    "admin.apps.requests.cancel",
    "admin.apps.requests.list",
    "admin.apps.restrict",
    "admin.apps.restricted.list",
    "admin.apps.uninstall",
    "admin.audit.anomaly.allow.getItem",
    "admin.audit.anomaly.allow.updateItem",
    "admin.auth.policy.assignEntities",
    "admin.auth.policy.getEntities",
    "admin.auth.policy.removeEntities",
    "admin.barriers.create",
    "admin.barriers.delete",
    "admin.barriers.list",
    "admin.barriers.update",
    "admin.conversations.archive",
    "admin.conversations.bulkArchive",
    "admin.conversations.bulkDelete",
    "admin.conversations.bulkMove",
    "admin.conversations.convertToPrivate",
    "admin.conversations.convertToPublic",
    "admin.conversations.create",
    "admin.conversations.createForObjects",
    "admin.conversations.delete",
    "admin.conversations.disconnectShared",
    "admin.conversations.ekm.listOriginalConnectedChannelInfo",
    "admin.conversations.getConversationPrefs",
    "admin.conversations.getCustomRetention",
    "admin.conversations.getTeams",
    "admin.conversations.invite",
    "admin.conversations.linkObjects",
    "admin.conversations.lookup",
    "admin.conversations.removeCustomRetention",
    "admin.conversations.rename",
    "admin.conversations.restrictAccess.addGroup",
    "admin.conversations.restrictAccess.listGroups",
    "admin.conversations.restrictAccess.removeGroup",
    "admin.conversations.search",
    "admin.conversations.setConversationPrefs",
    "admin.conversations.setCustomRetention",
    "admin.conversations.setTeams",
    "admin.conversations.unarchive",
    "admin.conversations.unlinkObjects",
    "admin.emoji.add",
    "admin.emoji.addAlias",
    "admin.emoji.list",
    "admin.emoji.remove",
    "admin.emoji.rename",
    "admin.functions.list",
    "admin.functions.permissions.lookup",
    "admin.functions.permissions.set",
    "admin.inviteRequests.approve",
    "admin.inviteRequests.approved.list",
    "admin.inviteRequests.denied.list",
    "admin.inviteRequests.deny",
    "admin.inviteRequests.list",
    "admin.roles.addAssignments",
    "admin.roles.listAssignments",
    "admin.roles.removeAssignments",
    "admin.teams.admins.list",
    "admin.teams.create",
    "admin.teams.list",
    "admin.teams.owners.list",
    "admin.teams.settings.info",
    "admin.teams.settings.setDefaultChannels",
    "admin.teams.settings.setDescription",
    "admin.teams.settings.setDiscoverability",
    "admin.teams.settings.setIcon",
    "admin.teams.settings.setName",
    "admin.usergroups.addChannels",
    "admin.usergroups.addTeams",
    "admin.usergroups.listChannels",
    "admin.usergroups.removeChannels",
    "admin.users.assign",
    "admin.users.getExpiration",
    "admin.users.invite",
    "admin.users.list",
    "admin.users.remove",
    "admin.users.session.clearSettings",
    "admin.users.session.getSettings",
    "admin.users.session.invalidate",
    "admin.users.session.list",
    "admin.users.session.reset",
    "admin.users.session.resetBulk",
    "admin.users.session.setSettings",
    "admin.users.setAdmin",
    "admin.users.setExpiration",
    "admin.users.setOwner",
    "admin.users.setRegular",
    "admin.users.unsupportedVersions.export",
    "admin.workflows.collaborators.add",
    "admin.workflows.collaborators.remove",
    "admin.workflows.permissions.lookup",
    "admin.workflows.search",
    "admin.workflows.triggers.types.permissions.lookup",
    "admin.workflows.triggers.types.permissions.set",
    "admin.workflows.unpublish",
    "agents.sessions.rename",
    "agents.sessions.setStatus",
    "api.test",
    "apps.activities.list",
    "apps.auth.external.delete",
    "apps.auth.external.get",
    "apps.connections.open",
    "apps.datastore.bulkDelete",
    "apps.datastore.bulkGet",
    "apps.datastore.bulkPut",
    "apps.datastore.count",
    "apps.datastore.delete",
    "apps.datastore.get",
    "apps.datastore.put",
    "apps.datastore.query",
    "apps.datastore.update",
    "apps.event.authorizations.list",
    "apps.manifest.create",
    "apps.manifest.delete",
    "apps.manifest.export",
    "apps.manifest.update",
    "apps.manifest.validate",
    "apps.permissions.info",
    "apps.permissions.request",
    "apps.permissions.resources.list",
    "apps.permissions.scopes.list",
    "apps.permissions.users.list",
    "apps.permissions.users.request",
    "apps.uninstall",
    "apps.user.connection.update",
    "assistant.search.context",
    "assistant.search.info",
    "assistant.threads.setStatus",
    "assistant.threads.setSuggestedPrompts",
    "assistant.threads.setTitle",
    "auth.revoke",
    "auth.teams.list",
    "auth.test",
    "bookmarks.add",
    "bookmarks.edit",
    "bookmarks.list",
    "bookmarks.remove",
    "bots.info",
    "calls.add",
    "calls.end",
    "calls.info",
    "calls.participants.add",
    "calls.participants.remove",
    "calls.update",
    "canvases.access.delete",
    "canvases.access.set",
    "canvases.create",
    "canvases.delete",
    "canvases.edit",
    "canvases.sections.lookup",
    "channels.archive",
    "channels.create",
    "channels.history",
    "channels.info",
    "channels.invite",
    "channels.join",
    "channels.kick",
    "channels.leave",
    "channels.list",
    "channels.mark",
    "channels.rename",
    "channels.replies",
    "channels.setPurpose",
    "channels.setTopic",
    "channels.unarchive",
    "chat.appendStream",
    "chat.delete",
    "chat.deleteScheduledMessage",
    "chat.getPermalink",
    "chat.meMessage",
    "chat.postEphemeral",
    "chat.postMessage",
    "chat.scheduledMessages.list",
    "chat.scheduleMessage",
    "chat.startStream",
    "chat.stopStream",
    "chat.unfurl",
    "chat.update",
    "conversations.acceptSharedInvite",
    "conversations.approveSharedInvite",
    "conversations.archive",
    "conversations.canvases.create",
    "conversations.close",
    "conversations.create",
    "conversations.declineSharedInvite",
    "conversations.externalInvitePermissions.set",
    "conversations.history",
    "conversations.info",
    "conversations.invite",
    "conversations.inviteShared",
    "conversations.join",
    "conversations.kick",
    "conversations.leave",
    "conversations.list",
    "conversations.listConnectInvites",
    "conversations.mark",
    "conversations.members",
    "conversations.open",
    "conversations.rename",
    "conversations.replies",
    "conversations.requestSharedInvite.approve",
    "conversations.requestSharedInvite.deny",
    "conversations.requestSharedInvite.list",
    "conversations.setPurpose",
    "conversations.setTopic",
    "conversations.unarchive",
    "dialog.open",
    "dnd.endDnd",
    "dnd.endSnooze",
    "dnd.info",
    "dnd.setSnooze",
    "dnd.teamInfo",
    "emoji.list",
    "entity.presentDetails",
    "files.comments.delete",
    "files.completeUploadExternal",
    "files.delete",
    "files.getUploadURLExternal",
    "files.info",
    "files.list",
    "files.remote.add",
    "files.remote.info",
    "files.remote.list",
    "files.remote.remove",
    "files.remote.share",
    "files.remote.update",
    "files.revokePublicURL",
    "files.sharedPublicURL",
    "files.upload",
    "functions.completeError",
    "functions.completeSuccess",
    "groups.archive",
    "groups.create",
    "groups.createChild",
    "groups.history",
    "groups.info",
    "groups.invite",
    "groups.kick",
    "groups.leave",
    "groups.list",
    "groups.mark",
    "groups.open",
    "groups.rename",
    "groups.replies",
    "groups.setPurpose",
    "groups.setTopic",
    "groups.unarchive",
    "im.close",
    "im.history",
    "im.list",
    "im.mark",
    "im.open",
    "im.replies",
    "migration.exchange",
    "mpim.close",
    "mpim.history",
    "mpim.list",
    "mpim.mark",
    "mpim.open",
    "mpim.replies",
    "oauth.access",
    "oauth.v2.access",
    "oauth.v2.exchange",
    "openid.connect.token",
    "openid.connect.userInfo",
    "pins.add",
    "pins.list",
    "pins.remove",
    "reactions.add",
    "reactions.get",
    "reactions.list",
    "reactions.remove",
    "reminders.add",
    "reminders.complete",
    "reminders.delete",
    "reminders.info",
    "reminders.list",
    "rtm.connect",
    "rtm.start",
    "search.all",
    "search.files",
    "search.messages",
    "slackLists.access.delete",
    "slackLists.access.set",
    "slackLists.create",
    "slackLists.download.get",
    "slackLists.download.start",
    "slackLists.items.create",
    "slackLists.items.delete",
    "slackLists.items.deleteMultiple",
    "slackLists.items.info",
    "slackLists.items.list",
    "slackLists.items.update",
    "slackLists.update",
    "stars.add",
    "stars.list",
    "stars.remove",
    "team.accessLogs",
    "team.billableInfo",
    "team.billing.info",
    "team.externalTeams.disconnect",
    "team.externalTeams.list",
    "team.info",
    "team.integrationLogs",
    "team.preferences.list",
    "team.profile.get",
    "tooling.tokens.rotate",
    "usergroups.create",
    "usergroups.disable",
    "usergroups.enable",
    "usergroups.list",
    "usergroups.update",
    "usergroups.users.list",
    "usergroups.users.update",
    "users.conversations",
    "users.deletePhoto",
    "users.discoverableContacts.lookup",
    "users.getPresence",
    "users.identity",
    "users.info",
    "users.list",
    "users.lookupByEmail",
    "users.profile.get",
    "users.profile.set",
    "users.setPhoto",
    "users.setPresence",
    "views.open",
    "views.publish",
    "views.push",
    "views.update",
    "workflows.featured.add",
    "workflows.featured.list",
    "workflows.featured.remove",
    "workflows.featured.set",
    "workflows.stepCompleted",
    "workflows.stepFailed",
    "workflows.triggers.permissions.add",
    "workflows.triggers.permissions.list",
    "workflows.triggers.permissions.remove",
    "workflows.triggers.permissions.set",
    "workflows.updateStep",
];

/// Slack's spelling of a method named in any ASCII case: `chat.PostMessage` and
/// `CHAT.POSTMESSAGE` give `chat.postMessage`; a name Slack does not document gives `None`.
pub fn canonical_method(name: &str) -> Option<&'static str> {
    let mut buf = [0u8; LONGEST_METHOD];
    // A name longer than every entry is none of them.
    let lower = buf.get_mut(..name.len())?;
    lower.copy_from_slice(name.as_bytes());
    lower.make_ascii_lowercase();
    LOWER_METHODS
        .binary_search_by(|entry| (**entry).cmp(lower))
        .ok()
        .and_then(|at| METHODS.get(at).copied())
}

/// No entry of [`METHODS`] is longer (a test holds the table to it).
const LONGEST_METHOD: usize = 64;

/// [`METHODS`] in ASCII lower case, in the same order (the table is sorted ignoring case),
/// so that a lookup lowers the name once and compares bytes.
static LOWER_METHODS: std::sync::LazyLock<Box<[Box<[u8]>]>> = std::sync::LazyLock::new(|| {
    METHODS
        .iter()
        .map(|m| m.to_ascii_lowercase().into_bytes().into_boxed_slice())
        .collect()
});

/// Whether `id` has the shape of a Slack id (team, enterprise, channel, user, ...): 2 to 32
/// upper-case ASCII letters and digits. Audit records carry an id only when it has it.
pub fn is_slack_id(id: &str) -> bool {
    (2..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Whether a method writes into the conversation it acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// It reads a conversation, or changes only the caller's own view of it.
    No,
    /// It writes into the conversation it names (a message, a reaction, a pin, a bookmark,
    /// its topic, its members, ...); a call naming none is a write Slack cannot place.
    Yes,
    /// It writes into the conversation it names, or, naming none, into one Slack finds by
    /// other arguments (`chat.unfurl` by `unfurl_id` and `source`).
    EvenUnnamed,
    /// It writes only when a conversation is named (`files.completeUploadExternal` without
    /// a channel uploads a file shared nowhere).
    WhenNamed,
}

/// What a method does with a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationUse {
    /// The arguments naming the conversation the method acts on, the one Slack reads first
    /// first. For a list argument, the list's first channel.
    pub targets: &'static [&'static str],
    /// Whether the method writes into it.
    pub writes: Writes,
}

impl ConversationUse {
    /// Whether a call of the method writes into a conversation, given whether it names the
    /// one the method acts on.
    pub fn writes(&self, names_one: bool) -> bool {
        match self.writes {
            Writes::No => false,
            Writes::Yes | Writes::EvenUnnamed => true,
            Writes::WhenNamed => names_one,
        }
    }
}

const CHANNEL: &[&str] = &["channel"];
const CHANNEL_ID: &[&str] = &["channel_id"];

/// What `method` (in Slack's spelling, see [`canonical_method`]) does with a conversation;
/// `None` for a method that acts on none.
pub fn conversation_use(method: &str) -> Option<ConversationUse> {
    let (targets, writes) = match method {
        // Messages, and what is attached to them.
        "chat.postMessage"
        | "chat.postEphemeral"
        | "chat.update"
        | "chat.delete"
        | "chat.meMessage"
        | "chat.scheduleMessage"
        | "chat.deleteScheduledMessage"
        | "chat.startStream"
        | "chat.appendStream"
        | "chat.stopStream"
        | "reactions.add"
        | "reactions.remove"
        | "pins.add"
        | "pins.remove" => (CHANNEL, Writes::Yes),
        "chat.unfurl" => (CHANNEL, Writes::EvenUnnamed),
        // The conversation itself: what its members see of it, and who they are.
        "conversations.setTopic"
        | "conversations.setPurpose"
        | "conversations.rename"
        | "conversations.archive"
        | "conversations.unarchive"
        | "conversations.invite"
        | "conversations.kick"
        | "conversations.inviteShared"
        | "conversations.externalInvitePermissions.set" => (CHANNEL, Writes::Yes),
        "bookmarks.add"
        | "bookmarks.edit"
        | "bookmarks.remove"
        | "conversations.canvases.create"
        | "assistant.threads.setStatus"
        | "assistant.threads.setSuggestedPrompts"
        | "assistant.threads.setTitle"
        | "workflows.featured.add"
        | "workflows.featured.remove"
        | "workflows.featured.set" => (CHANNEL_ID, Writes::Yes),
        // Files shared into conversations.
        "files.completeUploadExternal" => (&["channel_id", "channels"][..], Writes::WhenNamed),
        "files.upload" => (&["channels"][..], Writes::WhenNamed),
        "files.remote.share" => (&["channels"][..], Writes::Yes),
        // Reads, and changes to the caller's own view.
        "conversations.info"
        | "conversations.history"
        | "conversations.replies"
        | "conversations.members"
        | "conversations.join"
        | "conversations.leave"
        | "conversations.mark"
        | "conversations.close"
        | "conversations.open"
        | "chat.getPermalink"
        | "chat.scheduledMessages.list"
        | "pins.list"
        | "reactions.get"
        | "files.list"
        | "stars.add"
        | "stars.remove" => (CHANNEL, Writes::No),
        "bookmarks.list" => (CHANNEL_ID, Writes::No),
        "canvases.access.set" | "canvases.access.delete" | "workflows.featured.list" => {
            (&["channel_ids"][..], Writes::No)
        }
        "assistant.search.context" => (&["context_channel_id"][..], Writes::No),
        _ => return None,
    };
    Some(ConversationUse { targets, writes })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compares `name` with `entry` as ASCII-lowercase bytes.
    fn cmp_ignoring_case(entry: &str, name: &str) -> std::cmp::Ordering {
        entry
            .bytes()
            .map(|b| b.to_ascii_lowercase())
            .cmp(name.bytes().map(|b| b.to_ascii_lowercase()))
    }

    #[test]
    fn no_method_is_longer_than_the_lookup_buffer() {
        assert!(METHODS.iter().all(|m| m.len() <= LONGEST_METHOD));
        for m in METHODS {
            assert_eq!(canonical_method(&m.to_ascii_uppercase()), Some(m));
        }
        let long = "a".repeat(LONGEST_METHOD + 1);
        assert_eq!(canonical_method(&long), None);
    }

    #[test]
    fn the_table_is_sorted_ignoring_case_and_has_no_case_twins() {
        for pair in METHODS.windows(2) {
            assert_eq!(
                cmp_ignoring_case(pair[0], pair[1]),
                std::cmp::Ordering::Less,
                "{} before {}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn every_method_is_found_in_any_case() {
        for m in METHODS {
            assert_eq!(canonical_method(m), Some(m));
            assert_eq!(canonical_method(&m.to_ascii_uppercase()), Some(m));
            assert_eq!(canonical_method(&m.to_ascii_lowercase()), Some(m));
        }
        assert_eq!(
            canonical_method("chat.PostMessage"),
            Some("chat.postMessage")
        );
        assert_eq!(
            canonical_method("CHAT.POSTMESSAGE"),
            Some("chat.postMessage")
        );
        assert_eq!(
            canonical_method("FILES.SHAREDPUBLICURL"),
            Some("files.sharedPublicURL")
        );
    }

    #[test]
    fn unknown_names_are_not_found() {
        for name in [
            "",
            "chat",
            "chat.",
            "chat.postMessage2",
            "chat.postMessag",
            "x.y",
            "chat_postMessage",
        ] {
            assert_eq!(canonical_method(name), None, "{name}");
        }
    }

    #[test]
    fn conversation_uses_name_methods_of_the_table() {
        // A typo here would silently exempt a method from reply scope.
        let mut named = 0;
        for m in METHODS {
            if let Some(u) = conversation_use(m) {
                named += 1;
                assert!(!u.targets.is_empty(), "{m}");
                for t in u.targets {
                    assert!(CHANNEL_ARGUMENTS.contains(t), "{m}: {t}");
                }
            }
        }
        assert_eq!(named, 58);
    }

    #[test]
    fn slack_ids_have_their_shape() {
        for id in ["C0HELP", "T0", "E0123456789", &"A".repeat(32)] {
            assert!(is_slack_id(id), "{id}");
        }
        for id in [
            "",
            "C",
            "c0help",
            "C0-HELP",
            "C0HELP ",
            &"A".repeat(33),
            "CÉ",
        ] {
            assert!(!is_slack_id(id), "{id}");
        }
    }

    #[test]
    fn writes_cover_every_chat_write() {
        for m in METHODS.iter().filter(|m| m.starts_with("chat.")) {
            let reads = ["chat.getPermalink", "chat.scheduledMessages.list"];
            let writes = conversation_use(m).is_some_and(|u| u.writes(true));
            assert_eq!(writes, !reads.contains(m), "{m}");
        }
    }
}
