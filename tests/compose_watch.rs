//! `berth watch` (compose's `develop.watch`) and `berth volumes`, checked as a user checks them:
//! a file written on the host shows up in the container, a deleted one goes, an ignored one
//! never arrives, a rebuild rule gives a new container with the new image, Ctrl-C ends the
//! watch and leaves the project up.
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::compose::Stack;

fn yaml(services: &str, net: u8) -> String {
    format!("services:\n{services}\nnetworks:\n  default:\n    ipam:\n      config:\n        - subnet: 10.213.{net}.0/24\n")
}

/// A running `berth watch`, killed if the test fails before it ends it.
struct Watching {
    child: Option<Child>,
    out: Arc<Mutex<String>>,
}

impl Watching {
    fn start(s: &Stack, args: &[&str]) -> Watching {
        let mut child = s.cmd(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("run berth watch");
        let stdout = child.stdout.take().unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        let o = out.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut o = o.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        });
        let w = Watching { child: Some(child), out };
        w.wait_for("Watch enabled", Duration::from_secs(60));
        w
    }

    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    #[track_caller]
    fn wait_for(&self, text: &str, within: Duration) {
        let end = Instant::now() + within;
        while !self.output().contains(text) {
            assert!(Instant::now() < end, "no {text:?} in the watch's output:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ctrl-C: the exit code.
    fn interrupt(mut self) -> i32 {
        let mut child = self.child.take().unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                panic!("berth watch did not end on SIGINT");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `exec SERVICE cat PATH` until it gives `want` (None: until the file is gone).
#[track_caller]
fn eventually_cat(s: &Stack, service: &str, path: &str, want: Option<&str>, within: Duration) {
    let end = Instant::now() + within;
    loop {
        let o = s.run(["exec", "-T", service, "cat", path]);
        let got = o.status.success().then(|| String::from_utf8_lossy(&o.stdout).into_owned());
        if got.as_deref() == want {
            return;
        }
        assert!(Instant::now() < end, "{service}:{path} is {got:?}, expected {want:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn watch_syncs_files_and_deletions_honours_ignores_and_ends_on_ctrl_c() {
    common::require_root!();
    let s = Stack::new(
        "cwsync",
        &yaml(
            "  web:\n    image: busybox:latest\n    command: sleep 1000\n    develop:\n      watch:\n        - action: sync\n          path: ./app\n          target: /srv/app\n          ignore: [\"*.tmp\", \"cache/\"]\n        - action: sync+exec\n          path: ./hook\n          target: /hook\n          exec:\n            command: [\"sh\", \"-c\", \"cat /hook/h.txt > /hook-ran\"]\n  other:\n    image: busybox:latest\n    command: sleep 1000\n",
            60,
        ),
    );
    std::fs::create_dir_all(s.dir.join("app")).unwrap();
    std::fs::create_dir_all(s.dir.join("hook")).unwrap();
    // Without --no-up, watch brings the project up first.
    let w = Watching::start(&s, &["watch"]);
    assert_eq!(s.status("cwsync-web-1"), "running");
    assert_eq!(s.status("cwsync-other-1"), "running");
    let long = Duration::from_secs(10);

    std::fs::write(s.dir.join("app/hello.txt"), "hi\n").unwrap();
    eventually_cat(&s, "web", "/srv/app/hello.txt", Some("hi\n"), long);
    w.wait_for("Syncing service \"web\" after 1 changes were detected", long);
    // A new folder, its parents created in the container; a changed file replaced.
    std::fs::create_dir_all(s.dir.join("app/sub/deep")).unwrap();
    std::fs::write(s.dir.join("app/sub/deep/f.txt"), "deep\n").unwrap();
    std::fs::write(s.dir.join("app/hello.txt"), "hello again\n").unwrap();
    eventually_cat(&s, "web", "/srv/app/sub/deep/f.txt", Some("deep\n"), long);
    eventually_cat(&s, "web", "/srv/app/hello.txt", Some("hello again\n"), long);
    // Ignored: a pattern, and a folder.
    std::fs::write(s.dir.join("app/scratch.tmp"), "no\n").unwrap();
    std::fs::create_dir_all(s.dir.join("app/cache")).unwrap();
    std::fs::write(s.dir.join("app/cache/c.txt"), "no\n").unwrap();
    std::fs::write(s.dir.join("app/marker.txt"), "m\n").unwrap();
    eventually_cat(&s, "web", "/srv/app/marker.txt", Some("m\n"), long);
    let (ls, _) = s.ok(["exec", "-T", "web", "ls", "-a", "/srv/app"]);
    assert!(!ls.contains("scratch.tmp") && !ls.contains("cache"), "ignored files were synced: {ls}");
    // Deleted on the host, deleted in the container.
    std::fs::remove_file(s.dir.join("app/hello.txt")).unwrap();
    eventually_cat(&s, "web", "/srv/app/hello.txt", None, long);
    // sync+exec: synced, then the command runs in the container.
    std::fs::write(s.dir.join("hook/h.txt"), "hooked\n").unwrap();
    eventually_cat(&s, "web", "/hook-ran", Some("hooked\n"), long);
    // The other service got nothing.
    assert!(!s.run(["exec", "-T", "other", "ls", "/srv/app"]).status.success());

    // Ctrl-C: compose's exit code for an interrupted watch, and the project stays up.
    assert_eq!(w.interrupt(), 130);
    assert_eq!(s.status("cwsync-web-1"), "running");
    assert_eq!(s.status("cwsync-other-1"), "running");
    s.ok(["down", "-t", "0"]);
    assert!(s.containers().is_empty(), "{:?}", s.containers());
}

#[test]
fn watch_rebuild_recreates_the_service_with_its_new_image() {
    common::require_root!();
    let s = Stack::new(
        "cwbuild",
        &yaml(
            "  web:\n    build: .\n    command: sleep 1000\n    develop:\n      watch:\n        - action: rebuild\n          path: ./v.txt\n        - action: restart\n          path: ./r.txt\n",
            61,
        ),
    );
    std::fs::write(s.dir.join("Dockerfile"), "FROM busybox\nCOPY v.txt /v.txt\n").unwrap();
    std::fs::write(s.dir.join("v.txt"), "one\n").unwrap();
    std::fs::write(s.dir.join("r.txt"), "r\n").unwrap();
    s.ok(["up", "-d"]);
    let id0 = s.id("cwbuild-web-1");
    let image0 = s.inspect("cwbuild-web-1").unwrap()["Image"].clone();
    eventually_cat(&s, "web", "/v.txt", Some("one\n"), Duration::from_secs(5));
    let w = Watching::start(&s, &["watch", "--no-up", "--quiet"]);
    std::fs::write(s.dir.join("v.txt"), "two\n").unwrap();
    w.wait_for("Rebuilding service(s) [\"web\"] after changes were detected...", Duration::from_secs(10));
    w.wait_for("service(s) [\"web\"] successfully built", Duration::from_secs(60));
    eventually_cat(&s, "web", "/v.txt", Some("two\n"), Duration::from_secs(60));
    let v = s.inspect("cwbuild-web-1").unwrap();
    assert_ne!(v["Id"].as_str().unwrap(), id0, "the container is recreated");
    assert_ne!(v["Image"], image0, "from the new image");
    assert_eq!(v["State"]["Status"], "running");
    // restart: the same container, started again.
    let id1 = s.id("cwbuild-web-1");
    let started1 = v["State"]["StartedAt"].clone();
    std::fs::write(s.dir.join("r.txt"), "r2\n").unwrap();
    w.wait_for("service(s) [\"web\"] restarted", Duration::from_secs(30));
    let v = s.inspect("cwbuild-web-1").unwrap();
    assert_eq!(v["Id"].as_str().unwrap(), id1);
    assert_ne!(v["State"]["StartedAt"], started1);
    assert_eq!(v["State"]["Status"], "running");
    assert_eq!(w.interrupt(), 130);
    assert_eq!(s.status("cwbuild-web-1"), "running");
    s.ok(["down", "-t", "0", "--rmi", "local"]);
}

#[test]
fn watch_refuses_what_compose_refuses() {
    common::require_root!();
    let s = Stack::new(
        "cwerr",
        &yaml(
            "  plain:\n    image: busybox:latest\n  img:\n    image: busybox:latest\n    develop:\n      watch:\n        - action: rebuild\n          path: ./x\n",
            62,
        ),
    );
    let err = |args: &[&str]| {
        let o = s.run(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    assert!(err(&["watch", "--no-up", "nope"]).contains("no such service: nope"));
    assert!(err(&["watch", "--no-up", "plain"]).contains("none of the selected services is configured for watch"));
    assert!(err(&["watch", "--no-up", "img"]).contains("can't watch service \"img\" with action rebuild without a build context"));
    assert!(err(&["up", "-d", "--watch", "img"]).contains("--detach cannot be combined with"));
    assert!(s.containers().is_empty(), "nothing was started: {:?}", s.containers());
}

#[test]
fn volumes_lists_the_project_volumes_as_compose() {
    common::require_root!();
    let s = Stack::new(
        "cwvols",
        &yaml(
            "  web:\n    image: busybox:latest\n    command: sleep 1000\n    volumes: [data:/data, /anon]\n  db:\n    image: busybox:latest\n    command: sleep 1000\n    volumes: [other:/o]\nvolumes:\n  data: {}\n  other:\n    labels: {team: a}\n  unused: {}\n",
            63,
        ),
    );
    s.ok(["up", "-d"]);
    let (out, _) = s.ok(["volumes"]);
    assert_eq!(out, "DRIVER    VOLUME NAME\nlocal     cwvols_data\nlocal     cwvols_other\n");
    let (out, _) = s.ok(["volumes", "web"]);
    assert_eq!(out, "DRIVER    VOLUME NAME\nlocal     cwvols_data\n");
    let (out, _) = s.ok(["volumes", "-q"]);
    assert_eq!(out, "cwvols_data\ncwvols_other\n");
    let (out, _) = s.ok(["volumes", "--format", "json", "db"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["Name"], "cwvols_other");
    assert_eq!(v["Driver"], "local");
    assert!(v["Labels"].as_str().unwrap().contains("team=a"), "{v}");
    let (out, _) = s.ok(["volumes", "--format", "{{.Name}}"]);
    assert_eq!(out, "cwvols_data\ncwvols_other\n");
    s.ok(["down", "-t", "0", "-v"]);
    let (out, _) = s.ok(["volumes"]);
    assert_eq!(out, "DRIVER    VOLUME NAME\n");
}

#[test]
fn up_watch_streams_logs_and_syncs() {
    common::require_root!();
    let s = Stack::new(
        "cwup",
        &yaml(
            "  web:\n    image: busybox:latest\n    command: sh -c 'echo ready; exec sleep 1000'\n    develop:\n      watch:\n        - action: sync\n          path: ./app\n          target: /app\n",
            64,
        ),
    );
    std::fs::create_dir_all(s.dir.join("app")).unwrap();
    let w = Watching::start(&s, &["up", "--watch"]);
    w.wait_for("web-1  | ready", Duration::from_secs(10));
    let out = w.output();
    assert!(out.find("        ⦿ Watch enabled").unwrap() < out.find("Attaching to web-1").unwrap(), "{out}");
    std::fs::write(s.dir.join("app/a.txt"), "a\n").unwrap();
    eventually_cat(&s, "web", "/app/a.txt", Some("a\n"), Duration::from_secs(10));
    w.wait_for("Syncing service \"web\" after 1 changes were detected", Duration::from_secs(5));
    // Ctrl-C ends `up` as it ends an attached up: the containers are stopped.
    let code = w.interrupt();
    assert_eq!(code, 130);
    assert_eq!(s.status("cwup-web-1"), "exited");
    s.ok(["down", "-t", "0"]);
}

#[test]
fn watch_initial_sync_then_sync_restart() {
    common::require_root!();
    let s = Stack::new(
        "cwinit",
        &yaml(
            "  web:\n    image: busybox:latest\n    command: sleep 1000\n    stop_signal: SIGKILL\n    develop:\n      watch:\n        - action: sync+restart\n          path: ./conf\n          target: /etc/app\n          initial_sync: true\n",
            65,
        ),
    );
    std::fs::create_dir_all(s.dir.join("conf/d")).unwrap();
    std::fs::write(s.dir.join("conf/a.conf"), "1\n").unwrap();
    std::fs::write(s.dir.join("conf/d/b.conf"), "b\n").unwrap();
    s.ok(["up", "-d"]);
    let w = Watching::start(&s, &["watch", "--no-up"]);
    // The initial sync is done before the watch says it is enabled.
    let (a, _) = s.ok(["exec", "-T", "web", "cat", "/etc/app/a.conf", "/etc/app/d/b.conf"]);
    assert_eq!(a, "1\nb\n");
    let started = s.inspect("cwinit-web-1").unwrap()["State"]["StartedAt"].clone();
    std::fs::write(s.dir.join("conf/a.conf"), "2\n").unwrap();
    w.wait_for("service(s) [\"web\"] restarted", Duration::from_secs(20));
    let out = w.output();
    assert!(out.find("Syncing service \"web\" after 1 changes were detected").unwrap() < out.find("restarted").unwrap(), "{out}");
    eventually_cat(&s, "web", "/etc/app/a.conf", Some("2\n"), Duration::from_secs(5));
    let v = s.inspect("cwinit-web-1").unwrap();
    assert_ne!(v["State"]["StartedAt"], started, "restarted");
    assert_eq!(v["State"]["Status"], "running");
    assert_eq!(w.interrupt(), 130);
    s.ok(["down", "-t", "0"]);
}
