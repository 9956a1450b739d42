//! [`CallError`]: why a call cannot be read.

use std::fmt;

/// Why a call cannot be read; each maps to the reason `malformed_call`. Display texts name
/// the problem and at most an argument name, never a value or body bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// A non-empty body of a type other than a form or JSON (multipart, text, ...).
    #[error("the call's body is neither a form nor JSON")]
    UnsupportedEncoding,
    /// A JSON body that is not valid JSON, or nests deeper than 128 levels.
    #[error("the call's JSON body is not valid JSON")]
    BadJson,
    /// A JSON body that is valid JSON but not an object.
    #[error("the call's JSON body is not an object")]
    NotAnObject,
    /// A body or query argument that is not UTF-8 text once decoded.
    #[error("an argument of the call is not valid UTF-8")]
    BadUtf8,
    /// An argument given more than once with different values.
    #[error("the argument {} is given more than once with different values", Shown(.name))]
    Ambiguous {
        /// The argument's name.
        name: String,
    },
    /// A channel-naming argument with a JSON value that is not a string (or, for a list
    /// argument, an array of strings).
    #[error("the argument `{name}` is not a string")]
    ChannelNotString {
        /// The argument's name.
        name: &'static str,
    },
    /// `token` or `team_id` with a JSON value that is not a string.
    #[error("the argument `{name}` is not a string")]
    NotAString {
        /// The argument's name.
        name: &'static str,
    },
    /// More distinct channels than [`CallLimits::max_channels`](crate::CallLimits::max_channels), all channel-naming
    /// arguments together.
    #[error("the call names more than {max} channels (limits.max_call_channels)")]
    TooManyChannels {
        /// The cap.
        max: usize,
    },
    /// A form argument whose name Slack's form parser may file under a watched name
    /// (`channel[]`, `team.id`, ` token`): its meaning is not certain, so it is refused.
    #[error("an argument's name may be read as `{name}`")]
    AliasedName {
        /// The watched name it may be read as.
        name: &'static str,
    },
}

impl CallError {
    /// What went wrong, without any name or number: one of [`CallError::KINDS`]. The
    /// audit record of a caller no key identified carries this rather than the
    /// [`Display`](std::fmt::Display) text, so nothing it wrote (an argument's name) is
    /// recorded.
    pub const fn kind(&self) -> &'static str {
        match self {
            CallError::UnsupportedEncoding => Self::KINDS[0],
            CallError::BadJson => Self::KINDS[1],
            CallError::NotAnObject => Self::KINDS[2],
            CallError::BadUtf8 => Self::KINDS[3],
            CallError::Ambiguous { .. } => Self::KINDS[4],
            CallError::ChannelNotString { .. } | CallError::NotAString { .. } => Self::KINDS[5],
            CallError::TooManyChannels { .. } => Self::KINDS[6],
            CallError::AliasedName { .. } => Self::KINDS[7],
        }
    }

    /// Every [`CallError::kind`].
    pub const KINDS: [&'static str; 8] = [
        "the call's body is neither a form nor JSON",
        "the call's JSON body is not valid JSON",
        "the call's JSON body is not an object",
        "an argument of the call is not valid UTF-8",
        "an argument is given more than once with different values",
        "an argument that must be a string is not one",
        "the call names more channels than limits.max_call_channels",
        "an argument's name may be read as one the gateway checks",
    ];
}

/// An argument name as error texts show it: only when it looks like a Slack argument name
/// (lowercase ASCII letters and `_`, at most 40 bytes), so that a secret sent as a name is
/// never echoed.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = !self.0.is_empty()
            && self.0.len() <= 40
            && self.0.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if plain {
            write!(f, "`{}`", self.0)
        } else {
            f.write_str("(name not shown)")
        }
    }
}
