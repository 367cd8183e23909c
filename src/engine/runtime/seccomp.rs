//! Seccomp: Docker's default profile (vendored in `data/`, see its NOTICE) or a user profile in
//! the same JSON format, compiled with libseccomp into a BPF program for a given capability set,
//! and loaded with `seccomp(2)` as the last step before exec.
//!
//! Compiling the profile costs milliseconds, so the program is cached under the state root's
//! `tmp/`, keyed by the profile, the capabilities, the architecture and the kernel release.

use std::collections::HashSet;
use std::io::{Read, Seek};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::caps;

/// Docker's default profile (moby b985e2313a, Apache-2.0).
pub const DEFAULT_PROFILE: &str = include_str!("../../../data/seccomp-default.json");

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("cannot read the seccomp profile {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the seccomp profile {name} is not valid JSON in Docker's profile format")]
    Parse {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the seccomp profile {name} has an unknown action {action:?}")]
    Action { name: String, action: String },
    #[error("cannot compile the seccomp profile {name}")]
    Compile {
        name: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("cannot export the compiled seccomp filter")]
    Export(#[source] std::io::Error),
}

/// Docker's profiles write `null` for empty lists.
fn nullable<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Profile {
    default_action: String,
    default_errno_ret: Option<i32>,
    #[serde(deserialize_with = "nullable")]
    arch_map: Vec<ArchMap>,
    #[serde(deserialize_with = "nullable")]
    architectures: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    syscalls: Vec<Rule>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ArchMap {
    architecture: String,
    #[serde(deserialize_with = "nullable")]
    sub_architectures: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Rule {
    #[serde(deserialize_with = "nullable")]
    names: Vec<String>,
    name: Option<String>,
    action: String,
    errno_ret: Option<i32>,
    #[serde(deserialize_with = "nullable")]
    args: Vec<Arg>,
    #[serde(deserialize_with = "nullable")]
    includes: Cond,
    #[serde(deserialize_with = "nullable")]
    excludes: Cond,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Cond {
    #[serde(deserialize_with = "nullable")]
    caps: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    arches: Vec<String>,
    min_kernel: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Arg {
    index: u32,
    value: u64,
    value_two: u64,
    op: String,
}

/// The native architecture as libseccomp names it, and as Go (Docker's profile) names it.
fn native() -> (&'static str, &'static str) {
    if cfg!(target_arch = "x86_64") {
        ("SCMP_ARCH_X86_64", "amd64")
    } else if cfg!(target_arch = "aarch64") {
        ("SCMP_ARCH_AARCH64", "arm64")
    } else if cfg!(target_arch = "riscv64") {
        ("SCMP_ARCH_RISCV64", "riscv64")
    } else if cfg!(target_arch = "s390x") {
        ("SCMP_ARCH_S390X", "s390x")
    } else if cfg!(target_arch = "powerpc64") {
        ("SCMP_ARCH_PPC64LE", "ppc64le")
    } else {
        ("SCMP_ARCH_NATIVE", "")
    }
}

fn kernel_release() -> String {
    nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default()
}

/// "6.18.44-fc" >= "4.8"?
fn kernel_at_least(release: &str, min: &str) -> bool {
    let parse = |s: &str| -> (u32, u32) {
        let mut it = s.split(|c: char| !c.is_ascii_digit()).filter(|x| !x.is_empty()).map(|x| x.parse().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    };
    parse(release) >= parse(min)
}

fn action(name: &str, errno: Option<i32>, default_errno: Option<i32>, profile: &str) -> Result<ScmpAction, SeccompError> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => ScmpAction::Allow,
        "SCMP_ACT_ERRNO" => ScmpAction::Errno(errno.or(default_errno).unwrap_or(libc::EPERM)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
        "SCMP_ACT_TRAP" => ScmpAction::Trap,
        "SCMP_ACT_LOG" => ScmpAction::Log,
        "SCMP_ACT_TRACE" => ScmpAction::Trace(errno.unwrap_or(libc::EPERM) as u16),
        _ => return Err(SeccompError::Action { name: profile.into(), action: name.into() }),
    })
}

fn compare(a: &Arg) -> Option<ScmpArgCompare> {
    let op = match a.op.as_str() {
        "SCMP_CMP_NE" => ScmpCompareOp::NotEqual,
        "SCMP_CMP_LT" => ScmpCompareOp::Less,
        "SCMP_CMP_LE" => ScmpCompareOp::LessOrEqual,
        "SCMP_CMP_EQ" => ScmpCompareOp::Equal,
        "SCMP_CMP_GE" => ScmpCompareOp::GreaterEqual,
        "SCMP_CMP_GT" => ScmpCompareOp::Greater,
        // Docker's profile puts the mask in `value` and the expected result in `valueTwo`.
        "SCMP_CMP_MASKED_EQ" => return Some(ScmpArgCompare::new(a.index, ScmpCompareOp::MaskedEqual(a.value), a.value_two)),
        _ => return None,
    };
    Some(ScmpArgCompare::new(a.index, op, a.value))
}

/// Compiles `profile_json` (named `name` in errors) for the capability set `caps` into BPF.
pub fn compile(profile_json: &str, name: &str, cap_set: u64) -> Result<Vec<u8>, SeccompError> {
    let p: Profile = serde_json::from_str(profile_json).map_err(|source| SeccompError::Parse { name: name.into(), source })?;
    let comp = |source| SeccompError::Compile { name: name.into(), source };
    let default = action(&p.default_action, None, p.default_errno_ret, name)?;
    let mut ctx = ScmpFilterContext::new(default).map_err(comp)?;
    // The filter is loaded by us, not libseccomp: never let it set no_new_privs behind our back.
    ctx.set_ctl_nnp(false).map_err(comp)?;
    let (native_scmp, native_go) = native();
    // Sub-architectures of the native one (x86 and x32 on amd64), as Docker adds them.
    let mut arches: Vec<String> = Vec::new();
    for m in &p.arch_map {
        if m.architecture == native_scmp {
            arches.extend(m.sub_architectures.iter().cloned());
        }
    }
    if p.arch_map.is_empty() {
        arches.extend(p.architectures.iter().filter(|a| *a != native_scmp).cloned());
    }
    for a in &arches {
        if let Ok(arch) = a.parse::<ScmpArch>() {
            // A sub-architecture the running libseccomp or kernel lacks is skipped, as Docker does.
            let _ = ctx.add_arch(arch);
        }
    }
    let cap_names: HashSet<String> = caps::names(cap_set).into_iter().collect();
    let release = kernel_release();
    for rule in &p.syscalls {
        if !rule.excludes.arches.is_empty() && rule.excludes.arches.iter().any(|a| a == native_go) {
            continue;
        }
        if rule.excludes.caps.iter().any(|c| cap_names.contains(c)) {
            continue;
        }
        if !rule.includes.arches.is_empty() && !rule.includes.arches.iter().any(|a| a == native_go) {
            continue;
        }
        if !rule.includes.caps.iter().all(|c| cap_names.contains(c)) {
            continue;
        }
        if let Some(min) = &rule.includes.min_kernel {
            if !kernel_at_least(&release, min) {
                continue;
            }
        }
        let act = action(&rule.action, rule.errno_ret, p.default_errno_ret, name)?;
        if act == default {
            continue;
        }
        let names = rule.names.iter().chain(rule.name.iter());
        for sc in names {
            // Names this libseccomp does not know on this architecture are skipped, as Docker does.
            let Ok(nr) = ScmpSyscall::from_name(sc) else { continue };
            let conds: Vec<ScmpArgCompare> = rule.args.iter().filter_map(compare).collect();
            let indexes: HashSet<u32> = rule.args.iter().map(|a| a.index).collect();
            if conds.is_empty() {
                ctx.add_rule(act, nr).map_err(comp)?;
            } else if indexes.len() == conds.len() {
                ctx.add_rule_conditional(act, nr, &conds).map_err(comp)?;
            } else {
                // Several conditions on one argument can only be ORed: one rule each.
                for c in &conds {
                    ctx.add_rule_conditional(act, nr, std::slice::from_ref(c)).map_err(comp)?;
                }
            }
        }
    }
    let fd = memfd().map_err(SeccompError::Export)?;
    ctx.export_bpf(&fd).map_err(comp)?;
    let mut f = std::fs::File::from(fd);
    f.rewind().map_err(SeccompError::Export)?;
    let mut out = Vec::new();
    f.read_to_end(&mut out).map_err(SeccompError::Export)?;
    Ok(out)
}

fn memfd() -> std::io::Result<OwnedFd> {
    crate::util::sys::memfd(c"berth-seccomp")
}

/// The compiled program for a profile (the default one when `profile` is None), from the cache
/// in `cache_dir` when present.
pub fn program(profile: Option<&Path>, cap_set: u64, cache_dir: &Path) -> Result<Vec<u8>, SeccompError> {
    let (json, name) = match profile {
        None => (DEFAULT_PROFILE.to_string(), "(Docker's default)".to_string()),
        Some(p) => (std::fs::read_to_string(p).map_err(|source| SeccompError::Read { path: p.into(), source })?, p.display().to_string()),
    };
    let mut h = Sha256::new();
    h.update(json.as_bytes());
    h.update(cap_set.to_le_bytes());
    h.update(native().0.as_bytes());
    h.update(kernel_release().as_bytes());
    let key = hex::encode(&h.finalize()[..12]);
    let path = cache_dir.join(format!("seccomp-{key}.bpf"));
    if let Ok(b) = std::fs::read(&path) {
        if !b.is_empty() && b.len() % 8 == 0 {
            return Ok(b);
        }
    }
    let bpf = compile(&json, &name, cap_set)?;
    // The cache is an optimisation only: a failure to write it is not an error.
    let _ = crate::util::fs::write_atomic_mode(&path, &bpf, 0o600);
    Ok(bpf)
}

/// Loads a BPF program into the calling thread. Needs no_new_privs or CAP_SYS_ADMIN.
pub fn load(bpf: &[u8]) -> std::io::Result<()> {
    let prog = libc::sock_fprog { len: (bpf.len() / 8) as u16, filter: bpf.as_ptr() as *mut libc::sock_filter };
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    // SAFETY: `prog` points at `bpf`, whose length it gives in 8-byte instructions; both live
    // through the call, and the kernel copies the filter.
    let r = unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0 as libc::c_ulong, &prog as *const _) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_profile_compiles_for_default_and_admin_caps() {
        let default = caps::compute(false, &[], &[]);
        let a = compile(DEFAULT_PROFILE, "default", default).unwrap();
        assert!(!a.is_empty() && a.len() % 8 == 0);
        let admin = caps::compute(false, &["SYS_ADMIN".into()], &[]);
        let b = compile(DEFAULT_PROFILE, "default", admin).unwrap();
        assert_ne!(a, b, "CAP_SYS_ADMIN unlocks mount, unshare and friends");
    }

    #[test]
    fn cache_returns_the_same_program() {
        let tmp = tempfile::tempdir().unwrap();
        let set = caps::compute(false, &[], &[]);
        let a = program(None, set, tmp.path()).unwrap();
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
        let b = program(None, set, tmp.path()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn bad_profiles_are_named() {
        let err = compile("{", "my.json", 0).unwrap_err();
        assert!(err.to_string().contains("my.json"));
        let err = compile(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#, "x.json", 0).unwrap_err();
        assert!(err.to_string().contains("SCMP_ACT_NOPE"));
    }

    #[test]
    fn kernel_versions_compare() {
        assert!(kernel_at_least("6.18.44-fc-v669", "4.8"));
        assert!(!kernel_at_least("4.4.0", "4.8"));
        assert!(kernel_at_least("4.8", "4.8"));
    }
}
