//! Helpers for the builder's tests: a state root with the busybox image, project folders, and
//! reading back what an image holds (through `berth image save`, as a user could).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Output;

use super::TestRoot;

/// A state root with `busybox:latest` imported from Debian's busybox-static.
pub fn root_with_busybox() -> TestRoot {
    super::expect_root();
    let t = TestRoot::new();
    let tar = t.scratch().join("busybox.tar");
    busybox_tar(&tar);
    t.ok(["image", "import", tar.to_str().unwrap(), "busybox:latest", "--change", "CMD [\"sh\"]"]);
    t
}

/// Creates the build network of `t` (`berth-build`, which RUN steps join) on a subnet of the
/// build tests' range, 10.212.0.0/16, one /24 per test, and returns its gateway address.
pub fn build_network(t: &TestRoot) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let exe = std::env::current_exe().unwrap().file_name().unwrap().to_string_lossy().into_owned();
    let base = if exe.starts_with("build_run") {
        0
    } else if exe.starts_with("build_compose") {
        60
    } else if exe.starts_with("build_basic") {
        120
    } else {
        180
    };
    let n = base + NEXT.fetch_add(1, Ordering::SeqCst) % 60;
    t.ok(["network", "create", "--subnet", &format!("10.212.{n}.0/24"), "berth-build"]);
    format!("10.212.{n}.1")
}

/// Writes the busybox rootfs tarball (as `make_busybox_tar` does) without ever executing a copy
/// being written, which another test thread's fork could make fail with "text file busy".
pub fn busybox_tar(path: &Path) {
    let header = || {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h
    };
    let bb = super::host_busybox();
    let list = std::process::Command::new(&bb).arg("--list").output().expect("busybox --list");
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let dir = |b: &mut tar::Builder<std::fs::File>, p: &str, mode: u32| {
        let mut h = header();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        b.append_data(&mut h, p, std::io::empty()).unwrap();
    };
    for d in ["bin", "etc", "proc", "sys", "dev", "root", "var", "var/www"] {
        dir(&mut b, d, 0o755);
    }
    dir(&mut b, "tmp", 0o1777);
    let data = std::fs::read(&bb).unwrap();
    let mut h = header();
    h.set_mode(0o755);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, "bin/busybox", data.as_slice()).unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            let mut h = header();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            b.append_link(&mut h, format!("bin/{applet}"), "busybox").unwrap();
        }
    }
    for (p, c) in [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"),
        ("etc/group", "root:x:0:\nnobody:x:65534:\n"),
    ] {
        let mut h = header();
        h.set_mode(0o644);
        h.set_size(c.len() as u64);
        b.append_data(&mut h, p, c.as_bytes()).unwrap();
    }
    b.finish().unwrap();
}

/// Writes `files` (path, content) under `dir`, creating folders.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (p, content) in files {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

/// A file of an image, as its layers leave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileInfo {
    Dir { mode: u32, uid: u64, gid: u64 },
    File { mode: u32, uid: u64, gid: u64, content: Vec<u8> },
    Symlink(String),
}

/// Every path of `image` (layers applied in order, whiteouts honoured), read from `image save`.
pub fn image_files(t: &TestRoot, image: &str) -> BTreeMap<String, FileInfo> {
    let out = t.scratch().join("save.tar");
    t.ok(["image", "save", "-o", out.to_str().unwrap(), image]);
    let data = std::fs::read(&out).unwrap();
    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut ar = tar::Archive::new(data.as_slice());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().display().to_string();
        let mut v = Vec::new();
        e.read_to_end(&mut v).unwrap();
        blobs.insert(p, v);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&blobs["manifest.json"]).unwrap();
    let mut files = BTreeMap::new();
    for layer in manifest[0]["Layers"].as_array().unwrap() {
        let mut ar = tar::Archive::new(blobs[layer.as_str().unwrap()].as_slice());
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let p = e.path().unwrap().display().to_string();
            let p = p.trim_start_matches("./").trim_end_matches('/').to_string();
            let name = p.rsplit('/').next().unwrap_or("").to_string();
            if let Some(gone) = name.strip_prefix(".wh.") {
                let dir = p[..p.len() - name.len()].to_string();
                if gone == ".wh..opq" {
                    files.retain(|k: &String, _| !k.starts_with(&dir) || k.len() == dir.len());
                } else {
                    let victim = format!("{dir}{gone}");
                    files.retain(|k: &String, _| k != &victim && !k.starts_with(&format!("{victim}/")));
                }
                continue;
            }
            let h = e.header().clone();
            let mode = h.mode().unwrap() & 0o7777;
            let (uid, gid) = (h.uid().unwrap(), h.gid().unwrap());
            let info = match h.entry_type() {
                tar::EntryType::Directory => FileInfo::Dir { mode, uid, gid },
                tar::EntryType::Symlink => FileInfo::Symlink(e.link_name().unwrap().unwrap().display().to_string()),
                _ => {
                    let mut v = Vec::new();
                    e.read_to_end(&mut v).unwrap();
                    FileInfo::File { mode, uid, gid, content: v }
                }
            };
            files.insert(p, info);
        }
    }
    files
}

/// The content of a regular file of `files`.
pub fn content(files: &BTreeMap<String, FileInfo>, path: &str) -> String {
    match files.get(path) {
        Some(FileInfo::File { content, .. }) => String::from_utf8_lossy(content).into_owned(),
        other => panic!("{path} is not a file in the image: {other:?}"),
    }
}

/// `berth -f <dir>/compose.yaml ARGS...`.
pub fn in_project(t: &TestRoot, dir: &Path, args: &[&str]) -> Output {
    let mut c = t.cmd(["-f", dir.join("compose.yaml").to_str().unwrap()]);
    c.args(args);
    c.output().expect("run berth")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(o: Output) -> String {
    assert!(o.status.success(), "berth failed ({}):\nstdout: {}\nstderr: {}", o.status, stdout(&o), stderr(&o));
    stdout(&o)
}

/// The value of `berth image inspect IMAGE --format TEMPLATE`.
pub fn inspect(t: &TestRoot, image: &str, format: &str) -> String {
    t.ok(["image", "inspect", image, "--format", format]).trim().to_string()
}
