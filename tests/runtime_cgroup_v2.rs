//! The cgroup v2 code on the real kernel. This project's machines are v1 hybrids whose cgroup2
//! mount (`/sys/fs/cgroup/unified`) has no controllers, but v2's core features need none: a
//! cgroup per container (the container born in it with clone3), the cgroup namespace and the
//! read-only cgroup2 view, the eBPF device filter, the freezer, cgroup.kill, and exec into it.
//! Limits (memory.max, pids.max, cpu.max) are tested against a fake cgroupfs in the unit tests.
mod common;

use std::path::Path;
use std::time::Duration;

use common::runtime::{Rt, err, out};
use serde_json::json;

const UNIFIED: &str = "/sys/fs/cgroup/unified";

fn rt_v2() -> Option<Rt> {
    if !Path::new(UNIFIED).join("cgroup.procs").exists() {
        eprintln!("skipped: this host has no cgroup2 mount at {UNIFIED} (a pure v2 host runs the v2 code in every test)");
        return None;
    }
    let mut rt = Rt::new();
    rt.env.push(("BERTH_CGROUP_V2_ROOT".into(), UNIFIED.into()));
    Some(rt)
}

#[test]
fn v2_container_has_its_cgroup_namespace_and_device_filter() {
    let Some(rt) = rt_v2() else { return };
    let script = "\
        tail -1 /proc/self/cgroup; \
        grep ' /sys/fs/cgroup ' /proc/mounts | cut -d' ' -f3,4 | cut -d, -f1; \
        echo x > /dev/null && echo null-ok; \
        mknod /tmp/disk b 7 0 && (head -c1 /tmp/disk > /dev/null 2>&1 && echo DISK-READ || echo disk-denied); \
        mknod /tmp/kmsg c 1 11 && (head -c1 /tmp/kmsg > /dev/null 2>&1 && echo KMSG-READ || echo kmsg-denied)";
    let o = rt.run(&rt.spec("v2ns", script));
    assert_eq!(out(&o), "0::/\ncgroup2 ro\nnull-ok\ndisk-denied\nkmsg-denied\n", "{}", err(&o));
    // Privileged containers have no device filter.
    let mut s = rt.spec("v2priv", "mknod /tmp/kmsg c 1 11 && (head -c0 /tmp/kmsg && echo kmsg-open)");
    s["Privileged"] = json!(true);
    assert_eq!(out(&rt.run(&s)), "kmsg-open\n");
}

#[test]
fn v2_exec_freeze_kill_and_removal() {
    let Some(rt) = rt_v2() else { return };
    let mut s = rt.spec("v2life", "exec sleep 1000");
    s["Healthcheck"] = json!({"Test": ["CMD", "true"], "Interval": 100_000_000u64, "Retries": 1});
    let id = rt.run_d(&s);
    let dir = Path::new(UNIFIED).join("berth").join(&id);
    assert!(dir.is_dir());
    let pid = rt.inspect("v2life")["State"]["Pid"].as_i64().unwrap();
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l.trim() == pid.to_string()), "born in its cgroup: {procs}");
    // exec lands in the cgroup and its namespace, with the exit code.
    let (code, o, e) = rt.exec("v2life", &["sh", "-c", "tail -1 /proc/self/cgroup; exit 9"]);
    assert_eq!((code, o.as_str()), (9, "0::/\n"), "{e}");
    // Healthchecks run through the same path.
    rt.wait_for("healthy", Duration::from_secs(10), || rt.inspect("v2life")["State"]["Health"]["Status"] == "healthy");
    // The freezer.
    rt.ctr_ok(["pause", "v2life"]);
    assert_eq!(std::fs::read_to_string(dir.join("cgroup.freeze")).unwrap().trim(), "1");
    assert_eq!(rt.status("v2life"), "paused");
    rt.ctr_ok(["unpause", "v2life"]);
    assert_eq!(rt.status("v2life"), "running");
    let top = out(&rt.ctr(["top", "v2life"]));
    assert!(top.contains("sleep 1000"), "{top}");
    // rm -f kills everything and removes the cgroup.
    rt.ctr_ok(["rm", "-f", "v2life"]);
    assert!(!dir.exists());
}
