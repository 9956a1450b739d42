//! The Socket Mode bridge (issue 29): for an app with `socket_mode`, the gateway holds
//! the app's Socket Mode WebSockets itself and delivers every envelope to the unchanged
//! HTTP bot through the inbound pipeline, as the request Slack would have POSTed, signed
//! for the bot; no public Request URL is needed.
//!
//! | file | what |
//! |---|---|
//! | `envelope` | the messages on the socket, an envelope's request body, the ack |
//! | `request` | an envelope as the pipeline's `Downstream` (and its signature for the bot) |
//! | `link` | one connection: `apps.connections.open`, the WebSocket, serving it |
//! | `bridge` | the apps' connections kept, each envelope run and acked, dedupe |
//! | `status` | `/status` `socket_mode` and the `slackgate_socket_*` metrics |
//!
//! It uses the inbound door's `Gateway` and the egress door's Slack client; neither
//! door imports it (`server.rs` wires it).

pub(crate) mod bridge;
pub(crate) mod envelope;
pub(crate) mod link;
pub(crate) mod request;
pub mod status;

pub(crate) use bridge::SocketBridge;
pub use status::{AppSocketStatus, SocketStatus};
