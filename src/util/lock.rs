//! Advisory file locks (flock). A lock is released when its [`FileLock`] is dropped or the process
//! dies, so a crashed holder never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::fs::FsError;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("cannot lock {}", path.display())]
    Flock {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("{} is locked by another berth process; wait for it to finish and try again", path.display())]
    Busy { path: PathBuf },
}

/// A held flock on a file; released on drop.
#[derive(Debug)]
pub struct FileLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl FileLock {
    fn open(path: &Path) -> Result<File, LockError> {
        if let Some(parent) = path.parent() {
            super::fs::create_dir_all_mode(parent, 0o700)?;
        }
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| FsError::io("open lock file", path, e).into())
    }

    fn take(path: &Path, arg: FlockArg) -> Result<Self, LockError> {
        let file = Self::open(path)?;
        match Flock::lock(file, arg) {
            Ok(lock) => Ok(FileLock { _lock: lock, path: path.to_path_buf() }),
            Err((_, nix::Error::EWOULDBLOCK)) => Err(LockError::Busy { path: path.to_path_buf() }),
            Err((_, e)) => Err(LockError::Flock { path: path.to_path_buf(), source: e }),
        }
    }

    /// Waits for an exclusive lock on `path`, creating the file if needed.
    pub fn exclusive(path: &Path) -> Result<Self, LockError> {
        Self::take(path, FlockArg::LockExclusive)
    }

    /// Waits for a shared lock on `path`.
    pub fn shared(path: &Path) -> Result<Self, LockError> {
        Self::take(path, FlockArg::LockShared)
    }

    /// Takes an exclusive lock or fails at once with [`LockError::Busy`].
    pub fn try_exclusive(path: &Path) -> Result<Self, LockError> {
        Self::take(path, FlockArg::LockExclusiveNonblock)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_lock_excludes_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("locks/a.lock");
        let held = FileLock::exclusive(&p).unwrap();
        assert!(matches!(FileLock::try_exclusive(&p), Err(LockError::Busy { .. })));
        drop(held);
        FileLock::try_exclusive(&p).unwrap();
    }
}
