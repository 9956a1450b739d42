//! What a call is read into ([`CallArgs`]) and the bounds on what it may name
//! ([`CallLimits`]).

use crate::methods::conversation_use;

use super::encoding::CallEncoding;

/// What the gateway decides on, read from a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallArgs {
    /// A `token` argument appeared in the query string (refused upstream: `token_in_url`).
    pub token_in_query: bool,
    /// The `token` argument of the body (form field or top-level JSON string member), if any.
    pub body_token: Option<String>,
    /// Channels named by every channel-naming argument ([`crate::CHANNEL_ARGUMENTS`]:
    /// `channel`, `channel_id`, `context_channel_id`, and the lists `channels` and
    /// `channel_ids`, comma-separated, items trimmed, empty items dropped), from query and
    /// body, deduplicated, in order of appearance. Single-channel values are taken as they
    /// are, even when empty. A JSON list argument may be an array; its items are comma lists
    /// too. At most [`CallLimits::max_channels`] of them.
    pub channels: Vec<String>,
    /// For each channel-naming argument given, the first channel it names (a list's first
    /// item), in order of appearance; see [`CallArgs::acted_on`].
    pub by_argument: Vec<(&'static str, String)>,
    /// The `team_id` argument, if any.
    pub team_id: Option<String>,
    /// Every argument name, query and body, deduplicated, in order of appearance (for
    /// `deny_args`). A form name that Slack's form parser may file under another name
    /// (`user.name` as `user_name`, `icon_url[]` as `icon_url`) is listed under both.
    pub names: Vec<String>,
    /// The body encoding that was read.
    pub encoding: CallEncoding,
}

impl CallArgs {
    /// Nothing read yet, from a body of `encoding`: where [`read_call`](crate::read_call)
    /// starts.
    pub fn new(encoding: CallEncoding) -> Self {
        CallArgs {
            token_in_query: false,
            body_token: None,
            channels: Vec::new(),
            by_argument: Vec::new(),
            team_id: None,
            names: Vec::new(),
            encoding,
        }
    }

    /// What reading the call again gives once its body is `stripped`, the body
    /// [`strip_body_token`](crate::strip_body_token) made of it: these arguments less the
    /// body's `token` (and less the name `token`, unless the query string gives one too),
    /// with no encoding when nothing is left of the body.
    pub fn after_strip(&self, stripped: &[u8]) -> CallArgs {
        let mut after = self.clone();
        after.body_token = None;
        if !self.token_in_query {
            after.names.retain(|n| n != "token");
        }
        if stripped.is_empty() {
            after.encoding = CallEncoding::None;
        }
        after
    }

    /// The first channel the call names by `argument`, if it names one by it.
    pub fn named_by(&self, argument: &str) -> Option<&str> {
        self.by_argument
            .iter()
            .find(|(a, _)| *a == argument)
            .map(|(_, c)| c.as_str())
    }

    /// The channel a call of `method` (in Slack's spelling) acts on: the first of the
    /// method's own arguments ([`crate::conversation_use`]) that the call gives. For a
    /// method the table ties to no conversation, the first channel the call names. `None`
    /// when the call does not name the conversation the method acts on.
    pub fn acted_on(&self, method: &str) -> Option<&str> {
        match conversation_use(method) {
            Some(u) => u.targets.iter().find_map(|t| self.named_by(t)),
            None => self.channels.first().map(String::as_str),
        }
    }
}

/// Bounds on what one call may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// The most distinct channels a call may name, all channel-naming arguments together
    /// (`limits.max_call_channels`); one more is [`CallError::TooManyChannels`](crate::CallError::TooManyChannels).
    pub max_channels: usize,
}
