//! The fully resolved container spec, stored as `containers/<id>/config.json`.
//!
//! The runtime knows nothing of compose: the orchestration (or `berth run`) merges the image
//! config and the service into this. Field names follow Docker's container config and host config
//! (PascalCase), so that `inspect` reads familiarly. The top-level `Id`, `Name`, `Image`,
//! `ImageRef`, `Labels` and `Created` are the contract every module may read (docs/design.md).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::cgroups::Resources;
use crate::net::{EndpointRequest, NetworkMode, PortRequest};
use crate::util::sys::parse_signal;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerConfig {
    /// 64 hex digits, filled in by create.
    pub id: String,
    /// Unique in the state root, without Docker's leading slash.
    pub name: String,
    /// The image id (`sha256:...`); empty for a rootfs given as bare directories (tests).
    pub image: String,
    /// The image as the user wrote it.
    pub image_ref: String,
    pub labels: BTreeMap<String, String>,
    /// RFC 3339 with nanoseconds, filled in by create.
    pub created: String,
    /// Set (never stored) when `config.json` could not be read: the reason. Such a config is a
    /// stand-in built by [`super::repair::stub`], listed as dead and only ever removed.
    #[serde(skip)]
    pub damaged: Option<String>,

    // The process.
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` entries, image env already merged in.
    pub env: Vec<String>,
    /// `user`, `user:group`, `uid`, `uid:gid`; empty is root.
    pub user: String,
    /// Supplementary groups (names or ids) on top of the user's own (`group_add`).
    pub group_add: Vec<String>,
    /// Empty is `/`.
    pub working_dir: String,
    /// Empty is the first 12 digits of the id.
    pub hostname: String,
    pub domainname: String,
    pub tty: bool,
    pub open_stdin: bool,
    /// berth's own minimal init as PID 1 (`init: true`).
    pub init: bool,

    // The filesystem.
    pub rootfs: Rootfs,
    /// The image's `VOLUME`s: each becomes an anonymous volume unless a mount covers it.
    pub image_volumes: Vec<String>,
    pub mounts: Vec<Mount>,
    /// `<container>[:ro|:rw]` entries (`volumes_from`): create copies each container's volume
    /// and bind mounts (not its tmpfs, nor the files berth writes for it), read-only with
    /// `:ro`, else in the source's own mode; the container's own mounts win at the same target.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    /// Files whose content berth writes at create (compose secrets and configs from
    /// `environment:` or `content:`). Create writes each under the container's folder and turns
    /// it into a read-only bind mount: the stored config keeps the mount, never the content.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileContent>,
    /// `/dev/shm` size in bytes (default 64 MiB).
    pub shm_size: Option<u64>,

    // Limits and security.
    pub ulimits: Vec<Ulimit>,
    pub sysctls: BTreeMap<String, String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    /// `no-new-privileges[:true|false]`, `seccomp=unconfined`, `seccomp=<profile.json>`;
    /// `label=`/`apparmor=` are accepted and ignored (berth has no LSM support).
    pub security_opt: Vec<String>,
    pub resources: Resources,
    pub oom_score_adj: Option<i32>,

    // Lifecycle.
    /// Default SIGTERM.
    pub stop_signal: String,
    /// Nanoseconds between the stop signal and SIGKILL (default 10 s).
    pub stop_grace_period: Option<u64>,
    pub restart_policy: RestartPolicy,
    pub healthcheck: Option<Healthcheck>,
    pub log_config: LogConfig,
    /// Remove the container when it exits (`run --rm`).
    pub auto_remove: bool,

    // Namespaces shared with the host or another container.
    /// The IPC namespace: empty, `private` or `shareable` (its own), `host`, or
    /// `container:<id or name>` (that container's, which must be running).
    #[serde(rename = "IpcMode")]
    pub ipc_mode: String,
    /// The PID namespace: empty (its own), `host`, or `container:<id or name>`.
    #[serde(rename = "PidMode")]
    pub pid_mode: String,
    /// The cgroup namespace: empty (the host's default: private on v2, the host's on v1),
    /// `private` or `host`.
    #[serde(rename = "CgroupnsMode", skip_serializing_if = "String::is_empty")]
    pub cgroupns_mode: String,
    /// The UTS namespace: empty (its own, named `hostname`) or `host` (the host's: no
    /// hostname is set, and `hostname`/`domainname` are refused, as in Docker).
    #[serde(rename = "UTSMode", skip_serializing_if = "String::is_empty")]
    pub uts_mode: String,

    // Network.
    pub network_mode: NetworkMode,
    pub endpoints: Vec<EndpointRequest>,
    pub ports: Vec<PortRequest>,
    pub dns: Vec<IpAddr>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// `host:ip` (or `host=ip`) entries for /etc/hosts.
    pub extra_hosts: Vec<String>,
}

/// The image layers as overlay lower directories, bottom to top.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Rootfs {
    pub layers: Vec<PathBuf>,
    pub read_only: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    #[default]
    Bind,
    Volume,
    Tmpfs,
}

/// One mount, as Docker's mount API has it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Mount {
    #[serde(rename = "Type")]
    pub kind: MountType,
    /// The host path (bind), the volume name (volume; empty means a new anonymous volume), or
    /// nothing (tmpfs).
    pub source: String,
    /// The absolute path inside the container.
    pub target: String,
    pub read_only: bool,
    pub bind_options: Option<BindOptions>,
    pub volume_options: Option<VolumeOptions>,
    pub tmpfs_options: Option<TmpfsOptions>,
}

/// Whose namespace (of one kind) a container lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    /// A new one of its own.
    Own,
    /// The host's (the supervisor's).
    Host,
    /// That of another container (id or name), which must be running.
    Container(String),
}

impl Namespace {
    fn shared(mode: &str) -> Option<Namespace> {
        match mode {
            "host" => Some(Namespace::Host),
            m => m.strip_prefix("container:").filter(|c| !c.is_empty()).map(|c| Namespace::Container(c.to_string())),
        }
    }
}

/// A file given by its content, owner and mode, mounted read-only at `target`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct FileContent {
    /// The absolute path inside the container.
    pub target: String,
    pub content: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BindOptions {
    /// private, rprivate (default), shared, rshared, slave, rslave.
    pub propagation: Option<String>,
    /// Create the host path as a directory when it is missing (compose `create_host_path`).
    pub create_mountpoint: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeOptions {
    /// Do not fill an empty volume from the image.
    pub no_copy: bool,
    /// Labels for a volume this mount creates.
    pub labels: BTreeMap<String, String>,
    /// Mount only this path inside the volume.
    pub subpath: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TmpfsOptions {
    pub size_bytes: Option<u64>,
    pub mode: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ulimit {
    /// `nofile`, `nproc`, `core`, ... (without the RLIMIT_ prefix).
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    /// `no` (or empty), `always`, `on-failure`, `unless-stopped`.
    pub name: String,
    pub maximum_retry_count: u32,
}

impl RestartPolicy {
    pub fn parse(s: &str) -> Result<RestartPolicy, String> {
        let (name, count) = match s.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (s, None),
        };
        let name = if name.is_empty() { "no" } else { name };
        if !["no", "always", "on-failure", "unless-stopped"].contains(&name) {
            return Err(format!("invalid restart policy {s:?}: use no, always, on-failure[:max-retries] or unless-stopped"));
        }
        let maximum_retry_count = match count {
            None => 0,
            Some(c) if name == "on-failure" => {
                c.parse().map_err(|_| format!("invalid restart policy {s:?}: the retry count must be a positive number"))?
            }
            Some(_) => return Err(format!("invalid restart policy {s:?}: only on-failure takes a retry count")),
        };
        Ok(RestartPolicy { name: name.into(), maximum_retry_count })
    }

    pub fn is_none(&self) -> bool {
        self.name.is_empty() || self.name == "no"
    }
}

/// Docker's healthcheck config; durations in nanoseconds, 0 meaning the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    pub interval: u64,
    pub timeout: u64,
    pub start_period: u64,
    pub start_interval: u64,
    pub retries: u32,
}

impl Healthcheck {
    fn dur(ns: u64, default_s: u64) -> Duration {
        if ns == 0 { Duration::from_secs(default_s) } else { Duration::from_nanos(ns) }
    }
    pub fn interval(&self) -> Duration {
        Self::dur(self.interval, 30)
    }
    pub fn timeout(&self) -> Duration {
        Self::dur(self.timeout, 30)
    }
    pub fn start_period(&self) -> Duration {
        Duration::from_nanos(self.start_period)
    }
    pub fn start_interval(&self) -> Duration {
        Self::dur(self.start_interval, 5)
    }
    pub fn retries(&self) -> u32 {
        if self.retries == 0 { 3 } else { self.retries }
    }
    /// The argv to run, or None when the check is disabled.
    pub fn argv(&self) -> Option<Vec<String>> {
        match self.test.first().map(|s| s.as_str()) {
            Some("CMD") if self.test.len() > 1 => Some(self.test[1..].to_vec()),
            Some("CMD-SHELL") if self.test.len() > 1 => Some(vec!["/bin/sh".into(), "-c".into(), self.test[1..].join(" ")]),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    /// `json-file` (default), `local` (treated as json-file), or `none`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// `max-size` ("10m"), `max-file` ("3").
    pub config: BTreeMap<String, String>,
}

impl LogConfig {
    /// (max size in bytes, max files); no rotation by default, as Docker's json-file.
    pub fn rotation(&self) -> Result<(Option<u64>, u32), String> {
        let size = match self.config.get("max-size").map(|s| s.trim()) {
            None | Some("") | Some("-1") => None,
            Some(s) => Some(parse_size(s).ok_or_else(|| format!("invalid logging max-size {s:?}: use a size like 10m"))?),
        };
        let files = match self.config.get("max-file").map(|s| s.trim()) {
            None | Some("") => 1,
            Some(s) => match s.parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => return Err(format!("invalid logging max-file {s:?}: use a number of at least 1")),
            },
        };
        if files > 1 && size.is_none() {
            return Err("logging max-file needs max-size as well".into());
        }
        Ok((size, files))
    }
    pub fn enabled(&self) -> bool {
        self.kind != "none"
    }
}

/// Parses "10m", "1k", "2g", "512" (binary multiples, as Docker's RAMInBytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let s = s.strip_suffix('i').unwrap_or(s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let v: f64 = num.trim().parse().ok()?;
    (v >= 0.0).then_some((v * mult as f64) as u64)
}

/// How seccomp is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeccompMode {
    Default,
    Unconfined,
    Profile(PathBuf),
}

impl ContainerConfig {
    /// The command line: entrypoint then cmd.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint.iter().chain(self.cmd.iter()).cloned().collect()
    }

    pub fn hostname(&self) -> String {
        if self.hostname.is_empty() { crate::util::id::short(&self.id).to_string() } else { self.hostname.clone() }
    }

    pub fn stop_signal(&self) -> i32 {
        if self.stop_signal.is_empty() { libc::SIGTERM } else { parse_signal(&self.stop_signal).unwrap_or(libc::SIGTERM) }
    }

    pub fn stop_grace(&self) -> Duration {
        self.stop_grace_period.map(Duration::from_nanos).unwrap_or(Duration::from_secs(10))
    }

    pub fn no_new_privileges(&self) -> bool {
        self.security_opt.iter().any(|o| {
            let o = o.replace('=', ":");
            o == "no-new-privileges" || o == "no-new-privileges:true"
        })
    }

    pub fn seccomp(&self) -> SeccompMode {
        if self.privileged {
            return SeccompMode::Unconfined;
        }
        for o in &self.security_opt {
            if let Some(v) = o.strip_prefix("seccomp=").or_else(|| o.strip_prefix("seccomp:")) {
                return if v == "unconfined" { SeccompMode::Unconfined } else { SeccompMode::Profile(v.into()) };
            }
        }
        SeccompMode::Default
    }

    pub fn shm_size(&self) -> u64 {
        self.shm_size.filter(|s| *s > 0).unwrap_or(64 << 20)
    }

    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env.iter().rev().find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }

    /// The IPC namespace asked for (`ipc_mode`).
    pub fn ipc_namespace(&self) -> Result<Namespace, String> {
        match self.ipc_mode.as_str() {
            "" | "private" | "shareable" => Ok(Namespace::Own),
            m => Namespace::shared(m).ok_or_else(|| format!("invalid ipc mode {m:?}: use private, shareable, host or container:<name>")),
        }
    }

    /// The PID namespace asked for (`pid_mode`).
    pub fn pid_namespace(&self) -> Result<Namespace, String> {
        match self.pid_mode.as_str() {
            "" | "private" => Ok(Namespace::Own),
            m => Namespace::shared(m).ok_or_else(|| format!("invalid pid mode {m:?}: use host or container:<name>")),
        }
    }

    /// Checks what can be checked before anything is created, naming the field at fault.
    pub fn validate(&self) -> Result<(), String> {
        self.ipc_namespace()?;
        self.pid_namespace()?;
        if !["", "host", "private"].contains(&self.cgroupns_mode.as_str()) {
            return Err(format!("invalid cgroup namespace mode {:?}: use host or private", self.cgroupns_mode));
        }
        match self.uts_mode.as_str() {
            "" => {}
            "host" if !self.hostname.is_empty() || !self.domainname.is_empty() => {
                let what = if self.hostname.is_empty() { "domainname" } else { "hostname" };
                return Err(format!(
                    "conflicting options: {what} and the UTS mode: a container in the host's UTS namespace (uts: host) keeps the host's names; remove {what}"
                ));
            }
            "host" => {}
            m => return Err(format!("invalid UTS mode {m:?}: use host, or leave it unset")),
        }
        for d in &self.resources.devices {
            if !d.path_on_host.starts_with('/') {
                return Err(format!("invalid device {:?}: the host path must be absolute", d.path_on_host));
            }
            let t = normalize(&d.path_in_container);
            if !t.starts_with("/dev/")
                || t.split('/').any(|c| c == "..")
                || t == "/dev/pts"
                || t.starts_with("/dev/pts/")
                || t == "/dev/shm"
                || t.starts_with("/dev/shm/")
            {
                return Err(format!("invalid device target {:?}: berth creates device nodes under /dev only", d.path_in_container));
            }
        }
        if self.argv().is_empty() {
            return Err("no command specified: give the container a command or an entrypoint".into());
        }
        if self.rootfs.layers.is_empty() {
            return Err("the container has no root filesystem layers".into());
        }
        for f in &self.files {
            if !f.target.starts_with('/') || normalize(&f.target) == "/" {
                return Err(format!("invalid file target {:?}: it must be an absolute path to a file", f.target));
            }
        }
        for m in &self.mounts {
            if !m.target.starts_with('/') {
                return Err(format!("invalid mount target {:?}: it must be an absolute path", m.target));
            }
            let t = normalize(&m.target);
            if t == "/" {
                return Err(format!("invalid mount target {:?}: cannot mount over the container's root", m.target));
            }
            if (t == "/proc" || t.starts_with("/proc/")) && !PROC_ALLOWED.contains(&t.as_str()) {
                return Err(format!("invalid mount target {:?}: mounts over /proc are not allowed", m.target));
            }
            if m.kind == MountType::Bind && !m.source.starts_with('/') {
                return Err(format!("invalid bind mount source {:?}: it must be an absolute path", m.source));
            }
        }
        if !self.stop_signal.is_empty() && parse_signal(&self.stop_signal).is_none() {
            return Err(format!("invalid stop signal {:?}", self.stop_signal));
        }
        RestartPolicy::parse(&if self.restart_policy.maximum_retry_count > 0 {
            format!("{}:{}", self.restart_policy.name, self.restart_policy.maximum_retry_count)
        } else {
            self.restart_policy.name.clone()
        })?;
        if self.auto_remove && !self.restart_policy.is_none() {
            return Err("conflicting options: a container that removes itself (--rm) cannot have a restart policy".into());
        }
        self.log_config.rotation()?;
        for u in &self.ulimits {
            if super::init::rlimit_resource(&u.name).is_none() {
                return Err(format!("invalid ulimit {:?}: unknown resource", u.name));
            }
            if u.soft > u.hard && u.hard >= 0 {
                return Err(format!("invalid ulimit {}: the soft limit {} is above the hard limit {}", u.name, u.soft, u.hard));
            }
        }
        for h in &self.extra_hosts {
            parse_extra_host(h)?;
        }
        for c in self.cap_add.iter().chain(self.cap_drop.iter()) {
            if !c.eq_ignore_ascii_case("ALL") && super::caps::cap_number(c).is_none() {
                return Err(format!("unknown capability {c:?}"));
            }
        }
        self.resources.validate().map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// /proc files that may be mounted over (as runc allows, for lxcfs-style providers).
pub const PROC_ALLOWED: &[&str] =
    &["/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps", "/proc/uptime", "/proc/loadavg", "/proc/slabinfo"];

/// "a//b/./c/" to "/a/b/c" (lexically; `..` is kept for the in-root resolver to clamp).
pub fn normalize(p: &str) -> String {
    let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    format!("/{}", parts.join("/"))
}

/// `host:ip` or `host=ip` (IPv6 may be bracketed).
pub fn parse_extra_host(s: &str) -> Result<(String, IpAddr), String> {
    let (h, ip) = s.split_once('=').or_else(|| s.split_once(':')).ok_or_else(|| format!("invalid extra host {s:?}: use host:ip"))?;
    let ip = ip.trim().trim_start_matches('[').trim_end_matches(']');
    let ip = if ip == "host-gateway" { "172.17.0.1" } else { ip };
    let addr: IpAddr = ip.parse().map_err(|_| format!("invalid extra host {s:?}: {ip:?} is not an IP address"))?;
    Ok((h.trim().to_string(), addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipc_and_pid_modes_parse() {
        let mut c = ContainerConfig::default();
        assert_eq!(c.ipc_namespace().unwrap(), Namespace::Own);
        assert_eq!(c.pid_namespace().unwrap(), Namespace::Own);
        for (m, want) in [("shareable", Namespace::Own), ("host", Namespace::Host), ("container:db", Namespace::Container("db".into()))] {
            c.ipc_mode = m.into();
            assert_eq!(c.ipc_namespace().unwrap(), want);
        }
        c.pid_mode = "container:db".into();
        assert_eq!(c.pid_namespace().unwrap(), Namespace::Container("db".into()));
        for bad in ["bogus", "container:", "shareable"] {
            c.pid_mode = bad.into();
            assert!(c.pid_namespace().unwrap_err().contains(bad), "{bad}");
        }
        c.ipc_mode = "none".into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn uts_host_refuses_names_as_docker() {
        let mut c = ContainerConfig { uts_mode: "host".into(), cmd: vec!["true".into()], ..Default::default() };
        c.rootfs.layers = vec!["/l".into()];
        c.validate().unwrap();
        c.hostname = "h".into();
        assert!(c.validate().unwrap_err().contains("conflicting options: hostname and the UTS mode"));
        c.hostname.clear();
        c.domainname = "d".into();
        assert!(c.validate().unwrap_err().contains("conflicting options: domainname and the UTS mode"));
        c.domainname.clear();
        c.uts_mode = "private".into();
        assert!(c.validate().unwrap_err().contains("invalid UTS mode \"private\""));
    }

    #[test]
    fn restart_policies_parse() {
        assert_eq!(RestartPolicy::parse("on-failure:3").unwrap().maximum_retry_count, 3);
        assert!(RestartPolicy::parse("").unwrap().is_none());
        assert!(RestartPolicy::parse("always:2").is_err());
        assert!(RestartPolicy::parse("sometimes").is_err());
    }

    #[test]
    fn sizes_and_log_rotation() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("1.5k"), Some(1536));
        assert_eq!(parse_size("x"), None);
        let mut l = LogConfig::default();
        assert_eq!(l.rotation().unwrap(), (None, 1));
        l.config.insert("max-size".into(), "1k".into());
        l.config.insert("max-file".into(), "3".into());
        assert_eq!(l.rotation().unwrap(), (Some(1024), 3));
        l.config.insert("max-file".into(), "0".into());
        assert!(l.rotation().is_err());
    }

    #[test]
    fn minimal_json_spec_deserializes_with_defaults() {
        let c: ContainerConfig = serde_json::from_str(r#"{"Name":"x","Cmd":["true"],"Rootfs":{"Layers":["/l"]}}"#).unwrap();
        assert_eq!(c.argv(), vec!["true"]);
        assert_eq!(c.stop_signal(), libc::SIGTERM);
        assert_eq!(c.stop_grace(), Duration::from_secs(10));
        assert_eq!(c.shm_size(), 64 << 20);
        assert_eq!(c.seccomp(), SeccompMode::Default);
        c.validate().unwrap();
    }

    #[test]
    fn mounts_over_root_or_proc_are_refused() {
        let mut c = ContainerConfig { cmd: vec!["true".into()], ..Default::default() };
        c.rootfs.layers.push("/l".into());
        c.mounts.push(Mount { kind: MountType::Tmpfs, target: "/proc/sys".into(), ..Default::default() });
        assert!(c.validate().unwrap_err().contains("/proc"));
        c.mounts[0].target = "//".into();
        assert!(c.validate().unwrap_err().contains("root"));
        c.mounts[0].target = "/proc/uptime".into();
        c.validate().unwrap();
    }

    #[test]
    fn health_argv_and_defaults() {
        let h = Healthcheck { test: vec!["CMD-SHELL".into(), "exit 0".into()], ..Default::default() };
        assert_eq!(h.argv().unwrap(), vec!["/bin/sh", "-c", "exit 0"]);
        assert_eq!(h.retries(), 3);
        assert_eq!(h.interval(), Duration::from_secs(30));
        assert!(Healthcheck { test: vec!["NONE".into()], ..Default::default() }.argv().is_none());
    }

    #[test]
    fn extra_hosts_parse() {
        assert_eq!(parse_extra_host("db:10.0.0.2").unwrap().0, "db");
        assert!(parse_extra_host("v6=[::1]").unwrap().1.is_ipv6());
        assert!(parse_extra_host("nope").is_err());
    }
}
