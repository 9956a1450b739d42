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

/// How many items a list is scanned over before a hash set takes over its lookups: a
/// call names a few arguments and a channel or two, for which a scan is cheaper than
/// hashing (the set is keyed: names and channels are the caller's), and a long list still
/// costs one hash lookup per item.
const SCAN_MAX: usize = 8;

/// Which strings a list holds: a scan of the list while it is short, then a hash set of
/// its items, so that a long list stays linear.
#[derive(Default)]
struct Distinct {
    set: Option<HashSet<String>>,
}

impl Distinct {
    fn contains(&self, items: &[String], item: &str) -> bool {
        match &self.set {
            Some(set) => set.contains(item),
            None => items.iter().any(|i| i == item),
        }
    }

    /// Adds `item` (not in `items`) to `items`.
    fn push(&mut self, items: &mut Vec<String>, item: &str) {
        match &mut self.set {
            Some(set) => {
                set.insert(item.to_owned());
            }
            None if items.len() >= SCAN_MAX => {
                let mut set: HashSet<String> = items.iter().cloned().collect();
                set.insert(item.to_owned());
                self.set = Some(set);
            }
            None => {}
        }
        items.push(item.to_owned());
    }
}

/// The first value of each name, in order: scanned while there are few, then found by
/// a hash map of their places.
#[derive(Default)]
struct Seen<'a> {
    firsts: Vec<(Cow<'a, str>, First<'a>)>,
    places: Option<HashMap<Cow<'a, str>, usize>>,
}

impl<'a> Seen<'a> {
    fn get_mut(&mut self, name: &str) -> Option<&mut First<'a>> {
        let at = match &self.places {
            Some(places) => places.get(name).copied(),
            None => self.firsts.iter().position(|(n, _)| n == name),
        };
        Some(&mut self.firsts.get_mut(at?)?.1)
    }

    /// Adds the first value of `name` (not seen yet).
    fn insert(&mut self, name: Cow<'a, str>, first: First<'a>) {
        match &mut self.places {
            Some(places) => {
                places.insert(name.clone(), self.firsts.len());
            }
            None if self.firsts.len() >= SCAN_MAX => {
                let mut places: HashMap<Cow<'a, str>, usize> = (self.firsts.iter())
                    .enumerate()
                    .map(|(i, (n, _))| (n.clone(), i))
                    .collect();
                places.insert(name.clone(), self.firsts.len());
                self.places = Some(places);
            }
            None => {}
        }
        self.firsts.push((name, first));
    }
}

/// Collects a call's arguments.
struct Reader<'a> {
    /// The first value of each name.
    seen: Seen<'a>,
    /// The names in `args.names`.
    listed: Distinct,
    /// The channels in `args.channels`.
    channel_set: Distinct,
    max_channels: usize,
    args: CallArgs,
}

impl<'a> Reader<'a> {
    fn new(encoding: CallEncoding, limits: &CallLimits) -> Self {
        Reader {
            seen: Seen::default(),
            listed: Distinct::default(),
            channel_set: Distinct::default(),
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
        if !self.listed.contains(&self.args.names, name) {
            self.listed.push(&mut self.args.names, name);
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
        if !self.channel_set.contains(&self.args.channels, channel) {
            if self.args.channels.len() >= self.max_channels {
                return Err(CallError::TooManyChannels {
                    max: self.max_channels,
                });
            }
            self.channel_set.push(&mut self.args.channels, channel);
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A plain reader of `name=value` forms without escapes: names in order of appearance,
    /// channels of `channel` deduplicated in order, a name repeated with another value
    /// ambiguous.
    fn reference(pieces: &[(String, String)]) -> Result<(Vec<String>, Vec<String>), String> {
        let (mut names, mut values, mut channels) = (Vec::new(), Vec::new(), Vec::new());
        for (name, value) in pieces {
            match names.iter().position(|n| n == name) {
                Some(at) if values[at] != *value => return Err(name.clone()),
                Some(_) => {}
                None => {
                    names.push(name.clone());
                    values.push(value.clone());
                }
            }
            if name == "channel" && !channels.contains(value) {
                channels.push(value.clone());
            }
        }
        Ok((names, channels))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Past `SCAN_MAX` names and channels (the lists' lookups move to hash sets), a
        /// call still reads as the plain reader reads it, as a form and as JSON.
        #[test]
        fn many_names_and_channels_read_as_the_plain_reader(
            pieces in prop::collection::vec((0usize..24, 0usize..2, 0usize..24, any::<bool>()), 0..60),
        ) {
            let pieces: Vec<(String, String)> = pieces
                .into_iter()
                .map(|(n, v, c, is_channel)| if is_channel {
                    ("channel".to_owned(), format!("C{c}"))
                } else {
                    (format!("n{n}"), format!("v{v}"))
                })
                .collect();
            let form = pieces.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("&");
            let json = format!(
                "{{{}}}",
                pieces.iter().map(|(n, v)| format!("\"{n}\":\"{v}\"")).collect::<Vec<_>>().join(",")
            );
            let limits = CallLimits { max_channels: usize::MAX };
            let expected = reference(&pieces);
            for (ct, body) in [
                (&b"application/x-www-form-urlencoded"[..], form.as_bytes()),
                (&b"application/json"[..], json.as_bytes()),
            ] {
                let read = read_call(None, Some(ct), body, &limits);
                match &expected {
                    Ok((names, channels)) => {
                        let args = read.unwrap();
                        prop_assert_eq!(&args.names, names);
                        prop_assert_eq!(&args.channels, channels);
                    }
                    Err(name) => prop_assert_eq!(read, Err(CallError::Ambiguous { name: name.clone() })),
                }
            }
        }
    }
}
