//! Files by descriptor: `openat2(RESOLVE_IN_ROOT)` and the fd-relative calls (`*at`, `f*`) with
//! which berth walks trees it does not trust (a container's root, an image's layers) without ever
//! resolving a path there from the host's `/`.
//!
//! Every fd opened here is close-on-exec. A directory fd given as a `RawFd` is only borrowed for
//! the call: the kernel checks it, and a stale one is EBADF, never undefined behaviour. Names are
//! one path component unless said otherwise; `O_NOFOLLOW` and `AT_SYMLINK_NOFOLLOW` are the
//! caller's to ask for, as each walk decides what it may follow.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use super::cvt;
use super::fd::owned;

/// A C string of a name or path (EINVAL for an inner NUL byte, which no file name holds).
fn c(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// open(2) of a host path, close-on-exec (symlinks followed unless `flags` says O_NOFOLLOW).
pub fn open(path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    openat(libc::AT_FDCWD, path.as_os_str(), flags, 0)
}

/// openat(2), close-on-exec; `mode` is used with O_CREAT.
pub fn openat(dir: RawFd, name: &OsStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let n = c(name)?;
    // SAFETY: `n` is a valid C string for the call; the fd returned is new and ours.
    owned(unsafe { libc::openat(dir, n.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) } as libc::c_long)
}

const RESOLVE_NO_XDEV: u64 = 0x01;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// openat2(2) of `path` (relative; a leading `/` is ignored, empty is `dir` itself) under the
/// directory fd `dir`, close-on-exec, with the `RESOLVE_*` bits `resolve`.
fn openat2(dir: RawFd, path: &str, flags: libc::c_int, resolve: u64) -> io::Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    let p = c(OsStr::new(if rel.is_empty() { "." } else { rel }))?;
    // SAFETY: open_how is plain data, for which all zeroes is valid (no flags).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // SAFETY: `p` and `how` live through the call, and the size passed is `how`'s.
    owned(unsafe {
        libc::syscall(libc::SYS_openat2, dir, p.as_ptr(), &how as *const libc::open_how, std::mem::size_of::<libc::open_how>())
    })
}

/// Opens `path` inside the tree whose root is the directory fd `root`, close-on-exec, with every
/// symlink (absolute ones and `..` included) resolved as if `root` were `/`: nothing outside the
/// tree is ever reached, whatever the tree's links say, even if they change meanwhile (the kernel
/// checks each step). Magic links (`/proc/<pid>/fd/N` and the like) are refused. A leading `/` is
/// ignored; an empty path is the root itself. `flags` may add O_NOFOLLOW (for the last component)
/// or O_PATH.
pub fn open_in_root(root: RawFd, path: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    openat2(root, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
}

/// Opens `path` strictly beneath the directory fd `dir`, close-on-exec: no symlink at all, no
/// `..` above `dir`, and no mount crossed (EXDEV), so that the file opened is the one in `dir`'s
/// own filesystem even if something was mounted over part of it. For a handle that must be the
/// real thing (a sysctl under the container's procfs).
pub fn open_beneath_strict(dir: RawFd, path: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    openat2(dir, path, flags, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)
}

/// The kind bits of a mode (`S_IFDIR`, `S_IFREG`, `S_IFLNK`...).
pub fn kind(mode: libc::mode_t) -> libc::mode_t {
    mode & libc::S_IFMT
}

/// fstat(2) of `fd` itself (an O_PATH fd included).
pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    stat_at(fd, OsStr::new(""), libc::AT_EMPTY_PATH)
}

/// fstatat(2) with `flags` (AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH).
pub fn stat_at(dir: RawFd, name: &OsStr, flags: libc::c_int) -> io::Result<libc::stat> {
    let n = c(name)?;
    // SAFETY: stat is plain data, for which all zeroes is valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `n` and `st` live through the call; the kernel writes one stat into `st`.
    cvt(unsafe { libc::fstatat(dir, n.as_ptr(), &mut st, flags) })?;
    Ok(st)
}

/// lstat of `name` in `dir` (a symlink is described, not followed); None when it does not exist.
pub fn lstat_at(dir: RawFd, name: &OsStr) -> io::Result<Option<libc::stat>> {
    match stat_at(dir, name, libc::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The target of the symlink `name` in `dir` (an empty name: the O_PATH fd `dir` itself).
pub fn readlink_at(dir: RawFd, name: &OsStr) -> io::Result<OsString> {
    let n = c(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: readlinkat writes at most `buf.len()` bytes into `buf`, which lives through the call.
    let len = unsafe { libc::readlinkat(dir, n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(len as usize);
    Ok(OsString::from_vec(buf))
}

/// The names in the directory `dir` (an fd open for reading, not O_PATH), read through a duplicate
/// of the fd from the first entry; `.` and `..` left out, sorted.
pub fn list_dir(dir: RawFd) -> io::Result<Vec<OsString>> {
    let fd = super::fd::dup_at_least(dir, 0)?;
    // The duplicate shares the file offset: start from the first entry whatever was read before.
    nix::unistd::lseek(&fd, 0, nix::unistd::Whence::SeekSet).map_err(io::Error::from)?;
    let mut d = nix::dir::Dir::from_fd(fd).map_err(io::Error::from)?;
    let mut out = Vec::new();
    for e in d.iter() {
        let name = e.map_err(io::Error::from)?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            out.push(OsString::from_vec(name));
        }
    }
    out.sort();
    Ok(out)
}

/// mkdirat(2).
pub fn mkdir_at(dir: RawFd, name: &OsStr, mode: libc::mode_t) -> io::Result<()> {
    let n = c(name)?;
    // SAFETY: `n` is a valid C string for the call.
    cvt(unsafe { libc::mkdirat(dir, n.as_ptr(), mode) }).map(drop)
}

/// mknodat(2): a device (`S_IFCHR`/`S_IFBLK` in `mode`), a FIFO or an empty regular file.
pub fn mknod_at(dir: RawFd, name: &OsStr, mode: libc::mode_t, dev: libc::dev_t) -> io::Result<()> {
    let n = c(name)?;
    // SAFETY: `n` is a valid C string for the call.
    cvt(unsafe { libc::mknodat(dir, n.as_ptr(), mode, dev) }).map(drop)
}

/// unlinkat(2) (`flags`: 0, or AT_REMOVEDIR).
pub fn unlink_at(dir: RawFd, name: &OsStr, flags: libc::c_int) -> io::Result<()> {
    let n = c(name)?;
    // SAFETY: `n` is a valid C string for the call.
    cvt(unsafe { libc::unlinkat(dir, n.as_ptr(), flags) }).map(drop)
}

/// symlinkat(2): `name` in `dir`, pointing at `target`.
pub fn symlink_at(target: &OsStr, dir: RawFd, name: &OsStr) -> io::Result<()> {
    let (t, n) = (c(target)?, c(name)?);
    // SAFETY: both are valid C strings for the call.
    cvt(unsafe { libc::symlinkat(t.as_ptr(), dir, n.as_ptr()) }).map(drop)
}

/// fchown(2).
pub fn fchown(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: integers only.
    cvt(unsafe { libc::fchown(fd, uid, gid) }).map(drop)
}

/// fchmod(2).
pub fn fchmod(fd: RawFd, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: integers only.
    cvt(unsafe { libc::fchmod(fd, mode) }).map(drop)
}

/// fchownat(2) (`flags`: AT_SYMLINK_NOFOLLOW to change a link itself).
pub fn fchown_at(dir: RawFd, name: &OsStr, uid: u32, gid: u32, flags: libc::c_int) -> io::Result<()> {
    let n = c(name)?;
    // SAFETY: `n` is a valid C string for the call.
    cvt(unsafe { libc::fchownat(dir, n.as_ptr(), uid, gid, flags) }).map(drop)
}

/// fchmodat(2) (which follows symlinks: never give it one).
pub fn fchmod_at(dir: RawFd, name: &OsStr, mode: libc::mode_t) -> io::Result<()> {
    let n = c(name)?;
    // SAFETY: `n` is a valid C string for the call.
    cvt(unsafe { libc::fchmodat(dir, n.as_ptr(), mode, 0) }).map(drop)
}

/// Sets the access and modification times of `fd` to `(seconds, nanoseconds)`.
pub fn futimens(fd: RawFd, time: (i64, i64)) -> io::Result<()> {
    let t = [timespec(time), timespec(time)];
    // SAFETY: `t` is the two timespecs the call reads.
    cvt(unsafe { libc::futimens(fd, t.as_ptr()) }).map(drop)
}

/// utimensat(2) with both times set to `time` (`flags`: AT_SYMLINK_NOFOLLOW for a link itself).
pub fn utimens_at(dir: RawFd, name: &OsStr, time: (i64, i64), flags: libc::c_int) -> io::Result<()> {
    let n = c(name)?;
    let t = [timespec(time), timespec(time)];
    // SAFETY: `n` and the two timespecs live through the call.
    cvt(unsafe { libc::utimensat(dir, n.as_ptr(), t.as_ptr(), flags) }).map(drop)
}

fn timespec((sec, nsec): (i64, i64)) -> libc::timespec {
    libc::timespec { tv_sec: sec, tv_nsec: nsec }
}

/// The value of the extended attribute `name` of `fd` (at most `max` bytes); None when unset.
pub fn fgetxattr(fd: RawFd, name: &CStr, max: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; max];
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, which lives through the call.
    let n = unsafe { libc::fgetxattr(fd, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| {
        buf.truncate(n as usize);
        buf
    })
}

/// Sets the extended attribute `name` of `fd` to `value`.
pub fn fset_xattr(fd: RawFd, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: the name and `value` live through the call, which reads `value.len()` bytes.
    cvt(unsafe { libc::fsetxattr(fd, name.as_ptr(), value.as_ptr().cast(), value.len(), 0) }).map(drop)
}

/// The value of the extended attribute `name` of the file at `path` (a symlink itself, not
/// followed), at most `max` bytes; None when unset or longer.
pub fn lget_xattr(path: &Path, name: &CStr, max: usize) -> Option<Vec<u8>> {
    let p = c(path.as_os_str()).ok()?;
    let mut buf = vec![0u8; max];
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, which lives through the call.
    let n = unsafe { libc::lgetxattr(p.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| {
        buf.truncate(n as usize);
        buf
    })
}

/// The names of the extended attributes of the file at `path` (a symlink itself, not followed);
/// none when it has none, or more than `max` bytes of names.
pub fn llist_xattr(path: &Path, max: usize) -> Vec<Vec<u8>> {
    let Ok(p) = c(path.as_os_str()) else { return Vec::new() };
    let mut names = vec![0u8; max];
    // SAFETY: the kernel writes at most `names.len()` bytes into `names`, alive through the call.
    let n = unsafe { libc::llistxattr(p.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Vec::new();
    }
    names.truncate(n as usize);
    names.split(|b| *b == 0).filter(|n| !n.is_empty()).map(<[u8]>::to_vec).collect()
}

/// Whether the file at `path` (a symlink itself, not followed) has the extended attribute `name`.
pub fn has_xattr(path: &Path, name: &CStr) -> bool {
    let Ok(p) = c(path.as_os_str()) else { return false };
    // SAFETY: a null buffer of size 0 asks only for the value's size.
    unsafe { libc::lgetxattr(p.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) >= 0 }
}

/// Sets the extended attribute `name` of the file at `path` (symlinks followed).
pub fn set_xattr(path: &Path, name: &CStr, value: &[u8]) -> io::Result<()> {
    let p = c(path.as_os_str())?;
    // SAFETY: the path, the name and `value` live through the call, which reads `value.len()` bytes.
    cvt(unsafe { libc::setxattr(p.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) }).map(drop)
}

/// The type of the filesystem `path` is on (`f_type` of statfs(2): CGROUP2_SUPER_MAGIC...).
pub fn fs_type(path: &Path) -> io::Result<i64> {
    let p = c(path.as_os_str())?;
    // SAFETY: statfs is plain data, for which all zeroes is valid.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `p` and `st` live through the call; the kernel writes one statfs into `st`.
    cvt(unsafe { libc::statfs(p.as_ptr(), &mut st) })?;
    Ok(st.f_type as i64)
}

/// The type of the filesystem the open file `fd` is on (`f_type` of fstatfs(2):
/// `PROC_SUPER_MAGIC`, `SYSFS_MAGIC`...); an O_PATH fd is fine.
pub fn fd_fs_type(fd: RawFd) -> io::Result<libc::c_long> {
    // SAFETY: statfs is plain data, for which all zeroes is valid.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` lives through the call; the kernel writes one statfs into it.
    cvt(unsafe { libc::fstatfs(fd, &mut st) })?;
    Ok(st.f_type as libc::c_long)
}

/// Whether `fd` is on one of the kernel's pseudo filesystems (procfs, sysfs, cgroupfs, devpts,
/// mqueue, and the debug/security/tracing/bpf ones), whose files describe the kernel and the
/// processes, never content an image may hand to berth.
pub fn on_pseudo_fs(fd: RawFd) -> io::Result<bool> {
    const MQUEUE_MAGIC: libc::c_long = 0x1980_2002;
    const PSEUDO: &[libc::c_long] = &[
        libc::PROC_SUPER_MAGIC,
        libc::SYSFS_MAGIC,
        libc::CGROUP_SUPER_MAGIC,
        libc::CGROUP2_SUPER_MAGIC,
        libc::DEVPTS_SUPER_MAGIC,
        MQUEUE_MAGIC,
        libc::DEBUGFS_MAGIC,
        libc::SECURITYFS_MAGIC,
        libc::TRACEFS_MAGIC,
        libc::BPF_FS_MAGIC,
    ];
    Ok(PSEUDO.contains(&fd_fs_type(fd)?))
}

/// Whether `path` (a host path, symlinks followed) may be executed by this process (access X_OK).
pub fn executable(path: &CStr) -> bool {
    // SAFETY: `path` is a valid C string for the call.
    unsafe { libc::access(path.as_ptr(), libc::X_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn open_beneath_strict_follows_nothing_and_pseudo_filesystems_are_known() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("sys/net")).unwrap();
        std::fs::write(d.path().join("sys/net/x"), "1").unwrap();
        std::os::unix::fs::symlink("net", d.path().join("sys/link")).unwrap();
        let dir = open(d.path(), libc::O_PATH | libc::O_DIRECTORY).unwrap();
        assert!(open_beneath_strict(dir.as_raw_fd(), "sys/net/x", libc::O_RDONLY).is_ok());
        assert_eq!(open_beneath_strict(dir.as_raw_fd(), "sys/link/x", libc::O_RDONLY).unwrap_err().raw_os_error(), Some(libc::ELOOP));
        assert_eq!(open_beneath_strict(dir.as_raw_fd(), "sys/../../x", libc::O_RDONLY).unwrap_err().raw_os_error(), Some(libc::EXDEV));
        assert!(!on_pseudo_fs(dir.as_raw_fd()).unwrap());
        let proc = open(Path::new("/proc/self"), libc::O_PATH | libc::O_DIRECTORY).unwrap();
        assert!(on_pseudo_fs(proc.as_raw_fd()).unwrap());
        assert_eq!(fd_fs_type(proc.as_raw_fd()).unwrap(), libc::PROC_SUPER_MAGIC);
    }

    #[test]
    fn open_in_root_resolves_links_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "inside").unwrap();
        std::fs::write(d.path().join("secret"), "host").unwrap();
        std::os::unix::fs::symlink("/", root.join("up")).unwrap();
        std::os::unix::fs::symlink("../../secret", root.join("rel")).unwrap();
        let r = open(&root, libc::O_PATH | libc::O_DIRECTORY).unwrap();
        let f = open_in_root(r.as_raw_fd(), "/up/etc/passwd", libc::O_RDONLY).unwrap();
        assert_eq!(std::io::read_to_string(std::fs::File::from(f)).unwrap(), "inside");
        assert_eq!(open_in_root(r.as_raw_fd(), "/rel", libc::O_RDONLY).unwrap_err().raw_os_error(), Some(libc::ENOENT));
        let l = open_in_root(r.as_raw_fd(), "up", libc::O_PATH | libc::O_NOFOLLOW).unwrap();
        assert_eq!(kind(fstat(l.as_raw_fd()).unwrap().st_mode), libc::S_IFLNK);
        assert_eq!(readlink_at(l.as_raw_fd(), OsStr::new("")).unwrap(), "/");
        let dir = openat(r.as_raw_fd(), OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0).unwrap();
        assert_eq!(list_dir(dir.as_raw_fd()).unwrap(), ["etc", "rel", "up"]);
        assert_eq!(list_dir(dir.as_raw_fd()).unwrap(), ["etc", "rel", "up"], "a second listing starts over");
    }
}
