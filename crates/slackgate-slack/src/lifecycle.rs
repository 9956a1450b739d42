//! The lifecycle table: Slack's requests about an installation rather than someone's
//! activity, and the identity facts each one can carry.

use std::fmt;

/// The identity facts a kind of request can carry besides its workspace and organization.
///
/// Scope rules on `users` and `channels` apply only to requests whose kind can carry a user
/// or a channel; a request that could carry one but does not still fails closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Carries {
    /// An acting user (`user_id`).
    pub user: bool,
    /// A channel (`channel_id`).
    pub channel: bool,
}

impl Carries {
    /// A user and a channel: every request outside the lifecycle table.
    pub const USER_AND_CHANNEL: Carries = Carries {
        user: true,
        channel: true,
    };
    /// Neither a user nor a channel.
    pub const NEITHER: Carries = Carries {
        user: false,
        channel: false,
    };
}

/// Where Slack names a lifecycle request's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// `event.type` of an `event_callback`.
    Event,
    /// The top-level `type` of the body.
    Envelope,
}

/// Declares [`Lifecycle`] from one table. Each row is a variant with its doc comment (what
/// Slack's reference says the request holds and lacks), Slack's type name, where Slack puts
/// that name, and the identity facts the request can carry.
macro_rules! lifecycle_table {
    ($( $(#[doc = $doc:literal])* $variant:ident = $name:literal, $via:ident, $carries:ident; )+) => {
        /// A request that reports a change to the app's installation, its tokens, its event
        /// delivery, or the identity of the workspace or organization it is installed in,
        /// rather than someone's activity.
        ///
        /// This is the one list of them. Slack documents none of them with an acting user or a
        /// channel, so `users` and `channels` scope rules do not apply to them (see
        /// [`Lifecycle::carries`]); `teams` and `enterprises` do. Events that name a user or a
        /// channel (`app_home_opened`, `member_joined_channel`, ...) are not lifecycle
        /// events, and neither are the admin events about any app of an organization
        /// (`app_installed`, `app_uninstalled_team`, `app_deleted`, which need
        /// `admin.apps:read` and name the admin who acted in `event.user_id`).
        /// Sources: Slack's event reference, `docs.slack.dev/reference/events/<type>`, and
        /// the event types of `@slack/types`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Lifecycle {
            $( $(#[doc = $doc])* $variant, )+
        }

        impl Lifecycle {
            /// Every lifecycle kind, in table order.
            pub const ALL: [Lifecycle; [$($name),+].len()] = [$(Lifecycle::$variant),+];

            /// Returns Slack's snake_case type name, as used for the `type` metric label.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Lifecycle::$variant => $name,)+
                }
            }

            /// The identity facts this kind of request can carry besides team and enterprise.
            pub fn carries(self) -> Carries {
                match self {
                    $(Lifecycle::$variant => Carries::$carries,)+
                }
            }

            pub(crate) fn via(self) -> Via {
                match self {
                    $(Lifecycle::$variant => Via::$via,)+
                }
            }

            /// The kind Slack names `t` (`app_uninstalled`, ...), if it is one.
            pub fn from_name(t: &str) -> Option<Self> {
                match t {
                    $($name => Some(Lifecycle::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

lifecycle_table! {
    /// `app_uninstalled`: the app was uninstalled from the workspace named by the envelope's
    /// `team_id`. `event` holds only `type` (and `event_ts`): no user, no channel.
    AppUninstalled = "app_uninstalled", Event, NEITHER;
    /// `tokens_revoked`: `event.tokens` lists the user ids (`oauth`) and bot ids (`bot`)
    /// whose tokens were revoked; they are the tokens' owners, not someone acting, and
    /// `event` has no `user` and no channel.
    TokensRevoked = "tokens_revoked", Event, NEITHER;
    /// `app_rate_limited`: not an event but a whole body of its own (`type`, `team_id`,
    /// `api_app_id`, `minute_rate_limited`): no user, no channel.
    AppRateLimited = "app_rate_limited", Envelope, NEITHER;
    /// `grid_migration_started`: the workspace began migrating into an Enterprise Grid
    /// organization; `event` holds `enterprise_id`: no user, no channel.
    GridMigrationStarted = "grid_migration_started", Event, NEITHER;
    /// `grid_migration_finished`: the migration finished; `event` holds `enterprise_id`:
    /// no user, no channel.
    GridMigrationFinished = "grid_migration_finished", Event, NEITHER;
    /// `team_rename`: an admin renamed the workspace; `event` holds `name` and `team_id`:
    /// no user (the admin is not named), no channel.
    TeamRename = "team_rename", Event, NEITHER;
    /// `team_domain_change`: the workspace domain changed; `event` holds `url`, `domain`
    /// and `team_id`: no user, no channel.
    TeamDomainChange = "team_domain_change", Event, NEITHER;
    /// `team_access_granted`: an organization-wide app's token was given access to the
    /// workspaces in `event.team_ids` (the envelope's `team_id` may be null): no user, no
    /// channel.
    TeamAccessGranted = "team_access_granted", Event, NEITHER;
    /// `team_access_revoked`: the token lost access to the workspaces in `event.team_ids`
    /// (the app was uninstalled from them): no user, no channel.
    TeamAccessRevoked = "team_access_revoked", Event, NEITHER;
}

/// `event.tokens.bot` of a `tokens_revoked` body, the only part read.
#[derive(serde::Deserialize)]
struct RevokedEnvelope {
    event: Option<RevokedEvent>,
}

#[derive(serde::Deserialize)]
struct RevokedEvent {
    tokens: Option<RevokedTokens>,
}

#[derive(serde::Deserialize)]
struct RevokedTokens {
    bot: Option<Vec<serde::de::IgnoredAny>>,
}

impl Lifecycle {
    /// Whether this request, with this (verified) JSON body, ends the bot token of the
    /// app's installation in the envelope's workspace: `app_uninstalled` always does,
    /// `tokens_revoked` when `event.tokens.bot` lists at least one bot (an installation has
    /// one bot token, so any bot entry is that token). Every other kind, and a body that
    /// cannot be read, revokes nothing.
    pub fn revokes_bot_token(self, body: &[u8]) -> bool {
        match self {
            Lifecycle::AppUninstalled => true,
            Lifecycle::TokensRevoked => serde_json::from_slice::<RevokedEnvelope>(body)
                .ok()
                .and_then(|e| e.event?.tokens?.bot)
                .is_some_and(|bots| !bots.is_empty()),
            _ => false,
        }
    }

    /// The lifecycle kind named by an `event_callback`'s `event.type`.
    pub(crate) fn from_event_type(t: &str) -> Option<Self> {
        Lifecycle::from_name(t).filter(|l| l.via() == Via::Event)
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_requests_revoke_the_bot_token() {
        let revoked = br#"{"team_id":"T1","event":{"type":"tokens_revoked","tokens":{"oauth":["U1"],"bot":["U0BOT"]}}}"#;
        assert!(Lifecycle::TokensRevoked.revokes_bot_token(revoked));
        let users_only =
            br#"{"event":{"type":"tokens_revoked","tokens":{"oauth":["U1"],"bot":[]}}}"#;
        assert!(!Lifecycle::TokensRevoked.revokes_bot_token(users_only));
        let no_bot = br#"{"event":{"type":"tokens_revoked","tokens":{"oauth":["U1"]}}}"#;
        assert!(!Lifecycle::TokensRevoked.revokes_bot_token(no_bot));
        assert!(!Lifecycle::TokensRevoked.revokes_bot_token(b"not json"));
        assert!(!Lifecycle::TokensRevoked.revokes_bot_token(br#"{"event":{"tokens":{"bot":"x"}}}"#));
        assert!(Lifecycle::AppUninstalled.revokes_bot_token(b""));
        assert!(!Lifecycle::TeamRename.revokes_bot_token(revoked));
    }
}
