//! `scale`, `export`, `commit` and `attach`: the compose commands that act on one service's
//! containers, checked as a user checks them (ps after scale, the tar's entries, running the
//! committed image, the attached output).
mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::compose::Stack;

fn yaml(services: &str, net: u8) -> String {
    format!("services:\n{services}\nnetworks:\n  default:\n    ipam:\n      config:\n        - subnet: 10.211.{net}.0/24\n")
}

fn names(s: &Stack, args: &[&str]) -> Vec<String> {
    let (out, _) = s.ok([&["ps", "--format", "{{.Name}} {{.State}}"], args].concat());
    out.lines().map(str::to_string).collect()
}

/// `down`, then nothing of the project is left: containers, links, cgroups, supervisors.
fn down_clean(s: &Stack) {
    let h = s.host_objects();
    s.ok(["down", "-t", "0", "--remove-orphans"]);
    assert!(s.containers().is_empty(), "{:?}", s.containers());
    assert!(h.left().is_empty(), "{:?}", h.left());
}

#[test]
fn scale_adds_and_removes_replicas_and_brings_up_dependencies() {
    common::require_root!();
    let s = Stack::new(
        "cscale",
        &yaml(
            "  web:\n    image: busybox:latest\n    command: sleep 1000\n  db:\n    image: busybox:latest\n    command: sleep 1000\n    depends_on: [web]\n",
            150,
        ),
    );
    // Nothing up yet: scaling db brings its dependency up too, as compose does.
    let (_, err) = s.ok(["scale", "db=2"]);
    assert!(err.contains("cscale-db-2"), "{err}");
    assert_eq!(names(&s, &[]), ["cscale-db-1 running", "cscale-db-2 running", "cscale-web-1 running"]);
    let db1 = s.id("cscale-db-1");
    // Down to one and up to two in one go; what stays is not recreated.
    s.ok(["scale", "--no-deps", "db=1", "web=2"]);
    assert_eq!(names(&s, &["-a"]), ["cscale-db-1 running", "cscale-web-1 running", "cscale-web-2 running"]);
    assert_eq!(s.id("cscale-db-1"), db1);
    // compose's errors.
    for (arg, want) in [
        ("web", "invalid scale specifier: web"),
        ("web=x", "invalid scale specifier: can't parse replica value as int: web=x"),
        ("nosuch=2", "no such service: nosuch"),
    ] {
        let o = s.run(["scale", arg]);
        assert_eq!(o.status.code(), Some(1), "{arg}");
        assert!(String::from_utf8_lossy(&o.stderr).contains(want), "{arg}: {}", String::from_utf8_lossy(&o.stderr));
    }
    down_clean(&s);
}

#[test]
fn export_writes_the_merged_filesystem_and_commit_makes_a_runnable_image() {
    common::require_root!();
    let s = Stack::new(
        "csnap",
        &yaml("  app:\n    image: busybox:latest\n    command: sleep 1000\n    volumes: [data:/data]\nvolumes:\n  data: {}\n", 151),
    );
    s.ok(["up", "-d"]);
    s.ok([
        "exec",
        "-T",
        "app",
        "sh",
        "-c",
        "echo made-inside > /hello.txt; rm /bin/vi; mkdir -p /etc/extra && echo x > /etc/extra/f; echo vol > /data/v",
    ]);

    // export: the image's files and the container's changes, no volume, no /proc contents.
    let tar_path = s.t.scratch().join("app.tar");
    s.ok(["export", "app", "-o", tar_path.to_str().unwrap()]);
    let mut ar = tar::Archive::new(std::fs::File::open(&tar_path).unwrap());
    let mut entries = std::collections::BTreeMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut body = String::new();
        if e.header().entry_type().is_file() && e.header().size().unwrap() < 100 {
            e.read_to_string(&mut body).unwrap();
        }
        entries.insert(name, body);
    }
    assert!(entries.contains_key("bin/busybox"), "{:?}", entries.keys().take(20).collect::<Vec<_>>());
    assert_eq!(entries.get("hello.txt").map(String::as_str), Some("made-inside\n"));
    assert_eq!(entries.get("etc/extra/f").map(String::as_str), Some("x\n"));
    assert!(!entries.contains_key("bin/vi"), "a removed file is exported");
    assert!(!entries.contains_key("data/v"), "a volume's file is exported");
    assert!(!entries.keys().any(|k| k.starts_with("proc/") && k.len() > 5), "proc's contents are exported");
    // To stdout too; nothing left mounted either way.
    let o = s.run(["export", "app"]);
    assert!(o.status.success());
    assert!(tar::Archive::new(&o.stdout[..]).entries().unwrap().any(|e| e.unwrap().path().unwrap().to_str() == Some("hello.txt")));
    assert!(!std::fs::read_to_string("/proc/self/mounts").unwrap().contains(&s.id("csnap-app-1")));

    // commit: a new image with the changes (the removal as a whiteout), runnable by `run`.
    s.ok(["commit", "-m", "with hello", "-a", "tester", "-c", "ENV COMMITTED=yes", "app", "csnap-committed:v1"]);
    let (out, _) = s.ok(["image", "inspect", "csnap-committed:v1"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let v = if v.is_array() { v[0].clone() } else { v };
    assert_eq!(v["Comment"], "with hello");
    assert_eq!(v["Author"], "tester");
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["sleep", "1000"]));
    assert!(v["Config"]["Env"].as_array().unwrap().iter().any(|e| e == "COMMITTED=yes"), "{v}");
    s.write(&yaml("  app:\n    image: busybox:latest\n    command: sleep 1000\n  check:\n    image: csnap-committed:v1\n", 151));
    let (out, _) = s.ok([
        "run",
        "--rm",
        "-T",
        "check",
        "sh",
        "-c",
        "cat /hello.txt /etc/extra/f; ls /bin/vi || echo no-vi; echo $COMMITTED; ls /data | wc -l",
    ]);
    assert_eq!(out, "made-inside\nx\nno-vi\nyes\n0\n", "{out}");
    // The container was paused only while committing.
    assert_eq!(s.status("csnap-app-1"), "running");
    // A container of the committed image (two layers under its own changes) exports the same view.
    s.ok(["up", "-d", "check"]);
    s.ok(["exec", "-T", "check", "rm", "/hello.txt"]);
    let o = s.run(["export", "check"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let listed: Vec<String> =
        tar::Archive::new(&o.stdout[..]).entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
    assert!(listed.iter().any(|n| n == "etc/extra/f") && listed.iter().any(|n| n == "bin/busybox"), "{listed:?}");
    assert!(!listed.iter().any(|n| n == "bin/vi" || n == "hello.txt"), "a removed file is exported: {listed:?}");

    // compose's errors: only running containers.
    s.ok(["stop", "-t", "0", "app"]);
    for args in [vec!["export", "app", "-o", "/dev/null"], vec!["commit", "app", "x:y"]] {
        let o = s.run(&args);
        assert_eq!(o.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&o.stderr).contains("service \"app\" is not running"), "{}", String::from_utf8_lossy(&o.stderr));
    }
    down_clean(&s);
}

#[test]
fn attach_streams_live_output_and_forwards_signals() {
    common::require_root!();
    let s = Stack::new(
        "cattach",
        &yaml(
            "  talk:\n    image: busybox:latest\n    command: [\"sh\", \"-c\", \"trap 'echo got-term; exit 7' TERM; echo before; while true; do echo tick; sleep 0.2; done\"]\n",
            152,
        ),
    );
    s.ok(["up", "-d"]);
    common::compose::wait_until(Duration::from_secs(10), "talk prints", || s.logs("cattach-talk-1").contains("tick"));
    let mut c = s.cmd(["attach", "--no-stdin", "talk"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let out = c.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    // Live output only: what the container prints from now on, without prefixes.
    let first = rx.recv_timeout(Duration::from_secs(10)).expect("attach prints the container's output");
    assert_eq!(first, "tick");
    // SIGTERM to attach goes to the container (--sig-proxy defaults to true), which exits 7.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let t = Instant::now();
    let st = loop {
        if let Some(st) = c.try_wait().unwrap() {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "attach did not end with the container");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut rest = Vec::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(300)) {
        rest.push(l);
    }
    assert!(rest.contains(&"got-term".to_string()), "{rest:?}");
    assert!(!rest.contains(&"before".to_string()), "old output replayed: {rest:?}");
    assert_eq!(st.code(), Some(7));
    assert_eq!(s.status("cattach-talk-1"), "exited");
    // Not running: compose's error.
    let o = s.run(["attach", "talk"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("service \"talk\" is not running"));
    down_clean(&s);
}

/// CPU time (user + system) the process `pid` has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest.split(' ').skip(11).take(2).map(|x| x.parse().unwrap()).collect();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).unwrap().unwrap() as u64;
    Duration::from_millis((f[0] + f[1]) * 1000 / hz)
}

#[test]
fn attached_up_is_idle_while_nothing_happens() {
    common::require_root!();
    let s = Stack::new(
        "cidle",
        &yaml(
            "  web:\n    image: busybox:latest\n    command: [\"sh\", \"-c\", \"echo ready; while true; do if [ -f /tmp/go ]; then echo late; rm /tmp/go; fi; sleep 0.3; done\"]\n    init: true\n",
            153,
        ),
    );
    let mut c = s.cmd(["up"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let out = c.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let t = Instant::now();
    loop {
        let l = rx.recv_timeout(Duration::from_secs(20)).expect("up prints the service's output");
        if l.contains("ready") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20));
    }
    // What `top` shows: an attached `up` following one quiet service uses next to no CPU.
    let before = cpu_time(c.id());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_time(c.id()) - before;
    assert!(used < Duration::from_millis(300), "attached up used {used:?} of CPU in 2 s of silence");
    // Still following: a line printed now shows up.
    s.ok(["exec", "web", "touch", "/tmp/go"]);
    let l = rx.recv_timeout(Duration::from_secs(10)).expect("up follows new output");
    assert!(l.ends_with("| late"), "{l}");
    // Ctrl+C stops the project, as compose does.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let st = c.wait().unwrap();
    assert_eq!(st.code(), Some(130));
    assert_eq!(s.status("cidle-web-1"), "exited");
    down_clean(&s);
}
