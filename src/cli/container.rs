//! `berth container ...` and `berth inspect`: containers without a compose file, with Docker's
//! flags, output and exit codes. Each handler builds typed options, calls one function of
//! `crate::objects` (the library the API server shares) and renders; nothing here assembles a
//! container spec. See docs/usage-containers.md.
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use chrono::SubsecRound;
use clap::{Args, Subcommand};
use serde_json::Value;

use super::GlobalOpts;
use super::internal::{LogsArgs, print_logs};
use super::render::container::{self as ctr_text, PortEntry};
use super::render::text::{docker_command, ellipsis, go_quote, go_time_string, local};
use super::render::{self, Format, Row, Style, Template, tabwriter, units};
use crate::engine::runtime::exec::ExecSpec;
use crate::engine::runtime::spec::MountType;
use crate::objects::{self, CreateOptions, Filters, Listed, ObjectsError};
use crate::state::StateRoot;

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Manage containers (without a compose file)
    #[command(subcommand)]
    Container(Box<ContainerCmd>),
    /// Return low-level information on containers, images, networks or volumes
    Inspect(InspectArgs),
}

#[derive(Subcommand, Debug)]
pub enum ContainerCmd {
    /// Create and run a new container from an image
    Run(RunArgs),
    /// Create a new container
    Create(CreateArgs),
    /// Start one or more stopped containers
    Start(NamesArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Pause all processes within one or more containers
    Pause(NamesArgs),
    /// Unpause all processes within one or more containers
    Unpause(NamesArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// List containers
    #[command(visible_alias = "ps", alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more containers
    Inspect(InspectArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Display the running processes of a container
    Top(NameArg),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(NamesArgs),
    /// Remove all stopped containers
    Prune(PruneArgs),
}

/// `docker create`'s flags (and `run`'s, with `-d`, `--rm`...).
#[derive(Args, Debug, Clone)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    /// Print usage
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Assign a name to the container
    #[arg(long)]
    name: Option<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "KEY=VAL")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Publish a container's port(s) to the host
    #[arg(short, long = "publish", value_name = "[IP:][HOST:]CONTAINER[/PROTO]")]
    publish: Vec<String>,
    /// Bind mount a volume
    #[arg(short, long = "volume", value_name = "SOURCE:TARGET[:ro]")]
    volume: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    entrypoint: Option<String>,
    /// Connect a container to a network (a berth network, host or none)
    #[arg(long, alias = "net")]
    network: Option<String>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    restart: Option<String>,
    /// Memory limit
    #[arg(short, long)]
    memory: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long)]
    cpu_shares: Option<u64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    cap_drop: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    read_only: bool,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    init: bool,
    /// Give extended privileges to this container
    #[arg(long)]
    privileged: bool,
    /// Set meta data on a container
    #[arg(short, long = "label")]
    label: Vec<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    rm: bool,
    #[arg(value_name = "IMAGE")]
    image: String,
    #[arg(value_name = "COMMAND", trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short, long)]
    detach: bool,
    #[command(flatten)]
    create: CreateArgs,
}

#[derive(Args, Debug)]
pub struct NamesArgs {
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NameArg {
    #[arg(value_name = "CONTAINER")]
    container: String,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time", alias = "timeout")]
    time: Option<u64>,
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    volumes: bool,
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Filter output based on conditions provided (name, status, label, id)
    #[arg(short, long, value_name = "KEY=VALUE")]
    filter: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json' or 'TEMPLATE'
    #[arg(long, default_value = "table")]
    format: String,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long, allow_hyphen_values = true, default_value_t = -1)]
    last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    latest: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
    /// Only inspect objects of the given type (container, image, network, volume)
    #[arg(long = "type")]
    kind: Option<String>,
    #[arg(value_name = "NAME|ID", required = true)]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// Set environment variables
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    privileged: bool,
    #[arg(value_name = "CONTAINER")]
    container: String,
    #[arg(value_name = "COMMAND", trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PortArgs {
    #[arg(value_name = "CONTAINER")]
    container: String,
    /// PRIVATE_PORT[/PROTO]
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    port: Option<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

pub fn run(g: &GlobalOpts, c: Commands) -> anyhow::Result<i32> {
    let root = g.state_root();
    match c {
        Commands::Inspect(a) => inspect(g, &root, &a),
        Commands::Container(c) => match *c {
            ContainerCmd::Run(a) => run_container(&root, a),
            ContainerCmd::Create(a) => create(&root, a),
            ContainerCmd::Start(a) => each(&a.containers, |c| Ok(objects::start(&root, c, None)?)),
            ContainerCmd::Stop(a) => {
                let t = a.time.map(Duration::from_secs);
                each(&a.containers, |c| Ok(objects::stop(&root, c, t)?))
            }
            ContainerCmd::Restart(a) => {
                let t = a.time.map(Duration::from_secs);
                each(&a.containers, |c| objects::restart(&root, c, t))
            }
            ContainerCmd::Kill(a) => {
                let sig = crate::util::sys::parse_signal(&a.signal)
                    .ok_or_else(|| anyhow::anyhow!("invalid signal: {}: use a name (KILL, TERM, HUP...) or a number", a.signal))?;
                each(&a.containers, |c| Ok(objects::kill(&root, c, sig)?))
            }
            ContainerCmd::Pause(a) => each(&a.containers, |c| Ok(objects::pause(&root, c)?)),
            ContainerCmd::Unpause(a) => each(&a.containers, |c| Ok(objects::unpause(&root, c)?)),
            ContainerCmd::Rm(a) => each(&a.containers, |c| Ok(objects::remove(&root, c, a.force, a.volumes)?)),
            ContainerCmd::Ls(a) => ls(&root, &a),
            ContainerCmd::Inspect(mut a) => {
                a.kind = Some("container".into());
                inspect(g, &root, &a)
            }
            ContainerCmd::Logs(a) => print_logs(&root, &a),
            ContainerCmd::Exec(a) => exec(&root, a),
            ContainerCmd::Top(a) => {
                let t = objects::top(&root, &a.container)?;
                let mut rows = vec![t.titles];
                rows.extend(t.processes);
                print!("{}", tabwriter::table(&rows, Style { minwidth: 0, padding: 3 }));
                Ok(0)
            }
            ContainerCmd::Port(a) => port(&root, &a),
            ContainerCmd::Wait(a) => {
                let mut code = 0;
                for c in &a.containers {
                    match objects::wait(&root, c) {
                        Ok(exit) => println!("{exit}"),
                        Err(e) => {
                            super::report::print(&anyhow::Error::new(e));
                            code = 1;
                        }
                    }
                }
                Ok(code)
            }
            ContainerCmd::Prune(a) => prune(&root, a.force),
        },
    }
}

/// Runs `op` on each container named, printing the name as given on success and the error
/// otherwise, and goes on: exit 1 if any failed, as Docker's CLI does.
fn each(names: &[String], mut op: impl FnMut(&str) -> Result<(), ObjectsError>) -> anyhow::Result<i32> {
    let mut code = 0;
    for n in names {
        match op(n) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                super::report::print(&anyhow::Error::new(e));
                code = 1;
            }
        }
    }
    Ok(code)
}

impl CreateArgs {
    /// The typed options: env files read and bare `-e KEY`s taken from this process's
    /// environment (dropped when unset), as Docker's CLI does.
    fn options(&self) -> Result<CreateOptions, ObjectsError> {
        let mut env_file_lines = Vec::new();
        for f in &self.env_file {
            env_file_lines.extend(objects::read_env_file(f, |k| std::env::var(k).ok())?);
        }
        let env = self
            .env
            .iter()
            .filter_map(|e| if e.contains('=') { Some(e.clone()) } else { std::env::var(e).ok().map(|v| format!("{e}={v}")) })
            .collect();
        Ok(CreateOptions {
            image: self.image.clone(),
            name: self.name.clone(),
            command: self.command.clone(),
            entrypoint: self.entrypoint.clone(),
            env,
            env_file_lines,
            publish: self.publish.clone(),
            volumes: self.volume.clone(),
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            network: self.network.clone(),
            restart: self.restart.clone(),
            memory: self.memory.clone(),
            cpus: self.cpus,
            cpu_shares: self.cpu_shares,
            pids_limit: self.pids_limit,
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            read_only: self.read_only,
            init: self.init,
            privileged: self.privileged,
            labels: self.label.clone(),
            hostname: self.hostname.clone(),
            auto_remove: self.rm,
            tty: self.tty,
            open_stdin: self.interactive,
        })
    }
}

/// Prints a failed `run`/`create` as Docker does and returns its exit code: the command's
/// own 126/127 when it could not run, else 125.
fn fail_125(e: ObjectsError) -> anyhow::Result<i32> {
    let code = e.exit_code().unwrap_or(125);
    super::report::print(&anyhow::Error::new(e));
    Ok(code)
}

fn cwd() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"))
}

fn create(root: &StateRoot, a: CreateArgs) -> anyhow::Result<i32> {
    let created = a.options().and_then(|o| objects::create(root, &o, &cwd()));
    match created {
        Ok(cfg) => {
            println!("{}", cfg.id);
            Ok(0)
        }
        // Docker 28's `create` exits 1 where `run` exits 125.
        Err(e) => {
            super::report::print(&anyhow::Error::new(e));
            Ok(1)
        }
    }
}

fn run_container(root: &StateRoot, a: RunArgs) -> anyhow::Result<i32> {
    let ran = a.create.options().and_then(|o| objects::run(root, &o, &cwd(), a.detach));
    match ran {
        Ok((id, None)) => {
            println!("{id}");
            Ok(0)
        }
        Ok((_, Some(code))) => Ok(code),
        Err(e) => fail_125(e),
    }
}

fn exec(root: &StateRoot, a: ExecArgs) -> anyhow::Result<i32> {
    let spec = ExecSpec { argv: a.command, env: a.env, user: a.user, workdir: a.workdir, tty: a.tty, privileged: a.privileged };
    let opts = objects::ExecOptions { interactive: a.interactive, tty: a.tty, detach: a.detach };
    match objects::exec(root, &a.container, spec, opts) {
        Ok(code) => Ok(code),
        Err(e) => {
            // Docker: the command's 126/127, else 1 for what the daemon refused.
            let code = e.exit_code().unwrap_or(1);
            super::report::print(&anyhow::Error::new(e));
            Ok(code)
        }
    }
}

/// `docker ps`'s columns.
const TABLE: &str = "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

const HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Names", "NAMES"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Networks", "NETWORKS"),
];

/// One line of `docker ps --format json`: Docker's fields in its (sorted) order.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct PsJson {
    command: String,
    created_at: String,
    #[serde(rename = "ID")]
    id: String,
    image: String,
    labels: String,
    local_volumes: String,
    mounts: String,
    names: String,
    networks: String,
    ports: String,
    running_for: String,
    size: String,
    state: String,
    status: String,
}

fn ps_line(c: &Listed, trunc: bool, now: chrono::DateTime<chrono::Utc>) -> PsJson {
    let cfg = &c.cfg;
    let created = chrono::DateTime::parse_from_rfc3339(&cfg.created).map(|t| t.with_timezone(&chrono::Utc)).unwrap_or_default();
    let command = docker_command(&cfg.argv());
    let mut ports: Vec<PortEntry> = if c.st.status.is_active() {
        c.st.network.as_ref().map(|n| n.ports.iter().map(PortEntry::from_published).collect()).unwrap_or_default()
    } else {
        Vec::new()
    };
    ctr_text::sort_ports(&mut ports);
    let (mut mounts, mut local_volumes) = (Vec::new(), 0);
    for m in &cfg.mounts {
        match m.kind {
            MountType::Volume => local_volumes += 1,
            MountType::Bind => {}
            MountType::Tmpfs => continue,
        }
        mounts.push(if trunc { ellipsis(&m.source, 15) } else { m.source.clone() });
    }
    let mut networks: Vec<String> = match &cfg.network_mode {
        crate::net::NetworkMode::Host => vec!["host".into()],
        crate::net::NetworkMode::None => vec!["none".into()],
        _ => cfg.endpoints.iter().map(|e| e.network.clone()).collect(),
    };
    networks.sort();
    PsJson {
        command: go_quote(&if trunc { ellipsis(&command, 20) } else { command }),
        created_at: go_time_string(&local(&created.trunc_subsecs(0))),
        id: if trunc { crate::util::id::short(&cfg.id).to_string() } else { cfg.id.clone() },
        image: if cfg.image_ref.is_empty() { cfg.image.clone() } else { cfg.image_ref.clone() },
        labels: cfg.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
        local_volumes: local_volumes.to_string(),
        mounts: mounts.join(","),
        names: cfg.name.clone(),
        networks: networks.join(","),
        ports: ctr_text::displayable_ports(&ports),
        running_for: format!("{} ago", units::since(created, now)),
        size: "0B".into(),
        state: c.st.status.as_str().to_string(),
        status: ctr_text::status(&c.st, now),
    }
}

fn ls(root: &StateRoot, a: &LsArgs) -> anyhow::Result<i32> {
    let format = Format::parse(&a.format, TABLE)?;
    let filters = Filters::parse(&a.filter)?;
    let last = if a.latest { 1 } else { a.last };
    let mut list = objects::list(root, a.all || last >= 0, &filters);
    if last >= 0 {
        list.truncate(last as usize);
    }
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for c in &list {
            writeln!(out, "{}", if a.no_trunc { c.cfg.id.as_str() } else { crate::util::id::short(&c.cfg.id) })?;
        }
        return Ok(0);
    }
    let now = chrono::Utc::now();
    let values: Vec<Value> = list.iter().map(|c| serde_json::to_value(ps_line(c, !a.no_trunc, now))).collect::<Result<_, _>>()?;
    let rows: Vec<Row> = list.iter().zip(&values).map(|(c, v)| Row::new(v).with_labels(&c.cfg.labels)).collect();
    out.write_all(render::format::list(&format, HEADERS, &rows)?.as_bytes())?;
    Ok(0)
}

/// `docker inspect`: each name as a container, else an image, a network, a volume (or only
/// the `--type` asked); a name that is none of them is Docker's "No such object" error, exit 1.
fn inspect(g: &GlobalOpts, root: &StateRoot, a: &InspectArgs) -> anyhow::Result<i32> {
    let kind = a.kind.as_deref();
    if let Some(k) = kind.filter(|k| !["container", "image", "network", "volume"].contains(k)) {
        anyhow::bail!("\"{k}\" is not a valid value for --type: use container, image, network or volume");
    }
    let want = |k: &str| kind.is_none_or(|x| x == k);
    let mut docs = Vec::new();
    let mut code = 0;
    for n in &a.names {
        let mut found = None;
        if want("container") {
            match objects::inspect(root, n) {
                Ok(v) => found = Some(v),
                Err(crate::engine::runtime::RuntimeError::NoSuchContainer(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if found.is_none() && want("image") {
            if let Ok(store) = crate::engine::image::ImageStore::open(root) {
                if let Some(img) = store.resolve(n)? {
                    found = Some(super::image::inspect_json(&store, &img));
                }
            }
        }
        if found.is_none() && want("network") {
            if let Ok(info) = crate::net::network::inspect(root, n) {
                found = Some(serde_json::to_value(super::network::inspect_out(&info))?);
            }
        }
        if found.is_none() && want("volume") {
            if let Some(v) = crate::engine::runtime::volumes::get(root, n)? {
                found = Some(super::volume::inspect_json(&v));
            }
        }
        match found {
            Some(v) => docs.push(v),
            None => {
                let what = match kind {
                    Some("container") => format!("No such container: {n}"),
                    Some("image") => format!("No such image: {n}"),
                    Some("network") => format!("No such network: {n}"),
                    Some("volume") => format!("No such volume: {n}"),
                    _ => format!("No such object: {n}"),
                };
                eprintln!("Error: {what}");
                code = 1;
            }
        }
    }
    let _ = g;
    match a.format.as_deref() {
        Some(f) if !f.is_empty() => {
            let t = Template::parse(f)?;
            for d in &docs {
                println!("{}", t.execute(&Row::new(d))?);
            }
        }
        _ => {
            println!("{}", super::render::pretty4(&docs));
        }
    }
    Ok(code)
}

/// `docker port`: every binding as `80/tcp -> 127.0.0.1:8080`, or, for one port, its
/// `127.0.0.1:8080` lines; a port that is not published is Docker's error, exit 1.
fn port(root: &StateRoot, a: &PortArgs) -> anyhow::Result<i32> {
    let ports = objects::ports(root, &a.container)?;
    let join = |ip: &str, p: u16| if ip.contains(':') { format!("[{ip}]:{p}") } else { format!("{ip}:{p}") };
    match &a.port {
        None => {
            for (private, proto, ip, public) in &ports {
                println!("{private}/{proto} -> {}", join(ip, *public));
            }
        }
        Some(p) => {
            let (num, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
            let num: u16 = num.parse().map_err(|_| anyhow::anyhow!("invalid port {p:?}: use PRIVATE_PORT[/PROTO]"))?;
            let hits: Vec<_> = ports.iter().filter(|(q, pr, _, _)| *q == num && pr == proto).collect();
            if hits.is_empty() {
                eprintln!("Error: No public port '{p}' published for {}", a.container);
                return Ok(1);
            }
            for (_, _, ip, public) in hits {
                println!("{}", join(ip, *public));
            }
        }
    }
    Ok(0)
}

fn prune(root: &StateRoot, force: bool) -> anyhow::Result<i32> {
    if !force {
        eprint!("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let (removed, errors) = objects::prune(root);
    if !removed.is_empty() {
        println!("Deleted Containers:");
        for id in &removed {
            println!("{id}");
        }
        println!();
    }
    println!("Total reclaimed space: 0B");
    for e in &errors {
        super::report::print(&anyhow::anyhow!("{e}"));
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
}
