//! `ipc:` and `pid:`: services that share another service's IPC or PID namespace, or the
//! host's, see what the other sees; the others stay apart.
mod common;

use common::runtime::{Rt, err};

fn up(rt: &Rt, project: &str, yaml: &str) -> String {
    let f = rt.compose_file(project, "rtbusybox:latest", yaml);
    let o = rt.t.run(["-f", f.as_str(), "-p", project, "up", "-d"]);
    assert!(o.status.success(), "{}", err(&o));
    f
}

fn sh(rt: &Rt, name: &str, script: &str) -> String {
    let (code, out, e) = rt.exec(name, &["sh", "-c", script]);
    assert_eq!(code, 0, "{name}: {script}: {out}{e}");
    out
}

/// Creates a SysV shared memory segment with `key` in the IPC namespace of the container's init.
fn shm_segment_in(rt: &Rt, name: &str, key: i32) {
    let pid = rt.inspect(name)["State"]["Pid"].as_i64().unwrap();
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/ipc")).unwrap();
    // setns(CLONE_NEWIPC) applies to the calling thread only: a thread of its own.
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        assert_eq!(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWIPC) }, 0, "{}", std::io::Error::last_os_error());
        let id = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | 0o600) };
        assert!(id >= 0, "{}", std::io::Error::last_os_error());
    })
    .join()
    .unwrap();
}

#[test]
fn ipc_service_shares_sysv_ipc_and_dev_shm() {
    common::require_root!();
    let rt = Rt::new();
    let f = up(
        &rt,
        "rtipc",
        "services:
  main:
    image: rtbusybox:latest
    command: [\"sleep\", \"1000\"]
    init: true
    network_mode: none
    ipc: shareable
  side:
    image: rtbusybox:latest
    command: [\"sleep\", \"1000\"]
    init: true
    network_mode: none
    ipc: service:main
  apart:
    image: rtbusybox:latest
    command: [\"sleep\", \"1000\"]
    init: true
    network_mode: none
  hostipc:
    image: rtbusybox:latest
    command: [\"sleep\", \"1000\"]
    init: true
    network_mode: none
    ipc: host
",
    );
    // 0x2130 = 8496: a segment made in main's namespace is seen from side, not from apart.
    shm_segment_in(&rt, "rtipc-main-1", 0x2130);
    let has_key = |name: &str| sh(&rt, name, "cat /proc/sysvipc/shm").lines().skip(1).any(|l| l.split_whitespace().next() == Some("8496"));
    assert!(has_key("rtipc-main-1"));
    assert!(has_key("rtipc-side-1"), "side does not see main's SysV segment");
    assert!(!has_key("rtipc-apart-1"), "apart sees main's SysV segment");
    // The same /dev/shm (POSIX shared memory), both ways.
    sh(&rt, "rtipc-main-1", "echo from-main > /dev/shm/m");
    sh(&rt, "rtipc-side-1", "echo from-side > /dev/shm/s");
    assert_eq!(sh(&rt, "rtipc-side-1", "cat /dev/shm/m"), "from-main\n");
    assert_eq!(sh(&rt, "rtipc-main-1", "cat /dev/shm/s"), "from-side\n");
    assert_eq!(sh(&rt, "rtipc-apart-1", "ls /dev/shm"), "");
    // ipc: host: the host's /dev/shm and SysV objects.
    let marker = std::path::Path::new("/dev/shm").join(format!("rtipc-{}", std::process::id()));
    std::fs::write(&marker, "host\n").unwrap();
    let seen = sh(&rt, "rtipc-hostipc-1", &format!("cat {}", marker.display()));
    let _ = std::fs::remove_file(&marker);
    assert_eq!(seen, "host\n");
    // 0x2131 = 8497, made in the host's namespace for a moment.
    let id = unsafe { libc::shmget(0x2131, 4096, libc::IPC_CREAT | 0o600) };
    assert!(id >= 0, "{}", std::io::Error::last_os_error());
    let seen = sh(&rt, "rtipc-hostipc-1", "cat /proc/sysvipc/shm");
    unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    assert!(seen.lines().any(|l| l.split_whitespace().next() == Some("8497")), "{seen}");
    assert!(!has_key("rtipc-hostipc-1"));
    assert_eq!(
        rt.inspect("rtipc-side-1")["HostConfig"]["IpcMode"].as_str().unwrap(),
        format!("container:{}", rt.inspect("rtipc-main-1")["Id"].as_str().unwrap())
    );
    rt.t.ok(["-f", f.as_str(), "-p", "rtipc", "down", "-t", "0"]);
}

#[test]
fn pid_service_and_pid_host_see_the_other_processes() {
    common::require_root!();
    let rt = Rt::new();
    let f = up(
        &rt,
        "rtpid",
        "services:
  main:
    image: rtbusybox:latest
    command: [\"sh\", \"-c\", \"exec sleep 1001\"]
    network_mode: none
  side:
    image: rtbusybox:latest
    command: [\"sleep\", \"1002\"]
    init: true
    network_mode: none
    pid: service:main
  host:
    image: rtbusybox:latest
    command: [\"sleep\", \"1003\"]
    network_mode: none
    pid: host
",
    );
    let cmdlines = |name: &str| sh(&rt, name, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo");
    // side lives in main's namespace: main is its PID 1, and each sees the other's processes.
    assert_eq!(sh(&rt, "rtpid-side-1", "tr '\\0' ' ' < /proc/1/cmdline"), "sleep 1001 ");
    assert!(cmdlines("rtpid-side-1").contains("sleep 1002"));
    assert!(cmdlines("rtpid-main-1").contains("sleep 1002"), "main does not see side's process");
    assert!(!cmdlines("rtpid-main-1").contains("sleep 1003"));
    // pid: host sees the host's processes (its own init is not PID 1), with the masks in place.
    let host_init = std::fs::read_to_string("/proc/1/comm").unwrap();
    assert_eq!(sh(&rt, "rtpid-host-1", "cat /proc/1/comm"), host_init);
    assert!(cmdlines("rtpid-host-1").contains("sleep 1001"));
    assert_eq!(sh(&rt, "rtpid-host-1", "wc -c < /proc/timer_list").trim(), "0");
    assert!(sh(&rt, "rtpid-host-1", "grep ' /proc/sys ' /proc/self/mounts").contains(" ro,"));
    // Stopping side leaves main running; stopping main ends side with it, as in Docker.
    rt.t.ok(["-f", f.as_str(), "-p", "rtpid", "stop", "-t", "0", "side"]);
    assert_eq!(rt.status("rtpid-main-1"), "running");
    assert_eq!(rt.status("rtpid-side-1"), "exited");
    rt.t.ok(["-f", f.as_str(), "-p", "rtpid", "start", "side"]);
    assert_eq!(rt.status("rtpid-side-1"), "running");
    rt.t.ok(["-f", f.as_str(), "-p", "rtpid", "stop", "-t", "0", "main"]);
    rt.wait_for("side to end with main's namespace", std::time::Duration::from_secs(10), || rt.status("rtpid-side-1") == "exited");
    rt.t.ok(["-f", f.as_str(), "-p", "rtpid", "down", "-t", "0"]);
}
