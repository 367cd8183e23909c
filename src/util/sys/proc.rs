//! Processes: identified by pid *and* start time (never the pid alone, which the kernel reuses),
//! signalled through pidfds, cloned into namespaces and cgroups, waited for, and detached.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::cvt_l;
use super::fd::owned;

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
        ProcStat::of(pid).map(|st| ProcId { pid, start_time: st.start_time })
    }

    pub fn current() -> ProcId {
        ProcId::of(std::process::id() as i32).unwrap_or(ProcId { pid: std::process::id() as i32, start_time: 0 })
    }

    /// True while the very same process exists (a zombie counts as gone).
    pub fn alive(&self) -> bool {
        self.pid > 0 && ProcStat::of(self.pid).is_some_and(|st| st.start_time == self.start_time && st.state != 'Z' && st.state != 'X')
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

    /// Sends SIGKILL if (and only if) the process is still this one.
    pub fn kill(&self) -> io::Result<()> {
        self.signal(libc::SIGKILL)
    }
}

/// The fields of `/proc/<pid>/stat` berth reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// The command name (field 2, without its parentheses).
    pub comm: String,
    /// R, S, D, Z, X...
    pub state: char,
    pub ppid: i32,
    pub tty_nr: i64,
    /// User and system CPU time, in clock ticks ([`clock_ticks`] a second).
    pub utime: u64,
    pub stime: u64,
    /// Clock ticks since boot.
    pub start_time: u64,
}

impl ProcStat {
    /// The process `pid` as it is now, or None when there is no such process.
    pub fn of(pid: i32) -> Option<ProcStat> {
        Self::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    fn parse(s: &str) -> Option<ProcStat> {
        // The command (field 2) may hold spaces and parentheses: fields restart after the last ')'.
        let close = s.rfind(')')?;
        let comm = s.get(s.find('(')? + 1..close)?.to_string();
        let rest = s.get(close + 2..)?;
        // f[0] is field 3 (the state), so field n is f[n - 3].
        let f: Vec<&str> = rest.split(' ').collect();
        let num = |n: usize| f.get(n - 3).and_then(|v| v.trim().parse::<u64>().ok());
        Some(ProcStat {
            comm,
            state: f.first()?.chars().next()?,
            ppid: f.get(1)?.parse().ok()?,
            tty_nr: f.get(4)?.parse().unwrap_or(0),
            utime: num(14).unwrap_or(0),
            stime: num(15).unwrap_or(0),
            start_time: num(22)?,
        })
    }
}

/// Clock ticks a second (`USER_HZ`), the unit of `/proc` CPU times.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf reads a constant and touches no memory.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64
}

/// The size of a memory page.
pub fn page_size() -> usize {
    // SAFETY: sysconf reads a constant and touches no memory.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize
}

pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new fd.
    owned(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })
}

pub fn pidfd_send_signal(fd: &OwnedFd, sig: i32) -> io::Result<()> {
    // SAFETY: a borrowed pidfd, a signal number, and no siginfo (null is allowed).
    cvt_l(unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), sig, std::ptr::null::<libc::siginfo_t>(), 0) }).map(|_| ())
}

/// A fork-like clone with `flags` (namespace flags; the exit signal is SIGCHLD). With `cgroup`
/// (an fd of a cgroup v2 directory) the child is born in that cgroup (clone3 CLONE_INTO_CGROUP),
/// which spares the kernel's cgroup-move grace period. Returns 0 in the child.
///
/// # Safety
/// As for fork(2): the child gets a copy of this thread only. If the process has other threads,
/// the child may call only async-signal-safe functions (no allocation, no locks) until it execs
/// or exits, since a lock another thread held at the clone stays held forever in the child.
pub unsafe fn clone_process(flags: libc::c_int, cgroup: Option<RawFd>) -> io::Result<i32> {
    let r = match cgroup {
        // SAFETY: no CLONE_VM and no new stack: a fork with namespace flags; the caller keeps the
        // child to what is safe after a fork (see above).
        None => unsafe { libc::syscall(libc::SYS_clone, (flags | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize) },
        Some(cg) => {
            const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
            let mut args = [0u64; 11];
            args[0] = (flags as u32 as u64) | CLONE_INTO_CGROUP;
            // clone3 refuses an exit signal with CLONE_PARENT: such a child is then waited for
            // with __WALL (and its exit seen through a pidfd).
            args[4] = if flags & libc::CLONE_PARENT != 0 { 0 } else { libc::SIGCHLD as u64 };
            args[10] = cg as u64;
            // SAFETY: `args` is a clone_args (version 2, 88 bytes) that lives through the call; no
            // CLONE_VM and no stack, so this is a fork as above.
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
        // SAFETY: waitpid writes the status into `st`, which lives through the call.
        let r = unsafe { libc::waitpid(pid, &mut st, flags | libc::__WALL) };
        if r > 0 {
            return Some(st);
        }
        if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return None;
        }
    }
}

/// Reaps one child that has exited (any child, `__WALL` included), without waiting: (pid, wait
/// status), or None when none has.
pub fn reap_any() -> Option<(i32, libc::c_int)> {
    let mut st = 0;
    // SAFETY: waitpid writes the status into `st`, which lives through the call.
    let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG | libc::__WALL) };
    (pid > 0).then_some((pid, st))
}

/// Ends the process at once with `code` (_exit(2)): no destructors, no atexit handlers, no
/// flushing. For a child between fork and exec, and a container's init.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no memory of ours.
    unsafe { libc::_exit(code) }
}

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

/// Makes `cmd` start detached: in a new session, and by a double fork, so that it is nobody's
/// child (the caller's wait returns at once) and outlives its starter. `fds` are (source, target)
/// pairs: each source fd is duplicated onto its target number; every other fd from the first
/// number past the targets (3 without targets) is closed at exec, so that nothing of the caller's
/// (a supervisor's pipes, reserved ports) leaks into the detached process.
pub fn detach_on_spawn(cmd: &mut Command, fds: Vec<(RawFd, RawFd)>) {
    let keep_below = fds.iter().map(|(_, t)| *t + 1).max().unwrap_or(3).max(3) as u32;
    let hook = move || -> io::Result<()> {
        // SAFETY: everything below is a single async-signal-safe system call (setsid, fork,
        // _exit, dup2, close_range) on integers, as is required between fork and exec.
        unsafe {
            libc::setsid();
            match libc::fork() {
                -1 => return Err(io::Error::last_os_error()),
                0 => {}
                _ => libc::_exit(0),
            }
            for (src, target) in &fds {
                if libc::dup2(*src, *target) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
            libc::syscall(libc::SYS_close_range, keep_below, u32::MAX, CLOSE_RANGE_CLOEXEC);
        }
        Ok(())
    };
    // SAFETY: the hook above makes only async-signal-safe calls, and it allocates nothing (the
    // Vec it iterates was built before the fork).
    unsafe { cmd.pre_exec(hook) };
}

/// Lets go of the resident pages of this executable's code and read-only data, which start-up
/// touched and a long-lived process mostly never uses again. The pages stay in the page cache: what
/// runs later faults back in, cheaply. Only mappings of the binary that are not writable and hold
/// no private (anonymous) pages are dropped, so nothing written is ever lost (relocated read-only
/// data has private pages and is left alone, as is every writable mapping). The supervisor and the
/// DNS resolver call this once they serve, so that their resident size is what they keep using.
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
    fn proc_id_tells_a_live_process_from_a_reused_pid() {
        let me = ProcId::current();
        assert!(me.alive());
        let fake = ProcId { pid: me.pid, start_time: me.start_time + 1 };
        assert!(!fake.alive());
        assert!(fake.signal(0).is_err());
        me.signal(0).unwrap();
    }

    #[test]
    fn proc_stat_fields_count_from_the_last_parenthesis() {
        let line = "42 (a ) b) S 7 42 42 34816 42 4194560 1 0 0 0 11 22 0 0 20 0 1 0 12345 1000 100 0";
        let st = ProcStat::parse(line).unwrap();
        assert_eq!(st, ProcStat { comm: "a ) b".into(), state: 'S', ppid: 7, tty_nr: 34816, utime: 11, stime: 22, start_time: 12345 });
        assert!(ProcStat::parse("42 (x").is_none());
        let me = ProcStat::of(std::process::id() as i32).unwrap();
        assert_eq!(me.ppid, nix::unistd::getppid().as_raw());
    }
}
