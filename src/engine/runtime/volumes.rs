//! Named and anonymous volumes under `volumes/<name>/`: `volume.json` (labels, driver, options,
//! created) and `_data/`, as Docker's local driver keeps them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::state::StateRoot;
use crate::util::fs::{FsError, create_dir_all_mode, read_json, remove_dir_all_if_exists, write_json};

/// The label Docker puts on anonymous volumes.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error(
        "{0:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. \
         If you intended to pass a host directory, use absolute path"
    )]
    InvalidName(String),
    #[error("create {0}: volume name is too short, names should be at least two alphanumeric characters")]
    TooShort(String),
    #[error("no such volume: {0}")]
    NotFound(String),
    #[error("remove {name}: volume is in use - [{}]", users.join(", "))]
    InUse { name: String, users: Vec<String> },
    #[error("volume {name}: the local driver does not support {what}; use type=none with o=bind and device=<path>, or type=tmpfs")]
    Unsupported { name: String, what: String },
    #[error("volume {name}: the bind device {} does not exist; create it first", device.display())]
    NoDevice { name: String, device: PathBuf },
    #[error("volume driver {0:?} is not available: berth only has the local driver")]
    Driver(String),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Lock(#[from] crate::util::lock::LockError),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Volume {
    pub created_at: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub mountpoint: String,
    pub name: String,
    pub options: BTreeMap<String, String>,
    pub scope: String,
}

impl Volume {
    pub fn is_anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
}

/// What a volume gives a mount: a host directory to bind, or a fresh tmpfs.
#[derive(Debug, Clone, PartialEq)]
pub enum VolumeSource {
    Dir(PathBuf),
    Tmpfs { size: Option<u64>, mode: Option<u32> },
}

pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphanumeric() && b[1..].iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn dir(root: &StateRoot, name: &str) -> PathBuf {
    root.volumes_dir().join(name)
}

pub fn data_dir(root: &StateRoot, name: &str) -> PathBuf {
    dir(root, name).join("_data")
}

/// Reads a volume; None when it does not exist.
pub fn get(root: &StateRoot, name: &str) -> Result<Option<Volume>, VolumeError> {
    if !valid_name(name) {
        return Ok(None);
    }
    Ok(read_json::<Volume>(&dir(root, name).join("volume.json"))?)
}

/// Creates a volume (or returns the existing one of that name, as Docker does). `name` None
/// makes an anonymous volume with a random 64-hex name.
pub fn create(
    root: &StateRoot,
    name: Option<&str>,
    driver: &str,
    labels: BTreeMap<String, String>,
    options: BTreeMap<String, String>,
) -> Result<Volume, VolumeError> {
    if !driver.is_empty() && driver != "local" {
        return Err(VolumeError::Driver(driver.into()));
    }
    let (name, labels) = match name {
        Some(n) => (n.to_string(), labels),
        None => {
            let mut l = labels;
            l.insert(ANONYMOUS_LABEL.into(), String::new());
            (crate::util::id::new_id(), l)
        }
    };
    if name.len() < 2 && name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(VolumeError::TooShort(name));
    }
    if !valid_name(&name) {
        return Err(VolumeError::InvalidName(name));
    }
    check_options(&name, &options)?;
    root.ensure()?;
    let _lock = root.lock("volumes")?;
    if let Some(v) = get(root, &name)? {
        return Ok(v);
    }
    let d = dir(root, &name);
    create_dir_all_mode(&d, 0o701)?;
    let data = d.join("_data");
    match std::fs::create_dir(&data) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(FsError::io("create", &data, e).into()),
    }
    // Like Docker's: the data directory is world-traversable so non-root container users can use it.
    let _ = std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o755));
    let v = Volume {
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        driver: "local".into(),
        labels,
        mountpoint: data.display().to_string(),
        name,
        options,
        scope: "local".into(),
    };
    write_json(&d.join("volume.json"), &v)?;
    Ok(v)
}

fn check_options(name: &str, o: &BTreeMap<String, String>) -> Result<(), VolumeError> {
    if o.is_empty() {
        return Ok(());
    }
    let t = o.get("type").map(|s| s.as_str()).unwrap_or("");
    let opts = o.get("o").map(|s| s.as_str()).unwrap_or("");
    let is_bind = opts.split(',').any(|x| x == "bind" || x == "rbind");
    match t {
        "none" | "" if is_bind => {
            if o.get("device").is_none_or(|d| !d.starts_with('/')) {
                return Err(VolumeError::Unsupported { name: name.into(), what: "a bind without an absolute device".into() });
            }
            Ok(())
        }
        "tmpfs" => Ok(()),
        other => Err(VolumeError::Unsupported { name: name.into(), what: format!("type={other:?} o={opts:?}") }),
    }
}

/// Where a mount of this volume comes from.
pub fn source(root: &StateRoot, v: &Volume) -> Result<VolumeSource, VolumeError> {
    let t = v.options.get("type").map(|s| s.as_str()).unwrap_or("");
    if t == "tmpfs" {
        let mut size = None;
        let mut mode = None;
        for part in v.options.get("o").map(|s| s.as_str()).unwrap_or("").split(',') {
            if let Some(s) = part.strip_prefix("size=") {
                size = crate::engine::runtime::spec::parse_size(s);
            } else if let Some(m) = part.strip_prefix("mode=") {
                mode = u32::from_str_radix(m, 8).ok();
            }
        }
        return Ok(VolumeSource::Tmpfs { size, mode });
    }
    if let Some(dev) = v.options.get("device").filter(|_| !v.options.is_empty()) {
        let p = PathBuf::from(dev);
        if !p.exists() {
            return Err(VolumeError::NoDevice { name: v.name.clone(), device: p });
        }
        return Ok(VolumeSource::Dir(p));
    }
    Ok(VolumeSource::Dir(data_dir(root, &v.name)))
}

/// Every volume of the root, sorted by name.
pub fn list(root: &StateRoot) -> Result<Vec<Volume>, VolumeError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(root.volumes_dir()) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(FsError::io("read", &root.volumes_dir(), e).into()),
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Ok(Some(v)) = get(root, &name) {
            out.push(v);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The containers (ids) whose config mounts volume `name`.
pub fn users(root: &StateRoot, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for c in super::ops::list_configs(root) {
        if c.mounts.iter().any(|m| m.kind == super::spec::MountType::Volume && m.source == name) {
            out.push(c.id.clone());
        }
    }
    out
}

/// Removes a volume; refuses while a container uses it (even with `force`, as Docker).
pub fn remove(root: &StateRoot, name: &str, force: bool) -> Result<(), VolumeError> {
    let _lock = root.lock("volumes")?;
    if get(root, name)?.is_none() {
        if force {
            return Ok(());
        }
        return Err(VolumeError::NotFound(name.into()));
    }
    let users = users(root, name);
    if !users.is_empty() {
        return Err(VolumeError::InUse { name: name.into(), users });
    }
    remove_dir_all_if_exists(&dir(root, name))?;
    Ok(())
}

/// The size of a directory tree, for `volume inspect`-like reports (best effort).
pub fn du(p: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else { return 0 };
    if !md.is_dir() {
        return md.len();
    }
    std::fs::read_dir(p).map(|rd| rd.flatten().map(|e| du(&e.path())).sum()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker() {
        assert!(valid_name("db-data"));
        assert!(valid_name("a.b_c"));
        assert!(!valid_name("x"));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a/b"));
    }

    #[test]
    fn create_is_idempotent_and_rm_removes() {
        let tmp = tempfile::tempdir().unwrap();
        let root = StateRoot::new(tmp.path());
        let mut labels = BTreeMap::new();
        labels.insert("a".into(), "b".into());
        let v = create(&root, Some("data"), "", labels.clone(), BTreeMap::new()).unwrap();
        assert_eq!(v.labels, labels);
        assert!(data_dir(&root, "data").is_dir());
        let again = create(&root, Some("data"), "local", BTreeMap::new(), BTreeMap::new()).unwrap();
        assert_eq!(again, v);
        let anon = create(&root, None, "", BTreeMap::new(), BTreeMap::new()).unwrap();
        assert!(anon.is_anonymous() && anon.name.len() == 64);
        assert_eq!(list(&root).unwrap().len(), 2);
        remove(&root, "data", false).unwrap();
        assert!(matches!(remove(&root, "data", false), Err(VolumeError::NotFound(_))));
        remove(&root, "data", true).unwrap();
        assert!(create(&root, Some("x/y"), "", BTreeMap::new(), BTreeMap::new()).is_err());
        assert!(create(&root, Some("nfs1"), "", BTreeMap::new(), [("type".to_string(), "nfs".to_string())].into()).is_err());
    }
}
