//! `berth system ...`: whole-host commands. `system service` serves the Docker Engine API
//! (see `src/api` and docs/api.md).

use clap::{Args, Subcommand};

use super::GlobalOpts;

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Manage berth
    System {
        #[command(subcommand)]
        cmd: SystemCmd,
    },
}

#[derive(Subcommand, Debug)]
pub enum SystemCmd {
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
    let Commands::System { cmd } = c;
    match cmd {
        SystemCmd::Service(a) => {
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
