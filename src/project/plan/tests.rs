//! Golden tests of the planner: observed state and desired project built by hand, the plan
//! compared as text (the same text `--dry-run` prints).
use super::*;
use crate::engine::runtime::state::Status;
use crate::project::observe::Resource;

fn dep(service: &str, condition: Condition) -> Dep {
    Dep { service: service.into(), condition, required: true, restart: false }
}

fn svc(name: &str, deps: Vec<Dep>) -> DesiredService {
    DesiredService {
        name: name.into(),
        replicas: 1,
        config_hash: format!("hash-{name}"),
        image: "sha256:busybox".into(),
        depends_on: deps,
        ..Default::default()
    }
}

/// The example stack: content (one-shot) <- web (healthy) <- client, a default network and a
/// `site` volume.
fn example() -> Desired {
    Desired {
        project: "demo".into(),
        services: vec![
            svc("content", vec![]),
            svc("web", vec![dep("content", Condition::CompletedSuccessfully)]),
            svc("client", vec![dep("web", Condition::Healthy)]),
        ],
        networks: vec![DesiredResource { key: "default".into(), name: "demo_default".into(), external: false }],
        volumes: vec![DesiredResource { key: "site".into(), name: "demo_site".into(), external: false }],
    }
}

fn ctr(service: &str, number: u32, status: Status) -> Container {
    Container {
        id: format!("id-{service}-{number}"),
        name: format!("demo-{service}-{number}"),
        service: service.into(),
        number,
        oneoff: false,
        config_hash: format!("hash-{service}"),
        image: "sha256:busybox".into(),
        status,
        health: None,
        exit_code: 0,
        created: String::new(),
        depends_on: vec![],
        has_healthcheck: false,
        volumes: vec![],
        anonymous_volumes: vec![],
        stop_grace_secs: 10,
    }
}

fn with_deps(mut c: Container, deps: &[(&str, &str)]) -> Container {
    c.depends_on = deps
        .iter()
        .map(|(s, cond)| crate::project::graph::Edge {
            target: s.to_string(),
            condition: Condition::parse(cond),
            restart: false,
            required: true,
        })
        .collect();
    c
}

fn mine(name: &str, key: &str) -> Resource {
    Resource { name: name.into(), project: Some("demo".into()), key: Some(key.into()), anonymous: false }
}

/// The example stack, up and running.
fn running() -> Observed {
    Observed {
        project: "demo".into(),
        containers: vec![
            with_deps(ctr("content", 1, Status::Exited), &[]),
            with_deps(ctr("web", 1, Status::Running), &[("content", "service_completed_successfully")]),
            with_deps(ctr("client", 1, Status::Running), &[("web", "service_healthy")]),
        ],
        networks: vec![mine("demo_default", "default")],
        volumes: vec![mine("demo_site", "site")],
        ..Default::default()
    }
}

fn empty() -> Observed {
    Observed { project: "demo".into(), ..Default::default() }
}

#[track_caller]
fn golden(plan: &Plan, expected: &str) {
    let got = plan.render();
    assert_eq!(got, expected, "\n--- got ---\n{got}--- expected ---\n{expected}");
}

#[test]
fn first_up_creates_everything_in_dependency_order() {
    let plan = up(&example(), &empty(), &UpOptions::default()).unwrap();
    golden(
        &plan,
        "#1 network demo_default: create
#2 volume demo_site: create
#3 container demo-content-1: create after #1,#2
#4 container demo-content-1: start after #3
#5 service content: wait service_completed_successfully (for web) after #4
#6 container demo-web-1: create after #1,#2
#7 container demo-web-1: start after #5,#6
#8 service web: wait service_healthy (for client) after #7
#9 container demo-client-1: create after #1,#2
#10 container demo-client-1: start after #8,#9
",
    );
}

#[test]
fn second_up_touches_nothing_running() {
    // The one-shot is run again (as compose does); running containers are only reported.
    let plan = up(&example(), &running(), &UpOptions::default()).unwrap();
    golden(
        &plan,
        "#1 container demo-content-1: start (exited)
#2 service content: wait service_completed_successfully (for web) after #1
#3 container demo-web-1: running after #2
#4 service web: wait service_healthy (for client) after #3
#5 container demo-client-1: running after #4
",
    );
    assert!(plan.steps.iter().all(|s| !matches!(s.op, Op::Create { .. } | Op::CreateNetwork { .. } | Op::CreateVolume { .. })));
}

#[test]
fn a_changed_service_alone_is_recreated() {
    let mut d = example();
    d.services[1].config_hash = "changed".into();
    golden(
        &up(&d, &running(), &UpOptions::default()).unwrap(),
        "#1 container demo-content-1: start (exited)
#2 service content: wait service_completed_successfully (for web) after #1
#3 container demo-web-1: recreate (replaces demo-web-1) (config hash changed)
#4 container demo-web-1: start after #2,#3
#5 service web: wait service_healthy (for client) after #4
#6 container demo-client-1: running after #5
",
    );
    // A new image recreates too; --no-recreate keeps; --force-recreate recreates everything.
    let mut d = example();
    d.services[2].image = "sha256:other".into();
    assert!(
        up(&d, &running(), &UpOptions::default())
            .unwrap()
            .render()
            .contains("demo-client-1: recreate (replaces demo-client-1) (image changed)")
    );
    let mut d = example();
    d.services[1].config_hash = "changed".into();
    let keep = up(&d, &running(), &UpOptions { recreate: Recreate::Never, ..Default::default() }).unwrap();
    assert!(!keep.render().contains("recreate"), "{}", keep.render());
    let force = up(&example(), &running(), &UpOptions { recreate: Recreate::Force, ..Default::default() }).unwrap();
    assert_eq!(force.render().matches("(--force-recreate)").count(), 3, "{}", force.render());
}

#[test]
fn namespace_children_follow_their_parent() {
    let mut d = example();
    d.services[0].config_hash = "changed".into();
    d.services[2].namespace_parents = vec!["web".into()];
    d.services[1].namespace_parents = vec!["content".into()];
    golden(
        &up(&d, &running(), &UpOptions::default()).unwrap(),
        "#1 container demo-content-1: recreate (replaces demo-content-1) (config hash changed)
#2 container demo-content-1: start after #1
#3 service content: wait service_completed_successfully (for web) after #2
#4 container demo-web-1: recreate (replaces demo-web-1) (content is recreated) after #1
#5 container demo-web-1: start after #3,#4
#6 service web: wait service_healthy (for client) after #5
#7 container demo-client-1: recreate (replaces demo-client-1) (web is recreated) after #4
#8 container demo-client-1: start after #6,#7
",
    );
}

#[test]
fn restart_true_dependents_are_stopped_and_started_around_a_recreate() {
    let mut d = example();
    d.services[1].config_hash = "changed".into();
    d.services[2].depends_on[0].restart = true;
    golden(
        &up(&d, &running(), &UpOptions { timeout: Some(3), ..Default::default() }).unwrap(),
        "#1 container demo-client-1: stop (timeout 3s) (web is recreated)
#2 container demo-content-1: start (exited)
#3 service content: wait service_completed_successfully (for web) after #2
#4 container demo-web-1: recreate (replaces demo-web-1) (config hash changed) after #1
#5 container demo-web-1: start after #3,#4
#6 service web: wait service_healthy (for client) after #5
#7 container demo-client-1: start (restarted with its dependency) after #1,#6
",
    );
}

#[test]
fn scale_up_and_down() {
    let mut d = example();
    d.services[2].replicas = 3;
    golden(
        &up(&d, &running(), &UpOptions::default()).unwrap(),
        "#1 container demo-content-1: start (exited)
#2 service content: wait service_completed_successfully (for web) after #1
#3 container demo-web-1: running after #2
#4 service web: wait service_healthy (for client) after #3
#5 container demo-client-1: running after #4
#6 container demo-client-2: create
#7 container demo-client-2: start after #4,#6
#8 container demo-client-3: create
#9 container demo-client-3: start after #4,#8
",
    );
    let mut o = running();
    o.containers.push(ctr("client", 2, Status::Running));
    o.containers.push(ctr("client", 3, Status::Running));
    golden(
        &up(&example(), &o, &UpOptions { services: vec!["client".into()], no_deps: true, ..Default::default() }).unwrap(),
        "#1 container demo-client-3: remove (scale down)
#2 container demo-client-2: remove (scale down)
#3 container demo-client-1: running
",
    );
    // A gap in the numbers is filled first.
    let mut o = running();
    o.containers.push(ctr("client", 3, Status::Running));
    let mut d = example();
    d.services[2].replicas = 3;
    let r = up(&d, &o, &UpOptions::default()).unwrap().render();
    assert!(r.contains("demo-client-2: create") && r.contains("demo-client-3: running") && !r.contains("client-4"), "{r}");
    // container_name cannot scale.
    let mut d = example();
    d.services[2].replicas = 2;
    d.services[2].container_name = Some("fixed".into());
    assert_eq!(up(&d, &empty(), &UpOptions::default()), Err(PlanError::ContainerNameScale("client".into())));
}

#[test]
fn orphans_are_reported_or_removed() {
    let mut o = running();
    o.containers.push(ctr("old", 1, Status::Running));
    let plan = up(&example(), &o, &UpOptions::default()).unwrap();
    assert_eq!(
        plan.warnings,
        vec![
            "Found orphan containers ([demo-old-1]) for this project. If you removed or renamed this service in your \
              compose file, you can run this command with the --remove-orphans flag to clean it up."
                .to_string()
        ]
    );
    let plan = up(&example(), &o, &UpOptions { remove_orphans: true, ..Default::default() }).unwrap();
    assert!(plan.warnings.is_empty());
    assert_eq!(plan.render().lines().next(), Some("#1 container demo-old-1: remove (orphan)"));
}

#[test]
fn wait_treats_completed_one_shots_as_done() {
    let plan = up(&example(), &empty(), &UpOptions { wait: true, ..Default::default() }).unwrap();
    let r = plan.render();
    let tail: Vec<&str> = r.lines().skip(10).collect();
    assert_eq!(
        tail,
        [
            "#11 service content: wait service_completed_successfully (for --wait) after #4",
            "#12 service web: wait running_or_healthy (for --wait) after #7",
            "#13 service client: wait running_or_healthy (for --wait) after #10",
        ]
    );
}

#[test]
fn no_start_and_no_deps() {
    golden(
        &up(&example(), &empty(), &UpOptions { no_start: true, ..Default::default() }).unwrap(),
        "#1 network demo_default: create
#2 volume demo_site: create
#3 container demo-content-1: create after #1,#2
#4 container demo-web-1: create after #1,#2
#5 container demo-client-1: create after #1,#2
",
    );
    // `up client` brings its dependencies; with --no-deps only client, with no waits.
    let r = up(&example(), &empty(), &UpOptions { services: vec!["client".into()], ..Default::default() }).unwrap().render();
    assert!(r.contains("demo-content-1: start"), "{r}");
    golden(
        &up(&example(), &empty(), &UpOptions { services: vec!["client".into()], no_deps: true, ..Default::default() }).unwrap(),
        "#1 network demo_default: create
#2 volume demo_site: create
#3 container demo-client-1: create after #1,#2
#4 container demo-client-1: start after #3
",
    );
    assert_eq!(
        up(&example(), &empty(), &UpOptions { services: vec!["nope".into()], ..Default::default() }),
        Err(PlanError::NoSuchService("nope".into()))
    );
}

#[test]
fn optional_dependencies_are_marked() {
    let mut d = example();
    d.services[2].depends_on[0].required = false;
    let r = up(&d, &empty(), &UpOptions::default()).unwrap().render();
    assert!(r.contains("#8 service web: wait service_healthy (for client, optional) after #7"), "{r}");
}

#[test]
fn foreign_and_external_resources() {
    let mut o = empty();
    o.networks.push(Resource { name: "demo_default".into(), ..Default::default() });
    o.volumes.push(Resource { name: "demo_site".into(), project: Some("other".into()), key: Some("site".into()), anonymous: false });
    let plan = up(&example(), &o, &UpOptions::default()).unwrap();
    assert_eq!(
        plan.warnings,
        vec![
            "a network with name demo_default exists but was not created by compose.\nSet `external: true` to use an existing network".to_string(),
            "volume \"demo_site\" already exists but was created for project \"other\" (expected \"demo\"). Use `external: true` to use an existing volume".to_string(),
        ]
    );
    assert!(!plan.render().contains("create after"), "nothing is created for them: {}", plan.render());
    let mut d = example();
    d.networks[0].external = true;
    assert_eq!(up(&d, &empty(), &UpOptions::default()), Err(PlanError::ExternalNetwork("demo_default".into())));
    let mut d = example();
    d.volumes[0].external = true;
    assert_eq!(up(&d, &empty(), &UpOptions::default()), Err(PlanError::ExternalVolume("demo_site".into())));
}

#[test]
fn down_stops_dependents_first_from_labels_alone() {
    golden(
        &down(None, &running(), &DownOptions::default()),
        "#1 container demo-client-1: stop
#2 container demo-web-1: stop after #1
#3 container demo-content-1: stop after #2
#4 container demo-content-1: remove after #3
#5 container demo-web-1: remove after #2
#6 container demo-client-1: remove after #1
#7 network demo_default: remove after #4,#5,#6
",
    );
}

#[test]
fn down_with_volumes_orphans_and_one_offs() {
    let mut o = running();
    o.containers.push(ctr("old", 1, Status::Running));
    let mut run = ctr("web", 1, Status::Running);
    run.name = "demo-web-run-0123456789ab".into();
    run.oneoff = true;
    o.containers.push(run);
    let plan = down(Some(&example()), &o, &DownOptions { volumes: true, timeout: Some(0), ..Default::default() });
    golden(
        &plan,
        "#1 container demo-client-1: stop (timeout 0s)
#2 container demo-web-1: stop (timeout 0s) after #1
#3 container demo-content-1: stop (timeout 0s) after #2
#4 container demo-content-1: remove with its anonymous volumes after #3
#5 container demo-web-1: remove with its anonymous volumes after #2
#6 container demo-client-1: remove with its anonymous volumes after #1
#7 network demo_default: remove after #4,#5,#6
#8 volume demo_site: remove after #4,#5,#6
warning: Found orphan containers ([demo-old-1]) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.
",
    );
    let plan = down(Some(&example()), &o, &DownOptions { remove_orphans: true, ..Default::default() });
    let r = plan.render();
    assert!(r.contains("demo-old-1: remove") && r.contains("demo-web-run-0123456789ab: remove"), "{r}");
    assert!(!r.contains("volume"), "{r}");
}

#[test]
fn stop_start_restart_orders() {
    let deps = graph(None, &running());
    golden(
        &stop(&running(), &deps, &["web".into()], None),
        "#1 container demo-web-1: stop
",
    );
    golden(
        &restart(&running(), &deps, &[], Some(1)),
        "#1 container demo-content-1: restart (timeout 1s)
#2 container demo-web-1: restart (timeout 1s) after #1
#3 container demo-client-1: restart (timeout 1s) after #2
",
    );
    let mut o = running();
    for c in o.containers.iter_mut() {
        c.status = Status::Exited;
    }
    let cdeps = DepGraph::from_labels(&o);
    golden(
        &start(&o, &cdeps, &[], false).unwrap(),
        "#1 container demo-content-1: start
#2 service content: wait service_completed_successfully (for web) after #1
#3 container demo-web-1: start after #2
#4 service web: wait service_healthy (for client) after #3
#5 container demo-client-1: start after #4
",
    );
    assert_eq!(start(&o, &cdeps, &["nope".into()], false), Err(PlanError::NoContainer("nope".into())));
}

#[test]
fn rm_removes_stopped_or_stops_dependents_first() {
    let o = running();
    let g = graph(None, &o);
    golden(&rm(&o, &g, &[], false, false), "#1 container demo-content-1: remove\n");
    let plan = rm(&o, &g, &[], true, true);
    golden(
        &plan,
        "#1 container demo-client-1: stop
#2 container demo-web-1: stop after #1
#3 container demo-content-1: remove with its anonymous volumes
#4 container demo-web-1: remove with its anonymous volumes after #2
#5 container demo-client-1: remove with its anonymous volumes after #1
",
    );
    assert_eq!(removed(&plan), ["demo-content-1", "demo-web-1", "demo-client-1"]);
    assert!(rm(&o, &g, &["web".into()], false, false).is_empty(), "a running container needs -s");
}

#[test]
fn restart_follows_restart_true_dependents() {
    let mut o = running();
    o.containers[1].depends_on[0].restart = true;
    let g = graph(None, &o);
    golden(
        &restart_with_dependents(&o, &g, &["content".into()], false, None),
        "#1 container demo-content-1: restart
#2 container demo-web-1: restart after #1
",
    );
    golden(&restart_with_dependents(&o, &g, &["content".into()], true, None), "#1 container demo-content-1: restart\n");
    // all services: only `restart: true` edges order them
    golden(
        &restart_with_dependents(&o, &g, &[], false, None),
        "#1 container demo-client-1: restart
#2 container demo-content-1: restart
#3 container demo-web-1: restart after #2
",
    );
}

#[test]
fn run_brings_dependencies_and_waits_on_the_direct_ones() {
    let opts = RunOptions { service: "client".into(), ..Default::default() };
    assert_eq!(example().oneoff_dependencies("client", false).unwrap(), ["content", "web"]);
    golden(
        &run(&example(), &empty(), &opts).unwrap(),
        "#1 network demo_default: create
#2 volume demo_site: create
#3 container demo-content-1: create after #1,#2
#4 container demo-content-1: start after #3
#5 service content: wait service_completed_successfully (for web) after #4
#6 container demo-web-1: create after #1,#2
#7 container demo-web-1: start after #5,#6
#8 service web: wait service_healthy (for client) after #7
",
    );
    // --no-deps: only the networks and volumes, and no orphan warning
    let mut o = empty();
    o.containers.push(ctr("old", 1, Status::Running));
    let plan = run(&example(), &o, &RunOptions { no_deps: true, ..opts.clone() }).unwrap();
    golden(&plan, "#1 network demo_default: create\n#2 volume demo_site: create\n");
    // a running dependency is waited on, not started again
    let plan = run(&example(), &running(), &opts).unwrap();
    assert!(plan.render().contains("service web: wait service_healthy (for client) after #"), "{}", plan.render());
    assert_eq!(
        run(&example(), &empty(), &RunOptions { service: "nope".into(), ..Default::default() }),
        Err(PlanError::NoSuchService("nope".into()))
    );
}

#[test]
fn the_desired_graph_has_namespace_parents_and_orders_stop() {
    // A namespace parent without a depends_on entry still orders stop and up's closure.
    let mut d = example();
    d.services.push(svc("sidecar", vec![]));
    d.services[3].namespace_parents = vec!["client".into()];
    let g = graph(Some(&d), &running());
    assert_eq!(g.edges("sidecar"), [crate::project::graph::Edge::started("client")]);
    assert_eq!(d.select(&["sidecar".into()], false).unwrap().into_iter().collect::<Vec<_>>(), ["client", "content", "sidecar", "web"]);
    let mut o = running();
    o.containers.push(ctr("sidecar", 1, Status::Running));
    golden(
        &stop(&o, &g, &[], None),
        "#1 container demo-sidecar-1: stop
#2 container demo-client-1: stop after #1
#3 container demo-web-1: stop after #2
#4 container demo-content-1: stop after #3
",
    );
}
