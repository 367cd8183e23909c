//! The resolver's sockets: UDP and TCP on port 53 of every gateway, local answers from
//! [`Records`], and forwarding of everything else to the upstreams with timeouts.
//!
//! Plain threads and blocking sockets: a few listeners, each with one UDP socket and worker
//! thread per CPU (queries are steered to the CPU they arrived on) and a TCP acceptor; one
//! forwarding socket per family whose replies a receiver thread routes back by query id; a
//! sweeper that retries the next upstream or answers SERVFAIL when one times out.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::records::{Records, Scope};

/// Time to live of local answers, as Docker's resolver.
const TTL: u32 = 600;
/// How long one upstream may take before the next is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_millis(2000);
/// Forwarded UDP queries in flight at once; more get SERVFAIL.
const MAX_PENDING: usize = 4096;
/// TCP connections served at once.
const MAX_TCP: usize = 64;

pub struct Shared {
    pub records: RwLock<Arc<Records>>,
    pub host_upstreams: RwLock<Arc<Vec<SocketAddr>>>,
    /// Rotation counters for A and AAAA answers (separate: clients ask both for each name).
    rotate: [AtomicUsize; 2],
    tcp_conns: AtomicUsize,
    fwd: Forwarder,
}

impl Shared {
    pub fn new(records: Records, host_upstreams: Vec<SocketAddr>) -> io::Result<Arc<Shared>> {
        let shared = Arc::new(Shared {
            records: RwLock::new(Arc::new(records)),
            host_upstreams: RwLock::new(Arc::new(host_upstreams)),
            rotate: [AtomicUsize::new(0), AtomicUsize::new(0)],
            tcp_conns: AtomicUsize::new(0),
            fwd: Forwarder::new()?,
        });
        shared.fwd.spawn(&shared);
        Ok(shared)
    }
    fn records(&self) -> Arc<Records> {
        self.records.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn host_upstreams(&self) -> Arc<Vec<SocketAddr>> {
        self.host_upstreams.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What to do with one query.
pub enum Reply {
    Answer(Vec<u8>),
    Forward { query: Vec<u8>, upstreams: Vec<SocketAddr> },
    Ignore,
}

fn error_reply(req: &Message, code: ResponseCode) -> Vec<u8> {
    let mut m = Message::error_msg(req.metadata.id, req.metadata.op_code, code);
    m.metadata.recursion_desired = req.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.queries = req.queries.clone();
    m.to_vec().unwrap_or_default()
}

/// A FORMERR for a packet that does not parse, if at least its id can be read.
fn formerr_raw(packet: &[u8]) -> Reply {
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        return Reply::Ignore;
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let m = Message::error_msg(id, OpCode::Query, ResponseCode::FormErr);
    Reply::Answer(m.to_vec().unwrap_or_default())
}

fn rotated<T: Clone>(v: &[T], k: usize) -> Vec<T> {
    let mut v = v.to_vec();
    if !v.is_empty() {
        let n = k % v.len();
        v.rotate_left(n);
    }
    v
}

/// Answers `packet`, which `src` sent to the resolver at `local`. `udp_limit` is the UDP payload
/// size the client accepts (`None` on TCP).
pub fn answer(shared: &Shared, local: IpAddr, src: IpAddr, packet: &[u8], udp: bool) -> Reply {
    let req = match Message::from_vec(packet) {
        Ok(m) => m,
        Err(_) => return formerr_raw(packet),
    };
    if req.metadata.message_type != MessageType::Query {
        return Reply::Ignore;
    }
    if req.metadata.op_code != OpCode::Query {
        return Reply::Answer(error_reply(&req, ResponseCode::NotImp));
    }
    if req.queries.len() != 1 {
        return Reply::Answer(error_reply(&req, ResponseCode::FormErr));
    }
    let q = &req.queries[0];
    let records = shared.records();
    let Some(scope) = records.scope(local, src) else { return Reply::Ignore };
    let qname = super::records::normalize(&q.name().to_ascii());
    let mut answers: Option<Vec<Record>> = None;
    if q.query_type() == RecordType::PTR {
        if let Ok(net) = q.name().parse_arpa_name() {
            if net.prefix_len() == net.max_prefix_len() {
                if let Some(name) = records.reverse(&scope, net.addr()) {
                    if let Ok(target) = Name::from_ascii(format!("{name}.")) {
                        answers = Some(vec![Record::from_rdata(q.name().clone(), TTL, RData::PTR(PTR(target)))]);
                    }
                }
            }
        }
    } else if let Some(addrs) = records.lookup(&scope, &qname) {
        let name = q.name().clone();
        let turn = |family: usize, n: usize| if n > 1 { shared.rotate[family].fetch_add(1, Ordering::Relaxed) } else { 0 };
        answers = Some(match q.query_type() {
            RecordType::A => rotated(&addrs.v4, turn(0, addrs.v4.len()))
                .into_iter()
                .map(|a| Record::from_rdata(name.clone(), TTL, RData::A(A(a))))
                .collect(),
            RecordType::AAAA => rotated(&addrs.v6, turn(1, addrs.v6.len()))
                .into_iter()
                .map(|a| Record::from_rdata(name.clone(), TTL, RData::AAAA(AAAA(a))))
                .collect(),
            // The name exists here, with no record of that type.
            _ => Vec::new(),
        });
    }
    if let Some(answers) = answers {
        return Reply::Answer(local_reply(&req, answers, udp));
    }
    forward_or_refuse(shared, &req, packet, &scope)
}

fn forward_or_refuse(shared: &Shared, req: &Message, packet: &[u8], scope: &Scope) -> Reply {
    if !scope.forward {
        // Internal networks have no way out, not even for names.
        return Reply::Answer(error_reply(req, ResponseCode::Refused));
    }
    let upstreams: Vec<SocketAddr> = if scope.dns_servers.is_empty() {
        shared.host_upstreams().as_ref().clone()
    } else {
        scope.dns_servers.iter().take(super::upstream::MAX_UPSTREAMS).map(|ip| SocketAddr::new(*ip, 53)).collect()
    };
    if upstreams.is_empty() {
        return Reply::Answer(error_reply(req, ResponseCode::ServFail));
    }
    Reply::Forward { query: packet.to_vec(), upstreams }
}

fn local_reply(req: &Message, answers: Vec<Record>, udp: bool) -> Vec<u8> {
    let mut m = Message::response(req.metadata.id, req.metadata.op_code);
    m.metadata.recursion_desired = req.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.metadata.authoritative = true;
    m.queries = req.queries.clone();
    m.answers = answers;
    let limit = match &req.edns {
        Some(e) => {
            let mut edns = Edns::new();
            edns.set_max_payload(4096);
            m.edns = Some(edns);
            e.max_payload().max(512) as usize
        }
        None => 512,
    };
    let bytes = m.to_vec().unwrap_or_default();
    if udp && bytes.len() > limit {
        let mut t = m.truncate();
        t.answers.clear();
        return t.to_vec().unwrap_or_default();
    }
    bytes
}

fn servfail_for(query: &[u8]) -> Option<Vec<u8>> {
    let req = Message::from_vec(query).ok()?;
    Some(error_reply(&req, ResponseCode::ServFail))
}

struct Pending {
    client: SocketAddr,
    reply: Arc<UdpSocket>,
    orig_id: u16,
    query: Vec<u8>,
    upstreams: Vec<SocketAddr>,
    tried: usize,
    deadline: Instant,
}

/// Forwards UDP queries from the host namespace and routes the answers back by query id.
struct Forwarder {
    sock4: Arc<UdpSocket>,
    sock6: Option<Arc<UdpSocket>>,
    pending: Mutex<HashMap<u16, Pending>>,
}

impl Forwarder {
    fn new() -> io::Result<Forwarder> {
        let sock4 = Arc::new(UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?);
        let sock6 = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).ok().map(Arc::new);
        Ok(Forwarder { sock4, sock6, pending: Mutex::new(HashMap::new()) })
    }

    fn socket_for(&self, up: &SocketAddr) -> Option<&UdpSocket> {
        if up.is_ipv4() { Some(&self.sock4) } else { self.sock6.as_deref() }
    }

    fn spawn(&self, shared: &Arc<Shared>) {
        for sock in std::iter::once(self.sock4.clone()).chain(self.sock6.clone()) {
            let s = shared.clone();
            std::thread::Builder::new().name("dns-upstream".into()).spawn(move || s.fwd.receive(&sock)).expect("spawn a thread");
        }
        let s = shared.clone();
        std::thread::Builder::new().name("dns-sweep".into()).spawn(move || s.fwd.sweep()).expect("spawn a thread");
    }

    fn forward(&self, mut query: Vec<u8>, client: SocketAddr, reply: Arc<UdpSocket>, upstreams: Vec<SocketAddr>) {
        if query.len() < 12 {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() >= MAX_PENDING {
            drop(pending);
            if let Some(b) = servfail_for(&query) {
                let _ = reply.send_to(&b, client);
            }
            return;
        }
        let orig_id = u16::from_be_bytes([query[0], query[1]]);
        let id = loop {
            let id: u16 = rand::random();
            if !pending.contains_key(&id) {
                break id;
            }
        };
        query[..2].copy_from_slice(&id.to_be_bytes());
        let up = upstreams[0];
        if let Some(sock) = self.socket_for(&up) {
            let _ = sock.send_to(&query, up);
        }
        pending.insert(id, Pending { client, reply, orig_id, query, upstreams, tried: 0, deadline: Instant::now() + UPSTREAM_TIMEOUT });
    }

    fn receive(&self, sock: &UdpSocket) {
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
            if n < 12 {
                continue;
            }
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            let p = {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                match pending.get(&id) {
                    Some(p) if p.upstreams.contains(&from) => pending.remove(&id),
                    _ => None,
                }
            };
            if let Some(p) = p {
                buf[..2].copy_from_slice(&p.orig_id.to_be_bytes());
                let _ = p.reply.send_to(&buf[..n], p.client);
            }
        }
    }

    fn sweep(&self) {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = Instant::now();
            let mut failed = Vec::new();
            {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                let expired: Vec<u16> = pending.iter().filter(|(_, p)| p.deadline <= now).map(|(id, _)| *id).collect();
                for id in expired {
                    let p = pending.get_mut(&id).expect("listed above");
                    p.tried += 1;
                    if p.tried < p.upstreams.len() {
                        let up = p.upstreams[p.tried];
                        p.deadline = now + UPSTREAM_TIMEOUT;
                        if let Some(sock) = self.socket_for(&up) {
                            let _ = sock.send_to(&p.query, up);
                        }
                    } else if let Some(p) = pending.remove(&id) {
                        failed.push(p);
                    }
                }
            }
            for mut p in failed {
                p.query[..2].copy_from_slice(&p.orig_id.to_be_bytes());
                if let Some(b) = servfail_for(&p.query) {
                    let _ = p.reply.send_to(&b, p.client);
                }
            }
        }
    }
}

/// Asks the upstreams over TCP, one after the other.
fn forward_tcp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let attempt = (|| -> io::Result<Vec<u8>> {
            let mut s = TcpStream::connect_timeout(up, UPSTREAM_TIMEOUT)?;
            s.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
            s.set_write_timeout(Some(UPSTREAM_TIMEOUT))?;
            let mut out = (query.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(query);
            s.write_all(&out)?;
            read_frame(&mut s)
        })();
        if let Ok(r) = attempt {
            return Some(r);
        }
    }
    None
}

fn read_frame(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

fn serve_tcp(shared: &Shared, mut s: TcpStream, local: IpAddr, peer: IpAddr) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
    while let Ok(q) = read_frame(&mut s) {
        let resp = match answer(shared, local, peer, &q, false) {
            Reply::Answer(b) => b,
            Reply::Forward { query, upstreams } => match forward_tcp(&query, &upstreams) {
                Some(b) => b,
                None => match servfail_for(&query) {
                    Some(b) => b,
                    None => break,
                },
            },
            Reply::Ignore => break,
        };
        let mut out = (resp.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&resp);
        if s.write_all(&out).is_err() {
            break;
        }
    }
}

/// UDP and TCP sockets on one gateway address, with their threads.
pub struct Listener {
    udp: Vec<Arc<UdpSocket>>,
    tcp: Arc<TcpListener>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

fn bound_socket(ip: IpAddr, tcp: bool, reuseport: bool) -> io::Result<std::os::fd::OwnedFd> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrStorage, bind, setsockopt, socket, sockopt};
    let fam = if ip.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let ty = if tcp { SockType::Stream } else { SockType::Datagram };
    let fd = socket(fam, ty, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if reuseport {
        setsockopt(&fd, sockopt::ReusePort, &true)?;
    }
    // The gateway address may be on its way (a bridge being re-created): bind anyway.
    if ip.is_ipv4() {
        setsockopt(&fd, sockopt::IpFreebind, &true)?;
    } else {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
        let _ = setsockopt(&fd, sockopt::IpFreebind, &true);
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(SocketAddr::new(ip, 53)))?;
    if tcp {
        nix::sys::socket::listen(&fd, nix::sys::socket::Backlog::new(128).expect("valid backlog"))?;
    }
    Ok(fd)
}

/// Steers each datagram to the socket of the CPU that received it (the asking container's CPU,
/// since veths deliver on the sender's CPU): a classic BPF program returning the CPU number as
/// the index in the SO_REUSEPORT group.
fn steer_by_cpu(fd: &impl AsRawFd) -> io::Result<()> {
    const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;
    let code = [
        // A = the current CPU (ancillary load); return A.
        libc::sock_filter { code: 0x20, jt: 0, jf: 0, k: (libc::SKF_AD_OFF + libc::SKF_AD_CPU) as u32 },
        libc::sock_filter { code: 0x16, jt: 0, jf: 0, k: 0 },
    ];
    let prog = libc::sock_fprog { len: code.len() as u16, filter: code.as_ptr() as *mut libc::sock_filter };
    // SAFETY: a valid fd and a program that lives through the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            (&prog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// The CPUs this process may run on.
fn cpus() -> Vec<usize> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok();
    let cpus: Vec<usize> =
        (0..nix::sched::CpuSet::count().min(256)).filter(|c| set.as_ref().is_none_or(|s| s.is_set(*c).unwrap_or(false))).collect();
    if cpus.is_empty() { vec![0] } else { cpus }
}

fn udp_worker(sh: Arc<Shared>, sock: Arc<UdpSocket>, st: Arc<AtomicBool>, ip: IpAddr, cpu: Option<usize>) {
    if let Some(c) = cpu {
        let mut set = nix::sched::CpuSet::new();
        if set.set(c).is_ok() {
            let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
        }
    }
    let mut buf = vec![0u8; 65536];
    loop {
        let r = sock.recv_from(&mut buf);
        if st.load(Ordering::Relaxed) {
            return;
        }
        let Ok((n, src)) = r else { continue };
        match answer(&sh, ip, src.ip(), &buf[..n], true) {
            Reply::Answer(b) => {
                let _ = sock.send_to(&b, src);
            }
            Reply::Forward { query, upstreams } => sh.fwd.forward(query, src, sock.clone(), upstreams),
            Reply::Ignore => {}
        }
    }
}

impl Listener {
    /// Binds UDP and TCP port 53 on `ip`. UDP gets one socket per CPU in an SO_REUSEPORT group,
    /// each served by a thread pinned to its CPU, so that a query is answered on the CPU it
    /// arrived on, without waking another.
    pub fn start(shared: &Arc<Shared>, ip: IpAddr) -> io::Result<Listener> {
        let cpus = cpus();
        let n = cpus.iter().max().map(|m| m + 1).unwrap_or(1).clamp(1, 64);
        let mut udp = Vec::with_capacity(n);
        for _ in 0..n {
            // SAFETY: a fresh UDP socket, owned here.
            udp.push(Arc::new(unsafe { UdpSocket::from_raw_fd(bound_socket(ip, false, n > 1)?.into_raw_fd()) }));
        }
        if n > 1 {
            steer_by_cpu(&*udp[0])?;
        }
        // SAFETY: a fresh listening TCP socket, owned here.
        let tcp = Arc::new(unsafe { TcpListener::from_raw_fd(bound_socket(ip, true, false)?.into_raw_fd()) });
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (i, sock) in udp.iter().enumerate() {
            let (sh, sock, st) = (shared.clone(), sock.clone(), stop.clone());
            let cpu = cpus.contains(&i).then_some(i);
            threads.push(std::thread::Builder::new().name(format!("dns-udp-{ip}-{i}")).spawn(move || udp_worker(sh, sock, st, ip, cpu))?);
        }
        let (sh, lis, st) = (shared.clone(), tcp.clone(), stop.clone());
        threads.push(std::thread::Builder::new().name(format!("dns-tcp-{ip}")).spawn(move || {
            loop {
                let r = lis.accept();
                if st.load(Ordering::Relaxed) {
                    return;
                }
                let Ok((conn, peer)) = r else { continue };
                if sh.tcp_conns.fetch_add(1, Ordering::AcqRel) >= MAX_TCP {
                    sh.tcp_conns.fetch_sub(1, Ordering::AcqRel);
                    continue;
                }
                let sh2 = sh.clone();
                let spawned = std::thread::Builder::new().name("dns-tcp-conn".into()).spawn(move || {
                    serve_tcp(&sh2, conn, ip, peer.ip());
                    sh2.tcp_conns.fetch_sub(1, Ordering::AcqRel);
                });
                if spawned.is_err() {
                    sh.tcp_conns.fetch_sub(1, Ordering::AcqRel);
                }
            }
        })?);
        Ok(Listener { udp, tcp, stop, threads })
    }

    /// Stops the threads and closes the sockets.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        // shutdown wakes threads blocked in recvfrom/accept, even on unconnected sockets.
        for u in &self.udp {
            let _ = nix::sys::socket::shutdown(u.as_fd().as_raw_fd(), nix::sys::socket::Shutdown::Both);
        }
        let _ = nix::sys::socket::shutdown(self.tcp.as_fd().as_raw_fd(), nix::sys::socket::Shutdown::Both);
        for t in self.threads {
            let _ = t.join();
        }
    }
}
