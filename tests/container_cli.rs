//! `berth container ...` and `berth inspect` as a Docker user meets them: the seed workflow end to
//! end against real containers (run detached with a published port on 127.0.0.1 and limits,
//! ls, inspect -f, exec, logs, top, port, an attached run with its exit code, stop, rm, prune),
//! and each user error with Docker's text and exit code (checked against docker 28 + dockerd
//! 20.10 on the development host). Subnets 10.228.0.0/16, names prefixed `objects`.
mod common;

use std::process::Output;
use std::time::Duration;

use common::TestRoot;
use common::compose::{free_port, http_get};

fn setup() -> TestRoot {
    common::expect_root();
    let t = TestRoot::with_prefix("berth-objects-");
    let tar = t.scratch().join("busybox.tar");
    common::make_busybox_tar(&tar);
    t.ok(["image", "import", tar.to_str().unwrap(), "busybox:latest", "--change", "CMD [\"sh\"]"]);
    t
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn seed_workflow_run_ls_inspect_exec_logs_stop_rm_prune() {
    common::require_root!();
    let t = setup();
    t.ok(["network", "create", "--subnet", "10.228.1.0/24", "objects-net"]);
    let port = free_port();
    let id = t.ok([
        "container",
        "run",
        "-d",
        "--name",
        "objects-web",
        "--network",
        "objects-net",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "--memory",
        "64M",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "-e",
        "GREETING=hi",
        "-l",
        "objects.test=1",
        "busybox",
        "sh",
        "-c",
        "echo started; mkdir -p /www && echo page > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    let page = http_get(port, Duration::from_secs(10)).expect("the published port answers");
    assert!(page.contains("page"), "{page}");

    // ls as docker ps: the header, the row, and the templates.
    let ls = t.ok(["container", "ls"]);
    let header = ls.lines().next().unwrap();
    for col in ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"] {
        assert!(header.contains(col), "{ls}");
    }
    assert!(ls.contains(&id[..12]) && ls.contains("objects-web") && ls.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ls}");
    assert_eq!(t.ok(["container", "ps", "--format", "{{.Names}} {{.State}} {{.Image}}"]), "objects-web running busybox\n");
    assert_eq!(t.ok(["container", "ls", "-q"]), format!("{}\n", &id[..12]));
    assert_eq!(t.ok(["container", "ls", "-q", "--no-trunc"]), format!("{id}\n"));
    let json = t.ok(["container", "ls", "--filter", "label=objects.test=1", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON line");
    assert_eq!(v["Names"], "objects-web");
    assert_eq!(v["Networks"], "objects-net");
    assert_eq!(t.ok(["container", "ls", "--filter", "name=nomatch"]).lines().count(), 1, "only the header");

    // inspect in docker's shape, with -f templates; `berth inspect` finds it too.
    assert_eq!(t.ok(["container", "inspect", "-f", "{{.State.Status}}", "objects-web"]), "running\n");
    assert_eq!(
        t.ok(["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.Name}}", &id[..12]]),
        "67108864 500000000 50 /objects-web\n"
    );
    let full: serde_json::Value = serde_json::from_str(&t.ok(["inspect", "objects-web"])).unwrap();
    let c = &full[0];
    assert_eq!(c["State"]["Running"], true);
    assert_eq!(c["State"]["OOMKilled"], false);
    assert_eq!(c["Config"]["Labels"]["objects.test"], "1");
    assert!(c["Config"]["Env"].as_array().unwrap().iter().any(|e| e == "GREETING=hi"));
    assert_eq!(c["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"], port.to_string());
    assert!(c["NetworkSettings"]["Networks"]["objects-net"]["IPAddress"].as_str().unwrap().starts_with("10.228.1."));
    // `berth inspect` also reads images and networks.
    assert_eq!(t.ok(["inspect", "-f", "{{.Name}}", "objects-net"]), "objects-net\n");
    assert!(t.ok(["inspect", "-f", "{{.Id}}", "busybox"]).starts_with("sha256:"));

    // exec, logs, top, port.
    assert_eq!(t.ok(["container", "exec", "objects-web", "sh", "-c", "echo $GREETING"]), "hi\n");
    let out = t.run(["container", "exec", "objects-web", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(t.ok(["container", "logs", "objects-web"]), "started\n");
    assert!(t.ok(["container", "top", "objects-web"]).contains("httpd"));
    assert_eq!(t.ok(["container", "port", "objects-web", "80"]), format!("127.0.0.1:{port}\n"));
    assert_eq!(t.ok(["container", "port", "objects-web"]), format!("80/tcp -> 127.0.0.1:{port}\n"));

    // An attached run prints the output and exits with the container's code; --rm removes it.
    let out = t.run(["container", "run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{so}{se}");
    assert_eq!(so, "out\n");
    assert!(se.contains("err"), "{se}");
    assert_eq!(t.ok(["container", "ls", "-a", "-q"]).lines().count(), 1, "--rm removed the attached one");

    // An unnamed container gets a docker-style random name.
    let created = t.ok(["container", "create", "--network", "objects-net", "busybox", "true"]);
    let name = t.ok(["container", "ls", "-a", "--filter", &format!("id={}", created.trim()), "--format", "{{.Names}}"]);
    let name = name.trim();
    assert!(
        name.split_once('_')
            .is_some_and(|(l, r)| !l.is_empty() && !r.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')),
        "{name}"
    );
    assert_eq!(t.ok(["container", "inspect", "-f", "{{.State.Status}}", name]), "created\n");

    // pause and unpause, as docker ps shows them.
    assert_eq!(t.ok(["container", "pause", "objects-web"]), "objects-web\n");
    assert!(t.ok(["container", "ls", "--format", "{{.Status}}"]).ends_with("(Paused)\n"));
    assert_eq!(t.ok(["container", "unpause", "objects-web"]), "objects-web\n");
    assert_eq!(t.ok(["container", "inspect", "-f", "{{.State.Status}}", "objects-web"]), "running\n");

    // stop, wait, restart, kill, rm, prune.
    assert_eq!(t.ok(["container", "stop", "-t", "1", "objects-web"]), "objects-web\n");
    assert_eq!(t.ok(["container", "inspect", "-f", "{{.State.Status}}", "objects-web"]), "exited\n");
    assert!(http_get(port, Duration::from_millis(300)).is_none(), "the port is released on stop");
    assert_eq!(t.ok(["container", "restart", "-t", "1", "objects-web"]), "objects-web\n");
    assert_eq!(t.ok(["container", "inspect", "-f", "{{.State.Status}}", "objects-web"]), "running\n");
    assert_eq!(t.ok(["container", "kill", "objects-web"]), "objects-web\n");
    assert_eq!(t.ok(["container", "wait", "objects-web"]), "137\n");
    let pruned = t.ok(["container", "prune", "-f"]);
    assert!(pruned.starts_with("Deleted Containers:\n") && pruned.contains(&id) && pruned.contains(created.trim()), "{pruned}");
    assert!(pruned.ends_with("Total reclaimed space: 0B\n"), "{pruned}");
    assert_eq!(t.ok(["container", "ls", "-a", "-q"]), "");
    // rm of a running one needs -f.
    t.ok(["container", "run", "-d", "--name", "objects-rm", "--network", "none", "busybox", "sleep", "60"]);
    let out = t.run(["container", "rm", "objects-rm"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("cannot remove a running container objects-rm"), "{}", text(&out).1);
    assert_eq!(t.ok(["container", "rm", "-f", "objects-rm"]), "objects-rm\n");
    assert_eq!(t.ok(["container", "ls", "-a", "-q"]), "");
}

#[test]
fn user_errors_name_the_object_and_exit_as_docker() {
    common::require_root!();
    let t = setup();
    // No such image (docker: `No such image: objects-nosuch:latest`, 125).
    let out = t.run(["container", "run", "--rm", "--network", "none", "objects-nosuch", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out).1.contains("No such image: objects-nosuch:latest"), "{}", text(&out).1);
    // A name in use: docker's 409 text; run exits 125, create 1.
    let id = t.ok(["container", "create", "--name", "objects-dup", "--network", "none", "busybox", "true"]);
    let want = format!("Conflict. The container name \"/objects-dup\" is already in use by container \"{}\".", id.trim());
    for (cmd, code) in [("run", 125), ("create", 1)] {
        let out = t.run(["container", cmd, "--name", "objects-dup", "--network", "none", "busybox", "true"]);
        assert_eq!(out.status.code(), Some(code), "{cmd}");
        assert!(text(&out).1.contains(&want), "{cmd}: {}", text(&out).1);
    }
    // Not running: exec exits 1 and says so.
    let out = t.run(["container", "exec", "objects-dup", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("is not running"), "{}", text(&out).1);
    // No such container: each name reported, the others done, exit 1.
    let out = t.run(["container", "stop", "objects-nosuch", "objects-dup"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("No such container: objects-nosuch"), "{}", text(&out).1);
    assert_eq!(text(&out).0, "objects-dup\n");
    let out = t.run(["inspect", "objects-nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("No such object: objects-nosuch"), "{}", text(&out).1);
    // A network that does not exist, and bad flags: refused before anything is made.
    let out = t.run(["container", "run", "--network", "objects-missing", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out).1.contains("network objects-missing not found"), "{}", text(&out).1);
    let out = t.run(["container", "run", "-p", "80:http", "--network", "none", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out).1.contains("invalid argument \"80:http\" for \"publish\" flag"), "{}", text(&out).1);
    let out = t.run(["container", "ls", "--filter", "colour=red"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(t.ok(["container", "ls", "-a", "--format", "{{.Names}}"]), "objects-dup\n");
}
