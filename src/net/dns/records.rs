//! What the resolver knows, built from the root's network state: which names resolve to which
//! addresses on which network, and who is asking. Pure data, tested without sockets.
//!
//! A container answers on each of its networks to its container name, hostname, short id,
//! service name (every replica of the service), and aliases. A requester (found by its source
//! address) sees the names of every network it is on; anyone else (the host, say) sees the
//! network whose gateway it asked.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::net::network::{Endpoints, Network};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Addrs {
    pub v4: Vec<Ipv4Addr>,
    pub v6: Vec<Ipv6Addr>,
}

#[derive(Debug, Clone)]
struct NetView {
    internal: bool,
    subnets: Vec<crate::net::ipam::Subnet>,
}

#[derive(Debug, Clone)]
struct Requester {
    networks: Vec<usize>,
    dns_servers: Vec<IpAddr>,
}

/// Who is asking, resolved once per query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope<'a> {
    pub networks: &'a [usize],
    /// The requester's own upstreams (compose `dns:`), if it set any.
    pub dns_servers: &'a [IpAddr],
    /// False when every network of the requester is internal: nothing is forwarded.
    pub forward: bool,
}

#[derive(Debug, Default, Clone)]
pub struct Records {
    nets: Vec<NetView>,
    /// The gateway addresses to listen on, with their network.
    listen: HashMap<IpAddr, usize>,
    /// Container addresses to the requester they belong to.
    source: HashMap<IpAddr, usize>,
    requesters: Vec<Requester>,
    /// By name: the addresses it has on each network.
    names: HashMap<String, Vec<(usize, Addrs)>>,
    /// One single-network list per network, for strangers' scopes.
    single: Vec<[usize; 1]>,
    ptr: HashMap<IpAddr, Vec<(usize, String)>>,
}

/// Lower-cases a query name and drops the root dot.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Records {
    pub fn build(state: &[(Network, Endpoints)]) -> Records {
        let mut r = Records::default();
        let mut by_container: HashMap<&str, usize> = HashMap::new();
        for (ni, (net, eps)) in state.iter().enumerate() {
            r.nets.push(NetView { internal: net.internal, subnets: net.pools().map(|p| p.subnet).collect() });
            r.single.push([ni]);
            for gw in net.gateways() {
                r.listen.insert(gw, ni);
            }
            for (id, ep) in &eps.endpoints {
                let ri = *by_container.entry(id.as_str()).or_insert_with(|| {
                    r.requesters.push(Requester { networks: Vec::new(), dns_servers: ep.dns_servers.clone() });
                    r.requesters.len() - 1
                });
                r.requesters[ri].networks.push(ni);
                if r.requesters[ri].dns_servers.is_empty() {
                    r.requesters[ri].dns_servers = ep.dns_servers.clone();
                }
                let mut names: Vec<&str> = vec![ep.container_name.as_str()];
                if !ep.hostname.is_empty() {
                    names.push(&ep.hostname);
                }
                if let Some(s) = &ep.service {
                    names.push(s);
                }
                names.push(&id[..id.len().min(12)]);
                names.extend(ep.aliases.iter().map(String::as_str));
                let mut seen = Vec::new();
                for n in names {
                    let n = normalize(n);
                    if n.is_empty() || seen.contains(&n) {
                        continue;
                    }
                    let per_net = r.names.entry(n.clone()).or_default();
                    let entry = match per_net.iter().position(|(x, _)| *x == ni) {
                        Some(i) => &mut per_net[i].1,
                        None => {
                            per_net.push((ni, Addrs::default()));
                            &mut per_net.last_mut().expect("just pushed").1
                        }
                    };
                    if let Some(a) = ep.ipv4 {
                        entry.v4.push(a);
                    }
                    if let Some(a) = ep.ipv6 {
                        entry.v6.push(a);
                    }
                    seen.push(n);
                }
                let ptr_name = format!("{}.{}", ep.container_name, net.name);
                for ip in ep.ipv4.map(IpAddr::V4).into_iter().chain(ep.ipv6.map(IpAddr::V6)) {
                    r.source.insert(ip, ri);
                    r.ptr.entry(ip).or_default().push((ni, ptr_name.clone()));
                }
            }
        }
        r
    }

    /// The addresses the resolver listens on.
    pub fn listen_addrs(&self) -> impl Iterator<Item = &IpAddr> {
        self.listen.keys()
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Who is asking: `src` wrote to the resolver on `local`. `None` for a stranger the resolver
    /// must not serve: someone outside the network (another host routing to the gateway) would
    /// otherwise have an open resolver.
    pub fn scope(&self, local: IpAddr, src: IpAddr) -> Option<Scope<'_>> {
        if let Some(&ri) = self.source.get(&src) {
            let req = &self.requesters[ri];
            return Some(Scope {
                networks: &req.networks,
                dns_servers: &req.dns_servers,
                forward: req.networks.iter().any(|n| !self.nets[*n].internal),
            });
        }
        let &ni = self.listen.get(&local)?;
        // The host itself (which asks from a gateway address) or an address of the network.
        let allowed = self.listen.contains_key(&src) || self.nets[ni].subnets.iter().any(|s| s.contains(src));
        allowed.then(|| Scope { networks: &self.single[ni], dns_servers: &[], forward: !self.nets[ni].internal })
    }

    /// The addresses of `name` (already normalized) as the scope sees it; `None` when no network
    /// of the scope knows it.
    pub fn lookup(&self, scope: &Scope, name: &str) -> Option<Addrs> {
        let per_net = self.names.get(name)?;
        let mut out: Option<Addrs> = None;
        for (n, a) in per_net {
            if !scope.networks.contains(n) {
                continue;
            }
            let o = out.get_or_insert_with(Addrs::default);
            for x in &a.v4 {
                if !o.v4.contains(x) {
                    o.v4.push(*x);
                }
            }
            for x in &a.v6 {
                if !o.v6.contains(x) {
                    o.v6.push(*x);
                }
            }
        }
        out
    }

    /// The name of a container address, if the scope shares its network.
    pub fn reverse(&self, scope: &Scope, ip: IpAddr) -> Option<&str> {
        self.ptr.get(&ip)?.iter().find(|(n, _)| scope.networks.contains(n)).map(|(_, name)| name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::network::{Endpoint, Pool};
    use std::collections::BTreeMap;

    fn net(name: &str, subnet: &str, gw: &str, internal: bool) -> Network {
        Network {
            name: name.into(),
            id: "0".repeat(64),
            created: String::new(),
            driver: "bridge".into(),
            bridge: "berthx".into(),
            ipv4: Some(Pool {
                subnet: subnet.parse().unwrap(),
                gateway: gw.parse().unwrap(),
                ip_range: None,
                aux_addresses: BTreeMap::new(),
                user_subnet: true,
            }),
            ipv6: None,
            internal,
            attachable: false,
            enable_ipv6: false,
            mtu: 1500,
            masquerade: !internal,
            icc: true,
            host_binding_ipv4: None,
            iface_prefix: "eth".into(),
            options: BTreeMap::new(),
            labels: BTreeMap::new(),
            ipam_options: BTreeMap::new(),
        }
    }

    fn ep(name: &str, service: &str, ip: &str, aliases: &[&str]) -> Endpoint {
        Endpoint {
            container_name: name.into(),
            hostname: format!("{name}-host"),
            service: Some(service.into()),
            project: Some("demo".into()),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            ipv4: Some(ip.parse().unwrap()),
            ..Default::default()
        }
    }

    fn state() -> Vec<(Network, Endpoints)> {
        let mut front = Endpoints::default();
        front.endpoints.insert("a".repeat(64), ep("demo-web-1", "web", "10.210.1.2", &["www"]));
        front.endpoints.insert("b".repeat(64), ep("demo-web-2", "web", "10.210.1.3", &[]));
        front.endpoints.insert("c".repeat(64), ep("demo-api-1", "api", "10.210.1.4", &[]));
        let mut back = Endpoints::default();
        let mut api_back = ep("demo-api-1", "api", "10.210.2.2", &["backend-api"]);
        api_back.dns_servers = vec!["10.210.250.1".parse().unwrap()];
        back.endpoints.insert("c".repeat(64), api_back);
        back.endpoints.insert("d".repeat(64), ep("demo-db-1", "db", "10.210.2.3", &[]));
        let other = Endpoints::default();
        vec![
            (net("demo_front", "10.210.1.0/24", "10.210.1.1", false), front),
            (net("demo_back", "10.210.2.0/24", "10.210.2.1", true), back),
            (net("other", "10.210.3.0/24", "10.210.3.1", false), other),
        ]
    }

    #[test]
    fn service_names_resolve_to_every_replica_in_scope() {
        let r = Records::build(&state());
        let web1 = r.scope("10.210.1.1".parse().unwrap(), "10.210.1.2".parse().unwrap()).unwrap();
        let web = r.lookup(&web1, &normalize("WEB.")).unwrap();
        assert_eq!(web.v4.len(), 2);
        assert!(r.lookup(&web1, "www").is_some());
        assert!(r.lookup(&web1, "demo-web-2").is_some());
        assert!(r.lookup(&web1, "demo-web-2-host").is_some());
        assert!(r.lookup(&web1, "bbbbbbbbbbbb").is_some());
        // web is not on the back network: db is invisible to it.
        assert!(r.lookup(&web1, "db").is_none());
        assert!(web1.forward);
    }

    #[test]
    fn a_container_on_two_networks_sees_both() {
        let r = Records::build(&state());
        let api = r.scope("10.210.1.1".parse().unwrap(), "10.210.1.4".parse().unwrap()).unwrap();
        assert_eq!(api.networks.len(), 2);
        assert_eq!(r.lookup(&api, "db").unwrap().v4, vec!["10.210.2.3".parse::<Ipv4Addr>().unwrap()]);
        assert_eq!(r.lookup(&api, "api").unwrap().v4.len(), 2);
        assert_eq!(api.dns_servers.len(), 1);
        assert!(api.forward, "front is not internal");
        let db = r.scope("10.210.2.1".parse().unwrap(), "10.210.2.3".parse().unwrap()).unwrap();
        assert!(!db.forward, "db is only on an internal network");
        assert_eq!(r.reverse(&db, "10.210.2.2".parse().unwrap()), Some("demo-api-1.demo_back"));
        assert_eq!(r.reverse(&db, "10.210.1.2".parse().unwrap()), None);
    }

    #[test]
    fn strangers_see_the_network_they_asked_and_others_see_nothing() {
        let r = Records::build(&state());
        // The host asks from a gateway address.
        let host = r.scope("10.210.1.1".parse().unwrap(), "10.210.1.1".parse().unwrap()).unwrap();
        assert!(r.lookup(&host, "web").is_some());
        let other = r.scope("10.210.3.1".parse().unwrap(), "10.210.3.9".parse().unwrap()).unwrap();
        assert!(r.lookup(&other, "web").is_none());
        assert!(r.lookup(&other, "demo-web-1").is_none());
        assert_eq!(r.listen_addrs().count(), 3);
        // Another host reaching a gateway is not served at all.
        assert!(r.scope("10.210.1.1".parse().unwrap(), "192.0.2.77".parse().unwrap()).is_none());
    }
}
