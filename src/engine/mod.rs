//! The embedded container engine: images, runtime, cgroups, supervisor and builder.

pub mod build;
pub mod cgroups;
pub mod events;
pub mod image;
pub mod runtime;
pub mod supervisor;
