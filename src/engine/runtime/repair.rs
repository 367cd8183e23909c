//! Damaged and abandoned container records, and how they are still found and removed.
//!
//! Why: a container is a folder of files (`config.json`, `state.json`) plus things on the host
//! (its supervisor, its PID 1, its cgroup, its network endpoints). A crash, a full disk or a
//! hand edit can damage one file. Before this module a truncated `config.json` made a running
//! container vanish from every listing (so `down` left it running with its cgroup and veth), and
//! garbage in one `state.json` made every command of its project fail. A damaged record now
//! degrades to that one container: it is listed as `dead` with the reason, and `rm`/`down`
//! remove it, finding what it owns on the host by its id alone:
//! - the supervisor, by its command line (`berth --root <root> __supervise <id>`);
//! - the container's processes, by its cgroup (named after the id);
//! - its network endpoints and published ports, by the id in the networks' records;
//! - its folder, `containers/<id>/`.
//!
//! So that the project, the service and the name survive a damaged `config.json`, `create` also
//! writes `identity.json`, a small copy of the container's name and compose labels written
//! before the config (a folder with neither is still listed, under its short id).
//!
//! The same module collects the junk a CLI killed by SIGKILL leaves behind ([`collect_junk`]):
//! the hidden folders of creates and removals cut short (`.new-<pid>-<id>`, `.rm-<pid>-<id>`),
//! container folders with no config and no process, temp files of dead writers, and lock files of
//! containers that no longer exist.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::spec::ContainerConfig;
use super::state::{ContainerState, Paths, Status};
use crate::engine::cgroups::Cgroup;
use crate::labels;
use crate::state::StateRoot;
use crate::util::fs::FsError;
use crate::util::sys::ProcId;

/// `containers/<id>/identity.json`: what is needed to list a container whose config is damaged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Identity {
    pub name: String,
    pub created: String,
    /// The compose labels that decide which project, service and number the container is.
    pub labels: BTreeMap<String, String>,
}

/// The labels kept in [`Identity`]. The config hash is not among them on purpose: a damaged
/// container must never look up to date to `up`, which then replaces it.
const IDENTITY_LABELS: &[&str] =
    &[labels::PROJECT, labels::SERVICE, labels::CONTAINER_NUMBER, labels::ONEOFF, labels::WORKING_DIR, labels::CONFIG_FILES];

pub fn identity_path(paths: &Paths) -> std::path::PathBuf {
    paths.dir.join("identity.json")
}

/// Writes `identity.json` for a container being created (before its config).
pub fn write_identity(paths: &Paths, cfg: &ContainerConfig) -> Result<(), FsError> {
    let id = Identity {
        name: cfg.name.clone(),
        created: cfg.created.clone(),
        labels: cfg.labels.iter().filter(|(k, _)| IDENTITY_LABELS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect(),
    };
    let data = serde_json::to_vec(&id).map_err(|e| FsError::Json { path: identity_path(paths), source: e })?;
    super::state::write_ephemeral(&identity_path(paths), &data)
}

/// Whether `name` is a container folder's name (64 lowercase hex digits).
pub fn is_container_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The config that stands for container `id` whose `config.json` cannot be read (`why`): its id,
/// its name and compose labels from `identity.json` (else the name index, else its short id),
/// and [`ContainerConfig::damaged`] set to the reason. Never started; only listed and removed.
pub fn stub(root: &StateRoot, id: &str, why: String) -> ContainerConfig {
    let paths = Paths::new(root, id);
    let ident: Identity = crate::util::fs::read_json(&identity_path(&paths)).ok().flatten().unwrap_or_default();
    let mut name = ident.name;
    if name.is_empty() {
        name = name_from_index(root, id).unwrap_or_else(|| format!("damaged-{}", crate::util::id::short(id)));
    }
    let mut labels = ident.labels;
    if labels.contains_key(labels::PROJECT) {
        // Listed with its project (compose lists containers that carry a config hash), and
        // never equal to the hash of any config.
        labels.insert(labels::CONFIG_HASH.to_string(), String::new());
    }
    let created = if ident.created.is_empty() {
        std::fs::metadata(&paths.dir)
            .and_then(|m| m.modified())
            .ok()
            .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
            .unwrap_or_default()
    } else {
        ident.created
    };
    ContainerConfig { id: id.to_string(), name, labels, created, damaged: Some(why), ..Default::default() }
}

/// The name whose `containers/.names/<name>` entry holds `id`.
fn name_from_index(root: &StateRoot, id: &str) -> Option<String> {
    let rd = std::fs::read_dir(root.containers_dir().join(".names")).ok()?;
    rd.flatten()
        .find(|e| std::fs::read_to_string(e.path()).is_ok_and(|s| s.trim() == id))
        .map(|e| e.file_name().to_string_lossy().into_owned())
}

/// The state that stands for a `state.json` that cannot be read (`err`): dead, with the reason
/// and the supervisor found by its command line, so that removal can end it.
pub fn damaged_state(root: &StateRoot, id: &str, err: &FsError) -> ContainerState {
    let mut st = ContainerState::new();
    st.status = Status::Dead;
    st.exit_code = 137;
    st.supervisor = find_supervisor(root, id);
    st.error = format!("{err}: the container's state is unknown; remove it (`berth rm -f`, `berth down`) and create it again");
    st
}

/// The state of a container whose config is damaged: `dead`, whatever its supervisor does, with
/// the reason, and its supervisor and PID 1 kept (or found) so that removal ends them.
pub fn damaged_config_state(root: &StateRoot, cfg: &ContainerConfig, st: ContainerState) -> ContainerState {
    let Some(why) = &cfg.damaged else { return st };
    let mut st = st;
    if st.supervisor.is_none_or(|s| !s.alive()) {
        st.supervisor = find_supervisor(root, &cfg.id);
    }
    if st.status != Status::Dead || st.error.is_empty() || !st.error.contains(why.as_str()) {
        st.error = format!("{why}: remove the container (`berth rm -f`, `berth down`) and create it again");
    }
    st.status = Status::Dead;
    st
}

/// The live supervisor of container `id` of this root, found by its command line
/// (`... --root <root> __supervise <id> ...`), for when `state.json` cannot say.
pub fn find_supervisor(root: &StateRoot, id: &str) -> Option<ProcId> {
    let rd = std::fs::read_dir("/proc").ok()?;
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else { continue };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let follows = |flag: &[u8], value: &[u8]| args.windows(2).any(|w| w[0] == flag && w[1] == value);
        if follows(b"__supervise", id.as_bytes()) && follows(b"--root", root.path().as_os_str().as_encoded_bytes()) {
            if let Some(p) = ProcId::of(pid) {
                return Some(p);
            }
        }
    }
    None
}

/// Ends everything container `cfg` owns on the host, whatever its records say: its supervisor
/// (from `st`, or found by its command line), its PID 1, every process of its cgroup and the
/// cgroup itself, and its network endpoints. Writes nothing (it works on a full disk).
pub fn reap(root: &StateRoot, cfg: &ContainerConfig, st: &ContainerState) -> Result<(), super::RuntimeError> {
    let sup = st.supervisor.filter(|s| s.alive()).or_else(|| find_supervisor(root, &cfg.id));
    if let Some(s) = sup {
        let _ = s.kill();
    }
    if let Some(i) = st.init.filter(|i| i.alive()) {
        let _ = i.kill();
    }
    for cg in Cgroup::all_for_container(&cfg.id) {
        if cg.exists() {
            cg.kill_all();
            cg.remove()?;
        }
    }
    // The supervisor's own exit is awaited briefly, so that it does not write into the folder
    // about to be removed.
    if let Some(s) = sup {
        let t = std::time::Instant::now();
        while s.alive() && t.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let _ = crate::net::detach(root, &cfg.id);
    Ok(())
}

/// What [`collect_junk`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Junk {
    /// Container folders with no config and nothing running.
    pub folders: Vec<String>,
    /// `locks/c-<id>.lock` of containers that no longer exist.
    pub locks: Vec<String>,
    /// Temporary files and folders (`.*.tmp-<pid>-*`) whose writer is gone.
    pub temps: Vec<String>,
}

impl Junk {
    pub fn is_empty(&self) -> bool {
        self.folders.is_empty() && self.locks.is_empty() && self.temps.is_empty()
    }
}

/// Removes what a berth process killed by SIGKILL leaves behind: the hidden folders of creates
/// and removals whose process is gone; container folders without a config (left by versions
/// that made them in place: nothing of it runs, nobody holds its lock, and it is older than
/// `min_age`, so that a `create` under way is never taken for one); lock files of containers
/// that no longer exist (nobody holds them); temp files of writers that are gone. Best effort:
/// what cannot be removed stays for the next time.
pub fn collect_junk(root: &StateRoot, min_age: Duration) -> Junk {
    let mut junk = Junk::default();
    let containers = root.containers_dir();
    if let Ok(rd) = std::fs::read_dir(&containers) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(t) = stale_temp(&name) {
                if !pid_alive(t) && std::fs::remove_file(e.path()).is_ok() {
                    junk.temps.push(e.path().display().to_string());
                }
                continue;
            }
            // `.new-<pid>-<id>`: a create that was killed before its folder was complete;
            // `.rm-<pid>-<id>`: a removal that was killed after hiding the folder.
            let hidden = name.strip_prefix(".new-").or_else(|| name.strip_prefix(".rm-"));
            if let Some(pid) = hidden.and_then(|r| r.split('-').next()).and_then(|p| p.parse::<i32>().ok()) {
                if !pid_alive(pid) && crate::util::fs::remove_dir_all_if_exists(&e.path()).is_ok() {
                    junk.folders.push(name);
                }
                continue;
            }
            if !is_container_id(&name) || !e.path().is_dir() {
                continue;
            }
            let paths = Paths::new(root, &name);
            if paths.config().exists() || !older_than(&paths.dir, min_age) {
                continue;
            }
            // Not while anyone works on it (its lock), nor while anything of it runs.
            let Ok(_l) = crate::util::lock::FileLock::try_exclusive(&root.path().join("locks").join(format!("c-{name}.lock"))) else {
                continue;
            };
            if find_supervisor(root, &name).is_some() || Cgroup::all_for_container(&name).iter().any(|c| c.exists()) {
                continue;
            }
            // Its network endpoints (addresses, held ones included, and published ports) go with it.
            let _ = crate::net::release(root, &name);
            if crate::util::fs::remove_dir_all_if_exists(&paths.dir).is_ok() {
                junk.folders.push(name);
            }
        }
    }
    // `networks/.tmp-<pid>-*` (a network being written) and `.rm-<pid>-*` (being removed).
    if let Ok(rd) = std::fs::read_dir(root.networks_dir()) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix(".tmp-")
                .or_else(|| name.strip_prefix(".rm-"))
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<i32>().ok())
                .or_else(|| stale_temp(&name));
            if pid.is_some_and(|p| !pid_alive(p)) {
                let gone = if e.path().is_dir() {
                    crate::util::fs::remove_dir_all_if_exists(&e.path()).is_ok()
                } else {
                    std::fs::remove_file(e.path()).is_ok()
                };
                if gone {
                    junk.temps.push(e.path().display().to_string());
                }
            }
        }
    }
    let locks = root.path().join("locks");
    if let Ok(rd) = std::fs::read_dir(&locks) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_prefix("c-").and_then(|n| n.strip_suffix(".lock")) else { continue };
            if !is_container_id(id) || containers.join(id).exists() {
                continue;
            }
            // Held by nobody (try-lock), then removed while held: a process that opens it after
            // the removal locks a new file, which is as good.
            if let Ok(_l) = crate::util::lock::FileLock::try_exclusive(&e.path()) {
                if !containers.join(id).exists() && std::fs::remove_file(e.path()).is_ok() {
                    junk.locks.push(name);
                }
            }
        }
    }
    junk
}

/// The writer's pid of a temp file name `.<name>.tmp-<pid>-<random>` (as util::fs and
/// write_ephemeral make them).
fn stale_temp(name: &str) -> Option<i32> {
    let rest = name.strip_prefix('.')?;
    let (_, tail) = rest.rsplit_once(".tmp-")?;
    tail.split('-').next()?.parse().ok()
}

fn pid_alive(pid: i32) -> bool {
    ProcId::of(pid).is_some()
}

fn older_than(p: &Path, age: Duration) -> bool {
    std::fs::metadata(p).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|e| e >= age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_and_temp_names() {
        assert!(is_container_id(&"a".repeat(64)));
        assert!(!is_container_id(&"A".repeat(64)));
        assert!(!is_container_id(".names"));
        assert_eq!(stale_temp(".state.json.tmp-123-0000abcd"), Some(123));
        assert_eq!(stale_temp("state.json"), None);
    }

    #[test]
    fn a_damaged_config_is_listed_under_its_identity() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::new(dir.path().join("r"));
        root.ensure().unwrap();
        let id = "b".repeat(64);
        let paths = Paths::new(&root, &id);
        std::fs::create_dir_all(&paths.dir).unwrap();
        let mut cfg = ContainerConfig { id: id.clone(), name: "p-web-1".into(), ..Default::default() };
        cfg.labels.insert(labels::PROJECT.into(), "p".into());
        cfg.labels.insert(labels::CONFIG_HASH.into(), "abc".into());
        write_identity(&paths, &cfg).unwrap();
        let s = stub(&root, &id, "config.json is truncated".into());
        assert_eq!(s.name, "p-web-1");
        assert_eq!(s.labels.get(labels::PROJECT).map(String::as_str), Some("p"));
        assert_eq!(s.labels.get(labels::CONFIG_HASH).map(String::as_str), Some(""));
        let st = damaged_config_state(&root, &s, ContainerState::new());
        assert_eq!(st.status, Status::Dead);
        assert!(st.error.contains("truncated"), "{}", st.error);
    }
}
