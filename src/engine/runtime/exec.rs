//! Starting a process inside a running container: `exec` and healthchecks.
//!
//! The caller forks a helper that makes itself non-dumpable, joins the container's cgroup,
//! enters every namespace of the container's PID 1 at once (setns on a pidfd), and clones the
//! process with CLONE_PARENT, so that the new process lives in the container's PID namespace and
//! is the caller's own child (the caller waits for it and gets its exit code). The process then
//! sets up its standard streams, switches user with the container's capabilities, no_new_privs
//! and seccomp filter, and execs. Everything is prepared before the fork: the child makes system
//! calls and takes no lock another thread could hold (it allocates only to word an error, and for
//! the pty's control message, which glibc's fork keeps safe), so this works from a multi-threaded
//! caller too.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::init::{ExecTarget, become_user};
use super::spec::ContainerConfig;
use super::user::ExecUser;
use crate::util::sys::{self, ProcId, file};

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("the container's process {0} is gone")]
    Gone(i32),
    #[error("cannot read the container's root filesystem through /proc/{pid}/root")]
    Root {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    User(#[from] super::user::UserError),
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    #[error("cannot start the process in the container")]
    Spawn(#[source] std::io::Error),
    /// The process failed before exec; `code` is what Docker reports (126/127).
    #[error("{msg}")]
    Start { code: i32, msg: String },
}

impl ExecError {
    /// The exit code `berth exec` reports for this error, as Docker does: `docker exec` (and
    /// `docker compose exec`) of a missing command is 126, unlike `docker run`'s 127, because
    /// the runtime fails the exec itself rather than a process exiting.
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecError::Start { code, .. } => *code,
            _ => 126,
        }
    }
}

/// Puts the exec's `KEY=value` entries over the container's environment, each replacing the
/// container's value (a duplicate would leave the first one to `getenv`); a bare `KEY` unsets it,
/// as Docker's exec does with a variable the caller has not set.
fn merge_env(env: &mut Vec<String>, extra: &[String]) {
    let key = |e: &str| e.split_once('=').map(|(k, _)| k).unwrap_or(e).to_string();
    for e in extra {
        let k = key(e);
        env.retain(|x| key(x) != k);
        if e.contains('=') {
            env.push(e.clone());
        }
    }
}

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    pub argv: Vec<String>,
    /// Extra `KEY=value` entries over the container's environment (a bare `KEY` unsets it).
    pub env: Vec<String>,
    /// Empty: the container's user.
    pub user: Option<String>,
    /// Empty: the container's working directory.
    pub workdir: Option<String>,
    pub tty: bool,
    pub privileged: bool,
}

/// Where the process's standard streams go.
pub enum ExecStdio {
    /// Raw fds for 0, 1, 2 (None for stdin means /dev/null inside the container).
    Fds { stdin: Option<RawFd>, stdout: RawFd, stderr: RawFd },
    /// A pty from the container's devpts; the master is sent over this socket.
    Tty { master_to: RawFd },
}

/// A started process: our child, in the container.
pub struct Spawned {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

/// Everything the container side of an exec needs, prepared before the fork.
struct Prepared {
    ns_fd: OwnedFd,
    ns_flags: libc::c_int,
    cgroupns: bool,
    cgroup_procs: Vec<OwnedFd>,
    /// cgroup v2: the directory the process is born in (clone3 CLONE_INTO_CGROUP).
    cgroup_dir: Option<OwnedFd>,
    exe: ExecTarget,
    user: ExecUser,
    cap_set: u64,
    nnp: bool,
    seccomp: Option<Vec<u8>>,
    workdir: CString,
    rlimits: Vec<(libc::__rlimit_resource_t, libc::rlimit)>,
}

/// The running container a process is started in.
pub struct Target<'a> {
    pub cfg: &'a ContainerConfig,
    /// Its PID 1.
    pub init: ProcId,
    /// The `cgroup.procs` files of its cgroup.
    pub cgroup_procs: &'a [PathBuf],
    pub cgroup_v2: bool,
    /// Its seccomp filter (unless privileged).
    pub seccomp: Option<Vec<u8>>,
}

/// Starts `spec` in the container `target`.
pub fn spawn(target: Target, spec: &ExecSpec, stdio: ExecStdio) -> Result<Spawned, ExecError> {
    let p = prepare(target, spec)?;
    let (err_r, err_w) = sys::pipe().map_err(ExecError::Spawn)?;
    let (pid_r, pid_w) = sys::pipe().map_err(ExecError::Spawn)?;
    // SAFETY: glibc's fork leaves malloc usable in the child (its atfork handlers), and the helper
    // and the process it clones use no lock another thread could hold (no stdio, no std locks):
    // only system calls on what `prepare` made, and a message formatted on an error path.
    let helper = unsafe { libc::fork() };
    if helper < 0 {
        return Err(ExecError::Spawn(std::io::Error::last_os_error()));
    }
    if helper == 0 {
        drop(err_r);
        drop(pid_r);
        helper_main(&p, &stdio, err_w.as_raw_fd(), pid_w.as_raw_fd());
    }
    drop(err_w);
    drop(pid_w);
    let mut pidbuf = [0u8; 4];
    let n = sys::read_some(pid_r.as_raw_fd(), &mut pidbuf).unwrap_or(0);
    sys::wait_pid(helper, 0);
    let out = sys::read_to_end(err_r.as_raw_fd()).unwrap_or_default();
    if n != 4 {
        return Err(decode_error(&out).unwrap_or(ExecError::Start { code: 126, msg: "cannot enter the container".into() }));
    }
    let pid = i32::from_le_bytes(pidbuf);
    if let Some(e) = decode_error(&out) {
        sys::wait_pid(pid, 0);
        return Err(e);
    }
    let pidfd = sys::pidfd_open(pid).map_err(ExecError::Spawn)?;
    Ok(Spawned { pid, pidfd })
}

fn decode_error(b: &[u8]) -> Option<ExecError> {
    if b.len() < 4 {
        return None;
    }
    let code = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    Some(ExecError::Start { code, msg: String::from_utf8_lossy(&b[4..]).into_owned() })
}

fn prepare(target: Target, spec: &ExecSpec) -> Result<Prepared, ExecError> {
    let Target { cfg, init, cgroup_procs, cgroup_v2, seccomp } = target;
    let ns_fd = init.pidfd().map_err(|_| ExecError::Gone(init.pid))?;
    // The container's root, as its PID 1 sees it; checked to still be that process afterwards.
    let root = file::open(Path::new(&format!("/proc/{}/root", init.pid)), libc::O_PATH | libc::O_DIRECTORY)
        .map_err(|source| ExecError::Root { pid: init.pid, source })?;
    if !init.alive() {
        return Err(ExecError::Gone(init.pid));
    }
    let user_spec = spec.user.clone().unwrap_or_else(|| cfg.user.clone());
    let group_add = if spec.user.is_some() { Vec::new() } else { cfg.group_add.clone() };
    let user = super::user::resolve_in_root(root.as_raw_fd(), &user_spec, &group_add)?;
    let mut c2 = cfg.clone();
    merge_env(&mut c2.env, &spec.env);
    c2.tty = spec.tty;
    let env = super::init::final_env(&c2, &user.home);
    let path = resolve_in_container(root.as_raw_fd(), &spec.argv, &env)?;
    let mut argv = spec.argv.clone();
    let shown = argv.first().cloned().unwrap_or_default();
    // ExecTarget resolves a name containing '/' as is: hand it the absolute path found.
    let exe = ExecTarget::prepare(
        &{
            let mut a = vec![path.clone()];
            a.extend(argv.drain(1..));
            a
        },
        &env,
    )
    .map_err(|e| ExecError::Start { code: e.code, msg: e.msg })?;
    let exe = exe.with_argv0(&shown);
    let workdir = spec
        .workdir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| if cfg.working_dir.is_empty() { "/".into() } else { cfg.working_dir.clone() });
    let mut cgroup_fds = Vec::new();
    let mut cgroup_dir = None;
    if let (true, Some(dir)) = (cgroup_v2, cgroup_procs.first().and_then(|f| f.parent())) {
        cgroup_dir = Some(file::open(dir, libc::O_RDONLY | libc::O_DIRECTORY).map_err(ExecError::Spawn)?);
    }
    for f in cgroup_procs.iter().filter(|_| cgroup_dir.is_none()) {
        if let Ok(fd) = file::open(f, libc::O_WRONLY) {
            cgroup_fds.push(fd);
        }
    }
    let privileged = spec.privileged || cfg.privileged;
    let cap_set = super::caps::compute(privileged, &cfg.cap_add, &cfg.cap_drop);
    // The cgroup namespace is entered by the process itself, once it is in the container's
    // cgroup (the kernel refuses a clone into a cgroup outside the caller's cgroup namespace).
    let ns_flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC | libc::CLONE_NEWNET;
    let mut rlimits = vec![(libc::RLIMIT_NOFILE, libc::rlimit { rlim_cur: 1024, rlim_max: 524_288 })];
    for u in &cfg.ulimits {
        if let Some(r) = super::init::rlimit_resource(&u.name) {
            let v = |x: i64| if x < 0 { libc::RLIM_INFINITY } else { x as u64 };
            rlimits.retain(|(res, _)| *res != r);
            rlimits.push((r, libc::rlimit { rlim_cur: v(u.soft), rlim_max: v(u.hard) }));
        }
    }
    Ok(Prepared {
        ns_fd,
        ns_flags,
        cgroupns: cgroup_v2,
        cgroup_procs: cgroup_fds,
        cgroup_dir,
        exe,
        user,
        cap_set,
        nnp: cfg.no_new_privileges(),
        seccomp: if privileged { None } else { seccomp },
        workdir: CString::new(workdir).unwrap_or_default(),
        rlimits,
    })
}

/// Finds argv[0] with the container's PATH, inside the container's root.
fn resolve_in_container(root: RawFd, argv: &[String], env: &[String]) -> Result<String, ExecError> {
    let name = argv.first().cloned().unwrap_or_default();
    if name.is_empty() {
        return Err(ExecError::Start { code: 126, msg: "no command specified".into() });
    }
    if name.contains('/') {
        return Ok(name);
    }
    let pathvar =
        env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in pathvar.split(':').filter(|d| d.starts_with('/')) {
        let cand = format!("{dir}/{name}");
        if let Ok(st) = file::open_in_root(root, &cand, libc::O_PATH).and_then(|fd| file::fstat(fd.as_raw_fd())) {
            if file::kind(st.st_mode) == libc::S_IFREG && st.st_mode & 0o111 != 0 {
                return Ok(cand);
            }
        }
    }
    Err(ExecError::NotFound(name))
}

fn report(err_w: RawFd, code: i32, msg: &str) -> ! {
    let mut b = code.to_le_bytes().to_vec();
    b.extend_from_slice(msg.as_bytes());
    let _ = sys::write_all(err_w, &b);
    sys::exit_now(code)
}

/// The helper: cgroup, namespaces, then clone the real process as the caller's child.
fn helper_main(p: &Prepared, stdio: &ExecStdio, err_w: RawFd, pid_w: RawFd) -> ! {
    // SAFETY: prctl with integers only.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    for fd in &p.cgroup_procs {
        let _ = sys::write_all(fd.as_raw_fd(), b"0");
    }
    // SAFETY: setns on a pidfd we hold, with integer flags.
    if unsafe { libc::setns(p.ns_fd.as_raw_fd(), p.ns_flags) } != 0 {
        report(err_w, 126, &format!("cannot enter the container's namespaces: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: the helper is single-threaded (a fork), so the clone is a whole copy of it, which
    // only makes the system calls prepared for it (see the fork above).
    let pid = match unsafe { sys::clone_process(libc::CLONE_PARENT, p.cgroup_dir.as_ref().map(|f| f.as_raw_fd())) } {
        Ok(pid) => pid,
        Err(e) => report(err_w, 126, &format!("clone: {e}")),
    };
    if pid == 0 {
        process_main(p, stdio, err_w);
    }
    let _ = sys::write_all(pid_w, &(pid as i32).to_le_bytes());
    sys::exit_now(0)
}

fn process_main(p: &Prepared, stdio: &ExecStdio, err_w: RawFd) -> ! {
    // Raw calls below: what the wrappers of util::sys would allocate (C strings), this process
    // must not (see the fork in `spawn`).
    // SAFETY: prctl and setsid with integers only.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0);
        libc::setsid();
    }
    // SAFETY: setns on a pidfd we hold, with integer flags.
    if p.cgroupns && unsafe { libc::setns(p.ns_fd.as_raw_fd(), libc::CLONE_NEWCGROUP) } != 0 {
        report(err_w, 126, &format!("cannot enter the container's cgroup namespace: {}", std::io::Error::last_os_error()));
    }
    match stdio {
        ExecStdio::Fds { stdin, stdout, stderr } => {
            let null;
            let inp = match stdin {
                Some(fd) => *fd,
                None => {
                    // SAFETY: open with a C string literal; the fd is only dup2'ed below.
                    null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                    null
                }
            };
            // SAFETY: replaces the standard streams, which nothing in this process owns as an
            // OwnedFd (the caller's were left to the caller).
            unsafe {
                libc::dup2(inp, 0);
                libc::dup2(*stdout, 1);
                libc::dup2(*stderr, 2);
            }
        }
        ExecStdio::Tty { master_to } => {
            // SAFETY: open with a C string literal; the fd is closed below.
            let m = unsafe { libc::open(c"/dev/pts/ptmx".as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
            if m < 0 {
                report(err_w, 126, &format!("cannot open /dev/pts/ptmx: {}", std::io::Error::last_os_error()));
            }
            let unlock: libc::c_int = 0;
            // SAFETY: TIOCSPTLCK reads one int, alive through the call.
            unsafe { libc::ioctl(m, libc::TIOCSPTLCK, &unlock) };
            // SAFETY: TIOCGPTPEER takes integer flags and returns a new fd.
            let s = unsafe { libc::ioctl(m, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY) };
            if s < 0 {
                report(err_w, 126, &format!("cannot open the pty: {}", std::io::Error::last_os_error()));
            }
            if sys::send_fds(*master_to, b'T', &[m]).is_err() {
                report(err_w, 126, "cannot hand the pty over");
            }
            // SAFETY: `m` and `s` are fds this process opened and nothing else owns; the standard
            // streams are replaced as above.
            unsafe {
                libc::close(m);
                libc::ioctl(s, libc::TIOCSCTTY, 0);
                libc::dup2(s, 0);
                libc::dup2(s, 1);
                libc::dup2(s, 2);
                if s > 2 {
                    libc::close(s);
                }
            }
        }
    }
    for (r, lim) in &p.rlimits {
        let _ = super::init::set_rlimit(*r, lim.rlim_cur, lim.rlim_max);
    }
    if let Err(e) = become_user(&p.user, p.cap_set, p.nnp, p.seccomp.as_deref()) {
        report(err_w, 126, &e.msg);
    }
    // SAFETY: `workdir` is a C string prepared before the fork.
    if unsafe { libc::chdir(p.workdir.as_ptr()) } != 0 {
        let e = std::io::Error::last_os_error();
        report(err_w, 126, &format!("chdir to {:?}: {e}", p.workdir));
    }
    let _ = sys::cloexec_from(3);
    sys::reset_signals();
    let e = p.exe.exec();
    report(err_w, e.code, &e.msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_env_replaces_and_unsets() {
        let mut env = vec!["PATH=/bin".to_string(), "FOO=service".to_string(), "BAR=1".to_string()];
        merge_env(&mut env, &["FOO=caller".to_string(), "BAR".to_string(), "NEW=x".to_string()]);
        assert_eq!(env, ["PATH=/bin", "FOO=caller", "NEW=x"]);
    }
}
