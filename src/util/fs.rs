//! Atomic file writes: a temp file in the same directory, fsync, rename. A reader sees the old
//! content or the new one, never a torn file, whatever happens to the writer.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// An I/O error with the path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("cannot {op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} holds invalid JSON; remove it or restore it from a backup", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl FsError {
    pub fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        FsError::Io { op, path: path.to_path_buf(), source }
    }
    /// True when the error is "the file does not exist".
    pub fn is_not_found(&self) -> bool {
        matches!(self, FsError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// The temp file name used for `path` while it is written; starts with a dot so that directory
/// scans can skip it, and holds the pid so that a crashed writer's leftovers are recognisable.
fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let rnd: u32 = rand::random();
    path.with_file_name(format!(".{name}.tmp-{}-{rnd:08x}", std::process::id()))
}

/// Writes `data` to `path` atomically with mode `mode`: temp file, fsync, rename.
pub fn write_atomic_mode(path: &Path, data: &[u8], mode: u32) -> Result<(), FsError> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).map_err(|e| FsError::io("create", &tmp, e))?;
        f.write_all(data).map_err(|e| FsError::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| FsError::io("sync", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| FsError::io("rename into place", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `data` to `path` atomically, mode 0644.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), FsError> {
    write_atomic_mode(path, data, 0o644)
}

/// Serializes `value` as pretty JSON and writes it atomically.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), FsError> {
    let mut data = serde_json::to_vec_pretty(value).map_err(|e| FsError::Json { path: path.into(), source: e })?;
    data.push(b'\n');
    write_atomic(path, &data)
}

/// Reads JSON from `path`; `Ok(None)` when the file does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, FsError> {
    match fs::read(path) {
        Ok(data) => serde_json::from_slice(&data).map(Some).map_err(|e| FsError::Json { path: path.into(), source: e }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FsError::io("read", path, e)),
    }
}

/// Creates `dir` and its parents with mode `mode` for the ones it creates.
pub fn create_dir_all_mode(dir: &Path, mode: u32) -> Result<(), FsError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(mode).create(dir).map_err(|e| FsError::io("create directory", dir, e))
}

/// Opens `path` for reading, with the path in the error.
pub fn open(path: &Path) -> Result<File, FsError> {
    File::open(path).map_err(|e| FsError::io("open", path, e))
}

/// Removes a directory tree; a missing one is not an error.
pub fn remove_dir_all_if_exists(dir: &Path) -> Result<(), FsError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FsError::io("remove", dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_json(&p, &serde_json::json!({"a": 1})).unwrap();
        write_json(&p, &serde_json::json!({"a": 2})).unwrap();
        let v: serde_json::Value = read_json(&p).unwrap().unwrap();
        assert_eq!(v["a"], 2);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn read_missing_is_none_and_garbage_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        assert!(read_json::<serde_json::Value>(&p).unwrap().is_none());
        fs::write(&p, b"{trunc").unwrap();
        let err = read_json::<serde_json::Value>(&p).unwrap_err();
        assert!(err.to_string().contains("x.json"), "{err}");
    }
}
