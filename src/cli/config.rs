//! `berth config`: owned by the compose loader (src/project/).
use anyhow::Context;
use clap::{Subcommand, ValueEnum};

use super::GlobalOpts;
use crate::project::{LoadOptions, hash, load};

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    Text,
    Dot,
    Mermaid,
}

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Parse, resolve and render compose file in canonical format
    Config {
        /// Format the output
        #[arg(long, value_enum, default_value = "yaml")]
        format: Format,
        /// Print the service names, one per line
        #[arg(long)]
        services: bool,
        /// Print the volume names, one per line
        #[arg(long)]
        volumes: bool,
        /// Print the network names, one per line
        #[arg(long)]
        networks: bool,
        /// Print the image names, one per line
        #[arg(long)]
        images: bool,
        /// Print the profile names, one per line
        #[arg(long)]
        profiles: bool,
        /// Print the service config hash, one per line ("*" for all services)
        #[arg(long, value_name = "SERVICES")]
        hash: Option<String>,
        /// Draw the dependency graph
        #[arg(long, value_enum, value_name = "FORMAT")]
        graph: Option<GraphFormat>,
        /// Only validate the configuration, don't print anything
        #[arg(short, long)]
        quiet: bool,
        /// Don't interpolate environment variables
        #[arg(long)]
        no_interpolate: bool,
        /// Save to file (default to stdout)
        #[arg(short, long, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        /// Services to print (default: all)
        services_args: Vec<String>,
    },
}

pub fn run(g: &GlobalOpts, c: Commands) -> anyhow::Result<i32> {
    let Commands::Config {
        format,
        services,
        volumes,
        networks,
        images,
        profiles,
        hash: hash_of,
        graph,
        quiet,
        no_interpolate,
        output,
        services_args,
    } = c;
    let mut opts: LoadOptions = g.load_options();
    opts.interpolate = !no_interpolate;
    if profiles && opts.profiles.is_empty() {
        opts.profiles = vec!["*".into()];
    }
    let mut project = load(&opts)?;
    for w in &project.warnings {
        eprintln!("WARN[0000] {w}");
    }
    if !services_args.is_empty() {
        for s in &services_args {
            if !project.services.contains_key(s) {
                anyhow::bail!("no such service: {s}");
            }
        }
        // keep the named services and what they depend on
        let mut keep: Vec<String> = services_args.clone();
        let mut i = 0;
        while i < keep.len() {
            let deps: Vec<String> = project.services.get(&keep[i]).map(|s| s.depends_on.keys().cloned().collect()).unwrap_or_default();
            for d in deps {
                if !keep.contains(&d) && project.services.contains_key(&d) {
                    keep.push(d);
                }
            }
            i += 1;
        }
        project.services.retain(|k, _| keep.contains(k));
    }
    if quiet {
        return Ok(0);
    }
    let text = if services {
        lines(project.services.keys())
    } else if volumes {
        lines(project.volumes.keys())
    } else if networks {
        lines(project.networks.keys())
    } else if images {
        lines(project.images().iter().map(|(_, i)| i))
    } else if profiles {
        let mut all: Vec<&String> =
            project.services.values().chain(project.disabled_services.values()).flat_map(|s| s.profiles.iter()).collect();
        all.sort();
        all.dedup();
        lines(all.into_iter())
    } else if let Some(h) = hash_of {
        let wanted: Vec<&str> = h.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        let mut out = String::new();
        for (name, s) in &project.services {
            if wanted.contains(&"*") || wanted.contains(&name.as_str()) {
                out.push_str(&format!("{name} {}\n", hash::service_hash(s)));
            }
        }
        for w in wanted {
            if w != "*" && !project.services.contains_key(w) {
                anyhow::bail!("no such service: {w}");
            }
        }
        out
    } else if let Some(gf) = graph {
        let gr = project.graph()?;
        match gf {
            GraphFormat::Text => gr.render_text(),
            GraphFormat::Dot => gr.render_dot(),
            GraphFormat::Mermaid => gr.render_mermaid(),
        }
    } else {
        match format {
            Format::Json => project.to_json() + "\n",
            Format::Yaml => project.to_yaml(),
        }
    };
    match output {
        Some(p) => crate::util::fs::write_atomic(&p, text.as_bytes()).with_context(|| format!("cannot write {}", p.display()))?,
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
        }
    }
    Ok(0)
}

fn lines<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let mut s = String::new();
    for l in it {
        s.push_str(l);
        s.push('\n');
    }
    s
}
