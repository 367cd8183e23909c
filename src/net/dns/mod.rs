//! The embedded resolver: one detached `berth __dns` per state root, serving every network of the
//! root on its gateway addresses.
//!
//! Who runs it and why: berth has no daemon, and the per-container supervisors are
//! single-threaded and come and go, so none of them can own a socket that serves other
//! containers. One process per root, started by [`crate::net::attach`] when absent (a flock on
//! `dns/dns.lock` says whether one runs), keeps the sockets open across container starts and
//! stops. It runs in the host namespace, so forwarding reaches the host's own resolvers
//! (127.0.0.53 included) without entering containers. It watches `networks/` (inotify) and swaps
//! its records in place when an endpoints file changes, so queries are never dropped while
//! containers start, stop and scale; it exits when the root has no network left.

pub mod records;
pub mod server;
pub mod upstream;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant, SystemTime};

use notify::Watcher;

use super::NetError;
use super::network::{self, Endpoints, Network};
use crate::state::StateRoot;
use crate::util::lock::{FileLock, LockError};
use crate::util::sys::{self, ProcId};
use records::Records;
use server::{Listener, Shared};

static EXE: OnceLock<PathBuf> = OnceLock::new();

/// Sets the berth binary that [`ensure_running`] starts (tests link the library into another
/// binary); by default it is the running executable.
pub fn set_berth_exe(path: PathBuf) {
    let _ = EXE.set(path);
}

fn berth_exe() -> Result<PathBuf, NetError> {
    if let Some(p) = EXE.get() {
        return Ok(p.clone());
    }
    std::env::current_exe().map_err(|e| NetError::io("find the berth executable", e))
}

fn lock_path(root: &StateRoot) -> PathBuf {
    root.dns_dir().join("dns.lock")
}
fn pid_path(root: &StateRoot) -> PathBuf {
    root.dns_dir().join("dns.pid")
}

/// Whether the resolver whose pid file is in `root` runs and is serving.
fn serving(root: &StateRoot) -> bool {
    let Ok(text) = std::fs::read_to_string(pid_path(root)) else { return false };
    let mut w = text.split_whitespace();
    match (w.next().and_then(|p| p.parse::<i32>().ok()), w.next().and_then(|s| s.parse::<u64>().ok())) {
        (Some(pid), Some(start_time)) => ProcId { pid, start_time }.alive(),
        _ => false,
    }
}

/// Starts the root's resolver unless one runs or is starting, without waiting: a new network
/// calls it so that the resolver's start overlaps the firewall and the container's creation;
/// [`ensure_running`] at attach then waits, and reports any failure.
pub(crate) fn start_early(root: &StateRoot) {
    if serving(root) {
        return;
    }
    if let Ok(l) = FileLock::try_exclusive(&lock_path(root)) {
        drop(l);
        let _ = spawn(root);
    }
}

/// Starts the root's resolver unless one runs, and waits until it serves (its pid file is
/// written once its sockets are bound), so that a container never asks before it listens.
/// Returns true when it started it (it then serves the current state already).
pub fn ensure_running(root: &StateRoot) -> Result<bool, NetError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut spawned = false;
    loop {
        if serving(root) {
            return Ok(spawned);
        }
        if !spawned {
            match FileLock::try_exclusive(&lock_path(root)) {
                Ok(l) => {
                    drop(l);
                    spawn(root)?;
                    spawned = true;
                }
                // One is starting, or leaving and about to look at the networks again.
                Err(LockError::Busy { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if Instant::now() > deadline {
            return Err(NetError::Dns(format!(
                "the DNS resolver of {} did not start; see {}",
                root.path().display(),
                root.dns_dir().join("dns.log").display()
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn spawn(root: &StateRoot) -> Result<(), NetError> {
    let log_path = root.dns_dir().join("dns.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| crate::util::fs::FsError::io("open", &log_path, e))?;
    let log2 = log.try_clone().map_err(|e| crate::util::fs::FsError::io("open", &log_path, e))?;
    let mut cmd = Command::new(berth_exe()?);
    cmd.arg("--root").arg(root.path()).arg("__dns");
    cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
    // Nothing of the caller's (a supervisor's pipes, reserved ports) may leak into the resolver,
    // and it is nobody's child: it outlives its starter.
    sys::detach_on_spawn(&mut cmd, Vec::new());
    let mut child = cmd.spawn().map_err(|e| NetError::io("start the DNS resolver (berth __dns)", e))?;
    let _ = child.wait();
    Ok(())
}

/// Stops the root's resolver, if it runs, and waits for it to exit.
pub fn stop(root: &StateRoot) {
    let Ok(text) = std::fs::read_to_string(pid_path(root)) else { return };
    let mut w = text.split_whitespace();
    let (Some(pid), Some(start_time)) = (w.next().and_then(|p| p.parse::<i32>().ok()), w.next().and_then(|s| s.parse::<u64>().ok())) else {
        return;
    };
    let resolver = ProcId { pid, start_time };
    if !resolver.alive() {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(2);
    while resolver.alive() {
        if Instant::now() > deadline {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            std::thread::sleep(Duration::from_millis(50));
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The networks and their endpoints; a network half-created or half-removed is skipped.
fn load(root: &StateRoot) -> Result<Vec<(Network, Endpoints)>, NetError> {
    let mut out = Vec::new();
    for n in network::list(root)? {
        let eps = network::read_endpoints(root, &n.name).unwrap_or_default();
        out.push((n, eps));
    }
    Ok(out)
}

fn log(msg: impl std::fmt::Display) {
    eprintln!("{} berth-dns: {msg}", chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
}

/// The resolver's main loop (`berth __dns`).
pub fn run(root: &StateRoot) -> Result<(), NetError> {
    std::fs::create_dir_all(root.dns_dir()).map_err(|e| crate::util::fs::FsError::io("create directory", &root.dns_dir(), e))?;
    let mut lock = match FileLock::try_exclusive(&lock_path(root)) {
        Ok(l) => Some(l),
        Err(LockError::Busy { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let me = ProcId::current();
    let pid_line = format!("{} {}\n", me.pid, me.start_time);
    let mut announced = false;

    let (tx, rx) = mpsc::channel::<Wake>();
    let ctl_tx = tx.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.map(|e| relevant(&e)).unwrap_or(true) {
            let _ = tx.send(Wake::Changed);
        }
    })
    .map_err(|e| NetError::Dns(format!("cannot watch {}: {e}", root.networks_dir().display())))?;
    watcher
        .watch(&root.networks_dir(), notify::RecursiveMode::Recursive)
        .map_err(|e| NetError::Dns(format!("cannot watch {}: {e}", root.networks_dir().display())))?;

    let shared =
        Shared::new(Records::default(), upstream::host_upstreams()).map_err(|e| NetError::io("open the resolver's upstream sockets", e))?;
    serve_control(root, ctl_tx);
    let mut acks: Vec<mpsc::Sender<()>> = Vec::new();
    let mut listeners: HashMap<IpAddr, Listener> = HashMap::new();
    let mut resolv_mtime = mtime(upstream::HOST_RESOLV_CONF);
    log(format!("serving state root {}", root.path().display()));
    // Long-lived, like a supervisor: keep resident only the code it goes on running.
    sys::release_startup_code();
    loop {
        let state = match load(root) {
            Ok(s) => s,
            Err(e) => {
                log(format!("cannot read the network state: {e}"));
                if !root.networks_dir().is_dir() {
                    break;
                }
                Vec::new()
            }
        };
        if state.is_empty() {
            for a in acks.drain(..) {
                let _ = a.send(());
            }
            for (_, l) in listeners.drain() {
                l.stop();
            }
            // Let a starter see no resolver before looking again, so that a network created
            // meanwhile is never left without one.
            let _ = std::fs::remove_file(pid_path(root));
            drop(lock.take());
            if load(root).map(|s| s.is_empty()).unwrap_or(true) {
                break;
            }
            match FileLock::try_exclusive(&lock_path(root)) {
                Ok(l) => {
                    lock = Some(l);
                    announced = false;
                }
                Err(_) => break,
            }
            continue;
        }
        let recs = Records::build(&state);
        let want: Vec<IpAddr> = recs.listen_addrs().copied().collect();
        *shared.records.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(recs);
        let gone: Vec<IpAddr> = listeners.keys().filter(|ip| !want.contains(ip)).copied().collect();
        for ip in gone {
            if let Some(l) = listeners.remove(&ip) {
                l.stop();
            }
        }
        for ip in want {
            if let std::collections::hash_map::Entry::Vacant(slot) = listeners.entry(ip) {
                match Listener::start(&shared, ip) {
                    Ok(l) => {
                        slot.insert(l);
                    }
                    Err(e) => log(format!("cannot listen on {ip}:53: {e}")),
                }
            }
        }
        for a in acks.drain(..) {
            let _ = a.send(());
        }
        // Serving now: say so (starters wait for this file).
        if !announced {
            crate::util::fs::write_atomic(&pid_path(root), pid_line.as_bytes())?;
            announced = true;
        }
        // Wait for a change; re-read the host's resolv.conf when it changes.
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(w) => {
                    for w in std::iter::once(w).chain(rx.try_iter()) {
                        if let Wake::Sync(a) = w {
                            acks.push(a);
                        }
                    }
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let m = mtime(upstream::HOST_RESOLV_CONF);
                    if m != resolv_mtime {
                        resolv_mtime = m;
                        *shared.host_upstreams.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(upstream::host_upstreams());
                    }
                    if !root.networks_dir().is_dir() {
                        break;
                    }
                    // Retry addresses that could not be bound.
                    if shared.records.read().map(|r| r.listen_addrs().any(|ip| !listeners.contains_key(ip))).unwrap_or(false) {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    }
    log("no network left; exiting");
    if lock.is_some() {
        let _ = std::fs::remove_file(pid_path(root));
        let _ = std::fs::remove_file(ctl_path(root));
    }
    Ok(())
}

/// Why the main loop wakes up.
enum Wake {
    /// Something under `networks/` changed.
    Changed,
    /// A starter asks to be told once the records are current.
    Sync(mpsc::Sender<()>),
}

fn ctl_path(root: &StateRoot) -> PathBuf {
    root.dns_dir().join("ctl.sock")
}

/// Answers `sync` requests on `dns/ctl.sock`: reload now and say `ok` once the new records
/// serve. inotify would get there within milliseconds; this closes even that window.
fn serve_control(root: &StateRoot, tx: mpsc::Sender<Wake>) {
    let path = ctl_path(root);
    let _ = std::fs::remove_file(&path);
    let listener = match std::os::unix::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            log(format!("cannot listen on {}: {e}; updates rely on inotify alone", path.display()));
            return;
        }
    };
    let _ = std::thread::Builder::new().name("dns-ctl".into()).spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
            let mut buf = [0u8; 16];
            let n = std::io::Read::read(&mut conn, &mut buf).unwrap_or(0);
            if &buf[..n] != b"sync\n" {
                continue;
            }
            let (ack_tx, ack_rx) = mpsc::channel();
            if tx.send(Wake::Sync(ack_tx)).is_err() {
                return;
            }
            if ack_rx.recv_timeout(Duration::from_secs(1)).is_ok() {
                let _ = std::io::Write::write_all(&mut conn, b"ok\n");
            }
        }
    });
}

/// Asks the root's resolver to load the current state and waits until it serves it (at most
/// a second). Best effort: without an answer, inotify brings the change a moment later.
pub fn sync(root: &StateRoot) {
    let Ok(mut conn) = std::os::unix::net::UnixStream::connect(ctl_path(root)) else { return };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(1)));
    if std::io::Write::write_all(&mut conn, b"sync\n").is_ok() {
        let mut buf = [0u8; 4];
        let _ = std::io::Read::read(&mut conn, &mut buf);
    }
}

/// Whether a change under `networks/` may change the records: files being written (dot
/// names), published ports, and mere reads (our own) do not.
fn relevant(e: &notify::Event) -> bool {
    use notify::EventKind;
    use notify::event::ModifyKind;
    let kind = matches!(
        e.kind,
        EventKind::Create(_)
            | EventKind::Remove(_)
            | EventKind::Modify(ModifyKind::Name(_) | ModifyKind::Data(_) | ModifyKind::Any)
            | EventKind::Any
    );
    let interesting = |p: &std::path::Path| {
        let hidden = p.file_name().is_some_and(|n| n.as_encoded_bytes().starts_with(b"."));
        let ports = p.components().any(|c| c.as_os_str() == ".ports");
        !hidden && !ports
    };
    kind && (e.paths.is_empty() || e.paths.iter().any(|p| interesting(p)))
}

fn mtime(path: &str) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
