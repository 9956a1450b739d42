//! slackgate
