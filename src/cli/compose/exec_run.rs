//! `berth exec` and `berth run`: a command in a service's running container, and a one-off
//! container of a service.
use std::io::IsTerminal;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::cli::GlobalOpts;
use crate::cli::report;
use std::collections::BTreeMap;

use crate::engine::runtime::spec::{self as rspec, MountType};
use crate::engine::runtime::{self, exec::ExecSpec, ops};
use crate::labels;
use crate::project::convert::{container_config, kv, service_container, set_env};

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
    #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    detach: bool,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "KEY=VAL")]
    env: Vec<String>,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    index: u32,
    /// Disable pseudo-TTY allocation. By default `berth exec` allocates a TTY
    #[arg(short = 'T', long = "no-tty", alias = "no-TTY", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    no_tty: bool,
    #[arg(long, hide = true)]
    dry_run: bool,
    /// Give extended privileges to the process
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    privileged: bool,
    /// Run the command as this user
    #[arg(short, long)]
    user: Option<String>,
    /// Path to workdir directory for this command
    #[arg(short, long)]
    workdir: Option<String>,
    /// Keep STDIN open (always on, as in Docker Compose)
    #[arg(short, long, hide = true, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    interactive: bool,
    /// Pseudo-TTY (on by default when stdin is a terminal)
    #[arg(short, long, hide = true, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    tty: bool,
    #[arg(value_name = "SERVICE")]
    service: String,
    #[arg(value_name = "COMMAND", trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    detach: bool,
    /// Automatically remove the container when it exits
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    rm: bool,
    /// Disable pseudo-TTY allocation (default: auto-detected)
    #[arg(short = 'T', long = "no-TTY", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    no_tty: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    tty: bool,
    /// Keep STDIN open even if not attached (on by default)
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
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
    /// Don't start linked services
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    no_deps: bool,
    /// Publish a container's port(s) to the host ([IP:][HOST:]CONTAINER[/PROTO])
    #[arg(short, long = "publish")]
    publish: Vec<String>,
    /// Run command with all service's ports enabled and mapped to the host
    #[arg(short = 'P', long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    service_ports: bool,
    /// Use the service's network aliases in the network(s) the container connects to
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    use_aliases: bool,
    /// Set environment variables from file
    #[arg(long, value_name = "FILE")]
    env_from_file: Vec<std::path::PathBuf>,
    /// Pull image before running ("always"|"missing"|"never")
    #[arg(long, value_enum, default_value = "policy")]
    pull: super::converge::Pull,
    /// Don't print anything to STDOUT
    #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    quiet: bool,
    /// Pull without printing progress information
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    quiet_pull: bool,
    /// Build image before starting container
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    build: bool,
    /// Suppress progress output from the build process
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    quiet_build: bool,
    /// Remove containers for services not defined in the Compose file
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    remove_orphans: bool,
    #[arg(long, hide = true)]
    dry_run: bool,
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
    // As compose's: the project by name (`-p` works from any folder), the container by its labels.
    let name = super::converge::project_name(g)?;
    let root = g.state_root();
    let Some(c) = service_container(&root, &name, &a.service, a.index) else {
        anyhow::bail!("service {:?} is not running", a.service);
    };
    if a.dry_run || g.dry_run {
        // As compose: an attached exec cannot be simulated, so it is refused; a detached one is
        // only announced.
        if !a.detach {
            anyhow::bail!("interactive exec is not supported in dry-run mode");
        }
        let argv: Vec<String> = a.command.iter().map(|s| format!("{s:?}")).collect();
        println!(" DRY-RUN MODE - Executing command [{}] in {} (detached mode)", argv.join(" "), c.id);
        return Ok(0);
    }
    let tty = !a.no_tty && (a.tty || std::io::stdin().is_terminal());
    // `-e VAR` takes VAR from the caller's environment, as compose does (unset there: unset).
    let env =
        a.env.into_iter().map(|e| if e.contains('=') { e } else { std::env::var(&e).map(|v| format!("{e}={v}")).unwrap_or(e) }).collect();
    let spec = ExecSpec { argv: a.command, env, user: a.user, workdir: a.workdir, tty, privileged: a.privileged };
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
/// Its dependencies are brought up first (with their `depends_on` conditions) unless
/// `--no-deps`; the service's ports are published only with `--service-ports`.
fn run_service(g: &GlobalOpts, a: RunArgs) -> anyhow::Result<i32> {
    use super::converge::{self, Run};
    let t = converge::Loaded::load(g)?;
    let project = t.project();
    let service = project.services.get(&a.service).ok_or_else(|| anyhow::anyhow!("no such service: {}", a.service))?;
    let root = g.state_root();
    root.ensure()?;
    let publish = a.publish.iter().map(|p| parse_publish(p)).collect::<anyhow::Result<Vec<_>>>()?;
    if a.dry_run || g.dry_run {
        eprintln!(" DRY-RUN MODE - run a one-off container of service {}", a.service);
        return Ok(0);
    }
    // The dependencies, as `up -d` brings them (the one-off itself is not a replica).
    let desired0 = t.desired(&BTreeMap::new(), &BTreeMap::new())?;
    let mut wanted = desired0.oneoff_dependencies(&a.service, a.no_deps)?;
    wanted.push(a.service.clone());
    converge::warn_unapplied(project, &wanted);
    let io = converge::ImageOptions {
        pull: a.pull,
        build: a.build,
        quiet: a.quiet_pull || a.quiet,
        quiet_build: a.quiet_build || a.quiet,
        ..Default::default()
    };
    let (store, images) = converge::images(g, project, &wanted, io)?;
    {
        let lock = t.lock()?;
        let ids: BTreeMap<String, String> = images.iter().map(|(k, v)| (k.clone(), v.id.to_string())).collect();
        let desired = t.desired(&ids, &BTreeMap::new())?;
        let observed = t.observe()?;
        let opts = crate::project::plan::RunOptions { service: a.service.clone(), no_deps: a.no_deps, remove_orphans: a.remove_orphans };
        let plan = crate::project::plan::run(&desired, &observed, &opts)?;
        if !plan.is_empty() {
            let run = Run {
                g,
                target: &t,
                images: &images,
                store: Some(&store),
                title: "Running",
                deadline: None,
                timeout: None,
                renew_anon_volumes: false,
            };
            let report = converge::run_plan(&run, &plan);
            let code = converge::report(&t, &report, None);
            if code != 0 {
                return Ok(code);
            }
        }
        drop(lock);
    }
    let image = images.get(&a.service).ok_or_else(|| anyhow::anyhow!("service {:?} has no image", a.service))?;
    for m in service.volumes.iter().filter(|m| m.kind == "volume") {
        if let Some(key) = m.source.as_deref().filter(|k| project.volumes.contains_key(*k)) {
            crate::project::convert::ensure_volume(&root, project, key)?;
        }
    }
    let mut cfg = container_config(&root, project, service, image, &store)?;
    // One-off containers: never restarted, named after the project and service; the service's
    // ports only with --service-ports, and its network aliases only with --use-aliases.
    cfg.restart_policy = rspec::RestartPolicy::default();
    if a.service_ports {
        cfg.ports = crate::project::convert::service_ports(service, &cfg)?;
    }
    cfg.ports.extend(publish);
    if !a.use_aliases {
        for e in cfg.endpoints.iter_mut() {
            e.aliases.clear();
        }
    }
    let slug = crate::util::id::new_id();
    cfg.name = a.name.clone().unwrap_or_else(|| crate::project::naming::oneoff_name(&project.name, &service.name, &slug));
    cfg.labels.insert(labels::ONEOFF.into(), "True".into());
    cfg.labels.insert(labels::SLUG.into(), slug);
    cfg.labels.insert(labels::CONFIG_HASH.into(), crate::project::hash::service_hash(service));
    cfg.labels.insert(labels::DEPENDS_ON.into(), crate::project::graph::depends_on_label(service));
    cfg.labels.extend(kv(&a.labels));
    for f in &a.env_from_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("cannot read the env file {}", f.display()))?;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            set_env(&mut cfg.env, line.to_string());
        }
    }
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
        // The loader's parser: `-v` reads as a short `volumes:` entry does in the file.
        let spec = crate::project::canonical::parse_volume(v).map_err(|e| anyhow::anyhow!("{e}: use SOURCE:TARGET[:ro]"))?;
        let (src, dst, ro) = (spec.source.as_str(), spec.target.as_str(), spec.read_only);
        let is_path = spec.kind == "bind";
        let source = if src.starts_with('.') {
            project.working_dir.join(src).display().to_string()
        } else if !is_path && project.volumes.contains_key(src) {
            crate::project::convert::ensure_volume(&root, project, src)?
        } else {
            src.to_string()
        };
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
            if !a.quiet {
                println!("{id}");
            }
            Ok(0)
        }
        Ok((_, Some(code))) => Ok(code),
        // A container that cannot start (a missing command, ...) is an error of `run`, rc 1, as
        // in compose; `docker run`'s 126/127 are not `docker compose run`'s.
        Err(e) => match e.exit_code() {
            Some(_) => {
                report::print(&anyhow::Error::new(e));
                Ok(1)
            }
            None => Err(e.into()),
        },
    }
}

/// `-p [IP:][HOST[-END]:]CONTAINER[/PROTO]`, as `docker run -p` takes it.
fn parse_publish(s: &str) -> anyhow::Result<crate::net::PortRequest> {
    use crate::net::{PortRequest, Protocol};
    let bad = || anyhow::anyhow!("invalid --publish {s:?}: use [IP:][HOST:]CONTAINER[/tcp|udp]");
    let (spec, proto) = match s.rsplit_once('/') {
        Some((a, "tcp")) => (a, Protocol::Tcp),
        Some((a, "udp")) => (a, Protocol::Udp),
        Some(_) => return Err(bad()),
        None => (s, Protocol::Tcp),
    };
    // An IPv6 address is written in brackets.
    let (ip, rest) = match spec.strip_prefix('[') {
        Some(r) => {
            let (ip, rest) = r.split_once("]:").ok_or_else(bad)?;
            (Some(ip.to_string()), rest.to_string())
        }
        None => (None, spec.to_string()),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match (ip, parts.as_slice()) {
        (None, [c]) => (None, None, *c),
        (None, [h, c]) => (None, Some(*h), *c),
        (None, [i, h, c]) => (Some(i.to_string()), Some(*h), *c),
        (Some(i), [h, c]) => (Some(i), Some(*h), *c),
        _ => return Err(bad()),
    };
    let port = |x: &str| x.parse::<u16>().map_err(|_| bad());
    let (host_port, host_port_end) = match host.filter(|h| !h.is_empty()) {
        None => (None, None),
        Some(h) => match h.split_once('-') {
            Some((a, b)) => (Some(port(a)?), Some(port(b)?)),
            None => (Some(port(h)?).filter(|p| *p != 0), None),
        },
    };
    Ok(PortRequest {
        host_ip: ip.filter(|i| !i.is_empty()).map(|i| i.parse()).transpose().map_err(|_| bad())?,
        host_port,
        container_port: port(container)?,
        protocol: proto,
        host_port_end,
    })
}

/// Splits `--entrypoint "sh -c"` as a shell would (quotes, no expansion).
pub(crate) fn shell_words(s: &str) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::parse_publish;

    #[test]
    fn publish_specs() {
        let p = parse_publish("8080:80").unwrap();
        assert_eq!((p.host_port, p.container_port), (Some(8080), 80));
        let p = parse_publish("127.0.0.1:8080:80/udp").unwrap();
        assert_eq!(p.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(p.protocol, crate::net::Protocol::Udp);
        let p = parse_publish("[::1]:9000-9005:80").unwrap();
        assert_eq!((p.host_port, p.host_port_end), (Some(9000), Some(9005)));
        assert_eq!(parse_publish("80").unwrap().host_port, None);
        assert!(parse_publish("a:b").is_err());
        assert!(parse_publish("80/sctp").is_err());
    }
}
