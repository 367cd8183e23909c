//! From the compose model to the engine: the container spec for one container of a service
//! (the image's config merged with the service as Docker Compose does), compose's names and
//! labels for containers, networks and volumes, and finding a service's containers by their
//! compose labels.
//!
//! The translation is a pure function ([`container_spec`], [`service_spec`]) of the model, the
//! image and a few [`HostInputs`] (the containers of the services it shares namespaces with, the
//! image's layer directories), so that each compose rule is unit-tested without a state root.
//! What needs the disk is a small step around it: [`host_inputs`] gathers those inputs from the
//! engine, and [`check_host`] checks that the files and devices the spec names exist on this host.
//! [`container_config`] and [`service_config`] do the three in order.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::engine::image::{Image, ImageStore};
use crate::engine::runtime::spec::{self as rspec, ContainerConfig, MountType};
use crate::engine::runtime::{self, ops};
use crate::labels;
use crate::net::network::{IpamConfig, IpamSpec, NetworkSpec};
use crate::net::{EndpointRequest, NetworkMode, PortRequest, Protocol};
use crate::project::engine::{Engine, RealEngine};
use crate::project::model::{Project, Service};

/// Why a service cannot be turned into a container spec.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("service {service:?}: {msg}")]
    Invalid { service: String, msg: String },
    #[error("service {service:?} uses the namespace of service {other:?}, which has no container yet: start {other:?} first")]
    NoParent { service: String, other: String },
    #[error("external volume {0:?} not found: create it with `berth volume create {0}`, or remove `external: true`")]
    ExternalVolume(String),
    #[error(transparent)]
    Volume(#[from] runtime::volumes::VolumeError),
}

fn invalid(service: &Service, msg: impl Into<String>) -> ConvertError {
    ConvertError::Invalid { service: service.name.clone(), msg: msg.into() }
}

/// How many replicas a service wants: `scale`, else `deploy.replicas`, else 1.
pub fn replicas(service: &Service) -> u32 {
    service.scale.or_else(|| service.deploy.as_ref().and_then(|d| d.replicas)).map(|n| n.clamp(0, u32::MAX as i64) as u32).unwrap_or(1)
}

/// The full spec of replica `number` of a service, read from and checked against this host:
/// [`host_inputs`], [`service_spec`] and [`check_host`].
pub fn service_config(
    root: &crate::state::StateRoot,
    project: &Project,
    service: &Service,
    image: &Image,
    store: &ImageStore,
    number: u32,
) -> Result<ContainerConfig, ConvertError> {
    let host = root_inputs(root, store, project, service, image);
    let cfg = service_spec(project, service, image, &host, number)?;
    check_host(project, service, &cfg)?;
    Ok(cfg)
}

/// The full spec of replica `number` of a service (pure): [`container_spec`] plus its name, its
/// published ports and compose's container labels (number, one-off, config hash, dependencies,
/// env file).
pub fn service_spec(
    project: &Project,
    service: &Service,
    image: &Image,
    host: &HostInputs,
    number: u32,
) -> Result<ContainerConfig, ConvertError> {
    let mut cfg = container_spec(project, service, image, host)?;
    cfg.name = super::naming::service_container_name(&project.name, service, number);
    cfg.ports = service_ports(service, &cfg)?;
    let l = &mut cfg.labels;
    l.insert(labels::CONTAINER_NUMBER.into(), number.to_string());
    l.insert(labels::ONEOFF.into(), "False".into());
    l.insert(labels::CONFIG_HASH.into(), crate::project::hash::service_hash(service));
    l.insert(labels::DEPENDS_ON.into(), super::graph::depends_on_label(service));
    if !project.env_files.is_empty() {
        l.insert(labels::ENVIRONMENT_FILE.into(), project.env_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(","));
    }
    Ok(cfg)
}

/// The spec of a project network (`networks:` entry `key`), with compose's labels.
pub(crate) fn network_spec(project: &Project, key: &str, n: &crate::project::model::Network) -> NetworkSpec {
    let mut l = n.labels.clone();
    l.insert(labels::PROJECT.into(), project.name.clone());
    l.insert(labels::NETWORK.into(), key.to_string());
    l.insert(labels::VERSION.into(), labels::COMPOSE_VERSION.into());
    NetworkSpec {
        name: network_name(project, key),
        driver: n.driver.clone(),
        driver_opts: n.driver_opts.clone(),
        labels: l,
        internal: n.internal,
        attachable: n.attachable,
        enable_ipv6: n.enable_ipv6.unwrap_or(false),
        ipam: IpamSpec {
            driver: n.ipam.driver.clone(),
            config: n
                .ipam
                .config
                .iter()
                .map(|p| IpamConfig {
                    subnet: p.subnet.clone(),
                    ip_range: p.ip_range.clone(),
                    gateway: p.gateway.clone(),
                    aux_addresses: p.aux_addresses.clone(),
                })
                .collect(),
            options: n.ipam.options.clone(),
        },
    }
}

/// The real name of project network `key`: its `name:`, else `<project>_<key>`.
pub(crate) fn network_name(project: &Project, key: &str) -> String {
    project.networks.get(key).map(|n| n.name.clone()).filter(|n| !n.is_empty()).unwrap_or_else(|| format!("{}_{key}", project.name))
}

/// The real name of project volume `key`: its `name:`, else `<project>_<key>`.
pub(crate) fn volume_name(project: &Project, key: &str) -> String {
    project.volumes.get(key).map(|v| v.name.clone()).filter(|n| !n.is_empty()).unwrap_or_else(|| format!("{}_{key}", project.name))
}

/// The labels compose puts on a project volume.
pub(crate) fn volume_labels(project: &Project, key: &str) -> BTreeMap<String, String> {
    let mut l = project.volumes.get(key).map(|v| v.labels.clone()).unwrap_or_default();
    l.insert(labels::PROJECT.into(), project.name.clone());
    l.insert(labels::VOLUME.into(), key.to_string());
    l.insert(labels::VERSION.into(), labels::COMPOSE_VERSION.into());
    l
}

/// Creates project volume `key` with compose's labels if it does not exist (an external one
/// must exist). Returns its real name.
pub fn ensure_volume(root: &crate::state::StateRoot, project: &Project, key: &str) -> Result<String, ConvertError> {
    ensure_volume_on(&RealEngine::new(root, None), project, key)
}

/// [`ensure_volume`] on an engine.
pub(crate) fn ensure_volume_on(engine: &dyn Engine, project: &Project, key: &str) -> Result<String, ConvertError> {
    let name = volume_name(project, key);
    let Some(v) = project.volumes.get(key) else { return Ok(name) };
    if engine.volume_inspect(&name)?.is_none() {
        if v.external {
            return Err(ConvertError::ExternalVolume(name));
        }
        engine.volume_create(Some(&name), v.driver.as_deref().unwrap_or("local"), volume_labels(project, key), v.driver_opts.clone())?;
    }
    Ok(name)
}

/// The service's `ports:` as the network module takes them.
pub(crate) fn port_requests(service: &Service) -> Result<Vec<PortRequest>, ConvertError> {
    let mut out = Vec::new();
    for p in &service.ports {
        let protocol = match p.protocol.as_str() {
            "" | "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            other => return Err(invalid(service, format!("ports: protocol {other:?} is not supported: use tcp or udp"))),
        };
        let container_port = u16::try_from(p.target)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| invalid(service, format!("ports: invalid container port {}", p.target)))?;
        let host_ip = match p.host_ip.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(
                s.trim_matches(|c| c == '[' || c == ']')
                    .parse()
                    .map_err(|_| invalid(service, format!("ports: invalid host address {s:?}")))?,
            ),
        };
        let port = |s: &str| s.parse::<u16>().map_err(|_| invalid(service, format!("ports: invalid host port {s:?}")));
        let (host_port, host_port_end) = match p.published.as_deref().filter(|s| !s.is_empty()) {
            None => (None, None),
            Some(s) => match s.split_once('-') {
                Some((a, b)) => (Some(port(a)?), Some(port(b)?)),
                None => (Some(port(s)?).filter(|p| *p != 0), None),
            },
        };
        out.push(PortRequest { host_ip, host_port, container_port, protocol, host_port_end });
    }
    Ok(out)
}

/// The container of `service` (replica `index`) of `project`, as compose finds it: by labels.
pub fn service_container(root: &crate::state::StateRoot, project: &str, service: &str, index: u32) -> Option<runtime::ContainerConfig> {
    find_service_container(&ops::list_configs(root), project, service, index).cloned()
}

/// [`service_container`] among `containers`.
pub(crate) fn find_service_container<'a>(
    containers: &'a [runtime::ContainerConfig],
    project: &str,
    service: &str,
    index: u32,
) -> Option<&'a runtime::ContainerConfig> {
    containers.iter().find(|c| {
        let l = |k: &str| c.labels.get(k).map(|s| s.as_str());
        l(labels::PROJECT) == Some(project)
            && l(labels::SERVICE) == Some(service)
            && l(labels::ONEOFF) != Some("True")
            && l(labels::CONTAINER_NUMBER).unwrap_or("1") == index.to_string()
    })
}

/// What the translation needs from the host besides the model and the image: the only inputs of
/// [`container_spec`] that are not in the compose file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostInputs {
    /// The id of the first container of each service whose namespaces or volumes this one shares
    /// ([`parent_services`]); a service that has none yet is absent (and the spec an error).
    pub parents: BTreeMap<String, String>,
    /// The image's unpacked layer directories, bottom to top: the rootfs's lower directories.
    pub layers: Vec<PathBuf>,
}

/// The services whose first container the spec of `service` names (`network_mode`, `ipc` and
/// `pid` as `service:X`, and `volumes_from: X`).
pub(crate) fn parent_services(service: &Service) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in [&service.network_mode, &service.ipc, &service.pid].into_iter().flatten() {
        if let Some(x) = m.strip_prefix("service:").filter(|x| !x.is_empty()) {
            out.push(x.to_string());
        }
    }
    for v in service.volumes_from.iter().filter(|v| !v.starts_with("container:")) {
        out.push(v.split_once(':').map(|(o, _)| o).unwrap_or(v).to_string());
    }
    out.sort();
    out.dedup();
    out
}

/// [`HostInputs::parents`] from a list of containers (the root's, or an engine's).
pub(crate) fn find_parents(containers: &[runtime::ContainerConfig], project: &Project, service: &Service) -> BTreeMap<String, String> {
    parent_services(service)
        .into_iter()
        .filter_map(|s| find_service_container(containers, &project.name, &s, 1).map(|c| (s, c.id.clone())))
        .collect()
}

/// Gathers the [`HostInputs`] of `service` from an engine (its containers, listed only when the
/// service names another's), with the image's `layers`.
pub fn host_inputs(engine: &dyn Engine, project: &Project, service: &Service, layers: Vec<PathBuf>) -> HostInputs {
    let parents =
        if parent_services(service).is_empty() { BTreeMap::new() } else { find_parents(&engine.container_list(), project, service) };
    HostInputs { parents, layers }
}

/// [`host_inputs`] from a state root and its image store.
fn root_inputs(root: &crate::state::StateRoot, store: &ImageStore, project: &Project, service: &Service, image: &Image) -> HostInputs {
    let engine = RealEngine::new(root, Some(store));
    host_inputs(&engine, project, service, engine.image_layers(image).unwrap_or_default())
}

/// The parent container `other` of `service`, from the [`HostInputs`].
fn parent(host: &HostInputs, service: &Service, other: &str) -> Result<String, ConvertError> {
    host.parents.get(other).cloned().ok_or_else(|| ConvertError::NoParent { service: service.name.clone(), other: other.to_string() })
}

/// Checks what [`container_spec`] names on this host and cannot check without the disk: the
/// files of `file:` secrets and configs, the host devices of `devices:`, and the block devices of
/// `blkio_config` (they must exist now, and again at each start, when the cgroup is made).
pub fn check_host(project: &Project, service: &Service, cfg: &ContainerConfig) -> Result<(), ConvertError> {
    for (kind, list, tops) in [("secret", &service.secrets, &project.secrets), ("config", &service.configs, &project.configs)] {
        for fm in list {
            let name = &fm.source;
            let Some(file) = tops.get(name).and_then(|t| t.file.as_ref()) else { continue };
            match std::fs::metadata(file) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(invalid(
                        service,
                        format!("{kind} {name:?}: file {file} does not exist: create it, or change {kind}s.{name}.file"),
                    ));
                }
                Err(e) => return Err(invalid(service, format!("{kind} {name:?}: cannot read file {file}: {e}"))),
            }
        }
    }
    let resources = &cfg.resources;
    resources.extra_device_rules().map_err(|e| invalid(service, format!("devices: {}", e.one_line())))?;
    resources.io_limits().and_then(|_| resources.io_weights()).map_err(|e| invalid(service, format!("blkio_config: {}", e.one_line())))?;
    Ok(())
}

fn str_list(v: &serde_json::Value) -> Option<Vec<String>> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
}

pub fn kv(list: &[String]) -> BTreeMap<String, String> {
    list.iter().map(|s| s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap_or((s.clone(), String::new()))).collect()
}

/// Sets `KEY=value` in an env list, replacing an earlier value of the same key.
pub fn set_env(env: &mut Vec<String>, entry: String) {
    let key = entry.split_once('=').map(|(k, _)| k.to_string()).unwrap_or_else(|| entry.clone());
    env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(key.as_str()) && *e != key);
    env.push(entry);
}

fn nanos(d: &Option<crate::project::model::Duration>) -> u64 {
    d.map(|d| d.0.max(0) as u64).unwrap_or(0)
}

/// The container spec for one container of `service`, read from and checked against this host:
/// [`host_inputs`], [`container_spec`] and [`check_host`].
pub fn container_config(
    root: &crate::state::StateRoot,
    project: &Project,
    service: &Service,
    image: &Image,
    store: &ImageStore,
) -> Result<ContainerConfig, ConvertError> {
    let host = root_inputs(root, store, project, service, image);
    let cfg = container_spec(project, service, image, &host)?;
    check_host(project, service, &cfg)?;
    Ok(cfg)
}

/// The resolved container spec for one container of `service` (a pure function), with the
/// image's config merged in as Docker Compose does: a service `entrypoint` drops the image's
/// CMD, `command` replaces it, the environment is the image's overridden by the service's, and
/// `working_dir`/`user` default to the image's. `labels` are added (compose's own labels are the
/// caller's choice). Its name and published ports are [`service_spec`]'s.
pub fn container_spec(project: &Project, service: &Service, image: &Image, host: &HostInputs) -> Result<ContainerConfig, ConvertError> {
    if let Some(want) = service_platform(service)? {
        if !platform_matches(service, image) {
            let rc = &image.raw_config;
            let have = format!("{}/{}", rc["os"].as_str().unwrap_or("linux"), rc["architecture"].as_str().unwrap_or_default());
            return Err(invalid(
                service,
                format!(
                    "image {} is for {have}, not for the platform {want} asked: pull it for that platform with `berth pull {}`, or change `platform:`",
                    super::naming::service_image_name(project, service),
                    service.name
                ),
            ));
        }
    }
    let ic = image.container_config();
    let image_entry = str_list(&ic["Entrypoint"]).unwrap_or_default();
    let image_cmd = str_list(&ic["Cmd"]).unwrap_or_default();
    let (entrypoint, cmd) = match (&service.entrypoint, &service.command) {
        (Some(e), c) => (e.clone(), c.clone().unwrap_or_default()),
        (None, Some(c)) => (image_entry, c.clone()),
        (None, None) => (image_entry, image_cmd),
    };
    let mut env: Vec<String> = str_list(&ic["Env"]).unwrap_or_default();
    for (k, v) in &service.environment {
        if let Some(v) = v {
            set_env(&mut env, format!("{k}={v}"));
        }
    }
    let mut labels_out: BTreeMap<String, String> = ic["Labels"]
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
        .unwrap_or_default();
    labels::strip_reserved(&mut labels_out);
    labels_out.extend(service.labels.clone());
    labels_out.insert(labels::PROJECT.into(), project.name.clone());
    labels_out.insert(labels::SERVICE.into(), service.name.clone());
    labels_out.insert(labels::WORKING_DIR.into(), project.working_dir.display().to_string());
    labels_out
        .insert(labels::CONFIG_FILES.into(), project.config_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(","));
    labels_out.insert(labels::VERSION.into(), labels::COMPOSE_VERSION.into());
    labels_out.insert(labels::IMAGE.into(), image.id.to_string());

    let mut mounts = Vec::new();
    for m in &service.volumes {
        let kind = match m.kind.as_str() {
            "bind" => MountType::Bind,
            "volume" => MountType::Volume,
            "tmpfs" => MountType::Tmpfs,
            other => return Err(invalid(service, format!("volumes of type {other:?} are not supported by berth"))),
        };
        let mut source = m.source.clone().unwrap_or_default();
        let mut vo = None;
        if kind == MountType::Volume && !source.is_empty() {
            // A project volume: its real name (created by the orchestration, or `ensure_volume`).
            if project.volumes.contains_key(&source) {
                source = volume_name(project, &source);
            }
        }
        if kind == MountType::Volume {
            vo = Some(rspec::VolumeOptions {
                no_copy: m.volume.as_ref().is_some_and(|o| o.nocopy),
                labels: m.volume.as_ref().map(|o| o.labels.clone()).unwrap_or_default(),
                subpath: m.volume.as_ref().and_then(|o| o.subpath.clone()),
            });
        }
        mounts.push(rspec::Mount {
            kind,
            source,
            target: m.target.clone(),
            read_only: m.read_only,
            bind_options: (kind == MountType::Bind).then(|| rspec::BindOptions {
                propagation: m.bind.as_ref().and_then(|b| b.propagation.clone()),
                create_mountpoint: m.bind.as_ref().is_some_and(|b| b.create_host_path),
            }),
            volume_options: vo,
            tmpfs_options: m
                .tmpfs
                .as_ref()
                .map(|t| rspec::TmpfsOptions { size_bytes: (t.size.0 > 0).then_some(t.size.0 as u64), mode: t.mode }),
        });
    }
    for t in &service.tmpfs {
        let (target, opts) = t.split_once(':').unwrap_or((t.as_str(), ""));
        let mut o = rspec::TmpfsOptions::default();
        for part in opts.split(',') {
            if let Some(v) = part.strip_prefix("size=") {
                o.size_bytes = rspec::parse_size(v);
            } else if let Some(v) = part.strip_prefix("mode=") {
                o.mode = u32::from_str_radix(v, 8).ok();
            }
        }
        mounts.push(rspec::Mount { kind: MountType::Tmpfs, target: target.to_string(), tmpfs_options: Some(o), ..Default::default() });
    }

    let files = secrets_and_configs(project, service, &mut mounts)?;

    let limits = service.deploy.as_ref().and_then(|d| d.resources.limits.clone());
    let reservations = service.deploy.as_ref().and_then(|d| d.resources.reservations.clone());
    let pos = |v: i64| (v > 0).then_some(v);
    let memory = pos(service.mem_limit.0).or_else(|| limits.as_ref().and_then(|l| pos(l.memory.0)));
    let cpus = if service.cpus > 0.0 { service.cpus } else { limits.as_ref().map(|l| l.cpus).unwrap_or(0.0) };
    let resources = crate::engine::cgroups::Resources {
        memory,
        memory_reservation: pos(service.mem_reservation.0).or_else(|| reservations.as_ref().and_then(|r| pos(r.memory.0))),
        memory_swap: (service.memswap_limit.0 != 0).then_some(service.memswap_limit.0),
        nano_cpus: (cpus > 0.0).then_some((cpus * 1e9) as i64),
        cpu_shares: (service.cpu_shares > 0).then_some(service.cpu_shares as u64),
        cpu_period: (service.cpu_period > 0).then_some(service.cpu_period as u64),
        cpu_quota: (service.cpu_quota != 0).then_some(service.cpu_quota),
        cpuset_cpus: service.cpuset.clone(),
        cpuset_mems: None,
        pids_limit: pos(service.pids_limit).or_else(|| limits.as_ref().and_then(|l| pos(l.pids))),
        // As compose: 0 is "unset" (the model cannot tell them apart either).
        memory_swappiness: (service.mem_swappiness.0 != 0).then_some(service.mem_swappiness.0),
        oom_kill_disable: service.oom_kill_disable,
        cpu_rt_period: pos(service.cpu_rt_period).map(|p| p as u64),
        cpu_rt_runtime: (service.cpu_rt_runtime != 0).then_some(service.cpu_rt_runtime),
        devices: service
            .devices
            .iter()
            .map(|d| crate::engine::cgroups::DeviceMapping {
                path_on_host: d.source.clone(),
                path_in_container: if d.target.is_empty() { d.source.clone() } else { d.target.clone() },
                cgroup_permissions: if d.permissions.is_empty() { "rwm".into() } else { d.permissions.clone() },
            })
            .collect(),
        device_cgroup_rules: service.device_cgroup_rules.clone(),
        ..Default::default()
    };
    let mut resources = resources;
    blkio(service, &mut resources)?;
    refuse_unsupported(service)?;

    let network_mode = match service.network_mode.as_deref() {
        None | Some("bridge") | Some("default") => NetworkMode::Bridge,
        Some("host") => NetworkMode::Host,
        Some("none") => NetworkMode::None,
        Some(m) if m.starts_with("service:") => NetworkMode::Container(parent(host, service, &m["service:".len()..])?),
        Some(m) if m.starts_with("container:") => NetworkMode::Container(m["container:".len()..].to_string()),
        Some(m) => return Err(invalid(service, format!("unsupported network_mode {m:?}"))),
    };
    let ipc_mode = namespace_mode(host, service, "ipc", service.ipc.as_deref(), &["private", "shareable", "host"])?;
    let uts_mode = match service.uts.as_deref().filter(|u| !u.is_empty()) {
        None => String::new(),
        Some("host") => {
            for (k, v) in [("hostname", &service.hostname), ("domainname", &service.domainname)] {
                if v.as_deref().is_some_and(|v| !v.is_empty()) {
                    return Err(invalid(
                        service,
                        format!(
                            "conflicting options: {k} and the UTS mode: with `uts: host` the container keeps the host's names; remove {k}"
                        ),
                    ));
                }
            }
            "host".to_string()
        }
        Some(u) => return Err(invalid(service, format!("uts {u:?} is not supported: use host, or remove it"))),
    };
    let volumes_from = volumes_from(host, service)?;
    let pid_mode = namespace_mode(host, service, "pid", service.pid.as_deref(), &["host"])?;
    let mut endpoints = Vec::new();
    if network_mode == NetworkMode::Bridge {
        let nets: Vec<(&String, Option<&crate::project::model::ServiceNetwork>)> =
            if service.networks.is_empty() { vec![] } else { service.networks.iter().map(|(k, v)| (k, v.as_ref())).collect() };
        let default = "default".to_string();
        let nets = if nets.is_empty() && project.networks.contains_key("default") { vec![(&default, None)] } else { nets };
        for (key, sn) in nets {
            let name = network_name(project, key);
            let mut aliases = vec![service.name.clone()];
            aliases.extend(sn.map(|n| n.aliases.clone()).unwrap_or_default());
            endpoints.push(EndpointRequest {
                network: name,
                aliases,
                ipv4_address: sn.and_then(|n| n.ipv4_address.as_deref()).and_then(|a| a.parse().ok()),
                ipv6_address: sn.and_then(|n| n.ipv6_address.as_deref()).and_then(|a| a.parse().ok()),
                mac_address: sn.and_then(|n| n.mac_address.clone()),
                gw_priority: sn.map(|n| n.gw_priority as i32).unwrap_or(0),
            });
        }
        // The service's `mac_address` is the first network's, as compose gives it.
        if let (Some(mac), Some(first)) = (service.mac_address.as_ref().filter(|m| !m.is_empty()), endpoints.first_mut()) {
            if first.mac_address.is_none() {
                first.mac_address = Some(mac.clone());
            }
        }
    }

    let healthcheck = match &service.healthcheck {
        Some(h) if h.disable => Some(rspec::Healthcheck { test: vec!["NONE".into()], ..Default::default() }),
        Some(h) => Some(rspec::Healthcheck {
            test: h.test.clone(),
            interval: nanos(&h.interval),
            timeout: nanos(&h.timeout),
            start_period: nanos(&h.start_period),
            start_interval: nanos(&h.start_interval),
            retries: h.retries.unwrap_or(0) as u32,
        }),
        None => ic.get("Healthcheck").and_then(|h| serde_json::from_value::<rspec::Healthcheck>(h.clone()).ok()),
    };
    let image_volumes = ic["Volumes"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    let ulimits = service
        .ulimits
        .iter()
        .map(|(name, u)| {
            let (soft, hard) = if u.single != 0 { (u.single, u.single) } else { (u.soft, u.hard) };
            rspec::Ulimit { name: name.clone(), soft, hard }
        })
        .collect();
    Ok(ContainerConfig {
        image: image.id.to_string(),
        image_ref: super::naming::service_image_name(project, service),
        labels: labels_out,
        entrypoint,
        cmd,
        env,
        user: service.user.clone().or_else(|| ic["User"].as_str().map(String::from)).unwrap_or_default(),
        group_add: service.group_add.clone(),
        working_dir: service.working_dir.clone().or_else(|| ic["WorkingDir"].as_str().map(String::from)).unwrap_or_default(),
        hostname: service.hostname.clone().unwrap_or_default(),
        domainname: service.domainname.clone().unwrap_or_default(),
        tty: service.tty,
        open_stdin: service.stdin_open,
        init: service.init.unwrap_or(false),
        rootfs: rspec::Rootfs { layers: host.layers.clone(), read_only: service.read_only },
        image_volumes,
        mounts,
        files,
        shm_size: (service.shm_size.0 > 0).then_some(service.shm_size.0 as u64),
        ulimits,
        sysctls: service.sysctls.clone(),
        cap_add: service.cap_add.clone(),
        cap_drop: service.cap_drop.clone(),
        privileged: service.privileged,
        security_opt: service.security_opt.clone(),
        resources,
        oom_score_adj: (service.oom_score_adj != 0).then_some(service.oom_score_adj as i32),
        stop_signal: service.stop_signal.clone().or_else(|| ic["StopSignal"].as_str().map(String::from)).unwrap_or_default(),
        stop_grace_period: service.stop_grace_period.map(|d| d.0.max(0) as u64),
        restart_policy: match service.restart.as_deref() {
            Some(r) => rspec::RestartPolicy::parse(r).map_err(|e| invalid(service, e.to_string()))?,
            None => deploy_restart(service)?,
        },
        healthcheck,
        log_config: rspec::LogConfig {
            kind: service.logging.as_ref().and_then(|l| l.driver.clone()).unwrap_or_else(|| "json-file".into()),
            config: service.logging.as_ref().map(|l| l.options.clone()).unwrap_or_default(),
        },
        ipc_mode,
        pid_mode,
        uts_mode,
        volumes_from,
        cgroupns_mode: match service.cgroup.as_deref().filter(|c| !c.is_empty()) {
            None => String::new(),
            Some(m @ ("host" | "private")) => m.to_string(),
            Some(m) => return Err(invalid(service, format!("cgroup: {m:?} is not supported: use host or private"))),
        },
        network_mode,
        endpoints,
        dns: service.dns.iter().filter_map(|d| d.parse().ok()).collect(),
        dns_search: service.dns_search.clone(),
        dns_options: service.dns_opt.clone(),
        extra_hosts: service.extra_hosts.clone(),
        ..Default::default()
    })
}

/// `deploy.restart_policy` when `restart:` is unset, as compose maps it: `none` is `no`, `any`
/// is `always`, `on-failure` keeps `max_attempts`.
fn deploy_restart(service: &Service) -> Result<rspec::RestartPolicy, ConvertError> {
    let Some(rp) = service.deploy.as_ref().and_then(|d| d.restart_policy.as_ref()) else { return Ok(rspec::RestartPolicy::default()) };
    let name = match rp.condition.as_deref().unwrap_or("any") {
        "none" => "no",
        "any" => "always",
        "on-failure" => "on-failure",
        other => {
            return Err(invalid(service, format!("deploy.restart_policy.condition {other:?} is not valid: use none, on-failure or any")));
        }
    };
    let mut p = rspec::RestartPolicy::parse(name).map_err(|e| invalid(service, e))?;
    if name == "on-failure" {
        p.maximum_retry_count = rp.max_attempts.unwrap_or(0).min(i64::MAX as u64) as _;
    }
    Ok(p)
}

/// `blkio_config`: weight, weight_device and the four throttles (a rate may be a size such as
/// `1mb` for the bps ones).
fn blkio(service: &Service, res: &mut crate::engine::cgroups::Resources) -> Result<(), ConvertError> {
    use crate::engine::cgroups::ThrottleDevice;
    let Some(b) = service.blkio_config.as_ref().and_then(|b| b.as_object()) else { return Ok(()) };
    let num = |key: &str, v: &serde_json::Value| -> Result<u64, ConvertError> {
        match v {
            serde_json::Value::Number(n) => {
                n.as_u64().ok_or_else(|| invalid(service, format!("blkio_config.{key}: {n} must be a positive number")))
            }
            serde_json::Value::String(s) => crate::util::units::parse_bytes(s)
                .ok()
                .filter(|v| *v >= 0)
                .map(|v| v as u64)
                .ok_or_else(|| invalid(service, format!("blkio_config.{key}: {s:?} must be a number or a size such as 1mb"))),
            other => Err(invalid(service, format!("blkio_config.{key}: {other} must be a number"))),
        }
    };
    for (key, v) in b {
        match key.as_str() {
            "weight" => {
                let w = num(key, v)?;
                res.blkio_weight = Some(
                    u16::try_from(w).map_err(|_| invalid(service, format!("blkio_config.weight {w} is out of range: use 10 to 1000")))?,
                );
            }
            "weight_device" | "device_read_bps" | "device_write_bps" | "device_read_iops" | "device_write_iops" => {
                let field = if key == "weight_device" { "weight" } else { "rate" };
                let mut list = Vec::new();
                for e in v.as_array().map(|a| a.as_slice()).unwrap_or_default() {
                    let path = e["path"]
                        .as_str()
                        .filter(|p| !p.is_empty())
                        .ok_or_else(|| invalid(service, format!("blkio_config.{key}: every entry needs a path")))?;
                    list.push(ThrottleDevice { path: path.to_string(), rate: num(&format!("{key}.{field}"), &e[field])? });
                }
                *match key.as_str() {
                    "weight_device" => &mut res.blkio_weight_device,
                    "device_read_bps" => &mut res.blkio_device_read_bps,
                    "device_write_bps" => &mut res.blkio_device_write_bps,
                    "device_read_iops" => &mut res.blkio_device_read_iops,
                    _ => &mut res.blkio_device_write_iops,
                } = list;
            }
            other => return Err(invalid(service, format!("blkio_config.{other} is not a blkio_config key"))),
        }
    }
    Ok(())
}

/// Keys whose non-default values the engine cannot honour: refused, as Docker refuses them on a
/// Linux host without the feature.
fn refuse_unsupported(service: &Service) -> Result<(), ConvertError> {
    let set = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(String::from);
    if let Some(m) = set(&service.userns_mode).filter(|m| m != "host") {
        return Err(invalid(
            service,
            format!("userns_mode {m:?} is not supported: berth runs containers in the host's user namespace; remove it or use `host`"),
        ));
    }
    if let Some(i) = set(&service.isolation).filter(|i| i != "default") {
        return Err(invalid(service, format!("isolation {i:?} is not supported on Linux: remove it or use `default`")));
    }
    if let Some(r) = set(&service.runtime).filter(|r| r != "runc") {
        return Err(invalid(
            service,
            format!("runtime {r:?} is not supported: berth runs containers with its own engine; remove it (or use `runc`)"),
        ));
    }
    if !service.storage_opt.is_empty() {
        return Err(invalid(service, "storage_opt is not supported: berth's overlay root filesystem has no size quota; remove it"));
    }
    for o in &service.security_opt {
        let (k, v) = o.split_once(['=', ':']).unwrap_or((o.as_str(), ""));
        match k {
            "no-new-privileges" if ["", "true", "false"].contains(&v) => {}
            "seccomp" | "apparmor" | "label" if !v.is_empty() => {}
            _ => {
                return Err(invalid(
                    service,
                    format!(
                        "security_opt {o:?} is not supported: use no-new-privileges, seccomp=unconfined, seccomp=<profile.json>, apparmor=... or label=..."
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The service's `platform:`, for pulls and the image check; an unparsable one is an error
/// naming the service.
pub fn service_platform(service: &Service) -> Result<Option<crate::engine::image::Platform>, ConvertError> {
    let Some(p) = service.platform.as_deref().filter(|p| !p.is_empty()) else { return Ok(None) };
    crate::engine::image::Platform::parse(p)
        .map(Some)
        .map_err(|_| invalid(service, format!("platform {p:?} is not a platform: use os/arch[/variant], such as linux/amd64")))
}

/// Whether `image` is for the service's `platform:` (any image is, without one).
pub(crate) fn platform_matches(service: &Service, image: &Image) -> bool {
    let Ok(Some(want)) = service_platform(service) else { return true };
    config_matches(&want, &image.raw_config)
}

/// Whether an image config (`os`, `architecture`, `variant`) is for `want`; one that names no
/// architecture is taken as matching.
fn config_matches(want: &crate::engine::image::Platform, rc: &serde_json::Value) -> bool {
    let arch = rc["architecture"].as_str().unwrap_or_default();
    arch.is_empty() || want.matches(rc["os"].as_str().unwrap_or("linux"), arch, rc["variant"].as_str())
}

/// One warning line (compose's `WARN[0000]` text, without the prefix) for each key of `service`
/// that berth accepts but does not apply, so that nothing is dropped silently. `up`, `create`
/// and `run` print them.
pub fn unapplied(project: &Project, service: &Service) -> Vec<String> {
    let mut w = Vec::new();
    let name = &service.name;
    let mut key = |k: &str, why: &str| w.push(format!("service {name:?}: `{k}` is not supported by berth and is ignored: {why}"));
    if service.cgroup_parent.as_deref().is_some_and(|p| !p.is_empty()) {
        key("cgroup_parent", "berth places every container's cgroup under berth/<id>");
    }
    if service.cpu_count != 0 || service.cpu_percent != 0.0 {
        key(if service.cpu_count != 0 { "cpu_count" } else { "cpu_percent" }, "it applies to Windows containers only; use cpus");
    }
    if service.credential_spec.is_some() {
        key("credential_spec", "it applies to Windows containers only");
    }
    if !service.gpus.is_empty() {
        key("gpus", "berth has no GPU support");
    }
    if !service.external_links.is_empty() {
        key("external_links", "reach other containers by their name on a shared network");
    }
    if service.links.iter().any(|l| l.contains(':')) {
        key("links", "a link alias is not a DNS name in berth; reach the service by its name (or add a network alias)");
    }
    if service.volume_driver.as_deref().is_some_and(|d| !d.is_empty() && d != "local") {
        key("volume_driver", "berth has only the local volume driver");
    }
    if !service.annotations.is_empty() {
        key("annotations", "berth has no OCI runtime to hand them to");
    }
    if !service.models.is_empty() || service.provider.is_some() {
        key(if service.provider.is_some() { "provider" } else { "models" }, "berth has no model runner or provider plugins");
    }
    if service.use_api_socket {
        key("use_api_socket", "berth has no engine API socket");
    }
    for (k, v) in [("pre_start", &service.pre_start), ("post_start", &service.post_start), ("pre_stop", &service.pre_stop)] {
        if !v.is_empty() {
            key(k, "lifecycle hooks are not run; use the command or an entrypoint script");
        }
    }
    for o in &service.security_opt {
        if o.starts_with("apparmor") || o.starts_with("label") {
            key("security_opt", &format!("{o:?} needs AppArmor or SELinux, which berth does not use"));
        }
    }
    for (net, sn) in &service.networks {
        let Some(sn) = sn else { continue };
        if sn.interface_name.is_some() || !sn.link_local_ips.is_empty() || !sn.driver_opts.is_empty() || sn.priority != 0 {
            key(&format!("networks.{net}"), "interface_name, link_local_ips, driver_opts and priority are not applied");
        }
    }
    if let Some(d) = &service.deploy {
        let r = &d.resources;
        if r.reservations.as_ref().is_some_and(|x| x.cpus > 0.0) {
            key("deploy.resources.reservations.cpus", "CPU reservations need a scheduler; use cpu_shares");
        }
        if [&r.limits, &r.reservations].iter().any(|x| x.as_ref().is_some_and(|x| !x.devices.is_empty() || !x.generic_resources.is_empty()))
        {
            key("deploy.resources.*.devices", "berth has no device requests (GPUs); use devices: for device nodes");
        }
        if d.mode.as_deref().is_some_and(|m| m == "global") {
            key("deploy.mode", "global mode is for swarm; berth runs the replicas asked for");
        }
        for (k, set) in [
            ("deploy.placement", !d.placement.is_null() && d.placement.as_object().is_none_or(|o| !o.is_empty())),
            ("deploy.update_config", d.update_config.is_some()),
            ("deploy.rollback_config", d.rollback_config.is_some()),
            ("deploy.endpoint_mode", d.endpoint_mode.is_some()),
        ] {
            if set {
                key(k, "it is for swarm");
            }
        }
    }
    // What this host's cgroups drop, as Docker does with a warning (cgroup v2, no I/O weights).
    let mut res = crate::engine::cgroups::Resources {
        memory_swappiness: (service.mem_swappiness.0 != 0).then_some(service.mem_swappiness.0),
        oom_kill_disable: service.oom_kill_disable,
        ..Default::default()
    };
    if blkio(service, &mut res).is_ok() {
        if let Ok(h) = crate::engine::cgroups::hierarchy() {
            w.extend(h.discarded(&res).into_iter().map(|d| format!("service {name:?}: {d}")));
        }
    }
    for (kind, list) in [("secrets", &service.secrets), ("config", &service.configs)] {
        let tops = if kind == "secrets" { &project.secrets } else { &project.configs };
        if list
            .iter()
            .any(|f| tops.get(&f.source).is_some_and(|t| t.file.is_some()) && (f.uid.is_some() || f.gid.is_some() || f.mode.is_some()))
        {
            // docker compose's own words.
            w.push(format!("{kind} `uid`, `gid` and `mode` are not supported, they will be ignored"));
        }
    }
    w
}

/// The engine's `volumes_from` for the service's, as compose gives them: `container:NAME[:mode]`
/// as `NAME[:mode]`, and `SERVICE[:mode]` as that service's first container (which the plan
/// creates first, and recreates this one with).
fn volumes_from(host: &HostInputs, service: &Service) -> Result<Vec<String>, ConvertError> {
    let mut out = Vec::new();
    for v in &service.volumes_from {
        if let Some(c) = v.strip_prefix("container:") {
            out.push(c.to_string());
            continue;
        }
        let (other, mode) = match v.split_once(':') {
            Some((o, m)) => (o, Some(m)),
            None => (v.as_str(), None),
        };
        let id = parent(host, service, other)?;
        out.push(match mode {
            Some(m) => format!("{id}:{m}"),
            None => id,
        });
    }
    Ok(out)
}

/// The engine's mode for the service's `ipc:` or `pid:` (`key`): one of `plain` as is,
/// `container:NAME` as is, and `service:NAME` as `container:<id>` of that service's first
/// container (which the plan starts first).
fn namespace_mode(host: &HostInputs, service: &Service, key: &str, mode: Option<&str>, plain: &[&str]) -> Result<String, ConvertError> {
    match mode.filter(|m| !m.is_empty()) {
        None => Ok(String::new()),
        Some(m) if plain.contains(&m) => Ok(m.to_string()),
        Some(m) if m.starts_with("container:") && m.len() > "container:".len() => Ok(m.to_string()),
        Some(m) if m.starts_with("service:") && m.len() > "service:".len() => {
            Ok(format!("container:{}", parent(host, service, &m["service:".len()..])?))
        }
        Some(m) => {
            let mut valid: Vec<String> = plain.iter().map(|p| p.to_string()).collect();
            valid.extend(["service:<name>".to_string(), "container:<name>".to_string()]);
            Err(invalid(service, format!("{key}: {m:?} is not supported: use {}", valid.join(", "))))
        }
    }
}

/// The service's `secrets:` and `configs:`, as Docker Compose gives them: a `file:` is bound
/// read-only at the target (its own owner and mode: compose ignores `uid`, `gid` and `mode`
/// there), an `environment:` variable or inline `content:` becomes a file berth writes at create
/// with `uid`, `gid` (default 0) and `mode` (default 0444). Secrets go to `/run/secrets/<name>`
/// (a relative target is under `/run/secrets/`), configs to `/<name>` (a relative target is
/// under `/`). Bind mounts are appended to `mounts`; the files to write are returned.
fn secrets_and_configs(
    project: &Project,
    service: &Service,
    mounts: &mut Vec<rspec::Mount>,
) -> Result<Vec<rspec::FileContent>, ConvertError> {
    let mut files = Vec::new();
    for (kind, list, tops, dir) in
        [("secret", &service.secrets, &project.secrets, "/run/secrets/"), ("config", &service.configs, &project.configs, "/")]
    {
        for fm in list {
            let name = &fm.source;
            let top = tops
                .get(name)
                .ok_or_else(|| invalid(service, format!("refers to undefined {kind} {name:?}: define it under the top-level {kind}s:")))?;
            if top.external {
                return Err(invalid(
                    service,
                    format!(
                        "{kind} {name:?} is external: external {kind}s live in a swarm, which berth (like docker compose) cannot read; give it a file:, environment: or content: instead"
                    ),
                ));
            }
            let target = match fm.target.as_deref().filter(|t| !t.is_empty()) {
                Some(t) if t.starts_with('/') => t.to_string(),
                Some(t) => format!("{dir}{t}"),
                None => format!("{dir}{name}"),
            };
            let id = |what: &str, v: &Option<String>| -> Result<u32, ConvertError> {
                match v.as_deref().filter(|s| !s.is_empty()) {
                    None => Ok(0),
                    Some(s) => s.parse().map_err(|_| invalid(service, format!("{kind} {name:?}: {what} {s:?} must be a number"))),
                }
            };
            let content = if let Some(file) = &top.file {
                // That the file exists is [`check_host`]'s to check.
                mounts.push(rspec::Mount {
                    kind: MountType::Bind,
                    source: file.clone(),
                    target,
                    read_only: true,
                    bind_options: Some(rspec::BindOptions::default()),
                    ..Default::default()
                });
                continue;
            } else if let Some(var) = &top.environment {
                project.environment.get(var).cloned().ok_or_else(|| {
                    invalid(
                        service,
                        format!("{kind} {name:?}: environment variable {var:?} is not set: set it, or give the {kind} a file: instead"),
                    )
                })?
            } else if let Some(c) = &top.content {
                c.clone()
            } else {
                return Err(invalid(service, format!("{kind} {name:?} has no file:, environment: or content:")));
            };
            files.push(rspec::FileContent {
                target,
                content,
                uid: id("uid", &fm.uid)?,
                gid: id("gid", &fm.gid)?,
                mode: fm.mode.unwrap_or(0o444),
            });
        }
    }
    Ok(files)
}

/// The service's published ports for a container spec (none unless the container has its own
/// bridge namespace). [`container_config`] leaves ports out: a service's replicas get them from
/// [`service_config`], a one-off `run` only with `--service-ports`.
pub fn service_ports(service: &Service, cfg: &ContainerConfig) -> Result<Vec<PortRequest>, ConvertError> {
    if cfg.network_mode == NetworkMode::Bridge { port_requests(service) } else { Ok(Vec::new()) }
}

#[cfg(test)]
mod tests;
