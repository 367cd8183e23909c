//! Safe layer unpacking, and the reverse (an overlay upper directory to an OCI layer tar).
//!
//! Whatever the archive says, nothing is ever written outside the layer directory:
//! - entry names are normalized (a leading `/` and `.` components dropped); a `..` component
//!   refuses the layer;
//! - every parent directory is resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//!   RESOLVE_NO_XDEV)` from the layer root, so a symlink planted by the archive is never followed;
//!   an entry that goes through one refuses the layer;
//! - files are created with `O_CREAT | O_EXCL | O_NOFOLLOW` relative to their parent's fd, and
//!   owners, modes and times are set on that fd or with `AT_SYMLINK_NOFOLLOW`;
//! - hardlink targets are resolved the same way, inside the layer, and linked without following;
//! - OCI whiteouts become what overlayfs reads: a 0/0 character device for `.wh.NAME`, and the
//!   `trusted.overlay.opaque=y` xattr for `.wh..wh..opq`; `trusted.overlay.*` xattrs from the
//!   archive itself are dropped;
//! - the uncompressed size, the entry count and the path depth are capped.
//!
//! With `BERTH_UNPACK_WRITERS=N`, small regular files are created on N writer threads while the
//! reader goes on (see [`writers`]), under the same rules: the reader resolves their parent and
//! keeps every order the archive implies.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{Mode, SFlag, mknodat};

use super::digest::{Digest, HashingReader};
use super::error::{ImageError, Result};
use crate::util::sys::file;

/// The caps applied to one layer. Each can be raised with the environment variable named.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_entries: u64,
    pub max_depth: usize,
}

pub const ENV_MAX_BYTES: &str = "BERTH_MAX_LAYER_BYTES";
pub const ENV_MAX_ENTRIES: &str = "BERTH_MAX_LAYER_ENTRIES";

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: 64 << 30, max_entries: 2_000_000, max_depth: 256 }
    }
}

impl Limits {
    /// The defaults, overridden by `BERTH_MAX_LAYER_BYTES` and `BERTH_MAX_LAYER_ENTRIES`.
    pub fn from_env() -> Self {
        let mut l = Limits::default();
        if let Some(v) = std::env::var(ENV_MAX_BYTES).ok().and_then(|v| v.parse().ok()) {
            l.max_bytes = v;
        }
        if let Some(v) = std::env::var(ENV_MAX_ENTRIES).ok().and_then(|v| v.parse().ok()) {
            l.max_entries = v;
        }
        l
    }
}

/// What unpacking one layer found.
#[derive(Clone, Debug)]
pub struct UnpackStats {
    /// The digest of the uncompressed tar stream (the layer's diff ID).
    pub diff_id: Digest,
    /// The size of the uncompressed tar stream.
    pub tar_size: u64,
    pub entries: u64,
    /// The bytes of file content written (what `docker images` counts as the size).
    pub content_size: u64,
}

/// The compression of a layer stream, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Reads until `buf` is full or the stream ends, retrying on EINTR; the count read.
pub fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A stream whose first bytes were read ahead, read again from its start.
pub type Replay<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// The first `N` bytes of `r` (fewer if it is shorter), and a reader of the whole stream again.
pub fn peek<R: Read, const N: usize>(mut r: R) -> io::Result<(Vec<u8>, Replay<R>)> {
    let mut head = [0u8; N];
    let n = fill(&mut r, &mut head)?;
    Ok((head[..n].to_vec(), io::Cursor::new(head[..n].to_vec()).chain(r)))
}

/// Wraps `r` in the decompressor its magic bytes call for.
pub fn decompress<'a, R: Read + Send + 'a>(r: R) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let (head, joined) = peek::<_, 4>(r)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok((Compression::Gzip, Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(256 << 10, joined)))))
    } else if head == [0x28, 0xb5, 0x2f, 0xfd] {
        let d = zstd::stream::read::Decoder::new(joined)?;
        Ok((Compression::Zstd, Box::new(d)))
    } else {
        Ok((Compression::None, Box::new(joined)))
    }
}

const READ_FAILED: u8 = 1;
const TOO_BIG: u8 = 2;
const META_TOO_BIG: u8 = 3;
/// The largest PAX, GNU long-name or long-link record accepted (the tar crate reads them whole).
pub const MAX_META: u64 = 1 << 20;

/// Follows the tar structure as the bytes pass, and fails on a metadata record (PAX `x`/`g`,
/// GNU `L`/`K`) larger than [`MAX_META`], before the tar reader would read it into memory.
struct HeaderGuard<R> {
    inner: R,
    /// Bytes of the current header block seen so far.
    head: Vec<u8>,
    /// Data (padded) left in the current entry.
    data_left: u64,
    /// GNU sparse extension blocks expected next.
    ext_pending: bool,
    /// The PAX record being read (its `size` overrides the next header's).
    pax: Option<Vec<u8>>,
    pax_size: Option<u64>,
    flag: Arc<AtomicU8>,
}

/// The `size` record of PAX extended header data, if any.
fn pax_size(data: &[u8]) -> Option<u64> {
    let mut rest = data;
    while !rest.is_empty() {
        let sp = rest.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
        if len == 0 || len > rest.len() {
            return None;
        }
        let rec = &rest[sp + 1..len];
        if let Some(v) = rec.strip_prefix(b"size=") {
            return std::str::from_utf8(v).ok()?.trim_end_matches('\n').parse().ok();
        }
        rest = &rest[len..];
    }
    None
}

impl<R: Read> HeaderGuard<R> {
    fn observe(&mut self, mut b: &[u8]) -> io::Result<()> {
        while !b.is_empty() {
            if self.data_left > 0 {
                let n = (self.data_left.min(b.len() as u64)) as usize;
                if let Some(p) = &mut self.pax {
                    p.extend_from_slice(&b[..n]);
                }
                self.data_left -= n as u64;
                b = &b[n..];
                if self.data_left == 0 {
                    if let Some(p) = self.pax.take() {
                        self.pax_size = pax_size(&p);
                    }
                }
                continue;
            }
            let need = 512 - self.head.len();
            let n = need.min(b.len());
            self.head.extend_from_slice(&b[..n]);
            b = &b[n..];
            if self.head.len() < 512 {
                continue;
            }
            let block = std::mem::take(&mut self.head);
            if self.ext_pending {
                self.ext_pending = block[504] == 1;
                continue;
            }
            if block.iter().all(|x| *x == 0) {
                continue;
            }
            let kind = block[156];
            let mut size = tar::Header::from_byte_slice(&block).entry_size().unwrap_or(0);
            if matches!(kind, b'x' | b'g' | b'L' | b'K') {
                if size > MAX_META {
                    self.flag.store(META_TOO_BIG, Ordering::Relaxed);
                    return Err(io::Error::other("metadata record too large"));
                }
                if kind == b'x' && size > 0 {
                    self.pax = Some(Vec::with_capacity(size as usize));
                }
            } else if let Some(ps) = self.pax_size.take() {
                size = ps;
            }
            self.ext_pending = kind == b'S' && block[482] == 1;
            // The data is padded to whole blocks; a PAX record is collected up to its size only.
            self.data_left = size.div_ceil(512) * 512;
        }
        Ok(())
    }
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.observe(&buf[..n])?;
        Ok(n)
    }
}

/// Passes reads through, failing once `left` bytes have gone by, and remembering why it failed
/// so that the caller can tell a bad stream from a bad disk.
struct Capped<R> {
    inner: R,
    left: u64,
    flag: Arc<AtomicU8>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                if n as u64 > self.left {
                    self.flag.store(TOO_BIG, Ordering::Relaxed);
                    return Err(io::Error::other("layer size limit exceeded"));
                }
                self.left -= n as u64;
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    let _ = self.flag.compare_exchange(0, READ_FAILED, Ordering::Relaxed, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }
}

/// Unpacks a tar stream (already decompressed) into `dest`, an existing empty directory, and
/// returns the digest and size of the stream. `layer` names the layer in errors.
pub fn unpack_layer<R: Read>(layer: &str, tar: R, dest: &Path, limits: &Limits) -> Result<UnpackStats> {
    unpack_layer_with(layer, tar, dest, limits, writers::count_from_env())
}

/// [`unpack_layer`] with `n` writer threads for small files (0 or 1: none).
fn unpack_layer_with<R: Read>(layer: &str, tar: R, dest: &Path, limits: &Limits, n: usize) -> Result<UnpackStats> {
    let flag = Arc::new(AtomicU8::new(0));
    let guard = HeaderGuard {
        inner: tar,
        head: Vec::with_capacity(512),
        data_left: 0,
        ext_pending: false,
        pax: None,
        pax_size: None,
        flag: flag.clone(),
    };
    let capped = Capped { inner: guard, left: limits.max_bytes, flag: flag.clone() };
    let mut archive = tar::Archive::new(HashingReader::new(capped));
    let root = File::open(dest).map_err(|e| ImageError::Unpack { layer: layer.into(), entry: dest.into(), source: e })?;
    let pool = if n > 1 { writers::Writers::start(n) } else { None };
    let mut u = Unpacker { layer, root: root.into(), parent_cache: None, dir_times: Vec::new(), buf: vec![0u8; 1 << 20], content: 0, pool };
    let classify = |e: ImageError, flag: &AtomicU8| -> ImageError {
        match flag.load(Ordering::Relaxed) {
            TOO_BIG => ImageError::LimitExceeded {
                layer: layer.into(),
                what: "its uncompressed size",
                limit: limits.max_bytes,
                var: ENV_MAX_BYTES,
            },
            META_TOO_BIG => ImageError::UnsafeLayer {
                layer: layer.into(),
                reason: format!("it has a PAX or long-name header larger than {MAX_META} bytes"),
            },
            READ_FAILED => match e {
                ImageError::Unpack { source, .. } | ImageError::BadArchive { source, .. } => {
                    ImageError::BadArchive { layer: layer.into(), source }
                }
                other => other,
            },
            _ => e,
        }
    };
    let mut entries: u64 = 0;
    let run = (|| -> Result<()> {
        let iter = archive.entries().map_err(|e| ImageError::BadArchive { layer: layer.into(), source: e })?;
        for entry in iter {
            let mut entry = entry.map_err(|e| ImageError::BadArchive { layer: layer.into(), source: e })?;
            entries += 1;
            if entries > limits.max_entries {
                return Err(ImageError::LimitExceeded {
                    layer: layer.into(),
                    what: "its number of entries",
                    limit: limits.max_entries,
                    var: ENV_MAX_ENTRIES,
                });
            }
            u.entry(&mut entry, limits)?;
        }
        Ok(())
    })();
    if let Err(e) = run {
        return Err(classify(e, &flag));
    }
    u.finish()?;
    let reader = archive.into_inner();
    let (diff_id, tar_size, _) = reader.finish().map_err(|e| classify(ImageError::BadArchive { layer: layer.into(), source: e }, &flag))?;
    Ok(UnpackStats { diff_id, tar_size, entries, content_size: u.content })
}

struct Unpacker<'a> {
    layer: &'a str,
    root: OwnedFd,
    /// The last parent directory resolved (entries come grouped by directory).
    parent_cache: Option<(Vec<u8>, Arc<OwnedFd>)>,
    /// Directories whose mtime is set at the end (writing into them changes it).
    dir_times: Vec<(Vec<u8>, i64)>,
    buf: Vec<u8>,
    content: u64,
    /// The writer threads for small files (none: the reader writes everything).
    pool: Option<writers::Writers>,
}

/// Splits an archive path into its components, dropping `/` and `.`; `..` is an escape.
fn components(raw: &[u8]) -> std::result::Result<Vec<&[u8]>, ()> {
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(()),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in a name"))
}

fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(&b'/')
}

fn show(b: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(b))
}

impl Unpacker<'_> {
    fn unsafe_layer(&self, reason: String) -> ImageError {
        ImageError::UnsafeLayer { layer: self.layer.into(), reason }
    }
    fn io_err(&self, entry: &[u8], e: impl Into<io::Error>) -> ImageError {
        ImageError::Unpack { layer: self.layer.into(), entry: show(entry), source: e.into() }
    }

    /// Opens directory `parts` beneath the root, never following a symlink; with `create`,
    /// missing directories are made (mode 0755, root-owned, as Docker does).
    fn open_dir(&self, parts: &[&[u8]], create: bool, entry: &[u8]) -> Result<OwnedFd> {
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_XDEV);
        if parts.is_empty() {
            return openat2(&self.root, c".", how).map_err(|e| self.io_err(entry, e));
        }
        let path = cstr(&join(parts)).map_err(|e| self.io_err(entry, e))?;
        match openat2(&self.root, path.as_c_str(), how) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) if create => {}
            Err(e) => return Err(self.resolve_error(parts, entry, e)),
        }
        // Walk down, creating what is missing.
        let mut cur = openat2(&self.root, c".", how).map_err(|e| self.io_err(entry, e))?;
        for (i, c) in parts.iter().enumerate() {
            let name = cstr(c).map_err(|e| self.io_err(entry, e))?;
            match nix::sys::stat::mkdirat(&cur, name.as_c_str(), Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(self.io_err(&join(&parts[..=i]), e)),
            }
            cur = openat2(&cur, name.as_c_str(), how).map_err(|e| self.resolve_error(&parts[..=i], entry, e))?;
        }
        Ok(cur)
    }

    fn resolve_error(&self, parts: &[&[u8]], entry: &[u8], e: Errno) -> ImageError {
        match e {
            Errno::ELOOP | Errno::EXDEV | Errno::ENOTDIR => self.unsafe_layer(format!(
                "entry {:?} goes through {:?}, which is a symlink or not a directory",
                show(entry),
                show(&join(parts))
            )),
            e => self.io_err(entry, e),
        }
    }

    fn parent(&mut self, parts: &[&[u8]], entry: &[u8]) -> Result<Arc<OwnedFd>> {
        let key = join(parts);
        if let Some((k, fd)) = &self.parent_cache {
            if *k == key {
                return Ok(fd.clone());
            }
        }
        let fd = Arc::new(self.open_dir(parts, true, entry)?);
        self.parent_cache = Some((key, fd.clone()));
        Ok(fd)
    }

    /// Removes whatever `name` is in `dir` (a tree too), never following symlinks.
    fn remove(&mut self, dir: &OwnedFd, name: &CStr, entry: &[u8]) -> Result<()> {
        // Nothing is removed while a writer may still be creating something there.
        self.barrier()?;
        self.parent_cache = None;
        match nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(Errno::EISDIR) => {
                let path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(OsStr::from_bytes(name.to_bytes()));
                std::fs::remove_dir_all(&path).map_err(|e| self.io_err(entry, e))
            }
            Err(e) => Err(self.io_err(entry, e)),
        }
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, limits: &Limits) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let parts = components(&raw)
            .map_err(|_| self.unsafe_layer(format!("entry {:?} has a '..' component that escapes the layer", show(&raw))))?;
        if parts.len() > limits.max_depth {
            return Err(self.unsafe_layer(format!("entry {:?} is nested deeper than {} levels", show(&raw), limits.max_depth)));
        }
        let kind = entry.header().entry_type();
        let (uid, gid, mtime) = ids_and_time(entry);
        let mode = entry.header().mode().map_err(|e| self.io_err(&raw, e))? & 0o7777;
        let xattrs = xattrs(entry).map_err(|e| ImageError::BadArchive { layer: self.layer.into(), source: e })?;
        // A file still being written at this path, or at a parent of it: let it land first, so
        // that this entry meets what the archive put before it.
        if self.pool.as_ref().is_some_and(|p| p.touches(&parts)) {
            self.barrier()?;
        }

        let Some((name, dir_parts)) = parts.split_last() else {
            // The layer root itself ("./"): only its metadata applies.
            if kind.is_dir() {
                let fd = self.open_dir(&[], false, &raw)?;
                self.set_meta_fd(&fd, uid, gid, mode, &xattrs, &raw)?;
                self.dir_times.push((Vec::new(), mtime));
                return Ok(());
            }
            return Err(self.unsafe_layer(format!("entry {:?} would replace the layer root", show(&raw))));
        };
        let name = *name;
        let dir = self.parent(dir_parts, &raw)?;

        // Whiteouts.
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            if hidden == b".wh..opq" {
                return set_xattr_fd(&dir, "trusted.overlay.opaque", b"y").map_err(|e| self.io_err(&raw, e));
            }
            if hidden.starts_with(b".wh.") || hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Ok(()); // aufs metadata (.wh..wh.plnk, .wh..wh.aufs): nothing to do
            }
            let cname = cstr(hidden).map_err(|e| self.io_err(&raw, e))?;
            self.remove(&dir, &cname, &raw)?;
            return mknodat(&dir, cname.as_c_str(), SFlag::S_IFCHR, Mode::empty(), 0).map_err(|e| self.io_err(&raw, e));
        }

        let cname = cstr(name).map_err(|e| self.io_err(&raw, e))?;
        use tar::EntryType as T;
        match kind {
            T::Directory => {
                match nix::sys::stat::mkdirat(&dir, cname.as_c_str(), Mode::from_bits_truncate(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EEXIST) => {
                        let st = nix::sys::stat::fstatat(&dir, cname.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                            .map_err(|e| self.io_err(&raw, e))?;
                        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                            self.remove(&dir, &cname, &raw)?;
                            nix::sys::stat::mkdirat(&dir, cname.as_c_str(), Mode::from_bits_truncate(0o700))
                                .map_err(|e| self.io_err(&raw, e))?;
                        }
                    }
                    Err(e) => return Err(self.io_err(&raw, e)),
                }
                let fd = openat(
                    &dir,
                    cname.as_c_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.resolve_error(&parts, &raw, e))?;
                self.set_meta_fd(&fd, uid, gid, mode, &xattrs, &raw)?;
                self.dir_times.push((join(&parts), mtime));
            }
            T::Regular | T::Continuous if self.pool.is_some() && entry.size() <= writers::SMALL_FILE => {
                // The writers create with O_EXCL: clear the name here first, as below.
                match nix::sys::stat::fstatat(&*dir, cname.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                    Ok(_) => self.remove(&dir, &cname, &raw)?,
                    Err(Errno::ENOENT) => {}
                    Err(e) => return Err(self.io_err(&raw, e)),
                }
                let mut data = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut data).map_err(|e| self.io_err(&raw, e))?;
                self.content += data.len() as u64;
                let job = writers::Job { dir, name: cname, path: join(&parts), data, uid, gid, mode, mtime, xattrs };
                let pool = self.pool.as_ref().expect("checked above");
                pool.submit(&join(dir_parts), job).map_err(|(p, e)| ImageError::Unpack {
                    layer: self.layer.into(),
                    entry: show(&p),
                    source: e,
                })?;
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                let fd = match openat(&dir, cname.as_c_str(), flags, Mode::from_bits_truncate(0o600)) {
                    Ok(fd) => fd,
                    Err(Errno::EEXIST) => {
                        self.remove(&dir, &cname, &raw)?;
                        openat(&dir, cname.as_c_str(), flags, Mode::from_bits_truncate(0o600)).map_err(|e| self.io_err(&raw, e))?
                    }
                    Err(e) => return Err(self.io_err(&raw, e)),
                };
                let mut file = File::from(fd);
                self.content += copy_with(entry, &mut file, &mut self.buf).map_err(|e| self.io_err(&raw, e))?;
                let fd: OwnedFd = file.into();
                self.set_meta_fd(&fd, uid, gid, mode, &xattrs, &raw)?;
                set_times_fd(&fd, mtime).map_err(|e| self.io_err(&raw, e))?;
            }
            T::Symlink => {
                let target = entry.link_name_bytes().map(|c| c.into_owned()).unwrap_or_default();
                let ctarget = cstr(&target).map_err(|e| self.io_err(&raw, e))?;
                if let Err(Errno::EEXIST) = nix::unistd::symlinkat(ctarget.as_c_str(), &dir, cname.as_c_str()) {
                    self.remove(&dir, &cname, &raw)?;
                    nix::unistd::symlinkat(ctarget.as_c_str(), &dir, cname.as_c_str()).map_err(|e| self.io_err(&raw, e))?;
                }
                nix::unistd::fchownat(&dir, cname.as_c_str(), Some(uid.into()), Some(gid.into()), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(|e| self.io_err(&raw, e))?;
                set_times_at(&dir, &cname, mtime).map_err(|e| self.io_err(&raw, e))?;
            }
            T::Link => {
                let target = entry.link_name_bytes().map(|c| c.into_owned()).unwrap_or_default();
                let tparts = components(&target).map_err(|_| {
                    self.unsafe_layer(format!("hardlink {:?} points to {:?}, outside the layer", show(&raw), show(&target)))
                })?;
                let Some((tname, tdir_parts)) = tparts.split_last() else {
                    return Err(self.unsafe_layer(format!("hardlink {:?} points to the layer root", show(&raw))));
                };
                // Its target is complete before it is linked.
                if self.pool.as_ref().is_some_and(|p| p.touches(&tparts)) {
                    self.barrier()?;
                }
                let tdir = match self.open_dir(tdir_parts, false, &raw) {
                    Ok(fd) => fd,
                    Err(ImageError::Unpack { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => {
                        return Err(self.unsafe_layer(format!(
                            "hardlink {:?} points to {:?}, which is not in the layer",
                            show(&raw),
                            show(&target)
                        )));
                    }
                    Err(e) => return Err(e),
                };
                let ctname = cstr(tname).map_err(|e| self.io_err(&raw, e))?;
                match nix::unistd::linkat(&tdir, ctname.as_c_str(), &dir, cname.as_c_str(), AtFlags::empty()) {
                    Ok(()) => {}
                    Err(Errno::EEXIST) => {
                        if !same_file(&tdir, &ctname, &dir, &cname) {
                            self.remove(&dir, &cname, &raw)?;
                            nix::unistd::linkat(&tdir, ctname.as_c_str(), &dir, cname.as_c_str(), AtFlags::empty())
                                .map_err(|e| self.io_err(&raw, e))?;
                        }
                    }
                    Err(Errno::ENOENT) => {
                        return Err(self.unsafe_layer(format!(
                            "hardlink {:?} points to {:?}, which is not in the layer",
                            show(&raw),
                            show(&target)
                        )));
                    }
                    Err(e) => return Err(self.io_err(&raw, e)),
                }
            }
            T::Char | T::Block | T::Fifo => {
                let sflag = match kind {
                    T::Char => SFlag::S_IFCHR,
                    T::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                let dev = libc::makedev(major, minor);
                if let Err(Errno::EEXIST) = mknodat(&dir, cname.as_c_str(), sflag, Mode::from_bits_truncate(0o600), dev) {
                    self.remove(&dir, &cname, &raw)?;
                    mknodat(&dir, cname.as_c_str(), sflag, Mode::from_bits_truncate(0o600), dev).map_err(|e| self.io_err(&raw, e))?;
                }
                // A node is opened with O_PATH only: opening a device or fifo for real could block or act.
                let fd = openat(&dir, cname.as_c_str(), OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
                    .map_err(|e| self.io_err(&raw, e))?;
                nix::unistd::fchownat(&fd, c"", Some(uid.into()), Some(gid.into()), AtFlags::AT_EMPTY_PATH)
                    .map_err(|e| self.io_err(&raw, e))?;
                let proc = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL");
                nix::sys::stat::fchmodat(
                    nix::fcntl::AT_FDCWD,
                    proc.as_c_str(),
                    Mode::from_bits_truncate(mode),
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                )
                .map_err(|e| self.io_err(&raw, e))?;
                set_times_at(&dir, &cname, mtime).map_err(|e| self.io_err(&raw, e))?;
            }
            // Metadata-only or unknown entry types carry nothing to write.
            _ => {}
        }
        Ok(())
    }

    fn set_meta_fd(&self, fd: &OwnedFd, uid: u32, gid: u32, mode: u32, xattrs: &[(String, Vec<u8>)], raw: &[u8]) -> Result<()> {
        apply_meta(fd, uid, gid, mode, xattrs).map_err(|e| self.io_err(raw, e))
    }

    /// Waits for the writers to be idle; the first error one met.
    fn barrier(&mut self) -> Result<()> {
        match &self.pool {
            Some(p) => p.barrier().map_err(|(path, e)| self.io_err(&path, e)),
            None => Ok(()),
        }
    }

    fn finish(&mut self) -> Result<()> {
        if let Some(p) = self.pool.take() {
            p.finish().map_err(|(path, e)| self.io_err(&path, e))?;
        }
        self.parent_cache = None;
        // The last entry for a directory wins; setting a directory's time leaves its parent's alone.
        let times = std::mem::take(&mut self.dir_times);
        let mut seen = std::collections::HashSet::new();
        for (path, mtime) in times.into_iter().rev() {
            if !seen.insert(path.clone()) {
                continue;
            }
            let parts: Vec<&[u8]> = if path.is_empty() { Vec::new() } else { path.split(|b| *b == b'/').collect() };
            match self.open_dir(&parts, false, &path) {
                Ok(fd) => set_times_fd(&fd, mtime).map_err(|e| self.io_err(&path, e))?,
                // Replaced by a later entry: nothing to do.
                Err(ImageError::Unpack { .. }) | Err(ImageError::UnsafeLayer { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Sets owner, mode (after the owner, as chown clears setuid/setgid) and xattrs on `fd`. A file
/// system without user xattrs does not fail the unpack, as with Docker.
fn apply_meta(fd: &OwnedFd, uid: u32, gid: u32, mode: u32, xattrs: &[(String, Vec<u8>)]) -> io::Result<()> {
    nix::unistd::fchown(fd, Some(uid.into()), Some(gid.into()))?;
    nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(mode))?;
    for (k, v) in xattrs {
        if let Err(e) = set_xattr_fd(fd, k, v) {
            if !matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::EPERM)) {
                return Err(e);
            }
        }
    }
    Ok(())
}

fn copy_with<R: Read, W: Write>(r: &mut R, w: &mut W, buf: &mut [u8]) -> io::Result<u64> {
    let mut total = 0;
    loop {
        let n = match r.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}

fn same_file(d1: &OwnedFd, n1: &CStr, d2: &OwnedFd, n2: &CStr) -> bool {
    let a = nix::sys::stat::fstatat(d1, n1, AtFlags::AT_SYMLINK_NOFOLLOW);
    let b = nix::sys::stat::fstatat(d2, n2, AtFlags::AT_SYMLINK_NOFOLLOW);
    matches!((a, b), (Ok(a), Ok(b)) if a.st_dev == b.st_dev && a.st_ino == b.st_ino)
}

/// The owner and mtime, preferring PAX records (which carry ids too large for the header).
fn ids_and_time<R: Read>(entry: &mut tar::Entry<'_, R>) -> (u32, u32, i64) {
    let h = entry.header();
    let mut uid = h.uid().unwrap_or(0);
    let mut gid = h.gid().unwrap_or(0);
    let mut mtime = h.mtime().unwrap_or(0) as i64;
    if let Ok(Some(pax)) = entry.pax_extensions() {
        for ext in pax.flatten() {
            let v = ext.value().ok().map(str::to_string);
            match (ext.key().ok(), v) {
                (Some("uid"), Some(v)) => uid = v.parse().unwrap_or(uid),
                (Some("gid"), Some(v)) => gid = v.parse().unwrap_or(gid),
                (Some("mtime"), Some(v)) => {
                    mtime = v.split('.').next().and_then(|s| s.parse().ok()).unwrap_or(mtime);
                }
                _ => {}
            }
        }
    }
    (uid.min(u32::MAX as u64) as u32, gid.min(u32::MAX as u64) as u32, mtime)
}

/// The xattrs an entry carries (`SCHILY.xattr.*`), less the overlay's own.
fn xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(pax) = entry.pax_extensions()? {
        for ext in pax {
            let ext = ext?;
            if let Ok(key) = ext.key() {
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    if !name.starts_with("trusted.overlay.") && !name.is_empty() {
                        out.push((name.to_string(), ext.value_bytes().to_vec()));
                    }
                }
            }
        }
    }
    Ok(out)
}

fn set_xattr_fd(fd: &impl AsFd, name: &str, value: &[u8]) -> io::Result<()> {
    let cname = CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in xattr name"))?;
    file::fset_xattr(fd.as_fd().as_raw_fd(), &cname, value)
}

fn set_times_fd(fd: &impl AsFd, mtime: i64) -> io::Result<()> {
    file::futimens(fd.as_fd().as_raw_fd(), (mtime, 0))
}

fn set_times_at(dir: &impl AsFd, name: &CStr, mtime: i64) -> io::Result<()> {
    file::utimens_at(dir.as_fd().as_raw_fd(), OsStr::from_bytes(name.to_bytes()), (mtime, 0), libc::AT_SYMLINK_NOFOLLOW)
}

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    file::lget_xattr(path, &CString::new(name).ok()?, 256)
}

fn list_xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for n in file::llist_xattr(path, 4096) {
        let Ok(name) = String::from_utf8(n) else { continue };
        if name.starts_with("trusted.overlay.") {
            continue;
        }
        let cn = CString::new(name.as_str()).expect("from a NUL-split list");
        if let Some(val) = file::lget_xattr(path, &cn, 65536) {
            out.push((name, val));
        }
    }
    out
}

/// Writes the contents of `dir`, an overlay upper directory (or any plain tree), as an OCI layer
/// tar to `out`: 0/0 character devices become `.wh.NAME`, opaque directories get
/// `.wh..wh..opq`, hardlinks inside the tree become tar links. Entries are sorted, and times are
/// kept, so the same tree gives the same tar.
pub fn pack_dir<W: Write>(dir: &Path, out: W) -> io::Result<W> {
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    b.follow_symlinks(false);
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    pack_walk(&mut b, dir, Path::new(""), &mut links)?;
    b.into_inner()
}

fn pack_walk<W: Write>(b: &mut tar::Builder<W>, base: &Path, rel: &Path, links: &mut HashMap<(u64, u64), PathBuf>) -> io::Result<()> {
    let abs = base.join(rel);
    let mut names: Vec<_> = std::fs::read_dir(&abs)?.map(|e| e.map(|e| e.file_name())).collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let path = abs.join(&name);
        let relp = rel.join(&name);
        let md = std::fs::symlink_metadata(&path)?;
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            let mut wh_name = std::ffi::OsString::from(".wh.");
            wh_name.push(&name);
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(0);
            h.set_mode(0o600);
            h.set_mtime(md.mtime().max(0) as u64);
            b.append_data(&mut h, rel.join(wh_name), io::empty())?;
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&md, tar::HeaderMode::Complete);
        let xattrs = list_xattrs(&path);
        if !xattrs.is_empty() {
            let pax: Vec<(String, Vec<u8>)> = xattrs.into_iter().map(|(k, v)| (format!("SCHILY.xattr.{k}"), v)).collect();
            b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        }
        if ft.is_dir() {
            h.set_size(0);
            b.append_data(&mut h, &relp, io::empty())?;
            if get_xattr(&path, "trusted.overlay.opaque").as_deref() == Some(b"y") {
                let mut w = tar::Header::new_gnu();
                w.set_entry_type(tar::EntryType::Regular);
                w.set_size(0);
                w.set_mode(0o600);
                b.append_data(&mut w, relp.join(".wh..wh..opq"), io::empty())?;
            }
            pack_walk(b, base, &relp, links)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path)?;
            h.set_size(0);
            b.append_link(&mut h, &relp, &target)?;
        } else if ft.is_file() {
            if md.nlink() > 1 {
                if let Some(first) = links.get(&(md.dev(), md.ino())) {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    b.append_link(&mut h, &relp, first)?;
                    continue;
                }
                links.insert((md.dev(), md.ino()), relp.clone());
            }
            let f = File::open(&path)?;
            b.append_data(&mut h, &relp, f)?;
        } else {
            // devices, fifos, sockets (sockets are skipped, as Docker does)
            if ft.is_socket() {
                continue;
            }
            h.set_size(0);
            b.append_data(&mut h, &relp, io::empty())?;
        }
    }
    Ok(())
}

/// Opens `path` as a directory fd (used by tests and the store).
pub fn open_dir_fd(path: &Path) -> io::Result<OwnedFd> {
    file::open(path, libc::O_RDONLY | libc::O_DIRECTORY)
}

mod writers;

#[cfg(test)]
mod tests;
