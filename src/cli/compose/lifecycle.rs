//! `up`, `down`, `create`, `start`, `stop`, `restart`, `kill`, `pause`, `unpause`, `rm`: the
//! commands that change a project. Each one takes the project's lock, observes it, plans
//! (`--dry-run` prints the plan), and executes with progress; see `src/project/plan.rs`.
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{Args, Subcommand};

use super::converge::{self, Pull, Run, Target};
use crate::cli::GlobalOpts;
use crate::project::plan::{self, DownOptions, Op, Recreate, UpOptions};

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Create and start containers
    Up(UpArgs),
    /// Creates containers for a service
    Create(CreateArgs),
    /// Start services
    Start {
        /// Wait for services to be running|healthy
        #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
        wait: bool,
        /// Maximum duration in seconds to wait for the project to be running|healthy
        #[arg(long, value_name = "SECONDS")]
        wait_timeout: Option<u64>,
        #[arg(long, hide = true)]
        dry_run: bool,
        services: Vec<String>,
    },
    /// Stop services
    Stop {
        /// Specify a shutdown timeout in seconds
        #[arg(short, long, value_name = "SECONDS")]
        timeout: Option<u64>,
        #[arg(long, hide = true)]
        dry_run: bool,
        services: Vec<String>,
    },
    /// Restart service containers
    Restart {
        /// Don't restart dependent services
        #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
        no_deps: bool,
        /// Specify a shutdown timeout in seconds
        #[arg(short, long, value_name = "SECONDS")]
        timeout: Option<u64>,
        #[arg(long, hide = true)]
        dry_run: bool,
        services: Vec<String>,
    },
    /// Force stop service containers
    Kill {
        /// SIGNAL to send to the container
        #[arg(short, long, default_value = "SIGKILL")]
        signal: String,
        /// Remove containers for services not defined in the Compose file
        #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
        remove_orphans: bool,
        #[arg(long, hide = true)]
        dry_run: bool,
        services: Vec<String>,
    },
    /// Pause services
    Pause {
        #[arg(long, hide = true)]
        dry_run: bool,
        services: Vec<String>,
    },
    /// Unpause services
    Unpause {
        #[arg(long, hide = true)]
        dry_run: bool,
        services: Vec<String>,
    },
    /// Removes stopped service containers
    Rm {
        /// Don't ask to confirm removal
        #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
        force: bool,
        /// Stop the containers, if required, before removing
        #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
        stop: bool,
        /// Remove any anonymous volumes attached to containers
        #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
        volumes: bool,
        #[arg(long, hide = true)]
        dry_run: bool,
        services: Vec<String>,
    },
    /// Stop and remove containers, networks
    Down(DownArgs),
    /// Scale services
    Scale {
        /// Don't start linked services
        #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
        no_deps: bool,
        #[arg(long, hide = true)]
        dry_run: bool,
        #[arg(value_name = "SERVICE=REPLICAS")]
        services: Vec<String>,
    },
}

/// The flags `up` shares with `create`.
#[derive(Args, Debug, Clone, Default)]
pub struct CreateArgs {
    /// Build images before starting containers
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub build: bool,
    /// Don't build an image, even if it's policy
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub no_build: bool,
    /// Pull image before running
    #[arg(long, value_enum, default_value = "policy")]
    pub pull: Pull,
    /// Pull without printing progress information
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub quiet_pull: bool,
    /// Suppress the build output
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub quiet_build: bool,
    /// Recreate containers even if their configuration and image haven't changed
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub force_recreate: bool,
    /// If containers already exist, don't recreate them. Incompatible with --force-recreate.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub no_recreate: bool,
    /// Remove containers for services not defined in the Compose file
    #[arg(long, env = "COMPOSE_REMOVE_ORPHANS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub remove_orphans: bool,
    /// Scale SERVICE to NUM instances. Overrides the scale setting in the Compose file if present.
    #[arg(long, value_name = "SERVICE=NUM")]
    pub scale: Vec<String>,
    /// Assume "yes" as answer to all prompts and run non-interactively
    #[arg(short = 'y', long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub yes: bool,
    #[arg(long, hide = true)]
    pub dry_run: bool,
    pub services: Vec<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct UpArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Detached mode: Run containers in the background
    #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub detach: bool,
    /// Don't start linked services
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub no_deps: bool,
    /// Don't start the services after creating them
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub no_start: bool,
    /// Wait for services to be running|healthy. Implies detached mode.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub wait: bool,
    /// Maximum duration in seconds to wait for the project to be running|healthy
    #[arg(long, value_name = "SECONDS")]
    pub wait_timeout: Option<u64>,
    /// Use this timeout in seconds for container shutdown when attached or when containers are already running
    #[arg(short, long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Stops all containers if any container was stopped. Incompatible with -d
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub abort_on_container_exit: bool,
    /// Stops all containers if any container exited with failure. Incompatible with -d
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub abort_on_container_failure: bool,
    /// Return the exit code of the selected service container. Implies --abort-on-container-exit
    #[arg(long, value_name = "SERVICE")]
    pub exit_code_from: Option<String>,
    /// Restrict attaching to the specified services
    #[arg(long, value_name = "SERVICE")]
    pub attach: Vec<String>,
    /// Do not attach (stream logs) to the specified services
    #[arg(long, value_name = "SERVICE")]
    pub no_attach: Vec<String>,
    /// Automatically attach to log output of dependent services
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub attach_dependencies: bool,
    /// Produce monochrome output
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub no_color: bool,
    /// Don't print prefix in logs
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub no_log_prefix: bool,
    /// Show timestamps
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub timestamps: bool,
    /// Recreate anonymous volumes instead of retrieving data from the previous containers
    #[arg(short = 'V', long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub renew_anon_volumes: bool,
    /// Watch source code and rebuild/refresh containers when files are updated.
    #[arg(short = 'w', long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub watch: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct DownArgs {
    /// Remove containers for services not defined in the Compose file
    #[arg(long, env = "COMPOSE_REMOVE_ORPHANS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub remove_orphans: bool,
    /// Remove images used by services. "local" remove only images that don't have a custom tag ("local"|"all")
    #[arg(long, value_name = "TYPE")]
    pub rmi: Option<String>,
    /// Specify a shutdown timeout in seconds
    #[arg(short, long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Remove named volumes declared in the "volumes" section of the Compose file and anonymous volumes attached to containers
    #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub volumes: bool,
    #[arg(long, hide = true)]
    pub dry_run: bool,
}

pub fn run(g: &GlobalOpts, c: Commands) -> anyhow::Result<i32> {
    match c {
        Commands::Up(a) => up(g, a),
        Commands::Create(a) => up(g, UpArgs { create: a, no_start: true, detach: true, ..Default::default() }),
        Commands::Start { wait, wait_timeout, dry_run, services } => start(g, &services, wait, wait_timeout, dry_run || g.dry_run),
        Commands::Stop { timeout, dry_run, services } => stop(g, &services, timeout, dry_run || g.dry_run),
        Commands::Restart { no_deps, timeout, dry_run, services } => restart(g, &services, no_deps, timeout, dry_run || g.dry_run),
        Commands::Kill { signal, remove_orphans, dry_run, services } => {
            if crate::util::sys::parse_signal(&signal).is_none() {
                bail!("invalid signal {signal:?}: use a name such as SIGTERM or a number from 1 to 64");
            }
            simple(
                g,
                &services,
                dry_run || g.dry_run,
                "Killing",
                remove_orphans,
                |_| None,
                |c| c.is_active().then(|| Op::Kill { service: c.service.clone(), name: c.name.clone(), signal: signal.clone() }),
            )
        }
        // As compose (whose daemon refuses these): pausing a paused container or unpausing one
        // that is not paused is an error, rc 1.
        Commands::Pause { dry_run, services } => simple(
            g,
            &services,
            dry_run || g.dry_run,
            "Pausing",
            false,
            |c| (c.status == crate::engine::runtime::Status::Paused).then(|| format!("Container {} is already paused", c.id)),
            |c| {
                (c.status == crate::engine::runtime::Status::Running)
                    .then(|| Op::Pause { service: c.service.clone(), name: c.name.clone() })
            },
        ),
        Commands::Unpause { dry_run, services } => simple(
            g,
            &services,
            dry_run || g.dry_run,
            "Unpausing",
            false,
            |c| (c.status == crate::engine::runtime::Status::Running).then(|| format!("Container {} is not paused", c.id)),
            |c| {
                (c.status == crate::engine::runtime::Status::Paused)
                    .then(|| Op::Unpause { service: c.service.clone(), name: c.name.clone() })
            },
        ),
        Commands::Rm { force, stop, volumes, dry_run, services } => rm(g, &services, force, stop, volumes, dry_run || g.dry_run),
        Commands::Down(a) => down(g, a),
        Commands::Scale { no_deps, dry_run, services } => scale(g, &services, no_deps, dry_run || g.dry_run),
    }
}

fn parse_scale(t: &Target, scale: &[String]) -> anyhow::Result<BTreeMap<String, u32>> {
    let mut out = BTreeMap::new();
    for s in scale {
        let Some((name, n)) = s.split_once('=') else { bail!("invalid --scale {s:?}: use SERVICE=NUM") };
        let n: u32 = n.parse().map_err(|_| anyhow::anyhow!("invalid --scale {s:?}: NUM must be a number of replicas"))?;
        if !t.project.as_ref().is_some_and(|p| p.services.contains_key(name)) {
            bail!("no such service: {name}");
        }
        out.insert(name.to_string(), n);
    }
    Ok(out)
}

pub(crate) fn up(g: &GlobalOpts, mut a: UpArgs) -> anyhow::Result<i32> {
    let dry = a.create.dry_run || g.dry_run;
    if a.create.force_recreate && a.create.no_recreate {
        bail!("--force-recreate and --no-recreate are incompatible");
    }
    if a.create.build && a.create.no_build {
        bail!("--build and --no-build are incompatible");
    }
    if a.exit_code_from.is_some() {
        a.abort_on_container_exit = true;
    }
    if a.wait {
        a.detach = true;
    }
    if a.detach && (a.abort_on_container_exit || a.abort_on_container_failure) {
        bail!("--abort-on-container-exit and --abort-on-container-failure are incompatible with --detach");
    }
    if a.abort_on_container_exit && a.abort_on_container_failure {
        bail!("--abort-on-container-exit and --abort-on-container-failure are incompatible");
    }
    if a.detach && a.watch {
        bail!(
            "--detach cannot be combined with --abort-on-container-exit, --abort-on-container-failure, --attach, --attach-dependencies or --watch"
        );
    }
    let t = converge::Loaded::load(g)?;
    let p = t.project();
    let watch_rules = if a.watch { Some(super::watch::rules(p, &a.create.services)?) } else { None };
    for s in a.create.services.iter().chain(a.exit_code_from.iter()).chain(a.attach.iter()).chain(a.no_attach.iter()) {
        if !p.services.contains_key(s) {
            bail!("no such service: {s}");
        }
    }
    let scale = parse_scale(&t, &a.create.scale)?;
    // Every service this run brings up needs its image.
    let ids0: BTreeMap<String, String> = BTreeMap::new();
    let desired0 = t.desired(&ids0, &scale)?;
    let selected: Vec<String> = desired0.select(&a.create.services, a.no_deps)?.into_iter().collect();
    converge::warn_unapplied(p, &selected);
    let io = converge::ImageOptions {
        pull: a.create.pull,
        build: a.create.build,
        no_build: a.create.no_build,
        quiet: a.create.quiet_pull,
        quiet_build: a.create.quiet_build,
    };
    let (store, images) = converge::images(g, p, &selected, io)?;
    let ids: BTreeMap<String, String> = images.iter().map(|(k, v)| (k.clone(), v.id.to_string())).collect();
    let desired = t.desired(&ids, &scale)?;
    let opts = UpOptions {
        services: a.create.services.clone(),
        no_deps: a.no_deps,
        recreate: if a.create.force_recreate {
            Recreate::Force
        } else if a.create.no_recreate {
            Recreate::Never
        } else {
            Recreate::Diverged
        },
        no_start: a.no_start,
        remove_orphans: a.create.remove_orphans,
        timeout: a.timeout,
        wait: a.wait,
    };
    let lock = if dry { None } else { Some(t.lock()?) };
    let observed = t.observe()?;
    let plan = plan::up(&desired, &observed, &opts)?;
    if dry {
        converge::print_dry_run(&plan);
        return Ok(0);
    }
    let started = Instant::now();
    let deadline = a.wait_timeout.filter(|s| *s > 0).map(|s| started + Duration::from_secs(s));
    let run = Run {
        g,
        target: &t,
        images: &images,
        store: Some(&store),
        title: "Running",
        deadline,
        timeout: a.timeout,
        renew_anon_volumes: a.renew_anon_volumes,
    };
    let report = converge::run_plan(&run, &plan);
    drop(lock);
    let code = converge::report(&t, &report, a.wait_timeout);
    if code != 0 || a.detach || a.no_start {
        return Ok(code);
    }
    if let Some(rules) = watch_rules {
        super::watch::spawn(g, &t, rules)?;
    }
    super::attach::attached(g, &t, &desired, &selected, &a)
}

/// `scale SERVICE=N...`: as compose, `up -d --scale SERVICE=N --no-recreate SERVICE...`: the
/// missing replicas are created and started (with their dependencies unless `--no-deps`), the
/// extra ones removed, the others left as they are.
fn scale(g: &GlobalOpts, specs: &[String], no_deps: bool, dry_run: bool) -> anyhow::Result<i32> {
    if specs.is_empty() {
        bail!("requires at least 1 arg(s), only received 0: use `berth scale SERVICE=REPLICAS...`");
    }
    let mut services = Vec::new();
    for s in specs {
        let Some((name, n)) = s.split_once('=') else { bail!("invalid scale specifier: {s}") };
        if n.parse::<u32>().is_err() {
            bail!("invalid scale specifier: can't parse replica value as int: {s}");
        }
        services.push(name.to_string());
    }
    let create = CreateArgs { scale: specs.to_vec(), no_recreate: true, services, dry_run, ..Default::default() };
    up(g, UpArgs { create, detach: true, no_deps, ..Default::default() })
}

fn start(g: &GlobalOpts, services: &[String], wait: bool, wait_timeout: Option<u64>, dry: bool) -> anyhow::Result<i32> {
    let t = Target::project_or_name(g)?;
    let _lock = if dry { None } else { Some(t.lock()?) };
    let o = t.observe()?;
    t.check_observed_services(&o, services)?;
    if o.containers.is_empty() {
        // compose's error and rc 1: nothing was ever created (`up` or `create` does that).
        bail!("no container found for project {:?}: not found", t.name);
    }
    let plan = plan::start(&o, &t.graph(&o), services, wait)?;
    execute_simple(g, &t, &plan, dry, "Running", wait_timeout)
}

fn stop(g: &GlobalOpts, services: &[String], timeout: Option<u64>, dry: bool) -> anyhow::Result<i32> {
    let t = Target::project_or_name(g)?;
    let _lock = if dry { None } else { Some(t.lock()?) };
    let o = t.observe()?;
    t.check_observed_services(&o, services)?;
    let desired = t.desired(&BTreeMap::new(), &BTreeMap::new())?;
    let plan = plan::stop(&o, &plan::graph(desired.as_ref(), &o), services, timeout);
    execute_simple(g, &t, &plan, dry, "Stopping", None)
}

pub(crate) fn restart(g: &GlobalOpts, services: &[String], no_deps: bool, timeout: Option<u64>, dry: bool) -> anyhow::Result<i32> {
    let t = Target::project_or_name(g)?;
    let _lock = if dry { None } else { Some(t.lock()?) };
    let o = t.observe()?;
    t.check_observed_services(&o, services)?;
    let plan = plan::restart_with_dependents(&o, &t.graph(&o), services, no_deps, timeout);
    execute_simple(g, &t, &plan, dry, "Restarting", None)
}

/// `kill`, `pause`, `unpause`: one operation per container, in parallel. `refuse` names a
/// container the command must fail on (checked for all before any is touched).
fn simple(
    g: &GlobalOpts,
    services: &[String],
    dry: bool,
    title: &str,
    with_orphans: bool,
    refuse: impl Fn(&crate::project::observe::Container) -> Option<String>,
    make: impl FnMut(&crate::project::observe::Container) -> Option<Op>,
) -> anyhow::Result<i32> {
    let t = Target::project_or_name(g)?;
    let _lock = if dry { None } else { Some(t.lock()?) };
    let mut o = t.observe()?;
    t.check_observed_services(&o, services)?;
    if let (Some(p), false) = (&t.project, with_orphans) {
        o.containers.retain(|c| p.services.contains_key(&c.service));
    }
    let selected = o.containers.iter().filter(|c| !c.oneoff && (services.is_empty() || services.contains(&c.service)));
    if let Some(why) = selected.filter_map(refuse).next() {
        bail!("{why}");
    }
    let plan = plan::each(&o, services, false, make);
    if plan.is_empty() && !dry {
        eprintln!("no container to act on: the project {} has no container in that state (see `berth ps -a`)", t.name);
    }
    execute_simple(g, &t, &plan, dry, title, None)
}

fn execute_simple(g: &GlobalOpts, t: &Target, plan: &plan::Plan, dry: bool, title: &str, wait_timeout: Option<u64>) -> anyhow::Result<i32> {
    if dry {
        converge::print_dry_run(plan);
        return Ok(0);
    }
    let images = BTreeMap::new();
    let deadline = wait_timeout.filter(|s| *s > 0).map(|s| Instant::now() + Duration::from_secs(s));
    let run = Run { g, target: t, images: &images, store: None, title, deadline, timeout: None, renew_anon_volumes: false };
    let report = converge::run_plan(&run, plan);
    Ok(converge::report(t, &report, wait_timeout))
}

fn rm(g: &GlobalOpts, services: &[String], force: bool, stop: bool, volumes: bool, dry: bool) -> anyhow::Result<i32> {
    let t = Target::project_or_name(g)?;
    let _lock = if dry { None } else { Some(t.lock()?) };
    let o = t.observe()?;
    t.check_observed_services(&o, services)?;
    let desired = t.desired(&BTreeMap::new(), &BTreeMap::new())?;
    let plan = plan::rm(&o, &plan::graph(desired.as_ref(), &o), services, stop, volumes);
    let names = plan::removed(&plan);
    if names.is_empty() {
        eprintln!("No stopped containers");
        return Ok(0);
    }
    if !dry && !force {
        eprint!("Going to remove {}\n? Are you sure? [yN] ", names.join(", "));
        let _ = std::io::stderr().flush();
        // The answer is read from stdin whatever it is, as compose reads it (`echo y | berth rm`);
        // an empty or closed stdin is a no.
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    } else if force {
        println!("Going to remove {}", names.join(", "));
    }
    execute_simple(g, &t, &plan, dry, "Removing", None)
}

fn down(g: &GlobalOpts, a: DownArgs) -> anyhow::Result<i32> {
    down_target(g, &Target::project_or_name(g)?, a)
}

/// `down` of a project found already: what `berth down` runs, and `wait --down-project` too.
pub(crate) fn down_target(g: &GlobalOpts, t: &Target, a: DownArgs) -> anyhow::Result<i32> {
    let dry = a.dry_run || g.dry_run;
    let rmi = a.rmi.as_deref().map(Rmi::parse).transpose()?;
    let _lock = if dry { None } else { Some(t.lock()?) };
    let o = t.observe()?;
    let desired = t.desired(&BTreeMap::new(), &BTreeMap::new())?;
    let plan = plan::down(desired.as_ref(), &o, &DownOptions { remove_orphans: a.remove_orphans, volumes: a.volumes, timeout: a.timeout });
    if dry {
        converge::print_dry_run(&plan);
        return Ok(0);
    }
    if plan.is_empty() && t.project.is_none() && o.containers.is_empty() {
        eprintln!("WARN[0000] no resource found for project {:?}: nothing to do (check the name with `berth ls`)", t.name);
    }
    let images = BTreeMap::new();
    let run =
        Run { g, target: t, images: &images, store: None, title: "Running", deadline: None, timeout: a.timeout, renew_anon_volumes: false };
    let rmi_refs = rmi.map(|kind| images_to_remove(t, &o, kind));
    let report = converge::run_plan(&run, &plan);
    let mut code = converge::report(t, &report, None);
    if let Some(refs) = rmi_refs {
        code = code.max(remove_images(g, t, refs)?);
    }
    Ok(code)
}

/// `down --rmi`: the services' images (`all`), or only those compose named itself (`local`:
/// built images without an `image:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rmi {
    Local,
    All,
}

impl Rmi {
    /// Parsed by the handler, not by clap, so that a wrong value stays an error of `down` (exit
    /// code 1, compose's wording) rather than a usage error.
    fn parse(s: &str) -> anyhow::Result<Rmi> {
        match s {
            "local" => Ok(Rmi::Local),
            "all" => Ok(Rmi::All),
            x => bail!("invalid --rmi {x:?}: use local or all"),
        }
    }
}

/// The images `down --rmi` removes (read before the containers go).
fn images_to_remove(t: &Target, o: &crate::project::observe::Observed, kind: Rmi) -> Vec<String> {
    let mut refs: Vec<String> = Vec::new();
    match &t.project {
        Some(p) => {
            for s in p.services.values() {
                if s.image.is_none() || kind == Rmi::All {
                    refs.push(crate::project::naming::service_image_name(p, s));
                }
            }
        }
        None => {
            // From the containers: `local` keeps the images compose named itself.
            for c in crate::engine::runtime::ops::list_configs(&t.root) {
                if let Some(x) = o.containers.iter().find(|x| x.id == c.id) {
                    if kind == Rmi::All || c.image_ref == crate::project::naming::default_image_name(&t.name, &x.service) {
                        refs.push(c.image_ref.clone());
                    }
                }
            }
        }
    }
    refs.sort();
    refs.dedup();
    refs
}

fn remove_images(g: &GlobalOpts, t: &Target, refs: Vec<String>) -> anyhow::Result<i32> {
    let store = crate::engine::image::ImageStore::open(&t.root)?;
    let progress = crate::cli::progress::Progress::new(crate::cli::progress::kind(g), "Running");
    use crate::project::execute::{Event, Sink, State};
    let mut code = 0;
    for r in refs {
        if store.resolve(&r)?.is_none() {
            continue;
        }
        progress.event(Event { kind: "Image", name: r.clone(), state: State::Working, text: "Removing".into() });
        match store.remove(&r, false) {
            Ok(_) => progress.event(Event { kind: "Image", name: r.clone(), state: State::Done, text: "Removed".into() }),
            Err(e) => {
                progress.event(Event { kind: "Image", name: r.clone(), state: State::Error, text: e.to_string() });
                code = 1;
            }
        }
    }
    progress.finish();
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::Rmi;

    #[test]
    fn rmi_values() {
        assert_eq!(Rmi::parse("local").unwrap(), Rmi::Local);
        assert_eq!(Rmi::parse("all").unwrap(), Rmi::All);
        assert_eq!(Rmi::parse("some").unwrap_err().to_string(), "invalid --rmi \"some\": use local or all");
    }
}
