//! Whole-root operations. [`collect_junk`] removes what processes killed by SIGKILL left behind;
//! [`teardown`] removes everything a state root holds on this host
//! (processes, mounts, cgroups, links, firewall rules), then the root itself. Tests call it
//! through `berth __teardown` from their Drop guards, so a failing test leaks nothing.

use crate::engine::runtime::RuntimeError;
use crate::net::NetError;
use crate::state::StateRoot;
use crate::util::fs::FsError;

/// A step of [`teardown`] that failed; the others still ran.
#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    #[error(transparent)]
    Containers(#[from] RuntimeError),
    #[error(transparent)]
    Networks(#[from] NetError),
    #[error(transparent)]
    Folder(#[from] FsError),
}

/// Tears down everything under `root`, continuing past failures, and returns every error.
///
/// In this order: the containers (supervisors, processes, cgroups, their network endpoints),
/// then the networks (links, firewall rules, the DNS resolver), then the folder. Images, volumes
/// and the build cache are files in the folder (the mounts berth makes over them, for RUN steps,
/// `cp` or `export`, are private to a process and end with it), so removing it removes them.
pub fn teardown(root: &StateRoot) -> Vec<TeardownError> {
    let mut errors: Vec<TeardownError> = Vec::new();
    errors.extend(crate::engine::runtime::ops::teardown(root).into_iter().map(TeardownError::from));
    errors.extend(crate::net::teardown(root).into_iter().map(TeardownError::from));
    if let Err(e) = crate::util::fs::remove_dir_all_if_exists(root.path()) {
        errors.push(e.into());
    }
    errors
}

/// How old a container folder without a config must be before it counts as abandoned: a
/// `create` under way writes its config within milliseconds of making the folder.
pub const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes the junk that berth processes killed by SIGKILL left in `root`: container folders
/// that never got a config, `networks/.tmp-*` folders, temp files of dead writers, and lock files
/// of containers that no longer exist. Commands that take a project's lock call it, so that the
/// next command after a crash collects it; it costs one scan of `containers/`, `networks/` and
/// `locks/`.
pub fn collect_junk(root: &StateRoot) -> crate::engine::runtime::repair::Junk {
    crate::engine::runtime::repair::collect_junk(root, ABANDONED_AFTER)
}
