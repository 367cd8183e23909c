//! The compose lifecycle commands. `lifecycle` changes the project (`up`, `down`, `start`, `stop`,
//! ...), `query` reads it (`ps`, `logs`, `top`, `port`, `ls`, ...), `exec_run` runs commands in it.
use clap::Subcommand;

use super::GlobalOpts;

pub mod attach;
pub mod converge;
pub mod exec_run;
pub mod lifecycle;
pub mod query;
pub mod volumes;
pub mod watch;

#[derive(Subcommand, Debug)]
pub enum Commands {
    #[command(flatten)]
    Lifecycle(lifecycle::Commands),
    #[command(flatten)]
    Query(query::Commands),
    #[command(flatten)]
    ExecRun(exec_run::Commands),
    /// Watch the build context for a service and rebuild/refresh containers when files are updated
    Watch(watch::WatchArgs),
    /// List volumes
    Volumes(volumes::VolumesArgs),
}

pub fn run(g: &GlobalOpts, c: Commands) -> anyhow::Result<i32> {
    match c {
        Commands::Lifecycle(c) => lifecycle::run(g, c),
        Commands::Query(c) => query::run(g, c),
        Commands::ExecRun(c) => exec_run::run(g, c),
        Commands::Watch(a) => watch::run(g, a),
        Commands::Volumes(a) => volumes::run(g, a),
    }
}
