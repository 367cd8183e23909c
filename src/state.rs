//! The state root (`--root`, `BERTH_ROOT`, default `/var/lib/berth`) and its layout.
//!
//! ```text
//! <root>/                 0700: nothing under it is reachable by unprivileged host users
//!   images/               engine::image: blobs, image records, unpacked layers
//!   containers/<id>/      engine::runtime and the supervisor: config, state, logs, rw layer
//!   volumes/<name>/       named and anonymous volumes (volume.json, _data/)
//!   networks/<name>/      net: network.json, IPAM allocations
//!   build/                engine::build: the step cache, content hashes, cache mounts
//!   dns/                  the embedded resolver's pid file and socket
//!   events/               the container event journal (`berth events`)
//!   projects/             one lock file per compose project
//!   locks/                other named locks
//!   tmp/                  scratch on the same filesystem, so that renames are atomic
//! ```
//! Each module owns its subtree; files are written with [`crate::util::fs::write_atomic`].

use std::path::{Path, PathBuf};

use crate::util::fs::{FsError, create_dir_all_mode};
use crate::util::lock::{FileLock, LockError};

/// The default state root.
pub const DEFAULT_ROOT: &str = "/var/lib/berth";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRoot {
    root: PathBuf,
}

impl StateRoot {
    /// A state root at `root`. Nothing is created until [`StateRoot::ensure`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        // Relative roots are resolved once so that supervisors started in another cwd agree.
        let root = if root.is_relative() { std::env::current_dir().map(|d| d.join(&root)).unwrap_or(root) } else { root };
        StateRoot { root }
    }

    /// Creates the root and its top-level folders (mode 0700) if missing.
    pub fn ensure(&self) -> Result<(), FsError> {
        create_dir_all_mode(&self.root, 0o700)?;
        for sub in ["images", "containers", "volumes", "networks", "dns", "projects", "locks", "tmp"] {
            create_dir_all_mode(&self.root.join(sub), 0o700)?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.root
    }
    pub fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }
    pub fn volumes_dir(&self) -> PathBuf {
        self.root.join("volumes")
    }
    pub fn networks_dir(&self) -> PathBuf {
        self.root.join("networks")
    }
    pub fn dns_dir(&self) -> PathBuf {
        self.root.join("dns")
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The lock that serializes every change to one compose project.
    pub fn lock_project(&self, project: &str) -> Result<FileLock, LockError> {
        FileLock::exclusive(&self.root.join("projects").join(format!("{project}.lock")))
    }

    /// A named lock under `locks/` (e.g. `"networks"`, `"ipam"`).
    pub fn lock(&self, name: &str) -> Result<FileLock, LockError> {
        FileLock::exclusive(&self.root.join("locks").join(format!("{name}.lock")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn ensure_creates_private_layout() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::new(dir.path().join("r"));
        root.ensure().unwrap();
        let mode = std::fs::metadata(root.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(root.containers_dir().is_dir());
        let _l = root.lock_project("demo").unwrap();
    }
}
