//! Compose keys the engine applies, checked where a user would check them (the container's
//! cgroup, /proc inside the container, its /dev, `id -G`), the keys it refuses with a clear
//! error, and the ones it cannot apply, which `up`/`run` name in a warning.
mod common;

use std::path::PathBuf;

use common::runtime::{Rt, err, out};

fn project(rt: &Rt, yaml: &str) -> String {
    rt.compose_file("proj", "keysbox:latest", yaml)
}

fn v1() -> bool {
    !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The directory of the container's cgroup in v1 controller `c`.
fn v1_dir(c: &str, id: &str) -> PathBuf {
    Rt::cgroup_dirs(id)
        .into_iter()
        .find(|d| {
            d.parent()
                .and_then(|p| p.parent())
                .is_some_and(|m| m.file_name().is_some_and(|n| n.to_string_lossy().split(',').any(|x| x == c)))
        })
        .unwrap_or_else(|| panic!("no {c} cgroup for {id}"))
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).trim().to_string()
}

#[test]
fn resource_keys_reach_the_cgroup_and_the_process() {
    common::require_root!();
    if !v1() {
        common::skip!("the v1 files are checked here; v2 is covered by the fake-cgroupfs unit tests");
    }
    let rt = Rt::new();
    let f = project(
        &rt,
        "services:\n  app:\n    image: keysbox:latest\n    network_mode: none\n    command: sleep 1000\n    \
         cpuset: \"0\"\n    cpu_period: 50000\n    cpu_quota: 25000\n    cpu_rt_runtime: 10000\n    \
         mem_limit: 64m\n    mem_reservation: 32m\n    mem_swappiness: 10\n    oom_kill_disable: true\n    \
         oom_score_adj: 300\n    group_add: [\"1234\", \"5678\"]\n    shm_size: 16m\n    stop_signal: SIGUSR1\n    \
         devices: [\"/dev/fuse:/dev/myfuse:rw\"]\n    device_cgroup_rules: [\"c 10:237 r\"]\n    \
         blkio_config:\n      device_read_bps: [{path: /dev/vda, rate: 1mb}]\n      device_write_iops: [{path: /dev/vda, rate: 100}]\n",
    );
    let has_vda = std::path::Path::new("/dev/vda").exists();
    if !has_vda {
        std::fs::write(&f, std::fs::read_to_string(&f).unwrap().split("    blkio_config").next().unwrap()).unwrap();
    }
    let o = rt.t.run(["-f", f.as_str(), "-p", "keysres", "up", "-d"]);
    assert!(o.status.success(), "{}", err(&o));
    let id = rt.inspect("keysres-app-1")["Id"].as_str().unwrap().to_string();
    // The cgroup files.
    assert_eq!(read(v1_dir("cpuset", &id).join("cpuset.cpus")), "0");
    let cpu = v1_dir("cpu", &id);
    assert_eq!(read(cpu.join("cpu.cfs_period_us")), "50000");
    assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "25000");
    assert_eq!(read(cpu.join("cpu.rt_runtime_us")), "10000");
    let mem = v1_dir("memory", &id);
    assert_eq!(read(mem.join("memory.soft_limit_in_bytes")), (32u64 << 20).to_string());
    assert_eq!(read(mem.join("memory.swappiness")), "10");
    assert!(read(mem.join("memory.oom_control")).starts_with("oom_kill_disable 1"));
    let dev = read(v1_dir("devices", &id).join("devices.list"));
    assert!(dev.lines().any(|l| l == "c 10:229 rw"), "{dev}");
    assert!(dev.lines().any(|l| l == "c 10:237 r"), "{dev}");
    if has_vda {
        let blk = v1_dir("blkio", &id);
        let vda = std::fs::metadata("/dev/vda").map(|m| std::os::unix::fs::MetadataExt::rdev(&m)).unwrap();
        let mm = format!("{}:{}", libc::major(vda), libc::minor(vda));
        assert_eq!(read(blk.join("blkio.throttle.read_bps_device")), format!("{mm} 1048576"));
        assert_eq!(read(blk.join("blkio.throttle.write_iops_device")), format!("{mm} 100"));
    }
    // What the process sees.
    let sh = |script: &str| {
        let o = rt.t.run(["-f", f.as_str(), "-p", "keysres", "exec", "-T", "app", "sh", "-c", script]);
        assert!(o.status.success(), "{script}: {}", err(&o));
        out(&o)
    };
    assert_eq!(sh("grep Cpus_allowed_list /proc/self/status | cut -f2"), "0\n");
    assert_eq!(sh("cat /proc/1/oom_score_adj"), "300\n");
    let groups = sh("id -G");
    assert!(groups.split_whitespace().any(|g| g == "1234") && groups.split_whitespace().any(|g| g == "5678"), "{groups}");
    assert_eq!(sh("df -k /dev/shm | tail -1 | awk '{print $2}'"), "16384\n");
    // The device node is there, as on the host, and usable; the rule allows a node made inside.
    assert_eq!(sh("stat -c '%F %t:%T %a' /dev/myfuse"), "character special file a:e5 600\n");
    assert_eq!(sh("head -c0 /dev/myfuse && echo fuse-open"), "fuse-open\n");
    assert_eq!(
        sh("mknod /tmp/lc c 10 237 && head -c0 /tmp/lc && echo lc-read; (echo > /tmp/lc) 2>/dev/null || echo lc-no-write"),
        "lc-read\nlc-no-write\n"
    );
    let v = rt.inspect("keysres-app-1");
    assert_eq!(v["HostConfig"]["MemorySwappiness"], 10);
    assert_eq!(v["HostConfig"]["OomKillDisable"], true);
    assert_eq!(v["HostConfig"]["Devices"][0]["PathInContainer"], "/dev/myfuse");
    assert_eq!(v["Config"]["StopSignal"], "SIGUSR1");
    let o = rt.t.run(["-f", f.as_str(), "-p", "keysres", "down", "-t", "1"]);
    assert!(o.status.success(), "{}", err(&o));
}

#[test]
fn cgroup_namespace_host_or_private() {
    common::require_root!();
    let rt = Rt::new();
    let f = project(
        &rt,
        "services:\n  priv:\n    image: keysbox:latest\n    network_mode: none\n    cgroup: private\n    \
         command: [sh, -c, 'grep -c \":/$\" /proc/self/cgroup; grep -vc \":/$\" /proc/self/cgroup']\n  \
         host:\n    image: keysbox:latest\n    network_mode: none\n    cgroup: host\n    \
         command: [sh, -c, 'grep -c /berth/ /proc/self/cgroup']\n",
    );
    let run = |svc: &str| rt.t.run(["-f", f.as_str(), "-p", "keyscg", "run", "--rm", "-T", svc]);
    let o = run("priv");
    let lines: Vec<String> = out(&o).lines().map(String::from).collect();
    assert!(lines.len() == 2 && lines[0] != "0" && lines[1] == "0", "every cgroup is / in a private namespace: {lines:?} {}", err(&o));
    let o = run("host");
    assert_ne!(out(&o).trim(), "0", "the host's namespace shows berth/<id>: {}", err(&o));
    assert!(o.status.success(), "{}", err(&o));
}

#[test]
fn unsupported_values_are_refused_clearly() {
    common::require_root!();
    let rt = Rt::new();
    for (key, value, says) in [
        ("userns_mode", "private", "userns_mode \"private\" is not supported"),
        ("isolation", "hyperv", "isolation \"hyperv\" is not supported"),
        ("runtime", "kata", "runtime \"kata\" is not supported"),
        ("storage_opt", "{size: 1G}", "storage_opt is not supported"),
        ("security_opt", "[systempaths=unconfined]", "security_opt \"systempaths=unconfined\" is not supported"),
        ("blkio_config", "{device_read_bps: [{path: /etc/hostname, rate: 1}]}", "/etc/hostname is not a device node"),
        ("devices", "[\"/dev/nonexistent-keys:/dev/x\"]", "/dev/nonexistent-keys"),
    ] {
        let f = project(
            &rt,
            &format!("services:\n  app:\n    image: keysbox:latest\n    network_mode: none\n    command: 'true'\n    {key}: {value}\n"),
        );
        let o = rt.t.run(["-f", f.as_str(), "-p", "keysrefuse", "run", "--rm", "-T", "app"]);
        assert!(!o.status.success(), "{key}: {value} was accepted");
        assert!(err(&o).contains(says), "{key}: {}", err(&o));
        assert!(err(&o).contains("app"), "the error names the service: {}", err(&o));
    }
    // Accepted values of the same keys run.
    let f = project(
        &rt,
        "services:\n  app:\n    image: keysbox:latest\n    network_mode: none\n    command: 'true'\n    userns_mode: host\n    \
         isolation: default\n    runtime: runc\n    security_opt: [no-new-privileges:true, seccomp=unconfined]\n",
    );
    let o = rt.t.run(["-f", f.as_str(), "-p", "keysrefuse", "run", "--rm", "-T", "app"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(!err(&o).contains("WARN"), "{}", err(&o));
}

#[test]
fn keys_not_applied_are_named_in_a_warning() {
    common::require_root!();
    let rt = Rt::new();
    let dir = rt.t.scratch().join("proj");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("s.txt"), "s3cret\n").unwrap();
    let f = project(
        &rt,
        "services:\n  app:\n    image: keysbox:latest\n    network_mode: none\n    command: 'cat /run/secrets/s'\n    \
         cgroup_parent: mine\n    cpu_count: 2\n    security_opt: [\"apparmor=unconfined\"]\n    \
         secrets: [{source: s, mode: 0400, uid: \"1000\"}]\nsecrets:\n  s:\n    file: ./s.txt\n",
    );
    let o = rt.t.run(["-f", f.as_str(), "-p", "keyswarn", "run", "--rm", "-T", "app"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "s3cret\n");
    let e = err(&o);
    for w in [
        "WARN[0000] service \"app\": `cgroup_parent` is not supported by berth and is ignored",
        "WARN[0000] service \"app\": `cpu_count` is not supported by berth and is ignored",
        "WARN[0000] service \"app\": `security_opt` is not supported by berth and is ignored: \"apparmor=unconfined\"",
        "WARN[0000] secrets `uid`, `gid` and `mode` are not supported, they will be ignored",
    ] {
        assert_eq!(e.matches(w).count(), 1, "{w:?} once in:\n{e}");
    }
    // `up` warns too (and `ps` does not).
    let o = rt.t.run(["-f", f.as_str(), "-p", "keyswarn", "up", "-d"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("`cgroup_parent` is not supported"), "{}", err(&o));
    let o = rt.t.run(["-f", f.as_str(), "-p", "keyswarn", "ps"]);
    assert!(!err(&o).contains("WARN"), "{}", err(&o));
    rt.t.ok(["-f", f.as_str(), "-p", "keyswarn", "down", "-t", "0"]);
}

#[test]
fn volumes_from_shares_the_source_volumes_and_binds_with_ro() {
    common::require_root!();
    let rt = Rt::new();
    let f = project(
        &rt,
        "services:\n  src:\n    image: keysbox:latest\n    network_mode: none\n    volumes: [/data, ./bind:/bound]\n    \
         tmpfs: [/scratch]\n    command: [sh, -c, 'echo hello > /data/f; exec sleep 1000']\n  \
         rw:\n    image: keysbox:latest\n    network_mode: none\n    volumes_from: [src]\n    command: sleep 1000\n  \
         ro:\n    image: keysbox:latest\n    network_mode: none\n    volumes_from: [\"src:ro\"]\n    command: sleep 1000\n",
    );
    let dir = rt.t.scratch().join("proj").join("bind");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("b"), "bound\n").unwrap();
    let p = ["-f", f.as_str(), "-p", "keysvf"];
    let o = rt.t.run(p.iter().copied().chain(["up", "-d"]));
    assert!(o.status.success(), "{}", err(&o));
    assert!(!err(&o).contains("volumes_from"), "no warning any more: {}", err(&o));
    let exec = |svc: &str, script: &str| rt.t.run(p.iter().copied().chain(["exec", "-T", svc, "sh", "-c", script]));
    // What src wrote in its anonymous volume, rw reads and adds to.
    rt.wait_for("src to write /data/f", std::time::Duration::from_secs(10), || out(&exec("rw", "cat /data/f 2>/dev/null")) == "hello\n");
    let o = exec("rw", "echo x > /data/g && cat /bound/b && grep -c ' /scratch ' /proc/mounts");
    assert_eq!(out(&o), "bound\n0\n", "the bind is shared, the tmpfs is not: {}", err(&o));
    assert_eq!(out(&exec("src", "cat /data/g")), "x\n");
    // `:ro` makes the same volume read-only.
    let o = exec("ro", "cat /data/f /data/g /bound/b; echo y > /data/h");
    assert_eq!(out(&o), "hello\nx\nbound\n");
    assert!(!o.status.success() && err(&o).contains("Read-only file system"), "{}", err(&o));
    let o = exec("ro", "echo y > /bound/h");
    assert!(!o.status.success() && err(&o).contains("Read-only file system"), "{}", err(&o));
    // A new src recreates the containers that use its volumes.
    let ids = |svc: &str| out(&rt.t.run(p.iter().copied().chain(["ps", "-q", svc]))).trim().to_string();
    let before = (ids("rw"), ids("ro"));
    assert!(!before.0.is_empty() && !before.1.is_empty());
    std::fs::write(
        &f,
        std::fs::read_to_string(&f).unwrap().replacen("    tmpfs: [/scratch]\n", "    tmpfs: [/scratch]\n    environment: {V: \"2\"}\n", 1),
    )
    .unwrap();
    let o = rt.t.run(p.iter().copied().chain(["up", "-d"]));
    assert!(o.status.success(), "{}", err(&o));
    assert!(ids("rw") != before.0 && ids("ro") != before.1, "rw and ro are recreated with src: {}", err(&o));
    rt.t.ok(p.iter().copied().chain(["down", "-v", "-t", "0"]));
}

#[test]
fn uts_host_keeps_the_host_name() {
    common::require_root!();
    let rt = Rt::new();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let f = project(&rt, "services:\n  app:\n    image: keysbox:latest\n    network_mode: none\n    uts: host\n    command: hostname\n");
    let o = rt.t.run(["-f", f.as_str(), "-p", "keysuts", "run", "--rm", "-T", "app"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), host);
    assert!(!err(&o).contains("WARN"), "{}", err(&o));
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(), host);
    // As Docker: a hostname cannot be set in the host's UTS namespace.
    let f = project(
        &rt,
        "services:\n  app:\n    image: keysbox:latest\n    network_mode: none\n    uts: host\n    hostname: other\n    command: hostname\n",
    );
    let o = rt.t.run(["-f", f.as_str(), "-p", "keysuts", "run", "--rm", "-T", "app"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("conflicting options: hostname and the UTS mode") && err(&o).contains("app"), "{}", err(&o));
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(), host);
}

/// Where Docker drops a cgroup setting with a warning and runs the container, so does berth:
/// `mem_swappiness` and `oom_kill_disable` on cgroup v2 (the v2 code forced onto this host's
/// controller-less cgroup2 mount). A block I/O weight without a weight file is discarded the
/// same way: the fake-cgroupfs unit test covers it (this host's cgroups have BFQ's file).
#[test]
fn settings_docker_discards_are_warned_and_the_container_runs() {
    common::require_root!();
    const UNIFIED: &str = "/sys/fs/cgroup/unified";
    if !std::path::Path::new(UNIFIED).join("cgroup.procs").exists() {
        common::skip!("no cgroup2 mount at {UNIFIED}");
    }
    let mut rt = Rt::new();
    rt.env.push(("BERTH_CGROUP_V2_ROOT".into(), UNIFIED.into()));
    let f = project(
        &rt,
        "services:\n  app:\n    image: keysbox:latest\n    network_mode: none\n    mem_swappiness: 10\n    oom_kill_disable: true\n    command: echo ran\n",
    );
    let o = rt.cmd(["-f", f.as_str(), "-p", "keysv2", "run", "--rm", "-T", "app"]).output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "ran\n");
    for w in [
        "WARN[0000] service \"app\": cgroup v2 does not support memory swappiness: `mem_swappiness` discarded",
        "WARN[0000] service \"app\": cgroup v2 cannot disable the OOM killer: `oom_kill_disable` discarded",
    ] {
        assert_eq!(err(&o).matches(w).count(), 1, "{w:?} once in:\n{}", err(&o));
    }
}

/// `platform:` chooses what `up`/`create` pull from a multi-platform image (a loopback
/// registry), and a platform the image does not offer is the pull's error, naming the service.
#[test]
fn platform_is_pulled_as_asked() {
    common::require_root!();
    use common::registry::{Auth, Registry, digest_of, gzip, http, push_raw, put_manifest, tar_of};
    let rt = Rt::new();
    let reg = Registry::start(Auth::None);
    let mut manifests = Vec::new();
    for (arch, variant) in [("amd64", None), ("arm64", Some("v8"))] {
        let layer = tar_of(&[("arch", arch.as_bytes())]);
        let m = push_raw(&reg, "plat", arch, arch, &[("application/vnd.oci.image.layer.v1.tar+gzip", gzip(&layer))], &[digest_of(&layer)]);
        let size =
            http("GET", &reg.url(&format!("/v2/plat/manifests/{arch}")), &[("Accept", "application/vnd.oci.image.manifest.v1+json")], b"")
                .2
                .len();
        let mut platform = serde_json::json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            platform["variant"] = v.into();
        }
        manifests.push(
            serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": size, "platform": platform}),
        );
    }
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    put_manifest(&reg, "plat", "latest", "application/vnd.oci.image.index.v1+json", index.to_string().as_bytes());
    let image = format!("{}/plat:latest", reg.host());
    let svc = |name: &str, platform: &str| {
        format!("  {name}:\n    image: {image}\n    platform: {platform}\n    network_mode: none\n    command: [/arch]\n")
    };
    let f = project(&rt, &format!("services:\n{}{}{}", svc("amd", "linux/amd64"), svc("arm", "linux/arm64"), svc("zed", "linux/s390x")));
    let p = ["-f", f.as_str(), "-p", "keysplat"];
    let arch_of = |svc: &str| {
        let id = rt.inspect(&format!("keysplat-{svc}-1"))["Image"].as_str().unwrap().to_string();
        let v: serde_json::Value = serde_json::from_str(&rt.t.ok(["image", "inspect", &id])).unwrap();
        v[0]["Architecture"].as_str().unwrap_or_default().to_string()
    };
    for (name, arch) in [("amd", "amd64"), ("arm", "arm64")] {
        let o = rt.t.run(p.iter().copied().chain(["create", name]));
        assert!(o.status.success(), "{name}: {}", err(&o));
        assert!(!err(&o).contains("platform"), "no warning any more: {}", err(&o));
        assert_eq!(arch_of(name), arch);
    }
    let o = rt.t.run(p.iter().copied().chain(["create", "zed"]));
    assert!(!o.status.success());
    let e = err(&o);
    assert!(e.contains("zed") && e.contains("no image for platform linux/s390x") && e.contains("linux/amd64"), "{e}");
    rt.t.ok(p.iter().copied().chain(["down"]));
}
