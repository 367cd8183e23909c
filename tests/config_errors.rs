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

/// Runs `berth config` in `dir` with its address space capped (`ulimit -v`, in KiB), so that an
/// input that makes the loader allocate without bound fails the test instead of the machine.
fn run_capped(dir: &Path, kib: u64) -> Output {
    let cmd = format!("ulimit -v {kib} && exec \"$0\" config");
    Command::new("/bin/sh")
        .args(["-c", &cmd, env!("CARGO_BIN_EXE_berth")])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent")
        .output()
        .expect("run berth")
}

/// Both used to panic: a non-ASCII character after a variable name, and an unclosed `${` left in
/// a volume once `$$` was interpolated.
#[test]
fn interpolation_crashers_are_errors() {
    let e = fails("services:\n  web:\n    image: \"${Aé}\"\n");
    assert!(e.contains("compose.yaml:3:12: services.web.image: invalid interpolation format \"${Aé}\""), "{e}");
    let e = fails("services:\n  web:\n    image: x\n    volumes: [\"$${A:/x\"]\n");
    assert!(e.contains("compose.yaml:4:15: services.web.volumes[0]: invalid volume \"${A:/x\": missing a mount target"), "{e}");
}

/// A NUL byte silently dropped the rest of the file; compose refuses control characters.
#[test]
fn control_characters_are_refused() {
    let e = fails("services:\n  web:\n    image: x\0\n  bad: [\n");
    assert!(e.contains("compose.yaml:3:13: control characters are not allowed (found U+0000)"), "{e}");
    let e = fails("services:\n  web:\n    image: x\n    command: \"a\u{1b}[31m\"\n");
    assert!(e.contains("compose.yaml:4:16: control characters are not allowed (found U+001B)"), "{e}");
}

/// Compose accepts a UTF-8 byte order mark at the start of the file.
#[test]
fn a_byte_order_mark_is_accepted() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("compose.yaml"), "\u{feff}services:\n  web:\n    image: busybox\n").unwrap();
    let out = run(d.path(), &["config", "--services"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "web\n");
}

/// A 1 MiB string anchored once and aliased 1000 times was loaded in 27 s and 4.5 GB, 10 000
/// times aborted the process. Now: a clear error, fast, in under 512 MiB of address space.
#[test]
fn aliased_big_string_is_refused_in_bounded_memory() {
    let d = tempfile::tempdir().unwrap();
    let mut s = format!("x-big: &big \"{}\"\nservices:\n  web:\n    image: busybox\n    command:\n", "a".repeat(1 << 20));
    for _ in 0..10_000 {
        s.push_str("      - *big\n");
    }
    std::fs::write(d.path().join("compose.yaml"), s).unwrap();
    let t = std::time::Instant::now();
    let out = run_capped(d.path(), 512 * 1024);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("compose.yaml:") && e.contains("aliases copy more than 16 MiB of text"), "{e}");
    assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
}

/// `.env` with `A=xx`, `B=${A}${A}`, ...: each line doubles the one before.
#[test]
fn env_doubling_chain_is_refused_in_bounded_memory() {
    let d = tempfile::tempdir().unwrap();
    let mut env = String::from("V0=0123456789abcdef\n");
    for i in 1..64 {
        env.push_str(&format!("V{i}=${{V{p}}}${{V{p}}}\n", p = i - 1));
    }
    std::fs::write(d.path().join(".env"), env).unwrap();
    std::fs::write(d.path().join("compose.yaml"), "services:\n  web:\n    image: busybox\n    command: echo ${V63}\n").unwrap();
    let out = run_capped(d.path(), 512 * 1024);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains(".env: invalid env file: line 22: interpolation expands to more than 32 MiB"), "{e}");
    // the same through the compose file: one big variable referenced many times
    let big = "x".repeat(1 << 20);
    std::fs::write(d.path().join(".env"), format!("BIG={big}\n")).unwrap();
    let refs = "${BIG}".repeat(100);
    std::fs::write(d.path().join("compose.yaml"), format!("services:\n  web:\n    image: busybox\n    command: [\"{refs}\"]\n")).unwrap();
    let out = run_capped(d.path(), 512 * 1024);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("compose.yaml:4:15: services.web.command[0]: interpolation expands to more than 32 MiB"), "{e}");
}
