//! The new mount API (fsopen, fsmount, open_tree, move_mount, mount_setattr; Linux 5.12+).
//!
//! Every mount inside a container is built detached, given its attributes (read-only, nosuid...)
//! while still detached, and then attached onto a target *file descriptor* resolved inside the
//! rootfs. Nothing is ever mounted by path inside the untrusted tree, and attributes never land on
//! the wrong mount.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::cvt_l;
use super::fd::owned as fd;

pub const ATTR_RDONLY: u64 = 0x1;
pub const ATTR_NOSUID: u64 = 0x2;
pub const ATTR_NODEV: u64 = 0x4;
pub const ATTR_NOEXEC: u64 = 0x8;
pub const ATTR_STRICTATIME: u64 = 0x20;

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// A new filesystem instance of `fstype` with string options, as a detached mount with `attrs`.
pub fn new_fs(fstype: &str, source: &str, opts: &[(&str, Option<&str>)], attrs: u64) -> io::Result<OwnedFd> {
    let t = CString::new(fstype)?;
    // SAFETY: `t` is a valid C string for the call; the fd returned is new and ours.
    let ctx = fd(unsafe { libc::syscall(libc::SYS_fsopen, t.as_ptr(), FSOPEN_CLOEXEC) })?;
    let with_log = |r: io::Result<libc::c_long>| r.map_err(|e| annotate(&ctx, e));
    let src = CString::new(source)?;
    // SAFETY: fsconfig on our fs context fd, with valid C strings for the key and the value.
    with_log(cvt_l(unsafe {
        libc::syscall(libc::SYS_fsconfig, ctx.as_raw_fd(), FSCONFIG_SET_STRING, c"source".as_ptr(), src.as_ptr(), 0)
    }))?;
    for (k, v) in opts {
        let key = CString::new(*k)?;
        match v {
            Some(v) => {
                let val = CString::new(*v)?;
                // SAFETY: as above.
                with_log(cvt_l(unsafe {
                    libc::syscall(libc::SYS_fsconfig, ctx.as_raw_fd(), FSCONFIG_SET_STRING, key.as_ptr(), val.as_ptr(), 0)
                }))?;
            }
            None => {
                // SAFETY: a flag takes a key and no value (null).
                with_log(cvt_l(unsafe {
                    libc::syscall(libc::SYS_fsconfig, ctx.as_raw_fd(), FSCONFIG_SET_FLAG, key.as_ptr(), std::ptr::null::<libc::c_char>(), 0)
                }))?;
            }
        }
    }
    // SAFETY: FSCONFIG_CMD_CREATE takes no key and no value.
    with_log(cvt_l(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    }))?;
    // SAFETY: fsmount on our fs context fd with integer flags; the fd returned is new and ours.
    fd(unsafe { libc::syscall(libc::SYS_fsmount, ctx.as_raw_fd(), FSMOUNT_CLOEXEC, attrs as libc::c_uint) }).map_err(|e| annotate(&ctx, e))
}

/// Adds the kernel's own message from an fs context (e.g. "tmpfs: Bad value for 'size'").
fn annotate(ctx: &OwnedFd, e: io::Error) -> io::Error {
    let mut buf = [0u8; 512];
    // SAFETY: read writes at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::read(ctx.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n > 0 {
        let msg = String::from_utf8_lossy(&buf[..n as usize]).trim().to_string();
        return io::Error::new(e.kind(), format!("{e} ({msg})"));
    }
    e
}

/// A detached copy of the mount tree at `fd` (an O_PATH fd or any fd; recursive when asked).
pub fn clone_tree(src: RawFd, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: open_tree on a borrowed fd with an empty path (AT_EMPTY_PATH); the fd returned is new.
    fd(unsafe { libc::syscall(libc::SYS_open_tree, src, c"".as_ptr(), flags) })
}

/// Changes mount attributes of the mount (tree) at `fd`; `propagation` is 0 or an MS_* value.
pub fn set_attr(mnt: RawFd, set: u64, clear: u64, propagation: u64, recursive: bool) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr { attr_set: set, attr_clr: clear, propagation, userns_fd: 0 };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: `attr` is the mount_attr the call reads (its size given), alive through the call.
    cvt_l(unsafe {
        libc::syscall(libc::SYS_mount_setattr, mnt, c"".as_ptr(), flags, &attr as *const MountAttr, std::mem::size_of::<MountAttr>())
    })
    .map(|_| ())
}

/// Attaches the detached mount `mnt` on top of the inode `target` refers to.
pub fn attach(mnt: &OwnedFd, target: RawFd) -> io::Result<()> {
    // SAFETY: move_mount between two fds, with empty paths (the *_EMPTY_PATH flags).
    cvt_l(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            target,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
    .map(|_| ())
}

/// Moves the calling thread into a mount namespace of its own, with every mount private, so that
/// nothing it mounts from now on propagates to the host (or anywhere else). The thread's working
/// directory and root become its own too (unshare implies CLONE_FS).
pub fn unshare_private_namespace() -> io::Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
    nix::mount::mount(None::<&str>, "/", None::<&str>, nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE, None::<&str>)?;
    Ok(())
}

/// Detaches the mount at `path` and every mount below it (umount2 MNT_DETACH): lazily, once no
/// fd uses it any more.
pub fn detach(path: &std::path::Path) -> io::Result<()> {
    nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH)?;
    Ok(())
}

/// Propagation flags by Docker's names.
pub fn propagation(name: &str) -> Option<(libc::c_ulong, bool)> {
    let (flag, rec) = match name {
        "private" => (libc::MS_PRIVATE, false),
        "rprivate" => (libc::MS_PRIVATE, true),
        "shared" => (libc::MS_SHARED, false),
        "rshared" => (libc::MS_SHARED, true),
        "slave" => (libc::MS_SLAVE, false),
        "rslave" => (libc::MS_SLAVE, true),
        _ => return None,
    };
    Some((flag, rec))
}
