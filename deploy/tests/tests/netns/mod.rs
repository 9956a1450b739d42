//! A lab of Linux network namespaces that enforces the rendered NetworkPolicies with
//! nftables, so a real connection shows what the policies allow.
//!
//! Every end of the modelled cluster (each pod, Slack's stand-in address, the internal
//! addresses, the internet client) gets a network namespace with its address on a veth
//! whose other side is in one "node" namespace that routes between them (as a CNI's
//! host does: a /32 route per pod, the pods' default route via a link-local address).
//! The policies are compiled, per pod and per direction, into nftables chains on the
//! node's forward hook (again where a CNI enforces them): `ct state established` first,
//! then each isolated pod's egress chain and the destination's ingress chain, each
//! returning on a rule that allows the packet and rejecting with "administratively
//! prohibited" otherwise. The peers are resolved to the lab's addresses with the same
//! evaluator the semantic tests use; ports, protocols, address blocks and their
//! exceptions are matched by the kernel. A connection the policies refuse fails at once
//! with EHOSTUNREACH; one they allow connects to a real listener.
//!
//! Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for `ip netns add`), `ip` (iproute2),
//! `nft` (nftables) and `python3` (the listeners and probes). Where `ip netns add` is
//! refused, the test fails with the exact error, unless `SLACKGATE_NETNS_OPTIONAL=1`
//! (then it says so and passes).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};

use crate::netpol::{Cidr, Cluster, Direction, End, Peer, Proto, Rule};

/// Binds every `PORT/PROTO` argument on 0.0.0.0, prints `ready`, then accepts (and
/// closes) TCP connections and echoes UDP datagrams until its stdin closes.
const LISTENER: &str = r#"
import select, socket, sys
socks = {}
for spec in sys.argv[1:]:
    port, proto = spec.split("/")
    if proto == "tcp":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", int(port)))
        s.listen(64)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", int(port)))
    socks[s] = proto
print("ready", flush=True)
while True:
    ready, _, _ = select.select(list(socks) + [sys.stdin], [], [])
    for s in ready:
        if s is sys.stdin:
            if not sys.stdin.readline():
                sys.exit(0)
        elif socks[s] == "tcp":
            c, _ = s.accept()
            c.close()
        else:
            data, peer = s.recvfrom(512)
            s.sendto(data, peer)
"#;

/// Tries every `IP:PORT/PROTO` argument in turn and prints one line each: `open`, or the
/// errno's name. The 5 s bound only ends a probe whose packets vanish (none should: a
/// refused one is rejected at once); it is no readiness wait.
const PROBE: &str = r#"
import errno, socket, sys
for spec in sys.argv[1:]:
    addr, proto = spec.split("/")
    host, port = addr.rsplit(":", 1)
    try:
        if proto == "tcp":
            socket.create_connection((host, int(port)), timeout=5).close()
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(5)
            s.connect((host, int(port)))
            s.send(b"probe")
            s.recv(64)
        print("open", flush=True)
    except socket.timeout:
        print("timeout", flush=True)
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)), flush=True)
"#;

/// The address the ends route through (on the node's loopback, answered by ARP on
/// every veth of the node).
const NODE_ADDR: &str = "169.254.1.1";

fn ip_cmd(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("`ip` cannot run ({e}): install iproute2"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(args: &[&str]) {
    ip_cmd(args).unwrap_or_else(|e| panic!("{e}"));
}

/// The running lab; dropping it stops the listeners and deletes the namespaces.
#[derive(Debug)]
pub(crate) struct Lab {
    /// (end name, namespace, address), in the order the ends were given.
    ends: Vec<(String, String, IpAddr)>,
    rules: String,
    namespaces: Vec<String>,
}

impl Lab {
    /// Builds the lab for `ends` and loads the rules compiled from `cluster`'s policies.
    /// `None` when namespaces cannot be made here and `SLACKGATE_NETNS_OPTIONAL` is set.
    pub(crate) fn start(cluster: &Cluster, ends: &[(String, End<'_>)]) -> Option<Lab> {
        if Command::new("nft").arg("--version").output().is_err() {
            panic!(
                "`nft` is not installed, and the netns lock-down test needs it: \
                 scripts/deps.sh installs it (apt-get install nftables)"
            );
        }
        let prefix = format!("sgdeploy-{}", std::process::id());
        let node = format!("{prefix}-node");
        if let Err(e) = ip_cmd(&["netns", "add", &node]) {
            let why = format!(
                "network namespaces cannot be created here, so the lock-down was not checked \
                 with real packets: {e}"
            );
            if std::env::var_os("SLACKGATE_NETNS_OPTIONAL").is_some() {
                eprintln!("{why} (SLACKGATE_NETNS_OPTIONAL is set: passing)");
                return None;
            }
            panic!("{why}\n(needs root with CAP_NET_ADMIN and CAP_SYS_ADMIN; set SLACKGATE_NETNS_OPTIONAL=1 to skip)");
        }
        let mut lab = Lab {
            ends: Vec::new(),
            rules: String::new(),
            namespaces: vec![node.clone()],
        };
        must(&["-n", &node, "link", "set", "lo", "up"]);
        must(&[
            "-n",
            &node,
            "addr",
            "add",
            &format!("{NODE_ADDR}/32"),
            "dev",
            "lo",
        ]);
        lab.sysctl(&node, "net/ipv4/ip_forward", "1");
        for (i, (name, end)) in ends.iter().enumerate() {
            let ns = format!("{prefix}-{i}");
            must(&["netns", "add", &ns]);
            lab.namespaces.push(ns.clone());
            let addr = end.ip();
            let veth = format!("r{i}");
            must(&[
                "link", "add", "name", &veth, "netns", &node, "type", "veth", "peer", "name",
                "eth0", "netns", &ns,
            ]);
            must(&["-n", &ns, "link", "set", "lo", "up"]);
            must(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/32"),
                "dev",
                "eth0",
            ]);
            must(&["-n", &ns, "link", "set", "eth0", "up"]);
            must(&[
                "-n", &ns, "route", "add", NODE_ADDR, "dev", "eth0", "scope", "link",
            ]);
            must(&[
                "-n", &ns, "route", "add", "default", "via", NODE_ADDR, "dev", "eth0",
            ]);
            must(&["-n", &node, "link", "set", &veth, "up"]);
            must(&[
                "-n",
                &node,
                "route",
                "add",
                &format!("{addr}/32"),
                "dev",
                &veth,
            ]);
            lab.ends.push((name.clone(), ns, addr));
        }
        lab.rules = nft_rules(cluster);
        let mut nft = Command::new("ip")
            .args(["netns", "exec", &node, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nft runs");
        nft.stdin
            .take()
            .unwrap()
            .write_all(lab.rules.as_bytes())
            .unwrap();
        let out = nft.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "nft refused the generated rules: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            lab.rules
        );
        Some(lab)
    }

    fn sysctl(&self, ns: &str, key: &str, value: &str) {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "sh",
                "-c",
                &format!("echo {value} > /proc/sys/{key}"),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sysctl {key} in {ns}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The nftables rules loaded into the node.
    pub(crate) fn rules(&self) -> &str {
        &self.rules
    }

    fn end(&self, name: &str) -> &(String, String, IpAddr) {
        self.ends
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("no lab end {name}"))
    }

    /// Opens each (from, to, port, protocol) with real sockets and returns, in order,
    /// `open` or the errno's name. Listeners run on every probed port first.
    pub(crate) fn probe(&self, probes: &[(&str, &str, u16, Proto)]) -> Vec<String> {
        let mut wanted: BTreeMap<&str, BTreeSet<(u16, Proto)>> = BTreeMap::new();
        for (_, to, port, proto) in probes {
            wanted.entry(to).or_default().insert((*port, *proto));
        }
        let mut listeners: Vec<Child> = Vec::new();
        for (to, ports) in &wanted {
            let (_, ns, _) = self.end(to);
            let specs: Vec<String> = ports
                .iter()
                .map(|(p, pr)| format!("{p}/{}", pr.name()))
                .collect();
            let mut child = Command::new("ip")
                .args(["netns", "exec", ns, "python3", "-c", LISTENER])
                .args(&specs)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("python3 runs (the lab's listeners)");
            // Readiness: the listener says so once every socket is bound.
            let mut line = String::new();
            BufReader::new(child.stdout.as_mut().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line.trim(), "ready", "the listener in {to} did not start");
            listeners.push(child);
        }
        let mut results = vec![String::new(); probes.len()];
        let mut by_source: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, (from, ..)) in probes.iter().enumerate() {
            by_source.entry(from).or_default().push(i);
        }
        for (from, idx) in by_source {
            let (_, ns, _) = self.end(from);
            let specs: Vec<String> = idx
                .iter()
                .map(|&i| {
                    let (_, to, port, proto) = probes[i];
                    format!("{}:{port}/{}", self.end(to).2, proto.name())
                })
                .collect();
            let out = Command::new("ip")
                .args(["netns", "exec", ns, "python3", "-c", PROBE])
                .args(&specs)
                .output()
                .expect("python3 runs (the lab's probes)");
            let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect();
            assert_eq!(
                lines.len(),
                idx.len(),
                "probes from {from}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            for (&i, l) in idx.iter().zip(lines) {
                results[i] = l;
            }
        }
        for mut l in listeners {
            drop(l.stdin.take());
            let _ = l.wait();
        }
        results
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            let _ = ip_cmd(&["netns", "del", ns]);
        }
    }
}

/// The match of one peer, `dir` deciding which address of the packet is the peer's.
fn peer_match(cluster: &Cluster, peer: &Peer, dir: Direction) -> Option<String> {
    let (v4, v6) = match dir {
        Direction::Egress => ("ip daddr", "ip6 daddr"),
        Direction::Ingress => ("ip saddr", "ip6 saddr"),
    };
    match peer {
        Peer::Pods(pods) => {
            let ips: Vec<String> = pods
                .iter()
                .map(|&i| cluster.pods[i].ip.to_string())
                .collect();
            (!ips.is_empty()).then(|| format!("{v4} {{ {} }}", ips.join(", ")))
        }
        Peer::Block { cidr, except } => {
            let field = if cidr.addr.is_ipv4() { v4 } else { v6 };
            let mut m = format!("{field} {cidr}");
            let except: Vec<String> = except.iter().map(Cidr::to_string).collect();
            if !except.is_empty() {
                m.push_str(&format!(" {field} != {{ {} }}", except.join(", ")));
            }
            Some(m)
        }
    }
}

/// The lines of one rule: every peer with every port entry, each `return`ing.
fn rule_lines(cluster: &Cluster, rule: &Rule, dir: Direction, pod: usize) -> Vec<String> {
    let peers: Vec<String> = match &rule.peers {
        None => vec![String::new()],
        Some(peers) => peers
            .iter()
            .filter_map(|p| peer_match(cluster, p, dir))
            .collect(),
    };
    let ports: Vec<String> = match &rule.ports {
        None => vec![String::new()],
        Some(entries) => entries
            .iter()
            .map(|e| {
                // A named port is resolved on the selected pod for ingress; for egress it
                // would depend on the destination, which the lab's policies never need.
                let owner = (dir == Direction::Ingress).then(|| &cluster.pods[pod]);
                let range = Cluster::port_range(e, owner)
                    .unwrap_or_else(|| panic!("the lab cannot place port entry {e}"));
                match range.ports {
                    None => format!("meta l4proto {}", range.proto.name()),
                    Some((a, b)) if a == b => {
                        format!("meta l4proto {} th dport {a}", range.proto.name())
                    }
                    Some((a, b)) => format!("meta l4proto {} th dport {a}-{b}", range.proto.name()),
                }
            })
            .collect(),
    };
    let mut lines = Vec::new();
    for peer in &peers {
        for port in &ports {
            let parts: Vec<&str> = [peer.as_str(), port.as_str()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect();
            lines.push(
                format!("    {} return", parts.join(" ")).replace("     return", "    return"),
            );
        }
    }
    lines
}

/// nftables rules for the node: the policies of `cluster`, per pod and direction.
pub(crate) fn nft_rules(cluster: &Cluster) -> String {
    let mut base = vec![
        "    type filter hook forward priority 0; policy accept;".to_owned(),
        "    ct state established,related accept".to_owned(),
    ];
    let mut chains = String::new();
    for dir in [Direction::Egress, Direction::Ingress] {
        for (i, pod) in cluster.pods.iter().enumerate() {
            let Some(rules) = cluster.rules(pod, dir) else {
                continue;
            };
            let (chain, field) = match dir {
                Direction::Egress => (format!("egress_{i}"), "ip saddr"),
                Direction::Ingress => (format!("ingress_{i}"), "ip daddr"),
            };
            base.push(format!("    {field} {} jump {chain}", pod.ip));
            chains.push_str(&format!(
                "  # {:?} of pod {} ({})\n  chain {chain} {{\n",
                dir, pod.name, pod.ip
            ));
            for rule in &rules {
                for line in rule_lines(cluster, rule, dir, i) {
                    chains.push_str(&line);
                    chains.push('\n');
                }
            }
            chains.push_str("    reject with icmpx type admin-prohibited\n  }\n");
        }
    }
    format!(
        "table inet slackgate_lab {{\n  chain pods {{\n{}\n  }}\n{chains}}}\n",
        base.join("\n")
    )
}
