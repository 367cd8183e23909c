//! cgroups v1 and v2 behind one interface.
//!
//! Each container gets `berth/<container id>` under every controller it uses (v1) or under the
//! unified root (v2). The version is detected once with `statfs` on `/sys/fs/cgroup`, as youki
//! does: `cgroup2` there means the unified hierarchy, a tmpfs means v1 (or the v1 half of a hybrid
//! host, whose empty `unified` mount carries no controllers). The `berth` parent is removed when it
//! empties.
//!
//! Both implementations take their root as a path, so the v2 code is tested against a fake
//! cgroupfs in a temp dir on hosts whose v2 mount has no controllers.

pub mod devices;
pub mod v1;
pub mod v2;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::util::fs::FsError;

/// The parent every container cgroup lives under.
pub const PARENT: &str = "berth";

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("no cgroup filesystem is mounted at /sys/fs/cgroup; mount cgroup2 (or the v1 controllers) there")]
    NotMounted,
    #[error(
        "the {controller} cgroup controller is not available here, so `{setting}` cannot be applied; \
         enable the controller or remove the setting"
    )]
    MissingController { controller: &'static str, setting: &'static str },
    #[error("{} still holds processes after they were killed; remove it by hand once they exit", path.display())]
    Busy { path: PathBuf },
    #[error("invalid resource limit: {0}")]
    Invalid(String),
    #[error("`{setting}` is not supported here: {why}; remove it from the service")]
    Unsupported { setting: &'static str, why: &'static str },
}

impl CgroupError {
    /// The message with its cause, on one line (for errors reported inside another's).
    pub fn one_line(&self) -> String {
        match self {
            CgroupError::Fs(FsError::Io { source, .. }) => format!("{self}: {source}"),
            CgroupError::Invalid(m) => m.clone(),
            e => e.to_string(),
        }
    }

    fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        CgroupError::Fs(FsError::io(op, path, source))
    }
}

/// Resource limits, with Docker's field names and units (bytes, nano-CPUs, shares).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Resources {
    /// Memory limit in bytes (`mem_limit`, `deploy.resources.limits.memory`).
    pub memory: Option<i64>,
    /// Soft limit in bytes (`mem_reservation`).
    pub memory_reservation: Option<i64>,
    /// Memory plus swap in bytes (`memswap_limit`); -1 is unlimited swap. Unset with a memory
    /// limit means twice the memory limit, as Docker does.
    pub memory_swap: Option<i64>,
    /// CPU quota in billionths of a CPU (`cpus: 1.5` is 1_500_000_000).
    #[serde(rename = "NanoCpus")]
    pub nano_cpus: Option<i64>,
    /// Relative CPU weight (`cpu_shares`, default 1024).
    pub cpu_shares: Option<u64>,
    /// CFS period in microseconds (`cpu_period`).
    pub cpu_period: Option<u64>,
    /// CFS quota in microseconds (`cpu_quota`).
    pub cpu_quota: Option<i64>,
    /// Allowed CPUs (`cpuset`), e.g. "0-1".
    pub cpuset_cpus: Option<String>,
    /// Allowed memory nodes.
    pub cpuset_mems: Option<String>,
    /// Maximum number of processes (`pids_limit`); 0 or -1 is unlimited.
    pub pids_limit: Option<i64>,
    /// The kernel's swap tendency for the cgroup, 0 to 100 (`mem_swappiness`; v1 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_swappiness: Option<i64>,
    /// Do not OOM-kill the cgroup's processes (`oom_kill_disable`; v1 only).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub oom_kill_disable: bool,
    /// Real-time scheduling period and runtime in microseconds (`cpu_rt_period`,
    /// `cpu_rt_runtime`; v1 kernels with real-time group scheduling only).
    #[serde(rename = "CPURealtimePeriod", skip_serializing_if = "Option::is_none")]
    pub cpu_rt_period: Option<u64>,
    #[serde(rename = "CPURealtimeRuntime", skip_serializing_if = "Option::is_none")]
    pub cpu_rt_runtime: Option<i64>,
    /// Block I/O weight 10 to 1000 (`blkio_config.weight`).
    #[serde(rename = "BlkioWeight", skip_serializing_if = "Option::is_none")]
    pub blkio_weight: Option<u16>,
    /// Per-device weights, limits in bytes per second and in operations per second
    /// (`blkio_config.weight_device`, `device_read_bps`, ...); `rate` is the weight for the first.
    #[serde(rename = "BlkioWeightDevice", skip_serializing_if = "Vec::is_empty")]
    pub blkio_weight_device: Vec<ThrottleDevice>,
    #[serde(rename = "BlkioDeviceReadBps", skip_serializing_if = "Vec::is_empty")]
    pub blkio_device_read_bps: Vec<ThrottleDevice>,
    #[serde(rename = "BlkioDeviceWriteBps", skip_serializing_if = "Vec::is_empty")]
    pub blkio_device_write_bps: Vec<ThrottleDevice>,
    #[serde(rename = "BlkioDeviceReadIOps", skip_serializing_if = "Vec::is_empty")]
    pub blkio_device_read_iops: Vec<ThrottleDevice>,
    #[serde(rename = "BlkioDeviceWriteIOps", skip_serializing_if = "Vec::is_empty")]
    pub blkio_device_write_iops: Vec<ThrottleDevice>,
    /// Host devices given to the container (`devices:`): created in its /dev and allowed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceMapping>,
    /// Extra device rules in the v1 syntax, `c 1:3 rwm` (`device_cgroup_rules`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
}

/// A block device (by its host path) and a rate or weight.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ThrottleDevice {
    pub path: String,
    pub rate: u64,
}

/// A host device node and where it appears in the container, as Docker's API has it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    /// Some of `rwm` (default `rwm`).
    pub cgroup_permissions: String,
}

/// A host device node: its kind (`c` or `b`), numbers and mode bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostDevice {
    pub kind: char,
    pub major: u32,
    pub minor: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Reads the device node at `path` on the host.
pub fn host_device(path: &str) -> Result<HostDevice, CgroupError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let p = Path::new(path);
    let md = std::fs::metadata(p).map_err(|e| CgroupError::io("find the device", p, e))?;
    let kind = if md.file_type().is_char_device() {
        'c'
    } else if md.file_type().is_block_device() {
        'b'
    } else {
        return Err(CgroupError::Invalid(format!("{path} is not a device node: give a character or block device")));
    };
    let rdev = md.rdev();
    Ok(HostDevice { kind, major: libc::major(rdev), minor: libc::minor(rdev), mode: md.mode(), uid: md.uid(), gid: md.gid() })
}

/// `maj:min` of the block device at `path` (for the blkio and io limits).
fn block_numbers(path: &str) -> Result<String, CgroupError> {
    let d = host_device(path)?;
    if d.kind != 'b' {
        return Err(CgroupError::Invalid(format!("{path} is not a block device")));
    }
    Ok(format!("{}:{}", d.major, d.minor))
}

impl Resources {
    /// The CFS (quota, period) in microseconds, if any CPU limit is set.
    pub fn cfs(&self) -> Option<(i64, u64)> {
        if let Some(n) = self.nano_cpus.filter(|n| *n > 0) {
            let period = 100_000u64;
            return Some(((n as i128 * period as i128 / 1_000_000_000) as i64, period));
        }
        match (self.cpu_quota, self.cpu_period) {
            (Some(q), p) if q != 0 => Some((q, p.filter(|p| *p > 0).unwrap_or(100_000))),
            (_, Some(p)) if p > 0 => Some((-1, p)),
            _ => None,
        }
    }

    /// The memory+swap limit to apply, following Docker's rule (twice the memory when unset).
    pub fn effective_memory_swap(&self) -> Option<i64> {
        match (self.memory.filter(|m| *m > 0), self.memory_swap) {
            (_, Some(s)) if s != 0 => Some(s),
            (Some(m), _) => Some(m.saturating_mul(2)),
            _ => None,
        }
    }

    /// The device rules beyond Docker's defaults: each `devices:` entry, then `device_cgroup_rules`.
    pub fn extra_device_rules(&self) -> Result<Vec<String>, CgroupError> {
        let mut out = Vec::new();
        for d in &self.devices {
            let h = host_device(&d.path_on_host)?;
            let perms = if d.cgroup_permissions.is_empty() { "rwm" } else { d.cgroup_permissions.as_str() };
            out.push(format!("{} {}:{} {perms}", h.kind, h.major, h.minor));
        }
        out.extend(self.device_cgroup_rules.iter().cloned());
        Ok(out)
    }

    /// Whether any block I/O setting is asked for.
    pub fn has_blkio(&self) -> bool {
        self.blkio_weight.is_some()
            || !self.blkio_weight_device.is_empty()
            || !self.blkio_device_read_bps.is_empty()
            || !self.blkio_device_write_bps.is_empty()
            || !self.blkio_device_read_iops.is_empty()
            || !self.blkio_device_write_iops.is_empty()
    }

    /// The block I/O limits as (`maj:min`, kind, value) with kind one of `rbps`, `wbps`,
    /// `riops`, `wiops` (the v2 io.max keys), devices resolved on the host.
    pub fn io_limits(&self) -> Result<Vec<(String, &'static str, u64)>, CgroupError> {
        let mut out = Vec::new();
        for (list, key) in [
            (&self.blkio_device_read_bps, "rbps"),
            (&self.blkio_device_write_bps, "wbps"),
            (&self.blkio_device_read_iops, "riops"),
            (&self.blkio_device_write_iops, "wiops"),
        ] {
            for t in list {
                out.push((block_numbers(&t.path)?, key, t.rate));
            }
        }
        Ok(out)
    }

    /// The per-device weights as (`maj:min`, weight).
    pub fn io_weights(&self) -> Result<Vec<(String, u64)>, CgroupError> {
        self.blkio_weight_device.iter().map(|w| Ok((block_numbers(&w.path)?, w.rate))).collect()
    }

    /// Checks the values the kernel would reject, with Docker's messages.
    pub fn validate(&self) -> Result<(), CgroupError> {
        if let Some(m) = self.memory.filter(|m| *m > 0) {
            if m < 6 * 1024 * 1024 {
                return Err(CgroupError::Invalid("minimum memory limit allowed is 6MB".into()));
            }
            if let Some(s) = self.memory_swap.filter(|s| *s > 0) {
                if s < m {
                    return Err(CgroupError::Invalid("minimum memoryswap limit should be larger than memory limit, see usage".into()));
                }
            }
        } else if self.memory_swap.is_some_and(|s| s > 0) {
            return Err(CgroupError::Invalid("you should always set the memory limit when using the memoryswap limit".into()));
        }
        if self.nano_cpus.is_some_and(|n| n < 0) {
            return Err(CgroupError::Invalid("the CPU count cannot be negative".into()));
        }
        if let Some(s) = self.memory_swappiness.filter(|s| !(0..=100).contains(s)) {
            return Err(CgroupError::Invalid(format!("mem_swappiness {s} is out of range: use 0 to 100")));
        }
        if let Some(w) = self.blkio_weight.filter(|w| !(10..=1000).contains(w)) {
            return Err(CgroupError::Invalid(format!("blkio_config.weight {w} is out of range: use 10 to 1000")));
        }
        if let Some(w) = self.blkio_weight_device.iter().find(|w| !(10..=1000).contains(&w.rate)) {
            return Err(CgroupError::Invalid(format!(
                "blkio_config.weight_device {}: weight {} is out of range: use 10 to 1000",
                w.path, w.rate
            )));
        }
        if self.cpu_rt_runtime.is_some_and(|r| r > 0)
            && self.cpu_rt_period.is_some_and(|p| p > 0 && (p as i64) < self.cpu_rt_runtime.unwrap_or(0))
        {
            return Err(CgroupError::Invalid("cpu_rt_runtime cannot be higher than cpu_rt_period".into()));
        }
        for r in &self.device_cgroup_rules {
            if devices::parse_rule(r).is_none() {
                return Err(CgroupError::Invalid(format!(
                    "device_cgroup_rules: invalid rule {r:?}: use `c|b|a <major|*>:<minor|*> <rwm>`, such as `c 1:3 rwm`"
                )));
            }
        }
        for d in &self.devices {
            if !d.cgroup_permissions.chars().all(|c| "rwm".contains(c)) {
                return Err(CgroupError::Invalid(format!(
                    "devices: {}: invalid permissions {:?}: use some of r, w and m",
                    d.path_on_host, d.cgroup_permissions
                )));
            }
        }
        if self.nano_cpus.is_some_and(|n| n > 0) && (self.cpu_quota.is_some_and(|q| q > 0)) {
            return Err(CgroupError::Invalid("conflicting options: `cpus` and `cpu_quota` cannot both be set".into()));
        }
        Ok(())
    }
}

/// The cgroup version of this host, detected once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// v1: each controller's mount point (co-mounted controllers share one).
    V1(v1::Mounts),
    /// v2: the unified mount point.
    V2(PathBuf),
}

impl Hierarchy {
    /// What of `res` this host's cgroups cannot apply and drop, one warning each, where Docker
    /// drops the setting with a warning and runs the container: `mem_swappiness` and
    /// `oom_kill_disable` on v2, and the block I/O weights where no device's scheduler has a
    /// weight file (v1 `blkio.weight`/`blkio.bfq.weight`, v2 `io.weight`/`io.bfq.weight`).
    pub fn discarded(&self, res: &Resources) -> Vec<String> {
        let mut w = Vec::new();
        if let Hierarchy::V2(_) = self {
            if res.memory_swappiness.is_some_and(|s| s >= 0) {
                w.push("cgroup v2 does not support memory swappiness: `mem_swappiness` discarded".to_string());
            }
            if res.oom_kill_disable {
                w.push("cgroup v2 cannot disable the OOM killer: `oom_kill_disable` discarded".to_string());
            }
        }
        if (res.blkio_weight.is_some() || !res.blkio_weight_device.is_empty()) && !self.has_io_weights() {
            let key = if res.blkio_weight.is_some() { "blkio_config.weight" } else { "blkio_config.weight_device" };
            w.push(format!("no block device here uses an I/O scheduler with weights (BFQ, CFQ or io.cost): `{key}` discarded"));
        }
        w
    }

    /// Whether a cgroup here gets a block I/O weight file: looked up in berth's parent cgroup,
    /// else (before any container made it) in the hierarchy's first-level cgroups.
    fn has_io_weights(&self) -> bool {
        let (root, has): (PathBuf, fn(&Path) -> bool) = match self {
            Hierarchy::V1(m) => match m.get("blkio") {
                Some(p) => (p.to_path_buf(), |d| v1::weight_file(d).is_some()),
                None => return false,
            },
            Hierarchy::V2(r) => (r.clone(), |d| v2::weight_file(d).is_some()),
        };
        // v1's root cgroup has the files too; v2's never does.
        if has(&root) {
            return true;
        }
        let parent = root.join(PARENT);
        if parent.is_dir() {
            return has(&parent);
        }
        std::fs::read_dir(&root).into_iter().flatten().flatten().map(|e| e.path()).any(|d| d.is_dir() && has(&d))
    }
}

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const TMPFS_MAGIC: i64 = 0x0102_1994;
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;

/// Forces the v2 code on a given cgroup2 mount (tests and benchmarks on hybrid hosts, whose
/// `unified` mount has no controllers but does freezing, killing, clone-into and device filters).
pub const V2_ROOT_ENV: &str = "BERTH_CGROUP_V2_ROOT";

/// Detects the hierarchy at `/sys/fs/cgroup` (cached for the process). A failure keeps what
/// [`detect`] said (the call and path that failed, or that nothing is mounted), every time.
pub fn hierarchy() -> Result<&'static Hierarchy, CgroupError> {
    static H: OnceLock<Result<Hierarchy, DetectFailure>> = OnceLock::new();
    let h = H.get_or_init(|| {
        if let Some(root) = std::env::var_os(V2_ROOT_ENV).filter(|r| !r.is_empty()) {
            return Ok(Hierarchy::V2(PathBuf::from(root)));
        }
        detect(Path::new("/sys/fs/cgroup")).map_err(|e| DetectFailure::of(&e))
    });
    h.as_ref().map_err(DetectFailure::error)
}

/// A failed [`detect`], kept so that each call can return it again (a `CgroupError` holds an
/// `io::Error`, which cannot be cloned).
#[derive(Debug)]
enum DetectFailure {
    Io { op: &'static str, path: PathBuf, errno: Option<i32>, kind: io::ErrorKind, text: String },
    NotMounted,
}

impl DetectFailure {
    fn of(e: &CgroupError) -> DetectFailure {
        match e {
            CgroupError::Fs(FsError::Io { op, path, source }) => {
                DetectFailure::Io { op, path: path.clone(), errno: source.raw_os_error(), kind: source.kind(), text: source.to_string() }
            }
            // detect fails only on I/O or with nothing mounted.
            _ => DetectFailure::NotMounted,
        }
    }

    fn error(&self) -> CgroupError {
        match self {
            DetectFailure::Io { op, path, errno, kind, text } => {
                let source = match errno {
                    Some(n) => io::Error::from_raw_os_error(*n),
                    None => io::Error::new(*kind, text.clone()),
                };
                CgroupError::io(op, path, source)
            }
            DetectFailure::NotMounted => CgroupError::NotMounted,
        }
    }
}

fn detect(root: &Path) -> Result<Hierarchy, CgroupError> {
    let f_type = crate::util::sys::file::fs_type(root).map_err(|e| CgroupError::io("statfs", root, e))?;
    match f_type {
        CGROUP2_SUPER_MAGIC => Ok(Hierarchy::V2(root.to_path_buf())),
        TMPFS_MAGIC | CGROUP_SUPER_MAGIC => {
            let info = std::fs::read_to_string("/proc/self/mountinfo")
                .map_err(|e| CgroupError::io("read", Path::new("/proc/self/mountinfo"), e))?;
            let mounts = v1::Mounts::parse(&info);
            if mounts.is_empty() {
                return Err(CgroupError::NotMounted);
            }
            Ok(Hierarchy::V1(mounts))
        }
        _ => Err(CgroupError::NotMounted),
    }
}

/// One container's cgroup, on either version.
#[derive(Debug, Clone)]
pub enum Cgroup {
    V1(v1::V1Cgroup),
    V2(v2::V2Cgroup),
}

impl Cgroup {
    /// The cgroup of container `id` on this host (nothing is created).
    pub fn for_container(id: &str) -> Result<Cgroup, CgroupError> {
        Ok(match hierarchy()? {
            Hierarchy::V1(m) => Cgroup::V1(v1::V1Cgroup::new(m.clone(), id)),
            Hierarchy::V2(root) => Cgroup::V2(v2::V2Cgroup::new(root.clone(), id)),
        })
    }

    /// Every cgroup a container may have on this host: its own, plus on a hybrid host the one a
    /// run with [`V2_ROOT_ENV`] made in the `unified` mount (so that clean-up finds both).
    pub fn all_for_container(id: &str) -> Vec<Cgroup> {
        let mut out: Vec<Cgroup> = Cgroup::for_container(id).into_iter().collect();
        let unified = Path::new("/sys/fs/cgroup/unified");
        if !out.iter().any(|c| c.is_v2()) && unified.join(PARENT).join(id).is_dir() {
            out.push(Cgroup::V2(v2::V2Cgroup::new(unified.to_path_buf(), id)));
        }
        out
    }

    pub fn is_v2(&self) -> bool {
        matches!(self, Cgroup::V2(_))
    }

    /// Creates the cgroup (and the `berth` parent) and applies the limits.
    pub fn create(&self, res: &Resources, privileged: bool) -> Result<(), CgroupError> {
        res.validate()?;
        match self {
            Cgroup::V1(c) => c.create(res, privileged),
            Cgroup::V2(c) => c.create(res, privileged),
        }
    }

    /// Moves `pid` (a whole process) into the cgroup.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        for f in self.procs_files() {
            write_file(&f, &pid.to_string())?;
        }
        Ok(())
    }

    /// The `cgroup.procs` files a process writes itself into to join (one per hierarchy).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs().into_iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Every directory this cgroup has (one per v1 controller mount, or one on v2).
    pub fn dirs(&self) -> Vec<PathBuf> {
        match self {
            Cgroup::V1(c) => c.dirs(),
            Cgroup::V2(c) => vec![c.dir().to_path_buf()],
        }
    }

    pub fn exists(&self) -> bool {
        self.dirs().iter().any(|d| d.is_dir())
    }

    /// The processes in the cgroup (host pids).
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let f = match self {
            Cgroup::V1(c) => c.main_dir().join("cgroup.procs"),
            Cgroup::V2(c) => c.dir().join("cgroup.procs"),
        };
        read_pids(&f)
    }

    pub fn freeze(&self) -> Result<(), CgroupError> {
        match self {
            Cgroup::V1(c) => c.set_frozen(true),
            Cgroup::V2(c) => c.set_frozen(true),
        }
    }

    pub fn thaw(&self) -> Result<(), CgroupError> {
        match self {
            Cgroup::V1(c) => c.set_frozen(false),
            Cgroup::V2(c) => c.set_frozen(false),
        }
    }

    /// How many processes the kernel's OOM killer has killed in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        match self {
            Cgroup::V1(c) => c.oom_kills(),
            Cgroup::V2(c) => c.oom_kills(),
        }
    }

    /// Sends SIGKILL to every process in the cgroup (thawing it first so the kills land).
    pub fn kill_all(&self) {
        let _ = self.thaw();
        if let Cgroup::V2(c) = self {
            if c.kill().is_ok() {
                return;
            }
        }
        // By pid (cgroup v1, or v2 without cgroup.kill): a pid read from cgroup.procs can in
        // principle be reused before the kill lands, the race every such killer has.
        for pid in self.pids().unwrap_or_default() {
            let _ = crate::util::sys::kill(pid, libc::SIGKILL);
        }
    }

    /// Kills what is left, removes the cgroup, then the `berth` parent if it is empty.
    pub fn remove(&self) -> Result<(), CgroupError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut killed = false;
        for dir in self.dirs() {
            loop {
                match std::fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        if Instant::now() > deadline {
                            return Err(CgroupError::Busy { path: dir });
                        }
                        if !killed {
                            self.kill_all();
                            killed = true;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => return Err(CgroupError::io("remove", &dir, e)),
                }
            }
            if let Some(parent) = dir.parent() {
                // Fails while other containers use it: that is fine.
                let _ = std::fs::remove_dir(parent);
            }
        }
        Ok(())
    }

    /// What to mount at `/sys/fs/cgroup` inside the container: v1 gives (controller mount name,
    /// the container's directory) pairs to bind; v2 mounts a cgroup2 in its cgroup namespace.
    pub fn container_view(&self) -> Vec<(String, PathBuf)> {
        match self {
            Cgroup::V1(c) => c.container_view(),
            Cgroup::V2(_) => Vec::new(),
        }
    }
}

/// Starts, in a background thread, the expensive part of moving a process between cgroups: the
/// first move after a quiet spell waits for a full RCU grace period in the kernel (the cgroup
/// threadgroup lock switching to its writer mode: about 13 ms on a 2-vCPU VM), and every move
/// that starts during that wait shares it. The thread moves the calling process into the cgroup
/// it is already in (a no-op) in one v1 hierarchy, or the v2 one; the container's own move, a few
/// milliseconds later, then finds the grace period under way or over. Joining the handle is
/// optional; failures are ignored (it is only an optimisation).
pub fn prime() -> Option<std::thread::JoinHandle<()>> {
    let h = hierarchy().ok()?;
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let file = match h {
        Hierarchy::V2(root) => {
            let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
            root.join(path.trim_start_matches('/')).join("cgroup.procs")
        }
        Hierarchy::V1(m) => {
            let (mount, path) = own.lines().find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
                let c = ctrls.split(',').find(|c| m.get(c).is_some())?;
                Some((m.get(c)?.to_path_buf(), path.to_string()))
            })?;
            mount.join(path.trim_start_matches('/')).join("cgroup.procs")
        }
    };
    let pid = std::process::id().to_string();
    std::thread::Builder::new()
        .name("cgroup-prime".into())
        .spawn(move || {
            let _ = write_file(&file, &pid);
        })
        .ok()
}

/// Writes `value` to an existing cgroup file.
pub(crate) fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).truncate(false).open(path).map_err(|e| CgroupError::io("open", path, e))?;
    f.write_all(value.as_bytes()).map_err(|e| CgroupError::io("write", path, e))
}

pub(crate) fn read_pids(path: &Path) -> Result<Vec<i32>, CgroupError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(CgroupError::io("read", path, e)),
    }
}

/// Reads `key N` from a flat-keyed file such as `memory.events`.
pub(crate) fn read_key(path: &Path, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(path).ok()?;
    s.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key)).then(|| it.next()?.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_detection_keeps_its_path_and_cause() {
        let e = detect(Path::new("/nonexistent-berth-cgroup")).unwrap_err();
        assert!(e.one_line().contains("/nonexistent-berth-cgroup"), "{}", e.one_line());
        let kept = DetectFailure::of(&e);
        for _ in 0..2 {
            let again = kept.error();
            assert_eq!(again.to_string(), e.to_string());
            assert_eq!(again.one_line(), e.one_line());
        }
        assert!(matches!(DetectFailure::of(&CgroupError::NotMounted).error(), CgroupError::NotMounted));
    }

    #[test]
    fn cpus_become_a_cfs_quota() {
        let r = Resources { nano_cpus: Some(1_500_000_000), ..Default::default() };
        assert_eq!(r.cfs(), Some((150_000, 100_000)));
        let r = Resources { cpu_quota: Some(50_000), cpu_period: Some(200_000), ..Default::default() };
        assert_eq!(r.cfs(), Some((50_000, 200_000)));
        assert_eq!(Resources::default().cfs(), None);
    }

    #[test]
    fn swap_defaults_to_twice_memory_and_is_validated() {
        let r = Resources { memory: Some(64 << 20), ..Default::default() };
        assert_eq!(r.effective_memory_swap(), Some(128 << 20));
        let r = Resources { memory: Some(64 << 20), memory_swap: Some(-1), ..Default::default() };
        assert_eq!(r.effective_memory_swap(), Some(-1));
        let r = Resources { memory: Some(64 << 20), memory_swap: Some(32 << 20), ..Default::default() };
        assert!(r.validate().unwrap_err().to_string().contains("larger than memory"));
        let r = Resources { memory: Some(1 << 20), ..Default::default() };
        assert!(r.validate().unwrap_err().to_string().contains("6MB"));
        let r = Resources { memory_swap: Some(64 << 20), ..Default::default() };
        assert!(r.validate().is_err());
    }

    #[test]
    fn detects_this_host() {
        // Whatever the host runs, detection must succeed on a Linux machine with cgroups.
        let h = hierarchy().unwrap();
        match h {
            Hierarchy::V1(m) => assert!(m.get("memory").is_some() || m.get("pids").is_some()),
            Hierarchy::V2(p) => assert!(p.join("cgroup.controllers").exists()),
        }
    }
}
