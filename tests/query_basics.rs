//! `ps`, `port`, `ls`, `top`, `wait`, `events` and `stats` on real projects, compared with what
//! `docker compose` prints for the same file.
mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::query::{Proj, err, json_lines, ok, out};

const STACK: &str = r#"
services:
  web:
    image: qbusybox:latest
    command: ["sh", "-c", "echo web started; while true; do sleep 1; done"]
    ports:
      - "43500:80"
      - "8080"
  worker:
    image: qbusybox:latest
    command: sh -c 'echo worker up; exec sleep 1000'
    scale: 2
  once:
    image: qbusybox:latest
    command: sh -c 'echo once; exit 3'
"#;

fn state(p: &Proj, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&p.t.ok(["__ctr", "inspect", name])).unwrap();
    v[0]["State"]["Status"].as_str().unwrap_or("").to_string()
}

#[test]
fn ps_port_ls_and_top_on_a_running_project_and_after_stop() {
    common::require_root!();
    let p = Proj::new("qps", STACK, 1);
    p.up();
    p.wait_for("once to exit", Duration::from_secs(10), || state(&p, "qps-once-1") == "exited");

    // The table: compose's columns, running containers only, sorted by name.
    let table = ok(p.p(["ps"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAME ") && lines[0].contains(" IMAGE ") && lines[0].ends_with("PORTS"), "{table}");
    for col in ["COMMAND", "SERVICE", "CREATED", "STATUS"] {
        assert!(lines[0].contains(col), "{table}");
    }
    let names: Vec<&str> = lines[1..].iter().map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(names, ["qps-web-1", "qps-worker-1", "qps-worker-2"], "{table}");
    let web = lines[1];
    assert!(web.contains("qbusybox:latest"), "{web}");
    assert!(web.contains("\"sh -c 'echo web sta…\""), "{web}");
    assert!(web.contains(" Up "), "{web}");
    assert!(web.contains("0.0.0.0:43500->80/tcp"), "{web}");
    assert!(web.contains("->8080/tcp"), "{web}");

    // JSON: one object per line, with compose's keys.
    let js = json_lines(&ok(p.p(["ps", "--format", "json"])));
    assert_eq!(js.len(), 3);
    let keys: Vec<&str> = js[0].as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "Command",
            "CreatedAt",
            "ExitCode",
            "Health",
            "ID",
            "Image",
            "Labels",
            "LocalVolumes",
            "Mounts",
            "Name",
            "Names",
            "Networks",
            "Ports",
            "Project",
            "Publishers",
            "RunningFor",
            "Service",
            "Size",
            "State",
            "Status"
        ]
    );
    let w = &js[0];
    assert_eq!(w["Name"], "qps-web-1");
    assert_eq!(w["Service"], "web");
    assert_eq!(w["Project"], "qps");
    assert_eq!(w["State"], "running");
    assert_eq!(w["Networks"], "qps_default");
    assert_eq!(w["ID"].as_str().unwrap().len(), 12);
    assert!(w["Labels"].as_str().unwrap().contains("com.docker.compose.service=web"));
    let pubs = w["Publishers"].as_array().unwrap();
    assert!(
        pubs.iter().any(|x| x["TargetPort"] == 80 && x["PublishedPort"] == 43500 && x["URL"] == "0.0.0.0" && x["Protocol"] == "tcp"),
        "{pubs:?}"
    );
    let random =
        pubs.iter().find(|x| x["TargetPort"] == 8080 && x["URL"] == "0.0.0.0").expect("the random port")["PublishedPort"].as_u64().unwrap();
    assert!(random > 1024, "{random}");

    // -a adds the exited one-shot; --services, --status, --filter, -q and a service filter.
    let all = ok(p.p(["ps", "-a"]));
    let once = all.lines().find(|l| l.starts_with("qps-once-1")).unwrap_or_else(|| panic!("{all}"));
    assert!(once.contains("Exited (3) "), "{once}");
    assert_eq!(ok(p.p(["ps", "--services"])), "web\nworker\n");
    assert_eq!(ok(p.p(["ps", "-a", "--services"])), "once\nweb\nworker\n");
    let exited = json_lines(&ok(p.p(["ps", "--status", "exited", "--format", "json"])));
    assert_eq!(exited.len(), 1);
    assert_eq!(exited[0]["Name"], "qps-once-1");
    assert_eq!(exited[0]["ExitCode"], 3);
    let ids = ok(p.p(["ps", "-q", "--filter", "status=running"]));
    assert_eq!(ids.lines().count(), 3);
    assert!(ids.lines().all(|l| l.len() == 64 && l.chars().all(|c| c.is_ascii_hexdigit())), "{ids}");
    assert_eq!(ok(p.p(["ps", "worker", "--format", "{{.Name}} {{.State}}"])), "qps-worker-1 running\nqps-worker-2 running\n");
    let o = p.p(["ps", "--filter", "foo=bar"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("unknown filter foo"), "{}", err(&o));

    // From the project's folder, with its file: the same; a service it does not declare fails.
    let here = ok(p.here(["ps", "--format", "{{.Name}}"]));
    assert_eq!(here, "qps-web-1\nqps-worker-1\nqps-worker-2\n");
    let o = p.here(["ps", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("no such service: nosuch"), "{}", err(&o));

    // port: the first binding, as compose prints it.
    assert_eq!(ok(p.p(["port", "web", "80"])), "0.0.0.0:43500\n");
    assert_eq!(ok(p.p(["port", "web", "8080"])), format!("0.0.0.0:{random}\n"));
    let o = p.p(["port", "web", "9999"]);
    assert_eq!(o.status.code(), Some(1));
    // compose lists the published ports of every binding.
    assert!(err(&o).contains("no port 9999/tcp for container qps-web-1: 43500/tcp, "), "{}", err(&o));
    let o = p.p(["port", "--protocol", "udp", "web", "80"]);
    assert!(err(&o).contains("no port 80/udp"), "{}", err(&o));
    let o = p.p(["port", "--index", "3", "worker", "80"]);
    assert!(err(&o).contains("service \"worker\" is not running container #3"), "{}", err(&o));

    // top: one table for the project, SERVICE and # first, CMD last.
    let top = ok(p.p(["top", "worker"]));
    let tl: Vec<&str> = top.lines().collect();
    assert!(tl[0].starts_with("SERVICE  #   UID   PID"), "{top}");
    assert!(tl[0].ends_with("CMD"), "{top}");
    assert!(tl[1].starts_with("worker   1   root ") && tl[1].ends_with("sleep 1000"), "{top}");
    assert!(tl[2].starts_with("worker   2   root "), "{top}");

    // ls: the project, its state counts and files.
    let ls = ok(p.t.run(["ls"]));
    assert!(ls.starts_with("NAME                STATUS              CONFIG FILES\n"), "{ls}");
    assert!(ls.contains(&format!("qps                 running(3)          {}", p.file().display())), "{ls}");
    assert_eq!(ok(p.t.run(["ls", "-q"])), "qps\n");
    assert_eq!(ok(p.t.run(["ls", "--filter", "name=^nomatch"])), "NAME                STATUS              CONFIG FILES\n");
    assert!(err(&p.t.run(["ls", "--filter", "foo=x"])).contains("invalid filter 'foo'"));

    // -p is lowercased, as compose does; what is still no project name is refused in its words.
    assert_eq!(ok(p.t.run(["-p", "QPS", "ps", "-q"])), ok(p.p(["ps", "-q"])));
    let o = p.t.run(["-p", "q/ps", "ps"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("invalid project name \"q/ps\": must consist only of lowercase alphanumeric"), "{}", err(&o));

    // After stop: gone from ps, exited in ps -a and ls -a.
    p.stop("web");
    assert_eq!(ok(p.p(["ps", "--format", "{{.Name}}"])), "qps-worker-1\nqps-worker-2\n");
    let all = ok(p.p(["ps", "-a", "--format", "{{.Name}} {{.State}} {{.Ports}}"]));
    assert!(all.contains("qps-web-1 exited \n"), "{all}");
    let lsj: serde_json::Value = serde_json::from_str(&ok(p.t.run(["ls", "-a", "--format", "json"]))).unwrap();
    assert_eq!(lsj, serde_json::json!([{"Name": "qps", "Status": "exited(2), running(2)", "ConfigFiles": p.file().display().to_string()}]));
    // Without -p nor a file in the folder: compose's error.
    let o = p.t.cmd(["ps"]).current_dir("/").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("no configuration file provided"), "{}", err(&o));
}

#[test]
fn wait_events_and_stats() {
    common::require_root!();
    let p = Proj::new(
        "qwait",
        r#"
services:
  sleeper:
    image: qbusybox:latest
    command: sh -c 'echo up; exec sleep 1000'
  quick:
    image: qbusybox:latest
    command: sh -c 'while [ ! -f /tmp/go ]; do sleep 0.1; done; exit 4'
"#,
        2,
    );
    p.up();

    // events --json: a live stream with compose's fields, the project's containers only.
    let mut ev = p.spawn_cmd(["events", "--json"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let rx = lines_of(&mut ev);
    std::thread::sleep(Duration::from_millis(300));
    ok(p.here(["up", "-d", "--scale", "sleeper=2", "--no-recreate"]));
    let id = p.id("sleeper", 2);
    p.stop("sleeper");
    p.start("sleeper");
    let mut got: Vec<serde_json::Value> = Vec::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(15) && !got.iter().any(|e| e["action"] == "stop" && e["id"] == id.as_str()) {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            got.push(serde_json::from_str(&l).unwrap());
        }
    }
    let _ = ev.kill();
    let _ = ev.wait();
    let mine: Vec<&serde_json::Value> = got.iter().filter(|e| e["id"] == id.as_str()).collect();
    let actions: Vec<&str> = mine.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["create", "start", "kill", "kill", "die", "stop"], "{got:?}");
    let die = mine[4];
    assert_eq!(die["type"], "container");
    assert_eq!(die["service"], "sleeper");
    assert_eq!(die["attributes"]["exitCode"], "137");
    assert_eq!(die["attributes"]["name"], "qwait-sleeper-2");
    assert_eq!(die["attributes"]["image"], "qbusybox:latest");
    assert_eq!(mine[2]["attributes"]["signal"], "15");
    assert_eq!(mine[3]["attributes"]["signal"], "9");
    assert!(die["attributes"].as_object().unwrap().keys().all(|k| !k.starts_with("com.docker.compose.")), "{die}");
    assert!(die["time"].as_str().unwrap().ends_with('Z'), "{die}");
    // The past ones are there with --since.
    let o = p.p(["events", "--json", "--since", "1h", "--until", "0s", "sleeper"]);
    let past = json_lines(&ok(o));
    assert!(past.iter().any(|e| e["action"] == "destroy" || e["action"] == "stop"), "{past:?}");

    // stats once: the running containers' figures from their cgroups and network namespace.
    let stats = json_lines(&ok(p.p(["stats", "--no-stream", "--format", "json"])));
    let s = stats.iter().find(|s| s["Name"] == "qwait-sleeper-1").unwrap_or_else(|| panic!("{stats:?}"));
    assert_eq!(s["ID"].as_str().unwrap().len(), 12);
    assert!(s["CPUPerc"].as_str().unwrap().ends_with('%'));
    assert!(s["MemUsage"].as_str().unwrap().contains(" / "), "{s}");
    assert!(s["NetIO"].as_str().unwrap().contains(" / "), "{s}");
    assert!(s["PIDs"].as_str().unwrap().parse::<u32>().unwrap() >= 1, "{s}");
    let table = ok(p.p(["stats", "--no-stream", "sleeper"]));
    assert!(table.starts_with("CONTAINER ID   NAME              CPU %     MEM USAGE / LIMIT"), "{table}");
    assert!(table.contains("qwait-sleeper-1"), "{table}");

    // wait: blocks until the service's container stops, then exits with its code.
    let quick = p.id("quick", 1);
    let w = p.spawn_cmd(["wait", "quick"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // exec finds the project by -p alone, from any folder, as compose does.
    ok(p.p(["exec", "-T", "quick", "touch", "/tmp/go"]));
    assert!(err(&p.p(["exec", "-T", "nosuch", "true"])).contains("service \"nosuch\" is not running"));
    let t = Instant::now();
    let o = w.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", err(&o));
    assert_eq!(out(&o), format!("container \"{quick}\" exited with status code 4\n"));
    assert!(t.elapsed() < Duration::from_secs(5));
    // Nothing running in the service: compose's error.
    let o = p.p(["wait", "quick"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("no containers for project \"qwait\""), "{}", err(&o));
    // --down-project: once the waited containers stop, the project is taken down.
    let w = p.spawn_cmd(["wait", "--down-project", "sleeper"]).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    ok(p.p(["kill", "sleeper"]));
    let o = w.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(137));
    assert_eq!(ok(p.p(["ps", "-a", "-q"])), "");
    assert!(!p.t.ok(["network", "ls"]).contains("qwait_default"));
}

#[test]
fn status_strings_images_by_name_and_restart_events() {
    common::require_root!();
    let p = Proj::new(
        "qstat",
        r#"
services:
  web:
    image: qbusybox:latest
    command: sh -c 'trap "exit 0" TERM; while true; do sleep 0.2; done'
    healthcheck: {test: ["CMD", "true"], interval: 300ms}
  flap:
    image: qbusybox:latest
    command: sh -c 'exit 1'
    restart: always
  later:
    image: qbusybox:latest
    command: sleep 1000
"#,
        7,
    );
    ok(p.here(["up", "-d", "web", "flap"]));
    ok(p.here(["create", "later"]));
    let status = |name: &str| {
        let all = ok(p.p(["ps", "-a", "--format", "{{.Name}}\t{{.Status}}"]));
        all.lines().find_map(|l| l.strip_prefix(&format!("{name}\t")).map(str::to_string)).unwrap_or_else(|| panic!("{all}"))
    };
    p.wait_for("web to be healthy", Duration::from_secs(10), || status("qstat-web-1").ends_with(" (healthy)"));
    // docker's strings: paused hides the health; a restart loop shows the last exit code.
    ok(p.p(["pause", "web"]));
    let s = status("qstat-web-1");
    assert!(s.starts_with("Up ") && s.ends_with(" (Paused)") && !s.contains("healthy"), "{s}");
    ok(p.p(["unpause", "web"]));
    let mut seen = String::new();
    p.wait_for("flap to be restarting", Duration::from_secs(10), || {
        seen = status("qstat-flap-1");
        seen.starts_with("Restarting (1) ")
    });
    assert!(seen.ends_with(" ago"), "{seen}");
    assert_eq!(status("qstat-later-1"), "Created");

    // images by -p alone, from any folder: the project's containers' images.
    let imgs = json_lines(&ok(p.p(["images", "--format", "json"])));
    let imgs: Vec<serde_json::Value> =
        imgs.into_iter().flat_map(|v| if let serde_json::Value::Array(a) = v { a } else { vec![v] }).collect();
    let names: Vec<&str> = imgs.iter().map(|i| i["ContainerName"].as_str().unwrap()).collect();
    assert_eq!(names, ["qstat-flap-1", "qstat-later-1", "qstat-web-1"], "{imgs:?}");
    assert!(imgs.iter().all(|i| i["Repository"] == "qbusybox" && i["Tag"] == "latest"), "{imgs:?}");
    let table = ok(p.p(["images"]));
    assert!(table.starts_with("CONTAINER ") && table.contains("qstat-web-1 "), "{table}");

    // restart: docker's events, ending with `restart`.
    let id = p.id("web", 1);
    let mut ev = p.spawn_cmd(["events", "--json", "web"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let rx = lines_of(&mut ev);
    std::thread::sleep(Duration::from_millis(300));
    ok(p.p(["restart", "web"]));
    let mut actions: Vec<String> = Vec::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(15) && !actions.iter().any(|a| a == "restart") {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            let e: serde_json::Value = serde_json::from_str(&l).unwrap();
            if e["id"] == id.as_str()
                && !e["action"].as_str().unwrap().starts_with("exec_")
                && !e["action"].as_str().unwrap().starts_with("health_status")
            {
                actions.push(e["action"].as_str().unwrap().to_string());
            }
        }
    }
    let _ = ev.kill();
    let _ = ev.wait();
    assert_eq!(actions, ["kill", "die", "stop", "start", "restart"]);
    ok(p.p(["down", "-t", "0"]));
}

/// The lines a child prints on its stdout, as they come.
fn lines_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
