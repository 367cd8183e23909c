//! A small synchronous rtnetlink client: links, addresses and routes, in the caller's network
//! namespace or in another one (the socket is created inside it and keeps working from outside).
//!
//! The supervisor that calls [`crate::net::attach`] is single-threaded, so this is blocking
//! request/ack over one `netlink-sys` socket, as netavark does, with no async runtime.

use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::sched::CloneFlags;

use super::NetError;

/// A route as the IPAM needs to see it: where it goes and through which link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub destination: IpAddr,
    pub prefix: u8,
    pub oif: Option<u32>,
    /// True for a route with a gateway (a VPN or static route), false for a connected one.
    pub via_gateway: bool,
}

/// An address configured on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressInfo {
    pub address: IpAddr,
    pub prefix: u8,
    pub index: u32,
}

/// Switches the calling thread into another network namespace and back on drop.
pub struct NetnsGuard {
    original: OwnedFd,
}

impl NetnsGuard {
    /// Enters the namespace at `path` (e.g. `/proc/<pid>/ns/net`).
    pub fn enter(path: &Path) -> Result<NetnsGuard, NetError> {
        let original: OwnedFd =
            File::open("/proc/thread-self/ns/net").map_err(|e| NetError::io("open the current network namespace", e))?.into();
        let target = File::open(path).map_err(|e| NetError::Netns { path: path.into(), source: e })?;
        nix::sched::setns(target.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| NetError::Netns { path: path.into(), source: e.into() })?;
        Ok(NetnsGuard { original })
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        // Going back to a namespace we were in cannot fail short of a kernel bug; if it did, this
        // thread would act in the wrong namespace, so stop rather than go on.
        if let Err(e) = nix::sched::setns(self.original.as_fd(), CloneFlags::CLONE_NEWNET) {
            eprintln!("berth: cannot return to the original network namespace: {e}");
            std::process::abort();
        }
    }
}

pub struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

fn nl_err(what: impl Into<String>, source: io::Error) -> NetError {
    NetError::Netlink { what: what.into(), source }
}

impl Netlink {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> Result<Netlink, NetError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| nl_err("open a netlink socket", e))?;
        socket.bind_auto().map_err(|e| nl_err("bind a netlink socket", e))?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(|e| nl_err("connect a netlink socket", e))?;
        let _ = socket.set_ext_ack(true);
        Ok(Netlink { socket, seq: 0, buf: vec![0; 64 * 1024] })
    }

    /// A socket inside the network namespace at `path`; it stays bound to that namespace.
    pub fn open_in(path: &Path) -> Result<Netlink, NetError> {
        let _guard = NetnsGuard::enter(path)?;
        Netlink::open()
    }

    /// Sends one request and collects the replies up to the ack (or the end of a dump).
    fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
        packet.header.flags = flags | NLM_F_REQUEST;
        packet.header.sequence_number = self.seq;
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket.send(&out, 0)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        loop {
            let n = self.socket.recv(&mut &mut self.buf[..], 0)?;
            let mut offset = 0;
            while offset < n {
                let msg: NetlinkMessage<RouteNetlinkMessage> = NetlinkMessage::deserialize(&self.buf[offset..n])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = msg.header.length as usize;
                if msg.header.sequence_number != self.seq {
                    offset += len.max(1);
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(replies),
                            Some(_) => Err(e.to_io()),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(m) => {
                        replies.push(m);
                        if !dump && flags & NLM_F_ACK == 0 {
                            return Ok(replies);
                        }
                    }
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }

    /// The link called `name`, if any.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<LinkMessage>, NetError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(mut replies) => Ok(replies.pop().and_then(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(nl_err(format!("look up link {name}"), e)),
        }
    }

    /// The index of the link called `name`, if any.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>, NetError> {
        Ok(self.link_by_name(name)?.map(|l| l.header.index))
    }

    /// Every link's index and name.
    pub fn links(&mut self) -> Result<Vec<(u32, String)>, NetError> {
        let replies =
            self.request(RouteNetlinkMessage::GetLink(LinkMessage::default()), NLM_F_DUMP).map_err(|e| nl_err("list links", e))?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => {
                    let name = l.attributes.iter().find_map(|a| match a {
                        LinkAttribute::IfName(n) => Some(n.clone()),
                        _ => None,
                    })?;
                    Some((l.header.index, name))
                }
                _ => None,
            })
            .collect())
    }

    /// Creates a bridge, down, with a fixed MAC (so that it does not change as ports come and go).
    pub fn create_bridge(&mut self, name: &str, mtu: u32, mac: [u8; 6]) -> Result<u32, NetError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]));
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| nl_err(format!("create bridge {name}"), e))?;
        self.link_index(name)?.ok_or_else(|| nl_err(format!("find bridge {name} after creating it"), io::ErrorKind::NotFound.into()))
    }

    /// Creates a veth pair: `host_name` on this socket's namespace, enslaved to `master` (if any)
    /// and up; `peer_name` born directly in the namespace `peer_netns` (never moved), down, with
    /// `peer_mac`.
    #[allow(clippy::too_many_arguments)]
    pub fn create_veth(
        &mut self,
        host_name: &str,
        master: Option<u32>,
        mtu: u32,
        peer_name: &str,
        peer_mac: [u8; 6],
        peer_netns: &impl AsRawFd,
    ) -> Result<(), NetError> {
        // The peer cannot be created up (veth_open needs both ends): the caller brings it up.
        let mut peer = LinkMessage::default();
        peer.attributes.push(LinkAttribute::IfName(peer_name.to_string()));
        peer.attributes.push(LinkAttribute::Mtu(mtu));
        peer.attributes.push(LinkAttribute::Address(peer_mac.to_vec()));
        peer.attributes.push(LinkAttribute::NetNsFd(peer_netns.as_raw_fd()));
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::IfName(host_name.to_string()));
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        if let Some(master) = master {
            msg.attributes.push(LinkAttribute::Controller(master));
        }
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth), LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer)))]));
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| nl_err(format!("create veth pair {host_name}/{peer_name}"), e))?;
        Ok(())
    }

    /// Brings a link up.
    pub fn set_up(&mut self, index: u32, what: &str) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(msg), NLM_F_ACK).map_err(|e| nl_err(format!("bring {what} up"), e))?;
        Ok(())
    }

    /// Sets the bridge port flag `isolated` (isolated ports cannot talk to each other).
    pub fn set_port_isolated(&mut self, index: u32, what: &str) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::Isolated(true)])),
        ]));
        // Port attributes go through RTM_NEWLINK on the existing link (RTM_SETLINK ignores them).
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_ACK).map_err(|e| nl_err(format!("isolate bridge port {what}"), e))?;
        Ok(())
    }

    /// Deletes a link; a missing one is not an error.
    pub fn delete_link(&mut self, index: u32, what: &str) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.request(RouteNetlinkMessage::DelLink(msg), NLM_F_ACK) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            Err(e) => Err(nl_err(format!("delete link {what}"), e)),
        }
    }

    /// Adds `address/prefix` to a link (IPv6 without duplicate address detection, so that it is
    /// usable at once).
    pub fn add_address(&mut self, index: u32, address: IpAddr, prefix: u8, what: &str) -> Result<(), NetError> {
        let mut msg = AddressMessage::default();
        msg.header.family = family(address);
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.header.scope = AddressScope::Universe;
        msg.attributes.push(AddressAttribute::Local(address));
        msg.attributes.push(AddressAttribute::Address(address));
        if address.is_ipv6() {
            msg.header.flags = AddressHeaderFlags::Nodad;
        }
        match self.request(RouteNetlinkMessage::NewAddress(msg), NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(nl_err(format!("add address {address}/{prefix} to {what}"), e)),
        }
    }

    /// Adds a default route through `gateway` on link `oif`.
    pub fn add_default_route(&mut self, gateway: IpAddr, oif: u32) -> Result<(), NetError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(gateway);
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes.push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
        msg.attributes.push(RouteAttribute::Oif(oif));
        self.request(RouteNetlinkMessage::NewRoute(msg), NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| nl_err(format!("add the default route via {gateway}"), e))?;
        Ok(())
    }

    /// Every unicast route of every table, of both families.
    pub fn routes(&mut self) -> Result<Vec<RouteInfo>, NetError> {
        let mut out = Vec::new();
        for fam in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut msg = RouteMessage::default();
            msg.header.address_family = fam;
            let replies = self.request(RouteNetlinkMessage::GetRoute(msg), NLM_F_DUMP).map_err(|e| nl_err("list routes", e))?;
            for r in replies {
                let RouteNetlinkMessage::NewRoute(r) = r else { continue };
                if r.header.kind != RouteType::Unicast {
                    continue;
                }
                let mut dest = None;
                let mut oif = None;
                let mut via_gateway = false;
                for a in &r.attributes {
                    match a {
                        RouteAttribute::Destination(RouteAddress::Inet(a)) => dest = Some(IpAddr::V4(*a)),
                        RouteAttribute::Destination(RouteAddress::Inet6(a)) => dest = Some(IpAddr::V6(*a)),
                        RouteAttribute::Oif(i) => oif = Some(*i),
                        RouteAttribute::Gateway(_) | RouteAttribute::MultiPath(_) | RouteAttribute::Via(_) => via_gateway = true,
                        _ => {}
                    }
                }
                let destination = dest.unwrap_or(if fam == AddressFamily::Inet {
                    IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
                } else {
                    IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
                });
                out.push(RouteInfo { destination, prefix: r.header.destination_prefix_length, oif, via_gateway });
            }
        }
        Ok(out)
    }

    /// Every address on every link, of both families.
    pub fn addresses(&mut self) -> Result<Vec<AddressInfo>, NetError> {
        let replies = self
            .request(RouteNetlinkMessage::GetAddress(AddressMessage::default()), NLM_F_DUMP)
            .map_err(|e| nl_err("list addresses", e))?;
        let mut out = Vec::new();
        for m in replies {
            let RouteNetlinkMessage::NewAddress(a) = m else { continue };
            let addr = a
                .attributes
                .iter()
                .find_map(|x| match x {
                    AddressAttribute::Local(ip) => Some(*ip),
                    _ => None,
                })
                .or_else(|| {
                    a.attributes.iter().find_map(|x| match x {
                        AddressAttribute::Address(ip) => Some(*ip),
                        _ => None,
                    })
                });
            if let Some(address) = addr {
                out.push(AddressInfo { address, prefix: a.header.prefix_len, index: a.header.index });
            }
        }
        Ok(out)
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_loopback_in_the_current_namespace() {
        let mut nl = Netlink::open().unwrap();
        assert_eq!(nl.link_index("lo").unwrap(), Some(1));
        assert!(nl.link_index("no-such-link0").unwrap().is_none());
        let addrs = nl.addresses().unwrap();
        assert!(addrs.iter().any(|a| a.address == IpAddr::from([127, 0, 0, 1])));
    }
}
