//! `berth build [SERVICE...]`: builds the images of the project's `build:` services with berth's
//! own builder (src/engine/build/), printing progress as `docker compose build --progress plain`.
use std::collections::BTreeMap;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::GlobalOpts;
use crate::engine::build::{Printer, ProgressMode};
use crate::engine::image::{ImageStore, Reference};
use crate::project::build::{ProjectBuildOptions, build_services};

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Build or rebuild services
    Build(BuildArgs),
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Services to build (default: every service with a build section)
    pub services: Vec<String>,
    /// Set build-time variables for services (KEY=VALUE, or KEY to take it from the environment)
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub build_args: Vec<String>,
    /// Do not use cache when building the image
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub pull: bool,
    /// Suppress the build output
    #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub quiet: bool,
    /// Also build dependencies (transitively)
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub with_dependencies: bool,
    /// Push service images
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub push: bool,
    /// Set memory limit for the build container
    #[arg(short = 'm', long, value_name = "BYTES")]
    pub memory: Option<String>,
}

pub fn run(g: &GlobalOpts, c: Commands) -> anyhow::Result<i32> {
    match c {
        Commands::Build(a) => build(g, a),
    }
}

/// `KEY=VALUE` as given, `KEY` from the environment (left out when unset), as Docker Compose does.
fn parse_build_args(args: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in args {
        match a.split_once('=') {
            Some(("", _)) => bail!("invalid --build-arg {a:?}: the name is empty; write --build-arg KEY=VALUE"),
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    out.insert(a.clone(), v);
                }
            }
        }
    }
    Ok(out)
}

fn build(g: &GlobalOpts, a: BuildArgs) -> anyhow::Result<i32> {
    let project = crate::project::load(&g.load_options())?;
    for w in &project.warnings {
        eprintln!("WARN[0000] {w}");
    }
    let mut wanted = crate::cli::compose::converge::services_and_dependencies(&project, &a.services, a.with_dependencies)?;
    // Dependencies first, as compose builds them.
    let order = project.graph()?.start_order()?;
    wanted.sort_by_key(|s| order.iter().position(|o| o == s).unwrap_or(usize::MAX));
    let buildable: Vec<String> = wanted.into_iter().filter(|s| project.services[s].build.is_some()).collect();
    if g.dry_run {
        for s in &buildable {
            eprintln!(" DRY-RUN MODE -  {s}  Built");
        }
        return Ok(0);
    }
    let opts = ProjectBuildOptions {
        no_cache: a.no_cache,
        pull: a.pull,
        build_args: parse_build_args(&a.build_args)?,
        insecure_registries: g.insecure_registries.clone(),
        memory: a
            .memory
            .as_deref()
            .map(crate::util::units::parse_bytes)
            .transpose()
            .map_err(|e| anyhow::anyhow!("invalid --memory: {e}"))?,
    };
    let quiet = a.quiet || g.progress == Some(super::Progress::Quiet);
    let mut out = Printer::stdout(if quiet { ProgressMode::Quiet } else { ProgressMode::Plain });
    let store = ImageStore::open(&g.state_root())?;
    build_services(&store, &project, &buildable, &opts, &mut out)?;
    if a.push {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let popts = crate::engine::image::PushOptions { insecure_registries: g.insecure_registries.clone() };
        let quiet_progress = crate::engine::image::Progress::new(crate::engine::image::ProgressMode::Quiet);
        for s in &buildable {
            let svc = &project.services[s];
            let mut names = vec![crate::project::naming::service_image_name(&project, svc)];
            names.extend(svc.build.as_ref().map(|b| b.tags.clone()).unwrap_or_default());
            for n in names {
                let r = Reference::parse(&n).with_context(|| format!("service {s}: image {n}"))?;
                rt.block_on(crate::engine::image::push(&store, &r, &popts, &quiet_progress))
                    .with_context(|| format!("service {s}: cannot push {}", r.familiar()))?;
                if !quiet {
                    println!(" {s}  Pushed {}", r.familiar());
                }
            }
        }
    }
    Ok(0)
}
