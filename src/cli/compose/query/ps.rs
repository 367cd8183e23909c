//! `berth ps`: the project's containers, as `docker compose ps` lists them.
use std::io::Write;

use chrono::SubsecRound;
use clap::Args;
use serde_json::Value;

use super::{Ctr, OneOff};
use crate::cli::GlobalOpts;
use crate::cli::render::container::{self as ctr_text, PortEntry};
use crate::cli::render::text::{self, docker_command, ellipsis, go_quote, go_time_string};
use crate::cli::render::{self, Format, Row, units};
use crate::engine::runtime::Status;
use crate::engine::runtime::spec::MountType;
use crate::labels;

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all stopped containers (including those created by the run command)
    #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    all: bool,
    /// Only display IDs
    #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    quiet: bool,
    /// Display services
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    services: bool,
    /// Filter services by status. Values: [paused | restarting | removing | running | dead | created | exited]
    #[arg(long, value_name = "STATUS")]
    status: Vec<String>,
    /// Filter services by a property (supported filters: status)
    #[arg(long, value_name = "KEY=VAL")]
    filter: Option<String>,
    /// Format the output. Values: [table | json | TEMPLATE]
    #[arg(long, default_value = "table")]
    format: String,
    /// Don't truncate output
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    no_trunc: bool,
    /// Include orphaned services (not declared by project)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    orphans: bool,
    #[arg(value_name = "SERVICE")]
    service: Vec<String>,
}

pub fn run(g: &GlobalOpts, mut a: PsArgs) -> anyhow::Result<i32> {
    if let Some(f) = &a.filter {
        let (k, v) = f.split_once('=').ok_or_else(|| anyhow::anyhow!("arguments to --filter should be in form KEY=VAL"))?;
        match k {
            "status" => a.status.push(v.to_string()),
            "source" => anyhow::bail!("filter \"source\" is not implemented"),
            _ => anyhow::bail!("unknown filter {k}"),
        }
    }
    let format = Format::parse(&a.format, TABLE)?;
    let target = super::Target::project_or_name(g)?;
    let mut services = a.service.clone();
    if let Some(p) = &target.project {
        if !services.is_empty() {
            target.check_services(&services, |_| true)?;
        } else if !a.orphans {
            services = p.services.keys().cloned().collect();
        }
    }
    let root = g.state_root();
    let oneoff = if a.all { OneOff::Include } else { OneOff::Exclude };
    let mut list = super::containers(&root, &target.name, oneoff, a.all || !a.status.is_empty(), &services);
    if !a.status.is_empty() {
        list.retain(|c| a.status.iter().any(|s| s == c.st.status.as_str()));
    }
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for c in &list {
            writeln!(out, "{}", c.cfg.id)?;
        }
        return Ok(0);
    }
    if a.services {
        let mut seen: Vec<&str> = Vec::new();
        for c in &list {
            if !seen.contains(&c.service()) {
                seen.push(c.service());
            }
        }
        // As compose: one line per service, and an empty line when there is none.
        writeln!(out, "{}", seen.join("\n"))?;
        return Ok(0);
    }
    let trunc = !a.no_trunc;
    let values: Vec<Value> = list.iter().map(|c| serde_json::to_value(json_line(c, trunc))).collect::<Result<_, _>>()?;
    let rows: Vec<Row> = list.iter().zip(&values).map(|(c, v)| Row::new(v).with_labels(&c.cfg.labels)).collect();
    out.write_all(render::format::list(&format, HEADERS, &rows)?.as_bytes())?;
    Ok(0)
}

/// compose's `ps` columns.
const TABLE: &str = "{{.Name}}\t{{.Image}}\t{{.Command}}\t{{.Service}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}";

/// Each field's column name.
const HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Name", "NAME"),
    ("Names", "NAMES"),
    ("Project", "PROJECT"),
    ("Service", "SERVICE"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Networks", "NETWORKS"),
];

/// The ports a container publishes now (none once it stopped, as Docker reports them).
pub(crate) fn port_entries(c: &Ctr) -> Vec<PortEntry> {
    if !c.running() {
        return Vec::new();
    }
    let mut ports: Vec<PortEntry> =
        c.st.network.as_ref().map(|n| n.ports.iter().map(PortEntry::from_published).collect()).unwrap_or_default();
    ctr_text::sort_ports(&mut ports);
    ports
}

/// A published port in `ps --format json` (compose's field order).
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Publisher {
    #[serde(rename = "URL")]
    url: String,
    target_port: u16,
    published_port: u16,
    protocol: String,
}

/// One line of `ps --format json`: compose's fields, in its (sorted) order.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct PsJson {
    command: String,
    created_at: String,
    exit_code: i32,
    health: String,
    #[serde(rename = "ID")]
    id: String,
    image: String,
    labels: String,
    local_volumes: String,
    mounts: String,
    name: String,
    names: String,
    networks: String,
    ports: String,
    project: String,
    publishers: Vec<Publisher>,
    running_for: String,
    service: String,
    size: String,
    state: String,
    status: String,
}

fn json_line(c: &Ctr, trunc: bool) -> PsJson {
    let cfg = &c.cfg;
    let created = chrono::DateTime::parse_from_rfc3339(&cfg.created).map(|t| t.with_timezone(&chrono::Utc)).unwrap_or_default();
    let now = chrono::Utc::now();
    let command = docker_command(&cfg.argv());
    let mut ports = port_entries(c);
    ports.sort_by_key(|p| p.private);
    let mut mounts = Vec::new();
    let mut local = 0;
    for m in &cfg.mounts {
        let name = match m.kind {
            MountType::Volume => {
                local += 1;
                m.source.clone()
            }
            MountType::Bind => m.source.clone(),
            MountType::Tmpfs => continue,
        };
        mounts.push(if trunc { ellipsis(&name, 15) } else { name });
    }
    let mut networks: Vec<String> = cfg.endpoints.iter().map(|e| e.network.clone()).collect();
    networks.sort();
    let health =
        if c.st.status == Status::Running { c.st.health.as_ref().map(|h| h.status.to_string()).unwrap_or_default() } else { String::new() };
    let exit_code = if matches!(c.st.status, Status::Exited | Status::Dead) { c.st.exit_code } else { 0 };
    PsJson {
        command: go_quote(&if trunc { ellipsis(&command, 20) } else { command }),
        created_at: go_time_string(&text::local(&created.trunc_subsecs(0))),
        exit_code,
        health,
        id: if trunc { crate::util::id::short(&cfg.id).to_string() } else { cfg.id.clone() },
        image: if cfg.image_ref.is_empty() { cfg.image.clone() } else { cfg.image_ref.clone() },
        labels: cfg.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
        local_volumes: local.to_string(),
        mounts: mounts.join(","),
        name: cfg.name.clone(),
        names: cfg.name.clone(),
        networks: networks.join(","),
        ports: ctr_text::displayable_ports(&ports),
        project: c.label(labels::PROJECT).to_string(),
        publishers: ports
            .iter()
            .map(|p| Publisher { url: p.ip.clone(), target_port: p.private, published_port: p.public, protocol: p.proto.clone() })
            .collect(),
        running_for: format!("{} ago", units::since(created, now)),
        service: c.service().to_string(),
        size: "0B".into(),
        state: c.st.status.as_str().to_string(),
        status: ctr_text::status(&c.st, now),
    }
}
