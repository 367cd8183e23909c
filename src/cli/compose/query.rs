//! The commands that read a project: `ps`, `logs`, `top`, `port`, `ls`, `wait`, `cp`, `events`
//! and `stats`. They find the project's containers by their compose labels alone, so that they
//! work from any folder with `-p` and no compose file, as Docker Compose's do.
use clap::Subcommand;

use crate::cli::GlobalOpts;
use crate::engine::runtime::{self, ContainerConfig, ContainerState, Status, ops};
use crate::labels;
use crate::state::StateRoot;

mod attach;
pub(crate) mod cp;
mod events;
mod logs;
mod ls;
mod port;
mod ps;
mod snapshot;
mod stats;
mod top;
mod wait;

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// List containers
    Ps(ps::PsArgs),
    /// View output from containers
    Logs(logs::LogsArgs),
    /// Display the running processes
    Top(top::TopArgs),
    /// Print the public port for a port binding
    Port(port::PortArgs),
    /// List running compose projects
    Ls(ls::LsArgs),
    /// Block until containers of all (or specified) services stop.
    Wait(wait::WaitArgs),
    /// Copy files/folders between a service container and the local filesystem
    Cp(cp::CpArgs),
    /// Receive real time events from containers
    Events(events::EventsArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::StatsArgs),
    /// Attach local standard input, output, and error streams to a service's running container
    Attach(attach::AttachArgs),
    /// Export a service container's filesystem as a tar archive
    Export(snapshot::ExportArgs),
    /// Create a new image from a service container's changes
    Commit(snapshot::CommitArgs),
}

pub fn run(g: &GlobalOpts, c: Commands) -> anyhow::Result<i32> {
    match c {
        Commands::Ps(a) => ps::run(g, a),
        Commands::Logs(a) => logs::run(g, a),
        Commands::Top(a) => top::run(g, a),
        Commands::Port(a) => port::run(g, a),
        Commands::Ls(a) => ls::run(g, a),
        Commands::Wait(a) => wait::run(g, a),
        Commands::Cp(a) => cp::run(g, a),
        Commands::Events(a) => events::run(g, a),
        Commands::Stats(a) => stats::run(g, a),
        Commands::Attach(a) => attach::run(g, a),
        Commands::Export(a) => snapshot::export(g, a),
        Commands::Commit(a) => snapshot::commit(g, a),
    }
}

pub(crate) use super::converge::{Target, project_name};

/// One container of a project, with its state as it really is.
#[derive(Debug, Clone)]
pub(crate) struct Ctr {
    pub cfg: ContainerConfig,
    pub st: ContainerState,
}

impl Ctr {
    pub fn label(&self, k: &str) -> &str {
        self.cfg.labels.get(k).map(|s| s.as_str()).unwrap_or("")
    }
    pub fn service(&self) -> &str {
        self.label(labels::SERVICE)
    }
    pub fn number(&self) -> u32 {
        crate::project::naming::parse_number(self.label(labels::CONTAINER_NUMBER)).unwrap_or(0)
    }
    pub fn oneoff(&self) -> bool {
        self.label(labels::ONEOFF) == "True"
    }
    /// Running, paused or restarting: what `docker ps` lists without `-a`.
    pub fn listed_running(&self) -> bool {
        self.st.status.is_active()
    }
    pub fn running(&self) -> bool {
        matches!(self.st.status, Status::Running | Status::Paused)
    }
    /// The name compose prints in log prefixes: `<service>-<n>`, or the whole `container_name`.
    pub fn log_name(&self) -> String {
        crate::project::naming::log_name(&self.cfg.name, self.label(labels::PROJECT), self.service(), self.label(labels::CONTAINER_NUMBER))
    }
    pub fn reload(&mut self, root: &StateRoot) {
        if let Ok(st) = ops::state_of(root, &self.cfg.id) {
            self.st = st;
        }
    }
}

/// Which one-off containers (`run`) a listing includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OneOff {
    Exclude,
    Include,
}

/// The containers of project `name`, as compose lists them: the project and config-hash labels
/// set, one-offs per `oneoff`, stopped ones only with `all`, and only `services` when given.
/// Sorted by name.
pub(crate) fn containers(root: &StateRoot, name: &str, oneoff: OneOff, all: bool, services: &[String]) -> Vec<Ctr> {
    let mut out: Vec<Ctr> = ops::list_configs(root)
        .into_iter()
        .filter(|c| {
            c.labels.get(labels::PROJECT).is_some_and(|p| p == name)
                // compose's runs carry a config hash too; berth's `run` may not (yet).
                && (c.labels.contains_key(labels::CONFIG_HASH) || c.labels.get(labels::ONEOFF).is_some_and(|o| o == "True"))
                && (oneoff == OneOff::Include || c.labels.get(labels::ONEOFF).is_none_or(|o| o != "True"))
                && (services.is_empty() || c.labels.get(labels::SERVICE).is_some_and(|s| services.contains(s)))
        })
        .map(|cfg| {
            let st = ops::state_for(root, &cfg).unwrap_or_else(|_| ContainerState::new());
            Ctr { cfg, st }
        })
        .filter(|c| all || c.listed_running())
        .collect();
    out.sort_by(|a, b| a.cfg.name.cmp(&b.cfg.name));
    out
}

/// The container compose picks for `SERVICE` with `--index` (0: the lowest number, one-offs
/// last), among running ones unless `all`.
pub(crate) fn specified_container(
    root: &StateRoot,
    project: &str,
    oneoff: OneOff,
    all: bool,
    service: &str,
    index: u32,
) -> anyhow::Result<Ctr> {
    let mut list = containers(root, project, oneoff, all, &[service.to_string()]);
    if index > 0 {
        list.retain(|c| c.number() == index);
    }
    list.sort_by_key(|c| (c.oneoff(), c.number()));
    match list.into_iter().next() {
        Some(c) => Ok(c),
        None if index > 0 => anyhow::bail!("service {service:?} is not running container #{index}"),
        None => anyhow::bail!("service {service:?} is not running"),
    }
}

/// Whether output to stdout gets ANSI colors (`--ansi`, and a terminal for `auto`).
pub(crate) fn use_color(g: &GlobalOpts) -> bool {
    use std::io::IsTerminal;
    match g.ansi {
        crate::cli::Ansi::Always => true,
        crate::cli::Ansi::Never => false,
        crate::cli::Ansi::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

/// The runtime error, with what the user can do next where it is clear.
pub(crate) fn runtime_err(e: runtime::RuntimeError) -> anyhow::Error {
    anyhow::Error::new(e)
}
