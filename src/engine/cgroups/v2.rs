//! cgroup v2: one directory, `<root>/berth/<id>`, with the controllers enabled down the path.

use std::path::{Path, PathBuf};

use super::{CgroupError, PARENT, Resources, read_key, write_file};

#[derive(Debug, Clone)]
pub struct V2Cgroup {
    root: PathBuf,
    dir: PathBuf,
}

impl V2Cgroup {
    /// The cgroup of container `id` under the unified root `root` (`/sys/fs/cgroup`, or a fake
    /// tree in tests).
    pub fn new(root: PathBuf, id: &str) -> Self {
        let dir = root.join(PARENT).join(id);
        V2Cgroup { root, dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The controllers a limit set needs.
    fn needed(res: &Resources) -> Vec<(&'static str, &'static str)> {
        let mut v = Vec::new();
        if res.memory.is_some_and(|m| m > 0) || res.memory_reservation.is_some_and(|m| m > 0) {
            v.push(("memory", "mem_limit"));
        }
        if res.cfs().is_some() || res.cpu_shares.is_some_and(|s| s > 0) {
            v.push(("cpu", "cpus"));
        }
        if res.pids_limit.is_some_and(|p| p > 0) {
            v.push(("pids", "pids_limit"));
        }
        if res.cpuset_cpus.is_some() || res.cpuset_mems.is_some() {
            v.push(("cpuset", "cpuset"));
        }
        if res.has_blkio() {
            v.push(("io", "blkio_config"));
        }
        v
    }

    /// What cgroup v2 has no file for and Docker refuses. (`mem_swappiness` and
    /// `oom_kill_disable` are discarded instead, as Docker does: see [`super::Hierarchy::discarded`].)
    fn refuse(res: &Resources) -> Result<(), CgroupError> {
        if res.cpu_rt_runtime.is_some_and(|r| r != 0) || res.cpu_rt_period.is_some_and(|p| p > 0) {
            return Err(CgroupError::Unsupported { setting: "cpu_rt_runtime", why: "cgroup v2 has no real-time group scheduling" });
        }
        Ok(())
    }

    pub fn create(&self, res: &Resources, privileged: bool) -> Result<(), CgroupError> {
        Self::refuse(res)?;
        let mut rules = super::devices::default_rules();
        for r in res.extra_device_rules()? {
            rules.extend(super::devices::parse_rule(&r));
        }
        let io = res.io_limits()?;
        let weights = res.io_weights()?;
        let parent = self.root.join(PARENT);
        mkdir(&parent)?;
        // Enable every available controller for the berth subtree (memory and pids always, so
        // that OOM events and `top` work even without limits), at the root and at berth/.
        let available = std::fs::read_to_string(self.root.join("cgroup.controllers")).unwrap_or_default();
        let avail: Vec<&str> = available.split_whitespace().collect();
        let wanted: Vec<&str> = ["cpu", "cpuset", "io", "memory", "pids"].into_iter().filter(|c| avail.contains(c)).collect();
        for (c, setting) in Self::needed(res) {
            if !avail.contains(&c) {
                return Err(CgroupError::MissingController { controller: c, setting });
            }
        }
        if !wanted.is_empty() {
            let line = wanted.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(" ");
            for d in [&self.root, &parent] {
                let have = std::fs::read_to_string(d.join("cgroup.subtree_control")).unwrap_or_default();
                if wanted.iter().any(|c| !have.split_whitespace().any(|h| h == *c)) {
                    write_file(&d.join("cgroup.subtree_control"), &line)?;
                }
            }
        }
        mkdir(&self.dir)?;
        if !privileged {
            super::devices::attach(&self.dir, &rules).map_err(|e| CgroupError::io("attach the device filter to", &self.dir, e))?;
        }
        apply(&self.dir, res)?;
        apply_io(&self.dir, res, &io, &weights)
    }

    pub fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        write_file(&self.dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
        let want = if frozen { 1 } else { 0 };
        for _ in 0..1000 {
            if read_key(&self.dir.join("cgroup.events"), "frozen").unwrap_or(want) == want {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(())
    }

    pub fn oom_kills(&self) -> u64 {
        read_key(&self.dir.join("memory.events"), "oom_kill").unwrap_or(0)
    }

    /// `cgroup.kill` (Linux 5.14+) kills every process in the subtree at once.
    pub fn kill(&self) -> Result<(), CgroupError> {
        write_file(&self.dir.join("cgroup.kill"), "1")
    }
}

/// Writes the limits of `res` into a v2 cgroup directory.
pub fn apply(dir: &Path, res: &Resources) -> Result<(), CgroupError> {
    if let Some(m) = res.memory.filter(|m| *m > 0) {
        write_file(&dir.join("memory.max"), &m.to_string())?;
        if let Some(s) = res.effective_memory_swap() {
            // v2 limits swap alone; Docker's memory+swap figure becomes swap = total - memory.
            let swap = if s < 0 { "max".to_string() } else { (s - m).max(0).to_string() };
            let f = dir.join("memory.swap.max");
            if f.exists() {
                write_file(&f, &swap)?;
            }
        }
    }
    if let Some(r) = res.memory_reservation.filter(|r| *r > 0) {
        write_file(&dir.join("memory.low"), &r.to_string())?;
    }
    if let Some(s) = res.cpu_shares.filter(|s| *s > 0) {
        write_file(&dir.join("cpu.weight"), &shares_to_weight(s).to_string())?;
    }
    if let Some((quota, period)) = res.cfs() {
        let q = if quota < 0 { "max".to_string() } else { quota.to_string() };
        write_file(&dir.join("cpu.max"), &format!("{q} {period}"))?;
    }
    if let Some(p) = res.pids_limit.filter(|p| *p > 0) {
        write_file(&dir.join("pids.max"), &p.to_string())?;
    }
    if let Some(c) = &res.cpuset_cpus {
        write_file(&dir.join("cpuset.cpus"), c)?;
    }
    if let Some(m) = &res.cpuset_mems {
        write_file(&dir.join("cpuset.mems"), m)?;
    }
    Ok(())
}

/// The proportional weight file of a v2 cgroup: `io.weight` (io.cost) or BFQ's `io.bfq.weight`.
pub(super) fn weight_file(dir: &Path) -> Option<std::path::PathBuf> {
    ["io.weight", "io.bfq.weight"].iter().map(|f| dir.join(f)).find(|f| f.exists())
}

/// Block I/O on v2: `io.weight` (or BFQ's `io.bfq.weight`) and one `io.max` line per device.
/// Without a weight file the weights are discarded, as Docker does (the caller warns).
pub fn apply_io(dir: &Path, res: &Resources, limits: &[(String, &'static str, u64)], weights: &[(String, u64)]) -> Result<(), CgroupError> {
    if let Some(f) = weight_file(dir) {
        if let Some(w) = res.blkio_weight {
            write_file(&f, &format!("default {w}"))?;
        }
        for (dev, w) in weights {
            write_file(&f, &format!("{dev} {w}"))?;
        }
    }
    let mut by_dev: Vec<(String, Vec<String>)> = Vec::new();
    for (dev, key, rate) in limits {
        let kv = format!("{key}={rate}");
        match by_dev.iter_mut().find(|(d, _)| d == dev) {
            Some((_, v)) => v.push(kv),
            None => by_dev.push((dev.clone(), vec![kv])),
        }
    }
    for (dev, kvs) in by_dev {
        write_file(&dir.join("io.max"), &format!("{dev} {}", kvs.join(" ")))?;
    }
    Ok(())
}

/// cpu.shares (2..262144) to cpu.weight (1..10000), as runc converts them.
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

fn mkdir(p: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(CgroupError::io("create", p, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cgroups::Cgroup;

    /// A fake unified tree with the files the kernel would create in berth/<id>.
    fn fake(controllers: &str, id: &str) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("cgroup.controllers"), controllers).unwrap();
        std::fs::write(tmp.path().join("cgroup.subtree_control"), "").unwrap();
        let parent = tmp.path().join(PARENT);
        std::fs::create_dir(&parent).unwrap();
        std::fs::write(parent.join("cgroup.subtree_control"), "").unwrap();
        let d = parent.join(id);
        std::fs::create_dir(&d).unwrap();
        for f in [
            "memory.max",
            "memory.swap.max",
            "memory.low",
            "cpu.max",
            "cpu.weight",
            "pids.max",
            "cgroup.freeze",
            "io.max",
            "io.weight",
            "cgroup.kill",
            "cgroup.procs",
        ] {
            std::fs::write(d.join(f), "").unwrap();
        }
        std::fs::write(d.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        std::fs::write(d.join("memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n").unwrap();
        tmp
    }

    #[test]
    fn applies_limits_and_enables_controllers() {
        let tmp = fake("cpuset cpu io memory hugetlb pids rdma", "c1");
        let cg = V2Cgroup::new(tmp.path().to_path_buf(), "c1");
        let res = Resources {
            memory: Some(64 << 20),
            memory_swap: Some(96 << 20),
            nano_cpus: Some(250_000_000),
            cpu_shares: Some(1024),
            pids_limit: Some(10),
            ..Default::default()
        };
        cg.create(&res, true).unwrap();
        let rd = |f: &str| std::fs::read_to_string(tmp.path().join(PARENT).join("c1").join(f)).unwrap();
        assert_eq!(rd("memory.max"), (64u64 << 20).to_string());
        assert_eq!(rd("memory.swap.max"), (32u64 << 20).to_string());
        assert_eq!(rd("cpu.max"), "25000 100000");
        assert_eq!(rd("cpu.weight"), "39");
        assert_eq!(rd("pids.max"), "10");
        let sub = std::fs::read_to_string(tmp.path().join("cgroup.subtree_control")).unwrap();
        assert_eq!(sub, "+cpu +cpuset +io +memory +pids");
        let sub = std::fs::read_to_string(tmp.path().join(PARENT).join("cgroup.subtree_control")).unwrap();
        assert_eq!(sub, "+cpu +cpuset +io +memory +pids");
    }

    #[test]
    fn unlimited_swap_freeze_oom_and_kill() {
        let tmp = fake("memory pids", "c2");
        let cg = V2Cgroup::new(tmp.path().to_path_buf(), "c2");
        cg.create(&Resources { memory: Some(32 << 20), memory_swap: Some(-1), ..Default::default() }, true).unwrap();
        let d = tmp.path().join(PARENT).join("c2");
        assert_eq!(std::fs::read_to_string(d.join("memory.swap.max")).unwrap(), "max");
        // The fake events file says "frozen 0": set_frozen(false) settles at once.
        cg.set_frozen(false).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("cgroup.freeze")).unwrap(), "0");
        assert_eq!(cg.oom_kills(), 1);
        let whole = Cgroup::V2(cg.clone());
        whole.kill_all();
        assert_eq!(std::fs::read_to_string(d.join("cgroup.kill")).unwrap(), "1");
        std::fs::write(d.join("cgroup.procs"), "12\n34\n").unwrap();
        assert_eq!(whole.pids().unwrap(), vec![12, 34]);
    }

    #[test]
    fn missing_controller_is_a_clear_error() {
        let tmp = fake("pids", "c3");
        let cg = V2Cgroup::new(tmp.path().to_path_buf(), "c3");
        let err = cg.create(&Resources { memory: Some(64 << 20), ..Default::default() }, true).unwrap_err();
        assert!(err.to_string().contains("memory cgroup controller is not available"), "{err}");
    }

    /// A block device of this host (path, `maj:min`).
    fn a_block_device() -> Option<(String, String)> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        std::fs::read_dir("/dev").ok()?.flatten().find_map(|e| {
            let md = e.metadata().ok()?;
            md.file_type()
                .is_block_device()
                .then(|| (e.path().display().to_string(), format!("{}:{}", libc::major(md.rdev()), libc::minor(md.rdev()))))
        })
    }

    #[test]
    fn blkio_becomes_io_max_and_io_weight() {
        let Some((path, mm)) = a_block_device() else {
            eprintln!("skipped: no block device in /dev");
            return;
        };
        let tmp = fake("cpu io memory pids", "c4");
        let cg = V2Cgroup::new(tmp.path().to_path_buf(), "c4");
        let t = |rate| super::super::ThrottleDevice { path: path.clone(), rate };
        let res = Resources {
            blkio_weight: Some(300),
            blkio_device_read_bps: vec![t(1 << 20)],
            blkio_device_write_iops: vec![t(100)],
            ..Default::default()
        };
        cg.create(&res, true).unwrap();
        let d = tmp.path().join(PARENT).join("c4");
        // The fake file keeps the last write; the kernel merges the keys of one line.
        assert_eq!(std::fs::read_to_string(d.join("io.max")).unwrap(), format!("{mm} rbps=1048576 wiops=100"));
        assert_eq!(std::fs::read_to_string(d.join("io.weight")).unwrap(), "default 300");
        // Without the io controller the setting is refused, naming it.
        let tmp = fake("memory pids", "c5");
        let err = V2Cgroup::new(tmp.path().to_path_buf(), "c5").create(&res, true).unwrap_err();
        assert!(err.to_string().contains("io cgroup controller is not available here, so `blkio_config`"), "{err}");
        // A file that is not a block device.
        let res = Resources {
            blkio_device_read_bps: vec![super::super::ThrottleDevice { path: "/dev/null".into(), rate: 1 }],
            ..Default::default()
        };
        let tmp = fake("io", "c6");
        let err = V2Cgroup::new(tmp.path().to_path_buf(), "c6").create(&res, true).unwrap_err();
        assert!(err.to_string().contains("/dev/null is not a block device"), "{err}");
    }

    #[test]
    fn v1_only_settings_are_discarded_with_a_warning_or_refused_on_v2() {
        let tmp = fake("cpu io memory pids", "c7");
        let cg = V2Cgroup::new(tmp.path().to_path_buf(), "c7");
        let err = cg.create(&Resources { cpu_rt_runtime: Some(1000), ..Default::default() }, true).unwrap_err();
        assert!(err.to_string().contains("`cpu_rt_runtime` is not supported here"), "{err}");
        // As Docker on v2: swappiness and oom_kill_disable are dropped, the cgroup is made,
        // and the hierarchy names what it dropped.
        let res = Resources { memory_swappiness: Some(10), oom_kill_disable: true, memory: Some(64 << 20), ..Default::default() };
        cg.create(&res, true).unwrap();
        let d = tmp.path().join(PARENT).join("c7");
        assert_eq!(std::fs::read_to_string(d.join("memory.max")).unwrap(), (64u64 << 20).to_string());
        let h = super::super::Hierarchy::V2(tmp.path().to_path_buf());
        let w = h.discarded(&res);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("mem_swappiness") && w[0].contains("discarded"), "{w:?}");
        assert!(w[1].contains("oom_kill_disable") && w[1].contains("discarded"), "{w:?}");
        assert!(h.discarded(&Resources { memory_swappiness: Some(-1), ..Default::default() }).is_empty());
        // A weight needs a weight file: here berth/ has none, so it is discarded (and named).
        let res = Resources { blkio_weight: Some(300), ..Default::default() };
        assert!(h.discarded(&res).iter().any(|w| w.contains("blkio_config.weight")), "{:?}", h.discarded(&res));
        std::fs::remove_file(d.join("io.weight")).unwrap();
        cg.create(&res, true).unwrap();
        std::fs::write(tmp.path().join(PARENT).join("io.bfq.weight"), "").unwrap();
        assert!(h.discarded(&res).is_empty(), "{:?}", h.discarded(&res));
    }

    #[test]
    fn shares_map_to_weights_as_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    /// The real v2 mount of a hybrid host has no controllers, but freezing, killing and moving
    /// processes are core v2 features: exercise them on the real kernel when it is mounted.
    #[test]
    fn real_unified_mount_freezes_and_kills() {
        let root = Path::new("/sys/fs/cgroup/unified");
        if !nix::unistd::geteuid().is_root() || !root.join("cgroup.procs").exists() {
            eprintln!("skipped: no cgroup2 mount at /sys/fs/cgroup/unified or not root");
            return;
        }
        let id = format!("test-{}", std::process::id());
        let cg = V2Cgroup::new(root.to_path_buf(), &id);
        cg.create(&Resources::default(), false).unwrap();
        let whole = Cgroup::V2(cg.clone());
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        whole.add_pid(child.id() as i32).unwrap();
        assert_eq!(whole.pids().unwrap(), vec![child.id() as i32]);
        cg.set_frozen(true).unwrap();
        assert_eq!(read_key(&cg.dir().join("cgroup.events"), "frozen"), Some(1));
        whole.kill_all();
        let st = child.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));
        whole.remove().unwrap();
        assert!(!cg.dir().exists());
    }
}
