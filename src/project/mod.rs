//! The compose project: a staged loader ending in a typed model, the dependency graph and the
//! config hash.
//!
//! Passes, each in its own file, run per compose file then over the merged project:
//! 1. [`yaml`]: parse (positions, tags, anchors and merge keys, alias-bomb guard);
//! 2. [`interpolate`]: `${VAR...}` from the environment (process env, then env files);
//! 3. [`include`]: other projects' resources;
//! 4. [`extends`]: services built on other services;
//! 5. [`merge`]: the `-f` files merged in order (13-merge.md, `!reset`, `!override`);
//! 6. [`validate`]: the compose-spec JSON schema per file, then cross-references and conflicts;
//! 7. [`canonical`]: short syntax to long;
//! 8. [`typed`]: the typed [`model::Project`].
//!
//! Each file is validated before it is made canonical and merged (so errors name the file that
//! has them); [`load::load`] drives the passes and resolves paths, environments and profiles.

pub mod build;
pub mod canonical;
pub mod convert;
pub mod dotenv;
pub mod engine;
pub mod error;
pub mod execute;
pub mod extends;
pub mod graph;
pub mod hash;
pub mod images;
pub mod include;
pub mod interpolate;
pub mod load;
pub mod merge;
pub mod model;
pub mod naming;
pub mod observe;
pub mod paths;
pub mod plan;
pub mod render;
pub mod typed;
pub mod validate;
pub mod yaml;

pub use error::{Diag, LoadError, Pos};
pub use graph::{DepGraph, Edge};
pub use load::{LoadOptions, Skip, load, load_model, load_with};
pub use model::{Dependency, Project, Service};

impl Project {
    /// What `berth config --format json` prints.
    pub fn to_json(&self) -> String {
        render::to_json(self)
    }
    /// What `berth config` prints (YAML).
    pub fn to_yaml(&self) -> String {
        render::to_yaml(self)
    }
    /// The dependency graph of the enabled services.
    pub fn graph(&self) -> Result<DepGraph, LoadError> {
        Ok(DepGraph::from_project(self))
    }
    /// Image references used by the services: `image`, or `<project>-<service>` for builds.
    pub fn images(&self) -> Vec<(String, String)> {
        self.services.values().map(|s| (s.name.clone(), naming::service_image_name(self, s))).collect()
    }
}
