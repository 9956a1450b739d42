//! Request kinds and the facts the gateway's policy decides on.
//!
//! Facts come from a verified body only. Events API bodies are JSON; slash commands are
//! forms; interactivity requests are a form whose `payload` field holds JSON. Strings borrow
//! from the body where no decoding was needed; values that had to be unescaped are owned.

use std::borrow::Cow;
use std::fmt;

use crate::wire::{self, EventsEnvelope, InteractionPayload, Obj};

// === RequestKind ===

/// The kind of a Slack request, as named by Slack's `type` field or by the form shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// The Events API endpoint check; the gateway answers it with the challenge.
    UrlVerification,
    /// An Events API event delivery.
    EventCallback,
    /// Slack's notice that it dropped events because the app exceeded its rate limit.
    AppRateLimited,
    /// A slash command invocation (a form with `command`).
    SlashCommand,
    /// A click or selection in a Block Kit element.
    BlockActions,
    /// A submitted modal.
    ViewSubmission,
    /// A modal closed by the user, sent when `notify_on_close` is set.
    ViewClosed,
    /// A global shortcut.
    Shortcut,
    /// A message shortcut.
    MessageAction,
    /// A request for external select options.
    BlockSuggestion,
    /// A legacy attachment button or menu interaction.
    InteractiveMessage,
    /// A legacy dialog submission.
    DialogSubmission,
    /// Slack's certificate check (a form with `ssl_check=1`); the gateway answers it.
    SslCheck,
}

impl RequestKind {
    /// Every kind, in declaration order.
    pub const ALL: [RequestKind; 13] = [
        RequestKind::UrlVerification,
        RequestKind::EventCallback,
        RequestKind::AppRateLimited,
        RequestKind::SlashCommand,
        RequestKind::BlockActions,
        RequestKind::ViewSubmission,
        RequestKind::ViewClosed,
        RequestKind::Shortcut,
        RequestKind::MessageAction,
        RequestKind::BlockSuggestion,
        RequestKind::InteractiveMessage,
        RequestKind::DialogSubmission,
        RequestKind::SslCheck,
    ];

    /// Returns the snake_case name used in audit records and Slack's own `type` values.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::UrlVerification => "url_verification",
            RequestKind::EventCallback => "event_callback",
            RequestKind::AppRateLimited => "app_rate_limited",
            RequestKind::SlashCommand => "slash_command",
            RequestKind::BlockActions => "block_actions",
            RequestKind::ViewSubmission => "view_submission",
            RequestKind::ViewClosed => "view_closed",
            RequestKind::Shortcut => "shortcut",
            RequestKind::MessageAction => "message_action",
            RequestKind::BlockSuggestion => "block_suggestion",
            RequestKind::InteractiveMessage => "interactive_message",
            RequestKind::DialogSubmission => "dialog_submission",
            RequestKind::SslCheck => "ssl_check",
        }
    }

    /// Returns true for kinds delivered through the interactivity endpoint (`payload` form field).
    pub fn is_interactive(self) -> bool {
        matches!(
            self,
            RequestKind::BlockActions
                | RequestKind::ViewSubmission
                | RequestKind::ViewClosed
                | RequestKind::Shortcut
                | RequestKind::MessageAction
                | RequestKind::BlockSuggestion
                | RequestKind::InteractiveMessage
                | RequestKind::DialogSubmission
        )
    }

    fn from_interaction_type(t: &str) -> Option<Self> {
        Some(match t {
            "block_actions" => RequestKind::BlockActions,
            "view_submission" => RequestKind::ViewSubmission,
            "view_closed" => RequestKind::ViewClosed,
            "shortcut" => RequestKind::Shortcut,
            "message_action" => RequestKind::MessageAction,
            "block_suggestion" => RequestKind::BlockSuggestion,
            "interactive_message" => RequestKind::InteractiveMessage,
            "dialog_submission" => RequestKind::DialogSubmission,
            _ => return None,
        })
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === Lifecycle ===

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
enum Via {
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

            fn via(self) -> Via {
                match self {
                    $(Lifecycle::$variant => Via::$via,)+
                }
            }

            fn from_name(t: &str) -> Option<Self> {
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
    fn from_event_type(t: &str) -> Option<Self> {
        Lifecycle::from_name(t).filter(|l| l.via() == Via::Event)
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === Facts ===

/// Facts from a verified body, the input of scope rules, rate-limit keys and audit records.
///
/// Strings borrow from the body where no decoding was needed. Empty strings and JSON `null`
/// are both reported as `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts<'a> {
    /// The kind of request.
    pub kind: RequestKind,
    /// The `api_app_id` the payload names (for a modal, `view.app_id` when the top level has none).
    pub api_app_id: Option<Cow<'a, str>>,
    /// The Enterprise Grid organization (`E…`), from `enterprise_id`, the `enterprise` object,
    /// `authorizations[0]`, or a user's `E…` `team_id` for org-wide installs.
    pub enterprise_id: Option<Cow<'a, str>>,
    /// The workspace (`T…`); `None` for org-wide installs where Slack sends a null team.
    pub team_id: Option<Cow<'a, str>>,
    /// The acting user (`U…`/`W…`).
    pub user_id: Option<Cow<'a, str>>,
    /// The channel the request concerns.
    pub channel_id: Option<Cow<'a, str>>,
    /// `event.type` of an `event_callback`, for example `app_mention`.
    pub event_type: Option<Cow<'a, str>>,
    /// The slash command, for example `/ticket`.
    pub command: Option<Cow<'a, str>>,
    /// The `action_id`s of `block_actions` and `block_suggestion`, in payload order.
    pub action_ids: Vec<Cow<'a, str>>,
    /// The `callback_id` of shortcuts, message actions, legacy interactions and dialogs,
    /// or `view.callback_id` for view interactions.
    pub callback_id: Option<Cow<'a, str>>,
    /// The `event_id` of an `event_callback`.
    pub event_id: Option<Cow<'a, str>>,
    /// The challenge of a `url_verification`, echoed back by the gateway.
    pub challenge: Option<Cow<'a, str>>,
    /// True when the app is installed org-wide on Enterprise Grid.
    pub is_enterprise_install: bool,
    /// Set for lifecycle requests (see [`Lifecycle`]): `app_uninstalled`, `tokens_revoked`,
    /// `app_rate_limited` and the others of its table.
    pub lifecycle: Option<Lifecycle>,
}

impl<'a> Facts<'a> {
    /// Returns facts of the given kind with every other field empty.
    pub fn new(kind: RequestKind) -> Self {
        Facts {
            kind,
            api_app_id: None,
            enterprise_id: None,
            team_id: None,
            user_id: None,
            channel_id: None,
            event_type: None,
            command: None,
            action_ids: Vec::new(),
            callback_id: None,
            event_id: None,
            challenge: None,
            is_enterprise_install: false,
            lifecycle: None,
        }
    }

    /// The identity facts this kind of request can carry besides team and enterprise: a
    /// lifecycle request's row of the [`Lifecycle`] table, else a user and a channel.
    pub fn carries(&self) -> Carries {
        self.lifecycle
            .map_or(Carries::USER_AND_CHANNEL, Lifecycle::carries)
    }

    /// Returns a copy that owns all its strings, detached from the body.
    pub fn into_owned(self) -> Facts<'static> {
        fn own(s: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
            s.map(|s| Cow::Owned(s.into_owned()))
        }
        let Facts {
            kind,
            api_app_id,
            enterprise_id,
            team_id,
            user_id,
            channel_id,
            event_type,
            command,
            action_ids,
            callback_id,
            event_id,
            challenge,
            is_enterprise_install,
            lifecycle,
        } = self;
        Facts {
            kind,
            api_app_id: own(api_app_id),
            enterprise_id: own(enterprise_id),
            team_id: own(team_id),
            user_id: own(user_id),
            channel_id: own(channel_id),
            event_type: own(event_type),
            command: own(command),
            action_ids: action_ids
                .into_iter()
                .map(|s| Cow::Owned(s.into_owned()))
                .collect(),
            callback_id: own(callback_id),
            event_id: own(event_id),
            challenge: own(challenge),
            is_enterprise_install,
            lifecycle,
        }
    }
}

// === FactsError ===

/// The reasons a body yields no facts. No variant carries body content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactsError {
    /// The body is not valid UTF-8.
    #[error("the body is not valid UTF-8")]
    NotUtf8,
    /// The body, or the `payload` form field, is not a JSON object of the expected shape.
    #[error("the body is not valid Slack JSON")]
    BadJson,
    /// A form field has a value Slack never sends (for example `is_enterprise_install=maybe`).
    #[error("the form body is not a valid Slack form")]
    BadForm,
    /// A form body has neither `payload`, `command` nor `ssl_check=1`.
    #[error("the form body has no payload, command or ssl_check field")]
    MissingPayload,
    /// The `type` is not one the gateway knows.
    #[error("the request type is not a known Slack request type")]
    UnknownType,
    /// A field the request kind requires is absent.
    #[error("the required field `{0}` is missing")]
    MissingField(&'static str),
    /// A form field the gateway reads appears more than once, so its value is ambiguous.
    #[error("the form field `{0}` appears more than once")]
    DuplicateField(&'static str),
}

// === BodyEncoding ===

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyEncoding {
    /// `application/json`: Events API bodies.
    Json,
    /// `application/x-www-form-urlencoded`: slash commands, interactivity, ssl_check.
    Form,
}

impl BodyEncoding {
    /// Returns the encoding named by `content_type`, ignoring parameters and case.
    ///
    /// Without a recognised content type the body is sniffed: a first non-whitespace byte
    /// `{` means JSON, anything else a form.
    pub fn detect(content_type: Option<&str>, body: &[u8]) -> Self {
        if let Some(ct) = content_type {
            let essence = ct.split(';').next().unwrap_or("").trim();
            if essence.eq_ignore_ascii_case("application/json") {
                return BodyEncoding::Json;
            }
            if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
                return BodyEncoding::Form;
            }
        }
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => BodyEncoding::Json,
            _ => BodyEncoding::Form,
        }
    }
}

// === parse_facts ===

/// Extracts the facts of a verified Slack request body.
///
/// `content_type` is the Content-Type header value, if any (`application/json; charset=utf-8`
/// and the like); see [`BodyEncoding::detect`] for bodies without a recognised one. Unknown
/// JSON fields are ignored; a field the gateway reads with the wrong type is an error. Never
/// panics, whatever the input.
pub fn parse_facts<'a>(
    content_type: Option<&str>,
    body: &'a [u8],
) -> Result<Facts<'a>, FactsError> {
    facts_of(content_type, body, true)
}

/// [`parse_facts`] with `serde_json` alone deciding JSON bodies (no quick reader): the
/// reference the quick reader is held to by the property tests and the `facts` fuzz target.
/// The gateway uses [`parse_facts`].
#[doc(hidden)]
pub fn parse_facts_with_serde_only<'a>(
    content_type: Option<&str>,
    body: &'a [u8],
) -> Result<Facts<'a>, FactsError> {
    facts_of(content_type, body, false)
}

fn facts_of<'a>(
    content_type: Option<&str>,
    body: &'a [u8],
    quick: bool,
) -> Result<Facts<'a>, FactsError> {
    // simdutf8 checks many bytes per instruction (std's check was ~4 % of the gateway's
    // own instructions per request); it accepts and rejects exactly what std does.
    let text = simdutf8::basic::from_utf8(body).map_err(|_| FactsError::NotUtf8)?;
    match BodyEncoding::detect(content_type, body) {
        BodyEncoding::Json => events_facts(text, quick),
        BodyEncoding::Form => form_facts(text),
    }
}

/// Returns true for a form body with `ssl_check=1`, without parsing the rest of the body.
pub fn is_ssl_check(content_type: Option<&str>, body: &[u8]) -> bool {
    BodyEncoding::detect(content_type, body) == BodyEncoding::Form
        && form_urlencoded::parse(body).any(|(k, v)| k == "ssl_check" && v == "1")
}

/// Parses the value of an `X-Slack-Retry-Num` header: a plain base-10 `u32`.
pub fn parse_retry_num(raw: &[u8]) -> Option<u32> {
    if raw.is_empty() || raw.len() > 10 || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// Decodes a JSON object, refusing arrays and scalars at the top level.
pub(crate) fn json_object<'a, T: serde::Deserialize<'a>>(text: &'a str) -> Result<T, FactsError> {
    serde_json::from_str::<Obj<T>>(text)
        .map(|o| o.0)
        .map_err(|_| FactsError::BadJson)
}

fn events_facts(text: &str, quick: bool) -> Result<Facts<'_>, FactsError> {
    // The quick reader answers for plain bodies; everything else is serde_json's to decide.
    let env = match quick.then(|| crate::fast::events_envelope(text)).flatten() {
        Some(env) => env,
        None => json_object(text)?,
    };
    envelope_facts(env)
}

/// The facts of a decoded Events API envelope.
pub(crate) fn envelope_facts(env: EventsEnvelope<'_>) -> Result<Facts<'_>, FactsError> {
    let kind = wire::text(env.kind).ok_or(FactsError::MissingField("type"))?;
    match kind.as_ref() {
        "url_verification" => {
            let mut facts = Facts::new(RequestKind::UrlVerification);
            facts.challenge =
                Some(wire::text(env.challenge).ok_or(FactsError::MissingField("challenge"))?);
            facts.api_app_id = wire::text(env.api_app_id);
            Ok(facts)
        }
        "app_rate_limited" => {
            let mut facts = Facts::new(RequestKind::AppRateLimited);
            facts.lifecycle = Some(Lifecycle::AppRateLimited);
            facts.api_app_id = wire::text(env.api_app_id);
            facts.team_id = wire::text(env.team_id);
            facts.enterprise_id = wire::text(env.enterprise_id);
            Ok(facts)
        }
        "event_callback" => {
            let event = env.event.ok_or(FactsError::MissingField("event"))?.0;
            let event_type =
                wire::text(event.kind).ok_or(FactsError::MissingField("event.type"))?;
            let auth = env
                .authorizations
                .and_then(|a| a.into_iter().next())
                .map(|a| a.0);
            let (auth_enterprise, auth_team, auth_org_install) = match auth {
                Some(a) => (
                    wire::text(a.enterprise_id),
                    wire::text(a.team_id),
                    a.is_enterprise_install,
                ),
                None => (None, None, None),
            };
            let mut facts = Facts::new(RequestKind::EventCallback);
            facts.lifecycle = Lifecycle::from_event_type(&event_type);
            facts.event_type = Some(event_type);
            facts.api_app_id = wire::text(env.api_app_id);
            facts.event_id = wire::text(env.event_id);
            facts.team_id = wire::text(env.team_id)
                .or_else(|| wire::text(env.context_team_id))
                .or(auth_team);
            facts.enterprise_id = wire::text(env.enterprise_id)
                .or_else(|| wire::text(env.context_enterprise_id))
                .or(auth_enterprise);
            facts.is_enterprise_install =
                env.is_enterprise_install.unwrap_or(false) || auth_org_install.unwrap_or(false);
            facts.user_id = wire::ref_id(event.user);
            facts.channel_id = wire::ref_id(event.channel)
                .or_else(|| wire::text(event.channel_id))
                .or_else(|| event.item.and_then(|i| wire::ref_id(i.0.channel)));
            Ok(facts)
        }
        _ => Err(FactsError::UnknownType),
    }
}

/// The form fields the gateway reads, each seen at most once.
#[derive(Default)]
struct FormFields<'a> {
    payload: Option<Cow<'a, str>>,
    ssl_check: Option<Cow<'a, str>>,
    command: Option<Cow<'a, str>>,
    team_id: Option<Cow<'a, str>>,
    enterprise_id: Option<Cow<'a, str>>,
    user_id: Option<Cow<'a, str>>,
    channel_id: Option<Cow<'a, str>>,
    api_app_id: Option<Cow<'a, str>>,
    is_enterprise_install: Option<Cow<'a, str>>,
}

impl<'a> FormFields<'a> {
    fn parse(text: &'a str) -> Result<Self, FactsError> {
        let mut fields = FormFields::default();
        for (key, value) in form_urlencoded::parse(text.as_bytes()) {
            let (name, slot): (&'static str, _) = match key.as_ref() {
                "payload" => ("payload", &mut fields.payload),
                "ssl_check" => ("ssl_check", &mut fields.ssl_check),
                "command" => ("command", &mut fields.command),
                "team_id" => ("team_id", &mut fields.team_id),
                "enterprise_id" => ("enterprise_id", &mut fields.enterprise_id),
                "user_id" => ("user_id", &mut fields.user_id),
                "channel_id" => ("channel_id", &mut fields.channel_id),
                "api_app_id" => ("api_app_id", &mut fields.api_app_id),
                "is_enterprise_install" => {
                    ("is_enterprise_install", &mut fields.is_enterprise_install)
                }
                _ => continue,
            };
            if slot.is_some() {
                return Err(FactsError::DuplicateField(name));
            }
            *slot = Some(value);
        }
        Ok(fields)
    }
}

fn non_empty(s: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    s.filter(|s| !s.is_empty())
}

fn form_facts(text: &str) -> Result<Facts<'_>, FactsError> {
    let fields = FormFields::parse(text)?;
    if fields.ssl_check.as_deref() == Some("1") {
        return Ok(Facts::new(RequestKind::SslCheck));
    }
    if let Some(payload) = fields.payload {
        return match payload {
            Cow::Borrowed(json) => interaction_facts(json),
            Cow::Owned(json) => interaction_facts(&json).map(Facts::into_owned),
        };
    }
    let command = non_empty(fields.command).ok_or(FactsError::MissingPayload)?;
    let is_enterprise_install = match fields.is_enterprise_install.as_deref() {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(FactsError::BadForm),
    };
    let mut facts = Facts::new(RequestKind::SlashCommand);
    facts.command = Some(command);
    facts.team_id = non_empty(fields.team_id);
    facts.enterprise_id = non_empty(fields.enterprise_id);
    facts.user_id = non_empty(fields.user_id);
    facts.channel_id = non_empty(fields.channel_id);
    facts.api_app_id = non_empty(fields.api_app_id);
    facts.is_enterprise_install = is_enterprise_install;
    Ok(facts)
}

fn interaction_facts(json: &str) -> Result<Facts<'_>, FactsError> {
    let p: InteractionPayload<'_> = json_object(json)?;
    let kind_name = wire::text(p.kind).ok_or(FactsError::MissingField("type"))?;
    let kind = RequestKind::from_interaction_type(&kind_name).ok_or(FactsError::UnknownType)?;
    let user = p.user.unwrap_or_default();
    let team = p.team.unwrap_or_default();
    let (view_callback_id, view_app_id) = match p.view {
        Some(Obj(v)) => (wire::text(v.callback_id), wire::text(v.app_id)),
        None => (None, None),
    };

    let mut facts = Facts::new(kind);
    facts.api_app_id = wire::text(p.api_app_id).or(view_app_id);
    facts.team_id = team.id.or_else(|| wire::text(p.team_id));
    // For org-wide installs `user.team_id` may hold the enterprise id; it is never a team here.
    let user_enterprise = user.team_id.filter(|t| t.starts_with('E'));
    facts.enterprise_id = wire::ref_id(p.enterprise)
        .or_else(|| wire::text(p.enterprise_id))
        .or(team.enterprise_id)
        .or(user_enterprise);
    facts.user_id = user.id;
    facts.channel_id =
        wire::ref_id(p.channel).or_else(|| p.container.and_then(|c| wire::text(c.0.channel_id)));
    facts.action_ids = p
        .actions
        .unwrap_or_default()
        .into_iter()
        .filter_map(|a| wire::text(a.0.action_id))
        .chain(wire::text(p.action_id))
        .collect();
    facts.callback_id = wire::text(p.callback_id).or(view_callback_id);
    facts.is_enterprise_install = p.is_enterprise_install.unwrap_or(false);
    Ok(facts)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn json(body: &str) -> Result<Facts<'_>, FactsError> {
        parse_facts(Some("application/json"), body.as_bytes())
    }

    fn form(body: &str) -> Result<Facts<'_>, FactsError> {
        parse_facts(Some("application/x-www-form-urlencoded"), body.as_bytes())
    }

    proptest::proptest! {
        /// The body check refuses exactly the bodies std's UTF-8 check refuses.
        #[test]
        fn not_utf8_exactly_when_std_says_so(
            text in "\\PC{0,80}",
            cuts in proptest::collection::vec((0usize..400, proptest::prelude::any::<u8>()), 0..3),
        ) {
            let mut body = format!(r#"{{"type":"url_verification","challenge":"{}"}}"#, text.replace(['"', '\\'], ""))
                .into_bytes();
            for (at, byte) in cuts {
                let at = at % body.len();
                body[at] = byte;
            }
            let ours = parse_facts(Some("application/json"), &body);
            proptest::prop_assert_eq!(
                matches!(ours, Err(FactsError::NotUtf8)),
                std::str::from_utf8(&body).is_err()
            );
        }
    }

    fn payload(p: &str) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", p)
            .finish()
    }

    #[test]
    fn kind_names_are_snake_case() {
        for kind in RequestKind::ALL {
            let name = kind.as_str();
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert_eq!(kind.to_string(), name);
            if kind.is_interactive() {
                assert_eq!(RequestKind::from_interaction_type(name), Some(kind));
            }
        }
        for l in Lifecycle::ALL {
            assert_eq!(l.to_string(), l.as_str());
        }
    }

    #[test]
    fn lifecycle_table_names_event_types_and_what_they_carry() {
        for l in Lifecycle::ALL {
            let body =
                format!(r#"{{"type":"event_callback","team_id":"T1","event":{{"type":"{l}"}}}}"#);
            let f = json(&body).unwrap();
            // `app_rate_limited` is a body type of its own, never an event type.
            let expected = (l.via() == Via::Event).then_some(l);
            assert_eq!(f.lifecycle, expected, "{l}");
            assert_eq!(Lifecycle::from_name(l.as_str()), Some(l));
            assert_eq!(l.carries(), Carries::NEITHER, "{l}");
        }
        let f =
            json(r#"{"type":"app_rate_limited","team_id":"T1","minute_rate_limited":1}"#).unwrap();
        assert_eq!(f.lifecycle, Some(Lifecycle::AppRateLimited));
        assert_eq!(f.carries(), Carries::NEITHER);
        // Events that name a user or a channel, and the admin events about any app, are not
        // lifecycle requests: both dimensions apply to them.
        for t in [
            "message",
            "app_home_opened",
            "app_uninstalled_team",
            "app_installed",
        ] {
            let body = format!(r#"{{"type":"event_callback","event":{{"type":"{t}"}}}}"#);
            let f = json(&body).unwrap();
            assert_eq!(f.lifecycle, None, "{t}");
            assert_eq!(f.carries(), Carries::USER_AND_CHANNEL, "{t}");
        }
    }

    #[test]
    fn encoding_detection() {
        use BodyEncoding::*;
        assert_eq!(BodyEncoding::detect(Some("application/json"), b"a=b"), Json);
        assert_eq!(
            BodyEncoding::detect(Some("Application/JSON; charset=utf-8"), b""),
            Json
        );
        assert_eq!(
            BodyEncoding::detect(Some("application/x-www-form-urlencoded"), b"{}"),
            Form
        );
        assert_eq!(BodyEncoding::detect(None, b" \n{\"a\":1}"), Json);
        assert_eq!(BodyEncoding::detect(Some("text/plain"), b"{}"), Json);
        assert_eq!(BodyEncoding::detect(None, b"a=b"), Form);
        assert_eq!(BodyEncoding::detect(None, b""), Form);
    }

    #[test]
    fn json_strings_borrow_when_unescaped() {
        let f = json(r#"{"type":"event_callback","team_id":"T1","event":{"type":"message","user":"U\u0031"}}"#)
            .unwrap();
        assert!(matches!(f.team_id, Some(Cow::Borrowed("T1"))));
        assert!(matches!(f.event_type, Some(Cow::Borrowed("message"))));
        assert!(matches!(f.user_id, Some(Cow::Owned(ref u)) if u == "U1"));
    }

    #[test]
    fn form_fields_borrow_when_undecoded() {
        let f = form("command=%2Fticket&team_id=T1").unwrap();
        assert!(matches!(f.team_id, Some(Cow::Borrowed("T1"))));
        assert!(matches!(f.command, Some(Cow::Owned(ref c)) if c == "/ticket"));
    }

    #[test]
    fn unescaped_payload_borrows_from_body() {
        let body = r#"payload={"type":"shortcut","callback_id":"cb"}"#;
        let f = form(body).unwrap();
        assert!(matches!(f.callback_id, Some(Cow::Borrowed("cb"))));
    }

    #[test]
    fn channel_may_be_an_object_and_user_an_object() {
        let f = json(r#"{"type":"event_callback","event":{"type":"channel_created","channel":{"id":"C9","name":"x","creator":"U1"}}}"#).unwrap();
        assert_eq!(f.channel_id.as_deref(), Some("C9"));
        let f = json(r#"{"type":"event_callback","event":{"type":"user_change","user":{"id":"U7","profile":{}}}}"#).unwrap();
        assert_eq!(f.user_id.as_deref(), Some("U7"));
        let f = json(r#"{"type":"event_callback","event":{"type":"reaction_added","user":"U1","item":{"type":"message","channel":"C2","ts":"1"}}}"#).unwrap();
        assert_eq!(f.channel_id.as_deref(), Some("C2"));
        let f = json(r#"{"type":"event_callback","event":{"type":"file_shared","channel_id":"C3","user_id":"U1"}}"#).unwrap();
        assert_eq!(f.channel_id.as_deref(), Some("C3"));
        let f =
            json(r#"{"type":"event_callback","event":{"type":"message","subtype":"bot_message"}}"#)
                .unwrap();
        assert_eq!(f.user_id, None);
        assert_eq!(f.channel_id, None);
    }

    #[test]
    fn org_wide_install_takes_enterprise_from_authorizations() {
        let f = json(r#"{"type":"event_callback","team_id":null,"enterprise_id":null,"event":{"type":"app_mention"},"authorizations":[{"enterprise_id":"E1","team_id":null,"is_enterprise_install":true}]}"#).unwrap();
        assert_eq!(f.team_id, None);
        assert_eq!(f.enterprise_id.as_deref(), Some("E1"));
        assert!(f.is_enterprise_install);
        let f = json(r#"{"type":"event_callback","is_enterprise_install":true,"context_enterprise_id":"E2","context_team_id":"T2","event":{"type":"app_mention"}}"#).unwrap();
        assert_eq!(f.enterprise_id.as_deref(), Some("E2"));
        assert_eq!(f.team_id.as_deref(), Some("T2"));
        assert!(f.is_enterprise_install);
    }

    #[test]
    fn org_wide_view_has_no_team() {
        let body = payload(
            r#"{"type":"view_closed","team":null,"enterprise":{"id":"E1","name":"Acme"},"user":{"id":"U1","team_id":"E1"},"is_enterprise_install":true,"view":{"callback_id":"cb","app_id":"A1","team_id":""}}"#,
        );
        let f = form(&body).unwrap();
        assert_eq!(f.kind, RequestKind::ViewClosed);
        assert_eq!(f.team_id, None);
        assert_eq!(f.enterprise_id.as_deref(), Some("E1"));
        assert_eq!(f.callback_id.as_deref(), Some("cb"));
        assert_eq!(f.api_app_id.as_deref(), Some("A1"));
        assert!(f.is_enterprise_install);

        let body = payload(
            r#"{"type":"view_submission","team":null,"enterprise":null,"user":{"id":"U1","team_id":"E9"},"view":{"callback_id":"cb"}}"#,
        );
        let f = form(&body).unwrap();
        assert_eq!(f.team_id, None);
        assert_eq!(f.enterprise_id.as_deref(), Some("E9"));
    }

    #[test]
    fn legacy_interactions() {
        let body = payload(
            r#"{"type":"interactive_message","actions":[{"name":"approve","type":"button","value":"yes"}],"callback_id":"approval","team":{"id":"T1","domain":"x"},"channel":{"id":"C1","name":"x"},"user":{"id":"U1","name":"x"}}"#,
        );
        let f = form(&body).unwrap();
        assert_eq!(f.kind, RequestKind::InteractiveMessage);
        assert_eq!(f.callback_id.as_deref(), Some("approval"));
        assert!(f.action_ids.is_empty());
        assert_eq!(f.channel_id.as_deref(), Some("C1"));

        let body = payload(
            r#"{"type":"dialog_submission","submission":{"a":"b"},"callback_id":"d1","team":{"id":"T1"},"user":{"id":"U1"},"channel":{"id":"C1"}}"#,
        );
        let f = form(&body).unwrap();
        assert_eq!(f.kind, RequestKind::DialogSubmission);
        assert_eq!(f.callback_id.as_deref(), Some("d1"));
        assert_eq!(f.user_id.as_deref(), Some("U1"));
    }

    #[test]
    fn block_actions_in_modal_take_view_callback_and_container_channel() {
        let body = payload(
            r#"{"type":"block_actions","container":{"type":"message","channel_id":"C5"},"view":{"callback_id":"modal_1"},"actions":[{"action_id":"a1"},{"action_id":"a2"},{"block_id":"x"}]}"#,
        );
        let f = form(&body).unwrap();
        assert_eq!(f.channel_id.as_deref(), Some("C5"));
        assert_eq!(f.callback_id.as_deref(), Some("modal_1"));
        assert_eq!(f.action_ids, vec!["a1", "a2"]);
    }

    #[test]
    fn wrong_types_are_errors() {
        for body in [
            r#"{"type":1}"#,
            r#"{"type":"event_callback","team_id":5,"event":{"type":"message"}}"#,
            r#"{"type":"event_callback","event":{"type":"message","user":5}}"#,
            r#"{"type":"event_callback","event":{"type":"message","user":{"id":5}}}"#,
            r#"{"type":"event_callback","event":{"type":"message","channel":["C1"]}}"#,
            r#"{"type":"event_callback","event":["message"]}"#,
            r#"{"type":"event_callback","event":{"type":"message"},"authorizations":{}}"#,
            r#"{"type":"event_callback","event":{"type":"message"},"is_enterprise_install":"true"}"#,
            r#"{"type":"url_verification","challenge":{}}"#,
            r#"["url_verification","abc"]"#,
            r#"{"type":"url_verification","type":"event_callback","challenge":"x"}"#,
            r#"{"type":"url_verification","challenge":"x"} trailing"#,
            "{",
            "{}}",
        ] {
            assert_eq!(json(body).unwrap_err(), FactsError::BadJson, "{body}");
        }
        for p in [
            r#"{"type":"block_actions","actions":[{"action_id":1}]}"#,
            r#"{"type":"block_actions","actions":[["a"]]}"#,
            r#"{"type":"block_actions","user":{"id":"U1","id":"U2"}}"#,
            r#"{"type":"view_submission","view":"v"}"#,
            r#"{"type":"shortcut","team":true}"#,
            r#"not json"#,
        ] {
            assert_eq!(form(&payload(p)).unwrap_err(), FactsError::BadJson, "{p}");
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let f = json(r#"{"type":"event_callback","new_field":{"deep":[1,2,{"x":null}]},"event":{"type":"message","blocks":[{"type":"rich_text"}],"user":{"id":"U1","new":[1]}}}"#).unwrap();
        assert_eq!(f.user_id.as_deref(), Some("U1"));
    }

    #[test]
    fn missing_and_unknown_types() {
        assert_eq!(json("{}").unwrap_err(), FactsError::MissingField("type"));
        assert_eq!(
            json(r#"{"type":"url_verification"}"#).unwrap_err(),
            FactsError::MissingField("challenge")
        );
        assert_eq!(
            json(r#"{"type":"event_callback"}"#).unwrap_err(),
            FactsError::MissingField("event")
        );
        assert_eq!(
            json(r#"{"type":"event_callback","event":{}}"#).unwrap_err(),
            FactsError::MissingField("event.type")
        );
        assert_eq!(
            json(r#"{"type":"block_actions"}"#).unwrap_err(),
            FactsError::UnknownType
        );
        assert_eq!(
            form(&payload(r#"{"type":"event_callback"}"#)).unwrap_err(),
            FactsError::UnknownType
        );
        assert_eq!(
            form(&payload("{}")).unwrap_err(),
            FactsError::MissingField("type")
        );
        assert_eq!(form("token=x").unwrap_err(), FactsError::MissingPayload);
        assert_eq!(form("").unwrap_err(), FactsError::MissingPayload);
        assert_eq!(form("command=").unwrap_err(), FactsError::MissingPayload);
    }

    #[test]
    fn form_edge_cases() {
        assert_eq!(
            form("command=/a&command=/b").unwrap_err(),
            FactsError::DuplicateField("command")
        );
        assert_eq!(
            form("payload=%7B%7D&payload=%7B%7D").unwrap_err(),
            FactsError::DuplicateField("payload")
        );
        assert_eq!(
            form("command=/a&is_enterprise_install=yes").unwrap_err(),
            FactsError::BadForm
        );
        let f = form("command=/a&is_enterprise_install=true&enterprise_id=E1&team_id=").unwrap();
        assert!(f.is_enterprise_install);
        assert_eq!(f.enterprise_id.as_deref(), Some("E1"));
        assert_eq!(f.team_id, None);
        assert_eq!(
            parse_facts(None, b"command=/a&x=\xff").unwrap_err(),
            FactsError::NotUtf8
        );
    }

    #[test]
    fn ssl_check_detection() {
        assert!(is_ssl_check(None, b"ssl_check=1&token=x"));
        assert!(is_ssl_check(
            Some("application/x-www-form-urlencoded"),
            b"token=x&ssl_check=1"
        ));
        assert!(!is_ssl_check(None, b"ssl_check=0"));
        assert!(!is_ssl_check(Some("application/json"), b"ssl_check=1"));
        assert!(!is_ssl_check(None, br#"{"ssl_check":1}"#));
        assert_eq!(form("ssl_check=1").unwrap().kind, RequestKind::SslCheck);
    }

    #[test]
    fn retry_num() {
        assert_eq!(parse_retry_num(b"1"), Some(1));
        assert_eq!(parse_retry_num(b"4294967295"), Some(u32::MAX));
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b" 1",
            b"4294967296",
            b"99999999999",
            b"1a",
        ] {
            assert_eq!(parse_retry_num(bad), None);
        }
    }

    #[test]
    fn deep_nesting_never_crashes() {
        let deep = format!(
            r#"{{"type":"event_callback","event":{{"type":"m","x":{}{}}}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        // Ignored values are skipped without recursion, so this is accepted.
        assert_eq!(json(&deep).unwrap().event_type.as_deref(), Some("m"));
        let deep = format!(r#"{}{}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(json(&deep).unwrap_err(), FactsError::BadJson);
        let deep = format!(
            r#"{{"type":"event_callback","event":{}}}"#,
            r#"{"item":"#.repeat(10_000)
        );
        assert_eq!(json(&deep).unwrap_err(), FactsError::BadJson);
    }

    #[test]
    fn errors_never_echo_the_body() {
        let secretish = "xoxb-SECRET-TOKEN";
        let body = format!(r#"{{"type":"{secretish}"}}"#);
        let err = json(&body).unwrap_err();
        assert!(!format!("{err} {err:?}").contains("SECRET"));
        let body = format!(r#"{{"type":"event_callback","team_id":{{"{secretish}":1}}}}"#);
        let err = json(&body).unwrap_err();
        assert!(!format!("{err} {err:?}").contains("SECRET"));
    }

    #[test]
    fn into_owned_keeps_values() {
        let body = r#"{"type":"event_callback","team_id":"T1","event_id":"Ev1","event":{"type":"message"}}"#;
        let f = json(body).unwrap();
        let owned: Facts<'static> = f.clone().into_owned();
        assert_eq!(owned, f);
    }
}
