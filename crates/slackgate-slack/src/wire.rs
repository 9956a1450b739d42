//! Serde shapes of the Slack JSON bodies, limited to the fields the gateway reads.
//!
//! Unknown fields are ignored because Slack adds fields over time; a field that is read but
//! has the wrong type is an error. Every object is read through [`Obj`], so a JSON array is
//! never accepted in place of an object (serde's derive would otherwise map it by position).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

// === Str ===

/// A JSON string that borrows from the input when it holds no escape sequence.
#[derive(Debug)]
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(StrVisitor).map(Str)
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Unwraps an optional string, treating the empty string as absent.
pub(crate) fn text(s: Option<Str<'_>>) -> Option<Cow<'_, str>> {
    s.map(|s| s.0).filter(|s| !s.is_empty())
}

// === Obj ===

/// A JSON object decoded as `T`; arrays and scalars are rejected.
#[derive(Debug)]
pub(crate) struct Obj<T>(pub(crate) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(ObjVisitor(PhantomData))
            .map(Obj)
    }
}

struct ObjVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

// === Ref ===

/// A reference to a Slack entity (user, team, channel, enterprise) that Slack sends either as
/// a bare id string or as an object with an `id` field.
#[derive(Debug, Default)]
pub(crate) struct Ref<'a> {
    /// The entity id: the string itself, or the object's `id`.
    pub(crate) id: Option<Cow<'a, str>>,
    /// The object's `team_id` (a user's home team; an `E…` id for some org-wide installs).
    pub(crate) team_id: Option<Cow<'a, str>>,
    /// The object's `enterprise_id` (present on some team objects).
    pub(crate) enterprise_id: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Ref<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RefVisitor)
    }
}

struct RefVisitor;

impl<'de> Visitor<'de> for RefVisitor {
    type Value = Ref<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an id string or an object with an id")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Ref {
            id: Some(Cow::Borrowed(v)).filter(|s| !s.is_empty()),
            ..Ref::default()
        })
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.visit_string(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Ref {
            id: Some(Cow::<str>::Owned(v)).filter(|s| !s.is_empty()),
            ..Ref::default()
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut id: Option<Option<Str<'de>>> = None;
        let mut team_id: Option<Option<Str<'de>>> = None;
        let mut enterprise_id: Option<Option<Str<'de>>> = None;
        while let Some(key) = map.next_key::<Str<'de>>()? {
            let slot: &mut Option<Option<Str<'de>>> = match key.0.as_ref() {
                "id" => &mut id,
                "team_id" => &mut team_id,
                "enterprise_id" => &mut enterprise_id,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if slot.is_some() {
                return Err(de::Error::custom("duplicate field"));
            }
            *slot = Some(map.next_value()?);
        }
        Ok(Ref {
            id: text(id.flatten()),
            team_id: text(team_id.flatten()),
            enterprise_id: text(enterprise_id.flatten()),
        })
    }
}

/// Returns the id of an optional reference, treating null, absent and empty alike.
pub(crate) fn ref_id(r: Option<Ref<'_>>) -> Option<Cow<'_, str>> {
    r.and_then(|r| r.id)
}

// === Events API ===

/// The top-level Events API body (`url_verification`, `event_callback`, `app_rate_limited`).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct EventsEnvelope<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) challenge: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) api_app_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) team_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) enterprise_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) context_team_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) context_enterprise_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) event_id: Option<Str<'a>>,
    pub(crate) is_enterprise_install: Option<bool>,
    #[serde(borrow)]
    pub(crate) authorizations: Option<Vec<Obj<Authorization<'a>>>>,
    #[serde(borrow)]
    pub(crate) event: Option<Obj<Event<'a>>>,
}

/// One entry of `authorizations[]`: the installation the event is delivered for.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Authorization<'a> {
    #[serde(borrow)]
    pub(crate) enterprise_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) team_id: Option<Str<'a>>,
    pub(crate) is_enterprise_install: Option<bool>,
}

/// The inner `event` object of an `event_callback`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Event<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) user: Option<Ref<'a>>,
    #[serde(borrow)]
    pub(crate) channel: Option<Ref<'a>>,
    #[serde(borrow)]
    pub(crate) channel_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) item: Option<Obj<EventItem<'a>>>,
    /// The function of a `function_executed` event (its `callback_id`).
    #[serde(borrow)]
    pub(crate) function: Option<Obj<Function<'a>>>,
    /// The run of a `function_executed` event.
    #[serde(borrow)]
    pub(crate) function_execution_id: Option<Str<'a>>,
}

/// The `function` of a `function_executed` event, or of a function context's
/// `function_data`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Function<'a> {
    #[serde(borrow)]
    pub(crate) callback_id: Option<Str<'a>>,
}

/// The `item` of reaction and pin events, which names the channel there.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct EventItem<'a> {
    #[serde(borrow)]
    pub(crate) channel: Option<Ref<'a>>,
}

// === Interactivity ===

/// The JSON of the `payload` form field of an interactivity request.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct InteractionPayload<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) api_app_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) team: Option<Ref<'a>>,
    #[serde(borrow)]
    pub(crate) team_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) enterprise: Option<Ref<'a>>,
    #[serde(borrow)]
    pub(crate) enterprise_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) user: Option<Ref<'a>>,
    #[serde(borrow)]
    pub(crate) channel: Option<Ref<'a>>,
    #[serde(borrow)]
    pub(crate) container: Option<Obj<Container<'a>>>,
    #[serde(borrow)]
    pub(crate) actions: Option<Vec<Obj<Action<'a>>>>,
    #[serde(borrow)]
    pub(crate) action_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) callback_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) view: Option<Obj<View<'a>>>,
    pub(crate) is_enterprise_install: Option<bool>,
    /// Present on interactivity from a function's context (a custom workflow step).
    #[serde(borrow)]
    pub(crate) function_data: Option<Obj<FunctionData<'a>>>,
    /// Secret custody's fields, raw (any JSON value, as custody's walk takes any: only a
    /// string is taken), so that custody knows where they are without a walk of its own
    /// (`custody::payload_spots`). Read once each: a duplicate is refused, as for every
    /// field read here.
    #[serde(borrow)]
    pub(crate) response_url: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) response_urls: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) bot_access_token: Option<&'a RawValue>,
}

/// The `function_data` of interactivity from a function's context.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct FunctionData<'a> {
    /// Raw, for custody to know where it is; read as a string ([`raw_str`]).
    #[serde(borrow)]
    pub(crate) execution_id: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) function: Option<Obj<Function<'a>>>,
}

/// A raw JSON value read as an optional string, as `Option<Str>` reads it (`null` is
/// `None`, a string borrowed when it has no escape); anything else is an error.
pub(crate) fn raw_str<'a>(raw: Option<&'a RawValue>) -> Result<Option<Str<'a>>, serde_json::Error> {
    raw.map(|r| serde_json::from_str::<Option<Str<'a>>>(r.get()))
        .transpose()
        .map(Option::flatten)
}

/// The `container` of a block action: where the interacted block lives.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Container<'a> {
    #[serde(borrow)]
    pub(crate) channel_id: Option<Str<'a>>,
}

/// One entry of `actions[]`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Action<'a> {
    #[serde(borrow)]
    pub(crate) action_id: Option<Str<'a>>,
}

/// The `view` of a modal or App Home interaction.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct View<'a> {
    #[serde(borrow)]
    pub(crate) callback_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub(crate) app_id: Option<Str<'a>>,
}
