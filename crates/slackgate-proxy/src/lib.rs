//! slackgate-proxy
