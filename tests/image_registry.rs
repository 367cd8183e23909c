//! Pull and push against real registries on loopback: Debian's docker-registry, open, with
//! htpasswd basic auth, and behind the harness's token server. No internet.
mod common;

use std::path::Path;
use std::process::Output;

use common::TestRoot;
use common::registry::*;

/// `berth ARGS` in `root` with Docker's client config in `cfg`.
fn berth(root: &TestRoot, cfg: &Path, args: &[&str]) -> Output {
    root.cmd(args).env("DOCKER_CONFIG", cfg).output().expect("run berth")
}

fn ok(root: &TestRoot, cfg: &Path, args: &[&str]) -> String {
    let out = berth(root, cfg, args);
    assert!(
        out.status.success(),
        "berth {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn login(root: &TestRoot, cfg: &Path, host: &str, user: &str, password: &str) -> Output {
    use std::io::Write;
    let mut child = root
        .cmd(["login", host, "-u", user, "--password-stdin"])
        .env("DOCKER_CONFIG", cfg)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// Pushes the busybox image from a fresh root to `host/repo:tag`.
fn push_busybox(cfg: &Path, host: &str, repo: &str) -> String {
    let src = TestRoot::new();
    let id = busybox_image(&src);
    let target = format!("{host}/{repo}");
    ok(&src, cfg, &["image", "tag", "busybox", &target]);
    let out = ok(&src, cfg, &["--progress", "plain", "image", "push", &target]);
    assert!(out.contains("Pushed"), "{out}");
    id
}

fn layer_dir(root: &TestRoot, cfg: &Path, image: &str) -> String {
    ok(root, cfg, &["image", "inspect", "-f", "{{.GraphDriver.Data.LowerDir}}", image]).trim().to_string()
}

#[test]
fn htpasswd_registry_pull_by_tag_and_digest_and_a_second_pull_downloads_nothing() {
    common::require_root!();
    let reg = Registry::start(Auth::Htpasswd { user: "alice".into(), password: "s3cret".into() });
    let cfgdir = tempfile::tempdir().unwrap();
    let cfg = cfgdir.path();
    let host = reg.host();
    let root = TestRoot::new();

    // Without credentials: a clear message that says to log in.
    let out = berth(&root, cfg, &["image", "pull", &format!("{host}/test/busybox:1")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("berth login {host}")), "{err}");
    // A wrong password is refused at login, and nothing is written.
    let out = login(&root, cfg, &host, "alice", "wrong");
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(!cfg.join("config.json").exists());
    let out = login(&root, cfg, &host, "alice", "s3cret");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"));

    let id = push_busybox(cfg, &host, "test/busybox:1");
    let reference = format!("{host}/test/busybox:1");
    let out = ok(&root, cfg, &["--progress", "plain", "image", "pull", &reference]);
    assert!(out.contains("Pull complete") && out.contains("Downloaded newer image"), "{out}");
    let images = ok(&root, cfg, &["image", "ls"]);
    assert!(images.contains(&format!("{host}/test/busybox")) && images.contains(&id.trim_start_matches("sha256:")[..12]), "{images}");
    let lower = layer_dir(&root, cfg, &reference);
    assert!(Path::new(&lower).join("bin/busybox").is_file(), "{lower}");

    // Again: no blob is downloaded.
    let gets = reg.blob_gets();
    let out = ok(&root, cfg, &["--progress", "plain", "image", "pull", &reference]);
    assert!(out.contains("Already exists") && out.contains("Image is up to date"), "{out}");
    assert_eq!(reg.blob_gets(), gets, "the second pull downloaded blobs");

    // By digest, into another root.
    let digest = out.lines().find_map(|l| l.strip_prefix("Digest: ")).unwrap().to_string();
    let other = TestRoot::new();
    let by_digest = format!("{host}/test/busybox@{digest}");
    ok(&other, cfg, &["image", "pull", &by_digest]);
    let inspect = ok(&other, cfg, &["image", "inspect", "-f", "{{.Id}} {{json .RepoDigests}}", &by_digest]);
    assert!(inspect.starts_with(&id) && inspect.contains(&digest), "{inspect}");

    // Logout forgets the credentials.
    let out = ok(&root, cfg, &["logout", &host]);
    assert!(out.contains("Removing login credentials"), "{out}");
}

#[test]
fn token_server_registry_bearer_challenge_with_scope() {
    common::require_root!();
    let reg = Registry::start(Auth::Token { user: "bob".into(), password: "pw".into() });
    let cfgdir = tempfile::tempdir().unwrap();
    let cfg = cfgdir.path();
    let host = reg.host();
    let root = TestRoot::new();
    let out = login(&root, cfg, &host, "bob", "pw");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = push_busybox(cfg, &host, "team/app:v1");
    ok(&root, cfg, &["image", "pull", &format!("{host}/team/app:v1")]);
    assert!(ok(&root, cfg, &["image", "ls", "-q"]).contains(&id.trim_start_matches("sha256:")[..12]));

    // Anonymous: the token grants nothing, and the error says to log in.
    let anon = tempfile::tempdir().unwrap();
    let fresh = TestRoot::new();
    let out = berth(&fresh, anon.path(), &["image", "pull", &format!("{host}/team/app:v1")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("berth login"), "{err}");
}

#[test]
fn a_multi_arch_index_gives_amd64_or_the_platform_asked() {
    common::require_root!();
    let reg = Registry::start(Auth::None);
    let host = reg.host();
    let amd = tar_of(&[("arch", b"amd64")]);
    let arm = tar_of(&[("arch", b"arm64")]);
    let m_amd =
        push_raw(&reg, "multi", "amd64", "amd64", &[("application/vnd.oci.image.layer.v1.tar+gzip", gzip(&amd))], &[digest_of(&amd)]);
    let m_arm =
        push_raw(&reg, "multi", "arm64", "arm64", &[("application/vnd.oci.image.layer.v1.tar+gzip", gzip(&arm))], &[digest_of(&arm)]);
    let size = |tag: &str| {
        http("GET", &reg.url(&format!("/v2/multi/manifests/{tag}")), &[("Accept", "application/vnd.oci.image.manifest.v1+json")], b"")
            .2
            .len()
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m_arm, "size": size("arm64"), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m_amd, "size": size("amd64"), "platform": {"os": "linux", "architecture": "amd64"}},
        ]
    });
    put_manifest(&reg, "multi", "latest", "application/vnd.oci.image.index.v1+json", index.to_string().as_bytes());
    let cfg = tempfile::tempdir().unwrap();
    let root = TestRoot::new();
    let reference = format!("{host}/multi:latest");
    ok(&root, cfg.path(), &["image", "pull", "--platform", "linux/amd64", &reference]);
    let lower = layer_dir(&root, cfg.path(), &reference);
    assert_eq!(std::fs::read(Path::new(&lower).join("arch")).unwrap(), b"amd64");
    ok(&root, cfg.path(), &["image", "pull", "--platform", "linux/arm64", &reference]);
    let lower = layer_dir(&root, cfg.path(), &reference);
    assert_eq!(std::fs::read(Path::new(&lower).join("arch")).unwrap(), b"arm64");
    let out = berth(&root, cfg.path(), &["image", "pull", "--platform", "linux/s390x", &reference]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("linux/amd64"), "{}", String::from_utf8_lossy(&out.stderr));
    if std::env::consts::ARCH == "x86_64" {
        let fresh = TestRoot::new();
        ok(&fresh, cfg.path(), &["image", "pull", &reference]);
        let lower = layer_dir(&fresh, cfg.path(), &reference);
        assert_eq!(std::fs::read(Path::new(&lower).join("arch")).unwrap(), b"amd64");
    }
}

fn assert_nothing_stored(root: &TestRoot) {
    let images = root.root().join("images");
    for sub in ["blobs/sha256", "layers", "records", "l"] {
        let n = std::fs::read_dir(images.join(sub)).map(|d| d.count()).unwrap_or(0);
        assert_eq!(n, 0, "images/{sub} is not empty after a refused pull");
    }
}

#[test]
fn a_layer_whose_digest_does_not_match_is_refused_and_nothing_is_stored() {
    common::require_root!();
    let reg = Registry::start(Auth::None);
    let layer = tar_of(&[("file", b"the real content")]);
    let gz = gzip(&layer);
    let blob = digest_of(&gz);
    push_raw(&reg, "bad", "1", "amd64", &[("application/vnd.oci.image.layer.v1.tar+gzip", gz.clone())], &[digest_of(&layer)]);
    // The registry now serves other bytes under that digest.
    let evil = gzip(&tar_of(&[("file", b"something else!!")]));
    std::fs::write(reg.blob_file(&blob), &evil).unwrap();
    let cfg = tempfile::tempdir().unwrap();
    let root = TestRoot::new();
    let out = berth(&root, cfg.path(), &["image", "pull", &format!("{}/bad:1", reg.host())]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("digest") && err.contains(&blob), "{err}");
    assert_nothing_stored(&root);
}

#[test]
fn a_truncated_gzip_layer_is_refused() {
    common::require_root!();
    let reg = Registry::start(Auth::None);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    let layer = tar_of(&[("data", &data)]);
    let gz = gzip(&layer);
    let cut = gz[..gz.len() / 2].to_vec();
    push_raw(&reg, "trunc", "1", "amd64", &[("application/vnd.oci.image.layer.v1.tar+gzip", cut)], &[digest_of(&layer)]);
    let cfg = tempfile::tempdir().unwrap();
    let root = TestRoot::new();
    let out = berth(&root, cfg.path(), &["image", "pull", &format!("{}/trunc:1", reg.host())]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("truncated") || err.contains("unreadable"), "{err}");
    assert_nothing_stored(&root);
}

#[test]
fn a_blob_redirect_to_another_host_carries_no_credentials() {
    common::require_root!();
    let reg = Registry::start(Auth::Htpasswd { user: "carol".into(), password: "pw".into() });
    let front = RedirectFront::start(&reg, Some(("carol", "pw")));
    let cfgdir = tempfile::tempdir().unwrap();
    let cfg = cfgdir.path();
    let root = TestRoot::new();
    let out = login(&root, cfg, &reg.host(), "carol", "pw");
    assert!(out.status.success());
    let out = login(&root, cfg, &front.host(), "carol", "pw");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    push_busybox(cfg, &reg.host(), "redir/busybox:1");
    ok(&root, cfg, &["image", "pull", &format!("{}/redir/busybox:1", front.host())]);
    let seen = front.blob_auth_seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the pull never reached the redirect target");
    assert!(seen.iter().all(|a| a.is_none()), "credentials were sent to another host: {seen:?}");
}

#[test]
fn a_pull_killed_mid_layer_completes_when_run_again() {
    common::require_root!();
    let reg = Registry::start(Auth::None);
    let front = RedirectFront::start(&reg, None);
    let cfg = tempfile::tempdir().unwrap();
    push_busybox(cfg.path(), &reg.host(), "slow/busybox:1");
    let root = TestRoot::new();
    let reference = format!("{}/slow/busybox:1", front.host());
    // 32 KiB per 100 ms: the ~1 MB compressed... (busybox is stored uncompressed, ~2 MB) takes seconds.
    front.throttle.store(32 << 10, std::sync::atomic::Ordering::SeqCst);
    let mut child = root
        .cmd(["image", "pull", &reference])
        .env("DOCKER_CONFIG", cfg.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the layer is being written, then kill.
    let tmp = root.root().join("images/tmp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let busy = std::fs::read_dir(&tmp).map(|d| d.count() > 0).unwrap_or(false);
        if busy || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(root.ok(["image", "ls", "-q"]).trim().is_empty(), "a killed pull left an image");
    assert_eq!(std::fs::read_dir(root.root().join("images/layers")).unwrap().count(), 0, "a killed pull left a layer");

    front.throttle.store(0, std::sync::atomic::Ordering::SeqCst);
    ok(&root, cfg.path(), &["image", "pull", &reference]);
    let lower = layer_dir(&root, cfg.path(), &reference);
    let bb = std::fs::read(Path::new(&lower).join("bin/busybox")).unwrap();
    assert_eq!(bb, std::fs::read(common::host_busybox()).unwrap(), "the layer is not complete");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "leftovers of the killed pull remain");
}

#[test]
fn two_pulls_of_the_same_image_at_once_are_both_correct() {
    common::require_root!();
    let reg = Registry::start(Auth::None);
    let cfg = tempfile::tempdir().unwrap();
    let id = push_busybox(cfg.path(), &reg.host(), "same/busybox:1");
    let root = TestRoot::new();
    let reference = format!("{}/same/busybox:1", reg.host());
    let spawn = || {
        root.cmd(["image", "pull", &reference])
            .env("DOCKER_CONFIG", cfg.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for c in [a, b] {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(root.ok(["image", "ls", "-q"]).trim(), &id[7..19]);
    assert_eq!(std::fs::read_dir(root.root().join("images/layers")).unwrap().count(), 1);
    let lower = layer_dir(&root, cfg.path(), &reference);
    assert!(Path::new(&lower).join("bin/busybox").is_file());
}

#[test]
fn compose_pull_pulls_service_images_and_reports_failures() {
    common::require_root!();
    let reg = Registry::start(Auth::None);
    let cfg = tempfile::tempdir().unwrap();
    let id = push_busybox(cfg.path(), &reg.host(), "proj/busybox:1");
    let root = TestRoot::new();
    let dir = root.scratch().join("proj");
    std::fs::create_dir_all(&dir).unwrap();
    let host = reg.host();
    std::fs::write(
        dir.join("compose.yaml"),
        format!("services:\n  web:\n    image: {host}/proj/busybox:1\n  db:\n    image: {host}/proj/missing:1\n  local:\n    image: {host}/proj/busybox:1\n    pull_policy: never\n"),
    )
    .unwrap();
    let compose = dir.join("compose.yaml");
    let f = compose.to_str().unwrap();
    let out = berth(&root, cfg.path(), &["-f", f, "pull"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("service db") && err.contains("proj/missing:1"), "{err}");
    let out = berth(&root, cfg.path(), &["-f", f, "pull", "--ignore-pull-failures"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("web Pulled") && err.contains("WARNING") && !err.contains("local Pull"), "{err}");
    assert_eq!(root.ok(["image", "ls", "-q"]).trim(), &id[7..19]);
    let out = berth(&root, cfg.path(), &["-f", f, "pull", "-q", "web"]);
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = berth(&root, cfg.path(), &["-f", f, "pull", "nosuch"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such service: nosuch"));
}

/// A fake `docker-credential-<name>` on a private PATH: Docker's helper protocol (the action as
/// the argument, the server URL or a JSON record on stdin), keeping records as files in `dir`
/// and logging each call to `dir/calls`.
fn fake_helper(dir: &Path, name: &str) {
    let script = format!(
        r#"#!/bin/sh
d='{d}'
in=$(cat)
case "$1" in
get)   echo "get $in" >>"$d/calls"; f="$d/$(echo "$in" | tr '/:' '__').json"
       if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
store) url=$(echo "$in" | sed -n 's/.*"ServerURL":"\([^"]*\)".*/\1/p'); echo "store $url" >>"$d/calls"
       echo "$in" >"$d/$(echo "$url" | tr '/:' '__').json" ;;
erase) echo "erase $in" >>"$d/calls"; rm -f "$d/$(echo "$in" | tr '/:' '__').json" ;;
*)     echo "unknown action $1" >&2; exit 2 ;;
esac
"#,
        d = dir.display()
    );
    let path = dir.join(format!("docker-credential-{name}"));
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn helper_record(dir: &Path, server: &str, user: &str, secret: &str) {
    let v = serde_json::json!({"ServerURL": server, "Username": user, "Secret": secret});
    std::fs::write(dir.join(format!("{}.json", server.replace(['/', ':'], "_"))), v.to_string()).unwrap();
}

fn with_path(mut cmd: std::process::Command, dir: &Path, cfg: &Path) -> std::process::Command {
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    cmd.env("PATH", path).env("DOCKER_CONFIG", cfg);
    cmd
}

fn run_ok(mut cmd: std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn creds_store_helper_serves_login_push_pull_and_logout() {
    common::require_root!();
    let reg = Registry::start(Auth::Htpasswd { user: "carol".into(), password: "h3lper".into() });
    let host = reg.host();
    let helpers = tempfile::tempdir().unwrap();
    fake_helper(helpers.path(), "fake");
    let cfgdir = tempfile::tempdir().unwrap();
    let cfg = cfgdir.path();
    std::fs::write(cfg.join("config.json"), r#"{"credsStore": "fake"}"#).unwrap();
    let root = TestRoot::new();

    // Login stores through the helper: no password in config.json, an empty auths entry.
    use std::io::Write;
    let mut child = with_path(root.cmd(["login", &host, "-u", "carol", "--password-stdin"]), helpers.path(), cfg)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"h3lper\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("unencrypted"), "{}", String::from_utf8_lossy(&out.stderr));
    let config = std::fs::read_to_string(cfg.join("config.json")).unwrap();
    assert!(!config.contains("h3lper") && !config.contains("\"auth\""), "{config}");
    let v: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(v["credsStore"], "fake");
    assert_eq!(v["auths"][&host], serde_json::json!({}), "{config}");
    let calls = std::fs::read_to_string(helpers.path().join("calls")).unwrap();
    assert!(calls.contains(&format!("store {host}")), "{calls}");

    // Push and pull get their credentials from the helper.
    let src = TestRoot::new();
    let id = busybox_image(&src);
    let target = format!("{host}/private/busybox:1");
    run_ok(with_path(src.cmd(["image", "tag", "busybox", &target]), helpers.path(), cfg));
    let out = run_ok(with_path(src.cmd(["--progress", "plain", "image", "push", &target]), helpers.path(), cfg));
    assert!(out.contains("Pushed"), "{out}");
    run_ok(with_path(root.cmd(["image", "pull", &target]), helpers.path(), cfg));
    assert!(run_ok(with_path(root.cmd(["image", "ls", "-q"]), helpers.path(), cfg)).contains(&id.trim_start_matches("sha256:")[..12]));
    let calls = std::fs::read_to_string(helpers.path().join("calls")).unwrap();
    assert!(calls.contains(&format!("get {host}")), "{calls}");

    // Logout erases from the helper; a pull then needs a login again.
    let out = run_ok(with_path(root.cmd(["logout", &host]), helpers.path(), cfg));
    assert!(out.contains("Removing login credentials"), "{out}");
    assert!(std::fs::read_to_string(helpers.path().join("calls")).unwrap().contains(&format!("erase {host}")));
    let out = with_path(TestRoot::new().cmd(["image", "pull", &target]), helpers.path(), cfg).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("berth login {host}")), "{}", String::from_utf8_lossy(&out.stderr));

    // A helper that is not installed is named in the error.
    std::fs::write(cfg.join("config.json"), r#"{"credsStore": "missing-helper"}"#).unwrap();
    let out = with_path(TestRoot::new().cmd(["image", "pull", &target]), helpers.path(), cfg).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("docker-credential-missing-helper") && err.contains("PATH"), "{err}");
}

#[test]
fn cred_helpers_per_registry_and_an_identity_token() {
    common::require_root!();
    let reg = Registry::start(Auth::Token { user: "dave".into(), password: "tok".into() });
    let host = reg.host();
    let helpers = tempfile::tempdir().unwrap();
    fake_helper(helpers.path(), "cloud");
    // The helper holds an identity token (username `<token>`) for this registry only.
    helper_record(helpers.path(), &host, "<token>", &identity_token("tok"));
    let cfgdir = tempfile::tempdir().unwrap();
    let cfg = cfgdir.path();
    std::fs::write(
        cfg.join("config.json"),
        serde_json::json!({"credHelpers": {host.clone(): "cloud"}, "auths": {host.clone(): {"auth": "d3Jvbmc6d3Jvbmc="}}}).to_string(),
    )
    .unwrap();

    let src = TestRoot::new();
    let id = busybox_image(&src);
    let target = format!("{host}/team/tokened:v1");
    run_ok(with_path(src.cmd(["image", "tag", "busybox", &target]), helpers.path(), cfg));
    run_ok(with_path(src.cmd(["--progress", "plain", "image", "push", &target]), helpers.path(), cfg));
    let root = TestRoot::new();
    run_ok(with_path(root.cmd(["image", "pull", &target]), helpers.path(), cfg));
    assert!(run_ok(with_path(root.cmd(["image", "ls", "-q"]), helpers.path(), cfg)).contains(&id.trim_start_matches("sha256:")[..12]));
    let calls = std::fs::read_to_string(helpers.path().join("calls")).unwrap();
    assert!(calls.contains(&format!("get {host}")), "{calls}");

    // A wrong identity token is refused with a clear message.
    helper_record(helpers.path(), &host, "<token>", "not-the-token");
    let out = with_path(TestRoot::new().cmd(["image", "pull", &target]), helpers.path(), cfg).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&host) && (err.contains("denied") || err.contains("login")), "{err}");
}
