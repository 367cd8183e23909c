//! The userland forwarder for published ports that kernel NAT cannot serve: the IPv6 side of a
//! port published to a container with only an IPv4 address (the kernel cannot translate between
//! families), and `[::1]` (the kernel never routes a packet from IPv6 loopback out of the host).
//! Docker runs a `docker-proxy` process per port for this; berth serves them from the container's
//! supervisor, which already holds the sockets that reserve the ports, inside its single-threaded
//! poll loop: TCP is spliced (splice(2) through a pipe per direction, no user-space copy and no
//! buffer of ours), UDP is relayed through one connected socket per client, dropped after
//! [`UDP_IDLE`] without traffic.
//!
//! The supervisor asks [`Proxy::interests`] for the descriptors to poll, hands each ready one to
//! [`Proxy::ready`], then calls [`Proxy::sweep`] once per round (and at [`Proxy::deadline`]).

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::types::Protocol;
use crate::util::sys;

/// A UDP client's flow is forgotten after this long without a datagram either way (as
/// docker-proxy's conntrack timeout).
pub const UDP_IDLE: Duration = Duration::from_secs(90);
/// At most this many TCP connections, and as many UDP flows, per container; more are refused
/// (TCP) or evict the oldest flow (UDP), so that a flood cannot exhaust the supervisor's fds.
const MAX_CONNS: usize = 256;
/// How much one direction moves per pipe fill.
const PIPE_CHUNK: usize = 1 << 16;

/// A listening (TCP) or bound (UDP) socket whose traffic goes to `target`.
#[derive(Debug)]
pub struct Forward {
    pub socket: OwnedFd,
    pub protocol: Protocol,
    pub target: SocketAddr,
    /// Clients from these subnets are refused: the root's internal networks, whose containers the
    /// kernel's rules keep from published ports, and which the relay (reached on the host's own
    /// addresses, not forwarded) must not open either.
    pub refuse: Vec<super::ipam::Subnet>,
}

impl Forward {
    fn refuses(&self, peer: &SocketAddr) -> bool {
        let ip = peer.ip().to_canonical();
        self.refuse.iter().any(|s| s.contains(ip))
    }
}

/// Which descriptor of the proxy a poll slot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    Listener(usize),
    Conn(usize),
    Flow(usize),
}

/// One direction of a spliced TCP connection.
struct Half {
    pipe_r: OwnedFd,
    pipe_w: OwnedFd,
    /// Bytes in the pipe, not yet written on.
    pending: usize,
    eof: bool,
    shut: bool,
}

struct Conn {
    client: OwnedFd,
    upstream: OwnedFd,
    connecting: bool,
    /// client → upstream, upstream → client.
    up: Half,
    down: Half,
    dead: bool,
}

struct Flow {
    listener: usize,
    peer: SocketAddr,
    socket: OwnedFd,
    last: Instant,
    dead: bool,
}

/// Every forwarder of one container.
#[derive(Default)]
pub struct Proxy {
    listeners: Vec<Forward>,
    conns: Vec<Conn>,
    flows: Vec<Flow>,
    buf: Vec<u8>,
    internal: Option<InternalSubnets>,
}

/// The subnets of the root's internal networks as they are now, not as they were when the
/// container started: a network created later must be refused too. Re-read from the networks'
/// records when the `networks/` folder changed (one `stat` per client otherwise); a folder
/// changed less than a second ago is re-read every time, since two changes within the
/// filesystem's timestamp granularity leave one mtime.
struct InternalSubnets {
    root: crate::state::StateRoot,
    stamp: Option<std::time::SystemTime>,
    subnets: Vec<super::ipam::Subnet>,
}

impl InternalSubnets {
    fn current(&mut self) -> &[super::ipam::Subnet] {
        let mtime = std::fs::metadata(self.root.networks_dir()).and_then(|m| m.modified()).ok();
        let recent = mtime.is_none_or(|t| t.elapsed().map(|e| e < Duration::from_secs(1)).unwrap_or(true));
        if mtime != self.stamp || recent {
            // An unreadable list keeps the last one known rather than refusing nobody.
            if let Ok(networks) = super::network::list(&self.root) {
                self.subnets =
                    networks.iter().filter(|n| n.internal).flat_map(|n| n.pools().map(|p| p.subnet).collect::<Vec<_>>()).collect();
                self.stamp = mtime;
            }
        }
        &self.subnets
    }
}

fn set_nonblock(fd: RawFd) {
    let _ = sys::set_nonblock(fd, true);
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn set_int(fd: RawFd, level: i32, opt: i32, v: libc::c_int) {
    // SAFETY: setsockopt with a c_int value of the right size.
    unsafe {
        libc::setsockopt(fd, level, opt, &v as *const libc::c_int as *const libc::c_void, size_of::<libc::c_int>() as libc::socklen_t);
    }
}

fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let s = nix::sys::socket::SockaddrStorage::from(*addr);
    let len = nix::sys::socket::SockaddrLike::len(&s);
    // SAFETY: sockaddr_storage is plain data, for which all zeroes is valid.
    let mut out: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    // SAFETY: SockaddrStorage wraps a sockaddr_storage of `len` valid bytes, which fit in `out`.
    unsafe {
        std::ptr::copy_nonoverlapping(
            nix::sys::socket::SockaddrLike::as_ptr(&s) as *const u8,
            &mut out as *mut libc::sockaddr_storage as *mut u8,
            len as usize,
        );
    }
    (out, len)
}

fn from_sockaddr(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    // SAFETY: the kernel filled `len` bytes of `ss`.
    let s = unsafe {
        <nix::sys::socket::SockaddrStorage as nix::sys::socket::SockaddrLike>::from_raw(
            ss as *const libc::sockaddr_storage as *const libc::sockaddr,
            Some(len),
        )
    }?;
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    s.as_sockaddr_in6().map(|v6| SocketAddr::from((v6.ip(), v6.port())))
}

fn new_socket(target: &SocketAddr, ty: libc::c_int) -> Option<OwnedFd> {
    let domain = if target.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket(2); the result is owned at once.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    // SAFETY: a new socket, ours alone.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Starts a non-blocking connect; `Some(true)` while it is in progress.
fn connect(fd: &OwnedFd, target: &SocketAddr) -> Option<bool> {
    let (sa, len) = sockaddr(target);
    // SAFETY: `sa` holds `len` valid bytes.
    let r = unsafe { libc::connect(fd.as_raw_fd(), &sa as *const libc::sockaddr_storage as *const libc::sockaddr, len) };
    if r == 0 {
        Some(false)
    } else if errno() == libc::EINPROGRESS {
        Some(true)
    } else {
        None
    }
}

fn pipe() -> Option<(OwnedFd, OwnedFd)> {
    sys::pipe_with(libc::O_NONBLOCK).ok()
}

impl Half {
    fn new() -> Option<Half> {
        let (pipe_r, pipe_w) = pipe()?;
        Some(Half { pipe_r, pipe_w, pending: 0, eof: false, shut: false })
    }

    /// Moves what it can from `src` to `dst`. Returns false on an error that ends the connection.
    fn pump(&mut self, src: &OwnedFd, dst: &OwnedFd) -> bool {
        let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
        for _ in 0..16 {
            if self.pending == 0 && !self.eof {
                // SAFETY: splice between descriptors we own; null offsets (sockets and pipes).
                let n = unsafe {
                    libc::splice(src.as_raw_fd(), std::ptr::null_mut(), self.pipe_w.as_raw_fd(), std::ptr::null_mut(), PIPE_CHUNK, flags)
                };
                match n {
                    0 => self.eof = true,
                    n if n > 0 => self.pending = n as usize,
                    _ if errno() == libc::EAGAIN => {}
                    _ if errno() == libc::EINTR => continue,
                    _ => return false,
                }
            }
            if self.pending > 0 {
                // SAFETY: as above.
                let n = unsafe {
                    libc::splice(self.pipe_r.as_raw_fd(), std::ptr::null_mut(), dst.as_raw_fd(), std::ptr::null_mut(), self.pending, flags)
                };
                if n > 0 {
                    self.pending -= n as usize;
                } else if errno() == libc::EINTR {
                    continue;
                } else if n < 0 && errno() != libc::EAGAIN {
                    return false;
                }
            }
            if self.eof && self.pending == 0 {
                if !self.shut {
                    // SAFETY: shutdown(2) on our socket.
                    unsafe { libc::shutdown(dst.as_raw_fd(), libc::SHUT_WR) };
                    self.shut = true;
                }
                return true;
            }
            if self.pending > 0 {
                // The destination is full: wait for POLLOUT.
                return true;
            }
            if self.pending == 0 && !self.eof {
                // Nothing more to read now (EAGAIN) unless the last splice filled a whole chunk.
                let mut p = libc::pollfd { fd: src.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                // SAFETY: poll on one descriptor, without waiting.
                if unsafe { libc::poll(&mut p, 1, 0) } <= 0 {
                    return true;
                }
            }
        }
        true
    }
}

impl Conn {
    fn pump(&mut self) {
        if self.connecting || self.dead {
            return;
        }
        let ok = self.up.pump(&self.client, &self.upstream) && self.down.pump(&self.upstream, &self.client);
        if !ok || (self.up.shut && self.down.shut) {
            self.dead = true;
        }
    }

    fn events(&self) -> (libc::c_short, libc::c_short) {
        if self.connecting {
            return (0, libc::POLLOUT);
        }
        let mut c = 0;
        let mut u = 0;
        if self.up.pending == 0 && !self.up.eof {
            c |= libc::POLLIN;
        }
        if self.up.pending > 0 {
            u |= libc::POLLOUT;
        }
        if self.down.pending == 0 && !self.down.eof {
            u |= libc::POLLIN;
        }
        if self.down.pending > 0 {
            c |= libc::POLLOUT;
        }
        (c, u)
    }
}

impl Proxy {
    pub fn new(forwards: Vec<Forward>) -> Proxy {
        for f in &forwards {
            set_nonblock(f.socket.as_raw_fd());
        }
        Proxy { listeners: forwards, ..Proxy::default() }
    }

    /// Also refuses clients from the internal networks of `root` created after the start (each
    /// forward's `refuse` holds those known then).
    pub fn watching(mut self, root: &crate::state::StateRoot) -> Proxy {
        if !self.listeners.is_empty() {
            self.internal = Some(InternalSubnets { root: root.clone(), stamp: None, subnets: Vec::new() });
        }
        self
    }

    /// Whether a client of listener `i` from `peer` is refused.
    fn refused(&mut self, i: usize, peer: &SocketAddr) -> bool {
        if self.listeners[i].refuses(peer) {
            return true;
        }
        let ip = peer.ip().to_canonical();
        self.internal.as_mut().is_some_and(|n| n.current().iter().any(|s| s.contains(ip)))
    }

    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }

    /// The descriptors to poll, with their events.
    pub fn interests(&self, out: &mut Vec<(RawFd, libc::c_short, Token)>) {
        for (i, l) in self.listeners.iter().enumerate() {
            out.push((l.socket.as_raw_fd(), libc::POLLIN, Token::Listener(i)));
        }
        for (i, c) in self.conns.iter().enumerate() {
            let (ce, ue) = c.events();
            out.push((c.client.as_raw_fd(), ce, Token::Conn(i)));
            out.push((c.upstream.as_raw_fd(), ue, Token::Conn(i)));
        }
        for (i, f) in self.flows.iter().enumerate() {
            out.push((f.socket.as_raw_fd(), libc::POLLIN, Token::Flow(i)));
        }
    }

    /// Handles a descriptor that poll reported ready.
    pub fn ready(&mut self, token: Token, revents: libc::c_short) {
        match token {
            Token::Listener(i) => match self.listeners[i].protocol {
                Protocol::Tcp => self.accept(i),
                Protocol::Udp => self.relay_from_clients(i),
            },
            Token::Conn(i) => {
                let c = &mut self.conns[i];
                if c.connecting {
                    if revents & (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) == 0 {
                        return;
                    }
                    let mut err: libc::c_int = 0;
                    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
                    // SAFETY: getsockopt SO_ERROR into a c_int.
                    let r = unsafe {
                        libc::getsockopt(
                            c.upstream.as_raw_fd(),
                            libc::SOL_SOCKET,
                            libc::SO_ERROR,
                            &mut err as *mut libc::c_int as *mut libc::c_void,
                            &mut len,
                        )
                    };
                    if r != 0 || err != 0 {
                        // The container refuses: reset the client, as a refused connection would.
                        reset(&c.client);
                        c.dead = true;
                        return;
                    }
                    c.connecting = false;
                }
                c.pump();
            }
            Token::Flow(i) => self.relay_from_upstream(i),
        }
    }

    fn accept(&mut self, i: usize) {
        let target = self.listeners[i].target;
        for _ in 0..64 {
            // SAFETY: sockaddr_storage is plain data, for which all zeroes is valid.
            let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: accept4 on our listener, into our address storage; the result is owned at once.
            let fd = unsafe {
                libc::accept4(
                    self.listeners[i].socket.as_raw_fd(),
                    &mut ss as *mut libc::sockaddr_storage as *mut libc::sockaddr,
                    &mut len,
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                return;
            }
            // SAFETY: accept4 just made this socket, ours alone.
            let client = unsafe { OwnedFd::from_raw_fd(fd) };
            if from_sockaddr(&ss, len).is_none_or(|peer| self.refused(i, &peer)) {
                reset(&client);
                continue;
            }
            if self.conns.len() >= MAX_CONNS {
                reset(&client);
                continue;
            }
            let Some(upstream) = new_socket(&target, libc::SOCK_STREAM) else {
                reset(&client);
                continue;
            };
            // Small writes go out at once, as docker-proxy's (Go's default).
            set_int(client.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
            set_int(upstream.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
            let (Some(up), Some(down)) = (Half::new(), Half::new()) else {
                reset(&client);
                continue;
            };
            match connect(&upstream, &target) {
                Some(connecting) => {
                    let mut c = Conn { client, upstream, connecting, up, down, dead: false };
                    c.pump();
                    self.conns.push(c);
                }
                None => reset(&client),
            }
        }
    }

    fn buf(&mut self) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = vec![0; 65536];
        }
        &mut self.buf
    }

    fn relay_from_clients(&mut self, i: usize) {
        let fd = self.listeners[i].socket.as_raw_fd();
        let target = self.listeners[i].target;
        for _ in 0..64 {
            // SAFETY: sockaddr_storage is plain data, for which all zeroes is valid.
            let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            let buf = self.buf();
            // SAFETY: recvfrom into our buffer and address storage.
            let n = unsafe {
                libc::recvfrom(
                    fd,
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    0,
                    &mut ss as *mut libc::sockaddr_storage as *mut libc::sockaddr,
                    &mut len,
                )
            };
            if n < 0 {
                return;
            }
            let Some(peer) = from_sockaddr(&ss, len) else { continue };
            // Only a new flow is checked: one already relayed was checked when it began.
            let known = self.flows.iter().any(|f| f.listener == i && f.peer == peer && !f.dead);
            if !known && self.refused(i, &peer) {
                continue;
            }
            let k = match self.flows.iter().position(|f| f.listener == i && f.peer == peer && !f.dead) {
                Some(k) => k,
                None => {
                    let Some(socket) = new_socket(&target, libc::SOCK_DGRAM) else { continue };
                    if connect(&socket, &target).is_none() {
                        continue;
                    }
                    if self.flows.len() >= MAX_CONNS {
                        if let Some(old) = self.flows.iter_mut().filter(|f| !f.dead).min_by_key(|f| f.last) {
                            old.dead = true;
                        }
                    }
                    self.flows.push(Flow { listener: i, peer, socket, last: Instant::now(), dead: false });
                    self.flows.len() - 1
                }
            };
            let f = &mut self.flows[k];
            f.last = Instant::now();
            // SAFETY: send from our buffer on a connected socket; a full buffer drops the datagram, as UDP may.
            unsafe { libc::send(f.socket.as_raw_fd(), self.buf.as_ptr() as *const libc::c_void, n as usize, libc::MSG_DONTWAIT) };
        }
    }

    fn relay_from_upstream(&mut self, k: usize) {
        let l = self.flows[k].listener;
        let lfd = self.listeners[l].socket.as_raw_fd();
        let (sa, salen) = sockaddr(&self.flows[k].peer);
        let sfd = self.flows[k].socket.as_raw_fd();
        for _ in 0..64 {
            let buf = self.buf();
            // SAFETY: recv into our buffer.
            let n = unsafe { libc::recv(sfd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), libc::MSG_DONTWAIT) };
            if n < 0 {
                if errno() != libc::EAGAIN {
                    // ECONNREFUSED: nothing listens in the container; the flow is dropped.
                    self.flows[k].dead = true;
                }
                break;
            }
            // SAFETY: sendto the client from the port it sent to.
            unsafe {
                libc::sendto(
                    lfd,
                    self.buf.as_ptr() as *const libc::c_void,
                    n as usize,
                    libc::MSG_DONTWAIT,
                    &sa as *const libc::sockaddr_storage as *const libc::sockaddr,
                    salen,
                )
            };
        }
        self.flows[k].last = Instant::now();
    }

    /// Drops finished connections and idle UDP flows. Call after each poll round.
    pub fn sweep(&mut self) {
        self.conns.retain(|c| !c.dead);
        let now = Instant::now();
        self.flows.retain(|f| !f.dead && now.duration_since(f.last) < UDP_IDLE);
    }

    /// When the next UDP flow expires.
    pub fn deadline(&self) -> Option<Instant> {
        self.flows.iter().map(|f| f.last + UDP_IDLE).min()
    }
}

/// Closes with a reset rather than a FIN, so the client sees the refusal.
fn reset(fd: &OwnedFd) {
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt SO_LINGER with a linger struct.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream, UdpSocket};

    fn run(p: &mut Proxy, mut until: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(5);
        while !until() && Instant::now() < end {
            let mut want = Vec::new();
            p.interests(&mut want);
            let mut fds: Vec<libc::pollfd> = want.iter().map(|(fd, ev, _)| libc::pollfd { fd: *fd, events: *ev, revents: 0 }).collect();
            let _ = sys::poll(&mut fds, 20);
            for (pfd, (_, _, t)) in fds.iter().zip(want.iter()) {
                if pfd.revents != 0 {
                    p.ready(*t, pfd.revents);
                }
            }
            p.sweep();
        }
    }

    #[test]
    fn tcp_and_udp_are_forwarded_from_v6_loopback_to_v4() {
        if std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6").is_ok_and(|s| s.trim() == "1") {
            return;
        }
        let backend = TcpListener::bind("127.0.0.1:0").unwrap();
        let udp_backend = UdpSocket::bind("127.0.0.1:0").unwrap();
        let l6 = TcpListener::bind("[::1]:0").unwrap();
        let u6 = UdpSocket::bind("[::1]:0").unwrap();
        let (tcp_port, udp_port) = (l6.local_addr().unwrap().port(), u6.local_addr().unwrap().port());
        let mut p = Proxy::new(vec![
            Forward { socket: l6.into(), protocol: Protocol::Tcp, target: backend.local_addr().unwrap(), refuse: Vec::new() },
            Forward { socket: u6.into(), protocol: Protocol::Udp, target: udp_backend.local_addr().unwrap(), refuse: Vec::new() },
        ]);
        let echo = std::thread::spawn(move || {
            let (mut s, _) = backend.accept().unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).unwrap();
            s.write_all(&all).unwrap();
            drop(s);
            let mut b = [0u8; 64];
            let (n, from) = udp_backend.recv_from(&mut b).unwrap();
            udp_backend.send_to(&b[..n], from).unwrap();
        });
        let mut c = TcpStream::connect(("::1", tcp_port)).unwrap();
        let payload = vec![7u8; 300_000];
        let writer = {
            let mut c2 = c.try_clone().unwrap();
            let payload = payload.clone();
            std::thread::spawn(move || {
                c2.write_all(&payload).unwrap();
                c2.shutdown(std::net::Shutdown::Write).unwrap();
            })
        };
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let reader = {
            let got = got.clone();
            let mut c = c.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut v = Vec::new();
                c.read_to_end(&mut v).unwrap();
                *got.lock().unwrap() = v;
            })
        };
        run(&mut p, || reader.is_finished());
        assert!(reader.is_finished(), "the echo through [::1] did not finish");
        writer.join().unwrap();
        reader.join().unwrap();
        assert_eq!(got.lock().unwrap().len(), payload.len());
        c.flush().unwrap();
        let u = UdpSocket::bind("[::1]:0").unwrap();
        u.send_to(b"ping", ("::1", udp_port)).unwrap();
        u.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut b = [0u8; 16];
        let mut n = 0;
        run(&mut p, || {
            n = u.recv(&mut b).unwrap_or(0);
            n != 0
        });
        assert_eq!(&b[..n], b"ping");
        echo.join().unwrap();
        assert!(p.deadline().is_some());
        // Every finished connection is dropped.
        p.sweep();
        assert!(p.conns.is_empty());
    }
}
