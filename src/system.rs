//! Whole-root operations. [`prune`] is `berth system prune`; [`collect_junk`] removes what processes killed by SIGKILL left behind;
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

/// What `berth system prune` removes: Docker's set.
#[derive(Debug, Clone, Copy, Default)]
pub struct PruneOptions {
    /// Every image no container uses, not only dangling ones (`-a`).
    pub all_images: bool,
    /// Anonymous volumes no container uses (`--volumes`).
    pub volumes: bool,
}

/// What `system prune` removed, in Docker's order, and what it could not remove.
#[derive(Debug, Default)]
pub struct PruneReport {
    /// Container ids.
    pub containers: Vec<String>,
    /// Network names.
    pub networks: Vec<String>,
    /// Volume names.
    pub volumes: Vec<String>,
    /// Image ids (`sha256:...`).
    pub images: Vec<String>,
    /// Bytes freed: container folders, volumes, image layers and blobs.
    pub reclaimed: u64,
    /// One line per object that could not be removed; the others were.
    pub errors: Vec<String>,
}

/// `docker system prune`: removes every container that does not run (damaged ones included:
/// a container whose record is unreadable is listed as dead, and its removal finds its
/// supervisor, cgroup and endpoints by its id), the networks no container uses (damaged ones
/// included), dangling images (every unused one with `all_images`), and with `volumes` the
/// anonymous volumes no container uses; then the junk of killed commands. It continues past a
/// failure and reports it.
pub fn prune(root: &StateRoot, opts: PruneOptions) -> PruneReport {
    use crate::engine::runtime::{ops, volumes};
    let mut r = PruneReport::default();
    for c in ops::list_configs(root) {
        let status = ops::state_of(root, &c.id).map(|s| s.status);
        let damaged = c.damaged.is_some() || status.is_err();
        if let Ok(s) = &status {
            if s.is_active() && !damaged {
                continue;
            }
        }
        let size = volumes::du(&root.containers_dir().join(&c.id));
        // A damaged or dead record is removed as `rm -f` does (ending whatever it still holds).
        let dead = damaged || matches!(status, Ok(crate::engine::runtime::state::Status::Dead));
        match ops::remove(root, &c.id, dead, false) {
            Ok(()) => {
                r.containers.push(c.id.clone());
                r.reclaimed += size;
            }
            Err(e) => r.errors.push(format!("container {}: {e}", c.name)),
        }
    }
    match crate::net::network::list(root) {
        Ok(networks) => {
            for n in networks {
                match crate::net::network::read_endpoints(root, &n.name) {
                    Ok(e) if !e.endpoints.is_empty() => continue,
                    _ => {}
                }
                match crate::net::network::remove(root, &n.name) {
                    Ok(_) => r.networks.push(n.name),
                    Err(NetError::NetworkInUse { .. }) => {}
                    Err(e) => r.errors.push(format!("network {}: {e}", n.name)),
                }
            }
        }
        Err(e) => r.errors.push(e.to_string()),
    }
    if let Ok(damaged) = crate::net::network::list_damaged(root) {
        for d in damaged {
            match crate::net::network::remove(root, &d.name) {
                Ok(_) => r.networks.push(d.name),
                Err(NetError::NetworkInUse { .. }) => {}
                Err(e) => r.errors.push(format!("network {}: {e}", d.name)),
            }
        }
    }
    if opts.volumes {
        match volumes::list(root) {
            Ok(vs) => {
                for v in vs.into_iter().filter(|v| v.is_anonymous()) {
                    if !volumes::users(root, &v.name).is_empty() {
                        continue;
                    }
                    let size = volumes::du(&volumes::data_dir(root, &v.name));
                    match volumes::remove(root, &v.name, false) {
                        Ok(()) => {
                            r.volumes.push(v.name);
                            r.reclaimed += size;
                        }
                        Err(e) => r.errors.push(format!("volume {}: {e}", v.name)),
                    }
                }
            }
            Err(e) => r.errors.push(e.to_string()),
        }
    }
    match crate::engine::image::ImageStore::open(root).and_then(|s| s.prune(opts.all_images)) {
        Ok((ids, bytes)) => {
            r.images = ids.iter().map(|d| d.to_string()).collect();
            r.reclaimed += bytes;
        }
        Err(e) => r.errors.push(e.to_string()),
    }
    collect_junk(root);
    r
}
