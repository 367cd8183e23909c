//! A command killed while it starts a container leaves the supervisor to finish that start; the
//! next operation on the container waits for it instead of racing it.
mod common;

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::runtime::{Rt, err};

/// The live supervisors of this root for container `id`, from their command lines.
fn supervisors(rt: &Rt, id: &str) -> usize {
    let root = rt.t.root().display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| {
            let args: Vec<String> = c.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            args.windows(3).any(|w| w[0] == root && w[1] == "__supervise" && w[2] == id)
        })
        .count()
}

#[test]
fn start_waits_while_another_supervisor_is_starting_the_container() {
    common::require_root!();
    let rt = Rt::new();
    let id = rt.create(&rt.spec("rtrace-held", "exec sleep 1000"));
    // What a supervisor holds while it starts the container.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(rt.t.root().join("containers").join(&id).join("starting"))
        .unwrap();
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let t = Instant::now();
    let mut start =
        rt.t.cmd(["__ctr", "start", "rtrace-held"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert!(start.try_wait().unwrap().is_none(), "start did not wait for the starting supervisor");
    assert_eq!(rt.status("rtrace-held"), "created");
    drop(lock);
    let o = start.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(t.elapsed() >= Duration::from_millis(600));
    assert_eq!(rt.status("rtrace-held"), "running");
    rt.ctr_ok(["rm", "-f", "rtrace-held"]);
}

#[test]
fn a_start_killed_midway_then_started_again_leaves_one_supervisor() {
    common::require_root!();
    let rt = Rt::new();
    for (i, delay) in [0u64, 2, 5, 10, 20, 40].into_iter().enumerate() {
        let name = format!("rtrace-kill{i}");
        let id = rt.create(&rt.spec(&name, "exec sleep 1000"));
        let mut start =
            rt.t.cmd(["__ctr", "start", &name]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        unsafe { libc::kill(start.id() as i32, libc::SIGKILL) };
        let _ = start.wait();
        let o = rt.ctr(["start", &name]);
        assert!(o.status.success(), "delay {delay} ms: {}", err(&o));
        assert_eq!(rt.status(&name), "running", "delay {delay} ms");
        assert_eq!(supervisors(&rt, &id), 1, "delay {delay} ms");
        let o = rt.ctr(["rm", "-f", &name]);
        assert!(o.status.success(), "delay {delay} ms: {}", err(&o));
        assert_eq!(supervisors(&rt, &id), 0, "delay {delay} ms");
    }
}
