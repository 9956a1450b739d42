//! [`Mode`]: whether a route's or a bot's decisions are enforced or only reported (its
//! own file: routes in `model.rs` and bots in `bots.rs` both name it).

/// Whether a route's or a bot's decisions are enforced or only logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Denials are answered as denials.
    Enforce,
    /// Denials are logged with `"shadow": true` and the request is forwarded anyway.
    Shadow,
}

impl Mode {
    /// The policy spelling: `enforce` or `shadow`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        }
    }
}
