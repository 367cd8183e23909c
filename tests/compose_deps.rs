//! depends_on conditions and `--wait`, attached `up` with `--exit-code-from` and Ctrl-C, and
//! robustness: two `up` at once, and `kill -9` of the CLI in the middle of `up`.
mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::compose::{Stack, wait_until};

fn rfc3339(v: &serde_json::Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap().with_timezone(&chrono::Utc)
}

const HEALTHY: &str = "services:
  db:
    image: busybox
    command: [\"sh\", \"-c\", \"sleep 1; touch /tmp/ready; exec sleep 1000\"]
    init: true
    healthcheck:
      test: [\"CMD\", \"test\", \"-f\", \"/tmp/ready\"]
      interval: 200ms
      retries: 30
  app:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
    depends_on:
      db:
        condition: service_healthy
";

#[test]
fn service_healthy_waits_and_wait_returns_when_healthy() {
    common::require_root!();
    let s = Stack::new("chealthy", HEALTHY);
    let t = Instant::now();
    let (_, err) = s.ok(["up", "-d", "--wait"]);
    assert!(t.elapsed() >= Duration::from_millis(900), "up waited for the healthcheck");
    assert!(err.contains(" Container chealthy-db-1  Healthy"), "{err}");
    let db = s.inspect("chealthy-db-1").unwrap();
    assert_eq!(db["State"]["Health"]["Status"], "healthy", "--wait returned only once db was healthy");
    // app started only after db was healthy: after db's first passing check ended.
    let first_ok =
        db["State"]["Health"]["Log"].as_array().unwrap().iter().find(|r| r["ExitCode"] == 0).map(|r| rfc3339(&r["End"])).unwrap();
    let app = s.inspect("chealthy-app-1").unwrap();
    assert_eq!(app["State"]["Status"], "running");
    assert!(rfc3339(&app["State"]["StartedAt"]) >= first_ok, "app started before db was healthy");
    s.ok(["down", "-t", "0"]);
}

#[test]
fn failing_dependencies_and_wait_timeout() {
    common::require_root!();
    let s = Stack::new(
        "cfailing",
        "services:
  sick:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
    healthcheck:
      test: [\"CMD\", \"false\"]
      interval: 100ms
      retries: 2
  needs-sick:
    image: busybox
    command: [\"sleep\", \"1000\"]
    depends_on: {sick: {condition: service_healthy}}
  job:
    image: busybox
    command: [\"sh\", \"-c\", \"exit 3\"]
  needs-job:
    image: busybox
    command: [\"sleep\", \"1000\"]
    depends_on: {job: {condition: service_completed_successfully}}
  optional:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
    depends_on: {job: {condition: service_completed_successfully, required: false}}
",
    );
    let o = s.run(["up", "-d"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    // Every error is reported, with what to do next.
    assert!(err.contains("Error: dependency failed to start: container cfailing-sick-1 is unhealthy"), "{err}");
    assert!(err.contains("Error: service \"job\" didn't complete successfully: exit 3"), "{err}");
    assert!(err.contains("berth logs job") && err.contains("berth logs sick"), "{err}");
    assert!(err.contains("optional dependency"), "{err}");
    assert_eq!(s.status("cfailing-needs-sick-1"), "created");
    assert_eq!(s.status("cfailing-needs-job-1"), "created");
    assert_eq!(s.status("cfailing-optional-1"), "running", "an optional dependency never blocks");
    s.ok(["down", "-t", "0"]);

    // --wait-timeout: a service that never becomes healthy.
    s.write(
        "services:
  slow:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
    healthcheck:
      test: [\"CMD\", \"false\"]
      interval: 10s
      start_period: 60s
",
    );
    let t = Instant::now();
    let o = s.run(["up", "-d", "--wait", "--wait-timeout", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("application not healthy after 1s"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(8));
    s.ok(["down", "-t", "0"]);
}

#[test]
fn exit_code_from_in_a_ci_stack() {
    common::require_root!();
    let s = Stack::new(
        "cci",
        "services:
  db:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
  tests:
    image: busybox
    command: [\"sh\", \"-c\", \"echo running tests; sleep 0.5; echo 2 failures; exit 3\"]
    depends_on: [db]
",
    );
    let o = s.run(["up", "--exit-code-from", "tests", "-t", "1"]);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{out}\n{err}");
    assert!(out.contains("Attaching to db-1, tests-1"), "{out}");
    assert!(out.contains("tests-1  | running tests\n") && out.contains("tests-1  | 2 failures\n"), "{out}");
    assert!(out.contains("tests-1 exited with code 3"), "{out}");
    assert!(err.contains("Aborting on container exit..."), "{err}");
    assert_eq!(s.status("cci-db-1"), "exited", "the stack is stopped");

    // The target killed by the abort: its real exit code, not 0.
    s.write(
        "services:
  worker:
    image: busybox
    command: [\"sh\", \"-c\", \"sleep 0.3\"]
  tests:
    image: busybox
    command: [\"sleep\", \"1000\"]
",
    );
    let o = s.run(["up", "--exit-code-from", "tests", "-t", "1", "--remove-orphans"]);
    let code = s.inspect("cci-tests-1").unwrap()["State"]["ExitCode"].as_i64().unwrap();
    assert_ne!(code, 0);
    assert_eq!(o.status.code(), Some(code as i32), "{}", String::from_utf8_lossy(&o.stdout));
    s.ok(["down", "-t", "0"]);
}

#[test]
fn attached_up_streams_logs_and_ctrl_c_stops_gracefully() {
    common::require_root!();
    let s = Stack::new(
        "cattach",
        "services:
  a:
    image: busybox
    command: [\"sh\", \"-c\", \"echo hello from a; exit 0\"]
  long:
    image: busybox
    command: [\"sh\", \"-c\", \"echo up; exec sleep 1000\"]
    init: true
",
    );
    let mut child = s.cmd(["up"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until(Duration::from_secs(10), "long to run", || s.status("cattach-long-1") == "running");
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let t = Instant::now();
    let o = loop {
        if let Some(_st) = child.try_wait().unwrap() {
            break child.wait_with_output().unwrap();
        }
        assert!(t.elapsed() < Duration::from_secs(20), "up did not stop after Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(out.contains("a-1     | hello from a\n"), "{out}");
    assert!(out.contains("long-1  | up\n"), "{out}");
    assert!(out.contains("a-1 exited with code 0"), "{out}");
    assert!(err.contains("Gracefully Stopping... press Ctrl+C again to force"), "{err}");
    assert_eq!(o.status.code(), Some(130));
    assert_eq!(s.status("cattach-long-1"), "exited");
    s.ok(["down"]);
}

const CHAIN: &str = "services:
  s1:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
    healthcheck: {test: [\"CMD\", \"true\"], interval: 300ms}
  s2:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
    depends_on: {s1: {condition: service_healthy}}
    healthcheck: {test: [\"CMD\", \"true\"], interval: 300ms}
  s3:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
    depends_on: {s2: {condition: service_healthy}}
  s4:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
    depends_on: [s3]
";

fn assert_converged(s: &Stack) {
    assert_eq!(s.containers(), ["cchain-s1-1", "cchain-s2-1", "cchain-s3-1", "cchain-s4-1"]);
    for c in s.containers() {
        assert_eq!(s.status(&c), "running", "{c}");
    }
    assert_eq!(s.networks(), ["cchain_default"]);
}

#[test]
fn two_concurrent_ups_end_consistent() {
    common::require_root!();
    let s = Stack::new("cchain", CHAIN);
    let a = s.cmd(["up", "-d"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let b = s.cmd(["up", "-d"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(oa.status.success(), "{}", String::from_utf8_lossy(&oa.stderr));
    assert!(ob.status.success(), "{}", String::from_utf8_lossy(&ob.stderr));
    assert_converged(&s);
    // One of them found the work done.
    let both = format!("{}{}", String::from_utf8_lossy(&oa.stderr), String::from_utf8_lossy(&ob.stderr));
    assert_eq!(both.matches(" Container cchain-s4-1  Created").count(), 1, "{both}");
    assert!(both.contains(" Container cchain-s4-1  Running"), "{both}");
    s.ok(["down", "-t", "0"]);
    assert!(s.containers().is_empty());
}

#[test]
fn kill_9_in_the_middle_of_up_then_up_again() {
    common::require_root!();
    let s = Stack::new("cchain", CHAIN);
    for delay in [150u64, 400, 700] {
        let mut child = s.cmd(["up", "-d"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        let (_, err) = s.ok(["up", "-d"]);
        assert_converged(&s);
        assert!(!err.contains("Error"), "{err}");
        let objects = s.host_objects();
        s.ok(["down", "-t", "0"]);
        assert!(s.containers().is_empty() && s.networks().is_empty());
        assert!(objects.left().is_empty(), "{:?}", objects.left());
    }
    // And killed mid-up, `down` alone cleans up.
    let mut child = s.cmd(["up", "-d"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    let objects = s.host_objects();
    s.ok(["down", "-t", "0"]);
    assert!(s.containers().is_empty() && s.networks().is_empty());
    assert!(objects.left().is_empty(), "{:?}", objects.left());
}

#[test]
fn ctrl_c_in_the_middle_of_up_leaves_a_state_up_finishes() {
    common::require_root!();
    let s = Stack::new(
        "cctrlc",
        "services:
  slow:
    image: busybox
    command: [\"sh\", \"-c\", \"sleep 2; touch /tmp/ok; exec sleep 1000\"]
    init: true
    healthcheck: {test: [\"CMD\", \"test\", \"-f\", \"/tmp/ok\"], interval: 200ms, retries: 50}
  after:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
    depends_on: {slow: {condition: service_healthy}}
",
    );
    let child = s.cmd(["up", "-d"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until(Duration::from_secs(10), "slow to run", || s.status("cctrlc-slow-1") == "running");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("Canceled"), "{err}");
    assert_eq!(s.status("cctrlc-after-1"), "created", "nothing started after Ctrl-C");
    let (_, err) = s.ok(["up", "-d"]);
    assert!(err.contains(" Container cctrlc-slow-1  Running") && err.contains(" Container cctrlc-after-1  Started"), "{err}");
    s.ok(["down", "-t", "0"]);
    assert!(s.containers().is_empty());
}
