//! Kubernetes NetworkPolicy semantics, evaluated over the rendered policies for a small
//! modelled cluster: which pod may open which connection to which address and port.
//!
//! What is implemented is what `networking.k8s.io/v1` specifies: a pod is isolated in a
//! direction when some policy of its namespace selects it with that policy type (Ingress
//! always when `policyTypes` is absent, Egress when an `egress` section is present);
//! an isolated pod's traffic is allowed when any rule of any selecting policy allows it
//! (policies add up); a connection needs the source's egress and the destination's
//! ingress both to allow it. Peers: `podSelector` (the policy's namespace),
//! `namespaceSelector`, both (pods of those namespaces matching the pod selector), and
//! `ipBlock` (`cidr` less `except`). An `ipBlock` is taken to match pod addresses as well:
//! CNI plugins differ there, and the broader reading is the safe one for "may reach
//! nothing but" checks. Ports: number, name (a container port of the destination, or of
//! the selected pod for ingress), `endPort`, protocol (TCP by default). Selectors:
//! `matchLabels` and `matchExpressions` (`In`, `NotIn`, `Exists`, `DoesNotExist`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

/// A transport protocol of a port rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    fn parse(v: &Value) -> Option<Proto> {
        match v.as_str().unwrap_or("TCP") {
            "TCP" => Some(Proto::Tcp),
            "UDP" => Some(Proto::Udp),
            _ => None,
        }
    }
}

/// A pod of the modelled cluster.
#[derive(Debug, Clone)]
pub(crate) struct Pod {
    pub(crate) name: String,
    pub(crate) namespace: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) ip: IpAddr,
    /// Named container ports.
    pub(crate) ports: BTreeMap<String, u16>,
}

/// One end of a connection: a pod, or an address outside every pod.
#[derive(Debug, Clone, Copy)]
pub(crate) enum End<'a> {
    Pod(&'a Pod),
    Addr(IpAddr),
}

impl End<'_> {
    pub(crate) fn ip(&self) -> IpAddr {
        match self {
            End::Pod(p) => p.ip,
            End::Addr(a) => *a,
        }
    }

    fn pod(&self) -> Option<&Pod> {
        match self {
            End::Pod(p) => Some(p),
            End::Addr(_) => None,
        }
    }
}

/// Which side of a pod a policy guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    fn key(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    fn peers_key(self) -> &'static str {
        match self {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            Direction::Ingress => "Ingress",
            Direction::Egress => "Egress",
        }
    }
}

/// A modelled cluster: namespaces with their labels, pods, and the NetworkPolicies
/// applied in each namespace.
#[derive(Debug, Default)]
pub(crate) struct Cluster {
    pub(crate) namespaces: BTreeMap<String, BTreeMap<String, String>>,
    pub(crate) pods: Vec<Pod>,
    /// (namespace the policy is applied in, the policy object).
    pub(crate) policies: Vec<(String, Value)>,
}

fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// A CIDR (`10.0.0.0/8`, `::/0`) or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    pub(crate) addr: IpAddr,
    pub(crate) prefix: u8,
}

impl Cidr {
    pub(crate) fn parse(text: &str) -> Cidr {
        let (a, p) = text.split_once('/').unwrap_or((text, ""));
        let addr: IpAddr = a
            .parse()
            .unwrap_or_else(|_| panic!("ipBlock {text}: not an address"));
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() {
            max
        } else {
            p.parse()
                .ok()
                .filter(|n| *n <= max)
                .unwrap_or_else(|| panic!("ipBlock {text}: bad prefix"))
        };
        Cidr { addr, prefix }
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| -> (u128, u32) {
            match a {
                IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
                IpAddr::V6(v) => (u128::from(v), 128),
            }
        };
        let ((net, width), (host, host_width)) = (bits(self.addr), bits(ip));
        if width != host_width {
            return false;
        }
        let shift = width - u32::from(self.prefix);
        shift >= width || (net >> shift) == (host >> shift)
    }

    /// True when every address of `inner` is in `self`.
    pub(crate) fn covers(&self, inner: &Cidr) -> bool {
        inner.prefix >= self.prefix && self.contains(inner.addr)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// True when a label selector (`matchLabels`, `matchExpressions`) selects `labels`.
/// The empty selector selects everything.
pub(crate) fn selector_matches(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str());
    let by_expressions = items(&selector["matchExpressions"]).iter().all(|e| {
        let key = e["key"].as_str().unwrap_or("");
        let values: Vec<&str> = items(&e["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let have = labels.get(key).map(String::as_str);
        match e["operator"].as_str().unwrap_or("") {
            "In" => have.is_some_and(|h| values.contains(&h)),
            "NotIn" => have.is_none_or(|h| !values.contains(&h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            op => panic!("matchExpressions operator {op:?} is not known"),
        }
    });
    by_labels && by_expressions
}

/// What one rule's peer admits, resolved.
#[derive(Debug, Clone)]
pub(crate) enum Peer {
    /// Pods chosen by selectors (the pods of the modelled cluster it matches).
    Pods(Vec<usize>),
    /// An address block less its exceptions.
    Block { cidr: Cidr, except: Vec<Cidr> },
}

/// One port entry of a rule, resolved for a given pod where it is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PortRange {
    pub(crate) proto: Proto,
    /// `None`: every port of the protocol.
    pub(crate) ports: Option<(u16, u16)>,
}

/// A rule of a policy: peers (empty: every peer) and ports (empty: every port).
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    /// `None` when the rule names no peers (all peers).
    pub(crate) peers: Option<Vec<Peer>>,
    /// `None` when the rule names no ports (all ports and protocols).
    pub(crate) ports: Option<Vec<Value>>,
}

impl Cluster {
    pub(crate) fn pod(&self, name: &str) -> &Pod {
        self.pods
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no modelled pod {name}"))
    }

    fn types(policy: &Value) -> Vec<String> {
        match policy["spec"]["policyTypes"].as_array() {
            Some(t) => t
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            None => {
                let mut t = vec!["Ingress".to_owned()];
                if policy["spec"].get("egress").is_some() {
                    t.push("Egress".to_owned());
                }
                t
            }
        }
    }

    /// The policies that select `pod` for `dir`.
    fn selecting(&self, pod: &Pod, dir: Direction) -> Vec<&Value> {
        self.policies
            .iter()
            .filter(|(ns, p)| {
                *ns == pod.namespace
                    && selector_matches(&p["spec"]["podSelector"], &pod.labels)
                    && Self::types(p).iter().any(|t| t == dir.type_name())
            })
            .map(|(_, p)| p)
            .collect()
    }

    /// The rules that apply to `pod` in `dir`; `None` when the pod is not isolated there.
    pub(crate) fn rules(&self, pod: &Pod, dir: Direction) -> Option<Vec<Rule>> {
        let policies = self.selecting(pod, dir);
        if policies.is_empty() {
            return None;
        }
        // A policy selects pods of its own namespace only: that is where a bare
        // podSelector peer looks.
        let home = &pod.namespace;
        let mut rules = Vec::new();
        for policy in policies {
            for rule in items(&policy["spec"][dir.key()]) {
                let peers = items(&rule[dir.peers_key()]);
                let peers = (!peers.is_empty())
                    .then(|| peers.iter().map(|peer| self.peer(home, peer)).collect());
                let ports = items(&rule["ports"]);
                let ports = (!ports.is_empty()).then(|| ports.to_vec());
                rules.push(Rule { peers, ports });
            }
        }
        Some(rules)
    }

    fn peer(&self, home: &str, peer: &Value) -> Peer {
        if let Some(block) = peer.get("ipBlock") {
            return Peer::Block {
                cidr: Cidr::parse(block["cidr"].as_str().unwrap_or("")),
                except: items(&block["except"])
                    .iter()
                    .map(|e| Cidr::parse(e.as_str().unwrap_or("")))
                    .collect(),
            };
        }
        let ns_sel = peer.get("namespaceSelector");
        let pod_sel = peer.get("podSelector");
        let pods = self
            .pods
            .iter()
            .enumerate()
            .filter(|(_, p)| match ns_sel {
                None => p.namespace == home,
                Some(sel) => selector_matches(
                    sel,
                    self.namespaces
                        .get(&p.namespace)
                        .unwrap_or(&BTreeMap::new()),
                ),
            })
            .filter(|(_, p)| pod_sel.is_none_or(|sel| selector_matches(sel, &p.labels)))
            .map(|(i, _)| i)
            .collect();
        Peer::Pods(pods)
    }

    fn peer_matches(&self, peer: &Peer, end: End<'_>) -> bool {
        match peer {
            Peer::Block { cidr, except } => {
                cidr.contains(end.ip()) && !except.iter().any(|e| e.contains(end.ip()))
            }
            Peer::Pods(pods) => end
                .pod()
                .is_some_and(|p| pods.iter().any(|&i| self.pods[i].name == p.name)),
        }
    }

    /// The port ranges a port entry admits, with a named port resolved on `named_on`.
    pub(crate) fn port_range(entry: &Value, named_on: Option<&Pod>) -> Option<PortRange> {
        let proto = Proto::parse(&entry["protocol"])?;
        let port = &entry["port"];
        let first = if port.is_null() {
            return Some(PortRange { proto, ports: None });
        } else if let Some(n) = port.as_str().and_then(|s| s.parse::<u16>().ok()) {
            n
        } else {
            let name = port.as_str().unwrap_or("");
            *named_on?.ports.get(name)?
        };
        let last = entry["endPort"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(first);
        Some(PortRange {
            proto,
            ports: Some((first, last)),
        })
    }

    fn rule_allows(
        &self,
        rule: &Rule,
        peer: End<'_>,
        port_owner: Option<&Pod>,
        port: u16,
        proto: Proto,
    ) -> bool {
        let peer_ok = rule
            .peers
            .as_ref()
            .is_none_or(|peers| peers.iter().any(|p| self.peer_matches(p, peer)));
        let port_ok = rule.ports.as_ref().is_none_or(|ports| {
            ports.iter().any(|e| {
                Self::port_range(e, port_owner).is_some_and(|r| {
                    r.proto == proto && r.ports.is_none_or(|(a, b)| (a..=b).contains(&port))
                })
            })
        });
        peer_ok && port_ok
    }

    /// Whether `src` may open a connection to `dst` on `port`/`proto`: the source's
    /// egress and the destination's ingress must both allow it.
    pub(crate) fn allowed(&self, src: End<'_>, dst: End<'_>, port: u16, proto: Proto) -> bool {
        let egress_ok = match src {
            End::Addr(_) => true,
            End::Pod(p) => self.rules(p, Direction::Egress).is_none_or(|rules| {
                rules
                    .iter()
                    .any(|r| self.rule_allows(r, dst, dst.pod(), port, proto))
            }),
        };
        let ingress_ok = match dst {
            End::Addr(_) => true,
            End::Pod(p) => self.rules(p, Direction::Ingress).is_none_or(|rules| {
                rules
                    .iter()
                    .any(|r| self.rule_allows(r, src, Some(p), port, proto))
            }),
        };
        egress_ok && ingress_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains_and_covers() {
        let c = Cidr::parse("10.0.0.0/8");
        assert!(c.contains("10.244.1.2".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").contains("203.0.113.7".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").covers(&c));
        assert!(Cidr::parse("fc00::/7").contains("fd00::1".parse().unwrap()));
        assert!(Cidr::parse("192.168.1.1").contains("192.168.1.1".parse().unwrap()));
    }
}
