//! The generated `/etc/hosts` and `/etc/resolv.conf` of a container, as Docker writes them. The
//! supervisor writes them into the container's folder; their content is the network's business.

use std::net::IpAddr;
use std::path::Path;

use super::dns::upstream;
use super::types::Attachment;

/// `/etc/hosts`: the localhost lines, `extra_hosts`, then the container's own address with its
/// hostname (`hostname.domainname hostname` when a domain is set).
pub fn hosts(hostname: &str, domainname: &str, attachment: Option<&Attachment>, extra_hosts: &[(String, IpAddr)]) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for (name, ip) in extra_hosts {
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    let own = attachment.and_then(|a| a.endpoints.first()).and_then(|e| e.ipv4.map(IpAddr::V4).or(e.ipv6.map(IpAddr::V6)));
    if let (Some(ip), false) = (own, hostname.is_empty()) {
        if domainname.is_empty() {
            s.push_str(&format!("{ip}\t{hostname}\n"));
        } else {
            s.push_str(&format!("{ip}\t{hostname}.{domainname} {hostname}\n"));
        }
    }
    s
}

/// `/etc/resolv.conf`. On bridge networks the container asks berth's resolver (`embedded`, from
/// [`Attachment::nameservers`]), which forwards to the compose `dns:` servers or the host's; with
/// `options ndots:0` as Docker. Without it (host and none modes) the `dns:` servers or the host's
/// own are written. `dns_search` and `dns_opt` replace the host's `search` and `options`.
pub fn resolv_conf(embedded: &[IpAddr], dns: &[IpAddr], search: &[String], options: &[String]) -> String {
    resolv_conf_from(Path::new(upstream::HOST_RESOLV_CONF), embedded, dns, search, options)
}

pub fn resolv_conf_from(host_file: &Path, embedded: &[IpAddr], dns: &[IpAddr], search: &[String], options: &[String]) -> String {
    let host = std::fs::read_to_string(host_file).unwrap_or_default();
    let mut s = String::new();
    let servers: Vec<IpAddr> = if !embedded.is_empty() {
        embedded.to_vec()
    } else if !dns.is_empty() {
        dns.to_vec()
    } else {
        let mut h = upstream::parse_nameservers(&host);
        if h.contains(&"127.0.0.53".parse::<IpAddr>().expect("valid")) {
            let sd = upstream::parse_nameservers(&std::fs::read_to_string(upstream::SYSTEMD_RESOLV_CONF).unwrap_or_default());
            if !sd.is_empty() {
                h = sd;
            }
        }
        h
    };
    for ns in servers {
        s.push_str(&format!("nameserver {ns}\n"));
    }
    let search: Vec<String> = if search.is_empty() { upstream::parse_search(&host) } else { search.to_vec() };
    if !search.is_empty() {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    let mut opts: Vec<String> = Vec::new();
    if !embedded.is_empty() {
        opts.push("ndots:0".into());
    } else if options.is_empty() {
        opts.extend(host.lines().filter_map(|l| l.strip_prefix("options ")).flat_map(|o| o.split_whitespace().map(str::to_string)));
    }
    for o in options {
        let key = o.split(':').next().unwrap_or(o);
        opts.retain(|x| x.split(':').next() != Some(key));
        opts.push(o.clone());
    }
    if !opts.is_empty() {
        s.push_str(&format!("options {}\n", opts.join(" ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::types::EndpointInfo;

    #[test]
    fn hosts_like_docker() {
        let a = Attachment {
            endpoints: vec![EndpointInfo { ipv4: Some("10.210.0.2".parse().unwrap()), ..Default::default() }],
            ..Default::default()
        };
        let h = hosts("h1", "example.com", Some(&a), &[("foo".into(), "10.1.2.3".parse().unwrap())]);
        assert!(h.ends_with("10.1.2.3\tfoo\n10.210.0.2\th1.example.com h1\n"), "{h}");
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(!hosts("h1", "", None, &[]).contains("h1"));
    }

    #[test]
    fn resolv_conf_points_at_the_embedded_resolver() {
        let d = tempfile::tempdir().unwrap();
        let host = d.path().join("resolv.conf");
        std::fs::write(&host, "nameserver 192.0.2.53\nsearch corp.example\noptions edns0 timeout:2\n").unwrap();
        let r = resolv_conf_from(&host, &["10.210.0.1".parse().unwrap()], &["192.0.2.9".parse().unwrap()], &[], &["ndots:2".into()]);
        assert_eq!(r, "nameserver 10.210.0.1\nsearch corp.example\noptions ndots:2\n");
        let r = resolv_conf_from(&host, &[], &[], &["a.example".into()], &[]);
        assert_eq!(r, "nameserver 192.0.2.53\nsearch a.example\noptions edns0 timeout:2\n");
        let r = resolv_conf_from(&host, &[], &["192.0.2.9".parse().unwrap()], &[], &["attempts:1".into()]);
        assert_eq!(r, "nameserver 192.0.2.9\nsearch corp.example\noptions attempts:1\n");
    }
}
