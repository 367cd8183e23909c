//! Hidden commands berth runs itself: the per-container supervisor, the DNS resolver, and the
//! teardown that test guards use. They are started by re-executing the berth binary and are not
//! for users. `__ctr` exposes the container-level operations directly (tests, debugging) until the
//! orchestration's commands cover them.
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::GlobalOpts;
use super::render::{self, Style, tabwriter};
use crate::engine::runtime::{self, ContainerConfig, exec::ExecSpec, logs, ops};

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Remove everything the state root holds on this host, then the root (tests use it)
    #[command(name = "__teardown", hide = true)]
    Teardown,
    /// The embedded DNS resolver of the state root (started by the network module)
    #[command(name = "__dns", hide = true)]
    Dns,
    /// Supervise one container (started by `start`; not for users)
    #[command(name = "__supervise", hide = true)]
    Supervise {
        id: String,
        /// The fd of the attach socket the CLI passed (run, attached)
        #[arg(long)]
        attach_fd: Option<i32>,
    },
    /// Container-level operations on a resolved container spec (JSON)
    #[command(name = "__ctr", hide = true, subcommand)]
    Ctr(Ctr),
}

#[derive(Subcommand, Debug)]
pub enum Ctr {
    /// Create a container from a spec file (`-` for stdin); prints its id
    Create {
        spec: PathBuf,
    },
    /// Create and start a container; attached unless -d, with the container's exit code
    Run {
        #[arg(short, long)]
        detach: bool,
        #[arg(short, long)]
        interactive: bool,
        #[arg(long)]
        rm: bool,
        spec: PathBuf,
    },
    Start {
        container: String,
    },
    Stop {
        /// Seconds to wait before killing the container
        #[arg(short = 't', long = "time")]
        time: Option<f64>,
        container: String,
    },
    Kill {
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        container: String,
    },
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(short, long)]
        volumes: bool,
        container: String,
    },
    Pause {
        container: String,
    },
    Unpause {
        container: String,
    },
    Wait {
        container: String,
    },
    Inspect {
        container: String,
    },
    Ls {
        #[arg(short, long)]
        all: bool,
        #[arg(short, long)]
        quiet: bool,
    },
    Top {
        container: String,
    },
    Logs(LogsArgs),
    Exec(ExecArgs),
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    #[arg(short, long)]
    pub follow: bool,
    #[arg(short, long)]
    pub timestamps: bool,
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long)]
    pub until: Option<String>,
    pub container: String,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    #[arg(short, long)]
    pub detach: bool,
    #[arg(short, long)]
    pub interactive: bool,
    #[arg(short, long)]
    pub tty: bool,
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short, long)]
    pub workdir: Option<String>,
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    #[arg(long)]
    pub privileged: bool,
    pub container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

pub fn run(g: &GlobalOpts, c: Commands) -> anyhow::Result<i32> {
    match c {
        Commands::Teardown => {
            let errors = crate::system::teardown(&g.state_root());
            let code = if errors.is_empty() { 0 } else { 1 };
            for e in errors {
                super::report::print(&e.into());
            }
            Ok(code)
        }
        Commands::Supervise { id, attach_fd } => Ok(supervise(g.state_root(), &id, attach_fd)),
        Commands::Ctr(c) => ctr(g, c),
        Commands::Dns => {
            crate::net::dns::run(&g.state_root())?;
            Ok(0)
        }
    }
}

/// The supervisor's entry: takes over the fds `start` passed and runs until the container is gone.
pub fn supervise(root: crate::state::StateRoot, id: &str, attach_fd: Option<i32>) -> i32 {
    crate::engine::supervisor::main_inherited(root, id, attach_fd)
}

/// `berth --root ROOT __supervise ID [--attach-fd N]`, exactly as `start` spawns it, without
/// building the whole command line parser: the supervisor lives as long as its container, and
/// every page of the binary it touches stays resident, so it touches as few as it can. Any other
/// form goes through clap as usual.
pub fn supervise_fast_path(args: &[std::ffi::OsString]) -> Option<i32> {
    let [_, flag, root, cmd, id, rest @ ..] = args else { return None };
    if flag != "--root" || cmd != "__supervise" {
        return None;
    }
    let attach_fd = match rest {
        [] => None,
        [f, n] if f == "--attach-fd" => Some(n.to_str()?.parse::<i32>().ok()?),
        _ => return None,
    };
    Some(supervise(crate::state::StateRoot::new(std::path::Path::new(root)), id.to_str()?, attach_fd))
}

fn read_spec(p: &PathBuf) -> anyhow::Result<ContainerConfig> {
    let data = if p.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else {
        std::fs::read_to_string(p).with_context(|| format!("cannot read the container spec {}", p.display()))?
    };
    serde_json::from_str(&data).with_context(|| format!("{} is not a valid container spec", p.display()))
}

/// Prints a runtime error the way Docker's CLI does and returns its exit code (125, or the
/// command's 126/127).
fn fail(e: runtime::RuntimeError) -> anyhow::Result<i32> {
    let code = e.exit_code().unwrap_or(125);
    super::report::print(&anyhow::Error::new(e));
    Ok(code)
}

fn ctr(g: &GlobalOpts, c: Ctr) -> anyhow::Result<i32> {
    let root = g.state_root();
    match c {
        Ctr::Create { spec } => {
            let cfg = ops::create(&root, read_spec(&spec)?)?;
            println!("{}", cfg.id);
        }
        Ctr::Run { detach, interactive, rm, spec } => {
            let cfg = read_spec(&spec)?;
            match ops::run(&root, cfg, ops::RunOptions { detach, interactive, rm }) {
                Ok((id, None)) => println!("{id}"),
                Ok((_, Some(code))) => return Ok(code),
                Err(e) => return fail(e),
            }
        }
        Ctr::Start { container } => {
            if let Err(e) = ops::start(&root, &container, None) {
                return fail(e);
            }
            println!("{container}");
        }
        Ctr::Stop { time, container } => {
            ops::stop(&root, &container, time.map(Duration::from_secs_f64))?;
            println!("{container}");
        }
        Ctr::Kill { signal, container } => {
            let sig = crate::util::sys::parse_signal(&signal).with_context(|| format!("invalid signal: {signal}"))?;
            ops::kill(&root, &container, sig)?;
            println!("{container}");
        }
        Ctr::Rm { force, volumes, container } => {
            ops::remove(&root, &container, force, volumes)?;
            println!("{container}");
        }
        Ctr::Pause { container } => {
            ops::pause(&root, &container)?;
            println!("{container}");
        }
        Ctr::Unpause { container } => {
            ops::unpause(&root, &container)?;
            println!("{container}");
        }
        Ctr::Wait { container } => println!("{}", ops::wait(&root, &container)?),
        Ctr::Inspect { container } => {
            let v = ops::inspect(&root, &container)?;
            println!("{}", serde_json::to_string_pretty(&serde_json::Value::Array(vec![v]))?);
        }
        Ctr::Ls { all, quiet } => {
            let now = chrono::Utc::now();
            let mut rows = vec![["CONTAINER ID", "NAMES", "STATUS", "COMMAND"].map(String::from).to_vec()];
            for c in ops::list_configs(&root) {
                let st = ops::state_for(&root, &c).unwrap_or_else(|_| runtime::ContainerState::new());
                if !all && !st.status.is_active() {
                    continue;
                }
                if quiet {
                    println!("{}", crate::util::id::short(&c.id));
                    continue;
                }
                let command = render::text::go_quote(&render::text::docker_command(&c.argv()));
                rows.push(vec![crate::util::id::short(&c.id).to_string(), c.name.clone(), render::container::status(&st, now), command]);
            }
            if !quiet {
                print!("{}", tabwriter::table(&rows, Style::DOCKER));
            }
        }
        Ctr::Top { container } => {
            let t = ops::top(&root, &container)?;
            let mut rows = vec![t.titles];
            rows.extend(t.processes);
            print!("{}", tabwriter::table(&rows, Style { minwidth: 0, padding: 3 }));
        }
        Ctr::Logs(a) => return print_logs(&root, &a),
        Ctr::Exec(a) => {
            let spec = ExecSpec { argv: a.command, env: a.env, user: a.user, workdir: a.workdir, tty: a.tty, privileged: a.privileged };
            let opts = ops::ExecOptions { interactive: a.interactive, tty: a.tty, detach: a.detach };
            return match ops::exec(&root, &a.container, spec, opts) {
                Ok(code) => Ok(code),
                Err(e) => fail(e),
            };
        }
    }
    Ok(0)
}

/// Prints a container's logs as `docker logs` does: each record to its own stream, with the
/// timestamp first when asked.
pub fn print_logs(root: &crate::state::StateRoot, a: &LogsArgs) -> anyhow::Result<i32> {
    let now = chrono::Utc::now();
    let parse = |s: &Option<String>, what: &str| -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
        s.as_ref()
            .map(|v| {
                logs::parse_time(v, now)
                    .with_context(|| format!("invalid value for --{what}: {v:?}: use a timestamp or a duration like 10m"))
            })
            .transpose()
    };
    let tail = match a.tail.as_str() {
        "all" | "-1" | "" => None,
        n => Some(n.parse::<usize>().with_context(|| format!("invalid --tail value {n:?}: use a number or all"))?),
    };
    let opts = logs::ReadOptions { tail, since: parse(&a.since, "since")?, until: parse(&a.until, "until")?, follow: a.follow };
    let out = std::io::stdout();
    let err = std::io::stderr();
    ops::logs(root, &a.container, &opts, &mut |r, t| {
        let mut line = Vec::new();
        if a.timestamps {
            line.extend_from_slice(t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true).as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(r.log.as_bytes());
        if r.stream == "stderr" {
            let mut e = err.lock();
            e.write_all(&line)?;
            e.flush()
        } else {
            let mut o = out.lock();
            o.write_all(&line)?;
            o.flush()
        }
    })?;
    Ok(0)
}
