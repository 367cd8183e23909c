//! File descriptors: pipes and socketpairs, fd flags, reads and writes that retry on EINTR, and
//! fds passed over unix sockets. Usable in a child after clone (no locks taken, no threads).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{cvt, cvt_l};

/// Takes ownership of the fd a system call just returned (or its error).
pub(crate) fn owned(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = cvt_l(ret)?;
    // SAFETY: the kernel just returned this fd to us and nothing else holds it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Marks every fd from `from` up close-on-exec, so that nothing of ours reaches the container.
pub fn cloexec_from(from: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on fds; no fd is closed.
    cvt_l(unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, CLOSE_RANGE_CLOEXEC) }).map(|_| ())
}

/// Closes every fd from `from` up. Only for a process that has just started and owns nothing
/// there yet (the supervisor, before it takes its inherited fds): any `OwnedFd` of this process
/// in that range would be left dangling.
pub fn close_from(from: u32) -> io::Result<()> {
    // SAFETY: closes fds only; the caller's contract (above) is that none of them is owned by
    // anything in this process.
    cvt_l(unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, 0u32) }).map(|_| ())
}

/// Whether `fd` is an open descriptor of this process.
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD reads the fd's flags and touches no memory.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Takes ownership of an fd this process was started with (a supervisor's fds 3 to 5), marking it
/// close-on-exec; None when it is not open.
///
/// # Safety
/// `fd` must have been inherited across exec, and nothing else in this process may own it or
/// close it: call this once per fd, first thing in the process.
pub unsafe fn inherited(fd: RawFd) -> Option<OwnedFd> {
    if !is_open(fd) {
        return None;
    }
    let _ = set_cloexec(fd, true);
    // SAFETY: the caller guarantees that the fd is ours alone (see above).
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A close-on-exec duplicate of `fd` numbered `min` or above.
pub fn dup_at_least(fd: RawFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC makes a new fd and touches no memory.
    let n = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })?;
    owned(n as libc::c_long)
}

pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFD and F_SETFD read and set the fd's flags and touch no memory.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    let new = if on { flags | libc::FD_CLOEXEC } else { flags & !libc::FD_CLOEXEC };
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, new) }).map(|_| ())
}

pub fn set_nonblock(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL and F_SETFL read and set the file's status flags and touch no memory.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let new = if on { flags | libc::O_NONBLOCK } else { flags & !libc::O_NONBLOCK };
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, new) }).map(|_| ())
}

/// A pipe with both ends close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    pipe_with(0)
}

/// A pipe with both ends close-on-exec and `flags` (O_NONBLOCK).
pub fn pipe_with(flags: libc::c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the two-int array it is given.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: both fds were just created by the kernel for us alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A unix socketpair of `kind` (SOCK_STREAM, SOCK_SEQPACKET), close-on-exec.
pub fn socketpair(kind: libc::c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two fds into the two-int array it is given.
    cvt(unsafe { libc::socketpair(libc::AF_UNIX, kind | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) })?;
    // SAFETY: both fds were just created by the kernel for us alone.
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

/// write(2) once, retrying on EINTR: how many bytes went.
pub fn write_some(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: write reads at most `buf.len()` bytes from `buf`, which is borrowed for the call.
    retry_eintr(|| unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })
}

/// Writes the whole buffer, retrying on EINTR.
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = write_some(fd, buf)?;
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
    // SAFETY: read writes at most `buf.len()` bytes into `buf`, which is borrowed for the call.
    retry_eintr(|| unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// recv(2) once with `flags`, retrying on EINTR. Ok(0) is EOF.
pub fn recv_some(fd: RawFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: recv writes at most `buf.len()` bytes into `buf`, which is borrowed for the call.
    retry_eintr(|| unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) })
}

/// send(2) once with `flags` (MSG_DONTWAIT), never raising SIGPIPE (a closed peer is EPIPE),
/// retrying on EINTR.
pub fn send_some(fd: RawFd, buf: &[u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: send reads at most `buf.len()` bytes from `buf`, which is borrowed for the call.
    retry_eintr(|| unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags | libc::MSG_NOSIGNAL) })
}

/// poll(2) on `fds` for up to `timeout` ms (-1: no limit): how many have events (0 on timeout).
/// EINTR is an error, so that the caller's loop looks at its signals again.
pub fn poll(fds: &mut [libc::pollfd], timeout: libc::c_int) -> io::Result<usize> {
    // SAFETY: poll reads and writes `fds.len()` pollfds in `fds`, borrowed for the call.
    cvt(unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) }).map(|n| n as usize)
}

/// A message header of the one buffer `iov` and the control buffer `cbuf`, which must both
/// outlive its use.
fn msghdr(iov: &mut libc::iovec, cbuf: &mut [u8]) -> libc::msghdr {
    // SAFETY: msghdr is plain data, for which all zeroes is a valid (empty) value.
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
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of_val(fds) as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    let msg = msghdr(&mut iov, &mut cbuf);
    // SAFETY: `cbuf` has room for one header and `fds` (CMSG_SPACE above), so CMSG_FIRSTHDR is
    // non-null and CMSG_DATA has room for `fds.len()` fds.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast::<RawFd>(), fds.len());
    }
    // SAFETY: `msg` points at `iov`, `byte` and `cbuf`, all alive for the call.
    retry_eintr(|| unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) }).map(drop)
}

/// Receives one message into `buf` with any fds attached; (0, []) at EOF.
pub fn recv_msg(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    let space = unsafe { libc::CMSG_SPACE((4 * std::mem::size_of::<RawFd>()) as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    let mut msg = msghdr(&mut iov, &mut cbuf);
    // SAFETY: `msg` points at `iov` (over `buf`) and `cbuf`, all alive for the call.
    let n = retry_eintr(|| unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) })?;
    let mut out = Vec::new();
    // SAFETY: the kernel filled `cbuf` with well-formed control messages (within
    // `msg_controllen`), which the CMSG macros walk; SCM_RIGHTS data holds fds just installed in
    // this process, which nothing else owns yet.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<RawFd>();
                let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    out.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n, out))
}

/// Takes a lock on the open file `fd` without waiting (flock LOCK_NB): EWOULDBLOCK when another
/// open file holds a conflicting one. It lasts as long as the open file (every fd of it). Locks
/// berth waits for are `util::lock::FileLock`s.
pub fn try_flock(fd: &impl AsRawFd, exclusive: bool) -> io::Result<()> {
    let op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
    // SAFETY: flock on an fd the caller borrows; it touches no memory.
    cvt(unsafe { libc::flock(fd.as_raw_fd(), op | libc::LOCK_NB) }).map(drop)
}

/// An anonymous memory file (memfd), close-on-exec.
pub fn memfd(name: &std::ffi::CStr) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid C string for the call.
    let fd = cvt(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) })?;
    owned(fd as libc::c_long)
}

/// The listening Unix socket systemd passed (socket activation: `LISTEN_PID` is this process and
/// `LISTEN_FDS` at least 1; the first socket is fd 3), taken once: the variables are removed so
/// that no child inherits the claim. `None` when not activated or fd 3 is no Unix stream socket.
pub fn take_listen_socket() -> Option<std::os::unix::net::UnixListener> {
    use std::os::fd::FromRawFd;
    const SD_LISTEN_FDS_START: i32 = 3;
    let pid_ok = std::env::var("LISTEN_PID").ok()?.parse::<u32>().ok()? == std::process::id();
    let n: i32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    // SAFETY: called before the API server starts any thread (it runs on the main thread before
    // the tokio runtime is built), so no other thread reads the environment concurrently.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    if !pid_ok || n < 1 {
        return None;
    }
    // Check what fd 3 is before owning it: a Unix stream socket that listens.
    let fd3 = borrow_open_fd(SD_LISTEN_FDS_START)?;
    let is_unix = nix::sys::socket::getsockname::<nix::sys::socket::UnixAddr>(SD_LISTEN_FDS_START).is_ok();
    let listening = matches!(nix::sys::socket::getsockopt(&fd3, nix::sys::socket::sockopt::AcceptConn), Ok(true));
    if !is_unix || !listening {
        return None;
    }
    // SAFETY: fd 3 is open (checked above), systemd handed it to this process, and nothing else in
    // berth claims it: the environment that named it is gone, so this runs at most once.
    Some(unsafe { std::os::unix::net::UnixListener::from_raw_fd(SD_LISTEN_FDS_START) })
}

/// `fd` borrowed, if it is open.
fn borrow_open_fd(fd: i32) -> Option<std::os::fd::BorrowedFd<'static>> {
    nix::fcntl::fcntl(
        // SAFETY: a borrow used only for this fcntl; F_GETFD on a closed fd fails with EBADF.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_GETFD,
    )
    .ok()?;
    // SAFETY: fd is open (F_GETFD succeeded) and stays open for the process's life: it is
    // systemd's listening socket, which berth never closes before taking ownership of it.
    Some(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

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
