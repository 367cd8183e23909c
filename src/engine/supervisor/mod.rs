//! The per-container supervisor: `berth __supervise <id>`, detached (setsid, stdio on
//! /dev/null), single-threaded, one poll loop.
//!
//! It launches the container ([`crate::engine::runtime::launch`]), tells the waiting CLI
//! "started" (or why not) on fd 3, and then owns the container: it logs its output, answers the
//! control socket (stop, kill, pause, unpause), runs healthchecks, records exit codes, OOM kills
//! and times, applies the restart policy, and on the final stop detaches the network, removes the
//! cgroup and exits. The container's PID 1 dies with it (PDEATHSIG), so a killed supervisor never
//! leaves an unsupervised container behind, and the CLI reports it as dead.

pub mod health;
pub mod restart;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use crate::engine::cgroups::Cgroup;
use crate::engine::events;
use crate::engine::runtime::ctl::{self, Request, Response, Started};
use crate::engine::runtime::exec::{self, ExecSpec, ExecStdio};
use crate::engine::runtime::launch::{self, Launched};
use crate::engine::runtime::logs::{LineSplitter, LogWriter, now_rfc3339};
use crate::engine::runtime::spec::ContainerConfig;
use crate::engine::runtime::state::{ContainerState, HealthStatus, Paths, Status};
use crate::engine::runtime::stdio as att;
use crate::engine::runtime::{RuntimeError, ops};
use crate::net::proxy::{Proxy, Token as ProxyToken};
use crate::state::StateRoot;
use crate::util::error::one_line;
use crate::util::sys::signal::{OnDrop, SignalFd};
use crate::util::sys::{self, ProcId, file};

use health::HealthMonitor;
use restart::RestartManager;

/// Output is read in chunks of this size; the attach queue stops reading beyond `MAX_QUEUE`.
const CHUNK: usize = 32 * 1024;
const MAX_QUEUE: usize = 1 << 20;
/// How long the output of an exited container may keep flowing before it is cut.
const DRAIN: Duration = Duration::from_secs(2);

/// The entry point of `berth __supervise`, as `start` spawns it (see `ops::spawn_supervisor`):
/// takes over the fds it passed — 3, the start report; `attach_fd` (4), the attach socket; 5, the
/// starting lock — closes every other, and runs [`main`].
pub fn main_inherited(root: StateRoot, id: &str, attach_fd: Option<i32>) -> i32 {
    // Only fds 0-2, 3, 4 and 5 are ours to keep.
    let _ = sys::close_from(6);
    // SAFETY: this runs first thing in the process `start` spawned: fds 3 to 5 were inherited
    // across its exec (when open at all), and nothing in this process has taken them.
    let (notify, attach, starting) = unsafe { (sys::inherited(3), attach_fd.and_then(|fd| sys::inherited(fd)), sys::inherited(5)) };
    main(root, id, notify, attach, starting)
}

/// The supervisor proper. Returns the process exit code.
///
/// `starting` is the container's starting lock (see `ops::start`): held, with this process's
/// pid and start time in it, until the outcome of the start is recorded in the state.
pub fn main(root: StateRoot, id: &str, notify: Option<OwnedFd>, attach: Option<OwnedFd>, starting: Option<OwnedFd>) -> i32 {
    crate::timing!("supervisor: main entered");
    if let Some(fd) = &starting {
        let me = ProcId::current();
        let text = format!("{} {}\n", me.pid, me.start_time);
        let _ = nix::sys::uio::pwrite(fd, text.as_bytes(), 0);
    }
    sys::ignore_sigpipe();
    let sigfd = match signalfd() {
        Ok(fd) => fd,
        Err(e) => return report_early(notify, &format!("cannot set up signals: {e}")),
    };
    let mut sup = match Supervisor::new(root, id, sigfd, attach) {
        Ok(s) => s,
        Err(e) => return report_early(notify, &one_line(&e)),
    };
    crate::timing!("supervisor: state and control socket ready");
    // A start that fails is reported to the CLI, recorded, and ends the supervisor.
    if let Err(e) = sup.start_instance() {
        let code = e.exit_code().unwrap_or(127);
        let msg = match &e {
            RuntimeError::Start { msg, .. } => msg.clone(),
            other => one_line(other),
        };
        sup.state.status = Status::Created;
        sup.state.exit_code = code;
        sup.state.error = msg.clone();
        sup.finish();
        drop(starting);
        notify_cli(notify, &Started { error: Some(msg), code, pid: 0 });
        return 1;
    }
    // Running is recorded: another process may now judge the container by its state.
    drop(starting);
    let pid = sup.instance.as_ref().map(|i| i.init.pid).unwrap_or(0);
    crate::timing!("supervisor: container running, telling the CLI");
    notify_cli(notify, &Started { error: None, code: 0, pid });
    sys::release_startup_code();
    sup.run();
    0
}

fn report_early(notify: Option<OwnedFd>, msg: &str) -> i32 {
    notify_cli(notify, &Started { error: Some(msg.to_string()), code: 127, pid: 0 });
    1
}

fn notify_cli(notify: Option<OwnedFd>, msg: &Started) {
    if let Some(fd) = notify {
        let mut line = serde_json::to_vec(msg).unwrap_or_default();
        line.push(b'\n');
        let _ = sys::write_all(fd.as_raw_fd(), &line);
    }
}

/// The signals the supervisor takes, through a signalfd in its poll loop, all its life.
fn signalfd() -> std::io::Result<SignalFd> {
    SignalFd::new(&[libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT], OnDrop::KeepBlocked)
}

/// One run of the container.
struct Instance {
    init: ProcId,
    started: Instant,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    pty: Option<OwnedFd>,
    split_out: LineSplitter,
    split_err: LineSplitter,
    stdin_queue: VecDeque<u8>,
    close_stdin: bool,
    /// Set once PID 1 is reaped: (wait status, when).
    exited: Option<(libc::c_int, Instant)>,
    _reservations: Vec<OwnedFd>,
    /// The IPv6 side of published ports, relayed to the container (see `net::proxy`).
    proxy: Proxy,
    attached: bool,
}

impl Instance {
    fn drained(&self) -> bool {
        self.stdout.is_none() && self.stderr.is_none() && self.pty.is_none()
    }
}

struct Probe {
    pid: i32,
    /// Probes on cgroup v2 have no exit signal: their exit shows on this pidfd.
    pidfd: OwnedFd,
    out: Option<OwnedFd>,
    buf: Vec<u8>,
    status: Option<i32>,
}

struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    dead: bool,
}

struct Supervisor {
    root: StateRoot,
    paths: Paths,
    cfg: ContainerConfig,
    state: ContainerState,
    cgroup: Cgroup,
    seccomp: Option<Vec<u8>>,
    log: Option<LogWriter>,
    sigfd: SignalFd,
    listener: UnixListener,
    clients: Vec<Client>,
    attach: Option<OwnedFd>,
    attach_queue: VecDeque<Vec<u8>>,
    attach_bytes: usize,
    /// The exit of the first run goes to the attached CLI; later runs are not attached.
    attach_done: bool,
    instance: Option<Instance>,
    oom_base: u64,
    stop_deadline: Option<Instant>,
    killed: bool,
    stop_waiters: Vec<UnixStream>,
    restart: RestartManager,
    restart_at: Option<Instant>,
    health: Option<HealthMonitor>,
    probe: Option<Probe>,
    done: bool,
}

impl Supervisor {
    fn new(root: StateRoot, id: &str, sigfd: SignalFd, attach: Option<OwnedFd>) -> Result<Self, RuntimeError> {
        let paths = Paths::new(&root, id);
        let cfg: ContainerConfig = crate::util::fs::read_json(&paths.config())?.ok_or_else(|| RuntimeError::NoSuchContainer(id.into()))?;
        let mut state = crate::util::fs::read_json::<ContainerState>(&paths.state())?.unwrap_or_else(ContainerState::new);
        state.supervisor = Some(ProcId::current());
        state.restart_count = 0;
        state.error.clear();
        state.health = None;
        let cgroup = Cgroup::for_container(&cfg.id)?;
        cgroup.create(&cfg.resources, cfg.privileged)?;
        let log = if cfg.log_config.enabled() {
            let (size, files) = cfg.log_config.rotation().map_err(|msg| RuntimeError::Invalid { name: cfg.name.clone(), msg })?;
            Some(LogWriter::open(&paths.log(), size, files).map_err(|e| RuntimeError::io("open the log", &paths.log(), e))?)
        } else {
            None
        };
        let seccomp = match cfg.seccomp() {
            crate::engine::runtime::spec::SeccompMode::Unconfined => None,
            crate::engine::runtime::spec::SeccompMode::Default => {
                let caps = crate::engine::runtime::caps::compute(cfg.privileged, &cfg.cap_add, &cfg.cap_drop);
                Some(crate::engine::runtime::seccomp::program(None, caps, &root.tmp_dir())?)
            }
            crate::engine::runtime::spec::SeccompMode::Profile(p) => {
                let caps = crate::engine::runtime::caps::compute(cfg.privileged, &cfg.cap_add, &cfg.cap_drop);
                Some(crate::engine::runtime::seccomp::program(Some(&p), caps, &root.tmp_dir())?)
            }
        };
        // Bind the control socket relative to the container directory (long paths).
        let dirfd = file::open(&paths.dir, libc::O_PATH | libc::O_DIRECTORY).map_err(|e| RuntimeError::io("open", &paths.dir, e))?;
        let sock = ctl::via_fd(&dirfd, "ctl.sock");
        let _ = std::fs::remove_file(&sock);
        let listener = UnixListener::bind(&sock).map_err(|e| RuntimeError::io("listen on", &paths.control_socket(), e))?;
        listener.set_nonblocking(true).map_err(|e| RuntimeError::io("listen on", &paths.control_socket(), e))?;
        if let Some(a) = &attach {
            let _ = sys::set_nonblock(a.as_raw_fd(), true);
        }
        let restart = RestartManager::new(cfg.restart_policy.clone());
        Ok(Supervisor {
            root,
            paths,
            cfg,
            state,
            cgroup,
            seccomp,
            log,
            sigfd,
            listener,
            clients: Vec::new(),
            attach,
            attach_queue: VecDeque::new(),
            attach_bytes: 0,
            attach_done: false,
            instance: None,
            oom_base: 0,
            stop_deadline: None,
            killed: false,
            stop_waiters: Vec::new(),
            restart,
            restart_at: None,
            health: None,
            probe: None,
            done: false,
        })
    }

    fn save(&self) {
        // A state write that fails is retried on the next change; the supervisor keeps going.
        let _ = crate::engine::runtime::state::write_state(&self.paths.state(), &self.state);
    }

    /// Launches one run of the container and records it as running.
    fn start_instance(&mut self) -> Result<(), RuntimeError> {
        self.oom_base = self.cgroup.oom_kills();
        let l: Launched = launch::launch(&self.root, &self.cfg, &self.cgroup, self.seccomp.clone())?;
        for fd in [&l.stdout, &l.stderr, &l.pty].into_iter().flatten() {
            let _ = sys::set_nonblock(fd.as_raw_fd(), true);
        }
        if let Some(fd) = &l.stdin {
            let _ = sys::set_nonblock(fd.as_raw_fd(), true);
        }
        let now = Instant::now();
        self.state.status = Status::Running;
        self.state.init = Some(l.init);
        self.state.exit_code = 0;
        self.state.oom_killed = false;
        self.state.error.clear();
        self.state.started_at = now_rfc3339();
        self.state.network = Some(l.attachment.clone());
        self.health = HealthMonitor::new(&self.cfg.healthcheck, now);
        self.state.health = self.health.as_ref().map(|h| h.state.clone());
        self.instance = Some(Instance {
            init: l.init,
            started: now,
            stdout: l.stdout,
            stderr: l.stderr,
            stdin: l.stdin,
            pty: l.pty,
            split_out: LineSplitter::default(),
            split_err: LineSplitter::default(),
            stdin_queue: VecDeque::new(),
            close_stdin: false,
            exited: None,
            _reservations: l.reservations,
            proxy: Proxy::new(l.forwards).watching(&self.root),
            attached: l.attached,
        });
        self.killed = false;
        self.save();
        events::container(&self.root, &self.cfg, "start", &[]);
        Ok(())
    }

    fn run(&mut self) {
        let mut buf = vec![0u8; CHUNK];
        while !self.done {
            let mut fds: Vec<libc::pollfd> = Vec::new();
            let mut roles: Vec<Role> = Vec::new();
            let mut add = |fd: RawFd, ev: libc::c_short, role: Role, fds: &mut Vec<libc::pollfd>| {
                fds.push(libc::pollfd { fd, events: ev, revents: 0 });
                roles.push(role);
            };
            add(self.sigfd.as_raw_fd(), libc::POLLIN, Role::Signal, &mut fds);
            add(self.listener.as_raw_fd(), libc::POLLIN, Role::Listener, &mut fds);
            for (i, c) in self.clients.iter().enumerate() {
                add(c.stream.as_raw_fd(), libc::POLLIN, Role::Client(i), &mut fds);
            }
            let reading = self.attach_bytes < MAX_QUEUE;
            if let Some(inst) = &self.instance {
                if reading {
                    if let Some(fd) = &inst.stdout {
                        add(fd.as_raw_fd(), libc::POLLIN, Role::Out(Stream::Stdout), &mut fds);
                    }
                    if let Some(fd) = &inst.stderr {
                        add(fd.as_raw_fd(), libc::POLLIN, Role::Out(Stream::Stderr), &mut fds);
                    }
                    if let Some(fd) = &inst.pty {
                        add(fd.as_raw_fd(), libc::POLLIN, Role::Out(Stream::Pty), &mut fds);
                    }
                }
                if !inst.stdin_queue.is_empty() {
                    if let Some(fd) = inst.stdin.as_ref().or(inst.pty.as_ref()) {
                        add(fd.as_raw_fd(), libc::POLLOUT, Role::StdinOut, &mut fds);
                    }
                }
            }
            if let Some(a) = &self.attach {
                let ev = if self.attach_queue.is_empty() { libc::POLLIN } else { libc::POLLIN | libc::POLLOUT };
                add(a.as_raw_fd(), ev, Role::Attach, &mut fds);
            }
            if let Some(inst) = &self.instance {
                if !inst.proxy.is_empty() {
                    let mut want = Vec::new();
                    inst.proxy.interests(&mut want);
                    for (fd, ev, t) in want {
                        add(fd, ev, Role::Proxy(t), &mut fds);
                    }
                }
            }
            if let Some(p) = &self.probe {
                if let Some(fd) = &p.out {
                    add(fd.as_raw_fd(), libc::POLLIN, Role::Probe, &mut fds);
                }
                if p.status.is_none() {
                    add(p.pidfd.as_raw_fd(), libc::POLLIN, Role::ProbeExit, &mut fds);
                }
            }
            let timeout = self.next_timeout();
            if sys::poll(&mut fds, timeout).is_err() {
                continue;
            }
            for (pfd, role) in fds.iter().zip(roles.iter()) {
                if pfd.revents == 0 {
                    continue;
                }
                match role {
                    Role::Signal => self.on_signals(),
                    Role::Listener => self.on_accept(),
                    Role::Client(i) => self.on_client(*i),
                    Role::Out(s) => self.on_output(*s, &mut buf),
                    Role::StdinOut => self.flush_stdin(),
                    Role::Attach => self.on_attach(pfd.revents),
                    Role::Probe => self.on_probe_output(&mut buf),
                    Role::ProbeExit => self.reap(),
                    Role::Proxy(t) => {
                        if let Some(inst) = &mut self.instance {
                            inst.proxy.ready(*t, pfd.revents);
                        }
                    }
                }
            }
            self.clients.retain(|c| !c.dead);
            if let Some(inst) = &mut self.instance {
                inst.proxy.sweep();
            }
            self.on_time();
        }
    }

    fn next_timeout(&self) -> libc::c_int {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        consider(self.stop_deadline);
        consider(self.instance.as_ref().and_then(|i| i.proxy.deadline()));
        consider(self.restart_at);
        if self.state.status == Status::Running {
            consider(self.health.as_ref().map(|h| h.deadline()));
        }
        consider(self.instance.as_ref().and_then(|i| i.exited.map(|(_, t)| t + DRAIN)));
        match next {
            None => -1,
            Some(t) => t.saturating_duration_since(now).as_millis().min(60_000) as libc::c_int + 1,
        }
    }

    fn on_signals(&mut self) {
        let mut child = false;
        let mut term = false;
        for sig in self.sigfd.drain() {
            if sig == libc::SIGCHLD {
                child = true;
            } else {
                term = true;
            }
        }
        if child {
            self.reap();
        }
        if term {
            // Stopping the supervisor stops its container, gracefully.
            let grace = self.cfg.stop_grace();
            self.request_stop(self.cfg.stop_signal(), grace, None);
        }
    }

    fn reap(&mut self) {
        while let Some((pid, status)) = sys::reap_any() {
            if let Some(inst) = self.instance.as_mut() {
                if inst.init.pid == pid && inst.exited.is_none() {
                    inst.exited = Some((status, Instant::now()));
                    // A stdin nobody will read again.
                    inst.stdin = None;
                    inst.stdin_queue.clear();
                    continue;
                }
            }
            if let Some(p) = self.probe.as_mut() {
                if p.pid == pid {
                    p.status = Some(sys::exit_code_of(status));
                }
            }
        }
    }

    fn on_accept(&mut self) {
        while let Ok((s, _)) = self.listener.accept() {
            let _ = s.set_nonblocking(true);
            self.clients.push(Client { stream: s, buf: Vec::new(), dead: false });
        }
    }

    fn on_client(&mut self, i: usize) {
        let mut tmp = [0u8; 1024];
        let c = &mut self.clients[i];
        match c.stream.read(&mut tmp) {
            Ok(0) => {
                c.dead = true;
                return;
            }
            Ok(n) => c.buf.extend_from_slice(&tmp[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::Interrupted => return,
            Err(_) => {
                c.dead = true;
                return;
            }
        }
        let Some(pos) = c.buf.iter().position(|b| *b == b'\n') else {
            if c.buf.len() > 64 * 1024 {
                c.dead = true;
            }
            return;
        };
        c.dead = true;
        let req = serde_json::from_slice::<Request>(&c.buf[..pos]);
        let Ok(stream) = c.stream.try_clone() else { return };
        match req {
            Err(e) => reply(&stream, Some(format!("bad request: {e}"))),
            Ok(r) => self.handle(r, stream),
        }
    }

    fn handle(&mut self, req: Request, stream: UnixStream) {
        let running = self.instance.as_ref().is_some_and(|i| i.exited.is_none());
        match req {
            Request::Ping => reply(&stream, None),
            Request::Stop { signal, timeout_ms } => {
                self.request_stop(signal, Duration::from_millis(timeout_ms), Some(stream));
            }
            Request::Kill { signal } => {
                if !running {
                    return reply(&stream, Some(format!("container {} is not running", self.cfg.id)));
                }
                if signal == libc::SIGKILL || signal == self.cfg.stop_signal() {
                    self.state.manually_stopped = true;
                    self.save();
                }
                let r = self.instance.as_ref().map(|i| i.init.signal(signal));
                events::container(&self.root, &self.cfg, "kill", &[("signal", signal.to_string())]);
                if signal == libc::SIGKILL {
                    let _ = self.cgroup.thaw();
                }
                match r {
                    Some(Err(e)) if e.raw_os_error() != Some(libc::ESRCH) => {
                        reply(&stream, Some(format!("cannot signal the container: {e}")))
                    }
                    _ => reply(&stream, None),
                }
            }
            Request::Pause => {
                if !running {
                    return reply(&stream, Some(format!("container {} is not running", self.cfg.id)));
                }
                if self.state.status == Status::Paused {
                    return reply(&stream, Some(format!("container {} is already paused", self.cfg.id)));
                }
                match self.cgroup.freeze() {
                    Ok(()) => {
                        self.state.status = Status::Paused;
                        self.save();
                        events::container(&self.root, &self.cfg, "pause", &[]);
                        reply(&stream, None)
                    }
                    Err(e) => reply(&stream, Some(one_line(&e))),
                }
            }
            Request::Unpause => {
                if self.state.status != Status::Paused {
                    return reply(&stream, Some(format!("container {} is not paused", self.cfg.id)));
                }
                match self.cgroup.thaw() {
                    Ok(()) => {
                        self.state.status = Status::Running;
                        self.save();
                        events::container(&self.root, &self.cfg, "unpause", &[]);
                        reply(&stream, None)
                    }
                    Err(e) => reply(&stream, Some(one_line(&e))),
                }
            }
        }
    }

    /// An explicit stop: never undone by the restart policy. Answered when the container is down.
    fn request_stop(&mut self, signal: i32, grace: Duration, waiter: Option<UnixStream>) {
        self.state.manually_stopped = true;
        self.save();
        if let Some(w) = waiter {
            self.stop_waiters.push(w);
        }
        if self.restart_at.take().is_some() {
            // Waiting to restart: nothing runs, so the stop is immediate.
            self.state.status = Status::Exited;
            self.finish();
            return;
        }
        let Some(inst) = self.instance.as_ref() else {
            self.finish();
            return;
        };
        if inst.exited.is_some() {
            return;
        }
        let _ = inst.init.signal(signal);
        events::container(&self.root, &self.cfg, "kill", &[("signal", signal.to_string())]);
        if self.state.status == Status::Paused {
            let _ = self.cgroup.thaw();
            self.state.status = Status::Running;
        }
        let deadline = Instant::now() + grace;
        self.stop_deadline = Some(self.stop_deadline.map_or(deadline, |d| d.min(deadline)));
        if grace.is_zero() {
            self.kill_now();
        }
    }

    fn kill_now(&mut self) {
        if let Some(inst) = &self.instance {
            let _ = inst.init.signal(libc::SIGKILL);
            if inst.exited.is_none() {
                events::container(&self.root, &self.cfg, "kill", &[("signal", libc::SIGKILL.to_string())]);
            }
        }
        self.cgroup.kill_all();
        self.killed = true;
    }

    fn on_output(&mut self, s: Stream, buf: &mut [u8]) {
        let Some(inst) = self.instance.as_mut() else { return };
        let fd = match s {
            Stream::Stdout => inst.stdout.as_ref(),
            Stream::Stderr => inst.stderr.as_ref(),
            Stream::Pty => inst.pty.as_ref(),
        };
        let Some(fd) = fd else { return };
        let n = match sys::read_some(fd.as_raw_fd(), buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            // EIO on a pty whose other side closed.
            Err(_) => 0,
        };
        if n == 0 {
            // EOF (or EIO on a pty whose other side closed).
            let (split, stream) = match s {
                Stream::Stdout => {
                    inst.stdout = None;
                    (&mut inst.split_out, "stdout")
                }
                Stream::Stderr => {
                    inst.stderr = None;
                    (&mut inst.split_err, "stderr")
                }
                Stream::Pty => {
                    inst.pty = None;
                    (&mut inst.split_out, "stdout")
                }
            };
            if let Some(log) = self.log.as_mut() {
                split.flush(|line| {
                    let _ = log.write(stream, line);
                });
            }
            return;
        }
        let data = &buf[..n];
        let (split, stream, tag) = match s {
            Stream::Stdout | Stream::Pty => (&mut inst.split_out, "stdout", att::STDOUT),
            Stream::Stderr => (&mut inst.split_err, "stderr", att::STDERR),
        };
        if let Some(log) = self.log.as_mut() {
            split.feed(data, |line| {
                let _ = log.write(stream, line);
            });
        }
        if self.attach.is_some() && !self.attach_done {
            let mut m = Vec::with_capacity(data.len() + 1);
            m.push(tag);
            m.extend_from_slice(data);
            self.attach_bytes += m.len();
            self.attach_queue.push_back(m);
            self.flush_attach();
        }
    }

    fn flush_attach(&mut self) {
        let Some(a) = &self.attach else { return };
        while let Some(m) = self.attach_queue.front() {
            let r = sys::send_some(a.as_raw_fd(), m, libc::MSG_DONTWAIT);
            if let Err(e) = r {
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    return;
                }
                // The CLI went away.
                self.detach_client();
                return;
            }
            self.attach_bytes -= m.len();
            self.attach_queue.pop_front();
        }
    }

    fn detach_client(&mut self) {
        self.attach = None;
        self.attach_queue.clear();
        self.attach_bytes = 0;
        if let Some(inst) = self.instance.as_mut() {
            // As Docker's StdinOnce: the attached client's end of stdin closes with it.
            if inst.stdin_queue.is_empty() {
                inst.stdin = None;
            }
        }
    }

    fn on_attach(&mut self, revents: libc::c_short) {
        if revents & libc::POLLOUT != 0 {
            self.flush_attach();
        }
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
            return;
        }
        let Some(a) = &self.attach else { return };
        let mut buf = vec![0u8; CHUNK + 1];
        let n = match sys::recv_some(a.as_raw_fd(), &mut buf, libc::MSG_DONTWAIT) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => 0,
        };
        if n == 0 {
            self.detach_client();
            return;
        }
        let msg = &buf[..n];
        let Some(inst) = self.instance.as_mut() else { return };
        match msg[0] {
            att::STDIN => {
                inst.stdin_queue.extend(&msg[1..]);
                self.flush_stdin();
            }
            // Close once what is queued is written (a pty has no end of input to close).
            att::STDIN_EOF if inst.pty.is_none() => {
                inst.close_stdin = true;
                if inst.stdin_queue.is_empty() {
                    inst.stdin = None;
                }
            }
            att::RESIZE if msg.len() >= 5 => {
                if let Some(p) = &inst.pty {
                    let ws = libc::winsize {
                        ws_row: u16::from_le_bytes([msg[1], msg[2]]),
                        ws_col: u16::from_le_bytes([msg[3], msg[4]]),
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    sys::term::set_winsize(p.as_raw_fd(), &ws);
                }
            }
            _ => {}
        }
    }

    fn flush_stdin(&mut self) {
        let Some(inst) = self.instance.as_mut() else { return };
        let Some(fd) = inst.stdin.as_ref().or(inst.pty.as_ref()).map(|f| f.as_raw_fd()) else {
            inst.stdin_queue.clear();
            return;
        };
        while !inst.stdin_queue.is_empty() {
            let (a, _) = inst.stdin_queue.as_slices();
            let n = match sys::write_some(fd, a) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::WouldBlock {
                        inst.stdin_queue.clear();
                    }
                    return;
                }
            };
            inst.stdin_queue.drain(..n);
        }
        if inst.close_stdin {
            inst.stdin = None;
        }
    }

    fn on_probe_output(&mut self, buf: &mut [u8]) {
        let Some(p) = self.probe.as_mut() else { return };
        let Some(fd) = &p.out else { return };
        let n = match sys::read_some(fd.as_raw_fd(), buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => 0,
        };
        if n == 0 {
            p.out = None;
            return;
        }
        if p.buf.len() < health::MAX_OUTPUT {
            p.buf.extend_from_slice(&buf[..n]);
        }
    }

    /// Deadlines and completions: stop grace, restarts, exits, healthchecks.
    fn on_time(&mut self) {
        let now = Instant::now();
        if self.stop_deadline.is_some_and(|d| now >= d) && !self.killed {
            self.kill_now();
        }
        if let Some(inst) = &self.instance {
            if let Some((_, at)) = inst.exited {
                if inst.drained() || now >= at + DRAIN {
                    self.on_exit();
                }
            }
        }
        if self.restart_at.is_some_and(|t| now >= t) {
            self.restart_at = None;
            self.state.restart_count = self.restart.count;
            if let Err(e) = self.start_instance() {
                self.state.error = one_line(&e);
                self.state.exit_code = e.exit_code().unwrap_or(127);
                self.state.status = Status::Exited;
                self.after_exit(self.state.exit_code, Duration::ZERO);
            }
        }
        self.tick_health(now);
    }

    fn tick_health(&mut self, now: Instant) {
        // A finished probe.
        let finished = self
            .probe
            .as_ref()
            .is_some_and(|p| p.status.is_some() && (p.out.is_none() || self.health.as_ref().is_some_and(|h| h.timed_out(now))));
        let before = self.state.health.as_ref().map(|h| h.status).unwrap_or_default();
        if finished {
            if let (Some(p), Some(h)) = (self.probe.take(), self.health.as_mut()) {
                h.finished(p.status.unwrap_or(-1), &p.buf, now);
                self.state.health = Some(h.state.clone());
                self.save();
            }
        }
        self.note_health(&before);
        let before = self.state.health.as_ref().map(|h| h.status).unwrap_or_default();
        self.tick_probe(now);
        self.note_health(&before);
    }

    /// Docker's `health_status: <status>` event when a probe changed the status.
    fn note_health(&self, before: &HealthStatus) {
        let now = self.state.health.as_ref().map(|h| h.status).unwrap_or_default();
        if !matches!(now, HealthStatus::None | HealthStatus::Starting) && now != *before {
            events::container(&self.root, &self.cfg, &format!("health_status: {now}"), &[]);
        }
    }

    /// Times out a running probe, or starts the next one when due.
    fn tick_probe(&mut self, now: Instant) {
        let Some(h) = self.health.as_mut() else { return };
        if let Some(p) = &self.probe {
            if h.timed_out(now) && p.status.is_none() {
                // Our child, not reaped yet: its pid cannot have been reused.
                let _ = sys::kill(p.pid, libc::SIGKILL);
                // Its reaping is ignored; the result is the timeout.
                self.probe = None;
                h.finished(-1, b"", now);
                self.state.health = Some(h.state.clone());
                self.save();
            }
            return;
        }
        if self.state.status != Status::Running || !h.due(now) {
            return;
        }
        let Some(inst) = &self.instance else { return };
        if inst.exited.is_some() {
            return;
        }
        let argv = h.argv.clone();
        let Ok((r, w)) = sys::pipe() else {
            h.abandon(now);
            return;
        };
        h.started(now);
        let spec = ExecSpec { argv, ..Default::default() };
        let stdio = ExecStdio::Fds { stdin: None, stdout: w.as_raw_fd(), stderr: w.as_raw_fd() };
        let procs = self.cgroup.procs_files();
        match exec::spawn(
            exec::Target {
                cfg: &self.cfg,
                init: inst.init,
                cgroup_procs: &procs,
                cgroup_v2: self.cgroup.is_v2(),
                seccomp: self.seccomp.clone(),
            },
            &spec,
            stdio,
        ) {
            Ok(sp) => {
                drop(w);
                let _ = sys::set_nonblock(r.as_raw_fd(), true);
                self.probe = Some(Probe { pid: sp.pid, pidfd: sp.pidfd, out: Some(r), buf: Vec::new(), status: None });
            }
            Err(e) => {
                let code = e.exit_code();
                let msg = one_line(&e);
                if let Some(h) = self.health.as_mut() {
                    h.finished(code, msg.as_bytes(), now);
                    self.state.health = Some(h.state.clone());
                }
                self.save();
            }
        }
    }

    /// PID 1 exited and its output is drained: record, then restart or finish.
    fn on_exit(&mut self) {
        let Some(mut inst) = self.instance.take() else { return };
        let (status, _) = inst.exited.unwrap_or((0, Instant::now()));
        if let Some(log) = self.log.as_mut() {
            inst.split_out.flush(|l| {
                let _ = log.write("stdout", l);
            });
            inst.split_err.flush(|l| {
                let _ = log.write("stderr", l);
            });
        }
        let code = sys::exit_code_of(status);
        let oom = self.cgroup.oom_kills() > self.oom_base;
        self.state.exit_code = code;
        self.state.oom_killed = oom;
        self.state.finished_at = now_rfc3339();
        self.state.status = Status::Exited;
        self.stop_deadline = None;
        if oom {
            events::container(&self.root, &self.cfg, "oom", &[]);
        }
        events::container(&self.root, &self.cfg, "die", &[("exitCode", code.to_string())]);
        if let Some(p) = self.probe.take() {
            let _ = sys::kill(p.pid, libc::SIGKILL);
        }
        self.health = None;
        // Anything left in the container (there should be nothing once PID 1 is gone).
        self.cgroup.kill_all();
        if inst.attached {
            let _ = crate::net::detach(&self.root, &self.cfg.id);
        }
        self.state.network = None;
        let ran = inst.started.elapsed();
        drop(inst);
        if self.attach.is_some() && !self.attach_done {
            let mut m = vec![att::EXIT];
            m.extend_from_slice(&code.to_le_bytes());
            self.attach_bytes += m.len();
            self.attach_queue.push_back(m);
            self.flush_attach_blocking();
            // The socket stays open until the supervisor is done with this exit (final state
            // written, or the restart scheduled), so that the attached CLI returns only then.
            self.attach_done = true;
        }
        self.after_exit(code, ran);
    }

    fn after_exit(&mut self, code: i32, ran: Duration) {
        match self.restart.next(code, self.state.manually_stopped, ran) {
            Some(delay) => {
                self.state.status = Status::Restarting;
                self.restart_at = Some(Instant::now() + delay);
                self.save();
                if self.attach_done {
                    self.attach = None;
                }
            }
            None => self.finish(),
        }
    }

    /// Sends what is queued for the attached CLI, waiting a little for it to read.
    fn flush_attach_blocking(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.attach_queue.is_empty() && self.attach.is_some() && Instant::now() < deadline {
            self.flush_attach();
            if let Some(a) = &self.attach {
                let mut p = [libc::pollfd { fd: a.as_raw_fd(), events: libc::POLLOUT, revents: 0 }];
                let _ = sys::poll(&mut p, 100);
            }
        }
    }

    /// The final stop: network, cgroup, state, waiters; then the loop ends.
    fn finish(&mut self) {
        if let Some(inst) = self.instance.take() {
            if inst.exited.is_none() {
                let _ = inst.init.signal(libc::SIGKILL);
            }
            if inst.attached {
                let _ = crate::net::detach(&self.root, &self.cfg.id);
            }
        }
        if let Err(e) = self.cgroup.remove() {
            self.state.error = one_line(&e);
        }
        self.state.supervisor = None;
        self.state.network = None;
        self.state.health = self.state.health.take().filter(|_| false);
        if self.state.status.is_active() {
            self.state.status = Status::Exited;
        }
        self.save();
        for w in self.stop_waiters.drain(..) {
            reply(&w, None);
        }
        let _ = std::fs::remove_file(self.paths.control_socket());
        if self.cfg.auto_remove && ops::remove_files(&self.root, &self.cfg, &self.state, true).is_ok() {
            events::container(&self.root, &self.cfg, "destroy", &[]);
        }
        self.attach = None;
        self.done = true;
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
    Pty,
}

enum Role {
    Signal,
    Listener,
    Client(usize),
    Out(Stream),
    StdinOut,
    Attach,
    Probe,
    ProbeExit,
    Proxy(ProxyToken),
}

fn reply(stream: &UnixStream, error: Option<String>) {
    let mut line = serde_json::to_vec(&Response { error }).unwrap_or_default();
    line.push(b'\n');
    let mut s = stream;
    let _ = s.set_nonblocking(false);
    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = s.write_all(&line);
}
