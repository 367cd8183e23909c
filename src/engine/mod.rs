//! The embedded container engine: images, runtime, cgroups, supervisor and builder.
pub mod image;
pub mod build;
