//! Shared integration-test harness: run the built binary as a user would, in a private state
//! root that is torn down (processes, mounts, cgroups, links, rules) even when the test fails.
//! Area-specific helpers live in their own files next to this one.
#![allow(dead_code)]

pub mod runtime;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod net;
pub mod query;

pub mod compose;

/// The berth binary under test: cargo's for the integration tests; for the benchmarks (cargo
/// examples, which cargo gives no such path) the one their build made, two folders up
/// (`target/release/examples/x` runs `target/release/berth`).
pub fn berth_bin() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_berth") {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().expect("the benchmark's own path");
            exe.parent().and_then(Path::parent).map(|d| d.join("berth")).expect("the benchmark runs from target/<profile>/examples")
        }
    }
}

/// Prints `skipped: <why>` on the test's output: a test that cannot check what it is for says so,
/// and never passes silently. Tests use [`skip!`] and [`require_root!`]; a helper that returns
/// `None` to its test calls this first.
pub fn skipping(why: std::fmt::Arguments) {
    eprintln!("skipped: {why}");
}

/// Ends the calling test early because this host lacks what it needs: `skip!("no /dev/fuse on
/// this host")`. One skip policy for every test that needs root or a kernel feature.
#[allow(unused_macros)]
macro_rules! skip {
    ($($why:tt)+) => {{
        $crate::common::skipping(format_args!($($why)+));
        return;
    }};
}
#[allow(unused_imports)]
pub(crate) use skip;

/// Skips the calling test unless it runs as root: every test that creates namespaces,
/// cgroups, links or mounts starts with it (scripts/test.sh runs the suite as root).
#[allow(unused_macros)]
macro_rules! require_root {
    () => {
        if !$crate::common::is_root() {
            $crate::common::skip!("this test creates namespaces, cgroups and links: run it as root (scripts/test.sh)");
        }
    };
}
#[allow(unused_imports)]
pub(crate) use require_root;

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// For the helpers that need root (a `TestRoot` with images, namespaces): the test must have
/// skipped before reaching them without root.
pub fn expect_root() {
    assert!(is_root(), "this helper needs root: start the test with common::require_root!()");
}

/// A private state root, torn down on drop with `berth __teardown`.
pub struct TestRoot {
    dir: tempfile::TempDir,
}

impl TestRoot {
    pub fn new() -> Self {
        Self::with_prefix("berth-test-")
    }
    /// A private state root in a temp folder named `<prefix>...` (an engineer's own roots).
    pub fn with_prefix(prefix: &str) -> Self {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().expect("tempdir");
        TestRoot { dir }
    }
    /// The state root path (passed as `--root`).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    /// A scratch folder for the test's own files (compose files, tarballs).
    pub fn scratch(&self) -> PathBuf {
        let p = self.dir.path().join("scratch");
        std::fs::create_dir_all(&p).unwrap();
        p
    }
    /// `berth --root <root> ARGS...`, with a clean environment (PATH only, HOME=/nonexistent).
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = Command::new(berth_bin());
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()))
            .env("HOME", "/nonexistent")
            .arg("--root")
            .arg(self.root())
            .args(args);
        c
    }
    /// Runs `berth ARGS` and returns its output.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd(args).output().expect("run berth")
    }
    /// Runs `berth ARGS`, asserts success, and returns stdout.
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "berth {:?} failed ({}):\nstdout: {}\nstderr: {}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        if self.root().exists() {
            let out = Command::new(berth_bin()).arg("--root").arg(self.root()).arg("__teardown").output();
            if let Ok(out) = out {
                if !out.status.success() {
                    eprintln!("teardown of {} reported: {}", self.root().display(), String::from_utf8_lossy(&out.stderr));
                }
            }
        }
    }
}

/// The host's static busybox (Debian's busybox-static).
pub fn host_busybox() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox is missing: apt-get install busybox-static (scripts/test.sh installs it)");
}

/// Fills `dir` with the busybox rootfs every test image uses: one static binary, its applet links,
/// and minimal /etc files (as ../shared/peers/setup.sh builds Docker's `busybox` image).
pub fn make_busybox_rootfs(dir: &Path) {
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root", "var/www"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let bb = dir.join("bin/busybox");
    std::fs::copy(host_busybox(), &bb).unwrap();
    let list = Command::new(host_busybox()).arg("--list").output().expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            let _ = symlink("busybox", dir.join("bin").join(applet));
        }
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n").unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnobody:x:65534:\n").unwrap();
    std::fs::set_permissions(dir.join("tmp"), std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
}

/// Writes the busybox rootfs as an uncompressed tarball at `path`.
pub fn make_busybox_tar(path: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    make_busybox_rootfs(tmp.path());
    let f = std::fs::File::create(path).unwrap();
    let mut b = tar::Builder::new(f);
    b.follow_symlinks(false);
    b.append_dir_all(".", tmp.path()).unwrap();
    b.finish().unwrap();
}
pub mod build;
pub mod registry;
