//! The planner: what a command must do, from the project (as [`Desired`]) and what the host has
//! ([`Observed`]). It is pure: no I/O, no clock, so its output is tested as golden text, and
//! `--dry-run` prints it.
//!
//! A [`Plan`] is a DAG of [`Step`]s, each one operation on one resource with the steps it waits
//! for. The executor ([`super::execute`]) runs it in parallel in that order. The rules follow
//! Docker Compose (`reconcile.go`, `convergence.go`):
//! - networks and volumes first; a network or volume that exists without this project's labels
//!   is used with a warning, an external one must exist;
//! - a container is recreated only when its config hash or image changed, a namespace parent
//!   (`network_mode`/`ipc`/`pid: service:x`, `volumes_from`) is recreated, or with
//!   `--force-recreate`; a running one is left alone, a stopped one is started again;
//! - replicas beyond the scale are removed (highest numbers first), missing ones created;
//! - a service starts once each dependency meets its `depends_on` condition; a dependency with
//!   `required: false` never blocks it; dependents with `restart: true` are stopped before their
//!   dependency is recreated and started again after it;
//! - stop and down run in reverse dependency order.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::graph::DepGraph;
use super::model::Project;
use super::naming;
use super::observe::{Container, Observed};

/// Why no plan can be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("no such service: {0}")]
    NoSuchService(String),
    #[error("service {0:?} sets container_name, so it cannot be scaled above 1: remove container_name or set the scale to 1")]
    ContainerNameScale(String),
    #[error("network {0} declared as external, but could not be found: create it with `berth network create {0}`")]
    ExternalNetwork(String),
    #[error("external volume {0:?} not found: create it with `berth volume create {0}`")]
    ExternalVolume(String),
    #[error("service {0:?} has no container to start: run `berth up` to create it")]
    NoContainer(String),
}

/// A condition to wait for: a `depends_on` one, or `up --wait`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Condition {
    /// The dependency's containers were started.
    Started,
    /// Each is running and healthy.
    Healthy,
    /// Each exited with code 0.
    CompletedSuccessfully,
    /// `up --wait`: running, and healthy when it has a healthcheck.
    RunningOrHealthy,
}

impl Condition {
    /// A condition as a label writes it; anything unknown is `service_started` (labels of
    /// containers made elsewhere are read leniently: the file's are checked by the loader).
    pub fn parse(s: &str) -> Condition {
        super::model::Condition::parse(s).map(Condition::from).unwrap_or(Condition::Started)
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Condition::Started => super::model::Condition::Started.as_str(),
            Condition::Healthy => super::model::Condition::Healthy.as_str(),
            Condition::CompletedSuccessfully => super::model::Condition::CompletedSuccessfully.as_str(),
            Condition::RunningOrHealthy => "running_or_healthy",
        }
    }
}

impl From<super::model::Condition> for Condition {
    fn from(c: super::model::Condition) -> Condition {
        match c {
            super::model::Condition::Started => Condition::Started,
            super::model::Condition::Healthy => Condition::Healthy,
            super::model::Condition::CompletedSuccessfully => Condition::CompletedSuccessfully,
        }
    }
}

/// One operation on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    CreateNetwork {
        name: String,
        key: String,
    },
    CreateVolume {
        name: String,
        key: String,
    },
    /// Creates replica `number` of `service` as `name`; `replace` is the container it replaces
    /// (stopped and removed first, its anonymous volumes inherited).
    Create {
        service: String,
        number: u32,
        name: String,
        replace: Option<String>,
    },
    Start {
        service: String,
        name: String,
    },
    /// Already running: nothing to do (reported as "Running").
    Running {
        service: String,
        name: String,
    },
    /// `timeout` in seconds; None: the container's own grace period.
    Stop {
        service: String,
        name: String,
        timeout: Option<u64>,
    },
    Restart {
        service: String,
        name: String,
        timeout: Option<u64>,
    },
    Kill {
        service: String,
        name: String,
        signal: String,
    },
    Pause {
        service: String,
        name: String,
    },
    Unpause {
        service: String,
        name: String,
    },
    /// Removes the container, stopping (killing) it first when it runs.
    Remove {
        service: String,
        name: String,
        volumes: bool,
    },
    /// Waits until the containers of `service` meet `condition`, on behalf of `dependent`
    /// (empty for `up --wait`). A dependency that is not `required` never fails the wait.
    Wait {
        service: String,
        dependent: String,
        condition: Condition,
        required: bool,
        containers: Vec<String>,
    },
    RemoveNetwork {
        name: String,
    },
    RemoveVolume {
        name: String,
    },
}

impl Op {
    /// The kind and name of the resource, as progress shows it (`Container web-1`).
    pub fn resource(&self) -> (&'static str, &str) {
        match self {
            Op::CreateNetwork { name, .. } | Op::RemoveNetwork { name } => ("Network", name),
            Op::CreateVolume { name, .. } | Op::RemoveVolume { name } => ("Volume", name),
            Op::Wait { service, .. } => ("Service", service),
            Op::Create { name, .. }
            | Op::Start { name, .. }
            | Op::Running { name, .. }
            | Op::Stop { name, .. }
            | Op::Restart { name, .. }
            | Op::Kill { name, .. }
            | Op::Pause { name, .. }
            | Op::Unpause { name, .. }
            | Op::Remove { name, .. } => ("Container", name),
        }
    }

    /// The service a step works for (None for networks and volumes).
    pub fn service(&self) -> Option<&str> {
        match self {
            Op::CreateNetwork { .. } | Op::RemoveNetwork { .. } | Op::CreateVolume { .. } | Op::RemoveVolume { .. } => None,
            Op::Wait { service, .. }
            | Op::Create { service, .. }
            | Op::Start { service, .. }
            | Op::Running { service, .. }
            | Op::Stop { service, .. }
            | Op::Restart { service, .. }
            | Op::Kill { service, .. }
            | Op::Pause { service, .. }
            | Op::Unpause { service, .. }
            | Op::Remove { service, .. } => Some(service),
        }
    }

    fn describe(&self) -> String {
        let (kind, name) = self.resource();
        let kind = kind.to_lowercase();
        match self {
            Op::CreateNetwork { .. } | Op::CreateVolume { .. } => format!("{kind} {name}: create"),
            Op::RemoveNetwork { .. } | Op::RemoveVolume { .. } => format!("{kind} {name}: remove"),
            Op::Create { replace: Some(old), .. } => format!("{kind} {name}: recreate (replaces {old})"),
            Op::Create { .. } => format!("{kind} {name}: create"),
            Op::Start { .. } => format!("{kind} {name}: start"),
            Op::Running { .. } => format!("{kind} {name}: running"),
            Op::Stop { timeout: Some(t), .. } => format!("{kind} {name}: stop (timeout {t}s)"),
            Op::Stop { .. } => format!("{kind} {name}: stop"),
            Op::Restart { timeout: Some(t), .. } => format!("{kind} {name}: restart (timeout {t}s)"),
            Op::Restart { .. } => format!("{kind} {name}: restart"),
            Op::Kill { signal, .. } => format!("{kind} {name}: kill {signal}"),
            Op::Pause { .. } => format!("{kind} {name}: pause"),
            Op::Unpause { .. } => format!("{kind} {name}: unpause"),
            Op::Remove { volumes: true, .. } => format!("{kind} {name}: remove with its anonymous volumes"),
            Op::Remove { .. } => format!("{kind} {name}: remove"),
            Op::Wait { dependent, condition, required, .. } => {
                let who = if dependent.is_empty() { "--wait".to_string() } else { dependent.clone() };
                let opt = if *required { "" } else { ", optional" };
                format!("service {name}: wait {} (for {who}{opt})", condition.as_str())
            }
        }
    }
}

/// One node of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// 1-based, the index in [`Plan::steps`] plus one.
    pub id: usize,
    pub op: Op,
    /// Why (empty when obvious).
    pub cause: String,
    /// The steps that must be done first.
    pub after: Vec<usize>,
}

/// What a command will do: steps in a valid order (each after the steps it waits for), and
/// warnings to show the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub warnings: Vec<String>,
}

impl Plan {
    fn add(&mut self, op: Op, cause: impl Into<String>, after: Vec<usize>) -> usize {
        let id = self.steps.len() + 1;
        let mut after = after;
        after.sort_unstable();
        after.dedup();
        self.steps.push(Step { id, op, cause: cause.into(), after });
        id
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The plan as text, one step a line: `#3 container demo-web-1: start (exited) after #1,#2`.
    /// Warnings come last. This is what `--dry-run` prints and what the golden tests compare.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in &self.steps {
            let _ = write!(out, "#{} {}", s.id, s.op.describe());
            if !s.cause.is_empty() {
                let _ = write!(out, " ({})", s.cause);
            }
            if !s.after.is_empty() {
                let ids: Vec<String> = s.after.iter().map(|a| format!("#{a}")).collect();
                let _ = write!(out, " after {}", ids.join(","));
            }
            out.push('\n');
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {}", w.replace('\n', " "));
        }
        out
    }
}

/// Adds a step to a plan (for commands that build their own, like `rm -s`).
pub fn push(plan: &mut Plan, op: Op, after: Vec<usize>) -> usize {
    plan.add(op, "", after)
}

/// One `depends_on` entry of a desired service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    pub service: String,
    pub condition: Condition,
    pub required: bool,
    pub restart: bool,
}

/// A service as the project wants it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredService {
    pub name: String,
    pub replicas: u32,
    /// `container_name`, which forbids more than one replica.
    pub container_name: Option<String>,
    pub config_hash: String,
    /// The image id the containers must run (`sha256:...`); empty when unknown (never recreates).
    pub image: String,
    pub depends_on: Vec<Dep>,
    /// Services whose namespaces or volumes it shares: recreated with them.
    pub namespace_parents: Vec<String>,
}

/// A network or volume the project declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredResource {
    pub key: String,
    pub name: String,
    pub external: bool,
}

/// The project as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Desired {
    pub project: String,
    /// Every enabled service, in start order (dependencies first).
    pub services: Vec<DesiredService>,
    pub networks: Vec<DesiredResource>,
    pub volumes: Vec<DesiredResource>,
}

impl Desired {
    /// The desired state of a loaded project: `images` maps a service to its image id, `scale`
    /// overrides replica counts (`--scale`). Fails on a dependency cycle.
    pub fn from_project(
        p: &Project,
        images: &BTreeMap<String, String>,
        scale: &BTreeMap<String, u32>,
    ) -> Result<Desired, super::LoadError> {
        let order = p.graph()?.start_order()?;
        let mut services = Vec::new();
        for name in order {
            let s = &p.services[&name];
            let mut parents = Vec::new();
            for m in [&s.network_mode, &s.ipc, &s.pid].into_iter().flatten() {
                if let Some(x) = m.strip_prefix("service:") {
                    parents.push(x.to_string());
                }
            }
            for v in &s.volumes_from {
                if !v.starts_with("container:") {
                    parents.push(v.split(':').next().unwrap_or_default().to_string());
                }
            }
            parents.retain(|x| p.services.contains_key(x));
            services.push(DesiredService {
                name: name.clone(),
                replicas: scale.get(&name).copied().unwrap_or_else(|| super::convert::replicas(s)),
                container_name: s.container_name.clone(),
                config_hash: super::hash::service_hash(s),
                image: images.get(&name).cloned().unwrap_or_default(),
                depends_on: s
                    .depends_on
                    .iter()
                    .filter(|(d, _)| p.services.contains_key(*d))
                    .map(|(d, dep)| Dep {
                        service: d.clone(),
                        condition: dep.condition.into(),
                        required: dep.required,
                        restart: dep.restart,
                    })
                    .collect(),
                namespace_parents: parents,
            });
        }
        let networks = p
            .networks
            .iter()
            .map(|(k, n)| DesiredResource { key: k.clone(), name: super::convert::network_name(p, k), external: n.external })
            .collect();
        let volumes = p
            .volumes
            .iter()
            .map(|(k, v)| DesiredResource { key: k.clone(), name: super::convert::volume_name(p, k), external: v.external })
            .collect();
        Ok(Desired { project: p.name.clone(), services, networks, volumes })
    }

    pub fn service(&self, name: &str) -> Option<&DesiredService> {
        self.services.iter().find(|s| s.name == name)
    }

    /// `names` (all services when empty) and, unless `no_deps`, everything they depend on.
    pub fn select(&self, names: &[String], no_deps: bool) -> Result<BTreeSet<String>, PlanError> {
        for n in names {
            if self.service(n).is_none() {
                return Err(PlanError::NoSuchService(n.clone()));
            }
        }
        if names.is_empty() {
            return Ok(self.services.iter().map(|s| s.name.clone()).collect());
        }
        if no_deps {
            return Ok(names.iter().cloned().collect());
        }
        let set = DepGraph::from_desired(self).closure(names).into_iter().collect();
        Ok(set)
    }
}

/// `--force-recreate`, `--no-recreate`, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recreate {
    /// Recreate what changed.
    #[default]
    Diverged,
    Force,
    Never,
}

/// The options of `up` (and `create`, which is `up --no-start`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpOptions {
    /// The services named on the command line (all when empty).
    pub services: Vec<String>,
    pub no_deps: bool,
    pub recreate: Recreate,
    pub no_start: bool,
    pub remove_orphans: bool,
    /// `-t`, in seconds, for the containers stopped to be recreated.
    pub timeout: Option<u64>,
    /// `--wait`.
    pub wait: bool,
}

fn conflicts(o: &Observed, r: &super::observe::Resource, what: &str, name: &str) -> Option<String> {
    match r.project.as_deref() {
        Some(p) if p == o.project => None,
        None if what == "network" => Some(format!(
            "a network with name {name} exists but was not created by compose.\nSet `external: true` to use an existing network"
        )),
        Some(_) if what == "network" => Some(format!(
            "a network with name {name} exists but was not created for project {:?}.\nSet `external: true` to use an existing network",
            o.project
        )),
        None => Some(format!(
            "volume {name:?} already exists but was not created by Docker Compose. Use `external: true` to use an existing volume"
        )),
        Some(p) => Some(format!(
            "volume {name:?} already exists but was created for project {p:?} (expected {:?}). Use `external: true` to use an existing volume",
            o.project
        )),
    }
}

/// The orphan warning, as compose words it.
pub(crate) fn orphan_warning(names: &[&str]) -> String {
    format!(
        "Found orphan containers ([{}]) for this project. If you removed or renamed this service in your compose file, \
         you can run this command with the --remove-orphans flag to clean it up.",
        names.join(" ")
    )
}

/// Plans `up` (and `create`).
pub fn up(d: &Desired, o: &Observed, opts: &UpOptions) -> Result<Plan, PlanError> {
    let selected = d.select(&opts.services, opts.no_deps)?;
    let mut plan = Plan::default();
    let resources = plan_resources(&mut plan, d, o)?;
    up_services(plan, resources, d, o, opts, &selected)
}

/// The networks and volumes of `d` that `o` lacks, with a warning for each that exists but is
/// not this project's. Returns their steps.
fn plan_resources(plan: &mut Plan, d: &Desired, o: &Observed) -> Result<Vec<usize>, PlanError> {
    let mut resources = Vec::new();
    for n in &d.networks {
        match o.network(&n.name) {
            None if n.external => return Err(PlanError::ExternalNetwork(n.name.clone())),
            None => resources.push(plan.add(Op::CreateNetwork { name: n.name.clone(), key: n.key.clone() }, "", vec![])),
            Some(r) if !n.external => plan.warnings.extend(conflicts(o, r, "network", &n.name)),
            Some(_) => {}
        }
    }
    for v in &d.volumes {
        match o.volume(&v.name) {
            None if v.external => return Err(PlanError::ExternalVolume(v.name.clone())),
            None => resources.push(plan.add(Op::CreateVolume { name: v.name.clone(), key: v.key.clone() }, "", vec![])),
            Some(r) if !v.external => plan.warnings.extend(conflicts(o, r, "volume", &v.name)),
            Some(_) => {}
        }
    }
    Ok(resources)
}

/// `up` after its networks and volumes: orphans, then the `selected` services.
fn up_services(
    mut plan: Plan,
    resources: Vec<usize>,
    d: &Desired,
    o: &Observed,
    opts: &UpOptions,
    selected: &BTreeSet<String>,
) -> Result<Plan, PlanError> {
    // Orphans.
    let names: Vec<&str> = d.services.iter().map(|s| s.name.as_str()).collect();
    let orphans = o.orphans(&names);
    if opts.remove_orphans {
        for c in &orphans {
            plan.add(Op::Remove { service: c.service.clone(), name: c.name.clone(), volumes: false }, "orphan", vec![]);
        }
    } else if !orphans.is_empty() {
        let n: Vec<&str> = orphans.iter().map(|c| c.name.as_str()).collect();
        plan.warnings.push(orphan_warning(&n));
    }

    // Services, dependencies first. For each: the steps that create its containers, and the
    // steps after which it counts as started.
    let mut created: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut started: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut recreated: BTreeSet<&str> = BTreeSet::new();
    // Decisions first (a namespace parent's recreate recreates its children), then the steps.
    let mut decisions: BTreeMap<&str, Decision> = BTreeMap::new();
    for s in d.services.iter().filter(|s| selected.contains(&s.name)) {
        if s.container_name.is_some() && s.replicas > 1 {
            return Err(PlanError::ContainerNameScale(s.name.clone()));
        }
        let existing = o.service_containers(&s.name);
        let keep_n = (s.replicas as usize).min(existing.len());
        let mut keep = Vec::new();
        for c in &existing[..keep_n] {
            let why = match opts.recreate {
                Recreate::Never => None,
                Recreate::Force => Some("--force-recreate".to_string()),
                Recreate::Diverged => {
                    if c.config_hash != s.config_hash {
                        Some("config hash changed".to_string())
                    } else if !s.image.is_empty() && c.image != s.image {
                        Some("image changed".to_string())
                    } else {
                        s.namespace_parents.iter().find(|p| recreated.contains(p.as_str())).map(|p| format!("{p} is recreated"))
                    }
                }
            };
            if why.is_some() {
                recreated.insert(&s.name);
            }
            keep.push((*c, why));
        }
        let used: BTreeSet<u32> = existing[..keep_n].iter().map(|c| c.number).collect();
        let mut new = Vec::new();
        let mut n = 1;
        while keep.len() + new.len() < s.replicas as usize {
            if !used.contains(&n) {
                new.push(n);
            }
            n += 1;
        }
        let mut surplus: Vec<&Container> = existing[keep_n..].to_vec();
        surplus.reverse();
        decisions.insert(&s.name, Decision { keep, new, surplus });
    }

    // Dependents with `restart: true` that keep running are stopped before their dependency is
    // recreated, and started again after it.
    let mut restart_stops: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut restarted: BTreeSet<&str> = BTreeSet::new();
    if !opts.no_start {
        for s in d.services.iter().filter(|s| selected.contains(&s.name)) {
            for dep in s.depends_on.iter().filter(|x| x.restart && recreated.contains(x.service.as_str())) {
                let Some(dec) = decisions.get(s.name.as_str()) else { continue };
                if recreated.contains(s.name.as_str()) {
                    continue;
                }
                for (c, _) in dec.keep.iter().filter(|(c, _)| c.is_active()) {
                    let id = plan.add(
                        Op::Stop { service: s.name.clone(), name: c.name.clone(), timeout: opts.timeout },
                        format!("{} is recreated", dep.service),
                        vec![],
                    );
                    restart_stops.entry(dep.service.as_str()).or_default().push(id);
                    restarted.insert(&s.name);
                }
            }
        }
    }

    for s in d.services.iter().filter(|s| selected.contains(&s.name)) {
        let dec = &decisions[s.name.as_str()];
        for c in &dec.surplus {
            plan.add(Op::Remove { service: s.name.clone(), name: c.name.clone(), volumes: false }, "scale down", vec![]);
        }
        // Waits on dependencies (only those being brought up by this command).
        let mut waits = Vec::new();
        if !opts.no_start {
            for dep in s.depends_on.iter().filter(|x| selected.contains(&x.service)) {
                let containers: Vec<String> = container_names(d, &decisions, &dep.service);
                let after = started.get(dep.service.as_str()).cloned().unwrap_or_default();
                waits.push(plan.add(
                    Op::Wait {
                        service: dep.service.clone(),
                        dependent: s.name.clone(),
                        condition: dep.condition,
                        required: dep.required,
                        containers,
                    },
                    "",
                    after,
                ));
            }
        }
        let mut before_create = resources.clone();
        for p in &s.namespace_parents {
            before_create.extend(created.get(p.as_str()).cloned().unwrap_or_default());
        }
        before_create.extend(restart_stops.get(s.name.as_str()).cloned().unwrap_or_default());
        let mut mine_created = Vec::new();
        let mut mine_started = Vec::new();
        let name_of = |n: u32| naming::container_name(&d.project, &s.name, s.container_name.as_deref(), n);
        for (c, why) in &dec.keep {
            let service = s.name.clone();
            if let Some(why) = why {
                let id = plan.add(
                    Op::Create { service: service.clone(), number: c.number, name: name_of(c.number), replace: Some(c.name.clone()) },
                    why.clone(),
                    before_create.clone(),
                );
                mine_created.push(id);
                if !opts.no_start {
                    let mut after = waits.clone();
                    after.push(id);
                    mine_started.push(plan.add(Op::Start { service, name: name_of(c.number) }, "", after));
                }
            } else if opts.no_start {
                // `create`: an existing container is left as it is.
            } else if c.is_active() && !restarted.contains(s.name.as_str()) {
                mine_started.push(plan.add(Op::Running { service, name: c.name.clone() }, "", waits.clone()));
            } else {
                let cause =
                    if restarted.contains(s.name.as_str()) && c.is_active() { "restarted with its dependency" } else { c.status.as_str() };
                let mut after = waits.clone();
                after.extend(restart_stops.values().flatten().copied().filter(|id| stops_container(&plan, *id, &c.name)));
                mine_started.push(plan.add(Op::Start { service, name: c.name.clone() }, cause, after));
            }
        }
        for n in &dec.new {
            let id =
                plan.add(Op::Create { service: s.name.clone(), number: *n, name: name_of(*n), replace: None }, "", before_create.clone());
            mine_created.push(id);
            if !opts.no_start {
                let mut after = waits.clone();
                after.push(id);
                mine_started.push(plan.add(Op::Start { service: s.name.clone(), name: name_of(*n) }, "", after));
            }
        }
        created.insert(&s.name, mine_created);
        started.insert(&s.name, mine_started);
    }

    if opts.wait && !opts.no_start {
        let completed: BTreeSet<&str> = d
            .services
            .iter()
            .flat_map(|s| s.depends_on.iter())
            .filter(|x| x.condition == Condition::CompletedSuccessfully)
            .map(|x| x.service.as_str())
            .collect();
        for s in d.services.iter().filter(|s| selected.contains(&s.name)) {
            let condition =
                if completed.contains(s.name.as_str()) { Condition::CompletedSuccessfully } else { Condition::RunningOrHealthy };
            let after = started.get(s.name.as_str()).cloned().unwrap_or_default();
            plan.add(
                Op::Wait {
                    service: s.name.clone(),
                    dependent: String::new(),
                    condition,
                    required: true,
                    containers: container_names(d, &decisions, &s.name),
                },
                "",
                after,
            );
        }
    }
    Ok(plan)
}

/// The options of `run`'s plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// The service of the one-off container.
    pub service: String,
    /// `--no-deps`: only the networks and volumes.
    pub no_deps: bool,
    pub remove_orphans: bool,
}

impl Desired {
    /// The services `run SERVICE` brings up first: everything `service` depends on,
    /// transitively (none with `no_deps`), by name.
    pub fn oneoff_dependencies(&self, service: &str, no_deps: bool) -> Result<Vec<String>, PlanError> {
        if no_deps {
            return Ok(Vec::new());
        }
        Ok(self.select(&[service.to_string()], false)?.into_iter().filter(|s| s != service).collect())
    }
}

/// Plans what `run SERVICE` does before its one-off container: the project's networks and
/// volumes; then, unless `--no-deps`, its dependencies brought up as `up` brings them, and a
/// wait on each direct dependency's `depends_on` condition (the one-off itself is no replica,
/// so it is not in the plan).
pub fn run(d: &Desired, o: &Observed, opts: &RunOptions) -> Result<Plan, PlanError> {
    let deps = d.oneoff_dependencies(&opts.service, opts.no_deps)?;
    let mut plan = Plan::default();
    let resources = plan_resources(&mut plan, d, o)?;
    if deps.is_empty() {
        // No dependency: only the networks and volumes the one-off needs.
        return Ok(plan);
    }
    let up_opts = UpOptions { services: deps.clone(), no_deps: true, remove_orphans: opts.remove_orphans, ..Default::default() };
    let selected = d.select(&deps, true)?;
    let mut plan = up_services(plan, resources, d, o, &up_opts, &selected)?;
    for dep in d.service(&opts.service).map(|x| x.depends_on.clone()).unwrap_or_default() {
        let Some(ds) = d.service(&dep.service) else { continue };
        let containers: Vec<String> =
            (1..=ds.replicas.max(1)).map(|n| naming::container_name(&d.project, &ds.name, ds.container_name.as_deref(), n)).collect();
        let after: Vec<usize> = plan
            .steps
            .iter()
            .filter(|st| matches!(&st.op, Op::Start { service, .. } | Op::Running { service, .. } if *service == dep.service))
            .map(|st| st.id)
            .collect();
        plan.add(
            Op::Wait {
                service: dep.service.clone(),
                dependent: opts.service.clone(),
                condition: dep.condition,
                required: dep.required,
                containers,
            },
            "",
            after,
        );
    }
    Ok(plan)
}

fn stops_container(plan: &Plan, id: usize, name: &str) -> bool {
    matches!(&plan.steps[id - 1].op, Op::Stop { name: n, .. } if n == name)
}

/// What `up` does with one service's containers.
struct Decision<'a> {
    /// Kept containers, with the reason to recreate them if they must be.
    keep: Vec<(&'a Container, Option<String>)>,
    /// Replica numbers to create.
    new: Vec<u32>,
    /// Containers beyond the scale, highest numbers first.
    surplus: Vec<&'a Container>,
}

/// The names the containers of `service` will have once the plan ran.
fn container_names(d: &Desired, decisions: &BTreeMap<&str, Decision>, service: &str) -> Vec<String> {
    let (Some(s), Some(dec)) = (d.service(service), decisions.get(service)) else { return vec![] };
    let mut v: Vec<u32> = dec.keep.iter().map(|(c, _)| c.number).chain(dec.new.iter().copied()).collect();
    v.sort_unstable();
    v.into_iter().map(|n| naming::container_name(&d.project, &s.name, s.container_name.as_deref(), n)).collect()
}

/// The graph to order by: the project's when it is loaded, else the containers' labels.
pub fn graph(d: Option<&Desired>, o: &Observed) -> DepGraph {
    match d {
        Some(d) => DepGraph::from_desired(d),
        None => DepGraph::from_labels(o),
    }
}

/// Stop steps for `containers` in reverse dependency order: a container stops after every
/// container of the services that depend on its service. Returns the step of each container.
fn reverse_ordered(
    plan: &mut Plan,
    containers: &[&Container],
    g: &DepGraph,
    mut make: impl FnMut(&Container) -> Op,
) -> BTreeMap<String, usize> {
    let mut by_service: BTreeMap<&str, Vec<&Container>> = BTreeMap::new();
    for c in containers {
        by_service.entry(c.service.as_str()).or_default().push(c);
    }
    let g = g.restrict(by_service.keys());
    let mut done: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for s in g.stop_rounds().into_iter().flatten() {
        let after: Vec<usize> = g.dependents(&s).iter().flat_map(|x| done.get(*x).cloned().unwrap_or_default()).collect();
        let mut ids = Vec::new();
        for c in &by_service[s.as_str()] {
            let id = plan.add(make(c), "", after.clone());
            out.insert(c.name.clone(), id);
            ids.push(id);
        }
        done.insert(s, ids);
    }
    out
}

/// Plans `stop`: the containers of `services` (all when empty), dependents first.
pub fn stop(o: &Observed, g: &DepGraph, services: &[String], timeout: Option<u64>) -> Plan {
    let mut plan = Plan::default();
    let cs: Vec<&Container> = o.containers.iter().filter(|c| !c.oneoff && (services.is_empty() || services.contains(&c.service))).collect();
    reverse_ordered(&mut plan, &cs, g, |c| Op::Stop { service: c.service.clone(), name: c.name.clone(), timeout });
    plan
}

/// Plans `restart`: each container of `services` (all when empty) restarted, dependencies
/// first, in the order of `g`.
pub fn restart(o: &Observed, g: &DepGraph, services: &[String], timeout: Option<u64>) -> Plan {
    let mut plan = Plan::default();
    let g = g.restrict(o.services());
    let mut done: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for s in g.start_rounds().into_iter().flatten() {
        if !services.is_empty() && !services.contains(&s) {
            continue;
        }
        let after: Vec<usize> = g.dependencies(&s).iter().flat_map(|x| done.get(*x).cloned().unwrap_or_default()).collect();
        let ids = o
            .service_containers(&s)
            .into_iter()
            .map(|c| plan.add(Op::Restart { service: s.clone(), name: c.name.clone(), timeout }, "", after.clone()))
            .collect();
        done.insert(s, ids);
    }
    plan
}

/// Plans `restart SERVICE...` as compose does: only `restart: true` dependencies order it, and
/// restarting a service restarts the services that depend on it that way, transitively (unless
/// `no_deps`).
pub fn restart_with_dependents(o: &Observed, g: &DepGraph, services: &[String], no_deps: bool, timeout: Option<u64>) -> Plan {
    let g = g.filter(|e| e.restart);
    let chosen = if no_deps || services.is_empty() { services.to_vec() } else { g.dependents_closure(services) };
    restart(o, &g, &chosen, timeout)
}

/// Plans `start`: the existing containers of `services` (all when empty), each service once its
/// dependencies meet their conditions.
pub fn start(o: &Observed, g: &DepGraph, services: &[String], wait: bool) -> Result<Plan, PlanError> {
    let mut plan = Plan::default();
    let mut started: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for s in services {
        if o.service_containers(s).is_empty() {
            return Err(PlanError::NoContainer(s.clone()));
        }
    }
    let have = g.restrict(o.services());
    let order: Vec<String> = have.start_rounds().concat();
    let chosen: BTreeSet<&String> = order.iter().filter(|s| services.is_empty() || services.contains(s)).collect();
    for s in &order {
        if !chosen.contains(s) {
            continue;
        }
        let mut waits = Vec::new();
        for e in have.edges(s) {
            if !chosen.contains(&e.target) {
                continue;
            }
            let dep = &e.target;
            let containers = o.service_containers(dep).iter().map(|c| c.name.clone()).collect();
            let after = started.get(dep).cloned().unwrap_or_default();
            waits.push(plan.add(
                Op::Wait { service: dep.clone(), dependent: s.clone(), condition: e.condition, required: true, containers },
                "",
                after,
            ));
        }
        let ids = o
            .service_containers(s)
            .into_iter()
            .map(|c| {
                if c.is_active() {
                    plan.add(Op::Running { service: s.clone(), name: c.name.clone() }, "", waits.clone())
                } else {
                    plan.add(Op::Start { service: s.clone(), name: c.name.clone() }, "", waits.clone())
                }
            })
            .collect();
        started.insert(s.clone(), ids);
    }
    if wait {
        let completed: BTreeSet<&str> = g
            .services()
            .flat_map(|s| g.edges(s))
            .filter(|e| e.condition == Condition::CompletedSuccessfully)
            .map(|e| e.target.as_str())
            .collect();
        for s in &order {
            if chosen.contains(s) {
                let containers = o.service_containers(s).iter().map(|c| c.name.clone()).collect();
                let condition = if completed.contains(s.as_str()) { Condition::CompletedSuccessfully } else { Condition::RunningOrHealthy };
                plan.add(
                    Op::Wait { service: s.clone(), dependent: String::new(), condition, required: true, containers },
                    "",
                    started.get(s).cloned().unwrap_or_default(),
                );
            }
        }
    }
    Ok(plan)
}

/// Plans `rm`: the stopped service containers of `services` (all when empty) removed (with
/// their anonymous volumes when `volumes`); with `stop` (`rm -s`), the running ones too, each
/// stopped first in reverse dependency order. An empty plan: nothing to remove.
pub fn rm(o: &Observed, g: &DepGraph, services: &[String], stop: bool, volumes: bool) -> Plan {
    let chosen: Vec<&Container> =
        o.containers.iter().filter(|c| !c.oneoff && (services.is_empty() || services.contains(&c.service))).collect();
    let mut plan = Plan::default();
    let stops = if stop {
        let mut sub = o.clone();
        sub.containers.retain(|c| c.is_active() && chosen.iter().any(|x| x.id == c.id));
        let cs: Vec<&Container> =
            sub.containers.iter().filter(|c| !c.oneoff && (services.is_empty() || services.contains(&c.service))).collect();
        reverse_ordered(&mut plan, &cs, g, |c| Op::Stop { service: c.service.clone(), name: c.name.clone(), timeout: None })
    } else {
        BTreeMap::new()
    };
    for c in chosen {
        if c.is_active() && !stop {
            continue;
        }
        let after = stops.get(&c.name).map(|i| vec![*i]).unwrap_or_default();
        plan.add(Op::Remove { service: c.service.clone(), name: c.name.clone(), volumes }, "", after);
    }
    plan
}

/// The containers a plan removes, in plan order (what `rm` asks about).
pub fn removed(plan: &Plan) -> Vec<&str> {
    plan.steps.iter().filter_map(|s| if let Op::Remove { name, .. } = &s.op { Some(name.as_str()) } else { None }).collect()
}

/// The options of `down`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownOptions {
    pub remove_orphans: bool,
    /// `-v`: named volumes declared by the project and the containers' anonymous volumes.
    pub volumes: bool,
    pub timeout: Option<u64>,
}

/// Plans `down`: containers stopped in reverse dependency order and removed, then the
/// project's networks and (with `-v`) volumes. With a loaded project (`d`), only its services'
/// containers go unless `--remove-orphans`, and its declared resources; without one, everything
/// labelled with the project.
pub fn down(d: Option<&Desired>, o: &Observed, opts: &DownOptions) -> Plan {
    let mut plan = Plan::default();
    let g = graph(d, o);
    let in_model = |c: &Container| d.is_none_or(|d| d.service(&c.service).is_some());
    let mut cs: Vec<&Container> = o.containers.iter().filter(|c| !c.oneoff && in_model(c)).collect();
    let orphans: Vec<&Container> = o.containers.iter().filter(|c| !c.oneoff && !in_model(c)).collect();
    if opts.remove_orphans {
        cs.extend(o.containers.iter().filter(|c| c.oneoff || !in_model(c)));
    } else if !orphans.is_empty() {
        let n: Vec<&str> = orphans.iter().map(|c| c.name.as_str()).collect();
        plan.warnings.push(orphan_warning(&n));
    }
    let stops =
        reverse_ordered(&mut plan, &cs, &g, |c| Op::Stop { service: c.service.clone(), name: c.name.clone(), timeout: opts.timeout });
    let mut removes = Vec::new();
    for c in &cs {
        removes.push(plan.add(
            Op::Remove { service: c.service.clone(), name: c.name.clone(), volumes: opts.volumes },
            "",
            vec![stops[&c.name]],
        ));
    }
    // Networks: the project's, external ones never.
    let networks: Vec<String> = match d {
        Some(d) => d.networks.iter().filter(|n| !n.external && owned(o.network(&n.name), &o.project)).map(|n| n.name.clone()).collect(),
        None => o.project_networks().iter().map(|n| n.name.clone()).collect(),
    };
    for n in networks {
        plan.add(Op::RemoveNetwork { name: n }, "", removes.clone());
    }
    if opts.volumes {
        let volumes: Vec<String> = match d {
            Some(d) => d.volumes.iter().filter(|v| !v.external && owned(o.volume(&v.name), &o.project)).map(|v| v.name.clone()).collect(),
            None => o.project_volumes().iter().map(|v| v.name.clone()).collect(),
        };
        for v in volumes {
            plan.add(Op::RemoveVolume { name: v }, "", removes.clone());
        }
    }
    plan
}

fn owned(r: Option<&super::observe::Resource>, project: &str) -> bool {
    r.is_some_and(|r| r.project.as_deref() == Some(project))
}

/// One step per container of `services` (all when empty), in no order: `kill`, `pause`,
/// `unpause`, `rm`. `oneoff` includes `run` containers.
pub fn each(o: &Observed, services: &[String], oneoff: bool, mut make: impl FnMut(&Container) -> Option<Op>) -> Plan {
    let mut plan = Plan::default();
    for c in &o.containers {
        if (c.oneoff && !oneoff) || !(services.is_empty() || services.contains(&c.service)) {
            continue;
        }
        if let Some(op) = make(c) {
            plan.add(op, "", vec![]);
        }
    }
    plan
}

#[cfg(test)]
mod tests;
