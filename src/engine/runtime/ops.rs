//! Container-level operations, the API the orchestration calls: create, start, stop, kill,
//! remove, pause, unpause, wait, inspect, list, top, logs, exec and run.
//!
//! Every operation on one container holds its lock (`locks/c-<id>.lock`), so that concurrent
//! CLIs serialize. While a supervisor lives it alone writes `state.json`; the CLI talks to it over
//! the control socket, and writes the state itself only when no supervisor is alive.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::ctl::{self, Request, Started};
use super::exec::{self, ExecSpec, ExecStdio};
use super::logs as logfile;
use super::spec::{ContainerConfig, Mount, MountType, normalize};
use super::state::{ContainerState, Paths, Status, ZERO_TIME};
use super::{RuntimeError, repair, volumes};
use crate::engine::cgroups::Cgroup;
use crate::engine::events;
use crate::state::StateRoot;
use crate::util::fs::{FsError, read_json, write_json};
use crate::util::lock::FileLock;
use crate::util::sys::{self, ProcId};

type Result<T, E = RuntimeError> = std::result::Result<T, E>;

fn lock(root: &StateRoot, id: &str) -> Result<FileLock> {
    Ok(root.lock(&format!("c-{id}"))?)
}

/// Every container config of the root. A container folder whose config cannot be read is
/// listed too, as the stand-in [`repair::stub`] makes (`damaged` set): hiding it would hide a
/// container that may still run.
pub fn list_configs(root: &StateRoot) -> Vec<ContainerConfig> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(root.containers_dir()) else { return out };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        match read_json::<ContainerConfig>(&e.path().join("config.json")) {
            Ok(Some(c)) => out.push(c),
            _ if !repair::is_container_id(&name) || !e.path().is_dir() => {}
            Ok(None) => out.push(repair::stub(root, &name, format!("{} is missing", e.path().join("config.json").display()))),
            Err(err) => out.push(repair::stub(root, &name, err.to_string())),
        }
    }
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    out
}

/// Finds a container by full id, name (with or without the leading slash), or unique id prefix.
pub fn lookup(root: &StateRoot, key: &str) -> Result<ContainerConfig> {
    let key = key.strip_prefix('/').unwrap_or(key);
    if key.len() == 64 {
        if let Ok(Some(c)) = read_json::<ContainerConfig>(&Paths::new(root, key).config()) {
            return Ok(c);
        }
    }
    // By name: the index first, then a scan (a root whose index was lost still works).
    if valid_name(key) {
        if let Ok(id) = std::fs::read_to_string(name_file(root, key)) {
            if let Ok(Some(c)) = read_json::<ContainerConfig>(&Paths::new(root, id.trim()).config()) {
                if c.name == key {
                    return Ok(c);
                }
            }
        }
    }
    let all = list_configs(root);
    if let Some(c) = all.iter().find(|c| c.name == key) {
        return Ok(c.clone());
    }
    let matches: Vec<&ContainerConfig> = all.iter().filter(|c| !key.is_empty() && c.id.starts_with(key)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        _ => Err(RuntimeError::NoSuchContainer(key.to_string())),
    }
}

/// `containers/.names/<name>` holds the id of the container of that name: lookups by name and
/// the uniqueness check at create do not scan every container.
fn name_file(root: &StateRoot, name: &str) -> std::path::PathBuf {
    root.containers_dir().join(".names").join(name)
}

/// The container's state as it really is (a dead supervisor shows as `dead`). A `state.json`
/// that holds no valid state shows as `dead` with the reason ([`repair::damaged_state`]): one
/// damaged file must not stop every command of a project. A container found dead with its process
/// gone has its network released on the way ([`release_dead_network`]).
pub fn state_of(root: &StateRoot, id: &str) -> Result<ContainerState> {
    match read_json::<ContainerState>(&Paths::new(root, id).state()) {
        Ok(st) => {
            let st = st.unwrap_or_else(ContainerState::new).observed();
            // Only while the record still names an attachment: once released (or reaped, which
            // clears it), reading a dead container's state costs nothing more.
            if st.network.is_some() && dead_and_gone(&st) {
                release_dead_network(root, id);
            }
            Ok(st)
        }
        Err(e @ FsError::Json { .. }) => Ok(repair::damaged_state(root, id, &e)),
        Err(e) => Err(e.into()),
    }
}

/// [`state_of`] for a listed config: a container whose config is damaged is `dead`. A
/// container found dead (its supervisor was killed, and its PID 1 with it) is cleaned up now, as
/// its death is observed: its cgroup, network endpoints and published ports go, and it stays
/// `dead` (137) with the reason, rather than holding them until its next start.
pub fn state_for(root: &StateRoot, cfg: &ContainerConfig) -> Result<ContainerState> {
    let st = state_of(root, &cfg.id)?;
    if cfg.damaged.is_some() {
        return Ok(repair::damaged_config_state(root, cfg, st));
    }
    if died(&st) {
        return Ok(reap_observed_death(root, cfg).unwrap_or(st));
    }
    Ok(st)
}

fn dead_and_gone(st: &ContainerState) -> bool {
    st.status == Status::Dead && !st.init.is_some_and(|i| i.alive())
}

/// A container whose supervisor was killed (SIGKILL, the OOM killer) took its process along but
/// not what its supervisor releases on exit: its published ports' DNAT rules would lead to an
/// address that the next container may get, and its DNS names would keep answering. The first
/// command that observes the death (`ps`, `up`, `inspect`...) releases them. Under the container's
/// lock, taken without waiting: a command busy with the container (a start) is left alone, and
/// the next observer does it. Returns whether anything was released. The cgroup and the state
/// are not touched here.
pub fn release_dead_network(root: &StateRoot, id: &str) -> bool {
    let Ok(_l) = FileLock::try_exclusive(&root.path().join("locks").join(format!("c-{id}.lock"))) else { return false };
    let Ok(Some(st)) = read_json::<ContainerState>(&Paths::new(root, id).state()) else { return false };
    if !dead_and_gone(&st.observed()) {
        return false;
    }
    crate::net::release_dead(root, id).unwrap_or(false)
}

/// Dead as recorded: the supervisor the state names is gone (its container's PID 1 dies with it,
/// by PDEATHSIG, a moment later). A damaged state, which names no supervisor, is not a death: its
/// container may still run.
fn died(st: &ContainerState) -> bool {
    st.status == Status::Dead && st.supervisor.is_some_and(|s| !s.alive())
}

/// Cleans up a container whose supervisor is gone (ending its PID 1 if it still lingers), if no
/// one else works on it (its lock is free and no supervisor is starting it), and returns its
/// state after that.
fn reap_observed_death(root: &StateRoot, cfg: &ContainerConfig) -> Option<ContainerState> {
    let _l = FileLock::try_exclusive(&root.path().join("locks").join(format!("c-{}.lock", cfg.id))).ok()?;
    if starting(root, &cfg.id).is_some() {
        return None;
    }
    let mut st = state_of(root, &cfg.id).ok()?;
    if !died(&st) {
        return None;
    }
    repair::reap(root, cfg, &st).ok()?;
    // Still `dead` (Docker's word for a container its runtime lost), with the reason; the next
    // start or removal finds nothing left to clean.
    let sup = st.supervisor.map(|s| s.pid).unwrap_or(0);
    st.error = format!("the supervisor (pid {sup}) died, and the container was killed with it; start or remove the container");
    st.supervisor = None;
    st.network = None;
    st.health = None;
    st.exit_code = 137;
    if st.finished_at == ZERO_TIME {
        st.finished_at = logfile::now_rfc3339();
    }
    let paths = Paths::new(root, &cfg.id);
    let _ = std::fs::remove_file(paths.control_socket());
    // On a full disk the record cannot be written; the container reads as dead all the same.
    let _ = super::state::write_state(&paths.state(), &st);
    Some(st)
}

fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty() && b[0].is_ascii_alphanumeric() && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Creates a container from a resolved config: assigns the id, checks the name, creates named
/// and anonymous volumes, and writes `config.json` and `state.json`. Returns the stored config.
pub fn create(root: &StateRoot, mut cfg: ContainerConfig) -> Result<ContainerConfig> {
    root.ensure()?;
    cfg.id = crate::util::id::new_id();
    if cfg.name.is_empty() {
        cfg.name = format!("berth_{}", crate::util::id::short(&cfg.id));
    }
    cfg.name = cfg.name.trim_start_matches('/').to_string();
    if !valid_name(&cfg.name) {
        return Err(RuntimeError::InvalidName(cfg.name));
    }
    cfg.validate().map_err(|msg| RuntimeError::Invalid { name: cfg.name.clone(), msg })?;
    cfg.created = logfile::now_rfc3339();
    let _names = root.lock("containers")?;
    if let Ok(other) = lookup(root, &cfg.name) {
        return Err(RuntimeError::NameInUse { name: cfg.name, id: other.id });
    }
    // `volumes_from`: the other containers' volumes and binds, under the container's own.
    for m in volumes_from(root, &cfg)? {
        if !cfg.mounts.iter().any(|o| normalize(&o.target) == normalize(&m.target)) {
            cfg.mounts.push(m);
        }
    }
    // Volumes: named ones exist (created on demand), anonymous ones are made now, and every
    // image VOLUME not covered by a mount gets one.
    let mut anonymous = Vec::new();
    for m in cfg.mounts.iter_mut() {
        if m.kind != MountType::Volume {
            continue;
        }
        let labels = m.volume_options.as_ref().map(|o| o.labels.clone()).unwrap_or_default();
        if m.source.is_empty() {
            let v = volumes::create(root, None, "local", labels, BTreeMap::new())?;
            anonymous.push(v.name.clone());
            m.source = v.name;
        } else if volumes::get(root, &m.source)?.is_none() {
            volumes::create(root, Some(&m.source), "local", labels, BTreeMap::new())?;
        }
    }
    let covered: Vec<String> = cfg.mounts.iter().map(|m| normalize(&m.target)).collect();
    for v in cfg.image_volumes.clone() {
        let t = normalize(&v);
        if t == "/" || covered.contains(&t) || cfg.mounts.iter().any(|m| normalize(&m.target) == t) {
            continue;
        }
        let vol = volumes::create(root, None, "local", BTreeMap::new(), BTreeMap::new())?;
        anonymous.push(vol.name.clone());
        cfg.mounts.push(Mount { kind: MountType::Volume, source: vol.name, target: t, ..Default::default() });
    }
    // The folder is made whole under a hidden name (`.new-<pid>-<id>`) and renamed into place:
    // a create killed midway leaves no half-made container, only a folder that
    // `repair::collect_junk` deletes once this process is gone.
    let paths = Paths::new(root, &cfg.id);
    let staging = Paths { dir: root.containers_dir().join(format!(".new-{}-{}", std::process::id(), cfg.id)) };
    let made = (|| -> Result<()> {
        crate::util::fs::create_dir_all_mode(&staging.dir, 0o700)?;
        for d in [staging.diff(), staging.work(), staging.rootfs()] {
            crate::util::fs::create_dir_all_mode(&d, 0o755)?;
        }
        repair::write_identity(&staging, &cfg)?;
        write_files(&staging, &paths, &mut cfg)?;
        write_json(&staging.config(), &cfg)?;
        let mut st = ContainerState::new();
        st.anonymous_volumes = anonymous;
        super::state::write_state(&staging.state(), &st)?;
        std::fs::rename(&staging.dir, &paths.dir).map_err(|e| RuntimeError::io("rename into place", &paths.dir, e))
    })();
    if let Err(e) = made {
        let _ = crate::util::fs::remove_dir_all_if_exists(&staging.dir);
        return Err(e);
    }
    let names = root.containers_dir().join(".names");
    crate::util::fs::create_dir_all_mode(&names, 0o700)?;
    super::state::write_ephemeral(&name_file(root, &cfg.name), cfg.id.as_bytes())?;
    events::container(root, &cfg, "create", &[]);
    crate::timing!("create: container config written");
    Ok(cfg)
}

/// The mounts `cfg.volumes_from` gives, as Docker's daemon copies them: every volume and bind
/// mount of each source container (a later source wins at the same target), read-only when
/// the source's is or with `:ro`. Tmpfs mounts and the files berth wrote for the source
/// (secrets and configs from `content:`/`environment:`) are not shared.
fn volumes_from(root: &StateRoot, cfg: &ContainerConfig) -> Result<Vec<Mount>> {
    let mut out: Vec<Mount> = Vec::new();
    for entry in &cfg.volumes_from {
        let (key, mode) = match entry.rsplit_once(':') {
            Some((k, m)) => (k, m),
            None => (entry.as_str(), ""),
        };
        let invalid = |msg: String| RuntimeError::Invalid { name: cfg.name.clone(), msg };
        if key.is_empty() || !["", "ro", "rw"].contains(&mode) {
            return Err(invalid(format!("invalid volumes_from {entry:?}: use <container>, <container>:ro or <container>:rw")));
        }
        let src =
            lookup(root, key).map_err(|_| invalid(format!("volumes_from: no container {key:?}: create it first, or fix the name")))?;
        let files = Paths::new(root, &src.id).dir;
        for m in src.mounts.iter().filter(|m| m.kind != MountType::Tmpfs) {
            if m.kind == MountType::Bind && std::path::Path::new(&m.source).starts_with(&files) {
                continue;
            }
            let mut m = m.clone();
            m.read_only |= mode == "ro";
            // Docker never copies image content into a volume another container already has.
            if m.kind == MountType::Volume {
                m.volume_options.get_or_insert_with(Default::default).no_copy = true;
            }
            out.retain(|o| normalize(&o.target) != normalize(&m.target));
            out.push(m);
        }
    }
    Ok(out)
}

/// Writes the config's generated files (secrets, configs) under `containers/<id>/files/`, owned
/// and moded as asked, and mounts each read-only at its target; the content is not kept in the
/// config. They go with the container's folder. They are written into the folder being made
/// (`staging`) and mounted from where it will be (`paths`).
fn write_files(staging: &Paths, paths: &Paths, cfg: &mut ContainerConfig) -> Result<()> {
    if cfg.files.is_empty() {
        return Ok(());
    }
    let dir = staging.dir.join("files");
    crate::util::fs::create_dir_all_mode(&dir, 0o700)?;
    for (i, f) in std::mem::take(&mut cfg.files).into_iter().enumerate() {
        let p = dir.join(i.to_string());
        let source = paths.dir.join("files").join(i.to_string());
        crate::util::fs::write_atomic_mode(&p, f.content.as_bytes(), 0o400)?;
        std::os::unix::fs::chown(&p, Some(f.uid), Some(f.gid)).map_err(|e| RuntimeError::io("set the owner of", &p, e))?;
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(f.mode & 0o7777))
            .map_err(|e| RuntimeError::io("set the mode of", &p, e))?;
        cfg.mounts.push(Mount {
            kind: MountType::Bind,
            source: source.display().to_string(),
            target: f.target,
            read_only: true,
            bind_options: Some(super::spec::BindOptions::default()),
            ..Default::default()
        });
    }
    Ok(())
}

/// Starts a created or stopped container: spawns its supervisor and waits for "started" (or
/// the reason it could not start). Starting a running container does nothing, as in Docker.
/// `attach` is the supervisor's end of an attach socketpair (see [`super::stdio`]).
pub fn start(root: &StateRoot, key: &str, attach: Option<OwnedFd>) -> Result<()> {
    let cfg = lookup(root, key)?;
    if let Some(why) = cfg.damaged {
        return Err(RuntimeError::Damaged { name: cfg.name, why });
    }
    let _l = lock(root, &cfg.id)?;
    settle_starting(root, &cfg)?;
    let st = state_of(root, &cfg.id)?;
    if st.status.is_active() {
        return Ok(());
    }
    if st.status == Status::Dead {
        cleanup_dead(root, &cfg, st)?;
    }
    // A start clears an earlier explicit stop.
    let paths = Paths::new(root, &cfg.id);
    let mut st = read_json::<ContainerState>(&paths.state())?.unwrap_or_else(ContainerState::new);
    if st.manually_stopped {
        st.manually_stopped = false;
        super::state::write_state(&paths.state(), &st)?;
    }
    // The cgroup now, and on v1 the kernel's grace period for moving a process into it set
    // going in the background (see cgroups::prime), while the supervisor starts.
    let marker = starting_marker(&paths)?;
    let cg = Cgroup::for_container(&cfg.id)?;
    cg.create(&cfg.resources, cfg.privileged).map_err(|source| RuntimeError::CgroupOf { name: cfg.name.clone(), source })?;
    let _prime = if cg.is_v2() { None } else { crate::engine::cgroups::prime() };
    let started = match spawn_supervisor(root, &cfg, attach, &marker) {
        Ok(s) => s,
        Err(e) => {
            let _ = cg.remove();
            return Err(e);
        }
    };
    if let Some(msg) = started.error {
        // The supervisor has exited; the cgroup made for it goes too.
        let _ = cg.remove();
        return Err(RuntimeError::Start { name: cfg.name, code: started.code, msg });
    }
    Ok(())
}

/// Moves `fd` to a number of at least 10, close-on-exec (so that dup2 to 3 and 4 is safe).
fn high_fd(fd: &OwnedFd) -> Result<OwnedFd> {
    sys::dup_at_least(fd.as_raw_fd(), 10).map_err(|e| RuntimeError::sys("dup", e))
}

/// `containers/<id>/starting`: a lock held from before a container's supervisor is spawned until
/// that supervisor has recorded the container as running (or why it could not start). `start`
/// takes it and the supervisor inherits it as fd 5 (the same open file, so the same lock): a CLI
/// killed meanwhile leaves it held by the supervisor alone, and it goes when the supervisor is
/// done starting, or dies. The supervisor writes its pid and start time into it.
fn starting_path(paths: &Paths) -> std::path::PathBuf {
    paths.dir.join("starting")
}

/// Takes the starting lock for a supervisor about to be spawned (see [`starting_path`]).
fn starting_marker(paths: &Paths) -> Result<OwnedFd> {
    let p = starting_path(paths);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&p)
        .map_err(|e| RuntimeError::io("open", &p, e))?;
    sys::try_flock(&f, true).map_err(|e| RuntimeError::io("lock", &p, e))?;
    let _ = f.set_len(0);
    Ok(OwnedFd::from(f))
}

/// The supervisor that is starting the container right now on behalf of another (or a killed)
/// process, if any: its pid and start time, or zeros when it has not written them yet.
pub fn starting(root: &StateRoot, id: &str) -> Option<ProcId> {
    let p = starting_path(&Paths::new(root, id));
    let f = std::fs::File::open(&p).ok()?;
    if sys::try_flock(&f, false).is_ok() {
        return None;
    }
    let text = std::fs::read_to_string(&p).unwrap_or_default();
    let mut it = text.split_whitespace().map(|w| w.parse::<u64>().unwrap_or(0));
    Some(ProcId { pid: it.next().unwrap_or(0) as i32, start_time: it.next().unwrap_or(0) })
}

/// Waits (under the container lock) until no supervisor is starting the container: one that a
/// CLI killed mid-start left behind, say. It then has recorded what became of the start.
fn settle_starting(root: &StateRoot, cfg: &ContainerConfig) -> Result<()> {
    let t = Instant::now();
    while let Some(sup) = starting(root, &cfg.id) {
        if t.elapsed() > SETTLE_MAX {
            return Err(RuntimeError::Supervisor {
                name: cfg.name.clone(),
                what: format!("(pid {}) has been starting it for {} s: wait for it, or end that process", sup.pid, SETTLE_MAX.as_secs()),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// How long an operation waits for another process's supervisor to finish starting a container.
const SETTLE_MAX: Duration = Duration::from_secs(60);

fn spawn_supervisor(root: &StateRoot, cfg: &ContainerConfig, attach: Option<OwnedFd>, marker: &OwnedFd) -> Result<Started> {
    let (r, w0) = sys::pipe().map_err(|e| RuntimeError::sys("pipe", e))?;
    let w = high_fd(&w0)?;
    drop(w0);
    let a = attach.as_ref().map(high_fd).transpose()?;
    drop(attach);
    let m = high_fd(marker)?;
    let (wfd, afd, mfd): (RawFd, Option<RawFd>, RawFd) = (w.as_raw_fd(), a.as_ref().map(|a| a.as_raw_fd()), m.as_raw_fd());
    let mut cmd = Command::new("/proc/self/exe");
    // What `ps` shows: the binary's real path rather than /proc/self/exe.
    if let Ok(exe) = std::env::current_exe() {
        cmd.arg0(exe);
    }
    cmd.arg("--root").arg(root.path()).arg("__supervise").arg(&cfg.id);
    if afd.is_some() {
        cmd.arg("--attach-fd").arg("4");
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // Detached (a new session, and a double fork so that the supervisor is nobody's child), with
    // the report pipe as fd 3, the attach socket as fd 4 and the starting lock as fd 5.
    let mut fds = vec![(wfd, 3), (mfd, 5)];
    fds.extend(afd.map(|a| (a, 4)));
    sys::detach_on_spawn(&mut cmd, fds);
    let mut child =
        cmd.spawn().map_err(|e| RuntimeError::Supervisor { name: cfg.name.clone(), what: format!("could not be started: {e}") })?;
    drop(w);
    drop(a);
    drop(m);
    let _ = child.wait();
    crate::timing!("start: supervisor spawned");
    let out = sys::read_to_end(r.as_raw_fd()).map_err(|e| RuntimeError::sys("read from the supervisor", e))?;
    crate::timing!("start: supervisor reported the container running");
    let line = String::from_utf8_lossy(&out);
    serde_json::from_str::<Started>(line.trim()).map_err(|_| RuntimeError::Supervisor {
        name: cfg.name.clone(),
        what: "exited without reporting whether the container started".into(),
    })
}

/// Cleans up after a supervisor that died: kills what is left, removes the cgroup, detaches the
/// network, and records the container as exited with the reason.
/// A container whose records are damaged has its supervisor (found by its command line) ended
/// too. The state is written last and only as a record: on a full disk the write fails and the
/// container still reads as dead, which is the truth.
pub fn cleanup_dead(root: &StateRoot, cfg: &ContainerConfig, mut st: ContainerState) -> Result<()> {
    repair::reap(root, cfg, &st)?;
    let sup = st.supervisor.map(|s| s.pid).unwrap_or(0);
    st.status = Status::Exited;
    st.exit_code = 137;
    st.error = format!("the supervisor (pid {sup}) died, and the container was killed with it");
    st.supervisor = None;
    st.network = None;
    st.health = None;
    if st.finished_at == ZERO_TIME {
        st.finished_at = logfile::now_rfc3339();
    }
    let paths = Paths::new(root, &cfg.id);
    let _ = std::fs::remove_file(paths.control_socket());
    if cfg.damaged.is_none() {
        let _ = super::state::write_state(&paths.state(), &st);
    }
    Ok(())
}

fn control(root: &StateRoot, cfg: &ContainerConfig, req: &Request, timeout: Duration) -> Result<()> {
    let paths = Paths::new(root, &cfg.id);
    match ctl::request(&paths.dir, req, timeout) {
        Ok(r) => match r.error {
            None => Ok(()),
            Some(e) => Err(RuntimeError::Supervisor { name: cfg.name.clone(), what: format!("refused: {e}") }),
        },
        Err(e) => Err(RuntimeError::Supervisor { name: cfg.name.clone(), what: format!("does not answer ({e})") }),
    }
}

/// Stops a container: its stop signal, then SIGKILL after `timeout` (the config's grace period
/// when None). Stopping a stopped container does nothing.
pub fn stop(root: &StateRoot, key: &str, timeout: Option<Duration>) -> Result<()> {
    let cfg = lookup(root, key)?;
    let _l = lock(root, &cfg.id)?;
    settle_starting(root, &cfg)?;
    let was_running = state_for(root, &cfg)?.status.is_active();
    stop_locked(root, &cfg, timeout, cfg.stop_signal())?;
    if was_running {
        events::container(root, &cfg, "stop", &[]);
    }
    Ok(())
}

fn stop_locked(root: &StateRoot, cfg: &ContainerConfig, timeout: Option<Duration>, signal: i32) -> Result<()> {
    let st = state_for(root, cfg)?;
    if st.status == Status::Dead {
        return cleanup_dead(root, cfg, st);
    }
    if !st.status.is_active() {
        return Ok(());
    }
    let grace = timeout.unwrap_or(cfg.stop_grace());
    let req = Request::Stop { signal, timeout_ms: grace.as_millis() as u64 };
    let r = control(root, cfg, &req, grace + Duration::from_secs(30));
    if r.is_err() {
        let st = state_of(root, &cfg.id)?;
        if st.status == Status::Dead {
            return cleanup_dead(root, cfg, st);
        }
        if !st.status.is_active() {
            return Ok(());
        }
    }
    r?;
    wait_supervisor_gone(root, &cfg.id, Duration::from_secs(10));
    Ok(())
}

fn wait_supervisor_gone(root: &StateRoot, id: &str, max: Duration) {
    let t = Instant::now();
    while t.elapsed() < max {
        match read_json::<ContainerState>(&Paths::new(root, id).state()) {
            Ok(Some(s)) if s.supervisor.is_some_and(|p| p.alive()) => std::thread::sleep(Duration::from_millis(2)),
            _ => return,
        }
    }
}

/// Sends a signal to the container's PID 1. Only a running container can be killed.
pub fn kill(root: &StateRoot, key: &str, signal: i32) -> Result<()> {
    let cfg = lookup(root, key)?;
    let _l = lock(root, &cfg.id)?;
    settle_starting(root, &cfg)?;
    let st = state_of(root, &cfg.id)?;
    if !matches!(st.status, Status::Running | Status::Paused) {
        return Err(RuntimeError::NotRunning(cfg.name));
    }
    control(root, &cfg, &Request::Kill { signal }, Duration::from_secs(10))
}

pub fn pause(root: &StateRoot, key: &str) -> Result<()> {
    let cfg = lookup(root, key)?;
    let _l = lock(root, &cfg.id)?;
    let st = state_of(root, &cfg.id)?;
    if !matches!(st.status, Status::Running | Status::Paused) {
        return Err(RuntimeError::NotRunning(cfg.name));
    }
    control(root, &cfg, &Request::Pause, Duration::from_secs(10))
}

pub fn unpause(root: &StateRoot, key: &str) -> Result<()> {
    let cfg = lookup(root, key)?;
    let _l = lock(root, &cfg.id)?;
    control(root, &cfg, &Request::Unpause, Duration::from_secs(10))
}

/// Removes a container: refused while it runs unless `force` (which kills it). With `volumes`,
/// its anonymous volumes go too (those no other container uses).
pub fn remove(root: &StateRoot, key: &str, force: bool, volumes: bool) -> Result<()> {
    let cfg = lookup(root, key)?;
    let _l = lock(root, &cfg.id)?;
    settle_starting(root, &cfg)?;
    let st = state_for(root, &cfg)?;
    if st.status.is_active() {
        if !force {
            return Err(RuntimeError::RemoveRunning(cfg.name));
        }
        stop_locked(root, &cfg, Some(Duration::ZERO), libc::SIGKILL)?;
    } else if st.status == Status::Dead {
        cleanup_dead(root, &cfg, st.clone())?;
    }
    // What the state lists (anonymous volumes) when it can still be read.
    let st = read_json::<ContainerState>(&Paths::new(root, &cfg.id).state()).ok().flatten().unwrap_or(st);
    remove_files(root, &cfg, &st, volumes)?;
    events::container(root, &cfg, "destroy", &[]);
    let _ = std::fs::remove_file(root.path().join("locks").join(format!("c-{}.lock", cfg.id)));
    Ok(())
}

/// Removes what a stopped container leaves: cgroup, network allocations, its directory, and
/// (with `volumes`) its anonymous volumes.
pub fn remove_files(root: &StateRoot, cfg: &ContainerConfig, st: &ContainerState, volumes: bool) -> Result<()> {
    for cg in Cgroup::all_for_container(&cfg.id) {
        if cg.exists() {
            cg.remove()?;
        }
    }
    let _ = crate::net::release(root, &cfg.id);
    // Renamed out of sight first (one atomic step), then the name freed, then deleted: a removal
    // killed midway leaves either the whole container or a hidden `.rm-<pid>-<id>` folder that
    // `repair::collect_junk` deletes, never a half-deleted container that still holds its name.
    let dir = Paths::new(root, &cfg.id).dir;
    let gone = root.containers_dir().join(format!(".rm-{}-{}", std::process::id(), cfg.id));
    match std::fs::rename(&dir, &gone) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(RuntimeError::io("remove", &dir, e)),
    }
    let nf = name_file(root, &cfg.name);
    if std::fs::read_to_string(&nf).is_ok_and(|id| id.trim() == cfg.id) {
        let _ = std::fs::remove_file(&nf);
    }
    crate::util::fs::remove_dir_all_if_exists(&gone)?;
    if volumes {
        for v in &st.anonymous_volumes {
            if volumes::users(root, v).is_empty() {
                let _ = volumes::remove(root, v, true);
            }
        }
    }
    Ok(())
}

/// Waits until the container is no longer running and returns its exit code.
pub fn wait(root: &StateRoot, key: &str) -> Result<i32> {
    let cfg = lookup(root, key)?;
    loop {
        match read_json::<ContainerState>(&Paths::new(root, &cfg.id).state()) {
            Ok(Some(s)) => {
                let s = s.observed();
                if !s.status.is_active() || (s.status == Status::Restarting) {
                    return Ok(s.exit_code);
                }
            }
            Ok(None) => return Err(RuntimeError::NoSuchContainer(key.into())),
            Err(FsError::Json { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Docker-style `inspect` JSON.
pub fn inspect(root: &StateRoot, key: &str) -> Result<Value> {
    let c = lookup(root, key)?;
    let st = state_for(root, &c)?;
    let paths = Paths::new(root, &c.id);
    let argv = c.argv();
    let mounts: Vec<Value> = c
        .mounts
        .iter()
        .map(|m| {
            let (source, name, driver) = match m.kind {
                MountType::Volume => (volumes::data_dir(root, &m.source).display().to_string(), m.source.clone(), "local"),
                MountType::Bind => (m.source.clone(), String::new(), ""),
                MountType::Tmpfs => (String::new(), String::new(), ""),
            };
            let mut v = json!({
                "Type": m.kind,
                "Source": source,
                "Destination": m.target,
                "Mode": "",
                "RW": !m.read_only,
                "Propagation": m.bind_options.as_ref().and_then(|b| b.propagation.clone()).unwrap_or_else(|| if m.kind == MountType::Bind { "rprivate".into() } else { String::new() }),
            });
            if m.kind == MountType::Volume {
                v["Name"] = json!(name);
                v["Driver"] = json!(driver);
                v["Mode"] = json!("z");
            }
            v
        })
        .collect();
    let networks: serde_json::Map<String, Value> = st
        .network
        .as_ref()
        .map(|n| {
            n.endpoints
                .iter()
                .map(|e| {
                    (
                        e.network.clone(),
                        json!({
                            "Aliases": e.aliases,
                            "MacAddress": e.mac,
                            "IPAddress": e.ipv4.map(|i| i.to_string()).unwrap_or_default(),
                            "IPPrefixLen": e.ipv4_prefix,
                            "Gateway": e.gateway.map(|i| i.to_string()).unwrap_or_default(),
                            "GlobalIPv6Address": e.ipv6.map(|i| i.to_string()).unwrap_or_default(),
                            "GlobalIPv6PrefixLen": e.ipv6_prefix,
                            "IPv6Gateway": e.ipv6_gateway.map(|i| i.to_string()).unwrap_or_default(),
                        }),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut ports = serde_json::Map::new();
    for p in &c.ports {
        let key = format!("{}/{}", p.container_port, p.protocol);
        let bound: Vec<Value> = st
            .network
            .as_ref()
            .map(|n| {
                n.ports
                    .iter()
                    .filter(|q| q.container_port == p.container_port && q.protocol == p.protocol)
                    .map(|q| json!({"HostIp": q.host_ip.to_string(), "HostPort": q.host_port.to_string()}))
                    .collect()
            })
            .unwrap_or_default();
        ports.insert(key, if bound.is_empty() { Value::Null } else { Value::Array(bound) });
    }
    let network_mode = match &c.network_mode {
        crate::net::NetworkMode::Bridge => c.endpoints.first().map(|e| e.network.clone()).unwrap_or_else(|| "bridge".into()),
        crate::net::NetworkMode::Host => "host".into(),
        crate::net::NetworkMode::None => "none".into(),
        crate::net::NetworkMode::Container(o) => format!("container:{o}"),
    };
    let health = st.health.as_ref().map(|h| json!({"Status": h.status, "FailingStreak": h.failing_streak, "Log": h.log}));
    let mut state = json!({
        "Status": st.status,
        "Running": matches!(st.status, Status::Running | Status::Paused),
        "Paused": st.status == Status::Paused,
        "Restarting": st.status == Status::Restarting,
        "OOMKilled": st.oom_killed,
        "Dead": st.status == Status::Dead,
        "Pid": if st.status.is_active() { st.init.map(|i| i.pid).unwrap_or(0) } else { 0 },
        "ExitCode": st.exit_code,
        "Error": st.error,
        "StartedAt": st.started_at,
        "FinishedAt": st.finished_at,
    });
    if let Some(h) = health {
        state["Health"] = h;
    }
    let host_config = json!({
        "LogConfig": {"Type": if c.log_config.kind.is_empty() { "json-file" } else { &c.log_config.kind }, "Config": c.log_config.config},
        "NetworkMode": network_mode,
        "RestartPolicy": {"Name": if c.restart_policy.name.is_empty() { "no" } else { &c.restart_policy.name }, "MaximumRetryCount": c.restart_policy.maximum_retry_count},
        "AutoRemove": c.auto_remove,
        "CapAdd": c.cap_add,
        "CapDrop": c.cap_drop,
        "Dns": c.dns,
        "DnsOptions": c.dns_options,
        "DnsSearch": c.dns_search,
        "ExtraHosts": c.extra_hosts,
        "GroupAdd": c.group_add,
        "IpcMode": if c.ipc_mode.is_empty() { "private" } else { c.ipc_mode.as_str() },
        "PidMode": c.pid_mode,
        "UTSMode": c.uts_mode,
        "VolumesFrom": if c.volumes_from.is_empty() { None } else { Some(&c.volumes_from) },
        "Privileged": c.privileged,
        "ReadonlyRootfs": c.rootfs.read_only,
        "SecurityOpt": c.security_opt,
        "ShmSize": c.shm_size(),
        "Sysctls": c.sysctls,
        "Init": c.init,
        "Ulimits": c.ulimits,
        "OomScoreAdj": c.oom_score_adj.unwrap_or(0),
        "Memory": c.resources.memory.unwrap_or(0),
        "MemoryReservation": c.resources.memory_reservation.unwrap_or(0),
        "MemorySwap": c.resources.memory_swap.unwrap_or(0),
        "NanoCpus": c.resources.nano_cpus.unwrap_or(0),
        "CpuShares": c.resources.cpu_shares.unwrap_or(0),
        "CpuPeriod": c.resources.cpu_period.unwrap_or(0),
        "CpuQuota": c.resources.cpu_quota.unwrap_or(0),
        "CpusetCpus": c.resources.cpuset_cpus.clone().unwrap_or_default(),
        "PidsLimit": c.resources.pids_limit,
    });
    let v2 = crate::engine::cgroups::hierarchy().is_ok_and(|h| matches!(h, crate::engine::cgroups::Hierarchy::V2(_)));
    let more = json!({
            "CpuRealtimePeriod": c.resources.cpu_rt_period.unwrap_or(0),
            "CpuRealtimeRuntime": c.resources.cpu_rt_runtime.unwrap_or(0),
            "MemorySwappiness": c.resources.memory_swappiness,
            "OomKillDisable": c.resources.oom_kill_disable,
            "BlkioWeight": c.resources.blkio_weight.unwrap_or(0),
            "BlkioWeightDevice": c.resources.blkio_weight_device,
            "BlkioDeviceReadBps": c.resources.blkio_device_read_bps,
            "BlkioDeviceWriteBps": c.resources.blkio_device_write_bps,
            "BlkioDeviceReadIOps": c.resources.blkio_device_read_iops,
            "BlkioDeviceWriteIOps": c.resources.blkio_device_write_iops,
            "Devices": c.resources.devices,
            "DeviceCgroupRules": c.resources.device_cgroup_rules,
            "CgroupnsMode": match c.cgroupns_mode.as_str() { "" if v2 => "private", "" => "host", m => m },
    });
    let mut host_config = host_config;
    if let (Some(h), Value::Object(m)) = (host_config.as_object_mut(), more) {
        h.extend(m);
    }
    let config = json!({
        "Hostname": c.hostname(),
        "Domainname": c.domainname,
        "User": c.user,
        "Tty": c.tty,
        "OpenStdin": c.open_stdin,
        "Env": c.env,
        "Cmd": c.cmd,
        "Entrypoint": if c.entrypoint.is_empty() { Value::Null } else { json!(c.entrypoint) },
        "Image": c.image_ref,
        "WorkingDir": c.working_dir,
        "Labels": c.labels,
        "StopSignal": if c.stop_signal.is_empty() { Value::Null } else { json!(c.stop_signal) },
        "StopTimeout": c.stop_grace_period.map(|n| n / 1_000_000_000),
        "Healthcheck": c.healthcheck,
    });
    Ok(json!({
        "Id": c.id,
        "Created": c.created,
        "Path": argv.first().cloned().unwrap_or_default(),
        "Args": argv.iter().skip(1).collect::<Vec<_>>(),
        "State": state,
        "Image": c.image,
        "ResolvConfPath": paths.resolv_conf(),
        "HostnamePath": paths.hostname(),
        "HostsPath": paths.hosts(),
        "LogPath": paths.log(),
        "Name": format!("/{}", c.name),
        "RestartCount": st.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "HostConfig": host_config,
        "Mounts": mounts,
        "Config": config,
        "NetworkSettings": {
            "Ports": ports,
            "Networks": networks,
        },
    }))
}

/// `top`: the container's processes, as `ps -ef` columns.
pub struct Top {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

pub fn top(root: &StateRoot, key: &str) -> Result<Top> {
    let cfg = lookup(root, key)?;
    let st = state_of(root, &cfg.id)?;
    if !matches!(st.status, Status::Running | Status::Paused) {
        return Err(RuntimeError::NotRunning(cfg.name));
    }
    let cg = Cgroup::for_container(&cfg.id)?;
    let mut pids = cg.pids()?;
    pids.sort();
    let users = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let tick = sys::clock_ticks();
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<i64>().ok())))
        .unwrap_or(0);
    let mut rows = Vec::new();
    for pid in pids {
        let Some(stat) = sys::ProcStat::of(pid) else { continue };
        let (ppid, tty_nr, cpu, start) = (stat.ppid, stat.tty_nr, stat.utime + stat.stime, stat.start_time);
        let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:").and_then(|v| v.split_whitespace().next().map(String::from))))
            .unwrap_or_default();
        let uname = users
            .lines()
            .find_map(|l| {
                let p: Vec<&str> = l.split(':').collect();
                (p.len() > 2 && p[2] == uid).then(|| p[0].to_string())
            })
            .unwrap_or(uid);
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                b.split(|c| *c == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let cmd = if cmd.is_empty() { format!("[{}]", stat.comm) } else { cmd };
        let started = chrono::DateTime::from_timestamp(boot + (start / tick) as i64, 0)
            .map(|t| t.with_timezone(&chrono::Local).format("%H:%M").to_string())
            .unwrap_or_default();
        let secs = cpu / tick;
        let tty = if tty_nr == 0 { "?".to_string() } else { format!("pts/{}", (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00)) };
        rows.push(vec![
            uname,
            pid.to_string(),
            ppid.to_string(),
            "0".into(),
            started,
            tty,
            format!("{:02}:{:02}:{:02}", secs / 3600, (secs / 60) % 60, secs % 60),
            cmd,
        ]);
    }
    Ok(Top { titles: ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"].iter().map(|s| s.to_string()).collect(), processes: rows })
}

/// Streams the container's log records to `sink` (see [`logfile::read`]); with `follow`, until the
/// container stops.
pub fn logs(
    root: &StateRoot,
    key: &str,
    opts: &logfile::ReadOptions,
    sink: &mut dyn FnMut(&logfile::Record, &chrono::DateTime<chrono::Utc>) -> std::io::Result<()>,
) -> Result<()> {
    let cfg = lookup(root, key)?;
    if !cfg.log_config.enabled() {
        return Err(RuntimeError::Invalid { name: cfg.name, msg: "configured logging driver does not support reading".into() });
    }
    let paths = Paths::new(root, &cfg.id);
    let root2 = root.clone();
    let id = cfg.id.clone();
    let running = move || state_of(&root2, &id).map(|s| s.status.is_active()).unwrap_or(false);
    logfile::read(&paths.log(), opts, &running, sink).map_err(|e| RuntimeError::io("read the log", &paths.log(), e))
}

/// How `exec` connects to the user.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecOptions {
    pub interactive: bool,
    pub tty: bool,
    pub detach: bool,
}

/// Runs a process in a running container and returns its exit code (0 at once when detached).
pub fn exec(root: &StateRoot, key: &str, mut spec: ExecSpec, opts: ExecOptions) -> Result<i32> {
    let cfg = lookup(root, key)?;
    let st = state_of(root, &cfg.id)?;
    match st.status {
        Status::Running => {}
        Status::Paused => return Err(RuntimeError::Paused(cfg.name)),
        _ => return Err(RuntimeError::NotRunning(cfg.name)),
    }
    let init = st.init.ok_or_else(|| RuntimeError::NotRunning(cfg.name.clone()))?;
    let cg = Cgroup::for_container(&cfg.id)?;
    let seccomp = seccomp_for(root, &cfg, spec.privileged)?;
    spec.tty = opts.tty;
    let _prime = if cg.is_v2() { None } else { crate::engine::cgroups::prime() };
    let procs = cg.procs_files();
    super::stdio::flush_std();
    // Docker's exec events: "exec_create: <path> <args>", then start, then die with the code.
    let exec_id = crate::util::id::new_id();
    let what = format!(
        "{} {}",
        spec.argv.first().map(String::as_str).unwrap_or(""),
        spec.argv.iter().skip(1).cloned().collect::<Vec<_>>().join(" ")
    );
    events::container(root, &cfg, &format!("exec_create: {what}"), &[("execID", exec_id.clone())]);
    events::container(root, &cfg, &format!("exec_start: {what}"), &[("execID", exec_id.clone())]);
    let target = exec::Target { cfg: &cfg, init, cgroup_procs: &procs, cgroup_v2: cg.is_v2(), seccomp };
    if opts.detach {
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(|e| RuntimeError::io("open", std::path::Path::new("/dev/null"), e))?;
        let fd = null.as_raw_fd();
        let sp = exec::spawn(target, &spec, ExecStdio::Fds { stdin: None, stdout: fd, stderr: fd })?;
        drop(sp);
        return Ok(0);
    }
    let fwd = |pidfd: &OwnedFd, sig: i32| {
        let _ = sys::pidfd_send_signal(pidfd, sig);
    };
    let sp;
    if opts.tty {
        let (a, b) = sys::socketpair(libc::SOCK_STREAM).map_err(|e| RuntimeError::sys("socketpair", e))?;
        sp = exec::spawn(target, &spec, ExecStdio::Tty { master_to: b.as_raw_fd() })?;
        drop(b);
        let mut tag = [0u8; 1];
        let (_, mut fds) = sys::recv_msg(a.as_raw_fd(), &mut tag).map_err(|e| RuntimeError::sys("receive the pty", e))?;
        let master = fds.pop();
        let pidfd = &sp.pidfd;
        super::stdio::pump_exec(pidfd.as_fd(), None, None, None, master, opts.interactive, &mut |s| fwd(pidfd, s))
            .map_err(|e| RuntimeError::sys("copy the process's terminal", e))?;
    } else {
        let stdin = if opts.interactive { Some(sys::pipe().map_err(|e| RuntimeError::sys("pipe", e))?) } else { None };
        let (out_r, out_w) = sys::pipe().map_err(|e| RuntimeError::sys("pipe", e))?;
        let (err_r, err_w) = sys::pipe().map_err(|e| RuntimeError::sys("pipe", e))?;
        let stdio =
            ExecStdio::Fds { stdin: stdin.as_ref().map(|(r, _)| r.as_raw_fd()), stdout: out_w.as_raw_fd(), stderr: err_w.as_raw_fd() };
        sp = exec::spawn(target, &spec, stdio)?;
        drop(out_w);
        drop(err_w);
        let stdin_w = stdin.map(|(r, w)| {
            drop(r);
            w
        });
        let pidfd = &sp.pidfd;
        super::stdio::pump_exec(pidfd.as_fd(), stdin_w, Some(out_r), Some(err_r), None, opts.interactive, &mut |s| fwd(pidfd, s))
            .map_err(|e| RuntimeError::sys("copy the process's output", e))?;
    }
    let status = sys::wait_pid(sp.pid, 0).unwrap_or(255 << 8);
    let code = sys::exit_code_of(status);
    events::container(root, &cfg, "exec_die", &[("execID", exec_id), ("exitCode", code.to_string())]);
    Ok(code)
}

fn seccomp_for(root: &StateRoot, cfg: &ContainerConfig, privileged: bool) -> Result<Option<Vec<u8>>> {
    let caps = super::caps::compute(cfg.privileged || privileged, &cfg.cap_add, &cfg.cap_drop);
    Ok(match cfg.seccomp() {
        _ if privileged => None,
        super::spec::SeccompMode::Unconfined => None,
        super::spec::SeccompMode::Default => Some(super::seccomp::program(None, caps, &root.tmp_dir())?),
        super::spec::SeccompMode::Profile(p) => Some(super::seccomp::program(Some(&p), caps, &root.tmp_dir())?),
    })
}

/// How `run` connects.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    pub detach: bool,
    pub interactive: bool,
    /// Remove the container when it exits (`--rm`).
    pub rm: bool,
}

/// `run`: create and start; attached, it streams the container's I/O and returns its exit code.
pub fn run(root: &StateRoot, mut cfg: ContainerConfig, opts: RunOptions) -> Result<(String, Option<i32>)> {
    if opts.interactive {
        cfg.open_stdin = true;
    }
    if opts.rm {
        cfg.auto_remove = true;
    }
    let cfg = create(root, cfg)?;
    run_created(root, cfg, opts)
}

/// The second half of [`run`], for a container its caller created (with `open_stdin` and
/// `auto_remove` already as `opts` asks): start it, attached unless `opts.detach`.
pub fn run_created(root: &StateRoot, cfg: ContainerConfig, opts: RunOptions) -> Result<(String, Option<i32>)> {
    let tty = cfg.tty;
    if opts.detach {
        if let Err(e) = start(root, &cfg.id, None) {
            if opts.rm {
                let _ = remove(root, &cfg.id, true, true);
            }
            return Err(e);
        }
        return Ok((cfg.id, None));
    }
    let (mine, theirs) = sys::socketpair(libc::SOCK_SEQPACKET).map_err(|e| RuntimeError::sys("socketpair", e))?;
    super::stdio::flush_std();
    if let Err(e) = start(root, &cfg.id, Some(theirs)) {
        if opts.rm {
            let _ = remove(root, &cfg.id, true, true);
        }
        return Err(e);
    }
    let root2 = root.clone();
    let id = cfg.id.clone();
    let mut forward = |sig: i32| {
        let _ = ctl::request(&Paths::new(&root2, &id).dir, &Request::Kill { signal: sig }, Duration::from_secs(5));
    };
    let code = super::stdio::pump_attach(mine, opts.interactive, tty, &mut forward)
        .map_err(|e| RuntimeError::sys("copy the container's output", e))?;
    let code = match code {
        Some(c) => c,
        None => wait(root, &cfg.id).unwrap_or(137),
    };
    Ok((cfg.id, Some(code)))
}

/// Kills every supervisor and container of the root and removes their cgroups (for
/// `system::teardown`). Continues past failures and returns them.
pub fn teardown(root: &StateRoot) -> Vec<RuntimeError> {
    let mut errors = Vec::new();
    let Ok(rd) = std::fs::read_dir(root.containers_dir()) else { return errors };
    for e in rd.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        if id.starts_with('.') {
            continue;
        }
        let paths = Paths::new(root, &id);
        let st = read_json::<ContainerState>(&paths.state()).ok().flatten().unwrap_or_default();
        if let Some(s) = st.supervisor.filter(|s| s.alive()) {
            let _ = s.signal(libc::SIGKILL);
        }
        if let Some(i) = st.init.filter(|i| i.alive()) {
            let _ = i.signal(libc::SIGKILL);
        }
        for cg in Cgroup::all_for_container(&id) {
            if cg.exists() {
                cg.kill_all();
                if let Err(e) = cg.remove() {
                    errors.push(e.into());
                }
            }
        }
        if let Err(source) = crate::net::release(root, &id) {
            errors.push(RuntimeError::Net { name: id.clone(), source });
        }
    }
    errors
}

/// The host pid of a running container's PID 1 (for tests and diagnostics).
pub fn init_pid(root: &StateRoot, key: &str) -> Result<Option<ProcId>> {
    let cfg = lookup(root, key)?;
    let st = state_of(root, &cfg.id)?;
    Ok(st.init.filter(|_| st.status.is_active()))
}
