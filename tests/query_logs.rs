//! `logs`: merged in time order with compose's prefixes, and `-f` following restarts and a
//! scale-up until no container of the selection runs.
mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::query::{Proj, err, ok};

#[test]
fn logs_are_merged_in_time_order_with_compose_prefixes() {
    common::require_root!();
    let p = Proj::new(
        "qlogs",
        r#"
services:
  a:
    image: qbusybox:latest
    command: sh -c 'echo a1; sleep 0.6; echo a3; exec sleep 1000'
  b:
    image: qbusybox:latest
    command: sh -c 'sleep 0.3; echo b2 >&2; sleep 0.6; echo b4; exec sleep 1000'
"#,
        3,
    );
    p.up();
    p.wait_for("all four lines", Duration::from_secs(10), || ok(p.p(["logs", "--no-log-prefix"])).lines().count() == 4);
    assert_eq!(ok(p.p(["logs", "--no-log-prefix"])), "a1\nb2\na3\nb4\n");
    // Prefixes padded to the widest name plus one, stderr lines included, no color off a TTY.
    assert_eq!(ok(p.p(["logs"])), "a-1  | a1\nb-1  | b2\na-1  | a3\nb-1  | b4\n");
    assert_eq!(ok(p.p(["logs", "--no-color", "a"])), "a-1  | a1\na-1  | a3\n");
    assert_eq!(ok(p.p(["logs", "--tail", "1"])), "a-1  | a3\nb-1  | b4\n");
    assert_eq!(ok(p.p(["logs", "-n", "0"])), "");
    // Colors: compose's rainbow, in the order the containers are registered.
    assert_eq!(ok(p.p(["--ansi", "always", "logs", "--tail", "1"])), "\x1b[36ma-1  | \x1b[0ma3\n\x1b[33mb-1  | \x1b[0mb4\n");
    // Timestamps as Docker writes them (RFC 3339, nanoseconds, UTC).
    let t = ok(p.p(["logs", "-t", "--tail", "1", "a"]));
    let ts = t.strip_prefix("a-1  | ").and_then(|r| r.strip_suffix(" a3\n")).unwrap_or_else(|| panic!("{t}"));
    assert_eq!(ts.len(), 30, "{ts}");
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    // --since / --until select by time.
    assert_eq!(ok(p.p(["logs", "--no-log-prefix", "--until", ts])), "a1\nb2\na3\n");
    assert_eq!(ok(p.p(["logs", "--no-log-prefix", "--since", ts, "a"])), "a3\n");
    // From the folder with the file: the same; --index needs one service.
    assert_eq!(ok(p.here(["logs", "--no-log-prefix", "b"])), "b2\nb4\n");
    assert_eq!(ok(p.p(["logs", "--index", "1", "--no-log-prefix", "b"])), "b2\nb4\n");
    let o = p.p(["logs", "--index", "1"]);
    assert!(err(&o).contains("--index requires one service to be selected"), "{}", err(&o));
    let o = p.p(["logs", "--index", "2", "a"]);
    assert!(err(&o).contains("service \"a\" is not running container #2"), "{}", err(&o));
    let o = p.here(["logs", "nosuch"]);
    assert!(err(&o).contains("no such service: nosuch"), "{}", err(&o));
}

/// Collects lines from a child's stdout until `want` is among them.
fn until(rx: &Receiver<String>, seen: &mut Vec<String>, want: &str, max: Duration) {
    let t = Instant::now();
    while !seen.iter().any(|l| l == want) {
        if t.elapsed() > max {
            panic!("timed out waiting for {want:?}; got {seen:#?}");
        }
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push(l);
        }
    }
}

#[test]
fn follow_keeps_up_with_restarts_and_scale_up_and_ends_with_the_project() {
    common::require_root!();
    let p = Proj::new(
        "qfollow",
        r#"
services:
  r:
    image: qbusybox:latest
    command: sh -c 'echo r-start $$(hostname); exec sleep 1000'
  s:
    image: qbusybox:latest
    command: sh -c 'echo s-start; exec sleep 1000'
"#,
        4,
    );
    p.up();
    p.wait_for("both started", Duration::from_secs(10), || ok(p.p(["logs"])).lines().count() == 2);
    let mut all = p.spawn_cmd(["logs", "-f"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut only_r = p.spawn_cmd(["logs", "-f", "--no-log-prefix", "r"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let lines = |c: &mut std::process::Child| {
        let (tx, rx) = std::sync::mpsc::channel();
        let out = c.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        rx
    };
    let rx = lines(&mut all);
    let rxr = lines(&mut only_r);
    let mut seen = Vec::new();
    let mut seen_r = Vec::new();
    let r1 = p.id("r", 1);
    let host1 = &r1[..12];
    until(&rx, &mut seen, "s-1  | s-start", Duration::from_secs(10));
    until(&rx, &mut seen, &format!("r-1  | r-start {host1}"), Duration::from_secs(10));
    until(&rxr, &mut seen_r, &format!("r-start {host1}"), Duration::from_secs(10));

    // r stops: compose's exit line; the follower of r alone ends, as nothing of it runs.
    p.stop("r");
    until(&rx, &mut seen, "r-1 exited with code 137", Duration::from_secs(10));
    wait_exit(&mut only_r, "logs -f r");
    while let Ok(l) = rxr.recv_timeout(Duration::from_millis(200)) {
        seen_r.push(l);
    }
    assert_eq!(seen_r, [format!("r-start {host1}"), "r-1 exited with code 137".to_string()]);

    // A restart of the same container: its new output follows.
    p.start("r");
    let t = Instant::now();
    while seen.iter().filter(|l| **l == format!("r-1  | r-start {host1}")).count() < 2 {
        assert!(t.elapsed() < Duration::from_secs(10), "no second start: {seen:#?}");
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push(l);
        }
    }
    // A scale-up: the new replica's output joins.
    ok(p.here(["up", "-d", "--scale", "r=2", "--no-recreate"]));
    let r2 = p.id("r", 2);
    until(&rx, &mut seen, &format!("r-2  | r-start {}", &r2[..12]), Duration::from_secs(10));

    // Nothing of the project runs any more: -f ends by itself, successfully.
    p.stop("r");
    assert!(all.try_wait().unwrap().is_none(), "logs -f ended while s runs: {seen:#?}");
    p.stop("s");
    wait_exit(&mut all, "logs -f");
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
        seen.push(l);
    }
    for want in ["r-2 exited with code 137", "s-1 exited with code 137"] {
        assert!(seen.iter().any(|l| l == want), "{want}: {seen:#?}");
    }
}

fn wait_exit(c: &mut std::process::Child, what: &str) {
    let t = Instant::now();
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            assert!(st.success(), "{what}: {st}");
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{what} did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
}
