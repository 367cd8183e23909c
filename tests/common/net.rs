//! Network test helpers: network namespaces standing in for containers, an "outside" host
//! namespace wired to the host by a veth, a fake upstream resolver on loopback, traffic and DNS
//! probes run inside namespaces, and listings of what is left on the host.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use berth::net::netlink::Netlink;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use nix::sched::CloneFlags;

/// Tells the library which binary to start as `berth __dns`.
pub fn use_built_berth() {
    berth::net::dns::set_berth_exe(super::berth_bin());
}

/// A network namespace kept alive by a sleeping busybox; killed on drop.
pub struct Netns {
    child: Child,
}

impl Netns {
    pub fn new() -> Netns {
        let mut cmd = Command::new(super::host_busybox());
        cmd.args(["sleep", "100000"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        unsafe {
            cmd.pre_exec(|| {
                // Dies with the test (even a killed one); create it on the test's own thread.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn a namespace holder");
        let ns = Netns { child };
        // Wait until the child has unshared (its namespace differs from ours).
        let me = std::fs::read_link("/proc/self/ns/net").unwrap();
        for _ in 0..500 {
            if std::fs::read_link(ns.path()).map(|l| l != me).unwrap_or(false) {
                return ns;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("namespace holder did not unshare");
    }
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.child.id()))
    }
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    /// Runs `f` on a thread inside the namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.path(), f)
    }
    /// Runs a busybox applet inside the namespace.
    pub fn busybox(&self, args: &[&str]) -> std::process::Output {
        let fd = File::open(self.path()).unwrap();
        let mut cmd = Command::new(super::host_busybox());
        cmd.args(args);
        unsafe {
            cmd.pre_exec(move || {
                nix::sched::setns(fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        cmd.output().unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `f` on a new thread that has entered the network namespace at `path`.
pub fn in_netns<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> T {
    let file = File::open(path).unwrap();
    std::thread::scope(|s| {
        s.spawn(move || {
            nix::sched::setns(file.as_fd(), CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

/// A namespace standing for another host, linked to this host by a veth: the host end is
/// `10.210.<subnet>.1/30`, the other `10.210.<subnet>.2/30` with a default route back.
pub struct Outside {
    pub ns: Netns,
    pub host_if: String,
    pub host_ip: Ipv4Addr,
    pub ip: Ipv4Addr,
}

impl Outside {
    pub fn new(subnet: u8) -> Outside {
        let ns = Netns::new();
        let host_if = format!("bto{:03}{:06x}", subnet, rand::random::<u32>() & 0xffffff);
        let host_ip = Ipv4Addr::new(10, 210, subnet, 1);
        let ip = Ipv4Addr::new(10, 210, subnet, 2);
        let mut nl = Netlink::open().unwrap();
        let nsfd = File::open(ns.path()).unwrap();
        nl.create_veth(&host_if, None, 1500, "eth0", [2, 0, 10, 210, subnet, 2], &nsfd).unwrap();
        let out = Outside { ns, host_if, host_ip, ip };
        let idx = nl.link_index(&out.host_if).unwrap().unwrap();
        nl.add_address(idx, IpAddr::V4(host_ip), 30, &out.host_if).unwrap();
        let mut inner = Netlink::open_in(&out.ns.path()).unwrap();
        let lo = inner.link_index("lo").unwrap().unwrap();
        inner.set_up(lo, "lo").unwrap();
        let e = inner.link_index("eth0").unwrap().unwrap();
        inner.set_up(e, "eth0").unwrap();
        inner.add_address(e, IpAddr::V4(ip), 30, "eth0").unwrap();
        inner.add_default_route(IpAddr::V4(host_ip), e).unwrap();
        // IPv6 too: fd00:210:<subnet>::1/64 on the host end, ::2 outside.
        nl.add_address(idx, out.host_ip6(), 64, &out.host_if).unwrap();
        inner.add_address(e, out.ip6(), 64, "eth0").unwrap();
        inner.add_default_route(out.host_ip6(), e).unwrap();
        // Resolve each other's link addresses now: forwarded packets wait for the host end's
        // link-local address to finish duplicate address detection otherwise.
        let _ =
            Command::new(super::host_busybox()).args(["ping", "-c", "1", "-W", "1", &out.ip6().to_string()]).stdout(Stdio::null()).status();
        out
    }
    pub fn host_ip6(&self) -> IpAddr {
        format!("fd00:210:{}::1", self.host_ip.octets()[2]).parse().unwrap()
    }
    pub fn ip6(&self) -> IpAddr {
        format!("fd00:210:{}::2", self.host_ip.octets()[2]).parse().unwrap()
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        if let Ok(mut nl) = Netlink::open() {
            if let Ok(Some(i)) = nl.link_index(&self.host_if) {
                let _ = nl.delete_link(i, &self.host_if);
            }
        }
    }
}

/// A TCP server that answers each connection with "<tag> <peer address>" and closes.
pub struct TcpProbe {
    stop: Arc<AtomicBool>,
    pub addr: SocketAddr,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl TcpProbe {
    /// Listens on `addr` inside the namespace at `ns` (or here when `None`).
    pub fn start(ns: Option<&Path>, addr: SocketAddr, tag: &str) -> TcpProbe {
        let listener = match ns {
            Some(p) => in_netns(p, || TcpListener::bind(addr).unwrap()),
            None => TcpListener::bind(addr).unwrap(),
        };
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let tag = tag.to_string();
        let handle = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut c, peer)) => {
                        let _ = c.write_all(format!("{tag} {}\n", peer.ip()).as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TcpProbe { stop, addr, handle: Some(handle) }
    }
}

impl Drop for TcpProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A UDP server that answers each datagram with "<tag> <peer address>".
pub struct UdpProbe {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl UdpProbe {
    pub fn start(ns: Option<&Path>, addr: SocketAddr, tag: &str) -> UdpProbe {
        let sock = match ns {
            Some(p) => in_netns(p, || UdpSocket::bind(addr).unwrap()),
            None => UdpSocket::bind(addr).unwrap(),
        };
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let tag = tag.to_string();
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !st.load(Ordering::Relaxed) {
                if let Ok((_, peer)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(format!("{tag} {}\n", peer.ip()).as_bytes(), peer);
                }
            }
        });
        UdpProbe { stop, handle: Some(handle) }
    }
}

impl Drop for UdpProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Connects to `addr` (from the namespace at `ns`, or here) and returns what the server said.
pub fn tcp_fetch(ns: Option<&Path>, addr: SocketAddr) -> Result<String, String> {
    let go = move || -> Result<String, String> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        Ok(out.trim().to_string())
    };
    match ns {
        Some(p) => in_netns(p, go),
        None => go(),
    }
}

/// Sends a datagram to `addr` and returns the answer.
pub fn udp_fetch(ns: Option<&Path>, addr: SocketAddr) -> Result<String, String> {
    let go = move || -> Result<String, String> {
        let bind: SocketAddr = if addr.is_ipv4() { "0.0.0.0:0".parse().unwrap() } else { "[::]:0".parse().unwrap() };
        let s = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
        s.send_to(b"ping", addr).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 1500];
        let (n, _) = s.recv_from(&mut buf).map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
    };
    match ns {
        Some(p) => in_netns(p, go),
        None => go(),
    }
}

/// The outcome of one DNS query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    pub rcode: ResponseCode,
    pub addrs: Vec<IpAddr>,
    pub names: Vec<String>,
}

fn parse_answer(resp: &[u8]) -> DnsAnswer {
    let m = Message::from_vec(resp).expect("a DNS response");
    let mut addrs = Vec::new();
    let mut names = Vec::new();
    for r in &m.answers {
        match &r.data {
            RData::A(a) => addrs.push(IpAddr::V4(a.0)),
            RData::AAAA(a) => addrs.push(IpAddr::V6(a.0)),
            RData::PTR(p) => names.push(p.0.to_ascii()),
            _ => {}
        }
    }
    DnsAnswer { rcode: m.metadata.response_code, addrs, names }
}

fn query_bytes(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.to_vec().unwrap()
}

/// Asks `server` over UDP from the namespace at `ns` (or here); `Err` on timeout.
pub fn dns_udp(ns: Option<&Path>, server: IpAddr, name: &str, qtype: RecordType) -> Result<DnsAnswer, String> {
    dns_udp_within(ns, server, name, qtype, Duration::from_secs(6))
}

/// [`dns_udp`] with a given timeout.
pub fn dns_udp_within(ns: Option<&Path>, server: IpAddr, name: &str, qtype: RecordType, timeout: Duration) -> Result<DnsAnswer, String> {
    let q = query_bytes(name, qtype);
    let go = move || -> Result<DnsAnswer, String> {
        let bind: SocketAddr = if server.is_ipv4() { "0.0.0.0:0".parse().unwrap() } else { "[::]:0".parse().unwrap() };
        let s = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(timeout)).unwrap();
        s.send_to(&q, SocketAddr::new(server, 53)).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4096];
        let (n, _) = s.recv_from(&mut buf).map_err(|e| e.to_string())?;
        Ok(parse_answer(&buf[..n]))
    };
    match ns {
        Some(p) => in_netns(p, go),
        None => go(),
    }
}

/// Asks `server` over TCP.
pub fn dns_tcp(ns: Option<&Path>, server: IpAddr, name: &str, qtype: RecordType) -> Result<DnsAnswer, String> {
    let q = query_bytes(name, qtype);
    let go = move || -> Result<DnsAnswer, String> {
        let mut s = TcpStream::connect_timeout(&SocketAddr::new(server, 53), Duration::from_secs(2)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
        let mut out = (q.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&q);
        s.write_all(&out).map_err(|e| e.to_string())?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).map_err(|e| e.to_string())?;
        Ok(parse_answer(&buf))
    };
    match ns {
        Some(p) => in_netns(p, go),
        None => go(),
    }
}

/// A fake upstream resolver on `addr:53` (a loopback address of this host, or an outside
/// namespace): `*.upstream.test` is 10.210.99.99, anything else NXDOMAIN.
pub struct FakeUpstream {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
    pub queries: Arc<std::sync::atomic::AtomicUsize>,
}

impl FakeUpstream {
    pub fn start(ns: Option<&Path>, ip: IpAddr) -> FakeUpstream {
        let addr = SocketAddr::new(ip, 53);
        let sock = match ns {
            Some(p) => in_netns(p, || UdpSocket::bind(addr).unwrap()),
            None => UdpSocket::bind(addr).unwrap(),
        };
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (st, qs) = (stop.clone(), queries.clone());
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !st.load(Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else { continue };
                let Ok(req) = Message::from_vec(&buf[..n]) else { continue };
                qs.fetch_add(1, Ordering::Relaxed);
                let mut resp = Message::response(req.metadata.id, OpCode::Query);
                resp.metadata.message_type = MessageType::Response;
                resp.metadata.recursion_desired = req.metadata.recursion_desired;
                resp.metadata.recursion_available = true;
                resp.queries = req.queries.clone();
                let q = &req.queries[0];
                if q.name().to_ascii().ends_with("upstream.test.") && q.query_type() == RecordType::A {
                    resp.answers.push(Record::from_rdata(
                        q.name().clone(),
                        60,
                        RData::A(hickory_proto::rr::rdata::A(Ipv4Addr::new(10, 210, 99, 99))),
                    ));
                } else {
                    resp.metadata.response_code = ResponseCode::NXDomain;
                }
                let _ = sock.send_to(&resp.to_vec().unwrap(), peer);
            }
        });
        FakeUpstream { stop, handle: Some(handle), queries }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// What of a root's kernel objects is visible on the host.
#[derive(Debug, Default)]
pub struct HostView {
    pub links: Vec<String>,
    pub addresses: Vec<String>,
    pub routes: Vec<String>,
    pub nft_table: bool,
    /// How many of the given names (bridges) the table mentions (its sets' elements).
    pub nft_names: usize,
    pub docker_user_rules: usize,
    pub dns_running: bool,
}

/// Lists the links, addresses and routes of the given interface names, the root's nft table and
/// DOCKER-USER rules, and whether its resolver runs.
pub fn host_view(root: &Path, names: &[String]) -> HostView {
    let mut nl = Netlink::open().unwrap();
    let links = nl.links().unwrap();
    let mut v = HostView::default();
    let indexes: Vec<u32> = links.iter().filter(|(_, n)| names.contains(n)).map(|(i, _)| *i).collect();
    v.links = links.iter().filter(|(_, n)| names.contains(n)).map(|(_, n)| n.clone()).collect();
    v.addresses =
        nl.addresses().unwrap().into_iter().filter(|a| indexes.contains(&a.index)).map(|a| format!("{}/{}", a.address, a.prefix)).collect();
    v.routes = nl
        .routes()
        .unwrap()
        .into_iter()
        .filter(|r| r.oif.is_some_and(|o| indexes.contains(&o)))
        .map(|r| format!("{}/{}", r.destination, r.prefix))
        .collect();
    let table = berth::net::firewall::table_name(&berth::state::StateRoot::new(root));
    let out = Command::new("nft").args(["list", "table", "inet", &table]).output().unwrap();
    v.nft_table = out.status.success();
    let text = String::from_utf8_lossy(&out.stdout);
    v.nft_names = names.iter().filter(|n| text.contains(&format!("\"{n}\""))).count();
    let du = Command::new("nft").args(["list", "chain", "ip", "filter", "DOCKER-USER"]).output().unwrap();
    v.docker_user_rules = String::from_utf8_lossy(&du.stdout).matches(&format!("berth:{table}")).count();
    v.dns_running = std::fs::read_to_string(root.join("dns/dns.pid"))
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|p| p.parse::<i32>().ok()))
        .is_some_and(|pid| berth::util::sys::ProcId::of(pid).is_some_and(|p| p.alive()));
    v
}

/// The host's own address: the first global IPv4 address of the link of the default route.
pub fn host_address() -> Ipv4Addr {
    let mut nl = Netlink::open().unwrap();
    let oif =
        nl.routes().unwrap().into_iter().find(|r| r.prefix == 0 && r.destination.is_ipv4()).and_then(|r| r.oif).expect("a default route");
    nl.addresses()
        .unwrap()
        .into_iter()
        .find_map(|a| match a.address {
            IpAddr::V4(v4) if a.index == oif => Some(v4),
            _ => None,
        })
        .expect("an IPv4 address on the default route's link")
}
