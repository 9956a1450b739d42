//! Which address a request really came from.

use std::net::{IpAddr, SocketAddr};

use slackgate_policy::IpSet;

/// The client address of a request.
///
/// The socket peer is the client unless the peer is a trusted proxy. Only then is
/// `X-Forwarded-For` consulted, walked right to left (the order proxies append in),
/// skipping trusted hops; the first untrusted address is the client. An entry that is
/// not an address stops the walk at the last hop that was one. `xff` holds every
/// `X-Forwarded-For` header value in arrival order.
pub fn client_ip<'a, I>(peer: IpAddr, xff: I, trusted: &IpSet) -> IpAddr
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: DoubleEndedIterator,
{
    let peer = canonical(peer);
    if !trusted.contains(peer) {
        return peer;
    }
    let mut current = peer;
    for value in xff.into_iter().rev() {
        for entry in value.rsplit(|&b| b == b',') {
            let Some(ip) = parse_entry(entry) else {
                return current;
            };
            current = ip;
            if !trusted.contains(ip) {
                return ip;
            }
        }
    }
    current
}

/// Parses one `X-Forwarded-For` element: an address, optionally with a port.
pub fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?.trim();
    if text.is_empty() || text.len() > 64 {
        return None;
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    let unbracketed = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'))?;
    unbracketed.parse::<IpAddr>().ok().map(canonical)
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are their IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
