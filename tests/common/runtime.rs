//! Helpers for the runtime's integration tests: a busybox layer, container specs as JSON, and
//! the `berth __ctr` commands the tests drive containers with.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{TestRoot, expect_root, host_busybox};

/// A test's private root plus a busybox layer directory to run containers from.
pub struct Rt {
    pub t: TestRoot,
    pub layer: PathBuf,
    /// Extra environment for every berth command (e.g. forcing the cgroup v2 code).
    pub env: Vec<(String, String)>,
}

impl Rt {
    pub fn new() -> Self {
        expect_root();
        let t = TestRoot::new();
        let layer = t.scratch().join("layers").join("busybox");
        std::fs::create_dir_all(&layer).unwrap();
        make_layer(&layer);
        Rt { t, layer, env: Vec::new() }
    }

    /// `berth --root <root> ARGS...` with this test's extra environment.
    pub fn cmd<I, S>(&self, args: I) -> std::process::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = self.t.cmd(args);
        c.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c
    }

    fn run_args(&self, args: Vec<std::ffi::OsString>) -> Output {
        self.cmd(args).output().expect("run berth")
    }

    fn ok_args(&self, args: Vec<std::ffi::OsString>) -> String {
        let o = self.run_args(args.clone());
        assert!(
            o.status.success(),
            "berth {:?} failed ({}):\nstdout: {}\nstderr: {}",
            args,
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A spec running `sh -c SCRIPT` in the busybox layer.
    pub fn spec(&self, name: &str, script: &str) -> Value {
        json!({
            "Name": name,
            "Cmd": ["sh", "-c", script],
            "Rootfs": {"Layers": [self.layer]},
        })
    }

    fn spec_file(&self, spec: &Value) -> PathBuf {
        let p = self.t.scratch().join(format!("spec-{}.json", rand_suffix()));
        std::fs::write(&p, serde_json::to_vec(spec).unwrap()).unwrap();
        p
    }

    /// `__ctr run` attached: the container's exit code, stdout and stderr.
    pub fn run(&self, spec: &Value) -> Output {
        let f = self.spec_file(spec);
        self.run_args(vec!["__ctr".into(), "run".into(), f.into_os_string()])
    }

    /// `__ctr run -d`: the container's id.
    pub fn run_d(&self, spec: &Value) -> String {
        let f = self.spec_file(spec);
        self.ok_args(vec!["__ctr".into(), "run".into(), "-d".into(), f.into_os_string()]).trim().to_string()
    }

    pub fn create(&self, spec: &Value) -> String {
        let f = self.spec_file(spec);
        self.ok_args(vec!["__ctr".into(), "create".into(), f.into_os_string()]).trim().to_string()
    }

    /// `berth __ctr ARGS...`
    pub fn ctr<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut v: Vec<std::ffi::OsString> = vec!["__ctr".into()];
        v.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self.run_args(v)
    }

    pub fn ctr_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut v: Vec<std::ffi::OsString> = vec!["__ctr".into()];
        v.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self.ok_args(v)
    }

    pub fn inspect(&self, name: &str) -> Value {
        let out = self.ctr_ok(["inspect", name]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v[0].clone()
    }

    pub fn status(&self, name: &str) -> String {
        self.inspect(name)["State"]["Status"].as_str().unwrap_or_default().to_string()
    }

    /// `__ctr exec [FLAGS] NAME ARGS...` (leading `-x` arguments are exec's flags): (exit code,
    /// stdout, stderr).
    pub fn exec(&self, name: &str, args: &[&str]) -> (i32, String, String) {
        let flags: Vec<&str> = args.iter().take_while(|a| a.starts_with('-')).copied().collect();
        let mut v = vec!["exec"];
        v.extend_from_slice(&flags);
        v.push(name);
        v.extend_from_slice(&args[flags.len()..]);
        let o = self.ctr(v);
        (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
    }

    /// The container's logs (stdout and stderr of `__ctr logs`).
    pub fn logs(&self, name: &str, extra: &[&str]) -> (String, String) {
        let mut v = vec!["logs"];
        v.extend_from_slice(extra);
        v.push(name);
        let o = self.ctr(v);
        assert!(o.status.success(), "logs failed: {}", String::from_utf8_lossy(&o.stderr));
        (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
    }

    /// Waits until `f` holds, failing the test with `what` after `max`.
    pub fn wait_for(&self, what: &str, max: Duration, mut f: impl FnMut() -> bool) {
        let t = Instant::now();
        while t.elapsed() < max {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out after {max:?} waiting for {what}");
    }

    /// Writes `yaml` as `compose.yaml` in the scratch folder `dir`, importing the busybox layer as
    /// `image` first (once per test root); returns the file's path.
    pub fn compose_file(&self, dir: &str, image: &str, yaml: &str) -> String {
        let d = self.t.scratch().join(dir);
        std::fs::create_dir_all(&d).unwrap();
        let tar = self.t.scratch().join("busybox.tar");
        if !tar.exists() {
            make_layer_tar(&tar);
            self.t.ok(["image", "import", tar.to_str().unwrap(), image]);
        }
        let f = d.join("compose.yaml");
        std::fs::write(&f, yaml).unwrap();
        f.display().to_string()
    }

    /// The container's cgroup directories on this host (v1 controllers or the v2 one).
    pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for base in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
            if let Ok(rd) = std::fs::read_dir(base) {
                for e in rd.flatten() {
                    let d = e.path().join("berth").join(id);
                    if d.exists() {
                        out.push(d);
                    }
                }
            }
            let d = Path::new(base).join("berth").join(id);
            if d.exists() {
                out.push(d);
            }
        }
        out
    }
}

/// The busybox rootfs of `make_busybox_rootfs`, without executing the copied binary: tests run
/// in parallel threads, and a thread that forks while the copy's fd is open makes exec of the
/// copy fail with ETXTBSY. The applet list comes from the host's busybox instead.
pub fn make_layer(dir: &Path) {
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root", "var/www"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(host_busybox(), dir.join("bin/busybox")).unwrap();
    let list = std::process::Command::new(host_busybox()).arg("--list").output().expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            let _ = std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet));
        }
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n").unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnobody:x:65534:\n").unwrap();
    std::fs::set_permissions(dir.join("tmp"), std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
}

pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// Writes the busybox layer of [`make_layer`] as an uncompressed tarball (for `image import`).
pub fn make_layer_tar(path: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    make_layer(tmp.path());
    let f = std::fs::File::create(path).unwrap();
    let mut b = tar::Builder::new(f);
    b.follow_symlinks(false);
    b.append_dir_all(".", tmp.path()).unwrap();
    b.finish().unwrap();
}
