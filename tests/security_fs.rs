//! Hostile images (items 5, 6, 9, 11 and 15 of the security issue): each test builds the attack
//! as an image (a tarball given to `image import`, or an archive given to `image load`), runs it
//! as a user would, and checks that it is refused and that nothing of the host leaked or changed.
//! Every state root is under /tmp/berth-secfs-* and torn down on drop; projects are `secfs*` and
//! use `network_mode: none` (no network, no subnet).
mod common;

use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::TestRoot;

/// A state root of ours, and a project folder in it.
struct Secfs {
    t: TestRoot,
    dir: PathBuf,
    project: String,
}

impl Secfs {
    fn new(project: &str) -> Secfs {
        common::expect_root();
        let t = TestRoot::with_prefix("berth-secfs-");
        let dir = t.scratch().join(project);
        std::fs::create_dir_all(&dir).unwrap();
        Secfs { t, dir, project: project.to_string() }
    }

    /// Imports the busybox rootfs, changed by `edit` (the hostile part), as `name`.
    fn import(&self, name: &str, edit: impl FnOnce(&Path), changes: &[&str]) {
        let rootfs = self.t.scratch().join(format!("rootfs-{}", name.replace(['/', ':'], "-")));
        common::make_busybox_rootfs(&rootfs);
        edit(&rootfs);
        let tar = rootfs.with_extension("tar");
        let mut b = tar::Builder::new(std::fs::File::create(&tar).unwrap());
        b.follow_symlinks(false);
        b.append_dir_all(".", &rootfs).unwrap();
        b.finish().unwrap();
        let mut args = vec!["image".to_string(), "import".into(), tar.display().to_string(), name.into()];
        for c in changes {
            args.extend(["--change".to_string(), c.to_string()]);
        }
        self.t.ok(&args);
    }

    fn compose(&self, yaml: &str) {
        std::fs::write(self.dir.join("compose.yaml"), yaml).unwrap();
    }

    /// `berth -p <project> ARGS` in the project folder.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.t.cmd(["-p", self.project.as_str()]);
        c.args(args).current_dir(&self.dir);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run berth")
    }
}

impl Drop for Secfs {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v", "-t", "0"]);
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Every file under `dir` whose content contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(md) = std::fs::symlink_metadata(&p) else { continue };
        if md.is_dir() {
            out.extend(files_containing(&p, needle));
        } else if md.is_file() {
            if let Ok(b) = std::fs::read(&p) {
                if b.windows(needle.len()).any(|w| w == needle) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// Item 5, first half: `/data -> /proc` in the image and a bind of a user folder on /data. The
/// folder must not become the container's /proc (where berth writes sysctls: a FIFO there hung
/// `up`). Before the fix `up` succeeded and wrote `sys/net/ipv4/ip_unprivileged_port_start` into
/// the user's folder.
#[test]
fn an_image_symlink_cannot_turn_a_bind_into_proc() {
    common::require_root!();
    let s = Secfs::new("secfs-procbind");
    s.import("secfs/procbind:latest", |r| symlink("/proc", r.join("data")).unwrap(), &[]);
    let user = s.dir.join("user");
    std::fs::create_dir_all(user.join("sys/net/ipv4")).unwrap();
    std::fs::create_dir_all(user.join("sys/net/core")).unwrap();
    s.compose("services:\n  app:\n    image: secfs/procbind:latest\n    network_mode: none\n    command: [sleep, '60']\n    volumes: [./user:/data]\n");
    let o = s.run(&["up", "-d"]);
    let out = text(&o);
    assert!(!o.status.success(), "up must refuse the mount: {out}");
    assert!(
        out.contains("/data") && out.contains("/proc") && out.contains("app"),
        "the error names the service, the target and /proc: {out}"
    );
    let written: Vec<_> = std::fs::read_dir(user.join("sys/net/ipv4")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(written.is_empty(), "berth wrote sysctls into the user's folder: {written:?}");
}

/// Item 5, second half: `/data -> /proc/self` and `VOLUME /data`. The anonymous volume must not
/// be filled from procfs: before the fix it held the container init's environ, that is the host
/// CLI's environment (a secret given to `berth up` only).
#[test]
fn an_image_symlink_cannot_fill_a_volume_from_proc() {
    common::require_root!();
    let s = Secfs::new("secfs-procvol");
    s.import("secfs/procvol:latest", |r| symlink("/proc/self", r.join("data")).unwrap(), &["VOLUME /data"]);
    s.compose("services:\n  app:\n    image: secfs/procvol:latest\n    network_mode: none\n    command: [sleep, '60']\n");
    let secret = "secfs-host-secret-5a1b7";
    let o = s.cmd(&["up", "-d"]).env("SECFS_TOKEN", secret).output().unwrap();
    let out = text(&o);
    let leaked = files_containing(&s.t.root().join("volumes"), secret.as_bytes());
    assert!(leaked.is_empty(), "the host CLI's environment was copied into a volume: {leaked:?}");
    assert!(!o.status.success(), "up must refuse the volume on a target in /proc: {out}");
    assert!(out.contains("/data") && out.contains("resolves into /proc"), "{out}");
}

/// The same rule for a symlink onto the container's root and for a tmpfs: refused, by fd.
#[test]
fn mount_targets_resolving_to_root_or_proc_are_refused() {
    common::require_root!();
    let s = Secfs::new("secfs-roottarget");
    s.import(
        "secfs/links:latest",
        |r| {
            symlink("/", r.join("top")).unwrap();
            symlink("../proc/sys", r.join("psys")).unwrap();
        },
        &[],
    );
    s.compose("services:\n  app:\n    image: secfs/links:latest\n    network_mode: none\n    command: [sleep, '60']\n    volumes: [./user:/top]\n");
    std::fs::create_dir_all(s.dir.join("user")).unwrap();
    let o = s.run(&["up", "-d"]);
    assert!(!o.status.success() && text(&o).contains("container's root"), "{}", text(&o));
    s.run(&["down", "-t", "0"]);
    s.compose("services:\n  app:\n    image: secfs/links:latest\n    network_mode: none\n    command: [sleep, '60']\n    tmpfs: [/psys]\n");
    let o = s.run(&["up", "-d"]);
    assert!(!o.status.success() && text(&o).contains("into /proc"), "{}", text(&o));
}

/// Item 6: `/etc/passwd -> /proc/self/environ` let a variable of the host CLI's environment
/// define the container's user (before the fix, `user: evil` ran as uid 4242 from the line
/// smuggled in by the environment). It is now read only as a regular file inside the root.
#[test]
fn passwd_is_never_read_through_a_symlink_into_proc() {
    common::require_root!();
    let s = Secfs::new("secfs-passwd");
    s.import(
        "secfs/passwd:latest",
        |r| {
            std::fs::remove_file(r.join("etc/passwd")).unwrap();
            symlink("/proc/self/environ", r.join("etc/passwd")).unwrap();
        },
        &[],
    );
    s.compose("services:\n  app:\n    image: secfs/passwd:latest\n    network_mode: none\n    user: evil\n    command: [id, -u]\n");
    let o = s.cmd(&["up", "-d"]).env("SECFS_SMUGGLE", "\nevil:x:4242:4242::/:/bin/sh\n").output().unwrap();
    let out = text(&o);
    let logs = text(&s.run(&["logs", "app"]));
    assert!(!logs.contains("4242"), "the user came from the host CLI's environment: {out}\n{logs}");
    assert!(!o.status.success() && out.contains("unable to find user evil"), "{out}\n{logs}");
}

/// A docker-archive (what `docker save` writes) with one layer and the config `config`.
fn archive_with_config(dir: &Path, name: &str, mut config: serde_json::Value) -> PathBuf {
    let layer = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "hello", &b"hi"[..]).unwrap();
        b.into_inner().unwrap()
    };
    let diff = common::registry::digest_of(&layer);
    config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": [diff]});
    config["os"] = "linux".into();
    config["architecture"] = "amd64".into();
    let cfg = serde_json::to_vec(&config).unwrap();
    let manifest = serde_json::json!([{"Config": "config.json", "RepoTags": [name], "Layers": ["layer.tar"]}]);
    let path = dir.join(format!("{}.tar", name.replace(['/', ':'], "-")));
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
    for (n, data) in [("config.json", cfg), ("layer.tar", layer), ("manifest.json", serde_json::to_vec(&manifest).unwrap())] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, n, &data[..]).unwrap();
    }
    b.finish().unwrap();
    path
}

/// Item 9: one set of caps on image configs for every way in. Before the fix `image load`
/// accepted 100 000 env entries, 10 000 labels and a 20 MiB config, and `image import` 5 000
/// env entries.
#[test]
fn image_config_caps_hold_for_load_and_import() {
    common::require_root!();
    let t = TestRoot::with_prefix("berth-secfs-");
    let dir = t.scratch();
    let env: Vec<String> = (0..100_000).map(|i| format!("V{i}=1")).collect();
    let labels: serde_json::Map<String, serde_json::Value> = (0..10_000).map(|i| (format!("l{i}"), "x".into())).collect();
    let cases = [
        ("secfs/env:1", serde_json::json!({"config": {"Env": env}}), "Env entries"),
        ("secfs/labels:1", serde_json::json!({"config": {"Labels": labels}}), "Labels"),
        ("secfs/huge:1", serde_json::json!({"config": {}, "comment": "x".repeat(20 << 20)}), "bytes"),
    ];
    for (name, cfg, what) in cases {
        let a = archive_with_config(&dir, name, cfg);
        let o = t.run(["image", "load", "-i", a.to_str().unwrap()]);
        let out = text(&o);
        assert!(!o.status.success(), "{name} was loaded: {out}");
        assert!(out.contains(what) && (out.contains("limit") || out.contains("larger than 16777216")), "{name}: {out}");
        // The cap's own error, naming the image, for the size too (sec-finish).
        assert!(out.contains(name) && out.contains("over berth's limit"), "{name}: {out}");
        assert!(!t.ok(["image", "ls"]).contains(name.split(':').next().unwrap()), "{name} is listed");
    }
    // A config within the caps loads.
    let a = archive_with_config(&dir, "secfs/fine:1", serde_json::json!({"config": {"Env": ["A=1"], "Labels": {"a": "b"}}}));
    t.ok(["image", "load", "-i", a.to_str().unwrap()]);
    // Import: the same caps on the config its changes make.
    let tar = dir.join("busybox.tar");
    common::make_busybox_tar(&tar);
    let mut args: Vec<String> = vec!["image".into(), "import".into(), tar.display().to_string(), "secfs/importenv:1".into()];
    for i in 0..5000 {
        args.extend(["--change".into(), format!("ENV V{i}=1")]);
    }
    let o = t.run(&args);
    let out = text(&o);
    assert!(!o.status.success() && out.contains("secfs/importenv") && out.contains("Env entries"), "{out}");
    let layers = std::fs::read_dir(t.root().join("images/layers")).unwrap().count();
    assert_eq!(layers, 1, "a refused import left a layer (only the loaded image's is expected)");
}

/// Item 11: a layer whose files were deleted. Before the fix `image ls` and `inspect` said
/// nothing, `up` failed deep in the overlay mount, and loading the image again did not unpack it
/// again. Now the image is reported damaged everywhere, and `load` (as pull and import) repairs it.
#[test]
fn a_damaged_layer_is_reported_and_load_repairs_it() {
    common::require_root!();
    let s = Secfs::new("secfs-damaged");
    s.import("secfs/box:latest", |_| {}, &[r#"CMD ["sh"]"#]);
    let saved = s.t.scratch().join("saved.tar");
    s.t.ok(["image", "save", "-o", saved.to_str().unwrap(), "secfs/box:latest"]);
    let layers = s.t.root().join("images/layers");
    let chain = std::fs::read_dir(&layers).unwrap().flatten().next().expect("one layer").path();
    std::fs::remove_dir_all(chain.join("diff")).unwrap();

    let ls = s.t.run(["image", "ls"]);
    assert!(String::from_utf8_lossy(&ls.stderr).contains("damaged"), "image ls: {}", text(&ls));
    assert!(String::from_utf8_lossy(&ls.stdout).contains("secfs/box"), "a damaged image is still listed: {}", text(&ls));
    let doc: serde_json::Value = serde_json::from_str(&s.t.ok(["image", "inspect", "secfs/box"])).unwrap();
    assert!(doc[0]["Damaged"].as_str().unwrap_or("").contains("damaged"), "{doc}");

    s.compose("services:\n  app:\n    image: secfs/box:latest\n    network_mode: none\n    command: [echo, repaired]\n");
    let o = s.run(&["up"]);
    assert!(!o.status.success() && text(&o).contains("damaged") && text(&o).contains("secfs/box"), "{}", text(&o));
    s.run(&["down", "-t", "0"]);

    s.t.ok(["image", "load", "-i", saved.to_str().unwrap()]);
    assert!(chain.join("diff/bin/busybox").is_file(), "load unpacked the layer again");
    let ls = s.t.run(["image", "ls"]);
    assert!(!String::from_utf8_lossy(&ls.stderr).contains("damaged"), "{}", text(&ls));
    let o = s.run(&["up"]);
    assert!(o.status.success() && text(&o).contains("repaired"), "{}", text(&o));
}

/// Whether this process may raise hard limits (CAP_SYS_RESOURCE, which some sandboxes drop).
fn may_raise_limits() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).map(|v| u64::from_str_radix(v.trim(), 16).unwrap()).unwrap();
    eff & (1 << 24) != 0 // CAP_SYS_RESOURCE
}

/// Item 15: no dangling /dev/core where the host has no /proc/kcore, and the documented open
/// file limit (1024 soft, 524288 hard) whatever the limits of the shell that runs berth. Where
/// berth may not raise a hard limit (no CAP_SYS_RESOURCE), the shell's hard limit caps both.
#[test]
fn dev_core_and_nofile_defaults() {
    common::require_root!();
    let s = Secfs::new("secfs-defaults");
    s.import("secfs/box:latest", |_| {}, &[]);
    s.compose(
        "services:\n  app:\n    image: secfs/box:latest\n    network_mode: none\n    command: [sh, -c, 'ls -l /dev/core 2>&1; echo nofile=$(ulimit -Sn):$(ulimit -Hn)']\n",
    );
    // Lower than the default, higher (as high as this process may go), and the default.
    let high = if may_raise_limits() { 1_048_576 } else { hard_of_this_process() };
    for (soft, hard) in [(64u64, 128u64), (high, high), (1024, 524_288.min(high))] {
        let mut c = s.cmd(&["up"]);
        // SAFETY (test): setrlimit only, in the child between fork and exec.
        unsafe {
            c.pre_exec(move || {
                let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let o = c.output().unwrap();
        let out = text(&o);
        assert!(o.status.success(), "shell limits {soft}:{hard}: {out}");
        let (want_soft, want_hard) = if may_raise_limits() { (1024, 524_288) } else { (1024.min(hard), 524_288.min(hard)) };
        assert!(out.contains(&format!("nofile={want_soft}:{want_hard}")), "shell limits {soft}:{hard}: {out}");
        if !Path::new("/proc/kcore").exists() {
            assert!(out.contains("No such file"), "a dangling /dev/core: {out}");
        } else {
            assert!(out.contains("/dev/core -> /proc/kcore"), "{out}");
        }
        s.run(&["down", "-t", "0"]);
    }
    // `exec` gets the same limit.
    s.compose("services:\n  app:\n    image: secfs/box:latest\n    network_mode: none\n    command: [sleep, '60']\n");
    s.run(&["up", "-d"]);
    let mut c = s.cmd(&["exec", "-T", "app", "sh", "-c", "echo nofile=$(ulimit -Sn):$(ulimit -Hn)"]);
    // SAFETY (test): as above.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: 100, rlim_max: 100 };
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            Ok(())
        });
    }
    let o = c.output().unwrap();
    // The exec'd process is set to the same default (from the `exec` command's own limits,
    // which without CAP_SYS_RESOURCE cap it).
    let want = if may_raise_limits() { "nofile=1024:524288" } else { "nofile=100:100" };
    assert!(text(&o).contains(want), "{want}: {}", text(&o));
}

fn hard_of_this_process() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY (test): getrlimit writes one rlimit.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    lim.rlim_max
}

/// Items 9 and 11 through a registry (127.0.0.1): a pull refuses a config over the caps before
/// any layer is fetched, and a pull of an image whose layer files were deleted unpacks them again
/// (before the fix it answered "up to date" and left the image broken).
#[test]
fn pull_applies_the_config_caps_and_repairs_a_damaged_layer() {
    common::require_root!();
    use common::registry::{Auth, Registry, digest_of, gzip, push_raw, put_manifest, tar_of, upload_blob};
    let reg = Registry::start(Auth::None);
    let t = TestRoot::with_prefix("berth-secfs-");
    let cfg = t.scratch().join("docker-config");
    std::fs::create_dir_all(&cfg).unwrap();
    let pull = |r: &str| t.cmd(["image", "pull", r]).env("DOCKER_CONFIG", &cfg).output().unwrap();

    let layer = tar_of(&[("file", b"the content")]);
    let gz = gzip(&layer);
    push_raw(&reg, "secfs/ok", "1", "amd64", &[("application/vnd.oci.image.layer.v1.tar+gzip", gz)], &[digest_of(&layer)]);
    let r = format!("{}/secfs/ok:1", reg.host());
    let o = pull(&r);
    assert!(o.status.success(), "{}", text(&o));
    let layers = t.root().join("images/layers");
    let chain = std::fs::read_dir(&layers).unwrap().flatten().next().expect("one layer").path();
    std::fs::remove_dir_all(chain.join("diff")).unwrap();
    assert!(String::from_utf8_lossy(&t.run(["image", "ls"]).stderr).contains("damaged"));
    let o = pull(&r);
    assert!(o.status.success(), "{}", text(&o));
    // What Docker prints when a layer is pulled, not "up to date" (sec-finish).
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Pull complete") && out.contains("Status: Downloaded newer image for"), "{out}");
    assert_eq!(std::fs::read(chain.join("diff/file")).unwrap(), b"the content", "the pull unpacked the layer again");
    assert!(!String::from_utf8_lossy(&t.run(["image", "ls"]).stderr).contains("damaged"));

    // A config with 5000 env entries: refused, naming the image; its layer is never fetched.
    let big_layer = tar_of(&[("other", b"never fetched")]);
    let big_gz = gzip(&big_layer);
    let env: Vec<String> = (0..5000).map(|i| format!("V{i}=1")).collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Env": env},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(&big_layer)]},
    })
    .to_string();
    let cfg_digest = upload_blob(&reg, "secfs/env", config.as_bytes());
    let layer_digest = upload_blob(&reg, "secfs/env", &big_gz);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": big_gz.len()}],
    })
    .to_string();
    put_manifest(&reg, "secfs/env", "1", "application/vnd.oci.image.manifest.v1+json", manifest.as_bytes());
    let o = pull(&format!("{}/secfs/env:1", reg.host()));
    let out = text(&o);
    assert!(!o.status.success() && out.contains("secfs/env") && out.contains("Env entries"), "{out}");
    assert!(!t.root().join("images/blobs/sha256").join(&layer_digest[7..]).exists(), "the layer was fetched");
}
