//! Compiled matchers used on the request path: Slack id sets, action-id globs
//! and IP/CIDR sets. All are built once at load time; lookups allocate nothing.
//!
//! [`parse_cidrs`] is the one reader of IP/CIDR lists, for the policy's `source_ips` and the
//! config's `trusted_proxies` alike, so both files accept and refuse the same entries.

use std::collections::{BTreeMap, HashSet as StdHashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::error::Errors;
use crate::spec::SpannedList;

/// The hasher of the policy's lookup tables ([`IdSet`], [`GlobSet`], [`IpSet`], the route
/// table, the upstream pools): foldhash, seeded per process, instead of std's SipHash,
/// which was most of a lookup's cost (callgrind: SipHash fell from 2.5k to 1.2k
/// instructions per plain request, the rest being the rate limiter's keys).
///
/// SipHash's keyed strength guards a table that grows from what clients send (HashDoS).
/// These tables hold only what the policy lists: they are built at load time and never
/// take an insert at run time, so a client's key is only ever looked up. A lookup's work
/// is bounded by the probe sequences of the policy's own entries, which a client cannot
/// lengthen. Tables keyed by client input (the rate limiter, the replay cache) keep their
/// keyed hashes.
pub type LookupHasher = foldhash::fast::RandomState;

/// A set with the [`LookupHasher`].
pub(crate) type HashSet<T> = StdHashSet<T, LookupHasher>;

// === impl IdSet ===

/// A set of exact Slack ids (teams, users, channels, event types, commands...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdSet(HashSet<Box<str>>);

impl IdSet {
    /// True when `s` is in the set (exact, case-sensitive).
    pub fn contains(&self, s: &str) -> bool {
        self.0.contains(s)
    }

    /// The number of distinct ids.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the set holds no id.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the ids in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|s| &**s)
    }
}

impl<S: Into<Box<str>>> FromIterator<S> for IdSet {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        IdSet(iter.into_iter().map(Into::into).collect())
    }
}

// === impl GlobSet ===

/// A set of ids and `*` patterns (action ids, callback ids).
///
/// Entries without `*` are hashed; each pattern is pre-split into literal
/// segments and matched without regex or allocation.
#[derive(Debug, Clone, Default)]
pub struct GlobSet {
    exact: HashSet<Box<str>>,
    patterns: Box<[Glob]>,
}

/// One `*` pattern: `prefix*middle1*middle2*suffix`.
#[derive(Debug, Clone)]
struct Glob {
    prefix: Box<str>,
    middle: Box<[Box<str>]>,
    suffix: Box<str>,
}

impl Glob {
    /// Splits a pattern that contains at least one `*`.
    fn new(pattern: &str) -> Self {
        let parts: Vec<&str> = pattern.split('*').collect();
        let last = parts.len().saturating_sub(1);
        Glob {
            prefix: parts.first().copied().unwrap_or_default().into(),
            suffix: if last == 0 {
                "".into()
            } else {
                parts.get(last).copied().unwrap_or_default().into()
            },
            middle: parts
                .iter()
                .take(last)
                .skip(1)
                .filter(|p| !p.is_empty())
                .map(|p| Box::<str>::from(*p))
                .collect(),
        }
    }

    fn matches(&self, s: &str) -> bool {
        if s.len() < self.prefix.len() + self.suffix.len()
            || !s.starts_with(&*self.prefix)
            || !s.ends_with(&*self.suffix)
        {
            return false;
        }
        let mut rest = &s[self.prefix.len()..s.len() - self.suffix.len()];
        for m in self.middle.iter() {
            match rest.find(&**m) {
                Some(i) => rest = &rest[i + m.len()..],
                None => return false,
            }
        }
        true
    }
}

impl GlobSet {
    /// True when `s` equals an exact entry or matches a `*` pattern.
    pub fn matches(&self, s: &str) -> bool {
        self.exact.contains(s) || self.patterns.iter().any(|g| g.matches(s))
    }

    /// The number of entries (exact ids plus patterns).
    pub fn len(&self) -> usize {
        self.exact.len() + self.patterns.len()
    }

    /// True when the set has no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'a> FromIterator<&'a str> for GlobSet {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut exact = HashSet::default();
        let mut patterns = Vec::new();
        for entry in iter {
            if entry.contains('*') {
                patterns.push(Glob::new(entry));
            } else {
                exact.insert(Box::from(entry));
            }
        }
        GlobSet {
            exact,
            patterns: patterns.into(),
        }
    }
}

// === impl IpSet ===

/// A set of IP networks, fast for large lists (100k CIDRs).
///
/// Networks are stored as masked integers in one hash set per prefix length;
/// a lookup probes only the prefix lengths present. IPv4-mapped IPv6 addresses
/// (`::ffff:a.b.c.d`) are looked up as IPv4, and IPv4-mapped networks are
/// stored as IPv4.
#[derive(Debug, Clone, Default)]
pub struct IpSet {
    v4: Box<[(u8, HashSet<u32>)]>,
    v6: Box<[(u8, HashSet<u128>)]>,
    networks: usize,
}

fn mask4(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

fn mask6(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => u128::MAX << (128 - u32::from(p.min(128))),
    }
}

impl IpSet {
    /// Builds a set from networks. Host bits are ignored (`10.0.0.1/8` is
    /// `10.0.0.0/8`); duplicates collapse.
    pub fn from_cidrs<I: IntoIterator<Item = IpNet>>(cidrs: I) -> IpSet {
        let mut v4: BTreeMap<u8, HashSet<u32>> = BTreeMap::new();
        let mut v6: BTreeMap<u8, HashSet<u128>> = BTreeMap::new();
        for net in cidrs {
            match net {
                IpNet::V4(n) => {
                    let p = n.prefix_len();
                    v4.entry(p)
                        .or_default()
                        .insert(u32::from(n.addr()) & mask4(p));
                }
                IpNet::V6(n) => {
                    let p = n.prefix_len();
                    match n.addr().to_ipv4_mapped() {
                        Some(a) if p >= 96 => {
                            let p4 = p - 96;
                            v4.entry(p4).or_default().insert(u32::from(a) & mask4(p4));
                        }
                        _ => {
                            v6.entry(p)
                                .or_default()
                                .insert(u128::from(n.addr()) & mask6(p));
                        }
                    }
                }
            }
        }
        let networks = v4.values().map(HashSet::len).sum::<usize>()
            + v6.values().map(HashSet::len).sum::<usize>();
        // Longest prefixes first: specific entries are the common case in big lists.
        IpSet {
            v4: v4.into_iter().rev().collect(),
            v6: v6.into_iter().rev().collect(),
            networks,
        }
    }

    /// True when `ip` is inside one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.contains_v4(a),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(a4) => self.contains_v4(a4),
                None => self.contains_v6(a),
            },
        }
    }

    fn contains_v4(&self, a: Ipv4Addr) -> bool {
        let x = u32::from(a);
        self.v4
            .iter()
            .any(|(p, set)| set.contains(&(x & mask4(*p))))
    }

    fn contains_v6(&self, a: Ipv6Addr) -> bool {
        let x = u128::from(a);
        self.v6
            .iter()
            .any(|(p, set)| set.contains(&(x & mask6(*p))))
    }

    /// True when the set holds no network.
    pub fn is_empty(&self) -> bool {
        self.networks == 0
    }

    /// The number of distinct networks.
    pub fn len(&self) -> usize {
        self.networks
    }
}

/// Parses a list of IPs and CIDRs, reporting each bad entry. A CIDR with host
/// bits set is an error: `10.0.0.1/8` is ambiguous between a typo and `10.0.0.0/8`.
pub(crate) fn parse_cidrs(list: &SpannedList, errs: &mut Errors) -> IpSet {
    let mut nets = Vec::with_capacity(list.len());
    for entry in list.iter() {
        let s = entry.trim();
        if let Ok(net) = s.parse::<IpNet>() {
            if net.trunc() == net {
                nets.push(net);
            } else {
                errs.at(
                    entry.span(),
                    "CIDR has bits set after the prefix length",
                    format!("write the network address, {}", net.trunc()),
                );
            }
        } else if let Ok(ip) = s.parse::<IpAddr>() {
            nets.push(IpNet::from(ip));
        } else {
            errs.at(
                entry.span(),
                "not an IP address or CIDR",
                "write an address or network such as 192.0.2.7, 10.0.0.0/8 or 2001:db8::/32",
            );
        }
    }
    IpSet::from_cidrs(nets)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ipset(cidrs: &[&str]) -> IpSet {
        IpSet::from_cidrs(cidrs.iter().map(|c| c.parse::<IpNet>().unwrap()))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn globs() {
        let g: GlobSet = ["ticket_*", "exact", "*_end", "a*b*c", "*"]
            .into_iter()
            .collect();
        assert!(g.matches("exact"));
        assert!(g.matches("anything"));
        let g: GlobSet = ["ticket_*", "exact", "*_end", "a*b*c"]
            .into_iter()
            .collect();
        assert!(g.matches("ticket_open"));
        assert!(g.matches("ticket_"));
        assert!(!g.matches("ticket"));
        assert!(g.matches("x_end"));
        assert!(g.matches("abc"));
        assert!(g.matches("aXbYc"));
        assert!(!g.matches("acb"));
        assert!(!g.matches("exact2"));
        let g: GlobSet = ["ab*ab"].into_iter().collect();
        assert!(!g.matches("aba"), "prefix and suffix must not overlap");
        assert!(g.matches("abab"));
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn ipsets() {
        let s = ipset(&[
            "10.0.0.0/8",
            "192.0.2.7/32",
            "2001:db8::/32",
            "::ffff:198.51.100.0/120",
        ]);
        assert!(s.contains(ip("10.1.2.3")));
        assert!(!s.contains(ip("99.0.0.1")));
        assert!(s.contains(ip("192.0.2.7")));
        assert!(!s.contains(ip("192.0.2.8")));
        assert!(s.contains(ip("2001:db8::1")));
        assert!(!s.contains(ip("2001:db9::1")));
        assert!(
            s.contains(ip("::ffff:10.9.9.9")),
            "mapped v6 is looked up as v4"
        );
        assert!(
            s.contains(ip("198.51.100.77")),
            "mapped network is stored as v4"
        );
        assert_eq!(s.len(), 4);
        let any = ipset(&["0.0.0.0/0", "::/0"]);
        assert!(any.contains(ip("1.2.3.4")) && any.contains(ip("fe80::1")));
        assert!(IpSet::default().is_empty());
        assert!(!IpSet::default().contains(ip("1.2.3.4")));
    }

    #[test]
    fn ipset_100k() {
        let nets = (0u32..100_000).map(|i| {
            IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 | (i << 8)), 24).unwrap())
        });
        let s = IpSet::from_cidrs(nets);
        assert_eq!(s.len(), 100_000);
        assert!(s.contains(ip("10.1.134.9")));
        assert!(!s.contains(ip("99.0.0.1")));
    }

    proptest::proptest! {
        #[test]
        fn ipset_agrees_with_ipnet(a in proptest::prelude::any::<u32>(), p in 0u8..=32, x in proptest::prelude::any::<u32>()) {
            let net = ipnet::Ipv4Net::new(Ipv4Addr::from(a), p).unwrap();
            let s = IpSet::from_cidrs([IpNet::V4(net)]);
            let probe = Ipv4Addr::from(x);
            proptest::prop_assert_eq!(s.contains(IpAddr::V4(probe)), net.trunc().contains(&probe));
            proptest::prop_assert!(s.contains(IpAddr::V4(net.addr())));
        }

        #[test]
        fn glob_star_prefix(prefix in "[a-z_]{0,8}", rest in "[a-z_]{0,8}") {
            let pat = format!("{prefix}*");
            let g: GlobSet = [pat.as_str()].into_iter().collect();
            let probe = format!("{prefix}{rest}");
            proptest::prop_assert!(g.matches(&probe));
        }
    }
}
