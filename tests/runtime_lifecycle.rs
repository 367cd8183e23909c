//! The supervisor's lifecycle: stop with its grace period, berth's init, restart policies with
//! backoff, healthchecks, and a supervisor killed with -9.
mod common;

use std::time::{Duration, Instant};

use common::runtime::{Rt, err, out};
use serde_json::json;

#[test]
fn sigterm_within_the_grace_period_then_sigkill_after_it() {
    common::require_root!();
    let rt = Rt::new();
    rt.run_d(&rt.spec("polite", "trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"));
    let t = Instant::now();
    rt.ctr_ok(["stop", "-t", "5", "polite"]);
    assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());
    let v = rt.inspect("polite");
    assert_eq!((v["State"]["Status"].as_str(), v["State"]["ExitCode"].as_i64()), (Some("exited"), Some(0)));
    assert!(rt.logs("polite", &[]).0.contains("bye"));

    rt.run_d(&rt.spec("stubborn", "trap '' TERM; while true; do sleep 0.1; done"));
    let t = Instant::now();
    rt.ctr_ok(["stop", "-t", "1", "stubborn"]);
    let took = t.elapsed();
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(4), "took {took:?}");
    assert_eq!(rt.inspect("stubborn")["State"]["ExitCode"], 137);
    // A custom stop signal and grace period from the spec.
    let mut s = rt.spec("usr1", "trap 'echo got-usr1; exit 3' USR1; while true; do sleep 0.1; done");
    s["StopSignal"] = json!("SIGUSR1");
    s["StopGracePeriod"] = json!(2_000_000_000u64);
    rt.run_d(&s);
    rt.ctr_ok(["stop", "usr1"]);
    assert_eq!(rt.inspect("usr1")["State"]["ExitCode"], 3);
    // Stopping a stopped container is fine.
    rt.ctr_ok(["stop", "usr1"]);
}

#[test]
fn init_forwards_signals_and_reaps_zombies() {
    common::require_root!();
    let rt = Rt::new();
    // Orphans whose parent exits at once are re-parented to PID 1.
    // They die a second later, when `sleep` is PID 1 of the container without an init.
    let orphans = "i=0; while [ $i -lt 10 ]; do sh -c 'sleep 1 & exit 0'; i=$((i+1)); done; exec sleep 1000";
    let mut s = rt.spec("with-init", orphans);
    s["Init"] = json!(true);
    rt.run_d(&s);
    let mut bare = rt.spec("no-init", orphans);
    bare["Init"] = json!(false);
    rt.run_d(&bare);
    std::thread::sleep(Duration::from_millis(2500));
    let zombies = |name: &str| {
        let (_, o, _) = rt.exec(name, &["sh", "-c", "grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l"]);
        o.trim().parse::<u32>().unwrap()
    };
    assert_eq!(zombies("with-init"), 0, "berth's init reaps orphans");
    assert!(zombies("no-init") > 0, "without an init, `sleep` as PID 1 leaves zombies (the control)");
    // The init forwards SIGTERM to the command and exits with its status.
    let (_, o, _) = rt.exec("with-init", &["cat", "/proc/1/cmdline"]);
    assert!(!o.contains("sleep"), "PID 1 is the init, not the command: {o}");
    let t = Instant::now();
    rt.ctr_ok(["stop", "-t", "5", "with-init"]);
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(rt.inspect("with-init")["State"]["ExitCode"], 143);
}

fn log_times(rt: &Rt, name: &str) -> Vec<chrono::DateTime<chrono::FixedOffset>> {
    let (o, _) = rt.logs(name, &["-t"]);
    o.lines().filter_map(|l| l.split_once(' ')).map(|(t, _)| chrono::DateTime::parse_from_rfc3339(t).unwrap()).collect()
}

#[test]
fn restart_policy_with_backoff_and_explicit_stops() {
    common::require_root!();
    let rt = Rt::new();
    let mut s = rt.spec("flaky", "echo run; exit 3");
    s["RestartPolicy"] = json!({"Name": "on-failure", "MaximumRetryCount": 3});
    rt.run_d(&s);
    rt.wait_for("three restarts", Duration::from_secs(15), || {
        let v = rt.inspect("flaky");
        v["State"]["Status"] == "exited" && v["RestartCount"] == 3
    });
    let v = rt.inspect("flaky");
    assert_eq!(v["State"]["ExitCode"], 3);
    let times = log_times(&rt, "flaky");
    assert_eq!(times.len(), 4, "one first run and three restarts");
    let gaps: Vec<i64> = times.windows(2).map(|w| (w[1] - w[0]).num_milliseconds()).collect();
    // 100 ms, 200 ms, 400 ms, plus start time.
    assert!(gaps[0] >= 90 && gaps[1] >= 190 && gaps[2] >= 390, "{gaps:?}");
    assert!(gaps[1] > gaps[0] && gaps[2] > gaps[1], "the delay doubles: {gaps:?}");

    // `always` restarts even clean exits, and an explicit stop is never undone.
    let mut s = rt.spec("always", "echo up; sleep 0.2; exit 0");
    s["RestartPolicy"] = json!({"Name": "always"});
    rt.run_d(&s);
    rt.wait_for("a restart", Duration::from_secs(10), || rt.inspect("always")["RestartCount"].as_u64().unwrap_or(0) >= 1);
    rt.ctr_ok(["stop", "-t", "1", "always"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rt.status("always"), "exited");
    // An explicit kill counts as a stop as well.
    let mut s = rt.spec("killed", "exec sleep 1000");
    s["RestartPolicy"] = json!({"Name": "unless-stopped"});
    rt.run_d(&s);
    rt.ctr_ok(["kill", "killed"]);
    rt.wait_for("the kill", Duration::from_secs(5), || rt.status("killed") == "exited");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rt.status("killed"), "exited");
    assert_eq!(rt.inspect("killed")["RestartCount"], 0);
}

#[test]
fn health_turns_healthy_then_unhealthy() {
    common::require_root!();
    let rt = Rt::new();
    let mut s = rt.spec("hc", "sleep 0.5; touch /tmp/healthy; exec sleep 1000");
    s["Healthcheck"] = json!({
        "Test": ["CMD-SHELL", "test -f /tmp/healthy && echo fine"],
        "Interval": 200_000_000u64,
        "Timeout": 1_000_000_000u64,
        "Retries": 2,
    });
    rt.run_d(&s);
    assert_eq!(rt.inspect("hc")["State"]["Health"]["Status"], "starting");
    rt.wait_for("healthy", Duration::from_secs(10), || rt.inspect("hc")["State"]["Health"]["Status"] == "healthy");
    let v = rt.inspect("hc");
    let last = v["State"]["Health"]["Log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["ExitCode"].as_i64(), last["Output"].as_str()), (Some(0), Some("fine\n")));
    assert!(out(&rt.ctr(["ls"])).contains("(healthy)"));
    rt.exec("hc", &["rm", "/tmp/healthy"]);
    rt.wait_for("unhealthy", Duration::from_secs(10), || rt.inspect("hc")["State"]["Health"]["Status"] == "unhealthy");
    assert!(rt.inspect("hc")["State"]["Health"]["FailingStreak"].as_u64().unwrap() >= 2);
    // A probe that outlives its timeout is killed and counted as a failure.
    let mut s = rt.spec("slow", "exec sleep 1000");
    s["Healthcheck"] = json!({"Test": ["CMD", "sleep", "10"], "Interval": 100_000_000u64, "Timeout": 300_000_000u64, "Retries": 1});
    rt.run_d(&s);
    rt.wait_for("the timeout", Duration::from_secs(10), || rt.inspect("slow")["State"]["Health"]["Status"] == "unhealthy");
    let v = rt.inspect("slow");
    let last = v["State"]["Health"]["Log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["ExitCode"], -1);
    assert!(last["Output"].as_str().unwrap().contains("Health check exceeded timeout (300ms)"), "{last}");
    // The timed-out probes do not pile up in the container.
    let (_, o, _) = rt.exec(
        "slow",
        &["sh", "-c", "for p in /proc/[0-9]*; do [ \"$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)\" = 'sleep 10 ' ] && echo x; done | wc -l"],
    );
    assert!(o.trim().parse::<u32>().unwrap() <= 1, "at most the probe in flight: {o}");
}

#[test]
fn a_killed_supervisor_is_reported_honestly() {
    common::require_root!();
    let rt = Rt::new();
    let id = rt.run_d(&rt.spec("orphan", "exec sleep 1000"));
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rt.t.root().join("containers").join(&id).join("state.json")).unwrap()).unwrap();
    let sup = state["Supervisor"]["Pid"].as_i64().unwrap() as i32;
    let init = state["Init"]["Pid"].as_i64().unwrap() as i32;
    assert_eq!(rt.status("orphan"), "running");
    unsafe { libc::kill(sup, libc::SIGKILL) };
    rt.wait_for("the status to change", Duration::from_secs(5), || rt.status("orphan") == "dead");
    let v = rt.inspect("orphan");
    assert!(v["State"]["Error"].as_str().unwrap().contains(&format!("supervisor (pid {sup}) died")), "{v}");
    // The container did not outlive its supervisor.
    rt.wait_for("the container to die", Duration::from_secs(5), || !std::path::Path::new(&format!("/proc/{init}")).exists());
    // It can be started again, and removed; nothing is left.
    rt.ctr_ok(["start", "orphan"]);
    assert_eq!(rt.status("orphan"), "running");
    rt.ctr_ok(["rm", "-f", "orphan"]);
    assert!(Rt::cgroup_dirs(&id).is_empty());
    let ps = std::process::Command::new("pgrep").args(["-f", &id]).output().unwrap();
    assert!(out(&ps).trim().is_empty(), "processes left: {}", out(&ps));
}

#[test]
fn attached_run_with_stdin_and_rm() {
    common::require_root!();
    let rt = Rt::new();
    let p = rt.t.scratch().join("cat.json");
    std::fs::write(&p, serde_json::to_vec(&rt.spec("cat", "tr a-z A-Z; exit 5")).unwrap()).unwrap();
    let mut c = rt.t.cmd(["__ctr", "run", "-i", "--rm", p.to_str().unwrap()]);
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"shout\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", err(&o));
    assert_eq!(out(&o), "SHOUT\n");
    // --rm: the container is gone.
    rt.wait_for("removal", Duration::from_secs(5), || !rt.ctr(["inspect", "cat"]).status.success());
}
