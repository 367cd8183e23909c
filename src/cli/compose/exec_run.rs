//! `berth exec` and `berth run`: a command in a service's running container, and a one-off
//! container of a service.
use std::io::IsTerminal;

use anyhow::Context;
use clap::{Args, Subcommand};


use crate::cli::GlobalOpts;
use crate::cli::report;
use crate::project::convert::{container_config, kv, service_container, service_image_name, set_env};
use crate::engine::image::ImageStore;
use crate::engine::runtime::spec::{self as rspec, MountType};
use crate::engine::runtime::{self, exec::ExecSpec, ops};
use crate::labels;

#[derive(Subcommand, Debug)]
pub enum Commands {
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
    /// Disable pseudo-TTY allocation (default: auto-detected)
    #[arg(short = 'T', long = "no-TTY")]
    no_tty: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Keep STDIN open even if not attached (on by default)
    #[arg(short, long, default_value_t = true)]
    interactive: bool,
    /// Assign a name to the container
    #[arg(long)]
    name: Option<String>,
    /// Override the entrypoint of the image
    #[arg(long)]
    entrypoint: Option<String>,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "KEY=VAL")]
    env: Vec<String>,
    /// Add or override a label
    #[arg(short, long = "label", value_name = "KEY=VAL")]
    labels: Vec<String>,
    /// Run as specified username or uid
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    cap_drop: Vec<String>,
    /// Bind mount a volume (SOURCE:TARGET[:ro])
    #[arg(short, long = "volume")]
    volumes: Vec<String>,
    #[arg(value_name = "SERVICE")]
    service: String,
    #[arg(value_name = "COMMAND", trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub fn run(g: &GlobalOpts, c: Commands) -> anyhow::Result<i32> {
    match c {
        Commands::Exec(a) => exec(g, a),
        Commands::Run(a) => run_service(g, a),
    }
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
                    report::print(&anyhow::Error::new(e));
                    Ok(code)
                }
                None => Err(e).context(format!("cannot exec in service {:?}", a.service)),
            }
        }
    }
}

/// `berth run SERVICE [COMMAND...]`: a one-off container of the service, attached (or `-d`).
fn run_service(g: &GlobalOpts, a: RunArgs) -> anyhow::Result<i32> {
    let project = crate::project::load(&crate::project::LoadOptions::from_global(g))?;
    let service = project
        .services
        .get(&a.service)
        .ok_or_else(|| anyhow::anyhow!("no such service: {}", a.service))?;
    let root = g.state_root();
    root.ensure()?;
    let store = ImageStore::open(&root)?;
    let name = service_image_name(&project, service);
    let image = match store.resolve(&name)? {
        Some(i) => i,
        None if service.image.is_some() => {
            let reference = crate::engine::image::reference::Reference::parse(&name)?;
            let opts = crate::engine::image::pull::PullOptions { insecure_registries: g.insecure_registries.clone(), ..Default::default() };
            let progress = crate::engine::image::progress::Progress::new(crate::engine::image::progress::ProgressMode::Plain);
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(crate::engine::image::pull::pull(&store, &reference, &opts, &progress))?
        }
        None => anyhow::bail!("service {:?} has no image yet: build it with `berth build {}`", a.service, a.service),
    };
    let mut cfg = container_config(&root, &project, service, &image, &store)?;
    // One-off containers: never restarted, named after the project and service, no ports.
    cfg.restart_policy = rspec::RestartPolicy::default();
    let slug = crate::util::id::new_id();
    cfg.name = a.name.clone().unwrap_or_else(|| format!("{}-{}-run-{}", project.name, service.name, &slug[..12]));
    cfg.labels.insert(labels::ONEOFF.into(), "True".into());
    cfg.labels.insert(labels::SLUG.into(), slug);
    cfg.labels.insert(labels::CONTAINER_NUMBER.into(), "1".into());
    cfg.labels.extend(kv(&a.labels));
    if let Some(e) = &a.entrypoint {
        cfg.entrypoint = shell_words(e);
        if a.command.is_empty() {
            cfg.cmd.clear();
        }
    }
    if !a.command.is_empty() {
        cfg.cmd = a.command.clone();
    }
    for e in &a.env {
        let entry = if e.contains('=') { e.clone() } else { std::env::var(e).map(|v| format!("{e}={v}")).unwrap_or_default() };
        if !entry.is_empty() {
            set_env(&mut cfg.env, entry);
        }
    }
    if let Some(u) = &a.user {
        cfg.user = u.clone();
    }
    if let Some(w) = &a.workdir {
        cfg.working_dir = w.clone();
    }
    cfg.cap_add.extend(a.cap_add.iter().cloned());
    cfg.cap_drop.extend(a.cap_drop.iter().cloned());
    for v in &a.volumes {
        let parts: Vec<&str> = v.split(':').collect();
        let (src, dst, ro) = match parts.as_slice() {
            [d] => ("", *d, false),
            [s, d] => (*s, *d, false),
            [s, d, m] => (*s, *d, m.split(',').any(|x| x == "ro")),
            _ => anyhow::bail!("invalid volume {v:?}: use SOURCE:TARGET[:ro]"),
        };
        let is_path = src.starts_with('/') || src.starts_with('.');
        let source = if src.starts_with('.') { project.working_dir.join(src).display().to_string() } else { src.to_string() };
        cfg.mounts.push(rspec::Mount {
            kind: if src.is_empty() || !is_path { MountType::Volume } else { MountType::Bind },
            source,
            target: dst.to_string(),
            read_only: ro,
            bind_options: is_path.then(|| rspec::BindOptions { create_mountpoint: true, ..Default::default() }),
            ..Default::default()
        });
    }
    let tty = !a.no_tty && (a.tty || (!a.detach && std::io::stdin().is_terminal()));
    cfg.tty = tty;
    let interactive = a.interactive && !a.detach;
    match ops::run(&root, cfg, ops::RunOptions { detach: a.detach, interactive, rm: a.rm }) {
        Ok((id, None)) => {
            println!("{id}");
            Ok(0)
        }
        Ok((_, Some(code))) => Ok(code),
        Err(e) => match e.exit_code() {
            Some(code) => {
                report::print(&anyhow::Error::new(e));
                Ok(code)
            }
            None => Err(e.into()),
        },
    }
}

/// Splits `--entrypoint "sh -c"` as a shell would (quotes, no expansion).
fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"') | (None, '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() || any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if !cur.is_empty() || any {
        out.push(cur);
    }
    out
}
