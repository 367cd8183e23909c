//! Helpers for the query commands' tests: a compose project in a private root whose containers
//! are created as compose creates them (names, labels, networks, published ports), so that `ps`,
//! `logs`, `port`, `cp`... have something real to read.
//!
//! Until `berth up` lands, [`Proj::up`] builds each container's spec with the library
//! (`project::convert::container_config`, compose's labels added here) and creates and starts it
//! with `berth __ctr`, so that the supervisor is the built berth binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use berth::engine::image::ImageStore;
use berth::labels;
use berth::net::{PortRequest, Protocol};
use berth::project::{LoadOptions, Project};
use berth::state::StateRoot;

use super::{TestRoot, make_busybox_tar, require_root};

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
        require_root();
        let t = TestRoot::new();
        let dir = t.scratch().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("compose.yaml"), yaml).unwrap();
        let tar = t.scratch().join("busybox.tar");
        make_busybox_tar(&tar);
        t.ok(["image", "import", tar.to_str().unwrap(), IMAGE, "--change", "CMD [\"sh\"]"]);
        Proj { t, dir, name: name.to_string(), subnet: format!("10.211.{}.0/24", 128 + net as u32) }
    }

    pub fn root(&self) -> StateRoot {
        StateRoot::new(self.t.root())
    }

    pub fn file(&self) -> PathBuf {
        self.dir.join("compose.yaml")
    }

    pub fn load(&self) -> Project {
        berth::project::load(&LoadOptions {
            files: vec![self.file()],
            project_name: Some(self.name.clone()),
            interpolate: true,
            ..Default::default()
        })
        .expect("load the test project")
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

    /// Creates the networks and every service's containers (`scale` or `deploy.replicas` of
    /// them) in dependency order, and starts them.
    pub fn up(&self) {
        let p = self.load();
        self.networks(&p);
        let order = p.graph().unwrap().start_order().unwrap();
        for svc in order {
            let s = &p.services[&svc];
            let n = s.scale.or_else(|| s.deploy.as_ref().and_then(|d| d.replicas)).unwrap_or(1).max(0) as u32;
            for i in 1..=n {
                let id = self.create(&p, &svc, i);
                self.start(&id);
            }
        }
    }

    /// Makes the project's networks (as compose names and labels them).
    pub fn networks(&self, p: &Project) {
        let root = self.root();
        for (key, n) in &p.networks {
            if n.external || berth::net::network::find(&root, &n.name).unwrap().is_some() {
                continue;
            }
            let mut spec = berth::net::NetworkSpec { name: n.name.clone(), ..Default::default() };
            spec.labels.insert(labels::PROJECT.into(), p.name.clone());
            spec.labels.insert(labels::NETWORK.into(), key.clone());
            spec.labels.insert(labels::VERSION.into(), labels::COMPOSE_VERSION.into());
            spec.ipam.config.push(berth::net::IpamConfig { subnet: Some(self.subnet.clone()), ..Default::default() });
            berth::net::network::create(&root, spec).expect("create the project network");
        }
    }

    /// Creates container `n` of `service` with compose's name and labels; returns its id.
    pub fn create(&self, p: &Project, service: &str, n: u32) -> String {
        let root = self.root();
        let s = &p.services[service];
        let store = ImageStore::open(&root).unwrap();
        let image = store.resolve(&berth::project::convert::service_image_name(p, s)).unwrap().expect("the test image");
        let mut cfg = berth::project::convert::container_config(&root, p, s, &image, &store).expect("container config");
        cfg.name = s.container_name.clone().unwrap_or_else(|| format!("{}-{}-{n}", p.name, service));
        cfg.labels.insert(labels::CONTAINER_NUMBER.into(), n.to_string());
        cfg.labels.insert(labels::ONEOFF.into(), "False".into());
        cfg.labels.insert(labels::CONFIG_HASH.into(), berth::project::hash::service_hash(s));
        let deps: Vec<String> = s.depends_on.iter().map(|(k, d)| format!("{k}:{}:{}", d.condition, d.restart)).collect();
        cfg.labels.insert(labels::DEPENDS_ON.into(), deps.join(","));
        for port in &s.ports {
            let (host_port, host_port_end) = match port.published.as_deref() {
                None | Some("") => (None, None),
                Some(r) => match r.split_once('-') {
                    Some((a, b)) => (a.parse().ok(), b.parse().ok()),
                    None => (r.parse().ok(), None),
                },
            };
            cfg.ports.push(PortRequest {
                host_ip: port.host_ip.as_deref().and_then(|h| h.parse().ok()),
                host_port,
                container_port: port.target as u16,
                protocol: if port.protocol == "udp" { Protocol::Udp } else { Protocol::Tcp },
                host_port_end,
            });
        }
        let spec = self.t.scratch().join(format!("spec-{}-{n}.json", cfg.name));
        std::fs::write(&spec, serde_json::to_vec(&cfg).unwrap()).unwrap();
        self.t.ok(["__ctr", "create", spec.to_str().unwrap()]).trim().to_string()
    }

    pub fn start(&self, id: &str) {
        self.t.ok(["__ctr", "start", id]);
    }

    pub fn stop(&self, id: &str) {
        self.t.ok(["__ctr", "stop", "-t", "1", id]);
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

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
