//! The engine under the executor: every container, network, volume and image operation that a
//! plan's steps perform, as one trait.
//!
//! Why a trait: the executor's own logic (order, parallelism, `depends_on` waits, failures
//! cascading to dependents, anonymous volumes carried over on recreate, `--wait-timeout`, Ctrl-C)
//! is then tested against a recording fake ([`fake::FakeEngine`]) with no root, no kernel and no
//! clock beyond the waits' own, while [`RealEngine`] calls exactly the runtime, network and volume
//! functions that do the work. The coming front ends (the Docker Engine API server, `berth
//! container ...`) call the same real engine, so its methods are named after the Engine API's
//! operations (`ContainerCreate` is [`Engine::container_create`], and so on) and take and return
//! the runtime's own types and errors.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::engine::image::{Image, ImageStore};
use crate::engine::runtime::spec::ContainerConfig;
use crate::engine::runtime::state::ContainerState;
use crate::engine::runtime::volumes::{self, Volume, VolumeError};
use crate::engine::runtime::{RuntimeError, ops};
use crate::net::NetError;
use crate::net::network::NetworkSpec;
use crate::state::StateRoot;

/// The operations a plan needs. A container `key` is an id, a name or a unique id prefix.
pub trait Engine: Sync {
    /// `ContainerCreate`: creates a container from a resolved spec (its named and anonymous
    /// volumes included) and returns it as stored, with its id.
    fn container_create(&self, spec: ContainerConfig) -> Result<ContainerConfig, RuntimeError>;
    /// `ContainerStart`: returns once the container runs (or could not start).
    fn container_start(&self, key: &str) -> Result<(), RuntimeError>;
    /// `ContainerStop`: the stop signal, then SIGKILL after `timeout` (None: the container's own
    /// grace period).
    fn container_stop(&self, key: &str, timeout: Option<Duration>) -> Result<(), RuntimeError>;
    /// `ContainerRestart`: stop then start, and a `restart` event after theirs, as Docker's.
    fn container_restart(&self, key: &str, timeout: Option<Duration>) -> Result<(), RuntimeError>;
    /// `ContainerKill` with a signal number.
    fn container_kill(&self, key: &str, signal: i32) -> Result<(), RuntimeError>;
    fn container_pause(&self, key: &str) -> Result<(), RuntimeError>;
    fn container_unpause(&self, key: &str) -> Result<(), RuntimeError>;
    /// `ContainerRemove`; `force` stops a running one first, `volumes` removes its anonymous ones.
    fn container_remove(&self, key: &str, force: bool, volumes: bool) -> Result<(), RuntimeError>;
    /// The stored config of a container (the static half of `ContainerInspect`).
    fn container_inspect(&self, key: &str) -> Result<ContainerConfig, RuntimeError>;
    /// What a container is doing (the `State` half of `ContainerInspect`), as it really is.
    fn container_state(&self, id: &str) -> Result<ContainerState, RuntimeError>;
    /// `ContainerList` with `all`: every container's config, oldest first.
    fn container_list(&self) -> Vec<ContainerConfig>;
    /// `NetworkCreate`.
    fn network_create(&self, spec: NetworkSpec) -> Result<(), NetError>;
    /// `NetworkRemove`.
    fn network_remove(&self, name: &str) -> Result<(), NetError>;
    /// `VolumeCreate` (`name` None: an anonymous volume).
    fn volume_create(
        &self,
        name: Option<&str>,
        driver: &str,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<Volume, VolumeError>;
    /// `VolumeInspect`: None when there is no such volume.
    fn volume_inspect(&self, name: &str) -> Result<Option<Volume>, VolumeError>;
    /// `VolumeRemove`; without `force` a volume in use is an error.
    fn volume_remove(&self, name: &str, force: bool) -> Result<(), VolumeError>;
    /// The containers (ids) that mount a volume.
    fn volume_users(&self, name: &str) -> Vec<String>;
    /// The unpacked layer directories of an image, bottom to top (a container's rootfs); None
    /// when this engine has no image store to give them.
    fn image_layers(&self, image: &Image) -> Option<Vec<PathBuf>>;
}

/// The engine of a state root: the runtime (`engine::runtime::ops`, `volumes`), the network module
/// and, for creating containers, the image store.
pub struct RealEngine<'a> {
    root: &'a StateRoot,
    store: Option<&'a ImageStore>,
}

impl<'a> RealEngine<'a> {
    /// `store` is needed only to create containers.
    pub fn new(root: &'a StateRoot, store: Option<&'a ImageStore>) -> Self {
        RealEngine { root, store }
    }
}

impl Engine for RealEngine<'_> {
    fn container_create(&self, spec: ContainerConfig) -> Result<ContainerConfig, RuntimeError> {
        ops::create(self.root, spec)
    }
    fn container_start(&self, key: &str) -> Result<(), RuntimeError> {
        ops::start(self.root, key, None)
    }
    fn container_stop(&self, key: &str, timeout: Option<Duration>) -> Result<(), RuntimeError> {
        ops::stop(self.root, key, timeout)
    }
    fn container_restart(&self, key: &str, timeout: Option<Duration>) -> Result<(), RuntimeError> {
        ops::stop(self.root, key, timeout)?;
        ops::start(self.root, key, None)?;
        // Docker's restart ends with a `restart` event, after stop's and start's.
        if let Ok(c) = ops::lookup(self.root, key) {
            crate::engine::events::container(self.root, &c, "restart", &[]);
        }
        Ok(())
    }
    fn container_kill(&self, key: &str, signal: i32) -> Result<(), RuntimeError> {
        ops::kill(self.root, key, signal)
    }
    fn container_pause(&self, key: &str) -> Result<(), RuntimeError> {
        ops::pause(self.root, key)
    }
    fn container_unpause(&self, key: &str) -> Result<(), RuntimeError> {
        ops::unpause(self.root, key)
    }
    fn container_remove(&self, key: &str, force: bool, volumes: bool) -> Result<(), RuntimeError> {
        ops::remove(self.root, key, force, volumes)
    }
    fn container_inspect(&self, key: &str) -> Result<ContainerConfig, RuntimeError> {
        ops::lookup(self.root, key)
    }
    fn container_state(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        ops::state_of(self.root, id)
    }
    fn container_list(&self) -> Vec<ContainerConfig> {
        ops::list_configs(self.root)
    }
    fn network_create(&self, spec: NetworkSpec) -> Result<(), NetError> {
        crate::net::network::create(self.root, spec).map(drop)
    }
    fn network_remove(&self, name: &str) -> Result<(), NetError> {
        crate::net::network::remove(self.root, name).map(drop)
    }
    fn volume_create(
        &self,
        name: Option<&str>,
        driver: &str,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<Volume, VolumeError> {
        volumes::create(self.root, name, driver, labels, options)
    }
    fn volume_inspect(&self, name: &str) -> Result<Option<Volume>, VolumeError> {
        volumes::get(self.root, name)
    }
    fn volume_remove(&self, name: &str, force: bool) -> Result<(), VolumeError> {
        volumes::remove(self.root, name, force)
    }
    fn volume_users(&self, name: &str) -> Vec<String> {
        volumes::users(self.root, name)
    }
    fn image_layers(&self, image: &Image) -> Option<Vec<PathBuf>> {
        self.store.map(|s| s.layer_links(image).into_iter().map(|l| s.dir().join(l)).collect())
    }
}

#[cfg(test)]
pub mod fake;
