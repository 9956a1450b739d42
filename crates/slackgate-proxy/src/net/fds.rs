//! File descriptors: at start the process's limit is raised to its hard limit, and the
//! listeners' connection caps are fitted under it with a reserve, so that a flood on one
//! listener never leaves another listener, or the admin listener, without descriptors.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

use crate::admin::ADMIN_MAX_CONNECTIONS;

/// Descriptors kept for everything but client connections and their upstream legs:
/// listening sockets, the audit file, Redis, certificate, policy and secret reads,
/// health checks, the upgrade socket.
const RESERVE: u64 = 256;

/// How many connections each listener may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionCaps {
    /// The inbound listeners together.
    pub inbound: usize,
    /// The egress listener.
    pub egress: usize,
    /// The admin listener.
    pub admin: usize,
}

/// Raises the descriptor limit to the hard limit and fits the caps under it:
/// `max_connections` per inbound listener (`inbound_listeners` of them) and for the
/// egress listener (when `egress`). Each client connection may hold one upstream
/// connection too (to a bot, or to Slack), so it is counted twice.
pub(crate) fn plan(
    inbound_listeners: usize,
    egress: bool,
    max_connections: usize,
) -> ConnectionCaps {
    let limit = raise_limit();
    fit(inbound_listeners, egress, max_connections, limit)
}

/// The caps for a descriptor `limit` (`None`: unknown, the configured caps stand).
fn fit(
    inbound_listeners: usize,
    egress: bool,
    max_connections: usize,
    limit: Option<u64>,
) -> ConnectionCaps {
    let inbound = max_connections.saturating_mul(inbound_listeners);
    let egress = if egress { max_connections } else { 0 };
    let wanted = ConnectionCaps {
        inbound,
        egress,
        admin: ADMIN_MAX_CONNECTIONS,
    };
    let Some(limit) = limit else {
        return wanted;
    };
    let doors = (inbound as u64)
        .saturating_add(egress as u64)
        .saturating_mul(2);
    let room = limit.saturating_sub(RESERVE + ADMIN_MAX_CONNECTIONS as u64);
    if doors <= room || doors == 0 {
        return wanted;
    }
    // Shrink both doors in proportion, so each keeps its share of what there is.
    let scale = |cap: usize| -> usize {
        let scaled = (cap as u128 * u128::from(room) / u128::from(doors)) as usize;
        scaled.max(usize::from(cap > 0))
    };
    let fitted = ConnectionCaps {
        inbound: scale(inbound),
        egress: scale(egress),
        admin: ADMIN_MAX_CONNECTIONS,
    };
    log::warn!(
        "the descriptor limit ({limit}) is below what limits.max_connections ({max_connections} per listener) needs \
         with one upstream connection each and a reserve of {RESERVE}: connections are capped at {} inbound and {} egress; \
         raise the hard RLIMIT_NOFILE (ulimit -Hn, LimitNOFILE=) or lower limits.max_connections",
        fitted.inbound, fitted.egress
    );
    fitted
}

/// Raises the soft descriptor limit to the hard one; the limit in force after.
fn raise_limit() -> Option<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_fit_under_the_limit_with_a_reserve() {
        // Room for everything: the configured caps.
        let caps = fit(1, true, 10_000, Some(1_048_576));
        assert_eq!((caps.inbound, caps.egress), (10_000, 10_000));
        assert_eq!(fit(2, false, 100, None).inbound, 200);
        // 20,000 descriptors: both doors shrink in proportion, and the admin listener,
        // the reserve and one upstream leg per connection still fit.
        let caps = fit(1, true, 10_000, Some(20_000));
        assert_eq!(caps.inbound, caps.egress);
        let used = 2 * (caps.inbound + caps.egress) as u64 + RESERVE + caps.admin as u64;
        assert!(used <= 20_000, "{caps:?}");
        assert!(caps.inbound > 4_000, "{caps:?}");
        // A tiny limit still leaves each door a connection.
        let caps = fit(1, true, 10_000, Some(10));
        assert_eq!((caps.inbound, caps.egress), (1, 1));
    }
}
