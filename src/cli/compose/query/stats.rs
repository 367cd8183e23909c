//! `berth stats`: CPU, memory, network and block I/O, and pids of the project's containers, read
//! from their cgroups and network namespaces, as `docker stats` shows them. Refreshed in place on
//! a terminal every second; `--no-stream` prints one sample.
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;

use super::{Ctr, OneOff};
use crate::cli::GlobalOpts;
use crate::cli::render::units::{bytes_size, human_size};
use crate::cli::render::{self, Format};
use crate::engine::cgroups::{self, Hierarchy, PARENT};
use crate::engine::runtime::Status;

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    all: bool,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json' or 'TEMPLATE'
    #[arg(long, default_value = "")]
    format: String,
    /// Disable streaming stats and only pull the first result
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    no_stream: bool,
    /// Do not truncate output
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    no_trunc: bool,
    #[arg(value_name = "SERVICE")]
    service: Option<String>,
}

/// Raw counters of one container at one instant.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// CPU time used by the container, in nanoseconds.
    pub cpu_ns: u64,
    /// The host's total CPU time (all CPUs), in nanoseconds, as /proc/stat counts it.
    pub system_ns: u64,
    pub online_cpus: u32,
    pub mem_usage: u64,
    pub mem_limit: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub blk_read: u64,
    pub blk_write: u64,
    pub pids: u64,
}

pub fn run(g: &GlobalOpts, a: StatsArgs) -> anyhow::Result<i32> {
    let fmt = Format::parse(&a.format, TABLE)?;
    let name = super::project_name(g)?;
    let root = g.state_root();
    let services: Vec<String> = a.service.iter().cloned().collect();
    let tty = std::io::stdout().is_terminal();
    let mut prev: Vec<(String, Sample)> = Vec::new();
    let interval = if a.no_stream { Duration::from_millis(500) } else { Duration::from_secs(1) };
    let mut first = true;
    loop {
        let t = Instant::now();
        let list = super::containers(&root, &name, OneOff::Include, a.all, &services);
        let now: Vec<(Ctr, Sample)> = list
            .into_iter()
            .map(|c| {
                let s = sample(&c);
                (c, s)
            })
            .collect();
        if first && !prev_has_all(&prev, &now) {
            // CPU % needs two samples: take the first, wait, then report.
            prev = now.iter().map(|(c, s)| (c.cfg.id.clone(), s.clone())).collect();
            first = false;
            std::thread::sleep(interval.saturating_sub(t.elapsed()).min(Duration::from_millis(500)));
            continue;
        }
        let rows: Vec<Row> = now
            .iter()
            .map(|(c, s)| {
                let p = prev.iter().find(|(id, _)| *id == c.cfg.id).map(|(_, p)| p);
                Row::new(c, s, p, !a.no_trunc)
            })
            .collect();
        let text = render(&rows, &fmt)?;
        let mut out = std::io::stdout().lock();
        if tty && !a.no_stream {
            // Home, each line cleared to its end, then everything below cleared.
            let body: String = text.lines().map(|l| format!("{l}\x1b[K\n")).collect();
            write!(out, "\x1b[H{body}\x1b[J")?;
        } else {
            out.write_all(text.as_bytes())?;
        }
        out.flush()?;
        if a.no_stream {
            return Ok(0);
        }
        prev = now.iter().map(|(c, s)| (c.cfg.id.clone(), s.clone())).collect();
        std::thread::sleep(interval.saturating_sub(t.elapsed()));
    }
}

fn prev_has_all(prev: &[(String, Sample)], now: &[(Ctr, Sample)]) -> bool {
    !now.is_empty() && now.iter().all(|(c, _)| prev.iter().any(|(id, _)| *id == c.cfg.id))
}

/// One line of the table, formatted as `docker stats` shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Row {
    #[serde(rename = "BlockIO")]
    pub block_io: String,
    #[serde(rename = "CPUPerc")]
    pub cpu_perc: String,
    pub container: String,
    #[serde(rename = "ID")]
    pub id: String,
    pub mem_perc: String,
    pub mem_usage: String,
    pub name: String,
    #[serde(rename = "NetIO")]
    pub net_io: String,
    #[serde(rename = "PIDs")]
    pub pids: String,
}

impl Row {
    fn new(c: &Ctr, s: &Sample, prev: Option<&Sample>, trunc: bool) -> Row {
        let running = c.running();
        let cpu = match (running, prev) {
            (true, Some(p)) => cpu_percent(p, s),
            _ => 0.0,
        };
        let mem_perc = if s.mem_limit > 0 { s.mem_usage as f64 / s.mem_limit as f64 * 100.0 } else { 0.0 };
        Row {
            block_io: format!("{} / {}", human_size(s.blk_read as f64, 3), human_size(s.blk_write as f64, 3)),
            cpu_perc: format!("{cpu:.2}%"),
            container: c.cfg.id.clone(),
            id: if trunc { crate::util::id::short(&c.cfg.id).to_string() } else { c.cfg.id.clone() },
            mem_perc: format!("{mem_perc:.2}%"),
            mem_usage: format!("{} / {}", bytes_size(s.mem_usage as f64), bytes_size(s.mem_limit as f64)),
            name: c.cfg.name.clone(),
            net_io: format!("{} / {}", human_size(s.net_rx as f64, 3), human_size(s.net_tx as f64, 3)),
            pids: s.pids.to_string(),
        }
    }
}

/// Docker's CPU %: the container's share of the host's CPU time, times the number of CPUs.
pub fn cpu_percent(prev: &Sample, now: &Sample) -> f64 {
    let cpu = now.cpu_ns.saturating_sub(prev.cpu_ns) as f64;
    let sys = now.system_ns.saturating_sub(prev.system_ns) as f64;
    if cpu > 0.0 && sys > 0.0 { cpu / sys * now.online_cpus.max(1) as f64 * 100.0 } else { 0.0 }
}

/// `docker stats`' columns.
const TABLE: &str = "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// Each field's column name.
const HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Container", "CONTAINER"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

fn render(rows: &[Row], fmt: &Format) -> anyhow::Result<String> {
    let values: Vec<serde_json::Value> = rows.iter().map(serde_json::to_value).collect::<Result<_, _>>()?;
    Ok(render::format::list(fmt, HEADERS, &render::format::plain_rows(&values))?)
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn stat_field(p: &Path, key: &str) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The host's CPU time from the first line of /proc/stat, in nanoseconds, and the CPU count.
fn system_cpu() -> (u64, u32) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let tick = crate::util::sys::clock_ticks();
    let total: u64 =
        s.lines().next().map(|l| l.split_whitespace().skip(1).take(7).filter_map(|v| v.parse::<u64>().ok()).sum()).unwrap_or(0);
    let cpus = s.lines().filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(|b| b.is_ascii_digit())).count() as u32;
    (total * (1_000_000_000 / tick), cpus.max(1))
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("MemTotal:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()))
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Bytes received and sent on the container's interfaces (loopback left out), from its netns.
fn net_io(pid: i32) -> (u64, u64) {
    // A container on the host's network has no counters of its own (Docker shows none).
    let own = std::fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).ok();
    let host = std::fs::metadata("/proc/self/ns/net").map(|m| std::os::unix::fs::MetadataExt::ino(&m)).ok();
    if own.is_none() || own == host {
        return (0, 0);
    }
    let s = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    let mut rx = 0;
    let mut tx = 0;
    for l in s.lines().skip(2) {
        let Some((iface, rest)) = l.split_once(':') else { continue };
        if iface.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        if f.len() >= 9 {
            rx += f[0];
            tx += f[8];
        }
    }
    (rx, tx)
}

/// The container's cgroup directory for `controller` (v1) or its single directory (v2).
fn cgroup_dir(h: &Hierarchy, controller: &str, id: &str) -> Option<PathBuf> {
    match h {
        Hierarchy::V1(m) => m.get(controller).map(|d| d.join(PARENT).join(id)),
        Hierarchy::V2(root) => Some(root.join(PARENT).join(id)),
    }
}

/// The container's counters now (zeros for a stopped one).
pub fn sample(c: &Ctr) -> Sample {
    let (system_ns, online_cpus) = system_cpu();
    let mut s = Sample { system_ns, online_cpus, ..Default::default() };
    if !matches!(c.st.status, Status::Running | Status::Paused) {
        return s;
    }
    let Ok(h) = cgroups::hierarchy() else { return s };
    let id = &c.cfg.id;
    let host_mem = host_memory();
    match h {
        Hierarchy::V1(_) => {
            if let Some(d) = cgroup_dir(h, "cpuacct", id) {
                s.cpu_ns = read_u64(&d.join("cpuacct.usage")).unwrap_or(0);
            }
            if let Some(d) = cgroup_dir(h, "memory", id) {
                let usage = read_u64(&d.join("memory.usage_in_bytes")).unwrap_or(0);
                let inactive = stat_field(&d.join("memory.stat"), "total_inactive_file").unwrap_or(0);
                s.mem_usage = if inactive < usage { usage - inactive } else { usage };
                s.mem_limit = read_u64(&d.join("memory.limit_in_bytes")).unwrap_or(u64::MAX);
            }
            if let Some(d) = cgroup_dir(h, "pids", id) {
                s.pids = read_u64(&d.join("pids.current")).unwrap_or(0);
            }
            if let Some(d) = cgroup_dir(h, "blkio", id) {
                let text = std::fs::read_to_string(d.join("blkio.throttle.io_service_bytes_recursive")).unwrap_or_default();
                for l in text.lines() {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    if f.len() == 3 {
                        let v: u64 = f[2].parse().unwrap_or(0);
                        match f[1] {
                            "Read" => s.blk_read += v,
                            "Write" => s.blk_write += v,
                            _ => {}
                        }
                    }
                }
            }
        }
        Hierarchy::V2(_) => {
            if let Some(d) = cgroup_dir(h, "", id) {
                s.cpu_ns = stat_field(&d.join("cpu.stat"), "usage_usec").unwrap_or(0) * 1000;
                let usage = read_u64(&d.join("memory.current")).unwrap_or(0);
                let inactive = stat_field(&d.join("memory.stat"), "inactive_file").unwrap_or(0);
                s.mem_usage = if inactive < usage { usage - inactive } else { usage };
                s.mem_limit = read_u64(&d.join("memory.max")).unwrap_or(u64::MAX);
                s.pids = read_u64(&d.join("pids.current")).unwrap_or_else(|| c.st.init.map(|_| 1).unwrap_or(0));
                let text = std::fs::read_to_string(d.join("io.stat")).unwrap_or_default();
                for l in text.lines() {
                    for kv in l.split_whitespace().skip(1) {
                        if let Some(v) = kv.strip_prefix("rbytes=") {
                            s.blk_read += v.parse::<u64>().unwrap_or(0);
                        } else if let Some(v) = kv.strip_prefix("wbytes=") {
                            s.blk_write += v.parse::<u64>().unwrap_or(0);
                        }
                    }
                }
            }
        }
    }
    // No limit: the host's memory, as Docker reports it.
    if s.mem_limit == 0 || s.mem_limit > host_mem {
        s.mem_limit = host_mem;
    }
    if let Some(init) = c.st.init {
        let (rx, tx) = net_io(init.pid);
        s.net_rx = rx;
        s.net_tx = tx;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_is_dockers() {
        let a = Sample { cpu_ns: 1_000_000_000, system_ns: 10_000_000_000, online_cpus: 2, ..Default::default() };
        let b = Sample { cpu_ns: 1_500_000_000, system_ns: 12_000_000_000, online_cpus: 2, ..Default::default() };
        // Half a second of CPU over one second of wall time (2 s of host CPU time on 2 CPUs).
        assert!((cpu_percent(&a, &b) - 50.0).abs() < 1e-9);
        assert_eq!(cpu_percent(&b, &b), 0.0);
    }

    #[test]
    fn the_host_cpu_clock_moves() {
        let (a, n) = system_cpu();
        assert!(a > 0 && n >= 1);
    }
}
