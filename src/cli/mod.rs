//! The command line: clap derive, thin. Each area owns one file with its own `Commands` enum,
//! flattened into [`Command`] here, and a `run` that returns the process exit code. Errors travel
//! as the modules' thiserror enums and become a readable report only in [`report`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub mod bridge;
pub mod build;
pub mod compose;
pub mod config;
pub mod image;
pub mod internal;
pub mod network;
pub mod progress;
pub mod render;
pub mod report;
pub mod system;
pub mod volume;

use crate::project::LoadOptions;
use crate::state::StateRoot;

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "Define and run multi-container applications, with no daemon",
    long_about = "berth runs compose projects with its own embedded container engine: \
                  no daemon, one tiny supervisor per container.",
    disable_help_subcommand = true,
    max_term_width = 110
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// The compose-level options, given before the command as with `docker compose`.
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalOpts {
    /// Compose configuration files
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<String>,
    /// Project name
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    pub project_name: Option<String>,
    /// Specify an alternate working directory (default: the path of the first compose file)
    #[arg(long, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Specify an alternate environment file
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Specify a profile to enable
    #[arg(long = "profile", value_name = "PROFILE")]
    pub profiles: Vec<String>,
    /// Set type of progress output
    #[arg(long, value_enum, env = "COMPOSE_PROGRESS", value_name = "MODE")]
    pub progress: Option<Progress>,
    /// Control when to print ANSI control characters
    #[arg(long, value_enum, env = "COMPOSE_ANSI", default_value = "auto", value_name = "WHEN")]
    pub ansi: Ansi,
    /// Execute command in dry run mode
    #[arg(long)]
    pub dry_run: bool,
    /// Control max parallelism, -1 for unlimited
    #[arg(long, env = "COMPOSE_PARALLEL_LIMIT", value_name = "N")]
    pub parallel: Option<i64>,
    /// berth's state root
    #[arg(long, env = "BERTH_ROOT", default_value = crate::state::DEFAULT_ROOT, value_name = "DIR")]
    pub root: PathBuf,
    /// A registry that may be reached over plain HTTP (repeatable); localhost and 127.0.0.0/8 always may
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
}

impl GlobalOpts {
    pub fn state_root(&self) -> StateRoot {
        StateRoot::new(&self.root)
    }

    /// What to load: the compose files, name, directory, env files and profiles these flags
    /// give, with the process environment.
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            files: self.files.iter().map(PathBuf::from).collect(),
            project_name: self.project_name.clone(),
            project_directory: self.project_directory.clone(),
            env_files: self.env_files.clone(),
            profiles: self.profiles.clone(),
            interpolate: true,
            environment: std::env::vars().collect(),
            cwd: None,
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Auto,
    Tty,
    Plain,
    Json,
    Quiet,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ansi {
    Never,
    Always,
    #[default]
    Auto,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    #[command(flatten)]
    Config(config::Commands),
    #[command(flatten)]
    Image(image::Commands),
    #[command(flatten)]
    Build(build::Commands),
    #[command(flatten)]
    Compose(compose::Commands),
    #[command(flatten)]
    Volume(volume::Commands),
    #[command(flatten)]
    Network(network::Commands),
    #[command(flatten)]
    Bridge(bridge::Commands),
    #[command(flatten)]
    System(system::Commands),
    #[command(flatten)]
    Internal(internal::Commands),
    /// Show the berth version information
    Version {
        /// Shows only berth's version number
        #[arg(long)]
        short: bool,
        /// Format the output. Values: [pretty | json]
        #[arg(long, default_value = "pretty")]
        format: String,
    },
}

/// Parses the command line, runs the command, and returns the exit code.
pub fn main() -> i32 {
    crate::timing!("cli: main entered");
    // A closed stdout (`berth logs | head`) must end the command quietly, not panic.
    crate::util::sys::default_sigpipe();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = internal::supervise_fast_path(&args) {
        return code;
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            report::print(&err);
            1
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let g = cli.global;
    match cli.command {
        Command::Config(c) => config::run(&g, c),
        Command::Image(c) => image::run(&g, c),
        Command::Build(c) => build::run(&g, c),
        Command::Compose(c) => compose::run(&g, c),
        Command::Volume(c) => volume::run(&g, c),
        Command::Network(c) => network::run(&g, c),
        Command::Bridge(c) => bridge::run(&g, c),
        Command::System(c) => system::run(&g, c),
        Command::Internal(c) => internal::run(&g, c),
        Command::Version { short, format } => {
            let v = env!("CARGO_PKG_VERSION");
            if short {
                println!("{v}");
            } else if format == "json" {
                println!("{}", serde_json::json!({"version": v}));
            } else {
                println!("berth version v{v}");
            }
            Ok(0)
        }
    }
}
