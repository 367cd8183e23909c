//! Which image each service of `up`, `create` and `run` runs, and where it comes from: the
//! per-service decision between the local copy and a pull, as compose makes it (`--pull`, the
//! service's `pull_policy`, whether it builds). Building is [`super::build::ensure_built`];
//! the CLI only carries out what this decides (it owns the progress display).
//!
//! Why here: the decision is compose's, not the CLI's, and the coming front ends (the Engine API
//! server, `berth container`) must make the same one.

use std::collections::BTreeMap;

use crate::engine::build::{BuildError, Printer};
use crate::engine::image::{Image, ImageError, ImageStore, Progress, PullItem, PullOptions, PullPolicy, Reference};

use super::model::Project;

/// `--pull`: `always`, `missing`, `never`, `build`, or each service's `pull_policy` (`Policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullMode {
    Always,
    Missing,
    Never,
    Build,
    #[default]
    Policy,
}

/// What a service that is not being built needs.
#[derive(Debug, Clone)]
pub enum Acquire {
    /// The local image, as it is (boxed: an image is large, a reference small).
    Present(Box<Image>),
    /// Pull this reference (a failed pull falls back on a local copy, as compose does).
    Pull(Reference),
}

/// Why a service's image cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    #[error("service {service}: pull_policy")]
    PullPolicy {
        service: String,
        #[source]
        source: ImageError,
    },
    #[error("service {service}: image")]
    Reference {
        service: String,
        #[source]
        source: ImageError,
    },
    #[error("service {service:?} has no image {image:?} and --no-build was given: run `berth build {service}` first")]
    NotBuilt { service: String, image: String },
    #[error("service {0:?} has pull_policy build but no build section: add one, or set another pull_policy")]
    BuildWithoutSection(String),
    #[error("service {service:?}: image {image} is not present and its pull policy is never: pull it with `berth pull {service}`")]
    NeverPulled { service: String, image: String },
    #[error("no such service: {0}")]
    NoSuchService(String),
    #[error("cannot build the project's images: fix the Dockerfile or the build section, then run `berth up` again")]
    Build(#[source] BuildError),
    #[error("service {service}: cannot pull {image}: check the name and the registry, or import the image with `berth image load`")]
    Pull {
        service: String,
        image: String,
        #[source]
        source: Box<ImageError>,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] ImageError),
}

/// The pull policy of `service` under `mode`.
pub fn pull_policy(p: &Project, service: &str, mode: PullMode) -> Result<PullPolicy, ImagesError> {
    Ok(match mode {
        PullMode::Always => PullPolicy::Always,
        PullMode::Missing => PullPolicy::Missing,
        PullMode::Never => PullPolicy::Never,
        PullMode::Build => PullPolicy::Build,
        PullMode::Policy => match p.services.get(service).and_then(|s| s.pull_policy.as_deref()) {
            Some(x) => {
                PullPolicy::parse(&x.replace('-', "_")).map_err(|source| ImagesError::PullPolicy { service: service.into(), source })?
            }
            None => PullPolicy::Missing,
        },
    })
}

/// Decides how service `name` (of `p`, not built by this command) gets its image: a service
/// with a `build:` section uses its built image and is never pulled; otherwise the pull policy
/// says whether the local copy (of the service's platform) does or a pull is needed.
pub fn decide(store: &ImageStore, p: &Project, name: &str, mode: PullMode) -> Result<Acquire, ImagesError> {
    let Some(s) = p.services.get(name) else { return Err(ImagesError::NoSuchService(name.into())) };
    let image = super::naming::service_image_name(p, s);
    let policy = pull_policy(p, name, mode)?;
    if s.build.is_some() {
        return match store.resolve(&image)? {
            Some(i) => Ok(Acquire::Present(Box::new(i))),
            None => Err(ImagesError::NotBuilt { service: name.into(), image }),
        };
    }
    if policy == PullPolicy::Build {
        return Err(ImagesError::BuildWithoutSection(name.into()));
    }
    let present = store.resolve(&image)?.filter(|i| super::convert::platform_matches(s, i));
    match (policy, present) {
        (PullPolicy::Always, _) | (PullPolicy::Missing, None) => {
            Ok(Acquire::Pull(Reference::parse(&image).map_err(|source| ImagesError::Reference { service: name.into(), source })?))
        }
        (PullPolicy::Never | PullPolicy::Build, None) => Err(ImagesError::NeverPulled { service: name.into(), image }),
        (_, Some(i)) => Ok(Acquire::Present(Box::new(i))),
    }
}

/// How [`acquire`] gets the images of `up`, `create`, `run` and `watch`.
#[derive(Debug, Clone, Default)]
pub struct AcquireOptions {
    pub pull: PullMode,
    /// `--build`: build every service that has a `build:` section.
    pub build: bool,
    /// `--no-build`: never build (a missing image is an error).
    pub no_build: bool,
    pub insecure_registries: Vec<String>,
}

/// The images of `services`: built (with `--build`, `pull_policy: build`, or a `build:` section
/// and no image yet; `printer` shows the builds), then each other one as [`decide`] says, the
/// pulls at once (`progress` shows them). A pull that fails while an older copy is present keeps
/// the copy, as compose does, and says so through `warn`.
pub fn acquire(
    store: &ImageStore,
    p: &Project,
    services: &[String],
    o: &AcquireOptions,
    printer: &mut Printer,
    progress: &Progress,
    warn: &dyn Fn(&str),
) -> Result<BTreeMap<String, Image>, ImagesError> {
    let mut out = BTreeMap::new();
    if !o.no_build && services.iter().any(|s| p.services.get(s).is_some_and(|s| s.build.is_some())) {
        let opts = super::build::ProjectBuildOptions { insecure_registries: o.insecure_registries.clone(), ..Default::default() };
        let built = super::build::ensure_built(store, p, services, o.build, &opts, printer).map_err(ImagesError::Build)?;
        for (name, id) in built {
            if let Some(i) = store.get(&id)? {
                out.insert(name, i);
            }
        }
    }
    let mut to_pull: Vec<(String, Reference)> = Vec::new();
    for name in services {
        if out.contains_key(name) {
            continue;
        }
        match decide(store, p, name, o.pull)? {
            Acquire::Present(i) => {
                out.insert(name.clone(), *i);
            }
            Acquire::Pull(r) => to_pull.push((name.clone(), r)),
        }
    }
    if to_pull.is_empty() {
        return Ok(out);
    }
    let items: Vec<PullItem> = to_pull
        .iter()
        .map(|(n, r)| PullItem {
            label: n.clone(),
            reference: r.clone(),
            platform: p.services.get(n).and_then(|s| super::convert::service_platform(s).ok().flatten()),
        })
        .collect();
    let opts = PullOptions { insecure_registries: o.insecure_registries.clone(), ..PullOptions::default() };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let results = rt.block_on(crate::engine::image::pull_many(store, &items, &opts, progress));
    for ((name, r), res) in to_pull.into_iter().zip(results) {
        match res {
            Ok(i) => {
                out.insert(name, i);
            }
            Err(e) => match store.resolve(&r.to_string())? {
                Some(i) => {
                    warn(&format!("service {name} failed to pull {}: {e}; using the local image", r.familiar()));
                    out.insert(name, i);
                }
                None => return Err(ImagesError::Pull { service: name, image: r.familiar(), source: Box::new(e) }),
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateRoot;

    fn project(yaml: &str) -> (tempfile::TempDir, Project) {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("compose.yaml");
        std::fs::write(&f, yaml).unwrap();
        let o = crate::project::LoadOptions { files: vec![f], interpolate: true, ..Default::default() };
        let p = crate::project::load(&o).unwrap();
        (d, p)
    }

    #[test]
    fn decisions_follow_the_pull_policy_and_the_build_section() {
        let (d, p) = project(
            "name: arch-images
services:
  plain: {image: 'busybox:1'}
  never: {image: 'nosuch:1', pull_policy: never}
  built: {build: .}
  policy_build: {image: x, pull_policy: build}
",
        );
        let root = StateRoot::new(d.path().join("root"));
        root.ensure().unwrap();
        let store = ImageStore::open(&root).unwrap();
        // Absent: pulled under missing (the default) and always, refused under never.
        assert!(matches!(decide(&store, &p, "plain", PullMode::Policy).unwrap(), Acquire::Pull(r) if r.familiar() == "busybox:1"));
        assert!(matches!(decide(&store, &p, "plain", PullMode::Always).unwrap(), Acquire::Pull(_)));
        let e = decide(&store, &p, "never", PullMode::Policy).unwrap_err().to_string();
        assert_eq!(e, "service \"never\": image nosuch:1 is not present and its pull policy is never: pull it with `berth pull never`");
        assert!(matches!(decide(&store, &p, "never", PullMode::Always).unwrap(), Acquire::Pull(_)), "--pull overrides");
        // A service that builds is never pulled.
        let e = decide(&store, &p, "built", PullMode::Always).unwrap_err().to_string();
        assert!(e.starts_with("service \"built\" has no image \"arch-images-built\""), "{e}");
        let e = decide(&store, &p, "policy_build", PullMode::Policy).unwrap_err().to_string();
        assert!(e.contains("has pull_policy build but no build section"), "{e}");
        assert!(matches!(decide(&store, &p, "nope", PullMode::Policy), Err(ImagesError::NoSuchService(_))));
    }
}
