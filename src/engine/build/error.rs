//! The builder's error type. Every variant names the Dockerfile and line, the service, or the
//! path concerned.

use std::path::PathBuf;

use crate::engine::image::ImageError;
use crate::util::fs::FsError;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Parse(#[from] super::dockerfile::ParseError),
    /// An instruction that cannot be carried out as written.
    #[error("{file}:{line}: {msg}")]
    Step { file: String, line: usize, msg: String },
    /// An instruction that failed on something below it (the cause follows in the report).
    #[error("{file}:{line}: {what}")]
    StepFailed {
        file: String,
        line: usize,
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{file}:{line}: {instruction} did not complete successfully: exit code {code}")]
    RunFailed { file: String, line: usize, instruction: String, code: i32 },
    #[error("cannot read the Dockerfile {}: {reason}", path.display())]
    Dockerfile { path: PathBuf, reason: String },
    #[error("the build context {} is not a directory: {reason}", path.display())]
    Context { path: PathBuf, reason: String },
    #[error("target stage {target:?} could not be found in {file}; its stages are: {stages}")]
    NoTarget { target: String, file: String, stages: String },
    #[error("service {service}: {msg}")]
    Service { service: String, msg: String },
    #[error("service {service}: cannot build its image")]
    ServiceFailed {
        service: String,
        #[source]
        source: Box<BuildError>,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Lock(#[from] crate::util::lock::LockError),
}

pub type Result<T, E = BuildError> = std::result::Result<T, E>;

impl BuildError {
    /// The exit code of a failed RUN, when that is what failed.
    pub fn run_exit_code(&self) -> Option<i32> {
        match self {
            BuildError::RunFailed { code, .. } => Some(*code),
            BuildError::ServiceFailed { source, .. } => source.run_exit_code(),
            _ => None,
        }
    }
}
