//! Networks: what `berth network create` and the orchestration make, one Linux bridge each.
//!
//! State lives in `<root>/networks/<name>/`: `network.json` (what the network is) and
//! `endpoints.json` (the IPAM allocations and DNS names of the containers on it). Both are written
//! atomically under the network's lock (`locks/network-<name>.lock`); the DNS resolver watches
//! them. Creating and removing networks is serialized per root by `locks/networks.lock`, and the
//! choice of a subnet with the creation of its bridge by a host-wide lock, so that state roots
//! running at once never pick the same subnet.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::NetError;
use super::ipam::{self, Subnet};
use super::netlink::Netlink;
use crate::state::StateRoot;
use crate::util::fs::{FsError, create_dir_all_mode, read_json, write_json};
use crate::util::lock::FileLock;

pub const NETWORK_FILE: &str = "network.json";
pub const ENDPOINTS_FILE: &str = "endpoints.json";

/// The host-wide lock taken around subnet choice and bridge creation.
pub const HOST_LOCK: &str = "/run/berth/net.lock";

/// Driver options berth understands (Docker's bridge driver names).
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";
pub const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
pub const OPT_HOST_BINDING: &str = "com.docker.network.bridge.host_binding_ipv4";
pub const OPT_IFACE_PREFIX: &str = "com.docker.network.container_iface_prefix";
pub const SUPPORTED_OPTS: &[&str] = &[OPT_BRIDGE_NAME, OPT_MTU, OPT_MASQUERADE, OPT_ICC, OPT_HOST_BINDING, OPT_IFACE_PREFIX];

/// One `ipam.config` entry, as the user wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamConfig {
    #[serde(default)]
    pub subnet: Option<String>,
    #[serde(default)]
    pub ip_range: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamSpec {
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default)]
    pub config: Vec<IpamConfig>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// What to create: `berth network create` flags, or a compose `networks:` entry with its name
/// resolved (`<project>_<key>` or `name:`) and its compose labels added.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub name: String,
    /// `bridge` (the default) is the only driver.
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default)]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub enable_ipv6: bool,
    #[serde(default)]
    pub ipam: IpamSpec,
}

/// One address family's configuration of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub subnet: Subnet,
    pub gateway: IpAddr,
    #[serde(default)]
    pub ip_range: Option<Subnet>,
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, IpAddr>,
    /// The subnet came from the user (`ipam.config`), not the default pool.
    #[serde(default)]
    pub user_subnet: bool,
}

/// A network as berth holds it (`network.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub id: String,
    pub created: String,
    pub driver: String,
    /// The Linux bridge.
    pub bridge: String,
    pub ipv4: Option<Pool>,
    #[serde(default)]
    pub ipv6: Option<Pool>,
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub enable_ipv6: bool,
    pub mtu: u32,
    /// Outbound traffic is masqueraded (never for internal networks).
    pub masquerade: bool,
    /// Containers on the network may talk to each other.
    pub icc: bool,
    /// The default host address for published ports (`host_binding_ipv4`).
    #[serde(default)]
    pub host_binding_ipv4: Option<Ipv4Addr>,
    /// Container interfaces are called `<prefix>0`, `<prefix>1`, ...
    pub iface_prefix: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub ipam_options: BTreeMap<String, String>,
}

impl Network {
    /// The gateways: the addresses of the bridge, where the DNS resolver listens.
    pub fn gateways(&self) -> Vec<IpAddr> {
        self.ipv4.iter().chain(self.ipv6.iter()).map(|p| p.gateway).collect()
    }
    pub fn pools(&self) -> impl Iterator<Item = &Pool> {
        self.ipv4.iter().chain(self.ipv6.iter())
    }
}

/// A container on a network (`endpoints.json`): its addresses and the names it answers to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub endpoint_id: String,
    pub container_name: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    pub mac: String,
    pub interface: String,
    pub host_interface: String,
    /// compose `dns:`: where this container's other queries are forwarded.
    #[serde(default)]
    pub dns_servers: Vec<IpAddr>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// By container id.
    #[serde(default)]
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Addresses of departed containers whose host veth (named here) still existed when they
    /// left; they are given again once it is gone.
    #[serde(default)]
    pub released: BTreeMap<IpAddr, String>,
    /// The endpoints of stopped (or restarting) containers, by container id: a container keeps
    /// its addresses for its whole life, as Docker's containers do, so that a peer that resolved
    /// it once still reaches it after a restart. Nobody else is given them until it is removed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub held: BTreeMap<String, Endpoint>,
}

/// A network with the containers on it, for `inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    pub network: Network,
    pub endpoints: BTreeMap<String, Endpoint>,
}

pub fn network_dir(root: &StateRoot, name: &str) -> PathBuf {
    root.networks_dir().join(name)
}

pub(crate) fn lock_network(root: &StateRoot, name: &str) -> Result<FileLock, NetError> {
    Ok(root.lock(&format!("network-{name}"))?)
}

pub(crate) fn lock_host() -> Result<FileLock, NetError> {
    Ok(FileLock::exclusive(Path::new(HOST_LOCK))?)
}

/// Docker's rule for network names: a letter or digit, then letters, digits, `_`, `.`, `-`.
pub fn validate_name(name: &str) -> Result<(), NetError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok { Ok(()) } else { Err(NetError::InvalidName(name.to_string())) }
}

/// The bridge for network `name` of `root`: `berth` and 10 hex digits of a hash of both, so that
/// roots never collide and the name fits IFNAMSIZ.
pub fn bridge_name(root: &StateRoot, name: &str) -> String {
    let mut h = Sha256::new();
    h.update(root.path().as_os_str().as_encoded_bytes());
    h.update([0]);
    h.update(name.as_bytes());
    format!("berth{}", &hex::encode(h.finalize())[..10])
}

fn valid_ifname(s: &str) -> bool {
    !s.is_empty() && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

fn bool_opt(name: &str, key: &str, v: &str) -> Result<bool, NetError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(NetError::invalid(format!("network {name}: driver option {key}={v:?} must be true or false"))),
    }
}

fn parse_subnet(name: &str, what: &str, s: &str) -> Result<Subnet, NetError> {
    s.parse::<Subnet>().map_err(|e| NetError::invalid(format!("network {name}: {what}: {e}")))
}

fn parse_ip(name: &str, what: &str, s: &str) -> Result<IpAddr, NetError> {
    s.parse::<IpAddr>().map_err(|_| NetError::invalid(format!("network {name}: {what} {s:?} is not an IP address")))
}

/// An `ipam.config` entry checked and resolved, before a default subnet is picked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PoolRequest {
    subnet: Option<Subnet>,
    gateway: Option<IpAddr>,
    ip_range: Option<Subnet>,
    aux: BTreeMap<String, IpAddr>,
}

/// Everything about a spec that can be checked without touching the host.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    bridge: Option<String>,
    mtu: u32,
    masquerade: bool,
    icc: bool,
    host_binding_ipv4: Option<Ipv4Addr>,
    iface_prefix: String,
    v4: Option<PoolRequest>,
    v6: Option<PoolRequest>,
}

fn plan(spec: &NetworkSpec) -> Result<Plan, NetError> {
    let name = &spec.name;
    validate_name(name)?;
    match spec.driver.as_deref() {
        None | Some("") | Some("bridge") => {}
        Some(d) => {
            return Err(NetError::Unsupported(format!(
                "network {name}: driver {d:?} is not supported; berth networks use the \"bridge\" driver"
            )));
        }
    }
    match spec.ipam.driver.as_deref() {
        None | Some("") | Some("default") => {}
        Some(d) => {
            return Err(NetError::Unsupported(format!(
                "network {name}: IPAM driver {d:?} is not supported; remove ipam.driver or set it to \"default\""
            )));
        }
    }
    let mut p = Plan {
        bridge: None,
        mtu: 1500,
        masquerade: !spec.internal,
        icc: true,
        host_binding_ipv4: None,
        iface_prefix: "eth".into(),
        v4: None,
        v6: None,
    };
    for (k, v) in &spec.driver_opts {
        match k.as_str() {
            OPT_BRIDGE_NAME => {
                if !valid_ifname(v) {
                    return Err(NetError::invalid(format!(
                        "network {name}: {k}={v:?} is not a valid interface name (at most 15 characters, no '/', ':' or spaces)"
                    )));
                }
                p.bridge = Some(v.clone());
            }
            OPT_MTU => {
                p.mtu = v
                    .parse()
                    .ok()
                    .filter(|m| (68..=65535).contains(m))
                    .ok_or_else(|| NetError::invalid(format!("network {name}: {k}={v:?} must be an MTU between 68 and 65535")))?;
            }
            OPT_MASQUERADE => p.masquerade = bool_opt(name, k, v)? && !spec.internal,
            OPT_ICC => p.icc = bool_opt(name, k, v)?,
            OPT_HOST_BINDING => match parse_ip(name, k, v)? {
                IpAddr::V4(a) => p.host_binding_ipv4 = Some(a),
                IpAddr::V6(_) => {
                    return Err(NetError::invalid(format!("network {name}: {k} must be an IPv4 address")));
                }
            },
            OPT_IFACE_PREFIX => {
                if v.is_empty() || v.len() > 12 || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(NetError::invalid(format!("network {name}: {k}={v:?} must be 1 to 12 letters or digits")));
                }
                p.iface_prefix = v.clone();
            }
            _ => {
                return Err(NetError::Unsupported(format!(
                    "network {name}: driver option {k:?} is not supported; berth supports {}",
                    SUPPORTED_OPTS.join(", ")
                )));
            }
        }
    }
    for c in &spec.ipam.config {
        let subnet = c.subnet.as_deref().map(|s| parse_subnet(name, "ipam subnet", s)).transpose()?;
        let gateway = c.gateway.as_deref().map(|s| parse_ip(name, "gateway", s)).transpose()?;
        let ip_range = c.ip_range.as_deref().map(|s| parse_subnet(name, "ip_range", s)).transpose()?;
        let Some(net) = subnet else {
            if gateway.is_some() || ip_range.is_some() || !c.aux_addresses.is_empty() {
                return Err(NetError::invalid(format!(
                    "network {name}: an ipam config with a gateway, ip_range or aux_addresses needs a subnet"
                )));
            }
            continue;
        };
        if let Some(g) = gateway {
            if !net.contains(g) {
                return Err(NetError::invalid(format!("network {name}: gateway {g} is not in subnet {net}")));
            }
        }
        if let Some(r) = ip_range {
            if !net.contains_subnet(&r) {
                return Err(NetError::invalid(format!("network {name}: ip_range {r} is not inside subnet {net}")));
            }
        }
        let min_prefix_room = if net.is_ipv4() { 30 } else { 126 };
        if net.prefix() > min_prefix_room {
            return Err(NetError::invalid(format!("network {name}: subnet {net} is too small for a gateway and a container")));
        }
        let mut aux = BTreeMap::new();
        for (host, ip) in &c.aux_addresses {
            let ip = parse_ip(name, &format!("aux address {host}"), ip)?;
            if !net.contains(ip) {
                return Err(NetError::invalid(format!("network {name}: aux address {host}={ip} is not in subnet {net}")));
            }
            aux.insert(host.clone(), ip);
        }
        let req = PoolRequest { subnet: Some(net), gateway, ip_range, aux };
        let slot = if net.is_ipv4() { &mut p.v4 } else { &mut p.v6 };
        if slot.is_some() {
            return Err(NetError::Unsupported(format!(
                "network {name}: berth supports one IPv4 and one IPv6 subnet per network; remove the extra ipam config"
            )));
        }
        *slot = Some(req);
    }
    if p.v6.is_some() && !spec.enable_ipv6 {
        return Err(NetError::invalid(format!("network {name}: an IPv6 subnet needs enable_ipv6: true (or --ipv6)")));
    }
    if spec.enable_ipv6 && p.v6.is_none() {
        return Err(NetError::invalid(format!(
            "network {name}: enable_ipv6 needs an IPv6 subnet in ipam.config; berth has no default IPv6 pool"
        )));
    }
    Ok(p)
}

/// Resolves a pool request into a pool: the gateway defaults to the first host.
fn resolve_pool(name: &str, req: &PoolRequest, subnet: Subnet, user_subnet: bool) -> Result<Pool, NetError> {
    let gateway = match req.gateway {
        Some(g) => g,
        None => subnet.first_host().ok_or_else(|| NetError::invalid(format!("network {name}: subnet {subnet} has no host address")))?,
    };
    Ok(Pool { subnet, gateway, ip_range: req.ip_range, aux_addresses: req.aux.clone(), user_subnet })
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Creates a network: its state, its bridge with the gateway addresses, and its firewall rules.
pub fn create(root: &StateRoot, spec: NetworkSpec) -> Result<Network, NetError> {
    let plan = plan(&spec)?;
    root.ensure()?;
    let _root_lock = root.lock("networks")?;
    if read_network(root, &spec.name)?.is_some() {
        return Err(NetError::NetworkExists(spec.name.clone()));
    }
    let bridge = plan.bridge.clone().unwrap_or_else(|| bridge_name(root, &spec.name));
    let mut nl = Netlink::open()?;
    let host_lock = lock_host()?;
    if nl.link_index(&bridge)?.is_some() {
        return Err(NetError::LinkExists { name: bridge, network: spec.name.clone() });
    }
    let routes = nl.routes()?;
    let addrs = nl.addresses()?;
    let mut network = Network {
        name: spec.name.clone(),
        id: crate::util::id::new_id(),
        created: now_rfc3339(),
        driver: "bridge".into(),
        bridge: bridge.clone(),
        ipv4: None,
        ipv6: None,
        internal: spec.internal,
        attachable: spec.attachable,
        enable_ipv6: spec.enable_ipv6,
        mtu: plan.mtu,
        masquerade: plan.masquerade,
        icc: plan.icc,
        host_binding_ipv4: plan.host_binding_ipv4,
        iface_prefix: plan.iface_prefix.clone(),
        options: spec.driver_opts.clone(),
        labels: spec.labels.clone(),
        ipam_options: spec.ipam.options.clone(),
    };
    // Subnets taken by every other network of this root, even one whose bridge is gone.
    let mine: Vec<Subnet> = list(root)?.iter().flat_map(|n| n.pools().map(|p| p.subnet).collect::<Vec<_>>()).collect();
    let v4req = plan.v4.clone().unwrap_or(PoolRequest { subnet: None, gateway: None, ip_range: None, aux: BTreeMap::new() });
    network.ipv4 = Some(match v4req.subnet {
        Some(s) => {
            let connected = ipam::connected_subnets(&routes, &addrs);
            if let Some(c) = connected.iter().chain(mine.iter()).find(|c| c.overlaps(&s)) {
                return Err(NetError::SubnetOverlap { network: spec.name.clone(), subnet: s, other: *c });
            }
            resolve_pool(&spec.name, &v4req, s, true)?
        }
        None => {
            let mut used = ipam::host_subnets(&routes, &addrs);
            used.extend(mine.iter().copied());
            let s = match std::env::var(ipam::POOLS_ENV) {
                Ok(text) if !text.trim().is_empty() => {
                    let pools = ipam::parse_pools(&text).map_err(NetError::Invalid)?;
                    ipam::pick_from(&pools, &used)
                }
                _ => ipam::pick_default(&used),
            }
            .ok_or_else(|| NetError::PoolExhausted(spec.name.clone()))?;
            resolve_pool(&spec.name, &v4req, s, false)?
        }
    });
    if let Some(req) = &plan.v6 {
        let s = req.subnet.expect("v6 requests always carry a subnet");
        let connected = ipam::connected_subnets(&routes, &addrs);
        if let Some(c) = connected.iter().chain(mine.iter()).find(|c| c.overlaps(&s)) {
            return Err(NetError::SubnetOverlap { network: spec.name.clone(), subnet: s, other: *c });
        }
        network.ipv6 = Some(resolve_pool(&spec.name, req, s, true)?);
    }

    // State first, so that a crash leaves a network that attach repairs rather than a lost bridge.
    write_new_network_dir(root, &network)?;
    let mut guard = CreateGuard { root, name: network.name.clone(), bridge: None, armed: true };
    crate::timing!("network create: state written");
    guard.bridge = Some(bring_up_bridge(&mut nl, &network)?);
    drop(host_lock);
    // The resolver starts while the firewall is written and the containers are created.
    super::dns::start_early(root);
    crate::timing!("network create: bridge up, DNS starting");
    super::firewall::add_network(root, &network)?;
    crate::timing!("network create: firewall updated");
    guard.armed = false;
    Ok(network)
}

/// Undoes a half-made network on failure.
struct CreateGuard<'a> {
    root: &'a StateRoot,
    name: String,
    bridge: Option<u32>,
    armed: bool,
}

impl Drop for CreateGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(index) = self.bridge {
            if let Ok(mut nl) = Netlink::open() {
                let _ = nl.delete_link(index, "bridge");
            }
        }
        let _ = remove_network_dir(self.root, &self.name);
    }
}

fn write_new_network_dir(root: &StateRoot, network: &Network) -> Result<(), NetError> {
    let final_dir = network_dir(root, &network.name);
    let tmp = root.networks_dir().join(format!(".tmp-{}-{}", std::process::id(), &network.id[..12]));
    create_dir_all_mode(&tmp, 0o700)?;
    let result = (|| {
        write_json(&tmp.join(NETWORK_FILE), network)?;
        write_json(&tmp.join(ENDPOINTS_FILE), &Endpoints::default())?;
        std::fs::rename(&tmp, &final_dir).map_err(|e| FsError::io("rename into place", &final_dir, e))
    })();
    if result.is_err() {
        let _ = crate::util::fs::remove_dir_all_if_exists(&tmp);
    }
    Ok(result?)
}

fn remove_network_dir(root: &StateRoot, name: &str) -> Result<(), NetError> {
    let dir = network_dir(root, name);
    // Renamed away first, so that readers see the network whole or not at all.
    let gone = root.networks_dir().join(format!(".rm-{}-{name}", std::process::id()));
    match std::fs::rename(&dir, &gone) {
        Ok(()) => Ok(crate::util::fs::remove_dir_all_if_exists(&gone)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FsError::io("remove", &dir, e).into()),
    }
}

fn write_sysctl(path: &str, value: &str) -> Result<(), NetError> {
    if std::fs::read_to_string(path).map(|v| v.trim() == value).unwrap_or(false) {
        return Ok(());
    }
    std::fs::write(path, value).map_err(|e| NetError::Sysctl { path: path.into(), source: e })
}

/// Creates the bridge with its addresses and sysctls; the caller holds the host lock.
fn bring_up_bridge(nl: &mut Netlink, network: &Network) -> Result<u32, NetError> {
    let index = nl.create_bridge(&network.bridge, network.mtu, ipam::random_mac())?;
    let br = &network.bridge;
    let result = (|| {
        if network.ipv6.is_some() {
            write_sysctl(&format!("/proc/sys/net/ipv6/conf/{br}/accept_ra"), "0")?;
            // Before the link comes up, so that its link-local address is usable at once: the
            // kernel sends no neighbour solicitation for forwarded packets (published ports) until
            // it is, and drops them meanwhile.
            write_sysctl(&format!("/proc/sys/net/ipv6/conf/{br}/accept_dad"), "0")?;
        }
        nl.set_up(index, br)?;
        for p in network.pools() {
            nl.add_address(index, p.gateway, p.subnet.prefix(), br)?;
        }
        // Published ports are reachable on 127.0.0.1: DNAT sends such packets out of the bridge.
        write_sysctl(&format!("/proc/sys/net/ipv4/conf/{br}/route_localnet"), "1")?;
        if !network.internal {
            write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
            if network.ipv6.is_some() {
                write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")?;
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = nl.delete_link(index, br);
        return Err(e);
    }
    Ok(index)
}

/// The bridge's index, recreating the bridge (and the firewall) if it is gone, e.g. after a reboot.
pub(crate) fn ensure_bridge(root: &StateRoot, nl: &mut Netlink, network: &Network) -> Result<u32, NetError> {
    if let Some(i) = nl.link_index(&network.bridge)? {
        return Ok(i);
    }
    let index = {
        let _host = lock_host()?;
        match nl.link_index(&network.bridge)? {
            Some(i) => i,
            None => bring_up_bridge(nl, network)?,
        }
    };
    super::firewall::rebuild(root)?;
    Ok(index)
}

/// Reads `network.json` of the network called `name`.
pub fn read_network(root: &StateRoot, name: &str) -> Result<Option<Network>, NetError> {
    if validate_name(name).is_err() {
        return Ok(None);
    }
    Ok(read_json(&network_dir(root, name).join(NETWORK_FILE))?)
}

/// Reads the endpoints of a network, under a shared lock (writers rewrite the file in place).
pub fn read_endpoints(root: &StateRoot, name: &str) -> Result<Endpoints, NetError> {
    let _shared = FileLock::shared(&root.path().join("locks").join(format!("network-{name}.lock")))?;
    read_endpoints_locked(root, name)
}

/// Reads the endpoints of a network whose lock the caller holds.
pub(crate) fn read_endpoints_locked(root: &StateRoot, name: &str) -> Result<Endpoints, NetError> {
    Ok(read_json(&network_dir(root, name).join(ENDPOINTS_FILE))?.unwrap_or_default())
}

/// Rewrites the endpoints of a network whose lock the caller holds.
///
/// The file is overwritten in place with one `pwrite`, padded with spaces to its old length (JSON
/// ignores trailing white space), rather than replaced through a temp file and a rename: it only
/// describes running containers, readers take the shared lock, and creating and renaming inodes
/// costs a container start milliseconds whenever the filesystem journal is busy.
pub(crate) fn write_endpoints(root: &StateRoot, name: &str, e: &Endpoints) -> Result<(), NetError> {
    use std::os::unix::fs::FileExt;
    let path = network_dir(root, name).join(ENDPOINTS_FILE);
    let mut data = serde_json::to_vec_pretty(e).map_err(|err| FsError::Json { path: path.clone(), source: err })?;
    data.push(b'\n');
    let file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(&path).map_err(|err| FsError::io("open", &path, err))?;
    let old = file.metadata().map_err(|err| FsError::io("stat", &path, err))?.len() as usize;
    if data.len() < old {
        data.resize(old - 1, b' ');
        data.push(b'\n');
    }
    file.write_all_at(&data, 0).map_err(|err| FsError::io("write", &path, err))?;
    Ok(())
}

/// Writes state that only describes running containers (endpoints, published ports): atomically
/// (temp file and rename), but without fsync, since a crash of the host that could lose the write
/// also ends every container the file describes. This keeps a container start off the disk's
/// flush latency.
pub(crate) fn write_volatile_json<T: Serialize>(path: &Path, value: &T) -> Result<(), NetError> {
    let mut data = serde_json::to_vec_pretty(value).map_err(|e| FsError::Json { path: path.into(), source: e })?;
    data.push(b'\n');
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}-{:08x}", std::process::id(), rand::random::<u32>()));
    let result = std::fs::write(&tmp, &data)
        .map_err(|e| FsError::io("write", &tmp, e))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| FsError::io("rename into place", path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(result?)
}

/// A network whose `network.json` cannot be read (truncated, garbage): `network ls` shows it
/// with its error, `network rm` and `down` remove it; it costs no other network anything.
#[derive(Debug, Clone)]
pub struct DamagedNetwork {
    pub name: String,
    /// Why it cannot be read (names the file).
    pub error: String,
}

/// Every network of the root, by name. A damaged one is left out: see [`list_damaged`].
pub fn list(root: &StateRoot) -> Result<Vec<Network>, NetError> {
    Ok(scan(root)?.0)
}

/// The networks whose `network.json` cannot be read, by name.
pub fn list_damaged(root: &StateRoot) -> Result<Vec<DamagedNetwork>, NetError> {
    Ok(scan(root)?.1)
}

fn scan(root: &StateRoot) -> Result<(Vec<Network>, Vec<DamagedNetwork>), NetError> {
    let dir = root.networks_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(FsError::io("read", &dir, e).into()),
    };
    let mut out = Vec::new();
    let mut damaged = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| FsError::io("read", &dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        match read_json::<Network>(&entry.path().join(NETWORK_FILE)) {
            Ok(Some(n)) => out.push(n),
            Ok(None) => {}
            Err(e @ FsError::Json { .. }) => damaged.push(DamagedNetwork { name, error: e.to_string() }),
            Err(e) => return Err(e.into()),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    damaged.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((out, damaged))
}

/// Finds a network by name, full id, or unique id prefix, as Docker does.
pub fn find(root: &StateRoot, name_or_id: &str) -> Result<Option<Network>, NetError> {
    if let Some(n) = read_network(root, name_or_id)? {
        return Ok(Some(n));
    }
    if name_or_id.is_empty() || !name_or_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let all = list(root)?;
    let matches: Vec<&Network> = all.iter().filter(|n| n.id.starts_with(name_or_id)).collect();
    match matches.len() {
        0 => Ok(None),
        1 => Ok(Some(matches[0].clone())),
        _ => Err(NetError::Ambiguous(name_or_id.to_string())),
    }
}

/// A network with its endpoints.
pub fn inspect(root: &StateRoot, name_or_id: &str) -> Result<NetworkInfo, NetError> {
    let network = find(root, name_or_id)?.ok_or_else(|| NetError::NetworkNotFound(name_or_id.to_string()))?;
    let endpoints = read_endpoints(root, &network.name)?.endpoints;
    Ok(NetworkInfo { network, endpoints })
}

/// Drops endpoints whose container is gone: its host veth died with its network namespace.
/// Returns the ids of the containers dropped.
pub(crate) fn prune_stale(root: &StateRoot, nl: &mut Netlink, name: &str) -> Result<Vec<String>, NetError> {
    let mut eps = read_endpoints_locked(root, name)?;
    let mut gone = Vec::new();
    for (id, ep) in &eps.endpoints {
        if nl.link_index(&ep.host_interface)?.is_none() {
            gone.push(id.clone());
        }
    }
    if !gone.is_empty() {
        for id in &gone {
            eps.endpoints.remove(id);
        }
        write_endpoints(root, name, &eps)?;
    }
    Ok(gone)
}

/// Removes a network: refuses while containers use it; deletes its bridge, state and rules.
pub fn remove(root: &StateRoot, name_or_id: &str) -> Result<Network, NetError> {
    let _root_lock = root.lock("networks")?;
    if let Err(NetError::Fs(FsError::Json { .. })) = read_network(root, name_or_id) {
        return remove_damaged(root, name_or_id);
    }
    let network = find(root, name_or_id)?.ok_or_else(|| NetError::NetworkNotFound(name_or_id.to_string()))?;
    let _lock = lock_network(root, &network.name)?;
    let mut nl = Netlink::open()?;
    let gone = prune_stale(root, &mut nl, &network.name)?;
    for id in &gone {
        super::ports::forget_if_unattached(root, id, &network.name)?;
    }
    let eps = read_endpoints_locked(root, &network.name)?;
    if !eps.endpoints.is_empty() {
        let names: BTreeSet<&str> = eps.endpoints.values().map(|e| e.container_name.as_str()).collect();
        return Err(NetError::NetworkInUse { name: network.name.clone(), containers: names.into_iter().collect::<Vec<_>>().join(", ") });
    }
    crate::timing!("network rm: no container attached");
    // Deleting a bridge waits for the kernel (RCU grace periods), as does the nft transaction:
    // the two run side by side, the firewall written as if the network were gone. The state
    // goes last, so that a crash in between leaves a network that `rm` finishes.
    let deleted = match nl.link_index(&network.bridge)? {
        Some(i) => {
            let bridge = network.bridge.clone();
            Some(std::thread::spawn(move || nl.delete_link(i, &bridge)))
        }
        None => None,
    };
    let fw = super::firewall::remove_network(root, &network);
    if let Some(t) = deleted {
        t.join().map_err(|_| NetError::invalid(format!("deleting bridge {} panicked", network.bridge)))??;
    }
    fw?;
    crate::timing!("network rm: bridge deleted, firewall updated");
    remove_network_dir(root, &network.name)?;
    crate::timing!("network rm: state removed");
    Ok(network)
}

/// Removes a network whose `network.json` is damaged, from what does not need it: its
/// endpoints (refused while a live container uses it), its bridge (by the name berth gives it),
/// its state, and its firewall rules (the table is rewritten from the networks left). Returns
/// what is known of it (its name). The caller holds the root's network lock.
fn remove_damaged(root: &StateRoot, name: &str) -> Result<Network, NetError> {
    let _lock = lock_network(root, name)?;
    let mut nl = Netlink::open()?;
    let endpoints_readable = read_endpoints_locked(root, name).is_ok();
    if endpoints_readable {
        for id in prune_stale(root, &mut nl, name)? {
            super::ports::forget_if_unattached(root, &id, name)?;
        }
        let eps = read_endpoints_locked(root, name)?;
        if !eps.endpoints.is_empty() {
            let names: BTreeSet<&str> = eps.endpoints.values().map(|e| e.container_name.as_str()).collect();
            return Err(NetError::NetworkInUse { name: name.to_string(), containers: names.into_iter().collect::<Vec<_>>().join(", ") });
        }
    }
    let bridge = bridge_name(root, name);
    if let Some(i) = nl.link_index(&bridge)? {
        nl.delete_link(i, &bridge)?;
    }
    remove_network_dir(root, name)?;
    super::firewall::rebuild(root)?;
    Ok(Network {
        name: name.to_string(),
        id: String::new(),
        created: String::new(),
        driver: "bridge".into(),
        bridge,
        ipv4: None,
        ipv6: None,
        internal: false,
        attachable: false,
        enable_ipv6: false,
        mtu: 0,
        masquerade: false,
        icc: false,
        host_binding_ipv4: None,
        iface_prefix: String::new(),
        options: BTreeMap::new(),
        labels: BTreeMap::new(),
        ipam_options: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> NetworkSpec {
        NetworkSpec { name: name.into(), ..Default::default() }
    }

    #[test]
    fn names_and_bridges() {
        validate_name("demo_default").unwrap();
        validate_name("a.b-c").unwrap();
        assert!(validate_name("_x").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("").is_err());
        let r1 = StateRoot::new("/tmp/r1");
        let r2 = StateRoot::new("/tmp/r2");
        let b = bridge_name(&r1, "demo_default");
        assert_eq!(b.len(), 15);
        assert!(b.starts_with("berth"));
        assert_ne!(b, bridge_name(&r2, "demo_default"));
        assert_ne!(b, bridge_name(&r1, "demo_other"));
        assert_eq!(b, bridge_name(&r1, "demo_default"));
    }

    #[test]
    fn plans_supported_options_and_refuses_the_rest() {
        let mut s = spec("n1");
        s.driver_opts.insert(OPT_MTU.into(), "1400".into());
        s.driver_opts.insert(OPT_ICC.into(), "false".into());
        s.driver_opts.insert(OPT_BRIDGE_NAME.into(), "br-n1".into());
        let p = plan(&s).unwrap();
        assert_eq!((p.mtu, p.icc, p.bridge.as_deref()), (1400, false, Some("br-n1")));
        s.driver_opts.insert("com.docker.network.bridge.inhibit_ipv4".into(), "true".into());
        let e = plan(&s).unwrap_err().to_string();
        assert!(e.contains("inhibit_ipv4") && e.contains("not supported") && e.contains(OPT_MTU), "{e}");
        let mut s = spec("n2");
        s.driver = Some("overlay".into());
        assert!(plan(&s).unwrap_err().to_string().contains("\"overlay\""));
        let mut s = spec("n3");
        s.driver_opts.insert(OPT_MTU.into(), "big".into());
        assert!(plan(&s).unwrap_err().to_string().contains("MTU"));
    }

    #[test]
    fn plans_ipam_config() {
        let mut s = spec("n4");
        s.ipam.config.push(IpamConfig {
            subnet: Some("10.210.4.0/24".into()),
            gateway: Some("10.210.4.254".into()),
            ip_range: Some("10.210.4.128/25".into()),
            aux_addresses: [("printer".to_string(), "10.210.4.9".to_string())].into(),
        });
        let p = plan(&s).unwrap();
        let v4 = p.v4.unwrap();
        assert_eq!(v4.gateway, Some("10.210.4.254".parse().unwrap()));
        let pool = resolve_pool("n4", &v4, v4.subnet.unwrap(), true).unwrap();
        assert_eq!(pool.aux_addresses["printer"], "10.210.4.9".parse::<IpAddr>().unwrap());

        s.ipam.config[0].gateway = Some("10.210.5.1".into());
        assert!(plan(&s).unwrap_err().to_string().contains("not in subnet"));
        s.ipam.config[0].gateway = None;
        s.ipam.config[0].subnet = Some("10.210.4.1/24".into());
        assert!(plan(&s).unwrap_err().to_string().contains("host bits"));
        let mut s = spec("n5");
        s.ipam.config.push(IpamConfig { subnet: Some("fd00:210:5::/64".into()), ..Default::default() });
        assert!(plan(&s).unwrap_err().to_string().contains("enable_ipv6"));
        s.enable_ipv6 = true;
        assert!(plan(&s).unwrap().v6.is_some());
        let mut s = spec("n6");
        s.enable_ipv6 = true;
        assert!(plan(&s).unwrap_err().to_string().contains("IPv6 subnet"));
    }
}
