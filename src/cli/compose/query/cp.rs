//! `berth cp`: copies files and folders between a service's container and the host (or a tar
//! stream on stdin/stdout), with `docker cp`'s rules for where things land.
//!
//! The container's filesystem is untrusted: a process in it can plant symlinks, such as
//! `/tmp/x -> /`, and swap them while a copy runs (CVE-2018-15664). So nothing in it is ever
//! reached by a host path. The container's root is a directory fd — `/proc/<pid>/root` of a
//! running container (its own mount namespace, volumes included), or for a stopped one its
//! overlay and volumes mounted in a private mount namespace of this process — and every path
//! in it is resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so that symlinks
//! resolve as if that fd were `/`. Below the resolved entry, the walk and the writes are
//! fd-relative with `O_NOFOLLOW`, holding the directory fds they created: a symlink swapped in
//! mid-copy is refused, never followed.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::{Ctr, OneOff};
use crate::cli::GlobalOpts;
use crate::engine::runtime::launch;
use crate::engine::runtime::state::Paths;
use crate::state::StateRoot;
use crate::util::lock::FileLock;
use crate::util::sys::mount as mountapi;

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Include containers created by the run command
    #[arg(long)]
    all: bool,
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 0)]
    index: u32,
    /// SERVICE:SRC_PATH or SRC_PATH|-
    #[arg(value_name = "SRC")]
    src: String,
    /// DEST_PATH|- or SERVICE:DEST_PATH
    #[arg(value_name = "DEST")]
    dest: String,
}

/// docker's `splitCpArg`: `SERVICE:PATH`, unless the argument is an absolute or `.`-relative
/// local path.
fn split_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((svc, path)) if !svc.starts_with('.') && !svc.is_empty() => (Some(svc), path),
        _ => (None, arg),
    }
}

pub fn run(g: &GlobalOpts, a: CpArgs) -> anyhow::Result<i32> {
    let (src_svc, src_path) = split_arg(&a.src);
    let (dst_svc, dst_path) = split_arg(&a.dest);
    let (service, to_container) = match (src_svc, dst_svc) {
        (Some(_), Some(_)) => anyhow::bail!("copying between services is not supported"),
        (None, None) => anyhow::bail!("unknown copy direction: name the service's side as SERVICE:PATH"),
        (Some(s), None) => (s, false),
        (None, Some(s)) => (s, true),
    };
    let name = super::project_name(g)?;
    let root = g.state_root();
    let list = if a.index > 0 {
        vec![super::specified_container(&root, &name, OneOff::Exclude, true, service, a.index)?]
    } else {
        let oneoff = if a.all { OneOff::Include } else { OneOff::Exclude };
        let mut l = super::containers(&root, &name, oneoff, true, &[service.to_string()]);
        if l.is_empty() {
            anyhow::bail!("no container found for service {service:?}");
        }
        if !to_container {
            l.truncate(1);
        }
        l
    };
    let mut ns = Namespace::default();
    for c in &list {
        let what = if to_container {
            format!("{src_path} to {}:{dst_path}", c.cfg.name)
        } else {
            format!("{}:{src_path} to {dst_path}", c.cfg.name)
        };
        let (croot, _lock) =
            container_root(&root, c, &mut ns).with_context(|| format!("cannot reach the filesystem of container {}", c.cfg.name))?;
        let opts = Opts { follow: a.follow_link, archive: a.archive };
        if to_container {
            // As docker, refused before anything is copied.
            if let Some(why) = read_only_at(&c.cfg, dst_path) {
                anyhow::bail!("cannot copy {what}: {why}");
            }
            copy_in(croot.as_raw_fd(), src_path, dst_path, &c.cfg.name, &opts).map_err(|e| {
                let erofs = e.chain().any(|x| x.downcast_ref::<io::Error>().is_some_and(|io| io.raw_os_error() == Some(libc::EROFS)));
                if erofs {
                    e.context(format!(
                        "cannot copy {what}: {dst_path} is on a read-only file system in the container; copy into a writable mount instead"
                    ))
                } else {
                    e
                }
            })?;
        } else {
            copy_out(croot.as_raw_fd(), src_path, dst_path, &c.cfg.name, &opts)?;
        }
        eprintln!(" {} copy {what} Copied", c.cfg.name);
    }
    Ok(0)
}

/// Why `dst` cannot be written in the container, in docker's words with what to do: under a
/// read-only mount (the deepest mount holding it decides), or on a read-only rootfs.
fn read_only_at(cfg: &crate::engine::runtime::spec::ContainerConfig, dst: &str) -> Option<String> {
    let parts = |p: &str| -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for c in p.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    v.pop();
                }
                c => v.push(c.to_string()),
            }
        }
        v
    };
    let d = parts(dst);
    let holder = cfg.mounts.iter().filter(|m| d.starts_with(&parts(&m.target))).max_by_key(|m| parts(&m.target).len());
    match holder {
        Some(m) if m.read_only => {
            let from = if m.source.is_empty() { String::new() } else { format!(" from {}", m.source) };
            Some(format!(
                "mounted volume is marked read-only: {} is mounted read-only{from}; drop \":ro\" (or read_only: true) from the service's volume to copy into it",
                m.target
            ))
        }
        None if cfg.rootfs.read_only => Some(
            "container rootfs is marked read-only (read_only: true): copy into a writable volume or tmpfs mount, or drop read_only from the service"
                .to_string(),
        ),
        _ => None,
    }
}

/// Copies host file or folder `src` to `dst` in container `c` (`watch`'s sync): a folder's
/// contents go into `dst`, created or merged; `dst`'s parent must exist.
pub(crate) fn copy_to_container(root: &StateRoot, c: &Ctr, src: &Path, dst: &str) -> anyhow::Result<()> {
    let (croot, _lock) = container_root(root, c, &mut Namespace::default())?;
    let mut s = src.to_string_lossy().into_owned();
    if src.is_dir() {
        s.push_str("/.");
    }
    copy_in(croot.as_raw_fd(), &s, dst, &c.cfg.name, &Opts { follow: false, archive: false })
}

struct Opts {
    follow: bool,
    archive: bool,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    Ok(unsafe { OwnedFd::from_raw_fd(cvt(fd)?) })
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Opens `path` inside the tree rooted at `root`, symlinks resolved as if `root` were `/`.
fn open_in_root(root: RawFd, path: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    let c = cstr(OsStr::new(if rel.is_empty() { "." } else { rel }))?;
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    let fd =
        unsafe { libc::syscall(libc::SYS_openat2, root, c.as_ptr(), &how as *const libc::open_how, std::mem::size_of::<libc::open_how>()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub(super) fn openat(dir: RawFd, name: &OsStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    owned(unsafe { libc::openat(dir, c.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NOFOLLOW, mode as libc::c_uint) })
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstatat(fd, c"".as_ptr(), &mut st, libc::AT_EMPTY_PATH) })?;
    Ok(st)
}

fn lstat_at(dir: RawFd, name: &OsStr) -> io::Result<Option<libc::stat>> {
    let c = cstr(name)?;
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    match cvt(unsafe { libc::fstatat(dir, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) }) {
        Ok(_) => Ok(Some(st)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn readlink_at(dir: RawFd, name: &OsStr) -> io::Result<OsString> {
    let c = cstr(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    let n = unsafe { libc::readlinkat(dir, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(OsString::from_vec(buf))
}

fn kind(mode: libc::mode_t) -> libc::mode_t {
    mode & libc::S_IFMT
}

/// The names in a directory (its fd is duplicated; `.` and `..` left out), sorted.
fn list_dir(dir: RawFd) -> io::Result<Vec<OsString>> {
    let fd = cvt(unsafe { libc::fcntl(dir, libc::F_DUPFD_CLOEXEC, 0) })?;
    let d = unsafe { libc::fdopendir(fd) };
    if d.is_null() {
        let e = io::Error::last_os_error();
        unsafe { libc::close(fd) };
        return Err(e);
    }
    unsafe { libc::rewinddir(d) };
    let mut out = Vec::new();
    loop {
        let e = unsafe { libc::readdir64(d) };
        if e.is_null() {
            break;
        }
        let name = unsafe { std::ffi::CStr::from_ptr((*e).d_name.as_ptr()) }.to_bytes().to_vec();
        if name != b"." && name != b".." {
            out.push(OsString::from_vec(name));
        }
    }
    unsafe { libc::closedir(d) };
    out.sort();
    Ok(out)
}

/// What is kept of an entry's metadata.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
}

impl Meta {
    fn of(st: &libc::stat) -> Meta {
        Meta { mode: st.st_mode & 0o7777, uid: st.st_uid, gid: st.st_gid, mtime: (st.st_mtime, st.st_mtime_nsec) }
    }
    fn times(&self) -> [libc::timespec; 2] {
        let t = libc::timespec { tv_sec: self.mtime.0, tv_nsec: self.mtime.1 };
        [t, t]
    }
}

/// Where a copy's entries go. `rel` is the entry's path below the copied root (empty: the root).
pub(super) trait Sink {
    fn dir(&mut self, rel: &[OsString], m: &Meta) -> anyhow::Result<()>;
    fn file(&mut self, rel: &[OsString], m: &Meta, size: u64, data: &mut dyn Read) -> anyhow::Result<()>;
    fn symlink(&mut self, rel: &[OsString], m: &Meta, target: &OsStr) -> anyhow::Result<()>;
    /// After a directory's children: its times and ownership.
    fn end_dir(&mut self, rel: &[OsString], m: &Meta) -> anyhow::Result<()>;
}

fn show(rel: &[OsString]) -> String {
    rel.iter().map(|c| c.to_string_lossy().into_owned()).collect::<Vec<_>>().join("/")
}

// ---------------------------------------------------------------------------------------------
// Sources.

/// Walks the entry `fd` (an O_PATH fd from the resolution) of the container.
pub(super) fn walk_container_root(fd: OwnedFd, sink: &mut dyn Sink, children_only: bool) -> anyhow::Result<()> {
    let st = fstat(fd.as_raw_fd())?;
    let m = Meta::of(&st);
    match kind(st.st_mode) {
        libc::S_IFDIR => {
            let dir = openat(fd.as_raw_fd(), OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            if !children_only {
                sink.dir(&[], &m)?;
            }
            walk_container_dir(&dir, &mut Vec::new(), sink)?;
            if !children_only {
                sink.end_dir(&[], &m)?;
            }
        }
        libc::S_IFREG => {
            // Reopened for reading through the fd itself (the magic link names this very inode).
            let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
            let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&p)?;
            if kind(fstat(f.as_raw_fd())?.st_mode) != libc::S_IFREG {
                anyhow::bail!("the source changed while it was opened");
            }
            sink.file(&[], &m, st.st_size as u64, &mut &f)?;
        }
        libc::S_IFLNK => {
            let target = readlink_at(fd.as_raw_fd(), OsStr::new(""))?;
            sink.symlink(&[], &m, &target)?;
        }
        _ => anyhow::bail!("only regular files, directories and symbolic links can be copied"),
    }
    Ok(())
}

fn walk_container_dir(dir: &OwnedFd, rel: &mut Vec<OsString>, sink: &mut dyn Sink) -> anyhow::Result<()> {
    for name in list_dir(dir.as_raw_fd())? {
        let Some(st) = lstat_at(dir.as_raw_fd(), &name)? else { continue };
        let m = Meta::of(&st);
        rel.push(name.clone());
        match kind(st.st_mode) {
            libc::S_IFDIR => {
                // O_NOFOLLOW: a directory swapped for a symlink since the lstat fails here.
                let sub = openat(dir.as_raw_fd(), &name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .with_context(|| format!("cannot open {}", show(rel)))?;
                sink.dir(rel, &m)?;
                walk_container_dir(&sub, rel, sink)?;
                sink.end_dir(rel, &m)?;
            }
            libc::S_IFREG => {
                let f = openat(dir.as_raw_fd(), &name, libc::O_RDONLY | libc::O_NONBLOCK, 0)
                    .with_context(|| format!("cannot open {}", show(rel)))?;
                let st = fstat(f.as_raw_fd())?;
                if kind(st.st_mode) == libc::S_IFREG {
                    sink.file(rel, &Meta::of(&st), st.st_size as u64, &mut File::from(f))?;
                }
            }
            libc::S_IFLNK => {
                let target = readlink_at(dir.as_raw_fd(), &name)?;
                sink.symlink(rel, &m, &target)?;
            }
            // Devices, FIFOs and sockets are not copied.
            _ => {}
        }
        rel.pop();
    }
    Ok(())
}

/// Walks a host path (trusted: the user's own files).
fn walk_host(path: &Path, rel: &mut Vec<OsString>, sink: &mut dyn Sink, follow: bool, children_only: bool) -> anyhow::Result<()> {
    let md = if follow { std::fs::metadata(path) } else { std::fs::symlink_metadata(path) }
        .with_context(|| format!("cannot read {}", path.display()))?;
    let m = Meta { mode: md.mode() & 0o7777, uid: md.uid(), gid: md.gid(), mtime: (md.mtime(), md.mtime_nsec()) };
    let ft = md.file_type();
    if ft.is_dir() {
        if !children_only {
            sink.dir(rel, &m)?;
        }
        let mut names: Vec<OsString> =
            std::fs::read_dir(path).with_context(|| format!("cannot read {}", path.display()))?.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for n in names {
            rel.push(n.clone());
            walk_host(&path.join(&n), rel, sink, false, false)?;
            rel.pop();
        }
        if !children_only {
            sink.end_dir(rel, &m)?;
        }
    } else if ft.is_file() {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW * (!follow) as i32)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        sink.file(rel, &m, md.len(), &mut &f)?;
    } else if ft.is_symlink() {
        let t = std::fs::read_link(path).with_context(|| format!("cannot read {}", path.display()))?;
        sink.symlink(rel, &m, t.as_os_str())?;
    }
    Ok(())
}

/// The components of a tar entry's path, or None for a path that climbs out (`..`).
fn tar_components(p: &Path) -> Option<Vec<OsString>> {
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n.to_os_string()),
            std::path::Component::CurDir | std::path::Component::RootDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Extracts a tar stream into the sink (every entry below its root).
fn walk_tar(input: &mut dyn Read, sink: &mut dyn Sink) -> anyhow::Result<()> {
    let mut ar = tar::Archive::new(input);
    let mut dirs: Vec<(Vec<OsString>, Meta)> = Vec::new();
    for e in ar.entries().context("cannot read the tar stream")? {
        let mut e = e.context("cannot read the tar stream")?;
        let path = e.path().context("a tar entry has an invalid path")?.into_owned();
        let Some(rel) = tar_components(&path) else {
            anyhow::bail!("the tar entry {} leaves the destination", path.display());
        };
        let h = e.header();
        let m = Meta {
            mode: h.mode().unwrap_or(0o644) & 0o7777,
            uid: h.uid().unwrap_or(0) as u32,
            gid: h.gid().unwrap_or(0) as u32,
            mtime: (h.mtime().unwrap_or(0) as i64, 0),
        };
        match h.entry_type() {
            tar::EntryType::Directory => {
                if !rel.is_empty() {
                    sink.dir(&rel, &m)?;
                    dirs.push((rel, m));
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = e.size();
                sink.file(&rel, &m, size, &mut e)?;
            }
            tar::EntryType::Symlink => {
                let t = e.link_name()?.map(|l| l.into_owned()).unwrap_or_default();
                sink.symlink(&rel, &m, t.as_os_str())?;
            }
            other => eprintln!("skipping {} (tar entries of type {other:?} are not copied)", path.display()),
        }
    }
    for (rel, m) in dirs.iter().rev() {
        sink.end_dir(rel, m)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Sinks.

/// Writes into the container, fd-relative below a resolved directory.
struct ContainerSink {
    /// Where the copied root goes: a directory fd and the name in it, until it is created.
    parent: Option<(OwnedFd, OsString)>,
    /// The copied root's own directory fd, once it exists (or from the start, for contents).
    root_dir: Option<OwnedFd>,
    /// Open directories below the root: (path, fd), a stack along the last entry's path.
    open: Vec<(OsString, OwnedFd)>,
    /// Files are owned by the container's root unless archive mode keeps the source's owners.
    archive: bool,
}

impl ContainerSink {
    /// The directory fd and name where `rel` lives, creating missing parents (tar streams).
    fn place(&mut self, rel: &[OsString]) -> anyhow::Result<(RawFd, OsString)> {
        let Some((last, dirs)) = rel.split_last() else {
            let (fd, name) = self.parent.as_ref().ok_or_else(|| anyhow::anyhow!("the destination already exists"))?;
            return Ok((fd.as_raw_fd(), name.clone()));
        };
        let root = self.root_dir.as_ref().ok_or_else(|| anyhow::anyhow!("the destination directory is missing"))?.as_raw_fd();
        let keep = self.open.iter().zip(dirs).take_while(|((n, _), d)| n == *d).count();
        self.open.truncate(keep);
        for d in &dirs[keep..] {
            let at = self.open.last().map(|(_, f)| f.as_raw_fd()).unwrap_or(root);
            let fd = match openat(at, d, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let c = cstr(d)?;
                    cvt(unsafe { libc::mkdirat(at, c.as_ptr(), 0o755) })?;
                    openat(at, d, libc::O_RDONLY | libc::O_DIRECTORY, 0)?
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!(
                        "{} is not a directory in the container (a symbolic link is never followed)",
                        d.to_string_lossy()
                    )));
                }
            };
            self.open.push((d.clone(), fd));
        }
        let at = self.open.last().map(|(_, f)| f.as_raw_fd()).unwrap_or(root);
        Ok((at, last.clone()))
    }

    /// Removes what is in the way of a new non-directory entry (never a directory).
    fn clear(at: RawFd, name: &OsStr, rel: &[OsString]) -> anyhow::Result<()> {
        if let Some(st) = lstat_at(at, name)? {
            if kind(st.st_mode) == libc::S_IFDIR {
                anyhow::bail!("cannot overwrite directory {} with a non-directory", show_or_root(rel, name));
            }
            let c = cstr(name)?;
            cvt(unsafe { libc::unlinkat(at, c.as_ptr(), 0) })?;
        }
        Ok(())
    }

    fn owner(&self, m: &Meta) -> (u32, u32) {
        if self.archive { (m.uid, m.gid) } else { (0, 0) }
    }
}

fn show_or_root(rel: &[OsString], name: &OsStr) -> String {
    if rel.is_empty() { name.to_string_lossy().into_owned() } else { show(rel) }
}

impl Sink for ContainerSink {
    fn dir(&mut self, rel: &[OsString], m: &Meta) -> anyhow::Result<()> {
        if rel.is_empty() && self.root_dir.is_some() {
            return Ok(());
        }
        let (at, name) = self.place(rel)?;
        let c = cstr(&name)?;
        match lstat_at(at, &name)? {
            Some(st) if kind(st.st_mode) == libc::S_IFDIR => {}
            Some(_) => {
                cvt(unsafe { libc::unlinkat(at, c.as_ptr(), 0) })?;
                cvt(unsafe { libc::mkdirat(at, c.as_ptr(), 0o700) })?;
            }
            None => {
                cvt(unsafe { libc::mkdirat(at, c.as_ptr(), 0o700) })?;
            }
        }
        let fd = openat(at, &name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .with_context(|| format!("cannot open {}", show_or_root(rel, &name)))?;
        let (uid, gid) = self.owner(m);
        cvt(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })?;
        cvt(unsafe { libc::fchmod(fd.as_raw_fd(), m.mode) })?;
        if rel.is_empty() {
            self.root_dir = Some(fd);
        } else {
            self.open.push((name, fd));
        }
        Ok(())
    }

    fn file(&mut self, rel: &[OsString], m: &Meta, _size: u64, data: &mut dyn Read) -> anyhow::Result<()> {
        let (at, name) = self.place(rel)?;
        Self::clear(at, &name, rel)?;
        let fd = openat(at, &name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600)
            .with_context(|| format!("cannot create {}", show_or_root(rel, &name)))?;
        let mut f = File::from(fd);
        io::copy(data, &mut f).with_context(|| format!("cannot write {}", show_or_root(rel, &name)))?;
        let (uid, gid) = self.owner(m);
        cvt(unsafe { libc::fchown(f.as_raw_fd(), uid, gid) })?;
        cvt(unsafe { libc::fchmod(f.as_raw_fd(), m.mode) })?;
        cvt(unsafe { libc::futimens(f.as_raw_fd(), m.times().as_ptr()) })?;
        Ok(())
    }

    fn symlink(&mut self, rel: &[OsString], m: &Meta, target: &OsStr) -> anyhow::Result<()> {
        let (at, name) = self.place(rel)?;
        Self::clear(at, &name, rel)?;
        let (c, t) = (cstr(&name)?, cstr(target)?);
        cvt(unsafe { libc::symlinkat(t.as_ptr(), at, c.as_ptr()) })?;
        let (uid, gid) = self.owner(m);
        cvt(unsafe { libc::fchownat(at, c.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })?;
        cvt(unsafe { libc::utimensat(at, c.as_ptr(), m.times().as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })?;
        Ok(())
    }

    fn end_dir(&mut self, rel: &[OsString], m: &Meta) -> anyhow::Result<()> {
        // open[k] is the directory of rel[k] along the current path.
        let fd = if rel.is_empty() {
            self.root_dir.as_ref().map(|f| f.as_raw_fd())
        } else {
            self.open.get(rel.len() - 1).filter(|(n, _)| Some(n) == rel.last()).map(|(_, f)| f.as_raw_fd())
        };
        if let Some(fd) = fd {
            cvt(unsafe { libc::futimens(fd, m.times().as_ptr()) })?;
        }
        Ok(())
    }
}

/// Writes on the host (trusted paths), keeping modes, times and, as root, owners.
struct HostSink {
    target: PathBuf,
    /// The target is an existing directory that receives the contents.
    into_existing: bool,
    chown: bool,
}

impl HostSink {
    fn path(&self, rel: &[OsString]) -> PathBuf {
        let mut p = self.target.clone();
        for c in rel {
            p.push(c);
        }
        p
    }
    fn clear(p: &Path) -> anyhow::Result<()> {
        match std::fs::symlink_metadata(p) {
            Ok(md) if md.is_dir() => anyhow::bail!("cannot overwrite directory {} with a non-directory", p.display()),
            Ok(_) => std::fs::remove_file(p).with_context(|| format!("cannot replace {}", p.display())),
            Err(_) => Ok(()),
        }
    }
    fn finish(&self, p: &Path, m: &Meta, link: bool) -> anyhow::Result<()> {
        let c = cstr(p.as_os_str())?;
        if self.chown {
            cvt(unsafe { libc::fchownat(libc::AT_FDCWD, c.as_ptr(), m.uid, m.gid, libc::AT_SYMLINK_NOFOLLOW) })
                .with_context(|| format!("cannot set the owner of {}", p.display()))?;
        }
        if !link {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m.mode))
                .with_context(|| format!("cannot set the mode of {}", p.display()))?;
        }
        cvt(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), m.times().as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
            .with_context(|| format!("cannot set the times of {}", p.display()))?;
        Ok(())
    }
}

impl Sink for HostSink {
    fn dir(&mut self, rel: &[OsString], _m: &Meta) -> anyhow::Result<()> {
        if rel.is_empty() && self.into_existing {
            return Ok(());
        }
        let p = self.path(rel);
        match std::fs::symlink_metadata(&p) {
            Ok(md) if md.is_dir() => Ok(()),
            Ok(_) => {
                std::fs::remove_file(&p).with_context(|| format!("cannot replace {}", p.display()))?;
                std::fs::create_dir(&p).with_context(|| format!("cannot create {}", p.display()))
            }
            Err(_) => std::fs::create_dir(&p).with_context(|| format!("cannot create {}", p.display())),
        }
    }

    fn file(&mut self, rel: &[OsString], m: &Meta, _size: u64, data: &mut dyn Read) -> anyhow::Result<()> {
        let p = self.path(rel);
        Self::clear(&p)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)
            .with_context(|| format!("cannot create {}", p.display()))?;
        io::copy(data, &mut f).with_context(|| format!("cannot write {}", p.display()))?;
        drop(f);
        self.finish(&p, m, false)
    }

    fn symlink(&mut self, rel: &[OsString], m: &Meta, target: &OsStr) -> anyhow::Result<()> {
        let p = self.path(rel);
        Self::clear(&p)?;
        std::os::unix::fs::symlink(target, &p).with_context(|| format!("cannot create {}", p.display()))?;
        self.finish(&p, m, true)
    }

    fn end_dir(&mut self, rel: &[OsString], m: &Meta) -> anyhow::Result<()> {
        if rel.is_empty() && self.into_existing {
            return Ok(());
        }
        self.finish(&self.path(rel), m, false)
    }
}

/// Writes a tar stream (stdout), entries named below `root`.
pub(super) struct TarSink<W: Write> {
    pub b: tar::Builder<W>,
    pub root: PathBuf,
}

impl<W: Write> TarSink<W> {
    fn header(&self, m: &Meta, kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(m.mode);
        h.set_uid(m.uid as u64);
        h.set_gid(m.gid as u64);
        h.set_mtime(m.mtime.0.max(0) as u64);
        h.set_size(size);
        h
    }
    fn name(&self, rel: &[OsString]) -> PathBuf {
        let mut p = self.root.clone();
        for c in rel {
            p.push(c);
        }
        p
    }
}

impl<W: Write> Sink for TarSink<W> {
    fn dir(&mut self, rel: &[OsString], m: &Meta) -> anyhow::Result<()> {
        let mut h = self.header(m, tar::EntryType::Directory, 0);
        let name = self.name(rel);
        self.b.append_data(&mut h, &name, io::empty())?;
        Ok(())
    }
    fn file(&mut self, rel: &[OsString], m: &Meta, size: u64, data: &mut dyn Read) -> anyhow::Result<()> {
        let mut h = self.header(m, tar::EntryType::Regular, size);
        let name = self.name(rel);
        // The size was taken before reading: a file that changes meanwhile is cut or padded.
        let mut r = data.take(size).chain(io::repeat(0).take(size));
        self.b.append_data(&mut h, &name, (&mut r).take(size))?;
        Ok(())
    }
    fn symlink(&mut self, rel: &[OsString], m: &Meta, target: &OsStr) -> anyhow::Result<()> {
        let mut h = self.header(m, tar::EntryType::Symlink, 0);
        let name = self.name(rel);
        self.b.append_link(&mut h, &name, target)?;
        Ok(())
    }
    fn end_dir(&mut self, _rel: &[OsString], _m: &Meta) -> anyhow::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The two directions.

/// `docker cp`'s "copy the contents": a source ending in `/.`.
fn contents_only(p: &str) -> bool {
    p.ends_with("/.") || p.ends_with("/./") || p == "."
}

fn base_name(p: &str) -> OsString {
    Path::new(p.trim_end_matches('/')).file_name().map(|n| n.to_os_string()).unwrap_or_else(|| OsString::from("."))
}

fn not_found(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

fn copy_out(croot: RawFd, src: &str, dst: &str, name: &str, o: &Opts) -> anyhow::Result<()> {
    let flags = libc::O_PATH | if o.follow { 0 } else { libc::O_NOFOLLOW };
    let fd = match open_in_root(croot, src, flags) {
        Ok(fd) => fd,
        Err(e) if not_found(&e) => anyhow::bail!("Could not find the file {src} in container {name}"),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot open {src} in container {name}"))),
    };
    let st = fstat(fd.as_raw_fd())?;
    let is_dir = kind(st.st_mode) == libc::S_IFDIR;
    let contents = is_dir && contents_only(src);
    if dst == "-" {
        let root = if contents { PathBuf::from(".") } else { PathBuf::from(base_name(src)) };
        let mut sink = TarSink { b: tar::Builder::new(io::stdout().lock()), root };
        sink.b.follow_symlinks(false);
        walk_container_root(fd, &mut sink, false)?;
        sink.b.into_inner()?.flush()?;
        return Ok(());
    }
    let dpath = Path::new(dst);
    let chown = nix::unistd::geteuid().is_root();
    let existing = std::fs::metadata(dpath).ok();
    // Only into an existing directory are the contents copied without their directory; a new
    // destination becomes the copied directory.
    let children_only = contents && existing.as_ref().is_some_and(|m| m.is_dir());
    let mut sink = match existing {
        Some(md) if md.is_dir() => {
            if contents {
                HostSink { target: dpath.to_path_buf(), into_existing: true, chown }
            } else {
                HostSink { target: dpath.join(base_name(src)), into_existing: false, chown }
            }
        }
        Some(_) => {
            if is_dir {
                anyhow::bail!("cannot copy a directory to a file: {dst} is a file");
            }
            HostSink { target: dpath.to_path_buf(), into_existing: false, chown }
        }
        None => {
            if dst.ends_with('/') && !is_dir {
                anyhow::bail!("destination directory {dst} must exist");
            }
            let parent = dpath.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if !parent.is_dir() {
                anyhow::bail!("the parent of {dst} is not a directory: create {} first", parent.display());
            }
            HostSink { target: dpath.to_path_buf(), into_existing: false, chown }
        }
    };
    walk_container_root(fd, &mut sink, children_only)
}

fn copy_in(croot: RawFd, src: &str, dst: &str, name: &str, o: &Opts) -> anyhow::Result<()> {
    // The destination, resolved inside the container (its symlinks resolve within it).
    let dest = match open_in_root(croot, dst, libc::O_PATH) {
        Ok(fd) => Some(fd),
        Err(e) if not_found(&e) => None,
        Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot open {dst} in container {name}"))),
    };
    let dest_dir = match &dest {
        Some(fd) => kind(fstat(fd.as_raw_fd())?.st_mode) == libc::S_IFDIR,
        None => false,
    };
    let reopen_dir = |fd: &OwnedFd| openat(fd.as_raw_fd(), OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0);
    // The parent directory of `dst` and its last name, for a destination created or replaced.
    let parent_of = || -> anyhow::Result<(OwnedFd, OsString)> {
        let trimmed = dst.trim_end_matches('/');
        let (dir, last) = match trimmed.rsplit_once('/') {
            Some((d, l)) => (if d.is_empty() { "/" } else { d }, l),
            None => ("/", trimmed),
        };
        if last.is_empty() || last == "." || last == ".." {
            anyhow::bail!("invalid destination {dst:?}");
        }
        let fd = open_in_root(croot, dir, libc::O_RDONLY | libc::O_DIRECTORY).map_err(|e| {
            if not_found(&e) {
                anyhow::anyhow!("the parent directory of {dst} does not exist in container {name}")
            } else {
                anyhow::Error::new(e).context(format!("cannot open {dir} in container {name}"))
            }
        })?;
        Ok((fd, OsString::from(last)))
    };
    let sink_into = |fd: &OwnedFd| -> anyhow::Result<ContainerSink> {
        Ok(ContainerSink { parent: None, root_dir: Some(reopen_dir(fd)?), open: Vec::new(), archive: o.archive })
    };
    if src == "-" {
        let Some(fd) = dest.as_ref().filter(|_| dest_dir) else {
            anyhow::bail!("destination {dst:?} must be a directory in container {name} when copying from stdin");
        };
        let mut sink = sink_into(fd)?;
        return walk_tar(&mut io::stdin().lock(), &mut sink);
    }
    let spath = Path::new(src);
    let md = if o.follow { std::fs::metadata(spath) } else { std::fs::symlink_metadata(spath) };
    let md = md.map_err(|_| anyhow::anyhow!("no such file or directory: {src}"))?;
    let is_dir = md.is_dir();
    let contents = is_dir && contents_only(src);
    let children_only = contents && dest_dir;
    let mut sink = match (&dest, dest_dir) {
        (Some(fd), true) if contents => sink_into(fd)?,
        (Some(fd), true) => {
            ContainerSink { parent: Some((reopen_dir(fd)?, base_name(src))), root_dir: None, open: Vec::new(), archive: o.archive }
        }
        (Some(_), false) => {
            if is_dir {
                anyhow::bail!("cannot copy a directory to a file: {dst} is a file in container {name}");
            }
            ContainerSink { parent: Some(parent_of()?), root_dir: None, open: Vec::new(), archive: o.archive }
        }
        (None, _) => {
            if dst.ends_with('/') && !is_dir {
                anyhow::bail!("destination directory {dst} must exist in container {name}");
            }
            ContainerSink { parent: Some(parent_of()?), root_dir: None, open: Vec::new(), archive: o.archive }
        }
    };
    walk_host(spath, &mut Vec::new(), &mut sink, o.follow, children_only)
}

// ---------------------------------------------------------------------------------------------
// The container's root.

/// The private mount namespace this process enters (once) to mount stopped containers.
#[derive(Default)]
struct Namespace {
    entered: bool,
}

impl Namespace {
    fn enter(&mut self) -> anyhow::Result<()> {
        if self.entered {
            return Ok(());
        }
        cvt(unsafe { libc::unshare(libc::CLONE_NEWNS) }).context("cannot create a private mount namespace")?;
        // Nothing mounted from now on propagates to the host.
        cvt(unsafe { libc::mount(c"none".as_ptr(), c"/".as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) })
            .context("cannot make the mount namespace private")?;
        self.entered = true;
        Ok(())
    }
}

/// A directory fd on the container's `/`, and for a stopped one the container lock that keeps
/// it from starting while its layers are mounted here.
fn container_root(root: &StateRoot, c: &Ctr, ns: &mut Namespace) -> anyhow::Result<(OwnedFd, Option<FileLock>)> {
    if let Some(init) = c.st.init.filter(|_| c.running()) {
        // The /proc dir fd pins the process: checked against its start time once open, a
        // reused pid can no longer slip in, and `root` is then that process's root.
        if let Ok(d) = std::fs::File::open(format!("/proc/{}", init.pid)) {
            if init.alive() {
                let fd =
                    owned(unsafe { libc::openat(d.as_raw_fd(), c"root".as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) })
                        .context("cannot open the container's root")?;
                return Ok((fd, None));
            }
        }
    }
    // Stopped: its overlay (and the volumes and binds it mounts) in our private namespace.
    let lock = root.lock(&format!("c-{}", c.cfg.id))?;
    let st = crate::engine::runtime::ops::state_of(root, &c.cfg.id)?;
    if st.status.is_active() {
        anyhow::bail!("container {} started meanwhile; run the copy again", c.cfg.name);
    }
    ns.enter()?;
    let paths = Paths::new(root, &c.cfg.id);
    let (cwd, opts) = launch::overlay_options(&c.cfg.rootfs.layers, &paths.diff(), &paths.work()).map_err(|m| anyhow::anyhow!(m))?;
    let pairs: Vec<(&str, Option<&str>)> =
        opts.split(',').map(|kv| kv.split_once('=').map(|(k, v)| (k, Some(v))).unwrap_or((kv, None))).collect();
    let here = std::env::current_dir().ok();
    std::env::set_current_dir(&cwd).with_context(|| format!("cannot enter {}", cwd.display()))?;
    let mnt = mountapi::new_fs("overlay", "overlay", &pairs, 0);
    if let Some(h) = here {
        let _ = std::env::set_current_dir(h);
    }
    let mnt = mnt.context("cannot mount the container's layers")?;
    let target = openat(libc::AT_FDCWD, paths.rootfs().as_os_str(), libc::O_PATH | libc::O_DIRECTORY, 0)
        .with_context(|| format!("cannot open {}", paths.rootfs().display()))?;
    mountapi::attach(&mnt, target.as_raw_fd()).context("cannot mount the container's layers")?;
    let rootfd = openat(libc::AT_FDCWD, paths.rootfs().as_os_str(), libc::O_PATH | libc::O_DIRECTORY, 0)?;
    for pm in launch::plan_mounts(root, &c.cfg)? {
        let crate::engine::runtime::init::PlannedKind::Bind { source } = &pm.kind else { continue };
        // A mount point the container has not created yet holds nothing to copy.
        let Ok(t) = open_in_root(rootfd.as_raw_fd(), &pm.target, libc::O_PATH) else { continue };
        let Ok(src) = openat(libc::AT_FDCWD, source.as_os_str(), libc::O_PATH, 0) else { continue };
        let bm = mountapi::clone_tree(src.as_raw_fd(), true).with_context(|| format!("cannot mount {}", source.display()))?;
        if pm.read_only {
            const ATTR_RDONLY: u64 = 0x1;
            mountapi::set_attr(bm.as_raw_fd(), ATTR_RDONLY, 0, 0, true)?;
        }
        mountapi::attach(&bm, t.as_raw_fd()).with_context(|| format!("cannot mount {} on {}", source.display(), pm.target))?;
    }
    let fd = openat(libc::AT_FDCWD, paths.rootfs().as_os_str(), libc::O_PATH | libc::O_DIRECTORY, 0)?;
    Ok((fd, Some(lock)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deepest_mount_decides_whether_a_destination_is_read_only() {
        use crate::engine::runtime::spec::{ContainerConfig, Mount};
        let m = |target: &str, read_only: bool| Mount { target: target.into(), read_only, source: "/src".into(), ..Default::default() };
        let mut c = ContainerConfig { mounts: vec![m("/www", true), m("/www/upload", false)], ..Default::default() };
        assert!(read_only_at(&c, "/www/").unwrap().contains("/www is mounted read-only from /src"));
        assert!(read_only_at(&c, "/www/a/../b").is_some());
        assert!(read_only_at(&c, "/www/upload/x").is_none());
        assert!(read_only_at(&c, "/wwwx/").is_none());
        assert!(read_only_at(&c, "/tmp").is_none());
        c.rootfs.read_only = true;
        assert!(read_only_at(&c, "/tmp").unwrap().contains("container rootfs is marked read-only"));
        assert!(read_only_at(&c, "/www/upload/").is_none());
    }

    #[test]
    fn arguments_split_as_docker_splits_them() {
        assert_eq!(split_arg("web:/tmp/x"), (Some("web"), "/tmp/x"));
        assert_eq!(split_arg("/abs:odd"), (None, "/abs:odd"));
        assert_eq!(split_arg("./rel:odd"), (None, "./rel:odd"));
        assert_eq!(split_arg("file.txt"), (None, "file.txt"));
        assert_eq!(split_arg("-"), (None, "-"));
    }

    #[test]
    fn tar_paths_never_climb_out() {
        assert_eq!(tar_components(Path::new("./a/b")).unwrap(), vec![OsString::from("a"), OsString::from("b")]);
        assert_eq!(tar_components(Path::new("/etc/x")).unwrap(), vec![OsString::from("etc"), OsString::from("x")]);
        assert!(tar_components(Path::new("a/../../x")).is_none());
    }

    #[test]
    fn copies_stay_inside_the_root_even_through_planted_symlinks() {
        // A "container root" with a symlink to / and an absolute one to /etc.
        let d = tempfile::tempdir().unwrap();
        let croot = d.path().join("root");
        std::fs::create_dir_all(croot.join("tmp")).unwrap();
        std::fs::create_dir_all(croot.join("etc")).unwrap();
        std::fs::write(croot.join("etc/passwd"), "container passwd\n").unwrap();
        std::os::unix::fs::symlink("/", croot.join("tmp/up")).unwrap();
        std::os::unix::fs::symlink("/etc", croot.join("tmp/etc")).unwrap();
        let rfd = openat(libc::AT_FDCWD, croot.as_os_str(), libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
        let o = Opts { follow: false, archive: false };
        // Out through the symlink: the container's /etc/passwd, never the host's.
        let out = d.path().join("out.txt");
        copy_out(rfd.as_raw_fd(), "/tmp/etc/passwd", out.to_str().unwrap(), "c", &o).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "container passwd\n");
        // In through a symlink to /: lands in the container's root.
        let src = d.path().join("payload");
        std::fs::write(&src, "x").unwrap();
        copy_in(rfd.as_raw_fd(), src.to_str().unwrap(), "/tmp/up/escaped", "c", &o).unwrap();
        assert!(croot.join("escaped").exists());
        assert!(!Path::new("/escaped").exists());
        // A directory, into an existing directory, then its contents only.
        let tree = d.path().join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("sub/f"), "f").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", tree.join("link")).unwrap();
        copy_in(rfd.as_raw_fd(), tree.to_str().unwrap(), "/tmp", "c", &o).unwrap();
        assert_eq!(std::fs::read_to_string(croot.join("tmp/tree/sub/f")).unwrap(), "f");
        assert_eq!(std::fs::read_link(croot.join("tmp/tree/link")).unwrap(), Path::new("/etc/shadow"));
        copy_in(rfd.as_raw_fd(), &format!("{}/.", tree.display()), "/etc", "c", &o).unwrap();
        assert!(croot.join("etc/sub/f").exists());
        // Copying the symlink out copies the link, not what it names on the host.
        let back = d.path().join("back");
        copy_out(rfd.as_raw_fd(), "/tmp/tree", back.to_str().unwrap(), "c", &o).unwrap();
        assert_eq!(std::fs::read_link(back.join("link")).unwrap(), Path::new("/etc/shadow"));
        assert!(
            matches!(copy_out(rfd.as_raw_fd(), "/nope", back.to_str().unwrap(), "c", &o), Err(e) if e.to_string().contains("Could not find the file /nope"))
        );
    }
}
