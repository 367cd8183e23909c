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
        None => {
            // As compose: every binding's published port.
            let known: Vec<String> = ports.iter().map(|p| format!("{}/{}", p.public, p.proto)).collect();
            anyhow::bail!("no port {port}/{proto} for container {}: {}", c.cfg.name, known.join(", "))
        }
    }
}
