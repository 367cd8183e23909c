//! A recording fake of the [`Engine`] for unit tests: containers, networks and volumes in memory,
//! each container's behaviour scripted by name ([`Script`]: its start fails, it exits with a code
//! or turns healthy or unhealthy after so many polls of its state), and every call recorded in
//! order. It also tracks how many container operations run at once, so that tests can check
//! the executor's parallelism bound.
//!
//! It keeps only what the executor can observe: a create makes the anonymous volumes of the spec
//! (and of the image's `VOLUME`s) as the runtime does, a start runs the container, a stop exits it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use super::Engine;
use crate::engine::image::{Digest, Image};
use crate::engine::runtime::RuntimeError;
use crate::engine::runtime::spec::{ContainerConfig, Mount, MountType, normalize};
use crate::engine::runtime::state::{ContainerState, Health, HealthStatus, Status};
use crate::engine::runtime::volumes::{ANONYMOUS_LABEL, Volume, VolumeError};
use crate::net::NetError;
use crate::net::network::NetworkSpec;
use crate::project::{LoadOptions, Project};

/// How one container behaves (by container name).
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Its start fails with this message (and it stays created, with the message as its error).
    pub start_fails: Option<String>,
    /// Once started, it exits with this code at the given poll of its state (1 is the first).
    pub exits: Option<(i32, u32)>,
    /// Once started, its health becomes this (`healthy`, `unhealthy`) at the given poll.
    pub health: Option<(HealthStatus, u32)>,
    /// Its start takes this long.
    pub start_delay: Duration,
}

struct FakeContainer {
    config: ContainerConfig,
    state: ContainerState,
    /// How many times its state was read since it started.
    polls: u32,
}

#[derive(Default)]
struct Inner {
    /// By id; ids are `id-<n>`, in creation order.
    containers: BTreeMap<String, FakeContainer>,
    networks: BTreeSet<String>,
    /// Networks whose removal says they are still in use.
    busy_networks: BTreeSet<String>,
    volumes: BTreeMap<String, Volume>,
    scripts: BTreeMap<String, Script>,
    calls: Vec<String>,
    created: usize,
    running_ops: usize,
    max_running_ops: usize,
}

/// The fake engine. Every method takes `&self` (the executor calls it from many threads).
#[derive(Default)]
pub struct FakeEngine {
    inner: Mutex<Inner>,
    /// `image_layers` answers None (an engine without an image store).
    no_images: bool,
}

impl FakeEngine {
    pub fn new() -> Self {
        Self::default()
    }

    /// An engine without an image store: it cannot create containers.
    pub fn without_images() -> Self {
        FakeEngine { no_images: true, ..Default::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Scripts the container named `name`.
    pub fn script(&self, name: &str, script: Script) {
        self.lock().scripts.insert(name.to_string(), script);
    }

    /// Every call so far, in order (`create demo-web-1`, `state demo-web-1`...).
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// The calls that change something (no `inspect`, `state`, `list` or volume lookups).
    pub fn changes(&self) -> Vec<String> {
        const READS: [&str; 6] = ["inspect ", "state ", "list", "volume inspect ", "volume users ", "image layers"];
        self.calls().into_iter().filter(|c| !READS.iter().any(|r| c.starts_with(r))).collect()
    }

    /// The most container operations that ran at once.
    pub fn max_parallel(&self) -> usize {
        self.lock().max_running_ops
    }

    /// A network that exists already.
    pub fn add_network(&self, name: &str, busy: bool) {
        let mut g = self.lock();
        g.networks.insert(name.to_string());
        if busy {
            g.busy_networks.insert(name.to_string());
        }
    }

    pub fn has_network(&self, name: &str) -> bool {
        self.lock().networks.contains(name)
    }

    pub fn volume_names(&self) -> Vec<String> {
        self.lock().volumes.keys().cloned().collect()
    }

    /// The stored config and state of the container named `name`.
    pub fn container(&self, name: &str) -> Option<(ContainerConfig, ContainerState)> {
        self.lock().containers.values().find(|c| c.config.name == name).map(|c| (c.config.clone(), c.state.clone()))
    }

    /// Creates a container as `container_create` does, but unrecorded, in `status`.
    pub fn seed(&self, spec: ContainerConfig, status: Status) -> ContainerConfig {
        let c = self.create(spec).expect("a seeded container is valid");
        let mut g = self.lock();
        let fc = g.containers.get_mut(&c.id).expect("just created");
        fc.state.status = status;
        c
    }

    fn record(&self, call: String) {
        self.lock().calls.push(call);
    }

    fn name_of(&self, key: &str) -> String {
        let g = self.lock();
        find(&g, key).map(|id| g.containers[&id].config.name.clone()).unwrap_or_else(|| key.to_string())
    }

    /// Runs `f` on the container `key` as one container operation (counted for the parallelism
    /// bound), after recording `what`.
    fn op<T>(&self, what: &str, key: &str, f: impl FnOnce(&mut Inner, &str) -> Result<T, RuntimeError>) -> Result<T, RuntimeError> {
        let name = self.name_of(key);
        self.record(format!("{what} {name}"));
        let mut g = self.lock();
        let id = find(&g, key).ok_or_else(|| RuntimeError::NoSuchContainer(key.to_string()))?;
        f(&mut g, &id)
    }

    fn create(&self, mut spec: ContainerConfig) -> Result<ContainerConfig, RuntimeError> {
        let mut g = self.lock();
        if let Some(other) = g.containers.values().find(|c| c.config.name == spec.name) {
            return Err(RuntimeError::NameInUse { name: spec.name.clone(), id: other.config.id.clone() });
        }
        g.created += 1;
        spec.id = format!("id-{}", g.created);
        let mut anonymous = Vec::new();
        let mut anon = |g: &mut Inner| {
            let name = format!("anon-{}-{}", g.created, g.volumes.len() + 1);
            let labels = [(ANONYMOUS_LABEL.to_string(), String::new())].into();
            g.volumes.insert(name.clone(), Volume { name: name.clone(), driver: "local".into(), labels, ..Default::default() });
            anonymous.push(name.clone());
            name
        };
        for m in spec.mounts.iter_mut().filter(|m| m.kind == MountType::Volume) {
            if m.source.is_empty() {
                m.source = anon(&mut g);
            } else if !g.volumes.contains_key(&m.source) {
                g.volumes.insert(m.source.clone(), Volume { name: m.source.clone(), driver: "local".into(), ..Default::default() });
            }
        }
        for v in spec.image_volumes.clone() {
            let t = normalize(&v);
            if !spec.mounts.iter().any(|m| normalize(&m.target) == t) {
                let source = anon(&mut g);
                spec.mounts.push(Mount { kind: MountType::Volume, source, target: t, ..Default::default() });
            }
        }
        let state = ContainerState { anonymous_volumes: anonymous, ..ContainerState::new() };
        g.containers.insert(spec.id.clone(), FakeContainer { config: spec.clone(), state, polls: 0 });
        Ok(spec)
    }
}

/// The id of the container `key` (an id or a name).
fn find(g: &Inner, key: &str) -> Option<String> {
    g.containers.values().find(|c| c.config.id == key || c.config.name == key).map(|c| c.config.id.clone())
}

fn has_healthcheck(c: &ContainerConfig) -> bool {
    c.healthcheck.as_ref().is_some_and(|h| !h.test.is_empty() && h.test[0] != "NONE")
}

/// A health status as the runtime's state holds it.
pub fn health(status: HealthStatus) -> Health {
    Health { status, ..Default::default() }
}

impl Engine for FakeEngine {
    fn container_create(&self, spec: ContainerConfig) -> Result<ContainerConfig, RuntimeError> {
        self.record(format!("create {}", spec.name));
        self.create(spec)
    }

    fn container_start(&self, key: &str) -> Result<(), RuntimeError> {
        let name = self.name_of(key);
        let script = self.lock().scripts.get(&name).cloned().unwrap_or_default();
        {
            let mut g = self.lock();
            g.running_ops += 1;
            g.max_running_ops = g.max_running_ops.max(g.running_ops);
        }
        std::thread::sleep(script.start_delay);
        self.lock().running_ops -= 1;
        self.op("start", key, |g, id| {
            let c = g.containers.get_mut(id).expect("found");
            if let Some(msg) = script.start_fails {
                c.state.error = msg.clone();
                return Err(RuntimeError::Start { name: c.config.name.clone(), code: 1, msg });
            }
            c.state.status = Status::Running;
            c.state.error.clear();
            c.state.health = has_healthcheck(&c.config).then(|| health(HealthStatus::Starting));
            c.polls = 0;
            Ok(())
        })
    }

    fn container_stop(&self, key: &str, timeout: Option<Duration>) -> Result<(), RuntimeError> {
        let what = match timeout {
            Some(t) => format!("stop({}s)", t.as_secs()),
            None => "stop".to_string(),
        };
        self.op(&what, key, |g, id| {
            let st = &mut g.containers.get_mut(id).expect("found").state;
            if st.status.is_active() {
                st.status = Status::Exited;
                st.exit_code = 143;
                st.manually_stopped = true;
            }
            Ok(())
        })
    }

    fn container_restart(&self, key: &str, _timeout: Option<Duration>) -> Result<(), RuntimeError> {
        self.op("restart", key, |g, id| {
            g.containers.get_mut(id).expect("found").state.status = Status::Running;
            Ok(())
        })
    }

    fn container_kill(&self, key: &str, signal: i32) -> Result<(), RuntimeError> {
        self.op(&format!("kill({signal})"), key, |g, id| {
            let c = g.containers.get_mut(id).expect("found");
            if !c.state.status.is_active() {
                return Err(RuntimeError::NotRunning(c.config.name.clone()));
            }
            c.state.status = Status::Exited;
            c.state.exit_code = 128 + signal;
            Ok(())
        })
    }

    fn container_pause(&self, key: &str) -> Result<(), RuntimeError> {
        self.op("pause", key, |g, id| {
            g.containers.get_mut(id).expect("found").state.status = Status::Paused;
            Ok(())
        })
    }

    fn container_unpause(&self, key: &str) -> Result<(), RuntimeError> {
        self.op("unpause", key, |g, id| {
            g.containers.get_mut(id).expect("found").state.status = Status::Running;
            Ok(())
        })
    }

    fn container_remove(&self, key: &str, force: bool, volumes: bool) -> Result<(), RuntimeError> {
        let what = if volumes { "remove(-v)" } else { "remove" };
        self.op(what, key, |g, id| {
            let c = &g.containers[id];
            if c.state.status.is_active() && !force {
                return Err(RuntimeError::RemoveRunning(c.config.name.clone()));
            }
            let c = g.containers.remove(id).expect("found");
            if volumes {
                for v in c.state.anonymous_volumes {
                    g.volumes.remove(&v);
                }
            }
            Ok(())
        })
    }

    fn container_inspect(&self, key: &str) -> Result<ContainerConfig, RuntimeError> {
        self.record(format!("inspect {key}"));
        let g = self.lock();
        find(&g, key).map(|id| g.containers[&id].config.clone()).ok_or_else(|| RuntimeError::NoSuchContainer(key.to_string()))
    }

    fn container_state(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        let name = self.name_of(id);
        self.record(format!("state {name}"));
        let script = self.lock().scripts.get(&name).cloned().unwrap_or_default();
        let mut g = self.lock();
        let id = find(&g, id).ok_or_else(|| RuntimeError::NoSuchContainer(id.to_string()))?;
        let c = g.containers.get_mut(&id).expect("found");
        if c.state.status == Status::Running {
            c.polls += 1;
            if let Some((code, _)) = script.exits.filter(|(_, at)| c.polls >= *at) {
                c.state.status = Status::Exited;
                c.state.exit_code = code;
            } else if let Some((status, _)) = script.health.filter(|(_, at)| c.polls >= *at) {
                c.state.health = Some(health(status));
            }
        }
        Ok(c.state.clone())
    }

    fn container_list(&self) -> Vec<ContainerConfig> {
        self.record("list".to_string());
        self.lock().containers.values().map(|c| c.config.clone()).collect()
    }

    fn network_create(&self, spec: NetworkSpec) -> Result<(), NetError> {
        self.record(format!("network create {}", spec.name));
        if !self.lock().networks.insert(spec.name.clone()) {
            return Err(NetError::NetworkExists(spec.name));
        }
        Ok(())
    }

    fn network_remove(&self, name: &str) -> Result<(), NetError> {
        self.record(format!("network remove {name}"));
        let mut g = self.lock();
        if g.busy_networks.contains(name) {
            return Err(NetError::NetworkInUse { name: name.to_string(), containers: "someone-else".into() });
        }
        if !g.networks.remove(name) {
            return Err(NetError::NetworkNotFound(name.to_string()));
        }
        Ok(())
    }

    fn volume_create(
        &self,
        name: Option<&str>,
        driver: &str,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<Volume, VolumeError> {
        let name = name.map(String::from).unwrap_or_else(|| format!("anon-v{}", self.lock().volumes.len() + 1));
        self.record(format!("volume create {name}"));
        let v = Volume { name: name.clone(), driver: driver.to_string(), labels, options, ..Default::default() };
        self.lock().volumes.insert(name, v.clone());
        Ok(v)
    }

    fn volume_inspect(&self, name: &str) -> Result<Option<Volume>, VolumeError> {
        self.record(format!("volume inspect {name}"));
        Ok(self.lock().volumes.get(name).cloned())
    }

    fn volume_remove(&self, name: &str, force: bool) -> Result<(), VolumeError> {
        self.record(format!("volume remove {name}"));
        let users = self.volume_users(name);
        let mut g = self.lock();
        if !g.volumes.contains_key(name) {
            return Err(VolumeError::NotFound(name.to_string()));
        }
        if !users.is_empty() && !force {
            return Err(VolumeError::InUse { name: name.to_string(), users });
        }
        g.volumes.remove(name);
        Ok(())
    }

    fn volume_users(&self, name: &str) -> Vec<String> {
        self.record(format!("volume users {name}"));
        let g = self.lock();
        g.containers
            .values()
            .filter(|c| c.config.mounts.iter().any(|m| m.kind == MountType::Volume && m.source == name))
            .map(|c| c.config.id.clone())
            .collect()
    }

    fn image_layers(&self, image: &Image) -> Option<Vec<PathBuf>> {
        self.record(format!("image layers {}", image.id.short()));
        (!self.no_images).then(|| vec![PathBuf::from("/fake/layers/1")])
    }
}

/// Loads `yaml` as project `demo` (with the real loader, so that the model is what a user's
/// file gives) from a temporary folder that also holds `files` (name, content); the folder lives
/// as long as the returned guard.
pub fn load(yaml: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, Project) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(dir.path().join("compose.yaml"), yaml).expect("the compose file is written");
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).expect("a file is written");
    }
    let opts = LoadOptions {
        files: vec![dir.path().join("compose.yaml")],
        project_name: Some("demo".into()),
        interpolate: true,
        environment: Default::default(),
        cwd: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let p = crate::project::load(&opts).unwrap_or_else(|e| panic!("{yaml}: {e}"));
    (dir, p)
}

/// An image whose `config` section (Docker's capitalized keys) is `config`.
pub fn image(config: serde_json::Value) -> Image {
    let raw = serde_json::json!({"architecture": "amd64", "os": "linux", "config": config, "rootfs": {"type": "layers", "diff_ids": []}});
    Image {
        id: Digest::of(b"a test image"),
        names: vec![],
        repo_digests: vec![],
        config: serde_json::from_value(raw.clone()).expect("a valid image config"),
        raw_config: raw,
        layers: vec![],
        manifest: Digest::of(b"a test manifest"),
        size: 0,
        added: String::new(),
    }
}
