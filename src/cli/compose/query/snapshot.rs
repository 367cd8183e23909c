//! `berth export` and `berth commit`: a service container's filesystem as a tar (the merged view
//! of its image layers and its own changes, as `docker export` writes it: no volumes, no /proc),
//! and its changes (the overlay upper dir) as a new layer on its image in the local store.
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{ArgAction, Args};

use super::{Ctr, OneOff};
use crate::cli::GlobalOpts;
use crate::cli::progress::{self, Progress};
use crate::engine::image::reference::Reference;
use crate::engine::image::{Digest, ImageStore};
use crate::engine::runtime::fsaccess;
use crate::project::execute::{Event, Sink as _, State};
use crate::state::StateRoot;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// index of the container if service has multiple replicas.
    #[arg(long, default_value_t = 0)]
    index: u32,
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[arg(value_name = "SERVICE")]
    service: String,
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    changes: Vec<String>,
    /// index of the container if service has multiple replicas.
    #[arg(long, default_value_t = 0)]
    index: u32,
    /// Commit message
    #[arg(short, long)]
    message: Option<String>,
    /// Pause container during commit
    #[arg(short, long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pause: bool,
    #[arg(value_name = "SERVICE")]
    service: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    reference: Option<String>,
}

/// The running container compose picks for `SERVICE --index N`.
fn running_container(g: &GlobalOpts, service: &str, index: u32) -> anyhow::Result<(StateRoot, Ctr)> {
    let name = super::project_name(g)?;
    let root = g.state_root();
    let c = super::specified_container(&root, &name, OneOff::Include, false, service, index)?;
    Ok((root, c))
}

pub fn export(g: &GlobalOpts, a: ExportArgs) -> anyhow::Result<i32> {
    if a.output.is_none() && std::io::stdout().is_terminal() {
        anyhow::bail!("output option is required when exporting to terminal: use -o FILE or redirect the output");
    }
    let (root, c) = running_container(g, &a.service, a.index)?;
    if g.dry_run {
        return Ok(0);
    }
    let progress = Progress::new(progress::kind(g), "Running");
    let what = format!("export {} to {}", c.cfg.name, a.output.as_deref().map(|p| p.display().to_string()).unwrap_or_default());
    progress.event(Event { kind: "Container", name: c.cfg.name.clone(), state: State::Working, text: "Exporting".into() });
    let r = match &a.output {
        Some(path) => fsaccess::export_to_file(&root, &c.cfg, path),
        None => fsaccess::export(&root, &c.cfg, std::io::stdout().lock()).map(drop),
    };
    match &r {
        Ok(()) => progress.event(Event { kind: "Container", name: c.cfg.name.clone(), state: State::Done, text: "Exported".into() }),
        Err(e) => progress.event(Event { kind: "Container", name: c.cfg.name.clone(), state: State::Error, text: e.to_string() }),
    }
    progress.finish();
    r.with_context(|| format!("cannot {what}"))?;
    Ok(0)
}

pub fn commit(g: &GlobalOpts, a: CommitArgs) -> anyhow::Result<i32> {
    let names = match &a.reference {
        Some(r) => vec![Reference::parse(r).with_context(|| format!("invalid reference {r:?}: use REPOSITORY[:TAG]"))?],
        None => Vec::new(),
    };
    let (root, c) = running_container(g, &a.service, a.index)?;
    if g.dry_run {
        return Ok(0);
    }
    let store = ImageStore::open(&root)?;
    let image_id = Digest::parse(&c.cfg.image).with_context(|| format!("container {} has no image id to commit on", c.cfg.name))?;
    let image = store.get(&image_id)?.ok_or_else(|| {
        anyhow::anyhow!("the image of container {} ({}) is no longer in the store: pull or build it again", c.cfg.name, c.cfg.image_ref)
    })?;
    let mut config = image.raw_config.clone();
    let obj = config.as_object_mut().ok_or_else(|| anyhow::anyhow!("the config of image {} is not a JSON object", image.id.short()))?;
    let mut cc = obj.get("config").and_then(|v| v.as_object().cloned()).unwrap_or_default();
    let cfg = &c.cfg;
    let list = |v: &[String]| if v.is_empty() { serde_json::Value::Null } else { serde_json::json!(v) };
    cc.insert("Cmd".into(), list(&cfg.cmd));
    cc.insert("Entrypoint".into(), list(&cfg.entrypoint));
    cc.insert("Env".into(), serde_json::json!(cfg.env));
    cc.insert("User".into(), cfg.user.clone().into());
    cc.insert("WorkingDir".into(), cfg.working_dir.clone().into());
    cc.insert("Labels".into(), serde_json::json!(cfg.labels));
    crate::engine::image::change::apply(&mut cc, &a.changes)?;
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    obj.insert("config".into(), cc.into());
    obj.insert("created".into(), created.clone().into());
    obj.insert("container".into(), cfg.id.clone().into());
    obj.insert("author".into(), a.author.clone().unwrap_or_default().into());
    obj.insert("comment".into(), a.message.clone().unwrap_or_default().into());
    let mut history = obj.get("history").and_then(|h| h.as_array().cloned()).unwrap_or_default();
    let mut entry = serde_json::json!({"created": created, "created_by": crate::cli::render::text::docker_command(&[cfg.entrypoint.clone(), cfg.cmd.clone()].concat())});
    if let Some(m) = &a.message {
        entry["comment"] = m.clone().into();
    }
    if let Some(au) = &a.author {
        entry["author"] = au.clone().into();
    }
    history.push(entry);
    obj.insert("history".into(), history.into());

    let progress = Progress::new(progress::kind(g), "Running");
    progress.event(Event { kind: "Container", name: cfg.name.clone(), state: State::Working, text: "Committing".into() });
    // As Docker: the container is paused while its changes are read (unless --pause=false).
    let parent = image.layers.last().map(|l| &l.chain_id);
    let layer = fsaccess::commit_layer(&root, &store, cfg, c.st.status, parent, a.pause);
    if let Ok((_, Some(e))) = &layer {
        eprintln!("WARN[0000] container {} stays paused: {e}; run `berth unpause {}`", cfg.name, a.service);
    }
    let result = layer.map_err(anyhow::Error::from).and_then(|(l, _)| {
        let mut layers = image.layers.clone();
        layers.push(l);
        Ok(store.create_image(config, &layers, &names)?)
    });
    match &result {
        Ok(img) => progress.event(Event {
            kind: "Container",
            name: cfg.name.clone(),
            state: State::Done,
            text: format!("Committed as {}", img.id),
        }),
        Err(e) => progress.event(Event { kind: "Container", name: cfg.name.clone(), state: State::Error, text: e.to_string() }),
    }
    progress.finish();
    result.with_context(|| format!("cannot commit container {}", cfg.name))?;
    Ok(0)
}
