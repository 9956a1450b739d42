//! The fields of the gateway's audit records, as docs/audit.md lists them, for the tests
//! that check records: the gateway's own and the in-crate unit tests of its writer.

/// The fields of an inbound record before its facts, in docs/audit.md's order.
pub const INBOUND_BEFORE_FACTS: [&str; 9] = [
    "ts",
    "direction",
    "route",
    "reason",
    "status",
    "shadow",
    "client_ip",
    "app",
    "secret_id",
];

/// The fields parsed from a verified payload (its facts), in order; a request that failed
/// before its payload was verified (and replay-checked) carries none of them. All but
/// `kind`, which the gateway names, come as the caller wrote them.
pub const FACT_KEYS: [&str; 10] = [
    "kind",
    "api_app_id",
    "enterprise_id",
    "team_id",
    "user_id",
    "channel_id",
    "event_type",
    "command",
    "event_id",
    "action_id",
];

/// The fields of an inbound record after its facts.
pub const INBOUND_AFTER_FACTS: [&str; 5] = [
    "retry_num",
    "rule",
    "upstream",
    "upstream_status",
    "duration_us",
];

/// Every field of an inbound record, in order: [`INBOUND_BEFORE_FACTS`], [`FACT_KEYS`],
/// [`INBOUND_AFTER_FACTS`] (`lifecycle` is added only when true).
pub fn inbound_keys() -> impl Iterator<Item = &'static str> {
    INBOUND_BEFORE_FACTS
        .into_iter()
        .chain(FACT_KEYS)
        .chain(INBOUND_AFTER_FACTS)
}

/// The fields of an egress record, in order.
pub const EGRESS_KEYS: [&str; 17] = [
    "ts",
    "direction",
    "bot",
    "method",
    "team_id",
    "channel_id",
    "reason",
    "status",
    "rule",
    "slack_ok",
    "slack_error",
    "upstream_status",
    "duration_us",
    "function_execution_id",
    "shadow",
    "scopes_needed",
    "scopes_granted",
];
