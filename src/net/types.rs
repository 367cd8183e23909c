//! What the runtime asks of the network and what it gets back. These are stored in container
//! config and state files, so they are serde types with stable field names.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How a container gets its network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// Its own namespace, attached to the requested bridge networks.
    #[default]
    Bridge,
    /// The host's namespace.
    Host,
    /// Its own namespace with only `lo`.
    None,
    /// Another container's namespace (`container:NAME`, or `service:NAME` resolved to a container id).
    Container(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// One network a container joins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EndpointRequest {
    /// The network's berth name, as created (`<project>_default`, or an external name).
    pub network: String,
    /// DNS names this endpoint answers to on that network, besides the container name and hostname.
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub ipv4_address: Option<Ipv4Addr>,
    #[serde(default)]
    pub ipv6_address: Option<Ipv6Addr>,
    #[serde(default)]
    pub mac_address: Option<String>,
    /// Higher wins the default route (compose `gw_priority`).
    #[serde(default)]
    pub gw_priority: i32,
}

/// One published port (`ports:` entry, one per port of a range).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PortRequest {
    /// The host address to publish on; `None` means every address (0.0.0.0 and ::).
    #[serde(default)]
    pub host_ip: Option<IpAddr>,
    /// The host port; `None` or 0 picks a free one.
    #[serde(default)]
    pub host_port: Option<u16>,
    pub container_port: u16,
    #[serde(default)]
    pub protocol: Protocol,
    /// With `host_port`, a host range (`8000-8010:80`): the first free port of the range is used.
    #[serde(default)]
    pub host_port_end: Option<u16>,
}

/// Everything [`crate::net::attach`] needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AttachRequest {
    pub container_id: String,
    pub container_name: String,
    pub hostname: String,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    /// The container's network namespace, e.g. `/proc/<pid>/ns/net`.
    pub netns_path: PathBuf,
    pub endpoints: Vec<EndpointRequest>,
    #[serde(default)]
    pub ports: Vec<PortRequest>,
    /// compose `dns:`: upstream servers for this container's forwarded queries.
    #[serde(default)]
    pub dns_servers: Vec<IpAddr>,
}

/// A container's address on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EndpointInfo {
    pub network: String,
    #[serde(default)]
    pub network_id: String,
    #[serde(default)]
    pub endpoint_id: String,
    /// The interface inside the container (`eth0`, `eth1`, ...).
    pub interface: String,
    /// The host end of the veth.
    pub host_interface: String,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv4_prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    #[serde(default)]
    pub ipv6_prefix: u8,
    #[serde(default)]
    pub ipv6_gateway: Option<Ipv6Addr>,
    pub mac: String,
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// A port as actually published (a random host port is filled in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// What a container got: stored in its state for `inspect`, `ps` and `port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Attachment {
    pub endpoints: Vec<EndpointInfo>,
    pub ports: Vec<PublishedPort>,
    /// The nameservers to write into the container's resolv.conf (berth's resolver).
    pub nameservers: Vec<IpAddr>,
}

/// [`Attachment`] plus the sockets that reserve its host ports; the caller holds them open for as
/// long as the container runs, so that no other program can take the ports.
#[derive(Debug, Default)]
pub struct AttachResult {
    pub attachment: Attachment,
    pub reservations: Vec<OwnedFd>,
    /// Bound sockets whose traffic the caller relays with [`crate::net::proxy::Proxy`] (the
    /// IPv6 side of published ports, which kernel NAT cannot serve); they reserve their ports too.
    pub forwards: Vec<crate::net::proxy::Forward>,
}
