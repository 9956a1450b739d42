//! The facts the gateway's policy decides on, and how they are read from a body.
//!
//! Facts come from a verified body only. Events API bodies are JSON; slash commands are
//! forms; interactivity requests are a form whose `payload` field holds JSON. Strings borrow
//! from the body where no decoding was needed; values that had to be unescaped are owned.

use std::borrow::Cow;

use crate::custody::hint::{self, CustodyHint, DecodedPayload, EventSpots};
use crate::custody::json::{Role, Spot};
use crate::kind::RequestKind;
use crate::lifecycle::{Carries, Lifecycle};
use crate::wire::{self, EventsEnvelope, InteractionPayload, Obj};

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
    /// or `view.callback_id` for view interactions; for a `function_executed` event and
    /// interactivity from a function's context, the function's `callback_id` (a custom
    /// workflow step: for `function_executed` it is the action `allow.actions` matches).
    pub callback_id: Option<Cow<'a, str>>,
    /// The run of a custom workflow step: `event.function_execution_id` of a
    /// `function_executed` event, or `function_data.execution_id` of interactivity from a
    /// function's context. What a workflow token taken into custody is bound to.
    pub function_execution_id: Option<Cow<'a, str>>,
    /// The `event_id` of an `event_callback`.
    pub event_id: Option<Cow<'a, str>>,
    /// The challenge of a `url_verification`, echoed back by the gateway.
    pub challenge: Option<Cow<'a, str>>,
    /// True when the app is installed org-wide on Enterprise Grid.
    pub is_enterprise_install: bool,
    /// Set for lifecycle requests (see [`Lifecycle`]): `app_uninstalled`, `tokens_revoked`,
    /// `app_rate_limited` and the others of its table.
    pub lifecycle: Option<Lifecycle>,
    /// What reading the body taught that secret custody reuses rather than reading it
    /// again ([`crate::take_into_custody_decoded`]): an interactivity form's `payload` as
    /// decoded for these facts (with where custody's fields are in it), or where they are
    /// in an Events API body the quick reader read. Tied to the body;
    /// [`Facts::into_owned`] drops it.
    pub custody: Option<CustodyHint<'a>>,
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
            function_execution_id: None,
            event_id: None,
            challenge: None,
            is_enterprise_install: false,
            lifecycle: None,
            custody: None,
        }
    }

    /// The identity facts this kind of request can carry besides team and enterprise: a
    /// lifecycle request's row of the [`Lifecycle`] table, else a user and a channel.
    pub fn carries(&self) -> Carries {
        self.lifecycle
            .map_or(Carries::USER_AND_CHANNEL, Lifecycle::carries)
    }

    /// True for a `function_executed` event: a custom workflow step run, whose function's
    /// `callback_id` is its action.
    pub fn is_function_executed(&self) -> bool {
        self.kind == RequestKind::EventCallback
            && self.event_type.as_deref() == Some(FUNCTION_EXECUTED)
    }

    /// Returns a copy that owns all its strings, detached from the body (without
    /// [`Facts::custody`], which is tied to it).
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
            function_execution_id,
            event_id,
            challenge,
            is_enterprise_install,
            lifecycle,
            custody: _,
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
            function_execution_id: own(function_execution_id),
            event_id: own(event_id),
            challenge: own(challenge),
            is_enterprise_install,
            lifecycle,
            custody: None,
        }
    }
}

/// The `event.type` of a custom workflow step run.
pub const FUNCTION_EXECUTED: &str = "function_executed";

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
            // Up to the first `;` (found as a byte: `str::split` with a char pattern was
            // half of this function's instructions), then trimmed as `str::trim` does.
            let end = memchr::memchr(b';', ct.as_bytes()).unwrap_or(ct.len());
            let essence = ct.get(..end).unwrap_or("").trim();
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

/// Decodes a JSON object, refusing arrays and scalars at the top level.
pub(crate) fn json_object<'a, T: serde::Deserialize<'a>>(text: &'a str) -> Result<T, FactsError> {
    serde_json::from_str::<Obj<T>>(text)
        .map(|o| o.0)
        .map_err(|_| FactsError::BadJson)
}

fn events_facts(text: &str, quick: bool) -> Result<Facts<'_>, FactsError> {
    // The quick reader answers for plain bodies, and tells custody where its fields are;
    // everything else is serde_json's to decide (and custody walks it).
    match quick.then(|| crate::fast::events_envelope(text)).flatten() {
        Some((env, spots)) => {
            let mut facts = envelope_facts(env)?;
            facts.custody = Some(CustodyHint::Event(EventSpots::new(text.as_bytes(), spots)));
            Ok(facts)
        }
        None => envelope_facts(json_object(text)?),
    }
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
            facts.callback_id = event.function.and_then(|f| wire::text(f.0.callback_id));
            facts.function_execution_id = wire::text(event.function_execution_id);
            Ok(facts)
        }
        _ => Err(FactsError::UnknownType),
    }
}

/// The form fields the gateway reads, each seen at most once.
#[derive(Default)]
struct FormFields<'a> {
    /// Decoded with the marks custody maps its edits back with, and kept in the facts
    /// ([`Facts::payload`]): one decoding per request.
    payload: Option<DecodedPayload<'a>>,
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
        for (key, value) in form_pairs(text.as_bytes()) {
            let key = lossy(key);
            if key == "payload" {
                if fields.payload.is_some() {
                    return Err(FactsError::DuplicateField("payload"));
                }
                fields.payload = Some(DecodedPayload::decode(value));
                continue;
            }
            let (name, slot): (&'static str, _) = match key.as_ref() {
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
            *slot = Some(lossy(hint::decode(value)));
        }
        Ok(fields)
    }
}

/// The raw key and value of each field of a form, as `form_urlencoded::parse` splits it
/// (the reference a property test holds this to): fields split at `&`, empty ones
/// skipped, the key up to the first `=`, a field without `=` a key with an empty value.
/// Raw, so that the `payload` is decoded once, with its marks, and the key of every
/// other field as `form_urlencoded` would.
pub(crate) fn form_pairs(body: &[u8]) -> impl Iterator<Item = (Cow<'_, [u8]>, &[u8])> {
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = match memchr::memchr(b'=', pair) {
                Some(eq) => (
                    pair.get(..eq).unwrap_or_default(),
                    pair.get(eq + 1..).unwrap_or_default(),
                ),
                None => (pair, &[][..]),
            };
            (hint::decode(key), value)
        })
}

/// Decoded form bytes as text, lossy where they are not UTF-8 (as `form_urlencoded`).
pub(crate) fn lossy(bytes: Cow<'_, [u8]>) -> Cow<'_, str> {
    match bytes {
        Cow::Borrowed(b) => String::from_utf8_lossy(b),
        Cow::Owned(v) => match String::from_utf8(v) {
            Ok(s) => Cow::Owned(s),
            Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        },
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
    if let Some(mut payload) = fields.payload {
        let (mut facts, spots) = match &payload.json {
            Ok(json) => {
                let (facts, spots) = interaction_facts(json)?;
                (facts.into_owned(), spots)
            }
            // Not UTF-8: read lossily, as a form parser hands it on; custody refuses it
            // whatever the facts.
            Err(_) => (interaction_facts(&payload.text())?.0.into_owned(), None),
        };
        if let Some(spots) = spots {
            payload.set_spots(spots);
        }
        facts.custody = Some(CustodyHint::Payload(payload));
        return Ok(facts);
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

/// The facts of an interactivity payload, and where custody's fields are in it.
fn interaction_facts(json: &str) -> Result<(Facts<'_>, Option<Vec<Spot>>), FactsError> {
    let p: InteractionPayload<'_> = json_object(json)?;
    let execution_raw = p.function_data.as_ref().and_then(|d| d.0.execution_id);
    let spots = hint::payload_spots(
        json,
        [
            (p.response_url.map(|r| r.get()), Role::ResponseUrl),
            (p.bot_access_token.map(|r| r.get()), Role::WorkflowToken),
            (execution_raw.map(|r| r.get()), Role::ExecutionId),
        ],
        p.response_urls.map(|r| r.get()),
    );
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
    let (execution_id, function_callback_id) = match p.function_data {
        Some(Obj(d)) => (
            wire::text(wire::raw_str(d.execution_id).map_err(|_| FactsError::BadJson)?),
            d.function.and_then(|f| wire::text(f.0.callback_id)),
        ),
        None => (None, None),
    };
    facts.callback_id = wire::text(p.callback_id)
        .or(view_callback_id)
        .or(function_callback_id);
    facts.function_execution_id = execution_id;
    facts.is_enterprise_install = p.is_enterprise_install.unwrap_or(false);
    Ok((facts, spots))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
