//! Whole-root operations. [`teardown`] removes everything a state root holds on this host
//! (processes, mounts, cgroups, links, firewall rules), then the root itself. Tests call it
//! through `berth __teardown` from their Drop guards, so a failing test leaks nothing.

use crate::state::StateRoot;

/// Tears down everything under `root`, continuing past failures, and returns every error.
pub fn teardown(root: &StateRoot) -> Vec<anyhow::Error> {
    #[allow(unused_mut)]
    let mut errors: Vec<anyhow::Error> = Vec::new();
    // Each area adds its own step here, in this order: containers (supervisors, processes,
    // mounts, cgroups), then networks (links, firewall, DNS), then images.
    for e in crate::engine::runtime::ops::teardown(root) {
        errors.push(e.into());
    }
    errors.extend(crate::net::teardown(root).into_iter().map(anyhow::Error::from));
    if let Err(e) = crate::util::fs::remove_dir_all_if_exists(root.path()) {
        errors.push(e.into());
    }
    errors
}
