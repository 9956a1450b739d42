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

/// An address as text without an allocation: IPv4 (the hot case: every per-ip rate
/// limit key and every audit record) is written digit by digit, IPv6 through `Display`.
#[derive(Clone, Copy)]
pub struct IpText {
    buf: [u8; 45],
    len: u8,
}

impl IpText {
    /// Formats `ip` exactly as `ip.to_string()` does.
    pub fn new(ip: IpAddr) -> Self {
        let mut text = Self {
            buf: [0; 45],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        text.push(b'.');
                    }
                    if octet >= 100 {
                        text.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        text.push(b'0' + octet / 10 % 10);
                    }
                    text.push(b'0' + octet % 10);
                }
            }
            IpAddr::V6(v6) => {
                use std::fmt::Write;
                // At most 45 bytes (an IPv4-mapped form); a failure leaves it empty.
                if write!(text, "{v6}").is_err() {
                    text.len = 0;
                }
            }
        }
        text
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(usize::from(self.len)) {
            *slot = b;
            self.len += 1;
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits, dots, colons and hex letters are ever written.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

impl std::fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = usize::from(self.len) + s.len();
        let slot = self
            .buf
            .get_mut(usize::from(self.len)..end)
            .ok_or(std::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end as u8;
        Ok(())
    }
}

impl std::fmt::Debug for IpText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod ip_text_tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn matches_display_for_every_octet_and_v6_forms() {
        for o in 0..=255u8 {
            for ip in [
                Ipv4Addr::new(o, 0, 255, o),
                Ipv4Addr::new(9, o, 10, 99),
                Ipv4Addr::new(100, 199, o, 1),
            ] {
                assert_eq!(IpText::new(IpAddr::V4(ip)).as_str(), ip.to_string());
            }
        }
        for ip in [
            Ipv6Addr::LOCALHOST,
            Ipv6Addr::UNSPECIFIED,
            "2001:db8::1".parse().unwrap(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
            "::ffff:255.255.255.255".parse().unwrap(),
            "fe80::1:2:3:4".parse().unwrap(),
        ] {
            assert_eq!(IpText::new(IpAddr::V6(ip)).as_str(), ip.to_string());
        }
    }
}
