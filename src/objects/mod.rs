//! Containers without a compose file: the operations behind `berth container ...` (and, next, the
//! Engine API server), as Docker's CLI and daemon define them.
//!
//! Why a layer of its own: compose's commands plan over a project model, while a standalone
//! container is one typed request ([`CreateOptions`], what `docker run`/`docker create` take)
//! turned into the runtime's spec by one pure function ([`container_spec`]) and handed to the
//! same engine operations (`engine::runtime::ops`) the compose executor uses. Both kinds of
//! container live in one store, so listing ([`list`]) and pruning ([`prune`]) see them all, as
//! `docker ps -a` does. Front ends (the CLI today, the API server next) build the options, call
//! one function here and render; they never assemble a `ContainerConfig` themselves.
//!
//! What is not here yet (issue 15): pulling a missing image (`--pull`), `-P`, `--mount`,
//! `--tmpfs`, `--health-*`, `--network container:`/aliases/`--ip`, Docker's name-less default
//! `bridge` (berth's `bridge` network resolves names like any user network), `stats`, `cp`,
//! `commit`, `export`, `diff`, `rename`, `update`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::engine::image::{Image, ImageStore};
use crate::engine::runtime::spec::{self as rspec, ContainerConfig, Mount, MountType, RestartPolicy};
use crate::engine::runtime::{self, ContainerState, RuntimeError, Status, ops};
use crate::net::{EndpointRequest, NetworkMode, PortRequest, Protocol};
use crate::state::StateRoot;

mod names;
#[cfg(test)]
mod tests;

pub use names::random_name;

#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    /// Docker's text for a missing image when it does not pull (`--pull never`).
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("invalid argument {value:?} for \"{flag}\" flag: {why}")]
    InvalidFlag { flag: &'static str, value: String, why: String },
    #[error("cannot read the env file {path}: {source}")]
    EnvFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("network {0} not found: create it with `berth network create {0}`")]
    NoSuchNetwork(String),
    #[error("conflicting options: {0}")]
    Conflict(String),
    #[error(transparent)]
    Image(#[from] crate::engine::image::ImageError),
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl ObjectsError {
    /// The exit code Docker gives: the command's own (126, 127) when it could not run,
    /// else 125 for `run`/`create` (the caller decides for the other commands).
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            ObjectsError::Runtime(e) => e.exit_code(),
            _ => None,
        }
    }
}

pub type Result<T, E = ObjectsError> = std::result::Result<T, E>;

/// What `docker create` (and `docker run`) take, typed. Strings are as the user wrote them;
/// [`container_spec`] checks and parses each.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub image: String,
    /// Empty: a random Docker-style name (`adjective_surname`).
    pub name: Option<String>,
    /// Replaces the image's CMD when not empty.
    pub command: Vec<String>,
    /// `--entrypoint`: one argv element as Docker takes it; `Some("")` clears the image's.
    pub entrypoint: Option<String>,
    /// `-e KEY=VAL` (or a bare `KEY`, already resolved by the caller), after the env files.
    pub env: Vec<String>,
    /// `--env-file` lines, already read (see [`read_env_file`]), applied before `env`.
    pub env_file_lines: Vec<String>,
    /// `-p [IP:][HOST[-END]:]CONTAINER[/PROTO]`.
    pub publish: Vec<String>,
    /// `-v SOURCE:TARGET[:ro|rw]` (a path source binds, a name is a named volume) or `-v TARGET`.
    pub volumes: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// A berth network, `host`, `none`, or `bridge` (the default).
    pub network: Option<String>,
    pub restart: Option<String>,
    /// `--memory 100M` (Docker's RAM units).
    pub memory: Option<String>,
    pub cpus: Option<f64>,
    pub cpu_shares: Option<u64>,
    pub pids_limit: Option<i64>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub read_only: bool,
    pub init: bool,
    pub privileged: bool,
    /// `KEY=VAL` (or a bare `KEY`, an empty value).
    pub labels: Vec<String>,
    pub hostname: Option<String>,
    pub auto_remove: bool,
    pub tty: bool,
    pub open_stdin: bool,
}

/// The network a container joins when `--network` is not given, as Docker's default bridge.
pub const DEFAULT_NETWORK: &str = "bridge";

/// Reads an `--env-file`: `KEY=VAL` lines, blank lines and `#` comments skipped, a bare `KEY`
/// taken from `lookup` (the caller's environment) and dropped when unset, as Docker does.
pub fn read_env_file(path: &Path, lookup: impl Fn(&str) -> Option<String>) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|source| ObjectsError::EnvFile { path: path.to_path_buf(), source })?;
    Ok(text
        .lines()
        .map(|l| l.trim_start())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| if l.contains('=') { Some(l.to_string()) } else { lookup(l.trim_end()).map(|v| format!("{}={v}", l.trim_end())) })
        .collect())
}

/// Sets `KEY=value` in an env list, replacing an earlier value of the same key.
fn set_env(env: &mut Vec<String>, entry: String) {
    let key = entry.split_once('=').map(|(k, _)| k.to_string()).unwrap_or_else(|| entry.clone());
    env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(key.as_str()) && *e != key);
    env.push(entry);
}

fn str_list(v: &serde_json::Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
}

fn bad(flag: &'static str, value: &str, why: impl Into<String>) -> ObjectsError {
    ObjectsError::InvalidFlag { flag, value: value.to_string(), why: why.into() }
}

/// `-p [IP:][HOST[-END]:]CONTAINER[/PROTO]`, as `docker run -p` takes it.
pub fn parse_publish(s: &str) -> Result<PortRequest> {
    let err = || bad("publish", s, "use [IP:][HOST:]CONTAINER[/tcp|udp]");
    let (spec, protocol) = match s.rsplit_once('/') {
        Some((a, "tcp")) => (a, Protocol::Tcp),
        Some((a, "udp")) => (a, Protocol::Udp),
        Some(_) => return Err(err()),
        None => (s, Protocol::Tcp),
    };
    let (ip, rest) = match spec.strip_prefix('[') {
        Some(r) => {
            let (ip, rest) = r.split_once("]:").ok_or_else(err)?;
            (Some(ip), rest)
        }
        None => (None, spec),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match (ip, parts.as_slice()) {
        (None, [c]) => (None, None, *c),
        (None, [h, c]) => (None, Some(*h), *c),
        (None, [i, h, c]) => (Some(*i), Some(*h), *c),
        (Some(i), [h, c]) => (Some(i), Some(*h), *c),
        _ => return Err(err()),
    };
    let port = |x: &str| x.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(err);
    let (host_port, host_port_end) = match host.filter(|h| !h.is_empty()) {
        None => (None, None),
        Some(h) => match h.split_once('-') {
            Some((a, b)) => (Some(port(a)?), Some(port(b)?)),
            None => (Some(port(h)?), None),
        },
    };
    Ok(PortRequest {
        host_ip: ip.filter(|i| !i.is_empty()).map(|i| i.parse()).transpose().map_err(|_| err())?,
        host_port,
        container_port: port(container)?,
        protocol,
        host_port_end,
    })
}

/// `-v SOURCE:TARGET[:OPTS]` or `-v TARGET` (an anonymous volume). A source starting with `/`
/// or `.` is a host path (relative to `cwd`), any other a named volume.
pub fn parse_volume(s: &str, cwd: &Path) -> Result<Mount> {
    let err = |why: &str| bad("volume", s, why);
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, opts) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [s, t] => (*s, *t, ""),
        [s, t, o] => (*s, *t, *o),
        _ => return Err(err("use SOURCE:TARGET[:ro]")),
    };
    if !target.starts_with('/') {
        return Err(err("the target must be an absolute path inside the container"));
    }
    let mut read_only = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" | "readonly" => read_only = true,
            "rw" | "z" | "Z" | "rprivate" | "private" | "rshared" | "shared" | "rslave" | "slave" | "nocopy" => {}
            _ => return Err(err("unknown option: use ro or rw")),
        }
    }
    let is_path = source.starts_with('/') || source.starts_with('.');
    if is_path {
        let path = if source.starts_with('/') { PathBuf::from(source) } else { cwd.join(source) };
        return Ok(Mount {
            kind: MountType::Bind,
            source: path.display().to_string(),
            target: target.to_string(),
            read_only,
            bind_options: Some(rspec::BindOptions { create_mountpoint: true, ..Default::default() }),
            ..Default::default()
        });
    }
    Ok(Mount {
        kind: MountType::Volume,
        source: source.to_string(),
        target: target.to_string(),
        read_only,
        volume_options: Some(rspec::VolumeOptions { no_copy: opts.split(',').any(|o| o == "nocopy"), ..Default::default() }),
        ..Default::default()
    })
}

/// The runtime spec for `opts` on `image` (a pure function), merged as Docker merges a create
/// request with the image config: `--entrypoint` drops the image's CMD unless a command is
/// given, a command replaces CMD, the environment is the image's overridden by the env files
/// and then `-e`, and the working directory and user default to the image's. `layers` are the
/// image's lower directories, bottom to top. The name is left to [`create`].
pub fn container_spec(opts: &CreateOptions, image: &Image, layers: Vec<PathBuf>, cwd: &Path) -> Result<ContainerConfig> {
    let ic = image.container_config();
    let (entrypoint, cmd) = match &opts.entrypoint {
        Some(e) => (if e.is_empty() { Vec::new() } else { vec![e.clone()] }, opts.command.clone()),
        None if !opts.command.is_empty() => (str_list(&ic["Entrypoint"]), opts.command.clone()),
        None => (str_list(&ic["Entrypoint"]), str_list(&ic["Cmd"])),
    };
    let mut env = str_list(&ic["Env"]);
    for e in opts.env_file_lines.iter().chain(&opts.env) {
        set_env(&mut env, e.clone());
    }
    let mut labels: BTreeMap<String, String> = ic["Labels"]
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
        .unwrap_or_default();
    for l in &opts.labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let ports = opts.publish.iter().map(|p| parse_publish(p)).collect::<Result<Vec<_>>>()?;
    let mounts = opts.volumes.iter().map(|v| parse_volume(v, cwd)).collect::<Result<Vec<_>>>()?;
    let restart_policy = match &opts.restart {
        Some(r) => RestartPolicy::parse(r).map_err(|why| bad("restart", r, why))?,
        None => RestartPolicy::default(),
    };
    if opts.auto_remove && !restart_policy.is_none() {
        return Err(ObjectsError::Conflict("--restart and --rm".into()));
    }
    let memory = match &opts.memory {
        Some(m) => Some(crate::util::units::parse_bytes(m).map_err(|why| bad("memory", m, why))?).filter(|m| *m > 0),
        None => None,
    };
    if let Some(c) = opts.cpus.filter(|c| !c.is_finite() || *c < 0.0) {
        return Err(bad("cpus", &c.to_string(), "use a positive number of CPUs"));
    }
    let (network_mode, endpoints) = match opts.network.as_deref().unwrap_or(DEFAULT_NETWORK) {
        "host" => (NetworkMode::Host, Vec::new()),
        "none" => (NetworkMode::None, Vec::new()),
        "default" | "" => (NetworkMode::Bridge, vec![endpoint(DEFAULT_NETWORK)]),
        n if n.starts_with("container:") => {
            return Err(bad("network", n, "container: networks are not supported by berth's standalone containers yet"));
        }
        n => (NetworkMode::Bridge, vec![endpoint(n)]),
    };
    if network_mode == NetworkMode::Host && !ports.is_empty() {
        // Docker warns and drops them; berth refuses before anything is made.
        return Err(ObjectsError::Conflict("published ports (-p) and --network host: the host's ports are the container's".into()));
    }
    Ok(ContainerConfig {
        image: image.id.to_string(),
        image_ref: opts.image.clone(),
        labels,
        entrypoint,
        cmd,
        env,
        user: opts.user.clone().or_else(|| ic["User"].as_str().map(String::from)).unwrap_or_default(),
        working_dir: opts.workdir.clone().or_else(|| ic["WorkingDir"].as_str().map(String::from)).unwrap_or_default(),
        hostname: opts.hostname.clone().unwrap_or_default(),
        tty: opts.tty,
        open_stdin: opts.open_stdin,
        init: opts.init,
        rootfs: rspec::Rootfs { layers, read_only: opts.read_only },
        image_volumes: ic["Volumes"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default(),
        mounts,
        cap_add: opts.cap_add.clone(),
        cap_drop: opts.cap_drop.clone(),
        privileged: opts.privileged,
        resources: crate::engine::cgroups::Resources {
            memory,
            nano_cpus: opts.cpus.filter(|c| *c > 0.0).map(|c| (c * 1e9) as i64),
            cpu_shares: opts.cpu_shares.filter(|s| *s > 0),
            pids_limit: opts.pids_limit.filter(|p| *p > 0),
            ..Default::default()
        },
        stop_signal: ic["StopSignal"].as_str().map(String::from).unwrap_or_default(),
        restart_policy,
        healthcheck: ic.get("Healthcheck").and_then(|h| serde_json::from_value::<rspec::Healthcheck>(h.clone()).ok()),
        auto_remove: opts.auto_remove,
        network_mode,
        endpoints,
        ports,
        ..Default::default()
    })
}

fn endpoint(network: &str) -> EndpointRequest {
    EndpointRequest { network: network.to_string(), ..Default::default() }
}

/// Resolves the image, builds the spec, makes sure its network exists (Docker's default
/// `bridge` is created on first use; any other must exist), and creates the container with
/// the given name or a random free one. Nothing is made when a check fails.
pub fn create(root: &StateRoot, opts: &CreateOptions, cwd: &Path) -> Result<ContainerConfig> {
    let store = ImageStore::open(root)?;
    let image = store.resolve(&opts.image)?.ok_or_else(|| {
        // Docker names the reference as normalized: `busybox` is `busybox:latest`.
        let name = crate::engine::image::Reference::parse(&opts.image).map(|r| r.familiar()).unwrap_or_else(|_| opts.image.clone());
        ObjectsError::NoSuchImage(name)
    })?;
    store.check_layers(&image)?;
    let layers = store.layer_links(&image).into_iter().map(|l| store.dir().join(l)).collect();
    let mut cfg = container_spec(opts, &image, layers, cwd)?;
    cfg.validate().map_err(|msg| RuntimeError::Invalid { name: opts.name.clone().unwrap_or_default(), msg })?;
    if let Some(n) = &opts.name {
        // Checked before the network is made; create checks again under its lock.
        if let Ok(other) = ops::lookup(root, n) {
            return Err(RuntimeError::NameInUse { name: n.clone(), id: other.id }.into());
        }
    }
    for e in &cfg.endpoints {
        if crate::net::network::find(root, &e.network)?.is_none() {
            if e.network != DEFAULT_NETWORK {
                return Err(ObjectsError::NoSuchNetwork(e.network.clone()));
            }
            let spec = crate::net::network::NetworkSpec { name: DEFAULT_NETWORK.into(), ..Default::default() };
            match crate::net::network::create(root, spec) {
                Ok(_) => {}
                // Another command made it meanwhile.
                Err(_) if crate::net::network::find(root, DEFAULT_NETWORK)?.is_some() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    match &opts.name {
        Some(n) => {
            cfg.name = n.clone();
            Ok(ops::create(root, cfg)?)
        }
        None => {
            // A random name; a clash (rare) draws again, as Docker does.
            let mut attempt = 0;
            loop {
                cfg.name = random_name(attempt);
                match ops::create(root, cfg.clone()) {
                    Err(RuntimeError::NameInUse { .. }) if attempt < 10 => attempt += 1,
                    other => return Ok(other?),
                }
            }
        }
    }
}

/// `docker run`: create, then start; attached (`detach` false) it relays the output and
/// returns the container's exit code, detached the container's id. With `--rm` a container
/// that fails to start is removed.
pub fn run(root: &StateRoot, opts: &CreateOptions, cwd: &Path, detach: bool) -> Result<(String, Option<i32>)> {
    let cfg = create(root, opts, cwd)?;
    let interactive = opts.open_stdin && !detach;
    Ok(ops::run_created(root, cfg, ops::RunOptions { detach, interactive, rm: opts.auto_remove })?)
}

/// `docker restart`: stop (with the timeout) then start, whatever the state was.
pub fn restart(root: &StateRoot, key: &str, timeout: Option<std::time::Duration>) -> Result<()> {
    let cfg = ops::lookup(root, key)?;
    ops::stop(root, &cfg.id, timeout)?;
    ops::start(root, &cfg.id, None)?;
    Ok(())
}

/// One container with its state as it really is.
#[derive(Debug, Clone)]
pub struct Listed {
    pub cfg: ContainerConfig,
    pub st: ContainerState,
}

/// `docker ps --filter`: each key's values are ORed, the keys ANDed, as Docker does.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub name: Vec<String>,
    pub status: Vec<String>,
    pub label: Vec<String>,
    pub id: Vec<String>,
}

impl Filters {
    /// Parses `KEY=VALUE` filters; an unknown key is Docker's error text.
    pub fn parse(items: &[String]) -> Result<Filters> {
        let mut f = Filters::default();
        for it in items {
            let (k, v) = it.split_once('=').ok_or_else(|| bad("filter", it, "bad format of filter (expected name=value)"))?;
            let list = match k {
                "name" => &mut f.name,
                "status" => &mut f.status,
                "label" => &mut f.label,
                "id" => &mut f.id,
                _ => return Err(bad("filter", it, format!("invalid filter '{k}'"))),
            };
            list.push(v.to_string());
        }
        for s in &f.status {
            if !["created", "restarting", "running", "removing", "paused", "exited", "dead"].contains(&s.as_str()) {
                return Err(bad(
                    "filter",
                    s,
                    "invalid filter 'status': use created, restarting, running, removing, paused, exited or dead",
                ));
            }
        }
        Ok(f)
    }

    fn matches(&self, c: &Listed) -> bool {
        let name_ok = self.name.is_empty() || self.name.iter().any(|n| c.cfg.name.contains(n.trim_start_matches('/')));
        let status_ok = self.status.is_empty() || self.status.iter().any(|s| s == c.st.status.as_str());
        let id_ok = self.id.is_empty() || self.id.iter().any(|i| c.cfg.id.starts_with(i.as_str()));
        let label_ok = self.label.iter().all(|l| match l.split_once('=') {
            Some((k, v)) => c.cfg.labels.get(k).is_some_and(|x| x == v),
            None => c.cfg.labels.contains_key(l),
        });
        name_ok && status_ok && id_ok && label_ok
    }
}

/// `docker ps`: the root's containers, compose's and standalone ones alike, newest first;
/// only the running ones unless `all` (or a status filter asks for others).
pub fn list(root: &StateRoot, all: bool, filters: &Filters) -> Vec<Listed> {
    let mut out: Vec<Listed> = ops::list_configs(root)
        .into_iter()
        .map(|cfg| {
            let st = ops::state_for(root, &cfg).unwrap_or_else(|_| ContainerState::new());
            Listed { cfg, st }
        })
        .filter(|c| all || !filters.status.is_empty() || c.st.status.is_active())
        .filter(|c| filters.matches(c))
        .collect();
    out.sort_by(|a, b| b.cfg.created.cmp(&a.cfg.created));
    out
}

/// `docker container prune`: removes every stopped container (created, exited, dead) and
/// returns their ids with the errors of those that could not be removed.
pub fn prune(root: &StateRoot) -> (Vec<String>, Vec<RuntimeError>) {
    let (mut removed, mut errors) = (Vec::new(), Vec::new());
    for c in list(root, true, &Filters::default()) {
        if matches!(c.st.status, Status::Created | Status::Exited | Status::Dead) {
            match ops::remove(root, &c.cfg.id, false, false) {
                Ok(()) => removed.push(c.cfg.id),
                Err(e) => errors.push(e),
            }
        }
    }
    (removed, errors)
}

/// `docker port`: the host bindings of a running container's published ports, as
/// `(container port, protocol, host ip, host port)`, sorted.
pub fn ports(root: &StateRoot, key: &str) -> Result<Vec<(u16, String, String, u16)>> {
    let cfg = ops::lookup(root, key)?;
    let st = ops::state_for(root, &cfg)?;
    let mut out: Vec<(u16, String, String, u16)> = if st.status.is_active() {
        st.network
            .as_ref()
            .map(|n| n.ports.iter().map(|p| (p.container_port, p.protocol.to_string(), p.host_ip.to_string(), p.host_port)).collect())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    out.sort();
    Ok(out)
}

/// Re-exported so that front ends name one module for container operations.
pub use runtime::ops::{ExecOptions, exec, init_pid, inspect, kill, logs, pause, remove, start, stop, top, unpause, wait};
