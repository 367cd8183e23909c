//! The rest of the security issue (issue 12): a damaged image tag index or network record
//! degrades to that one object, and `system prune`. Roots are /tmp/berth-secfin-*, projects
//! `secfin*`, subnets 10.227.0.0/16; every test tears its root down on drop.
mod common;

use std::path::PathBuf;

use common::TestRoot;
use common::registry::busybox_image;

fn root() -> TestRoot {
    TestRoot::with_prefix("berth-secfin-")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Item 10: a damaged `repositories.json` blocked every image command ("cannot parse ...").
/// Now the image commands work and warn naming the file, the tags that can be salvaged are
/// kept, `image prune` refuses rather than take every image for untagged, and `tag` rebuilds
/// the index. Checked failing before the fix: `image ls` exited 1 on the truncated file.
#[test]
fn a_damaged_tag_index_degrades_and_is_rebuilt_by_tag() {
    common::require_root!();
    let t = root();
    let id = busybox_image(&t);
    t.ok(["image", "tag", "busybox", "secfin/box:v1"]);
    let index: PathBuf = t.root().join("images/repositories.json");
    let full = std::fs::read_to_string(&index).unwrap();
    // Cut the file inside its second entry: the first survives whole.
    let cut = full.find("secfin/box").expect("the second tag is in the index");
    std::fs::write(&index, &full[..cut + 4]).unwrap();

    let out = t.run(["image", "ls"]);
    assert!(out.status.success(), "image ls works on a damaged index: {}", stderr(&out));
    assert!(stderr(&out).contains("repositories.json") && stderr(&out).contains("damaged"), "{}", stderr(&out));
    assert!(
        stdout(&out).lines().any(|l| l.starts_with("busybox ") && l.contains("latest")),
        "the salvaged tag is listed: {}",
        stdout(&out)
    );
    let out = t.run(["image", "inspect", "-f", "{{.Id}}", "busybox"]);
    assert!(out.status.success() && stdout(&out).trim() == id, "{} {}", stdout(&out), stderr(&out));

    // Prune must not take the images whose tag was lost for dangling ones.
    let out = t.run(["image", "prune", "-a", "-f"]);
    assert!(!out.status.success(), "prune is refused on a damaged index");
    assert!(stderr(&out).contains("refusing to prune") && stderr(&out).contains("repositories.json"), "{}", stderr(&out));
    assert!(t.run(["image", "inspect", &id]).status.success(), "the image is still there");

    // Pure garbage: the image is listed untagged, and `tag` rebuilds the index.
    std::fs::write(&index, b"\0\0garbage{").unwrap();
    let out = t.run(["image", "ls", "-q", "--no-trunc"]);
    assert!(out.status.success() && stdout(&out).contains(&id), "{} {}", stdout(&out), stderr(&out));
    t.ok(["image", "tag", &id, "secfin/box:v2"]);
    let rebuilt: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
    assert!(rebuilt.get("docker.io/secfin/box:v2").is_some(), "{rebuilt}");
    assert!(t.root().join("images/repositories.json.damaged").is_file(), "the damaged file is kept aside");
    let out = t.run(["image", "ls"]);
    assert!(out.status.success() && !stderr(&out).contains("damaged"), "no warning once rebuilt: {}", stderr(&out));
    let out = t.run(["image", "prune", "-f"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(t.run(["image", "inspect", &id]).status.success(), "a tagged image survives prune");
}

fn bridge_of(t: &TestRoot, name: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.root().join("networks").join(name).join("network.json")).unwrap()).unwrap();
    v["bridge"].as_str().unwrap().to_string()
}

fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Item 10: a damaged `network.json` made `network ls` fail for the whole root (and every
/// command that lists networks: `up`, `down` of any project). Now the others are listed, the
/// damaged one is shown by name with a warning naming the file, and `network rm` and `down`
/// remove it with its bridge. Checked failing before the fix: `network ls` exited 1.
#[test]
fn a_damaged_network_record_is_listed_and_removed_by_rm_and_down() {
    common::require_root!();
    let yaml = "services:\n  web:\n    image: busybox\n    command: sleep 1000\n    init: true\nnetworks:\n  default:\n    ipam:\n      config:\n        - subnet: 10.227.2.0/24\n";
    let s = common::compose::Stack::in_root(root(), "secfin-dn", yaml);
    let t = &s.t;
    t.ok(["network", "create", "--subnet", "10.227.1.0/24", "secfin-a"]);
    t.ok(["network", "create", "--subnet", "10.227.3.0/24", "secfin-b"]);
    let bridge_a = bridge_of(t, "secfin-a");
    assert!(link_exists(&bridge_a));
    std::fs::write(t.root().join("networks/secfin-a/network.json"), b"{\"name\": \"secfin-a\", \"id\": \"12").unwrap();

    let out = t.run(["network", "ls", "--format", "{{.Name}}"]);
    assert!(out.status.success(), "network ls works: {}", stderr(&out));
    let names = stdout(&out);
    assert!(names.lines().any(|l| l == "secfin-b") && names.lines().any(|l| l == "secfin-a"), "{names}");
    assert!(stderr(&out).contains("secfin-a") && stderr(&out).contains("network.json"), "{}", stderr(&out));
    // A project command is not blocked by another network's damage.
    s.ok(["up", "-d"]);
    t.ok(["network", "rm", "secfin-a"]);
    assert!(!link_exists(&bridge_a), "the damaged network's bridge is gone");
    assert!(!t.root().join("networks/secfin-a").exists());
    assert!(t.run(["network", "inspect", "secfin-b"]).status.success());

    // `down` removes the project's network even when its record is damaged.
    let bridge_d = bridge_of(t, "secfin-dn_default");
    std::fs::write(t.root().join("networks/secfin-dn_default/network.json"), b"garbage").unwrap();
    s.ok(["down", "-t", "0"]);
    assert!(!t.root().join("networks/secfin-dn_default").exists(), "down removed the damaged network");
    assert!(!link_exists(&bridge_d), "and its bridge");
    t.ok(["network", "rm", "secfin-b"]);
    let out = t.run(["network", "ls"]);
    assert!(out.status.success() && stderr(&out).is_empty(), "{}", stderr(&out));
}

/// Gone, or a zombie about to be reaped.
fn process_gone(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(st) => st.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// Item 10: `berth system prune` removes what Docker's does (stopped containers, unused
/// networks, dangling images) and the damaged containers too: a running container whose
/// `config.json` was truncated is found by its id and removed with its processes. A running
/// container, a used network and a named volume stay. Checked failing before: there was no
/// `system prune` (exit 2, unrecognized subcommand).
#[test]
fn system_prune_removes_stopped_and_damaged_containers_and_unused_networks() {
    common::require_root!();
    let yaml = "services:\n  web:\n    image: busybox\n    command: sleep 1000\n    init: true\n  dmg:\n    image: busybox\n    command: sleep 1000\n    init: true\n  job:\n    image: busybox\n    command: 'true'\nnetworks:\n  default:\n    ipam:\n      config:\n        - subnet: 10.227.4.0/24\n";
    let s = common::compose::Stack::in_root(root(), "secfin-sp", yaml);
    let t = &s.t;
    s.ok(["up", "-d"]);
    common::compose::wait_until(std::time::Duration::from_secs(10), "job exits", || s.status("secfin-sp-job-1") == "exited");
    t.ok(["network", "create", "--subnet", "10.227.5.0/24", "secfin-unused"]);
    t.ok(["volume", "create", "secfin-keep"]);
    let job = s.id("secfin-sp-job-1");
    let dmg = s.id("secfin-sp-dmg-1");
    let web = s.id("secfin-sp-web-1");
    let pid = s.inspect("secfin-sp-dmg-1").unwrap()["State"]["Pid"].as_i64().unwrap();
    assert!(pid > 0 && !process_gone(pid));
    let cfg = t.root().join("containers").join(&dmg).join("config.json");
    let b = std::fs::read(&cfg).unwrap();
    std::fs::write(&cfg, &b[..b.len() / 2]).unwrap();

    let out = t.run(["system", "prune", "-f", "--volumes"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(text.contains("Deleted Containers:") && text.contains(&job) && text.contains(&dmg), "{text}");
    assert!(!text.contains(&web), "a running container stays: {text}");
    assert!(text.contains("Deleted Networks:\nsecfin-unused"), "{text}");
    assert!(!text.contains("secfin-sp_default"), "a used network stays: {text}");
    assert!(text.contains("Total reclaimed space: "), "{text}");
    assert!(!t.root().join("containers").join(&dmg).exists() && !t.root().join("containers").join(&job).exists());
    common::compose::wait_until(std::time::Duration::from_secs(10), "the damaged container's process ends", || process_gone(pid));
    assert_eq!(s.status("secfin-sp-web-1"), "running");
    assert!(t.run(["volume", "inspect", "secfin-keep"]).status.success(), "a named volume stays");
    assert!(t.run(["image", "inspect", "busybox"]).status.success(), "a tagged image stays");
    s.ok(["down", "-t", "0"]);
}
