//! Which image each service of `up`, `create` and `run` runs, and where it comes from: the
//! per-service decision between the local copy and a pull, as compose makes it (`--pull`, the
//! service's `pull_policy`, whether it builds). Building is [`super::build::ensure_built`];
//! the CLI only carries out what this decides (it owns the progress display).
//!
//! Why here: the decision is compose's, not the CLI's, and the coming front ends (the Engine API
//! server, `berth container`) must make the same one.

use crate::engine::image::{Image, ImageError, ImageStore, PullPolicy, Reference};

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
