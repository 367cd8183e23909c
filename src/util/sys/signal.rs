//! Signals: Docker's names for them, per-thread masks, signalfds, and the process-wide handlers
//! berth installs (Ctrl-C for the CLI, SIGPIPE).
//!
//! Signals berth waits for are blocked and taken synchronously (a signalfd in a poll loop, or
//! sigwait in a thread of their own), never handled asynchronously, except for the CLI's
//! Ctrl-C counter ([`catch_interrupts`]), whose handler only counts.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::cvt;
use super::fd::owned;

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

/// The set of `sigs` (an empty set for none).
fn sigset(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset and sigaddset only write into the set owned
    // here (an invalid number is ignored with EINVAL).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}

/// The set of every signal.
fn full_sigset() -> libc::sigset_t {
    // SAFETY: sigfillset only writes into the set owned here.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        set
    }
}

/// Changes the calling thread's mask (`how`: SIG_BLOCK, SIG_SETMASK...) and returns the old one.
fn thread_mask(how: libc::c_int, set: &libc::sigset_t) -> libc::sigset_t {
    let mut old = sigset(&[]);
    // SAFETY: both sets are valid for the call; pthread_sigmask only affects this thread.
    unsafe { libc::pthread_sigmask(how, set, &mut old) };
    old
}

/// Blocks `sigs` in the calling thread for good (threads it starts later inherit the mask).
pub fn block_signals(sigs: &[i32]) {
    thread_mask(libc::SIG_BLOCK, &sigset(sigs));
}

/// Unblocks every signal and resets every handler to its default (before exec in a child).
pub fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: SIG_DFL installs no code of ours; numbers the kernel refuses fail with EINVAL.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
    thread_mask(libc::SIG_SETMASK, &sigset(&[]));
}

/// Restores SIGPIPE's default action for the whole process (Rust ignores it): a closed stdout
/// ends `berth logs | head` quietly, as it ends any Unix filter, rather than with EPIPE errors.
pub fn default_sigpipe() {
    // SAFETY: SIG_DFL installs no code of ours.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// Ignores SIGPIPE in the whole process (a supervisor: a reader that went away is EPIPE).
pub fn ignore_sigpipe() {
    // SAFETY: SIG_IGN installs no code of ours.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Sends `sig` to this process (any thread that does not block it takes it).
pub fn raise_in_process(sig: i32) {
    // SAFETY: kill(2) on our own pid, with integers only.
    unsafe { libc::kill(libc::getpid(), sig) };
}

/// Sends `sig` to the calling thread.
pub fn raise(sig: i32) {
    // SAFETY: raise(3) with an integer only.
    unsafe { libc::raise(sig) };
}

/// Sends `sig` to `pid`, by number: only for a pid that cannot have been reused (a child of this
/// process not yet waited for, or a process in a cgroup or namespace we own). Anything else goes
/// through [`super::ProcId::signal`].
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill(2) with integers only.
    cvt(unsafe { libc::kill(pid, sig) }).map(|_| ())
}

/// The calling thread's mask with some signals blocked, until [`ThreadMask::restore`] (or drop).
pub struct ThreadMask {
    old: libc::sigset_t,
    set: libc::sigset_t,
}

impl ThreadMask {
    /// Blocks `sigs` in the calling thread (threads it starts meanwhile inherit the mask).
    pub fn block(sigs: &[i32]) -> ThreadMask {
        let set = sigset(sigs);
        let old = thread_mask(libc::SIG_BLOCK, &set);
        ThreadMask { old, set }
    }

    /// Takes the blocked signals already pending (without waiting); the last one, if any.
    pub fn take_pending(&self) -> Option<i32> {
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        let mut last = None;
        loop {
            // SAFETY: the set and the timeout live through the call; a null siginfo is allowed.
            let s = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &zero) };
            if s <= 0 {
                return last;
            }
            last = Some(s);
        }
    }

    /// Restores the mask the thread had before [`ThreadMask::block`].
    pub fn restore(self) {}

    /// Leaves the signals blocked for good.
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for ThreadMask {
    fn drop(&mut self) {
        thread_mask(libc::SIG_SETMASK, &self.old);
    }
}

/// Blocks `sigs` in the calling thread for good and hands each one that arrives, from a thread
/// of its own, to `forward` (`attach --sig-proxy`). Call it before starting other threads, so
/// that they inherit the mask and this thread alone takes these signals.
pub fn forward_signals(sigs: &[i32], mut forward: impl FnMut(i32) + Send + 'static) {
    let set = sigset(sigs);
    thread_mask(libc::SIG_BLOCK, &set);
    std::thread::spawn(move || {
        loop {
            let mut sig = 0;
            // SAFETY: the set and `sig` live through the call.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                return;
            }
            forward(sig);
        }
    });
}

/// What dropping a [`SignalFd`] does to the signals it blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDrop {
    /// They stay blocked (a process that takes them through the fd all its life).
    KeepBlocked,
    /// The thread's previous mask comes back; signals still pending are then delivered.
    Restore,
    /// Pending ones are read and dropped first, then the previous mask comes back: what arrived
    /// after the caller's last read belonged to what just ended.
    DrainAndRestore,
}

/// A non-blocking signalfd for some signals, which are blocked in the calling thread while it
/// lives (see [`OnDrop`]).
pub struct SignalFd {
    fd: OwnedFd,
    drain: bool,
    /// Restores the thread's mask when dropped (after `fd`'s drain in `drop`).
    _mask: Option<ThreadMask>,
}

impl SignalFd {
    pub fn new(sigs: &[i32], on_drop: OnDrop) -> io::Result<SignalFd> {
        let mask = ThreadMask::block(sigs);
        // SAFETY: the set lives through the call; -1 asks for a new fd.
        let fd = owned(unsafe { libc::signalfd(-1, &mask.set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) } as libc::c_long)?;
        let mask = if on_drop == OnDrop::KeepBlocked {
            mask.keep();
            None
        } else {
            Some(mask)
        };
        Ok(SignalFd { fd, drain: on_drop == OnDrop::DrainAndRestore, _mask: mask })
    }

    /// One pending signal, if any.
    pub fn read(&self) -> Option<i32> {
        // SAFETY: signalfd_siginfo is plain data, for which all zeroes is valid.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: read writes at most `size` bytes into `info`, which lives through the call.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
        (n == size as isize).then_some(info.ssi_signo as i32)
    }

    /// Every pending signal, in order.
    pub fn drain(&self) -> Vec<i32> {
        std::iter::from_fn(|| self.read()).collect()
    }
}

impl AsRawFd for SignalFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        if self.drain {
            self.drain();
        }
        // The mask (when kept) is restored by its own drop.
    }
}

/// Blocks every signal in the calling thread and waits for the next one. For a process whose
/// only work is signals (berth's minimal init).
pub fn wait_any_signal() -> i32 {
    let all = full_sigset();
    thread_mask(libc::SIG_BLOCK, &all);
    loop {
        // SAFETY: the set lives through the call; a null siginfo is allowed.
        let sig = unsafe { libc::sigwaitinfo(&all, std::ptr::null_mut()) };
        if sig > 0 {
            return sig;
        }
    }
}

static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);
static EXIT_ON_SECOND: AtomicBool = AtomicBool::new(true);

extern "C" fn on_interrupt(_: libc::c_int) {
    let n = INTERRUPTS.fetch_add(1, Ordering::SeqCst) + 1;
    if n >= 2 && EXIT_ON_SECOND.load(Ordering::SeqCst) {
        // A second Ctrl-C ends the command at once; the project stays consistent because every
        // container's supervisor is detached and each step is atomic on disk.
        // SAFETY: _exit is async-signal-safe and ends the process.
        unsafe { libc::_exit(130) };
    }
}

/// Catches SIGINT and SIGTERM for the whole process: each is counted ([`interrupts`]), so that
/// the first asks the command to stop cleanly; the second (while `exit_on_second`) ends it with
/// status 130. Installing it again only changes `exit_on_second`.
pub fn catch_interrupts(exit_on_second: bool) {
    EXIT_ON_SECOND.store(exit_on_second, Ordering::SeqCst);
    // SAFETY: sigaction is plain data, for which all zeroes is valid; the handler only touches
    // atomics and calls _exit, which are async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_interrupt as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
    }
}

/// Whether a second interrupt ends the process (the last [`catch_interrupts`] said).
pub fn exit_on_second_interrupt() -> bool {
    EXIT_ON_SECOND.load(Ordering::SeqCst)
}

/// How many SIGINT/SIGTERM arrived since [`catch_interrupts`].
pub fn interrupts() -> usize {
    INTERRUPTS.load(Ordering::SeqCst)
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
    fn a_signalfd_takes_what_its_thread_blocks() {
        // In a thread of its own: the mask is per thread.
        std::thread::spawn(|| {
            let fd = SignalFd::new(&[libc::SIGUSR2], OnDrop::DrainAndRestore).unwrap();
            assert_eq!(fd.read(), None);
            // SAFETY: a signal to this thread, which blocks it.
            unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGUSR2) };
            assert_eq!(fd.drain(), vec![libc::SIGUSR2]);
        })
        .join()
        .unwrap();
    }
}
