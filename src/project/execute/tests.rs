//! The executor against the recording fake engine: plans built by hand (as the planner shapes
//! them), projects loaded from YAML, and the engine calls, progress events, warnings and report
//! checked. No root, no kernel.
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use serde_json::json;

use super::*;
use crate::engine::runtime::spec::ContainerConfig;
use crate::engine::runtime::state::HealthStatus;
use crate::project::engine::fake::{self, FakeEngine, Script};
use crate::project::plan::push;

/// Records progress as `name: text` lines, and sets the cancel flag (as Ctrl-C does) when the
/// line `cancel_on` is shown.
#[derive(Default)]
struct Recorder {
    lines: Mutex<Vec<String>>,
    warnings: Mutex<Vec<String>>,
    cancel: AtomicBool,
    cancel_on: Option<String>,
}

impl Sink for Recorder {
    fn event(&self, e: Event) {
        let line = format!("{}: {}", e.name, e.text);
        if self.cancel_on.as_deref() == Some(line.as_str()) {
            self.cancel.store(true, Ordering::SeqCst);
        }
        self.lines.lock().unwrap().push(line);
    }
    fn warning(&self, msg: &str) {
        self.warnings.lock().unwrap().push(msg.to_string());
    }
}

impl Recorder {
    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
    fn warnings(&self) -> Vec<String> {
        self.warnings.lock().unwrap().clone()
    }
    fn has(&self, line: &str) -> bool {
        self.lines().iter().any(|l| l == line)
    }
}

/// One run of the executor on a fake engine.
struct Run {
    engine: FakeEngine,
    project: Project,
    _dir: tempfile::TempDir,
    images: BTreeMap<String, Image>,
    parallel: usize,
    deadline: Option<Instant>,
    renew_anon_volumes: bool,
    sink: Recorder,
}

impl Run {
    /// The project `demo` of `yaml`, every service with a plain image.
    fn new(yaml: &str) -> Run {
        Run::with_image(yaml, json!({}))
    }

    fn with_image(yaml: &str, config: serde_json::Value) -> Run {
        let (dir, project) = fake::load(yaml, &[]);
        let images = project.services.keys().map(|s| (s.clone(), fake::image(config.clone()))).collect();
        Run {
            engine: FakeEngine::new(),
            project,
            _dir: dir,
            images,
            parallel: 0,
            deadline: None,
            renew_anon_volumes: false,
            sink: Recorder::default(),
        }
    }

    fn exec(&self, plan: &Plan) -> Report {
        let ctx = Context {
            engine: &self.engine,
            project: Some(&self.project),
            images: &self.images,
            parallel: self.parallel,
            deadline: self.deadline,
            timeout: None,
            renew_anon_volumes: self.renew_anon_volumes,
            cancel: &self.sink.cancel,
            sink: &self.sink,
        };
        execute(&ctx, plan)
    }

    /// The spec the executor would create for replica 1 of `service`.
    fn spec(&self, service: &str) -> ContainerConfig {
        let host = convert::HostInputs::default();
        convert::service_spec(&self.project, &self.project.services[service], &self.images[service], &host, 1).unwrap()
    }

    /// Index of the first engine call equal to `call` (every call, reads included).
    fn at(&self, call: &str) -> usize {
        let calls = self.engine.calls();
        calls.iter().position(|c| c == call).unwrap_or_else(|| panic!("no call {call:?} in {calls:#?}"))
    }
}

fn name(service: &str) -> String {
    format!("demo-{service}-1")
}
fn create(service: &str) -> Op {
    Op::Create { service: service.into(), number: 1, name: name(service), replace: None }
}
fn recreate(service: &str) -> Op {
    Op::Create { service: service.into(), number: 1, name: name(service), replace: Some(name(service)) }
}
fn start(service: &str) -> Op {
    Op::Start { service: service.into(), name: name(service) }
}
fn wait(service: &str, dependent: &str, condition: Condition, required: bool) -> Op {
    Op::Wait { service: service.into(), dependent: dependent.into(), condition, required, containers: vec![name(service)] }
}

/// `db` (with a healthcheck), `web` depending on it with `condition`, and an independent
/// `cache`.
fn stack(condition: &str, required: bool) -> String {
    format!(
        r#"
services:
  db:
    image: x
    healthcheck: {{test: ["CMD", "true"]}}
  web:
    image: x
    depends_on:
      db: {{condition: {condition}, required: {required}}}
  cache: {{image: x}}
"#
    )
}

/// The plan `up` makes for [`stack`]: the network, then each container created and started, web
/// after its wait on db.
fn up_plan(condition: Condition, required: bool) -> Plan {
    let mut p = Plan::default();
    let net = push(&mut p, Op::CreateNetwork { name: "demo_default".into(), key: "default".into() }, vec![]);
    let cdb = push(&mut p, create("db"), vec![net]);
    let cweb = push(&mut p, create("web"), vec![net]);
    let ccache = push(&mut p, create("cache"), vec![net]);
    let sdb = push(&mut p, start("db"), vec![cdb]);
    let w = push(&mut p, wait("db", "web", condition, required), vec![sdb]);
    push(&mut p, start("web"), vec![cweb, w]);
    push(&mut p, start("cache"), vec![ccache]);
    p
}

#[test]
fn steps_run_after_what_they_wait_for() {
    let r = Run::new(&stack("service_healthy", true));
    r.engine.script(&name("db"), Script { health: Some((HealthStatus::Healthy, 3)), ..Default::default() });
    let report = r.exec(&up_plan(Condition::Healthy, true));
    assert!(report.ok(), "{report:?}");
    let changes = r.engine.changes();
    assert_eq!(changes[0], "network create demo_default", "{changes:#?}");
    assert!(r.at("create demo-db-1") < r.at("start demo-db-1"));
    // web starts once db is healthy: after the third poll of db's state.
    let polls: Vec<usize> = r.engine.calls().iter().enumerate().filter(|(_, c)| *c == "state demo-db-1").map(|(i, _)| i).collect();
    assert!(polls.len() >= 3, "{polls:?}");
    assert!(r.at("start demo-web-1") > polls[2]);
    assert!(r.at("start demo-web-1") > r.at("create demo-web-1"));
    let lines = r.sink.lines();
    for l in ["demo_default: Created", "demo-db-1: Started", "demo-db-1: Waiting", "demo-db-1: Healthy", "demo-web-1: Started"] {
        assert!(lines.contains(&l.to_string()), "{l} not in {lines:#?}");
    }
    let pos = |l: &str| lines.iter().position(|x| x == l).unwrap();
    assert!(pos("demo-db-1: Healthy") < pos("demo-web-1: Started"));
    assert_eq!(r.engine.container(&name("web")).unwrap().1.status, Status::Running);
}

#[test]
fn at_most_parallel_container_operations_at_once() {
    let yaml = "services:\n  a: {image: x}\n  b: {image: x}\n  c: {image: x}\n  d: {image: x}\n";
    let mut plan = Plan::default();
    for s in ["a", "b", "c", "d"] {
        let c = push(&mut plan, create(s), vec![]);
        push(&mut plan, start(s), vec![c]);
    }
    for (parallel, want) in [(2, 2), (1, 1), (0, 4)] {
        let mut r = Run::new(yaml);
        r.parallel = parallel;
        for s in ["a", "b", "c", "d"] {
            r.engine.script(&name(s), Script { start_delay: Duration::from_millis(250), ..Default::default() });
        }
        let report = r.exec(&plan);
        assert!(report.ok(), "{report:?}");
        assert_eq!(r.engine.max_parallel(), want, "--parallel {parallel}");
    }
}

/// A wait only polls: it does not hold one of the `--parallel` slots, so that other steps go on.
#[test]
fn waits_do_not_count_against_parallel() {
    let mut r = Run::new("services:\n  db:\n    image: x\n    healthcheck: {test: [CMD, 'true']}\n  other: {image: x}\n");
    r.parallel = 1;
    r.engine.script(&name("db"), Script { health: Some((HealthStatus::Healthy, 8)), ..Default::default() });
    let mut plan = Plan::default();
    let c = push(&mut plan, create("db"), vec![]);
    let s = push(&mut plan, start("db"), vec![c]);
    push(&mut plan, wait("db", "", Condition::Healthy, true), vec![s]);
    let c = push(&mut plan, create("other"), vec![]);
    push(&mut plan, start("other"), vec![c]);
    let report = r.exec(&plan);
    assert!(report.ok(), "{report:?}");
    let calls = r.engine.calls();
    let last_poll = calls.iter().rposition(|c| c == "state demo-db-1").unwrap();
    assert!(r.at("start demo-other-1") < last_poll, "{calls:#?}");
}

#[test]
fn service_started_needs_no_poll() {
    let r = Run::new(&stack("service_started", true));
    let report = r.exec(&up_plan(Condition::Started, true));
    assert!(report.ok(), "{report:?}");
    assert!(!r.engine.calls().contains(&"state demo-db-1".to_string()), "{:#?}", r.engine.calls());
    assert!(r.sink.has("demo-web-1: Started"));
    assert!(!r.sink.has("demo-db-1: Waiting"));
}

#[test]
fn service_completed_successfully_waits_for_exit_zero() {
    let r = Run::new(&stack("service_completed_successfully", true));
    r.engine.script(&name("db"), Script { exits: Some((0, 2)), ..Default::default() });
    let report = r.exec(&up_plan(Condition::CompletedSuccessfully, true));
    assert!(report.ok(), "{report:?}");
    assert!(r.sink.has("demo-db-1: Exited"));
    assert!(r.at("start demo-web-1") > r.at("state demo-db-1"));

    let r = Run::new(&stack("service_completed_successfully", true));
    r.engine.script(&name("db"), Script { exits: Some((3, 1)), ..Default::default() });
    let report = r.exec(&up_plan(Condition::CompletedSuccessfully, true));
    assert_eq!(report.errors.len(), 1, "{report:?}");
    let (who, e) = &report.errors[0];
    assert_eq!((who.as_str(), e.to_string().as_str()), ("db", r#"service "db" didn't complete successfully: exit 3"#));
    assert_eq!(report.skipped, 1);
    assert!(!r.engine.changes().contains(&"start demo-web-1".to_string()));
    assert!(r.sink.has(r#"demo-db-1: service "db" didn't complete successfully: exit 3"#), "{:#?}", r.sink.lines());
}

/// A failure skips what depends on it, and only that: the independent service still starts.
#[test]
fn a_failure_cascades_to_dependents_while_independent_steps_go_on() {
    let r = Run::new(&stack("service_healthy", true));
    r.engine.script(&name("db"), Script { health: Some((HealthStatus::Unhealthy, 2)), ..Default::default() });
    let report = r.exec(&up_plan(Condition::Healthy, true));
    assert_eq!(report.errors.len(), 1, "{report:?}");
    let (who, e) = &report.errors[0];
    assert!(matches!(e, ExecError::Unhealthy(n) if n == "demo-db-1"), "{e:?}");
    assert_eq!((who.as_str(), e.to_string().as_str()), ("db", "dependency failed to start: container demo-db-1 is unhealthy"));
    assert_eq!(report.skipped, 1);
    assert!(!report.canceled);
    let changes = r.engine.changes();
    assert!(!changes.contains(&"start demo-web-1".to_string()), "{changes:#?}");
    assert!(changes.contains(&"start demo-cache-1".to_string()), "{changes:#?}");
    assert!(r.sink.has("demo-db-1: dependency failed to start: container demo-db-1 is unhealthy"));

    // A start that fails skips the wait and the dependent's start.
    let r = Run::new(&stack("service_healthy", true));
    r.engine.script(&name("db"), Script { start_fails: Some("boom".into()), ..Default::default() });
    let report = r.exec(&up_plan(Condition::Healthy, true));
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert!(matches!(&report.errors[0], (who, ExecError::Runtime(RuntimeError::Start { .. })) if who == "db"), "{report:?}");
    assert_eq!(report.skipped, 2);
    assert!(r.sink.has("demo-db-1: cannot start container demo-db-1: boom"), "{:#?}", r.sink.lines());
    assert!(r.engine.changes().contains(&"start demo-cache-1".to_string()));
}

/// `required: false`: the dependency's failure is a warning and the dependent starts anyway.
#[test]
fn an_optional_dependency_never_blocks() {
    let r = Run::new(&stack("service_healthy", false));
    r.engine.script(&name("db"), Script { start_fails: Some("boom".into()), ..Default::default() });
    let report = r.exec(&up_plan(Condition::Healthy, false));
    // db's own start failed (that is an error), but web started.
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert_eq!(report.skipped, 0);
    assert!(r.engine.changes().contains(&"start demo-web-1".to_string()));
    assert_eq!(r.sink.warnings(), vec![r#"optional dependency "db" failed to start: container demo-db-1 did not start: boom"#.to_string()]);
    assert!(r.sink.has("demo-db-1: Skipped"));

    let r = Run::new(&stack("service_completed_successfully", false));
    r.engine.script(&name("db"), Script { exits: Some((3, 1)), ..Default::default() });
    let report = r.exec(&up_plan(Condition::CompletedSuccessfully, false));
    assert!(report.ok(), "{report:?}");
    assert_eq!(r.sink.warnings(), vec![r#"optional dependency "db" didn't complete successfully: exit 3"#.to_string()]);
    assert!(r.engine.changes().contains(&"start demo-web-1".to_string()));

    // A required one that never started is an error for its dependent.
    let r = Run::new(&stack("service_healthy", true));
    let mut plan = Plan::default();
    let w = push(&mut plan, wait("db", "web", Condition::Healthy, true), vec![]);
    push(&mut plan, create("web"), vec![w]);
    let report = r.exec(&plan);
    assert_eq!(report.errors.len(), 1);
    assert_eq!(report.errors[0].1.to_string(), "web is missing dependency db");
    // An optional one is not.
    let report = r.exec(&{
        let mut plan = Plan::default();
        push(&mut plan, wait("db", "web", Condition::Healthy, false), vec![]);
        plan
    });
    assert!(report.ok(), "{report:?}");
}

/// `--wait-timeout`: a wait past the deadline fails with a typed timeout that says what it
/// waited for, as the CLI reports it.
#[test]
fn health_waits_time_out_at_the_deadline() {
    let mut r = Run::new(&stack("service_healthy", true));
    r.deadline = Some(Instant::now() + Duration::from_millis(150));
    let mut plan = Plan::default();
    let c = push(&mut plan, create("db"), vec![]);
    let s = push(&mut plan, start("db"), vec![c]);
    push(&mut plan, wait("db", "", Condition::RunningOrHealthy, true), vec![s]);
    let report = r.exec(&plan);
    assert_eq!(report.errors.len(), 1, "{report:?}");
    let e = &report.errors[0].1;
    assert!(matches!(e, ExecError::Timeout { kind: WaitKind::Service, service } if service == "db"), "{e:?}");
    assert_eq!(e.to_string(), r#"timeout waiting for service "db""#);
    assert!(r.sink.has(r#"demo-db-1: timeout waiting for service "db""#));

    let mut r = Run::new(&stack("service_healthy", true));
    r.deadline = Some(Instant::now() + Duration::from_millis(100));
    let report = r.exec(&up_plan(Condition::Healthy, true));
    let e = &report.errors[0].1;
    assert!(matches!(e, ExecError::Timeout { kind: WaitKind::Dependencies, .. }), "{e:?}");
    assert_eq!(e.to_string(), "timeout waiting for dependencies");
    assert!(!r.engine.changes().contains(&"start demo-web-1".to_string()));
}

/// `up --wait` takes a running container without a healthcheck as ready; `service_healthy` on
/// one is an error.
#[test]
fn health_waits_on_a_container_without_healthcheck() {
    let r = Run::new("services:\n  web: {image: x}\n");
    let mut plan = Plan::default();
    let c = push(&mut plan, create("web"), vec![]);
    let s = push(&mut plan, start("web"), vec![c]);
    push(&mut plan, wait("web", "", Condition::RunningOrHealthy, true), vec![s]);
    let report = r.exec(&plan);
    assert!(report.ok(), "{report:?}");
    assert!(r.sink.has("demo-web-1: Running"));

    let r = Run::new("services:\n  web: {image: x}\n");
    let mut plan = Plan::default();
    let c = push(&mut plan, create("web"), vec![]);
    let s = push(&mut plan, start("web"), vec![c]);
    push(&mut plan, wait("web", "client", Condition::Healthy, true), vec![s]);
    let report = r.exec(&plan);
    assert_eq!(report.errors[0].1.to_string(), "container demo-web-1 has no healthcheck configured");
}

/// A recreated container gets its predecessor's anonymous volumes (the service's `- /data` and
/// the image's `VOLUME`), as compose does; with `-V` it gets new ones.
#[test]
fn anonymous_volumes_are_carried_over_on_recreate_and_renewed_with_v() {
    let yaml = "services:\n  web:\n    image: x\n    volumes: [/data, 'named:/named']\nvolumes:\n  named: {}\n";
    let image = json!({"Volumes": {"/cache": {}}});
    for renew in [false, true] {
        let mut r = Run::with_image(yaml, image.clone());
        r.renew_anon_volumes = renew;
        let old = r.engine.seed(r.spec("web"), Status::Running);
        let source = |c: &ContainerConfig, t: &str| c.mounts.iter().find(|m| m.target == t).map(|m| m.source.clone()).unwrap();
        let mut plan = Plan::default();
        push(&mut plan, recreate("web"), vec![]);
        let report = r.exec(&plan);
        assert!(report.ok(), "{report:?}");
        let changes = r.engine.changes();
        assert_eq!(changes, ["stop demo-web-1", "remove demo-web-1", "create demo-web-1"], "{changes:#?}");
        let (new, _) = r.engine.container(&name("web")).unwrap();
        assert_ne!(new.id, old.id);
        assert_eq!(source(&new, "/named"), "demo_named");
        for t in ["/data", "/cache"] {
            assert!(!source(&new, t).is_empty());
            assert_eq!(source(&new, t) == source(&old, t), !renew, "{t} with renew={renew}: {:?} {:?}", new.mounts, old.mounts);
        }
        assert!(r.sink.has("demo-web-1: Recreate") && r.sink.has("demo-web-1: Recreated"), "{:#?}", r.sink.lines());
    }
}

/// `down -v`: the container's anonymous volumes go, including those it inherited from the one
/// it replaced, unless another container still uses them.
#[test]
fn remove_with_volumes_takes_inherited_anonymous_volumes() {
    let r = Run::new("services:\n  web:\n    image: x\n    volumes: [/data]\n");
    let old = r.engine.seed(r.spec("web"), Status::Exited);
    let inherited = old.mounts[0].source.clone();
    // The container the executor would have made on a recreate: the same volume, not its own.
    let mut plan = Plan::default();
    push(&mut plan, recreate("web"), vec![]);
    assert!(r.exec(&plan).ok());
    assert_eq!(r.engine.volume_names(), vec![inherited.clone()]);
    let mut plan = Plan::default();
    push(&mut plan, Op::Remove { service: "web".into(), name: name("web"), volumes: true }, vec![]);
    let report = r.exec(&plan);
    assert!(report.ok(), "{report:?}");
    assert!(r.engine.volume_names().is_empty(), "{:?}", r.engine.volume_names());
    assert!(r.engine.changes().contains(&format!("volume remove {inherited}")));

    // Without -v they stay.
    let r = Run::new("services:\n  web:\n    image: x\n    volumes: [/data]\n");
    r.engine.seed(r.spec("web"), Status::Running);
    let mut plan = Plan::default();
    push(&mut plan, Op::Remove { service: "web".into(), name: name("web"), volumes: false }, vec![]);
    assert!(r.exec(&plan).ok());
    assert_eq!(r.engine.volume_names().len(), 1);
    assert_eq!(r.engine.changes(), ["stop demo-web-1", "remove demo-web-1"]);
    assert!(r.sink.has("demo-web-1: Stopped") && r.sink.has("demo-web-1: Removed"));
}

/// Ctrl-C: steps under way finish, nothing new starts, and the report says so.
#[test]
fn cancellation_starts_nothing_new() {
    let mut r = Run::new(&stack("service_started", true));
    r.sink.cancel_on = Some("demo-db-1: Started".into());
    r.parallel = 1;
    let report = r.exec(&up_plan(Condition::Started, true));
    assert!(report.canceled && !report.ok(), "{report:?}");
    assert!(report.errors.is_empty());
    assert!(report.skipped >= 2, "{report:?}");
    let changes = r.engine.changes();
    assert!(changes.contains(&"start demo-db-1".to_string()));
    assert!(!changes.contains(&"start demo-web-1".to_string()), "{changes:#?}");

    let r = Run::new(&stack("service_started", true));
    r.sink.cancel.store(true, Ordering::SeqCst);
    let plan = up_plan(Condition::Started, true);
    let report = r.exec(&plan);
    assert!(report.canceled);
    assert_eq!(report.skipped, plan.steps.len());
    assert!(r.engine.calls().is_empty());
}

/// Networks and volumes: an existing network is fine to create, one still in use is left with a
/// warning, a missing one is already removed; an external volume must exist.
#[test]
fn networks_and_volumes() {
    let r = Run::new("services:\n  web: {image: x, volumes: ['data:/data', 'ext:/ext']}\nvolumes:\n  data: {}\n  ext: {external: true}\n");
    r.engine.add_network("demo_default", false);
    r.engine.add_network("shared", true);
    let mut plan = Plan::default();
    push(&mut plan, Op::CreateNetwork { name: "demo_default".into(), key: "default".into() }, vec![]);
    push(&mut plan, Op::CreateVolume { name: "demo_data".into(), key: "data".into() }, vec![]);
    push(&mut plan, Op::RemoveNetwork { name: "shared".into() }, vec![]);
    push(&mut plan, Op::RemoveNetwork { name: "gone".into() }, vec![]);
    push(&mut plan, Op::RemoveVolume { name: "gone".into() }, vec![]);
    let report = r.exec(&plan);
    assert!(report.ok(), "{report:?}");
    for l in ["demo_default: Created", "demo_data: Created", "shared: Resource is still in use", "gone: Removed"] {
        assert!(r.sink.has(l), "{l} not in {:#?}", r.sink.lines());
    }
    assert!(r.engine.has_network("shared"));
    assert_eq!(r.engine.volume_names(), ["demo_data"]);
    assert_eq!(r.engine.volume_inspect("demo_data").unwrap().unwrap().labels.get(crate::labels::VOLUME).map(String::as_str), Some("data"));

    let mut plan = Plan::default();
    push(&mut plan, Op::CreateVolume { name: "ext".into(), key: "ext".into() }, vec![]);
    let report = r.exec(&plan);
    assert!(matches!(&report.errors[0].1, ExecError::Convert(ConvertError::ExternalVolume(n)) if n == "ext"), "{report:?}");
}

/// Nothing is stopped or removed for a recreate that cannot create its replacement: no image
/// store, or a bad signal for a kill.
#[test]
fn checks_come_before_changes() {
    let mut r = Run::new("services:\n  web: {image: x}\n");
    r.engine = FakeEngine::without_images();
    r.engine.seed(r.spec("web"), Status::Running);
    let mut plan = Plan::default();
    push(&mut plan, recreate("web"), vec![]);
    push(&mut plan, Op::Kill { service: "web".into(), name: name("web"), signal: "SIGNOPE".into() }, vec![]);
    let report = r.exec(&plan);
    assert_eq!(report.errors.len(), 2, "{report:?}");
    assert!(report.errors.iter().any(|(_, e)| matches!(e, ExecError::NoImage(s) if s == "web")));
    assert!(report.errors.iter().any(|(_, e)| e.to_string() == r#"invalid signal "SIGNOPE""#));
    assert!(r.engine.changes().is_empty(), "{:#?}", r.engine.changes());
}

/// Stop, restart, kill, pause and unpause go to the engine as they are.
#[test]
fn container_operations() {
    let r = Run::new("services:\n  web: {image: x}\n");
    r.engine.seed(r.spec("web"), Status::Running);
    let mut plan = Plan::default();
    let a = push(&mut plan, Op::Pause { service: "web".into(), name: name("web") }, vec![]);
    let b = push(&mut plan, Op::Unpause { service: "web".into(), name: name("web") }, vec![a]);
    let c = push(&mut plan, Op::Restart { service: "web".into(), name: name("web"), timeout: Some(3) }, vec![b]);
    let d = push(&mut plan, Op::Stop { service: "web".into(), name: name("web"), timeout: Some(5) }, vec![c]);
    let e = push(&mut plan, start("web"), vec![d]);
    push(&mut plan, Op::Kill { service: "web".into(), name: name("web"), signal: "SIGKILL".into() }, vec![e]);
    let report = r.exec(&plan);
    assert!(report.ok(), "{report:?}");
    assert_eq!(
        r.engine.changes(),
        ["pause demo-web-1", "unpause demo-web-1", "restart demo-web-1", "stop(5s) demo-web-1", "start demo-web-1", "kill(9) demo-web-1"]
    );
    let lines = r.sink.lines();
    let want = ["Paused", "Unpaused", "Restarting", "Started", "Stopping", "Stopped", "Starting", "Started", "Killing", "Killed"];
    assert_eq!(lines, want.iter().map(|t| format!("demo-web-1: {t}")).collect::<Vec<_>>());
}
