//! Networking: netlink links, bridges and veths, IPAM, the nftables firewall, published ports and
//! the embedded DNS resolver.
//!
//! The runtime calls [`attach`] from the supervisor once a container's network namespace exists
//! and before its process runs, and [`detach`] when the container stops for good. The types in
//! [`types`] are the contract between the two (see docs/design.md).

pub mod types;

pub use types::*;

use crate::state::StateRoot;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{0}")]
    Other(String),
}

/// Connects a container's network namespace to its networks: a veth per endpoint, addresses,
/// routes, published ports and DNS records. The returned reservations hold the published host
/// ports and must stay open as long as the container runs.
pub fn attach(_root: &StateRoot, _req: &AttachRequest) -> Result<AttachResult, NetError> {
    Ok(AttachResult::default())
}

/// Undoes [`attach`] for a container: port rules, DNS records, address allocations. Idempotent;
/// the veths die with the namespace.
pub fn detach(_root: &StateRoot, _container_id: &str) -> Result<(), NetError> {
    Ok(())
}
