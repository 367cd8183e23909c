//! Path resolution inside a container's root filesystem, by file descriptor.
//!
//! An image is untrusted: any component of a mount target may be a symlink, absolute or full of
//! `..`. Every lookup here walks one component at a time with `O_PATH|O_NOFOLLOW`, expands
//! symlinks itself as if the root were `/`, and clamps `..` at the root, so that nothing ever
//! resolves (or is created) outside it. Mounts then target the resulting fd through
//! `/proc/self/fd/N`, which the kernel follows to that exact inode.

use std::collections::VecDeque;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use crate::util::sys::{self, file};

/// What to create when a component is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Nothing: a missing component is ENOENT.
    No,
    /// Directories all the way.
    Dir,
    /// Directories, and an empty regular file for the last component.
    File,
}

const MAX_LINKS: u32 = 40;

fn openat_path(dir: RawFd, name: &OsStr) -> io::Result<OwnedFd> {
    file::openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0)
}

pub fn is_dir(fd: RawFd) -> io::Result<bool> {
    Ok(file::kind(file::fstat(fd)?.st_mode) == libc::S_IFDIR)
}

fn components(p: &OsStr) -> impl Iterator<Item = OsString> + '_ {
    p.as_bytes().split(|b| *b == b'/').filter(|c| !c.is_empty()).map(|c| OsStr::from_bytes(c).to_os_string())
}

/// Resolves `path` inside `root` and returns an `O_PATH` fd to it, creating what `create` asks
/// for on the way. Never leaves `root`, whatever the symlinks say.
pub fn resolve(root: RawFd, path: &OsStr, create: Create) -> io::Result<OwnedFd> {
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut todo: VecDeque<OsString> = components(path).collect();
    let mut links = 0;
    while let Some(comp) = todo.pop_front() {
        if comp == "." {
            continue;
        }
        if comp == ".." {
            stack.pop();
            continue;
        }
        let cur = stack.last().map(|f| f.as_raw_fd()).unwrap_or(root);
        let last = todo.is_empty();
        match openat_path(cur, &comp) {
            Ok(fd) => {
                let st = file::fstat(fd.as_raw_fd())?;
                match st.st_mode & libc::S_IFMT {
                    libc::S_IFLNK => {
                        links += 1;
                        if links > MAX_LINKS {
                            return Err(io::Error::from_raw_os_error(libc::ELOOP));
                        }
                        let target = file::readlink_at(fd.as_raw_fd(), OsStr::new(""))?;
                        if target.as_bytes().starts_with(b"/") {
                            stack.clear();
                        }
                        for c in components(&target).collect::<Vec<_>>().into_iter().rev() {
                            todo.push_front(c);
                        }
                    }
                    libc::S_IFDIR => stack.push(fd),
                    _ if last => stack.push(fd),
                    _ => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create != Create::No => {
                let r = if last && create == Create::File {
                    file::mknod_at(cur, &comp, libc::S_IFREG | 0o644, 0)
                } else {
                    file::mkdir_at(cur, &comp, 0o755)
                };
                if let Err(e) = r {
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(e);
                    }
                }
                // Look the new entry up again (it may have been replaced meanwhile: the walk
                // checks it like any other component).
                todo.push_front(comp);
            }
            Err(e) => return Err(e),
        }
    }
    match stack.pop() {
        Some(fd) => Ok(fd),
        None => sys::dup_at_least(root, 0),
    }
}

/// The `/proc/self/fd/N` path through which mount(2) reaches an fd's inode.
pub fn proc_fd_path(fd: RawFd) -> CString {
    CString::new(format!("/proc/self/fd/{fd}")).unwrap_or_default()
}

/// Opens `path` inside the tree whose root is `root` for reading: its directories resolved only
/// within the tree (openat2 RESOLVE_IN_ROOT), the file itself not a symlink (O_NOFOLLOW), a
/// regular file (not a FIFO or a device) on a real filesystem (not procfs or sysfs, where a
/// symlinked directory could lead: `/proc/self/environ` holds berth's own environment), and at
/// most `max` bytes of it read (CVE-2024-9676 and CVE-2026-47262 classes).
pub fn read_in_root(root: RawFd, path: &str, max: usize) -> io::Result<Vec<u8>> {
    let fd = file::open_in_root(root, path, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_NOFOLLOW)?;
    if file::kind(file::fstat(fd.as_raw_fd())?.st_mode) != libc::S_IFREG {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{path} is not a regular file")));
    }
    if file::on_pseudo_fs(fd.as_raw_fd())? {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{path} is on a kernel filesystem (procfs, sysfs)")));
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while out.len() < max {
        let n = sys::read_some(fd.as_raw_fd(), &mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n.min(max - out.len())]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn open_dir(p: &std::path::Path) -> OwnedFd {
        file::open(p, libc::O_PATH | libc::O_DIRECTORY).unwrap()
    }

    fn where_is(fd: &OwnedFd) -> std::path::PathBuf {
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap()
    }

    #[test]
    fn symlinks_and_dotdot_stay_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        symlink(&outside, root.join("abs")).unwrap();
        symlink("../../../..", root.join("etc/up")).unwrap();
        let rfd = open_dir(&root);
        // An absolute symlink to a host path resolves to that path *inside* the root.
        let fd = resolve(rfd.as_raw_fd(), OsStr::new("/abs/data"), Create::Dir).unwrap();
        assert!(where_is(&fd).starts_with(&root), "{:?}", where_is(&fd));
        assert!(!outside.join("data").exists());
        // `..` beyond the root stays at the root.
        let fd = resolve(rfd.as_raw_fd(), OsStr::new("/etc/up/../x"), Create::File).unwrap();
        assert_eq!(where_is(&fd), root.join("x"));
        assert!(!is_dir(fd.as_raw_fd()).unwrap());
        // Missing without create is ENOENT.
        let e = resolve(rfd.as_raw_fd(), OsStr::new("/nope/x"), Create::No).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn symlink_loops_end() {
        let tmp = tempfile::tempdir().unwrap();
        symlink("b", tmp.path().join("a")).unwrap();
        symlink("a", tmp.path().join("b")).unwrap();
        let rfd = open_dir(tmp.path());
        let e = resolve(rfd.as_raw_fd(), OsStr::new("/a"), Create::Dir).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn read_in_root_refuses_escapes_and_fifos() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(tmp.path().join("secret"), "host").unwrap();
        symlink("/../secret", root.join("etc/passwd")).unwrap();
        let rfd = open_dir(&root);
        assert!(read_in_root(rfd.as_raw_fd(), "/etc/passwd", 100).is_err());
        // A link to a file inside the root is refused too: the file itself must be regular.
        std::fs::write(root.join("etc/real"), "inside").unwrap();
        std::fs::remove_file(root.join("etc/passwd")).unwrap();
        symlink("real", root.join("etc/passwd")).unwrap();
        assert_eq!(read_in_root(rfd.as_raw_fd(), "/etc/passwd", 100).unwrap_err().raw_os_error(), Some(libc::ELOOP));
        // A directory that leads into procfs: its files are refused.
        let host = open_dir(std::path::Path::new("/"));
        assert!(read_in_root(host.as_raw_fd(), "/proc/self/status", 100).is_err());
        assert!(read_in_root(host.as_raw_fd(), "/proc/version", 100).is_err());
        std::fs::remove_file(root.join("etc/passwd")).unwrap();
        nix::unistd::mkfifo(&root.join("etc/passwd"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        assert!(read_in_root(rfd.as_raw_fd(), "/etc/passwd", 100).is_err());
        std::fs::remove_file(root.join("etc/passwd")).unwrap();
        std::fs::write(root.join("etc/passwd"), "x".repeat(1000)).unwrap();
        assert_eq!(read_in_root(rfd.as_raw_fd(), "/etc/passwd", 100).unwrap().len(), 100);
    }
}
