//! COPY and ADD: the files to write are planned from the sources (the build context, another
//! stage or image, heredocs, downloads, archives) and the destination image's tree, digested
//! for the cache, then written as one layer tar for the image store. No container is involved.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fstree::{Node, Tree};
use super::ignore::{Ignore, glob_match, has_wildcard};
use crate::engine::image::Digest;
use crate::engine::image::digest::Hasher;
use crate::engine::image::unpack;

/// What a planned file's bytes come from.
#[derive(Clone, Debug)]
pub enum Content {
    None,
    /// A file of source tree `tree` (index into the trees given to [`write_tar`]).
    Tree {
        tree: usize,
        rel: PathBuf,
        node: Node,
    },
    Bytes(Vec<u8>),
    /// A downloaded file.
    File(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File,
    Symlink(PathBuf),
    /// Character or block device, or fifo (`S_IF*` type bits and the device number).
    Special {
        kind: u32,
        rdev: u64,
    },
}

/// One entry of the layer.
#[derive(Clone, Debug)]
pub struct Entry {
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub size: u64,
    pub content: Content,
    /// What identifies the bytes, for the cache (a sha256, or a layer and path).
    pub content_id: String,
}

/// An archive that ADD extracts into `dest`.
#[derive(Clone, Debug)]
pub struct Extract {
    pub source: Content,
    pub dest: PathBuf,
    pub owner: Option<(u32, u32)>,
    pub content_id: String,
}

/// Everything one COPY or ADD writes.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Paths relative to the root, parents before children.
    pub entries: BTreeMap<PathBuf, Entry>,
    pub extracts: Vec<Extract>,
}

impl Plan {
    /// The digest of what the layer will hold (times left out, as Docker's cache does).
    pub fn digest(&self) -> Digest {
        let mut h = Hasher::new();
        for (p, e) in &self.entries {
            let kind = match &e.kind {
                EntryKind::Dir => "d".to_string(),
                EntryKind::File => "f".to_string(),
                EntryKind::Symlink(t) => format!("l{}", t.display()),
                EntryKind::Special { kind, rdev } => format!("s{kind}:{rdev}"),
            };
            h.update(format!("{}\0{kind}\0{:o}\0{}\0{}\0{}\n", p.display(), e.mode, e.uid, e.gid, e.content_id).as_bytes());
        }
        for x in &self.extracts {
            h.update(format!("x{}\0{:?}\0{}\n", x.dest.display(), x.owner, x.content_id).as_bytes());
        }
        h.finish()
    }
}

// ---- the context's content hashes ----

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_ns: i64,
    ctime: i64,
    ctime_ns: i64,
    sha: String,
}

/// Remembers the sha256 of each context file by its inode, size and times, so that an unchanged
/// file is not read again on the next build (kept under `<root>/build/hashes/`).
#[derive(Debug, Default)]
pub struct HashCache {
    path: Option<PathBuf>,
    map: HashMap<String, Stamp>,
    used: HashMap<String, Stamp>,
    dirty: bool,
}

impl HashCache {
    pub fn load(path: PathBuf) -> HashCache {
        let map = crate::util::fs::read_json(&path).ok().flatten().unwrap_or_default();
        HashCache { path: Some(path), map, used: HashMap::new(), dirty: false }
    }

    /// The sha256 of the context file `rel`, read only when its stamp changed.
    pub fn sha(&mut self, tree: &Tree, rel: &Path, node: &Node) -> io::Result<String> {
        let key = rel.to_string_lossy().into_owned();
        let st = &node.st;
        let stamp = |sha: String| Stamp {
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime: st.st_mtime,
            mtime_ns: st.st_mtime_nsec,
            ctime: st.st_ctime,
            ctime_ns: st.st_ctime_nsec,
            sha,
        };
        if let Some(s) = self.map.get(&key) {
            if *s == stamp(s.sha.clone()) {
                self.used.insert(key, s.clone());
                return Ok(s.sha.clone());
            }
        }
        let mut f = tree.open_file(rel, node)?;
        let mut h = Hasher::new();
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let sha = h.finish().hex().to_string();
        // A file changed in the same second as its stamp may change again unseen: don't keep it.
        let now = chrono::Utc::now().timestamp();
        if st.st_mtime < now - 1 && st.st_ctime < now - 1 {
            self.used.insert(key, stamp(sha.clone()));
            self.dirty = true;
        }
        Ok(sha)
    }

    /// Saves the stamps when this build learned new ones.
    pub fn save(&mut self) {
        if !self.dirty {
            return;
        }
        if let Some(p) = &self.path {
            if let Some(dir) = p.parent() {
                let _ = crate::util::fs::create_dir_all_mode(dir, 0o700);
            }
            let mut all = std::mem::take(&mut self.map);
            all.extend(self.used.drain());
            let _ = crate::util::fs::write_json(p, &all);
            self.map = all;
            self.dirty = false;
        }
    }
}

// ---- users and groups ----

/// Looks up a user or group name in the image's `/etc/passwd` or `/etc/group`.
fn lookup_id(tree: &Tree, file: &str, name: &str) -> Option<(u32, Option<u32>)> {
    let data = tree.read(file)?;
    for line in String::from_utf8_lossy(&data).lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 3 && f[0] == name {
            let id = f[2].parse().ok()?;
            let gid = f.get(3).and_then(|g| g.parse().ok());
            return Some((id, gid));
        }
    }
    None
}

/// Parses `--chown=user[:group]` against the image's users and groups. A user without a group
/// gets its own id as the group id, as Docker does.
pub fn parse_chown(spec: &str, tree: &Tree) -> Result<(u32, u32), String> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if u.is_empty() {
        return Err(format!("invalid --chown={spec}: the user is empty"));
    }
    let uid = match u.parse::<u32>() {
        Ok(n) => n,
        Err(_) => lookup_id(tree, "/etc/passwd", u)
            .map(|(id, _)| id)
            .ok_or_else(|| format!("--chown={spec}: no user {u:?} in the image's /etc/passwd"))?,
    };
    let gid = match g {
        None => uid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup_id(tree, "/etc/group", g)
                .map(|(id, _)| id)
                .ok_or_else(|| format!("--chown={spec}: no group {g:?} in the image's /etc/group"))?,
        },
    };
    Ok((uid, gid))
}

/// The uid and gid a USER value names in the image (a name's primary group from passwd).
pub fn resolve_user(user: &str, tree: &Tree) -> Option<(u32, u32)> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let (uid, primary) = match u.parse::<u32>() {
        Ok(n) => (n, lookup_numeric_primary(tree, n)),
        Err(_) => lookup_id(tree, "/etc/passwd", u)?,
    };
    let gid = match g {
        Some(g) => g.parse::<u32>().ok().or_else(|| lookup_id(tree, "/etc/group", g).map(|(id, _)| id))?,
        None => primary.unwrap_or(0),
    };
    Some((uid, gid))
}

fn lookup_numeric_primary(tree: &Tree, uid: u32) -> Option<u32> {
    let data = tree.read("/etc/passwd")?;
    String::from_utf8_lossy(&data).lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[3].parse().ok()).flatten()
    })
}

/// Parses `--chmod` (octal).
pub fn parse_chmod(spec: &str) -> Result<u32, String> {
    match u32::from_str_radix(spec, 8) {
        Ok(m) if m <= 0o7777 && !spec.is_empty() => Ok(m),
        _ => Err(format!("invalid --chmod={spec}: give the mode in octal, e.g. --chmod=0755")),
    }
}

// ---- planning ----

/// One source of a COPY or ADD, after expansion.
pub enum Source {
    /// A path in source tree `tree` (the context, a stage or an image).
    Path { tree: usize, pattern: String },
    /// Bytes with a name (a heredoc).
    Bytes { name: String, data: Vec<u8> },
    /// A downloaded file (ADD URL): its name, temp file, and Last-Modified time.
    Download { name: String, path: PathBuf, mtime: i64, sha: String },
}

/// A source tree with what the copy needs to know about it.
pub struct SourceTree<'a> {
    pub tree: &'a Tree,
    /// The content id of each layer (chain IDs), for the cache; empty for the context.
    pub layer_ids: Vec<String>,
    pub ignore: Option<&'a Ignore>,
    /// What to call it in errors ("the build context", "stage builder").
    pub what: String,
}

/// What one COPY or ADD asks.
pub struct Request<'a> {
    pub keyword: &'a str,
    pub sources: Vec<Source>,
    /// The destination, expanded, as written (a trailing `/` means a directory).
    pub dest: String,
    pub workdir: &'a str,
    pub chown: Option<(u32, u32)>,
    pub chmod: Option<u32>,
    /// ADD: extract local archives.
    pub extract: bool,
    /// The patterns of `--exclude`.
    pub exclude: Vec<String>,
}

/// Plans the copy. `base` is the destination image's tree (for existing directories, whose
/// metadata is kept, and symlinks in the destination path, which are followed inside it).
pub fn plan(req: &Request, trees: &[SourceTree], base: &Tree, hashes: &mut HashCache, now: i64) -> Result<Plan, String> {
    let dest_dir_syntax = req.dest.ends_with('/') || req.dest.ends_with("/.") || req.dest == "." || req.dest.is_empty();
    let abs_dest = if req.dest.starts_with('/') { req.dest.clone() } else { format!("{}/{}", req.workdir.trim_end_matches('/'), req.dest) };
    if req.sources.len() > 1 && !dest_dir_syntax {
        return Err(format!(
            "when using {} with more than one source file, the destination must be a directory and end with a /",
            req.keyword
        ));
    }
    let dest = base.resolve(&abs_dest, true).map_err(|e| e.to_string())?;
    let dest_is_dir = dest.node.as_ref().is_some_and(|n| n.is_dir());
    if let Some(n) = &dest.node {
        if !n.is_dir() && dest_dir_syntax {
            return Err(format!("destination {} exists and is not a directory", req.dest));
        }
    }
    let owner = req.chown;
    let mut p = Planner { plan: Plan::default(), base, owner, chmod: req.chmod, now, hashes, trees, exclude: &req.exclude };

    // Expand the sources first: several matches make the destination a directory.
    let mut matched: Vec<Matched> = Vec::new();
    for s in &req.sources {
        match s {
            Source::Path { tree, pattern } => {
                let st = &trees[*tree];
                let found = expand_source(st, pattern)?;
                if found.is_empty() {
                    return Err(if has_wildcard(pattern) {
                        format!("no source files were specified: {pattern} matches nothing in {}", st.what)
                    } else {
                        missing(pattern, st)
                    });
                }
                matched.extend(found.into_iter().map(|(rel, node)| Matched::Tree { tree: *tree, rel, node }));
            }
            Source::Bytes { name, data } => matched.push(Matched::Bytes { name: name.clone(), data: data.clone() }),
            Source::Download { name, path, mtime, sha } => {
                matched.push(Matched::Download { name: name.clone(), path: path.clone(), mtime: *mtime, sha: sha.clone() })
            }
        }
    }
    let into_dir = dest_dir_syntax || dest_is_dir || matched.len() > 1;
    let dest_path = dest.path.clone();
    let name_in = |name: &std::ffi::OsStr| if into_dir { dest_path.join(name) } else { dest_path.clone() };

    for m in matched {
        match m {
            Matched::Tree { tree, rel, node } => {
                let st = &trees[tree];
                if node.is_dir() {
                    p.parents(&dest_path, true)?;
                    p.walk(tree, &rel, &node, &dest_path)?;
                } else if req.extract && st.tree.is_context() && node.is_file() && is_archive(st.tree, &rel, &node) {
                    p.parents(&dest_path, true)?;
                    let sha = p.hashes.sha(st.tree, &rel, &node).map_err(|e| format!("cannot read {}: {e}", rel.display()))?;
                    p.plan.extracts.push(Extract {
                        source: Content::Tree { tree, rel, node },
                        dest: dest_path.clone(),
                        owner,
                        content_id: sha,
                    });
                } else {
                    let name = rel.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| OsString::from("root"));
                    let target = name_in(&name);
                    p.parents(target.parent().unwrap_or(Path::new("")), true)?;
                    p.leaf(tree, &rel, &node, target)?;
                }
            }
            Matched::Bytes { name, data } => {
                let target = name_in(std::ffi::OsStr::new(&name));
                p.parents(target.parent().unwrap_or(Path::new("")), true)?;
                let (uid, gid) = owner.unwrap_or((0, 0));
                let id = Digest::of(&data).hex().to_string();
                p.plan.entries.insert(
                    target,
                    Entry {
                        kind: EntryKind::File,
                        mode: req.chmod.unwrap_or(0o644),
                        uid,
                        gid,
                        mtime: now,
                        size: data.len() as u64,
                        content: Content::Bytes(data),
                        content_id: id,
                    },
                );
            }
            Matched::Download { name, path, mtime, sha } => {
                let target = name_in(std::ffi::OsStr::new(&name));
                p.parents(target.parent().unwrap_or(Path::new("")), true)?;
                let (uid, gid) = owner.unwrap_or((0, 0));
                let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                p.plan.entries.insert(
                    target,
                    Entry {
                        kind: EntryKind::File,
                        mode: req.chmod.unwrap_or(0o600),
                        uid,
                        gid,
                        mtime,
                        size,
                        content: Content::File(path),
                        content_id: sha,
                    },
                );
            }
        }
    }
    Ok(p.plan)
}

enum Matched {
    Tree { tree: usize, rel: PathBuf, node: Node },
    Bytes { name: String, data: Vec<u8> },
    Download { name: String, path: PathBuf, mtime: i64, sha: String },
}

fn missing(pattern: &str, st: &SourceTree) -> String {
    if st.tree.is_context() {
        format!("{pattern} not found in the build context (or excluded by .dockerignore)")
    } else {
        format!("{pattern} not found in {}", st.what)
    }
}

/// The paths a source pattern names in its tree: (resolved path, node).
fn expand_source(st: &SourceTree, pattern: &str) -> Result<Vec<(PathBuf, Node)>, String> {
    let tree = st.tree;
    let excluded = |rel: &Path| st.ignore.is_some_and(|i| i.excluded(&rel.to_string_lossy()));
    if !has_wildcard(pattern) {
        let r = tree.resolve(pattern, true).map_err(|e| e.to_string())?;
        let Some(node) = r.node else { return Ok(Vec::new()) };
        if excluded(&r.path) && !(node.is_dir() && st.ignore.is_some_and(|i| i.may_reinclude_under(&r.path.to_string_lossy()))) {
            return Ok(Vec::new());
        }
        return Ok(vec![(r.path, node)]);
    }
    // Component by component, listing the directories where a component has a wildcard.
    let comps: Vec<String> = pattern.split('/').filter(|c| !c.is_empty() && *c != ".").map(str::to_string).collect();
    let mut current: Vec<PathBuf> = vec![PathBuf::new()];
    for (i, c) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let mut next = Vec::new();
        for dir in &current {
            if has_wildcard(c) {
                let r = tree.resolve(&dir.to_string_lossy(), true).map_err(|e| e.to_string())?;
                if r.outside_link {
                    return Err(format!(
                        "{pattern} leads outside the build context (through the symlink {}); the build context is never read outside its folder",
                        r.path.display()
                    ));
                }
                let Some(node) = r.node.filter(|n| n.is_dir()) else { continue };
                for (name, _) in tree.list(&r.path, &node).map_err(|e| format!("cannot list {}: {e}", r.path.display()))? {
                    if glob_match(c, &name.to_string_lossy()) {
                        next.push(r.path.join(&name));
                    }
                }
            } else {
                next.push(dir.join(c));
            }
        }
        current = next;
        if last {
            break;
        }
    }
    let mut out = Vec::new();
    for p in current {
        let r = tree.resolve(&p.to_string_lossy(), true).map_err(|e| e.to_string())?;
        if let Some(node) = r.node {
            if !excluded(&r.path) {
                out.push((r.path, node));
            }
        }
    }
    Ok(out)
}

/// Wraps `r` in the decompressor its first bytes call for: gzip, bzip2, xz or zstd (as Docker's
/// ADD, plus zstd), or none.
fn archive_reader<'a, R: Read + Send + 'a>(r: R) -> io::Result<Box<dyn Read + Send + 'a>> {
    let (head, joined) = unpack::peek::<_, 6>(r)?;
    if head.starts_with(b"BZh") {
        Ok(Box::new(bzip2::read::MultiBzDecoder::new(joined)))
    } else if head == [0xfd, b'7', b'z', b'X', b'Z', 0] {
        Ok(Box::new(liblzma::read::XzDecoder::new_multi_decoder(joined)))
    } else {
        unpack::decompress(joined).map(|(_, r)| r)
    }
}

/// True when the context file is a tar archive (plain, gzip, bzip2, xz or zstd) that ADD
/// extracts.
fn is_archive(tree: &Tree, rel: &Path, node: &Node) -> bool {
    let Ok(f) = tree.open_file(rel, node) else { return false };
    let Ok(mut r) = archive_reader(io::BufReader::new(f)) else { return false };
    let mut block = [0u8; 512];
    if !matches!(unpack::fill(&mut r, &mut block), Ok(512)) {
        return false;
    }
    // A valid header checksum (the checksum field counted as spaces).
    let field = String::from_utf8_lossy(&block[148..156]);
    let Ok(want) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8) else { return false };
    let sum: u32 = block.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { *b as u32 }).sum();
    sum == want
}

struct Planner<'a, 'b> {
    plan: Plan,
    base: &'a Tree,
    owner: Option<(u32, u32)>,
    chmod: Option<u32>,
    now: i64,
    hashes: &'a mut HashCache,
    trees: &'a [SourceTree<'b>],
    exclude: &'a [String],
}

impl Planner<'_, '_> {
    /// Adds `dir` and its parents: existing ones keep the image's metadata, new ones are 0755
    /// and owned by the --chown user.
    fn parents(&mut self, dir: &Path, include_self: bool) -> Result<(), String> {
        let mut prefix = PathBuf::new();
        let comps: Vec<_> = dir.components().collect();
        for (i, c) in comps.iter().enumerate() {
            if i + 1 == comps.len() && !include_self {
                break;
            }
            prefix.push(c);
            if self.plan.entries.contains_key(&prefix) {
                continue;
            }
            let e = match self.base.lookup(&prefix).map_err(|e| format!("cannot read {} in the image: {e}", prefix.display()))? {
                Some(n) if n.is_dir() => Entry {
                    kind: EntryKind::Dir,
                    mode: n.mode(),
                    uid: n.uid(),
                    gid: n.gid(),
                    mtime: n.mtime(),
                    size: 0,
                    content: Content::None,
                    content_id: String::new(),
                },
                Some(_) => return Err(format!("cannot copy to /{}: /{} is not a directory in the image", dir.display(), prefix.display())),
                None => {
                    let (uid, gid) = self.owner.unwrap_or((0, 0));
                    Entry {
                        kind: EntryKind::Dir,
                        mode: 0o755,
                        uid,
                        gid,
                        mtime: self.now,
                        size: 0,
                        content: Content::None,
                        content_id: String::new(),
                    }
                }
            };
            self.plan.entries.insert(prefix.clone(), e);
        }
        Ok(())
    }

    fn owner_of(&self, tree: usize, node: &Node) -> (u32, u32) {
        match self.owner {
            Some(o) => o,
            // Context files belong to root in the image; files from an image keep their owner.
            None if self.trees[tree].tree.is_context() => (0, 0),
            None => (node.uid(), node.gid()),
        }
    }

    fn leaf(&mut self, tree: usize, rel: &Path, node: &Node, target: PathBuf) -> Result<(), String> {
        let st = &self.trees[tree];
        let (uid, gid) = self.owner_of(tree, node);
        let mode = self.chmod.unwrap_or(node.mode());
        let (kind, content, content_id, size) = if node.is_file() {
            let id = if st.tree.is_context() {
                self.hashes.sha(st.tree, rel, node).map_err(|e| format!("cannot read {}: {e}", rel.display()))?
            } else {
                format!("{}:{}", st.layer_ids.get(node.layer).cloned().unwrap_or_default(), rel.display())
            };
            (EntryKind::File, Content::Tree { tree, rel: rel.to_path_buf(), node: node.clone() }, id, node.size())
        } else if node.is_symlink() {
            let t = st.tree.read_link(rel, node).map_err(|e| format!("cannot read the link {}: {e}", rel.display()))?;
            (EntryKind::Symlink(t), Content::None, String::new(), 0)
        } else {
            let kind = node.st.st_mode & libc::S_IFMT;
            if st.tree.is_context() || kind == libc::S_IFSOCK {
                // Sockets are never copied, and neither are devices or fifos of the context.
                return Ok(());
            }
            (EntryKind::Special { kind, rdev: node.st.st_rdev }, Content::None, String::new(), 0)
        };
        let mode = if matches!(kind, EntryKind::Symlink(_)) { 0o777 } else { mode };
        self.plan.entries.insert(target, Entry { kind, mode, uid, gid, mtime: node.mtime(), size, content, content_id });
        Ok(())
    }

    /// Copies the contents of directory `rel` into `dest`.
    fn walk(&mut self, tree: usize, rel: &Path, node: &Node, dest: &Path) -> Result<(), String> {
        let st = &self.trees[tree];
        let ignore = st.ignore;
        let entries = st.tree.list(rel, node).map_err(|e| format!("cannot list {}: {e}", rel.display()))?;
        for (name, child) in entries {
            let crel = rel.join(&name);
            let cdest = dest.join(&name);
            let excluded = ignore.is_some_and(|i| i.excluded(&crel.to_string_lossy()));
            let dropped = self.exclude.iter().any(|pat| {
                let from_src = crel.strip_prefix(rel).unwrap_or(&crel);
                Ignore::parse(pat).excluded(&from_src.to_string_lossy())
            });
            if dropped {
                continue;
            }
            if child.is_dir() {
                if excluded && !ignore.is_some_and(|i| i.may_reinclude_under(&crel.to_string_lossy())) {
                    continue;
                }
                let before = self.plan.entries.len();
                let (uid, gid) = self.owner_of(tree, &child);
                let e = Entry {
                    kind: EntryKind::Dir,
                    mode: self.chmod.unwrap_or(child.mode()),
                    uid,
                    gid,
                    mtime: child.mtime(),
                    size: 0,
                    content: Content::None,
                    content_id: String::new(),
                };
                self.plan.entries.insert(cdest.clone(), e);
                self.walk(tree, &crel, &child, &cdest)?;
                // An excluded directory is kept only for what an exception brought back.
                if excluded && self.plan.entries.len() == before + 1 {
                    self.plan.entries.remove(&cdest);
                }
            } else if !excluded {
                self.leaf(tree, &crel, &child, cdest)?;
            }
        }
        Ok(())
    }
}

// ---- writing ----

fn tar_err(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Writes the plan as a layer tar to `out`.
pub fn write_tar<W: Write>(plan: &Plan, trees: &[&Tree], out: W) -> io::Result<W> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    for (path, e) in &plan.entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.mode);
        h.set_uid(e.uid as u64);
        h.set_gid(e.gid as u64);
        h.set_mtime(e.mtime.max(0) as u64);
        match &e.kind {
            EntryKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, path, io::empty()).map_err(|x| tar_err(path, x))?;
            }
            EntryKind::Symlink(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, path, t).map_err(|x| tar_err(path, x))?;
            }
            EntryKind::Special { kind, rdev } => {
                let t = match *kind {
                    libc::S_IFCHR => tar::EntryType::Char,
                    libc::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                h.set_entry_type(t);
                h.set_size(0);
                let _ = h.set_device_major(libc::major(*rdev));
                let _ = h.set_device_minor(libc::minor(*rdev));
                b.append_data(&mut h, path, io::empty()).map_err(|x| tar_err(path, x))?;
            }
            EntryKind::File => {
                h.set_entry_type(tar::EntryType::Regular);
                match &e.content {
                    Content::Tree { tree, rel, node } => {
                        let f = trees[*tree].open_file(rel, node).map_err(|x| tar_err(rel, x))?;
                        // The size as it is now: a file that changed since planning is copied whole.
                        let size = f.metadata().map(|m| m.size()).unwrap_or(e.size);
                        h.set_size(size);
                        b.append_data(&mut h, path, f.take(size)).map_err(|x| tar_err(rel, x))?;
                    }
                    Content::Bytes(data) => {
                        h.set_size(data.len() as u64);
                        b.append_data(&mut h, path, data.as_slice()).map_err(|x| tar_err(path, x))?;
                    }
                    Content::File(p) => {
                        let f = File::open(p).map_err(|x| tar_err(p, x))?;
                        let size = f.metadata()?.len();
                        h.set_size(size);
                        b.append_data(&mut h, path, f).map_err(|x| tar_err(p, x))?;
                    }
                    Content::None => {
                        h.set_size(0);
                        b.append_data(&mut h, path, io::empty()).map_err(|x| tar_err(path, x))?;
                    }
                }
            }
        }
    }
    for x in &plan.extracts {
        let reader: Box<dyn Read + Send> = match &x.source {
            Content::Tree { tree, rel, node } => Box::new(trees[*tree].open_file(rel, node).map_err(|e| tar_err(rel, e))?),
            Content::File(p) => Box::new(File::open(p).map_err(|e| tar_err(p, e))?),
            Content::Bytes(d) => Box::new(io::Cursor::new(d.clone())),
            Content::None => continue,
        };
        extract_into(&mut b, reader, &x.dest, x.owner)?;
    }
    b.into_inner()
}

/// Re-writes the entries of a tar archive under `dest`. Entries with `..` are refused; names
/// are cleaned of any leading `/`.
fn extract_into<W: Write>(b: &mut tar::Builder<W>, src: Box<dyn Read + Send>, dest: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    let r = archive_reader(io::BufReader::with_capacity(256 << 10, src))?;
    let mut ar = tar::Archive::new(r);
    for entry in ar.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.into_owned();
        let Some(rel) = clean_archive_path(&raw) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the archive entry {} leads outside the destination", raw.display()),
            ));
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        if rel.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".wh.")) {
            continue;
        }
        let target = dest.join(&rel);
        let mut h = entry.header().clone();
        if let Some((u, g)) = owner {
            h.set_uid(u as u64);
            h.set_gid(g as u64);
        }
        match h.entry_type() {
            tar::EntryType::Link => {
                let link = entry.link_name()?.map(|l| l.into_owned()).unwrap_or_default();
                let Some(lrel) = clean_archive_path(&link) else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the archive link {} leads outside the destination", link.display()),
                    ));
                };
                b.append_link(&mut h, &target, dest.join(lrel))?;
            }
            tar::EntryType::Symlink => {
                let link = entry.link_name()?.map(|l| l.into_owned()).unwrap_or_default();
                b.append_link(&mut h, &target, link)?;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader | tar::EntryType::GNULongName | tar::EntryType::GNULongLink => {}
            _ => {
                let size = entry.size();
                h.set_size(size);
                b.append_data(&mut h, &target, &mut entry)?;
            }
        }
    }
    Ok(())
}

fn clean_archive_path(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => return None,
            _ => {}
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chmod_and_chown() {
        assert_eq!(parse_chmod("755"), Ok(0o755));
        assert_eq!(parse_chmod("04755"), Ok(0o4755));
        assert!(parse_chmod("u+x").is_err());
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/passwd"), "root:x:0:0::/:/bin/sh\napp:x:1000:1001::/:/bin/sh\n").unwrap();
        std::fs::write(t.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let tree = Tree::layers(&[t.path().to_path_buf()]).unwrap();
        assert_eq!(parse_chown("app", &tree), Ok((1000, 1000)));
        assert_eq!(parse_chown("app:staff", &tree), Ok((1000, 50)));
        assert_eq!(parse_chown("7:8", &tree), Ok((7, 8)));
        assert!(parse_chown("nobody", &tree).unwrap_err().contains("no user"));
        assert_eq!(resolve_user("app", &tree), Some((1000, 1001)));
        assert_eq!(resolve_user("1000", &tree), Some((1000, 1001)));
        assert_eq!(resolve_user("5:staff", &tree), Some((5, 50)));
    }

    #[test]
    fn plans_copies_and_writes_them() {
        let t = tempfile::tempdir().unwrap();
        let ctx = t.path().join("ctx");
        std::fs::create_dir_all(ctx.join("src/sub")).unwrap();
        std::fs::write(ctx.join("a.txt"), "a").unwrap();
        std::fs::write(ctx.join("b.txt"), "b").unwrap();
        std::fs::write(ctx.join("src/x"), "x").unwrap();
        std::fs::write(ctx.join("src/sub/y.log"), "y").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", ctx.join("src/evil")).unwrap();
        let base_dir = t.path().join("base");
        std::fs::create_dir_all(base_dir.join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("usr/bin", base_dir.join("bin")).unwrap();
        let base = Tree::layers(&[base_dir]).unwrap();
        let context = Tree::context(&ctx).unwrap();
        let ignore = Ignore::parse("**/*.log\n");
        let trees = [SourceTree { tree: &context, layer_ids: vec![], ignore: Some(&ignore), what: "the build context".into() }];
        let mut hc = HashCache::default();
        let req = |sources: Vec<&str>, dest: &str| Request {
            keyword: "COPY",
            sources: sources.into_iter().map(|s| Source::Path { tree: 0, pattern: s.into() }).collect(),
            dest: dest.into(),
            workdir: "/",
            chown: None,
            chmod: None,
            extract: false,
            exclude: vec![],
        };
        let p = plan(&req(vec!["*.txt"], "/bin"), &trees, &base, &mut hc, 0).unwrap();
        let names: Vec<_> = p.entries.keys().map(|k| k.display().to_string()).collect();
        assert_eq!(names, vec!["usr", "usr/bin", "usr/bin/a.txt", "usr/bin/b.txt"]);
        let p = plan(&req(vec!["src"], "/app/"), &trees, &base, &mut hc, 0).unwrap();
        let names: Vec<_> = p.entries.keys().map(|k| k.display().to_string()).collect();
        assert_eq!(names, vec!["app", "app/evil", "app/sub", "app/x"]);
        assert_eq!(p.entries[Path::new("app/evil")].kind, EntryKind::Symlink("/etc/shadow".into()));
        let p2 = plan(&req(vec!["src"], "/app/"), &trees, &base, &mut hc, 99).unwrap();
        assert_eq!(p.digest(), p2.digest(), "times are not part of the digest");
        assert!(plan(&req(vec!["a.txt", "b.txt"], "/x"), &trees, &base, &mut hc, 0).unwrap_err().contains("end with a /"));
        assert!(plan(&req(vec!["nope"], "/x"), &trees, &base, &mut hc, 0).unwrap_err().contains("not found"));
        assert!(plan(&req(vec!["src/sub/y.log"], "/x"), &trees, &base, &mut hc, 0).unwrap_err().contains("excluded"));
        let p = plan(&req(vec!["a.txt"], "/x"), &trees, &base, &mut hc, 0).unwrap();
        let mut buf = Vec::new();
        write_tar(&p, &[&context], &mut buf).unwrap();
        let mut ar = tar::Archive::new(buf.as_slice());
        let paths: Vec<_> = ar.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
        assert_eq!(paths, vec!["x"]);
    }
}
