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

            pub(crate) fn from_name(t: &str) -> Option<Self> {
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

impl Lifecycle {
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
