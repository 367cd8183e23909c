//! The container process as a user sees it: exit codes, PID 1, hostname, env, user, workdir,
//! run and exec, logs, inspect.
mod common;

use std::time::Duration;

use common::runtime::{Rt, err, out};
use serde_json::json;

#[test]
fn exit_codes_pid1_and_output_streams() {
    common::require_root!();
    let rt = Rt::new();
    let o = rt.run(&rt.spec("codes", "echo pid=$$; echo oops >&2; exit 7"));
    assert_eq!(o.status.code(), Some(7), "stderr: {}", err(&o));
    assert_eq!(out(&o), "pid=1\n");
    assert!(err(&o).contains("oops"));
    // A signal death reports 128 + the signal, as a shell would.
    rt.run_d(&rt.spec("sig", "exec sleep 1000"));
    rt.ctr_ok(["kill", "-s", "KILL", "sig"]);
    assert_eq!(rt.ctr_ok(["wait", "sig"]).trim(), "137");
    assert_eq!(rt.inspect("sig")["State"]["ExitCode"], 137);
    // A missing command is 127 with Docker's message; the container stays, created.
    let mut s = rt.spec("missing", "");
    s["Cmd"] = json!(["no-such-command"]);
    let o = rt.run(&s);
    assert_eq!(o.status.code(), Some(127));
    assert!(err(&o).contains("exec: \"no-such-command\": executable file not found in $PATH"), "{}", err(&o));
    assert_eq!(rt.inspect("missing")["State"]["ExitCode"], 127);
}

#[test]
fn hostname_env_user_and_workdir() {
    common::require_root!();
    let rt = Rt::new();
    let mut s = rt.spec("ident", "hostname; echo $FOO; echo $HOME; id; pwd; cat /etc/hostname; cat /proc/sys/kernel/domainname");
    s["Hostname"] = json!("web1");
    s["Domainname"] = json!("example.test");
    s["Env"] = json!(["FOO=bar baz"]);
    s["User"] = json!("nobody");
    s["WorkingDir"] = json!("/var/www/new");
    let o = rt.run(&s);
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "web1");
    assert_eq!(lines[1], "bar baz");
    assert_eq!(lines[2], "/");
    assert_eq!(lines[3], "uid=65534(nobody) gid=65534(nobody) groups=65534(nobody)");
    assert_eq!(lines[4], "/var/www/new");
    assert_eq!(lines[5], "web1");
    assert_eq!(lines[6], "example.test");
    // Numeric users need no passwd entry; the default hostname is the short id.
    let mut s = rt.spec("num", "id -u; id -g; hostname");
    s["User"] = json!("1234:5678");
    let o = rt.run(&s);
    let text = out(&o);
    let l: Vec<&str> = text.lines().collect();
    assert_eq!(&l[..2], &["1234", "5678"]);
    let id = rt.inspect("num")["Id"].as_str().unwrap().to_string();
    assert_eq!(l[2], &id[..12]);
    // An unknown user name is refused before anything runs.
    let mut s = rt.spec("nouser", "true");
    s["User"] = json!("ghost");
    let o = rt.run(&s);
    assert_ne!(o.status.code(), Some(0));
    assert!(err(&o).contains("unable to find user ghost"), "{}", err(&o));
}

#[test]
fn exec_runs_in_the_container_and_propagates_exit_codes() {
    common::require_root!();
    let rt = Rt::new();
    let mut s = rt.spec("ex", "echo started; exec sleep 1000");
    s["Env"] = json!(["FROM_CONTAINER=yes"]);
    s["WorkingDir"] = json!("/tmp");
    rt.run_d(&s);
    let (code, o, _) = rt.exec("ex", &["sh", "-c", "echo $FROM_CONTAINER $EXTRA; pwd; hostname; cat /proc/1/cmdline | tr '\\0' ' '"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(lines[0], "yes");
    assert_eq!(lines[1], "/tmp");
    assert_eq!(lines[3].trim(), "sleep 1000");
    assert_eq!(rt.exec("ex", &["sh", "-c", "exit 42"]).0, 42);
    // -u, -w, -e.
    let o = rt.ctr(["exec", "-u", "nobody", "-w", "/var", "-e", "EXTRA=1", "ex", "sh", "-c", "id -u; pwd; echo $EXTRA"]);
    assert_eq!(out(&o), "65534\n/var\n1\n");
    // stdin with -i.
    let mut c = rt.t.cmd(["__ctr", "exec", "-i", "ex", "sh", "-c", "tr a-z A-Z"]);
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(out(&o), "HELLO\n");
    // A missing command: 126 (docker exec's, not run's 127) with Docker's message.
    let (code, _, e) = rt.exec("ex", &["nope"]);
    assert_eq!(code, 126);
    assert!(e.contains("executable file not found"), "{e}");
    // exec into a stopped container is refused.
    rt.ctr_ok(["stop", "-t", "0", "ex"]);
    let (code, _, e) = rt.exec("ex", &["true"]);
    assert_ne!(code, 0);
    assert!(e.contains("is not running"), "{e}");
}

#[test]
fn logs_survive_the_cli_and_filter() {
    common::require_root!();
    let rt = Rt::new();
    let s = rt.spec("lg", "for i in 1 2 3; do echo err$i >&2; done; sleep 0.3; for i in 1 2 3; do echo out$i; done; sleep 1000");
    rt.run_d(&s);
    // The CLI that started the container has exited; the supervisor keeps logging.
    rt.wait_for("six lines", Duration::from_secs(10), || {
        let (o, e) = rt.logs("lg", &[]);
        o.lines().count() + e.lines().count() == 6
    });
    let (o, e) = rt.logs("lg", &[]);
    assert_eq!(o, "out1\nout2\nout3\n");
    assert_eq!(e, "err1\nerr2\nerr3\n");
    // --tail counts the last records.
    let (o, e) = rt.logs("lg", &["--tail", "2"]);
    assert_eq!((o.as_str(), e.as_str()), ("out2\nout3\n", ""));
    let (o, _) = rt.logs("lg", &["-t", "--tail", "1"]);
    let (ts, rest) = o.split_once(' ').unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    assert_eq!(rest, "out3\n");
    let (o, e) = rt.logs("lg", &["--since", "2099-01-01T00:00:00Z"]);
    assert!(o.is_empty() && e.is_empty());
    // Docker's json-file format on disk.
    let log = rt.inspect("lg")["LogPath"].as_str().unwrap().to_string();
    let first = std::fs::read_to_string(&log).unwrap().lines().next().unwrap().to_string();
    let rec: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert!(rec["log"].as_str().unwrap().ends_with('\n') && rec["time"].is_string() && rec["stream"].is_string());
    // -f follows until the container stops.
    let mut c = rt.t.cmd(["__ctr", "logs", "-f", "lg"]);
    c.stdout(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    rt.ctr_ok(["exec", "lg", "sh", "-c", "echo late > /proc/1/fd/1"]);
    std::thread::sleep(Duration::from_millis(300));
    rt.ctr_ok(["stop", "-t", "0", "lg"]);
    let o = child.wait_with_output().unwrap();
    assert_eq!(out(&o), "out1\nout2\nout3\nlate\n");
}

#[test]
fn rotation_by_max_size_and_max_file() {
    common::require_root!();
    let rt = Rt::new();
    let mut s = rt.spec("rot", "i=0; while [ $i -lt 300 ]; do echo line-$i-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; i=$((i+1)); done");
    s["LogConfig"] = json!({"Type": "json-file", "Config": {"max-size": "4k", "max-file": "3"}});
    let o = rt.run(&s);
    assert!(o.status.success());
    let log = rt.inspect("rot")["LogPath"].as_str().unwrap().to_string();
    let dir = std::path::Path::new(&log).parent().unwrap();
    let files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("-json.log"))
        .collect();
    assert_eq!(files.len(), 3, "{files:?}");
    for f in &files {
        assert!(std::fs::metadata(dir.join(f)).unwrap().len() <= 4096);
    }
    let (o, _) = rt.logs("rot", &[]);
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(*lines.last().unwrap(), "line-299-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    // What is kept is contiguous.
    let first: usize = lines[0].split('-').nth(1).unwrap().parse().unwrap();
    assert_eq!(lines.len(), 300 - first);
}

#[test]
fn inspect_and_list_report_docker_fields() {
    common::require_root!();
    let rt = Rt::new();
    let mut s = rt.spec("insp", "sleep 1000");
    s["Labels"] = json!({"com.example": "x"});
    s["RestartPolicy"] = json!({"Name": "on-failure", "MaximumRetryCount": 2});
    let id = rt.run_d(&s);
    let v = rt.inspect("insp");
    assert_eq!(v["Id"], id);
    assert_eq!(v["Name"], "/insp");
    assert_eq!(v["State"]["Status"], "running");
    assert_eq!(v["State"]["Running"], true);
    assert!(v["State"]["Pid"].as_i64().unwrap() > 1);
    assert_eq!(v["Path"], "sh");
    assert_eq!(v["Config"]["Labels"]["com.example"], "x");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    let ls = out(&rt.ctr(["ls"]));
    assert!(ls.contains("insp") && ls.contains("Up "), "{ls}");
    // Lookup by id prefix works too.
    assert_eq!(rt.inspect(&id[..10])["Name"], "/insp");
    let o = rt.ctr(["inspect", "nope"]);
    assert!(!o.status.success() && err(&o).contains("No such container: nope"));
    // A duplicate name is refused with Docker's message.
    let o = rt.run(&rt.spec("insp", "true"));
    assert!(err(&o).contains("is already in use by container"), "{}", err(&o));
    // rm of a running container needs -f.
    let o = rt.ctr(["rm", "insp"]);
    assert!(err(&o).contains("Stop the container before attempting removal or force remove"), "{}", err(&o));
    rt.ctr_ok(["rm", "-f", "insp"]);
    assert!(!rt.ctr(["inspect", "insp"]).status.success());
}

#[test]
fn tty_is_a_pty_of_the_containers_own_devpts() {
    common::require_root!();
    let rt = Rt::new();
    let mut s = rt.spec("tty", "tty; echo TERM=$TERM; readlink /proc/self/fd/1; exec sleep 1000");
    s["Tty"] = json!(true);
    rt.run_d(&s);
    rt.wait_for("output", Duration::from_secs(5), || rt.logs("tty", &[]).0.lines().count() >= 3);
    let (o, _) = rt.logs("tty", &[]);
    // A terminal: output lines end in \r\n, and stdout is the pty.
    assert_eq!(o, "/dev/pts/0\r\nTERM=xterm\r\n/dev/pts/0\r\n");
    // exec -t gets the next pty of the same devpts.
    let (code, o, e) = rt.exec("tty", &["-t", "tty"]);
    assert_eq!(code, 0, "{e}");
    assert!(o.starts_with("/dev/pts/1"), "{o:?}");
    // Without -t the process has pipes, not a terminal.
    let (_, o, _) = rt.exec("tty", &["sh", "-c", "tty; true"]);
    assert!(o.contains("not a tty"), "{o:?}");
}

#[test]
fn compose_exec_finds_the_service_container_by_labels() {
    common::require_root!();
    let rt = Rt::new();
    let dir = rt.t.scratch().join("proj");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("compose.yaml"), "services:\n  web:\n    image: busybox\n  db:\n    image: busybox\n").unwrap();
    let mut s = rt.spec("rtexec-web-1", "exec sleep 1000");
    s["Labels"] = json!({
        "com.docker.compose.project": "rtexec",
        "com.docker.compose.service": "web",
        "com.docker.compose.container-number": "1",
        "com.docker.compose.oneoff": "False",
    });
    rt.run_d(&s);
    let f = dir.join("compose.yaml");
    let f = f.to_str().unwrap();
    let o = rt.t.run(["-f", f, "-p", "rtexec", "exec", "-T", "web", "sh", "-c", "echo hi; exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert_eq!(out(&o), "hi\n");
    let o = rt.t.run(["-f", f, "-p", "rtexec", "exec", "-T", "db", "true"]);
    assert!(err(&o).contains("service \"db\" is not running"), "{}", err(&o));
    let o = rt.t.run(["-f", f, "-p", "rtexec", "exec", "-T", "nope", "true"]);
    assert!(err(&o).contains("service \"nope\" is not running"), "{}", err(&o));
    // As `docker compose exec` (rc 126), with Docker's message.
    let o = rt.t.run(["-f", f, "-p", "rtexec", "exec", "-T", "web", "nosuchcmd"]);
    assert_eq!(o.status.code(), Some(126));
    assert!(err(&o).contains("executable file not found in $PATH"), "{}", err(&o));
}

#[test]
fn network_modes_none_host_and_another_containers() {
    common::require_root!();
    let rt = Rt::new();
    let mut s = rt.spec("net-none", "echo $(ls /sys/class/net); readlink /proc/self/ns/net; exec sleep 1000");
    s["NetworkMode"] = json!("none");
    rt.run_d(&s);
    rt.wait_for("output", Duration::from_secs(5), || rt.logs("net-none", &[]).0.lines().count() == 2);
    let (o, _) = rt.logs("net-none", &[]);
    let mut l = o.lines();
    assert_eq!(l.next().unwrap().trim(), "lo", "only the loopback: {o}");
    let none_ns = l.next().unwrap().to_string();
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap().display().to_string();
    assert_ne!(none_ns, host_ns);
    // Sharing another container's network namespace.
    let mut s = rt.spec("net-join", "readlink /proc/self/ns/net");
    s["NetworkMode"] = json!({"container": "net-none"});
    assert_eq!(out(&rt.run(&s)).trim(), none_ns);
    // The host's.
    let mut s = rt.spec("net-host", "readlink /proc/self/ns/net; cat /proc/sys/net/ipv4/ip_unprivileged_port_start");
    s["NetworkMode"] = json!("host");
    let o = rt.run(&s);
    let t = out(&o);
    let mut l = t.lines();
    assert_eq!(l.next().unwrap(), host_ns, "{}", err(&o));
    // No namespaced defaults are written into the host's network namespace.
    assert_eq!(l.next().unwrap(), std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap().trim());
    // Joining a container that does not run is refused.
    rt.ctr_ok(["stop", "-t", "0", "net-none"]);
    let mut s = rt.spec("net-join2", "true");
    s["NetworkMode"] = json!({"container": "net-none"});
    let o = rt.run(&s);
    assert!(err(&o).contains("is not running"), "{}", err(&o));
}
