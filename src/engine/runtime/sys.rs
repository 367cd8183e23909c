//! Thin wrappers over the system calls the runtime needs and nix does not cover (or covers
//! awkwardly for raw fds in a child after clone).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Appends "`pid` `label` `µs since the epoch`" to the file named by `BERTH_TIMING`, when set:
/// the start-up benchmark (bench/start.sh) reads it to break a start down into its steps.
pub fn timing(label: &str) {
    static PATH: std::sync::OnceLock<Option<std::ffi::OsString>> = std::sync::OnceLock::new();
    if let Some(p) = PATH.get_or_init(|| std::env::var_os("BERTH_TIMING")) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(p) {
            let _ = writeln!(f, "{} {label} {now}", std::process::id());
        }
    }
}

/// Turns a -1 return into the errno as an `io::Error`.
pub fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

pub fn cvt_l(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

pub fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{s:?} contains a NUL byte")))
}

pub fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// A process identified by pid *and* start time, so that a reused pid is never mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcId {
    pub pid: i32,
    /// Field 22 of /proc/<pid>/stat (clock ticks since boot).
    pub start_time: u64,
}

impl ProcId {
    /// The process `pid` as it is now, or None when there is no such process.
    pub fn of(pid: i32) -> Option<ProcId> {
        start_time(pid).map(|start_time| ProcId { pid, start_time })
    }

    pub fn current() -> ProcId {
        ProcId::of(std::process::id() as i32).unwrap_or(ProcId { pid: std::process::id() as i32, start_time: 0 })
    }

    /// True while the very same process exists (a zombie counts as gone).
    pub fn alive(&self) -> bool {
        self.pid > 0 && proc_stat(self.pid).is_some_and(|(state, st)| st == self.start_time && state != 'Z' && state != 'X')
    }

    /// A pidfd for the process, checked against the start time after opening so that the fd is
    /// known to refer to this process and not to a successor with the same pid.
    pub fn pidfd(&self) -> io::Result<OwnedFd> {
        let fd = pidfd_open(self.pid)?;
        if !self.alive() {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        Ok(fd)
    }

    /// Sends `sig` if (and only if) the process is still this one.
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        let fd = self.pidfd()?;
        pidfd_send_signal(&fd, sig)
    }
}

fn start_time(pid: i32) -> Option<u64> {
    proc_stat(pid).map(|(_, st)| st)
}

/// (state, start time) from /proc/<pid>/stat.
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may hold spaces and parentheses: fields restart after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let mut it = rest.split(' ');
    let state = it.next()?.chars().next()?;
    // After the state come fields 4.. ; the start time is field 22, i.e. 19 further on.
    let st = it.nth(18)?.parse().ok()?;
    Some((state, st))
}

pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    let fd = cvt_l(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn pidfd_send_signal(fd: &OwnedFd, sig: i32) -> io::Result<()> {
    cvt_l(unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), sig, std::ptr::null::<libc::siginfo_t>(), 0) }).map(|_| ())
}

/// A fork-like clone with `flags` (namespace flags; the exit signal is SIGCHLD). With `cgroup`
/// (an fd of a cgroup v2 directory) the child is born in that cgroup (clone3 CLONE_INTO_CGROUP),
/// which spares the kernel's cgroup-move grace period. Returns 0 in the child.
pub fn clone_process(flags: libc::c_int, cgroup: Option<RawFd>) -> io::Result<i32> {
    let r = match cgroup {
        None => unsafe { libc::syscall(libc::SYS_clone, (flags | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize) },
        Some(cg) => {
            const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
            let mut args = [0u64; 11];
            args[0] = (flags as u32 as u64) | CLONE_INTO_CGROUP;
            // clone3 refuses an exit signal with CLONE_PARENT: such a child is then waited for
            // with __WALL (and its exit seen through a pidfd).
            args[4] = if flags & libc::CLONE_PARENT != 0 { 0 } else { libc::SIGCHLD as u64 };
            args[10] = cg as u64;
            unsafe { libc::syscall(libc::SYS_clone3, args.as_mut_ptr(), std::mem::size_of_val(&args)) }
        }
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as i32)
}

/// waitpid(2) that also finds children without an exit signal (see [`clone_process`]).
pub fn wait_pid(pid: i32, flags: libc::c_int) -> Option<libc::c_int> {
    let mut st = 0;
    loop {
        let r = unsafe { libc::waitpid(pid, &mut st, flags | libc::__WALL) };
        if r > 0 {
            return Some(st);
        }
        if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return None;
        }
    }
}

/// Marks every fd from `from` up close-on-exec, so that nothing of ours reaches the container.
pub fn cloexec_from(from: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    cvt_l(unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, CLOSE_RANGE_CLOEXEC) }).map(|_| ())
}

pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    let new = if on { flags | libc::FD_CLOEXEC } else { flags & !libc::FD_CLOEXEC };
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, new) }).map(|_| ())
}

pub fn set_nonblock(fd: RawFd, on: bool) -> io::Result<()> {
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let new = if on { flags | libc::O_NONBLOCK } else { flags & !libc::O_NONBLOCK };
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, new) }).map(|_| ())
}

/// A pipe with both ends close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A unix socketpair of `kind` (SOCK_STREAM, SOCK_SEQPACKET), close-on-exec.
pub fn socketpair(kind: libc::c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    cvt(unsafe { libc::socketpair(libc::AF_UNIX, kind | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) })?;
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Calls a syscall that returns a count or -1 (read, write, sendmsg...) until it is not
/// interrupted by a signal (EINTR).
fn retry_eintr(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Writes the whole buffer, retrying on EINTR.
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = retry_eintr(|| unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })?;
        buf = &buf[n..];
    }
    Ok(())
}

/// Reads until EOF (blocking), retrying on EINTR.
pub fn read_to_end(fd: RawFd) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = read_some(fd, &mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// read(2) once, retrying on EINTR. Ok(0) is EOF.
pub fn read_some(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    retry_eintr(|| unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// A message header of the one buffer `iov` and the control buffer `cbuf`, which must both
/// outlive its use.
fn msghdr(iov: &mut libc::iovec, cbuf: &mut [u8]) -> libc::msghdr {
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.len() as _;
    msg
}

/// Sends a one-byte message `tag` with `fds` attached over a unix socket.
pub fn send_fds(sock: RawFd, tag: u8, fds: &[RawFd]) -> io::Result<()> {
    let mut byte = [tag];
    let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of_val(fds) as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    let msg = msghdr(&mut iov, &mut cbuf);
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast::<RawFd>(), fds.len());
    }
    retry_eintr(|| unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) }).map(drop)
}

/// Receives one message into `buf` with any fds attached; (0, []) at EOF.
pub fn recv_msg(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let space = unsafe { libc::CMSG_SPACE((4 * std::mem::size_of::<RawFd>()) as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    let mut msg = msghdr(&mut iov, &mut cbuf);
    let n = retry_eintr(|| unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) })?;
    let mut out = Vec::new();
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<RawFd>();
                let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    out.push(OwnedFd::from_raw_fd(*data.add(i)));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n, out))
}

/// Parses a signal as Docker accepts it: "SIGTERM", "TERM", "term" or "15".
pub fn parse_signal(s: &str) -> Option<i32> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let up = t.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(rest) = name.strip_prefix("RTMIN+") {
        return rest.parse::<i32>().ok().map(|n| libc::SIGRTMIN() + n).filter(|s| *s <= libc::SIGRTMAX());
    }
    if name == "RTMIN" {
        return Some(libc::SIGRTMIN());
    }
    SIGNALS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The name of a signal number ("SIGTERM"), for messages.
pub fn signal_name(sig: i32) -> String {
    SIGNALS.iter().find(|(_, v)| *v == sig).map(|(n, _)| format!("SIG{n}")).unwrap_or_else(|| format!("signal {sig}"))
}

const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// The exit code a shell would report for a wait status: the code, or 128 + the signal.
pub fn exit_code_of(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// Blocks every signal for the calling thread and returns the previous mask.
pub fn block_all_signals() -> libc::sigset_t {
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    }
}

/// Unblocks every signal and resets every handler to its default (before exec in a child).
pub fn reset_signals() {
    unsafe {
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}

/// Lets go of the resident pages of this executable's code and read-only data, which start-up
/// touched and a long-lived process mostly never uses again. The pages stay in the page cache: what
/// runs later faults back in, cheaply. Only mappings of the binary that are not writable and hold
/// no private (anonymous) pages are dropped, so nothing written is ever lost (relocated read-only
/// data has private pages and is left alone, as is every writable mapping). The supervisor calls
/// this once its container runs, so that its resident size is what it keeps using.
pub fn release_startup_code() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else { return };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return };
    let mut current: Option<(usize, usize)> = None;
    let release = |r: Option<(usize, usize)>| {
        if let Some((a, b)) = r {
            // SAFETY: a private, non-writable file mapping of our own binary with no private pages:
            // dropping its pages only makes the next access read them again from the same file.
            unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED) };
        }
    };
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else { continue };
        let range = first.split_once('-').and_then(|(a, b)| Some((usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?)));
        if let Some((a, b)) = range {
            let perms = f.next().unwrap_or("");
            let path = f.nth(3).map(std::path::Path::new);
            current = ((perms == "r-xp" || perms == "r--p") && path == Some(exe.as_path())).then_some((a, b));
        } else if first == "Anonymous:" && current.is_some() {
            // The mapping's header is followed by its counters: drop it only if it has no private pages.
            if f.next() == Some("0") {
                release(current);
            }
            current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_as_docker_accepts_them() {
        assert_eq!(parse_signal("SIGTERM"), Some(15));
        assert_eq!(parse_signal("term"), Some(15));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("SIGRTMIN+3"), Some(libc::SIGRTMIN() + 3));
        assert_eq!(parse_signal("NOPE"), None);
        assert_eq!(parse_signal("0"), None);
        assert_eq!(signal_name(9), "SIGKILL");
    }

    #[test]
    fn proc_id_tells_a_live_process_from_a_reused_pid() {
        let me = ProcId::current();
        assert!(me.alive());
        let fake = ProcId { pid: me.pid, start_time: me.start_time + 1 };
        assert!(!fake.alive());
        assert!(fake.signal(0).is_err());
        me.signal(0).unwrap();
    }

    #[test]
    fn fds_pass_over_a_socketpair() {
        let (a, b) = socketpair(libc::SOCK_STREAM).unwrap();
        let (r, w) = pipe().unwrap();
        send_fds(a.as_raw_fd(), b'T', &[w.as_raw_fd()]).unwrap();
        drop(w);
        let mut tag = [0u8; 4];
        let (n, got) = recv_msg(b.as_raw_fd(), &mut tag).unwrap();
        assert_eq!((n, tag[0]), (1, b'T'));
        assert_eq!(got.len(), 1);
        write_all(got[0].as_raw_fd(), b"hi").unwrap();
        drop(got);
        assert_eq!(read_to_end(r.as_raw_fd()).unwrap(), b"hi");
    }
}
