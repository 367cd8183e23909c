//! From the compose model to the engine: the container spec for one container of a service
//! (the image's config merged with the service as Docker Compose does), and finding a service's
//! containers by their compose labels.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::engine::image::{Image, ImageStore};
use crate::engine::runtime::spec::{self as rspec, ContainerConfig, MountType};
use crate::engine::runtime::{self, ops};
use crate::labels;
use crate::net::{EndpointRequest, NetworkMode};
use crate::project::model::{Project, Service};

/// The container of `service` (replica `index`) of `project`, as compose finds it: by labels.
pub fn service_container(root: &crate::state::StateRoot, project: &str, service: &str, index: u32) -> Option<runtime::ContainerConfig> {
    ops::list_configs(root).into_iter().find(|c| {
        let l = |k: &str| c.labels.get(k).map(|s| s.as_str());
        l(labels::PROJECT) == Some(project)
            && l(labels::SERVICE) == Some(service)
            && l(labels::ONEOFF) != Some("True")
            && l(labels::CONTAINER_NUMBER).unwrap_or("1") == index.to_string()
    })
}

/// The image a service runs: its `image:`, or the name compose gives a built one.
pub fn service_image_name(project: &Project, service: &Service) -> String {
    service.image.clone().unwrap_or_else(|| format!("{}-{}", project.name, service.name))
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

/// The resolved container spec for one container of `service`, with the image's config merged
/// in as Docker Compose does: a service `entrypoint` drops the image's CMD, `command` replaces
/// it, the environment is the image's overridden by the service's, and `working_dir`/`user`
/// default to the image's. `labels` are added (compose's own labels are the caller's choice).
pub fn container_config(
    root: &crate::state::StateRoot,
    project: &Project,
    service: &Service,
    image: &Image,
    store: &ImageStore,
) -> anyhow::Result<ContainerConfig> {
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
    labels_out.insert(
        labels::CONFIG_FILES.into(),
        project.config_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(","),
    );
    labels_out.insert(labels::VERSION.into(), labels::COMPOSE_VERSION.into());
    labels_out.insert(labels::IMAGE.into(), image.id.to_string());

    let mut mounts = Vec::new();
    for m in &service.volumes {
        let kind = match m.kind.as_str() {
            "bind" => MountType::Bind,
            "volume" => MountType::Volume,
            "tmpfs" => MountType::Tmpfs,
            other => anyhow::bail!("service {:?}: volumes of type {other:?} are not supported by berth", service.name),
        };
        let mut source = m.source.clone().unwrap_or_default();
        let mut vo = None;
        if kind == MountType::Volume && !source.is_empty() {
            // A project volume: its real name, created with compose's labels if missing.
            if let Some(v) = project.volumes.get(&source) {
                let mut l = v.labels.clone();
                if !v.external {
                    l.insert(labels::PROJECT.into(), project.name.clone());
                    l.insert(labels::VOLUME.into(), source.clone());
                    l.insert(labels::VERSION.into(), labels::COMPOSE_VERSION.into());
                }
                let name = v.name.clone();
                if runtime::volumes::get(root, &name)?.is_none() {
                    if v.external {
                        anyhow::bail!("external volume {name:?} not found: create it with `berth volume create {name}`");
                    }
                    runtime::volumes::create(root, Some(&name), v.driver.as_deref().unwrap_or("local"), l, v.driver_opts.clone())?;
                }
                source = name;
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
            tmpfs_options: m.tmpfs.as_ref().map(|t| rspec::TmpfsOptions {
                size_bytes: (t.size.0 > 0).then_some(t.size.0 as u64),
                mode: t.mode,
            }),
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
    };

    let network_mode = match service.network_mode.as_deref() {
        None | Some("bridge") | Some("default") => NetworkMode::Bridge,
        Some("host") => NetworkMode::Host,
        Some("none") => NetworkMode::None,
        Some(m) if m.starts_with("service:") => {
            let other = &m["service:".len()..];
            let c = service_container(root, &project.name, other, 1)
                .ok_or_else(|| anyhow::anyhow!("service {:?} uses the network of service {other:?}, which is not running", service.name))?;
            NetworkMode::Container(c.id)
        }
        Some(m) if m.starts_with("container:") => NetworkMode::Container(m["container:".len()..].to_string()),
        Some(m) => anyhow::bail!("service {:?}: unsupported network_mode {m:?}", service.name),
    };
    let mut endpoints = Vec::new();
    if network_mode == NetworkMode::Bridge {
        let nets: Vec<(&String, Option<&crate::project::model::ServiceNetwork>)> = if service.networks.is_empty() {
            vec![]
        } else {
            service.networks.iter().map(|(k, v)| (k, v.as_ref())).collect()
        };
        let default = "default".to_string();
        let nets = if nets.is_empty() && project.networks.contains_key("default") { vec![(&default, None)] } else { nets };
        for (key, sn) in nets {
            let name = project.networks.get(key).map(|n| n.name.clone()).unwrap_or_else(|| format!("{}_{key}", project.name));
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
    let _ = store;
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
        image_ref: service_image_name(project, service),
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
        rootfs: rspec::Rootfs {
            layers: store.layer_links(image).into_iter().map(|l| store.dir().join(l)).collect::<Vec<PathBuf>>(),
            read_only: service.read_only,
        },
        image_volumes,
        mounts,
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
            Some(r) => rspec::RestartPolicy::parse(r).map_err(|e| anyhow::anyhow!("service {:?}: {e}", service.name))?,
            None => rspec::RestartPolicy::default(),
        },
        healthcheck,
        log_config: rspec::LogConfig {
            kind: service.logging.as_ref().and_then(|l| l.driver.clone()).unwrap_or_else(|| "json-file".into()),
            config: service.logging.as_ref().map(|l| l.options.clone()).unwrap_or_default(),
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

