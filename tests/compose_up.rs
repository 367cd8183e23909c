//! `up` converges: only what changed is recreated, scale up and down, orphans, volumes kept by
//! `down` and removed by `down -v`, and the plan printed by `--dry-run`.
mod common;

use common::compose::Stack;

const TWO: &str = "services:
  a:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
  b:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
    environment:
      X: \"1\"
";

#[test]
fn only_the_changed_service_is_recreated() {
    common::require_root!();
    let s = Stack::new("crecreate", TWO);
    s.ok(["up", "-d"]);
    let (a, b) = (s.id("crecreate-a-1"), s.id("crecreate-b-1"));
    // The dry run shows the plan and changes nothing.
    s.write(&TWO.replace("X: \"1\"", "X: \"2\""));
    // On stderr, as compose prints its dry-run progress.
    let (_, out) = s.ok(["up", "-d", "--dry-run"]);
    assert!(out.contains("DRY-RUN MODE - #2 container crecreate-b-1: recreate (replaces crecreate-b-1) (config hash changed)"), "{out}");
    assert!(out.contains("DRY-RUN MODE - #1 container crecreate-a-1: running"), "{out}");
    assert_eq!(s.id("crecreate-b-1"), b);
    let (_, err) = s.ok(["up", "-d", "-t", "1"]);
    assert!(err.contains(" Container crecreate-b-1  Recreated"), "{err}");
    assert!(err.contains(" Container crecreate-a-1  Running"), "{err}");
    assert_eq!(s.id("crecreate-a-1"), a, "a is untouched");
    let b2 = s.id("crecreate-b-1");
    assert_ne!(b2, b, "b is recreated");
    let env = s.inspect("crecreate-b-1").unwrap()["Config"]["Env"].clone();
    assert!(env.as_array().unwrap().iter().any(|e| e == "X=2"), "{env}");
    assert_eq!(s.status("crecreate-b-1"), "running");
    // --force-recreate recreates everything; --no-recreate nothing.
    s.write(TWO);
    let (_, err) = s.ok(["up", "-d", "--no-recreate"]);
    assert!(!err.contains("Recreate"), "{err}");
    assert_eq!(s.id("crecreate-b-1"), b2);
    s.ok(["up", "-d", "--force-recreate", "-t", "0"]);
    assert_ne!(s.id("crecreate-a-1"), a);
    assert_eq!(s.containers(), ["crecreate-a-1", "crecreate-b-1"]);
    s.ok(["down", "-t", "0"]);
}

#[test]
fn scale_up_and_down_then_orphans() {
    common::require_root!();
    let s = Stack::new("cscale", TWO);
    s.ok(["up", "-d", "--scale", "b=3"]);
    assert_eq!(s.containers(), ["cscale-a-1", "cscale-b-1", "cscale-b-2", "cscale-b-3"]);
    for c in s.containers() {
        assert_eq!(s.status(&c), "running", "{c}");
    }
    let n3 = s.inspect("cscale-b-3").unwrap();
    assert_eq!(n3["Config"]["Labels"]["com.docker.compose.container-number"], "3");
    let b1 = s.id("cscale-b-1");
    s.ok(["up", "-d", "--scale", "b=1", "-t", "0"]);
    assert_eq!(s.containers(), ["cscale-a-1", "cscale-b-1"]);
    assert_eq!(s.id("cscale-b-1"), b1, "the first replica is kept");
    // A service removed from the file: its container is an orphan, reported, then removed.
    s.write(&TWO.replace("  a:\n    image: busybox\n    command: [\"sleep\", \"1000\"]\n    init: true\n", ""));
    let (_, err) = s.ok(["up", "-d"]);
    assert!(
        err.contains("Found orphan containers ([cscale-a-1]) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up."),
        "{err}"
    );
    assert_eq!(s.status("cscale-a-1"), "running");
    // down with the file leaves it (with the warning), and the network it uses.
    let (_, err) = s.ok_file(["down", "-t", "0"]);
    assert!(err.contains("Found orphan containers ([cscale-a-1])") && err.contains("Resource is still in use"), "{err}");
    assert_eq!(s.containers(), ["cscale-a-1"]);
    s.ok(["up", "-d", "--remove-orphans", "-t", "0"]);
    assert_eq!(s.containers(), ["cscale-b-1"]);
    s.ok(["down", "-t", "0"]);
    assert!(s.containers().is_empty());
}

#[test]
fn down_keeps_named_volumes_and_down_v_removes_them() {
    common::require_root!();
    let s = Stack::new(
        "cvolumes",
        "services:
  writer:
    image: busybox
    command: [\"sh\", \"-c\", \"cat /data/f 2>/dev/null || echo none; echo kept > /data/f\"]
    volumes: [\"data:/data\", \"/anon\"]
volumes:
  data: {}
",
    );
    s.ok(["up", "-d"]);
    let v = s.volumes();
    assert_eq!(v.len(), 2, "the named volume and the anonymous one: {v:?}");
    assert!(v.contains(&"cvolumes_data".to_string()));
    let vol: serde_json::Value = serde_json::from_str(&s.t.ok(["volume", "inspect", "cvolumes_data"])).unwrap();
    assert_eq!(vol[0]["Labels"]["com.docker.compose.project"], "cvolumes");
    assert_eq!(vol[0]["Labels"]["com.docker.compose.volume"], "data");
    common::compose::wait_until(std::time::Duration::from_secs(5), "the writer to finish", || s.status("cvolumes-writer-1") == "exited");
    assert_eq!(s.logs("cvolumes-writer-1"), "none\n");
    s.ok_file(["down"]);
    let kept = s.volumes();
    assert_eq!(kept.len(), 2, "plain down keeps volumes");
    let first_anon = kept.into_iter().find(|v| v != "cvolumes_data").unwrap();
    s.ok(["up", "-d"]);
    assert_eq!(s.volumes().len(), 3, "a new container gets a new anonymous volume");
    common::compose::wait_until(std::time::Duration::from_secs(5), "the writer to finish", || s.status("cvolumes-writer-1") == "exited");
    assert_eq!(s.logs("cvolumes-writer-1"), "kept\n", "the data survived down");
    let (_, err) = s.ok_file(["down", "-v"]);
    assert!(err.contains(" Volume cvolumes_data  Removed"), "{err}");
    // As compose: the named volume and the anonymous volume of the removed container go; the
    // one a previous plain `down` left unattached stays.
    assert_eq!(s.volumes(), [first_anon], "down -v removes the named and the attached anonymous volumes");
}

#[test]
fn errors_name_the_problem_and_what_to_do() {
    common::require_root!();
    let s = Stack::new("cerrors", TWO);
    let o = s.run(["up", "-d", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no such service: nope"));
    let o = s.run(["up", "-d", "--scale", "b"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid --scale \"b\": use SERVICE=NUM"));
    let o = s.run(["up", "-d", "--abort-on-container-exit"]);
    assert!(!o.status.success());
    // A bad project name, with the file: compose's words, then what to do.
    let compose_words = "invalid project name \"B@d\": must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number";
    let o = s.t.cmd(["-p", "B@d", "up", "-d"]).current_dir(&s.dir).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{compose_words}; pass -p a valid name such as \"bd\"")), "{err}");
    let o = s.t.cmd(["up", "-d"]).env("COMPOSE_PROJECT_NAME", "B@d").current_dir(&s.dir).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{compose_words}; set COMPOSE_PROJECT_NAME to a valid name such as \"bd\"")), "{err}");
    assert!(s.containers().is_empty(), "nothing was created");
    // A missing image with pull_policy never.
    s.write(&TWO.replace(
        "image: busybox\n    command: [\"sleep\", \"1000\"]\n    init: true\n    environment",
        "image: nosuch:1\n    pull_policy: never\n    command: [\"sleep\", \"1000\"]\n    environment",
    ));
    let o = s.run(["up", "-d"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("image nosuch:1 is not present and its pull policy is never: pull it with `berth pull b`"), "{err}");
    assert!(s.containers().is_empty(), "nothing was created");
    // A container that cannot start: the error, what to do, and its dependents left alone.
    s.write(
        "services:
  bad:
    image: busybox
    command: [\"/no/such/binary\"]
  after:
    image: busybox
    command: [\"sleep\", \"1000\"]
    depends_on: [bad]
  other:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
",
    );
    let o = s.run(["up", "-d"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("Error: cannot start container cerrors-bad-1"), "{err}");
    assert!(err.contains("berth logs"), "a hint: {err}");
    assert_eq!(s.status("cerrors-after-1"), "created", "a failed dependency stops its dependents");
    assert_eq!(s.status("cerrors-other-1"), "running", "the rest carries on");
    s.ok(["down", "-t", "0"]);
    assert!(s.containers().is_empty());
}

#[test]
fn build_sections_are_built_and_a_rebuilt_image_recreates() {
    common::require_root!();
    let s = Stack::new(
        "cbuild",
        "services:
  app:
    build: ./app
    command: [\"sh\", \"-c\", \"cat /hello.txt; exec sleep 1000\"]
    init: true
  other:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
",
    );
    let app = s.dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("Dockerfile"), "FROM busybox\nCOPY hello.txt /hello.txt\n").unwrap();
    std::fs::write(app.join("hello.txt"), "first\n").unwrap();
    // The image is missing: `up` builds it, named as compose names it.
    let (_, err) = s.ok(["up", "-d"]);
    assert!(err.contains("app  Built"), "{err}");
    common::compose::wait_until(std::time::Duration::from_secs(5), "app's output", || s.logs("cbuild-app-1") == "first\n");
    let img = s.inspect("cbuild-app-1").unwrap()["Config"]["Image"].clone();
    assert_eq!(img, "cbuild-app", "{img}");
    let (id, other) = (s.id("cbuild-app-1"), s.id("cbuild-other-1"));
    // Present: not rebuilt; --build rebuilds, and the new image recreates only app.
    let (_, err) = s.ok(["up", "-d"]);
    assert!(!err.contains("Built"), "{err}");
    std::fs::write(app.join("hello.txt"), "second\n").unwrap();
    let (_, err) = s.ok(["up", "-d", "--build", "-t", "0"]);
    assert!(err.contains("app  Built") && err.contains(" Container cbuild-app-1  Recreated"), "{err}");
    assert_ne!(s.id("cbuild-app-1"), id);
    assert_eq!(s.id("cbuild-other-1"), other);
    common::compose::wait_until(std::time::Duration::from_secs(5), "app's new output", || s.logs("cbuild-app-1") == "second\n");
    // down --rmi local removes the built image, not busybox.
    s.ok(["down", "-t", "0", "--rmi", "local"]);
    let o = s.t.run(["image", "inspect", "cbuild-app"]);
    assert!(!o.status.success(), "the built image is removed");
    assert!(s.t.run(["image", "inspect", "busybox"]).status.success());
}

#[test]
fn create_restart_grace_period_and_progress_modes() {
    common::require_root!();
    let s = Stack::new(
        "cmodes",
        "services:
  stubborn:
    image: busybox
    command: [\"sleep\", \"1000\"]
    stop_grace_period: 1s
",
    );
    // create: the container exists, not started; json progress, one object per event.
    let (_, err) = s.ok(["--progress", "json", "create"]);
    let first: serde_json::Value = serde_json::from_str(err.lines().next().unwrap()).unwrap();
    assert_eq!(first["id"], "Network cmodes_default", "{err}");
    assert!(err.lines().any(|l| l == r#"{"id":"Container cmodes-stubborn-1","status":"Created"}"#), "{err}");
    assert_eq!(s.status("cmodes-stubborn-1"), "created");
    let (_, err) = s.ok(["--progress", "quiet", "start"]);
    assert_eq!(err, "");
    assert_eq!(s.status("cmodes-stubborn-1"), "running");
    // sleep as PID 1 ignores SIGTERM: restart waits stop_grace_period (1 s), not 10 s.
    let t = std::time::Instant::now();
    let (_, err) = s.ok(["restart"]);
    let took = t.elapsed();
    assert!(took >= std::time::Duration::from_millis(900) && took < std::time::Duration::from_secs(5), "{took:?}");
    assert!(err.contains(" Container cmodes-stubborn-1  Restarting") && err.contains(" Container cmodes-stubborn-1  Started"), "{err}");
    assert_eq!(s.status("cmodes-stubborn-1"), "running");
    // -t overrides it.
    let t = std::time::Instant::now();
    s.ok(["stop", "-t", "0"]);
    assert!(t.elapsed() < std::time::Duration::from_millis(900));
    s.ok(["down"]);
}

#[test]
fn a_namespace_child_is_recreated_with_its_parent() {
    common::require_root!();
    let yaml = "services:
  parent:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
    environment: {V: \"1\"}
  child:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
    network_mode: \"service:parent\"
  bystander:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
";
    let s = Stack::new("cns", yaml);
    s.ok(["up", "-d"]);
    let netns = |c: &str| {
        let pid = s.inspect(c).unwrap()["State"]["Pid"].as_i64().unwrap();
        std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap()
    };
    assert_eq!(netns("cns-child-1"), netns("cns-parent-1"), "child shares parent's network namespace");
    let (child, other) = (s.id("cns-child-1"), s.id("cns-bystander-1"));
    s.write(&yaml.replace("V: \"1\"", "V: \"2\""));
    let (_, err) = s.ok(["up", "-d", "-t", "0"]);
    assert!(err.contains(" Container cns-parent-1  Recreated") && err.contains(" Container cns-child-1  Recreated"), "{err}");
    assert_ne!(s.id("cns-child-1"), child);
    assert_eq!(s.id("cns-bystander-1"), other);
    assert_eq!(netns("cns-child-1"), netns("cns-parent-1"), "the new child joined the new parent");
    s.ok(["down", "-t", "0"]);
    assert!(s.containers().is_empty());
}

#[test]
fn a_recreated_container_keeps_its_anonymous_volumes_unless_v() {
    common::require_root!();
    let yaml = "services:
  keep:
    image: busybox
    command: [\"sh\", \"-c\", \"if test -f /data/f; then echo found; else echo new; touch /data/f; fi; exec sleep 1000\"]
    init: true
    volumes: [\"/data\"]
    environment: {V: \"1\"}
";
    let s = Stack::new("canon", yaml);
    let log =
        |want: &str| common::compose::wait_until(std::time::Duration::from_secs(5), want, || s.logs("canon-keep-1") == format!("{want}\n"));
    s.ok(["up", "-d"]);
    log("new");
    s.write(&yaml.replace("V: \"1\"", "V: \"2\""));
    s.ok(["up", "-d", "-t", "0"]);
    log("found");
    assert_eq!(s.volumes().len(), 1, "the anonymous volume went to the new container");
    s.write(&yaml.replace("V: \"1\"", "V: \"3\""));
    s.ok(["up", "-d", "-t", "0", "-V"]);
    log("new");
    s.ok(["down", "-v", "-t", "0"]);
    assert_eq!(s.volumes().len(), 1, "-V left the old anonymous volume, down -v took the current one: {:?}", s.volumes());
}
