//! Helpers for the query commands' tests: a compose project in a private root, brought up with
//! `berth up -d` as a user would, so that `ps`, `logs`, `port`, `cp`... have something real to
//! read.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::{TestRoot, expect_root, make_busybox_tar};

/// The image every test project uses.
pub const IMAGE: &str = "qbusybox:latest";

pub struct Proj {
    pub t: TestRoot,
    pub dir: PathBuf,
    pub name: String,
    /// The `/24` (from 10.211.128.0/17) the project's default network takes.
    pub subnet: String,
}

impl Proj {
    /// A project `name` with this compose file; `net` picks its subnet, 10.211.<128+net>.0/24.
    pub fn new(name: &str, yaml: &str, net: u8) -> Proj {
        expect_root();
        let t = TestRoot::new();
        let dir = t.scratch().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let subnet = format!("10.211.{}.0/24", 128 + net as u32);
        // The project's default network takes the test's own subnet, as a user pins one.
        let yaml = if yaml.lines().any(|l| l.starts_with("networks:")) {
            yaml.to_string()
        } else {
            format!("{yaml}\nnetworks:\n  default:\n    ipam:\n      config:\n        - subnet: {subnet}\n")
        };
        std::fs::write(dir.join("compose.yaml"), yaml).unwrap();
        let tar = t.scratch().join("busybox.tar");
        make_busybox_tar(&tar);
        t.ok(["image", "import", tar.to_str().unwrap(), IMAGE, "--change", "CMD [\"sh\"]"]);
        Proj { t, dir, name: name.to_string(), subnet }
    }

    pub fn file(&self) -> PathBuf {
        self.dir.join("compose.yaml")
    }

    /// `berth -p <name> ARGS` run from `/`: no compose file is read.
    pub fn p<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = self.t.cmd(["-p", &self.name]);
        c.args(args).current_dir("/");
        c.output().expect("run berth")
    }

    /// `berth ARGS` run in the project folder (the compose file is found there).
    pub fn here<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = self.t.cmd(args);
        c.current_dir(&self.dir);
        c.output().expect("run berth")
    }

    /// A `berth -p <name> ARGS` command to spawn (logs -f, events).
    pub fn spawn_cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = self.t.cmd(["-p", &self.name]);
        c.args(args).current_dir("/");
        c
    }

    /// `berth up -d` in the project folder: networks, volumes and every service's containers.
    pub fn up(&self) {
        ok(self.here(["up", "-d", "--quiet-pull"]));
    }

    /// `berth -p <name> stop -t 1 SERVICE`.
    pub fn stop(&self, service: &str) {
        ok(self.p(["stop", "-t", "1", service]));
    }

    /// `berth -p <name> start SERVICE`.
    pub fn start(&self, service: &str) {
        ok(self.p(["start", service]));
    }

    /// The id of container `<project>-<service>-<n>`.
    pub fn id(&self, service: &str, n: u32) -> String {
        let name = format!("{}-{service}-{n}", self.name);
        let v: serde_json::Value = serde_json::from_str(&self.t.ok(["__ctr", "inspect", &name])).unwrap();
        v[0]["Id"].as_str().unwrap().to_string()
    }

    /// Polls `f` until it holds, failing the test with `what` after `max`.
    pub fn wait_for(&self, what: &str, max: Duration, mut f: impl FnMut() -> bool) {
        let t = Instant::now();
        while !f() {
            if t.elapsed() > max {
                panic!("timed out waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(o: Output) -> String {
    assert!(o.status.success(), "failed ({}):\nstdout: {}\nstderr: {}", o.status, out(&o), err(&o));
    out(&o)
}

/// The lines of a JSON-lines output, parsed.
pub fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}
