//! The Dockerfile builder: parses a Dockerfile, runs its stages on berth's own engine, and
//! leaves an OCI image in the local store.
//!
//! - [`dockerfile`]: the parser (directives, continuations, heredocs, JSON and shell forms);
//! - [`shell`]: variable expansion in words, as Docker's builder does it;
//! - [`ignore`]: `.dockerignore` patterns;
//! - [`fstree`]: safe, read-only views of the build context and of images' layers;
//! - [`copy`]: COPY and ADD as layers written straight from the sources.

pub mod builder;
pub mod cache;
pub mod copy;
pub mod dockerfile;
pub mod error;
pub mod fstree;
pub mod ignore;
pub mod parallel;
pub mod progress;
pub mod run;
pub mod shell;

pub use builder::{BuildOutput, BuildRequest, DockerfileSource, build};
pub use error::{BuildError, Result};
pub use parallel::build_parallel;
pub use progress::{Mode as ProgressMode, Printer};
