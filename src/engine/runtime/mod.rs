//! The container runtime: namespaces, rootfs, mounts, capabilities, seccomp, volumes, logs, and
//! the container-level operations the orchestration calls ([`ops`]).
//!
//! The runtime knows nothing of compose. It takes a fully resolved [`spec::ContainerConfig`]
//! (`containers/<id>/config.json`). Each started container has one detached supervisor
//! (`crate::engine::supervisor`, the berth binary re-executed as `berth __supervise <id>`), which
//! [`launch::launch`]es the container's PID 1 and then owns it. The runtime speaks to it only
//! through the protocol in [`ctl`]: the supervisor builds on the runtime, never the reverse.

pub mod caps;
pub mod ctl;
pub mod etc;
pub mod exec;
pub mod fsaccess;
pub mod fsroot;
pub mod init;
pub mod launch;
pub mod logs;
pub mod ops;
pub mod repair;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod stdio;
pub mod user;
pub mod volumes;

pub use ops::*;
pub use spec::ContainerConfig;
pub use state::{ContainerState, Status};

use std::path::Path;

use crate::engine::cgroups::CgroupError;
use crate::util::fs::FsError;
use crate::util::lock::LockError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". \
         You have to remove (or rename) that container to be able to reuse that name."
    )]
    NameInUse { name: String, id: String },
    #[error("Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    #[error("invalid container config for {name}: {msg}")]
    Invalid { name: String, msg: String },
    #[error("container {name} is damaged ({why}); remove it with `berth rm -f {name}` or `berth down`, then create it again")]
    Damaged { name: String, why: String },
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("container {0} is paused, unpause the container first")]
    Paused(String),
    #[error("you cannot remove a running container {0}. Stop the container before attempting removal or force remove")]
    RemoveRunning(String),
    #[error("cannot start container {name}: {msg}")]
    Start { name: String, code: i32, msg: String },
    #[error("the supervisor of container {name} {what}")]
    Supervisor { name: String, what: String },
    #[error("{op}")]
    Sys {
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("cannot set up the cgroup of container {name}")]
    CgroupOf {
        name: String,
        #[source]
        source: CgroupError,
    },
    #[error(transparent)]
    Volume(#[from] volumes::VolumeError),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error(transparent)]
    Exec(#[from] exec::ExecError),
    #[error("cannot connect container {name} to its networks")]
    Net {
        name: String,
        #[source]
        source: crate::net::NetError,
    },
}

impl RuntimeError {
    pub fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        RuntimeError::Fs(FsError::io(op, path, source))
    }
    pub fn sys(op: impl Into<String>, source: std::io::Error) -> Self {
        RuntimeError::Sys { op: op.into(), source }
    }
    /// The exit code Docker gives for this failure (127 command not found, 126 cannot run).
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            RuntimeError::Start { code, .. } => Some(*code),
            RuntimeError::Exec(e) => Some(e.exit_code()),
            _ => None,
        }
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
