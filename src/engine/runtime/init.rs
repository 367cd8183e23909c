//! The container side: what the process cloned by the supervisor does, in its new namespaces,
//! before it becomes the container's command (or berth's minimal init with the command as its
//! child).
//!
//! Phase 1 (in parallel with the supervisor's cgroup and network work): the overlay rootfs,
//! /proc, /dev, /sys and the user's mounts, all built detached and attached onto fds resolved
//! inside the rootfs. Then it waits for the supervisor's "go". Phase 2: the generated /etc files,
//! the cgroup view, pivot_root, masked and read-only paths, sysctls, hostname, rlimits, user,
//! capabilities, no_new_privs, seccomp (last), and exec.
//!
//! The process is non-dumpable from its first instruction, so nothing in the container can open
//! its /proc/<pid>/exe (the host's berth binary) or ptrace it (CVE-2019-5736, CVE-2016-9962).

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::fsroot::{self, Create};
use super::spec::ContainerConfig;
use crate::util::sys::mount::{self as m, ATTR_NODEV, ATTR_NOEXEC, ATTR_NOSUID, ATTR_RDONLY, ATTR_STRICTATIME};
use crate::util::sys::{self, cvt, file};

/// Docker's masked paths (files get /dev/null, directories an empty read-only tmpfs).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// Docker's read-only paths.
pub const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a mount becomes once volumes are resolved to host paths.
#[derive(Debug, Clone)]
pub enum PlannedKind {
    Bind { source: PathBuf },
    Tmpfs { size: Option<u64>, mode: Option<u32> },
}

#[derive(Debug, Clone)]
pub struct PlannedMount {
    pub target: String,
    pub kind: PlannedKind,
    pub read_only: bool,
    pub propagation: Option<String>,
    /// Fill the (empty) volume from the image's content at the target first.
    pub copy_up: bool,
}

/// How the container sees cgroups at /sys/fs/cgroup.
#[derive(Debug, Clone)]
pub enum CgroupView {
    /// v1: bind each controller's container directory.
    V1(Vec<(String, PathBuf)>),
    /// v2: a cgroup2 mount in a new cgroup namespace.
    V2,
}

/// Everything the cloned process needs, prepared by the supervisor before clone.
pub struct InitPlan {
    pub cfg: ContainerConfig,
    pub rootfs_dir: PathBuf,
    /// Where to chdir for the overlay mount, and its options (relative layer paths).
    pub overlay_cwd: PathBuf,
    pub overlay_opts: String,
    pub mounts: Vec<PlannedMount>,
    /// Host files bound onto /etc/hosts, /etc/hostname, /etc/resolv.conf.
    pub etc_binds: Vec<(PathBuf, &'static str)>,
    pub cap_set: u64,
    pub seccomp: Option<Vec<u8>>,
    pub cgroup: CgroupView,
    pub own_netns: bool,
    pub join_netns: Option<OwnedFd>,
    /// The IPC namespace to join (`ipc: container:`), opened by the supervisor.
    pub join_ipcns: Option<OwnedFd>,
    /// Where /dev/shm comes from.
    pub shm: ShmSource,
    pub sysctls: Vec<(String, String)>,
    pub stdin: Option<RawFd>,
    pub stdout: RawFd,
    pub stderr: RawFd,
    /// The child's end of the SOCK_SEQPACKET sync channel.
    pub sync: RawFd,
}

/// The container's /dev/shm: a tmpfs of its own, the host's, or that of the container whose IPC
/// namespace it shares (given by that container's mount namespace).
pub enum ShmSource {
    Own,
    Host,
    Container(OwnedFd),
}

/// A detached copy of the /dev/shm mount the container shares, taken before anything else
/// (another container's is in that container's mount namespace: entered just to copy it, then
/// left for this process's own).
fn shared_shm(src: &ShmSource) -> Result<Option<OwnedFd>, ChildError> {
    let clone = || -> Result<OwnedFd, ChildError> {
        let fd = open_path(Path::new("/dev/shm")).ctx("cannot open /dev/shm to share it")?;
        m::clone_tree(fd.as_raw_fd(), false).ctx("cannot share /dev/shm")
    };
    match src {
        ShmSource::Own => Ok(None),
        ShmSource::Host => clone().map(Some),
        ShmSource::Container(ns) => {
            let mine =
                openat(libc::AT_FDCWD, "/proc/self/ns/mnt", libc::O_RDONLY | libc::O_CLOEXEC).ctx("cannot open the mount namespace")?;
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNS)
                .map_err(|e| ChildError { code: 127, msg: format!("cannot enter the mount namespace of the IPC container: {e}") })?;
            let shm = clone();
            nix::sched::setns(&mine, nix::sched::CloneFlags::CLONE_NEWNS)
                .map_err(|e| ChildError { code: 127, msg: format!("cannot return to the container's mount namespace: {e}") })?;
            shm.map(Some)
        }
    }
}

/// Messages on the sync channel (first byte).
pub const MSG_ERROR: u8 = b'E';
pub const MSG_TTY: u8 = b'T';
pub const MSG_GO: u8 = b'G';

/// A failure inside the container setup: the exit code the container gets, and the message.
#[derive(Debug)]
pub struct ChildError {
    pub code: i32,
    pub msg: String,
}

fn fail<T>(what: impl std::fmt::Display, e: std::io::Error) -> Result<T, ChildError> {
    Err(ChildError { code: 127, msg: format!("{what}: {e}") })
}

trait Ctx<T> {
    fn ctx(self, what: impl std::fmt::Display) -> Result<T, ChildError>;
}
impl<T> Ctx<T> for std::io::Result<T> {
    fn ctx(self, what: impl std::fmt::Display) -> Result<T, ChildError> {
        self.or_else(|e| fail(what, e))
    }
}

/// The entry point of the cloned process. Never returns: it execs or exits.
pub fn container_main(plan: InitPlan) -> ! {
    let sync = plan.sync;
    let err = match run(plan) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let mut msg = vec![MSG_ERROR];
    msg.extend_from_slice(&err.code.to_le_bytes());
    msg.extend_from_slice(err.msg.as_bytes());
    let _ = sys::send_some(sync, &msg, 0);
    sys::exit_now(err.code)
}

fn run(plan: InitPlan) -> Result<std::convert::Infallible, ChildError> {
    // SAFETY: prctl and umask with integers only.
    unsafe {
        // Die with the supervisor; stay out of reach of everything in the container.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::umask(0);
    }
    crate::timing!("child: cloned, dies with its supervisor");
    let cfg = &plan.cfg;
    // First, while the root is still the host's: a shared /dev/shm.
    let shm_mount = shared_shm(&plan.shm)?;
    if let Some(ns) = &plan.join_netns {
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| ChildError { code: 127, msg: format!("cannot join the network namespace: {e}") })?;
    }
    if let Some(ns) = &plan.join_ipcns {
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWIPC)
            .map_err(|e| ChildError { code: 127, msg: format!("cannot join the IPC namespace: {e}") })?;
    }
    // Nothing we mount may propagate back to the host.
    // SAFETY: mount(2) with valid C strings and null for what it takes none of.
    cvt(unsafe { libc::mount(c"".as_ptr(), c"/".as_ptr(), std::ptr::null(), libc::MS_SLAVE | libc::MS_REC, std::ptr::null()) })
        .ctx("cannot make the mount namespace private")?;

    // The overlay rootfs, mounted by path: the path is ours (under the state root), and the
    // options use short relative layer paths so that deep images fit in one page.
    std::env::set_current_dir(&plan.overlay_cwd).ctx(format!("cannot enter {}", plan.overlay_cwd.display()))?;
    let target = sys::cpath(&plan.rootfs_dir).ctx("bad rootfs path")?;
    let opts = CString::new(plan.overlay_opts.as_str()).unwrap_or_default();
    // SAFETY: mount(2) with valid C strings (the options as overlay's data string).
    cvt(unsafe { libc::mount(c"overlay".as_ptr(), target.as_ptr(), c"overlay".as_ptr(), 0, opts.as_ptr().cast()) })
        .ctx(format!("cannot mount the overlay root filesystem ({})", plan.overlay_opts))?;
    let root = open_dir_path(&plan.rootfs_dir).ctx("cannot open the root filesystem")?;
    let rfd = root.as_raw_fd();

    // /proc, from the new pid namespace.
    let proc_dir = plain_dir(rfd, "proc")?;
    let procm = m::new_fs("proc", "proc", &[], ATTR_NOSUID | ATTR_NOEXEC | ATTR_NODEV).ctx("cannot mount /proc")?;
    m::attach(&procm, proc_dir.as_raw_fd()).ctx("cannot mount /proc")?;

    // /dev: a tmpfs with the default nodes, devpts, shm and mqueue.
    let dev_dir = plain_dir(rfd, "dev")?;
    let devm = m::new_fs("tmpfs", "tmpfs", &[("mode", Some("755")), ("size", Some("65536k"))], ATTR_NOSUID | ATTR_STRICTATIME)
        .ctx("cannot mount /dev")?;
    m::attach(&devm, dev_dir.as_raw_fd()).ctx("cannot mount /dev")?;
    let dev = devm.as_raw_fd();
    make_dev_nodes(dev, cfg.privileged)?;
    make_user_devices(dev, &cfg.resources.devices)?;
    let pts = mkdir_at(dev, "pts")?;
    let ptsm = m::new_fs(
        "devpts",
        "devpts",
        &[("newinstance", None), ("ptmxmode", Some("0666")), ("mode", Some("0620")), ("gid", Some("5"))],
        ATTR_NOSUID | ATTR_NOEXEC,
    )
    .ctx("cannot mount /dev/pts")?;
    m::attach(&ptsm, pts.as_raw_fd()).ctx("cannot mount /dev/pts")?;
    let shm = mkdir_at(dev, "shm")?;
    let shmm = match shm_mount {
        Some(shared) => shared,
        None => {
            let shm_size = format!("{}", cfg.shm_size());
            m::new_fs("tmpfs", "shm", &[("mode", Some("1777")), ("size", Some(&shm_size))], ATTR_NOSUID | ATTR_NOEXEC | ATTR_NODEV)
                .ctx("cannot mount /dev/shm")?
        }
    };
    m::attach(&shmm, shm.as_raw_fd()).ctx("cannot mount /dev/shm")?;
    let mq = mkdir_at(dev, "mqueue")?;
    let mqm = m::new_fs("mqueue", "mqueue", &[], ATTR_NOSUID | ATTR_NOEXEC | ATTR_NODEV).ctx("cannot mount /dev/mqueue")?;
    m::attach(&mqm, mq.as_raw_fd()).ctx("cannot mount /dev/mqueue")?;

    // A pty from the container's own devpts: the master goes to the supervisor.
    let mut tty_slave = None;
    if cfg.tty {
        let ptmx = openat(ptsm.as_raw_fd(), "ptmx", libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC).ctx("cannot open /dev/pts/ptmx")?;
        let unlock: libc::c_int = 0;
        // SAFETY: TIOCSPTLCK reads one int, alive through the call.
        cvt(unsafe { libc::ioctl(ptmx.as_raw_fd(), libc::TIOCSPTLCK, &unlock) }).ctx("cannot unlock the pty")?;
        // SAFETY: TIOCGPTPEER takes integer flags and returns a new fd.
        let slave = cvt(unsafe { libc::ioctl(ptmx.as_raw_fd(), libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) })
            .ctx("cannot open the pty")?;
        // SAFETY: the fd TIOCGPTPEER just returned, ours alone.
        let slave = unsafe { OwnedFd::from_raw_fd(slave) };
        sys::send_fds(plan.sync, MSG_TTY, &[ptmx.as_raw_fd()]).ctx("cannot hand the pty to the supervisor")?;
        // /dev/console is the pty, as Docker has it.
        let console = fsroot::resolve(dev, OsStr::new("console"), Create::File).ctx("cannot create /dev/console")?;
        let sm = m::clone_tree(slave.as_raw_fd(), false).ctx("cannot bind /dev/console")?;
        m::attach(&sm, console.as_raw_fd()).ctx("cannot bind /dev/console")?;
        tty_slave = Some(slave);
    }

    // /sys, read-only unless privileged.
    let sys_dir = plain_dir(rfd, "sys")?;
    let ro = if cfg.privileged { 0 } else { ATTR_RDONLY };
    let sysm = m::new_fs("sysfs", "sysfs", &[], ro | ATTR_NOSUID | ATTR_NOEXEC | ATTR_NODEV).ctx("cannot mount /sys")?;
    m::attach(&sysm, sys_dir.as_raw_fd()).ctx("cannot mount /sys")?;

    // The user's mounts, parents before children.
    let who = who(cfg);
    for pm in &plan.mounts {
        user_mount(rfd, pm, &who)?;
    }

    crate::timing!("child: rootfs, /proc, /dev, /sys and volumes mounted");
    // Wait for the supervisor: cgroup joined, network attached, /etc files written.
    wait_go(plan.sync)?;
    crate::timing!("child: supervisor said go");

    for (src, target) in &plan.etc_binds {
        if plan.mounts.iter().any(|pm| super::spec::normalize(&pm.target) == *target) {
            continue;
        }
        let srcfd = open_path(src).ctx(format!("cannot open {}", src.display()))?;
        let t = fsroot::resolve(rfd, OsStr::new(target), Create::File).ctx(format!("cannot create {target}"))?;
        check_target(rfd, t.as_raw_fd(), target, &who)?;
        let bm = m::clone_tree(srcfd.as_raw_fd(), false).ctx(format!("cannot bind {target}"))?;
        if cfg.rootfs.read_only {
            m::set_attr(bm.as_raw_fd(), ATTR_RDONLY, 0, 0, false).ctx(format!("cannot make {target} read-only"))?;
        }
        m::attach(&bm, t.as_raw_fd()).ctx(format!("cannot bind {target}"))?;
    }

    crate::timing!("child: /etc files bound");
    // The cgroup namespace (`cgroup:`): private by default on v2, the host's by default on v1
    // (as Docker), then /sys/fs/cgroup, read-only.
    let v2 = matches!(plan.cgroup, CgroupView::V2);
    let private = match cfg.cgroupns_mode.as_str() {
        "private" => true,
        "host" => false,
        _ => v2,
    };
    if private {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| ChildError { code: 127, msg: format!("cannot create the cgroup namespace: {e}") })?;
    }
    match &plan.cgroup {
        CgroupView::V2 => {
            let t = fsroot::resolve(sysm.as_raw_fd(), OsStr::new("fs/cgroup"), Create::No).ctx("cannot find /sys/fs/cgroup")?;
            let cg = m::new_fs("cgroup2", "cgroup", &[], ATTR_RDONLY | ATTR_NOSUID | ATTR_NOEXEC | ATTR_NODEV)
                .ctx("cannot mount /sys/fs/cgroup")?;
            m::attach(&cg, t.as_raw_fd()).ctx("cannot mount /sys/fs/cgroup")?;
        }
        CgroupView::V1(dirs) => {
            let t = fsroot::resolve(sysm.as_raw_fd(), OsStr::new("fs/cgroup"), Create::No).ctx("cannot find /sys/fs/cgroup")?;
            let tm = m::new_fs("tmpfs", "tmpfs", &[("mode", Some("755"))], ATTR_NOSUID | ATTR_NOEXEC | ATTR_NODEV)
                .ctx("cannot mount /sys/fs/cgroup")?;
            m::attach(&tm, t.as_raw_fd()).ctx("cannot mount /sys/fs/cgroup")?;
            for (name, dir) in dirs {
                let sub = mkdir_at(tm.as_raw_fd(), name)?;
                let src = open_path(dir).ctx(format!("cannot open {}", dir.display()))?;
                let bm = m::clone_tree(src.as_raw_fd(), false).ctx("cannot bind a cgroup")?;
                m::set_attr(bm.as_raw_fd(), ATTR_RDONLY | ATTR_NOSUID | ATTR_NOEXEC | ATTR_NODEV, 0, 0, false)
                    .ctx("cannot bind a cgroup")?;
                m::attach(&bm, sub.as_raw_fd()).ctx("cannot bind a cgroup")?;
            }
            m::set_attr(tm.as_raw_fd(), ATTR_RDONLY, 0, 0, false).ctx("cannot make /sys/fs/cgroup read-only")?;
        }
    }

    crate::timing!("child: /sys/fs/cgroup mounted");
    if plan.own_netns {
        loopback_up();
    }

    crate::timing!("child: loopback up, pivoting");
    // pivot_root into the rootfs and drop the old root entirely.
    nix::unistd::fchdir(&root).map_err(std::io::Error::from).ctx("cannot enter the root filesystem")?;
    nix::unistd::pivot_root(".", ".").map_err(std::io::Error::from).ctx("pivot_root")?;
    nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH).map_err(std::io::Error::from).ctx("cannot detach the old root")?;
    std::env::set_current_dir("/").ctx("chdir /")?;
    crate::timing!("child: pivoted into the rootfs");

    // Sysctls, before /proc/sys turns read-only: through the procfs mount made above (its fd),
    // never through a path, so that nothing the image or a mount put at /proc receives them.
    for (k, v) in &plan.sysctls {
        write_proc(&procm, &format!("sys/{}", k.replace('.', "/")), v).ctx(format!("cannot set sysctl {k}={v}"))?;
    }
    if !cfg.privileged {
        mask_paths()?;
    }
    if cfg.rootfs.read_only {
        m::set_attr(rfd, ATTR_RDONLY, 0, 0, false).ctx("cannot make the root filesystem read-only")?;
    }

    crate::timing!("child: paths masked, sysctls set");
    // In the host's UTS namespace (`uts: host`) the names are the host's, never changed.
    if cfg.uts_mode != "host" {
        nix::unistd::sethostname(cfg.hostname()).map_err(|e| ChildError { code: 127, msg: format!("sethostname: {e}") })?;
    }
    if !cfg.domainname.is_empty() && cfg.uts_mode != "host" {
        let d = CString::new(cfg.domainname.as_str()).unwrap_or_default();
        // SAFETY: `d` holds the name's bytes (and a NUL past them), alive through the call.
        cvt(unsafe { libc::setdomainname(d.as_ptr(), cfg.domainname.len()) }).ctx("setdomainname")?;
    }
    if let Some(adj) = cfg.oom_score_adj {
        write_proc(&procm, &format!("{}/oom_score_adj", std::process::id()), &adj.to_string()).ctx("cannot set oom_score_adj")?;
    }
    set_rlimits(cfg)?;

    // The user, from the image's own files (now at /).
    let slash = open_dir_path(Path::new("/")).ctx("cannot open /")?;
    let user = super::user::resolve_in_root(slash.as_raw_fd(), &cfg.user, &cfg.group_add)
        .map_err(|e| ChildError { code: 127, msg: e.to_string() })?;
    let env = final_env(cfg, &user.home);
    let argv = cfg.argv();
    let workdir = if cfg.working_dir.is_empty() { "/".to_string() } else { cfg.working_dir.clone() };
    // Docker creates a missing working directory.
    fsroot::resolve(slash.as_raw_fd(), OsStr::new(&workdir), Create::Dir).ctx(format!("cannot create the working directory {workdir}"))?;
    drop(slash);

    // Standard streams.
    nix::unistd::setsid().map_err(std::io::Error::from).ctx("setsid")?;
    match &tty_slave {
        Some(s) => {
            // SAFETY: TIOCSCTTY takes an integer.
            cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCSCTTY, 0) }).ctx("cannot set the controlling terminal")?;
            for fd in 0..3 {
                // SAFETY: replaces the standard streams, which nothing in this process owns as an
                // OwnedFd (they were inherited as raw numbers).
                cvt(unsafe { libc::dup2(s.as_raw_fd(), fd) }).ctx("dup2")?;
            }
        }
        None => {
            let stdin = match plan.stdin {
                Some(fd) => fd,
                None => {
                    openat(libc::AT_FDCWD, "/dev/null", libc::O_RDONLY | libc::O_CLOEXEC).ctx("cannot open /dev/null")?.into_raw_fd_leak()
                }
            };
            // SAFETY: as above, the standard streams are no one's OwnedFd.
            cvt(unsafe { libc::dup2(stdin, 0) }).ctx("dup2")?;
            // SAFETY: as above.
            cvt(unsafe { libc::dup2(plan.stdout, 1) }).ctx("dup2")?;
            // SAFETY: as above.
            cvt(unsafe { libc::dup2(plan.stderr, 2) }).ctx("dup2")?;
        }
    }
    drop(tty_slave);

    crate::timing!("child: standard streams set");
    let exe = ExecTarget::prepare(&argv, &env)?;
    let seccomp = plan.seccomp.as_deref();
    become_user(&user, plan.cap_set, cfg.no_new_privileges(), seccomp)?;
    std::env::set_current_dir(&workdir).ctx(format!("cannot enter the working directory {workdir}"))?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    // Everything but the standard streams closes on exec (the sync channel too: its closing
    // tells the supervisor that exec succeeded).
    sys::cloexec_from(3).ctx("close_range")?;
    crate::timing!("child: executing the command");

    if cfg.init {
        run_init(exe, plan.sync)
    } else {
        sys::reset_signals();
        Err(exe.exec())
    }
}

trait Leak {
    fn into_raw_fd_leak(self) -> RawFd;
}
impl Leak for OwnedFd {
    fn into_raw_fd_leak(self) -> RawFd {
        std::os::fd::IntoRawFd::into_raw_fd(self)
    }
}

fn open_dir_path(p: &Path) -> std::io::Result<OwnedFd> {
    file::open(p, libc::O_PATH | libc::O_DIRECTORY)
}

fn open_path(p: &Path) -> std::io::Result<OwnedFd> {
    file::open(p, libc::O_PATH)
}

fn openat(dir: RawFd, name: &str, flags: libc::c_int) -> std::io::Result<OwnedFd> {
    file::openat(dir, OsStr::new(name), flags, 0)
}

/// `name` directly under `dir` as a real directory, created if missing. A symlink there is
/// refused: /proc, /dev and /sys are never mounted through one (runc's "must be mounted on
/// ordinary directory").
fn plain_dir(dir: RawFd, name: &str) -> Result<OwnedFd, ChildError> {
    match openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) {
        Ok(fd) => {
            if !fsroot::is_dir(fd.as_raw_fd()).unwrap_or(false) {
                return Err(ChildError {
                    code: 127,
                    msg: format!(
                        "the image's /{name} is not a directory (a symlink or a file); berth mounts /{name} only on an ordinary directory"
                    ),
                });
            }
            Ok(fd)
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => mkdir_at(dir, name),
        Err(e) => fail(format!("cannot open /{name}"), e),
    }
}

fn mkdir_at(dir: RawFd, name: &str) -> Result<OwnedFd, ChildError> {
    if let Err(e) = file::mkdir_at(dir, OsStr::new(name), 0o755) {
        if e.raw_os_error() != Some(libc::EEXIST) {
            return fail(format!("cannot create {name}"), e);
        }
    }
    plain_dir_noc(dir, name)
}

fn plain_dir_noc(dir: RawFd, name: &str) -> Result<OwnedFd, ChildError> {
    let fd = openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC).ctx(format!("cannot open {name}"))?;
    if !fsroot::is_dir(fd.as_raw_fd()).unwrap_or(false) {
        return Err(ChildError { code: 127, msg: format!("{name} is not a directory") });
    }
    Ok(fd)
}

/// Whether the kernel has /proc/kcore (CONFIG_PROC_KCORE). Asked before pivot_root, when /proc
/// is still the host's.
fn host_has_kcore() -> bool {
    file::stat_at(libc::AT_FDCWD, OsStr::new("/proc/kcore"), libc::AT_SYMLINK_NOFOLLOW).is_ok()
}

fn make_dev_nodes(dev: RawFd, privileged: bool) -> Result<(), ChildError> {
    let nodes: &[(&str, u32, u32)] = &[("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];
    for (name, maj, min) in nodes {
        file::mknod_at(dev, OsStr::new(name), libc::S_IFCHR | 0o666, libc::makedev(*maj, *min))
            .ctx(format!("cannot create /dev/{name}"))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        // As runc: /dev/core only where the kernel has a /proc/kcore (never a dangling link).
        if name == "core" && !host_has_kcore() {
            continue;
        }
        file::symlink_at(OsStr::new(target), dev, OsStr::new(name)).ctx(format!("cannot create /dev/{name}"))?;
    }
    if privileged {
        copy_host_devices(Path::new("/dev"), dev, 0);
    }
    Ok(())
}

/// The `devices:` nodes, as on the host (kind, numbers, mode and owner), at their targets under
/// /dev (validated by the spec). Still in the host's view: the host paths are visible here.
fn make_user_devices(dev: RawFd, devices: &[crate::engine::cgroups::DeviceMapping]) -> Result<(), ChildError> {
    for d in devices {
        let h = crate::engine::cgroups::host_device(&d.path_on_host).map_err(|e| ChildError { code: 127, msg: format!("devices: {e}") })?;
        let rel = super::spec::normalize(&d.path_in_container);
        let rel = rel.trim_start_matches("/dev/");
        let (parents, leaf) = rel.rsplit_once('/').unwrap_or(("", rel));
        let mut dir: Option<OwnedFd> = None;
        for p in parents.split('/').filter(|p| !p.is_empty()) {
            dir = Some(mkdir_at(dir.as_ref().map(|d| d.as_raw_fd()).unwrap_or(dev), p)?);
        }
        let at = dir.as_ref().map(|d| d.as_raw_fd()).unwrap_or(dev);
        let c = OsStr::new(leaf);
        let _ = file::unlink_at(at, c, 0);
        let kind = if h.kind == 'b' { libc::S_IFBLK } else { libc::S_IFCHR };
        file::mknod_at(at, c, kind | (h.mode & 0o7777), libc::makedev(h.major, h.minor))
            .ctx(format!("cannot create device {}", d.path_in_container))?;
        file::fchmod_at(at, c, h.mode & 0o7777).ctx(format!("cannot chmod device {}", d.path_in_container))?;
        file::fchown_at(at, c, h.uid, h.gid, libc::AT_SYMLINK_NOFOLLOW).ctx(format!("cannot chown device {}", d.path_in_container))?;
    }
    Ok(())
}

/// Privileged containers see the host's device nodes (as Docker gives them).
fn copy_host_devices(dir: &Path, target: RawFd, depth: u32) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name();
        let n = name.to_string_lossy();
        if depth == 0 && ["pts", "shm", "mqueue", "console", "ptmx", "fd", "core", "stdin", "stdout", "stderr"].contains(&n.as_ref()) {
            continue;
        }
        let Ok(md) = std::fs::symlink_metadata(e.path()) else { continue };
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let ft = md.file_type();
        if ft.is_char_device() || ft.is_block_device() {
            let _ = file::mknod_at(target, &name, md.mode(), md.rdev());
            let _ = file::fchown_at(target, &name, md.uid(), md.gid(), libc::AT_SYMLINK_NOFOLLOW);
        } else if ft.is_dir() && depth < 2 {
            let _ = file::mkdir_at(target, &name, 0o755);
            if let Ok(sub) = openat(target, &n, libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) {
                copy_host_devices(&e.path(), sub.as_raw_fd(), depth + 1);
            }
        }
    }
}

/// How errors name the container: its compose service when it has one, and its name.
fn who(cfg: &ContainerConfig) -> String {
    match cfg.labels.get("com.docker.compose.service") {
        Some(s) => format!("service {s:?} (container {})", cfg.name),
        None => format!("container {}", cfg.name),
    }
}

/// runc's rule, checked on the resolved fd rather than on the path as written: a mount may not
/// land on the container's root, nor anywhere in its /proc (but on the files that lxcfs-style
/// providers cover), whatever symlinks the image has on the way (`/data -> /proc` would
/// otherwise put a user's folder where berth then writes sysctls, CVE-2019-16884 class).
fn check_target(root: RawFd, t: RawFd, target: &str, who: &str) -> Result<(), ChildError> {
    let refuse = |what: &str| {
        Err(ChildError {
            code: 127,
            msg: format!(
                "{who}: the mount target {target} resolves {what} (through a symlink in the image); berth mounts nothing there: \
                 choose another target or fix the image"
            ),
        })
    };
    let (rs, ts) = (file::fstat(root).ctx("cannot stat the root filesystem")?, file::fstat(t).ctx(format!("cannot stat {target}"))?);
    if (rs.st_dev, rs.st_ino) == (ts.st_dev, ts.st_ino) {
        return refuse("to the container's root /");
    }
    let on_proc = file::fd_fs_type(t).ctx(format!("cannot statfs {target}"))? == libc::PROC_SUPER_MAGIC;
    if on_proc && !super::spec::PROC_ALLOWED.contains(&super::spec::normalize(target).as_str()) {
        return refuse("into /proc");
    }
    Ok(())
}

/// Writes `value` to `path` under the container's own procfs mount `proc` (a sysctl, the
/// oom_score_adj): opened beneath that mount with no symlink and no mount crossed, and checked
/// to be procfs (fstatfs), so that the write reaches the kernel and nothing else.
fn write_proc(proc: &OwnedFd, path: &str, value: &str) -> std::io::Result<()> {
    let fd = file::open_beneath_strict(proc.as_raw_fd(), path, libc::O_WRONLY | libc::O_NOCTTY | libc::O_NONBLOCK)?;
    if file::fd_fs_type(fd.as_raw_fd())? != libc::PROC_SUPER_MAGIC {
        return Err(std::io::Error::other(format!("/proc/{path} is not on procfs")));
    }
    sys::write_all(fd.as_raw_fd(), value.as_bytes())
}

fn user_mount(root: RawFd, pm: &PlannedMount, who: &str) -> Result<(), ChildError> {
    let target = &pm.target;
    match &pm.kind {
        PlannedKind::Bind { source } => {
            let src = open_path(source).ctx(format!("cannot open the mount source {}", source.display()))?;
            let src_is_dir = fsroot::is_dir(src.as_raw_fd()).unwrap_or(false);
            let create = if src_is_dir { Create::Dir } else { Create::File };
            // The target resolved once, by fd, and checked before anything is read from it or
            // mounted on it.
            let t = fsroot::resolve(root, OsStr::new(target), create).ctx(format!("cannot create the mount point {target}"))?;
            check_target(root, t.as_raw_fd(), target, who)?;
            if pm.copy_up {
                copy_up(t.as_raw_fd(), target, src.as_raw_fd())?;
            }
            if fsroot::is_dir(t.as_raw_fd()).unwrap_or(false) != src_is_dir {
                return Err(ChildError {
                    code: 127,
                    msg: format!("cannot mount {} on {target}: one is a directory and the other is not", source.display()),
                });
            }
            let bm = m::clone_tree(src.as_raw_fd(), true).ctx(format!("cannot bind {} on {target}", source.display()))?;
            if pm.read_only {
                m::set_attr(bm.as_raw_fd(), ATTR_RDONLY, 0, 0, true).ctx(format!("cannot make {target} read-only"))?;
            }
            m::attach(&bm, t.as_raw_fd()).ctx(format!("cannot bind {} on {target}", source.display()))?;
            if let Some((flag, rec)) = pm.propagation.as_deref().and_then(m::propagation) {
                if flag != libc::MS_PRIVATE {
                    m::set_attr(bm.as_raw_fd(), 0, 0, flag, rec).ctx(format!("cannot set the propagation of {target}"))?;
                }
            }
        }
        PlannedKind::Tmpfs { size, mode } => {
            let t = fsroot::resolve(root, OsStr::new(target), Create::Dir).ctx(format!("cannot create the mount point {target}"))?;
            check_target(root, t.as_raw_fd(), target, who)?;
            let size_s = size.map(|s| s.to_string());
            let mode_s = mode.map(|m| format!("{m:o}"));
            let mut opts: Vec<(&str, Option<&str>)> = Vec::new();
            if let Some(s) = &size_s {
                opts.push(("size", Some(s)));
            }
            if let Some(md) = &mode_s {
                opts.push(("mode", Some(md)));
            }
            let mut attrs = ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC;
            if pm.read_only {
                attrs |= ATTR_RDONLY;
            }
            let tm = m::new_fs("tmpfs", "tmpfs", &opts, attrs).ctx(format!("cannot mount a tmpfs on {target}"))?;
            m::attach(&tm, t.as_raw_fd()).ctx(format!("cannot mount a tmpfs on {target}"))?;
        }
    }
    Ok(())
}

/// Fills an empty volume (`vol`, a directory fd) from the image's content at `target` (`src`,
/// its resolved fd), with ownership and modes, as Docker does on a volume's first use. Content
/// on a kernel pseudo filesystem (procfs, sysfs...: where an image symlink may point) is never
/// image content and is never copied: it would hand the container what berth's own processes see.
fn copy_up(src: RawFd, target: &str, vol: RawFd) -> Result<(), ChildError> {
    if !fsroot::is_dir(src).unwrap_or(false) || file::on_pseudo_fs(src).unwrap_or(true) {
        return Ok(());
    }
    let srcd = reopen_dir(src).ctx(format!("cannot read {target} in the image"))?;
    let dstd = reopen_dir(vol).ctx("cannot open the volume")?;
    if dir_has_entries(&dstd) {
        return Ok(());
    }
    copy_dir(&srcd, &dstd).ctx(format!("cannot copy {target} from the image into the volume"))?;
    // The volume's root takes the owner and mode of the image's directory.
    let st = nix::sys::stat::fstat(&srcd).map_err(|e| ChildError { code: 127, msg: format!("stat {target}: {e}") })?;
    let _ = file::fchown(dstd.as_raw_fd(), st.st_uid, st.st_gid);
    let _ = file::fchmod(dstd.as_raw_fd(), st.st_mode & 0o7777);
    Ok(())
}

fn reopen_dir(fd: RawFd) -> std::io::Result<OwnedFd> {
    openat(fd, ".", libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)
}

fn dir_has_entries(d: &OwnedFd) -> bool {
    let Ok(dup) = nix::unistd::dup(d) else { return true };
    let Ok(mut dir) = nix::dir::Dir::from_fd(dup) else { return true };
    dir.iter().flatten().any(|e| {
        let n = e.file_name().to_bytes();
        n != b"." && n != b".."
    })
}

fn copy_dir(src: &OwnedFd, dst: &OwnedFd) -> std::io::Result<()> {
    let dup = nix::unistd::dup(src)?;
    let mut dir = nix::dir::Dir::from_fd(dup)?;
    let names: Vec<CString> =
        dir.iter().flatten().map(|e| e.file_name().to_owned()).filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..").collect();
    for name in names {
        let name = OsStr::from_bytes(name.to_bytes());
        let st = file::stat_at(src.as_raw_fd(), name, libc::AT_SYMLINK_NOFOLLOW)?;
        let (s, d) = (src.as_raw_fd(), dst.as_raw_fd());
        let nofollow = libc::O_NOFOLLOW;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                file::mkdir_at(d, name, 0o700)?;
                let sf = file::openat(s, name, libc::O_RDONLY | libc::O_DIRECTORY | nofollow, 0)?;
                let df = file::openat(d, name, libc::O_RDONLY | libc::O_DIRECTORY | nofollow, 0)?;
                copy_dir(&sf, &df)?;
            }
            libc::S_IFREG => {
                let mut sf = std::fs::File::from(file::openat(s, name, libc::O_RDONLY | nofollow, 0)?);
                let mut df = std::fs::File::from(file::openat(d, name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | nofollow, 0o600)?);
                std::io::copy(&mut sf, &mut df)?;
            }
            libc::S_IFLNK => {
                let t = file::readlink_at(s, name)?;
                file::symlink_at(&t, d, name)?;
            }
            _ => {
                file::mknod_at(d, name, st.st_mode, st.st_rdev)?;
            }
        }
        let _ = file::fchown_at(d, name, st.st_uid, st.st_gid, libc::AT_SYMLINK_NOFOLLOW);
        if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            let _ = file::fchmod_at(d, name, st.st_mode & 0o7777);
        }
    }
    Ok(())
}

/// Docker's masks and read-only paths, after pivot_root (so /proc and /sys are the ones just
/// mounted, which no container process has touched yet).
fn mask_paths() -> Result<(), ChildError> {
    let null = open_path(Path::new("/dev/null")).ctx("cannot open /dev/null")?;
    let mut masked: Vec<String> = MASKED_PATHS.iter().map(|s| s.to_string()).collect();
    if let Ok(rd) = std::fs::read_dir("/sys/devices/system/cpu") {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("cpu") && n[3..].bytes().all(|b| b.is_ascii_digit()) && n.len() > 3 {
                masked.push(format!("/sys/devices/system/cpu/{n}/thermal_throttle"));
            }
        }
    }
    for p in &masked {
        let Ok(t) = openat(libc::AT_FDCWD, p, libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) else { continue };
        if fsroot::is_dir(t.as_raw_fd()).unwrap_or(false) {
            let tm =
                m::new_fs("tmpfs", "tmpfs", &[], ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC).ctx(format!("cannot mask {p}"))?;
            m::attach(&tm, t.as_raw_fd()).ctx(format!("cannot mask {p}"))?;
        } else {
            let bm = m::clone_tree(null.as_raw_fd(), false).ctx(format!("cannot mask {p}"))?;
            m::attach(&bm, t.as_raw_fd()).ctx(format!("cannot mask {p}"))?;
        }
    }
    for p in READONLY_PATHS {
        let Ok(t) = openat(libc::AT_FDCWD, p, libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) else { continue };
        let bm = m::clone_tree(t.as_raw_fd(), true).ctx(format!("cannot make {p} read-only"))?;
        m::set_attr(bm.as_raw_fd(), ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC, 0, 0, true)
            .ctx(format!("cannot make {p} read-only"))?;
        m::attach(&bm, t.as_raw_fd()).ctx(format!("cannot make {p} read-only"))?;
    }
    Ok(())
}

fn wait_go(sync: RawFd) -> Result<(), ChildError> {
    let mut b = [0u8; 16];
    if sys::recv_some(sync, &mut b, 0).unwrap_or(0) >= 1 && b[0] == MSG_GO {
        return Ok(());
    }
    // The supervisor gave up (or died): stop here quietly.
    sys::exit_now(127)
}

/// Brings `lo` up in a new network namespace.
fn loopback_up() {
    // SAFETY: a socket of our own for the ioctls, closed at the end; ifreq is plain data, for
    // which all zeroes is valid, and SIOCGIFFLAGS/SIOCSIFFLAGS read and write only `req`.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        if libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req) == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            libc::ioctl(s, libc::SIOCSIFFLAGS, &req);
        }
        libc::close(s);
    }
}

/// The RLIMIT_* number of a Docker ulimit name.
pub fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name.to_ascii_lowercase().as_str() {
        "as" => libc::RLIMIT_AS,
        "core" => libc::RLIMIT_CORE,
        "cpu" => libc::RLIMIT_CPU,
        "data" => libc::RLIMIT_DATA,
        "fsize" => libc::RLIMIT_FSIZE,
        "locks" => libc::RLIMIT_LOCKS,
        "memlock" => libc::RLIMIT_MEMLOCK,
        "msgqueue" => libc::RLIMIT_MSGQUEUE,
        "nice" => libc::RLIMIT_NICE,
        "nofile" => libc::RLIMIT_NOFILE,
        "nproc" => libc::RLIMIT_NPROC,
        "rss" => libc::RLIMIT_RSS,
        "rtprio" => libc::RLIMIT_RTPRIO,
        "rttime" => libc::RLIMIT_RTTIME,
        "sigpending" => libc::RLIMIT_SIGPENDING,
        "stack" => libc::RLIMIT_STACK,
        _ => return None,
    })
}

fn set_rlimits(cfg: &ContainerConfig) -> Result<(), ChildError> {
    // Never hand our own (possibly raised) limits to the container: NOFILE 1024:524288 as
    // systemd and containerd set it, unless the user asks otherwise.
    let mut limits: Vec<(libc::__rlimit_resource_t, u64, u64)> = vec![(libc::RLIMIT_NOFILE, 1024, 524_288)];
    for u in &cfg.ulimits {
        let Some(r) = rlimit_resource(&u.name) else { continue };
        let v = |x: i64| if x < 0 { libc::RLIM_INFINITY } else { x as u64 };
        limits.retain(|(res, _, _)| *res != r);
        limits.push((r, v(u.soft), v(u.hard)));
    }
    for (r, soft, hard) in limits {
        set_rlimit(r, soft, hard).ctx(format!("cannot set the ulimit {}", rlimit_name(r)))?;
    }
    Ok(())
}

/// Sets a limit; where raising the hard limit is not allowed (no CAP_SYS_RESOURCE, as in some
/// sandboxes), the hard limit stays where it is and the soft one is clamped under it.
pub fn set_rlimit(r: libc::__rlimit_resource_t, soft: u64, hard: u64) -> std::io::Result<()> {
    let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: setrlimit reads `lim`, alive through the call.
    if unsafe { libc::setrlimit(r, &lim) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EPERM) {
        return Err(e);
    }
    let mut cur = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into `cur`, alive through the call.
    cvt(unsafe { libc::getrlimit(r, &mut cur) })?;
    if hard <= cur.rlim_max {
        return Err(e);
    }
    let lim = libc::rlimit { rlim_cur: soft.min(cur.rlim_max), rlim_max: cur.rlim_max };
    // SAFETY: as above.
    cvt(unsafe { libc::setrlimit(r, &lim) }).map(|_| ())
}

fn rlimit_name(r: libc::__rlimit_resource_t) -> &'static str {
    match r {
        libc::RLIMIT_NOFILE => "nofile",
        libc::RLIMIT_NPROC => "nproc",
        libc::RLIMIT_CORE => "core",
        libc::RLIMIT_STACK => "stack",
        libc::RLIMIT_MEMLOCK => "memlock",
        _ => "(other)",
    }
}

/// The environment: the config's, plus PATH, HOSTNAME, HOME and TERM where missing, as Docker.
pub fn final_env(cfg: &ContainerConfig, home: &str) -> Vec<String> {
    let has = |k: &str| cfg.env.iter().any(|e| e.split_once('=').map(|(a, _)| a) == Some(k) || e == k);
    let mut env = Vec::new();
    if !has("PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    env.push(format!("HOSTNAME={}", cfg.hostname()));
    env.extend(cfg.env.iter().cloned());
    if cfg.tty && !has("TERM") {
        env.push("TERM=xterm".into());
    }
    if !has("HOME") {
        env.push(format!("HOME={home}"));
    }
    env
}

/// A command ready to exec: the program resolved with the container's PATH, argv and envp.
pub struct ExecTarget {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    shown: String,
}

impl ExecTarget {
    /// Resolves `argv[0]` against PATH from `env`, inside the current root.
    pub fn prepare(argv: &[String], env: &[String]) -> Result<ExecTarget, ChildError> {
        let shown = argv.first().cloned().unwrap_or_default();
        if shown.is_empty() {
            return Err(ChildError { code: 127, msg: "exec: no command specified".into() });
        }
        let c = |s: &str| CString::new(s).map_err(|_| ChildError { code: 127, msg: format!("{s:?} contains a NUL byte") });
        let path = if shown.contains('/') {
            shown.clone()
        } else {
            let pathvar = env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
            let mut found = None;
            for dir in pathvar.split(':') {
                let dir = if dir.is_empty() { "." } else { dir };
                let cand = format!("{dir}/{shown}");
                let cc = c(&cand)?;
                if file::stat_at(libc::AT_FDCWD, OsStr::new(&cand), 0).is_ok_and(|st| file::kind(st.st_mode) == libc::S_IFREG)
                    && file::executable(&cc)
                {
                    found = Some(cand);
                    break;
                }
            }
            found.ok_or_else(|| ChildError { code: 127, msg: format!("exec: {shown:?}: executable file not found in $PATH") })?
        };
        Ok(ExecTarget {
            path: c(&path)?,
            argv: argv.iter().map(|a| c(a)).collect::<Result<_, _>>()?,
            envp: env.iter().map(|e| c(e)).collect::<Result<_, _>>()?,
            shown,
        })
    }

    /// The same program with another argv[0] (what the user typed rather than the path found).
    pub fn with_argv0(mut self, argv0: &str) -> ExecTarget {
        if let (Some(first), Ok(c)) = (self.argv.first_mut(), CString::new(argv0)) {
            *first = c;
            self.shown = argv0.to_string();
        }
        self
    }

    /// execve; returns only on failure, with Docker's exit codes (126 not executable, 127 missing).
    pub fn exec(&self) -> ChildError {
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self.envp.iter().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());
        // SAFETY: the path and the two NULL-terminated arrays of pointers to C strings that
        // `self` owns, all alive through the call (which returns only on failure).
        unsafe { libc::execve(self.path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        let e = std::io::Error::last_os_error();
        let code = match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => 127,
            _ => 126,
        };
        let what = match e.raw_os_error() {
            Some(libc::ENOENT) => "no such file or directory".to_string(),
            Some(libc::EACCES) => "permission denied".to_string(),
            _ => e.to_string(),
        };
        ChildError { code, msg: format!("exec: {:?}: {what}", self.shown) }
    }
}

/// Switches to the user with runc's ordering: seccomp first when no_new_privs is off (loading
/// a filter then needs CAP_SYS_ADMIN, which is about to go), bounding set, user and groups with
/// the capabilities kept, the final capability sets, no_new_privs, and seccomp last when it is on.
pub fn become_user(user: &super::user::ExecUser, cap_set: u64, nnp: bool, seccomp: Option<&[u8]>) -> Result<(), ChildError> {
    let sec = |e: std::io::Error| ChildError { code: 127, msg: format!("cannot load the seccomp filter: {e}") };
    if let (Some(bpf), false) = (seccomp, nnp) {
        super::seccomp::load(bpf).map_err(sec)?;
    }
    super::caps::drop_bounding(cap_set).ctx("cannot drop capabilities")?;
    // Raw calls, as this also runs in an exec's child, where nothing may allocate (see exec.rs).
    // SAFETY: prctl with integers only.
    cvt(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) }).ctx("prctl")?;
    let groups: &[libc::gid_t] = &user.sgids;
    // SAFETY: setgroups reads `groups.len()` gids from `groups`, alive through the call.
    cvt(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) }).ctx("setgroups")?;
    // SAFETY: integers only.
    cvt(unsafe { libc::setresgid(user.gid, user.gid, user.gid) }).ctx(format!("cannot switch to group {}", user.gid))?;
    // SAFETY: integers only.
    cvt(unsafe { libc::setresuid(user.uid, user.uid, user.uid) }).ctx(format!("cannot switch to user {}", user.uid))?;
    // SAFETY: integers only.
    cvt(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) }).ctx("prctl")?;
    super::caps::set_caps(cap_set).ctx("cannot set capabilities")?;
    // A credential change may have reset it: nothing of ours stays dumpable until exec.
    // SAFETY: integers only.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    if nnp {
        // SAFETY: integers only.
        cvt(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).ctx("cannot set no_new_privs")?;
        if let Some(bpf) = seccomp {
            super::seccomp::load(bpf).map_err(sec)?;
        }
    }
    Ok(())
}

/// berth's minimal init: forks the command, forwards every signal to it, reaps every zombie,
/// and exits with the command's status. It stays non-dumpable, so /proc/1/exe (the host's berth
/// binary) cannot be opened from inside.
fn run_init(exe: ExecTarget, sync: RawFd) -> Result<std::convert::Infallible, ChildError> {
    // SAFETY: this process is single-threaded (a clone of the single-threaded supervisor), so
    // the child is a whole copy that may do anything; it only resets its signals and execs.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return fail("fork", std::io::Error::last_os_error());
    }
    if child == 0 {
        sys::reset_signals();
        return Err(exe.exec());
    }
    // The child's exec closes its copy of the sync channel; ours must go now, with every other
    // fd this process still holds from the setup (an init never execs, so close-on-exec does
    // nothing for it). The OwnedFds among them are never dropped: this function never returns.
    let _ = sync;
    let _ = sys::close_from(3);
    loop {
        let sig = sys::wait_any_signal();
        if sig == libc::SIGCHLD {
            while let Some((pid, status)) = sys::reap_any() {
                if pid == child {
                    sys::exit_now(sys::exit_code_of(status));
                }
            }
        } else {
            // Our child, not reaped yet: its pid cannot have been reused.
            let _ = sys::kill(child, sig);
        }
    }
}
