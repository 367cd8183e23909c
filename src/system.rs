//! Whole-root operations. [`teardown`] removes everything a state root holds on this host
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
