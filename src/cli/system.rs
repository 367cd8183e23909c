//! `berth system ...`: whole-root commands. `system prune` removes, as Docker's does, stopped
//! containers, unused networks, dangling images (all unused ones with `-a`) and with
//! `--volumes` unused anonymous volumes; damaged records (a container or network whose file
//! cannot be read) are found and removed too. The work is [`crate::system::prune`].
//! `system service` serves the Docker Engine API (see `src/api` and docs/api.md).

use clap::{Args, Subcommand};

use super::GlobalOpts;

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Manage berth
    #[command(subcommand)]
    System(SystemCmd),
}

#[derive(Subcommand, Debug)]
pub enum SystemCmd {
    /// Remove unused data
    Prune {
        /// Remove all unused images not just dangling ones
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Prune anonymous volumes
        #[arg(long)]
        volumes: bool,
    },
    /// Serve the Docker Engine API on a Unix socket (export DOCKER_HOST=unix://PATH)
    Service(ServiceArgs),
}

#[derive(Args, Debug)]
pub struct ServiceArgs {
    /// The Unix socket to listen on (made mode 0660, group docker if it exists)
    #[arg(long, value_name = "PATH", default_value = crate::api::DEFAULT_SOCKET)]
    pub socket: std::path::PathBuf,
    /// Seconds without a connection after which the server exits (0: never), as podman's
    #[arg(short = 't', long, visible_alias = "time", value_name = "SECONDS", default_value_t = 5)]
    pub timeout: u64,
}

pub fn run(g: &GlobalOpts, c: Commands) -> anyhow::Result<i32> {
    match c {
        Commands::System(SystemCmd::Prune { all, force, volumes }) => prune(g, all, force, volumes),
        Commands::System(SystemCmd::Service(a)) => {
            let opts = crate::api::ServeOptions {
                root: g.state_root(),
                socket: a.socket,
                idle_timeout: (a.timeout > 0).then(|| std::time::Duration::from_secs(a.timeout)),
            };
            crate::api::serve(opts)?;
            Ok(0)
        }
    }
}

fn prune(g: &GlobalOpts, all: bool, force: bool, volumes: bool) -> anyhow::Result<i32> {
    if !force {
        let mut what = vec!["all stopped containers", "all networks not used by at least one container"];
        if volumes {
            what.push("all anonymous volumes not used by at least one container");
        }
        what.push(if all { "all images without at least one container associated to them" } else { "all dangling images" });
        let list: String = what.iter().map(|w| format!("  - {w}\n")).collect();
        eprint!("WARNING! This will remove:\n{list}\nAre you sure you want to continue? [y/N] ");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let r = crate::system::prune(&g.state_root(), crate::system::PruneOptions { all_images: all, volumes });
    for (title, items, prefix) in [
        ("Deleted Containers:", &r.containers, ""),
        ("Deleted Networks:", &r.networks, ""),
        ("Deleted Volumes:", &r.volumes, ""),
        ("Deleted Images:", &r.images, "deleted: "),
    ] {
        if !items.is_empty() {
            println!("{title}");
            for i in items {
                println!("{prefix}{i}");
            }
            println!();
        }
    }
    println!("Total reclaimed space: {}", super::render::units::human_size(r.reclaimed as f64, 3));
    for e in &r.errors {
        eprintln!("Error: {e}");
    }
    Ok(if r.errors.is_empty() { 0 } else { 1 })
}
