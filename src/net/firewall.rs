//! The firewall: one nftables table per state root.
//!
//! The table (`berth` for the default root, `berth-<8 hex>` for any other) has a fixed skeleton
//! (sets, maps, chains and rules) that `nft` writes with JSON, in one transaction, when the table
//! is missing, from another boot or another skeleton version; it stays while the root exists
//! (teardown removes it). Everything per network or per published port is an element of its sets
//! and maps, added and deleted over `NETLINK_NETFILTER` (`nftnl.rs`) when a network or a container
//! comes or goes, so neither runs a process. The whole table, elements included, can be rewritten
//! from state at any time (after `nft flush ruleset` or a reboot, or when the kernel refuses an
//! element change).
//!
//! Layout:
//! - `prerouting`/`output` (nat, priority dstnat-1) jump to `ports` for local destinations, which
//!   DNATs through the maps `p4any`/`p4ip` (and `p6any`/`p6ip`): `proto . port` or
//!   `host ip . proto . port` to the container address and port (one map for each).
//! - `postrouting` (nat, srcnat-1): masquerade for the bridges in `masq`, hairpin (`hair4`/`hair6`,
//!   `subnet . bridge`) and localhost.
//! - `forward` (filter, priority filter-1, before Docker's chains): the bridges in `internal` stay
//!   inside themselves, and new connections into a bridge from elsewhere must be DNATed
//!   (published); "the same bridge" is the set `self` of `bridge . bridge`.
//!
//! Docker coexistence: Docker's `ip filter FORWARD` has policy drop, and an accept in our table
//! cannot override it. When Docker's `DOCKER-USER` chain exists (Docker's documented place for
//! user rules), berth inserts `iifname "berth*" accept` and `oifname "berth*" accept` there with
//! the root's first network, tagged with the comment `berth:<table>`, after its own chain has
//! filtered; it never touches Docker's other rules, and removes its own with its last network.
//!
//! What is sent goes through a [`FirewallDriver`] ([`Nftables`] on a real host, [`NoFirewall`] to
//! send nothing), so that the logic of [`Firewall`] (which elements each change adds or deletes,
//! when the table is rewritten from state, the `DOCKER-USER` rules) is unit-tested without root
//! against a recording driver.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::NetError;
use super::network::{self, Network};
use super::ports::{self, PortRule};
use super::types::Protocol;
use crate::state::StateRoot;
use crate::util::fs::{read_json, write_json};
use crate::util::lock::FileLock;

/// The table for a state root.
pub fn table_name(root: &StateRoot) -> String {
    if root.path() == std::path::Path::new(crate::state::DEFAULT_ROOT) {
        return "berth".into();
    }
    let mut h = Sha256::new();
    h.update(root.path().as_os_str().as_encoded_bytes());
    format!("berth-{}", &hex::encode(h.finalize())[..8])
}

/// The comment that marks berth's rules in Docker's `DOCKER-USER` chain.
fn docker_user_tag(table: &str) -> String {
    format!("berth:{table}")
}

pub(crate) fn lock(root: &StateRoot) -> Result<FileLock, NetError> {
    Ok(root.lock("firewall")?)
}

/// Runs `nft -j -f -` with `batch` on stdin.
fn apply(batch: &[Value], what: &str) -> Result<(), NetError> {
    let body = serde_json::to_vec(&json!({ "nftables": batch })).expect("JSON values serialize");
    let out = run_nft(&["-j", "-f", "-"], Some(&body))?;
    if out.status.success() {
        return Ok(());
    }
    Err(NetError::Nft { what: what.into(), stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() })
}

fn run_nft(args: &[&str], stdin: Option<&[u8]>) -> Result<std::process::Output, NetError> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| if e.kind() == std::io::ErrorKind::NotFound { NetError::NftMissing } else { NetError::io("run nft", e) })?;
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(data).map_err(|e| NetError::io("write to nft", e))?;
    }
    child.wait_with_output().map_err(|e| NetError::io("wait for nft", e))
}

// JSON expression helpers, in the shapes nft 1.0 reads and prints.
fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}
fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}
fn m(left: Value, op: &str, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}
fn prefix(s: &super::ipam::Subnet) -> Value {
    json!({"prefix": {"addr": s.addr().to_string(), "len": s.prefix()}})
}
fn ct(key: &str) -> Value {
    json!({"ct": {"key": key}})
}
fn verdict(v: &str) -> Value {
    json!({ v: null })
}

struct Ctx<'a> {
    table: &'a str,
}

impl Ctx<'_> {
    fn add(&self, kind: &str, mut body: Value) -> Value {
        body["family"] = json!("inet");
        body["table"] = json!(self.table);
        json!({"add": { kind: body }})
    }
    fn chain(&self, name: &str) -> Value {
        self.add("chain", json!({"name": name}))
    }
    fn base_chain(&self, name: &str, ty: &str, hook: &str, prio: i32) -> Value {
        self.add("chain", json!({"name": name, "type": ty, "hook": hook, "prio": prio, "policy": "accept"}))
    }
    fn rule(&self, chain: &str, expr: Vec<Value>) -> Value {
        self.add("rule", json!({"chain": chain, "expr": expr}))
    }
    fn map(&self, name: &str, key: Value, data: &str) -> Value {
        self.add("map", json!({"name": name, "type": key, "map": data}))
    }
    fn set(&self, name: &str, ty: Value, ranges: bool) -> Value {
        if ranges {
            return self.add("set", json!({"name": name, "type": ty, "flags": ["interval"]}));
        }
        self.add("set", json!({"name": name, "type": ty}))
    }
    fn element(&self, op: &str, set: &str, elem: Vec<Value>) -> Value {
        json!({ op: {"element": {"family": "inet", "table": self.table, "name": set, "elem": elem}}})
    }
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

/// The map pair (address map, port map) a port rule goes into, and its key.
fn port_keys(rule: &PortRule) -> Option<(&'static str, &'static str, Value)> {
    let proto = proto_name(rule.protocol);
    match (rule.host_ip, rule.target) {
        (None, IpAddr::V4(_)) => Some(("p4any_a", "p4any_p", json!({"concat": [proto, rule.host_port]}))),
        (None, IpAddr::V6(_)) => Some(("p6any_a", "p6any_p", json!({"concat": [proto, rule.host_port]}))),
        (Some(h @ IpAddr::V4(_)), IpAddr::V4(_)) => Some(("p4ip_a", "p4ip_p", json!({"concat": [h.to_string(), proto, rule.host_port]}))),
        (Some(h @ IpAddr::V6(_)), IpAddr::V6(_)) => Some(("p6ip_a", "p6ip_p", json!({"concat": [h.to_string(), proto, rule.host_port]}))),
        _ => None,
    }
}

fn port_elements(ctx: &Ctx, op: &str, rules: &[PortRule]) -> Vec<Value> {
    let mut out = Vec::new();
    for r in rules {
        let Some((amap, pmap, key)) = port_keys(r) else { continue };
        if op == "add" {
            out.push(ctx.element(op, amap, vec![json!([key.clone(), r.target.to_string()])]));
            out.push(ctx.element(op, pmap, vec![json!([key, r.target_port])]));
        } else {
            out.push(ctx.element(op, amap, vec![key.clone()]));
            out.push(ctx.element(op, pmap, vec![key]));
        }
    }
    out
}

/// The version of the table's skeleton (sets, maps, chains and rules): a table written by another
/// version is rewritten whole before any element is added to it.
const SKELETON_VERSION: u32 = 3;

/// Berth's bridges are named `berth` + 10 hex digits: the `DOCKER-USER` rules match the prefix.
const BRIDGE_PREFIX: &str = "berth";

/// The table's fixed part, which no network or port changes, as one batch that replaces any
/// previous table. Everything per network is an element of its sets:
/// - `brs` (bridge names), `self` (`bridge . bridge`: "the same bridge in and out"),
///   `masq` (bridges whose traffic out is masqueraded), `internal` (bridges with no route out);
/// - `hair4`/`hair6` (`subnet . bridge`: a container's own network, for hairpin NAT);
/// - `gw4`/`gw6` (the gateways, where the resolver answers).
fn skeleton_batch(table: &str) -> Vec<Value> {
    let c = Ctx { table };
    let mut b = vec![
        json!({"add": {"table": {"family": "inet", "name": table}}}),
        json!({"delete": {"table": {"family": "inet", "name": table}}}),
        json!({"add": {"table": {"family": "inet", "name": table}}}),
        c.set("gw4", json!("ipv4_addr"), false),
        c.set("gw6", json!("ipv6_addr"), false),
        c.set("brs", json!("ifname"), false),
        c.set("self", json!(["ifname", "ifname"]), false),
        c.set("masq", json!("ifname"), false),
        c.set("internal", json!("ifname"), false),
        c.set("hair4", json!(["ipv4_addr", "ifname"]), true),
        c.set("hair6", json!(["ipv6_addr", "ifname"]), true),
        c.map("p4any_a", json!(["inet_proto", "inet_service"]), "ipv4_addr"),
        c.map("p4any_p", json!(["inet_proto", "inet_service"]), "inet_service"),
        c.map("p4ip_a", json!(["ipv4_addr", "inet_proto", "inet_service"]), "ipv4_addr"),
        c.map("p4ip_p", json!(["ipv4_addr", "inet_proto", "inet_service"]), "inet_service"),
        c.map("p6any_a", json!(["inet_proto", "inet_service"]), "ipv6_addr"),
        c.map("p6any_p", json!(["inet_proto", "inet_service"]), "inet_service"),
        c.map("p6ip_a", json!(["ipv6_addr", "inet_proto", "inet_service"]), "ipv6_addr"),
        c.map("p6ip_p", json!(["ipv6_addr", "inet_proto", "inet_service"]), "inet_service"),
        c.base_chain("guard", "filter", "prerouting", -300),
        c.base_chain("prerouting", "nat", "prerouting", -101),
        c.base_chain("output", "nat", "output", -101),
        c.chain("ports"),
        c.base_chain("postrouting", "nat", "postrouting", 99),
        c.base_chain("forward", "filter", "forward", -1),
    ];
    // The host's loopback is the host's alone. Bridges have route_localnet on (the DNAT of the
    // host's own 127.0.0.1 traffic into a container needs it), which would otherwise let a
    // container (CAP_NET_RAW: a frame to its gateway's MAC) reach services bound to 127.0.0.1,
    // and a LAN neighbour reach ports published on 127.0.0.1. So a packet for 127.0.0.0/8 that
    // did not come in on `lo` is dropped before routing and NAT see it (as Docker 28 does). The
    // host's own traffic never passes here: it goes through `output`.
    let loopback = m(payload("ip", "daddr"), "==", json!({"prefix": {"addr": "127.0.0.0", "len": 8}}));
    let not_lo = m(meta("iifname"), "!=", json!("lo"));
    b.push(c.rule("guard", vec![not_lo.clone(), loopback.clone(), verdict("drop")]));
    // And the DNAT itself checks the interface: ports published on 127.0.0.1 are for the host.
    b.push(c.rule("prerouting", vec![not_lo, loopback, verdict("return")]));
    let local = m(json!({"fib": {"result": "type", "flags": ["daddr"]}}), "==", json!("local"));
    b.push(c.rule("prerouting", vec![local.clone(), json!({"jump": {"target": "ports"}})]));
    b.push(c.rule("output", vec![local, json!({"jump": {"target": "ports"}})]));
    // The host's own traffic to [::1] cannot be DNATed out of the host: the container's
    // supervisor forwards it (`proxy.rs`).
    b.push(c.rule("ports", vec![m(payload("ip6", "daddr"), "==", json!("::1")), verdict("return")]));
    // The resolver on each gateway answers port 53 even if a container publishes 53.
    b.push(c.rule(
        "ports",
        vec![m(payload("ip", "daddr"), "==", json!("@gw4")), m(payload("th", "dport"), "==", json!(53)), verdict("return")],
    ));
    b.push(c.rule(
        "ports",
        vec![m(payload("ip6", "daddr"), "==", json!("@gw6")), m(payload("th", "dport"), "==", json!(53)), verdict("return")],
    ));
    let key_any = json!({"concat": [meta("l4proto"), payload("th", "dport")]});
    for (fam, daddr, any, ip) in [("ip", payload("ip", "daddr"), "p4any", "p4ip"), ("ip6", payload("ip6", "daddr"), "p6any", "p6ip")] {
        let key_ip = json!({"concat": [daddr, meta("l4proto"), payload("th", "dport")]});
        let nfproto = m(meta("nfproto"), "==", json!(if fam == "ip" { "ipv4" } else { "ipv6" }));
        for (key, map) in [(key_ip, ip), (key_any.clone(), any)] {
            b.push(c.rule(
                "ports",
                vec![
                    nfproto.clone(),
                    json!({"dnat": {
                        "family": fam,
                        "addr": {"map": {"key": key.clone(), "data": format!("@{map}_a")}},
                        "port": {"map": {"key": key, "data": format!("@{map}_p")}},
                    }}),
                ],
            ));
        }
    }
    let in_out = json!({"concat": [meta("iifname"), meta("oifname")]});
    let crossing = m(in_out, "!=", json!("@self"));
    let dnat = m(ct("status"), "in", json!("dnat"));
    // Routed out of a masquerading network's bridge through any other interface. (Traffic
    // bridged within a bridge has no input interface here and is never masqueraded.)
    b.push(c.rule("postrouting", vec![m(meta("iifname"), "==", json!("@masq")), crossing.clone(), verdict("masquerade")]));
    // Hairpin: a container reaching a port published by its own network.
    for (fam, set) in [("ip", "@hair4"), ("ip6", "@hair6")] {
        let key = json!({"concat": [payload(fam, "saddr"), meta("oifname")]});
        b.push(c.rule("postrouting", vec![dnat.clone(), m(key, "==", json!(set)), verdict("masquerade")]));
    }
    // The host reaching a published port on 127.0.0.1 (route_localnet is on for the bridge; the
    // `guard` chain keeps everyone else off the host's loopback).
    b.push(c.rule(
        "postrouting",
        vec![
            m(meta("oifname"), "==", json!("@brs")),
            dnat.clone(),
            m(payload("ip", "saddr"), "==", json!({"prefix": {"addr": "127.0.0.0", "len": 8}})),
            verdict("masquerade"),
        ],
    ));
    // Internal networks stay inside their bridge (first: this wins over a published port).
    for dir in ["iifname", "oifname"] {
        b.push(c.rule("forward", vec![m(meta(dir), "==", json!("@internal")), crossing.clone(), verdict("drop")]));
    }
    // Into a bridge from elsewhere only what was published (DNATed).
    b.push(c.rule("forward", vec![m(meta("oifname"), "==", json!("@brs")), dnat, verdict("accept")]));
    b.push(c.rule("forward", vec![m(meta("oifname"), "==", json!("@brs")), crossing, m(ct("state"), "in", json!("new")), verdict("drop")]));
    b
}

/// A network's elements in `nft` JSON, for [`table_batch`].
fn network_elements(c: &Ctx, n: &Network) -> Vec<Value> {
    let br = json!(n.bridge);
    let mut b =
        vec![c.element("add", "brs", vec![br.clone()]), c.element("add", "self", vec![json!({"concat": [br.clone(), br.clone()]})])];
    if n.masquerade {
        b.push(c.element("add", "masq", vec![br.clone()]));
    }
    if n.internal {
        b.push(c.element("add", "internal", vec![br.clone()]));
    }
    for p in n.pools() {
        let (hair, gw) = if p.subnet.is_ipv4() { ("hair4", "gw4") } else { ("hair6", "gw6") };
        b.push(c.element("add", hair, vec![json!({"concat": [prefix(&p.subnet), br.clone()]})]));
        b.push(c.element("add", gw, vec![json!(p.gateway.to_string())]));
    }
    b
}

/// The kernel's form of [`network_elements`]: interface names are 16 bytes (IFNAMSIZ), zero
/// padded; a subnet in a set of ranges is its first and last address.
fn network_kernel_elems(n: &Network) -> Vec<super::nftnl::Elem> {
    use super::nftnl::Elem;
    let mut br = n.bridge.as_bytes().to_vec();
    br.resize(16, 0);
    let elem = |map: &'static str, key: Vec<u8>, key_end: Vec<u8>| Elem { map, key, key_end, data: Vec::new() };
    let mut out = vec![elem("brs", br.clone(), vec![]), elem("self", [br.clone(), br.clone()].concat(), vec![])];
    if n.masquerade {
        out.push(elem("masq", br.clone(), vec![]));
    }
    if n.internal {
        out.push(elem("internal", br.clone(), vec![]));
    }
    for p in n.pools() {
        let (first, last, gw) = match (p.subnet.addr(), p.gateway) {
            (IpAddr::V4(a), IpAddr::V4(g)) => {
                let mask = u32::MAX.checked_shr(u32::from(p.subnet.prefix())).unwrap_or(0);
                let a = u32::from(a) & !mask;
                (a.to_be_bytes().to_vec(), (a | mask).to_be_bytes().to_vec(), g.octets().to_vec())
            }
            (IpAddr::V6(a), IpAddr::V6(g)) => {
                let mask = u128::MAX.checked_shr(u32::from(p.subnet.prefix())).unwrap_or(0);
                let a = u128::from(a) & !mask;
                (a.to_be_bytes().to_vec(), (a | mask).to_be_bytes().to_vec(), g.octets().to_vec())
            }
            _ => continue,
        };
        let (hair, gws) = if p.subnet.is_ipv4() { ("hair4", "gw4") } else { ("hair6", "gw6") };
        out.push(elem(hair, [first, br.clone()].concat(), [last, br.clone()].concat()));
        out.push(elem(gws, gw, vec![]));
    }
    out
}

/// The whole table for these networks and ports, as one batch that replaces any previous one.
fn table_batch(table: &str, networks: &[Network], rules: &[PortRule]) -> Vec<Value> {
    let c = Ctx { table };
    let mut b = skeleton_batch(table);
    for n in networks {
        b.extend(network_elements(&c, n));
    }
    b.extend(port_elements(&c, "add", rules));
    b
}

/// The kernel's form of a port rule: two map elements (address and port), keyed as nft lays
/// out concatenations (each field in a 4-byte register).
fn kernel_elems(rule: &PortRule) -> Vec<super::nftnl::Elem> {
    let Some((amap, pmap, _)) = port_keys(rule) else { return Vec::new() };
    let proto: u8 = match rule.protocol {
        Protocol::Tcp => libc::IPPROTO_TCP as u8,
        Protocol::Udp => libc::IPPROTO_UDP as u8,
    };
    let mut key = Vec::new();
    match rule.host_ip {
        Some(IpAddr::V4(a)) => key.extend_from_slice(&a.octets()),
        Some(IpAddr::V6(a)) => key.extend_from_slice(&a.octets()),
        None => {}
    }
    key.extend_from_slice(&[proto, 0, 0, 0]);
    key.extend_from_slice(&rule.host_port.to_be_bytes());
    key.extend_from_slice(&[0, 0]);
    let addr = match rule.target {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    vec![
        super::nftnl::Elem { map: amap, key: key.clone(), key_end: vec![], data: addr },
        super::nftnl::Elem { map: pmap, key, key_end: vec![], data: rule.target_port.to_be_bytes().to_vec() },
    ]
}

/// The same change through `nft` (kept for tests that compare both paths).
#[cfg(test)]
fn nft_port_batch(table: &str, op: &str, rules: &[PortRule]) -> Vec<Value> {
    port_elements(&Ctx { table }, op, rules)
}

/// What the firewall sends to the kernel, and nothing more. The logic (which elements a network or
/// a published port adds and removes, when the whole table is rewritten from state, berth's rules
/// in Docker's chain) is [`Firewall`]'s, so that it is tested without root against a recording
/// driver. As netavark's firewall drivers, but at berth's split: `nft` with JSON writes whole
/// tables, netlink changes elements and Docker's `DOCKER-USER` chain.
pub trait FirewallDriver: Sync {
    /// What the driver is called (`nftables`, `none`).
    fn name(&self) -> &'static str;
    /// Applies an `nft` JSON batch (a whole table, or its removal) in one transaction; `what` says
    /// what it does, for the error.
    fn apply_batch(&self, batch: &[Value], what: &str) -> Result<(), NetError>;
    /// Adds (`add`) or deletes elements of `table`'s sets and maps in one transaction. An error
    /// means that the kernel refused the change (the table was flushed, say): the caller then
    /// rewrites the table from state.
    fn update_elements(&self, table: &str, add: bool, elems: &[super::nftnl::Elem]) -> std::io::Result<()>;
    /// The handles of the rules commented `tag` in Docker's `DOCKER-USER` chain; None when there
    /// is no such chain (no Docker).
    fn docker_user_rules(&self, tag: &str) -> std::io::Result<Option<Vec<u64>>>;
    /// Deletes the `DOCKER-USER` rules `delete` (handles) and, with `accept_prefix`, inserts the
    /// two rules that accept traffic in and out of interfaces with that prefix, commented `tag`.
    fn docker_user_update(&self, delete: &[u64], accept_prefix: Option<&str>, tag: &str) -> std::io::Result<()>;
    /// How many rules `table` holds in the kernel; None when the table is not there.
    fn table_rules(&self, table: &str) -> std::io::Result<Option<usize>>;
}

/// The driver berth runs with: the `nft` binary with JSON for whole tables, `NETLINK_NETFILTER`
/// (`nftnl.rs`) for elements and Docker's chain.
pub struct Nftables;

impl FirewallDriver for Nftables {
    fn name(&self) -> &'static str {
        "nftables"
    }
    fn apply_batch(&self, batch: &[Value], what: &str) -> Result<(), NetError> {
        apply(batch, what)
    }
    fn update_elements(&self, table: &str, add: bool, elems: &[super::nftnl::Elem]) -> std::io::Result<()> {
        super::nftnl::apply(table, add, elems)
    }
    fn docker_user_rules(&self, tag: &str) -> std::io::Result<Option<Vec<u64>>> {
        super::nftnl::docker_user_handles(tag)
    }
    fn docker_user_update(&self, delete: &[u64], accept_prefix: Option<&str>, tag: &str) -> std::io::Result<()> {
        super::nftnl::docker_user_update(delete, accept_prefix, tag)
    }
    fn table_rules(&self, table: &str) -> std::io::Result<Option<usize>> {
        super::nftnl::table_rule_count(table)
    }
}

/// A driver that sends nothing and sees no Docker chain: the firewall logic runs (state, the
/// table marker) and leaves the host's ruleset alone.
pub struct NoFirewall;

impl FirewallDriver for NoFirewall {
    fn name(&self) -> &'static str {
        "none"
    }
    fn apply_batch(&self, _batch: &[Value], _what: &str) -> Result<(), NetError> {
        Ok(())
    }
    fn update_elements(&self, _table: &str, _add: bool, _elems: &[super::nftnl::Elem]) -> std::io::Result<()> {
        Ok(())
    }
    fn docker_user_rules(&self, _tag: &str) -> std::io::Result<Option<Vec<u64>>> {
        Ok(None)
    }
    fn docker_user_update(&self, _delete: &[u64], _accept_prefix: Option<&str>, _tag: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn table_rules(&self, _table: &str) -> std::io::Result<Option<usize>> {
        Ok(Some(skeleton_rule_count()))
    }
}

/// How many rules the skeleton has: a table with fewer was flushed.
fn skeleton_rule_count() -> usize {
    skeleton_batch("berth").iter().filter(|v| v["add"].get("rule").is_some()).count()
}

/// What the kernel holds of a root's table, compared with what berth wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableHealth {
    /// The root has no network, so no table is needed.
    NotNeeded,
    /// Every rule of the skeleton is there.
    Intact,
    /// The table is gone (`nft delete table`, `nft flush ruleset`, a firewalld reload).
    Missing,
    /// The table is there with fewer rules than berth wrote (`nft flush table`).
    Flushed { rules: usize, expected: usize },
    /// The kernel could not be asked (not root, say).
    Unknown(String),
}

impl TableHealth {
    /// Whether the table must be written again from state.
    pub fn needs_rebuild(&self) -> bool {
        matches!(self, TableHealth::Missing | TableHealth::Flushed { .. })
    }
}

/// Checks that the root's table is in the kernel, whole, when the root has networks; rewrites it
/// from state if not (deleted, flushed, or written by another boot or skeleton version). Every
/// command that starts or brings up containers calls this, so that a lost table (a firewalld
/// reload, `nft flush ruleset`) does not leave containers open until some later change. Returns
/// whether the table was rewritten.
pub fn verify(root: &StateRoot) -> Result<bool, NetError> {
    Firewall::system(root).verify()
}

/// What is wrong with the root's table, for `network ls` to say (None when nothing is).
pub fn health_warning(root: &StateRoot) -> Option<String> {
    let fw = Firewall::system(root);
    let table = &fw.table;
    match fw.health() {
        TableHealth::Missing => Some(format!(
            "the firewall table inet {table} is missing: berth's networks are not isolated and published ports do not answer; \
             any `berth up` or container start restores it"
        )),
        TableHealth::Flushed { rules, expected } => Some(format!(
            "the firewall table inet {table} has {rules} of its {expected} rules (it was flushed): berth's networks are not \
             isolated; any `berth up` or container start restores it"
        )),
        _ => None,
    }
}

/// A failed change to berth's rules in Docker's `DOCKER-USER` chain.
fn docker_user_error(table: &str, e: std::io::Error) -> NetError {
    NetError::Nft {
        what: format!("update berth's rules (comment {}) in Docker's chain ip filter DOCKER-USER", docker_user_tag(table)),
        stderr: e.to_string(),
    }
}

/// The boot this root's table was last built in: a rebuilt host has lost it.
fn marker_path(root: &StateRoot) -> std::path::PathBuf {
    root.networks_dir().join(".firewall.json")
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Whether the table was written in this boot by this skeleton version.
fn skeleton_current(root: &StateRoot) -> bool {
    let marker: Option<Value> = read_json(&marker_path(root)).ok().flatten();
    marker
        .as_ref()
        .is_some_and(|m| m["boot_id"].as_str() == Some(boot_id().as_str()) && m["version"].as_u64() == Some(u64::from(SKELETON_VERSION)))
}

/// Rebuilds the root's table (and its DOCKER-USER rules) from state.
pub fn rebuild(root: &StateRoot) -> Result<(), NetError> {
    Firewall::system(root).rebuild()
}

/// Adds a new network (already in state) to the firewall: see [`Firewall::add_network`].
pub(crate) fn add_network(root: &StateRoot, n: &Network) -> Result<(), NetError> {
    Firewall::system(root).add_network(n)
}

/// Removes a network (still in state) from the firewall: see [`Firewall::remove_network`].
pub(crate) fn remove_network(root: &StateRoot, n: &Network) -> Result<(), NetError> {
    Firewall::system(root).remove_network(n)
}

/// Rebuilds the table if this boot (or version) has not built it yet (cheap: reads one small file).
pub(crate) fn ensure_current_locked(root: &StateRoot) -> Result<(), NetError> {
    Firewall::system(root).ensure_current_locked()
}

/// Adds or deletes the DNAT elements of published ports: see [`Firewall::update_ports_locked`].
pub(crate) fn update_ports_locked(root: &StateRoot, op: &str, rules: &[PortRule]) -> Result<(), NetError> {
    Firewall::system(root).update_ports_locked(op, rules)
}

/// Deletes the root's table and DOCKER-USER rules whatever the state says (teardown).
pub fn remove_all(root: &StateRoot) -> Result<(), NetError> {
    Firewall::system(root).remove_all()
}

/// The firewall of one state root, through a driver: what each change to the root's networks and
/// published ports sends, and when the table is rewritten from state instead.
pub struct Firewall<'a> {
    root: &'a StateRoot,
    driver: &'a dyn FirewallDriver,
    table: String,
}

impl<'a> Firewall<'a> {
    pub fn new(root: &'a StateRoot, driver: &'a dyn FirewallDriver) -> Self {
        Firewall { root, driver, table: table_name(root) }
    }

    /// The root's firewall through [`Nftables`].
    pub fn system(root: &'a StateRoot) -> Self {
        Firewall::new(root, &Nftables)
    }

    /// Makes berth's two `DOCKER-USER` rules for this root present (`want`) or absent, when Docker's
    /// chain exists; one netlink dump, and a transaction only when something changes.
    fn docker_user_sync(&self, want: bool) -> Result<(), NetError> {
        let table = &self.table;
        let tag = docker_user_tag(table);
        let Some(have) = self.driver.docker_user_rules(&tag).map_err(|e| docker_user_error(table, e))? else {
            return Ok(());
        };
        if want && have.len() == 2 {
            return Ok(());
        }
        let delete: &[u64] = if want && have.is_empty() { &[] } else { &have };
        self.driver.docker_user_update(delete, want.then_some(BRIDGE_PREFIX), &tag).map_err(|e| docker_user_error(table, e))
    }

    /// Rebuilds the root's table (and its DOCKER-USER rules) from state.
    pub fn rebuild(&self) -> Result<(), NetError> {
        let _lock = lock(self.root)?;
        self.rebuild_locked()
    }

    fn rebuild_locked(&self) -> Result<(), NetError> {
        self.rebuild_filtered(None)
    }

    /// Writes the whole table from state (as if the network `gone` were removed) in one `nft`
    /// transaction, and berth's DOCKER-USER rules while the root has a network.
    fn rebuild_filtered(&self, gone: Option<&str>) -> Result<(), NetError> {
        let (root, table) = (self.root, &self.table);
        let networks: Vec<Network> = network::list(root)?.into_iter().filter(|n| Some(n.name.as_str()) != gone).collect();
        let rules: Vec<PortRule> = ports::read_all(root)?.into_iter().flat_map(|r| r.ports).collect();
        crate::timing!("firewall rebuild: state read");
        self.driver.apply_batch(&table_batch(table, &networks, &rules), &format!("write nftables table inet {table}"))?;
        crate::timing!("firewall rebuild: table written");
        if root.networks_dir().is_dir() {
            write_json(&marker_path(root), &json!({"boot_id": boot_id(), "table": table, "version": SKELETON_VERSION}))?;
        }
        self.docker_user_sync(!networks.is_empty())?;
        crate::timing!("firewall rebuild: DOCKER-USER synced");
        Ok(())
    }

    /// Adds a new network (already in state) to the firewall: its elements, over netlink, when the
    /// table is current; the whole table from state otherwise (or when the kernel refuses).
    pub fn add_network(&self, n: &Network) -> Result<(), NetError> {
        let _lock = lock(self.root)?;
        if !self.current() || self.driver.update_elements(&self.table, true, &network_kernel_elems(n)).is_err() {
            return self.rebuild_locked();
        }
        crate::timing!("firewall add network: set elements added");
        self.docker_user_sync(true)?;
        crate::timing!("firewall add network: DOCKER-USER synced");
        Ok(())
    }

    /// Removes a network (still in state) from the firewall, as [`Firewall::add_network`] adds it.
    /// The root's last network takes the whole table and berth's DOCKER-USER rules with it, so that
    /// nothing of berth's stays in the host's ruleset once no berth network is left (the next
    /// network writes the skeleton again).
    pub fn remove_network(&self, n: &Network) -> Result<(), NetError> {
        let _lock = lock(self.root)?;
        let last = network::list(self.root)?.iter().all(|o| o.name == n.name);
        if last {
            let _ = std::fs::remove_file(marker_path(self.root));
            return self.remove_all();
        }
        if !self.current() {
            return self.rebuild_filtered(Some(&n.name));
        }
        crate::timing!("firewall remove network: networks listed");
        let elems = network_kernel_elems(n);
        if self.driver.update_elements(&self.table, false, &elems).is_err() {
            return self.rebuild_filtered(Some(&n.name));
        }
        crate::timing!("firewall remove network: set elements deleted");
        Ok(())
    }

    /// What the kernel holds of the table (one netlink round trip or two).
    pub fn health(&self) -> TableHealth {
        match network::list(self.root) {
            Ok(n) if n.is_empty() => return TableHealth::NotNeeded,
            Ok(_) => {}
            Err(e) => return TableHealth::Unknown(e.to_string()),
        }
        let expected = skeleton_rule_count();
        match self.driver.table_rules(&self.table) {
            Ok(None) => TableHealth::Missing,
            Ok(Some(rules)) if rules < expected => TableHealth::Flushed { rules, expected },
            Ok(Some(_)) => TableHealth::Intact,
            Err(e) => TableHealth::Unknown(e.to_string()),
        }
    }

    /// Whether the table is this boot's and version's and the kernel still holds all of it.
    fn current(&self) -> bool {
        skeleton_current(self.root)
            && match self.driver.table_rules(&self.table) {
                Ok(Some(n)) => n >= skeleton_rule_count(),
                Ok(None) => false,
                // Cannot tell (not root): the element change says it soon enough.
                Err(_) => true,
            }
    }

    /// See [`verify`].
    pub fn verify(&self) -> Result<bool, NetError> {
        if network::list(self.root)?.is_empty() || self.current() {
            return Ok(false);
        }
        let _lock = lock(self.root)?;
        if self.current() {
            return Ok(false);
        }
        self.rebuild_locked()?;
        Ok(true)
    }

    /// Rebuilds the table if this boot (or version) has not built it yet, or the kernel lost it
    /// (reads one small file and asks the kernel). The caller holds the firewall lock.
    pub fn ensure_current_locked(&self) -> Result<(), NetError> {
        if !self.current() {
            self.rebuild_locked()?;
        }
        Ok(())
    }

    /// Adds (`add`) or deletes (`delete`) the DNAT elements of published ports, over netlink. The
    /// caller holds the firewall lock and has already recorded the change in state, so when the
    /// kernel refuses (the table was flushed, say) the table is rebuilt from state instead.
    pub fn update_ports_locked(&self, op: &str, rules: &[PortRule]) -> Result<(), NetError> {
        if rules.is_empty() {
            return Ok(());
        }
        let elems: Vec<super::nftnl::Elem> = rules.iter().flat_map(kernel_elems).collect();
        match self.driver.update_elements(&self.table, op == "add", &elems) {
            Ok(()) => Ok(()),
            Err(_) => self.rebuild_locked(),
        }
    }

    /// Deletes the root's table and DOCKER-USER rules whatever the state says (teardown).
    pub fn remove_all(&self) -> Result<(), NetError> {
        let table = &self.table;
        self.docker_user_sync(false)?;
        let batch =
            [json!({"add": {"table": {"family": "inet", "name": table}}}), json!({"delete": {"table": {"family": "inet", "name": table}}})];
        self.driver.apply_batch(&batch, &format!("remove nftables table inet {table}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        assert_eq!(table_name(&StateRoot::new(crate::state::DEFAULT_ROOT)), "berth");
        let t = table_name(&StateRoot::new("/tmp/some/root"));
        assert!(t.starts_with("berth-") && t.len() == 14, "{t}");
    }

    /// Elements written over netlink read back through nft as the JSON path would write them.
    #[test]
    fn netlink_elements_match_nft() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let table = format!("berth-ut{:06x}", rand::random::<u32>() & 0xffffff);
        let rules = vec![
            PortRule { host_ip: None, host_port: 42070, protocol: Protocol::Tcp, target: "10.210.70.2".parse().unwrap(), target_port: 80 },
            PortRule {
                host_ip: Some("127.0.0.1".parse().unwrap()),
                host_port: 42071,
                protocol: Protocol::Udp,
                target: "10.210.70.3".parse().unwrap(),
                target_port: 5353,
            },
            PortRule {
                host_ip: Some("fd00::1".parse().unwrap()),
                host_port: 42072,
                protocol: Protocol::Tcp,
                target: "fd00:70::2".parse().unwrap(),
                target_port: 8080,
            },
        ];
        apply(&table_batch(&table, &[], &[]), "create a test table").unwrap();
        let listed = || {
            let out = Command::new("nft").args(["list", "table", "inet", &table]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        let elems: Vec<_> = rules.iter().flat_map(kernel_elems).collect();
        let r = super::super::nftnl::apply(&table, true, &elems);
        let via_netlink = listed();
        apply(&[json!({"delete": {"table": {"family": "inet", "name": table}}})], "drop").unwrap();
        r.unwrap();
        apply(&table_batch(&table, &[], &rules), "create a test table").unwrap();
        let via_nft = listed();
        apply(&nft_port_batch(&table, "delete", &rules), "delete").unwrap();
        let emptied = listed();
        apply(&[json!({"delete": {"table": {"family": "inet", "name": table}}})], "drop").unwrap();
        assert_eq!(via_netlink, via_nft);
        assert!(via_nft.contains("tcp . 42070 : 10.210.70.2"), "{via_nft}");
        assert!(via_nft.contains("127.0.0.1 . udp . 42071 : 5353"), "{via_nft}");
        assert!(!emptied.contains("42070"));
    }

    fn test_network(name: &str, bridge: &str, v4: &str, v6: Option<&str>, internal: bool) -> Network {
        let pool = |s: &str, gw: &str| json!({"subnet": s, "gateway": gw});
        serde_json::from_value(json!({
            "name": name, "id": "x", "created": "", "driver": "bridge", "bridge": bridge,
            "ipv4": pool(v4, &v4.replace(".0/24", ".1")),
            "ipv6": v6.map(|s| pool(s, &s.replace("::/64", "::1"))),
            "internal": internal, "mtu": 1500, "masquerade": !internal, "icc": true, "iface_prefix": "eth",
        }))
        .unwrap()
    }

    /// A network's elements written over netlink read back through nft as the JSON path writes
    /// them, and deleting them leaves the skeleton as it was.
    #[test]
    fn netlink_network_elements_match_nft() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let table = format!("berth-ut{:06x}", rand::random::<u32>() & 0xffffff);
        let nets = [
            test_network("a", "berthut000000a1", "10.210.71.0/24", Some("fd00:210:71::/64"), false),
            test_network("b", "berthut000000b2", "10.210.72.0/24", None, true),
        ];
        let listed = || {
            let out = Command::new("nft").args(["list", "table", "inet", &table]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        let drop = || apply(&[json!({"delete": {"table": {"family": "inet", "name": table}}})], "drop").unwrap();
        apply(&table_batch(&table, &nets, &[]), "create a test table").unwrap();
        let via_nft = listed();
        drop();
        apply(&table_batch(&table, &[], &[]), "create a test table").unwrap();
        let empty = listed();
        let add: Vec<_> = nets.iter().flat_map(network_kernel_elems).collect();
        let added = super::super::nftnl::apply(&table, true, &add);
        let via_netlink = listed();
        let removed = super::super::nftnl::apply(&table, false, &add);
        let emptied = listed();
        drop();
        added.unwrap();
        removed.unwrap();
        assert_eq!(via_netlink, via_nft);
        assert_eq!(emptied, empty);
        assert!(via_nft.contains(r#"10.210.71.0/24 . "berthut000000a1""#), "{via_nft}");
        assert!(via_nft.contains(r#"fd00:210:71::/64 . "berthut000000a1""#), "{via_nft}");
        assert!(via_nft.contains(r#""berthut000000b2" . "berthut000000b2""#), "{via_nft}");
    }

    #[test]
    fn port_keys_pick_the_right_maps() {
        let r =
            PortRule { host_ip: None, host_port: 8080, protocol: Protocol::Tcp, target: "10.210.0.2".parse().unwrap(), target_port: 80 };
        assert_eq!(port_keys(&r).unwrap().0, "p4any_a");
        let r6 = PortRule { host_ip: Some("::1".parse().unwrap()), target: "fd00::2".parse().unwrap(), ..r.clone() };
        assert_eq!(port_keys(&r6).unwrap().0, "p6ip_a");
        let mixed = PortRule { host_ip: Some("::1".parse().unwrap()), ..r };
        assert!(port_keys(&mixed).is_none());
    }

    /// A driver that records what would be sent, refuses element changes when told to (as the
    /// kernel does when the table was flushed), and shows a Docker `DOCKER-USER` chain holding the
    /// rule handles `docker_user` (None: no Docker).
    #[derive(Default)]
    struct Recording {
        calls: std::sync::Mutex<Vec<String>>,
        batches: std::sync::Mutex<Vec<Vec<Value>>>,
        elements: std::sync::Mutex<Vec<(bool, Vec<super::super::nftnl::Elem>)>>,
        refuse_elements: bool,
        docker_user: Option<Vec<u64>>,
        /// What the kernel holds of the table: None for the whole skeleton.
        table_rules: Option<Option<usize>>,
    }

    impl FirewallDriver for Recording {
        fn name(&self) -> &'static str {
            "recording"
        }
        fn apply_batch(&self, batch: &[Value], what: &str) -> Result<(), NetError> {
            self.calls.lock().unwrap().push(format!("batch: {what}"));
            self.batches.lock().unwrap().push(batch.to_vec());
            Ok(())
        }
        fn update_elements(&self, _table: &str, add: bool, elems: &[super::super::nftnl::Elem]) -> std::io::Result<()> {
            self.calls.lock().unwrap().push(format!("{} {} elements", if add { "add" } else { "delete" }, elems.len()));
            if self.refuse_elements {
                return Err(std::io::Error::from_raw_os_error(libc::ENOENT));
            }
            self.elements.lock().unwrap().push((add, elems.to_vec()));
            Ok(())
        }
        fn docker_user_rules(&self, tag: &str) -> std::io::Result<Option<Vec<u64>>> {
            self.calls.lock().unwrap().push(format!("docker-user rules {tag}"));
            Ok(self.docker_user.clone())
        }
        fn docker_user_update(&self, delete: &[u64], accept_prefix: Option<&str>, _tag: &str) -> std::io::Result<()> {
            self.calls.lock().unwrap().push(format!("docker-user delete {delete:?} insert {accept_prefix:?}"));
            Ok(())
        }
        fn table_rules(&self, _table: &str) -> std::io::Result<Option<usize>> {
            Ok(self.table_rules.unwrap_or(Some(skeleton_rule_count())))
        }
    }

    impl Recording {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.calls.lock().unwrap())
        }
        fn last_batch(&self) -> Vec<Value> {
            self.batches.lock().unwrap().last().cloned().expect("a batch was sent")
        }
        fn last_elements(&self) -> (bool, Vec<super::super::nftnl::Elem>) {
            self.elements.lock().unwrap().last().cloned().expect("elements were sent")
        }
    }

    /// A state root in a temporary folder, holding `networks` (and nothing else).
    fn root_with(networks: &[&Network]) -> (tempfile::TempDir, StateRoot) {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::new(dir.path());
        root.ensure().unwrap();
        for n in networks {
            add_to_state(&root, n);
        }
        (dir, root)
    }

    fn add_to_state(root: &StateRoot, n: &Network) {
        let dir = root.networks_dir().join(&n.name);
        std::fs::create_dir_all(&dir).unwrap();
        write_json(&dir.join(network::NETWORK_FILE), n).unwrap();
    }

    fn drop_from_state(root: &StateRoot, n: &Network) {
        std::fs::remove_dir_all(root.networks_dir().join(&n.name)).unwrap();
    }

    /// The elements a batch adds to `set`.
    fn batch_elems(batch: &[Value], set: &str) -> Vec<Value> {
        batch
            .iter()
            .filter_map(|v| v["add"]["element"].as_object())
            .filter(|e| e["name"] == set)
            .flat_map(|e| e["elem"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    fn bridge_key(bridge: &str) -> Vec<u8> {
        let mut k = bridge.as_bytes().to_vec();
        k.resize(16, 0);
        k
    }

    fn nets() -> (Network, Network) {
        (
            test_network("a", "berthut000000a1", "10.210.71.0/24", Some("fd00:210:71::/64"), false),
            test_network("b", "berthut000000b2", "10.210.72.0/24", None, true),
        )
    }

    /// On a table this boot has not written (no marker), a new network rewrites the whole table
    /// from state, in one batch: the skeleton, every network's elements and every published port.
    #[test]
    fn a_new_network_on_a_stale_table_rewrites_it_from_state() {
        let (a, b) = nets();
        let (_d, root) = root_with(&[&a, &b]);
        let rule =
            PortRule { host_ip: None, host_port: 42080, protocol: Protocol::Tcp, target: "10.210.71.2".parse().unwrap(), target_port: 80 };
        ports::write(&root, &ports::PortRecord { container_id: "c1".into(), ports: vec![rule], ..Default::default() }).unwrap();
        let rec = Recording::default();
        let fw = Firewall::new(&root, &rec);
        assert!(!skeleton_current(&root));
        fw.add_network(&b).unwrap();
        let table = table_name(&root);
        assert_eq!(rec.take(), [format!("batch: write nftables table inet {table}"), format!("docker-user rules berth:{table}")]);
        let batch = rec.last_batch();
        assert_eq!(batch[..3], skeleton_batch(&table)[..3], "the table is replaced whole");
        assert_eq!(batch_elems(&batch, "brs"), [json!("berthut000000a1"), json!("berthut000000b2")]);
        assert_eq!(batch_elems(&batch, "masq"), [json!("berthut000000a1")]);
        assert_eq!(batch_elems(&batch, "internal"), [json!("berthut000000b2")]);
        assert_eq!(batch_elems(&batch, "gw6"), [json!("fd00:210:71::1")]);
        assert_eq!(batch_elems(&batch, "p4any_a"), [json!([{"concat": ["tcp", 42080]}, "10.210.71.2"])]);
        assert_eq!(batch_elems(&batch, "p4any_p"), [json!([{"concat": ["tcp", 42080]}, 80])]);
        // The marker says the table is this boot's now.
        assert!(skeleton_current(&root));
    }

    /// On a current table a network is its elements only (no process, no rewrite), and the
    /// root's first network puts berth's two rules into Docker's chain when Docker has one.
    #[test]
    fn a_new_network_on_a_current_table_is_elements_only() {
        let (a, b) = nets();
        let (_d, root) = root_with(&[&a]);
        let rec = Recording { docker_user: Some(vec![]), ..Default::default() };
        let fw = Firewall::new(&root, &rec);
        fw.rebuild().unwrap();
        rec.take();
        add_to_state(&root, &b);
        fw.add_network(&b).unwrap();
        let tag = docker_user_tag(&table_name(&root));
        assert_eq!(
            rec.take(),
            ["add 5 elements".to_string(), format!("docker-user rules {tag}"), "docker-user delete [] insert Some(\"berth\")".into()]
        );
        let (add, elems) = rec.last_elements();
        assert!(add);
        assert_eq!(elems, network_kernel_elems(&b));
        let sets: Vec<&str> = elems.iter().map(|e| e.map).collect();
        assert_eq!(sets, ["brs", "self", "internal", "hair4", "gw4"]);
        assert_eq!(elems[0].key, bridge_key("berthut000000b2"));
        // hair4 is the subnet's range with the bridge: 10.210.72.0 - 10.210.72.255.
        let hair = elems.iter().find(|e| e.map == "hair4").unwrap();
        assert_eq!(hair.key, [vec![10, 210, 72, 0], bridge_key("berthut000000b2")].concat());
        assert_eq!(hair.key_end, [vec![10, 210, 72, 255], bridge_key("berthut000000b2")].concat());
    }

    /// When the kernel refuses an element change (the table was flushed), the table is rewritten
    /// from state instead.
    #[test]
    fn a_refused_element_change_rewrites_the_table() {
        let (a, b) = nets();
        let (_d, root) = root_with(&[&a, &b]);
        let ok = Recording::default();
        Firewall::new(&root, &ok).rebuild().unwrap();
        let rec = Recording { refuse_elements: true, ..Default::default() };
        let fw = Firewall::new(&root, &rec);
        fw.add_network(&b).unwrap();
        let table = table_name(&root);
        assert_eq!(rec.take()[..2], ["add 5 elements".to_string(), format!("batch: write nftables table inet {table}")]);
        assert_eq!(batch_elems(&rec.last_batch(), "brs").len(), 2);
        let rule =
            PortRule { host_ip: None, host_port: 42081, protocol: Protocol::Udp, target: "10.210.72.2".parse().unwrap(), target_port: 53 };
        fw.update_ports_locked("add", std::slice::from_ref(&rule)).unwrap();
        assert_eq!(rec.take()[..2], ["add 2 elements".to_string(), format!("batch: write nftables table inet {table}")]);
    }

    /// Removing a network deletes its elements, or (on a stale table) rewrites the table without
    /// it; the root's last network takes the whole table and berth's Docker rules with it.
    #[test]
    fn removing_networks() {
        let (a, b) = nets();
        let (_d, root) = root_with(&[&a, &b]);
        let rec = Recording { docker_user: Some(vec![11, 12]), ..Default::default() };
        let fw = Firewall::new(&root, &rec);
        fw.rebuild().unwrap();
        rec.take();
        fw.remove_network(&b).unwrap();
        assert_eq!(rec.take(), ["delete 5 elements"]);
        assert_eq!(rec.last_elements(), (false, network_kernel_elems(&b)));

        // Stale: the table is written without b.
        std::fs::remove_file(marker_path(&root)).unwrap();
        fw.remove_network(&b).unwrap();
        let table = table_name(&root);
        assert_eq!(rec.take()[0], format!("batch: write nftables table inet {table}"));
        assert_eq!(batch_elems(&rec.last_batch(), "brs"), [json!("berthut000000a1")]);
        drop_from_state(&root, &b);

        // The last one.
        fw.remove_network(&a).unwrap();
        let tag = docker_user_tag(&table);
        assert_eq!(
            rec.take(),
            [
                format!("docker-user rules {tag}"),
                "docker-user delete [11, 12] insert None".into(),
                format!("batch: remove nftables table inet {table}")
            ]
        );
        assert_eq!(
            rec.last_batch(),
            [json!({"add": {"table": {"family": "inet", "name": table}}}), json!({"delete": {"table": {"family": "inet", "name": table}}})]
        );
        assert!(!marker_path(&root).exists());
    }

    /// A published port is two map elements (address and port) in the maps of its family and
    /// host address; its removal deletes the same keys.
    #[test]
    fn published_ports_are_map_elements() {
        let (a, _) = nets();
        let (_d, root) = root_with(&[&a]);
        let rec = Recording::default();
        let fw = Firewall::new(&root, &rec);
        fw.rebuild().unwrap();
        rec.take();
        let rules = [
            PortRule { host_ip: None, host_port: 42082, protocol: Protocol::Tcp, target: "10.210.71.2".parse().unwrap(), target_port: 80 },
            PortRule {
                host_ip: Some("127.0.0.1".parse().unwrap()),
                host_port: 42083,
                protocol: Protocol::Udp,
                target: "10.210.71.3".parse().unwrap(),
                target_port: 5353,
            },
            PortRule {
                host_ip: Some("fd00::1".parse().unwrap()),
                host_port: 42084,
                protocol: Protocol::Tcp,
                target: "fd00:210:71::2".parse().unwrap(),
                target_port: 8080,
            },
        ];
        fw.update_ports_locked("add", &rules).unwrap();
        let (add, elems) = rec.last_elements();
        assert!(add);
        let maps: Vec<&str> = elems.iter().map(|e| e.map).collect();
        assert_eq!(maps, ["p4any_a", "p4any_p", "p4ip_a", "p4ip_p", "p6ip_a", "p6ip_p"]);
        // tcp . 42082 (each field in a 4-byte register) : 10.210.71.2, and : 80.
        assert_eq!(elems[0].key, [6, 0, 0, 0, 0xa4, 0x62, 0, 0]);
        assert_eq!((elems[0].data.as_slice(), elems[1].data.as_slice()), (&[10, 210, 71, 2][..], &80u16.to_be_bytes()[..]));
        assert_eq!(elems[2].key, [127, 0, 0, 1, 17, 0, 0, 0, 0xa4, 0x63, 0, 0]);
        fw.update_ports_locked("delete", &rules[..1]).unwrap();
        assert_eq!(rec.last_elements(), (false, kernel_elems(&rules[0])));
        fw.update_ports_locked("add", &[]).unwrap();
        assert_eq!(rec.take(), ["add 6 elements", "delete 2 elements"]);
    }

    /// Berth's `DOCKER-USER` rules: two while the root has a network (a partial set is replaced),
    /// none without; nothing at all without Docker's chain.
    #[test]
    fn docker_user_rules_follow_the_networks() {
        let (a, _) = nets();
        let (_d, root) = root_with(&[&a]);
        let tag = docker_user_tag(&table_name(&root));
        for (have, want, update) in [
            (Some(vec![1, 2]), true, None),
            (Some(vec![7]), true, Some("docker-user delete [7] insert Some(\"berth\")")),
            (Some(vec![]), true, Some("docker-user delete [] insert Some(\"berth\")")),
            (Some(vec![1, 2]), false, Some("docker-user delete [1, 2] insert None")),
            (None, true, None),
        ] {
            let rec = Recording { docker_user: have.clone(), ..Default::default() };
            Firewall::new(&root, &rec).docker_user_sync(want).unwrap();
            let mut expect = vec![format!("docker-user rules {tag}")];
            expect.extend(update.map(String::from));
            assert_eq!(rec.take(), expect, "{have:?} want {want}");
        }
    }

    /// A table the kernel lost (deleted, or flushed down to fewer rules) is rewritten from state
    /// by the next verify, even when this boot wrote it; an intact one is left alone, and a root
    /// without networks needs none.
    #[test]
    fn verify_rewrites_a_lost_or_flushed_table() {
        let (a, _) = nets();
        let (_d, root) = root_with(&[&a]);
        Firewall::new(&root, &Recording::default()).rebuild().unwrap();
        let table = table_name(&root);
        for (have, health, rebuilt) in [
            (None, TableHealth::Intact, false),
            (Some(None), TableHealth::Missing, true),
            (Some(Some(3)), TableHealth::Flushed { rules: 3, expected: skeleton_rule_count() }, true),
        ] {
            let rec = Recording { table_rules: have, ..Default::default() };
            let fw = Firewall::new(&root, &rec);
            assert_eq!(fw.health(), health);
            assert_eq!(fw.verify().unwrap(), rebuilt, "{health:?}");
            let expect: Vec<String> = if rebuilt {
                vec![format!("batch: write nftables table inet {table}"), format!("docker-user rules berth:{table}")]
            } else {
                vec![]
            };
            assert_eq!(rec.take(), expect, "{health:?}");
            if rebuilt {
                assert_eq!(batch_elems(&rec.last_batch(), "brs"), [json!("berthut000000a1")]);
            }
            // A lost table is not current: adding a network rewrites it rather than adding elements.
            assert_eq!(fw.current(), !rebuilt || rec.table_rules == Some(Some(skeleton_rule_count())));
        }
        let (_d2, empty) = root_with(&[]);
        let rec = Recording { table_rules: Some(None), ..Default::default() };
        assert_eq!(Firewall::new(&empty, &rec).health(), TableHealth::NotNeeded);
        assert!(!Firewall::new(&empty, &rec).verify().unwrap());
        assert!(rec.take().is_empty());
    }

    /// The skeleton keeps the host's loopback to the host: a packet for 127.0.0.0/8 from any
    /// interface but `lo` is dropped before NAT, and the DNAT is not consulted for it.
    #[test]
    fn the_skeleton_guards_the_host_loopback() {
        let b = skeleton_batch("berth");
        let rules: Vec<&Value> = b.iter().filter_map(|v| v["add"].get("rule")).collect();
        let guard: Vec<&&Value> = rules.iter().filter(|r| r["chain"] == "guard").collect();
        assert_eq!(guard.len(), 1);
        let text = guard[0]["expr"].to_string();
        assert!(text.contains(r#""op":"!=""#) && text.contains(r#""right":"lo""#) && text.contains("127.0.0.0"), "{text}");
        assert!(guard[0]["expr"].as_array().unwrap().last().unwrap().get("drop").is_some());
        let chain = b.iter().find(|v| v["add"]["chain"]["name"] == "guard").unwrap();
        assert_eq!((chain["add"]["chain"]["hook"].as_str(), chain["add"]["chain"]["prio"].as_i64()), (Some("prerouting"), Some(-300)));
        let pre: Vec<&&Value> = rules.iter().filter(|r| r["chain"] == "prerouting").collect();
        assert!(pre[0]["expr"].to_string().contains("127.0.0.0"), "the loopback check comes before the jump to ports");
        assert!(pre[0]["expr"].as_array().unwrap().last().unwrap().get("return").is_some());
    }

    /// Without a firewall the state is kept all the same, and nothing is sent.
    #[test]
    fn no_firewall_keeps_the_state() {
        let (a, _) = nets();
        let (_d, root) = root_with(&[&a]);
        let fw = Firewall::new(&root, &NoFirewall);
        assert_eq!(fw.driver.name(), "none");
        fw.add_network(&a).unwrap();
        assert!(skeleton_current(&root));
        fw.ensure_current_locked().unwrap();
        fw.remove_network(&a).unwrap();
        assert!(!marker_path(&root).exists());
    }
}
