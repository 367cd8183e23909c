//! Terminals: raw mode for an attached `run` or `exec -t`, and window sizes.

use std::os::fd::RawFd;

/// A terminal in raw mode until dropped (its previous settings then come back).
pub struct RawMode {
    fd: RawFd,
    orig: libc::termios,
}

impl RawMode {
    /// Raw mode on `fd`, if it is a terminal; output post-processing stays on, so that "\n" still
    /// returns the carriage on our side.
    pub fn enable(fd: RawFd) -> Option<RawMode> {
        // SAFETY: isatty reads nothing of ours; termios is plain data, for which all zeroes is
        // valid, and tcgetattr/cfmakeraw/tcsetattr read and write only `t`, alive for the calls.
        unsafe {
            if libc::isatty(fd) != 1 {
                return None;
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return None;
            }
            let orig = t;
            libc::cfmakeraw(&mut t);
            t.c_oflag |= libc::OPOST;
            libc::tcsetattr(fd, libc::TCSANOW, &t);
            Some(RawMode { fd, orig })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: `orig` is the termios tcgetattr gave for this fd.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.orig) };
    }
}

/// The size of the terminal on `fd`, if it is one (and has a size).
pub fn winsize(fd: RawFd) -> Option<libc::winsize> {
    // SAFETY: winsize is plain data, for which all zeroes is valid.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws`, alive for the call.
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0).then_some(ws)
}

/// Gives the terminal (a pty master) on `fd` the size `ws`; the process on its other side gets
/// SIGWINCH.
pub fn set_winsize(fd: RawFd, ws: &libc::winsize) {
    // SAFETY: TIOCSWINSZ reads one winsize from `ws`, alive for the call.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, ws) };
}
