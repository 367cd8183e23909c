//! Device access on cgroup v2: an eBPF program of type CGROUP_DEVICE attached to the container's
//! cgroup, allowing Docker's default devices and denying the rest (v1 has `devices.allow`).
//! Without it, a container that keeps CAP_MKNOD (a default capability) could create and open the
//! host's block devices.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// One rule in the v1 syntax: `c 1:3 rwm`, `b *:* m`, `a`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// 'a' (all), 'c' or 'b'.
    pub kind: char,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// BPF_DEVCG_ACC_* bits: mknod 1, read 2, write 4.
    pub access: u32,
}

pub fn parse_rule(s: &str) -> Option<Rule> {
    let mut it = s.split_whitespace();
    let kind = it.next()?.chars().next()?;
    if kind == 'a' {
        return Some(Rule { kind, major: None, minor: None, access: 7 });
    }
    let (maj, min) = it.next()?.split_once(':')?;
    let num = |x: &str| if x == "*" { Some(None) } else { x.parse().ok().map(Some) };
    let mut access = 0;
    for c in it.next().unwrap_or("rwm").chars() {
        access |= match c {
            'm' => 1,
            'r' => 2,
            'w' => 4,
            _ => return None,
        };
    }
    Some(Rule { kind, major: num(maj)?, minor: num(min)?, access })
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: (src << 4) | dst, off, imm }
}
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const RSH_K: u8 = 0x77;
const MOV_X: u8 = 0xbf;
const MOV_K: u8 = 0xb7;
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95;

/// The filter: allow what a rule allows, deny everything else.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    // struct bpf_cgroup_dev_ctx { u32 access_type (access << 16 | type); u32 major; u32 minor; }
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules {
        // Conditions jump to the end of this block when they do not hold.
        let mut block: Vec<Insn> = Vec::new();
        match r.kind {
            'c' => block.push(insn(JNE_K, 2, 0, 0, 2)),
            'b' => block.push(insn(JNE_K, 2, 0, 0, 1)),
            _ => {}
        }
        if r.access & 7 != 7 {
            block.push(insn(MOV_X, 1, 3, 0, 0));
            block.push(insn(AND_K, 1, 0, 0, (!r.access & 7) as i32));
            block.push(insn(JNE_K, 1, 0, 0, 0));
        }
        if let Some(m) = r.major {
            block.push(insn(JNE_K, 4, 0, 0, m as i32));
        }
        if let Some(m) = r.minor {
            block.push(insn(JNE_K, 5, 0, 0, m as i32));
        }
        block.push(insn(MOV_K, 0, 0, 0, 1));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let n = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JNE_K {
                ins.off = (n - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(insn(MOV_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

/// bpf(2) with `cmd` and the attribute bytes `attr`. Only for the two commands used below:
/// BPF_PROG_LOAD (without a log buffer) and BPF_PROG_ATTACH only read `attr` and what it points
/// at, which the caller keeps alive through the call.
fn bpf(cmd: libc::c_int, attr: &[u8]) -> io::Result<i64> {
    // SAFETY: the kernel reads `attr.len()` bytes of `attr` and, for PROG_LOAD, the instructions
    // and the license it points at (alive in `attach`); an address it cannot read is EFAULT.
    // Neither command writes to user memory.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_ptr(), attr.len() as u32) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

/// Loads the filter for `rules` and attaches it to the cgroup directory `dir`.
pub fn attach(dir: &Path, rules: &[Rule]) -> io::Result<()> {
    const BPF_PROG_LOAD: libc::c_int = 5;
    const BPF_PROG_ATTACH: libc::c_int = 8;
    const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
    const ATTACH_CGROUP_DEVICE: u32 = 6;
    const F_ALLOW_MULTI: u32 = 2;
    let insns = program(rules);
    let license = c"Apache-2.0";
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&PROG_TYPE_CGROUP_DEVICE.to_ne_bytes());
    attr[4..8].copy_from_slice(&(insns.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[48..54].copy_from_slice(b"berth\0");
    attr[68..72].copy_from_slice(&ATTACH_CGROUP_DEVICE.to_ne_bytes());
    let prog = bpf(BPF_PROG_LOAD, &attr)?;
    // SAFETY: PROG_LOAD returned a new fd for the program, ours alone.
    let prog = unsafe { OwnedFd::from_raw_fd(prog as i32) };
    let cg = std::fs::File::open(dir)?;
    let mut a = [0u8; 20];
    a[0..4].copy_from_slice(&(cg.as_raw_fd() as u32).to_ne_bytes());
    a[4..8].copy_from_slice(&(prog.as_raw_fd() as u32).to_ne_bytes());
    a[8..12].copy_from_slice(&ATTACH_CGROUP_DEVICE.to_ne_bytes());
    a[12..16].copy_from_slice(&F_ALLOW_MULTI.to_ne_bytes());
    bpf(BPF_PROG_ATTACH, &a)?;
    Ok(())
}

/// Docker's default rules (as for v1).
pub fn default_rules() -> Vec<Rule> {
    super::v1::DEFAULT_DEVICE_RULES.iter().filter_map(|r| parse_rule(r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn rules_parse() {
        assert_eq!(parse_rule("c 1:3 rwm"), Some(Rule { kind: 'c', major: Some(1), minor: Some(3), access: 7 }));
        assert_eq!(parse_rule("b *:* m"), Some(Rule { kind: 'b', major: None, minor: None, access: 1 }));
        assert_eq!(parse_rule("c 136:* rw").unwrap().access, 6);
        assert!(parse_rule("c 1:x rwm").is_none());
        assert_eq!(default_rules().len(), super::super::v1::DEFAULT_DEVICE_RULES.len());
        // Each rule block ends with "allow"; the program ends with "deny".
        let p = program(&default_rules());
        assert_eq!(p.last().unwrap().code, EXIT);
        assert_eq!(p[p.len() - 2], insn(MOV_K, 0, 0, 0, 0));
    }

    /// The filter on the real kernel: the hybrid host's cgroup2 mount has no controllers, but
    /// device programs need none.
    #[test]
    fn filter_denies_devices_outside_the_list() {
        let root = Path::new("/sys/fs/cgroup/unified");
        if !nix::unistd::geteuid().is_root() || !root.join("cgroup.procs").exists() {
            eprintln!("skipped: no cgroup2 mount at /sys/fs/cgroup/unified or not root");
            return;
        }
        let dir = root.join(format!("berth-devtest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        attach(&dir, &default_rules()).unwrap();
        let procs = dir.join("cgroup.procs");
        let mut c = std::process::Command::new("sh");
        c.arg("-c").arg("exec 3</dev/null && echo null-ok; (exec 4</dev/kmsg) 2>/dev/null && echo kmsg-ok || echo kmsg-denied");
        let procs_c = std::ffi::CString::new(procs.to_str().unwrap()).unwrap();
        // SAFETY: between fork and exec the hook only makes system calls (open, write, close) on a
        // C string built before the fork.
        unsafe {
            c.pre_exec(move || {
                let fd = libc::open(procs_c.as_ptr(), libc::O_WRONLY);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                Ok(())
            });
        }
        let out = c.output().unwrap();
        let _ = std::fs::remove_dir(&dir);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text, "null-ok\nkmsg-denied\n");
    }
}
