//! What the commands that change a project share: finding the project (from the file, or from
//! labels with `-p` and no file), its lock, its images, Ctrl-C, running a plan with progress, and
//! reporting every error with what to do next.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::bail;

use crate::cli::GlobalOpts;
use crate::cli::progress::{self, Progress};
use crate::engine::image::{Image, ImageStore};
use crate::project::Project;
use crate::project::engine::RealEngine;
use crate::project::execute::{self, Context, ExecError, Report, WaitKind};
use crate::project::images::{self, PullMode};
use crate::project::observe::{self, Observed};
use crate::project::plan::{Desired, Plan};
use crate::state::StateRoot;
use crate::util::lock::FileLock;
use crate::util::sys;

/// Prints one `WARN[0000]` line on stderr for each key of the `services` that berth accepts
/// but does not apply (`up`, `create`, `run`), so that none is dropped silently.
pub fn warn_unapplied(p: &Project, services: &[String]) {
    for name in services {
        if let Some(s) = p.services.get(name) {
            for w in crate::project::convert::unapplied(p, s) {
                eprintln!("WARN[0000] {w}");
            }
        }
    }
}

/// The project a command works on.
pub struct Target {
    pub root: StateRoot,
    /// The loaded project, or None when it is known only by `-p` and its containers' labels.
    pub project: Option<Project>,
    pub name: String,
}

impl Target {
    /// As compose's `projectOrName` (stop, start, restart, kill, pause, unpause, rm, down, ps,
    /// logs, wait, events): with `-p` and no `-f`, the name alone, and no file is read: the
    /// containers' labels are the project, from any folder. Otherwise the project is loaded,
    /// falling back on `COMPOSE_PROJECT_NAME` when it cannot be.
    pub fn project_or_name(g: &GlobalOpts) -> anyhow::Result<Target> {
        let root = g.state_root();
        if g.files.is_empty() {
            if let Some(name) = g.project_name.as_ref().filter(|n| !n.is_empty()) {
                return Ok(Target { root, project: None, name: name_only(name, "pass -p")? });
            }
        }
        match Target::load(g) {
            Ok(t) => Ok(t),
            Err(e) => match std::env::var("COMPOSE_PROJECT_NAME") {
                Ok(n) if !n.is_empty() => Ok(Target { root, project: None, name: name_only(&n, "set COMPOSE_PROJECT_NAME to")? }),
                _ => Err(e),
            },
        }
    }

    /// Loads the project from its files (`up`, `create`, `run`, `exec`...).
    pub fn load(g: &GlobalOpts) -> anyhow::Result<Target> {
        let p = crate::project::load(&g.load_options())?;
        for w in &p.warnings {
            eprintln!("WARN[0000] {w}");
        }
        Ok(Target { root: g.state_root(), name: p.name.clone(), project: Some(p) })
    }

    /// Takes the project's lock: one command changes a project at a time.
    /// Then collects what crashed commands left in the root (`system::collect_junk`).
    pub fn lock(&self) -> anyhow::Result<FileLock> {
        self.root.ensure()?;
        let lock = self.root.lock_project(&self.name)?;
        crate::system::collect_junk(&self.root);
        Ok(lock)
    }

    pub fn observe(&self) -> anyhow::Result<Observed> {
        Ok(observe::observe(&self.root, &self.name)?)
    }

    /// The project as the planner sees it (when loaded).
    pub fn desired(&self, images: &BTreeMap<String, String>, scale: &BTreeMap<String, u32>) -> anyhow::Result<Option<Desired>> {
        self.project.as_ref().map(|p| Desired::from_project(p, images, scale)).transpose().map_err(Into::into)
    }

    /// The dependency graph: the file's when loaded, else the containers' labels.
    pub fn graph(&self, o: &Observed) -> crate::project::DepGraph {
        match &self.project {
            Some(p) => crate::project::DepGraph::from_project(p),
            None => crate::project::DepGraph::from_labels(o),
        }
    }

    /// Fails on a service the project does not have: from the file, else (loaded by name
    /// alone) as `in_labels` says, from its containers' labels.
    pub fn check_services(&self, services: &[String], in_labels: impl Fn(&str) -> bool) -> anyhow::Result<()> {
        for s in services {
            let known = match &self.project {
                Some(p) => p.services.contains_key(s),
                None => in_labels(s),
            };
            if !known {
                bail!("no such service: {s}");
            }
        }
        Ok(())
    }

    /// As [`Target::check_services`], with the project's observed containers as the labels.
    pub fn check_observed_services(&self, o: &Observed, services: &[String]) -> anyhow::Result<()> {
        self.check_services(services, |s| o.containers.iter().any(|c| c.service == s))
    }
}

/// A project loaded from its files, for the commands that need the file (`up`, `create`, `run`,
/// `watch`): a [`Target`] whose project is always there, so that no caller checks for it.
pub struct Loaded {
    /// Private: only [`Loaded::load`] makes one, with the project set.
    target: Target,
}

impl Loaded {
    /// Loads the project from its files.
    pub fn load(g: &GlobalOpts) -> anyhow::Result<Loaded> {
        Ok(Loaded { target: Target::load(g)? })
    }

    pub fn project(&self) -> &Project {
        match &self.target.project {
            Some(p) => p,
            None => unreachable!("a Loaded is only made by Loaded::load, which sets the project"),
        }
    }

    /// The [`Target`] (with its project) for what takes any target.
    pub fn into_target(self) -> Target {
        self.target
    }

    /// The project as the planner sees it.
    pub fn desired(&self, images: &BTreeMap<String, String>, scale: &BTreeMap<String, u32>) -> anyhow::Result<Desired> {
        Ok(Desired::from_project(self.project(), images, scale)?)
    }
}

impl std::ops::Deref for Loaded {
    type Target = Target;
    fn deref(&self) -> &Target {
        &self.target
    }
}

/// The services a command names (all when none), checked against the project, with their
/// dependencies, transitively, when `with_deps` (`build --with-dependencies`, `pull
/// --include-deps`): named ones first, then each one's dependencies as found.
pub fn services_and_dependencies(p: &Project, services: &[String], with_deps: bool) -> anyhow::Result<Vec<String>> {
    if let Some(s) = services.iter().find(|s| !p.services.contains_key(*s)) {
        bail!("no such service: {s}");
    }
    if services.is_empty() {
        return Ok(p.services.keys().cloned().collect());
    }
    Ok(if with_deps { crate::project::DepGraph::from_project(p).closure(services) } else { services.to_vec() })
}

/// As compose's `toProjectName` (`top`, `port`, `cp`, `stats`): `-p`, then
/// `COMPOSE_PROJECT_NAME`, then the loaded project's.
pub fn project_name(g: &GlobalOpts) -> anyhow::Result<String> {
    if let Some(name) = g.project_name.as_ref().filter(|n| !n.is_empty()) {
        return name_only(name, "pass -p");
    }
    if let Ok(n) = std::env::var("COMPOSE_PROJECT_NAME") {
        if !n.is_empty() {
            return name_only(&n, "set COMPOSE_PROJECT_NAME to");
        }
    }
    Ok(Target::load(g)?.name)
}

/// A project named without its file (`-p`, `COMPOSE_PROJECT_NAME`): lowercased, as compose does
/// (`-p MyApp ps` lists project `myapp`), and refused with compose's message when it still is
/// not a project name (berth keeps per-project state under that name).
fn name_only(name: &str, fix: &str) -> anyhow::Result<String> {
    let lower = name.to_lowercase();
    if lower.is_empty() || crate::project::load::normalize_project_name(&lower) != lower {
        bail!(crate::project::load::invalid_project_name(name, fix));
    }
    Ok(lower)
}

/// `--parallel` / `COMPOSE_PARALLEL_LIMIT`: 0 is unlimited (compose's default, -1).
pub fn parallel(g: &GlobalOpts) -> usize {
    match g.parallel {
        Some(n) if n > 0 => n as usize,
        _ => 0,
    }
}

/// A flag the executor checks, set by a Ctrl-C that arrives after its creation (a watcher thread
/// copies it over until the run ends).
pub struct Cancel {
    pub flag: std::sync::Arc<AtomicBool>,
    done: std::sync::Arc<AtomicBool>,
}

impl Cancel {
    pub fn new() -> Cancel {
        sys::catch_interrupts(sys::exit_on_second_interrupt());
        let base = sys::interrupts();
        let flag = std::sync::Arc::new(AtomicBool::new(false));
        let done = std::sync::Arc::new(AtomicBool::new(false));
        let (f, d) = (flag.clone(), done.clone());
        std::thread::spawn(move || {
            while !d.load(Ordering::SeqCst) {
                if sys::interrupts() > base {
                    f.store(true, Ordering::SeqCst);
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        Cancel { flag, done }
    }
}

impl Default for Cancel {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Cancel {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

/// Everything [`run_plan`] needs besides the plan.
pub struct Run<'a> {
    pub g: &'a GlobalOpts,
    pub target: &'a Target,
    pub images: &'a BTreeMap<String, Image>,
    pub store: Option<&'a ImageStore>,
    /// The header verb on a terminal (`Running`, `Stopping`, ...).
    pub title: &'a str,
    pub deadline: Option<Instant>,
    /// `-t`: the grace period of containers stopped to be replaced or removed.
    pub timeout: Option<u64>,
    /// `-V`.
    pub renew_anon_volumes: bool,
}

/// `--dry-run`: the plan, each line marked as compose marks its dry-run output (on stderr,
/// where compose prints its progress).
pub fn print_dry_run(plan: &Plan) {
    for line in plan.render().lines() {
        eprintln!(" DRY-RUN MODE - {line}");
    }
}

/// Runs a plan with progress and returns its report.
pub fn run_plan(r: &Run, plan: &Plan) -> Report {
    if let Err(e) = execute::check_host_ports(r.target.project.as_ref(), plan) {
        let service = match &e {
            execute::ExecError::PortInUse { service, .. } => service.clone(),
            _ => String::new(),
        };
        return Report { errors: vec![(service, e)], ..Default::default() };
    }
    let cancel = Cancel::new();
    let progress = Progress::new(progress::kind(r.g), r.title);
    let engine = RealEngine::new(&r.target.root, r.store);
    let ctx = Context {
        engine: &engine,
        project: r.target.project.as_ref(),
        images: r.images,
        parallel: parallel(r.g),
        deadline: r.deadline,
        timeout: r.timeout.map(std::time::Duration::from_secs),
        renew_anon_volumes: r.renew_anon_volumes,
        cancel: &cancel.flag,
        sink: &progress,
    };
    let report = execute::execute(&ctx, plan);
    progress.finish();
    report
}

/// Prints every error of a run with what to do next, and returns the exit code (0 when none).
pub fn report(t: &Target, report: &Report, wait_timeout: Option<u64>) -> i32 {
    if report.canceled && report.errors.is_empty() {
        eprintln!("Canceled: the project is left as it is; run `berth up` again to finish, or `berth down` to remove it.");
        return 130;
    }
    if report.errors.is_empty() {
        return 0;
    }
    let p = if t.project.is_some() { String::new() } else { format!("-p {} ", t.name) };
    for (name, e) in &report.errors {
        let err = match (e, wait_timeout) {
            (ExecError::Timeout { kind: WaitKind::Service, .. }, Some(secs)) => {
                anyhow::anyhow!("application not healthy after {secs}s")
            }
            _ => anyhow::Error::new(clone_error(e)),
        };
        crate::cli::report::print(&err);
        if let Some(h) = hint(e, name, &p) {
            eprintln!("  {h}");
        }
    }
    1
}

/// ExecError is not Clone; the report needs an owned error for anyhow, with the same text.
fn clone_error(e: &ExecError) -> TextError {
    TextError(crate::util::error::one_line(e))
}

#[derive(Debug)]
struct TextError(String);
impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for TextError {}

/// What the user can do next about an error of `name`.
fn hint(e: &ExecError, name: &str, p: &str) -> Option<String> {
    use crate::engine::runtime::RuntimeError as R;
    Some(match e {
        ExecError::Unhealthy(_) | ExecError::Exited { .. } | ExecError::NoHealthcheck(_) | ExecError::NotStarted { .. } => {
            format!("see why with `berth {p}logs {name}`, fix the service, then run `berth up` again")
        }
        ExecError::NotCompleted { service, .. } => format!("see why with `berth {p}logs {service}`, fix it, then run `berth up` again"),
        ExecError::PortInUse { .. } => "stop what listens on that port, or publish another one, then run `berth up` again".into(),
        ExecError::Timeout { .. } => "check the services with `berth ps` and their logs; raise --wait-timeout if they need longer".into(),
        ExecError::Runtime(R::Start { .. }) => format!("see why with `berth {p}logs {name}`, fix the service, then run `berth up` again"),
        ExecError::Runtime(R::NameInUse { name: n, .. }) => {
            format!("remove the other container with `berth rm -f {n}`, or set another container_name")
        }
        ExecError::Net(_) | ExecError::Runtime(R::Net { .. }) => {
            format!("check the networks and ports of {name} (is the port free?), then run `berth up` again")
        }
        ExecError::MissingDependency { .. } => "start the dependency too: run `berth up` without --no-deps".into(),
        _ => return None,
    })
}

/// `--pull`: `always`, `missing`, `never`, or each service's `pull_policy` (`policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Pull {
    Always,
    Missing,
    Never,
    Build,
    #[default]
    Policy,
}

/// How `up`, `create` and `run` get their images.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImageOptions {
    pub pull: Pull,
    /// `--build`: build every service that has a `build:` section.
    pub build: bool,
    /// `--no-build`: never build (a missing image is an error).
    pub no_build: bool,
    /// No pull progress (`--quiet-pull`).
    pub quiet: bool,
    /// No build output (`--quiet-build`).
    pub quiet_build: bool,
}

/// The images of `services` ([`images::acquire`]), with the build and pull progress this
/// command's flags ask for.
pub fn images(g: &GlobalOpts, p: &Project, services: &[String], o: ImageOptions) -> anyhow::Result<(ImageStore, BTreeMap<String, Image>)> {
    let root = g.state_root();
    root.ensure()?;
    let store = ImageStore::open(&root)?;
    let kind = progress::kind(g);
    let quiet_build = o.quiet_build || kind == progress::Kind::Quiet;
    let mode = if quiet_build { crate::engine::build::ProgressMode::Quiet } else { crate::engine::build::ProgressMode::Plain };
    let mut printer = crate::engine::build::Printer::to_writer(mode, Box::new(std::io::stderr()));
    let pull_mode = if o.quiet || kind == progress::Kind::Quiet {
        crate::engine::image::progress::ProgressMode::Quiet
    } else {
        crate::engine::image::progress::ProgressMode::Plain
    };
    let pull_progress = crate::engine::image::progress::Progress::stderr(pull_mode);
    let opts = images::AcquireOptions {
        pull: match o.pull {
            Pull::Always => PullMode::Always,
            Pull::Missing => PullMode::Missing,
            Pull::Never => PullMode::Never,
            Pull::Build => PullMode::Build,
            Pull::Policy => PullMode::Policy,
        },
        build: o.build,
        no_build: o.no_build,
        insecure_registries: g.insecure_registries.clone(),
    };
    let warn = |w: &str| eprintln!("WARN[0000] {w}");
    let out = images::acquire(&store, p, services, &opts, &mut printer, &pull_progress, &warn)?;
    Ok((store, out))
}

#[cfg(test)]
mod tests {
    use super::{name_only, services_and_dependencies};

    #[test]
    fn named_services_are_checked_and_their_dependencies_follow_them() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("compose.yaml");
        std::fs::write(
            &f,
            "services:\n  web: {image: x, depends_on: [api]}\n  api: {image: x, depends_on: [db]}\n  db: {image: x}\n  other: {image: x}\n",
        )
        .unwrap();
        let o = crate::project::LoadOptions { files: vec![f], interpolate: true, ..Default::default() };
        let p = crate::project::load(&o).unwrap();
        assert_eq!(services_and_dependencies(&p, &["web".into()], true).unwrap(), ["web", "api", "db"]);
        assert_eq!(services_and_dependencies(&p, &["web".into()], false).unwrap(), ["web"]);
        assert_eq!(services_and_dependencies(&p, &[], true).unwrap(), ["api", "db", "other", "web"]);
        assert_eq!(services_and_dependencies(&p, &["nope".into()], true).unwrap_err().to_string(), "no such service: nope");
    }

    #[test]
    fn a_name_given_alone_is_lowercased_and_checked_as_compose_does() {
        assert_eq!(name_only("shop", "pass -p").unwrap(), "shop");
        assert_eq!(name_only("Shop_1-x", "pass -p").unwrap(), "shop_1-x");
        for bad in ["b@d", "-x", "_x", "a/b", "..", "a.b"] {
            let e = name_only(bad, "pass -p").unwrap_err().to_string();
            assert!(e.starts_with(&format!("invalid project name {bad:?}: must consist only of lowercase alphanumeric")), "{e}");
        }
    }
}
