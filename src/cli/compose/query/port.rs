//! `berth port`: the public address of a service's published port.
use clap::Args;

use super::OneOff;
use crate::cli::GlobalOpts;

#[derive(Args, Debug)]
pub struct PortArgs {
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 0)]
    index: u32,
    /// tcp or udp
    #[arg(long, default_value = "tcp")]
    protocol: String,
    #[arg(value_name = "SERVICE")]
    service: String,
    #[arg(value_name = "PRIVATE_PORT")]
    port: String,
}

pub fn run(g: &GlobalOpts, a: PortArgs) -> anyhow::Result<i32> {
    let port: u16 = a.port.parse().map_err(|_| anyhow::anyhow!("invalid port {:?}: a number from 0 to 65535 is expected", a.port))?;
    let proto = a.protocol.to_lowercase();
    let name = super::project_name(g)?;
    let root = g.state_root();
    let c = super::specified_container(&root, &name, OneOff::Include, false, &a.service, a.index)?;
    // Docker's order: for a port published on both families, the IPv4 binding is printed.
    let ports = super::ps::port_entries(&c);
    match ports.iter().find(|p| p.private == port && p.proto == proto) {
        Some(p) => {
            println!("{}:{}", p.ip, p.public);
            Ok(0)
        }
        // Exposed but not published: compose prints the empty binding, `:0`, rc 0.
        None if exposed(g, &name, &a.service, &c).contains(&(port, proto.clone())) => {
            println!(":0");
            Ok(0)
        }
        None => {
            let known: Vec<String> = ports.iter().map(|p| format!("{}/{}", p.public, p.proto)).collect();
            if known.is_empty() {
                anyhow::bail!("no port {port}/{proto} for container {}: it publishes none", c.cfg.name)
            }
            // As compose: every binding's published port.
            anyhow::bail!("no port {port}/{proto} for container {}: {}", c.cfg.name, known.join(", "))
        }
    }
}

/// The ports a container exposes without publishing them: its image's `ExposedPorts` and the
/// service's `expose:` (read from the compose file when it is at hand and names this project).
fn exposed(g: &GlobalOpts, project: &str, service: &str, c: &super::Ctr) -> Vec<(u16, String)> {
    let mut specs: Vec<String> = Vec::new();
    if let Ok(Some(img)) = crate::engine::image::ImageStore::open(&g.state_root()).and_then(|s| s.resolve(&c.cfg.image)) {
        if let Some(m) = img.raw_config["config"]["ExposedPorts"].as_object() {
            specs.extend(m.keys().cloned());
        }
    }
    if let Ok(p) = crate::project::load(&g.load_options()) {
        if p.name == project {
            if let Some(s) = p.services.get(service) {
                specs.extend(s.expose.iter().cloned());
            }
        }
    }
    let mut out = Vec::new();
    for spec in specs {
        let (range, proto) = spec.split_once('/').unwrap_or((spec.as_str(), "tcp"));
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>()) {
            out.extend((lo..=hi).map(|p| (p, proto.to_lowercase())));
        }
    }
    out
}
