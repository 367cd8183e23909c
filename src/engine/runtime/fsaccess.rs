//! A container's filesystem from outside the container: what `cp`, `export`, `commit` and `watch`
//! use, and what the Docker Engine API's archive, export and changes endpoints need. Paths in
//! the container, a tar of one (`GET /containers/{id}/archive`, `docker cp` out) or of the whole
//! filesystem (`export`), a tar extracted into it (`PUT .../archive`, `docker cp` in), its stat
//! (`HEAD .../archive`), its changes against the image (`diff`: A/C/D), and the layer `commit`
//! records.
//!
//! The container's filesystem is untrusted: a process in it can plant symlinks, such as
//! `/tmp/x -> /`, and swap them while a copy runs (CVE-2018-15664). So nothing in it is ever
//! reached by a host path. The container's root is a directory fd — `/proc/<pid>/root` of a
//! running container (its own mount namespace, volumes included), or for a stopped one its
//! overlay and volumes mounted in a private mount namespace of the calling thread — and every
//! path in it is resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
//! ([`file::open_in_root`]), so that symlinks resolve as if that fd were `/`. Below the resolved
//! entry, the walk and the writes are fd-relative with `O_NOFOLLOW`, holding the directory fds
//! they created: a symlink swapped in mid-copy is refused, never followed. The overlay upper
//! directory (changes) is walked the same way.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::spec::ContainerConfig;
use super::state::{ContainerState, Paths, Status};
use super::{RuntimeError, launch, ops};
use crate::engine::image::{ImageError, ImageStore, Layer};
use crate::state::StateRoot;
use crate::util::lock::{FileLock, LockError};
use crate::util::sys::file::{self, kind};
use crate::util::sys::mount;

#[derive(Debug, thiserror::Error)]
pub enum FsAccessError {
    #[error("Could not find the file {path} in container {container}")]
    NotFound { container: String, path: String },
    /// A copy `docker cp` refuses too; the message says what to do.
    #[error("{0}")]
    Refused(String),
    #[error("the tar entry {} leaves the destination", .0.display())]
    Escapes(PathBuf),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("container {0} started meanwhile; run the copy again")]
    StartedMeanwhile(String),
    #[error(transparent)]
    Runtime(#[from] Box<RuntimeError>),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Image(#[from] ImageError),
}

impl FsAccessError {
    /// Whether the copy failed on a read-only file system (EROFS) somewhere in the container.
    pub fn is_read_only_fs(&self) -> bool {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cur {
            if e.downcast_ref::<io::Error>().is_some_and(|io| io.raw_os_error() == Some(libc::EROFS)) {
                return true;
            }
            cur = e.source();
        }
        false
    }
}

impl From<RuntimeError> for FsAccessError {
    fn from(e: RuntimeError) -> Self {
        FsAccessError::Runtime(Box::new(e))
    }
}

pub type Result<T, E = FsAccessError> = std::result::Result<T, E>;

/// An io error with what was being done.
fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> FsAccessError {
    let what = what.into();
    move |source| FsAccessError::Io { what, source }
}

/// openat(2) of one name, never following a symlink there.
fn openat(dir: RawFd, name: &OsStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    file::openat(dir, name, flags | libc::O_NOFOLLOW, mode)
}

/// How a copy treats links and owners (`docker cp -L`, `-a`).
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions {
    /// Follow a symlink named as the source (never one below it).
    pub follow_link: bool,
    /// Keep the source's owners (otherwise files written into the container belong to its root).
    pub archive: bool,
}

/// Where a copy out of the container goes.
pub enum CopyDest<'a> {
    /// A host path, with `docker cp`'s rules for where things land.
    Host(&'a Path),
    /// A tar stream (`docker cp CONTAINER:PATH -`, the archive API), entries named below the
    /// source's base name (or `.` for a `/.` source).
    Tar(&'a mut dyn Write),
}

/// What a copy into the container takes.
pub enum CopySource<'a> {
    /// A host path (a trailing `/.` copies a folder's contents).
    Host(&'a Path),
    /// A tar stream, extracted into the destination directory.
    Tar(&'a mut dyn Read),
}

/// What a copy in passed over (tar entries of types that are not copied), for the caller to say.
#[derive(Debug, Default)]
pub struct Copied {
    pub skipped: Vec<String>,
}

/// A path in the container, as `HEAD /containers/{id}/archive` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    pub name: String,
    pub size: u64,
    /// st_mode: kind and permission bits.
    pub mode: u32,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// The target, when the path is a symlink.
    pub link_target: Option<String>,
}

/// How a path differs from the image (`docker diff`, `GET /containers/{id}/changes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// `C` (kind 0 in the API).
    Modified,
    /// `A` (1).
    Added,
    /// `D` (2).
    Deleted,
}

impl ChangeKind {
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Modified => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
}

// ---------------------------------------------------------------------------------------------
// The container's root.

thread_local! {
    /// Whether this thread has its private mount namespace yet (see [`ContainerFs::open`]).
    static PRIVATE_NS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Moves the calling thread (once) into a mount namespace of its own, private, so that what is
/// mounted to reach a stopped container never propagates to the host.
fn enter_private_namespace() -> Result<()> {
    if PRIVATE_NS.get() {
        return Ok(());
    }
    mount::unshare_private_namespace().map_err(io_err("cannot create a private mount namespace"))?;
    PRIVATE_NS.set(true);
    Ok(())
}

/// The filesystem of one container, open for access: a directory fd on its `/`. For a stopped
/// container, its layers and volumes are mounted in the calling thread's private mount
/// namespace, and its container lock is held (it cannot start meanwhile) until this is dropped,
/// which unmounts them.
pub struct ContainerFs {
    root: OwnedFd,
    name: String,
    /// The rootfs mount point this mounted (stopped containers).
    mounted: Option<PathBuf>,
    _lock: Option<FileLock>,
}

impl Drop for ContainerFs {
    fn drop(&mut self) {
        if let Some(p) = &self.mounted {
            // Unmounted before the lock goes, so that the container never starts on our overlay.
            let _ = mount::detach(p);
        }
    }
}

impl ContainerFs {
    /// Opens the filesystem of the container `cfg`, whose state is `st`.
    pub fn open(root: &StateRoot, cfg: &ContainerConfig, st: &ContainerState) -> Result<ContainerFs> {
        if let Some(init) = st.init.filter(|_| matches!(st.status, Status::Running | Status::Paused)) {
            // The /proc dir fd pins the process: checked against its start time once open, a
            // reused pid can no longer slip in, and `root` is then that process's root.
            if let Ok(d) = File::open(format!("/proc/{}", init.pid)) {
                if init.alive() {
                    let fd = file::openat(d.as_raw_fd(), OsStr::new("root"), libc::O_PATH | libc::O_DIRECTORY, 0)
                        .map_err(io_err("cannot open the container's root"))?;
                    return Ok(ContainerFs { root: fd, name: cfg.name.clone(), mounted: None, _lock: None });
                }
            }
        }
        // Stopped: its overlay (and the volumes and binds it mounts) in our private namespace.
        let lock = root.lock(&format!("c-{}", cfg.id))?;
        let st = ops::state_of(root, &cfg.id)?;
        if st.status.is_active() {
            return Err(FsAccessError::StartedMeanwhile(cfg.name.clone()));
        }
        enter_private_namespace()?;
        let paths = Paths::new(root, &cfg.id);
        let rootfs = paths.rootfs();
        let (cwd, opts) = launch::overlay_options(&cfg.rootfs.layers, &paths.diff(), &paths.work()).map_err(FsAccessError::Refused)?;
        let pairs: Vec<(&str, Option<&str>)> =
            opts.split(',').map(|kv| kv.split_once('=').map(|(k, v)| (k, Some(v))).unwrap_or((kv, None))).collect();
        // The layers are given relative to `cwd` (short options): the thread's own working
        // directory since the unshare, restored at once.
        let here = std::env::current_dir().ok();
        std::env::set_current_dir(&cwd).map_err(io_err(format!("cannot enter {}", cwd.display())))?;
        let mnt = mount::new_fs("overlay", "overlay", &pairs, 0);
        if let Some(h) = here {
            let _ = std::env::set_current_dir(h);
        }
        let mnt = mnt.map_err(io_err("cannot mount the container's layers"))?;
        let target = openat(libc::AT_FDCWD, rootfs.as_os_str(), libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(io_err(format!("cannot open {}", rootfs.display())))?;
        mount::attach(&mnt, target.as_raw_fd()).map_err(io_err("cannot mount the container's layers"))?;
        // From here on, dropping `fs` unmounts (before the lock goes), whatever fails next.
        let mut fs = ContainerFs { root: target, name: cfg.name.clone(), mounted: Some(rootfs.clone()), _lock: Some(lock) };
        // The fd opened before the mount shows the directory under it: open the overlay's root.
        fs.root = openat(libc::AT_FDCWD, rootfs.as_os_str(), libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(io_err(format!("cannot open {}", rootfs.display())))?;
        for pm in launch::plan_mounts(root, cfg)? {
            let super::init::PlannedKind::Bind { source } = &pm.kind else { continue };
            // A mount point the container has not created yet holds nothing to copy.
            let Ok(t) = file::open_in_root(fs.root.as_raw_fd(), &pm.target, libc::O_PATH) else { continue };
            let Ok(src) = openat(libc::AT_FDCWD, source.as_os_str(), libc::O_PATH, 0) else { continue };
            let bm = mount::clone_tree(src.as_raw_fd(), true).map_err(io_err(format!("cannot mount {}", source.display())))?;
            if pm.read_only {
                mount::set_attr(bm.as_raw_fd(), mount::ATTR_RDONLY, 0, 0, true)
                    .map_err(io_err(format!("cannot make {} read-only", pm.target)))?;
            }
            mount::attach(&bm, t.as_raw_fd()).map_err(io_err(format!("cannot mount {} on {}", source.display(), pm.target)))?;
        }
        // And once more, with the binds in place.
        fs.root = openat(libc::AT_FDCWD, rootfs.as_os_str(), libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(io_err(format!("cannot open {}", rootfs.display())))?;
        Ok(fs)
    }

    /// A tree given by its root directory fd, named `name` in messages (tests, and any tree that
    /// must be treated as a container's).
    pub fn at(root: OwnedFd, name: &str) -> ContainerFs {
        ContainerFs { root, name: name.to_string(), mounted: None, _lock: None }
    }

    fn croot(&self) -> RawFd {
        self.root.as_raw_fd()
    }

    /// Describes `path` (a symlink itself, unless `follow_link`).
    pub fn stat(&self, path: &str, follow_link: bool) -> Result<PathStat> {
        let fd = self.resolve(path, follow_link)?;
        let st = file::fstat(fd.as_raw_fd()).map_err(io_err(format!("cannot read {path} in container {}", self.name)))?;
        let link_target = (kind(st.st_mode) == libc::S_IFLNK)
            .then(|| file::readlink_at(fd.as_raw_fd(), OsStr::new("")).map(|t| t.to_string_lossy().into_owned()))
            .transpose()
            .map_err(io_err(format!("cannot read {path} in container {}", self.name)))?;
        Ok(PathStat {
            name: base_name(path).to_string_lossy().into_owned(),
            size: st.st_size as u64,
            mode: st.st_mode,
            mtime: st.st_mtime,
            link_target,
        })
    }

    /// An O_PATH fd of `path` in the container.
    fn resolve(&self, path: &str, follow_link: bool) -> Result<OwnedFd> {
        let flags = libc::O_PATH | if follow_link { 0 } else { libc::O_NOFOLLOW };
        match file::open_in_root(self.croot(), path, flags) {
            Ok(fd) => Ok(fd),
            Err(e) if not_found(&e) => Err(FsAccessError::NotFound { container: self.name.clone(), path: path.to_string() }),
            Err(e) => Err(io_err(format!("cannot open {path} in container {}", self.name))(e)),
        }
    }

    /// Copies `src` (a path in the container) out to `dst`, as `docker cp CONTAINER:SRC DST`.
    pub fn copy_out(&self, src: &str, dst: CopyDest, o: &CopyOptions) -> Result<()> {
        let fd = self.resolve(src, o.follow_link)?;
        let st = file::fstat(fd.as_raw_fd()).map_err(io_err(format!("cannot read {src} in container {}", self.name)))?;
        let is_dir = kind(st.st_mode) == libc::S_IFDIR;
        let contents = is_dir && contents_only(src);
        let dpath = match dst {
            CopyDest::Tar(w) => {
                let root = if contents { PathBuf::from(".") } else { PathBuf::from(base_name(src)) };
                let mut sink = TarSink { b: tar::Builder::new(w), root };
                sink.b.follow_symlinks(false);
                walk_container_root(fd, &mut sink, false)?;
                sink.b.into_inner().and_then(|w| w.flush()).map_err(io_err("cannot write the tar stream"))?;
                return Ok(());
            }
            CopyDest::Host(p) => p,
        };
        let dst = dpath.to_string_lossy();
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
                    return Err(FsAccessError::Refused(format!("cannot copy a directory to a file: {dst} is a file")));
                }
                HostSink { target: dpath.to_path_buf(), into_existing: false, chown }
            }
            None => {
                if dst.ends_with('/') && !is_dir {
                    return Err(FsAccessError::Refused(format!("destination directory {dst} must exist")));
                }
                let parent = dpath.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                if !parent.is_dir() {
                    return Err(FsAccessError::Refused(format!(
                        "the parent of {dst} is not a directory: create {} first",
                        parent.display()
                    )));
                }
                HostSink { target: dpath.to_path_buf(), into_existing: false, chown }
            }
        };
        walk_container_root(fd, &mut sink, children_only)
    }

    /// Copies `src` into the container at `dst`, as `docker cp SRC CONTAINER:DST`.
    pub fn copy_in(&self, src: CopySource, dst: &str, o: &CopyOptions) -> Result<Copied> {
        let name = &self.name;
        // The destination, resolved inside the container (its symlinks resolve within it).
        let dest = match file::open_in_root(self.croot(), dst, libc::O_PATH) {
            Ok(fd) => Some(fd),
            Err(e) if not_found(&e) => None,
            Err(e) => return Err(io_err(format!("cannot open {dst} in container {name}"))(e)),
        };
        let dest_dir = match &dest {
            Some(fd) => {
                kind(file::fstat(fd.as_raw_fd()).map_err(io_err(format!("cannot read {dst} in container {name}")))?.st_mode)
                    == libc::S_IFDIR
            }
            None => false,
        };
        let reopen_dir = |fd: &OwnedFd| {
            openat(fd.as_raw_fd(), OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)
                .map_err(io_err(format!("cannot open {dst} in container {name}")))
        };
        // The parent directory of `dst` and its last name, for a destination created or replaced.
        let parent_of = || -> Result<(OwnedFd, OsString)> {
            let trimmed = dst.trim_end_matches('/');
            let (dir, last) = match trimmed.rsplit_once('/') {
                Some((d, l)) => (if d.is_empty() { "/" } else { d }, l),
                None => ("/", trimmed),
            };
            if last.is_empty() || last == "." || last == ".." {
                return Err(FsAccessError::Refused(format!("invalid destination {dst:?}")));
            }
            let fd = file::open_in_root(self.croot(), dir, libc::O_RDONLY | libc::O_DIRECTORY).map_err(|e| {
                if not_found(&e) {
                    FsAccessError::Refused(format!("the parent directory of {dst} does not exist in container {name}"))
                } else {
                    io_err(format!("cannot open {dir} in container {name}"))(e)
                }
            })?;
            Ok((fd, OsString::from(last)))
        };
        let sink_into = |fd: &OwnedFd| -> Result<ContainerSink> {
            Ok(ContainerSink { parent: None, root_dir: Some(reopen_dir(fd)?), open: Vec::new(), archive: o.archive })
        };
        let spath = match src {
            CopySource::Tar(input) => {
                let Some(fd) = dest.as_ref().filter(|_| dest_dir) else {
                    return Err(FsAccessError::Refused(format!(
                        "destination {dst:?} must be a directory in container {name} when copying from stdin"
                    )));
                };
                let mut sink = sink_into(fd)?;
                return walk_tar(input, &mut sink);
            }
            CopySource::Host(p) => p,
        };
        let s = spath.to_string_lossy();
        let md = if o.follow_link { std::fs::metadata(spath) } else { std::fs::symlink_metadata(spath) };
        let md = md.map_err(|_| FsAccessError::Refused(format!("no such file or directory: {s}")))?;
        let is_dir = md.is_dir();
        let contents = is_dir && contents_only(&s);
        let children_only = contents && dest_dir;
        let mut sink = match (&dest, dest_dir) {
            (Some(fd), true) if contents => sink_into(fd)?,
            (Some(fd), true) => {
                ContainerSink { parent: Some((reopen_dir(fd)?, base_name(&s))), root_dir: None, open: Vec::new(), archive: o.archive }
            }
            (Some(_), false) => {
                if is_dir {
                    return Err(FsAccessError::Refused(format!("cannot copy a directory to a file: {dst} is a file in container {name}")));
                }
                ContainerSink { parent: Some(parent_of()?), root_dir: None, open: Vec::new(), archive: o.archive }
            }
            (None, _) => {
                if dst.ends_with('/') && !is_dir {
                    return Err(FsAccessError::Refused(format!("destination directory {dst} must exist in container {name}")));
                }
                ContainerSink { parent: Some(parent_of()?), root_dir: None, open: Vec::new(), archive: o.archive }
            }
        };
        walk_host(spath, &mut Vec::new(), &mut sink, o.follow_link, children_only)?;
        Ok(Copied::default())
    }

    /// Copies the host file or folder `src` to `dst` in the container (`watch`'s sync): a folder's
    /// contents go into `dst`, created or merged; `dst`'s parent must exist.
    pub fn sync_in(&self, src: &Path, dst: &str) -> Result<()> {
        let mut s = src.as_os_str().to_os_string();
        if src.is_dir() {
            s.push("/.");
        }
        self.copy_in(CopySource::Host(Path::new(&s)), dst, &CopyOptions::default()).map(drop)
    }
}

/// Why `dst` cannot be written in the container `cfg`, in docker's words with what to do: under a
/// read-only mount (the deepest mount holding it decides), or on a read-only rootfs. As docker,
/// a copy in is refused for it before anything is copied.
pub fn read_only_reason(cfg: &ContainerConfig, dst: &str) -> Option<String> {
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

// ---------------------------------------------------------------------------------------------
// The whole filesystem, its changes, and its layer.

/// Writes the filesystem of container `cfg` as a tar to `out` (`docker export`): its image layers
/// under its own changes, mounted read-only and detached (nothing appears in any mount table),
/// walked without following links. No volumes, no /proc contents.
pub fn export<W: Write>(root: &StateRoot, cfg: &ContainerConfig, out: W) -> Result<W> {
    let paths = Paths::new(root, &cfg.id);
    let mut lowers: Vec<PathBuf> = cfg.rootfs.layers.clone();
    lowers.push(paths.diff());
    // Each layer by an fd of ours (`/proc/self/fd/N`): short, whatever the state root's depth,
    // and no ':' or ',' to escape. The top first, as overlay lists lower layers.
    let mut fds = Vec::new();
    for p in lowers.iter().rev() {
        // The image's layers are short links into the store: followed here.
        let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_PATH | libc::O_DIRECTORY).open(p);
        fds.push(f.map_err(io_err(format!("cannot open the layer {}", p.display())))?);
    }
    let names: Vec<String> = fds.iter().map(|f| format!("/proc/self/fd/{}", f.as_raw_fd())).collect();
    let joined = names.join(":");
    let mut opts: Vec<(&str, Option<&str>)> = vec![("index", Some("off")), ("redirect_dir", Some("off"))];
    // A string option holds 256 bytes; more layers are given one by one (Linux 6.8+).
    if joined.len() < 256 {
        opts.push(("lowerdir", Some(joined.as_str())));
    } else {
        opts.extend(names.iter().map(|n| ("lowerdir+", Some(n.as_str()))));
    }
    let mnt =
        mount::new_fs("overlay", "overlay", &opts, mount::ATTR_RDONLY).map_err(io_err("cannot mount the container's layers read-only"))?;
    drop(fds);
    let fd = openat(mnt.as_raw_fd(), OsStr::new("."), libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(io_err("cannot open the container's layers"))?;
    let mut sink = TarSink { b: tar::Builder::new(out), root: PathBuf::new() };
    sink.b.follow_symlinks(false);
    walk_container_root(fd, &mut sink, true)?;
    sink.b.into_inner().map_err(io_err("cannot write the tar stream"))
}

/// Writes the export (see [`export`]) to the file `path`, beside it first, so that a failed export
/// leaves no partial file.
pub fn export_to_file(root: &StateRoot, cfg: &ContainerConfig, path: &Path) -> Result<()> {
    let name = path.file_name().ok_or_else(|| FsAccessError::Refused(format!("{} is not a file name", path.display())))?;
    let tmp = path.with_file_name(format!(".{}.berth-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let f = File::create(&tmp).map_err(io_err(format!("cannot create {}", tmp.display())))?;
        let w = export(root, cfg, io::BufWriter::with_capacity(1 << 20, f))?;
        let f = w.into_inner().map_err(|e| io_err(format!("cannot write {}", tmp.display()))(e.into_error()))?;
        f.sync_all().map_err(io_err(format!("cannot write {}", tmp.display())))?;
        std::fs::rename(&tmp, path).map_err(io_err(format!("cannot write {}", path.display())))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// How the filesystem of container `cfg` differs from its image, as `docker diff` lists it
/// (sorted by path; a directory holding a change is itself changed).
pub fn changes(root: &StateRoot, cfg: &ContainerConfig) -> Result<Vec<Change>> {
    let upper = Paths::new(root, &cfg.id).diff();
    let open = |p: &Path| file::open(p, libc::O_RDONLY | libc::O_DIRECTORY).map_err(io_err(format!("cannot open {}", p.display())));
    let upper_fd = open(&upper)?;
    // The image's layers are short links into the store: followed here.
    let lowers = cfg.rootfs.layers.iter().map(|l| open(l)).collect::<Result<Vec<_>>>()?;
    let mut out = Vec::new();
    let mut changed_dirs = std::collections::BTreeSet::new();
    changes_walk(&upper_fd, "", &lowers, &mut out, &mut changed_dirs)?;
    Ok(out)
}

fn changes_walk(
    dir: &OwnedFd,
    rel: &str,
    lowers: &[OwnedFd],
    out: &mut Vec<Change>,
    changed_dirs: &mut std::collections::BTreeSet<String>,
) -> Result<()> {
    let what = |p: &str| format!("cannot read {} in the container's changes", if p.is_empty() { "/" } else { p });
    for name in file::list_dir(dir.as_raw_fd()).map_err(io_err(what(rel)))? {
        let Some(st) = file::lstat_at(dir.as_raw_fd(), &name).map_err(io_err(what(rel)))? else { continue };
        let path = format!("{rel}/{}", name.to_string_lossy());
        let is_dir = kind(st.st_mode) == libc::S_IFDIR;
        let sub = if is_dir {
            Some(openat(dir.as_raw_fd(), &name, libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(io_err(what(&path)))?)
        } else {
            None
        };
        // overlay's whiteouts: a 0/0 character device, or an opaque directory (as Docker counts them).
        let whiteout = kind(st.st_mode) == libc::S_IFCHR && st.st_rdev == 0;
        let opaque = sub.as_ref().is_some_and(|d| file::fgetxattr(d.as_raw_fd(), c"trusted.overlay.opaque", 4).as_deref() == Some(b"y"));
        let kind_of = if whiteout || opaque {
            Some(ChangeKind::Deleted)
        } else {
            // In an image layer (resolved inside it): a change, unless the same directory.
            let below = lowers.iter().find_map(|l| {
                let fd = file::open_in_root(l.as_raw_fd(), &path, libc::O_PATH | libc::O_NOFOLLOW).ok()?;
                file::fstat(fd.as_raw_fd()).ok()
            });
            match below {
                None => Some(ChangeKind::Added),
                Some(b)
                    if is_dir
                        && kind(b.st_mode) == libc::S_IFDIR
                        && b.st_size == st.st_size
                        && b.st_mode == st.st_mode
                        && (b.st_mtime, b.st_mtime_nsec) == (st.st_mtime, st.st_mtime_nsec) =>
                {
                    None
                }
                Some(_) => Some(ChangeKind::Modified),
            }
        };
        if let Some(k) = kind_of {
            if is_dir {
                changed_dirs.insert(path.clone());
            }
            if matches!(k, ChangeKind::Added | ChangeKind::Deleted) && !rel.is_empty() && changed_dirs.insert(rel.to_string()) {
                out.push(Change { path: rel.to_string(), kind: ChangeKind::Modified });
            }
            out.push(Change { path: path.clone(), kind: k });
        }
        if let Some(d) = sub {
            changes_walk(&d, &path, lowers, out, changed_dirs)?;
        }
    }
    Ok(())
}

/// Records the changes of container `cfg` (its overlay upper directory, as a layer tar with
/// whiteouts) as a new layer over `parent` in `store` (`commit`). With `pause`, a running
/// container is paused while its changes are read, as Docker does; the error of a failed unpause
/// comes back beside the layer (the container then stays paused).
pub fn commit_layer(
    root: &StateRoot,
    store: &ImageStore,
    cfg: &ContainerConfig,
    status: Status,
    parent: Option<&crate::engine::image::Digest>,
    pause: bool,
) -> Result<(Layer, Option<RuntimeError>)> {
    let paused = pause && status == Status::Running && ops::pause(root, &cfg.id).is_ok();
    let layer = store.commit_layer(parent, &Paths::new(root, &cfg.id).diff());
    let unpaused = if paused { ops::unpause(root, &cfg.id).err() } else { None };
    Ok((layer?, unpaused))
}

// ---------------------------------------------------------------------------------------------
// Walks: a source hands entries to a sink.

/// What is kept of an entry's metadata.
#[derive(Debug, Clone, Copy, Default)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
}

impl Meta {
    fn of(st: &libc::stat) -> Meta {
        Meta { mode: st.st_mode & 0o7777, uid: st.st_uid, gid: st.st_gid, mtime: (st.st_mtime, st.st_mtime_nsec) }
    }
}

/// Where a copy's entries go. `rel` is the entry's path below the copied root (empty: the root).
trait Sink {
    fn dir(&mut self, rel: &[OsString], m: &Meta) -> Result<()>;
    fn file(&mut self, rel: &[OsString], m: &Meta, size: u64, data: &mut dyn Read) -> Result<()>;
    fn symlink(&mut self, rel: &[OsString], m: &Meta, target: &OsStr) -> Result<()>;
    /// After a directory's children: its times and ownership.
    fn end_dir(&mut self, rel: &[OsString], m: &Meta) -> Result<()>;
}

fn show(rel: &[OsString]) -> String {
    rel.iter().map(|c| c.to_string_lossy().into_owned()).collect::<Vec<_>>().join("/")
}

fn show_or_root(rel: &[OsString], name: &OsStr) -> String {
    if rel.is_empty() { name.to_string_lossy().into_owned() } else { show(rel) }
}

/// Walks the entry `fd` (an O_PATH fd from the resolution) of the container.
fn walk_container_root(fd: OwnedFd, sink: &mut dyn Sink, children_only: bool) -> Result<()> {
    let st = file::fstat(fd.as_raw_fd()).map_err(io_err("cannot read the source"))?;
    let m = Meta::of(&st);
    match kind(st.st_mode) {
        libc::S_IFDIR => {
            let dir =
                openat(fd.as_raw_fd(), OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(io_err("cannot open the source"))?;
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
            let f =
                std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&p).map_err(io_err("cannot open the source"))?;
            if kind(file::fstat(f.as_raw_fd()).map_err(io_err("cannot read the source"))?.st_mode) != libc::S_IFREG {
                return Err(FsAccessError::Refused("the source changed while it was opened".into()));
            }
            sink.file(&[], &m, st.st_size as u64, &mut &f)?;
        }
        libc::S_IFLNK => {
            let target = file::readlink_at(fd.as_raw_fd(), OsStr::new("")).map_err(io_err("cannot read the source"))?;
            sink.symlink(&[], &m, &target)?;
        }
        _ => return Err(FsAccessError::Refused("only regular files, directories and symbolic links can be copied".into())),
    }
    Ok(())
}

fn walk_container_dir(dir: &OwnedFd, rel: &mut Vec<OsString>, sink: &mut dyn Sink) -> Result<()> {
    let shown = if rel.is_empty() { "/".to_string() } else { show(rel) };
    for name in file::list_dir(dir.as_raw_fd()).map_err(io_err(format!("cannot read {shown}")))? {
        let Some(st) = file::lstat_at(dir.as_raw_fd(), &name).map_err(io_err(format!("cannot read {}", name.to_string_lossy())))? else {
            continue;
        };
        let m = Meta::of(&st);
        rel.push(name.clone());
        match kind(st.st_mode) {
            libc::S_IFDIR => {
                // O_NOFOLLOW: a directory swapped for a symlink since the lstat fails here.
                let sub = openat(dir.as_raw_fd(), &name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .map_err(io_err(format!("cannot open {}", show(rel))))?;
                sink.dir(rel, &m)?;
                walk_container_dir(&sub, rel, sink)?;
                sink.end_dir(rel, &m)?;
            }
            libc::S_IFREG => {
                let f = openat(dir.as_raw_fd(), &name, libc::O_RDONLY | libc::O_NONBLOCK, 0)
                    .map_err(io_err(format!("cannot open {}", show(rel))))?;
                let st = file::fstat(f.as_raw_fd()).map_err(io_err(format!("cannot read {}", show(rel))))?;
                if kind(st.st_mode) == libc::S_IFREG {
                    sink.file(rel, &Meta::of(&st), st.st_size as u64, &mut File::from(f))?;
                }
            }
            libc::S_IFLNK => {
                let target = file::readlink_at(dir.as_raw_fd(), &name).map_err(io_err(format!("cannot read {}", show(rel))))?;
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
fn walk_host(path: &Path, rel: &mut Vec<OsString>, sink: &mut dyn Sink, follow: bool, children_only: bool) -> Result<()> {
    let md = if follow { std::fs::metadata(path) } else { std::fs::symlink_metadata(path) }
        .map_err(io_err(format!("cannot read {}", path.display())))?;
    let m = Meta { mode: md.mode() & 0o7777, uid: md.uid(), gid: md.gid(), mtime: (md.mtime(), md.mtime_nsec()) };
    let ft = md.file_type();
    if ft.is_dir() {
        if !children_only {
            sink.dir(rel, &m)?;
        }
        let mut names: Vec<OsString> =
            std::fs::read_dir(path).map_err(io_err(format!("cannot read {}", path.display())))?.flatten().map(|e| e.file_name()).collect();
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
            .map_err(io_err(format!("cannot open {}", path.display())))?;
        sink.file(rel, &m, md.len(), &mut &f)?;
    } else if ft.is_symlink() {
        let t = std::fs::read_link(path).map_err(io_err(format!("cannot read {}", path.display())))?;
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
fn walk_tar(input: &mut dyn Read, sink: &mut dyn Sink) -> Result<Copied> {
    let mut copied = Copied::default();
    let mut ar = tar::Archive::new(input);
    let mut dirs: Vec<(Vec<OsString>, Meta)> = Vec::new();
    for e in ar.entries().map_err(io_err("cannot read the tar stream"))? {
        let mut e = e.map_err(io_err("cannot read the tar stream"))?;
        let path = e.path().map_err(io_err("a tar entry has an invalid path"))?.into_owned();
        let Some(rel) = tar_components(&path) else {
            return Err(FsAccessError::Escapes(path));
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
                let t = e.link_name().map_err(io_err("a tar entry has an invalid link"))?.map(|l| l.into_owned()).unwrap_or_default();
                sink.symlink(&rel, &m, t.as_os_str())?;
            }
            other => copied.skipped.push(format!("{} (tar entries of type {other:?} are not copied)", path.display())),
        }
    }
    for (rel, m) in dirs.iter().rev() {
        sink.end_dir(rel, m)?;
    }
    Ok(copied)
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
    fn place(&mut self, rel: &[OsString]) -> Result<(RawFd, OsString)> {
        let Some((last, dirs)) = rel.split_last() else {
            let (fd, name) = self.parent.as_ref().ok_or_else(|| FsAccessError::Refused("the destination already exists".into()))?;
            return Ok((fd.as_raw_fd(), name.clone()));
        };
        let root = self.root_dir.as_ref().ok_or_else(|| FsAccessError::Refused("the destination directory is missing".into()))?.as_raw_fd();
        let keep = self.open.iter().zip(dirs).take_while(|((n, _), d)| n == *d).count();
        self.open.truncate(keep);
        for d in &dirs[keep..] {
            let at = self.open.last().map(|(_, f)| f.as_raw_fd()).unwrap_or(root);
            let fd = match openat(at, d, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    file::mkdir_at(at, d, 0o755).map_err(io_err(format!("cannot create {}", d.to_string_lossy())))?;
                    openat(at, d, libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(io_err(format!("cannot open {}", d.to_string_lossy())))?
                }
                Err(e) => {
                    return Err(io_err(format!(
                        "{} is not a directory in the container (a symbolic link is never followed)",
                        d.to_string_lossy()
                    ))(e));
                }
            };
            self.open.push((d.clone(), fd));
        }
        let at = self.open.last().map(|(_, f)| f.as_raw_fd()).unwrap_or(root);
        Ok((at, last.clone()))
    }

    /// Removes what is in the way of a new non-directory entry (never a directory).
    fn clear(at: RawFd, name: &OsStr, rel: &[OsString]) -> Result<()> {
        let shown = || show_or_root(rel, name);
        if let Some(st) = file::lstat_at(at, name).map_err(io_err(format!("cannot read {}", shown())))? {
            if kind(st.st_mode) == libc::S_IFDIR {
                return Err(FsAccessError::Refused(format!("cannot overwrite directory {} with a non-directory", shown())));
            }
            file::unlink_at(at, name, 0).map_err(io_err(format!("cannot replace {}", shown())))?;
        }
        Ok(())
    }

    fn owner(&self, m: &Meta) -> (u32, u32) {
        if self.archive { (m.uid, m.gid) } else { (0, 0) }
    }
}

impl Sink for ContainerSink {
    fn dir(&mut self, rel: &[OsString], m: &Meta) -> Result<()> {
        if rel.is_empty() && self.root_dir.is_some() {
            return Ok(());
        }
        let (at, name) = self.place(rel)?;
        let shown = show_or_root(rel, &name);
        match file::lstat_at(at, &name).map_err(io_err(format!("cannot read {shown}")))? {
            Some(st) if kind(st.st_mode) == libc::S_IFDIR => {}
            Some(_) => {
                file::unlink_at(at, &name, 0).map_err(io_err(format!("cannot replace {shown}")))?;
                file::mkdir_at(at, &name, 0o700).map_err(io_err(format!("cannot create {shown}")))?;
            }
            None => file::mkdir_at(at, &name, 0o700).map_err(io_err(format!("cannot create {shown}")))?,
        }
        let fd = openat(at, &name, libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(io_err(format!("cannot open {shown}")))?;
        let (uid, gid) = self.owner(m);
        file::fchown(fd.as_raw_fd(), uid, gid).map_err(io_err(format!("cannot set the owner of {shown}")))?;
        file::fchmod(fd.as_raw_fd(), m.mode).map_err(io_err(format!("cannot set the mode of {shown}")))?;
        if rel.is_empty() {
            self.root_dir = Some(fd);
        } else {
            self.open.push((name, fd));
        }
        Ok(())
    }

    fn file(&mut self, rel: &[OsString], m: &Meta, _size: u64, data: &mut dyn Read) -> Result<()> {
        let (at, name) = self.place(rel)?;
        let shown = show_or_root(rel, &name);
        Self::clear(at, &name, rel)?;
        let fd =
            openat(at, &name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600).map_err(io_err(format!("cannot create {shown}")))?;
        let mut f = File::from(fd);
        io::copy(data, &mut f).map_err(io_err(format!("cannot write {shown}")))?;
        let (uid, gid) = self.owner(m);
        file::fchown(f.as_raw_fd(), uid, gid).map_err(io_err(format!("cannot set the owner of {shown}")))?;
        file::fchmod(f.as_raw_fd(), m.mode).map_err(io_err(format!("cannot set the mode of {shown}")))?;
        file::futimens(f.as_raw_fd(), m.mtime).map_err(io_err(format!("cannot set the times of {shown}")))?;
        Ok(())
    }

    fn symlink(&mut self, rel: &[OsString], m: &Meta, target: &OsStr) -> Result<()> {
        let (at, name) = self.place(rel)?;
        let shown = show_or_root(rel, &name);
        Self::clear(at, &name, rel)?;
        file::symlink_at(target, at, &name).map_err(io_err(format!("cannot create {shown}")))?;
        let (uid, gid) = self.owner(m);
        file::fchown_at(at, &name, uid, gid, libc::AT_SYMLINK_NOFOLLOW).map_err(io_err(format!("cannot set the owner of {shown}")))?;
        file::utimens_at(at, &name, m.mtime, libc::AT_SYMLINK_NOFOLLOW).map_err(io_err(format!("cannot set the times of {shown}")))?;
        Ok(())
    }

    fn end_dir(&mut self, rel: &[OsString], m: &Meta) -> Result<()> {
        // open[k] is the directory of rel[k] along the current path.
        let fd = if rel.is_empty() {
            self.root_dir.as_ref().map(|f| f.as_raw_fd())
        } else {
            self.open.get(rel.len() - 1).filter(|(n, _)| Some(n) == rel.last()).map(|(_, f)| f.as_raw_fd())
        };
        if let Some(fd) = fd {
            file::futimens(fd, m.mtime).map_err(io_err(format!("cannot set the times of {}", show_or_root(rel, OsStr::new(".")))))?;
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
    fn clear(p: &Path) -> Result<()> {
        match std::fs::symlink_metadata(p) {
            Ok(md) if md.is_dir() => {
                Err(FsAccessError::Refused(format!("cannot overwrite directory {} with a non-directory", p.display())))
            }
            Ok(_) => std::fs::remove_file(p).map_err(io_err(format!("cannot replace {}", p.display()))),
            Err(_) => Ok(()),
        }
    }
    fn finish(&self, p: &Path, m: &Meta, link: bool) -> Result<()> {
        if self.chown {
            file::fchown_at(libc::AT_FDCWD, p.as_os_str(), m.uid, m.gid, libc::AT_SYMLINK_NOFOLLOW)
                .map_err(io_err(format!("cannot set the owner of {}", p.display())))?;
        }
        if !link {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m.mode))
                .map_err(io_err(format!("cannot set the mode of {}", p.display())))?;
        }
        file::utimens_at(libc::AT_FDCWD, p.as_os_str(), m.mtime, libc::AT_SYMLINK_NOFOLLOW)
            .map_err(io_err(format!("cannot set the times of {}", p.display())))?;
        Ok(())
    }
}

impl Sink for HostSink {
    fn dir(&mut self, rel: &[OsString], _m: &Meta) -> Result<()> {
        if rel.is_empty() && self.into_existing {
            return Ok(());
        }
        let p = self.path(rel);
        match std::fs::symlink_metadata(&p) {
            Ok(md) if md.is_dir() => Ok(()),
            Ok(_) => {
                std::fs::remove_file(&p).map_err(io_err(format!("cannot replace {}", p.display())))?;
                std::fs::create_dir(&p).map_err(io_err(format!("cannot create {}", p.display())))
            }
            Err(_) => std::fs::create_dir(&p).map_err(io_err(format!("cannot create {}", p.display()))),
        }
    }

    fn file(&mut self, rel: &[OsString], m: &Meta, _size: u64, data: &mut dyn Read) -> Result<()> {
        let p = self.path(rel);
        Self::clear(&p)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)
            .map_err(io_err(format!("cannot create {}", p.display())))?;
        io::copy(data, &mut f).map_err(io_err(format!("cannot write {}", p.display())))?;
        drop(f);
        self.finish(&p, m, false)
    }

    fn symlink(&mut self, rel: &[OsString], m: &Meta, target: &OsStr) -> Result<()> {
        let p = self.path(rel);
        Self::clear(&p)?;
        std::os::unix::fs::symlink(target, &p).map_err(io_err(format!("cannot create {}", p.display())))?;
        self.finish(&p, m, true)
    }

    fn end_dir(&mut self, rel: &[OsString], m: &Meta) -> Result<()> {
        if rel.is_empty() && self.into_existing {
            return Ok(());
        }
        self.finish(&self.path(rel), m, false)
    }
}

/// Writes a tar stream, entries named below `root`.
struct TarSink<W: Write> {
    b: tar::Builder<W>,
    root: PathBuf,
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
    fn dir(&mut self, rel: &[OsString], m: &Meta) -> Result<()> {
        let mut h = self.header(m, tar::EntryType::Directory, 0);
        let name = self.name(rel);
        self.b.append_data(&mut h, &name, io::empty()).map_err(io_err("cannot write the tar stream"))
    }
    fn file(&mut self, rel: &[OsString], m: &Meta, size: u64, data: &mut dyn Read) -> Result<()> {
        let mut h = self.header(m, tar::EntryType::Regular, size);
        let name = self.name(rel);
        // The size was taken before reading: a file that changes meanwhile is cut or padded.
        let mut r = data.take(size).chain(io::repeat(0).take(size));
        self.b.append_data(&mut h, &name, (&mut r).take(size)).map_err(io_err("cannot write the tar stream"))
    }
    fn symlink(&mut self, rel: &[OsString], m: &Meta, target: &OsStr) -> Result<()> {
        let mut h = self.header(m, tar::EntryType::Symlink, 0);
        let name = self.name(rel);
        self.b.append_link(&mut h, &name, target).map_err(io_err("cannot write the tar stream"))
    }
    fn end_dir(&mut self, _rel: &[OsString], _m: &Meta) -> Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// docker cp's path rules.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deepest_mount_decides_whether_a_destination_is_read_only() {
        use crate::engine::runtime::spec::{ContainerConfig, Mount};
        let m = |target: &str, read_only: bool| Mount { target: target.into(), read_only, source: "/src".into(), ..Default::default() };
        let mut c = ContainerConfig { mounts: vec![m("/www", true), m("/www/upload", false)], ..Default::default() };
        assert!(read_only_reason(&c, "/www/").unwrap().contains("/www is mounted read-only from /src"));
        assert!(read_only_reason(&c, "/www/a/../b").is_some());
        assert!(read_only_reason(&c, "/www/upload/x").is_none());
        assert!(read_only_reason(&c, "/wwwx/").is_none());
        assert!(read_only_reason(&c, "/tmp").is_none());
        c.rootfs.read_only = true;
        assert!(read_only_reason(&c, "/tmp").unwrap().contains("container rootfs is marked read-only"));
        assert!(read_only_reason(&c, "/www/upload/").is_none());
    }

    #[test]
    fn tar_paths_never_climb_out() {
        assert_eq!(tar_components(Path::new("./a/b")).unwrap(), vec![OsString::from("a"), OsString::from("b")]);
        assert_eq!(tar_components(Path::new("/etc/x")).unwrap(), vec![OsString::from("etc"), OsString::from("x")]);
        assert!(tar_components(Path::new("a/../../x")).is_none());
    }

    fn tree_fs(croot: &Path) -> ContainerFs {
        ContainerFs::at(file::open(croot, libc::O_PATH | libc::O_DIRECTORY).unwrap(), "c")
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
        let fs = tree_fs(&croot);
        let o = CopyOptions::default();
        // Out through the symlink: the container's /etc/passwd, never the host's.
        let out = d.path().join("out.txt");
        fs.copy_out("/tmp/etc/passwd", CopyDest::Host(&out), &o).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "container passwd\n");
        // In through a symlink to /: lands in the container's root.
        let src = d.path().join("payload");
        std::fs::write(&src, "x").unwrap();
        fs.copy_in(CopySource::Host(&src), "/tmp/up/escaped", &o).unwrap();
        assert!(croot.join("escaped").exists());
        assert!(!Path::new("/escaped").exists());
        // A directory, into an existing directory, then its contents only.
        let tree = d.path().join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("sub/f"), "f").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", tree.join("link")).unwrap();
        fs.copy_in(CopySource::Host(&tree), "/tmp", &o).unwrap();
        assert_eq!(std::fs::read_to_string(croot.join("tmp/tree/sub/f")).unwrap(), "f");
        assert_eq!(std::fs::read_link(croot.join("tmp/tree/link")).unwrap(), Path::new("/etc/shadow"));
        fs.copy_in(CopySource::Host(&tree.join(".")), "/etc", &o).unwrap();
        assert!(croot.join("etc/sub/f").exists());
        // Copying the symlink out copies the link, not what it names on the host.
        let back = d.path().join("back");
        fs.copy_out("/tmp/tree", CopyDest::Host(&back), &o).unwrap();
        assert_eq!(std::fs::read_link(back.join("link")).unwrap(), Path::new("/etc/shadow"));
        assert!(
            matches!(fs.copy_out("/nope", CopyDest::Host(&back), &o), Err(e) if e.to_string().contains("Could not find the file /nope"))
        );
    }

    #[test]
    fn tar_streams_go_in_and_out_and_stat_describes_without_following() {
        let d = tempfile::tempdir().unwrap();
        let croot = d.path().join("root");
        std::fs::create_dir_all(croot.join("srv")).unwrap();
        std::fs::write(croot.join("srv/a.txt"), "hello").unwrap();
        std::os::unix::fs::symlink("/", croot.join("up")).unwrap();
        let fs = tree_fs(&croot);
        let mut tarball = Vec::new();
        fs.copy_out("/srv", CopyDest::Tar(&mut tarball), &CopyOptions::default()).unwrap();
        let names: Vec<String> =
            tar::Archive::new(&tarball[..]).entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
        assert_eq!(names, ["srv", "srv/a.txt"]);
        // Back in under /up (a link to /): inside the root again.
        std::fs::create_dir_all(croot.join("copy")).unwrap();
        fs.copy_in(CopySource::Tar(&mut &tarball[..]), "/up/copy", &CopyOptions::default()).unwrap();
        assert_eq!(std::fs::read_to_string(croot.join("copy/srv/a.txt")).unwrap(), "hello");
        let st = fs.stat("/srv/a.txt", false).unwrap();
        assert_eq!((st.name.as_str(), st.size, kind(st.mode)), ("a.txt", 5, libc::S_IFREG));
        let st = fs.stat("/up", false).unwrap();
        assert_eq!((kind(st.mode), st.link_target.as_deref()), (libc::S_IFLNK, Some("/")));
        assert!(matches!(fs.stat("/nope", false), Err(FsAccessError::NotFound { .. })));
    }

    #[test]
    fn changes_list_what_the_upper_directory_adds_changes_and_deletes() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: a whiteout is a 0/0 character device, which only root can make");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let root = StateRoot::new(d.path().join("state"));
        let lower = d.path().join("layer");
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::create_dir_all(lower.join("var")).unwrap();
        std::fs::create_dir_all(lower.join("usr")).unwrap();
        std::fs::write(lower.join("etc/hosts"), "x").unwrap();
        std::fs::write(lower.join("etc/gone"), "x").unwrap();
        let rootfs = super::super::spec::Rootfs { layers: vec![lower.clone()], read_only: false };
        let cfg = ContainerConfig { id: "c1".into(), rootfs, ..Default::default() };
        let upper = Paths::new(&root, &cfg.id).diff();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/hosts"), "y").unwrap();
        std::fs::write(upper.join("etc/new"), "y").unwrap();
        nix::sys::stat::mknod(&upper.join("etc/gone"), nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0).unwrap();
        std::fs::create_dir_all(upper.join("tmp/sub")).unwrap();
        // Directories copied up as they were (same mode, size and times) are no change, unless
        // something in them is added or deleted.
        for dir in ["var", "usr"] {
            std::fs::create_dir_all(upper.join(dir)).unwrap();
            let md = std::fs::metadata(lower.join(dir)).unwrap();
            std::fs::set_permissions(upper.join(dir), md.permissions()).unwrap();
            File::open(upper.join(dir)).unwrap().set_modified(md.modified().unwrap()).unwrap();
        }
        std::fs::write(upper.join("usr/new"), "y").unwrap();
        let usr = std::fs::metadata(lower.join("usr")).unwrap();
        File::open(upper.join("usr")).unwrap().set_modified(usr.modified().unwrap()).unwrap();
        let got: Vec<String> = changes(&root, &cfg).unwrap().iter().map(|c| format!("{} {}", c.kind.letter(), c.path)).collect();
        assert_eq!(got, ["C /etc", "D /etc/gone", "C /etc/hosts", "A /etc/new", "A /tmp", "A /tmp/sub", "C /usr", "A /usr/new"]);
    }
}
