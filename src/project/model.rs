//! The typed, canonical compose model. Field order and names follow what Docker Compose prints
//! (`config --format json|yaml`), so that serializing a [`Project`] renders `berth config`.
//! Byte sizes are bytes, durations are nanoseconds ([`Duration`]), commands are argv vectors.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::util::units::format_duration;

thread_local! {
    static JSON: Cell<bool> = const { Cell::new(true) };
}

/// Runs `f` with serialization in JSON mode (`json == true`) or YAML mode. Docker Compose prints
/// a few things differently in each (null `command`, empty `ipam`, `x-` fields of services).
pub fn with_mode<T>(json: bool, f: impl FnOnce() -> T) -> T {
    let prev = JSON.with(|c| c.replace(json));
    let r = f();
    JSON.with(|c| c.set(prev));
    r
}

fn json_mode() -> bool {
    JSON.with(Cell::get)
}

/// `develop`: compose prints its `x-` fields and those of its watch rules in YAML only.
fn develop<S: Serializer>(d: &Option<Json>, s: S) -> Result<S::Ok, S::Error> {
    let mut d = d.clone();
    if json_mode() {
        if let Some(Json::Object(m)) = &mut d {
            m.retain(|k, _| !k.starts_with("x-"));
            for w in m.get_mut("watch").and_then(Json::as_array_mut).into_iter().flatten() {
                if let Json::Object(wm) = w {
                    wm.retain(|k, _| !k.starts_with("x-"));
                }
            }
        }
    }
    d.serialize(s)
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}
fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}
fn yaml_and_none<T>(v: &Option<T>) -> bool {
    v.is_none() && !json_mode()
}

/// A duration in nanoseconds, printed as Go prints durations (`1m30s`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub i64);

impl Duration {
    pub fn as_std(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.0.max(0) as u64)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

/// A number of bytes, printed as a decimal string as compose does (`"52428800"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub i64);

impl Bytes {
    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

/// `x-` extension fields, printed in YAML only for services and resources (as compose does).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extensions(pub BTreeMap<String, serde_json::Value>);

impl Extensions {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Extensions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let json = json_mode();
        let mut m = s.serialize_map(None)?;
        if !json {
            for (k, v) in &self.0 {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

/// The loaded project.
#[derive(Clone, Debug, Default)]
pub struct Project {
    pub name: String,
    /// The project directory: relative paths in the files are resolved against it.
    pub working_dir: PathBuf,
    /// The compose files, absolute, in the order they were merged.
    pub config_files: Vec<PathBuf>,
    /// The env files read for interpolation (`--env-file`, or the project's `.env`).
    pub env_files: Vec<PathBuf>,
    pub services: BTreeMap<String, Service>,
    pub networks: BTreeMap<String, Network>,
    pub volumes: BTreeMap<String, Volume>,
    pub secrets: BTreeMap<String, FileObject>,
    pub configs: BTreeMap<String, FileObject>,
    pub models: BTreeMap<String, serde_json::Value>,
    /// Top-level `x-` fields.
    pub extensions: BTreeMap<String, serde_json::Value>,
    /// Services left out because none of their profiles is enabled.
    pub disabled_services: BTreeMap<String, Service>,
    /// The profiles enabled for this load.
    pub profiles: Vec<String>,
    /// The environment used for interpolation (process environment, then env files).
    pub environment: BTreeMap<String, String>,
    /// Warnings to show the user (unset variables, obsolete `version`, ...).
    pub warnings: Vec<String>,
}

impl Serialize for Project {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if json_mode() {
            // Docker Compose prints the project as a map: keys sorted.
            let mut keys: Vec<&str> = vec!["name", "services"];
            if !self.networks.is_empty() {
                keys.push("networks");
            }
            if !self.volumes.is_empty() {
                keys.push("volumes");
            }
            if !self.secrets.is_empty() {
                keys.push("secrets");
            }
            if !self.configs.is_empty() {
                keys.push("configs");
            }
            if !self.models.is_empty() {
                keys.push("models");
            }
            for k in self.extensions.keys() {
                keys.push(k);
            }
            keys.sort_unstable();
            for k in keys {
                match k {
                    "name" => m.serialize_entry("name", &self.name)?,
                    "services" => m.serialize_entry("services", &self.services)?,
                    "networks" => m.serialize_entry("networks", &self.networks)?,
                    "volumes" => m.serialize_entry("volumes", &self.volumes)?,
                    "secrets" => m.serialize_entry("secrets", &self.secrets)?,
                    "configs" => m.serialize_entry("configs", &self.configs)?,
                    "models" => m.serialize_entry("models", &self.models)?,
                    x => m.serialize_entry(x, &self.extensions[x])?,
                }
            }
        } else {
            m.serialize_entry("name", &self.name)?;
            m.serialize_entry("services", &self.services)?;
            if !self.networks.is_empty() {
                m.serialize_entry("networks", &self.networks)?;
            }
            if !self.volumes.is_empty() {
                m.serialize_entry("volumes", &self.volumes)?;
            }
            if !self.secrets.is_empty() {
                m.serialize_entry("secrets", &self.secrets)?;
            }
            if !self.configs.is_empty() {
                m.serialize_entry("configs", &self.configs)?;
            }
            if !self.models.is_empty() {
                m.serialize_entry("models", &self.models)?;
            }
            for (k, v) in &self.extensions {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

type Json = serde_json::Value;

/// One service, every compose-spec key in its long form.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Service {
    #[serde(skip)]
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attach: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "develop")]
    pub develop: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blkio_config: Option<Json>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub cpu_count: i64,
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub cpu_percent: f64,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub cpu_period: i64,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub cpu_quota: i64,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub cpu_rt_period: i64,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub cpu_rt_runtime: i64,
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub cpus: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub cpu_shares: i64,
    /// `None`: use the image's; `Some([])`: explicitly empty.
    #[serde(skip_serializing_if = "yaml_and_none")]
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<FileMount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_spec: Option<Json>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, Dependency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    #[serde(skip_serializing_if = "yaml_and_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Json>,
    /// Resolved: `env_file`s read and merged under `environment`; `None` values are unset.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, Option<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub external_links: Vec<String>,
    /// `host=ip` entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    #[serde(skip_serializing_if = "Bytes::is_zero")]
    pub mem_limit: Bytes,
    #[serde(skip_serializing_if = "Bytes::is_zero")]
    pub mem_reservation: Bytes,
    #[serde(skip_serializing_if = "Bytes::is_zero")]
    pub memswap_limit: Bytes,
    #[serde(skip_serializing_if = "Bytes::is_zero")]
    pub mem_swappiness: Bytes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, Option<Json>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// Networks the service joins; `None` is the default attachment.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Option<ServiceNetwork>>,
    #[serde(skip_serializing_if = "is_false")]
    pub oom_kill_disable: bool,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub oom_score_adj: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub pids_limit: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(skip_serializing_if = "is_false")]
    pub privileged: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileMount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    #[serde(skip_serializing_if = "Bytes::is_zero")]
    pub shm_size: Bytes,
    #[serde(skip_serializing_if = "is_false")]
    pub stdin_open: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_opt: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub tty: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    #[serde(skip_serializing_if = "is_false")]
    pub use_api_socket: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userns_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_driver: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Mount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre_start: Vec<Json>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_start: Vec<Json>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre_stop: Vec<Json>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Build {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub context: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dockerfile_inline: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entitlements: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sbom: Option<String>,
    /// `id` or `id=path` entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ssh: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cache_from: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cache_to: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub no_cache: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub no_cache_filter: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_contexts: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "is_false")]
    pub pull: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileMount>,
    #[serde(skip_serializing_if = "Bytes::is_zero")]
    pub shm_size: Bytes,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub privileged: bool,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Dependency {
    pub condition: Condition,
    #[serde(skip_serializing_if = "is_false")]
    pub restart: bool,
    pub required: bool,
}

/// A `depends_on` condition. The loader refuses any other (a typo must never wait for the wrong
/// thing); only the labels of containers made elsewhere are read leniently.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Condition {
    /// `service_started`: the dependency's containers were started.
    #[default]
    Started,
    /// `service_healthy`: each is running and healthy.
    Healthy,
    /// `service_completed_successfully`: each exited with code 0.
    CompletedSuccessfully,
}

impl Condition {
    pub const ALL: [Condition; 3] = [Condition::Started, Condition::Healthy, Condition::CompletedSuccessfully];

    /// The condition named `s` as the compose file spells it.
    pub fn parse(s: &str) -> Option<Condition> {
        Condition::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Condition::Started => "service_started",
            Condition::Healthy => "service_healthy",
            Condition::CompletedSuccessfully => "service_completed_successfully",
        }
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Healthcheck {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<Duration>,
    #[serde(skip_serializing_if = "is_false")]
    pub disable: bool,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Logging {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Deploy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_config: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<Json>,
    #[serde(skip_serializing_if = "yaml_and_empty_resources")]
    pub resources: Resources,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(skip_serializing_if = "yaml_and_empty_json")]
    pub placement: Json,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_mode: Option<String>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

fn yaml_and_empty_resources(r: &Resources) -> bool {
    !json_mode() && r.limits.is_none() && r.reservations.is_none()
}
fn yaml_and_empty_json(v: &Json) -> bool {
    !json_mode() && v.as_object().is_none_or(|o| o.is_empty())
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Resources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Resource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Resource>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Resource {
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub cpus: f64,
    #[serde(skip_serializing_if = "Bytes::is_zero")]
    pub memory: Bytes,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub pids: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Json>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub generic_resources: Vec<Json>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct RestartPolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Device {
    pub source: String,
    pub target: String,
    pub permissions: String,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ServiceNetwork {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub gw_priority: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub link_local_ips: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub priority: i64,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Port {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    pub target: u32,
    /// A port (`"8080"`) or a range (`"8000-8010"`); `None` lets the engine choose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A service mount: `type` is `bind`, `volume`, `tmpfs`, `npipe`, `cluster` or `image`.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub target: String,
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<TmpfsOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<Json>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct BindOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selinux: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub create_host_path: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recursive: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct VolumeOptions {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "is_false")]
    pub nocopy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct TmpfsOptions {
    #[serde(skip_serializing_if = "Bytes::is_zero")]
    pub size: Bytes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// A secret or config given to a service (or a build).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct FileMount {
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "octal_mode")]
    pub mode: Option<u32>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

fn octal_mode<S: Serializer>(m: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => s.serialize_str(&format!("0{m:o}")),
        None => s.serialize_none(),
    }
}

/// `ulimits.NAME`: a single value, or soft and hard.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ulimit {
    pub single: i64,
    pub soft: i64,
    pub hard: i64,
}

impl Serialize for Ulimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.single != 0 {
            return s.serialize_i64(self.single);
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("soft", &self.soft)?;
        m.serialize_entry("hard", &self.hard)?;
        m.end()
    }
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Network {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "yaml_and_empty_ipam")]
    pub ipam: Ipam,
    #[serde(skip_serializing_if = "is_false")]
    pub external: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub internal: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub attachable: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_ipv4: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

fn yaml_and_empty_ipam(i: &Ipam) -> bool {
    !json_mode() && i.driver.is_none() && i.config.is_empty() && i.options.is_empty()
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Ipam {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<IpamPool>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct IpamPool {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Volume {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "is_false")]
    pub external: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A top-level secret or config: from a `file`, an `environment` variable or inline `content`.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct FileObject {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub external: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_driver: Option<String>,
    #[serde(flatten)]
    pub extensions: Extensions,
}
