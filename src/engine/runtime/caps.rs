//! Capabilities: Docker's default 14, `cap_add`, `cap_drop` (with ALL) and `privileged`, applied
//! as bounding = permitted = effective with empty inheritable and ambient sets.

use std::io;

use crate::util::sys::{cvt, cvt_l};

const NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Docker's default capabilities (moby `daemon/pkg/oci/caps/defaults.go`).
pub const DEFAULT: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// The number of a capability given as `NET_ADMIN`, `CAP_NET_ADMIN` or `net_admin`.
pub fn cap_number(name: &str) -> Option<u32> {
    let up = name.trim().to_ascii_uppercase();
    let n = up.strip_prefix("CAP_").unwrap_or(&up);
    NAMES.iter().position(|c| *c == n).map(|i| i as u32)
}

pub fn cap_name(n: u32) -> String {
    NAMES.get(n as usize).map(|s| format!("CAP_{s}")).unwrap_or_else(|| format!("CAP_{n}"))
}

/// The highest capability this kernel knows.
/// Cached: it is read before any fork, so a forked child never allocates for it.
pub fn last_cap() -> u32 {
    static LAST: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *LAST.get_or_init(|| std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(40))
}

/// The capability set (as a bit mask) for the given options, as Docker computes it: start from
/// the defaults (or everything when privileged or `cap_add: [ALL]`), add, then drop; `ALL` in
/// `cap_drop` empties the set before the adds.
pub fn compute(privileged: bool, add: &[String], drop: &[String]) -> u64 {
    // Nothing beyond what berth itself holds can be given (some sandboxes withhold a few).
    let all: u64 = (if last_cap() >= 63 { u64::MAX } else { (1u64 << (last_cap() + 1)) - 1 }) & own_bounding();
    if privileged {
        return all;
    }
    let is_all = |v: &[String]| v.iter().any(|c| c.eq_ignore_ascii_case("ALL"));
    let mut set: u64 = DEFAULT.iter().filter_map(|c| cap_number(c)).fold(0, |m, n| m | 1 << n);
    if is_all(drop) {
        set = 0;
    } else {
        for c in drop {
            if let Some(n) = cap_number(c) {
                set &= !(1 << n);
            }
        }
    }
    if is_all(add) {
        return all;
    }
    for c in add {
        if let Some(n) = cap_number(c) {
            set |= 1 << n;
        }
    }
    set & all
}

/// This process's bounding set (cached).
fn own_bounding() -> u64 {
    static B: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *B.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("CapBnd:").and_then(|v| u64::from_str_radix(v.trim(), 16).ok())))
            .unwrap_or(u64::MAX)
    })
}

/// The names in a set, for seccomp's cap-gated rules and for messages.
pub fn names(set: u64) -> Vec<String> {
    (0..64).filter(|n| set & (1 << n) != 0).map(cap_name).collect()
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}
const CAP_V3: u32 = 0x2008_0522;

/// Drops everything outside `set` from the bounding set and clears the ambient set. Needs
/// CAP_SETPCAP, so it runs before the user switch.
pub fn drop_bounding(set: u64) -> io::Result<()> {
    for n in 0..=last_cap() {
        if set & (1 << n) == 0 {
            // SAFETY: prctl with integers only.
            cvt(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, n as libc::c_ulong, 0, 0, 0) })?;
        }
    }
    const PR_CAP_AMBIENT: libc::c_int = 47;
    const PR_CAP_AMBIENT_CLEAR_ALL: libc::c_ulong = 4;
    // SAFETY: prctl with integers only.
    cvt(unsafe { libc::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) })?;
    Ok(())
}

/// Sets permitted = effective = `set` and inheritable = empty for the calling thread.
pub fn set_caps(set: u64) -> io::Result<()> {
    let mut hdr = CapHeader { version: CAP_V3, pid: 0 };
    let lo = set as u32;
    let hi = (set >> 32) as u32;
    let data = [CapData { effective: lo, permitted: lo, inheritable: 0 }, CapData { effective: hi, permitted: hi, inheritable: 0 }];
    // SAFETY: capset reads the v3 header and its two data structs (#[repr(C)], as the kernel lays
    // them out), all alive through the call; it may write its version into the header (mutable).
    cvt_l(unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) }).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn docker_default_is_0xa80425fb() {
        // The CapEff Docker shows for root in a default container.
        assert_eq!(compute(false, &[], &[]), 0xa80425fb);
    }

    #[test]
    fn add_drop_and_all() {
        let set = compute(false, &s(&["NET_ADMIN"]), &s(&["CAP_CHOWN"]));
        assert!(set & (1 << 12) != 0 && set & 1 == 0);
        assert_eq!(compute(false, &[], &s(&["ALL"])), 0);
        assert_eq!(compute(false, &s(&["kill"]), &s(&["all"])), 1 << 5);
        assert_eq!(compute(true, &[], &[]), ((1u64 << (last_cap() + 1)) - 1) & own_bounding());
        assert_eq!(cap_number("cap_sys_admin"), Some(21));
        assert!(names(1 << 21).contains(&"CAP_SYS_ADMIN".to_string()));
    }
}
