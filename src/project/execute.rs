//! The executor: runs a [`Plan`] in parallel, each step once the steps it waits for are done,
//! with at most `parallel` container and resource operations at a time (waits on `depends_on`
//! conditions do not count: they only poll). A failed step skips every step that depends on it
//! (unless that step is an optional dependency's wait) and the rest carry on; every error is
//! returned. Progress goes to a [`Sink`] as compose's events (`Container web-1  Started`).
//!
//! Ctrl-C sets the `cancel` flag: nothing new starts, running steps finish, and the project is
//! left in a state the next `up` or `down` completes.
//!
//! Every operation goes through the [`Engine`] in the [`Context`] (the real one, or in the unit
//! tests of `execute/tests.rs` a recording fake).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::convert::{self, ConvertError};
use super::engine::Engine;
use super::model::Project;
use super::plan::{Condition, Op, Plan, Step};
use crate::engine::image::Image;
use crate::engine::runtime::spec::{Mount, MountType};
use crate::engine::runtime::state::{HealthStatus, Status};
use crate::engine::runtime::{RuntimeError, volumes};
use crate::util::error::one_line;

/// What went wrong in one step.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error(transparent)]
    Volume(#[from] volumes::VolumeError),
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error("dependency failed to start: container {0} is unhealthy")]
    Unhealthy(String),
    #[error("container {0} has no healthcheck configured")]
    NoHealthcheck(String),
    #[error("container {name} exited ({code})")]
    Exited { name: String, code: i32 },
    #[error("service {service:?} didn't complete successfully: exit {code}")]
    NotCompleted { service: String, code: i32 },
    #[error("container {name} did not start: {reason}")]
    NotStarted { name: String, reason: String },
    #[error("{dependent} is missing dependency {service}")]
    MissingDependency { dependent: String, service: String },
    /// A wait passed `--wait-timeout`.
    #[error("timeout waiting for {}", .kind.subject(.service))]
    Timeout { kind: WaitKind, service: String },
    #[error("service {0:?} has no image: pull or build it first")]
    NoImage(String),
    #[error("service {0:?} is not in the loaded project")]
    NoService(String),
    #[error("invalid signal {0:?}")]
    Signal(String),
    #[error("service {service:?}: host port {addr}/{proto} is already in use on this host; nothing was created")]
    PortInUse { service: String, addr: String, proto: &'static str },
}

/// Who a wait is for, which is what its timeout says: `up --wait` waits on each service itself,
/// a dependent on its dependencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitKind {
    /// `up --wait`: the service's own containers.
    Service,
    /// A dependent service's `depends_on`.
    Dependencies,
}

impl WaitKind {
    /// What is waited for, as compose names it (`service "web"`, `dependencies`).
    fn subject(&self, service: &str) -> String {
        match self {
            WaitKind::Service => format!("service {service:?}"),
            WaitKind::Dependencies => "dependencies".to_string(),
        }
    }
}

/// How a resource's line ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Working,
    Done,
    Warning,
    Error,
}

/// One progress event: `kind` is `Container`, `Network`, `Volume` or `Service`; `text` what
/// compose prints (`Creating`, `Started`, `Healthy`, an error message).
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: &'static str,
    pub name: String,
    pub state: State,
    pub text: String,
}

/// Where progress goes (the CLI's renderer).
pub trait Sink: Sync {
    fn event(&self, e: Event);
    /// A warning that belongs to no resource.
    fn warning(&self, msg: &str);
}

/// A sink that drops everything.
pub struct Silent;

impl Sink for Silent {
    fn event(&self, _e: Event) {}
    fn warning(&self, _msg: &str) {}
}

/// What the executor needs besides the plan.
pub struct Context<'a> {
    /// What runs the operations ([`super::engine::RealEngine`] on a state root).
    pub engine: &'a dyn Engine,
    /// The loaded project (needed to create containers, networks and volumes).
    pub project: Option<&'a Project>,
    /// Each service's image (needed to create its containers).
    pub images: &'a BTreeMap<String, Image>,
    /// At most this many operations at once; 0 is unlimited.
    pub parallel: usize,
    /// Waits fail after this instant (`--wait-timeout`).
    pub deadline: Option<Instant>,
    /// The grace period for containers stopped to be replaced or removed (`-t`); None: each
    /// container's own.
    pub timeout: Option<Duration>,
    /// `-V`: recreated containers get new anonymous volumes instead of their predecessor's.
    pub renew_anon_volumes: bool,
    /// Set by Ctrl-C: start nothing new.
    pub cancel: &'a AtomicBool,
    pub sink: &'a dyn Sink,
}

/// The outcome of a run: the errors of the steps that failed, in the order they failed, and
/// whether the run was cancelled.
#[derive(Debug, Default)]
pub struct Report {
    /// (the service of the step, or the network's or volume's name; the error).
    pub errors: Vec<(String, ExecError)>,
    pub canceled: bool,
    /// Steps not run because a step they needed failed (or the run was cancelled).
    pub skipped: usize,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.errors.is_empty() && !self.canceled
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    Pending,
    Running,
    Done,
    Failed,
    Skipped,
}

/// Steps that only wait run outside the concurrency limit; an optional dependency's wait runs
/// even when the dependency failed.
fn limited(s: &Step) -> bool {
    !matches!(s.op, Op::Wait { .. } | Op::Running { .. })
}
fn soft(s: &Step) -> bool {
    matches!(s.op, Op::Wait { required: false, .. })
}

/// Runs the plan and reports every error.
/// Checks, before anything of the plan is done, that every fixed host port a new container will
/// publish is free on the host (by binding it for a moment, as its supervisor will): a port taken
/// by another program otherwise fails `up` at that container's start, after the networks and the
/// containers before it were made. A container that replaces another is not checked (the one it
/// replaces holds its ports until then), nor are port ranges (a free one is picked at start).
pub fn check_host_ports(project: Option<&Project>, plan: &Plan) -> Result<(), ExecError> {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
    let Some(p) = project else { return Ok(()) };
    let mut seen: Vec<&str> = Vec::new();
    for step in &plan.steps {
        let Op::Create { service, replace: None, .. } = &step.op else { continue };
        if seen.contains(&service.as_str()) {
            continue;
        }
        seen.push(service);
        let Some(svc) = p.services.get(service) else { continue };
        if matches!(svc.network_mode.as_deref(), Some("host" | "none")) {
            continue;
        }
        for r in convert::port_requests(svc)? {
            let (Some(port), None) = (r.host_port, r.host_port_end) else { continue };
            let addr = SocketAddr::new(r.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), port);
            let (bound, proto) = match r.protocol {
                crate::net::Protocol::Tcp => (TcpListener::bind(addr).map(drop), "tcp"),
                crate::net::Protocol::Udp => (UdpSocket::bind(addr).map(drop), "udp"),
            };
            if bound.is_err_and(|e| e.kind() == std::io::ErrorKind::AddrInUse) {
                return Err(ExecError::PortInUse { service: service.clone(), addr: addr.to_string(), proto });
            }
        }
    }
    Ok(())
}

pub fn execute(ctx: &Context, plan: &Plan) -> Report {
    for w in &plan.warnings {
        ctx.sink.warning(w);
    }
    let n = plan.steps.len();
    let mut st = vec![St::Pending; n];
    let mut report = Report::default();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, Result<(), ExecError>)>();
        let mut running = 0usize;
        let mut running_limited = 0usize;
        loop {
            let canceled = ctx.cancel.load(Ordering::Relaxed);
            // Schedule every step that can go; repeat while skips cascade.
            let mut changed = true;
            while changed {
                changed = false;
                for i in 0..n {
                    if st[i] != St::Pending {
                        continue;
                    }
                    let step = &plan.steps[i];
                    let deps: Vec<St> = step.after.iter().map(|a| st[a - 1]).collect();
                    let broken = deps.iter().any(|d| matches!(d, St::Failed | St::Skipped));
                    if canceled || (broken && !soft(step)) {
                        st[i] = St::Skipped;
                        report.skipped += 1;
                        changed = true;
                        continue;
                    }
                    if deps.iter().any(|d| matches!(d, St::Pending | St::Running)) {
                        continue;
                    }
                    if limited(step) {
                        if ctx.parallel > 0 && running_limited >= ctx.parallel {
                            continue;
                        }
                        running_limited += 1;
                    }
                    st[i] = St::Running;
                    running += 1;
                    let tx2 = tx.clone();
                    let spawned = std::thread::Builder::new().name(format!("step-{}", step.id)).spawn_scoped(scope, move || {
                        let r = run_step(ctx, step);
                        let _ = tx2.send((i, r));
                    });
                    if spawned.is_err() {
                        // No thread to be had: run it here.
                        let _ = tx.send((i, run_step(ctx, step)));
                    }
                }
            }
            if running == 0 {
                break;
            }
            let Ok((i, r)) = rx.recv() else { break };
            running -= 1;
            if limited(&plan.steps[i]) {
                running_limited -= 1;
            }
            match r {
                Ok(()) => st[i] = St::Done,
                Err(e) => {
                    st[i] = St::Failed;
                    let op = &plan.steps[i].op;
                    let who = op.service().unwrap_or(op.resource().1);
                    report.errors.push((who.to_string(), e));
                }
            }
        }
    });
    report.canceled = ctx.cancel.load(Ordering::Relaxed) && st.contains(&St::Skipped);
    report
}

fn emit(ctx: &Context, kind: &'static str, name: &str, state: State, text: impl Into<String>) {
    ctx.sink.event(Event { kind, name: name.to_string(), state, text: text.into() });
}

/// Runs one step, with its progress events; an error is also shown on the resource's line.
fn run_step(ctx: &Context, step: &Step) -> Result<(), ExecError> {
    let (kind, name) = step.op.resource();
    let r = run_op(ctx, &step.op);
    if let Err(e) = &r {
        if !matches!(step.op, Op::Wait { .. }) {
            emit(ctx, kind, name, State::Error, one_line(e));
        }
    }
    r
}

fn run_op(ctx: &Context, op: &Op) -> Result<(), ExecError> {
    let engine = ctx.engine;
    let (kind, name) = op.resource();
    let ev = |state: State, text: &str| emit(ctx, kind, name, state, text);
    match op {
        Op::CreateNetwork { name, key } => {
            let p = ctx.project.ok_or_else(|| ExecError::NoService(key.clone()))?;
            let n = p.networks.get(key).cloned().unwrap_or_default();
            ev(State::Working, "Creating");
            match engine.network_create(convert::network_spec(p, key, &n)) {
                Ok(_) | Err(crate::net::NetError::NetworkExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
            debug_assert_eq!(name, &convert::network_name(p, key));
            ev(State::Done, "Created");
        }
        Op::CreateVolume { key, .. } => {
            let p = ctx.project.ok_or_else(|| ExecError::NoService(key.clone()))?;
            ev(State::Working, "Creating");
            convert::ensure_volume_on(engine, p, key)?;
            ev(State::Done, "Created");
        }
        Op::Create { service, number, name, replace } => {
            let p = ctx.project.ok_or_else(|| ExecError::NoService(service.clone()))?;
            let svc = p.services.get(service).ok_or_else(|| ExecError::NoService(service.clone()))?;
            let image = ctx.images.get(service).ok_or_else(|| ExecError::NoImage(service.clone()))?;
            let layers = engine.image_layers(image).ok_or_else(|| ExecError::NoImage(service.clone()))?;
            let mut inherited: Vec<Mount> = Vec::new();
            if let Some(old) = replace {
                ev(State::Working, "Recreate");
                if let Ok(c) = engine.container_inspect(old) {
                    let st = engine.container_state(&c.id)?;
                    // Anonymous volumes go to the new container, as compose does.
                    if !ctx.renew_anon_volumes {
                        inherited = c
                            .mounts
                            .iter()
                            .filter(|m| m.kind == MountType::Volume && st.anonymous_volumes.contains(&m.source))
                            .cloned()
                            .collect();
                    }
                    engine.container_stop(&c.id, ctx.timeout)?;
                    engine.container_remove(&c.id, true, false)?;
                }
            } else {
                ev(State::Working, "Creating");
            }
            let host = convert::host_inputs(engine, p, svc, layers);
            let mut cfg = convert::service_spec(p, svc, image, &host, *number)?;
            convert::check_host(p, svc, &cfg)?;
            cfg.name = name.clone();
            for m in inherited {
                let t = crate::engine::runtime::spec::normalize(&m.target);
                match cfg.mounts.iter_mut().find(|x| crate::engine::runtime::spec::normalize(&x.target) == t) {
                    // The same anonymous volume (`- /data`): the old one's data.
                    Some(x) if x.kind == MountType::Volume && x.source.is_empty() => x.source = m.source,
                    Some(_) => {}
                    // An image VOLUME: mounted where the image wants it.
                    None => cfg.mounts.push(m),
                }
            }
            engine.container_create(cfg)?;
            ev(State::Done, if replace.is_some() { "Recreated" } else { "Created" });
        }
        Op::Start { name, .. } => {
            ev(State::Working, "Starting");
            engine.container_start(name)?;
            ev(State::Done, "Started");
        }
        Op::Running { .. } => ev(State::Done, "Running"),
        Op::Stop { name, timeout, .. } => {
            ev(State::Working, "Stopping");
            engine.container_stop(name, timeout.map(Duration::from_secs))?;
            ev(State::Done, "Stopped");
        }
        Op::Restart { name, timeout, .. } => {
            ev(State::Working, "Restarting");
            engine.container_restart(name, timeout.map(Duration::from_secs))?;
            ev(State::Done, "Started");
        }
        Op::Kill { name, signal, .. } => {
            let sig = crate::util::sys::parse_signal(signal).ok_or_else(|| ExecError::Signal(signal.clone()))?;
            ev(State::Working, "Killing");
            engine.container_kill(name, sig)?;
            ev(State::Done, "Killed");
        }
        Op::Pause { name, .. } => {
            engine.container_pause(name)?;
            ev(State::Done, "Paused");
        }
        Op::Unpause { name, .. } => {
            engine.container_unpause(name)?;
            ev(State::Done, "Unpaused");
        }
        Op::Remove { name, volumes: with_volumes, .. } => {
            let c = match engine.container_inspect(name) {
                Ok(c) => c,
                Err(RuntimeError::NoSuchContainer(_)) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            let st = engine.container_state(&c.id)?;
            if st.status.is_active() {
                ev(State::Working, "Stopping");
                engine.container_stop(&c.id, ctx.timeout)?;
                ev(State::Done, "Stopped");
            }
            ev(State::Working, "Removing");
            // Anonymous volumes it inherited from a container it replaced go with `-v` too.
            let anon: Vec<String> = c
                .mounts
                .iter()
                .filter(|m| m.kind == MountType::Volume && !m.source.is_empty())
                .filter(|m| engine.volume_inspect(&m.source).ok().flatten().is_some_and(|v| v.is_anonymous()))
                .map(|m| m.source.clone())
                .collect();
            engine.container_remove(&c.id, true, *with_volumes)?;
            if *with_volumes {
                for v in anon {
                    if engine.volume_users(&v).is_empty() {
                        let _ = engine.volume_remove(&v, true);
                    }
                }
            }
            ev(State::Done, "Removed");
        }
        Op::RemoveNetwork { name } => {
            ev(State::Working, "Removing");
            match engine.network_remove(name) {
                Ok(_) | Err(crate::net::NetError::NetworkNotFound(_)) => ev(State::Done, "Removed"),
                Err(crate::net::NetError::NetworkInUse { .. }) => ev(State::Warning, "Resource is still in use"),
                Err(e) => return Err(e.into()),
            }
        }
        Op::RemoveVolume { name } => {
            ev(State::Working, "Removing");
            match engine.volume_remove(name, false) {
                Ok(()) | Err(volumes::VolumeError::NotFound(_)) => ev(State::Done, "Removed"),
                Err(volumes::VolumeError::InUse { .. }) => ev(State::Warning, "Resource is still in use"),
                Err(e) => return Err(e.into()),
            }
        }
        Op::Wait { service, dependent, condition, required, containers } => {
            return wait(ctx, service, dependent, *condition, *required, containers);
        }
    }
    Ok(())
}

/// How long a container without a healthcheck must have run before `up --wait` counts it as
/// running. Compose looks first half a second after the start, so that a service that crashes
/// at once, or a one-shot job, fails the wait with `container <name> exited (N)` instead of
/// passing it: a CI gate must not pass on a crashed service.
const SETTLE: Duration = Duration::from_millis(500);

/// Whether a container that started at `started_at` (RFC 3339) has run for [`SETTLE`].
fn settled(started_at: &str) -> bool {
    match chrono::DateTime::parse_from_rfc3339(started_at) {
        Ok(t) => chrono::Utc::now().signed_duration_since(t).to_std().is_ok_and(|d| d >= SETTLE),
        Err(_) => true,
    }
}

/// Polls the containers of `service` until they meet `condition`.
fn wait(
    ctx: &Context,
    service: &str,
    dependent: &str,
    condition: Condition,
    required: bool,
    containers: &[String],
) -> Result<(), ExecError> {
    let mut ids = Vec::new();
    for name in containers {
        if let Ok(c) = ctx.engine.container_inspect(name) {
            let hc = c.healthcheck.as_ref().is_some_and(|h| !h.test.is_empty() && h.test[0] != "NONE");
            ids.push((name.clone(), c.id, hc));
        }
    }
    if ids.is_empty() {
        if required && condition != Condition::Started {
            return Err(ExecError::MissingDependency { dependent: dependent.to_string(), service: service.to_string() });
        }
        return Ok(());
    }
    if condition == Condition::Started {
        return Ok(());
    }
    for (name, _, _) in &ids {
        emit(ctx, "Container", name, State::Working, "Waiting");
    }
    let mut pending: Vec<(String, String, bool)> = ids;
    let created_since = Instant::now();
    let mut delay = Duration::from_millis(5);
    let result = loop {
        let mut failed = None;
        let mut left = Vec::new();
        for (name, id, hc) in pending {
            let st = ctx.engine.container_state(&id)?;
            let health = st.health.as_ref().map(|h| h.status).unwrap_or_default();
            let r: Option<Result<&str, ExecError>> = match condition {
                Condition::Started => Some(Ok("Started")),
                _ if st.status == Status::Created && (!st.error.is_empty() || created_since.elapsed() > Duration::from_secs(3)) => {
                    let reason = if st.error.is_empty() { "it is still created, not running".to_string() } else { st.error.clone() };
                    Some(Err(ExecError::NotStarted { name: name.clone(), reason }))
                }
                Condition::Healthy | Condition::RunningOrHealthy => {
                    // `up --wait` on a container Restarting: it exited and its restart policy
                    // brings it back, a crash all the same (compose would wait on, until it
                    // happens to see it running between two crashes).
                    let restarting = st.status == Status::Restarting && condition == Condition::RunningOrHealthy;
                    if (!st.status.is_active() && st.status != Status::Created) || restarting {
                        Some(Err(ExecError::Exited { name: name.clone(), code: st.exit_code }))
                    } else if !hc && condition == Condition::Healthy {
                        Some(Err(ExecError::NoHealthcheck(name.clone())))
                    } else if !hc {
                        (st.status == Status::Running && settled(&st.started_at)).then_some(Ok("Running"))
                    } else if health == HealthStatus::Healthy {
                        Some(Ok("Healthy"))
                    } else if health == HealthStatus::Unhealthy {
                        Some(Err(ExecError::Unhealthy(name.clone())))
                    } else {
                        None
                    }
                }
                Condition::CompletedSuccessfully => {
                    if st.status == Status::Exited || st.status == Status::Dead {
                        if st.exit_code == 0 {
                            Some(Ok("Exited"))
                        } else {
                            Some(Err(ExecError::NotCompleted { service: service.to_string(), code: st.exit_code }))
                        }
                    } else {
                        None
                    }
                }
            };
            match r {
                None => left.push((name, id, hc)),
                Some(Ok(text)) => emit(ctx, "Container", &name, State::Done, text),
                Some(Err(e)) => {
                    if failed.is_none() {
                        failed = Some((name, e));
                    }
                }
            }
        }
        if let Some((name, e)) = failed {
            break Err((name, e));
        }
        if left.is_empty() {
            break Ok(());
        }
        if ctx.cancel.load(Ordering::Relaxed) {
            return Ok(());
        }
        if ctx.deadline.is_some_and(|d| Instant::now() >= d) {
            let kind = if dependent.is_empty() { WaitKind::Service } else { WaitKind::Dependencies };
            break Err((left[0].0.clone(), ExecError::Timeout { kind, service: service.to_string() }));
        }
        pending = left;
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
    };
    match result {
        Ok(()) => Ok(()),
        Err((name, e)) if !required => {
            let msg = match &e {
                ExecError::NotCompleted { service, code } => {
                    format!("optional dependency {service:?} didn't complete successfully: exit {code}")
                }
                _ => format!("optional dependency {service:?} failed to start: {}", one_line(&e)),
            };
            emit(ctx, "Container", &name, State::Warning, "Skipped");
            ctx.sink.warning(&msg);
            Ok(())
        }
        Err((name, e)) => {
            emit(ctx, "Container", &name, State::Error, one_line(&e));
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests;
