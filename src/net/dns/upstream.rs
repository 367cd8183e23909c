//! The host's upstream resolvers: `/etc/resolv.conf`, where a systemd-resolved stub (127.0.0.53)
//! is replaced by the servers it uses (`/run/systemd/resolve/resolv.conf`), as Docker does.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
pub const SYSTEMD_RESOLV_CONF: &str = "/run/systemd/resolve/resolv.conf";
const RESOLVED_STUB: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53));

/// At most this many upstreams are tried, as glibc and Docker do.
pub const MAX_UPSTREAMS: usize = 3;

/// The `nameserver` lines of a resolv.conf (IPv6 zone suffixes dropped).
pub fn parse_nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .filter_map(|a| a.split('%').next().and_then(|a| a.parse().ok()))
        .collect()
}

/// The `search` domains of a resolv.conf.
pub fn parse_search(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match w.next() {
                Some("search") | Some("domain") => Some(w.map(str::to_string).collect::<Vec<_>>()),
                _ => None,
            }
        })
        .next_back()
        .unwrap_or_default()
}

/// The host's upstreams, read from `host` with the systemd stub replaced from `systemd`.
pub fn host_upstreams_from(host: &Path, systemd: &Path) -> Vec<SocketAddr> {
    let text = std::fs::read_to_string(host).unwrap_or_default();
    let mut servers = parse_nameservers(&text);
    if servers.contains(&RESOLVED_STUB) {
        let real = parse_nameservers(&std::fs::read_to_string(systemd).unwrap_or_default());
        if !real.is_empty() {
            servers = real;
        }
    }
    let mut out: Vec<SocketAddr> = Vec::new();
    for s in servers {
        let sa = SocketAddr::new(s, 53);
        if !out.contains(&sa) {
            out.push(sa);
        }
    }
    out.truncate(MAX_UPSTREAMS);
    out
}

pub fn host_upstreams() -> Vec<SocketAddr> {
    host_upstreams_from(Path::new(HOST_RESOLV_CONF), Path::new(SYSTEMD_RESOLV_CONF))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nameservers_and_search() {
        let t = "# x\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nsearch a.example b.example\noptions ndots:2\n";
        assert_eq!(parse_nameservers(t), vec!["10.0.0.1".parse::<IpAddr>().unwrap(), "fe80::1".parse().unwrap()]);
        assert_eq!(parse_search(t), vec!["a.example", "b.example"]);
    }

    #[test]
    fn replaces_the_systemd_stub() {
        let d = tempfile::tempdir().unwrap();
        let host = d.path().join("resolv.conf");
        let sd = d.path().join("sd.conf");
        std::fs::write(&host, "nameserver 127.0.0.53\noptions edns0\n").unwrap();
        std::fs::write(&sd, "nameserver 192.0.2.53\nnameserver 192.0.2.54\n").unwrap();
        let u = host_upstreams_from(&host, &sd);
        assert_eq!(u, vec!["192.0.2.53:53".parse().unwrap(), "192.0.2.54:53".parse().unwrap()]);
        // Without systemd's file the stub itself is used (it answers in the host namespace).
        let u = host_upstreams_from(&host, &d.path().join("missing"));
        assert_eq!(u, vec!["127.0.0.53:53".parse().unwrap()]);
    }
}
