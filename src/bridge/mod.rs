//! `bridge convert`: a compose project as Kubernetes manifests or a Helm chart, for a project that
//! outgrows one machine.
//!
//! Docker Compose does this by running transformer images pulled from Docker Hub
//! (`docker/compose-bridge-kubernetes`, `docker/compose-bridge-helm`: Go templates over the
//! project's YAML). berth has the same two transformations built in, offline and typed: [`kube`]
//! maps the loaded [`Project`] to k8s-openapi objects and says, in a [`Diagnostic`] naming the
//! service and the key, what Kubernetes cannot express; [`render`] lays them out as compose-bridge
//! does (file names, Kustomize tree, Helm chart), and [`yaml`] writes each file in compose-bridge's
//! layout, so that the output of compose's own end-to-end fixture is byte for byte compose's. The
//! mapping, key by key, is in docs/kubernetes.md.
//!
//! Nothing here runs a container or talks to a cluster: [`convert`] is a pure function of the
//! project (plus the files its secrets and configs name), [`write`] replaces the output folder as a
//! whole, and only after everything converted.

pub mod kube;
pub mod names;
pub mod render;
pub mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::project::Project;
use crate::state::StateRoot;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use crate::util::fs::{FsError, create_dir_all_mode};

pub use render::File;

/// A transformation: what `--transformation` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transformation {
    /// A Kustomize tree: `base/` and `overlays/desktop/`.
    Kubernetes,
    /// A Helm chart: `Chart.yaml`, `values.yaml`, `templates/`.
    Helm,
}

impl FromStr for Transformation {
    type Err = BridgeError;

    /// `kubernetes` or `helm`, or the names of compose's transformer images
    /// (`docker/compose-bridge-kubernetes[:TAG]`, `docker/compose-bridge-helm[:TAG]`).
    fn from_str(s: &str) -> Result<Self, BridgeError> {
        let image = s.split_once(':').map(|(n, _)| n).unwrap_or(s);
        match image {
            "kubernetes" | "docker/compose-bridge-kubernetes" => Ok(Transformation::Kubernetes),
            "helm" | "docker/compose-bridge-helm" => Ok(Transformation::Helm),
            _ => Err(BridgeError::UnknownTransformation(s.to_string())),
        }
    }
}

/// How to convert.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The namespace of every object (default: the project name).
    pub namespace: Option<String>,
    /// Write bind mounts as hostPath volumes (else they are left out, with a warning).
    pub allow_host_path: bool,
    /// Fail, writing nothing, when anything converts with a warning.
    pub strict: bool,
    /// The ports each service's image exposes (`EXPOSE`), when the caller knows them, by service.
    pub image_ports: BTreeMap<String, Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something of the project is left out or behaves differently in Kubernetes.
    Warning,
    /// Converted, with something the user should know or do.
    Note,
}

/// What a conversion says about one key of the project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub level: Level,
    /// The service, for a service's key.
    pub service: Option<String>,
    /// The compose key (`volumes`, `depends_on.db`, `secrets.token`).
    pub key: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.service {
            Some(s) => write!(f, "service {s:?}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// The files of a conversion, and what it has to say.
#[derive(Clone, Debug)]
pub struct Output {
    /// Sorted by path, relative to the output folder.
    pub files: Vec<File>,
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("unknown transformation {0:?}: use kubernetes or helm (or docker/compose-bridge-kubernetes, docker/compose-bridge-helm)")]
    UnknownTransformation(String),
    #[error("cannot read the file of {what} ({path})")]
    Read {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{kind} {name:?}: environment variable {variable:?} is not set: set it, or give the {kind} a file: or content: instead")]
    UnsetVariable { kind: String, name: String, variable: String },
    #[error("cannot serialize a Kubernetes object: {0}")]
    Serialize(String),
    #[error(
        "--strict: {} warning(s), nothing written:\n{}\nfix them in the compose file, or convert without --strict",
        .0.len(),
        .0.iter().map(|d| format!("  {d}")).collect::<Vec<_>>().join("\n")
    )]
    Strict(Vec<Diagnostic>),
    #[error("cannot write the output to {}: {message}", path.display())]
    Output { path: PathBuf, message: String },
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// Converts `project` with each transformation (into one tree, as compose does with several).
pub fn convert(project: &Project, transformations: &[Transformation], opts: &Options) -> Result<Output, BridgeError> {
    let converted = kube::convert(project, opts)?;
    let mut files: Vec<File> = Vec::new();
    for t in transformations {
        let more = match t {
            Transformation::Kubernetes => render::kubernetes(&converted)?,
            Transformation::Helm => render::helm(&converted)?,
        };
        for f in more {
            if !files.iter().any(|g| g.path == f.path) {
                files.push(f);
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut diagnostics = converted.diagnostics;
    diagnostics.sort_by(|a, b| (&a.service, a.level).cmp(&(&b.service, b.level)));
    if opts.strict && diagnostics.iter().any(|d| d.level == Level::Warning) {
        return Err(BridgeError::Strict(diagnostics.into_iter().filter(|d| d.level == Level::Warning).collect()));
    }
    Ok(Output { files, diagnostics })
}

/// The ports the images of `project`'s services expose, for the images already in `root`'s store
/// (none is pulled): compose adds them to each service's `expose`.
pub fn local_image_ports(root: &StateRoot, project: &Project) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    if !root.images_dir().join("records").is_dir() {
        return out;
    }
    let Ok(store) = crate::engine::image::store::ImageStore::open(root) else {
        return out;
    };
    for (service, image) in project.images() {
        let Ok(Some(img)) = store.resolve(&image) else { continue };
        let ports: Vec<String> =
            img.raw_config["config"]["ExposedPorts"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        if !ports.is_empty() {
            out.insert(service, ports);
        }
    }
    out
}

/// Writes `files` as the folder `dir`, replacing what a previous conversion wrote there. Refuses a
/// folder that holds anything else than YAML files, or that holds one of `protect` (the project's
/// own folder and files), so that `-o .` never deletes a project. The new tree is written beside
/// `dir` and renamed into place, so that a failure leaves the old output whole.
pub fn write(files: &[File], dir: &Path, protect: &[PathBuf]) -> Result<(), BridgeError> {
    let refuse = |message: String| BridgeError::Output { path: dir.to_path_buf(), message };
    let abs = std::path::absolute(dir).map_err(|e| refuse(e.to_string()))?;
    let abs = normalize(&abs);
    for p in protect {
        let p = normalize(&std::path::absolute(p).unwrap_or_else(|_| p.clone()));
        if p.starts_with(&abs) {
            return Err(refuse(format!("it holds the project ({}): choose another --output folder", p.display())));
        }
    }
    match std::fs::symlink_metadata(&abs) {
        Ok(m) if !m.is_dir() => return Err(refuse("it exists and is not a folder".into())),
        Ok(_) => check_replaceable(&abs).map_err(refuse)?,
        Err(_) => {}
    }
    let parent = abs.parent().ok_or_else(|| refuse("it has no parent folder".into()))?;
    let name = abs.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    create_dir_all_mode(parent, 0o755)?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = (|| -> Result<(), BridgeError> {
        create_dir_all_mode(&tmp, 0o755)?;
        for f in files {
            let path = tmp.join(&f.path);
            if let Some(d) = path.parent() {
                create_dir_all_mode(d, 0o755)?;
            }
            // Owner only: the Secrets are in there. No fsync: the output is made again at will, and
            // the rename below shows it whole or not at all.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| FsError::io("create", &path, e))?;
            file.write_all(f.text.as_bytes()).map_err(|e| FsError::io("write", &path, e))?;
        }
        let had_old = abs.exists();
        if had_old {
            std::fs::rename(&abs, &old).map_err(|e| refuse(format!("cannot move the previous output aside: {e}")))?;
        }
        if let Err(e) = std::fs::rename(&tmp, &abs) {
            if had_old {
                let _ = std::fs::rename(&old, &abs);
            }
            return Err(refuse(format!("cannot move the new output into place: {e}")));
        }
        if had_old {
            let _ = std::fs::remove_dir_all(&old);
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// `a/./b/../c` as `a/c`, without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// An existing output folder may be replaced when it holds only folders and YAML files.
fn check_replaceable(dir: &Path) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read it: {e}"))?;
    for e in entries {
        let e = e.map_err(|e| format!("cannot read it: {e}"))?;
        let path = e.path();
        let kind = e.file_type().map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if kind.is_dir() {
            check_replaceable(&path)?;
        } else if !(kind.is_file() && path.extension().is_some_and(|x| x == "yaml" || x == "yml")) {
            return Err(format!(
                "it holds {}, which `bridge convert` does not write: choose another --output folder, or remove it",
                path.display()
            ));
        }
    }
    Ok(())
}
