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
        common::skipping(format_args!("this host has no cgroup2 mount at {UNIFIED} (a pure v2 host runs the v2 code in every test)"));
        return None;
    }
    let mut rt = Rt::new();
    rt.env.push(("BERTH_CGROUP_V2_ROOT".into(), UNIFIED.into()));
    Some(rt)
}

#[test]
fn v2_container_has_its_cgroup_namespace_and_device_filter() {
    common::require_root!();
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
    common::require_root!();
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

#[test]
fn v2_devices_and_device_cgroup_rules_extend_the_filter() {
    common::require_root!();
    let Some(rt) = rt_v2() else { return };
    if !Path::new("/dev/fuse").exists() {
        common::skip!("no /dev/fuse on this host");
    }
    // `devices:` creates the node and allows it; a rule allows a node made inside (read only).
    let script = "\
        head -c0 /dev/myfuse && echo fuse-open; \
        mknod /tmp/lc c 10 237 && head -c0 /tmp/lc && echo lc-read; \
        (echo > /tmp/lc) 2>/dev/null || echo lc-no-write; \
        mknod /tmp/kmsg c 1 11 && ((head -c0 /tmp/kmsg) 2>/dev/null || echo kmsg-denied)";
    let mut s = rt.spec("v2dev", script);
    s["Resources"] = json!({
        "Devices": [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/myfuse", "CgroupPermissions": "rw"}],
        "DeviceCgroupRules": ["c 10:237 r"],
    });
    let o = rt.run(&s);
    assert_eq!(out(&o), "fuse-open\nlc-read\nlc-no-write\nkmsg-denied\n", "{}", err(&o));
    // Without them, the same nodes are denied.
    let o = rt.run(&rt.spec("v2nodev", "mknod /tmp/f c 10 229 && ((head -c0 /tmp/f) 2>/dev/null || echo fuse-denied)"));
    assert_eq!(out(&o), "fuse-denied\n", "{}", err(&o));
}

#[test]
fn v2_cgroupns_host_shows_the_host_path() {
    common::require_root!();
    let Some(rt) = rt_v2() else { return };
    let mut s = rt.spec("v2cgh", "tail -1 /proc/self/cgroup");
    s["CgroupnsMode"] = json!("host");
    let o = rt.run(&s);
    let id = rt.inspect("v2cgh")["Id"].as_str().unwrap().to_string();
    assert_eq!(out(&o), format!("0::/berth/{id}\n"), "{}", err(&o));
    assert_eq!(rt.inspect("v2cgh")["HostConfig"]["CgroupnsMode"], "host");
}
