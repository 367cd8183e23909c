//! cgroups on this host: memory limits and OOM kills, pids limits, CPU quota, the freezer, and
//! the per-container cgroup that goes away with the container. (The v2 code is tested against a
//! fake cgroupfs in the unit tests of `engine::cgroups::v2`.)
mod common;

use std::time::Duration;

use common::runtime::{Rt, err, out};
use serde_json::json;

#[test]
fn memory_limit_oom_kill_is_137_and_oomkilled() {
    common::require_root!();
    let rt = Rt::new();
    let mut s = rt.spec("oom", "");
    // PID 1 itself allocates 256 MiB under a 32 MiB limit (and no swap).
    s["Cmd"] = json!(["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"]);
    s["Resources"] = json!({"Memory": 32 << 20, "MemorySwap": 32 << 20});
    let o = rt.run(&s);
    assert_eq!(o.status.code(), Some(137), "{}", err(&o));
    let v = rt.inspect("oom");
    assert_eq!(v["State"]["OOMKilled"], true);
    assert_eq!(v["State"]["ExitCode"], 137);
    assert_eq!(v["HostConfig"]["Memory"], 32 << 20);
    // A container that stays within its limit is not reported as OOM-killed.
    let mut s = rt.spec("fits", "dd if=/dev/zero of=/dev/null bs=1M count=1 2>/dev/null");
    s["Resources"] = json!({"Memory": 32 << 20});
    assert!(rt.run(&s).status.success());
    assert_eq!(rt.inspect("fits")["State"]["OOMKilled"], false);
}

#[test]
fn pids_limit_stops_fork_bombs() {
    common::require_root!();
    let rt = Rt::new();
    // The shell cannot fork past the limit: busybox sh gives up with EAGAIN.
    let mut s = rt.spec("pids", "i=0; while [ $i -lt 20 ]; do sleep 100 & i=$((i+1)); done; echo all-forked");
    s["Resources"] = json!({"PidsLimit": 8});
    let o = rt.run(&s);
    assert!(!out(&o).contains("all-forked"), "{}", out(&o));
    assert!(err(&o).contains("can't fork: Resource temporarily unavailable"), "{}", err(&o));
    assert_eq!(rt.inspect("pids")["HostConfig"]["PidsLimit"], 8);
    // The limit is in the container's cgroup while it runs.
    let mut s = rt.spec("pids2", "sleep 1000");
    s["Resources"] = json!({"PidsLimit": 8});
    let id = rt.run_d(&s);
    let dirs = Rt::cgroup_dirs(&id);
    let pids_dir = dirs.iter().find(|d| d.join("pids.max").exists()).expect("a pids cgroup");
    assert_eq!(std::fs::read_to_string(pids_dir.join("pids.max")).unwrap().trim(), "8");
}

#[test]
fn cpu_quota_and_the_cgroup_goes_away_with_the_container() {
    common::require_root!();
    let rt = Rt::new();
    let mut s = rt.spec("cpu", "sleep 1000");
    s["Resources"] = json!({"NanoCpus": 500_000_000u64, "CpuShares": 512, "Memory": 64 << 20});
    let id = rt.run_d(&s);
    let dirs = Rt::cgroup_dirs(&id);
    assert!(!dirs.is_empty(), "the container has a cgroup under berth/");
    if let Some(cpu) = dirs.iter().find(|d| d.join("cpu.cfs_quota_us").exists()) {
        assert_eq!(std::fs::read_to_string(cpu.join("cpu.cfs_quota_us")).unwrap().trim(), "50000");
        assert_eq!(std::fs::read_to_string(cpu.join("cpu.shares")).unwrap().trim(), "512");
    } else if let Some(d) = dirs.iter().find(|d| d.join("cpu.max").exists()) {
        assert_eq!(std::fs::read_to_string(d.join("cpu.max")).unwrap().trim(), "50000 100000");
    }
    // The container sees its own limits under /sys/fs/cgroup.
    let (_, o, _) =
        rt.exec("cpu", &["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"]);
    assert_eq!(o.trim(), (64u64 << 20).to_string());
    // Every process of the container is in it.
    let pid = rt.inspect("cpu")["State"]["Pid"].as_i64().unwrap();
    let procs = std::fs::read_to_string(dirs[0].join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l.trim() == pid.to_string()), "{procs}");
    rt.ctr_ok(["stop", "-t", "0", "cpu"]);
    rt.ctr_ok(["rm", "cpu"]);
    assert!(Rt::cgroup_dirs(&id).is_empty(), "cgroups left: {:?}", Rt::cgroup_dirs(&id));
}

#[test]
fn pause_freezes_and_unpause_thaws() {
    common::require_root!();
    let rt = Rt::new();
    let s = rt.spec("frz", "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done");
    rt.run_d(&s);
    std::thread::sleep(Duration::from_millis(300));
    rt.ctr_ok(["pause", "frz"]);
    assert_eq!(rt.status("frz"), "paused");
    assert!(out(&rt.ctr(["ls"])).contains("(Paused)"));
    // exec is refused while paused, as Docker does.
    let (code, _, e) = rt.exec("frz", &["true"]);
    assert_ne!(code, 0);
    assert!(e.contains("paused"), "{e}");
    let id = rt.inspect("frz")["Id"].as_str().unwrap().to_string();
    let rootfs_count = || {
        // Read the counter through the container's root as PID 1 sees it.
        let pid = rt.inspect("frz")["State"]["Pid"].as_i64().unwrap();
        std::fs::read_to_string(format!("/proc/{pid}/root/tmp/count")).unwrap_or_default().trim().to_string()
    };
    let a = rootfs_count();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(rootfs_count(), a, "nothing runs while frozen");
    rt.ctr_ok(["unpause", "frz"]);
    assert_eq!(rt.status("frz"), "running");
    rt.wait_for("the counter to move", Duration::from_secs(5), || rootfs_count() != a);
    // A paused container can still be stopped.
    rt.ctr_ok(["pause", "frz"]);
    rt.ctr_ok(["stop", "-t", "1", "frz"]);
    assert_eq!(rt.status("frz"), "exited");
    rt.ctr_ok(["rm", "frz"]);
    assert!(Rt::cgroup_dirs(&id).is_empty());
}
