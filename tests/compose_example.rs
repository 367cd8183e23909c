//! The example stack (`examples/compose/compose.yaml`) end to end, as a user runs it: `up -d`,
//! the containers running with their port, the page served, the logs, `stop`/`start`, `rm`, a
//! second `up` that does nothing, `down` with nothing left, and `-p` from another folder.
mod common;

use std::time::Duration;

use common::compose::{Stack, example_yaml, free_port, http_get, wait_until};

#[test]
fn example_stack_up_stop_start_rm_down() {
    common::require_root!();
    let port = free_port();
    let s = Stack::new("cexample", &example_yaml(port));
    let (_, err) = s.ok(["up", "-d"]);
    for line in [
        " Network cexample_default  Created",
        " Volume cexample_site  Created",
        " Container cexample-content-1  Exited",
        " Container cexample-web-1  Healthy",
        " Container cexample-client-1  Started",
    ] {
        assert!(err.contains(line), "missing {line:?} in:\n{err}");
    }
    // The containers, named and labelled as compose does, web publishing its port.
    assert_eq!(s.containers(), ["cexample-client-1", "cexample-content-1", "cexample-web-1"]);
    assert_eq!(s.status("cexample-web-1"), "running");
    assert_eq!(s.status("cexample-client-1"), "running");
    assert_eq!(s.status("cexample-content-1"), "exited");
    let web = s.inspect("cexample-web-1").unwrap();
    assert_eq!(web["State"]["Health"]["Status"], "healthy");
    assert_eq!(web["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"], port.to_string());
    let l = &web["Config"]["Labels"];
    assert_eq!(l["com.docker.compose.project"], "cexample");
    assert_eq!(l["com.docker.compose.service"], "web");
    assert_eq!(l["com.docker.compose.container-number"], "1");
    assert_eq!(l["com.docker.compose.oneoff"], "False");
    assert_eq!(l["com.docker.compose.depends_on"], "content:service_completed_successfully:false");
    assert_eq!(l["com.docker.compose.config-hash"].as_str().unwrap().len(), 64);
    assert_eq!(l["com.docker.compose.project.working_dir"], s.dir.display().to_string());
    // The published port answers with the page the one-shot wrote into the volume.
    let page = http_get(port, Duration::from_secs(10)).expect("web answers on its published port");
    assert!(page.contains("hello from berth"), "{page}");
    // ps: the running services with their ports (the one-shot only with -a).
    let (ps, _) = s.ok(["ps"]);
    let line =
        |name: &str, text: &str| text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in\n{text}")).to_string();
    assert!(ps.starts_with("NAME "), "{ps}");
    let w = line("cexample-web-1", &ps);
    assert!(w.contains(" web ") && w.contains("Up ") && w.contains("(healthy)") && w.contains(&format!(":{port}->8080/tcp")), "{w}");
    assert!(line("cexample-client-1", &ps).contains("Up "), "{ps}");
    assert!(!ps.contains("cexample-content-1"), "{ps}");
    let (psa, _) = s.ok(["ps", "-a"]);
    assert!(line("cexample-content-1", &psa).contains("Exited (0)"), "{psa}");
    // logs: the client reaches web by its service name, so its log shows the page.
    wait_until(Duration::from_secs(15), "the client's log", || s.ok(["logs", "client"]).0.contains("client-1  | hello from berth"));

    // A second `up -d` does nothing and says so.
    let (_, err) = s.ok(["up", "-d"]);
    assert!(err.contains(" Container cexample-web-1  Running") && err.contains(" Container cexample-client-1  Running"), "{err}");
    assert!(!err.contains("Created") && !err.contains("Recreate"), "{err}");

    // stop: everything exited, dependents first; start brings it back.
    let web_id = s.id("cexample-web-1");
    let (_, err) = s.ok(["stop", "-t", "1"]);
    let pos = |x: &str| err.find(x).unwrap_or_else(|| panic!("{x} in {err}"));
    assert!(pos("Container cexample-client-1  Stopped") < pos("Container cexample-web-1  Stopping"), "{err}");
    for c in ["cexample-client-1", "cexample-web-1", "cexample-content-1"] {
        assert_eq!(s.status(c), "exited", "{c}");
    }
    let (psa, _) = s.ok(["ps", "-a"]);
    assert_eq!(psa.lines().filter(|l| l.contains("Exited (")).count(), 3, "{psa}");
    s.ok(["start"]);
    assert_eq!(s.status("cexample-web-1"), "running");
    assert_eq!(s.status("cexample-client-1"), "running");
    assert_eq!(s.id("cexample-web-1"), web_id, "start keeps the containers");
    assert!(http_get(port, Duration::from_secs(10)).is_some_and(|p| p.contains("hello from berth")));

    // rm: only stopped containers, unless -s.
    let (out, _) = s.ok(["rm", "-f"]);
    assert_eq!(out, "Going to remove cexample-content-1\n");
    assert_eq!(s.status("cexample-content-1"), "missing");
    s.ok(["stop", "-t", "1", "client"]);
    let (out, _) = s.ok(["rm", "-f", "-s", "client"]);
    assert_eq!(out, "Going to remove cexample-client-1\n");
    assert_eq!(s.containers(), ["cexample-web-1"]);

    // down: containers and network go, the named volume stays; nothing is left on the host.
    s.ok(["up", "-d"]);
    let objects = s.host_objects();
    assert!(!objects.bridges.is_empty() && !objects.veths.is_empty(), "{objects:?}");
    let (_, err) = s.ok(["down", "-t", "1"]);
    assert!(err.contains(" Network cexample_default  Removed"), "{err}");
    assert!(s.containers().is_empty());
    assert!(s.networks().is_empty());
    assert_eq!(s.volumes(), ["cexample_site"]);
    let left = objects.left();
    assert!(left.is_empty(), "left after down: {left:?}");
    assert!(http_get(port, Duration::from_millis(300)).is_none(), "the port is closed after down");
}

#[test]
fn a_project_is_managed_by_name_from_another_folder() {
    common::require_root!();
    let s = Stack::new(
        "cremote",
        "services:\n  a:\n    image: busybox\n    command: [\"sleep\", \"1000\"]\n    init: true\n  b:\n    image: busybox\n    command: [\"sleep\", \"1000\"]\n    init: true\n    depends_on: [a]\n",
    );
    s.ok(["up", "-d"]);
    let objects = s.host_objects();
    // From a folder without a compose file, by `-p` alone: the labels are the project.
    let elsewhere = s.t.scratch().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let run = |args: &[&str]| {
        let o = s.t.cmd(["-p", "cremote"]).args(args).current_dir(&elsewhere).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let o = s.t.cmd(["-p", "cremote", "ps", "--format", "json"]).current_dir(&elsewhere).output().unwrap();
    let ps = String::from_utf8_lossy(&o.stdout);
    assert_eq!(ps.lines().count(), 2, "{ps}{}", String::from_utf8_lossy(&o.stderr));
    assert!(ps.contains("\"Name\":\"cremote-a-1\"") && ps.contains("\"Name\":\"cremote-b-1\""), "{ps}");
    let err = run(&["stop"]);
    assert!(err.find("cremote-b-1  Stopped").unwrap() < err.find("cremote-a-1  Stopping").unwrap(), "dependents stop first:\n{err}");
    assert_eq!(s.status("cremote-a-1"), "exited");
    let err = run(&["start"]);
    assert!(err.find("cremote-a-1  Started").unwrap() < err.find("cremote-b-1  Starting").unwrap(), "{err}");
    assert_eq!(s.status("cremote-b-1"), "running");
    run(&["restart", "b"]);
    run(&["pause"]);
    assert_eq!(s.status("cremote-a-1"), "paused");
    run(&["unpause"]);
    run(&["kill", "-s", "SIGTERM", "b"]);
    wait_until(Duration::from_secs(5), "b to exit", || s.status("cremote-b-1") == "exited");
    let err = run(&["down"]);
    assert!(err.contains(" Network cremote_default  Removed"), "{err}");
    assert!(s.containers().is_empty() && s.networks().is_empty());
    assert!(objects.left().is_empty(), "{:?}", objects.left());
    // Without -p and without a file, the error says what is missing.
    let o = s.t.cmd(["down"]).current_dir(&elsewhere).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no configuration file provided"), "{}", String::from_utf8_lossy(&o.stderr));
}
