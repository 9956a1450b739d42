//! slackgate-testkit
