//! IP address management: subnets, the default pool, and address allocation inside a subnet.
//!
//! Subnets are plain values with overlap and containment tests. The default pool is Docker's
//! (`172.17.0.0/16`–`172.31.0.0/16`, then `192.168.0.0/16` in `/20`s); a subnet is taken from it
//! only if it overlaps no route and no address on the host, which covers Docker's bridges, LANs,
//! VPNs and every other berth root's networks (their bridges carry their gateway addresses).

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::netlink::{AddressInfo, RouteInfo};

/// An IPv4 or IPv6 subnet, always stored with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    addr: IpAddr,
    prefix: u8,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn bits(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn from_u128(v4: bool, v: u128) -> IpAddr {
    if v4 { IpAddr::V4(Ipv4Addr::from(v as u32)) } else { IpAddr::V6(Ipv6Addr::from(v)) }
}

fn mask(width: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        let all = if width == 32 { u32::MAX as u128 } else { u128::MAX };
        (all >> (width - prefix)) << (width - prefix)
    }
}

impl Subnet {
    /// The subnet of `addr/prefix`, host bits cleared. `None` when the prefix is too long.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Subnet> {
        let w = bits(addr);
        if prefix > w {
            return None;
        }
        Some(Subnet { addr: from_u128(addr.is_ipv4(), to_u128(addr) & mask(w, prefix)), prefix })
    }
    pub fn addr(&self) -> IpAddr {
        self.addr
    }
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }
    fn width(&self) -> u8 {
        bits(self.addr)
    }
    /// Number of addresses, saturated for huge IPv6 subnets.
    fn size(&self) -> u128 {
        let host = self.width() - self.prefix;
        if host >= 128 { u128::MAX } else { 1u128 << host }
    }
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.is_ipv4() && to_u128(ip) & mask(self.width(), self.prefix) == to_u128(self.addr)
    }
    pub fn contains_subnet(&self, other: &Subnet) -> bool {
        other.is_ipv4() == self.is_ipv4() && other.prefix >= self.prefix && self.contains(other.addr)
    }
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains_subnet(other) || other.contains_subnet(self)
    }
    /// The `n`th address of the subnet (0 is the network address).
    pub fn nth(&self, n: u128) -> Option<IpAddr> {
        (n < self.size()).then(|| from_u128(self.is_ipv4(), to_u128(self.addr) + n))
    }
    /// The offset of `ip` inside the subnet.
    fn offset(&self, ip: IpAddr) -> Option<u128> {
        self.contains(ip).then(|| to_u128(ip) - to_u128(self.addr))
    }
    /// The first usable host address: the conventional gateway.
    pub fn first_host(&self) -> Option<IpAddr> {
        self.nth(1)
    }
    /// The last offset a host may use: IPv4 keeps its broadcast address.
    fn last_host_offset(&self) -> u128 {
        let size = self.size();
        if self.is_ipv4() { size.saturating_sub(2) } else { size.saturating_sub(1) }
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Why a subnet string does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetParseError(pub String);

impl fmt::Display for SubnetParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Subnet {
    type Err = SubnetParseError;
    /// Parses `ADDR/PREFIX` in CIDR notation; host bits must be zero, as Docker requires.
    fn from_str(s: &str) -> Result<Subnet, SubnetParseError> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| SubnetParseError(format!("invalid subnet {s:?}: expected CIDR notation like 10.210.0.0/24")))?;
        let addr: IpAddr = a.parse().map_err(|_| SubnetParseError(format!("invalid subnet {s:?}: {a:?} is not an IP address")))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= bits(addr))
            .ok_or_else(|| SubnetParseError(format!("invalid subnet {s:?}: bad prefix length {p:?}")))?;
        let net = Subnet::new(addr, prefix).expect("prefix checked");
        if net.addr != addr {
            return Err(SubnetParseError(format!("invalid subnet {s:?}: the address has host bits set (did you mean {net}?)")));
        }
        Ok(net)
    }
}

impl Serialize for Subnet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subnet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Subnet, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Docker's default address pools: `172.17.0.0/12` in `/16`s, then `192.168.0.0/16` in `/20`s.
pub fn default_pool() -> impl Iterator<Item = Subnet> {
    let a = (17u8..=31).map(|b| Subnet::new(IpAddr::V4(Ipv4Addr::new(172, b, 0, 0)), 16).unwrap());
    let b = (0u8..16).map(|i| Subnet::new(IpAddr::V4(Ipv4Addr::new(192, 168, i * 16, 0)), 20).unwrap());
    a.chain(b)
}

/// What is already in use on the host: route destinations (but the default route) and the
/// subnets of every address.
pub fn host_subnets(routes: &[RouteInfo], addresses: &[AddressInfo]) -> Vec<Subnet> {
    let mut out = Vec::new();
    for r in routes {
        if r.prefix == 0 {
            continue;
        }
        if let Some(s) = Subnet::new(r.destination, r.prefix) {
            out.push(s);
        }
    }
    for a in addresses {
        if a.address.is_loopback() {
            continue;
        }
        if let IpAddr::V6(v6) = a.address {
            // Link-local addresses are on every link and never routed.
            if v6.segments()[0] & 0xffc0 == 0xfe80 {
                continue;
            }
        }
        if let Some(s) = Subnet::new(a.address, a.prefix) {
            out.push(s);
        }
    }
    out
}

/// The subnets of connected routes and addresses only (not routes through a gateway): a
/// user-chosen subnet must not overlap these, while it may sit inside a VPN's wide route.
pub fn connected_subnets(routes: &[RouteInfo], addresses: &[AddressInfo]) -> Vec<Subnet> {
    let direct: Vec<RouteInfo> = routes.iter().filter(|r| !r.via_gateway).cloned().collect();
    host_subnets(&direct, addresses)
}

/// The first subnet of the default pool that overlaps none of `used`.
pub fn pick_default(used: &[Subnet]) -> Option<Subnet> {
    default_pool().find(|c| !used.iter().any(|u| u.overlaps(c)))
}

/// The environment variable that replaces the default pools, as dockerd's
/// `--default-address-pool`: `base=10.210.64.0/18,size=24`, several separated by `;`.
pub const POOLS_ENV: &str = "BERTH_DEFAULT_ADDRESS_POOLS";

/// Parses [`POOLS_ENV`] into (base, size) pairs.
pub fn parse_pools(text: &str) -> Result<Vec<(Subnet, u8)>, String> {
    let mut out = Vec::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let mut base = None;
        let mut size = None;
        for kv in entry.split(',') {
            match kv.trim().split_once('=') {
                Some(("base", v)) => base = Some(v.parse::<Subnet>().map_err(|e| format!("{POOLS_ENV}: {e}"))?),
                Some(("size", v)) => size = Some(v.parse::<u8>().map_err(|_| format!("{POOLS_ENV}: bad size {v:?}"))?),
                _ => return Err(format!("{POOLS_ENV}: expected base=CIDR,size=N, got {kv:?}")),
            }
        }
        let (Some(b), Some(sz)) = (base, size) else {
            return Err(format!("{POOLS_ENV}: {entry:?} needs both base= and size="));
        };
        if !b.is_ipv4() || sz < b.prefix() || sz > 30 {
            return Err(format!("{POOLS_ENV}: size {sz} must be between the base's prefix ({}) and 30", b.prefix()));
        }
        out.push((b, sz));
    }
    Ok(out)
}

/// The first subnet of the pools that overlaps none of `used`.
pub fn pick_from(pools: &[(Subnet, u8)], used: &[Subnet]) -> Option<Subnet> {
    for (base, size) in pools {
        let step = 1u128 << (32 - size);
        let count = 1u128 << (size - base.prefix());
        for i in 0..count.min(1 << 16) {
            let c = Subnet::new(from_u128(true, to_u128(base.addr()) + i * step), *size)?;
            if !used.iter().any(|u| u.overlaps(&c)) {
                return Some(c);
            }
        }
    }
    None
}

/// Allocates addresses inside one subnet (optionally restricted to an `ip_range`), skipping
/// the network address, the IPv4 broadcast, the gateway, reserved and used addresses. It gives
/// the lowest free address, as Docker's IPAM does (its bitmap allocator is not serial by
/// default), so that a container removed and created again usually gets its address back.
/// Addresses stay used for a container's whole life, stopped or not (see `Endpoints::held`).
pub struct Allocator<'a> {
    pub subnet: Subnet,
    pub range: Option<Subnet>,
    pub reserved: &'a BTreeSet<IpAddr>,
    pub used: &'a BTreeSet<IpAddr>,
}

/// How many candidates a search may look at, so that a huge IPv6 subnet cannot spin.
const MAX_PROBES: u128 = 1 << 20;

impl Allocator<'_> {
    fn usable(&self, ip: IpAddr) -> bool {
        let Some(off) = self.subnet.offset(ip) else { return false };
        off >= 1
            && off <= self.subnet.last_host_offset()
            && self.range.is_none_or(|r| r.contains(ip))
            && !self.reserved.contains(&ip)
            && !self.used.contains(&ip)
    }

    /// The lowest free address, or `None` when the subnet (or range) is full.
    pub fn next(&self) -> Option<IpAddr> {
        let span = self.range.unwrap_or(self.subnet);
        let n = span.size().max(1);
        (0..n.min(MAX_PROBES)).filter_map(|i| span.nth(i)).find(|ip| self.usable(*ip))
    }

    /// Whether a requested static address may be used, and why not.
    pub fn check_static(&self, ip: IpAddr) -> Result<(), &'static str> {
        if !self.subnet.contains(ip) {
            return Err("is outside the network's subnet");
        }
        let off = self.subnet.offset(ip).unwrap_or(0);
        if off == 0 || off > self.subnet.last_host_offset() {
            return Err("is the subnet's network or broadcast address");
        }
        if self.reserved.contains(&ip) {
            return Err("is reserved (the gateway or an auxiliary address)");
        }
        if self.used.contains(&ip) {
            return Err("is already in use");
        }
        Ok(())
    }
}

/// A MAC address for a container interface: Docker's `02:42` followed by the IPv4 address, so that
/// it is stable and unique on its bridge; a random locally administered one without IPv4.
pub fn mac_for(ip: Option<Ipv4Addr>) -> [u8; 6] {
    match ip {
        Some(ip) => {
            let o = ip.octets();
            [0x02, 0x42, o[0], o[1], o[2], o[3]]
        }
        None => random_mac(),
    }
}

/// A random unicast, locally administered MAC address.
pub fn random_mac() -> [u8; 6] {
    let mut m: [u8; 6] = rand::random();
    m[0] = (m[0] & 0xfe) | 0x02;
    m
}

pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with dashes); multicast addresses are refused.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        m[i] = u8::from_str_radix(p, 16).ok()?;
    }
    (m[0] & 1 == 0).then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Subnet {
        x.parse().unwrap()
    }

    #[test]
    fn parses_and_rejects_host_bits() {
        assert_eq!(s("10.210.0.0/24").to_string(), "10.210.0.0/24");
        let e = "10.210.0.1/24".parse::<Subnet>().unwrap_err();
        assert!(e.0.contains("10.210.0.0/24"), "{e}");
        assert!("10.210.0.0".parse::<Subnet>().is_err());
        assert!("10.210.0.0/33".parse::<Subnet>().is_err());
        assert_eq!(s("fd00:210::/64").to_string(), "fd00:210::/64");
    }

    #[test]
    fn overlap_and_containment() {
        assert!(s("10.0.0.0/8").overlaps(&s("10.210.3.0/24")));
        assert!(s("10.210.3.0/24").overlaps(&s("10.0.0.0/8")));
        assert!(!s("10.210.3.0/24").overlaps(&s("10.210.4.0/24")));
        assert!(!s("10.210.3.0/24").overlaps(&s("fd00::/8")));
        assert!(s("10.210.3.0/24").contains("10.210.3.255".parse().unwrap()));
    }

    #[test]
    fn default_pool_skips_what_the_host_uses() {
        let used = vec![s("172.17.0.0/16"), s("172.16.0.0/12")];
        assert_eq!(pick_default(&used), Some(s("192.168.0.0/20")));
        let used = vec![s("172.17.0.0/16"), s("172.18.5.0/24")];
        assert_eq!(pick_default(&used), Some(s("172.19.0.0/16")));
        let routes = vec![
            RouteInfo { destination: "0.0.0.0".parse().unwrap(), prefix: 0, oif: Some(2), via_gateway: true },
            RouteInfo { destination: "172.17.0.0".parse().unwrap(), prefix: 16, oif: Some(3), via_gateway: false },
        ];
        let addrs = vec![AddressInfo { address: "172.18.0.7".parse().unwrap(), prefix: 16, index: 4 }];
        assert_eq!(pick_default(&host_subnets(&routes, &addrs)), Some(s("172.19.0.0/16")));
        let wide = vec![RouteInfo { destination: "10.0.0.0".parse().unwrap(), prefix: 8, oif: None, via_gateway: true }];
        assert!(connected_subnets(&wide, &[]).is_empty());
    }

    #[test]
    fn configured_pools() {
        let p = parse_pools("base=10.210.64.0/18,size=24").unwrap();
        assert_eq!(pick_from(&p, &[s("10.210.64.0/24")]), Some(s("10.210.65.0/24")));
        assert!(parse_pools("base=10.210.64.0/18").is_err());
        assert!(parse_pools("base=10.210.64.0/18,size=8").is_err());
        let two = parse_pools("base=10.210.64.0/23,size=24; base=10.210.70.0/24,size=25").unwrap();
        assert_eq!(pick_from(&two, &[s("10.210.64.0/23")]), Some(s("10.210.70.0/25")));
    }

    #[test]
    fn allocates_lowest_free_first_and_skips_reserved() {
        let net = s("10.210.9.0/29"); // hosts .1-.6
        let reserved: BTreeSet<IpAddr> = ["10.210.9.1".parse().unwrap()].into();
        let mut used = BTreeSet::new();
        let mut got = Vec::new();
        loop {
            let a = Allocator { subnet: net, range: None, reserved: &reserved, used: &used };
            let Some(ip) = a.next() else { break };
            got.push(ip.to_string());
            used.insert(ip);
        }
        assert_eq!(got, ["10.210.9.2", "10.210.9.3", "10.210.9.4", "10.210.9.5", "10.210.9.6"]);
        // Releasing .5 then .3: the lowest free one comes first, as Docker's IPAM gives it.
        used.remove(&"10.210.9.5".parse().unwrap());
        used.remove(&"10.210.9.3".parse().unwrap());
        let a = Allocator { subnet: net, range: None, reserved: &reserved, used: &used };
        assert_eq!(a.next(), Some("10.210.9.3".parse().unwrap()));
        assert_eq!(a.check_static("10.210.9.1".parse().unwrap()), Err("is reserved (the gateway or an auxiliary address)"));
        assert!(a.check_static("10.210.9.7".parse().unwrap()).is_err());
        assert!(a.check_static("10.210.8.7".parse().unwrap()).is_err());
        assert!(a.check_static("10.210.9.3".parse().unwrap()).is_ok());
        assert_eq!(a.check_static("10.210.9.4".parse().unwrap()), Err("is already in use"));
    }

    #[test]
    fn ip_range_restricts_allocation() {
        let net = s("10.210.10.0/24");
        let empty = BTreeSet::new();
        let a = Allocator { subnet: net, range: Some(s("10.210.10.128/25")), reserved: &empty, used: &empty };
        assert_eq!(a.next(), Some("10.210.10.128".parse().unwrap()));
        let v6 = s("fd00:210::/64");
        let a = Allocator { subnet: v6, range: None, reserved: &empty, used: &empty };
        assert_eq!(a.next(), Some("fd00:210::1".parse().unwrap()));
    }

    #[test]
    fn macs() {
        assert_eq!(format_mac(&mac_for(Some(Ipv4Addr::new(10, 210, 0, 2)))), "02:42:0a:d2:00:02");
        assert_eq!(parse_mac("02:42:0A:d2:00:02"), Some([2, 0x42, 10, 0xd2, 0, 2]));
        assert!(parse_mac("01:00:5e:00:00:01").is_none());
        assert!(parse_mac("02:42:0a").is_none());
        let r = random_mac();
        assert_eq!(r[0] & 3, 2);
    }
}
