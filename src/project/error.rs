//! The loader's error: where (file, line:column, key path) and what was expected.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::util::fs::FsError;

/// A place in a compose file: the file and the 1-based line and column of a YAML node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    pub file: Option<Arc<PathBuf>>,
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub fn new(file: &Arc<PathBuf>, line: u32, col: u32) -> Pos {
        Pos { file: Some(file.clone()), line, col }
    }
    pub(crate) fn file_only(file: &Path) -> Pos {
        Pos { file: Some(Arc::new(file.to_path_buf())), line: 0, col: 0 }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if self.line > 0 {
                write!(f, ":{}:{}", self.line, self.col)?;
            }
        }
        Ok(())
    }
}

/// One diagnostic: where it is, which key, and what is wrong (with what was expected).
#[derive(Debug, Clone)]
pub struct Diag {
    pub pos: Pos,
    pub key: String,
    pub msg: String,
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if self.pos.file.is_some() {
            write!(f, "{}", self.pos)?;
            sep = ": ";
        }
        if !self.key.is_empty() {
            write!(f, "{sep}{}", self.key)?;
            sep = ": ";
        }
        write!(f, "{sep}{}", self.msg)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The compose model is invalid at a place in a file.
    #[error("{0}")]
    Invalid(Box<Diag>),
    /// A file or folder could not be read.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// No compose file was given and none was found.
    #[error(
        "no configuration file provided: not found (looked for compose.yaml, compose.yml, docker-compose.yaml \
         and docker-compose.yml in {} and its parents)",
        .0.display()
    )]
    NoConfigFile(PathBuf),
}

impl LoadError {
    /// An error at `pos` on key path `key`.
    pub fn at(pos: &Pos, key: impl Into<String>, msg: impl Into<String>) -> LoadError {
        LoadError::Invalid(Box::new(Diag { pos: pos.clone(), key: key.into(), msg: msg.into() }))
    }
    /// An error about the project as a whole (cycles, conflicts between services).
    pub fn project(msg: impl Into<String>) -> LoadError {
        LoadError::Invalid(Box::new(Diag { pos: Pos::default(), key: String::new(), msg: msg.into() }))
    }
    /// An error about a whole file.
    pub fn file(file: &Path, msg: impl Into<String>) -> LoadError {
        LoadError::at(&Pos::file_only(file), "", msg)
    }
    /// The diagnostic, when the error is about the model.
    pub fn diag(&self) -> Option<&Diag> {
        match self {
            LoadError::Invalid(d) => Some(d),
            _ => None,
        }
    }
}

pub type Result<T, E = LoadError> = std::result::Result<T, E>;
