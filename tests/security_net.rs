//! Network isolation attacks (issue 12, items 1-4, 14 and 15), each reproduced against real
//! containers, bridges and nftables rules, and shown refused:
//! - a container (CAP_NET_RAW) sends a TCP SYN for 127.0.0.1 to its gateway's MAC: a host service
//!   bound to 127.0.0.1 must not answer;
//! - a LAN neighbour sends a SYN for 127.0.0.1 to the host's MAC: a port published on 127.0.0.1
//!   must not answer;
//! - a container on an IPv4-only network has no IPv6 at all, and takes no router advertisement
//!   on an IPv6 network;
//! - a deleted or flushed firewall table is reported by `network ls` and rewritten by the next
//!   `up -d`, even one with nothing to do;
//! - a container whose supervisor was killed loses its DNAT rules and DNS names when the death is
//!   observed.
//!
//! The probes are raw frames (AF_PACKET) sent from inside the namespaces, as an attacker with
//! CAP_NET_RAW would; each attack also has a control (the same probe at something it may reach,
//! and the attack again with berth's guard rules removed) so that a probe that cannot work never
//! passes for a refusal. Subnets 10.221.0.0/16, host ports 42930-42949, names `secnet`.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::net::*;
use common::runtime::{Rt, out};
use serde_json::{Value, json};

/// A web server answering its own name on port 80.
const WEB: &str = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www";

fn spec(rt: &Rt, name: &str, script: &str, network: &str) -> Value {
    let mut s = rt.spec(name, script);
    s["Labels"] = json!({"com.docker.compose.project": "secnet", "com.docker.compose.service": name});
    s["Endpoints"] = json!([{"network": network, "aliases": [format!("{name}-alias")]}]);
    s
}

fn netns(rt: &Rt, name: &str) -> PathBuf {
    let pid = rt.inspect(name)["State"]["Pid"].as_i64().unwrap();
    PathBuf::from(format!("/proc/{pid}/ns/net"))
}

fn endpoint(rt: &Rt, name: &str, network: &str) -> (Ipv4Addr, [u8; 6]) {
    let n = &rt.inspect(name)["NetworkSettings"]["Networks"][network];
    (n["IPAddress"].as_str().unwrap().parse().unwrap(), parse_mac(n["MacAddress"].as_str().unwrap()))
}

fn parse_mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s.trim().split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
    v.try_into().unwrap()
}

/// The MAC address of a link of the host.
fn host_mac(link: &str) -> [u8; 6] {
    parse_mac(&std::fs::read_to_string(format!("/sys/class/net/{link}/address")).unwrap())
}

fn bridge_of(rt: &Rt, network: &str) -> String {
    let root = berth::state::StateRoot::new(rt.t.root());
    berth::net::network::read_network(&root, network).unwrap().unwrap().bridge
}

fn table(rt: &Rt) -> String {
    berth::net::firewall::table_name(&berth::state::StateRoot::new(rt.t.root()))
}

fn nft(args: &[&str]) -> String {
    let o = Command::new("nft").args(args).output().unwrap();
    assert!(o.status.success(), "nft {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    out(&o)
}

fn nft_table(rt: &Rt) -> Option<String> {
    let o = Command::new("nft").args(["list", "table", "inet", &table(rt)]).output().unwrap();
    o.status.success().then(|| out(&o))
}

/// Removes berth's loopback guard from the root's table (the `guard` chain's rule and the check
/// before the DNAT), as the table was before the fix: the control that the probes can succeed.
fn remove_guard(rt: &Rt) {
    let t = table(rt);
    nft(&["flush", "chain", "inet", &t, "guard"]);
    let listed = nft(&["-a", "list", "chain", "inet", &t, "prerouting"]);
    for line in listed.lines().filter(|l| l.contains("127.0.0.0/8")) {
        let handle = line.rsplit("# handle ").next().unwrap().trim();
        nft(&["delete", "rule", "inet", &t, "prerouting", "handle", handle]);
    }
}

/// The tests of this file run one at a time: each root's table guards the whole host's loopback,
/// so a control that removes one root's guard needs no other root's table on the host.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The other nftables tables with a `guard` chain (other berth roots), which would block the
/// controls' attacks too.
fn other_guards(rt: &Rt) -> Vec<String> {
    let mine = table(rt);
    out(&Command::new("nft").args(["list", "chains", "inet"]).output().unwrap())
        .lines()
        .filter(|l| l.trim_start().starts_with("table inet "))
        .map(|l| l.trim().trim_start_matches("table inet ").trim_end_matches(" {").to_string())
        .filter(|t| *t != mine && nft_table_named(t).is_some_and(|x| x.contains("chain guard")))
        .collect()
}

fn nft_table_named(t: &str) -> Option<String> {
    let o = Command::new("nft").args(["list", "table", "inet", t]).output().unwrap();
    o.status.success().then(|| out(&o))
}

fn checksum(data: &[u8], mut sum: u32) -> u16 {
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame carrying a TCP SYN.
fn syn_frame(src_mac: [u8; 6], dst_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&sport.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    tcp.extend_from_slice(&0u32.to_be_bytes());
    tcp.extend_from_slice(&[0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0]);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 6, 0, tcp.len() as u8]);
    pseudo.extend_from_slice(&tcp);
    let c = checksum(&pseudo, 0);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, (20 + tcp.len()) as u8, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = checksum(&ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&tcp);
    f
}

/// What a raw probe sends: a SYN from `src` (`src_mac`, out of `ifname` in the namespace `ns`)
/// for `dst:dport`, to the link neighbour `dst_mac` whatever the destination address.
struct Probe {
    ns: PathBuf,
    ifname: &'static str,
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst_mac: [u8; 6],
}

impl Probe {
    /// Whether a SYN-ACK comes back for `dst:dport` (three tries, a second each).
    fn answered(&self, dst: Ipv4Addr, dport: u16) -> bool {
        let (ifname, src_mac, src, dst_mac) = (self.ifname.to_string(), self.src_mac, self.src, self.dst_mac);
        in_netns(&self.ns, move || {
            let proto = (libc::ETH_P_IP as u16).to_be();
            // SAFETY: socket(2) with integer arguments; the descriptor is owned at once.
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
            assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
            // SAFETY: a descriptor just made, ours alone.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let index = nix::net::if_::if_nametoindex(ifname.as_str()).unwrap();
            // SAFETY: sockaddr_ll is plain data; zero is a valid value of each field.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = index as i32;
            sll.sll_halen = 6;
            sll.sll_addr[..6].copy_from_slice(&dst_mac);
            let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: bind(2) with a valid sockaddr_ll of the given size.
            assert_eq!(unsafe { libc::bind(fd.as_raw_fd(), (&raw const sll).cast(), len) }, 0);
            let tv = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
            // SAFETY: setsockopt(2) with a timeval of the right size.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&raw const tv).cast(),
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                )
            };
            for _ in 0..3 {
                let sport = 40000 + (rand::random::<u16>() % 20000);
                let frame = syn_frame(src_mac, dst_mac, src, dst, sport, dport);
                // SAFETY: sendto(2) with a buffer and address we own.
                let sent = unsafe { libc::sendto(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0, (&raw const sll).cast(), len) };
                assert_eq!(sent, frame.len() as isize, "send: {}", std::io::Error::last_os_error());
                let until = Instant::now() + Duration::from_secs(1);
                let mut buf = [0u8; 2048];
                while Instant::now() < until {
                    // SAFETY: recv(2) into a buffer we own.
                    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                    if n < 34 {
                        continue;
                    }
                    let f = &buf[..n as usize];
                    let ip = &f[14..];
                    let ihl = usize::from(ip[0] & 0xf) * 4;
                    if f[12..14] != [8, 0] || ip[9] != 6 || ip.len() < ihl + 14 {
                        continue;
                    }
                    let tcp = &ip[ihl..];
                    let (from, to) = (u16::from_be_bytes([tcp[0], tcp[1]]), u16::from_be_bytes([tcp[2], tcp[3]]));
                    if from == dport && to == sport && tcp[13] & 0x12 == 0x12 {
                        return true;
                    }
                }
            }
            false
        })
    }
}

/// A namespace standing for a LAN neighbour of the host, on a veth: the host end is
/// `10.221.<subnet>.1/30`, the neighbour `10.221.<subnet>.2/30`. Removed on drop.
struct Lan {
    ns: Netns,
    host_if: String,
    host_ip: Ipv4Addr,
    ip: Ipv4Addr,
    mac: [u8; 6],
}

impl Lan {
    fn new(subnet: u8) -> Lan {
        use berth::net::netlink::Netlink;
        let ns = Netns::new();
        let host_if = format!("secnet{:03}{:04x}", subnet, rand::random::<u16>());
        let (host_ip, ip) = (Ipv4Addr::new(10, 221, subnet, 1), Ipv4Addr::new(10, 221, subnet, 2));
        let mac = [2, 0, 10, 221, subnet, 2];
        let mut nl = Netlink::open().unwrap();
        let nsfd = std::fs::File::open(ns.path()).unwrap();
        nl.create_veth(&host_if, None, 1500, "eth0", mac, &nsfd).unwrap();
        let lan = Lan { ns, host_if, host_ip, ip, mac };
        let idx = nl.link_index(&lan.host_if).unwrap().unwrap();
        nl.add_address(idx, IpAddr::V4(host_ip), 30, &lan.host_if).unwrap();
        let mut inner = Netlink::open_in(&lan.ns.path()).unwrap();
        let e = inner.link_index("eth0").unwrap().unwrap();
        inner.set_up(e, "eth0").unwrap();
        inner.add_address(e, IpAddr::V4(ip), 30, "eth0").unwrap();
        inner.add_default_route(IpAddr::V4(host_ip), e).unwrap();
        // Each side learns the other's MAC now.
        let _ = lan.ns.busybox(&["ping", "-c", "1", "-W", "1", &host_ip.to_string()]);
        lan
    }
    fn probe(&self) -> Probe {
        Probe { ns: self.ns.path(), ifname: "eth0", src_mac: self.mac, src: self.ip, dst_mac: host_mac(&self.host_if) }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        if let Ok(mut nl) = berth::net::netlink::Netlink::open() {
            if let Ok(Some(i)) = nl.link_index(&self.host_if) {
                let _ = nl.delete_link(i, &self.host_if);
            }
        }
    }
}

fn http_get(addr: SocketAddr) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").map_err(|e| e.to_string())?;
    let mut r = String::new();
    c.read_to_string(&mut r).map_err(|e| e.to_string())?;
    Ok(r)
}

fn lo(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// Item 1: route_localnet is on for every bridge (the host's own 127.0.0.1 traffic is DNATed
/// out of it), so a container sending a SYN for 127.0.0.1 to its gateway's MAC got an answer
/// from host services bound to 127.0.0.1 only.
#[test]
fn containers_cannot_reach_the_host_loopback() {
    common::require_root!();
    let _serial = serial();
    let rt = Rt::new();
    rt.t.ok(["network", "create", "--subnet", "10.221.1.0/24", "secnet_lo"]);
    let mut s = spec(&rt, "secnet-web-1", WEB, "secnet_lo");
    s["Hostname"] = json!("web1");
    s["Ports"] = json!([{"host_ip": "127.0.0.1", "host_port": 42930, "container_port": 80, "protocol": "tcp"}]);
    rt.run_d(&s);
    rt.run_d(&spec(&rt, "secnet-evil-1", "exec sleep 3600", "secnet_lo"));
    let (ip, mac) = endpoint(&rt, "secnet-evil-1", "secnet_lo");
    let ns = netns(&rt, "secnet-evil-1");
    let gateway = Ipv4Addr::new(10, 221, 1, 1);
    let probe = Probe { ns, ifname: "eth0", src_mac: mac, src: ip, dst_mac: host_mac(&bridge_of(&rt, "secnet_lo")) };
    let _host_only = TcpProbe::start(None, lo(42931), "host-only");
    let _on_gateway = TcpProbe::start(None, SocketAddr::new(IpAddr::V4(gateway), 42932), "gateway");

    // Each attack right after a control: the probe works (the host answers on the gateway's
    // address), and the host has just resolved the container's MAC from that address (its own
    // ARP requests for an answer from 127.0.0.1 would go unanswered, which is no protection).
    let attack = || {
        assert!(probe.answered(gateway, 42932), "control: the raw probe gets an answer from the gateway address");
        probe.answered(Ipv4Addr::LOCALHOST, 42931)
    };
    assert!(!attack(), "a host service on 127.0.0.1 answered a container");
    // Ports published on 127.0.0.1 still answer on the host.
    assert!(http_get(lo(42930)).unwrap().ends_with("web1\n"));

    // Control: without berth's guard (main before the fix), the same probe gets through.
    remove_guard(&rt);
    assert!(attack(), "control: without the guard the attack succeeds (other roots' guards: {:?})", other_guards(&rt));
}

/// Item 2 (moby#41872): the DNAT of a port published on 127.0.0.1 had no interface check, so a
/// LAN neighbour routing 127.0.0.1 to the host reached it.
#[test]
fn ports_published_on_loopback_are_not_reachable_from_the_lan() {
    common::require_root!();
    let _serial = serial();
    let rt = Rt::new();
    rt.t.ok(["network", "create", "--subnet", "10.221.2.0/24", "secnet_lan"]);
    let mut s = spec(&rt, "secnet-web-2", WEB, "secnet_lan");
    s["Hostname"] = json!("web2");
    s["Ports"] = json!([
        {"host_ip": "127.0.0.1", "host_port": 42933, "container_port": 80, "protocol": "tcp"},
        {"host_port": 42934, "container_port": 80, "protocol": "tcp"},
    ]);
    rt.run_d(&s);
    let lan = Lan::new(200);
    let probe = lan.probe();

    // The probe works: the port published on every address answers the neighbour.
    assert!(probe.answered(lan.host_ip, 42934), "control: a port published on 0.0.0.0 answers the LAN");
    // The attack: the port published on 127.0.0.1 does not.
    assert!(!probe.answered(Ipv4Addr::LOCALHOST, 42933), "a port published on 127.0.0.1 answered the LAN");
    // It still answers the host.
    assert!(http_get(lo(42933)).unwrap().ends_with("web2\n"));
    // Nor is the container reached directly by its address (the forward chain's own rule).
    let (web_ip, _) = endpoint(&rt, "secnet-web-2", "secnet_lan");
    assert!(!probe.answered(web_ip, 80), "the container's address answered the LAN");

    // Control: without berth's guard (main before the fix), the same probe gets through.
    remove_guard(&rt);
    assert!(
        probe.answered(Ipv4Addr::LOCALHOST, 42933),
        "control: without the guard the attack succeeds (other roots' guards: {:?})",
        other_guards(&rt)
    );
}

/// Item 3 (CVE-2024-32473): a container on an IPv4-only network had a link-local address and
/// accepted router advertisements.
#[test]
fn ipv4_only_networks_give_containers_no_ipv6() {
    common::require_root!();
    let _serial = serial();
    let rt = Rt::new();
    rt.t.ok(["network", "create", "--subnet", "10.221.3.0/24", "secnet_v4"]);
    rt.run_d(&spec(&rt, "secnet-v4-1", "exec sleep 3600", "secnet_v4"));
    if !Path::new("/proc/sys/net/ipv6").exists() {
        common::skip!("the host has no IPv6 (ipv6.disable=1): nothing to turn off");
    }
    let (_, disabled, _) = rt.exec("secnet-v4-1", &["cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6"]);
    assert_eq!(disabled.trim(), "1");
    let (_, addrs, _) = rt.exec("secnet-v4-1", &["ip", "-6", "addr", "show", "dev", "eth0"]);
    assert!(!addrs.contains("fe80"), "a link-local address: {addrs}");
    // IPv4 works all the same.
    let (_, v4, _) = rt.exec("secnet-v4-1", &["ip", "-4", "addr", "show", "dev", "eth0"]);
    assert!(v4.contains("10.221.3."), "{v4}");

    // With IPv6: addresses, and no router advertisement taken.
    rt.t.ok(["network", "create", "--ipv6", "--subnet", "10.221.4.0/24", "--subnet", "fd00:221:4::/64", "secnet_v6"]);
    rt.run_d(&spec(&rt, "secnet-v6-1", "exec sleep 3600", "secnet_v6"));
    let (_, ra, _) =
        rt.exec("secnet-v6-1", &["cat", "/proc/sys/net/ipv6/conf/eth0/accept_ra", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6"]);
    assert_eq!(ra.split_whitespace().collect::<Vec<_>>(), ["0", "0"]);
    let (_, addrs, _) = rt.exec("secnet-v6-1", &["ip", "-6", "addr", "show", "dev", "eth0"]);
    assert!(addrs.contains("fd00:221:4::"), "{addrs}");
}

/// Item 4 (CVE-2025-54388 class): a deleted or flushed table left every container open until
/// some later change. `network ls` says so, and the next `up -d`, with nothing to do, rewrites it.
#[test]
fn a_lost_firewall_table_is_reported_and_restored_by_a_noop_up() {
    common::require_root!();
    let _serial = serial();
    let stack = common::compose::Stack::new(
        "secnet4",
        "services:\n  web:\n    image: busybox:latest\n    command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n    \
         ports: [\"127.0.0.1:42935:80\"]\n    networks: [inner]\nnetworks:\n  inner:\n    \
         ipam:\n      config: [{subnet: 10.221.5.0/24}]\n",
    );
    stack.ok(["up", "-d"]);
    let t = berth::net::firewall::table_name(&berth::state::StateRoot::new(stack.t.root()));
    let listed = || Command::new("nft").args(["list", "table", "inet", &t]).output().unwrap();
    let before = out(&listed());
    assert!(before.contains("42935") && before.contains("guard"), "{before}");

    for damage in [["delete", "table", "inet", t.as_str()], ["flush", "table", "inet", t.as_str()]] {
        nft(&damage);
        let ls = stack.t.run(["network", "ls"]);
        assert!(ls.status.success());
        let warn = String::from_utf8_lossy(&ls.stderr);
        assert!(warn.contains(&format!("firewall table inet {t}")), "{damage:?}: network ls says nothing: {warn}");
        let (_, err) = stack.ok(["up", "-d"]);
        let after = out(&listed());
        assert!(after.contains("42935") && after.contains("guard") && after.contains("drop"), "{damage:?}, then up -d: {after}\n{err}");
        let ls = stack.t.run(["network", "ls"]);
        assert!(!String::from_utf8_lossy(&ls.stderr).contains("firewall table"), "restored, and quiet again");
    }
}

/// Item 14 (network part): a container whose supervisor was killed kept its DNAT rule and its DNS
/// names until its next start. The first command that sees it dead releases them.
#[test]
fn a_dead_container_loses_its_dnat_and_dns_names_when_observed() {
    common::require_root!();
    let _serial = serial();
    let rt = Rt::new();
    rt.t.ok(["network", "create", "--subnet", "10.221.6.0/24", "secnet_dead"]);
    let mut s = spec(&rt, "secnet-gone-1", WEB, "secnet_dead");
    s["Ports"] = json!([{"host_port": 42936, "container_port": 80, "protocol": "tcp"}]);
    let id = rt.run_d(&s);
    // Names it does not know are forwarded to its `dns` server: one on the host's loopback, so
    // that no query leaves the host.
    let mut p = spec(&rt, "secnet-peer-1", "exec sleep 3600", "secnet_dead");
    p["Dns"] = json!(["127.0.0.1"]);
    rt.run_d(&p);
    let peer = netns(&rt, "secnet-peer-1");
    let gateway = IpAddr::V4(Ipv4Addr::new(10, 221, 6, 1));
    let resolves = |name: &str| {
        dns_udp_within(Some(peer.as_path()), gateway, name, hickory_proto::rr::RecordType::A, Duration::from_secs(3))
            .map(|a| !a.addrs.is_empty())
            .unwrap_or(false)
    };
    assert!(resolves("secnet-gone-1") && resolves("secnet-gone-1-alias"));
    assert!(nft_table(&rt).unwrap().contains("42936"));

    let state: Value =
        serde_json::from_slice(&std::fs::read(rt.t.root().join("containers").join(&id).join("state.json")).unwrap()).unwrap();
    let (sup, init) = (state["Supervisor"]["Pid"].as_i64().unwrap() as i32, state["Init"]["Pid"].as_i64().unwrap() as i32);
    // SAFETY: kill(2) of the supervisor this test started.
    unsafe { libc::kill(sup, libc::SIGKILL) };
    rt.wait_for("the container to die", Duration::from_secs(5), || !Path::new(&format!("/proc/{init}")).exists());
    // Nothing has observed it yet: the rule and the names are still there (what main leaves).
    assert!(nft_table(&rt).unwrap().contains("42936"));
    // The first look at it.
    assert_eq!(rt.status("secnet-gone-1"), "dead");
    let table = nft_table(&rt).unwrap();
    assert!(!table.contains("42936"), "the DNAT rule of a dead container: {table}");
    assert!(!resolves("secnet-gone-1") && !resolves("secnet-gone-1-alias"), "a dead container's names still answer");
    assert!(resolves("secnet-peer-1"), "the others' names still answer");
    // It starts again, with its port and names.
    rt.ctr_ok(["start", "secnet-gone-1"]);
    assert!(nft_table(&rt).unwrap().contains("42936"));
    assert!(resolves("secnet-gone-1"));
    rt.wait_for("the web server to answer again", Duration::from_secs(5), || http_get(lo(42936)).is_ok());
}

/// Item 3, the relay: a container on an internal network with IPv6 reached another container's
/// published port through the supervisor's IPv6 relay (which serves the host's own addresses,
/// its gateway's included). The relay refuses clients from internal networks.
#[test]
fn the_ipv6_relay_refuses_internal_networks() {
    common::require_root!();
    let _serial = serial();
    if std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6").map_or(true, |s| s.trim() == "1") {
        common::skip!("the host has IPv6 disabled: ports are not relayed");
    }
    let rt = Rt::new();
    rt.t.ok(["network", "create", "--subnet", "10.221.7.0/24", "secnet_pub"]);
    rt.t.ok(["network", "create", "--internal", "--ipv6", "--subnet", "10.221.8.0/24", "--subnet", "fd00:221:8::/64", "secnet_int6"]);
    let mut s = spec(&rt, "secnet-web-7", WEB, "secnet_pub");
    s["Hostname"] = json!("web7");
    s["Ports"] = json!([{"host_port": 42937, "container_port": 80, "protocol": "tcp"}]);
    rt.run_d(&s);
    rt.run_d(&spec(&rt, "secnet-int-1", "exec sleep 3600", "secnet_int6"));
    let ns = netns(&rt, "secnet-int-1");
    let gw6: IpAddr = "fd00:221:8::1".parse().unwrap();
    // The relay serves the host.
    let v6lo = SocketAddr::new("::1".parse().unwrap(), 42937);
    assert!(http_get(v6lo).unwrap().ends_with("web7\n"), "the relay serves the host on [::1]");
    // Control: the internal container reaches the host on its gateway's IPv6 address.
    let _probe = TcpProbe::start(None, SocketAddr::new(gw6, 42938), "gateway");
    rt.wait_for("the internal container to reach its gateway over IPv6", Duration::from_secs(5), || {
        tcp_fetch(Some(&ns), SocketAddr::new(gw6, 42938)).is_ok()
    });
    // The attack: the published port, through the relay, from the internal network.
    let ns2 = ns.clone();
    let got = in_netns(&ns2, move || http_get(SocketAddr::new(gw6, 42937)));
    assert!(!got.as_ref().is_ok_and(|b| b.contains("web7")), "the relay served an internal network: {got:?}");
}

/// Item 3, the relay, for a network made later: the relay learned the internal subnets when its
/// container started, so an internal network created afterwards was served. It now reads them
/// as they are when a client comes. Checked failing before: with the start-time list only
/// (`Proxy::new(l.forwards)` without `.watching`), the internal container got "web9".
#[test]
fn the_ipv6_relay_refuses_an_internal_network_created_after_the_start() {
    common::require_root!();
    let _serial = serial();
    if std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6").map_or(true, |s| s.trim() == "1") {
        common::skip!("the host has IPv6 disabled: ports are not relayed");
    }
    let rt = Rt::new();
    rt.t.ok(["network", "create", "--subnet", "10.227.7.0/24", "secfin_pub"]);
    let mut s = spec(&rt, "secfin-web-9", WEB, "secfin_pub");
    s["Hostname"] = json!("web9");
    s["Ports"] = json!([{"host_port": 42977, "container_port": 80, "protocol": "tcp"}]);
    rt.run_d(&s);
    let v6lo = SocketAddr::new("::1".parse().unwrap(), 42977);
    rt.wait_for("the relay to serve the host on [::1]", Duration::from_secs(5), || http_get(v6lo).is_ok_and(|b| b.ends_with("web9\n")));
    // Made after the web container started.
    rt.t.ok(["network", "create", "--internal", "--ipv6", "--subnet", "10.227.8.0/24", "--subnet", "fd00:227:8::/64", "secfin_int6"]);
    rt.run_d(&spec(&rt, "secfin-int-1", "exec sleep 3600", "secfin_int6"));
    let ns = netns(&rt, "secfin-int-1");
    let gw6: IpAddr = "fd00:227:8::1".parse().unwrap();
    // Control: the internal container reaches the host on its gateway's IPv6 address.
    let _probe = TcpProbe::start(None, SocketAddr::new(gw6, 42978), "gateway");
    rt.wait_for("the internal container to reach its gateway over IPv6", Duration::from_secs(5), || {
        tcp_fetch(Some(&ns), SocketAddr::new(gw6, 42978)).is_ok()
    });
    let got = in_netns(&ns, move || http_get(SocketAddr::new(gw6, 42977)));
    assert!(!got.as_ref().is_ok_and(|b| b.contains("web9")), "the relay served an internal network made later: {got:?}");
    // And the host is still served.
    assert!(http_get(v6lo).unwrap().ends_with("web9\n"));
}
