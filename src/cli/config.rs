//! `berth config`: owned by the compose loader (src/project/).
use anyhow::Context;
use clap::{Subcommand, ValueEnum};

use super::GlobalOpts;
use crate::project::{LoadOptions, Skip, hash, interpolate, load_model, load_with, render};

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
    /// `--variables` only: a table (its default)
    Table,
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
        #[arg(long, value_enum)]
        format: Option<Format>,
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
        /// Don't normalize compose model
        #[arg(long)]
        no_normalize: bool,
        /// Don't resolve file paths
        #[arg(long)]
        no_path_resolution: bool,
        /// Don't resolve service env files
        #[arg(long)]
        no_env_resolution: bool,
        /// Don't check model consistency - warning: may produce invalid Compose output
        #[arg(long)]
        no_consistency: bool,
        /// Print environment used for interpolation.
        #[arg(long)]
        environment: bool,
        /// Print model variables and default values.
        #[arg(long)]
        variables: bool,
        /// Print the model names, one per line.
        #[arg(long)]
        models: bool,
        /// Pin image tags to digests
        #[arg(long)]
        resolve_image_digests: bool,
        /// Produces an override file with image digests
        #[arg(long)]
        lock_image_digests: bool,
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
        no_normalize,
        no_path_resolution,
        no_env_resolution: _,
        no_consistency,
        environment,
        variables,
        models,
        resolve_image_digests,
        lock_image_digests,
        output,
        services_args,
    } = c;
    let mut opts: LoadOptions = g.load_options();
    opts.interpolate = !no_interpolate;
    if profiles && opts.profiles.is_empty() {
        opts.profiles = vec!["*".into()];
    }
    // --no-env-resolution: berth, as compose v2.40, resolves env files while loading, so the
    // output is the same either way; the flag is accepted for scripts that pass it.
    let skip = Skip { path_resolution: no_path_resolution, normalize: no_normalize, consistency: no_consistency };
    let resolve_digests = resolve_image_digests || lock_image_digests;
    let explicit_format = format;
    let format = format.unwrap_or(Format::Yaml);
    let emit = |text: String| -> anyhow::Result<i32> {
        if quiet {
            return Ok(0);
        }
        match &output {
            Some(p) => crate::util::fs::write_atomic(p, text.as_bytes()).with_context(|| format!("cannot write {}", p.display()))?,
            None => {
                use std::io::Write;
                let _ = std::io::stdout().lock().write_all(text.as_bytes());
            }
        }
        Ok(0)
    };
    if variables {
        if !services_args.is_empty() {
            eprintln!(
                "WARN[0000] service filtering is not applied when --variables is set, variables from the full model will be rendered"
            );
        }
        let model = load_model(&opts, skip)?;
        let mut vars = std::collections::BTreeMap::new();
        interpolate::variables(&json_node(&model), &mut vars);
        return emit(match explicit_format.unwrap_or(Format::Table) {
            // compose's formatter ends it with an empty line
            Format::Json => json_indent4(&vars)? + "\n\n",
            Format::Yaml => variables_yaml(&vars),
            Format::Table => variables_table(&vars),
        });
    }
    if no_interpolate {
        if !services_args.is_empty() {
            eprintln!("WARN[0000] service filtering is not applied when --no-interpolate is set, the full model will be rendered");
        }
        let mut model = load_model(&opts, skip)?;
        if resolve_digests {
            let svcs = model.get_mut("services").and_then(serde_json::Value::as_object_mut);
            for (name, s) in svcs.into_iter().flatten() {
                if let Some(img) = s.get("image").and_then(serde_json::Value::as_str).map(str::to_string) {
                    s["image"] = pinned(g, name, &img)?.into();
                }
            }
        }
        if lock_image_digests {
            model = images_only(&model);
        }
        // compose prints this JSON without a final newline
        return emit(render::raw(|| match format {
            Format::Json => render::to_json(&model),
            _ => render::to_yaml(&model),
        }));
    }
    let mut project = load_with(&opts, skip)?;
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
        let keep = crate::project::DepGraph::from_project(&project).closure(&services_args);
        project.services.retain(|k, _| keep.contains(k));
    }
    if environment {
        let mut env: Vec<(String, String)> = project.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if !env.iter().any(|(k, _)| k == "COMPOSE_PROJECT_NAME") {
            env.push(("COMPOSE_PROJECT_NAME".into(), project.name.clone()));
        }
        env.sort();
        return emit(env.iter().map(|(k, v)| format!("{k}={v}\n")).collect());
    }
    if resolve_digests {
        for (name, s) in project.services.iter_mut() {
            if let Some(img) = s.image.clone() {
                s.image = Some(pinned(g, name, &img)?);
            }
        }
    }
    if lock_image_digests {
        let model: serde_json::Value = serde_json::from_str(&project.to_json()).context("render the project")?;
        let model = images_only(&model);
        return emit(match format {
            Format::Json => render::to_json(&model) + "\n",
            _ => render::to_yaml(&model),
        });
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
    } else if models {
        lines(project.models.keys())
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
            _ => project.to_yaml(),
        }
    };
    emit(text)
}

/// A JSON model as a node tree (for the variable finder, which walks nodes).
fn json_node(v: &serde_json::Value) -> crate::project::yaml::Node {
    use crate::project::yaml::{Key, Map, Node, Value};
    let pos = crate::project::Pos::default();
    let v = match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => n.as_i64().map(Value::Int).unwrap_or(Value::Float(n.as_f64().unwrap_or(0.0))),
        serde_json::Value::String(s) => Value::Str(s.clone()),
        serde_json::Value::Array(a) => Value::Seq(a.iter().map(json_node).collect()),
        serde_json::Value::Object(o) => {
            Value::Map(Map(o.iter().map(|(k, v)| (Key { name: k.clone(), pos: pos.clone() }, json_node(v))).collect()))
        }
    };
    Node::new(v, pos)
}

/// JSON indented by four spaces, as compose's formatter prints `--variables`.
fn json_indent4<T: serde::Serialize>(v: &T) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(b"    "));
    v.serialize(&mut ser)?;
    Ok(String::from_utf8(out)?)
}

/// `config --variables` as compose prints its table (columns padded to 20).
fn variables_table(vars: &std::collections::BTreeMap<String, interpolate::Variable>) -> String {
    let mut out = format!("{:<20}{:<20}{:<20}{}\n", "NAME", "REQUIRED", "DEFAULT VALUE", "ALTERNATE VALUE");
    for v in vars.values() {
        out.push_str(&format!("{:<20}{:<20}{:<20}{}\n", v.name, v.required, v.default_value, v.presence_value));
    }
    out
}

/// `config --variables --format yaml`, with go-yaml's lowercased field names.
fn variables_yaml(vars: &std::collections::BTreeMap<String, interpolate::Variable>) -> String {
    let m: serde_json::Map<String, serde_json::Value> = vars
        .iter()
        .map(|(k, v)| {
            let fields = serde_json::json!({"name": v.name, "defaultvalue": v.default_value, "presencevalue": v.presence_value, "required": v.required});
            (k.clone(), fields)
        })
        .collect();
    render::raw(|| render::to_yaml(&serde_json::Value::Object(m)))
}

/// `image` pinned to its digest, from the local image store: `NAME[:TAG]@sha256:...`. berth does
/// not ask the registry here: an image must have been pulled (so that its registry digest is known).
fn pinned(g: &GlobalOpts, service: &str, image: &str) -> anyhow::Result<String> {
    use crate::engine::image::reference::Reference;
    use crate::engine::image::store::ImageStore;
    let r = Reference::parse(image).map_err(|e| anyhow::anyhow!("service {service:?}: invalid image reference {image:?}: {e}"))?;
    if r.digest().is_some() {
        return Ok(image.to_string());
    }
    let store = ImageStore::open(&g.state_root())?;
    let Some(img) = store.resolve(image)? else {
        anyhow::bail!(
            "service {service:?}: cannot resolve the digest of image {image:?}: it is not in the local store; pull it first (berth pull)"
        );
    };
    let prefix = format!("{}@", r.name());
    let Some(d) = img.repo_digests.iter().find_map(|d| d.strip_prefix(&prefix)) else {
        anyhow::bail!(
            "service {service:?}: cannot resolve the digest of image {image:?}: it was built or imported, not pulled from a registry; \
             push it to a registry and pull it, or give the digest yourself"
        );
    };
    Ok(format!("{image}@{d}"))
}

/// The lock override: services with their image only.
fn images_only(model: &serde_json::Value) -> serde_json::Value {
    let mut svcs = serde_json::Map::new();
    for (name, s) in model.get("services").and_then(serde_json::Value::as_object).into_iter().flatten() {
        let mut out = serde_json::Map::new();
        if let Some(i) = s.get("image") {
            out.insert("image".into(), i.clone());
        }
        svcs.insert(name.clone(), serde_json::Value::Object(out));
    }
    serde_json::json!({ "services": svcs })
}

fn lines<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let mut s = String::new();
    for l in it {
        s.push_str(l);
        s.push('\n');
    }
    s
}
