//! RUN: the command runs in a one-off berth container (the runtime library, with a supervisor
//! like any container) on the stage's layers, with the build network. Its output comes back over
//! the attach socket; once it exits, the overlay upper directory, less the mount points the
//! runtime made, is committed as the step's layer, and the container is removed.

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::builder::State;
use super::dockerfile::{Command, Heredoc};
use crate::engine::image::{ImageError, ImageStore, Layer};
use crate::engine::runtime::{self, ContainerConfig, RuntimeError};
use crate::net::{EndpointRequest, NetworkMode};
use crate::state::StateRoot;
use crate::util::fs::FsError;
use crate::util::sys;
use crate::util::sys::signal::{OnDrop, SignalFd};

/// The network RUN steps use by default, as Docker's classic builder uses its `bridge`.
pub const BUILD_NETWORK: &str = "berth-build";

/// A RUN instruction as written.
pub struct RunStep<'a> {
    pub cmd: &'a Command,
    pub mounts: &'a [String],
    pub network: Option<&'a str>,
    pub heredocs: &'a [Heredoc],
}

/// What to run, fully resolved.
#[derive(Clone, Debug)]
pub struct Job {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    /// The cache mounts.
    pub mounts: Vec<RunMount>,
    /// Bind, tmpfs and secret mounts, ready.
    pub prepared: Vec<Prepared>,
    /// `default`, `host` or `none`.
    pub network: String,
    pub heredocs: Vec<Heredoc>,
    pub memory: Option<i64>,
    pub shm_size: Option<u64>,
    pub extra_hosts: Vec<String>,
}

/// How a RUN ended.
#[derive(Debug)]
pub enum Outcome {
    /// The command exited; on success, the layer of its changes (none if it changed nothing).
    Exited { code: i32, layer: Option<Layer> },
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the build container could not run")]
    Runtime(#[from] RuntimeError),
    #[error("the build network {BUILD_NETWORK} could not be set up")]
    Network(#[source] crate::net::NetError),
    #[error("the build was interrupted ({0}); its container was removed")]
    Interrupted(String),
    #[error("cannot commit the changes of the step")]
    Commit(#[source] ImageError),
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// The command line: the exec form as given; the shell form through the stage's SHELL, with
/// heredocs appended for the shell to read (`RUN <<EOF` alone runs the heredoc as the script).
pub(crate) fn argv(spec: &RunStep, state: &State) -> Vec<String> {
    match spec.cmd {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => {
            let mut argv = shell_of(state);
            let trimmed = s.trim();
            let script = match spec.heredocs {
                // A script with a shebang runs as a file of its own (mounted at /dev/pipes/NAME,
                // as BuildKit does), so that its interpreter is the one it names.
                [h] if heredoc_only(trimmed, h) && h.content.starts_with("#!") => return vec![format!("{PIPES}/{}", h.name)],
                [h] if heredoc_only(trimmed, h) => h.content.clone(),
                [] => s.clone(),
                hs => {
                    let mut t = s.clone();
                    t.push('\n');
                    for h in hs {
                        t.push_str(&h.content);
                        t.push_str(&h.name);
                        t.push('\n');
                    }
                    t
                }
            };
            argv.push(script);
            argv
        }
    }
}

/// Where heredoc scripts with a shebang are mounted.
const PIPES: &str = "/dev/pipes";

/// True when the command is nothing but the heredoc (`RUN <<EOF`).
fn heredoc_only(cmd: &str, h: &Heredoc) -> bool {
    cmd.strip_prefix("<<").map(|n| n.trim_start_matches('-').trim_matches(['"', '\''])) == Some(h.name.as_str())
}

fn shell_of(state: &State) -> Vec<String> {
    state
        .config
        .get("Shell")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect::<Vec<_>>())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
}

/// A `RUN --mount`, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMount {
    /// A directory kept between builds (`<root>/build/mounts/`).
    Cache {
        target: String,
        id: String,
        read_only: bool,
        uid: u32,
        gid: u32,
        mode: u32,
    },
    /// Files of the build context, a stage or an image (`from=`), read-only unless `rw` (whose
    /// writes are dropped after the step).
    Bind {
        target: String,
        source: String,
        from: Option<String>,
        rw: bool,
    },
    Tmpfs {
        target: String,
        size: Option<u64>,
    },
    /// A compose build secret, as a file (default `/run/secrets/<id>`).
    Secret {
        id: String,
        target: String,
        required: bool,
        uid: u32,
        gid: u32,
        mode: u32,
    },
}

impl RunMount {
    pub fn target(&self) -> &str {
        match self {
            RunMount::Cache { target, .. }
            | RunMount::Bind { target, .. }
            | RunMount::Tmpfs { target, .. }
            | RunMount::Secret { target, .. } => target,
        }
    }
}

/// Parses a `--mount` value (`type=cache,target=/root/.cache`); the default type is `bind`.
pub fn parse_mount(m: &str) -> Result<RunMount, String> {
    let bad = |reason: &str| format!("invalid --mount={m}: {reason}");
    let mut kind = "bind".to_string();
    let (mut target, mut id, mut ro, mut source, mut from, mut size, mut required) = (None, None, None::<bool>, None, None, None, false);
    let (mut uid, mut gid, mut mode) = (0, 0, None);
    for kv in m.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let flag = v.is_empty() || v == "true";
        match k {
            "type" => kind = v.to_string(),
            "target" | "dst" | "destination" => target = Some(v.to_string()),
            "source" | "src" => source = Some(v.to_string()),
            "from" => from = Some(v.to_string()),
            "id" => id = Some(v.to_string()),
            "ro" | "readonly" => ro = Some(flag),
            "rw" | "readwrite" => ro = Some(!flag),
            "uid" => uid = v.parse().map_err(|_| bad("uid= takes a number"))?,
            "gid" => gid = v.parse().map_err(|_| bad("gid= takes a number"))?,
            "mode" => mode = Some(u32::from_str_radix(v, 8).map_err(|_| bad("mode= takes an octal mode"))?),
            "size" => size = Some(crate::util::units::parse_bytes(v).map_err(|e| bad(&format!("size={v}: {e}")))?.max(0) as u64),
            "required" => required = flag,
            "sharing" => {}
            _ => return Err(bad(&format!("unknown option {k}"))),
        }
    }
    let abs = |t: Option<String>| t.filter(|t| t.starts_with('/'));
    Ok(match kind.as_str() {
        "cache" => {
            let target = abs(target).ok_or_else(|| bad("it needs an absolute target=/path"))?;
            if source.is_some() || from.is_some() {
                return Err(bad("berth's cache mounts take no from= or source="));
            }
            let id = id.unwrap_or_else(|| target.clone());
            RunMount::Cache { target, id, read_only: ro.unwrap_or(false), uid, gid, mode: mode.unwrap_or(0o755) }
        }
        "bind" => {
            let target = target.ok_or_else(|| bad("it needs a target="))?;
            RunMount::Bind { target, source: source.unwrap_or_else(|| ".".into()), from, rw: ro == Some(false) }
        }
        "tmpfs" => RunMount::Tmpfs { target: abs(target).ok_or_else(|| bad("it needs an absolute target=/path"))?, size },
        "secret" => {
            let id = id
                .or_else(|| target.as_ref().and_then(|t| t.rsplit('/').next().map(str::to_string)))
                .ok_or_else(|| bad("it needs an id="))?;
            let target = target.unwrap_or_else(|| format!("/run/secrets/{id}"));
            RunMount::Secret { id, target, required, uid, gid, mode: mode.unwrap_or(0o400) }
        }
        "ssh" => return Err(bad("type=ssh is not supported by berth: SSH agent forwarding into builds is not available")),
        other => return Err(bad(&format!("unknown type={other}: use bind, cache, tmpfs or secret"))),
    })
}

/// A bind, tmpfs or secret mount the builder has prepared on the host.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The host path (none for tmpfs).
    pub source: Option<PathBuf>,
    pub target: String,
    pub read_only: bool,
    pub tmpfs_size: Option<u64>,
}

/// The network mode and endpoints for a RUN on `network`.
fn network(root: &StateRoot, network: &str) -> Result<(NetworkMode, Vec<EndpointRequest>), RunError> {
    match network {
        "host" => Ok((NetworkMode::Host, Vec::new())),
        "none" => Ok((NetworkMode::None, Vec::new())),
        _ => {
            ensure_build_network(root)?;
            Ok((NetworkMode::Bridge, vec![EndpointRequest { network: BUILD_NETWORK.into(), ..Default::default() }]))
        }
    }
}

/// Creates the build network when it is missing: a bridge with a subnet from the default pool,
/// kept for later builds (as Docker keeps its `bridge`), removed with the state root.
fn ensure_build_network(root: &StateRoot) -> Result<(), RunError> {
    use crate::net::network;
    if network::read_network(root, BUILD_NETWORK).map_err(RunError::Network)?.is_some() {
        return Ok(());
    }
    let mut spec = crate::net::NetworkSpec { name: BUILD_NETWORK.into(), ..Default::default() };
    spec.labels.insert("berth.build".into(), "true".into());
    match network::create(root, spec) {
        Ok(_) | Err(crate::net::NetError::NetworkExists(_)) => Ok(()),
        Err(e) => Err(RunError::Network(e)),
    }
}

/// Removes temp files when the step ends.
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Removes the build container, whatever happens to the step.
struct ContainerGuard<'a> {
    root: &'a StateRoot,
    id: Option<String>,
}

impl Drop for ContainerGuard<'_> {
    fn drop(&mut self) {
        if let Some(id) = &self.id {
            let _ = runtime::remove(self.root, id, true, true);
        }
    }
}

/// Runs `job` on `layers` and commits what it changed.
pub fn run(store: &ImageStore, layers: &[Layer], job: &Job, sink: &mut dyn FnMut(&str)) -> Result<Outcome, RunError> {
    let root = store.state_root();
    let build_dir = super::cache::build_dir(root);
    let mut mounts = Vec::new();
    let mut stubs: Vec<String> =
        vec!["proc".into(), "dev".into(), "sys".into(), "etc/hosts".into(), "etc/hostname".into(), "etc/resolv.conf".into()];
    for m in &job.mounts {
        let RunMount::Cache { target, id, read_only, uid, gid, mode } = m else { continue };
        let key = crate::engine::image::Digest::of(id.as_bytes());
        let dir = build_dir.join("mounts").join(&key.hex()[..32]);
        crate::util::fs::create_dir_all_mode(&dir, 0o755)?;
        std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid)).map_err(|e| FsError::io("chown", &dir, e))?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(*mode)).map_err(|e| FsError::io("chmod", &dir, e))?;
        stubs.push(target.trim_start_matches('/').to_string());
        mounts.push(runtime::spec::Mount {
            kind: runtime::spec::MountType::Bind,
            source: dir.display().to_string(),
            target: target.clone(),
            read_only: *read_only,
            ..Default::default()
        });
    }
    for p in &job.prepared {
        stubs.push(p.target.trim_start_matches('/').to_string());
        mounts.push(match &p.source {
            Some(src) => runtime::spec::Mount {
                kind: runtime::spec::MountType::Bind,
                source: src.display().to_string(),
                target: p.target.clone(),
                read_only: p.read_only,
                ..Default::default()
            },
            None => runtime::spec::Mount {
                kind: runtime::spec::MountType::Tmpfs,
                target: p.target.clone(),
                tmpfs_options: Some(runtime::spec::TmpfsOptions { size_bytes: p.tmpfs_size, mode: None }),
                ..Default::default()
            },
        });
    }
    // Heredoc scripts run as files.
    let mut scripts = TempFiles(Vec::new());
    for h in &job.heredocs {
        let target = format!("{PIPES}/{}", h.name);
        if job.argv.first() != Some(&target) {
            continue;
        }
        let path = store.temp_path("script");
        std::fs::write(&path, &h.content).map_err(|e| FsError::io("write", &path, e))?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).map_err(|e| FsError::io("chmod", &path, e))?;
        scripts.0.push(path.clone());
        mounts.push(runtime::spec::Mount {
            kind: runtime::spec::MountType::Bind,
            source: path.display().to_string(),
            target,
            read_only: true,
            ..Default::default()
        });
    }
    // An empty stage (FROM scratch) still needs one lower directory.
    let mut lowers: Vec<PathBuf> = layers.iter().map(|l| store.dir().join(store.layer_link(&l.chain_id))).collect();
    if lowers.is_empty() {
        let empty = build_dir.join("empty");
        std::fs::create_dir_all(&empty).map_err(|e| FsError::io("create", &empty, e))?;
        lowers.push(empty);
    }
    let (network_mode, endpoints) = network(root, &job.network)?;
    let mut cfg = ContainerConfig {
        name: format!("berth_build_{}", &crate::util::id::new_id()[..12]),
        cmd: job.argv.clone(),
        env: job.env.clone(),
        user: job.user.clone(),
        working_dir: job.workdir.clone(),
        mounts,
        network_mode,
        endpoints,
        shm_size: job.shm_size,
        extra_hosts: job.extra_hosts.clone(),
        ..Default::default()
    };
    cfg.resources.memory = job.memory;
    cfg.labels.insert("berth.build".into(), "true".into());
    cfg.rootfs.layers = lowers;
    let cfg = runtime::create(root, cfg)?;
    let mut guard = ContainerGuard { root, id: Some(cfg.id.clone()) };
    let (mine, theirs) = crate::util::sys::socketpair(libc::SOCK_SEQPACKET)
        .map_err(|e| FsError::io("create a socket for", Path::new("the build container"), e))?;
    if let Err(e) = runtime::start(root, &cfg.id, Some(theirs)) {
        // A command that cannot start ends the step as Docker's does: its message and code.
        if let Some(code) = e.exit_code() {
            sink(&e.to_string());
            return Ok(Outcome::Exited { code, layer: None });
        }
        return Err(e.into());
    }
    let code = match pump(&mine, sink) {
        Pumped::Exit(c) => c,
        Pumped::Gone => runtime::wait(root, &cfg.id)?,
        // The guard kills and removes the container.
        Pumped::Signal(sig) => return Err(RunError::Interrupted(crate::util::sys::signal_name(sig))),
    };
    if code != 0 {
        return Ok(Outcome::Exited { code, layer: None });
    }
    let upper = runtime::state::Paths::new(root, &cfg.id).diff();
    let below = super::fstree::Tree::layers(&layers.iter().map(|l| store.layer_dir(&l.chain_id)).collect::<Vec<_>>())
        .map_err(|e| FsError::io("read", store.dir(), e))?;
    remove_stubs(&upper, &below, &stubs);
    let empty = std::fs::read_dir(&upper).map(|mut d| d.next().is_none()).unwrap_or(true);
    let layer = if empty { None } else { Some(store.commit_layer(layers.last().map(|l| &l.chain_id), &upper).map_err(RunError::Commit)?) };
    if let Some(id) = guard.id.take() {
        runtime::remove(root, &id, true, true)?;
    }
    Ok(Outcome::Exited { code, layer })
}

/// The last SIGINT, SIGTERM or SIGHUP a RUN step took (0 for none): builds running at once
/// pass it on to each other (see `project::build::build_services`).
static LAST_SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The signal that interrupted a RUN step of this process, if one did.
pub fn interrupted_by() -> Option<i32> {
    match LAST_SIGNAL.load(std::sync::atomic::Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

enum Pumped {
    Exit(i32),
    /// The supervisor went away without an exit code.
    Gone,
    /// SIGINT, SIGTERM or SIGHUP reached the build.
    Signal(i32),
}

/// Copies the container's output to `sink`, line by line, and returns how it ended.
fn pump(sock: &std::os::fd::OwnedFd, sink: &mut dyn FnMut(&str)) -> Pumped {
    use runtime::stdio::{EXIT, STDERR, STDOUT};
    let s = sock.as_raw_fd();
    // SIGINT, SIGTERM and SIGHUP blocked in this thread (and the threads it starts) while the
    // pump runs, and taken through a signalfd, so that an interrupted build removes its container.
    let signals = SignalFd::new(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP], OnDrop::Restore).ok();
    let mut buf = vec![0u8; 64 * 1024 + 1];
    let mut partial: Vec<u8> = Vec::new();
    let flush = |partial: &mut Vec<u8>, sink: &mut dyn FnMut(&str), all: bool| {
        while let Some(p) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=p).collect();
            sink(String::from_utf8_lossy(&line[..line.len() - 1]).trim_end_matches('\r'));
        }
        if all && !partial.is_empty() {
            sink(&String::from_utf8_lossy(partial));
            partial.clear();
        }
    };
    loop {
        let mut fds = [
            libc::pollfd { fd: s, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: signals.as_ref().map(|x| x.as_raw_fd()).unwrap_or(-1), events: libc::POLLIN, revents: 0 },
        ];
        if sys::poll(&mut fds, -1).is_err() {
            continue;
        }
        if fds[1].revents != 0 {
            if let Some(sig) = signals.as_ref().and_then(|x| x.read()) {
                LAST_SIGNAL.store(sig, std::sync::atomic::Ordering::SeqCst);
                flush(&mut partial, sink, true);
                return Pumped::Signal(sig);
            }
        }
        if fds[0].revents == 0 {
            continue;
        }
        let n = sys::recv_some(s, &mut buf, 0).unwrap_or(0);
        if n == 0 {
            flush(&mut partial, sink, true);
            return Pumped::Gone;
        }
        let m = &buf[..n];
        match m[0] {
            STDOUT | STDERR => {
                partial.extend_from_slice(&m[1..]);
                flush(&mut partial, sink, false);
            }
            EXIT if m.len() >= 5 => {
                flush(&mut partial, sink, true);
                let code = i32::from_le_bytes([m[1], m[2], m[3], m[4]]);
                // The supervisor closes the socket once the exit is recorded.
                while sys::recv_some(s, &mut buf, 0).unwrap_or(0) > 0 {}
                return Pumped::Exit(code);
            }
            _ => {}
        }
    }
}

/// Removes from the upper directory the mount points the runtime created (`/proc`, `/etc/hosts`,
/// cache mount targets...) where the image had nothing, and the directories made only for them.
fn remove_stubs(upper: &Path, below: &super::fstree::Tree, stubs: &[String]) {
    for s in stubs {
        let rel = Path::new(s);
        if below.lookup(rel).ok().flatten().is_some() {
            continue;
        }
        let p = upper.join(rel);
        let Ok(md) = std::fs::symlink_metadata(&p) else { continue };
        if md.is_dir() {
            let _ = std::fs::remove_dir(&p);
        } else if md.is_file() && md.len() == 0 {
            let _ = std::fs::remove_file(&p);
        }
        // Parents made, or copied up unchanged, only for the stub.
        let mut parent = rel.parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            let up = upper.join(dir);
            if let Some(lower) = below.lookup(dir).ok().flatten() {
                let Ok(md) = std::fs::symlink_metadata(&up) else { break };
                let same = md.is_dir() && md.mode() & 0o7777 == lower.mode() && md.uid() == lower.uid() && md.gid() == lower.gid();
                let opaque = xattr_set(&up, "trusted.overlay.opaque");
                if !same || opaque {
                    break;
                }
            }
            if std::fs::remove_dir(&up).is_err() {
                break;
            }
            parent = dir.parent();
        }
    }
}

fn xattr_set(p: &Path, name: &str) -> bool {
    std::ffi::CString::new(name).is_ok_and(|n| sys::file::has_xattr(p, &n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts() {
        assert_eq!(
            parse_mount("type=cache,target=/root/.cache,id=pip").unwrap(),
            RunMount::Cache { target: "/root/.cache".into(), id: "pip".into(), read_only: false, uid: 0, gid: 0, mode: 0o755 }
        );
        assert!(matches!(parse_mount("type=cache,target=/c").unwrap(), RunMount::Cache { id, .. } if id == "/c"));
        assert_eq!(
            parse_mount("source=package.json,target=package.json").unwrap(),
            RunMount::Bind { target: "package.json".into(), source: "package.json".into(), from: None, rw: false }
        );
        assert!(
            matches!(parse_mount("type=bind,target=.,from=build,rw").unwrap(), RunMount::Bind { rw: true, from: Some(f), .. } if f == "build")
        );
        assert_eq!(
            parse_mount("type=secret,id=npmrc").unwrap(),
            RunMount::Secret { id: "npmrc".into(), target: "/run/secrets/npmrc".into(), required: false, uid: 0, gid: 0, mode: 0o400 }
        );
        assert!(matches!(parse_mount("type=tmpfs,target=/t,size=1m").unwrap(), RunMount::Tmpfs { size: Some(1048576), .. }));
        assert!(parse_mount("type=ssh").unwrap_err().contains("not supported"));
        assert!(parse_mount("type=cache").unwrap_err().contains("target"));
        assert!(parse_mount("type=cache,target=/x,bogus=1").unwrap_err().contains("unknown option bogus"));
    }
}
