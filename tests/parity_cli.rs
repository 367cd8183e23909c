//! CLI parity with Docker Compose v2.40.3 (issue 13): what a user sees of `--dry-run`, of the
//! exit codes of `start`, `pause`, `unpause` and `run`, of `images -q`, `logs --tail -1`, `port`,
//! `rm`'s question and Go's boolean flag forms. Every expectation was checked side by side with
//! `docker compose` on the same file. Projects `parcli*`, subnets 10.226.0.0/16, state roots
//! under /tmp/berth-parcli-*.

mod common;

use std::io::Write;
use std::process::{Output, Stdio};

use common::TestRoot;
use common::compose::Stack;

const PREFIX: &str = "berth-parcli-";

fn yaml(subnet: u8) -> String {
    format!(
        "services:
  web:
    image: busybox
    init: true
    command: [\"sh\", \"-c\", \"echo one; echo two; exec sleep 1000\"]
    expose: [\"8000\"]
  job:
    image: busybox
    command: [\"true\"]
networks:
  default:
    ipam:
      config:
        - subnet: 10.226.{subnet}.0/24
"
    )
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs and asserts the exit code; returns (stdout, stderr).
#[track_caller]
fn rc(s: &Stack, args: &[&str], code: i32) -> (String, String) {
    let o = s.run(args);
    assert_eq!(o.status.code(), Some(code), "berth {args:?}:\nstdout: {}\nstderr: {}", out(&o), err(&o));
    (out(&o), err(&o))
}

#[test]
fn dry_run_never_changes_state() {
    common::require_root!();
    let s = Stack::in_root(TestRoot::with_prefix(PREFIX), "parclidry", &yaml(1));
    s.ok(["up", "-d", "web"]);
    let id = s.id("parclidry-web-1");

    // exec: refused as compose refuses it, before or after the command, with or without -T.
    for args in [&["--dry-run", "exec", "web", "touch", "/x"][..], &["exec", "--dry-run", "-T", "web", "touch", "/x"]] {
        let (o, e) = rc(&s, args, 1);
        assert_eq!(o, "");
        assert!(e.contains("interactive exec is not supported in dry-run mode"), "{e}");
    }
    rc(&s, &["exec", "-T", "web", "test", "!", "-e", "/x"], 0);

    // cp: compose's progress lines, marked, on stderr; nothing copied.
    std::fs::write(s.dir.join("f.txt"), "data").unwrap();
    let (o, e) = rc(&s, &["--dry-run", "cp", "f.txt", "web:/f.txt"], 0);
    assert_eq!(o, "");
    assert!(e.lines().all(|l| l.starts_with(" DRY-RUN MODE - ")) && e.contains("copy f.txt to parclidry-web-1:/f.txt"), "{e}");
    rc(&s, &["exec", "-T", "web", "test", "!", "-e", "/f.txt"], 0);

    // Every changing command: the plan on stderr, each line prefixed as compose prefixes it,
    // and the container untouched.
    for args in [
        &["stop", "--dry-run"][..],
        &["--dry-run", "kill"],
        &["pause", "--dry-run"],
        &["--dry-run", "restart"],
        &["rm", "--dry-run", "-s", "-f"],
        &["--dry-run", "down"],
        &["up", "-d", "--dry-run", "--force-recreate"],
        &["--dry-run", "run", "--rm", "job"],
        &["scale", "--dry-run", "web=2"],
        &["--dry-run", "create", "job"],
    ] {
        let (o, e) = rc(&s, args, 0);
        assert!(!o.contains("DRY-RUN"), "{args:?}: dry-run lines go to stderr, not stdout: {o}");
        assert!(e.lines().all(|l| l.starts_with(" DRY-RUN MODE - ")), "{args:?}: {e}");
        assert_eq!(s.status("parclidry-web-1"), "running", "{args:?}");
        assert_eq!(s.id("parclidry-web-1"), id, "{args:?}");
    }
    assert_eq!(s.containers(), ["parclidry-web-1"]);

    // Accepted after every compose command that reads, as compose's persistent flag.
    for args in [
        &["ps", "--dry-run"][..],
        &["logs", "--dry-run", "web"],
        &["images", "--dry-run"],
        &["top", "--dry-run"],
        &["port", "--dry-run", "web", "8000"],
        &["config", "--dry-run", "-q"],
        &["ls", "--dry-run"],
        &["volumes", "--dry-run"],
        &["version", "--dry-run"],
    ] {
        rc(&s, args, 0);
    }
    // berth's own Docker-style commands cannot simulate: refused, not run.
    let (_, e) = rc(&s, &["--dry-run", "volume", "create", "parclidry_v"], 1);
    assert!(e.contains("--dry-run is not supported by this command"), "{e}");
    assert!(!s.volumes().contains(&"parclidry_v".to_string()));
    s.ok(["down", "-t", "0"]);
}

#[test]
fn exit_codes_and_outputs_as_compose() {
    common::require_root!();
    let s = Stack::in_root(TestRoot::with_prefix(PREFIX), "parcliexit", &yaml(2));

    // start with nothing created: compose's error, rc 1.
    let (_, e) = rc(&s, &["start"], 1);
    assert!(e.contains("no container found for project \"parcliexit\": not found"), "{e}");

    s.ok(["up", "-d", "web"]);
    let id = s.id("parcliexit-web-1");
    // pause twice, unpause when not paused: errors, rc 1 (compose's text, without its
    // daemon's prefix).
    rc(&s, &["pause", "web"], 0);
    let (_, e) = rc(&s, &["pause", "web"], 1);
    assert!(e.contains(&format!("Container {id} is already paused")), "{e}");
    rc(&s, &["unpause", "web"], 0);
    let (_, e) = rc(&s, &["unpause", "web"], 1);
    assert!(e.contains(&format!("Container {id} is not paused")), "{e}");

    // run --rm of a missing command: rc 1, Docker's message; nothing left.
    let (_, e) = rc(&s, &["run", "--rm", "-T", "job", "nosuchcmd"], 1);
    assert!(e.contains("exec: \"nosuchcmd\": executable file not found in $PATH"), "{e}");

    // port: an exposed, unpublished port is `:0`, rc 0; an unknown one an error with no
    // dangling `: `.
    assert_eq!(rc(&s, &["port", "web", "8000"], 0).0, ":0\n");
    let (_, e) = rc(&s, &["port", "web", "9999"], 1);
    assert!(e.contains("no port 9999/tcp for container parcliexit-web-1") && !e.lines().any(|l| l.ends_with(": ")), "{e:?}");

    // images -q: each image once, though two containers use it.
    s.ok(["up", "-d", "job"]);
    let (o, _) = rc(&s, &["images", "-q"], 0);
    assert_eq!(o.lines().count(), 1, "{o}");

    // logs --tail -1 means all.
    common::compose::wait_until(std::time::Duration::from_secs(10), "web's output", || s.logs("parcliexit-web-1").contains("two"));
    let (o, _) = rc(&s, &["logs", "--tail", "-1", "--no-log-prefix", "web"], 0);
    assert_eq!(o, "one\ntwo\n");
    let (o, _) = rc(&s, &["logs", "--tail", "1", "--no-log-prefix", "web"], 0);
    assert_eq!(o, "two\n");

    // rm without -f reads its answer from stdin: `n` keeps, `y` removes.
    let rm = |answer: &str| {
        let mut c = s.cmd(["rm", "job"]);
        let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(answer.as_bytes()).unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    };
    common::compose::wait_until(std::time::Duration::from_secs(10), "job exits", || s.status("parcliexit-job-1") == "exited");
    rm("n\n");
    assert_eq!(s.status("parcliexit-job-1"), "exited");
    rm("y\n");
    assert_eq!(s.status("parcliexit-job-1"), "missing");
    s.ok(["down", "-t", "0"]);
}

#[test]
fn boolean_flags_take_gos_forms() {
    common::require_root!();
    let s = Stack::in_root(TestRoot::with_prefix(PREFIX), "parclibool", &yaml(3));
    s.ok(["up", "-d=true", "--no-deps=false", "-V=0"]);
    common::compose::wait_until(std::time::Duration::from_secs(10), "job exits", || s.status("parclibool-job-1") == "exited");
    let names = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["ps", "--format", "{{.Name}}"];
        a.extend_from_slice(args);
        rc(&s, &a, 0).0.lines().map(String::from).collect()
    };
    let all = ["parclibool-job-1", "parclibool-web-1"];
    assert_eq!(names(&["--all=true"]), all);
    assert_eq!(names(&["-a=true"]), all);
    assert_eq!(names(&["-a"]), all);
    assert_eq!(names(&["--all=false"]), ["parclibool-web-1"]);
    assert_eq!(names(&["-a=false"]), ["parclibool-web-1"]);
    assert_eq!(names(&[]), ["parclibool-web-1"]);
    // Combined short flags still work; a value that is not Go's boolean is a usage error.
    assert_eq!(rc(&s, &["ps", "-aq"], 0).0.lines().count(), 2);
    let (_, e) = rc(&s, &["ps", "--all=maybe"], 1);
    assert!(e.contains("invalid boolean value \"maybe\""), "{e}");
    // --rm=true removes the one-off, --rm=false keeps it; -i=false is accepted.
    assert_eq!(rc(&s, &["run", "--rm=true", "-T", "job", "echo", "gone"], 0).0, "gone\n");
    assert_eq!(rc(&s, &["run", "--rm=false", "-i=false", "-T", "job", "echo", "kept"], 0).0, "kept\n");
    let oneoffs: Vec<String> = s.containers().into_iter().filter(|c| c.starts_with("parclibool-job-run-")).collect();
    assert_eq!(oneoffs.len(), 1, "{oneoffs:?}");
    // The same forms on the other commands' flags.
    common::compose::wait_until(std::time::Duration::from_secs(10), "web's output", || s.logs("parclibool-web-1").contains("two"));
    assert_eq!(rc(&s, &["exec", "-T=true", "-d=false", "web", "echo", "in"], 0).0, "in\n");
    assert_eq!(rc(&s, &["logs", "-f=false", "--no-log-prefix=true", "--tail=1", "web"], 0).0, "two\n");
    assert_eq!(rc(&s, &["images", "-q=true"], 0).0.lines().count(), 1);
    // build --pull=false (nothing to build here: accepted, rc 0).
    rc(&s, &["build", "--pull=false", "--no-cache=false"], 0);
    s.ok(["down", "-t", "0", "--remove-orphans=true", "-v=false"]);
    assert!(s.containers().is_empty(), "{:?}", s.containers());
}
