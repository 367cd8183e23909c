//! Engine-side parity with Docker (issue 13): what a Docker user checks after the same commands.
//! A container keeps its address for its whole life; `up --wait` fails when a service exits;
//! `stats` counts CPU and block I/O on a cgroup v1 host whose controllers are separate
//! hierarchies. Projects `parengine*`, subnets 10.224.0.0/16.

mod common;

use std::time::Duration;

use common::compose::{Stack, wait_until};

/// A container's address on `network` while it runs (Docker shows none for a stopped one).
fn ip(s: &Stack, container: &str, network: &str) -> String {
    let v = s.inspect(container).unwrap_or_else(|| panic!("{container} exists"));
    v["NetworkSettings"]["Networks"][network]["IPAddress"].as_str().unwrap_or("").to_string()
}

fn restarts(s: &Stack, container: &str) -> u64 {
    s.inspect(container).map(|v| v["RestartCount"].as_u64().unwrap_or(0)).unwrap_or(0)
}

const KEEP: &str = "services:
  a:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
  crash:
    image: busybox
    command: [\"sh\", \"-c\", \"sleep 1; exit 1\"]
    restart: always
  b:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
    profiles: [later]
networks:
  default:
    ipam:
      config:
        - subnet: 10.224.1.0/24
";

#[test]
fn a_container_keeps_its_address_for_its_whole_life() {
    common::require_root!();
    let s = Stack::new("parengineip", KEEP);
    let net = "parengineip_default";
    s.ok(["up", "-d", "a", "crash"]);
    let a = ip(&s, "parengineip-a-1", net);
    let crash = ip(&s, "parengineip-crash-1", net);
    // Lowest free first, as Docker's IPAM: the gateway is .1.
    let mut both = [a.clone(), crash.clone()];
    both.sort();
    assert_eq!(both, ["10.224.1.2", "10.224.1.3"]);

    // restart: the same address.
    s.ok(["restart", "-t", "0", "a"]);
    assert_eq!(ip(&s, "parengineip-a-1", net), a, "after restart");

    // stop, another container starts meanwhile, start: still the same, and the other one
    // got a free address, not a's.
    s.ok(["stop", "-t", "0", "a"]);
    s.ok(["--profile", "later", "up", "-d", "b"]);
    let b = ip(&s, "parengineip-b-1", net);
    assert_eq!(b, "10.224.1.4", "b takes the lowest address nobody holds");
    s.ok(["start", "a"]);
    assert_eq!(ip(&s, "parengineip-a-1", net), a, "after stop and start");

    // A crash restarted by the restart policy: the same address.
    wait_until(Duration::from_secs(20), "crash restarted by its policy", || {
        restarts(&s, "parengineip-crash-1") >= 1 && s.status("parengineip-crash-1") == "running"
    });
    assert_eq!(ip(&s, "parengineip-crash-1", net), crash, "after a crash restart");

    // Removed and created again: the lowest free address, which is its own again.
    s.ok(["rm", "-s", "-f", "a"]);
    s.ok(["up", "-d", "a"]);
    assert_eq!(ip(&s, "parengineip-a-1", net), a, "recreated");
    s.ok(["--profile", "later", "down", "-t", "0"]);
    assert!(s.containers().is_empty(), "{:?}", s.containers());
}

const WAIT: &str = "services:
  ok:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
  crash:
    image: busybox
    command: [\"sh\", \"-c\", \"exit 3\"]
  job:
    image: busybox
    command: [\"true\"]
  looping:
    image: busybox
    command: [\"sh\", \"-c\", \"sleep 0.2; exit 4\"]
    restart: always
networks:
  default:
    ipam:
      config:
        - subnet: 10.224.2.0/24
";

#[test]
fn up_wait_fails_when_a_service_exits() {
    common::require_root!();
    let s = Stack::new("parenginewait", WAIT);
    // What compose v2.40.3 prints (stderr) and returns, checked side by side.
    let fails = |service: &str, code: i32| {
        let o = s.run(["up", "-d", "--wait", service]);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(1), "up --wait {service}: {err}");
        let want = format!("container parenginewait-{service}-1 exited ({code})");
        // berth prefixes its errors with `Error: ` and adds a hint line.
        assert!(err.lines().any(|l| l.trim().trim_start_matches("Error: ") == want), "want {want:?} in: {err}");
    };
    fails("crash", 3);
    fails("job", 0);
    fails("looping", 4);
    let (_, err) = s.ok(["up", "-d", "--wait", "ok"]);
    assert!(err.contains("Container parenginewait-ok-1  Healthy") || err.contains("Container parenginewait-ok-1  Running"), "{err}");
    s.ok(["down", "-t", "0"]);
}

const STATS: &str = "services:
  busy:
    image: busybox
    init: true
    command: [\"sh\", \"-c\", \"dd if=/dev/zero of=/f bs=1M count=8 conv=fsync 2>/dev/null; while :; do :; done\"]
networks:
  default:
    ipam:
      config:
        - subnet: 10.224.3.0/24
";

#[test]
fn stats_shows_cpu_and_block_io() {
    common::require_root!();
    let s = Stack::new("parenginestats", STATS);
    s.ok(["up", "-d"]);
    let id = s.id("parenginestats-busy-1");
    // Placed in every controller the host has, as runc does (v1: each hierarchy).
    let v1 = std::path::Path::new("/sys/fs/cgroup/cpuacct").is_dir();
    if v1 {
        for c in ["cpu", "cpuacct", "cpuset", "memory", "blkio", "pids", "devices", "freezer"] {
            let base = std::path::Path::new("/sys/fs/cgroup").join(c);
            if base.is_dir() {
                assert!(base.join("berth").join(&id).is_dir(), "container in the {c} hierarchy");
            }
        }
    }
    let mut last = String::new();
    let mut seen = false;
    for _ in 0..10 {
        let (out, _) = s.ok(["stats", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}} {{.BlockIO}}"]);
        last = out.clone();
        let line = out.lines().find(|l| l.starts_with("parenginestats-busy-1 ")).unwrap_or("").to_string();
        let f: Vec<&str> = line.split_whitespace().collect();
        // name, cpu%, read, "/", write
        if f.len() == 5 {
            let cpu: f64 = f[1].trim_end_matches('%').parse().unwrap_or(0.0);
            if cpu > 20.0 && f[4] != "0B" {
                seen = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(seen, "a busy container that wrote 8 MB shows CPU % and block I/O: {last}");
    s.ok(["down", "-t", "0"]);
}

const EXEC: &str = "services:
  a:
    image: busybox
    command: [\"sleep\", \"1000\"]
    init: true
    environment:
      FOO: fromservice
      BAR: fromservice
networks:
  default:
    ipam:
      config:
        - subnet: 10.224.4.0/24
";

#[test]
fn exec_takes_a_bare_env_from_the_caller_and_a_missing_command_is_126() {
    common::require_root!();
    let s = Stack::new("parengineexec", EXEC);
    s.ok(["up", "-d"]);
    // -e FOO: the caller's FOO over the service's; -e BAR unset in the caller: unset, as compose.
    let o = s
        .cmd(["exec", "-T", "-e", "FOO", "-e", "BAR", "-e", "X=1", "a", "sh", "-c", "echo \"[$FOO] [${BAR-unset}] [$X]\""])
        .env("FOO", "caller")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "[caller] [unset] [1]\n");
    // docker compose exec of a missing command: rc 126 and the runtime's message.
    let o = s.run(["exec", "-T", "a", "nosuchcmd"]);
    assert_eq!(o.status.code(), Some(126));
    assert!(String::from_utf8_lossy(&o.stderr).contains("\"nosuchcmd\": executable file not found in $PATH"));
    s.ok(["down", "-t", "0"]);
}

/// The blob uploads (PUT) the registry has completed so far.
fn blob_puts(reg: &common::registry::Registry) -> usize {
    reg.log()
        .lines()
        .filter(|l| l.contains("response completed") && l.contains("http.request.method=PUT") && l.contains("/blobs/uploads/"))
        .count()
}

#[test]
fn image_push_sends_gzip_skips_what_the_registry_has_and_mounts_across_repositories() {
    use common::registry::{Auth, Registry, busybox_image, http};
    common::require_root!();
    let reg = Registry::start(Auth::None);
    let host = reg.host();
    let root = common::TestRoot::new();
    let id = busybox_image(&root);
    let a = format!("{host}/parengine/a:1");
    root.ok(["image", "tag", "busybox", &a]);
    let out = root.ok(["--progress", "plain", "image", "push", &a]);
    assert!(out.contains("Pushed"), "{out}");
    // The layer went gzipped (the store has it uncompressed), as docker push sends it.
    let accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
    let (code, _, body) = http("GET", &reg.url("/v2/parengine/a/manifests/1"), &[("Accept", accept)], b"");
    assert_eq!(code, 200);
    let m: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let layer = &m["layers"][0];
    assert!(layer["mediaType"].as_str().unwrap().ends_with("gzip"), "{m}");
    let tar_size = std::fs::metadata(root.scratch().join("busybox-rootfs.tar")).unwrap().len();
    assert!(layer["size"].as_u64().unwrap() < tar_size * 3 / 4, "gzip {} against the tar's {tar_size}: {m}", layer["size"]);
    let (code, _, blob) = http("GET", &reg.url(&format!("/v2/parengine/a/blobs/{}", layer["digest"].as_str().unwrap())), &[], b"");
    assert_eq!(code, 200);
    assert_eq!(&blob[..2], &[0x1f, 0x8b], "a gzip stream");

    // Pushed again: the registry has every blob (HEAD), nothing is uploaded.
    let puts = blob_puts(&reg);
    let out = root.ok(["--progress", "plain", "image", "push", &a]);
    assert!(out.contains("Layer already exists") && !out.contains("Pushed"), "{out}");
    assert_eq!(blob_puts(&reg), puts, "the second push uploaded blobs");

    // Another repository of the same registry: the layer is mounted from the first, not sent.
    let b = format!("{host}/parengine/b:1");
    root.ok(["image", "tag", "busybox", &b]);
    let out = root.ok(["--progress", "plain", "image", "push", &b]);
    assert!(out.contains("Mounted from parengine/a"), "{out}");
    assert_eq!(blob_puts(&reg), puts, "the push to another repository uploaded the layer");

    // And what was pushed pulls back as the same image.
    let other = common::TestRoot::new();
    other.ok(["image", "pull", &b]);
    let got = other.ok(["image", "inspect", "-f", "{{.Id}}", &b]);
    assert_eq!(got.trim(), id.trim());
}

#[test]
fn importing_a_layer_the_store_has_does_not_unpack_it_again() {
    common::require_root!();
    let root = common::TestRoot::new();
    let tar = root.scratch().join("busybox.tar");
    common::make_busybox_tar(&tar);
    let tar = tar.to_str().unwrap();
    let first = root.ok(["image", "import", tar, "parengine/one:1"]);
    // A limit of one tar entry per unpacked layer: any unpack of busybox fails under it...
    let other = root.scratch().join("other.tar");
    common::make_busybox_tar(&other);
    std::fs::OpenOptions::new().append(true).open(&other).unwrap().set_len(std::fs::metadata(&other).unwrap().len() + 1024).unwrap();
    let o =
        root.cmd(["image", "import", other.to_str().unwrap(), "parengine/other:1"]).env("BERTH_MAX_LAYER_ENTRIES", "1").output().unwrap();
    assert!(!o.status.success(), "the limit is in force for a new layer");
    // ...so the same tarball imported again under it shows it is only hashed, not unpacked.
    let o = root.cmd(["image", "import", tar, "parengine/two:1"]).env("BERTH_MAX_LAYER_ENTRIES", "1").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dirs = |r: &str| root.ok(["image", "inspect", "-f", "{{.GraphDriver.Data.LowerDir}}", r]);
    assert_eq!(dirs("parengine/one:1"), dirs("parengine/two:1"));
    assert!(!first.trim().is_empty());
}
