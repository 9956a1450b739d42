//! `client_ip` and `parse_entry` on arbitrary `X-Forwarded-For` bytes, peers and trusted
//! proxy sets. Neither may panic, and:
//! - an untrusted peer is always the client, whatever the headers say;
//! - the answer is the peer or an address parsed from one of the headers, never an
//!   IPv4-mapped IPv6 address, and equals a plain right-to-left reference walk;
//! - `IpSet::contains` agrees with a linear scan of the same networks with `ipnet`;
//! - `parse_entry` returns canonical addresses and accepts every address it prints.

#![no_main]

use std::net::{IpAddr, SocketAddr};

use arbitrary::Arbitrary;
use ipnet::{IpNet, Ipv4Net};
use libfuzzer_sys::fuzz_target;
use slackgate_guard::{canonical, client_ip, parse_entry};
use slackgate_policy::IpSet;

#[derive(Debug, Arbitrary)]
struct Input {
    peer: IpAddr,
    /// Trusted networks as (address, prefix length); the prefix is clamped.
    trusted: Vec<(IpAddr, u8)>,
    /// Bit 0: trust the peer's /p network. Bit 1: also trust every parsed entry but the
    /// first. `p` comes from the other bits.
    flags: u8,
    /// Every `X-Forwarded-For` header value, in arrival order.
    headers: Vec<Vec<u8>>,
}

fn net(ip: IpAddr, prefix: u8) -> IpNet {
    let max = if ip.is_ipv4() { 32 } else { 128 };
    IpNet::new(ip, prefix % (max + 1)).unwrap_or_else(|_| IpNet::from(ip))
}

/// The networks as `IpSet` documents them: IPv4-mapped networks of /96 or longer are
/// IPv4 networks.
fn model_contains(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    nets.iter().any(|n| {
        let n = match n {
            IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
                Some(a) => IpNet::V4(Ipv4Net::new(a, v6.prefix_len() - 96).unwrap_or(a.into())),
                None => *n,
            },
            _ => *n,
        };
        n.contains(&ip)
    })
}

fn model_client_ip(peer: IpAddr, headers: &[Vec<u8>], trusted: &IpSet) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.contains(peer) {
        return peer;
    }
    let entries: Vec<&[u8]> = headers
        .iter()
        .flat_map(|h| h.split(|&b| b == b','))
        .collect();
    let mut current = peer;
    for entry in entries.into_iter().rev() {
        match parse_entry(entry) {
            None => return current,
            Some(ip) => {
                current = ip;
                if !trusted.contains(ip) {
                    return ip;
                }
            }
        }
    }
    current
}

fn is_mapped(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())
}

fuzz_target!(|input: Input| {
    let Input {
        peer,
        mut trusted,
        flags,
        mut headers,
    } = input;
    trusted.truncate(16);
    headers.truncate(8);

    let entries: Vec<IpAddr> = headers
        .iter()
        .flat_map(|h| h.split(|&b| b == b','))
        .filter_map(parse_entry)
        .collect();
    if flags & 1 != 0 {
        trusted.push((peer, flags >> 2));
    }
    if flags & 2 != 0 {
        trusted.extend(entries.iter().skip(1).map(|&ip| (ip, 128)));
    }
    let nets: Vec<IpNet> = trusted.iter().map(|&(ip, p)| net(ip, p)).collect();
    let set = IpSet::from_cidrs(nets.iter().copied());

    for ip in [peer]
        .into_iter()
        .chain(entries.iter().copied())
        .chain(nets.iter().map(IpNet::addr))
    {
        assert_eq!(
            set.contains(ip),
            model_contains(&nets, ip),
            "{ip} in {nets:?}"
        );
    }

    let got = client_ip(peer, headers.iter().map(Vec::as_slice), &set);
    assert!(!is_mapped(got), "mapped address returned: {got}");
    if !set.contains(peer) {
        assert_eq!(got, canonical(peer), "an untrusted peer must be the client");
    }
    assert!(
        got == canonical(peer) || entries.contains(&got),
        "{got} is neither the peer nor a forwarded entry"
    );
    assert_eq!(got, model_client_ip(peer, &headers, &set));

    for entry in headers.iter().flat_map(|h| h.split(|&b| b == b',')) {
        if let Some(ip) = parse_entry(entry) {
            assert!(!is_mapped(ip));
        }
    }
    for ip in [peer, got] {
        let c = canonical(ip);
        assert_eq!(parse_entry(ip.to_string().as_bytes()), Some(c));
        assert_eq!(
            parse_entry(SocketAddr::new(ip, 443).to_string().as_bytes()),
            Some(c)
        );
        if let IpAddr::V6(v6) = ip {
            assert_eq!(parse_entry(format!("[{v6}]").as_bytes()), Some(c));
        }
    }
});
