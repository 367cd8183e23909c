//! berth: a daemonless, compose-compatible multi-container orchestrator with its own engine.
//!
//! Layout (see DEVELOPERS.md):
//! - [`project`]: the compose loader, typed model, dependency graph, config hash and planner;
//! - [`engine`]: images, runtime, cgroups, supervisor, builder;
//! - [`net`]: bridges, veths, IPAM, firewall, published ports, DNS;
//! - [`bridge`]: `bridge convert`, the project as Kubernetes manifests or a Helm chart;
//! - [`cli`]: thin clap commands; errors become a readable report only there;
//! - [`api`]: the Docker Engine API on a Unix socket (`berth system service`), a front end beside
//!   `cli`;
//! - [`util`]: below everything: atomic files, locks, and [`util::sys`], the one module of raw
//!   system calls.
//!
//! Every `unsafe` block says why it is sound (`// SAFETY:`); most live in `util::sys`.

#![warn(clippy::undocumented_unsafe_blocks)]

pub mod api;
pub mod bridge;
pub mod cli;
pub mod engine;
pub mod labels;
pub mod net;
pub mod objects;
pub mod project;
pub mod state;
pub mod system;
pub mod util;
