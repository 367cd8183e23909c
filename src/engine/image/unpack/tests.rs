//! Hostile and ordinary layers, unpacked for real (these need root for chown and mknod).
use super::*;
use std::os::unix::fs::PermissionsExt;

/// Appends an entry whose name is written as-is (the tar crate's builder refuses `..`).
fn raw(b: &mut tar::Builder<Vec<u8>>, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    if !link.is_empty() {
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    raw(b, name, tar::EntryType::Regular, "", data);
}

struct Scene {
    _tmp: tempfile::TempDir,
    dest: PathBuf,
    outside: PathBuf,
}

fn scene() -> Scene {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("layer");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&dest).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("sentinel"), b"untouched").unwrap();
    Scene { _tmp: tmp, dest, outside }
}

impl Scene {
    fn unpack(&self, tar: Vec<u8>) -> Result<UnpackStats> {
        unpack_layer("test", &tar[..], &self.dest, &Limits::default())
    }
    fn outside_untouched(&self) {
        let names: Vec<_> = std::fs::read_dir(&self.outside).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("sentinel")], "something was written outside the layer");
        assert_eq!(std::fs::read(self.outside.join("sentinel")).unwrap(), b"untouched");
    }
}

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn ordinary_layer_keeps_owners_modes_links_devices_and_whiteouts() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let s = scene();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o750);
    h.set_uid(1000);
    h.set_gid(1001);
    h.set_size(0);
    h.set_mtime(1_500_000_000);
    b.append_data(&mut h, "app/", io::empty()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o4755);
    h.set_uid(33);
    h.set_gid(34);
    h.set_size(5);
    h.set_mtime(1_500_000_001);
    b.append_pax_extensions([("SCHILY.xattr.user.test", &b"v1"[..]), ("SCHILY.xattr.trusted.overlay.redirect", &b"/x"[..])]).unwrap();
    b.append_data(&mut h, "app/run", &b"hello"[..]).unwrap();
    raw(&mut b, "app/link", tar::EntryType::Link, "app/run", b"");
    raw(&mut b, "app/sym", tar::EntryType::Symlink, "/etc/passwd", b"");
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Char);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_mode(0o666);
    h.set_size(0);
    b.append_data(&mut h, "dev/null", io::empty()).unwrap();
    raw(&mut b, "pipe", tar::EntryType::Fifo, "", b"");
    file(&mut b, "etc/.wh.gone", b"");
    file(&mut b, "var/.wh..wh..opq", b"");
    file(&mut b, "./nested/deep/file", b"x");
    let tar = b.into_inner().unwrap();
    let stats = s.unpack(tar.clone()).unwrap();
    assert_eq!(stats.diff_id, Digest::of(&tar));
    assert_eq!(stats.tar_size, tar.len() as u64);

    let d = &s.dest;
    let md = std::fs::metadata(d.join("app")).unwrap();
    assert_eq!((md.uid(), md.gid(), md.permissions().mode() & 0o7777, md.mtime()), (1000, 1001, 0o750, 1_500_000_000));
    let md = std::fs::metadata(d.join("app/run")).unwrap();
    assert_eq!((md.uid(), md.gid(), md.permissions().mode() & 0o7777), (33, 34, 0o4755));
    assert_eq!(md.nlink(), 2);
    assert_eq!(get_xattr(&d.join("app/run"), "user.test").as_deref(), Some(&b"v1"[..]));
    assert_eq!(get_xattr(&d.join("app/run"), "trusted.overlay.redirect"), None);
    assert_eq!(std::fs::read_link(d.join("app/sym")).unwrap(), Path::new("/etc/passwd"));
    let md = std::fs::symlink_metadata(d.join("dev/null")).unwrap();
    assert!(md.file_type().is_char_device());
    assert_eq!(md.rdev(), libc::makedev(1, 3));
    assert!(std::fs::symlink_metadata(d.join("pipe")).unwrap().file_type().is_fifo());
    let wh = std::fs::symlink_metadata(d.join("etc/gone")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    assert_eq!(get_xattr(&d.join("var"), "trusted.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert_eq!(std::fs::read(d.join("nested/deep/file")).unwrap(), b"x");

    // And back: packing the tree gives the whiteouts in OCI form.
    let packed = pack_dir(d, Vec::new()).unwrap();
    let mut names = Vec::new();
    for e in tar::Archive::new(&packed[..]).entries().unwrap() {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    assert!(names.contains(&"etc/.wh.gone".to_string()), "{names:?}");
    assert!(names.contains(&"var/.wh..wh..opq".to_string()), "{names:?}");
    let again = scene();
    again.unpack(packed).unwrap();
    assert_eq!(std::fs::metadata(again.dest.join("app/link")).unwrap().nlink(), 2);
}

#[test]
fn dotdot_entries_are_refused() {
    let s = scene();
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "../outside/sentinel", b"pwned");
    let err = s.unpack(b.into_inner().unwrap()).unwrap_err();
    assert!(matches!(err, ImageError::UnsafeLayer { .. }), "{err}");
    s.outside_untouched();
}

#[test]
fn absolute_paths_stay_inside() {
    let s = scene();
    let abs = format!("{}/sentinel", s.outside.display());
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, &abs, b"pwned");
    s.unpack(b.into_inner().unwrap()).unwrap();
    s.outside_untouched();
    assert_eq!(std::fs::read(s.dest.join(abs.trim_start_matches('/'))).unwrap(), b"pwned");
}

#[test]
fn a_file_through_a_symlink_is_refused() {
    let s = scene();
    let mut b = tar::Builder::new(Vec::new());
    raw(&mut b, "evil", tar::EntryType::Symlink, s.outside.to_str().unwrap(), b"");
    file(&mut b, "evil/sentinel", b"pwned");
    let err = s.unpack(b.into_inner().unwrap()).unwrap_err();
    assert!(matches!(err, ImageError::UnsafeLayer { .. }), "{err}");
    s.outside_untouched();
    // The same with a relative symlink climbing out.
    let s = scene();
    let mut b = tar::Builder::new(Vec::new());
    raw(&mut b, "evil", tar::EntryType::Symlink, "../outside", b"");
    file(&mut b, "evil/new", b"pwned");
    assert!(s.unpack(b.into_inner().unwrap()).is_err());
    s.outside_untouched();
}

#[test]
fn a_file_replacing_a_symlink_replaces_the_link_only() {
    let s = scene();
    let target = s.outside.join("sentinel");
    let mut b = tar::Builder::new(Vec::new());
    raw(&mut b, "f", tar::EntryType::Symlink, target.to_str().unwrap(), b"");
    file(&mut b, "f", b"mine");
    s.unpack(b.into_inner().unwrap()).unwrap();
    s.outside_untouched();
    assert_eq!(std::fs::read(s.dest.join("f")).unwrap(), b"mine");
}

#[test]
fn a_hardlink_to_outside_is_refused() {
    let s = scene();
    let before = std::fs::metadata("/etc/passwd").unwrap().nlink();
    for target in ["/etc/passwd", "../outside/sentinel"] {
        let mut b = tar::Builder::new(Vec::new());
        raw(&mut b, "pw", tar::EntryType::Link, target, b"");
        let err = s.unpack(b.into_inner().unwrap()).unwrap_err();
        assert!(matches!(err, ImageError::UnsafeLayer { .. }), "{target}: {err}");
    }
    // A hardlink through a symlinked directory is refused too.
    let mut b = tar::Builder::new(Vec::new());
    raw(&mut b, "d", tar::EntryType::Symlink, s.outside.to_str().unwrap(), b"");
    raw(&mut b, "pw2", tar::EntryType::Link, "d/sentinel", b"");
    assert!(s.unpack(b.into_inner().unwrap()).is_err());
    assert_eq!(std::fs::metadata("/etc/passwd").unwrap().nlink(), before);
    assert_eq!(std::fs::metadata(s.outside.join("sentinel")).unwrap().nlink(), 1);
    s.outside_untouched();
}

#[test]
fn whiteouts_outside_or_through_symlinks_are_refused() {
    let s = scene();
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "../outside/.wh.sentinel", b"");
    assert!(s.unpack(b.into_inner().unwrap()).is_err());
    let mut b = tar::Builder::new(Vec::new());
    raw(&mut b, "evil", tar::EntryType::Symlink, s.outside.to_str().unwrap(), b"");
    file(&mut b, "evil/.wh.sentinel", b"");
    file(&mut b, "evil/.wh..wh..opq", b"");
    assert!(s.unpack(b.into_inner().unwrap()).is_err());
    s.outside_untouched();
    assert_eq!(get_xattr(&s.outside, "trusted.overlay.opaque"), None);
}

#[test]
fn device_nodes_stay_in_the_layer() {
    if !root() {
        return;
    }
    let s = scene();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Block);
    h.set_device_major(8).unwrap();
    h.set_device_minor(0).unwrap();
    h.set_mode(0o666);
    h.set_size(0);
    h.as_old_mut().name[..13].copy_from_slice(b"../outside/sd");
    h.set_cksum();
    b.append(&h, io::empty()).unwrap();
    assert!(s.unpack(b.into_inner().unwrap()).is_err());
    s.outside_untouched();
}

#[test]
fn limits_stop_bombs() {
    let s = scene();
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..20 {
        file(&mut b, &format!("f{i}"), b"");
    }
    let tar = b.into_inner().unwrap();
    let limits = Limits { max_entries: 10, ..Limits::default() };
    let err = unpack_layer("t", &tar[..], &s.dest, &limits).unwrap_err();
    assert!(matches!(err, ImageError::LimitExceeded { .. }), "{err}");
    assert!(err.to_string().contains(ENV_MAX_ENTRIES));

    let s = scene();
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "big", &vec![0u8; 1 << 20]);
    let tar = b.into_inner().unwrap();
    let limits = Limits { max_bytes: 64 << 10, ..Limits::default() };
    let err = unpack_layer("t", &tar[..], &s.dest, &limits).unwrap_err();
    assert!(matches!(err, ImageError::LimitExceeded { .. }), "{err}");
}

#[test]
fn truncated_gzip_is_a_bad_archive() {
    let s = scene();
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "data", &(0..200_000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>());
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let cut = &gz[..gz.len() / 2];
    let (c, r) = decompress(cut).unwrap();
    assert_eq!(c, Compression::Gzip);
    let err = unpack_layer("t", r, &s.dest, &Limits::default()).unwrap_err();
    assert!(matches!(err, ImageError::BadArchive { .. }), "{err}");
    // The whole stream unpacks, and its diff ID is the digest of the tar.
    let s = scene();
    let (_, r) = decompress(&gz[..]).unwrap();
    assert_eq!(unpack_layer("t", r, &s.dest, &Limits::default()).unwrap().diff_id, Digest::of(&tar));
    let z = zstd::encode_all(&tar[..], 1).unwrap();
    let s = scene();
    let (c, r) = decompress(&z[..]).unwrap();
    assert_eq!(c, Compression::Zstd);
    assert_eq!(unpack_layer("t", r, &s.dest, &Limits::default()).unwrap().diff_id, Digest::of(&tar));
}

#[test]
fn a_huge_pax_header_is_refused_before_it_is_read() {
    let s = scene();
    let mut b = tar::Builder::new(Vec::new());
    let big = vec![b'a'; (MAX_META as usize) + 10];
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(big.len() as u64);
    h.set_path("pax").unwrap();
    h.set_cksum();
    b.append(&h, &big[..]).unwrap();
    file(&mut b, "after", b"x");
    let err = s.unpack(b.into_inner().unwrap()).unwrap_err();
    assert!(matches!(err, ImageError::UnsafeLayer { .. }), "{err}");
    // Ordinary PAX records and GNU sparse files pass the guard.
    let s = scene();
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("SCHILY.xattr.user.k", &b"v"[..])]).unwrap();
    file(&mut b, "ok", b"fine");
    s.unpack(b.into_inner().unwrap()).unwrap();
    assert_eq!(std::fs::read(s.dest.join("ok")).unwrap(), b"fine");
}

#[test]
fn the_guard_follows_a_pax_size_override() {
    assert_eq!(pax_size(b"12 size=700\n19 path=a/long/name\n"), Some(700));
    assert_eq!(pax_size(b"19 path=a/long/name\n"), None);
    // A PAX size record larger than the header's size field: the guard must skip the whole
    // data, which here looks like a huge PAX header, and not refuse the layer.
    let mut data = vec![0u8; 2048];
    let mut fake = tar::Header::new_ustar();
    fake.set_entry_type(tar::EntryType::XHeader);
    fake.set_size(10 << 20);
    fake.set_cksum();
    data[512..1024].copy_from_slice(fake.as_bytes());
    let mut out = Vec::new();
    let rec = format!("{} size={}\n", 6 + 1 + data.len().to_string().len() + 6, data.len());
    let rec = if rec.len() != rec.split(' ').next().unwrap().parse::<usize>().unwrap() {
        format!("{} size={}\n", rec.len(), data.len())
    } else {
        rec
    };
    let mut x = tar::Header::new_ustar();
    x.set_entry_type(tar::EntryType::XHeader);
    x.set_size(rec.len() as u64);
    x.set_path("pax").unwrap();
    x.set_cksum();
    out.extend_from_slice(x.as_bytes());
    out.extend_from_slice(rec.as_bytes());
    out.resize(out.len().div_ceil(512) * 512, 0);
    let mut h = tar::Header::new_ustar();
    h.set_path("big").unwrap();
    h.set_size(0);
    h.set_mode(0o644);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(&data);
    out.resize(out.len() + 1024, 0);
    let s = scene();
    s.unpack(out).unwrap();
    assert_eq!(std::fs::metadata(s.dest.join("big")).unwrap().len(), 2048);
}

/// Everything a layer directory holds, to compare two unpacks: path, kind, owner, mode, mtime,
/// content or link target, and which paths share an inode.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut inodes: HashMap<u64, String> = HashMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let p = dir.join(&rel);
        let md = std::fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let what = if ft.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().file_name()).collect();
            names.sort();
            for n in names.into_iter().rev() {
                stack.push(rel.join(n));
            }
            "dir".to_string()
        } else if ft.is_symlink() {
            format!("link {}", std::fs::read_link(&p).unwrap().display())
        } else if ft.is_file() {
            let linked = inodes.entry(md.ino()).or_insert_with(|| rel.display().to_string()).clone();
            format!("file {:?} inode-of {linked}", String::from_utf8_lossy(&std::fs::read(&p).unwrap()))
        } else {
            format!("node {:o}", md.mode() & libc::S_IFMT)
        };
        out.push(format!("{} {what} {}:{} {:o} {}", rel.display(), md.uid(), md.gid(), md.mode() & 0o7777, md.mtime()));
    }
    out
}

#[test]
fn writer_threads_give_the_same_layer_as_one_thread() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut b = tar::Builder::new(Vec::new());
    raw(&mut b, "d/", tar::EntryType::Directory, "", b"");
    for i in 0..60 {
        file(&mut b, &format!("d/f{i}"), format!("content {i}").as_bytes());
        if i % 10 == 0 {
            raw(&mut b, &format!("d/sub{i}/"), tar::EntryType::Directory, "", b"");
            file(&mut b, &format!("d/sub{i}/g"), b"nested");
        }
    }
    // A file replaced by a directory, by another file, by a whiteout; a hardlink to a file just
    // written; a symlink replacing a file; a big file written by the reader itself.
    raw(&mut b, "d/f1/", tar::EntryType::Directory, "", b"");
    file(&mut b, "d/f1/x", b"in the new dir");
    file(&mut b, "d/f2", b"second version");
    file(&mut b, "d/.wh.f4", b"");
    raw(&mut b, "e/h", tar::EntryType::Link, "d/f3", b"");
    raw(&mut b, "d/f5", tar::EntryType::Symlink, "f6", b"");
    file(&mut b, "e/big", &vec![7u8; (writers::SMALL_FILE + 5) as usize]);
    // A directory replaced by a file, with files still in flight inside it.
    file(&mut b, "d/sub10", b"now a file");
    let tar = b.into_inner().unwrap();

    let (one, many) = (scene(), scene());
    let a = unpack_layer_with("test", &tar[..], &one.dest, &Limits::default(), 1).unwrap();
    let b = unpack_layer_with("test", &tar[..], &many.dest, &Limits::default(), 4).unwrap();
    assert_eq!((a.diff_id, a.content_size), (b.diff_id, b.content_size));
    assert_eq!(listing(&one.dest), listing(&many.dest));
    let l = listing(&many.dest);
    assert!(l.iter().any(|x| x.starts_with("d/f1/x file \"in the new dir\"")), "{l:#?}");
    assert!(l.iter().any(|x| x.starts_with("d/f2 file \"second version\"")), "{l:#?}");
    assert!(l.iter().any(|x| x.starts_with("e/h file \"content 3\" inode-of d/f3")), "{l:#?}");
    assert!(l.iter().any(|x| x.starts_with("d/sub10 file \"now a file\"")), "{l:#?}");
}

#[test]
fn writer_threads_refuse_a_path_through_a_file_as_one_thread_does() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "a", b"a file");
    file(&mut b, "a/b", b"under a file");
    let tar = b.into_inner().unwrap();
    for n in [1, 4] {
        let s = scene();
        let e = unpack_layer_with("test", &tar[..], &s.dest, &Limits::default(), n).unwrap_err();
        assert!(matches!(e, ImageError::UnsafeLayer { .. }), "{n} writers: {e}");
        s.outside_untouched();
    }
}
