//! cgroup v1: one directory per controller mount, `<mount>/berth/<id>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{CgroupError, PARENT, Resources, read_key, write_file};

/// The v1 controllers berth places every container in, when the host mounts them: all that
/// Docker (runc) uses. Each has its own directory when the host mounts it apart (`cpu` and
/// `cpuacct` are often separate hierarchies): a container missing from `cpuacct` or `blkio`
/// shows 0 % CPU and no block I/O in `stats`, and escapes those controllers' accounting.
const ALWAYS: &[&str] =
    &["memory", "pids", "freezer", "devices", "cpu", "cpuacct", "cpuset", "blkio", "net_cls", "net_prio", "perf_event", "hugetlb"];
/// Every controller a container may be found in (for joining and removal).
const KNOWN: &[&str] = ALWAYS;

/// Docker's (runc's) default device rules: mknod of anything, and read/write/mknod of the
/// standard nodes, the pty devices and /dev/net/tun.
pub const DEFAULT_DEVICE_RULES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
    "c 10:200 rwm",
];

/// Controller name to mount point, parsed from mountinfo.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mounts(BTreeMap<String, PathBuf>);

impl Mounts {
    /// Reads the `cgroup` (v1) entries of a mountinfo text.
    pub fn parse(mountinfo: &str) -> Mounts {
        let mut m = BTreeMap::new();
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else { continue };
            let mut post = post.split_whitespace();
            if post.next() != Some("cgroup") {
                continue;
            }
            let _source = post.next();
            let opts = post.next().unwrap_or("");
            let Some(mountpoint) = pre.split_whitespace().nth(4) else { continue };
            for o in opts.split(',') {
                if KNOWN.contains(&o) {
                    m.entry(o.to_string()).or_insert_with(|| PathBuf::from(unescape(mountpoint)));
                }
            }
        }
        Mounts(m)
    }

    /// A fake set of mounts: every known controller under `root/<name>` (tests).
    pub fn under(root: &Path) -> Mounts {
        Mounts(KNOWN.iter().map(|c| (c.to_string(), root.join(c))).collect())
    }

    pub fn get(&self, controller: &str) -> Option<&Path> {
        self.0.get(controller).map(|p| p.as_path())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// mountinfo escapes spaces and a few other bytes as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x"), 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug, Clone)]
pub struct V1Cgroup {
    mounts: Mounts,
    id: String,
}

impl V1Cgroup {
    pub fn new(mounts: Mounts, id: &str) -> Self {
        V1Cgroup { mounts, id: id.to_string() }
    }

    fn dir_of(&self, controller: &str) -> Option<PathBuf> {
        self.mounts.get(controller).map(|m| m.join(PARENT).join(&self.id))
    }

    /// The existing directories of this cgroup, one per mount (co-mounted controllers share one).
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for c in KNOWN {
            if let Some(d) = self.dir_of(c) {
                if d.is_dir() && !out.contains(&d) {
                    out.push(d);
                }
            }
        }
        out
    }

    /// The directory whose `cgroup.procs` lists the container's processes.
    pub fn main_dir(&self) -> PathBuf {
        for c in ["freezer", "pids", "memory", "devices", "cpu"] {
            if let Some(d) = self.dir_of(c) {
                if d.is_dir() {
                    return d;
                }
            }
        }
        self.dir_of("memory").unwrap_or_else(|| PathBuf::from("/nonexistent"))
    }

    pub fn create(&self, res: &Resources, privileged: bool) -> Result<(), CgroupError> {
        let wanted: Vec<&str> = ALWAYS.to_vec();
        // Resolve the devices first: a missing one must fail before anything is created.
        let extra_rules = res.extra_device_rules()?;
        let io_limits = res.io_limits()?;
        let io_weights = res.io_weights()?;
        for c in &wanted {
            let Some(mount) = self.mounts.get(c) else {
                match *c {
                    "memory" if res.memory.is_some() => {
                        return Err(CgroupError::MissingController { controller: "memory", setting: "mem_limit" });
                    }
                    "pids" if res.pids_limit.is_some_and(|p| p > 0) => {
                        return Err(CgroupError::MissingController { controller: "pids", setting: "pids_limit" });
                    }
                    "cpuset" if res.cpuset_cpus.is_some() || res.cpuset_mems.is_some() => {
                        return Err(CgroupError::MissingController { controller: "cpuset", setting: "cpuset" });
                    }
                    "blkio" if res.has_blkio() => {
                        return Err(CgroupError::MissingController { controller: "blkio", setting: "blkio_config" });
                    }
                    "devices" if !extra_rules.is_empty() => {
                        return Err(CgroupError::MissingController { controller: "devices", setting: "devices" });
                    }
                    _ => continue,
                }
            };
            // Another container's removal deletes the `berth` parent when it empties, which can
            // happen between our making it and making our cgroup in it: then make both again.
            // Once our cgroup exists the parent is not empty, so it stays.
            let parent = mount.join(PARENT);
            let mut tries = 0;
            loop {
                let made = mkdir(&parent)
                    .and_then(|()| if *c == "cpuset" { inherit_cpuset(mount, &parent) } else { Ok(()) })
                    .and_then(|()| mkdir(&parent.join(&self.id)));
                match made {
                    Err(CgroupError::Fs(crate::util::fs::FsError::Io { source, .. }))
                        if source.kind() == std::io::ErrorKind::NotFound && tries < 5 =>
                    {
                        tries += 1;
                    }
                    r => break r?,
                }
            }
        }
        let dir = |c: &str| self.dir_of(c).filter(|d| d.is_dir());
        if let Some(d) = dir("cpuset") {
            let parent = d.parent().unwrap_or(&d).to_path_buf();
            let cpus = res.cpuset_cpus.clone().unwrap_or_else(|| read_trim(&parent.join("cpuset.cpus")));
            let mems = res.cpuset_mems.clone().unwrap_or_else(|| read_trim(&parent.join("cpuset.mems")));
            write_file(&d.join("cpuset.cpus"), &cpus)?;
            write_file(&d.join("cpuset.mems"), &mems)?;
        }
        if let Some(d) = dir("memory") {
            if let Some(m) = res.memory.filter(|m| *m > 0) {
                write_file(&d.join("memory.limit_in_bytes"), &m.to_string())?;
                if let Some(s) = res.effective_memory_swap() {
                    let f = d.join("memory.memsw.limit_in_bytes");
                    // Without swap accounting the file is missing; Docker then ignores the swap limit.
                    if f.exists() {
                        write_file(&f, &s.to_string())?;
                    }
                }
            }
            if let Some(r) = res.memory_reservation.filter(|r| *r > 0) {
                write_file(&d.join("memory.soft_limit_in_bytes"), &r.to_string())?;
            }
            if let Some(s) = res.memory_swappiness.filter(|s| *s >= 0) {
                write_file(&d.join("memory.swappiness"), &s.to_string())?;
            }
            if res.oom_kill_disable {
                write_file(&d.join("memory.oom_control"), "1")?;
            }
        }
        if let Some(d) = dir("cpu") {
            if let Some(s) = res.cpu_shares.filter(|s| *s > 0) {
                write_file(&d.join("cpu.shares"), &s.max(2).to_string())?;
            }
            if let Some((quota, period)) = res.cfs() {
                write_file(&d.join("cpu.cfs_period_us"), &period.to_string())?;
                write_file(&d.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
            if res.cpu_rt_runtime.is_some_and(|r| r != 0) || res.cpu_rt_period.is_some_and(|p| p > 0) {
                set_realtime(&d, res)?;
            }
        }
        if let Some(d) = dir("blkio") {
            // Without a weight file the weights are discarded, as Docker does (the caller warns).
            if let Some(f) = weight_file(&d) {
                if let Some(w) = res.blkio_weight {
                    write_file(&f, &w.to_string())?;
                }
                for (dev, w) in &io_weights {
                    write_file(&f.with_extension("weight_device"), &format!("{dev} {w}"))?;
                }
            }
            for (dev, key, rate) in &io_limits {
                let f = match *key {
                    "rbps" => "blkio.throttle.read_bps_device",
                    "wbps" => "blkio.throttle.write_bps_device",
                    "riops" => "blkio.throttle.read_iops_device",
                    _ => "blkio.throttle.write_iops_device",
                };
                write_file(&d.join(f), &format!("{dev} {rate}"))?;
            }
        }
        if let Some(d) = dir("pids") {
            if let Some(p) = res.pids_limit.filter(|p| *p > 0) {
                write_file(&d.join("pids.max"), &p.to_string())?;
            }
        }
        if let Some(d) = dir("devices") {
            if privileged {
                write_file(&d.join("devices.allow"), "a")?;
            } else {
                write_file(&d.join("devices.deny"), "a")?;
                for rule in DEFAULT_DEVICE_RULES.iter().copied().chain(extra_rules.iter().map(|r| r.as_str())) {
                    write_file(&d.join("devices.allow"), rule)?;
                }
            }
        }
        Ok(())
    }

    pub fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        let Some(d) = self.dir_of("freezer").filter(|d| d.is_dir()) else {
            return Err(CgroupError::MissingController { controller: "freezer", setting: "pause" });
        };
        let f = d.join("freezer.state");
        write_file(&f, if frozen { "FROZEN" } else { "THAWED" })?;
        // The state passes through FREEZING; wait until the kernel settles.
        for _ in 0..1000 {
            let s = read_trim(&f);
            if s != "FREEZING" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(())
    }

    pub fn oom_kills(&self) -> u64 {
        self.dir_of("memory").and_then(|d| read_key(&d.join("memory.oom_control"), "oom_kill")).unwrap_or(0)
    }

    pub fn container_view(&self) -> Vec<(String, PathBuf)> {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for c in KNOWN {
            let (Some(mount), Some(dir)) = (self.mounts.get(c), self.dir_of(c)) else { continue };
            if seen.contains(&mount.to_path_buf()) || !dir.is_dir() {
                continue;
            }
            seen.push(mount.to_path_buf());
            let name = mount.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| c.to_string());
            out.push((name, dir));
        }
        out
    }
}

/// The proportional weight file: `blkio.weight` (CFQ) or `blkio.bfq.weight` (BFQ). Neither
/// exists when no block device uses one of those schedulers.
pub(super) fn weight_file(d: &Path) -> Option<PathBuf> {
    ["blkio.weight", "blkio.bfq.weight"].iter().map(|f| d.join(f)).find(|f| f.exists())
}

/// Real-time scheduling: the kernel gives a cgroup real-time time only out of its parent's, so
/// the `berth` parent is raised to the asked runtime first (a sibling's share counts too).
fn set_realtime(d: &Path, res: &Resources) -> Result<(), CgroupError> {
    let rt = d.join("cpu.rt_runtime_us");
    if !rt.exists() {
        return Err(CgroupError::Unsupported {
            setting: "cpu_rt_runtime",
            why: "the kernel has no real-time group scheduling (CONFIG_RT_GROUP_SCHED)",
        });
    }
    let parent = d.parent().unwrap_or(d);
    if let Some(p) = res.cpu_rt_period.filter(|p| *p > 0) {
        write_file(&d.join("cpu.rt_period_us"), &p.to_string())?;
    }
    if let Some(r) = res.cpu_rt_runtime.filter(|r| *r != 0) {
        let have: i64 = read_trim(&parent.join("cpu.rt_runtime_us")).parse().unwrap_or(0);
        if r > have {
            write_file(&parent.join("cpu.rt_runtime_us"), &r.to_string()).map_err(|_| {
                CgroupError::Invalid(format!(
                    "cpu_rt_runtime {r}: the host has no real-time time left to give ({} allows {})",
                    parent.parent().unwrap_or(parent).join("cpu.rt_runtime_us").display(),
                    read_trim(&parent.parent().unwrap_or(parent).join("cpu.rt_runtime_us"))
                ))
            })?;
        }
        write_file(&rt, &r.to_string())?;
    }
    Ok(())
}

fn mkdir(p: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(CgroupError::io("create", p, e)),
    }
}

fn read_trim(p: &Path) -> String {
    std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// A new cpuset cgroup starts with no CPUs and no memory nodes; copy the root's.
fn inherit_cpuset(root: &Path, parent: &Path) -> Result<(), CgroupError> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        if read_trim(&parent.join(f)).is_empty() {
            write_file(&parent.join(f), &read_trim(&root.join(f)))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hybrid_mountinfo() {
        let info = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw shared:14 - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw shared:15 - cgroup cgroup rw,memory
35 30 0:31 / /sys/fs/cgroup/systemd rw shared:16 - cgroup cgroup rw,xattr,name=systemd
36 30 0:32 / /sys/fs/cgroup/my\\040pids rw shared:17 - cgroup cgroup rw,pids
";
        let m = Mounts::parse(info);
        assert_eq!(m.get("cpu"), Some(Path::new("/sys/fs/cgroup/cpu,cpuacct")));
        assert_eq!(m.get("cpuacct"), Some(Path::new("/sys/fs/cgroup/cpu,cpuacct")));
        assert_eq!(m.get("memory"), Some(Path::new("/sys/fs/cgroup/memory")));
        assert_eq!(m.get("pids"), Some(Path::new("/sys/fs/cgroup/my pids")));
        assert_eq!(m.get("systemd"), None);
    }

    #[test]
    fn applies_limits_to_a_fake_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let mounts = Mounts::under(tmp.path());
        // Pre-create the files the kernel would provide.
        for (c, files) in [
            ("memory", &["memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes"][..]),
            ("cpu", &["cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us"][..]),
            ("pids", &["pids.max"][..]),
            ("devices", &["devices.allow", "devices.deny"][..]),
            ("freezer", &["freezer.state"][..]),
            ("cpuset", &["cpuset.cpus", "cpuset.mems"][..]),
        ] {
            let d = tmp.path().join(c).join(PARENT).join("abc");
            std::fs::create_dir_all(&d).unwrap();
            for f in files {
                std::fs::write(d.join(f), "").unwrap();
            }
        }
        // Every controller's mount (the kernel's; empty for those the test does not read).
        for c in ALWAYS {
            std::fs::create_dir_all(tmp.path().join(c)).unwrap();
        }
        // The cpuset root and the berth parent, which a new cpuset cgroup inherits from.
        std::fs::write(tmp.path().join("cpuset").join("cpuset.cpus"), "0-1").unwrap();
        std::fs::write(tmp.path().join("cpuset").join("cpuset.mems"), "0").unwrap();
        for f in ["cpuset.cpus", "cpuset.mems"] {
            std::fs::write(tmp.path().join("cpuset").join(PARENT).join(f), "").unwrap();
        }
        let cg = V1Cgroup::new(mounts, "abc");
        let res = Resources {
            memory: Some(64 << 20),
            nano_cpus: Some(500_000_000),
            cpu_shares: Some(512),
            pids_limit: Some(20),
            ..Default::default()
        };
        cg.create(&res, false).unwrap();
        let rd = |c: &str, f: &str| std::fs::read_to_string(tmp.path().join(c).join(PARENT).join("abc").join(f)).unwrap();
        assert_eq!(rd("memory", "memory.limit_in_bytes"), (64u64 << 20).to_string());
        assert_eq!(rd("memory", "memory.memsw.limit_in_bytes"), (128u64 << 20).to_string());
        assert_eq!(rd("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(rd("cpu", "cpu.shares"), "512");
        assert_eq!(rd("pids", "pids.max"), "20");
        // The fake file keeps only the last write: the last default rule.
        assert_eq!(rd("devices", "devices.allow"), "c 10:200 rwm");
        assert_eq!(rd("devices", "devices.deny"), "a");
        cg.set_frozen(true).unwrap();
        assert_eq!(rd("freezer", "freezer.state"), "FROZEN");
        assert_eq!(rd("cpuset", "cpuset.cpus"), "0-1");
        assert_eq!(rd("cpuset", "cpuset.mems"), "0");
        // Placed in every controller Docker uses, so cpuacct and blkio count its CPU and I/O.
        assert_eq!(cg.dirs().len(), ALWAYS.len());
        for c in ["cpuacct", "blkio", "cpuset", "memory", "pids"] {
            assert!(tmp.path().join(c).join(PARENT).join("abc").is_dir(), "{c}");
        }
    }
}
