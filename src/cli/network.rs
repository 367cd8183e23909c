//! `berth network ls|create|inspect|rm|prune`: docker's flags, columns and JSON, over
//! `net::network`.
use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::GlobalOpts;
use super::render::text::go_time_string;
use super::render::{self, Format, Row, Template};
use crate::net::network::{self, IpamConfig, IpamSpec, NetworkInfo, NetworkSpec};

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Manage networks
    Network {
        #[command(subcommand)]
        cmd: Box<NetworkCmd>,
    },
}

#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// List networks
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Create a network
    Create(CreateArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm {
        /// Do not error if the network does not exist
        #[arg(short, long)]
        force: bool,
        #[arg(required = true, value_name = "NETWORK")]
        networks: Vec<String>,
    },
    /// Remove all unused networks
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Provide filter values (e.g. "label=<key>=<value>")
        #[arg(long = "filter", value_name = "FILTER")]
        filters: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go-like template
    #[arg(long)]
    format: Option<String>,
    /// Do not truncate the output
    #[arg(long)]
    no_trunc: bool,
    /// Only display network IDs
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Enable manual container attachment
    #[arg(long)]
    attachable: bool,
    /// Auxiliary IPv4 or IPv6 addresses used by Network driver
    #[arg(long = "aux-address", value_name = "NAME=IP")]
    aux_addresses: Vec<String>,
    /// Driver to manage the Network
    #[arg(short, long, default_value = "bridge")]
    driver: String,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long = "gateway", value_name = "IP")]
    gateways: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    internal: bool,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range", value_name = "CIDR")]
    ip_ranges: Vec<String>,
    /// IP Address Management Driver
    #[arg(long, default_value = "default")]
    ipam_driver: String,
    /// Set IPAM driver specific options
    #[arg(long = "ipam-opt", value_name = "KEY=VALUE")]
    ipam_opts: Vec<String>,
    /// Enable IPv6 networking
    #[arg(long)]
    ipv6: bool,
    /// Set metadata on a network
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
    opts: Vec<String>,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long = "subnet", value_name = "CIDR")]
    subnets: Vec<String>,
    #[arg(value_name = "NETWORK")]
    name: String,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a Go-like template, or 'json'
    #[arg(short, long)]
    format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short, long)]
    verbose: bool,
    #[arg(required = true, value_name = "NETWORK")]
    networks: Vec<String>,
}

pub fn run(g: &GlobalOpts, c: Commands) -> anyhow::Result<i32> {
    let Commands::Network { cmd } = c;
    let root = g.state_root();
    match *cmd {
        NetworkCmd::Ls(a) => ls(&root, a),
        NetworkCmd::Create(a) => create(&root, a),
        NetworkCmd::Inspect(a) => inspect(&root, a),
        NetworkCmd::Rm { force, networks } => {
            let mut code = 0;
            for n in networks {
                match network::remove(&root, &n) {
                    Ok(_) => println!("{n}"),
                    Err(crate::net::NetError::NetworkNotFound(_)) if force => {}
                    Err(e) => {
                        super::report::print(&anyhow::Error::from(e));
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        NetworkCmd::Prune { force: _, filters } => {
            let filters = parse_filters(&filters)?;
            let mut removed = Vec::new();
            for n in network::list(&root)? {
                let info = network::inspect(&root, &n.id)?;
                if !info.endpoints.is_empty() || !matches(&info, &filters)? {
                    continue;
                }
                if network::remove(&root, &n.name).is_ok() {
                    removed.push(n.name);
                }
            }
            if !removed.is_empty() {
                println!("Deleted Networks:");
                for n in removed {
                    println!("{n}");
                }
            }
            Ok(0)
        }
    }
}

fn split_kv(s: &str, what: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ if what == "label" && !s.is_empty() => Ok((s.to_string(), String::new())),
        _ => bail!("invalid {what} {s:?}: expected KEY=VALUE"),
    }
}

fn create(root: &crate::state::StateRoot, a: CreateArgs) -> anyhow::Result<i32> {
    if a.gateways.len() > a.subnets.len() || a.ip_ranges.len() > a.subnets.len() {
        bail!("every --gateway and --ip-range needs a --subnet it belongs to");
    }
    let mut config: Vec<IpamConfig> = a.subnets.iter().map(|s| IpamConfig { subnet: Some(s.clone()), ..Default::default() }).collect();
    // Like docker, each gateway, range and aux address goes with the subnet that contains it.
    let place = |config: &mut Vec<IpamConfig>, ip: &str, what: &str| -> anyhow::Result<usize> {
        let addr: IpAddr = ip.split('/').next().unwrap_or(ip).parse().with_context(|| format!("invalid {what} {ip:?}"))?;
        config
            .iter()
            .position(|c| c.subnet.as_deref().and_then(|s| s.parse::<crate::net::ipam::Subnet>().ok()).is_some_and(|s| s.contains(addr)))
            .with_context(|| format!("no matching subnet for {what} {ip}"))
    };
    for gw in &a.gateways {
        let i = place(&mut config, gw, "gateway")?;
        config[i].gateway = Some(gw.clone());
    }
    for r in &a.ip_ranges {
        let i = place(&mut config, r, "range")?;
        config[i].ip_range = Some(r.clone());
    }
    for aux in &a.aux_addresses {
        let (k, v) = split_kv(aux, "aux address")?;
        let i = place(&mut config, &v, "aux-address")?;
        config[i].aux_addresses.insert(k, v);
    }
    let kv =
        |items: &[String], what: &str| -> anyhow::Result<BTreeMap<String, String>> { items.iter().map(|s| split_kv(s, what)).collect() };
    let spec = NetworkSpec {
        name: a.name.clone(),
        driver: Some(a.driver),
        driver_opts: kv(&a.opts, "option")?,
        labels: kv(&a.labels, "label")?,
        internal: a.internal,
        attachable: a.attachable,
        enable_ipv6: a.ipv6,
        ipam: IpamSpec { driver: Some(a.ipam_driver), config, options: kv(&a.ipam_opts, "IPAM option")? },
    };
    let n = network::create(root, spec)?;
    println!("{}", n.id);
    Ok(0)
}

/// `docker network inspect` output, field for field and in docker's order.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct InspectOut {
    name: String,
    id: String,
    created: String,
    scope: &'static str,
    driver: String,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    ipam: IpamOut,
    internal: bool,
    attachable: bool,
    ingress: bool,
    config_from: Value,
    config_only: bool,
    containers: BTreeMap<String, ContainerOut>,
    options: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct IpamOut {
    driver: &'static str,
    options: BTreeMap<String, String>,
    config: Vec<PoolOut>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct PoolOut {
    subnet: String,
    #[serde(rename = "IPRange", skip_serializing_if = "Option::is_none")]
    ip_range: Option<String>,
    gateway: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    auxiliary_addresses: BTreeMap<String, String>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerOut {
    name: String,
    #[serde(rename = "EndpointID")]
    endpoint_id: String,
    mac_address: String,
    #[serde(rename = "IPv4Address")]
    ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    ipv6_address: String,
}

/// The JSON `docker network inspect` prints for one network.
pub(crate) fn inspect_out(info: &NetworkInfo) -> InspectOut {
    let n = &info.network;
    let prefix4 = n.ipv4.as_ref().map(|p| p.subnet.prefix()).unwrap_or(0);
    let prefix6 = n.ipv6.as_ref().map(|p| p.subnet.prefix()).unwrap_or(0);
    InspectOut {
        name: n.name.clone(),
        id: n.id.clone(),
        created: n.created.clone(),
        scope: "local",
        driver: n.driver.clone(),
        enable_ipv6: n.enable_ipv6,
        ipam: IpamOut {
            driver: "default",
            options: n.ipam_options.clone(),
            config: n
                .pools()
                .map(|p| PoolOut {
                    subnet: p.subnet.to_string(),
                    ip_range: p.ip_range.map(|r| r.to_string()),
                    gateway: p.gateway.to_string(),
                    auxiliary_addresses: p.aux_addresses.iter().map(|(k, v)| (k.clone(), v.to_string())).collect(),
                })
                .collect(),
        },
        internal: n.internal,
        attachable: n.attachable,
        ingress: false,
        config_from: json!({"Network": ""}),
        config_only: false,
        containers: info
            .endpoints
            .iter()
            .map(|(id, e)| {
                (
                    id.clone(),
                    ContainerOut {
                        name: e.container_name.clone(),
                        endpoint_id: e.endpoint_id.clone(),
                        mac_address: e.mac.clone(),
                        ipv4_address: e.ipv4.map(|a| format!("{a}/{prefix4}")).unwrap_or_default(),
                        ipv6_address: e.ipv6.map(|a| format!("{a}/{prefix6}")).unwrap_or_default(),
                    },
                )
            })
            .collect(),
        options: n.options.clone(),
        labels: n.labels.clone(),
    }
}

fn inspect(root: &crate::state::StateRoot, a: InspectArgs) -> anyhow::Result<i32> {
    let _ = a.verbose;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in &a.networks {
        match network::inspect(root, name) {
            Ok(i) => found.push(inspect_out(&i)),
            Err(crate::net::NetError::NetworkNotFound(_)) => missing.push(name.clone()),
            Err(e) => return Err(e.into()),
        }
    }
    match a.format.as_deref() {
        None | Some("") => println!("{}", super::render::pretty4(&found)),
        Some(f) => {
            // (Unlike docker's inspect, berth's has always read `\t` and `\n` as a listing does.)
            let t = Template::parse(&render::format::unescape(f))?;
            for v in &found {
                println!("{}", t.execute(&Row::new(&serde_json::to_value(v)?))?);
            }
        }
    }
    for m in &missing {
        eprintln!("Error: No such network: {m}");
    }
    Ok(if missing.is_empty() { 0 } else { 1 })
}

/// The row `docker network ls --format` sees.
fn ls_row(info: &NetworkInfo, no_trunc: bool) -> Value {
    let n = &info.network;
    let created = chrono::DateTime::parse_from_rfc3339(&n.created)
        .map(|d| go_time_string(&d.to_utc().fixed_offset()))
        .unwrap_or_else(|_| n.created.clone());
    json!({
        "CreatedAt": created,
        "Driver": n.driver,
        "ID": if no_trunc { n.id.clone() } else { n.id[..12.min(n.id.len())].to_string() },
        "IPv4": n.ipv4.is_some().to_string(),
        "IPv6": n.enable_ipv6.to_string(),
        "Internal": n.internal.to_string(),
        "Labels": n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
        "Name": n.name,
        "Scope": "local",
    })
}

fn parse_filters(filters: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    filters
        .iter()
        .map(|f| {
            let (k, v) = f.split_once('=').with_context(|| format!("bad format of filter {f:?} (expected name=value)"))?;
            match k {
                "driver" | "id" | "label" | "label!" | "name" | "scope" | "type" | "dangling" => Ok((k.to_string(), v.to_string())),
                _ => bail!("invalid filter {k:?}: use driver, id, label, name, scope, type or dangling"),
            }
        })
        .collect()
}

fn has_label(n: &network::Network, v: &str) -> bool {
    match v.split_once('=') {
        Some((lk, lv)) => n.labels.get(lk).is_some_and(|x| x == lv),
        None => n.labels.contains_key(v),
    }
}

/// Docker's semantics: values of one key are alternatives, different keys must all match.
fn matches(info: &NetworkInfo, filters: &[(String, String)]) -> anyhow::Result<bool> {
    let n = &info.network;
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in filters {
        by_key.entry(k.as_str()).or_default().push(v.as_str());
    }
    for (k, vals) in by_key {
        let ok = vals.iter().any(|v| match k {
            "driver" => n.driver == *v,
            "id" => n.id.starts_with(v),
            "name" => n.name.contains(v),
            "scope" => *v == "local",
            "type" => *v == "custom",
            "dangling" => (*v == "true" || *v == "1") == info.endpoints.is_empty(),
            "label" => has_label(n, v),
            "label!" => !has_label(n, v),
            _ => false,
        });
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn ls(root: &crate::state::StateRoot, a: LsArgs) -> anyhow::Result<i32> {
    let filters = parse_filters(&a.filters)?;
    if let Some(w) = crate::net::firewall::health_warning(root) {
        eprintln!("WARNING: {w}");
    }
    let mut rows = Vec::new();
    for n in network::list(root)? {
        // A damaged endpoints file costs that network its container list, not the whole listing.
        let endpoints = match network::read_endpoints(root, &n.name) {
            Ok(e) => e.endpoints,
            Err(e) => {
                eprintln!("WARN[0000] network {}: {e}", n.name);
                Default::default()
            }
        };
        let info = NetworkInfo { network: n, endpoints };
        if matches(&info, &filters)? {
            rows.push((ls_row(&info, a.no_trunc), info.network.labels));
        }
    }
    // A damaged network.json costs that network its details, not the listing: it is shown by
    // name (unfiltered) so that it can be removed.
    for d in network::list_damaged(root)? {
        eprintln!("WARNING: network {}: {}; remove it with `berth network rm {}` (or `down`)", d.name, d.error, d.name);
        if a.filters.is_empty() && !a.quiet {
            let row = serde_json::json!({"ID": "(damaged)", "Name": d.name, "Driver": "bridge", "Scope": "local"});
            rows.push((row, Default::default()));
        }
    }
    if a.quiet {
        for r in &rows {
            println!("{}", r.0["ID"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    let format = Format::parse(a.format.as_deref().unwrap_or("table"), LS_TABLE)?;
    let rows: Vec<Row> = rows.iter().map(|(r, labels)| Row::new(r).with_labels(labels)).collect();
    print!("{}", render::format::list(&format, LS_HEADERS, &rows)?);
    Ok(0)
}

/// `docker network ls`' columns.
const LS_TABLE: &str = "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";

/// Each field of a listed network, with its column name.
const LS_HEADERS: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv6", "IPV6"),
    ("IPv4", "IPV4"),
    ("Internal", "INTERNAL"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_like_docker() {
        let row = json!({"ID": "c833b26dab18", "Name": "bridge", "Driver": "bridge", "Scope": "local"});
        let t = render::format::list(&Format::parse("table", LS_TABLE).unwrap(), LS_HEADERS, &[Row::new(&row)]).unwrap();
        assert_eq!(t, "NETWORK ID     NAME      DRIVER    SCOPE\nc833b26dab18   bridge    bridge    local\n");
    }

    #[test]
    fn templates() {
        let v = json!({"Name": "n", "IPAM": {"Driver": "default"}, "Labels": {"a": "b"}});
        let render_template = |t: &str| Template::parse(&render::format::unescape(t)).unwrap().execute(&Row::new(&v)).unwrap();
        assert_eq!(render_template("{{.Name}}\\t{{.IPAM.Driver}}"), "n\tdefault");
        assert_eq!(render_template("{{json .Labels}}"), "{\"a\":\"b\"}");
        assert_eq!(render_template("{{.Labels}}"), "map[a:b]");
    }
}
