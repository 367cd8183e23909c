//! `berth config` on bad input: every error names the file and the place (line:column where
//! the YAML gives one) and the key, exits 1, fits one screen, and never panics.

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

/// Writes `compose.yaml` with `text`, runs `berth config`, and checks it fails well; returns stderr.
fn fails(text: &str) -> String {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("compose.yaml"), text).unwrap();
    let out = run(d.path(), &["config"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "expected exit 1 for:\n{text}\nstderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.lines().count() <= 24, "more than one screen: {err}");
    err
}

#[test]
fn unknown_key_names_file_line_and_suggests() {
    let e = fails("services:\n  web:\n    image: busybox\n    restrat: always\n");
    assert!(e.contains("compose.yaml:4:5: services.web: additional property \"restrat\" is not allowed"), "{e}");
    assert!(e.contains("did you mean \"restart\""), "{e}");
}

#[test]
fn wrong_types() {
    let e = fails("services:\n  web:\n    image: busybox\n    ports: 80\n");
    assert!(e.contains("compose.yaml:4:12: services.web.ports: must be a list"), "{e}");
    let e = fails("services:\n  web:\n    image: [busybox]\n");
    assert!(e.contains("services.web.image: must be a string"), "{e}");
    let e = fails("services:\n  web:\n    image: busybox\n    privileged: maybe\n");
    assert!(e.contains("services.web.privileged") && e.contains("true or false"), "{e}");
}

#[test]
fn bad_port_volume_and_duration_syntax() {
    let e = fails("services:\n  web:\n    image: busybox\n    ports: ['99999:80']\n");
    assert!(e.contains("compose.yaml:4:13: services.web.ports[0]: invalid published port \"99999\""), "{e}");
    let e = fails("services:\n  web:\n    image: busybox\n    volumes: ['ab:cd:ef:gh']\n");
    assert!(e.contains("services.web.volumes[0]") && e.contains("too many colons"), "{e}");
    let e = fails("services:\n  web:\n    image: busybox\n    stop_grace_period: 10 minutes\n");
    assert!(e.contains("services.web.stop_grace_period: invalid duration \"10 minutes\""), "{e}");
    let e = fails("services:\n  web:\n    image: busybox\n    shm_size: lots\n");
    assert!(e.contains("services.web.shm_size: invalid size"), "{e}");
}

#[test]
fn undefined_services() {
    let e = fails("services:\n  web:\n    image: busybox\n    depends_on: [db]\n");
    assert!(e.contains("services.web.depends_on: depends on undefined service \"db\""), "{e}");
    let e = fails("services:\n  web:\n    image: busybox\n    links: [db:database]\n");
    assert!(e.contains("links to undefined service \"db\""), "{e}");
    let e = fails("services:\n  web:\n    extends: base\n");
    assert!(e.contains("compose.yaml:3:14: services.web.extends: service \"base\" not found"), "{e}");
    let e = fails("services:\n  web:\n    image: busybox\n    network_mode: service:vpn\n");
    assert!(e.contains("undefined service \"vpn\""), "{e}");
}

#[test]
fn cycles_are_printed() {
    let e = fails("services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    volumes_from: [a]\n");
    assert!(e.contains("dependency cycle detected: a -> b -> a"), "{e}");
    let e = fails("include:\n  - compose.yaml\nservices:\n  a:\n    image: x\n");
    assert!(e.contains("include cycle detected"), "{e}");
    let e = fails("services:\n  a:\n    extends: b\n  b:\n    extends: a\n");
    assert!(e.contains("circular reference with extends"), "{e}");
}

#[test]
fn conflicting_limits() {
    let e = fails("services:\n  web:\n    image: x\n    cpus: 1\n    deploy: {resources: {limits: {cpus: '0.5'}}}\n");
    assert!(e.contains("services.web.cpus: can't set distinct values on 'cpus' and 'deploy.resources.limits.cpus'"), "{e}");
}

#[test]
fn interpolation_errors() {
    let e = fails("services:\n  web:\n    image: ${IMG:?set IMG to the image to run}\n");
    assert!(e.contains("compose.yaml:3:12: services.web.image: required variable IMG is missing a value: set IMG"), "{e}");
    let e = fails("services:\n  web:\n    image: ${IMG\n");
    assert!(e.contains("invalid interpolation format"), "{e}");
}

#[test]
fn yaml_errors_and_bombs() {
    let e = fails("services:\n  web:\n    image: x\n   bad: indent\n");
    assert!(e.contains("compose.yaml:4:") && e.contains("invalid YAML"), "{e}");
    let e = fails("services:\n  web:\n    image: x\n    image: y\n");
    assert!(e.contains("already defined at line 3"), "{e}");
    let mut s = String::from("x-a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        s.push_str(&format!("x-a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    s.push_str("services:\n  web:\n    image: x\n");
    let e = fails(&s);
    assert!(e.contains("alias bomb"), "{e}");
}

#[test]
fn empty_missing_and_directory_files() {
    let e = fails("# nothing here\n");
    assert!(e.contains("compose.yaml") && e.contains("empty compose file"), "{e}");
    let d = tempfile::tempdir().unwrap();
    let out = run(d.path(), &["-f", "nope.yaml", "config"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(e.contains("nope.yaml: no such file"), "{e}");
    std::fs::create_dir(d.path().join("sub")).unwrap();
    let out = run(d.path(), &["-f", "sub", "config"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(e.contains("sub: is a directory"), "{e}");
    let out = run(d.path(), &["config"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(e.contains("no configuration file provided"), "{e}");
}
