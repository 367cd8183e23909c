//! `containers/<id>/state.json`: what a container is doing. The supervisor writes it while it
//! lives; the CLI writes it only when no supervisor does (create, and clean-up after a supervisor
//! died). Every write is atomic.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::net::Attachment;
use crate::state::StateRoot;
use crate::util::sys::ProcId;

/// Docker's zero time, used for "never".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
    Dead,
    Removing,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
            Status::Dead => "dead",
            Status::Removing => "removing",
        }
    }
    /// Running, paused or restarting: a supervisor owns the container.
    pub fn is_active(&self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerState {
    pub status: Status,
    /// The supervisor process, while one runs.
    pub supervisor: Option<ProcId>,
    /// The container's PID 1, as a host pid.
    pub init: Option<ProcId>,
    pub exit_code: i32,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    pub restart_count: u32,
    /// Set by an explicit stop or kill: the restart policy never undoes it.
    pub manually_stopped: bool,
    pub health: Option<Health>,
    /// What `net::attach` returned, while the container runs.
    pub network: Option<Attachment>,
    /// Anonymous volumes this container created (removed with `rm -v`).
    pub anonymous_volumes: Vec<String>,
}

impl ContainerState {
    pub fn new() -> Self {
        ContainerState { started_at: ZERO_TIME.into(), finished_at: ZERO_TIME.into(), ..Default::default() }
    }

    /// The status as it really is: a state that says a supervisor owns the container while no
    /// such supervisor is alive is reported as dead, with the reason in `error`.
    pub fn observed(mut self) -> Self {
        if self.status.is_active() && !self.supervisor.is_some_and(|s| s.alive()) {
            let sup = self.supervisor.map(|s| s.pid).unwrap_or(0);
            let init_alive = self.init.is_some_and(|i| i.alive());
            self.status = Status::Dead;
            self.error = if init_alive {
                format!("the supervisor (pid {sup}) died while the container still runs; stop or remove the container")
            } else {
                format!("the supervisor (pid {sup}) died and the container with it; start or remove the container")
            };
        }
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Health {
    pub status: HealthStatus,
    pub failing_streak: u32,
    pub log: Vec<HealthResult>,
}

/// A container's health, as Docker words it (`State.Health.Status`, `ps`, the
/// `health_status: ...` event).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// No probe result yet and no `starting` either (what a state without one reads as); stored
    /// as an empty string, as before this was typed.
    #[default]
    #[serde(rename = "", alias = "none")]
    None,
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            HealthStatus::None => "",
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

impl std::fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthResult {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

/// The files of one container.
#[derive(Debug, Clone)]
pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    pub fn new(root: &StateRoot, id: &str) -> Self {
        Paths { dir: root.container_dir(id) }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn log(&self) -> PathBuf {
        let id = self.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.dir.join(format!("{id}-json.log"))
    }
    pub fn hosts(&self) -> PathBuf {
        self.dir.join("hosts")
    }
    pub fn hostname(&self) -> PathBuf {
        self.dir.join("hostname")
    }
    pub fn resolv_conf(&self) -> PathBuf {
        self.dir.join("resolv.conf")
    }
    /// The overlay upper and work directories.
    pub fn diff(&self) -> PathBuf {
        self.dir.join("diff")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    /// The rootfs mount point; mounted only inside the container's mount namespace.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    /// The supervisor's control socket (bound relative to the directory: paths can exceed 108 bytes).
    pub fn control_socket(&self) -> PathBuf {
        self.dir.join("ctl.sock")
    }
}

/// Writes runtime files (the generated /etc files, `identity.json`) atomically, by rename, but
/// without fsync: these files describe processes that do not survive a crash of the machine
/// anyway, are rewritten at every start, and an fsync costs a start several milliseconds on
/// slow disks. A reader still sees the old content or the new one, never a torn file.
pub fn write_ephemeral(path: &Path, data: &[u8]) -> Result<(), crate::util::fs::FsError> {
    use crate::util::fs::FsError;
    use std::io::Write;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let rnd: u32 = rand::random();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}-{rnd:08x}", std::process::id()));
    let r = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| FsError::io("create", &tmp, e))?;
        f.write_all(data).map_err(|e| FsError::io("write", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| FsError::io("rename into place", path, e))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Writes a state as pretty JSON, atomically and fsynced like `config.json`: the state outlives
/// the processes it describes (an exit code, a manual stop that the restart policy must honour,
/// the anonymous volumes to remove with the container), and a state torn by a power cut used to
/// block every command of the project. Readers that still find it damaged see the container as
/// dead (`repair::damaged_state`).
///
/// On a full disk (ENOSPC, EDQUOT) the new state is written over the old one in place, in the
/// blocks the old file already has: a stop must be recorded even when there is no room for a
/// temp file (a state that ends a container is no larger than the one that ran it). A crash in
/// the middle of that write leaves a torn file, which reads as a damaged state, not a lie.
pub fn write_state(path: &Path, st: &ContainerState) -> Result<(), crate::util::fs::FsError> {
    use crate::util::fs::FsError;
    let mut data = serde_json::to_vec_pretty(st).map_err(|e| FsError::Json { path: path.into(), source: e })?;
    data.push(b'\n');
    match crate::util::fs::write_atomic(path, &data) {
        Err(FsError::Io { source, .. }) if matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) => {
            write_in_place(path, &data)
        }
        r => r,
    }
}

fn write_in_place(path: &Path, data: &[u8]) -> Result<(), crate::util::fs::FsError> {
    use crate::util::fs::FsError;
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(path).map_err(|e| FsError::io("open", path, e))?;
    let old = f.metadata().map(|m| m.len()).unwrap_or(0);
    if (data.len() as u64) > old.div_ceil(4096) * 4096 {
        return Err(FsError::io("write", path, std::io::Error::from_raw_os_error(libc::ENOSPC)));
    }
    f.write_all(data).map_err(|e| FsError::io("write", path, e))?;
    f.set_len(data.len() as u64).map_err(|e| FsError::io("truncate", path, e))?;
    f.sync_all().map_err(|e| FsError::io("sync", path, e))
}

pub fn read_state(path: &Path) -> Result<Option<ContainerState>, crate::util::fs::FsError> {
    crate::util::fs::read_json(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_supervisor_is_reported_honestly() {
        let mut s = ContainerState::new();
        s.status = Status::Running;
        s.supervisor = Some(ProcId { pid: 999_999_999, start_time: 1 });
        let o = s.clone().observed();
        assert_eq!(o.status, Status::Dead);
        assert!(o.error.contains("supervisor"), "{}", o.error);
        s.supervisor = Some(ProcId::current());
        assert_eq!(s.observed().status, Status::Running);
    }
}
