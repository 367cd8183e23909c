//! `berth bridge convert` and `berth bridge transformations ls`: compose's flags and defaults, over
//! [`crate::bridge`]. This file only parses, loads the project, calls the conversion, and prints
//! its warnings.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};

use super::GlobalOpts;
use crate::bridge::{self, Level, Options, Transformation};
use crate::project::load;

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Convert compose files into another model
    Bridge {
        #[command(subcommand)]
        cmd: BridgeCmd,
    },
}

#[derive(Subcommand, Debug)]
pub enum BridgeCmd {
    /// Convert compose files to Kubernetes manifests, Helm charts, or another model
    Convert(ConvertArgs),
    /// Manage transformations
    Transformations {
        #[command(subcommand)]
        cmd: TransformationsCmd,
    },
}

#[derive(Subcommand, Debug)]
pub enum TransformationsCmd {
    /// List available transformations
    #[command(visible_alias = "ls")]
    List {
        /// Format the output. Values: [table | json]
        #[arg(long, default_value = "table")]
        format: String,
        /// Only display transformation names
        #[arg(short, long)]
        quiet: bool,
    },
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The output directory for the Kubernetes resources
    #[arg(short, long, default_value = "out", value_name = "DIR")]
    output: PathBuf,
    /// Transformation to apply to compose model: kubernetes or helm (default: kubernetes)
    #[arg(short, long = "transformation", value_name = "NAME")]
    transformations: Vec<String>,
    /// Directory containing transformation templates (compose's; berth's transformations are built in)
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
    /// The namespace of every object (default: the project name)
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Fail, writing nothing, when anything of the project cannot be converted as it is
    #[arg(long)]
    strict: bool,
    /// Write bind mounts as hostPath volumes (paths on the node that runs the pod)
    #[arg(long)]
    allow_host_path: bool,
}

const BUILT_IN: &[(&str, &str)] =
    &[("kubernetes", "Kustomize tree: base/ and overlays/desktop/"), ("helm", "Helm chart: Chart.yaml, values.yaml, templates/")];

pub fn run(g: &GlobalOpts, c: Commands) -> anyhow::Result<i32> {
    let Commands::Bridge { cmd } = c;
    match cmd {
        BridgeCmd::Convert(a) => convert(g, a),
        BridgeCmd::Transformations { cmd: TransformationsCmd::List { format, quiet } } => {
            if quiet {
                for (name, _) in BUILT_IN {
                    println!("{name}");
                }
            } else if format == "json" {
                let list: Vec<_> = BUILT_IN.iter().map(|(n, d)| serde_json::json!({"Name": n, "Description": d})).collect();
                println!("{}", serde_json::Value::Array(list));
            } else if format == "table" {
                println!("{:<12}DESCRIPTION", "NAME");
                for (name, desc) in BUILT_IN {
                    println!("{name:<12}{desc}");
                }
            } else {
                bail!("unknown format {format:?}: use table or json");
            }
            Ok(0)
        }
    }
}

fn convert(g: &GlobalOpts, a: ConvertArgs) -> anyhow::Result<i32> {
    if let Some(t) = &a.templates {
        bail!(
            "--templates {}: berth's transformations are built in and take no templates; use --transformation kubernetes or helm",
            t.display()
        );
    }
    let transformations = if a.transformations.is_empty() {
        vec![Transformation::Kubernetes]
    } else {
        a.transformations.iter().map(|t| t.parse()).collect::<Result<Vec<Transformation>, _>>()?
    };
    let project = load(&g.load_options())?;
    for w in &project.warnings {
        eprintln!("WARN[0000] {w}");
    }
    let opts = Options {
        namespace: a.namespace,
        allow_host_path: a.allow_host_path,
        strict: a.strict,
        image_ports: bridge::local_image_ports(&g.state_root(), &project),
    };
    let out = bridge::convert(&project, &transformations, &opts)?;
    for d in &out.diagnostics {
        match d.level {
            Level::Warning => eprintln!("WARN[0000] {d}"),
            Level::Note => eprintln!("INFO[0000] {d}"),
        }
    }
    if g.dry_run {
        for f in &out.files {
            println!("DRY-RUN MODE - Kubernetes resource {} would be created in {}", f.path, a.output.display());
        }
        return Ok(0);
    }
    let mut protect = vec![project.working_dir.clone()];
    protect.extend(project.config_files.iter().cloned());
    bridge::write(&out.files, &a.output, &protect)?;
    for f in &out.files {
        println!("Kubernetes resource {} created", f.path);
    }
    Ok(0)
}
