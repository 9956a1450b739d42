//! The kinds of Slack request, as Slack's `type` field or the form shape names them.

use std::fmt;

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

    pub(crate) fn from_interaction_type(t: &str) -> Option<Self> {
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
