//! The container's generated `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`, as Docker
//! writes them.

use std::net::IpAddr;

use super::spec::{ContainerConfig, parse_extra_host};
use crate::net::{Attachment, NetworkMode};

const HOSTS_HEADER: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// Docker's fallback when the host has no usable nameserver.
const FALLBACK_DNS: &[&str] = &["8.8.8.8", "8.8.4.4"];

pub fn hostname_file(cfg: &ContainerConfig) -> String {
    format!("{}\n", cfg.hostname())
}

/// `/etc/hosts`: the host's own file in host mode, otherwise Docker's header, the extra hosts,
/// and one line per address the container got.
pub fn hosts_file(cfg: &ContainerConfig, att: &Attachment, host_hosts: &str) -> String {
    let mut out = if cfg.network_mode == NetworkMode::Host {
        let mut s = host_hosts.to_string();
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s
    } else {
        HOSTS_HEADER.to_string()
    };
    let gateway = att.endpoints.iter().find_map(|e| e.gateway).map(IpAddr::V4);
    for h in &cfg.extra_hosts {
        if let Ok((name, ip)) = parse_extra_host(h) {
            let is_gw = h.ends_with("host-gateway");
            let ip = if is_gw { gateway.unwrap_or(ip) } else { ip };
            out.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    if cfg.network_mode != NetworkMode::Host {
        let mut names = cfg.hostname();
        if !cfg.domainname.is_empty() {
            names = format!("{names}.{} {names}", cfg.domainname);
        }
        for e in &att.endpoints {
            if let Some(ip) = e.ipv4 {
                out.push_str(&format!("{ip}\t{names}\n"));
            }
            if let Some(ip) = e.ipv6 {
                out.push_str(&format!("{ip}\t{names}\n"));
            }
        }
    }
    out
}

/// The host's resolver config, reading systemd-resolved's upstream file when /etc/resolv.conf
/// only points at its 127.0.0.53 stub (which a container cannot reach), as Docker does.
pub fn host_resolv_conf() -> String {
    let etc = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let ns = nameservers(&etc);
    if !ns.is_empty() && ns.iter().all(|ip| ip.is_loopback()) && ns.iter().any(|ip| ip.to_string() == "127.0.0.53") {
        if let Ok(up) = std::fs::read_to_string("/run/systemd/resolve/resolv.conf") {
            return up;
        }
    }
    etc
}

fn nameservers(conf: &str) -> Vec<IpAddr> {
    conf.lines().filter_map(|l| l.trim().strip_prefix("nameserver")).filter_map(|v| v.trim().split('%').next()?.parse().ok()).collect()
}

fn directive<'a>(conf: &'a str, key: &str) -> Vec<&'a str> {
    conf.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix(key)?;
            rest.starts_with([' ', '\t']).then_some(rest)
        })
        .flat_map(|r| r.split_whitespace())
        .collect()
}

/// `/etc/resolv.conf` for the container. `host` is the host's config ([`host_resolv_conf`]).
pub fn resolv_conf(cfg: &ContainerConfig, att: &Attachment, host: &str) -> String {
    if cfg.network_mode == NetworkMode::Host && cfg.dns.is_empty() && cfg.dns_search.is_empty() && cfg.dns_options.is_empty() {
        return host.to_string();
    }
    let servers: Vec<IpAddr> = if !att.nameservers.is_empty() {
        // berth's resolver answers service names and forwards the rest (to `dns:` if given).
        att.nameservers.clone()
    } else if !cfg.dns.is_empty() {
        cfg.dns.clone()
    } else if cfg.network_mode == NetworkMode::Host {
        nameservers(host)
    } else {
        let v: Vec<IpAddr> = nameservers(host).into_iter().filter(|ip| !ip.is_loopback()).collect();
        if v.is_empty() { FALLBACK_DNS.iter().filter_map(|s| s.parse().ok()).collect() } else { v }
    };
    let search: Vec<String> = if cfg.dns_search.is_empty() {
        let d = directive(host, "search");
        let d = if d.is_empty() { directive(host, "domain") } else { d };
        d.into_iter().map(String::from).collect()
    } else if cfg.dns_search.iter().any(|s| s == ".") {
        Vec::new()
    } else {
        cfg.dns_search.clone()
    };
    let mut options: Vec<String> = if cfg.dns_options.is_empty() {
        directive(host, "options").into_iter().map(String::from).collect()
    } else {
        cfg.dns_options.clone()
    };
    // With berth's resolver, names are tried as given first (ndots:0), whether or not `dns_opt`
    // sets other options, unless they set ndots themselves (as Docker's internal resolver).
    if !att.nameservers.is_empty() && !options.iter().any(|x| x.starts_with("ndots:")) {
        options.push("ndots:0".into());
    }
    let mut out = String::new();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for s in &servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::EndpointInfo;

    fn cfg() -> ContainerConfig {
        ContainerConfig { id: "0123456789abcdef".into(), ..Default::default() }
    }

    #[test]
    fn hosts_has_docker_header_extra_hosts_and_addresses() {
        let mut c = cfg();
        c.extra_hosts = vec!["db:10.0.0.9".into()];
        let att = Attachment {
            endpoints: vec![EndpointInfo { ipv4: Some("10.213.0.2".parse().unwrap()), ..Default::default() }],
            ..Default::default()
        };
        let h = hosts_file(&c, &att, "");
        assert!(h.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"));
        assert!(h.contains("10.0.0.9\tdb\n"));
        assert!(h.ends_with("10.213.0.2\t0123456789ab\n"));
        assert_eq!(hostname_file(&c), "0123456789ab\n");
    }

    #[test]
    fn resolv_conf_follows_docker() {
        let host = "search corp.example\nnameserver 127.0.0.53\noptions edns0\n";
        // No resolver and only a loopback server on the host: Google's fallback.
        let r = resolv_conf(&cfg(), &Attachment::default(), host);
        assert_eq!(r, "search corp.example\nnameserver 8.8.8.8\nnameserver 8.8.4.4\noptions edns0\n");
        // berth's resolver.
        let att = Attachment { nameservers: vec!["10.213.0.1".parse().unwrap()], ..Default::default() };
        let r = resolv_conf(&cfg(), &att, host);
        assert_eq!(r, "search corp.example\nnameserver 10.213.0.1\noptions edns0 ndots:0\n");
        // Host mode: the host's file as is.
        let mut c = cfg();
        c.network_mode = NetworkMode::Host;
        assert_eq!(resolv_conf(&c, &Attachment::default(), host), host);
        // dns / dns_search / dns_opt override.
        let mut c = cfg();
        c.dns = vec!["1.1.1.1".parse().unwrap()];
        c.dns_search = vec![".".into()];
        c.dns_options = vec!["attempts:2".into()];
        assert_eq!(resolv_conf(&c, &Attachment::default(), host), "nameserver 1.1.1.1\noptions attempts:2\n");
    }

    /// `dns_opt` does not drop the ndots:0 that berth's resolver needs, and an ndots of its own
    /// is kept as given.
    #[test]
    fn ndots_is_kept_with_dns_opt() {
        let host = "nameserver 127.0.0.53\noptions edns0\n";
        let att = Attachment { nameservers: vec!["10.213.0.1".parse().unwrap()], ..Default::default() };
        let mut c = cfg();
        c.dns_options = vec!["attempts:2".into()];
        assert_eq!(resolv_conf(&c, &att, host), "nameserver 10.213.0.1\noptions attempts:2 ndots:0\n");
        c.dns_options = vec!["ndots:3".into(), "timeout:1".into()];
        assert_eq!(resolv_conf(&c, &att, host), "nameserver 10.213.0.1\noptions ndots:3 timeout:1\n");
    }
}
