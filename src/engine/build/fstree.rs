//! Read-only views of a file tree the builder copies from or into: the build context (one
//! directory) or an image's root file system (its unpacked layers, merged as overlayfs would
//! merge them: the upper layer wins, whiteouts hide, opaque directories hide what is below).
//!
//! Nothing here follows a symlink on the host. Every directory is opened with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` from the layer's root, every entry is
//! examined with `fstatat(AT_SYMLINK_NOFOLLOW)` and files are opened `O_NOFOLLOW`. Symlinks
//! inside the tree are resolved by [`Tree::resolve`] itself, scoped to the tree's root as a
//! chroot would; in the build context a link whose target lies outside the context is never
//! followed.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{FileStat, SFlag, fstat, fstatat};

/// The most symlinks one resolution follows (Linux's limit).
const MAX_LINKS: usize = 40;

/// A file in the tree: the layer it comes from and its metadata.
#[derive(Clone, Debug)]
pub struct Node {
    /// Index of the layer that provides it (bottom is 0).
    pub layer: usize,
    pub st: FileStat,
    /// For a directory: the layers whose copies of it are merged, top first.
    dirs: Vec<usize>,
}

impl Node {
    fn kind(&self) -> SFlag {
        SFlag::from_bits_truncate(self.st.st_mode & libc::S_IFMT)
    }
    pub fn is_dir(&self) -> bool {
        self.kind() == SFlag::S_IFDIR
    }
    pub fn is_file(&self) -> bool {
        self.kind() == SFlag::S_IFREG
    }
    pub fn is_symlink(&self) -> bool {
        self.kind() == SFlag::S_IFLNK
    }
    /// Permission bits with setuid, setgid and sticky.
    pub fn mode(&self) -> u32 {
        self.st.st_mode & 0o7777
    }
    pub fn uid(&self) -> u32 {
        self.st.st_uid
    }
    pub fn gid(&self) -> u32 {
        self.st.st_gid
    }
    pub fn mtime(&self) -> i64 {
        self.st.st_mtime
    }
    pub fn size(&self) -> u64 {
        self.st.st_size as u64
    }
}

fn is_whiteout(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

/// The result of resolving a path: where it really is in the tree, and what is there.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The path without symlinks, relative to the root (empty for the root).
    pub path: PathBuf,
    pub node: Option<Node>,
    /// The last component is a symlink that was not followed because it leads out of the
    /// build context.
    pub outside_link: bool,
}

/// Why a path could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{path} leads outside the build context (through the symlink {link}); the build context is never read outside its folder")]
    Escape { path: String, link: String },
    #[error("{path} is outside the build context; the build context is never read outside its folder")]
    Outside { path: String },
    #[error("too many levels of symbolic links resolving {0}")]
    Loop(String),
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A read-only, possibly layered, file tree.
pub struct Tree {
    /// Layer root directories, bottom first.
    layers: Vec<OwnedFd>,
    names: Vec<PathBuf>,
    /// The build context: one layer, no whiteouts, links never lead outside.
    context: bool,
}

impl Tree {
    /// The build context at `dir`.
    pub fn context(dir: &Path) -> io::Result<Tree> {
        let fd = nix::fcntl::open(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())?;
        Ok(Tree { layers: vec![fd], names: vec![dir.to_path_buf()], context: true })
    }

    /// The merged view of unpacked layer directories, bottom first. No layers is an empty tree
    /// (`FROM scratch`).
    pub fn layers(dirs: &[PathBuf]) -> io::Result<Tree> {
        let mut layers = Vec::with_capacity(dirs.len());
        for d in dirs {
            let fd = nix::fcntl::open(
                d.as_path(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("{}: {e}", d.display())))?;
            layers.push(fd);
        }
        Ok(Tree { layers, names: dirs.to_vec(), context: false })
    }

    pub fn is_context(&self) -> bool {
        self.context
    }

    /// The host path of layer `layer` (for messages).
    pub fn layer_path(&self, layer: usize) -> &Path {
        &self.names[layer]
    }

    fn how() -> OpenHow {
        OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS)
    }

    /// Opens directory `rel` of layer `layer`, never following a symlink.
    fn open_dir(&self, layer: usize, rel: &Path) -> io::Result<OwnedFd> {
        let p: &Path = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
        Ok(openat2(&self.layers[layer], p, Self::how())?)
    }

    /// The root directory.
    pub fn root(&self) -> io::Result<Option<Node>> {
        if self.layers.is_empty() {
            return Ok(None);
        }
        let top = self.layers.len() - 1;
        let st = fstat(&self.layers[top])?;
        Ok(Some(Node { layer: top, st, dirs: (0..self.layers.len()).rev().collect() }))
    }

    fn opaque(&self, dir: &OwnedFd, name: &OsStr) -> bool {
        if self.context {
            return false;
        }
        let Ok(fd) = nix::fcntl::openat(
            dir,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            nix::sys::stat::Mode::empty(),
        ) else {
            return false;
        };
        crate::util::sys::file::fgetxattr(fd.as_raw_fd(), c"trusted.overlay.opaque", 4).as_deref() == Some(b"y")
    }

    /// The directory fds of `parent` (at `parent_rel`) in each layer that holds it, top first.
    fn dir_fds(&self, parent_rel: &Path, parent: &Node) -> io::Result<Vec<(usize, OwnedFd)>> {
        let mut out = Vec::with_capacity(parent.dirs.len());
        for &l in &parent.dirs {
            match self.open_dir(l, parent_rel) {
                Ok(d) => out.push((l, d)),
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The entry `name` in the directory whose layer fds are `fds` (top first).
    fn child_in(&self, fds: &[(usize, OwnedFd)], name: &OsStr) -> io::Result<Option<Node>> {
        let mut found: Option<Node> = None;
        for (l, dir) in fds {
            let l = *l;
            let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            if !self.context && is_whiteout(&st) {
                break;
            }
            let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
            match &mut found {
                None if !is_dir => return Ok(Some(Node { layer: l, st, dirs: Vec::new() })),
                None => found = Some(Node { layer: l, st, dirs: vec![l] }),
                Some(f) if is_dir => f.dirs.push(l),
                Some(_) => break,
            }
            if self.opaque(dir, name) {
                break;
            }
        }
        Ok(found)
    }

    /// The entry `name` in directory `parent` (at `parent_rel`).
    pub fn child(&self, parent_rel: &Path, parent: &Node, name: &OsStr) -> io::Result<Option<Node>> {
        let fds = self.dir_fds(parent_rel, parent)?;
        self.child_in(&fds, name)
    }

    /// The entries of directory `rel` (whose node is `dir`), sorted by name.
    pub fn list(&self, rel: &Path, dir: &Node) -> io::Result<Vec<(OsString, Node)>> {
        let fds = self.dir_fds(rel, dir)?;
        let mut names: Vec<OsString> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (_, fd) in &fds {
            let dup = fd.try_clone()?;
            let mut d = nix::dir::Dir::from_fd(dup)?;
            for e in d.iter() {
                let e = e?;
                let n = e.file_name().to_bytes();
                if n == b"." || n == b".." {
                    continue;
                }
                let n = OsStr::from_bytes(n).to_os_string();
                if seen.insert(n.clone()) {
                    names.push(n);
                }
            }
        }
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            if let Some(node) = self.child_in(&fds, &n)? {
                out.push((n, node));
            }
        }
        Ok(out)
    }

    /// What is at `rel` (no symlink followed, none expected on the way).
    pub fn lookup(&self, rel: &Path) -> io::Result<Option<Node>> {
        let Some(mut node) = self.root()? else { return Ok(None) };
        let mut cur = PathBuf::new();
        for c in rel.components() {
            let Component::Normal(name) = c else { continue };
            if !node.is_dir() {
                return Ok(None);
            }
            match self.child(&cur, &node, name)? {
                Some(n) => node = n,
                None => return Ok(None),
            }
            cur.push(name);
        }
        Ok(Some(node))
    }

    /// Opens the regular file `rel` (as found by `node`).
    pub fn open_file(&self, rel: &Path, node: &Node) -> io::Result<File> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let dir = self.open_dir(node.layer, parent)?;
        let name = rel.file_name().ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        // Non-blocking, so that a file swapped for a fifo since it was examined cannot hang the
        // build; only a regular file is read.
        let fd = nix::fcntl::openat(
            &dir,
            name,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK,
            nix::sys::stat::Mode::empty(),
        )?;
        if fstat(&fd)?.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} is no longer a regular file", rel.display())));
        }
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()))?;
        Ok(File::from(fd))
    }

    /// The target of the symlink `rel`.
    pub fn read_link(&self, rel: &Path, node: &Node) -> io::Result<PathBuf> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let dir = self.open_dir(node.layer, parent)?;
        let name = rel.file_name().ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(PathBuf::from(nix::fcntl::readlinkat(dir.as_fd(), name)?))
    }

    /// Reads a whole regular file at `path` (resolved in the tree), `None` if it is not there.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        let r = self.resolve(path, true).ok()?;
        let node = r.node.filter(|n| n.is_file())?;
        let mut f = self.open_file(&r.path, &node).ok()?;
        let mut v = Vec::new();
        io::Read::read_to_end(&mut f, &mut v).ok()?;
        Some(v)
    }

    /// Resolves `path` (absolute or relative to the root) in the tree, following symlinks as a
    /// chroot would (absolute targets from the tree's root, `..` stopping at it). The last
    /// component is followed only with `follow_last`. A path that does not exist resolves as far
    /// as it can, the rest appended as written. In the build context, a path going above the
    /// root is refused, and so is a symlink on the way whose target lies outside the context;
    /// such a link in the last position is not followed (`outside_link`).
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<Resolved, ResolveError> {
        let io_err = |p: &Path, e: io::Error| ResolveError::Io { path: p.to_path_buf(), source: e };
        let mut todo: std::collections::VecDeque<OsString> = comps(Path::new(path)).into();
        let Some(root) = self.root().map_err(|e| io_err(Path::new("/"), e))? else {
            let mut p = PathBuf::new();
            for c in todo {
                if c != ".." {
                    p.push(c);
                }
            }
            return Ok(Resolved { path: p, node: None, outside_link: false });
        };
        let mut stack: Vec<(OsString, Node)> = Vec::new();
        let mut links = 0;
        let cur_path = |stack: &[(OsString, Node)]| -> PathBuf { stack.iter().map(|(n, _)| n.as_os_str()).collect() };
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                if stack.pop().is_none() && self.context {
                    return Err(ResolveError::Outside { path: path.to_string() });
                }
                continue;
            }
            let parent = stack.last().map(|(_, n)| n.clone()).unwrap_or_else(|| root.clone());
            let here = cur_path(&stack);
            let node = if parent.is_dir() { self.child(&here, &parent, &c).map_err(|e| io_err(&here.join(&c), e))? } else { None };
            let Some(node) = node else {
                let mut p = here.join(&c);
                for rest in todo {
                    if rest == ".." {
                        p.pop();
                    } else {
                        p.push(rest);
                    }
                }
                return Ok(Resolved { path: p, node: None, outside_link: false });
            };
            let last = todo.is_empty();
            if node.is_symlink() && (!last || follow_last) {
                links += 1;
                if links > MAX_LINKS {
                    return Err(ResolveError::Loop(path.to_string()));
                }
                let link_rel = here.join(&c);
                let target = self.read_link(&link_rel, &node).map_err(|e| io_err(&link_rel, e))?;
                if self.context && leaves(stack.len(), &target) {
                    if last {
                        return Ok(Resolved { path: link_rel, node: Some(node), outside_link: true });
                    }
                    return Err(ResolveError::Escape { path: path.to_string(), link: link_rel.display().to_string() });
                }
                if target.is_absolute() {
                    stack.clear();
                }
                for t in comps(&target).into_iter().rev() {
                    todo.push_front(t);
                }
                continue;
            }
            stack.push((c, node));
        }
        let node = match stack.last() {
            Some((_, n)) => n.clone(),
            None => root,
        };
        Ok(Resolved { path: cur_path(&stack), node: Some(node), outside_link: false })
    }
}

/// The normal components of `p`, with `..` kept as `..`.
fn comps(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// True when a symlink at depth `depth` (its parent's number of components) with `target`
/// points outside the tree: an absolute target, or more `..` than it has parents.
fn leaves(depth: usize, target: &Path) -> bool {
    if target.is_absolute() {
        return true;
    }
    let mut d = depth as isize;
    for c in target.components() {
        match c {
            Component::ParentDir => {
                d -= 1;
                if d < 0 {
                    return true;
                }
            }
            Component::Normal(_) => d += 1,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn layers_merge_as_overlay_does() {
        let t = tempfile::tempdir().unwrap();
        let (l0, l1) = (t.path().join("l0"), t.path().join("l1"));
        std::fs::create_dir_all(l0.join("etc/sub")).unwrap();
        std::fs::create_dir_all(l0.join("opq")).unwrap();
        std::fs::create_dir_all(l0.join("usr/bin")).unwrap();
        std::fs::write(l0.join("etc/a"), "a0").unwrap();
        std::fs::write(l0.join("etc/gone"), "x").unwrap();
        std::fs::write(l0.join("opq/hidden"), "x").unwrap();
        std::fs::write(l0.join("usr/bin/tool"), "t").unwrap();
        symlink("usr/bin", l0.join("bin")).unwrap();
        std::fs::create_dir_all(l1.join("etc")).unwrap();
        std::fs::create_dir_all(l1.join("opq")).unwrap();
        std::fs::write(l1.join("etc/a"), "a1").unwrap();
        std::fs::write(l1.join("opq/new"), "n").unwrap();
        nix::sys::stat::mknod(&l1.join("etc/gone"), SFlag::S_IFCHR, nix::sys::stat::Mode::from_bits_truncate(0o600), 0).unwrap();
        let _ = crate::util::sys::file::set_xattr(&l1.join("opq"), c"trusted.overlay.opaque", b"y");

        let tree = Tree::layers(&[l0, l1]).unwrap();
        assert_eq!(tree.read("/etc/a").unwrap(), b"a1");
        assert!(tree.lookup(Path::new("etc/gone")).unwrap().is_none());
        let etc = tree.lookup(Path::new("etc")).unwrap().unwrap();
        let names: Vec<_> = tree.list(Path::new("etc"), &etc).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec![OsString::from("a"), OsString::from("sub")]);
        let opq = tree.lookup(Path::new("opq")).unwrap().unwrap();
        let names: Vec<_> = tree.list(Path::new("opq"), &opq).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec![OsString::from("new")]);
        // Symlinks resolve inside the tree, absolute ones from its root.
        let r = tree.resolve("/bin/tool", true).unwrap();
        assert_eq!(r.path, PathBuf::from("usr/bin/tool"));
        assert!(r.node.unwrap().is_file());
        let r = tree.resolve("/bin/../../../etc/a", true).unwrap();
        assert_eq!(r.path, PathBuf::from("etc/a"), "`..` stops at the root");
        let r = tree.resolve("/bin/new/file", true).unwrap();
        assert_eq!(r.path, PathBuf::from("usr/bin/new/file"));
        assert!(r.node.is_none());
        let r = tree.resolve("/bin", false).unwrap();
        assert!(r.node.unwrap().is_symlink());
    }

    #[test]
    fn context_links_never_lead_outside() {
        let t = tempfile::tempdir().unwrap();
        let ctx = t.path().join("ctx");
        std::fs::create_dir_all(ctx.join("d")).unwrap();
        std::fs::write(t.path().join("secret"), "s").unwrap();
        std::fs::write(ctx.join("d/f"), "f").unwrap();
        symlink("../secret", ctx.join("up")).unwrap();
        symlink("/etc", ctx.join("abs")).unwrap();
        symlink("d", ctx.join("inside")).unwrap();
        symlink("../d/f", ctx.join("d/rel")).unwrap();
        let tree = Tree::context(&ctx).unwrap();
        let r = tree.resolve("up", true).unwrap();
        assert!(r.outside_link && r.node.unwrap().is_symlink());
        assert!(matches!(tree.resolve("abs/passwd", true), Err(ResolveError::Escape { .. })));
        assert!(matches!(tree.resolve("../secret", true), Err(ResolveError::Outside { .. })));
        assert_eq!(tree.resolve("inside/f", true).unwrap().path, PathBuf::from("d/f"));
        assert_eq!(tree.resolve("d/rel", true).unwrap().path, PathBuf::from("d/f"));
        assert!(tree.read("up").is_none());
    }
}
