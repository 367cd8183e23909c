//! RUN steps in berth containers: FROM scratch with a copied busybox, WORKDIR and USER, failing
//! steps, multi-stage builds, the cache, cache mounts, heredocs and `--network=none`.
mod common;

use common::build::{FileInfo, build_network, content, image_files, in_project, ok, root_with_busybox, stderr, stdout, write_files};

/// True when a step printed `line` (`#N 0.123 line`).
fn printed(out: &str, line: &str) -> bool {
    out.lines().any(|l| {
        let mut w = l.splitn(3, ' ');
        let (n, t, rest) = (w.next().unwrap_or(""), w.next().unwrap_or(""), w.next().unwrap_or(""));
        n.starts_with('#') && t.parse::<f64>().is_ok() && rest == line
    })
}

fn compose(dir: &std::path::Path, service: &str) {
    std::fs::write(dir.join("compose.yaml"), format!("services:\n  {service}:\n    build: .\n")).unwrap();
}

/// Nothing of a build is left running or mounted.
fn assert_no_build_containers(t: &common::TestRoot) {
    let dir = t.root().join("containers");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.file_name()).filter(|n| !n.to_string_lossy().starts_with('.')).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "build containers left behind: {left:?}");
}

#[test]
fn scratch_with_the_busybox_binary_then_run_inside_it() {
    common::require_root!();
    let t = root_with_busybox();
    build_network(&t);
    let dir = t.scratch().join("runscratch");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(common::host_busybox(), dir.join("busybox")).unwrap();
    write_files(
        &dir,
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
             RUN mkdir -p /etc && echo \"built by $(whoami 2>/dev/null || id -u)\" > /etc/motd && rm /bin/vi\n\
             CMD [\"sh\"]\n",
        )],
    );
    compose(&dir, "app");
    let out = ok(in_project(&t, &dir, &["build"]));
    assert!(out.contains("[app 2/3] RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]"), "{out}");
    let files = image_files(&t, "runscratch-app");
    assert_eq!(files["bin/sh"], FileInfo::Symlink("/bin/busybox".into()));
    assert_eq!(content(&files, "etc/motd"), "built by 0\n");
    assert!(!files.contains_key("bin/vi"), "a file removed by RUN is gone from the image");
    // The runtime's mount points are not part of the image.
    for stub in ["proc", "sys", "dev", "etc/hosts", "etc/resolv.conf", "etc/hostname"] {
        assert!(!files.contains_key(stub), "{stub} leaked into the image");
    }
    assert_no_build_containers(&t);
}

#[test]
fn workdir_and_user_then_run() {
    common::require_root!();
    let t = root_with_busybox();
    build_network(&t);
    let dir = t.scratch().join("runuser");
    write_files(
        &dir,
        &[(
            "Dockerfile",
            "FROM busybox\nENV GREETING=hello\nARG WHO=builder\nUSER nobody\nWORKDIR /data/work\n\
             RUN echo \"$GREETING $WHO\" > out.txt && id -u >> out.txt && pwd >> out.txt\n\
             USER root\nRUN stat -c '%U %a' /data/work > /owner.txt\n\
             RUN <<EOF\n#!/bin/awk -f\nBEGIN { print \"awk ran\" > \"/shebang.txt\" }\nEOF\n",
        )],
    );
    compose(&dir, "app");
    ok(in_project(&t, &dir, &["build"]));
    let files = image_files(&t, "runuser-app");
    assert_eq!(content(&files, "data/work/out.txt"), "hello builder\n65534\n/data/work\n");
    assert!(matches!(files["data/work/out.txt"], FileInfo::File { uid: 65534, .. }));
    // The WORKDIR made after USER belongs to that user, as BuildKit makes it.
    assert_eq!(content(&files, "owner.txt"), "nobody 755\n");
    // A heredoc with a shebang runs with the interpreter it names.
    assert_eq!(content(&files, "shebang.txt"), "awk ran\n");
    assert!(!files.keys().any(|k| k.starts_with("dev/")), "nothing of /dev lands in the image");
    let hist = t.ok(["image", "history", "runuser-app", "--no-trunc"]);
    assert!(hist.contains("RUN |1 WHO=builder /bin/sh -c echo"), "{hist}");
}

#[test]
fn history_shows_docker_sizes_and_heredoc_lines() {
    common::require_root!();
    let t = root_with_busybox();
    build_network(&t);
    let dir = t.scratch().join("hist");
    write_files(
        &dir,
        &[("Dockerfile", "FROM busybox\nWORKDIR /app\nRUN mkdir /x\nRUN echo hi > /hi\nRUN <<EOF\necho one\necho two > /two\nEOF\n")],
    );
    compose(&dir, "hist");
    ok(in_project(&t, &dir, &["build"]));
    let hist = t.ok(["image", "history", "hist-hist"]);
    let row = |needle: &str| hist.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle:?} in\n{hist}")).to_string();
    // Docker's sizes: the bytes of the layer's files, so 0B for directories only.
    assert!(row("WORKDIR /app").contains("   0B   "), "{hist}");
    assert!(row("RUN /bin/sh -c mkdir /x").contains("   0B   "), "{hist}");
    assert!(row("RUN /bin/sh -c echo hi > /hi").contains("   3B   "), "{hist}");
    // A heredoc keeps its lines, laid out as Docker's tabwriter does: the size on the line
    // after the script, its column restarted there.
    let lines: Vec<&str> = hist.lines().collect();
    let i = lines.iter().position(|l| l.ends_with("RUN /bin/sh -c echo one")).unwrap_or_else(|| panic!("{hist}"));
    assert_eq!(lines[i + 1], "echo two > /two", "{hist}");
    assert!(lines[i + 2].trim_start().starts_with("4B ") && lines[i + 2].starts_with("            4B"), "{hist}");
}

#[test]
fn a_failing_run_shows_its_output_and_exit_code_and_tags_nothing() {
    common::require_root!();
    let t = root_with_busybox();
    build_network(&t);
    let dir = t.scratch().join("runfail");
    write_files(&dir, &[("Dockerfile", "FROM busybox\nRUN echo fine\nRUN echo oops; echo to-stderr >&2; exit 3\nRUN echo never-runs\n")]);
    compose(&dir, "bad");
    let o = in_project(&t, &dir, &["build"]);
    assert_eq!(o.status.code(), Some(1));
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(
        out.contains("ERROR: process \"/bin/sh -c echo oops; echo to-stderr >&2; exit 3\" did not complete successfully: exit code: 3"),
        "{out}"
    );
    assert!(out.contains(" > [bad 3/4] RUN echo oops; echo to-stderr >&2; exit 3:"), "{out}");
    assert!(printed(&out, "oops") && printed(&out, "to-stderr"), "{out}");
    assert!(!printed(&out, "never-runs"), "{out}");
    assert!(
        err.contains("service bad: cannot build its image")
            && err.contains("Dockerfile:3: RUN echo oops; echo to-stderr >&2; exit 3 did not complete successfully: exit code 3"),
        "{err}"
    );
    assert!(!t.run(["image", "inspect", "runfail-bad"]).status.success(), "a failed build tags nothing");
    // Quiet: the failure still shows, on stderr.
    let o = in_project(&t, &dir, &["build", "-q"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    assert!(stderr(&o).contains(" oops\n") && stderr(&o).contains("exit code 3"), "{}", stderr(&o));
    // A command that does not exist: 127, as Docker says.
    write_files(&dir, &[("Dockerfile", "FROM busybox\nRUN [\"/no/such/binary\"]\n")]);
    let o = in_project(&t, &dir, &["build"]);
    assert!(stderr(&o).contains("exit code 127"), "{}", stderr(&o));
    assert_no_build_containers(&t);
}

#[test]
fn multi_stage_with_run_and_the_cache() {
    common::require_root!();
    let t = root_with_busybox();
    build_network(&t);
    let dir = t.scratch().join("runstages");
    write_files(
        &dir,
        &[
            ("src/main.txt", "source"),
            (
                "Dockerfile",
                "FROM busybox AS build\nWORKDIR /src\nCOPY src/ ./\nRUN tr a-z A-Z < main.txt > /artifact && echo compiled\n\
                 FROM busybox\nCOPY --from=build /artifact /app/artifact\nRUN <<EOF\nset -e\ntest \"$(cat /app/artifact)\" = SOURCE\necho checked > /app/ok\nEOF\n",
            ),
        ],
    );
    compose(&dir, "app");
    let first = ok(in_project(&t, &dir, &["build"]));
    assert!(printed(&first, "compiled"), "{first}");
    let files = image_files(&t, "runstages-app");
    assert_eq!(content(&files, "app/artifact"), "SOURCE");
    assert_eq!(content(&files, "app/ok"), "checked\n");
    assert!(!files.contains_key("src/main.txt"), "the build stage's files stay there");
    let id = t.ok(["image", "inspect", "runstages-app", "--format", "{{.Id}}"]);
    // All cached: no RUN runs again and the image is the same.
    let second = ok(in_project(&t, &dir, &["build"]));
    assert_eq!(second.matches("CACHED").count(), 5, "{second}");
    assert!(!printed(&second, "compiled"), "{second}");
    assert_eq!(t.ok(["image", "inspect", "runstages-app", "--format", "{{.Id}}"]), id);
    // A change in src/ reruns the build stage's COPY and RUN, and what follows.
    std::fs::write(dir.join("src/main.txt"), "changed").unwrap();
    let o = in_project(&t, &dir, &["build"]);
    let third = stdout(&o);
    assert!(!o.status.success(), "the check in the last RUN fails on new content");
    assert!(printed(&third, "compiled"), "{third}");
    assert_no_build_containers(&t);
}

#[test]
fn cache_mounts_persist_and_network_none_isolates() {
    common::require_root!();
    let t = root_with_busybox();
    build_network(&t);
    let dir = t.scratch().join("runmounts");
    write_files(
        &dir,
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=cache,target=/var/cache/app echo run >> /var/cache/app/log && wc -l < /var/cache/app/log > /count\n\
             RUN --network=none cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' > /ifaces\n",
        )],
    );
    compose(&dir, "app");
    ok(in_project(&t, &dir, &["build"]));
    ok(in_project(&t, &dir, &["build", "--no-cache"]));
    let files = image_files(&t, "runmounts-app");
    assert_eq!(content(&files, "count").trim(), "2", "the cache directory is kept between builds");
    assert!(!files.contains_key("var/cache/app/log"), "a cache mount's content is not in the image");
    assert_eq!(content(&files, "ifaces"), "lo\n");
    assert_no_build_containers(&t);
}

#[test]
fn compose_extra_hosts_and_memory_reach_run_steps() {
    common::require_root!();
    let t = root_with_busybox();
    build_network(&t);
    let dir = t.scratch().join("runhosts");
    write_files(
        &dir,
        &[
            ("Dockerfile", "FROM busybox\nRUN grep buildhost /etc/hosts > /hosts.txt\n"),
            ("compose.yaml", "services:\n  app:\n    build:\n      context: .\n      extra_hosts: [\"buildhost=10.212.99.1\"]\n"),
        ],
    );
    ok(in_project(&t, &dir, &["build", "--memory", "256m"]));
    let files = image_files(&t, "runhosts-app");
    assert!(content(&files, "hosts.txt").contains("10.212.99.1"), "{}", content(&files, "hosts.txt"));
    assert!(!files.contains_key("etc/hosts"), "the generated /etc/hosts is not part of the image");
    let o = in_project(&t, &dir, &["build", "--memory", "lots"]);
    assert!(!o.status.success() && stderr(&o).contains("invalid --memory"), "{}", stderr(&o));
}

#[test]
fn run_steps_reach_the_network_through_the_build_bridge() {
    common::require_root!();
    let t = root_with_busybox();
    let gateway = build_network(&t);
    // A server on the bridge's gateway address: what a package mirror would be.
    let listener = std::net::TcpListener::bind((gateway.as_str(), 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 8\r\n\r\npackages");
    });
    let dir = t.scratch().join("runnet");
    write_files(
        &dir,
        &[
            (
                "Dockerfile",
                &format!(
                    "FROM busybox\nRUN wget -q -O /fetched http://{gateway}:{port}/index && ip -4 addr show eth0 | grep -o 'inet [0-9.]*' > /addr\n"
                ),
            ),
            ("compose.yaml", "services:\n  app:\n    build: .\n"),
        ],
    );
    ok(in_project(&t, &dir, &["build"]));
    server.join().unwrap();
    let files = image_files(&t, "runnet-app");
    assert_eq!(content(&files, "fetched"), "packages");
    assert!(content(&files, "addr").starts_with(&format!("inet {}", gateway.rsplit_once('.').unwrap().0)), "{}", content(&files, "addr"));
    // build.network: host shares the host's network.
    std::fs::write(dir.join("compose.yaml"), "services:\n  app:\n    build:\n      context: .\n      network: host\n").unwrap();
    std::fs::write(dir.join("Dockerfile"), "FROM busybox\nRUN ls /sys/class/net > /ifaces\n").unwrap();
    ok(in_project(&t, &dir, &["build"]));
    let files = image_files(&t, "runnet-app");
    assert!(content(&files, "ifaces").lines().count() > 1, "{}", content(&files, "ifaces"));
}

#[test]
fn an_interrupted_build_removes_its_container() {
    common::require_root!();
    use std::io::{BufRead, BufReader};
    let t = root_with_busybox();
    build_network(&t);
    let dir = t.scratch().join("runint");
    write_files(
        &dir,
        &[("Dockerfile", "FROM busybox\nRUN echo started; sleep 300\n"), ("compose.yaml", "services:\n  app:\n    build: .\n")],
    );
    let mut child = t
        .cmd(["-f", dir.join("compose.yaml").to_str().unwrap(), "build"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let l = lines.next().expect("the build ended before its RUN started").unwrap();
        if printed(&l, "started") {
            break;
        }
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the build was interrupted (SIGINT); its container was removed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_build_containers(&t);
    assert!(!t.run(["image", "inspect", "runint-app"]).status.success());
}

#[test]
fn bind_secret_and_tmpfs_mounts() {
    common::require_root!();
    let t = root_with_busybox();
    build_network(&t);
    let dir = t.scratch().join("runbind");
    write_files(
        &dir,
        &[
            ("package.json", "{\"name\": \"app\"}\n"),
            ("secret.env", "PASSWORD=hunter2\n"),
            (".dockerignore", "secret.env\n"),
            ("token.txt", "TOKEN-CONTENT-42\n"),
            (
                "Dockerfile",
                "FROM busybox AS tools\nRUN echo tool > /tool.txt\n\
                 FROM busybox\nWORKDIR /app\n\
                 RUN --mount=type=bind,source=package.json,target=package.json cat package.json > /from-bind.txt\n\
                 RUN --mount=type=bind,target=/ctx ls -A /ctx > /ctx-list.txt\n\
                 RUN --mount=type=bind,from=tools,source=/tool.txt,target=/t.txt cat /t.txt > /from-stage.txt\n\
                 RUN --mount=type=secret,id=token grep -q TOKEN-CONTENT /run/secrets/token && stat -c '%a' /run/secrets/token > /secret.txt\n\
                 RUN --mount=type=secret,id=absent echo fine > /absent.txt\n\
                 RUN --mount=type=tmpfs,target=/scratch echo x > /scratch/y && grep -c ' /scratch tmpfs' /proc/mounts > /tmpfs.txt\n",
            ),
            (
                "compose.yaml",
                "services:\n  app:\n    build:\n      context: .\n      secrets: [token]\nsecrets:\n  token:\n    file: ./token.txt\n",
            ),
        ],
    );
    ok(in_project(&t, &dir, &["build"]));
    let files = image_files(&t, "runbind-app");
    assert_eq!(content(&files, "from-bind.txt"), "{\"name\": \"app\"}\n");
    let listed = content(&files, "ctx-list.txt");
    assert!(listed.contains("package.json") && !listed.contains("secret.env"), "a bind of the context honours .dockerignore: {listed}");
    assert_eq!(content(&files, "from-stage.txt"), "tool\n");
    assert_eq!(content(&files, "secret.txt"), "400\n");
    assert_eq!(content(&files, "absent.txt"), "fine\n", "a secret that is not given and not required is skipped");
    assert_eq!(content(&files, "tmpfs.txt"), "1\n");
    for gone in ["app/package.json", "ctx", "t.txt", "run/secrets/token", "run/secrets", "scratch"] {
        assert!(!files.contains_key(gone), "{gone} leaked into the image");
    }
    for (p, f) in &files {
        if let FileInfo::File { content, .. } = f {
            assert!(!String::from_utf8_lossy(content).contains("TOKEN-CONTENT-42"), "the secret is in {p}");
        }
    }
    // What a bind mount shows is part of the step's inputs.
    let again = ok(in_project(&t, &dir, &["build"]));
    assert_eq!(again.matches("CACHED").count(), 8, "{again}");
    std::fs::write(dir.join("package.json"), "{\"name\": \"changed\"}\n").unwrap();
    let third = ok(in_project(&t, &dir, &["build"]));
    assert_eq!(third.matches("CACHED").count(), 2, "the steps from the bind of package.json on run again: {third}");
    let files = image_files(&t, "runbind-app");
    assert_eq!(content(&files, "from-bind.txt"), "{\"name\": \"changed\"}\n");
    assert_no_build_containers(&t);
    assert!(std::fs::read_dir(t.root().join("images/tmp")).unwrap().next().is_none(), "temp folders are removed");
}

#[test]
fn independent_services_build_at_once_and_share_the_cache() {
    common::require_root!();
    let t = root_with_busybox();
    build_network(&t);
    let dir = t.scratch().join("par");
    // Each RUN waits (up to 20 s) for the other's mark in a cache mount both share: it only
    // passes when the two builds run at the same time. Both begin with the same step.
    let step = |me: &str, other: &str| {
        format!(
            "FROM busybox\nRUN echo shared > /shared\n\
             RUN --mount=type=cache,id=rendezvous,target=/sync touch /sync/{me} && \
             i=0; while [ ! -e /sync/{other} ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; \
             [ -e /sync/{other} ] && echo {me} > /{me}\n"
        )
    };
    write_files(
        &dir,
        &[
            ("a/Dockerfile", &step("a", "b")),
            ("b/Dockerfile", &step("b", "a")),
            ("compose.yaml", "services:\n  a:\n    build: ./a\n  b:\n    build: ./b\n    image: team/b:1\n"),
        ],
    );
    let o = t.cmd(["-f", dir.join("compose.yaml").to_str().unwrap(), "build"]).env_remove("COMPOSE_PARALLEL_LIMIT").output().unwrap();
    let out = ok(o);
    assert!(out.contains(" a  Built") && out.contains(" b  Built"), "{out}");
    let (fa, fb) = (image_files(&t, "par-a"), image_files(&t, "team/b:1"));
    assert_eq!((content(&fa, "a"), content(&fa, "shared")), ("a\n".to_string(), "shared\n".to_string()));
    assert_eq!((content(&fb, "b"), content(&fb, "shared")), ("b\n".to_string(), "shared\n".to_string()));
    assert!(!fa.contains_key("b") && !fb.contains_key("a"), "each image has its own step");
    // Every step number is printed once, by one build.
    let begun: Vec<&str> = out.lines().filter(|l| l.starts_with('#') && l.contains(" [")).map(|l| l.split(' ').next().unwrap()).collect();
    let mut unique = begun.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(begun.len(), unique.len(), "{out}");
    // Built again: all cached, both images the same.
    let (ida, idb) =
        (t.ok(["image", "inspect", "par-a", "--format", "{{.Id}}"]), t.ok(["image", "inspect", "team/b:1", "--format", "{{.Id}}"]));
    let out = ok(in_project(&t, &dir, &["build"]));
    assert_eq!(out.matches("RUN ").count(), out.matches("CACHED").count(), "{out}");
    assert_eq!(t.ok(["image", "inspect", "par-a", "--format", "{{.Id}}"]), ida);
    assert_eq!(t.ok(["image", "inspect", "team/b:1", "--format", "{{.Id}}"]), idb);
    assert_no_build_containers(&t);
}

#[test]
fn an_interrupt_stops_every_build_running_at_once() {
    common::require_root!();
    use std::io::{BufRead, BufReader};
    let t = root_with_busybox();
    build_network(&t);
    let dir = t.scratch().join("parint");
    write_files(
        &dir,
        &[
            ("a/Dockerfile", "FROM busybox\nRUN echo started-a; sleep 300\n"),
            ("b/Dockerfile", "FROM busybox\nRUN echo started-b; sleep 300\n"),
            ("compose.yaml", "services:\n  a:\n    build: ./a\n  b:\n    build: ./b\n"),
        ],
    );
    let mut child = t
        .cmd(["-f", dir.join("compose.yaml").to_str().unwrap(), "build"])
        .env_remove("COMPOSE_PARALLEL_LIMIT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut a, mut b) = (false, false);
    while !(a && b) {
        let l = lines.next().expect("the builds ended before both RUNs started").unwrap();
        a |= printed(&l, "started-a");
        b |= printed(&l, "started-b");
    }
    let started = std::time::Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let rest: Vec<String> = lines.map_while(|l| l.ok()).collect();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "the second build was not stopped");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the build was interrupted (SIGINT); its container was removed"), "{err}");
    assert!(!rest.iter().any(|l| l.contains("Built")), "{rest:?}");
    assert_no_build_containers(&t);
}
