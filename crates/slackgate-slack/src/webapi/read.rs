//! [`read_call`]: a call's arguments, read together from the query and the body, in time
//! linear in its size.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use crate::methods::{is_list_argument, CHANNEL_ARGUMENTS};

use super::args::{CallArgs, CallLimits};
use super::encoding::CallEncoding;
use super::error::CallError;
use super::form::{form_aliases, form_pair};
use super::json::{json_string, json_string_items, scan_object};

/// The argument names the gateway reads values of: `token`, `team_id` and the
/// channel-naming ones.
const WATCHED: [&str; 7] = [
    "token",
    "team_id",
    CHANNEL_ARGUMENTS[0],
    CHANNEL_ARGUMENTS[1],
    CHANNEL_ARGUMENTS[2],
    CHANNEL_ARGUMENTS[3],
    CHANNEL_ARGUMENTS[4],
];

/// Reads a call: `query` is the raw query string (without `?`), `content_type` the raw
/// Content-Type value and `body` the raw body; `limits` bounds what it may name.
///
/// Query and body arguments are read together: a name given twice with different values,
/// in either or across both, is [`CallError::Ambiguous`], whatever the argument; the same
/// value repeated is fine. A query value and a JSON value are the same only when the JSON
/// value is a string with the same text; two JSON values are compared as `serde_json`
/// values. Never panics, whatever the input, and takes time linear in its size.
pub fn read_call(
    query: Option<&[u8]>,
    content_type: Option<&[u8]>,
    body: &[u8],
    limits: &CallLimits,
) -> Result<CallArgs, CallError> {
    let encoding = CallEncoding::detect(content_type, body)?;
    let mut reader = Reader::new(encoding, limits);
    if let Some(query) = query {
        reader.form(query, Source::Query)?;
    }
    match encoding {
        CallEncoding::None => {}
        CallEncoding::Form => reader.form(body, Source::Body)?,
        CallEncoding::Json => {
            for member in scan_object(body)? {
                let value = body.get(member.value).ok_or(CallError::BadJson)?;
                reader.add(member.key, Given::Json(value), Source::Body)?;
            }
        }
    }
    Ok(reader.args)
}

/// Where an argument was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Query,
    Body,
}

/// A value an argument was given, kept to compare repeats.
#[derive(Debug)]
enum Given<'a> {
    /// A decoded query or form value.
    Text(Cow<'a, str>),
    /// The bytes of a JSON value the scanner validated.
    Json(&'a [u8]),
}

impl Given<'_> {
    /// The value as text: a form value, or a JSON string; `None` for other JSON values.
    fn text(&self) -> Result<Option<Cow<'_, str>>, CallError> {
        match self {
            Given::Text(text) => Ok(Some(Cow::Borrowed(text.as_ref()))),
            Given::Json(raw) => json_string(raw),
        }
    }
}

/// The first value of an argument, kept to compare its repeats with.
#[derive(Debug)]
struct First<'a> {
    given: Given<'a>,
    /// The JSON value as `serde_json` reads it, once a repeat needed it: parsed once, so
    /// that many small repeats of one large value cost their own size only.
    parsed: Option<serde_json::Value>,
}

impl First<'_> {
    /// Whether a repeat is the same value.
    fn same_as(&mut self, repeat: &Given<'_>) -> Result<bool, CallError> {
        match (&self.given, repeat) {
            (Given::Text(a), Given::Text(b)) => Ok(a == b),
            (Given::Text(text), json @ Given::Json(_))
            | (json @ Given::Json(_), Given::Text(text)) => {
                Ok(json.text()?.is_some_and(|s| s == *text))
            }
            (Given::Json(a), Given::Json(b)) => {
                if a == b {
                    return Ok(true);
                }
                let theirs = json_value(b)?;
                let ours = match &mut self.parsed {
                    Some(v) => v,
                    None => self.parsed.insert(json_value(a)?),
                };
                Ok(*ours == theirs)
            }
        }
    }
}

/// A validated JSON value as `serde_json` reads it.
fn json_value(raw: &[u8]) -> Result<serde_json::Value, CallError> {
    serde_json::from_slice(raw).map_err(|_| CallError::BadJson)
}

/// Collects a call's arguments.
struct Reader<'a> {
    /// The first value of each name.
    seen: HashMap<Cow<'a, str>, First<'a>>,
    /// The names in `args.names`.
    listed: HashSet<String>,
    /// The channels in `args.channels`.
    channel_set: HashSet<String>,
    max_channels: usize,
    args: CallArgs,
}

impl<'a> Reader<'a> {
    fn new(encoding: CallEncoding, limits: &CallLimits) -> Self {
        Reader {
            seen: HashMap::new(),
            listed: HashSet::new(),
            channel_set: HashSet::new(),
            max_channels: limits.max_channels,
            args: CallArgs::new(encoding),
        }
    }

    /// Reads the arguments of a query string or form body.
    fn form(&mut self, input: &'a [u8], source: Source) -> Result<(), CallError> {
        for piece in input.split(|&b| b == b'&') {
            if piece.is_empty() {
                continue;
            }
            let (name, value) = form_pair(piece)?;
            let aliases = form_aliases(&name);
            self.add(name, Given::Text(value), source)?;
            for alias in aliases.into_iter().flatten() {
                if let Some(watched) = WATCHED.iter().find(|w| **w == alias) {
                    return Err(CallError::AliasedName { name: watched });
                }
                self.list(&alias);
            }
        }
        Ok(())
    }

    fn list(&mut self, name: &str) {
        if !self.listed.contains(name) {
            self.listed.insert(name.to_owned());
            self.args.names.push(name.to_owned());
        }
    }

    /// Records one argument.
    fn add(
        &mut self,
        name: Cow<'a, str>,
        value: Given<'a>,
        source: Source,
    ) -> Result<(), CallError> {
        self.take(&name, &value, source)?;
        match self.seen.get_mut(name.as_ref()) {
            Some(first) => {
                if !first.same_as(&value)? {
                    return Err(CallError::Ambiguous {
                        name: name.into_owned(),
                    });
                }
            }
            None => {
                self.list(&name);
                self.seen.insert(
                    name,
                    First {
                        given: value,
                        parsed: None,
                    },
                );
            }
        }
        Ok(())
    }

    /// Takes what the gateway reads from a watched argument. Repeats have the same value
    /// (else the call is ambiguous), so the first one counts.
    fn take(&mut self, name: &str, value: &Given<'_>, source: Source) -> Result<(), CallError> {
        match name {
            "token" => {
                let token = value
                    .text()?
                    .ok_or(CallError::NotAString { name: "token" })?;
                match source {
                    Source::Query => self.args.token_in_query = true,
                    Source::Body => {
                        if self.args.body_token.is_none() {
                            self.args.body_token = Some(token.into_owned());
                        }
                    }
                }
            }
            "team_id" => {
                let team = value
                    .text()?
                    .ok_or(CallError::NotAString { name: "team_id" })?;
                if self.args.team_id.is_none() {
                    self.args.team_id = Some(team.into_owned());
                }
            }
            _ => {
                let Some(&argument) = CHANNEL_ARGUMENTS.iter().find(|a| **a == name) else {
                    return Ok(());
                };
                let not_string = CallError::ChannelNotString { name: argument };
                if !is_list_argument(argument) {
                    let channel = value.text()?.ok_or(not_string)?;
                    return self.channel(argument, &channel);
                }
                match value {
                    Given::Text(list) => self.channel_list(argument, list)?,
                    Given::Json(raw) => match raw.first() {
                        Some(b'"') => {
                            let list = json_string(raw)?.ok_or(not_string)?;
                            self.channel_list(argument, &list)?;
                        }
                        Some(b'[') => {
                            if !json_string_items(raw, |item| self.channel_list(argument, &item))? {
                                return Err(not_string);
                            }
                        }
                        _ => return Err(not_string),
                    },
                }
            }
        }
        Ok(())
    }

    /// Records a channel named by `argument`: once, and only while under the cap.
    fn channel(&mut self, argument: &'static str, channel: &str) -> Result<(), CallError> {
        if !self.channel_set.contains(channel) {
            if self.args.channels.len() >= self.max_channels {
                return Err(CallError::TooManyChannels {
                    max: self.max_channels,
                });
            }
            self.channel_set.insert(channel.to_owned());
            self.args.channels.push(channel.to_owned());
        }
        // At most one entry per channel-naming argument: a scan of five.
        if self.args.named_by(argument).is_none() {
            self.args.by_argument.push((argument, channel.to_owned()));
        }
        Ok(())
    }

    /// Records a comma list's channels, stopping at the first one past the cap.
    fn channel_list(&mut self, argument: &'static str, list: &str) -> Result<(), CallError> {
        for item in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            self.channel(argument, item)?;
        }
        Ok(())
    }
}
