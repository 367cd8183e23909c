//! `berth volume ls|create|inspect|rm`, with Docker's columns, flags and messages.
use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::GlobalOpts;
use super::render::{self, Format, Row, Template};
use crate::engine::runtime::volumes::{self, Volume};

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Manage volumes
    #[command(subcommand)]
    Volume(VolumeCommand),
}

#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// List volumes
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Create a volume
    Create(CreateArgs),
    /// Display detailed information on one or more volumes
    Inspect {
        /// Format output using a custom template: 'json' or a Go template
        #[arg(short = 'f', long)]
        format: Option<String>,
        #[arg(required = true, value_name = "VOLUME")]
        volumes: Vec<String>,
    },
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm {
        /// Force the removal of one or more volumes
        #[arg(short, long)]
        force: bool,
        #[arg(required = true, value_name = "VOLUME")]
        volumes: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short, long)]
    quiet: bool,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json' or 'TEMPLATE'
    #[arg(long)]
    format: Option<String>,
    /// Provide filter values (e.g. "label=a=b", "name=x", "dangling=true")
    #[arg(short, long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short, long, default_value = "local")]
    driver: String,
    /// Set metadata for a volume
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Set driver specific options
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    opts: Vec<String>,
    /// The volume's name (a random one if omitted)
    name: Option<String>,
}

fn kv(v: &[String]) -> BTreeMap<String, String> {
    v.iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (s.to_string(), String::new()),
        })
        .collect()
}

/// `docker volume ls`' columns.
pub(crate) const LS_TABLE: &str = "{{.Driver}}\t{{.Name}}";

/// Each field of a listed volume, with its column name.
pub(crate) const LS_HEADERS: &[(&str, &str)] = &[
    ("Name", "VOLUME NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Labels", "LABELS"),
    ("Links", "LINKS"),
    ("Size", "SIZE"),
    ("Group", "GROUP"),
    ("Availability", "AVAILABILITY"),
    ("Status", "STATUS"),
];

/// A volume as `docker volume ls --format json` gives it (and `docker compose volumes`).
pub(crate) fn ls_row(v: &Volume) -> Value {
    let labels = v.labels.iter().map(|(k, x)| format!("{k}={x}")).collect::<Vec<_>>().join(",");
    json!({
        "Availability": "N/A", "Driver": v.driver, "Group": "N/A", "Labels": labels, "Links": "N/A",
        "Mountpoint": v.mountpoint, "Name": v.name, "Scope": v.scope, "Size": "N/A", "Status": "N/A",
    })
}

/// `volumes` listed as `--format` (`table`, `table TEMPLATE`, `json` or `TEMPLATE`) says.
pub(crate) fn render_list(format: &str, volumes: &[Volume]) -> anyhow::Result<String> {
    let format = Format::parse(format, LS_TABLE)?;
    let values: Vec<Value> = volumes.iter().map(ls_row).collect();
    let rows: Vec<Row> = volumes.iter().zip(&values).map(|(v, r)| Row::new(r).with_labels(&v.labels)).collect();
    Ok(render::format::list(&format, LS_HEADERS, &rows)?)
}

pub(crate) fn inspect_json(v: &Volume) -> Value {
    json!({
        "CreatedAt": v.created_at,
        "Driver": v.driver,
        "Labels": if v.labels.is_empty() { Value::Null } else { json!(v.labels) },
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": if v.options.is_empty() { Value::Null } else { json!(v.options) },
        "Scope": v.scope,
    })
}

fn matches(root: &crate::state::StateRoot, v: &Volume, filters: &[String]) -> anyhow::Result<bool> {
    for f in filters {
        let (k, val) = f.split_once('=').unwrap_or((f, ""));
        let ok = match k {
            "name" => v.name.contains(val),
            "label" => match val.split_once('=') {
                Some((lk, lv)) => v.labels.get(lk).is_some_and(|x| x == lv),
                None => v.labels.contains_key(val),
            },
            "driver" => v.driver == val,
            "dangling" => {
                let unused = volumes::users(root, &v.name).is_empty();
                if val == "true" || val == "1" { unused } else { !unused }
            }
            _ => anyhow::bail!("invalid filter '{k}'"),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

pub fn run(g: &GlobalOpts, c: Commands) -> anyhow::Result<i32> {
    let root = g.state_root();
    let Commands::Volume(c) = c;
    match c {
        VolumeCommand::Ls(a) => {
            let mut list = volumes::list(&root)?;
            let mut keep = Vec::new();
            for v in list.drain(..) {
                if matches(&root, &v, &a.filters)? {
                    keep.push(v);
                }
            }
            if a.quiet {
                for v in &keep {
                    println!("{}", v.name);
                }
            } else {
                print!("{}", render_list(a.format.as_deref().unwrap_or("table"), &keep)?);
            }
            Ok(0)
        }
        VolumeCommand::Create(a) => {
            let v = volumes::create(&root, a.name.as_deref(), &a.driver, kv(&a.labels), kv(&a.opts))?;
            println!("{}", v.name);
            Ok(0)
        }
        VolumeCommand::Inspect { format, volumes: names } => {
            let template = format.as_deref().filter(|f| *f != "json").map(Template::parse).transpose()?;
            let mut out = Vec::new();
            let mut code = 0;
            for n in &names {
                match volumes::get(&root, n)? {
                    Some(v) => out.push(inspect_json(&v)),
                    None => {
                        eprintln!("Error: No such volume: {n}");
                        code = 1;
                    }
                }
            }
            match template {
                Some(t) => {
                    for v in &out {
                        println!("{}", t.execute(&Row::new(v))?);
                    }
                }
                None if !out.is_empty() || code == 0 => println!("{}", serde_json::to_string_pretty(&Value::Array(out))?),
                None => {}
            }
            Ok(code)
        }
        VolumeCommand::Rm { force, volumes: names } => {
            let mut code = 0;
            for n in &names {
                match volumes::remove(&root, n, force) {
                    Ok(()) => println!("{n}"),
                    Err(volumes::VolumeError::NotFound(_)) => {
                        eprintln!("Error response from daemon: get {n}: no such volume");
                        code = 1;
                    }
                    Err(e) => {
                        eprintln!("Error response from daemon: {e}");
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
    }
}
