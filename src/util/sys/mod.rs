//! The one module that calls the kernel directly: every raw system call berth makes that nix does
//! not cover (or covers awkwardly for raw fds in a child after clone) has exactly one safe wrapper
//! here, with one `SAFETY` note, so that a security fix (say, to how a path is resolved inside a
//! container) has exactly one place to go, and the rest of the tree reads as safe Rust.
//!
//! - the crate root (this file): errno conversion and C strings;
//! - [`fd`]: pipes, socketpairs, fd flags, reads and writes that retry on EINTR, fd passing;
//! - [`file`]: fd-relative file operations and `openat2(RESOLVE_IN_ROOT)`, the walks that keep
//!   an untrusted tree (a container's root) from reaching the host;
//! - [`mount`]: the new mount API (fsopen, fsmount, open_tree, move_mount, mount_setattr);
//! - [`proc`]: processes by pid *and* start time, pidfds, clone, wait, `/proc/<pid>/stat`;
//! - [`signal`]: signal names, masks, handlers and signalfds;
//! - [`term`]: raw mode and window sizes.
//!
//! What a wrapper means (a container's runtime logic, the copy rules of `cp`) stays with its owner.

pub mod fd;
pub mod file;
pub mod mount;
pub mod proc;
pub mod signal;
pub mod term;

pub use fd::*;
pub use proc::*;
pub use signal::*;

use std::ffi::CString;
use std::io;
use std::path::Path;

/// Turns a -1 return into the errno as an `io::Error`.
pub fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// [`cvt`] for `syscall(2)`'s `long`.
pub fn cvt_l(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

pub fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{s:?} contains a NUL byte")))
}

pub fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}
