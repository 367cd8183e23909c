//! Helpers for the orchestration's integration tests: a project folder with a compose file in a
//! private state root that has the busybox image, berth run from that folder as a user would, and
//! checks that nothing of the project is left on the host.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{TestRoot, expect_root, make_busybox_tar};

/// A compose project in its own state root.
pub struct Stack {
    pub t: TestRoot,
    /// The project folder (holds compose.yaml).
    pub dir: PathBuf,
    pub name: String,
}

impl Stack {
    /// A project `name` with `yaml` as its compose.yaml, and `busybox:latest` imported.
    pub fn new(name: &str, yaml: &str) -> Stack {
        Stack::in_root(TestRoot::new(), name, yaml)
    }

    /// [`Stack::new`] in a given (empty) state root.
    pub fn in_root(t: TestRoot, name: &str, yaml: &str) -> Stack {
        expect_root();
        let tar = t.scratch().join("busybox.tar");
        make_busybox_tar(&tar);
        t.ok(["image", "import", tar.to_str().unwrap(), "busybox:latest", "--change", "CMD [\"sh\"]"]);
        let dir = t.scratch().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let s = Stack { t, dir, name: name.to_string() };
        s.write(yaml);
        s
    }

    /// Replaces compose.yaml.
    pub fn write(&self, yaml: &str) {
        std::fs::write(self.dir.join("compose.yaml"), yaml).unwrap();
    }

    /// `berth -p <name> ARGS` run in the project folder.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = self.t.cmd(["-p", self.name.as_str()]);
        c.args(args).current_dir(&self.dir);
        c
    }

    /// `berth ARGS` in the project folder without `-p`: the project is the file (named after
    /// the folder, which is the stack's name).
    #[track_caller]
    pub fn ok_file<I, S>(&self, args: I) -> (String, String)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
        let o = self.t.cmd(&args).current_dir(&self.dir).output().expect("run berth");
        let (out, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned());
        assert!(o.status.success(), "berth {args:?} failed ({}):\nstdout: {out}\nstderr: {err}", o.status);
        (out, err)
    }

    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd(args).output().expect("run berth")
    }

    /// Runs and asserts success; returns stdout and stderr.
    #[track_caller]
    pub fn ok<I, S>(&self, args: I) -> (String, String)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
        let o = self.run(&args);
        let (out, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned());
        assert!(o.status.success(), "berth {args:?} failed ({}):\nstdout: {out}\nstderr: {err}", o.status);
        (out, err)
    }

    /// `__ctr inspect` of a container (Docker's inspect document), None when it does not exist.
    pub fn inspect(&self, container: &str) -> Option<Value> {
        let o = self.t.run(["__ctr", "inspect", container]);
        if !o.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        Some(if v.is_array() { v[0].clone() } else { v })
    }

    /// A container's status (`running`, `exited`, ...), or "missing".
    pub fn status(&self, container: &str) -> String {
        self.inspect(container).map(|v| v["State"]["Status"].as_str().unwrap_or("").to_string()).unwrap_or_else(|| "missing".into())
    }

    pub fn id(&self, container: &str) -> String {
        self.inspect(container).map(|v| v["Id"].as_str().unwrap().to_string()).unwrap_or_default()
    }

    /// The names of every container in the root, sorted.
    pub fn containers(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.t.root().join("containers")) {
            for e in rd.flatten() {
                let cfg = e.path().join("config.json");
                if let Ok(b) = std::fs::read(&cfg) {
                    let c: Value = serde_json::from_slice(&b).unwrap();
                    v.push(c["Name"].as_str().unwrap().to_string());
                }
            }
        }
        v.sort();
        v
    }

    /// A container's log (stdout and stderr records), through `__ctr logs`.
    pub fn logs(&self, container: &str) -> String {
        let o = self.t.run(["__ctr", "logs", container]);
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    }

    /// Names of the state root's volumes.
    pub fn volumes(&self) -> Vec<String> {
        let out = self.t.ok(["volume", "ls", "-q"]);
        out.lines().map(String::from).collect()
    }

    /// Names of the state root's networks.
    pub fn networks(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.t.root().join("networks")) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if !n.starts_with('.') {
                    v.push(n);
                }
            }
        }
        v.sort();
        v
    }

    /// What a running project holds on the host: container ids (for cgroups), bridges and veths.
    pub fn host_objects(&self) -> HostObjects {
        let mut h = HostObjects::default();
        for n in self.networks() {
            let b: Value =
                serde_json::from_slice(&std::fs::read(self.t.root().join("networks").join(&n).join("network.json")).unwrap()).unwrap();
            h.bridges.push(b["bridge"].as_str().unwrap().to_string());
        }
        if let Ok(rd) = std::fs::read_dir(self.t.root().join("containers")) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                if id.starts_with('.') {
                    continue;
                }
                if let Ok(b) = std::fs::read(e.path().join("state.json")) {
                    let st: Value = serde_json::from_slice(&b).unwrap();
                    for ep in st["Network"]["endpoints"].as_array().cloned().unwrap_or_default() {
                        if let Some(v) = ep["host_interface"].as_str() {
                            h.veths.push(v.to_string());
                        }
                    }
                    if let Some(p) = st["Supervisor"]["Pid"].as_i64() {
                        h.pids.push(p as i32);
                    }
                }
                h.ids.push(id);
            }
        }
        h
    }
}

/// Host-global objects a project made.
#[derive(Debug, Default)]
pub struct HostObjects {
    pub ids: Vec<String>,
    pub bridges: Vec<String>,
    pub veths: Vec<String>,
    pub pids: Vec<i32>,
}

impl HostObjects {
    /// What is still there a moment after the command returned: links, cgroups and supervisor
    /// processes. The kernel destroys a network namespace (and the veth end in it) asynchronously
    /// once its last process is gone, so this allows it up to 2 s, and reports what it waited for.
    pub fn left(&self) -> Vec<String> {
        let t = Instant::now();
        let first = self.left_now();
        let mut left = first.clone();
        if !left.is_empty() {
            while t.elapsed() < Duration::from_secs(2) && !left.is_empty() {
                std::thread::sleep(Duration::from_millis(20));
                left = self.left_now();
            }
            eprintln!("host objects still there right after the command: {first:?} (after {:?}: {left:?})", t.elapsed());
        }
        left
    }

    fn left_now(&self) -> Vec<String> {
        let mut left = Vec::new();
        for l in self.bridges.iter().chain(self.veths.iter()) {
            if Path::new("/sys/class/net").join(l).exists() {
                left.push(format!("link {l}"));
            }
        }
        for id in &self.ids {
            for base in [
                "/sys/fs/cgroup/memory/berth",
                "/sys/fs/cgroup/pids/berth",
                "/sys/fs/cgroup/cpu/berth",
                "/sys/fs/cgroup/unified/berth",
                "/sys/fs/cgroup/berth",
            ] {
                if Path::new(base).join(id).exists() {
                    left.push(format!("cgroup {base}/{id}"));
                }
            }
        }
        for p in &self.pids {
            if let Ok(cmd) = std::fs::read_to_string(format!("/proc/{p}/cmdline")) {
                if cmd.contains("__supervise") {
                    left.push(format!("supervisor pid {p}"));
                }
            }
        }
        left
    }
}

/// A free TCP port on the host from the orchestration's range (43000-43499), chosen by binding.
pub fn free_port() -> u16 {
    let start = 43000 + (std::process::id() as u16 % 400);
    for i in 0..500u16 {
        let p = 43000 + (start - 43000 + i * 7) % 500;
        if std::net::TcpListener::bind(("0.0.0.0", p)).is_ok() && std::net::TcpListener::bind(("::", p)).is_ok() {
            return p;
        }
    }
    panic!("no free port in 43000-43499");
}

/// An HTTP GET of `http://127.0.0.1:<port>/` with a plain socket, retried until `timeout`.
pub fn http_get(port: u16, timeout: Duration) -> Option<String> {
    use std::io::{Read, Write};
    let t = Instant::now();
    while t.elapsed() < timeout {
        if let Ok(mut s) = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
            let mut body = String::new();
            if s.read_to_string(&mut body).is_ok() && body.starts_with("HTTP/1") {
                return Some(body);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Waits until `f` holds, or fails after `timeout` with `what`.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// The example stack (`examples/compose/compose.yaml`) with its web port moved to `port`.
pub fn example_yaml(port: u16) -> String {
    let y = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/compose/compose.yaml")).unwrap();
    assert!(y.contains("\"8080:8080\""), "the example publishes 8080");
    y.replace("\"8080:8080\"", &format!("\"{port}:8080\""))
}
