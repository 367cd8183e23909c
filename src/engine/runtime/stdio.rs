//! The CLI's side of a container's standard streams: the attach protocol spoken with the
//! supervisor for `run` (SOCK_SEQPACKET messages, the first byte says what follows), and the copy
//! loop for `exec` (pipes or a pty from the container's own devpts). Terminals go to raw mode and
//! window sizes follow SIGWINCH.

use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::util::sys::signal::{OnDrop, SignalFd};
use crate::util::sys::term::{RawMode, set_winsize, winsize};
use crate::util::sys::{self, poll};

/// CLI to supervisor: bytes for the container's stdin.
pub const STDIN: u8 = 0;
/// Supervisor to CLI: container output.
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// CLI to supervisor: rows and columns, u16 little-endian each.
pub const RESIZE: u8 = 3;
/// CLI to supervisor: no more stdin.
pub const STDIN_EOF: u8 = 4;
/// Supervisor to CLI: the exit code (i32 little-endian); the last message.
pub const EXIT: u8 = 5;

/// SIGWINCH, SIGINT, SIGTERM and SIGHUP, blocked for this thread and read from a signalfd while
/// a copy loop runs; afterwards the thread's previous mask comes back, so a long-running caller
/// (`watch`, attached `up`) gets its Ctrl-C back once the exec or attach is over. What arrived
/// after the loop's last read belongs to the exec or attach that just ended: it is dropped.
fn signals() -> std::io::Result<SignalFd> {
    SignalFd::new(&[libc::SIGWINCH, libc::SIGINT, libc::SIGTERM, libc::SIGHUP], OnDrop::DrainAndRestore)
}

fn write_out(fd: RawFd, data: &[u8]) {
    let _ = sys::write_all(fd, data);
}

fn resize_msg(ws: &libc::winsize) -> [u8; 5] {
    let r = ws.ws_row.to_le_bytes();
    let c = ws.ws_col.to_le_bytes();
    [RESIZE, r[0], r[1], c[0], c[1]]
}

/// The CLI end of an attached `run`: copies our stdin in (when `interactive`), the container's
/// output out, follows the window size, hands SIGINT/SIGTERM/SIGHUP to `on_signal` (without a
/// tty), and returns the exit code the supervisor sends (None if it went away first).
pub fn pump_attach(sock: OwnedFd, interactive: bool, tty: bool, on_signal: &mut dyn FnMut(i32)) -> std::io::Result<Option<i32>> {
    let sigfd = signals()?;
    let _raw = if tty && interactive { RawMode::enable(0) } else { None };
    let s = sock.as_raw_fd();
    if tty {
        if let Some(ws) = winsize(1).or_else(|| winsize(0)) {
            let _ = sys::send_some(s, &resize_msg(&ws), 0);
        }
    }
    let mut stdin_open = interactive;
    let mut buf = vec![0u8; 64 * 1024 + 1];
    loop {
        let mut fds = vec![
            libc::pollfd { fd: s, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: sigfd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        if stdin_open {
            fds.push(libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 });
        }
        if poll(&mut fds, -1).is_err() {
            continue;
        }
        if fds[1].revents != 0 {
            for sig in sigfd.drain() {
                if sig == libc::SIGWINCH {
                    if let Some(ws) = winsize(1).or_else(|| winsize(0)) {
                        let _ = sys::send_some(s, &resize_msg(&ws), 0);
                    }
                } else if !tty {
                    on_signal(sig);
                }
            }
        }
        if stdin_open && fds.len() > 2 && fds[2].revents != 0 {
            let n = sys::read_some(0, &mut buf[1..]).unwrap_or(0);
            if n == 0 {
                stdin_open = false;
                let _ = sys::send_some(s, &[STDIN_EOF], 0);
            } else {
                buf[0] = STDIN;
                let _ = sys::write_all(s, &buf[..n + 1]);
            }
        }
        if fds[0].revents != 0 {
            let n = sys::recv_some(s, &mut buf, 0).unwrap_or(0);
            if n == 0 {
                return Ok(None);
            }
            let m = &buf[..n];
            match m[0] {
                STDOUT => write_out(1, &m[1..]),
                STDERR => write_out(2, &m[1..]),
                EXIT if m.len() >= 5 => {
                    let code = i32::from_le_bytes([m[1], m[2], m[3], m[4]]);
                    // The supervisor closes the socket once the exit is recorded.
                    let mut p = [libc::pollfd { fd: s, events: libc::POLLIN, revents: 0 }];
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while Instant::now() < deadline {
                        if poll(&mut p, 100).unwrap_or(0) > 0 && sys::recv_some(s, &mut buf, 0).unwrap_or(0) == 0 {
                            break;
                        }
                    }
                    return Ok(Some(code));
                }
                _ => {}
            }
        }
    }
}

/// The CLI end of an `exec`: copies between our stdio and the process's pipes (or pty master)
/// until the process has exited and its output is drained.
pub fn pump_exec(
    child: BorrowedFd<'_>,
    stdin_w: Option<OwnedFd>,
    out_r: Option<OwnedFd>,
    err_r: Option<OwnedFd>,
    pty: Option<OwnedFd>,
    interactive: bool,
    on_signal: &mut dyn FnMut(i32),
) -> std::io::Result<()> {
    let sigfd = signals()?;
    let tty = pty.is_some();
    let _raw = if tty && interactive { RawMode::enable(0) } else { None };
    if let Some(p) = &pty {
        if let Some(ws) = winsize(1).or_else(|| winsize(0)) {
            set_winsize(p.as_raw_fd(), &ws);
        }
    }
    let mut stdin_w = stdin_w;
    let mut out_r = out_r;
    let mut err_r = err_r;
    let mut pty = pty;
    let mut stdin_open = interactive && (stdin_w.is_some() || pty.is_some());
    let mut exited_at: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let outputs_done = out_r.is_none() && err_r.is_none() && pty.is_none();
        if let Some(t) = exited_at {
            if outputs_done || t.elapsed() > Duration::from_millis(500) {
                return Ok(());
            }
        }
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut roles: Vec<u8> = Vec::new();
        let mut add = |fd: RawFd, role: u8, fds: &mut Vec<libc::pollfd>| {
            fds.push(libc::pollfd { fd, events: libc::POLLIN, revents: 0 });
            roles.push(role);
        };
        add(sigfd.as_raw_fd(), 0, &mut fds);
        if exited_at.is_none() {
            add(child.as_raw_fd(), 1, &mut fds);
        }
        if stdin_open {
            add(0, 2, &mut fds);
        }
        if let Some(f) = &out_r {
            add(f.as_raw_fd(), 3, &mut fds);
        }
        if let Some(f) = &err_r {
            add(f.as_raw_fd(), 4, &mut fds);
        }
        if let Some(f) = &pty {
            add(f.as_raw_fd(), 5, &mut fds);
        }
        let timeout = if exited_at.is_some() { 50 } else { -1 };
        if poll(&mut fds, timeout).is_err() {
            continue;
        }
        for (p, role) in fds.iter().zip(roles.iter()) {
            if p.revents == 0 {
                continue;
            }
            match role {
                0 => {
                    for sig in sigfd.drain() {
                        if sig == libc::SIGWINCH {
                            if let (Some(pt), Some(ws)) = (&pty, winsize(1).or_else(|| winsize(0))) {
                                set_winsize(pt.as_raw_fd(), &ws);
                            }
                        } else if !tty {
                            on_signal(sig);
                        }
                    }
                }
                1 => exited_at = Some(Instant::now()),
                2 => {
                    let n = sys::read_some(0, &mut buf).unwrap_or(0);
                    if n == 0 {
                        stdin_open = false;
                        stdin_w = None;
                    } else {
                        let target = stdin_w.as_ref().or(pty.as_ref()).map(|f| f.as_raw_fd());
                        if let Some(t) = target {
                            if sys::write_all(t, &buf[..n]).is_err() {
                                stdin_open = false;
                                stdin_w = None;
                            }
                        }
                    }
                }
                3..=5 => {
                    let src = match role {
                        3 => &mut out_r,
                        4 => &mut err_r,
                        _ => &mut pty,
                    };
                    let Some(f) = src.as_ref() else { continue };
                    let n = sys::read_some(f.as_raw_fd(), &mut buf).unwrap_or(0);
                    if n == 0 {
                        *src = None;
                    } else {
                        write_out(if *role == 4 { 2 } else { 1 }, &buf[..n]);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Flushes Rust's stdout before handing the fd to the copy loops.
pub fn flush_std() {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}
