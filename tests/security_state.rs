//! Damaged state and faults (issue 12, items 8, 10, 12, 13, 14): each test damages the state
//! root or kills a process as a crash, a full disk or a hand edit would, and checks that berth
//! degrades to the one object concerned, lists it honestly, and removes it with everything it
//! holds on the host. State roots are /tmp/berth-secstate-*, projects `secstate*`, subnets
//! 10.223.0.0/16; every test tears its root down on drop.
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::TestRoot;
use common::compose::{Stack, wait_until};

fn yaml(services: &str, net: u8) -> String {
    format!("services:\n{services}\nnetworks:\n  default:\n    ipam:\n      config:\n        - subnet: 10.223.{net}.0/24\n")
}

const TWO: &str = "  web:\n    image: busybox\n    command: sleep 1000\n    init: true\n  db:\n    image: busybox\n    command: sleep 1000\n    init: true\n";

fn stack(name: &str, services: &str, net: u8) -> Stack {
    Stack::in_root(TestRoot::with_prefix("berth-secstate-"), name, &yaml(services, net))
}

/// `ps -a` as "name state" lines.
fn ps_all(s: &Stack) -> Vec<String> {
    let (out, _) = s.ok(["ps", "-a", "--format", "{{.Name}} {{.State}}"]);
    out.lines().map(str::to_string).collect()
}

/// The container folders of the root (ids).
fn folders(s: &Stack) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(s.t.root().join("containers"))
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| !n.starts_with('.')).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn container_dir(s: &Stack, id: &str) -> PathBuf {
    s.t.root().join("containers").join(id)
}

fn supervisor_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.contains("__supervise"))
}

/// Gone as berth judges it: no such process, or a zombie (a killed process drops its command
/// line before it becomes a zombie, so the command line alone says "gone" too early).
fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(st) => st.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

fn truncate_half(p: &Path) {
    let b = std::fs::read(p).unwrap();
    std::fs::write(p, &b[..b.len() / 2]).unwrap();
}

/// Item 10: a truncated `config.json` of a running container. Before the fix the container
/// vanished from `ps -a`, and `down` returned 0 leaving its supervisor, its PID 1, its cgroup and
/// its veth behind. Now it is listed as dead, `up` replaces it, and `down` leaves nothing.
#[test]
fn a_truncated_config_is_listed_dead_replaced_by_up_and_removed_by_down() {
    common::require_root!();
    let s = stack("secstate-cfg", TWO, 1);
    s.ok(["up", "-d"]);
    let h = s.host_objects();
    let old = s.id("secstate-cfg-web-1");
    assert!(!old.is_empty());
    truncate_half(&container_dir(&s, &old).join("config.json"));

    let ps = ps_all(&s);
    assert!(ps.contains(&"secstate-cfg-web-1 dead".to_string()), "the damaged container is listed as dead: {ps:?}");
    assert!(ps.contains(&"secstate-cfg-db-1 running".to_string()), "{ps:?}");
    let (out, _) = s.ok(["ps", "-a", "--format", "{{.Name}} {{.Status}}"]);
    assert!(out.contains("secstate-cfg-web-1 Dead"), "{out}");

    // `up` replaces it: the old one is gone with its supervisor, a new one runs.
    s.ok(["up", "-d"]);
    assert_eq!(s.status("secstate-cfg-web-1"), "running");
    assert_ne!(s.id("secstate-cfg-web-1"), old);
    assert!(!container_dir(&s, &old).exists(), "the damaged container's folder is removed");

    // Damage the new one too, then `down` removes everything.
    let new = s.id("secstate-cfg-web-1");
    std::fs::write(container_dir(&s, &new).join("config.json"), b"").unwrap();
    let h2 = s.host_objects();
    s.ok(["down", "-t", "0"]);
    assert!(folders(&s).is_empty(), "{:?}", folders(&s));
    assert!(h.left().is_empty(), "{:?}", h.left());
    assert!(h2.left().is_empty(), "{:?}", h2.left());
}

/// Item 10: garbage in one `state.json`. Before the fix every `down`/`rm` of the project failed
/// on it ("holds invalid JSON"), so nothing of the project could be removed. Now that container is
/// dead with the reason, `rm -f` ends its supervisor and removes it, `up` starts it again, and
/// `down` removes the project.
#[test]
fn garbage_in_one_state_file_blocks_nothing() {
    common::require_root!();
    let s = stack("secstate-st", TWO, 2);
    s.ok(["up", "-d"]);
    let h = s.host_objects();
    let db = s.id("secstate-st-db-1");
    assert_eq!(s.status("secstate-st-db-1"), "running");
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(container_dir(&s, &db).join("state.json")).unwrap()).unwrap();
    let old_sup = state["Supervisor"]["Pid"].as_i64().unwrap() as i32;
    std::fs::write(container_dir(&s, &db).join("state.json"), b"{\"Status\": \"runn").unwrap();

    let ps = ps_all(&s);
    assert!(ps.contains(&"secstate-st-db-1 dead".to_string()), "{ps:?}");
    assert!(ps.contains(&"secstate-st-web-1 running".to_string()), "{ps:?}");
    let v = s.inspect("secstate-st-db-1").expect("inspect works on a damaged state");
    assert!(v["State"]["Error"].as_str().unwrap().contains("state.json"), "{v}");
    assert!(supervisor_alive(old_sup), "listing a damaged state does not end its container");

    // `up` converges: the stale supervisor is ended and the container runs again.
    s.ok(["up", "-d"]);
    assert_eq!(s.status("secstate-st-db-1"), "running");
    assert!(!supervisor_alive(old_sup), "the supervisor the damaged state could not name is ended");
    let h2 = s.host_objects();

    // And `rm -s -f` of the damaged one, then `down`.
    let db = s.id("secstate-st-db-1");
    std::fs::write(container_dir(&s, &db).join("state.json"), b"\0\0garbage").unwrap();
    s.ok(["rm", "-s", "-f", "db"]);
    assert!(!container_dir(&s, &db).exists());
    s.ok(["down", "-t", "0"]);
    assert!(folders(&s).is_empty(), "{:?}", folders(&s));
    assert!(h.left().is_empty(), "{:?}", h.left());
    assert!(h2.left().is_empty(), "{:?}", h2.left());
}

/// Item 10: a damaged container cannot be started (its config is gone), and says how to get
/// rid of it; `rm -f` by name finds its supervisor by its command line and ends it.
#[test]
fn a_damaged_container_is_refused_start_and_removed_by_rm() {
    common::require_root!();
    let s = stack("secstate-rm", "  web:\n    image: busybox\n    command: sleep 1000\n", 3);
    s.ok(["up", "-d"]);
    let h = s.host_objects();
    let id = s.id("secstate-rm-web-1");
    truncate_half(&container_dir(&s, &id).join("config.json"));
    truncate_half(&container_dir(&s, &id).join("state.json"));
    let o = s.t.run(["__ctr", "start", "secstate-rm-web-1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("damaged") && err.contains("rm -f"), "{err}");
    s.t.ok(["__ctr", "rm", "-f", "secstate-rm-web-1"]);
    assert!(folders(&s).is_empty(), "{:?}", folders(&s));
    wait_until(Duration::from_secs(5), "the supervisor ends", || h.pids.iter().all(|p| !supervisor_alive(*p)));
    // The container's objects are gone; the project's network goes with `down`.
    let left: Vec<String> = h.left().into_iter().filter(|l| !l.starts_with("link berth")).collect();
    assert!(left.is_empty(), "{left:?}");
    s.ok(["down"]);
    assert!(h.left().is_empty(), "{:?}", h.left());
}

/// Item 12: what a CLI killed by SIGKILL leaves: a container folder that never got its config,
/// the hidden folders of a create and a removal cut short, a `networks/.tmp-<pid>-*` folder, a writer's temp file, and lock files of containers that no
/// longer exist. Before the fix nothing ever removed them; now the next command that takes a
/// project's lock collects them (and leaves a fresh folder alone: a `create` may be under way).
#[test]
fn junk_left_by_killed_commands_is_collected_by_the_next_command() {
    common::require_root!();
    let s = stack("secstate-junk", "  web:\n    image: busybox\n    command: sleep 1000\n", 4);
    s.ok(["up", "-d"]);
    let root = s.t.root();
    let old = root.join("containers").join("a".repeat(64));
    let fresh = root.join("containers").join("b".repeat(64));
    for d in [&old, &fresh] {
        std::fs::create_dir_all(d.join("diff")).unwrap();
    }
    let two_minutes_ago = std::time::SystemTime::now() - Duration::from_secs(120);
    std::fs::File::open(&old).unwrap().set_modified(two_minutes_ago).unwrap();
    // pid 999999999 is above any pid_max: its writer is certainly gone.
    let net_tmp = root.join("networks").join(".tmp-999999999-0123456789ab");
    std::fs::create_dir_all(&net_tmp).unwrap();
    std::fs::write(net_tmp.join("network.json"), b"{}").unwrap();
    let half_removed = root.join("containers").join(format!(".rm-999999999-{}", "d".repeat(64)));
    std::fs::create_dir_all(half_removed.join("diff/etc")).unwrap();
    let half_made = root.join("containers").join(format!(".new-999999999-{}", "e".repeat(64)));
    std::fs::create_dir_all(half_made.join("rootfs")).unwrap();
    let tmp_file = root.join("containers").join(".x.json.tmp-999999999-0000abcd");
    std::fs::write(&tmp_file, b"x").unwrap();
    let stale_lock = root.join("locks").join(format!("c-{}.lock", "c".repeat(64)));
    std::fs::write(&stale_lock, b"").unwrap();
    let id = s.id("secstate-junk-web-1");
    let live_lock = root.join("locks").join(format!("c-{id}.lock"));

    s.ok(["stop", "-t", "0"]);
    assert!(!old.exists(), "an abandoned container folder is removed");
    assert!(fresh.exists(), "a fresh one may be a create under way");
    assert!(!net_tmp.exists() && !tmp_file.exists() && !stale_lock.exists() && !half_removed.exists() && !half_made.exists());
    assert_eq!(s.status("secstate-junk-web-1"), "exited", "the project's own container is untouched");
    let _ = live_lock;
    std::fs::remove_dir_all(&fresh).unwrap();
    s.ok(["down", "-t", "0"]);
    let locks: Vec<String> = std::fs::read_dir(root.join("locks"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("c-"))
        .collect();
    assert!(locks.is_empty(), "no lock file per removed container is left: {locks:?}");
}

/// Item 8: values that can never come up (container port 0, `host_ip: notanip`, `/sctp`, one
/// host port published twice) passed `config` and failed in `up` after the network and the
/// first containers were made. Now the loader refuses them: `config` reports them, and `up`
/// creates nothing.
#[test]
fn invalid_ports_are_refused_by_config_and_up_creates_nothing() {
    common::require_root!();
    let s = stack("secstate-ports", "  web:\n    image: busybox\n", 5);
    let cases = [
        ("  web:\n    image: busybox\n    command: sleep 1000\n    ports: [\"0\"]\n", "invalid container port 0"),
        (
            "  web:\n    image: busybox\n    command: sleep 1000\n    ports:\n      - target: 80\n        published: \"18080\"\n        host_ip: notanip\n",
            "invalid IP address \"notanip\"",
        ),
        ("  web:\n    image: busybox\n    command: sleep 1000\n    ports: [\"18080:80/sctp\"]\n", "\"sctp\" is not supported"),
        (
            "  web:\n    image: busybox\n    command: sleep 1000\n    ports: [\"18080:80\"]\n  api:\n    image: busybox\n    command: sleep 1000\n    ports: [\"127.0.0.1:18080:81\"]\n",
            "host port 18080/tcp is published by services",
        ),
    ];
    for (services, want) in cases {
        s.write(&yaml(services, 5));
        for args in [&["config"][..], &["up", "-d"][..]] {
            let o = s.run(args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!o.status.success() && err.contains(want), "{args:?} on\n{services}\nsaid: {err}");
        }
        assert!(folders(&s).is_empty(), "up created containers: {:?}", folders(&s));
        assert!(s.networks().is_empty(), "up created networks: {:?}", s.networks());
    }
}

/// Item 14: a container whose supervisor was SIGKILLed (its PID 1 dies with it). Before the fix
/// it showed as `Dead` and kept its cgroup and network endpoint until its next start; now the
/// first command that observes the death cleans them up, and `ps` says `Dead` (with the reason
/// in inspect).
#[test]
fn a_killed_supervisor_is_reported_and_its_cgroup_removed_when_observed() {
    common::require_root!();
    let s = stack("secstate-dead", "  web:\n    image: busybox\n    command: sleep 1000\n", 6);
    s.ok(["up", "-d"]);
    let h = s.host_objects();
    let id = s.id("secstate-dead-web-1");
    let v = s.inspect("secstate-dead-web-1").unwrap();
    assert_eq!(v["State"]["Status"], "running");
    let sup = h.pids[0];
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(sup), nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_until(Duration::from_secs(5), "the supervisor dies", || process_gone(sup));
    let cgroup_left = || {
        ["/sys/fs/cgroup/berth", "/sys/fs/cgroup/memory/berth", "/sys/fs/cgroup/pids/berth", "/sys/fs/cgroup/unified/berth"]
            .iter()
            .any(|b| Path::new(b).join(&id).exists())
    };
    let (out, _) = s.ok(["ps", "-a", "--format", "{{.Name}} {{.Status}}"]);
    assert!(out.contains("secstate-dead-web-1 Dead"), "{out}");
    assert!(!cgroup_left(), "the dead container's cgroup is removed when its death is observed");
    let v = s.inspect("secstate-dead-web-1").unwrap();
    assert!(v["State"]["Error"].as_str().unwrap().contains("supervisor"), "{v}");
    assert!(v["NetworkSettings"]["Networks"].as_object().is_none_or(|m| m.is_empty()), "{v}");
    s.ok(["up", "-d"]);
    assert_eq!(s.status("secstate-dead-web-1"), "running");
    s.ok(["down", "-t", "0"]);
    assert!(h.left().is_empty(), "{:?}", h.left());
}

/// A tmpfs of `size` mounted on `at`, unmounted on drop (after the state root's teardown).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        nix::mount::mount(Some("tmpfs"), at, Some("tmpfs"), nix::mount::MsFlags::empty(), Some(format!("size={size},mode=0700").as_str()))
            .expect("mount a tmpfs");
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        // The state root's temp folder was removed around the mount point: remove what is left.
        let _ = std::fs::remove_dir(&self.0);
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}

/// Fills the filesystem of `dir` to the last byte.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).unwrap();
    let chunk = vec![0xa5u8; 1 << 16];
    loop {
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    let one = [0u8; 1];
    while f.write_all(&one).is_ok() {}
    p
}

/// Item 13: `stop`, `down` and `rm` free space, so they must work on a full disk: they must not
/// need to write state first. The state root is a small tmpfs filled to the last byte.
#[test]
fn stop_rm_and_down_work_on_a_full_disk() {
    common::require_root!();
    let t = TestRoot::with_prefix("berth-secstate-");
    let _fs = Tmpfs::mount(&t.root(), "48m");
    let services = "  web:\n    image: busybox\n    command: sleep 1000\n  db:\n    image: busybox\n    command: sleep 1000\n    ports: [\"127.0.0.1::80\"]\n";
    let s = Stack::in_root(t, "secstate-full", &yaml(services, 7));
    s.ok(["up", "-d"]);
    let h = s.host_objects();
    let filler = fill(&s.t.root());
    s.ok(["stop", "-t", "0", "web"]);
    assert_eq!(s.status("secstate-full-web-1"), "exited");
    s.ok(["rm", "-f", "web"]);
    s.ok(["down", "-t", "0"]);
    assert!(folders(&s).is_empty(), "{:?}", folders(&s));
    assert!(s.networks().is_empty(), "{:?}", s.networks());
    assert!(h.left().is_empty(), "{:?}", h.left());
    std::fs::remove_file(filler).unwrap();
}

/// Item 10: garbage in one network's `endpoints.json` made `network ls` fail for the whole root.
/// Now that network is still listed (with a warning naming the file), and so are the others.
#[test]
fn a_damaged_endpoints_file_does_not_break_network_ls() {
    common::require_root!();
    let s = stack("secstate-net", "  web:\n    image: busybox\n    command: sleep 1000\n", 8);
    s.ok(["up", "-d"]);
    let ep = s.t.root().join("networks").join("secstate-net_default").join("endpoints.json");
    let good = std::fs::read(&ep).unwrap();
    std::fs::write(&ep, b"{\"endpoints\": [garbage").unwrap();
    let o = s.t.run(["network", "ls", "--format", "{{.Name}}"]);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{err}");
    assert!(out.lines().any(|l| l == "secstate-net_default"), "{out}");
    assert!(err.contains("endpoints.json"), "{err}");
    std::fs::write(&ep, good).unwrap();
    s.ok(["down", "-t", "0"]);
}

/// Item 8: a host port another program already listens on. Before the fix `up` created the
/// network and the containers before it, then failed at that container's start; now it checks
/// every new container's fixed host ports first, names the port, and creates nothing.
#[test]
fn a_host_port_in_use_is_refused_before_anything_is_created() {
    common::require_root!();
    let s = stack("secstate-inuse", "  web:\n    image: busybox\n", 9);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let services = format!(
        "  a:\n    image: busybox\n    command: sleep 1000\n  b:\n    image: busybox\n    command: sleep 1000\n    depends_on: [a]\n    ports: [\"127.0.0.1:{port}:80\"]\n"
    );
    s.write(&yaml(&services, 9));
    let o = s.run(["up", "-d"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}/tcp is already in use")), "{err}");
    assert!(folders(&s).is_empty(), "up created containers: {:?}", folders(&s));
    assert!(s.networks().is_empty(), "up created networks: {:?}", s.networks());
    drop(taken);
    s.ok(["up", "-d"]);
    assert_eq!(s.status("secstate-inuse-b-1"), "running");
    s.ok(["down", "-t", "0"]);
}
