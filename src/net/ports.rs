//! Published ports: reserving host ports with bound sockets, and the record of what each
//! container publishes (`networks/.ports/<container id>.json`), from which the firewall's DNAT
//! maps are built.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::NetError;
use super::types::{PortRequest, Protocol, PublishedPort};
use crate::state::StateRoot;
use crate::util::fs::{FsError, create_dir_all_mode, read_json};

/// One DNAT: traffic to `host_ip:host_port` (any local address when `None`) goes to
/// `target:target_port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRule {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub protocol: Protocol,
    pub target: IpAddr,
    pub target_port: u16,
}

/// What one container publishes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRecord {
    pub container_id: String,
    pub container_name: String,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    pub ports: Vec<PortRule>,
    /// Bindings the container's supervisor forwards in userland (IPv6 to an IPv4-only container,
    /// `[::1]`): no map elements, but they hold their port all the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwarded: Vec<PortRule>,
}

pub fn ports_dir(root: &StateRoot) -> PathBuf {
    root.networks_dir().join(".ports")
}

fn record_path(root: &StateRoot, id: &str) -> PathBuf {
    ports_dir(root).join(format!("{id}.json"))
}

/// Every container's port record.
pub fn read_all(root: &StateRoot) -> Result<Vec<PortRecord>, NetError> {
    let dir = ports_dir(root);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FsError::io("read", &dir, e).into()),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| FsError::io("read", &dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        if let Some(r) = read_json::<PortRecord>(&entry.path())? {
            out.push(r);
        }
    }
    Ok(out)
}

pub(crate) fn read(root: &StateRoot, id: &str) -> Result<Option<PortRecord>, NetError> {
    Ok(read_json(&record_path(root, id))?)
}

pub(crate) fn write(root: &StateRoot, rec: &PortRecord) -> Result<(), NetError> {
    create_dir_all_mode(&ports_dir(root), 0o700)?;
    super::network::write_volatile_json(&record_path(root, &rec.container_id), rec)
}

pub(crate) fn delete(root: &StateRoot, id: &str) -> Result<(), NetError> {
    let p = record_path(root, id);
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FsError::io("remove", &p, e).into()),
    }
}

/// Withdraws the ports of a container that is no longer on any network (its supervisor died
/// without detaching).
pub(crate) fn forget_if_unattached(root: &StateRoot, id: &str, held: &str) -> Result<(), NetError> {
    for n in super::network::list(root)? {
        // The caller holds the lock of `held`, where the container is known to be gone.
        if n.name == held {
            continue;
        }
        if super::network::read_endpoints(root, &n.name)?.endpoints.contains_key(id) {
            return Ok(());
        }
    }
    unpublish(root, id)
}

/// Removes a container's DNAT elements and its record.
pub(crate) fn unpublish(root: &StateRoot, id: &str) -> Result<(), NetError> {
    let _fw = super::firewall::lock(root)?;
    let Some(rec) = read(root, id)? else { return Ok(()) };
    delete(root, id)?;
    super::firewall::update_ports_locked(root, "delete", &rec.ports)
}

/// Drops, from other containers' records, rules for the same host address, port and protocol as
/// `rules`: their holders are gone (the ports could be bound again), so their map elements are
/// stale. Returns the dropped rules. The caller holds the firewall lock.
pub(crate) fn evict_stale(root: &StateRoot, id: &str, rules: &[PortRule]) -> Result<Vec<PortRule>, NetError> {
    let same = |a: &PortRule, b: &PortRule| {
        a.host_ip == b.host_ip && a.host_port == b.host_port && a.protocol == b.protocol && a.target.is_ipv4() == b.target.is_ipv4()
    };
    let mut dropped = Vec::new();
    for mut rec in read_all(root)? {
        if rec.container_id == id {
            continue;
        }
        let before = rec.ports.len();
        rec.ports.retain(|p| {
            let stale = rules.iter().any(|r| same(r, p));
            if stale {
                dropped.push(p.clone());
            }
            !stale
        });
        if rec.ports.len() != before {
            if rec.ports.is_empty() {
                delete(root, &rec.container_id)?;
            } else {
                write(root, &rec)?;
            }
        }
    }
    Ok(dropped)
}

/// Who in this root holds `port/proto` on an address overlapping `ip` (for the error message).
fn holder(root: &StateRoot, ip: Option<IpAddr>, port: u16, proto: Protocol) -> Option<String> {
    let recs = read_all(root).ok()?;
    recs.into_iter().find_map(|r| {
        r.ports
            .iter()
            .chain(r.forwarded.iter())
            .any(|p| p.host_port == port && p.protocol == proto && (p.host_ip.is_none() || ip.is_none() || p.host_ip == ip))
            .then(|| match (&r.project, &r.service) {
                (Some(p), Some(s)) => format!("project {p}, service {s} (container {})", r.container_name),
                _ => format!("container {}", r.container_name),
            })
    })
}

/// A socket bound to `addr`, held to keep the port: TCP listens (so that `ss -ltnp` shows who
/// holds it); IPv6 is v6-only so that it does not also take the IPv4 port.
fn bind_socket(addr: SocketAddr, proto: Protocol) -> io::Result<(OwnedFd, u16)> {
    let domain = if addr.is_ipv4() { nix::sys::socket::AddressFamily::Inet } else { nix::sys::socket::AddressFamily::Inet6 };
    let ty = match proto {
        Protocol::Tcp => nix::sys::socket::SockType::Stream,
        Protocol::Udp => nix::sys::socket::SockType::Datagram,
    };
    let fd = nix::sys::socket::socket(domain, ty, nix::sys::socket::SockFlag::SOCK_CLOEXEC, None)?;
    if addr.is_ipv6() {
        nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::Ipv6V6Only, &true)?;
    }
    if proto == Protocol::Tcp {
        // Connections the forwarder accepted leave TIME_WAIT sockets on the port; they must not
        // keep the next run of the container from binding it. Two listeners still conflict.
        nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReuseAddr, &true)?;
    }
    let sa = nix::sys::socket::SockaddrStorage::from(addr);
    nix::sys::socket::bind(fd.as_raw_fd(), &sa)?;
    if proto == Protocol::Tcp {
        nix::sys::socket::listen(&fd, nix::sys::socket::Backlog::new(1).expect("1 is a valid backlog"))?;
    }
    let local: nix::sys::socket::SockaddrStorage = nix::sys::socket::getsockname(fd.as_raw_fd())?;
    let port = local.as_sockaddr_in().map(|s| s.port()).or_else(|| local.as_sockaddr_in6().map(|s| s.port())).unwrap_or(0);
    // SAFETY: nix's OwnedFd is std's OwnedFd; this only re-types it.
    let fd = unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(fd)) };
    Ok((fd, port))
}

/// The published result of one request, with the sockets that reserve it.
pub(crate) struct Reserved {
    pub published: Vec<PublishedPort>,
    /// Kernel DNAT rules (map elements).
    pub rules: Vec<PortRule>,
    /// Bindings served by the supervisor's forwarder ([`super::proxy`]), recorded so that a
    /// conflict can name their holder.
    pub forwarded: Vec<PortRule>,
    /// Sockets that only hold their port (the kernel DNATs its traffic before it reaches them).
    pub fds: Vec<OwnedFd>,
    /// Sockets whose traffic the forwarder relays.
    pub forwards: Vec<super::proxy::Forward>,
}

/// Whether the host has IPv6 (Docker skips the `[::]` side of a port silently when not).
pub(crate) fn host_has_ipv6() -> bool {
    match std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6") {
        Ok(s) => s.trim() != "1",
        Err(_) => false,
    }
}

/// How one bound address is served.
struct Bind {
    addr: IpAddr,
    /// The DNAT rule's host address (`None`: every local address); no rule when `nat` is false.
    rule_ip: Option<IpAddr>,
    /// The container address for the DNAT rule, if the kernel serves this address.
    nat: Option<IpAddr>,
    /// The container address the forwarder relays to, if it serves this address.
    forward: Option<IpAddr>,
}

/// Reserves the host port(s) of one request and returns the DNAT rules for it. `v4`/`v6` are the
/// container's addresses; `default_ip` is the network's `host_binding_ipv4`.
///
/// Without a host address a port is published on `0.0.0.0` and, when the host has IPv6, on `[::]`
/// (as Docker does); an IPv4 host address binds IPv4 only, an IPv6 one IPv6 only. IPv4 is served by
/// kernel DNAT. IPv6 is served by the forwarder, to the container's IPv6 address when it has one
/// (else its IPv4 address); with an IPv6 container address the kernel also DNATs what arrives
/// from elsewhere than `::1`, so the forwarder then sees only the host's own loopback traffic.
pub(crate) fn reserve(
    root: &StateRoot,
    req: &PortRequest,
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
    default_ip: Option<Ipv4Addr>,
) -> Result<Reserved, NetError> {
    let requested = req.host_ip.or(default_ip.filter(|ip| !ip.is_unspecified()).map(IpAddr::V4));
    let v6_bind = |addr: Ipv6Addr| -> Result<Bind, NetError> {
        let forward = v6
            .map(IpAddr::V6)
            .or(v4.map(IpAddr::V4))
            .ok_or_else(|| NetError::PortFamily { port: describe(req), family: "IPv4 or IPv6" })?;
        let nat = v6.filter(|_| !addr.is_loopback()).map(IpAddr::V6);
        let rule_ip = (!addr.is_unspecified()).then_some(IpAddr::V6(addr));
        Ok(Bind { addr: IpAddr::V6(addr), rule_ip, nat, forward: Some(forward) })
    };
    let mut binds: Vec<Bind> = Vec::new();
    match requested {
        Some(IpAddr::V4(ip)) => {
            let t = v4.ok_or_else(|| NetError::PortFamily { port: describe(req), family: "IPv4" })?;
            let rule_ip = (!ip.is_unspecified()).then_some(IpAddr::V4(ip));
            binds.push(Bind { addr: IpAddr::V4(ip), rule_ip, nat: Some(IpAddr::V4(t)), forward: None });
        }
        Some(IpAddr::V6(ip)) => binds.push(v6_bind(ip)?),
        None => {
            if let Some(t) = v4 {
                binds.push(Bind { addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED), rule_ip: None, nat: Some(IpAddr::V4(t)), forward: None });
            }
            if host_has_ipv6() {
                binds.push(v6_bind(Ipv6Addr::UNSPECIFIED)?);
            }
            if binds.is_empty() {
                return Err(NetError::PortFamily { port: describe(req), family: "IPv4" });
            }
        }
    }
    let candidates: Vec<u16> = match (req.host_port.filter(|p| *p != 0), req.host_port_end) {
        (Some(a), Some(b)) if b > a => (a..=b).collect(),
        (Some(a), _) => vec![a],
        (None, _) => vec![0],
    };
    let mut last_err = None;
    'port: for &want in &candidates {
        // A random port must be free in every family: retry a few times when the kernel's pick
        // for the first is taken in another.
        for _ in 0..if want == 0 { 8 } else { 1 } {
            let mut fds = Vec::new();
            let mut port = want;
            let mut ok = true;
            for b in &binds {
                match bind_socket(SocketAddr::new(b.addr, port), req.protocol) {
                    Ok((fd, p)) => {
                        port = p;
                        fds.push(fd);
                    }
                    Err(e) => {
                        last_err = Some((b.addr, port, e));
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                let mut r =
                    Reserved { published: Vec::new(), rules: Vec::new(), forwarded: Vec::new(), fds: Vec::new(), forwards: Vec::new() };
                for (b, fd) in binds.iter().zip(fds) {
                    r.published.push(PublishedPort {
                        host_ip: b.addr,
                        host_port: port,
                        container_port: req.container_port,
                        protocol: req.protocol,
                    });
                    let rule = |target: IpAddr| PortRule {
                        host_ip: b.rule_ip,
                        host_port: port,
                        protocol: req.protocol,
                        target,
                        target_port: req.container_port,
                    };
                    if let Some(t) = b.nat {
                        r.rules.push(rule(t));
                    }
                    match b.forward {
                        Some(t) => {
                            r.forwarded.push(PortRule { host_ip: Some(b.addr), ..rule(t) });
                            r.forwards.push(super::proxy::Forward {
                                socket: fd,
                                protocol: req.protocol,
                                target: SocketAddr::new(t, req.container_port),
                                refuse: Vec::new(),
                            });
                        }
                        None => r.fds.push(fd),
                    }
                }
                return Ok(r);
            }
            if want != 0 {
                continue 'port;
            }
        }
    }
    let (addr, port, e) = last_err.expect("at least one bind was tried");
    let port_shown =
        if candidates.len() > 1 { format!("{}-{}", candidates[0], candidates[candidates.len() - 1]) } else { port.to_string() };
    Err(match e.raw_os_error() {
        Some(libc::EADDRINUSE) => NetError::PortInUse {
            port: format!("{port_shown}/{}", req.protocol),
            host_ip: addr,
            holder: holder(root, Some(addr).filter(|a| !a.is_unspecified()), port, req.protocol),
        },
        Some(libc::EADDRNOTAVAIL) | Some(libc::EAFNOSUPPORT) => {
            NetError::PortAddress { port: format!("{port_shown}/{}", req.protocol), host_ip: addr }
        }
        _ => NetError::io(format!("reserve host port {port_shown}/{} on {addr}", req.protocol), e),
    })
}

fn describe(req: &PortRequest) -> String {
    match req.host_port {
        Some(p) if p != 0 => format!("{p}:{}/{}", req.container_port, req.protocol),
        _ => format!("{}/{}", req.container_port, req.protocol),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_port_is_reserved_and_conflicts_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::new(dir.path());
        let req = PortRequest {
            host_ip: Some("127.0.0.1".parse().unwrap()),
            host_port: None,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_port_end: None,
        };
        let r = reserve(&root, &req, Some(Ipv4Addr::new(10, 210, 0, 2)), None, None).unwrap();
        let port = r.published[0].host_port;
        assert_ne!(port, 0);
        assert_eq!(r.rules[0].target_port, 80);
        // The same port again is refused, naming the port.
        let again = PortRequest { host_port: Some(port), ..req.clone() };
        let e = reserve(&root, &again, Some(Ipv4Addr::new(10, 210, 0, 3)), None, None).err().unwrap();
        assert!(e.to_string().contains(&format!("{port}/tcp")), "{e}");
        // A range falls through to the next free port.
        let range = PortRequest { host_port: Some(port), host_port_end: Some(port.saturating_add(5)), ..req.clone() };
        if port < u16::MAX - 5 {
            let r2 = reserve(&root, &range, Some(Ipv4Addr::new(10, 210, 0, 3)), None, None).unwrap();
            assert_ne!(r2.published[0].host_port, port);
        }
        if host_has_ipv6() {
            // [::1] to an IPv4-only container is forwarded in userland, with no DNAT rule.
            let v6 = PortRequest { host_ip: Some("::1".parse().unwrap()), ..req.clone() };
            let r = reserve(&root, &v6, Some(Ipv4Addr::new(10, 210, 0, 3)), None, None).unwrap();
            assert!(r.rules.is_empty() && r.fds.is_empty());
            assert_eq!(r.forwards[0].target, "10.210.0.3:80".parse().unwrap());
            assert_eq!(r.published[0].host_ip, "::1".parse::<IpAddr>().unwrap());
            // No host address: 0.0.0.0 by DNAT and [::] by the forwarder, on the same port.
            let both = PortRequest { host_ip: None, ..req.clone() };
            let r = reserve(&root, &both, Some(Ipv4Addr::new(10, 210, 0, 3)), None, None).unwrap();
            let ips: Vec<String> = r.published.iter().map(|p| p.host_ip.to_string()).collect();
            assert_eq!(ips, ["0.0.0.0", "::"]);
            assert_eq!(r.published[0].host_port, r.published[1].host_port);
            assert_eq!(r.rules.len(), 1);
            assert_eq!(r.forwards.len(), 1);
        }
        // An IPv4 host address stays IPv4.
        let v4only = PortRequest { host_ip: Some("0.0.0.0".parse().unwrap()), ..req };
        let r = reserve(&root, &v4only, Some(Ipv4Addr::new(10, 210, 0, 3)), None, None).unwrap();
        assert_eq!(r.published.len(), 1);
        assert!(r.forwards.is_empty());
    }
}
