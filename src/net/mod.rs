//! Networking: netlink links, bridges and veths, IPAM, the nftables firewall, published ports and
//! the embedded DNS resolver.
//!
//! The runtime calls [`attach`] from the supervisor once a container's network namespace exists
//! and before its process runs, and [`detach`] when the container stops for good. The types in
//! [`types`] are the contract between the two (see docs/design.md). Networks themselves are made
//! and removed by [`network::create`] and [`network::remove`].

pub mod dns;
pub mod firewall;
pub mod ipam;
pub mod netlink;
pub mod network;
pub mod nftnl;
pub mod ports;
pub mod proxy;
pub mod types;

use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

pub use network::{IpamConfig, IpamSpec, Network, NetworkInfo, NetworkSpec};
pub use types::*;

use crate::state::StateRoot;
use crate::util::fs::FsError;
use crate::util::lock::LockError;
use ipam::{Allocator, Subnet};
use netlink::Netlink;
use network::Endpoint;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("cannot {what}")]
    Netlink {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot enter the network namespace {}", path.display())]
    Netns {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot {what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot set {path}; is /proc/sys writable (are you root)?")]
    Sysctl {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("nft could not {what}: {stderr}")]
    Nft { what: String, stderr: String },
    #[error("the nft binary is missing: install nftables (apt-get install nftables)")]
    NftMissing,
    #[error("network {0} not found")]
    NetworkNotFound(String),
    #[error("network with name {0} already exists")]
    NetworkExists(String),
    #[error("network id prefix {0} matches several networks; give more of the id or the name")]
    Ambiguous(String),
    #[error("invalid network name {0:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit")]
    InvalidName(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("network {name} is in use by {containers}; stop or remove them first")]
    NetworkInUse { name: String, containers: String },
    #[error(
        "a link called {name} already exists, so network {network} cannot create its bridge; \
         remove it (ip link delete {name}) or choose another bridge name"
    )]
    LinkExists { name: String, network: String },
    #[error("network {network}: subnet {subnet} overlaps {other}, which is already in use on this host; choose another subnet")]
    SubnetOverlap { network: String, subnet: Subnet, other: Subnet },
    #[error(
        "network {0}: no free subnet is left in the default address pools (172.17.0.0/12 and \
         192.168.0.0/16, or BERTH_DEFAULT_ADDRESS_POOLS); set an ipam.config subnet, or remove unused networks"
    )]
    PoolExhausted(String),
    #[error("network {network} has no free address left in {subnet}; remove containers or use a larger subnet")]
    PoolFull { network: String, subnet: Subnet },
    #[error("container {container}: address {ip} on network {network} {why}")]
    AddressUnavailable { container: String, network: String, ip: IpAddr, why: String },
    #[error("container {container}: invalid mac_address {mac:?}: expected six hex bytes like 02:42:ac:11:00:02 (unicast)")]
    InvalidMac { container: String, mac: String },
    #[error(
        "cannot publish port {port} on {host_ip}: it is already in use{}; free it or publish another host port",
        holder.as_ref().map(|h| format!(" by {h}")).unwrap_or_else(|| " by another program".into())
    )]
    PortInUse { port: String, host_ip: IpAddr, holder: Option<String> },
    #[error("cannot publish port {port} on {host_ip}: the host has no such address")]
    PortAddress { port: String, host_ip: IpAddr },
    #[error("cannot publish port {port}: the container has no {family} address on its networks")]
    PortFamily { port: String, family: &'static str },
    #[error("{0}")]
    Dns(String),
}

impl NetError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> NetError {
        NetError::Io { what: what.into(), source }
    }
    pub(crate) fn invalid(msg: impl Into<String>) -> NetError {
        NetError::Invalid(msg.into())
    }
}

/// The host end of a container's veth on a network: `veth` and 11 hex digits of a hash of the
/// root, the container and the network.
pub fn veth_name(root: &StateRoot, container_id: &str, network: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(root.path().as_os_str().as_encoded_bytes());
    h.update([0]);
    h.update(container_id.as_bytes());
    h.update([0]);
    h.update(network.as_bytes());
    format!("veth{}", &hex::encode(h.finalize())[..11])
}

/// Undoes a half-done attach on failure.
struct Undo<'a> {
    root: &'a StateRoot,
    id: &'a str,
    networks: Vec<String>,
    links: Vec<String>,
    ports: bool,
    armed: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if self.ports {
            let _ = ports::unpublish(self.root, self.id);
        }
        for n in &self.networks {
            if let Ok(_l) = network::lock_network(self.root, n) {
                if let Ok(mut eps) = network::read_endpoints_locked(self.root, n) {
                    // The container keeps its addresses (held) for its next start.
                    if let Some(ep) = eps.endpoints.remove(self.id) {
                        eps.held.insert(self.id.to_string(), ep);
                        let _ = network::write_endpoints(self.root, n, &eps);
                    }
                }
            }
        }
        if let Ok(mut nl) = Netlink::open() {
            for l in &self.links {
                if let Ok(Some(i)) = nl.link_index(l) {
                    let _ = nl.delete_link(i, l);
                }
            }
        }
    }
}

struct Attached {
    network: Network,
    info: EndpointInfo,
    inner_index: u32,
}

/// Picks the container's address in one pool: the requested static one, else the one it had
/// before (a restart: held for it while it was stopped), else the lowest free one. Addresses
/// held for stopped containers are not free. Released addresses whose veth still lives (a
/// namespace that outlived its container) stay out of use until the veth is gone.
fn allocate(
    host: &mut Netlink,
    req: &AttachRequest,
    net: &Network,
    pool: &network::Pool,
    eps: &mut network::Endpoints,
    want: Option<IpAddr>,
    prev: Option<IpAddr>,
) -> Result<IpAddr, NetError> {
    let reserved: std::collections::BTreeSet<IpAddr> = std::iter::once(pool.gateway).chain(pool.aux_addresses.values().copied()).collect();
    let mut used: std::collections::BTreeSet<IpAddr> = eps
        .endpoints
        .values()
        .chain(eps.held.values())
        .flat_map(|e| e.ipv4.map(IpAddr::V4).into_iter().chain(e.ipv6.map(IpAddr::V6)))
        .collect();
    let unavailable = |ip: IpAddr, why: String| NetError::AddressUnavailable {
        container: req.container_name.clone(),
        network: net.name.clone(),
        ip,
        why,
    };
    // Whether a released address may be given again (its veth is gone); forgets it if so.
    let mut free_again = |eps: &mut network::Endpoints, ip: IpAddr| -> Result<bool, NetError> {
        let Some(link) = eps.released.get(&ip) else { return Ok(true) };
        if host.link_index(link)?.is_some() {
            return Ok(false);
        }
        eps.released.remove(&ip);
        Ok(true)
    };
    if let Some(ip) = want {
        let a = Allocator { subnet: pool.subnet, range: pool.ip_range, reserved: &reserved, used: &used };
        if let Err(why) = a.check_static(ip) {
            let holder = eps
                .endpoints
                .values()
                .chain(eps.held.values())
                .find(|e| e.ipv4.map(IpAddr::V4) == Some(ip) || e.ipv6.map(IpAddr::V6) == Some(ip))
                .map(|e| e.container_name.clone());
            return Err(unavailable(
                ip,
                match holder {
                    Some(h) if why == "is already in use" => format!("is already in use by container {h}"),
                    _ => why.to_string(),
                },
            ));
        }
        if !free_again(eps, ip)? {
            return Err(unavailable(ip, "is still held by a network namespace that outlived its container".into()));
        }
        return Ok(ip);
    }
    if let Some(ip) = prev {
        let a = Allocator { subnet: pool.subnet, range: pool.ip_range, reserved: &reserved, used: &used };
        if a.check_static(ip).is_ok() && free_again(eps, ip)? {
            return Ok(ip);
        }
    }
    loop {
        let a = Allocator { subnet: pool.subnet, range: pool.ip_range, reserved: &reserved, used: &used };
        let ip = a.next().ok_or_else(|| NetError::PoolFull { network: net.name.clone(), subnet: pool.subnet })?;
        if free_again(eps, ip)? {
            return Ok(ip);
        }
        used.insert(ip);
    }
}

#[allow(clippy::too_many_arguments)]
fn attach_endpoint(
    root: &StateRoot,
    req: &AttachRequest,
    epr: &EndpointRequest,
    position: usize,
    host: &mut Netlink,
    inner: &mut Netlink,
    netns: &File,
    undo: &mut Undo,
) -> Result<Attached, NetError> {
    if network::validate_name(&epr.network).is_err() {
        return Err(NetError::NetworkNotFound(epr.network.clone()));
    }
    let _lock = network::lock_network(root, &epr.network)?;
    let net = network::read_network(root, &epr.network)?.ok_or_else(|| NetError::NetworkNotFound(epr.network.clone()))?;
    let bridge = network::ensure_bridge(root, host, &net)?;
    let mut eps = network::read_endpoints_locked(root, &net.name)?;
    // Forget a few released addresses whose veth is gone, so that the list stays short.
    let check: Vec<(IpAddr, String)> = eps.released.iter().take(2).map(|(ip, l)| (*ip, l.clone())).collect();
    for (ip, link) in check {
        if host.link_index(&link)?.is_none() {
            eps.released.remove(&ip);
        }
    }
    // Addresses held for containers that no longer exist (their state was deleted without a
    // `rm`) are freed, so that they cannot leak for ever.
    let gone: Vec<String> =
        eps.held.keys().filter(|id| **id != req.container_id && !root.containers_dir().join(id).is_dir()).cloned().collect();
    for id in gone {
        if let Some(ep) = eps.held.remove(&id) {
            released(&mut eps, &ep);
        }
    }
    // A container attached again (restarted in a new namespace) keeps its addresses.
    let held = eps.held.remove(&req.container_id);
    let previous = eps.endpoints.remove(&req.container_id).or(held);
    let v4 = match &net.ipv4 {
        Some(p) => {
            let prev = previous.as_ref().and_then(|e| e.ipv4).map(IpAddr::V4);
            match allocate(host, req, &net, p, &mut eps, epr.ipv4_address.map(IpAddr::V4), prev)? {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            }
        }
        None => None,
    };
    let v6 = match &net.ipv6 {
        Some(p) => {
            let prev = previous.as_ref().and_then(|e| e.ipv6).map(IpAddr::V6);
            match allocate(host, req, &net, p, &mut eps, epr.ipv6_address.map(IpAddr::V6), prev)? {
                IpAddr::V6(a) => Some(a),
                IpAddr::V4(_) => None,
            }
        }
        None => {
            if let Some(a) = epr.ipv6_address {
                return Err(NetError::AddressUnavailable {
                    container: req.container_name.clone(),
                    network: net.name.clone(),
                    ip: IpAddr::V6(a),
                    why: "cannot be used: the network has no IPv6 subnet (enable_ipv6)".into(),
                });
            }
            None
        }
    };
    let mac = match &epr.mac_address {
        Some(m) if !m.is_empty() => {
            ipam::parse_mac(m).ok_or_else(|| NetError::InvalidMac { container: req.container_name.clone(), mac: m.clone() })?
        }
        _ => ipam::mac_for(v4),
    };
    let ifname = format!("{}{}", net.iface_prefix, position);
    let host_if = veth_name(root, &req.container_id, &net.name);
    if let Some(stale) = host.link_index(&host_if)? {
        host.delete_link(stale, &host_if)?;
    }
    host.create_veth(&host_if, Some(bridge), net.mtu, &ifname, mac, netns)?;
    undo.links.push(host_if.clone());
    if !net.icc {
        if let Some(i) = host.link_index(&host_if)? {
            host.set_port_isolated(i, &host_if)?;
        }
    }
    let inner_index = inner.link_index(&ifname)?.ok_or_else(|| NetError::Netlink {
        what: format!("find {ifname} in the container's namespace after creating it"),
        source: io::ErrorKind::NotFound.into(),
    })?;
    // Before the link comes up (when the kernel would give it a link-local address): on a network
    // without IPv6 the interface has no IPv6 at all, as Docker does (CVE-2024-32473), so that the
    // container can neither send router advertisements to its neighbours nor reach the host over
    // link-local addresses; on a network with IPv6 it takes no router advertisement.
    match &net.ipv6 {
        None => set_ipv6_conf(&req.netns_path, &ifname, "disable_ipv6", "1")?,
        Some(_) => set_ipv6_conf(&req.netns_path, &ifname, "accept_ra", "0")?,
    }
    inner.set_up(inner_index, &ifname)?;
    if let (Some(a), Some(p)) = (v4, &net.ipv4) {
        inner.add_address(inner_index, IpAddr::V4(a), p.subnet.prefix(), &ifname)?;
    }
    if let (Some(a), Some(p)) = (v6, &net.ipv6) {
        inner.add_address(inner_index, IpAddr::V6(a), p.subnet.prefix(), &ifname)?;
    }
    let endpoint_id = previous.as_ref().map(|p| p.endpoint_id.clone()).unwrap_or_else(crate::util::id::new_id);
    let mac_s = ipam::format_mac(&mac);
    eps.endpoints.insert(
        req.container_id.clone(),
        Endpoint {
            endpoint_id: endpoint_id.clone(),
            container_name: req.container_name.clone(),
            hostname: req.hostname.clone(),
            project: req.project.clone(),
            service: req.service.clone(),
            aliases: epr.aliases.clone(),
            ipv4: v4,
            ipv6: v6,
            mac: mac_s.clone(),
            interface: ifname.clone(),
            host_interface: host_if.clone(),
            dns_servers: req.dns_servers.clone(),
        },
    );
    network::write_endpoints(root, &net.name, &eps)?;
    undo.networks.push(net.name.clone());
    let info = EndpointInfo {
        network: net.name.clone(),
        network_id: net.id.clone(),
        endpoint_id,
        interface: ifname,
        host_interface: host_if,
        ipv4: v4,
        ipv4_prefix: net.ipv4.as_ref().map(|p| p.subnet.prefix()).unwrap_or(0),
        gateway: net.ipv4.as_ref().and_then(|p| match p.gateway {
            IpAddr::V4(g) => Some(g),
            IpAddr::V6(_) => None,
        }),
        ipv6: v6,
        ipv6_prefix: net.ipv6.as_ref().map(|p| p.subnet.prefix()).unwrap_or(0),
        ipv6_gateway: net.ipv6.as_ref().and_then(|p| match p.gateway {
            IpAddr::V6(g) => Some(g),
            IpAddr::V4(_) => None,
        }),
        mac: mac_s,
        aliases: epr.aliases.clone(),
    };
    Ok(Attached { network: net, info, inner_index })
}

/// Sets `net.ipv6.conf.<ifname>.<key>` inside the namespace at `netns` (its own /proc/sys/net is
/// the calling thread's namespace's). A host without IPv6 (booted with `ipv6.disable=1`) has no
/// such file, and nothing to turn off.
fn set_ipv6_conf(netns: &std::path::Path, ifname: &str, key: &str, value: &str) -> Result<(), NetError> {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/{key}");
    let _inside = netlink::NetnsGuard::enter(netns)?;
    match std::fs::write(&path, value) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetError::Sysctl { path: format!("{path} in the container's network namespace"), source: e }),
    }
}

/// Connects a container's network namespace to its networks: a veth per endpoint, addresses,
/// routes, published ports and DNS records. The returned reservations hold the published host
/// ports and must stay open as long as the container runs.
///
/// With no endpoints (`network_mode: none`) it only brings `lo` up.
pub fn attach(root: &StateRoot, req: &AttachRequest) -> Result<AttachResult, NetError> {
    let mut inner = Netlink::open_in(&req.netns_path)?;
    let lo = inner.link_index("lo")?.unwrap_or(1);
    inner.set_up(lo, "lo in the container")?;
    if req.endpoints.is_empty() {
        if !req.ports.is_empty() {
            return Err(NetError::invalid(format!(
                "container {}: ports cannot be published without a network (network_mode none)",
                req.container_name
            )));
        }
        return Ok(AttachResult::default());
    }
    let netns = File::open(&req.netns_path).map_err(|e| NetError::Netns { path: req.netns_path.clone(), source: e })?;
    // A container comes up behind the firewall, or not at all: a table lost since the last
    // change (a firewalld reload, `nft flush ruleset`) is rewritten from state first.
    firewall::verify(root)?;
    let mut host = Netlink::open()?;
    let mut undo = Undo { root, id: &req.container_id, networks: Vec::new(), links: Vec::new(), ports: false, armed: true };
    let mut attached = Vec::new();
    for (i, epr) in req.endpoints.iter().enumerate() {
        attached.push(attach_endpoint(root, req, epr, i, &mut host, &mut inner, &netns, &mut undo)?);
    }
    // The default route goes through the non-internal network with the highest gw_priority
    // (the first on a tie), as Docker does.
    let mut best: Option<usize> = None;
    for (i, a) in attached.iter().enumerate() {
        if a.network.internal {
            continue;
        }
        if best.is_none_or(|b| req.endpoints[i].gw_priority > req.endpoints[b].gw_priority) {
            best = Some(i);
        }
    }
    if let Some(b) = best {
        let a = &attached[b];
        if let Some(g) = a.info.gateway {
            inner.add_default_route(IpAddr::V4(g), a.inner_index)?;
        }
        if let (Some(g), Some(_)) = (a.info.ipv6_gateway, a.info.ipv6) {
            inner.add_default_route(IpAddr::V6(g), a.inner_index)?;
        }
    }
    let mut published = Vec::new();
    let mut reservations = Vec::new();
    let mut forwards = Vec::new();
    if !req.ports.is_empty() {
        // Ports go to the address on the gateway network (the first network when all are internal).
        let target = &attached[best.unwrap_or(0)];
        let mut rules = Vec::new();
        let mut forwarded = Vec::new();
        for p in &req.ports {
            let r = ports::reserve(root, p, target.info.ipv4, target.info.ipv6, target.network.host_binding_ipv4)
                .map_err(|e| with_container(e, req))?;
            published.extend(r.published);
            rules.extend(r.rules);
            forwarded.extend(r.forwarded);
            reservations.extend(r.fds);
            forwards.extend(r.forwards);
        }
        let _fw = firewall::lock(root)?;
        firewall::ensure_current_locked(root)?;
        ports::write(
            root,
            &ports::PortRecord {
                container_id: req.container_id.clone(),
                container_name: req.container_name.clone(),
                project: req.project.clone(),
                service: req.service.clone(),
                ports: rules.clone(),
                forwarded,
            },
        )?;
        undo.ports = true;
        let stale = ports::evict_stale(root, &req.container_id, &rules)?;
        firewall::update_ports_locked(root, "delete", &stale)?;
        firewall::update_ports_locked(root, "add", &rules)?;
        // The relay serves the host's own addresses: containers on internal networks reach them
        // through their gateway, and must not get through to a published port that way.
        let internal: Vec<Subnet> =
            network::list(root)?.iter().filter(|n| n.internal).flat_map(|n| n.pools().map(|p| p.subnet).collect::<Vec<_>>()).collect();
        for f in &mut forwards {
            f.refuse = internal.clone();
        }
    }
    crate::timing!("attach: veth linked, ports published");
    // The new names must answer before the container's process runs.
    if !dns::ensure_running(root)? {
        dns::sync(root);
    }
    crate::timing!("attach: DNS names answer");
    let nameservers =
        attached.first().and_then(|a| a.info.gateway.map(IpAddr::V4).or(a.info.ipv6_gateway.map(IpAddr::V6))).into_iter().collect();
    undo.armed = false;
    Ok(AttachResult {
        attachment: Attachment { endpoints: attached.into_iter().map(|a| a.info).collect(), ports: published, nameservers },
        reservations,
        forwards,
    })
}

fn with_container(e: NetError, req: &AttachRequest) -> NetError {
    match e {
        NetError::PortInUse { port, host_ip, holder } => {
            NetError::PortInUse { port: format!("{port} for container {}", req.container_name), host_ip, holder }
        }
        e => e,
    }
}

/// Undoes [`attach`] for a container that stopped: port rules and DNS records go, but its
/// addresses stay held for it (see `Endpoints::held`) until [`release`] when it is removed, so
/// that it comes back on the same addresses, as Docker's containers do. Idempotent; the veths
/// die with the namespace.
pub fn detach(root: &StateRoot, container_id: &str) -> Result<(), NetError> {
    for n in network::list(root)? {
        let _lock = network::lock_network(root, &n.name)?;
        let mut eps = network::read_endpoints_locked(root, &n.name)?;
        let Some(ep) = eps.endpoints.remove(container_id) else { continue };
        eps.held.insert(container_id.to_string(), ep);
        network::write_endpoints(root, &n.name, &eps)?;
    }
    ports::unpublish(root, container_id)
}

/// Gives back everything [`attach`] took for a container being removed: what [`detach`] undoes,
/// and its held addresses, which become free for others. Idempotent.
pub fn release(root: &StateRoot, container_id: &str) -> Result<(), NetError> {
    // A network whose record is damaged still has its endpoints file: the container leaves it
    // too, so that removing that network (`down`, `network rm`) does not find it in use.
    let damaged: Vec<String> = network::list_damaged(root)?.into_iter().map(|d| d.name).collect();
    let names = network::list(root)?.into_iter().map(|n| (n.name, false)).chain(damaged.into_iter().map(|n| (n, true)));
    for (name, damaged) in names {
        let _lock = network::lock_network(root, &name)?;
        let mut eps = match network::read_endpoints_locked(root, &name) {
            Ok(eps) => eps,
            Err(_) if damaged => continue,
            Err(e) => return Err(e),
        };
        let live = eps.endpoints.remove(container_id);
        let held = eps.held.remove(container_id);
        if live.is_none() && held.is_none() {
            continue;
        }
        for ep in live.into_iter().chain(held) {
            released(&mut eps, &ep);
        }
        network::write_endpoints(root, &name, &eps)?;
    }
    ports::unpublish(root, container_id)
}

/// Releases what the network still holds for a container found dead (its supervisor killed, so
/// nobody ran [`detach`]): its DNAT rules and its DNS names (its addresses stay held for it until it is removed, as for
/// a stopped one), so that its published
/// ports stop leading to a stale address and its names stop answering before the next start.
/// Cheap when there is nothing left (one small file and each network's endpoints read); returns
/// whether anything was released. The caller has made sure that the container is dead and that
/// no start of it is under way (it holds the container's lock).
pub fn release_dead(root: &StateRoot, container_id: &str) -> Result<bool, NetError> {
    let mut held = ports::read(root, container_id)?.is_some();
    if !held {
        for n in network::list(root)? {
            if network::read_endpoints(root, &n.name)?.endpoints.contains_key(container_id) {
                held = true;
                break;
            }
        }
    }
    if !held {
        return Ok(false);
    }
    detach(root, container_id)?;
    dns::sync(root);
    Ok(true)
}

/// Frees a departed endpoint's addresses. The namespace usually dies with the container and takes
/// the veth along, but the kernel does so a little later, and a namespace shared with another
/// container lives on. Rather than wait for it or delete the veth here (a costly RCU wait), the
/// addresses stay out of use until the veth is gone (checked when they come up again).
fn released(eps: &mut network::Endpoints, ep: &Endpoint) {
    for ip in ep.ipv4.map(IpAddr::V4).into_iter().chain(ep.ipv6.map(IpAddr::V6)) {
        eps.released.insert(ip, ep.host_interface.clone());
    }
}

/// Removes every network of the root with its links, rules and resolver (teardown). Endpoints
/// are dropped: their containers are already gone.
pub fn teardown(root: &StateRoot) -> Vec<NetError> {
    let mut errors = Vec::new();
    dns::stop(root);
    let networks = match network::list(root) {
        Ok(n) => n,
        Err(e) => {
            errors.push(e);
            Vec::new()
        }
    };
    // A network whose record is damaged still has its bridge, under the name berth gives it.
    let damaged: Vec<(String, String)> =
        network::list_damaged(root).unwrap_or_default().into_iter().map(|d| (network::bridge_name(root, &d.name), d.name)).collect();
    let all = networks.iter().map(|n| (n.bridge.clone(), n.name.clone())).chain(damaged.iter().cloned());
    if let Ok(mut nl) = Netlink::open() {
        for (bridge, name) in all {
            let eps = network::read_endpoints(root, &name).unwrap_or_default();
            let links = eps.endpoints.values().chain(eps.held.values()).map(|e| &e.host_interface).chain(eps.released.values());
            for link in links {
                if let Ok(Some(i)) = nl.link_index(link) {
                    if let Err(e) = nl.delete_link(i, link) {
                        errors.push(e);
                    }
                }
            }
            match nl.link_index(&bridge) {
                Ok(Some(i)) => {
                    if let Err(e) = nl.delete_link(i, &bridge) {
                        errors.push(e);
                    }
                }
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
    }
    if !networks.is_empty() || !damaged.is_empty() || root.networks_dir().join(".firewall.json").exists() {
        if let Err(e) = firewall::remove_all(root) {
            errors.push(e);
        }
    }
    if let Err(e) = crate::util::fs::remove_dir_all_if_exists(&root.networks_dir()) {
        errors.push(e.into());
    }
    errors
}
