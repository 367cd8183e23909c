//! What a project has on this host, read from the state root: its containers, networks and
//! volumes, found by their compose labels (`src/labels.rs`) as Docker Compose finds them. There is
//! no other project state, so every command works from any folder with `-p` and no file.
//!
//! [`Observed`] is plain data: the planner ([`super::plan`]) takes it, and its tests build it by
//! hand.

use crate::engine::runtime::state::{HealthStatus, Status};
use crate::engine::runtime::{ContainerConfig, ops, volumes};
use crate::labels;
use crate::state::StateRoot;

/// Why the state root could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error(transparent)]
    Volume(#[from] volumes::VolumeError),
}

/// One container of the project, as its labels and state describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub service: String,
    /// `container-number` (1 for one-offs, which carry none in compose).
    pub number: u32,
    /// A `run` container (`oneoff=True`).
    pub oneoff: bool,
    pub config_hash: String,
    /// The image id the container was created from (`com.docker.compose.image`).
    pub image: String,
    pub status: Status,
    /// `starting`, `healthy` or `unhealthy` when the container has a healthcheck.
    pub health: Option<HealthStatus>,
    pub exit_code: i32,
    pub created: String,
    /// `depends_on` from the label ([`super::graph::DepGraph::from_labels`] reads it).
    pub depends_on: Vec<super::graph::Edge>,
    /// The container has a healthcheck (other than `NONE`).
    pub has_healthcheck: bool,
    /// Named volumes it mounts.
    pub volumes: Vec<String>,
    /// Anonymous volumes it created.
    pub anonymous_volumes: Vec<String>,
    /// The grace period before SIGKILL on stop, in seconds (`stop_grace_period`, else 10).
    pub stop_grace_secs: u64,
}

impl Container {
    /// Running, paused or restarting.
    pub fn is_active(&self) -> bool {
        self.status.is_active()
    }
}

/// A network or volume of the state root with the compose labels it carries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resource {
    pub name: String,
    /// `com.docker.compose.project`, if any.
    pub project: Option<String>,
    /// `com.docker.compose.network` / `.volume`: the key in the compose file.
    pub key: Option<String>,
    /// An anonymous volume.
    pub anonymous: bool,
}

/// Everything of one project on this host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub project: String,
    /// The project's containers (one-offs included), oldest first.
    pub containers: Vec<Container>,
    /// Every network of the state root (so that name clashes can be reported).
    pub networks: Vec<Resource>,
    /// Every volume of the state root.
    pub volumes: Vec<Resource>,
    /// The project's working dir and config files, from a container's labels (for `-p`
    /// without a file).
    pub working_dir: Option<String>,
    pub config_files: Option<String>,
}

impl Observed {
    /// The service containers (not one-offs) of `service`, by number.
    pub fn service_containers(&self, service: &str) -> Vec<&Container> {
        let mut v: Vec<&Container> = self.containers.iter().filter(|c| !c.oneoff && c.service == service).collect();
        v.sort_by_key(|c| c.number);
        v
    }

    /// Service containers whose service is not in `services` (compose's orphans).
    pub fn orphans<'a>(&'a self, services: &[&str]) -> Vec<&'a Container> {
        self.containers.iter().filter(|c| !c.oneoff && !services.contains(&c.service.as_str())).collect()
    }

    /// The services that have containers, by name.
    pub fn services(&self) -> Vec<String> {
        let mut v: Vec<String> = self.containers.iter().filter(|c| !c.oneoff).map(|c| c.service.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// The project's own networks (labelled with its name).
    pub fn project_networks(&self) -> Vec<&Resource> {
        self.networks.iter().filter(|n| n.project.as_deref() == Some(self.project.as_str())).collect()
    }

    /// The project's own named volumes.
    pub fn project_volumes(&self) -> Vec<&Resource> {
        self.volumes.iter().filter(|v| v.project.as_deref() == Some(self.project.as_str()) && !v.anonymous).collect()
    }

    pub fn network(&self, name: &str) -> Option<&Resource> {
        self.networks.iter().find(|n| n.name == name)
    }

    pub fn volume(&self, name: &str) -> Option<&Resource> {
        self.volumes.iter().find(|v| v.name == name)
    }
}

/// Whether a container config belongs to `project`.
pub fn belongs(c: &ContainerConfig, project: &str) -> bool {
    c.labels.get(labels::PROJECT).map(|s| s.as_str()) == Some(project)
}

/// One container's observation from its config and state.
pub fn container(root: &StateRoot, c: &ContainerConfig) -> Container {
    let st = ops::state_for(root, c).unwrap_or_default();
    let l = |k: &str| c.labels.get(k).cloned().unwrap_or_default();
    let has_healthcheck = c.healthcheck.as_ref().is_some_and(|h| !h.test.is_empty() && h.test[0] != "NONE");
    Container {
        id: c.id.clone(),
        name: c.name.clone(),
        service: l(labels::SERVICE),
        number: super::naming::parse_number(&l(labels::CONTAINER_NUMBER)).unwrap_or(1),
        oneoff: l(labels::ONEOFF) == "True",
        config_hash: l(labels::CONFIG_HASH),
        image: l(labels::IMAGE),
        status: st.status,
        health: st.health.as_ref().map(|h| h.status).filter(|s| *s != HealthStatus::None),
        exit_code: st.exit_code,
        created: c.created.clone(),
        depends_on: super::graph::parse_depends_on_label(&l(labels::DEPENDS_ON)),
        has_healthcheck,
        volumes: c
            .mounts
            .iter()
            .filter(|m| m.kind == crate::engine::runtime::spec::MountType::Volume && !st.anonymous_volumes.contains(&m.source))
            .map(|m| m.source.clone())
            .collect(),
        anonymous_volumes: st.anonymous_volumes.clone(),
        stop_grace_secs: c.stop_grace().as_secs(),
    }
}

/// Reads everything of `project` from the state root.
pub fn observe(root: &StateRoot, project: &str) -> Result<Observed, ObserveError> {
    // Every project command looks here first: a firewall table lost since the last change (a
    // firewalld reload, `nft flush ruleset`) is rewritten from state before anything is planned,
    // so that even a no-op `up -d` closes the containers again.
    crate::net::firewall::verify(root)?;
    let mut o = Observed { project: project.to_string(), ..Default::default() };
    for c in ops::list_configs(root) {
        if !belongs(&c, project) {
            continue;
        }
        if o.working_dir.is_none() {
            o.working_dir = c.labels.get(labels::WORKING_DIR).cloned();
            o.config_files = c.labels.get(labels::CONFIG_FILES).cloned();
        }
        o.containers.push(container(root, &c));
    }
    if root.networks_dir().is_dir() {
        for n in crate::net::network::list(root)? {
            o.networks.push(Resource {
                project: n.labels.get(labels::PROJECT).cloned(),
                key: n.labels.get(labels::NETWORK).cloned(),
                name: n.name,
                anonymous: false,
            });
        }
        // A network whose record is damaged has lost its labels: it is the project's by the
        // name compose gives it (`<project>_<key>`), so that `down` removes it.
        for d in crate::net::network::list_damaged(root)? {
            if let Some(key) = d.name.strip_prefix(&format!("{project}_")) {
                o.networks.push(Resource {
                    project: Some(project.to_string()),
                    key: Some(key.to_string()),
                    name: d.name,
                    anonymous: false,
                });
            }
        }
    }
    if root.volumes_dir().is_dir() {
        for v in volumes::list(root)? {
            o.volumes.push(Resource {
                project: v.labels.get(labels::PROJECT).cloned(),
                key: v.labels.get(labels::VOLUME).cloned(),
                anonymous: v.is_anonymous(),
                name: v.name,
            });
        }
    }
    Ok(o)
}

/// Every project that has containers in the state root (for messages).
pub fn project_names(root: &StateRoot) -> Vec<String> {
    let mut v: Vec<String> = ops::list_configs(root).into_iter().filter_map(|c| c.labels.get(labels::PROJECT).cloned()).collect();
    v.sort();
    v.dedup();
    v
}
