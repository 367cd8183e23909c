//! Docker's security defaults, checked from inside the container: capabilities, masked and
//! read-only paths, seccomp, no fd leaks, the host binary out of reach, a read-only rootfs,
//! mount targets that stay inside the rootfs, and namespaced sysctls.
mod common;

use std::os::unix::process::CommandExt;

use common::runtime::{Rt, err, out};
use serde_json::json;

fn status_field(text: &str, key: &str) -> String {
    text.lines().find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string())).unwrap_or_default()
}

#[test]
fn capabilities_match_docker() {
    common::require_root!();
    let rt = Rt::new();
    let st = out(&rt.run(&rt.spec("caps", "cat /proc/self/status")));
    assert_eq!(status_field(&st, "CapEff:"), "00000000a80425fb");
    assert_eq!(status_field(&st, "CapPrm:"), "00000000a80425fb");
    assert_eq!(status_field(&st, "CapBnd:"), "00000000a80425fb");
    assert_eq!(status_field(&st, "CapInh:"), "0000000000000000");
    assert_eq!(status_field(&st, "CapAmb:"), "0000000000000000");
    assert_eq!(status_field(&st, "NoNewPrivs:"), "0");
    // A non-root user keeps the bounding set but holds nothing.
    let mut s = rt.spec("caps-user", "cat /proc/self/status");
    s["User"] = json!("nobody");
    let st = out(&rt.run(&s));
    assert_eq!(status_field(&st, "CapEff:"), "0000000000000000");
    assert_eq!(status_field(&st, "CapPrm:"), "0000000000000000");
    assert_eq!(status_field(&st, "CapBnd:"), "00000000a80425fb");
    // cap_drop ALL with one cap_add, and cap_add alone.
    let mut s = rt.spec("caps-drop", "cat /proc/self/status");
    s["CapDrop"] = json!(["ALL"]);
    s["CapAdd"] = json!(["NET_BIND_SERVICE"]);
    assert_eq!(status_field(&out(&rt.run(&s)), "CapEff:"), format!("{:016x}", 1u64 << 10));
    let mut s = rt.spec("caps-add", "cat /proc/self/status");
    s["CapAdd"] = json!(["NET_ADMIN"]);
    assert_eq!(status_field(&out(&rt.run(&s)), "CapEff:"), format!("{:016x}", 0xa80425fbu64 | 1 << 12));
    // no-new-privileges when asked.
    let mut s = rt.spec("nnp", "cat /proc/self/status");
    s["SecurityOpt"] = json!(["no-new-privileges:true"]);
    let st = out(&rt.run(&s));
    assert_eq!(status_field(&st, "NoNewPrivs:"), "1");
    assert_eq!(status_field(&st, "Seccomp:"), "2");
}

#[test]
fn seccomp_is_on_by_default_and_can_be_turned_off() {
    common::require_root!();
    let rt = Rt::new();
    let o = rt.run(&rt.spec("sc", "grep Seccomp: /proc/self/status; unshare -n true && echo UNSHARED || echo DENIED"));
    let text = out(&o);
    assert_eq!(status_field(&text, "Seccomp:"), "2");
    assert!(text.contains("DENIED"), "{text}");
    let mut s = rt.spec("sc-off", "grep Seccomp: /proc/self/status");
    s["SecurityOpt"] = json!(["seccomp=unconfined"]);
    assert_eq!(status_field(&out(&rt.run(&s)), "Seccomp:"), "0");
}

#[test]
fn masked_and_readonly_paths() {
    common::require_root!();
    let rt = Rt::new();
    let script = "\
        echo kcore=$(wc -c < /proc/kcore 2>/dev/null || echo absent); \
        echo interrupts=$(wc -c < /proc/interrupts); \
        echo timer_list=$(wc -c < /proc/timer_list); \
        echo acpi=$(ls -A /proc/acpi 2>/dev/null | wc -l); \
        (echo 1 > /proc/sys/kernel/ns_last_pid) 2>&1 | grep -q 'Read-only' && echo procsys=ro; \
        (echo h > /proc/sysrq-trigger) 2>&1 | grep -q 'Read-only' && echo sysrq=ro; \
        (touch /sys/x) 2>&1 | grep -q 'Read-only' && echo sys=ro; \
        (mkdir /sys/fs/cgroup/x) 2>&1 | grep -q 'Read-only' && echo cgroup=ro; \
        grep -q ' /dev/pts devpts ' /proc/mounts && echo pts=ok; \
        grep ' /dev/shm ' /proc/mounts | grep -q 'size=65536k' && echo shm=64m; \
        ls /dev | tr '\\n' ' '";
    let o = rt.run(&rt.spec("masks", script));
    let t = out(&o);
    // /proc/kcore is masked where the kernel has it (this one may not: then it stays absent).
    let kcore = if std::path::Path::new("/proc/kcore").exists() { "kcore=0" } else { "kcore=absent" };
    assert!(!std::fs::read_to_string("/proc/interrupts").unwrap().is_empty());
    let mut wants = vec![kcore, "interrupts=0", "timer_list=0", "acpi=0", "procsys=ro", "sys=ro", "cgroup=ro", "pts=ok", "shm=64m"];
    if std::path::Path::new("/proc/sysrq-trigger").exists() {
        wants.push("sysrq=ro");
    }
    for want in wants {
        assert!(t.contains(want), "missing {want} in:\n{t}\n{}", err(&o));
    }
    // /dev/core -> /proc/kcore exists only where the kernel has /proc/kcore (as runc makes it):
    // never a dangling link.
    let dev = "fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero";
    let dev = if std::path::Path::new("/proc/kcore").exists() { format!("core {dev}") } else { dev.to_string() };
    assert!(t.lines().any(|l| l.trim_end() == dev), "/dev should hold exactly {dev:?}:\n{t}");
}

#[test]
fn no_host_fd_survives_into_the_container() {
    common::require_root!();
    let rt = Rt::new();
    // The test process hands berth an fd without close-on-exec, as a careless caller might.
    let f = std::fs::File::open("/etc/hostname").unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&f);
    let spec = rt.spec("fds", "exec sleep 1000");
    let p = rt.t.scratch().join("fds.json");
    std::fs::write(&p, serde_json::to_vec(&spec).unwrap()).unwrap();
    let mut c = rt.t.cmd(["__ctr", "run", "-d", p.to_str().unwrap()]);
    unsafe {
        c.pre_exec(move || {
            if libc::dup2(raw, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    // PID 1 (the command itself) holds exactly the standard streams.
    let (_, t, _) = rt.exec("fds", &["sh", "-c", "ls /proc/1/fd | sort -n | tr '\\n' ' '"]);
    assert_eq!(t.trim(), "0 1 2", "{t}");
    // The same with berth's init as PID 1, and for an exec'd process.
    let mut s = rt.spec("fds-init", "sleep 1000");
    s["Init"] = json!(true);
    rt.run_d(&s);
    let (_, o, _) =
        rt.exec("fds-init", &["sh", "-c", "ls /proc/1/fd | sort -n | tr '\\n' ' '; echo; ls /proc/self/fd | sort -n | tr '\\n' ' '"]);
    let mut l = o.lines();
    assert_eq!(l.next().unwrap().trim(), "0 1 2", "{o}");
    // `ls` itself has its directory open as fd 3.
    assert_eq!(l.next().unwrap().trim(), "0 1 2 3", "{o}");
}

fn sha(p: &std::path::Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

#[test]
fn the_host_berth_binary_is_out_of_reach() {
    common::require_root!();
    let rt = Rt::new();
    let before = sha(&common::berth_bin());
    // berth's init is PID 1: non-dumpable, so its /proc/1/exe (the host's berth binary) cannot
    // be opened, read or written from inside.
    let mut s = rt.spec("exe", "sleep 1000");
    s["Init"] = json!(true);
    rt.run_d(&s);
    let (_, o, _) = rt.exec(
        "exe",
        &["sh", "-c", "readlink /proc/1/exe || echo readlink-denied; cat /proc/1/exe > /dev/null 2>&1 || echo read-denied; (echo x >> /proc/1/exe) 2>/dev/null || echo write-denied"],
    );
    assert!(o.contains("readlink-denied") && o.contains("read-denied") && o.contains("write-denied"), "{o}");
    // While processes are exec'd into the container, a watcher inside tries to reach the exe
    // of every process it sees, for writing.
    let (code, _, e) = rt.exec(
        "exe",
        &["sh", "-c", "(end=$(( $(date +%s) + 3 )); while [ $(date +%s) -lt $end ]; do for p in /proc/[0-9]*; do (exec 3>>$p/exe) 2>/dev/null && echo OPENED $p $(readlink $p/exe) >> /tmp/hits; done; done) > /dev/null 2>&1 & echo started"],
    );
    assert_eq!(code, 0, "{e}");
    for _ in 0..30 {
        rt.exec("exe", &["true"]);
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (_, hits, _) = rt.exec("exe", &["sh", "-c", "cat /tmp/hits 2>/dev/null; true"]);
    // Busybox's own exe is the container's file, busy while it runs: no open can succeed.
    assert!(!hits.contains("OPENED"), "opened an exe from inside: {hits}");
    assert_eq!(sha(&common::berth_bin()), before);
}

#[test]
fn read_only_rootfs_with_tmpfs() {
    common::require_root!();
    let rt = Rt::new();
    let mut s = rt.spec("ro", "touch /x 2>&1; touch /tmp/ok && echo tmp-ok; echo 1 >> /etc/hosts 2>&1; grep ' / ' /proc/mounts");
    s["Rootfs"]["ReadOnly"] = json!(true);
    s["Mounts"] = json!([{"Type": "tmpfs", "Target": "/tmp"}]);
    let o = rt.run(&s);
    let t = out(&o);
    assert!(t.contains("touch: /x: Read-only file system"), "{t}{}", err(&o));
    assert!(t.contains("tmp-ok"), "{t}");
    assert!(t.contains("Read-only file system"), "{t}");
    assert!(t.lines().any(|l| l.starts_with("overlay / overlay ro,")), "{t}");
}

#[test]
fn mount_targets_through_symlinks_stay_inside_the_rootfs() {
    common::require_root!();
    let rt = Rt::new();
    let scratch = rt.t.scratch();
    let outside = scratch.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let src = scratch.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("from-host"), "hi").unwrap();
    // The image points /data at a host path, and /up at ../../.. + that path.
    std::os::unix::fs::symlink(&outside, rt.layer.join("data")).unwrap();
    let escape = format!("/etc/berth-escape-{}", std::process::id());
    std::os::unix::fs::symlink(format!("../../../..{escape}"), rt.layer.join("up")).unwrap();
    let mut s = rt.spec("links", "cat /data/from-host; echo; touch /data/made-inside; echo up:$(ls -A /up)");
    s["Mounts"] = json!([
        {"Type": "bind", "Source": src, "Target": "/data"},
        {"Type": "tmpfs", "Target": "/up"},
    ]);
    let o = rt.run(&s);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).starts_with("hi"), "{}", out(&o));
    // The bind landed on a directory inside the rootfs, not on the host's `outside`.
    assert!(src.join("made-inside").exists());
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing may appear on the host path");
    assert!(!std::path::Path::new(&escape).exists(), "{escape} was created on the host");
    assert_eq!(out(&o).lines().last().unwrap_or(""), "up:", "the tmpfs on /up is empty: {}", out(&o));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(outside.to_str().unwrap()) && !mounts.contains(&escape));
}

#[test]
fn default_and_namespaced_sysctls() {
    common::require_root!();
    let rt = Rt::new();
    let mut s = rt.spec(
        "sysctl",
        "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/net/ipv4/ping_group_range /proc/sys/net/core/somaxconn",
    );
    s["Sysctls"] = json!({"net.core.somaxconn": "1234"});
    let o = rt.run(&s);
    assert_eq!(out(&o), "0\n0\t2147483647\n1234\n", "{}", err(&o));
    // A host-wide sysctl is refused before anything runs.
    let mut s = rt.spec("sysctl-bad", "true");
    s["Sysctls"] = json!({"vm.swappiness": "1"});
    let o = rt.run(&s);
    assert!(!o.status.success());
    assert!(err(&o).contains("vm.swappiness"), "{}", err(&o));
    // The host's value did not change.
    assert_ne!(std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap().trim(), "1234");
}

#[test]
fn ulimits_default_and_set() {
    common::require_root!();
    let rt = Rt::new();
    let o = rt.run(&rt.spec("ul", "ulimit -n"));
    assert_eq!(out(&o).trim(), "1024");
    let mut s = rt.spec("ul2", "ulimit -n; ulimit -s");
    // Values are raw setrlimit values (bytes for the stack), as Docker passes them.
    s["Ulimits"] = json!([{"Name": "nofile", "Soft": 2048, "Hard": 4096}, {"Name": "stack", "Soft": 4194304, "Hard": 8388608}]);
    assert_eq!(out(&rt.run(&s)), "2048\n4096\n");
}
