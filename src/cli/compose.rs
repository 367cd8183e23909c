//! The compose lifecycle: `up`, `down`, `ps`, `logs`, `run`, `exec` and the rest. Owned by the
//! orchestration (src/project/ planner plus the engine); `run` and `exec` come from the runtime
//! until then.
use std::io::IsTerminal;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::GlobalOpts;
use crate::engine::runtime::{self, exec::ExecSpec, ops};
use crate::labels;

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Create and start containers
    Up {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        rest: Vec<String>,
    },
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Run a one-off command on a service
    Run(RunArgs),
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: Run command in the background
    #[arg(short, long)]
    detach: bool,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "KEY=VAL")]
    env: Vec<String>,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    index: u32,
    /// Disable pseudo-TTY allocation. By default `berth exec` allocates a TTY
    #[arg(short = 'T', long = "no-TTY")]
    no_tty: bool,
    /// Give extended privileges to the process
    #[arg(long)]
    privileged: bool,
    /// Run the command as this user
    #[arg(short, long)]
    user: Option<String>,
    /// Path to workdir directory for this command
    #[arg(short, long)]
    workdir: Option<String>,
    /// Keep STDIN open (always on, as in Docker Compose)
    #[arg(short, long, hide = true, default_value_t = true)]
    interactive: bool,
    /// Pseudo-TTY (on by default when stdin is a terminal)
    #[arg(short, long, hide = true)]
    tty: bool,
    #[arg(value_name = "SERVICE")]
    service: String,
    #[arg(value_name = "COMMAND", trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short, long)]
    detach: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Disable pseudo-TTY allocation
    #[arg(short = 'T', long = "no-TTY")]
    no_tty: bool,
    #[arg(value_name = "SERVICE")]
    service: String,
    #[arg(value_name = "COMMAND", trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub fn run(g: &GlobalOpts, c: Commands) -> anyhow::Result<i32> {
    match c {
        Commands::Up { .. } => Err(super::not_yet("up")),
        Commands::Exec(a) => exec(g, a),
        Commands::Run(a) => {
            let _ = (a.detach, a.rm, a.no_tty, &a.command);
            // The loader is in; a one-off container also needs the image's layers and config.
            anyhow::bail!(
                "`berth run {}` needs the image store, which is not in this build of berth yet; \
                 `berth exec` works on running services",
                a.service
            )
        }
    }
}

/// The container of `service` (replica `index`) of `project`, as compose finds it: by labels.
pub fn service_container(root: &crate::state::StateRoot, project: &str, service: &str, index: u32) -> Option<runtime::ContainerConfig> {
    ops::list_configs(root).into_iter().find(|c| {
        let l = |k: &str| c.labels.get(k).map(|s| s.as_str());
        l(labels::PROJECT) == Some(project)
            && l(labels::SERVICE) == Some(service)
            && l(labels::ONEOFF) != Some("True")
            && l(labels::CONTAINER_NUMBER).unwrap_or("1") == index.to_string()
    })
}

fn exec(g: &GlobalOpts, a: ExecArgs) -> anyhow::Result<i32> {
    let project = crate::project::load(&crate::project::LoadOptions::from_global(g))?;
    if !project.services.contains_key(&a.service) {
        anyhow::bail!("no such service: {}", a.service);
    }
    let root = g.state_root();
    let Some(c) = service_container(&root, &project.name, &a.service, a.index) else {
        anyhow::bail!("service {:?} is not running", a.service);
    };
    let tty = !a.no_tty && (a.tty || std::io::stdin().is_terminal());
    let spec = ExecSpec { argv: a.command, env: a.env, user: a.user, workdir: a.workdir, tty, privileged: a.privileged };
    let opts = ops::ExecOptions { interactive: a.interactive, tty, detach: a.detach };
    match ops::exec(&root, &c.id, spec, opts) {
        Ok(code) => Ok(code),
        Err(runtime::RuntimeError::NotRunning(_)) | Err(runtime::RuntimeError::NoSuchContainer(_)) => {
            Err(anyhow::anyhow!("service {:?} is not running", a.service))
        }
        Err(e) => {
            let code = e.exit_code();
            match code {
                Some(code) => {
                    super::report::print(&anyhow::Error::new(e));
                    Ok(code)
                }
                None => Err(e).context(format!("cannot exec in service {:?}", a.service)),
            }
        }
    }
}
