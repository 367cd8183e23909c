//! `berth config`'s flags beyond the model, checked against what Docker Compose v2.40.3 prints
//! for the same project (recorded by hand with `docker compose config ...`).

use std::path::Path;
use std::process::{Command, Output};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent")
        .output()
        .expect("run berth")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A project with variables, an env file, relative paths and a volume; its folder is named
/// `flags` so that the project name is known.
fn project() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("flags");
    std::fs::create_dir(&p).unwrap();
    std::fs::write(
        p.join("compose.yaml"),
        "services:\n  web:\n    image: ${IMG:-busybox}:${TAG?tag needed}\n    build: ./ctx\n    env_file: [./web.env]\n    \
         environment:\n      A: ${A_VAL}\n      B:\n    volumes: [\"./data:/data\", \"vol:/v\"]\n    ports: [\"${PORT:-8080}:80\"]\n    \
         cpus: ${CPUS:-1}\n    depends_on: [db]\n  db:\n    image: postgres\n    command: echo $$HOME ${CMD:+set}\nvolumes:\n  vol: {}\n",
    )
    .unwrap();
    std::fs::write(p.join("web.env"), "W=1\n").unwrap();
    std::fs::write(p.join(".env"), "TAG=1.0\nA_VAL=x\n").unwrap();
    d
}

#[test]
fn variables_as_a_table_and_as_json() {
    let d = project();
    let dir = d.path().join("flags");
    assert_eq!(
        ok(&dir, &["config", "--variables"]),
        "NAME                REQUIRED            DEFAULT VALUE       ALTERNATE VALUE\n\
         A_VAL               false                                   \n\
         CMD                 false                                   set\n\
         CPUS                false               1                   \n\
         IMG                 false               busybox             \n\
         PORT                false               8080                \n\
         TAG                 true                                    \n"
    );
    let j: serde_json::Value = serde_json::from_str(&ok(&dir, &["config", "--variables", "--format", "json"])).unwrap();
    assert_eq!(j["TAG"], serde_json::json!({"Name": "TAG", "DefaultValue": "", "PresenceValue": "", "Required": true}));
    assert_eq!(j["CMD"]["PresenceValue"], "set");
}

#[test]
fn environment_is_the_interpolation_environment() {
    let d = project();
    let out = ok(&d.path().join("flags"), &["config", "--environment"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"A_VAL=x") && lines.contains(&"TAG=1.0") && lines.contains(&"COMPOSE_PROJECT_NAME=flags"), "{out}");
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "sorted: {out}");
}

/// `--no-interpolate` prints compose's raw model: values as written (`$` too), keys sorted, and
/// `${...}` in typed fields (ports, cpus) neither parsed nor refused.
#[test]
fn no_interpolate_prints_the_raw_model() {
    let d = project();
    let dir = d.path().join("flags");
    let out = ok(&dir, &["config", "--no-interpolate"]);
    let root = dir.display().to_string();
    let want = format!(
        "name: flags\nnetworks:\n  default:\n    name: flags_default\nservices:\n  db:\n    command: echo $$HOME ${{CMD:+set}}\n    \
         image: postgres\n    networks:\n      default: null\n  web:\n    build:\n      context: {root}/ctx\n      dockerfile: Dockerfile\n    \
         cpus: ${{CPUS:-1}}\n    depends_on:\n      db:\n        condition: service_started\n        required: true\n    env_file:\n      \
         - path: {root}/web.env\n        required: true\n    environment:\n      A: ${{A_VAL}}\n      B: null\n    \
         image: ${{IMG:-busybox}}:${{TAG?tag needed}}\n    networks:\n      default: null\n    ports:\n      - ${{PORT:-8080}}:80\n    \
         volumes:\n      - bind:\n          create_host_path: true\n        source: {root}/data\n        target: /data\n        type: bind\n      \
         - source: vol\n        target: /v\n        type: volume\n        volume: {{}}\nvolumes:\n  vol:\n    name: flags_vol\n"
    );
    assert_eq!(out, want);
    // a required variable left unset is no error when nothing is interpolated
    std::fs::write(dir.join(".env"), "").unwrap();
    ok(&dir, &["config", "--no-interpolate", "--quiet"]);
    assert_eq!(run(&dir, &["config", "--quiet"]).status.code(), Some(1));
}

#[test]
fn no_normalize_no_path_resolution_no_consistency() {
    let d = project();
    let dir = d.path().join("flags");
    let out = ok(&dir, &["config", "--no-normalize"]);
    assert!(!out.contains("flags_default") && !out.contains("dockerfile:") && out.contains("vol: {}"), "{out}");
    let out = ok(&dir, &["config", "--no-path-resolution"]);
    assert!(out.contains("context: ./ctx") && out.contains("source: ./data"), "{out}");
    assert_eq!(ok(&dir, &["config", "--no-env-resolution"]), ok(&dir, &["config"]));
    std::fs::write(dir.join("compose.yaml"), "services:\n  web:\n    image: busybox\n    depends_on: [nope]\n").unwrap();
    assert_eq!(run(&dir, &["config", "-q"]).status.code(), Some(1));
    ok(&dir, &["config", "-q", "--no-consistency"]);
}

/// Digests come from the local store; an image that is not there is a clear error.
#[test]
fn resolve_image_digests_needs_the_image() {
    let d = project();
    let dir = d.path().join("flags");
    let state = d.path().join("state");
    let root = state.to_str().unwrap();
    let out = run(&dir, &["--root", root, "config", "--resolve-image-digests"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("cannot resolve the digest of image") && e.contains("pull it first"), "{e}");
    std::fs::write(
        dir.join("compose.yaml"),
        "services:\n  web:\n    image: busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    let out = ok(&dir, &["--root", root, "config", "--lock-image-digests"]);
    assert_eq!(out, "services:\n  web:\n    image: busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n");
}
