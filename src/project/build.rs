//! Building the images of a compose project: the `build:` section of each service becomes a
//! [`BuildRequest`] for the engine's builder, named as Docker Compose names it (`image:` if
//! given, else `<project>-<service>`, plus `build.tags`), with compose's labels on the image;
//! services build in parallel in `depends_on` order. The builder itself knows nothing of compose.

use std::collections::{BTreeMap, BTreeSet};

use super::Project;
use super::model::Service;
use crate::engine::build::{BuildError, BuildRequest, DockerfileSource, Printer, Result, build};
use crate::engine::image::{Digest, ImageStore, Reference};

/// What `berth build` (or `up --build`) asks of a project build.
#[derive(Clone, Debug, Default)]
pub struct ProjectBuildOptions {
    /// `--no-cache`: build every step again.
    pub no_cache: bool,
    /// `--pull`: pull base images even when present.
    pub pull: bool,
    /// `--build-arg`s, over the services' `build.args`.
    pub build_args: BTreeMap<String, String>,
    pub insecure_registries: Vec<String>,
    /// `--memory`: the memory limit of RUN containers, in bytes.
    pub memory: Option<i64>,
}

/// The build request for service `svc` (which must have a `build:` section).
pub fn request(project: &Project, svc: &Service, opts: &ProjectBuildOptions) -> Result<BuildRequest> {
    let service = svc.name.clone();
    let bad = |msg: String| BuildError::Service { service: service.clone(), msg };
    let b = svc.build.as_ref().ok_or_else(|| bad("it has no build section".into()))?;
    let ctx = if b.context.is_empty() { ".".to_string() } else { b.context.clone() };
    if ctx.contains("://") || ctx.starts_with("git@") {
        return Err(bad(format!(
            "build.context {ctx}: berth builds from a local directory only; clone the repository and point the context at it"
        )));
    }
    let context = if std::path::Path::new(&ctx).is_absolute() { ctx.clone().into() } else { project.working_dir.join(&ctx) };
    let mut req = BuildRequest::new(context);
    req.dockerfile = match (&b.dockerfile_inline, &b.dockerfile) {
        (Some(text), _) => DockerfileSource::Inline(text.clone()),
        (None, Some(f)) if !f.is_empty() => DockerfileSource::Path(f.into()),
        _ => DockerfileSource::Path("Dockerfile".into()),
    };
    for (k, v) in &b.args {
        match v {
            Some(v) => {
                req.args.insert(k.clone(), v.clone());
            }
            None => {
                if let Some(v) = project.environment.get(k) {
                    req.args.insert(k.clone(), v.clone());
                }
            }
        }
    }
    for (k, v) in &opts.build_args {
        req.args.insert(k.clone(), v.clone());
    }
    req.target = b.target.clone().filter(|t| !t.is_empty());
    req.labels = b.labels.clone();
    crate::labels::strip_reserved(&mut req.labels);
    req.labels.insert(crate::labels::PROJECT.into(), project.name.clone());
    req.labels.insert(crate::labels::SERVICE.into(), svc.name.clone());
    req.labels.insert(crate::labels::VERSION.into(), crate::labels::COMPOSE_VERSION.into());
    let name = super::naming::service_image_name(project, svc);
    let mut tags = vec![Reference::parse(&name).map_err(|e| bad(format!("image name {name:?}: {e}")))?];
    for t in &b.tags {
        let r = Reference::parse(t).map_err(|e| bad(format!("build.tags {t:?}: {e}")))?;
        if !tags.contains(&r) {
            tags.push(r);
        }
    }
    req.tags = tags;
    req.network = match b.network.as_deref() {
        None | Some("") | Some("default") | Some("bridge") => None,
        Some("host") => Some("host".into()),
        Some("none") => Some("none".into()),
        Some(other) => {
            return Err(bad(format!(
                "build.network {other}: berth builds on the default build network, host or none; other networks are not supported"
            )));
        }
    };
    req.no_cache = opts.no_cache || b.no_cache;
    req.pull = opts.pull || b.pull;
    req.label = Some(svc.name.clone());
    req.insecure_registries = opts.insecure_registries.clone();
    req.memory = opts.memory;
    req.shm_size = (!b.shm_size.is_zero()).then_some(b.shm_size.0.max(0) as u64);
    req.extra_hosts = b.extra_hosts.clone();
    // Build secrets: the top-level secret named by `source`, exposed under `target` (or its name).
    for m in &b.secrets {
        let obj = project
            .secrets
            .get(&m.source)
            .ok_or_else(|| bad(format!("build.secrets: secret {:?} is not defined in the top-level secrets", m.source)))?;
        let value = if let Some(f) = &obj.file {
            let path = if std::path::Path::new(f).is_absolute() { f.into() } else { project.working_dir.join(f) };
            std::fs::read(&path).map_err(|e| bad(format!("build.secrets: cannot read {} for secret {}: {e}", path.display(), m.source)))?
        } else if let Some(var) = &obj.environment {
            project.environment.get(var).cloned().or_else(|| std::env::var(var).ok()).unwrap_or_default().into_bytes()
        } else if let Some(c) = &obj.content {
            c.clone().into_bytes()
        } else {
            return Err(bad(format!("build.secrets: secret {:?} has no file, environment or content berth can read", m.source)));
        };
        req.secrets.insert(m.target.clone().unwrap_or_else(|| m.source.clone()), value);
    }
    Ok(req)
}

/// Builds `services` (those with a `build:` section; the others are skipped) and returns each
/// built service's image id. Independent services build at once, as Docker Compose builds them
/// (at most [`parallel_limit`] at a time); a service whose `depends_on` (transitively) names
/// another one being built waits for it. After a failure no other build starts; those running
/// finish, and the first error is returned.
pub fn build_services(
    store: &ImageStore,
    project: &Project,
    services: &[String],
    opts: &ProjectBuildOptions,
    out: &mut Printer,
) -> Result<BTreeMap<String, Digest>> {
    let mut jobs = Vec::new();
    for name in services {
        let svc = project.services.get(name).ok_or_else(|| BuildError::Service { service: name.clone(), msg: "no such service".into() })?;
        if svc.build.is_none() || jobs.iter().any(|(n, _)| n == name) {
            continue;
        }
        jobs.push((name.clone(), request(project, svc, opts)?));
    }
    let limit = parallel_limit().min(jobs.len());
    if limit <= 1 {
        let mut ids = BTreeMap::new();
        for (name, req) in jobs {
            let outcome = build(store, &req, out).map_err(|e| BuildError::ServiceFailed { service: name.clone(), source: Box::new(e) })?;
            out.line(&format!(" {name}  Built"));
            ids.insert(name, outcome.image.id);
        }
        return Ok(ids);
    }
    let deps = build_dependencies(project, &jobs);
    crate::engine::build::build_parallel(store, jobs, &deps, limit, out)
}

/// How many builds run at once: `COMPOSE_PARALLEL_LIMIT` if set, else the number of CPUs (at
/// least 2).
pub(crate) fn parallel_limit() -> usize {
    if let Some(n) = std::env::var("COMPOSE_PARALLEL_LIMIT").ok().and_then(|v| v.trim().parse::<usize>().ok()).filter(|n| *n > 0) {
        return n;
    }
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(2)
}

/// For each job, the other jobs it must wait for: those among its `depends_on`, followed through
/// services that are not built.
fn build_dependencies(project: &Project, jobs: &[(String, BuildRequest)]) -> BTreeMap<String, BTreeSet<String>> {
    let building: BTreeSet<&str> = jobs.iter().map(|(n, _)| n.as_str()).collect();
    let graph = super::DepGraph::from_project(project);
    let mut out = BTreeMap::new();
    for (name, _) in jobs {
        let wait = graph.closure(std::slice::from_ref(name)).into_iter().filter(|d| d != name && building.contains(d.as_str())).collect();
        out.insert(name.clone(), wait);
    }
    out
}

/// For `up`, `create` and `run`: builds the services among `services` that need it — all that
/// have a `build:` section with `force` (`--build`), those with `pull_policy: build`, and those
/// whose image is not in the store — and returns their image ids.
pub fn ensure_built(
    store: &ImageStore,
    project: &Project,
    services: &[String],
    force: bool,
    opts: &ProjectBuildOptions,
    out: &mut Printer,
) -> Result<BTreeMap<String, Digest>> {
    let mut wanted = Vec::new();
    for name in services {
        let Some(svc) = project.services.get(name) else { continue };
        if svc.build.is_none() {
            continue;
        }
        let policy_build = svc.pull_policy.as_deref() == Some("build");
        let present = store.resolve(&super::naming::service_image_name(project, svc))?.is_some();
        if force || policy_build || !present {
            wanted.push(name.clone());
        }
    }
    build_services(store, project, &wanted, opts, out)
}
