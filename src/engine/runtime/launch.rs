//! Launching a container's PID 1: the plan (overlay options, mounts, sysctls, /etc files), the
//! clone into new namespaces, the cgroup, the network, and the hand-over over the sync channel.
//! Runs in the supervisor, which is single-threaded, so the clone is a plain fork-like clone.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::init::{self, CgroupView, InitPlan, MSG_ERROR, MSG_GO, MSG_TTY, PlannedKind, PlannedMount, ShmSource};
use super::spec::{ContainerConfig, MountType, Namespace, normalize};
use super::state::Paths;
use super::volumes::{self, VolumeSource};
use super::{RuntimeError, etc};
use crate::engine::cgroups::Cgroup;
use crate::net::{AttachRequest, Attachment, NetworkMode};
use crate::state::StateRoot;
use crate::util::sys::{self, ProcId};

/// A running container's PID 1 and the supervisor's ends of its streams.
pub struct Launched {
    pub init: ProcId,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// Our write end of the container's stdin (`open_stdin` without a tty).
    pub stdin: Option<OwnedFd>,
    /// The pty master (`tty`).
    pub pty: Option<OwnedFd>,
    pub attachment: Attachment,
    pub reservations: Vec<OwnedFd>,
    /// Published ports the supervisor forwards in userland (`net::proxy`).
    pub forwards: Vec<crate::net::proxy::Forward>,
    /// Whether `net::attach` was called (so `net::detach` is owed).
    pub attached: bool,
}

/// The overlay mount: the directory to chdir into and the options, with layer paths relative
/// to it when they share a parent (short links, as overlay2), so that deep images fit in a page.
pub fn overlay_options(layers: &[PathBuf], upper: &Path, work: &Path) -> Result<(PathBuf, String), String> {
    if layers.is_empty() {
        return Err("the image has no layers".into());
    }
    for p in layers.iter().map(|p| p.as_path()).chain([upper, work]) {
        let s = p.to_string_lossy();
        if s.contains([':', ',']) {
            return Err(format!("the path {s} contains ':' or ',', which overlay options cannot hold"));
        }
    }
    let parent = layers[0].parent().map(|p| p.to_path_buf());
    let shared = parent.as_ref().filter(|p| layers.iter().all(|l| l.parent() == Some(p.as_path())));
    let (cwd, lowers): (PathBuf, Vec<String>) = match shared {
        Some(p) => {
            (p.clone(), layers.iter().rev().map(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()).collect())
        }
        None => (PathBuf::from("/"), layers.iter().rev().map(|l| l.display().to_string()).collect()),
    };
    let opts = format!("lowerdir={},upperdir={},workdir={},index=off", lowers.join(":"), upper.display(), work.display());
    let page = sys::page_size();
    if opts.len() >= page {
        return Err(format!(
            "the image has too many layers ({}) for one overlay mount: its options take {} bytes, over the {page}-byte limit",
            layers.len(),
            opts.len()
        ));
    }
    Ok((cwd, opts))
}

/// The user's mounts with volumes resolved to host paths, parents before children.
pub fn plan_mounts(root: &StateRoot, cfg: &ContainerConfig) -> Result<Vec<PlannedMount>, RuntimeError> {
    let mut out = Vec::new();
    for m in &cfg.mounts {
        let target = normalize(&m.target);
        let propagation = m.bind_options.as_ref().and_then(|b| b.propagation.clone());
        let pm = match m.kind {
            MountType::Bind => {
                let src = PathBuf::from(&m.source);
                if !src.exists() {
                    if m.bind_options.as_ref().is_some_and(|b| b.create_mountpoint) {
                        std::fs::create_dir_all(&src).map_err(|e| RuntimeError::io("create the bind source", &src, e))?;
                    } else {
                        return Err(RuntimeError::Invalid {
                            name: cfg.name.clone(),
                            msg: format!("invalid mount config for type \"bind\": bind source path does not exist: {}", src.display()),
                        });
                    }
                }
                PlannedMount { target, kind: PlannedKind::Bind { source: src }, read_only: m.read_only, propagation, copy_up: false }
            }
            MountType::Volume => {
                let v = match volumes::get(root, &m.source)? {
                    Some(v) => v,
                    None => volumes::create(root, Some(&m.source), "local", BTreeMap::new(), BTreeMap::new())?,
                };
                let nocopy = m.volume_options.as_ref().is_some_and(|o| o.no_copy);
                match volumes::source(root, &v)? {
                    VolumeSource::Dir(dir) => {
                        let sub = m.volume_options.as_ref().and_then(|o| o.subpath.clone()).filter(|s| !s.is_empty());
                        let (source, copy_up) = match sub {
                            Some(s) => (subpath(&dir, &s, &cfg.name)?, false),
                            None => (dir, !nocopy),
                        };
                        PlannedMount { target, kind: PlannedKind::Bind { source }, read_only: m.read_only, propagation, copy_up }
                    }
                    VolumeSource::Tmpfs { size, mode } => PlannedMount {
                        target,
                        kind: PlannedKind::Tmpfs { size, mode },
                        read_only: m.read_only,
                        propagation: None,
                        copy_up: false,
                    },
                }
            }
            MountType::Tmpfs => {
                let o = m.tmpfs_options.clone().unwrap_or_default();
                PlannedMount {
                    target,
                    kind: PlannedKind::Tmpfs { size: o.size_bytes, mode: o.mode },
                    read_only: m.read_only,
                    propagation: None,
                    copy_up: false,
                }
            }
        };
        out.push(pm);
    }
    out.sort_by_key(|m| m.target.matches('/').count());
    Ok(out)
}

fn subpath(dir: &Path, sub: &str, name: &str) -> Result<PathBuf, RuntimeError> {
    let p = dir.join(sub.trim_start_matches('/'));
    let real = p.canonicalize().map_err(|e| RuntimeError::io("find the volume subpath", &p, e))?;
    let base = dir.canonicalize().map_err(|e| RuntimeError::io("find the volume", dir, e))?;
    if !real.starts_with(&base) {
        return Err(RuntimeError::Invalid { name: name.into(), msg: format!("the volume subpath {sub:?} leaves the volume") });
    }
    Ok(real)
}

/// Namespaced sysctls only (as runc checks them), plus Docker's defaults in a private netns.
pub fn plan_sysctls(cfg: &ContainerConfig) -> Result<Vec<(String, String)>, RuntimeError> {
    let own_net = matches!(cfg.network_mode, NetworkMode::Bridge | NetworkMode::None);
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    if own_net {
        out.insert("net.ipv4.ip_unprivileged_port_start".into(), "0".into());
        out.insert("net.ipv4.ping_group_range".into(), "0 2147483647".into());
    }
    let own_ipc = cfg.ipc_namespace().is_ok_and(|n| n == Namespace::Own);
    for (k, v) in &cfg.sysctls {
        let ipc = [
            "kernel.msgmax",
            "kernel.msgmnb",
            "kernel.msgmni",
            "kernel.sem",
            "kernel.shmall",
            "kernel.shmmax",
            "kernel.shmmni",
            "kernel.shm_rmid_forced",
        ];
        let is_ipc = ipc.contains(&k.as_str()) || k.starts_with("fs.mqueue.");
        if is_ipc && !own_ipc {
            return Err(RuntimeError::Invalid {
                name: cfg.name.clone(),
                msg: format!("sysctl {k:?} is not allowed: the container shares an IPC namespace (ipc: {})", cfg.ipc_mode),
            });
        }
        let ok = is_ipc || (k.starts_with("net.") && cfg.network_mode != NetworkMode::Host);
        if !ok {
            let why = if k.starts_with("net.") { "the container shares the host's network namespace" } else { "it is not namespaced" };
            return Err(RuntimeError::Invalid { name: cfg.name.clone(), msg: format!("sysctl {k:?} is not allowed: {why}") });
        }
        out.insert(k.clone(), v.clone());
    }
    Ok(out.into_iter().collect())
}

/// The PID 1 of another container (`network_mode: container:<id>`).
fn other_container_init(root: &StateRoot, id: &str) -> Result<(ProcId, Paths), RuntimeError> {
    let cfg = super::ops::lookup(root, id)?;
    let paths = Paths::new(root, &cfg.id);
    let st = super::ops::state_of(root, &cfg.id)?;
    match st.init.filter(|i| i.alive() && st.status.is_active()) {
        Some(i) => Ok((i, paths)),
        None => Err(RuntimeError::NotRunning(cfg.name)),
    }
}

/// Clones the container's PID 1 and brings it to exec. On failure nothing is left running.
pub fn launch(root: &StateRoot, cfg: &ContainerConfig, cgroup: &Cgroup, seccomp: Option<Vec<u8>>) -> Result<Launched, RuntimeError> {
    let paths = Paths::new(root, &cfg.id);
    let name = cfg.name.clone();
    let start_err = |msg: String| RuntimeError::Start { name: name.clone(), code: 127, msg };
    // A layer whose files are gone (a damaged image store) would fail the overlay mount with
    // a bare ENOENT deep in the child: say which image, and how to repair it.
    if let Some(l) = cfg.rootfs.layers.iter().find(|l| !l.is_dir()) {
        let image = if cfg.image_ref.is_empty() { cfg.image.as_str() } else { cfg.image_ref.as_str() };
        return Err(start_err(format!(
            "image {image} is damaged: its layer {} is missing; pull, load or import the image again to repair it",
            l.display()
        )));
    }
    let (overlay_cwd, overlay_opts) = overlay_options(&cfg.rootfs.layers, &paths.diff(), &paths.work()).map_err(&start_err)?;
    let mounts = plan_mounts(root, cfg)?;
    let sysctls = plan_sysctls(cfg)?;
    let cap_set = super::caps::compute(cfg.privileged, &cfg.cap_add, &cfg.cap_drop);

    let join = match &cfg.network_mode {
        NetworkMode::Container(other) => {
            let (init, _) = other_container_init(root, other)?;
            let p = PathBuf::from(format!("/proc/{}/ns/net", init.pid));
            let f = std::fs::File::open(&p).map_err(|e| RuntimeError::io("open", &p, e))?;
            if !init.alive() {
                return Err(RuntimeError::NotRunning(other.clone()));
            }
            Some(OwnedFd::from(f))
        }
        _ => None,
    };
    let own_netns = matches!(cfg.network_mode, NetworkMode::Bridge | NetworkMode::None);
    let invalid = |msg: String| RuntimeError::Invalid { name: cfg.name.clone(), msg };
    let ipc = cfg.ipc_namespace().map_err(invalid)?;
    let pidns = cfg.pid_namespace().map_err(invalid)?;
    // Another container's namespace of `kind`, opened now (that container must be running).
    let other_ns = |other: &str, kind: &str| -> Result<OwnedFd, RuntimeError> {
        let (init, _) = other_container_init(root, other)?;
        let p = PathBuf::from(format!("/proc/{}/ns/{kind}", init.pid));
        let f = std::fs::File::open(&p).map_err(|e| RuntimeError::io("open", &p, e))?;
        if !init.alive() {
            return Err(RuntimeError::NotRunning(other.to_string()));
        }
        Ok(OwnedFd::from(f))
    };
    let (join_ipcns, shm) = match &ipc {
        Namespace::Own => (None, ShmSource::Own),
        Namespace::Host => (None, ShmSource::Host),
        Namespace::Container(other) => (Some(other_ns(other, "ipc")?), ShmSource::Container(other_ns(other, "mnt")?)),
    };
    let join_pidns = match &pidns {
        Namespace::Container(other) => Some(other_ns(other, "pid")?),
        _ => None,
    };

    // Streams: pipes, or a pty the container creates in its own devpts.
    let (out_r, out_w) = sys::pipe().map_err(|e| RuntimeError::sys("pipe", e))?;
    let (err_r, err_w) = sys::pipe().map_err(|e| RuntimeError::sys("pipe", e))?;
    let stdin_pipe = if cfg.open_stdin && !cfg.tty { Some(sys::pipe().map_err(|e| RuntimeError::sys("pipe", e))?) } else { None };
    let (sync_parent, sync_child) = sys::socketpair(libc::SOCK_SEQPACKET).map_err(|e| RuntimeError::sys("socketpair", e))?;

    let etc_binds: Vec<(PathBuf, &'static str)> =
        vec![(paths.hosts(), "/etc/hosts"), (paths.hostname(), "/etc/hostname"), (paths.resolv_conf(), "/etc/resolv.conf")];
    let plan = InitPlan {
        cfg: cfg.clone(),
        rootfs_dir: paths.rootfs(),
        overlay_cwd,
        overlay_opts,
        mounts,
        etc_binds,
        cap_set,
        seccomp,
        cgroup: if cgroup.is_v2() { CgroupView::V2 } else { CgroupView::V1(cgroup.container_view()) },
        own_netns,
        join_netns: join,
        join_ipcns,
        shm,
        sysctls,
        stdin: stdin_pipe.as_ref().map(|(r, _)| r.as_raw_fd()),
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
        sync: sync_child.as_raw_fd(),
    };
    // Read-only caches the child would otherwise fill after the fork.
    let _ = super::caps::last_cap();

    let mut flags = libc::CLONE_NEWNS;
    if cfg.uts_mode != "host" {
        flags |= libc::CLONE_NEWUTS;
    }
    if own_netns {
        flags |= libc::CLONE_NEWNET;
    }
    if ipc == Namespace::Own {
        flags |= libc::CLONE_NEWIPC;
    }
    if pidns == Namespace::Own {
        flags |= libc::CLONE_NEWPID;
    }
    // Joining another container's pid namespace: this process enters it for its children only
    // (its own pid stays where it is), clones, and returns to its own for later children.
    let back_to_pidns = match &join_pidns {
        Some(ns) => {
            let mine = std::fs::File::open("/proc/self/ns/pid").map_err(|e| RuntimeError::io("open", Path::new("/proc/self/ns/pid"), e))?;
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWPID)
                .map_err(|e| RuntimeError::sys("join the pid namespace of the other container", e.into()))?;
            Some(mine)
        }
        None => None,
    };
    // On cgroup v2 the child is born in its cgroup; on v1 it is moved there below.
    let cgroup_dir = if cgroup.is_v2() {
        let d = &cgroup.dirs()[0];
        Some(std::fs::File::open(d).map_err(|e| RuntimeError::io("open", d, e))?)
    } else {
        None
    };
    // SAFETY: the supervisor is single-threaded (docs/design.md), so the child is a whole copy of
    // it and may allocate and take locks as any fresh process.
    let pid = unsafe { sys::clone_process(flags, cgroup_dir.as_ref().map(std::os::fd::AsRawFd::as_raw_fd)) };
    if let (false, Some(mine)) = (matches!(pid, Ok(0)), &back_to_pidns) {
        let _ = nix::sched::setns(mine, nix::sched::CloneFlags::CLONE_NEWPID);
    }
    let pid = pid.map_err(|e| RuntimeError::sys("clone the container process", e))?;
    if pid == 0 {
        drop(sync_parent);
        drop(out_r);
        drop(err_r);
        init::container_main(plan);
    }
    let pid = pid as i32;
    crate::timing!("supervisor: container process cloned");
    drop(plan);
    drop(sync_child);
    drop(out_w);
    drop(err_w);
    let stdin = stdin_pipe.map(|(r, w)| {
        drop(r);
        w
    });
    let mut guard = ChildGuard { pid, root: root.clone(), id: cfg.id.clone(), attached: false };
    let init = ProcId::of(pid).unwrap_or(ProcId { pid, start_time: 0 });

    // The network, then the files that depend on it.
    let mut attachment = Attachment::default();
    let mut reservations = Vec::new();
    let mut forwards = Vec::new();
    if cfg.network_mode == NetworkMode::Bridge && (!cfg.endpoints.is_empty() || !cfg.ports.is_empty()) {
        let req = AttachRequest {
            container_id: cfg.id.clone(),
            container_name: cfg.name.clone(),
            hostname: cfg.hostname(),
            project: cfg.labels.get(crate::labels::PROJECT).cloned(),
            service: cfg.labels.get(crate::labels::SERVICE).cloned(),
            netns_path: PathBuf::from(format!("/proc/{pid}/ns/net")),
            endpoints: cfg.endpoints.clone(),
            ports: cfg.ports.clone(),
            dns_servers: cfg.dns.clone(),
        };
        guard.attached = true;
        let res = crate::net::attach(root, &req).map_err(|source| RuntimeError::Net { name: cfg.name.clone(), source })?;
        attachment = res.attachment;
        reservations = res.reservations;
        forwards = res.forwards;
    }
    write_etc_files(root, cfg, &paths, &attachment)?;
    crate::timing!("supervisor: network attached, /etc files written");
    // Last, as it may wait for the kernel (a grace period that `start` set going early).
    if cgroup_dir.is_none() {
        cgroup.add_pid(pid)?;
    }
    crate::timing!("supervisor: container process in its cgroup");

    // Collect the pty master if asked, then release the child.
    let mut pty = None;
    let mut buf = vec![0u8; 4096];
    if cfg.tty {
        let (n, mut fds) = sys::recv_msg(sync_parent.as_raw_fd(), &mut buf).map_err(|e| RuntimeError::sys("wait for the container", e))?;
        match (n, buf.first()) {
            (1, Some(&MSG_TTY)) if !fds.is_empty() => pty = Some(fds.remove(0)),
            _ => return Err(child_error(&cfg.name, &buf[..n])),
        }
    }
    let go = [MSG_GO];
    if sys::send_some(sync_parent.as_raw_fd(), &go, 0).ok() != Some(1) {
        // The child is gone already: its message (if any) says why.
        let (n, _) = sys::recv_msg(sync_parent.as_raw_fd(), &mut buf).unwrap_or((0, Vec::new()));
        return Err(child_error(&cfg.name, &buf[..n]));
    }
    crate::timing!("supervisor: go sent to the container process");
    // EOF means exec happened (the channel is close-on-exec); a message is a setup error.
    let (n, _) = sys::recv_msg(sync_parent.as_raw_fd(), &mut buf).map_err(|e| RuntimeError::sys("wait for the container", e))?;
    if n > 0 {
        return Err(child_error(&cfg.name, &buf[..n]));
    }
    crate::timing!("supervisor: container process executed its command");
    guard.disarm();
    Ok(Launched {
        init,
        stdout: Some(out_r),
        stderr: Some(err_r),
        stdin,
        pty,
        attachment,
        reservations,
        forwards,
        attached: cfg.network_mode == NetworkMode::Bridge && (!cfg.endpoints.is_empty() || !cfg.ports.is_empty()),
    })
}

fn child_error(name: &str, msg: &[u8]) -> RuntimeError {
    if msg.len() >= 5 && msg[0] == MSG_ERROR {
        let code = i32::from_le_bytes([msg[1], msg[2], msg[3], msg[4]]);
        return RuntimeError::Start { name: name.into(), code, msg: String::from_utf8_lossy(&msg[5..]).into_owned() };
    }
    RuntimeError::Start { name: name.into(), code: 127, msg: "the container process exited during setup".into() }
}

/// Kills and reaps the half-started child, and undoes the network, unless disarmed.
struct ChildGuard {
    pid: i32,
    root: StateRoot,
    id: String,
    attached: bool,
}

impl ChildGuard {
    fn disarm(&mut self) {
        self.pid = 0;
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.pid > 0 {
            // Our child, not reaped yet: its pid cannot have been reused.
            let _ = sys::kill(self.pid, libc::SIGKILL);
            sys::wait_pid(self.pid, 0);
            if self.attached {
                let _ = crate::net::detach(&self.root, &self.id);
            }
        }
    }
}

/// Writes hosts, hostname and resolv.conf into the container's directory.
pub fn write_etc_files(root: &StateRoot, cfg: &ContainerConfig, paths: &Paths, att: &Attachment) -> Result<(), RuntimeError> {
    if let NetworkMode::Container(other) = &cfg.network_mode {
        // Share the other container's files, as Docker does.
        if let Ok(o) = super::ops::lookup(root, other) {
            let op = Paths::new(root, &o.id);
            for (src, dst) in [(op.hosts(), paths.hosts()), (op.resolv_conf(), paths.resolv_conf())] {
                let data = std::fs::read(&src).unwrap_or_default();
                super::state::write_ephemeral(&dst, &data)?;
            }
        }
        for p in [paths.hosts(), paths.resolv_conf()] {
            if !p.exists() {
                super::state::write_ephemeral(&p, b"")?;
            }
        }
        super::state::write_ephemeral(&paths.hostname(), etc::hostname_file(cfg).as_bytes())?;
        return Ok(());
    }
    let host_hosts =
        if cfg.network_mode == NetworkMode::Host { std::fs::read_to_string("/etc/hosts").unwrap_or_default() } else { String::new() };
    super::state::write_ephemeral(&paths.hosts(), etc::hosts_file(cfg, att, &host_hosts).as_bytes())?;
    super::state::write_ephemeral(&paths.hostname(), etc::hostname_file(cfg).as_bytes())?;
    let host_resolv = etc::host_resolv_conf();
    super::state::write_ephemeral(&paths.resolv_conf(), etc::resolv_conf(cfg, att, &host_resolv).as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_use_short_relative_links() {
        let layers: Vec<PathBuf> = (0..3).map(|i| PathBuf::from(format!("/r/images/l/L{i}"))).collect();
        let (cwd, o) = overlay_options(&layers, Path::new("/r/c/diff"), Path::new("/r/c/work")).unwrap();
        assert_eq!(cwd, PathBuf::from("/r/images/l"));
        assert_eq!(o, "lowerdir=L2:L1:L0,upperdir=/r/c/diff,workdir=/r/c/work,index=off");
        // 120 layers with 26-character links fit in one page; absolute 100-byte paths would not.
        let deep: Vec<PathBuf> = (0..120).map(|i| PathBuf::from(format!("/var/lib/berth/images/l/{i:026}"))).collect();
        assert!(overlay_options(&deep, Path::new("/u"), Path::new("/w")).is_ok());
        let mixed: Vec<PathBuf> = (0..60).map(|i| PathBuf::from(format!("/var/lib/berth/images/layers/{i:064}/diff"))).collect();
        assert!(overlay_options(&mixed, Path::new("/u"), Path::new("/w")).unwrap_err().contains("too many layers"));
    }

    #[test]
    fn sysctls_must_be_namespaced() {
        let mut c = ContainerConfig::default();
        let s = plan_sysctls(&c).unwrap();
        assert!(s.contains(&("net.ipv4.ip_unprivileged_port_start".into(), "0".into())));
        c.sysctls.insert("kernel.domainname".into(), "x".into());
        c.sysctls.clear();
        c.sysctls.insert("vm.swappiness".into(), "1".into());
        assert!(plan_sysctls(&c).unwrap_err().to_string().contains("not namespaced"));
        c.sysctls.clear();
        c.sysctls.insert("net.core.somaxconn".into(), "1024".into());
        c.network_mode = NetworkMode::Host;
        assert!(plan_sysctls(&c).is_err());
        c.network_mode = NetworkMode::None;
        assert_eq!(plan_sysctls(&c).unwrap().len(), 3);
    }
}
