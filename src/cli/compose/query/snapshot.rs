//! `berth export` and `berth commit`: a service container's filesystem as a tar (the merged view
//! of its image layers and its own changes, as `docker export` writes it: no volumes, no /proc),
//! and its changes (the overlay upper dir) as a new layer on its image in the local store.
use std::io::{IsTerminal, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{ArgAction, Args};

use super::cp::{self, TarSink};
use super::{Ctr, OneOff};
use crate::cli::GlobalOpts;
use crate::cli::progress::{self, Progress};
use crate::engine::image::reference::Reference;
use crate::engine::image::{Digest, ImageStore};
use crate::engine::runtime::state::Paths;
use crate::engine::runtime::{Status, ops};
use crate::project::execute::{Event, Sink as _, State};
use crate::state::StateRoot;
use crate::util::sys::mount as mountapi;

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
        Some(path) => export_to_file(&root, &c, path),
        None => write_rootfs(&root, &c, std::io::stdout().lock()).map(|_| ()),
    };
    match &r {
        Ok(()) => progress.event(Event { kind: "Container", name: c.cfg.name.clone(), state: State::Done, text: "Exported".into() }),
        Err(e) => progress.event(Event { kind: "Container", name: c.cfg.name.clone(), state: State::Error, text: e.to_string() }),
    }
    progress.finish();
    r.with_context(|| format!("cannot {what}"))?;
    Ok(0)
}

/// Writes the tar beside `path` first, so that a failed export leaves no partial file.
fn export_to_file(root: &StateRoot, c: &Ctr, path: &Path) -> anyhow::Result<()> {
    let name = path.file_name().ok_or_else(|| anyhow::anyhow!("{} is not a file name", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.berth-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let f = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let w = write_rootfs(root, c, std::io::BufWriter::with_capacity(1 << 20, f))?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The container's root filesystem as a tar: its image layers under its own changes, mounted
/// read-only and detached (nothing appears in any mount table), walked without following links.
fn write_rootfs<W: Write>(root: &StateRoot, c: &Ctr, out: W) -> anyhow::Result<W> {
    let paths = Paths::new(root, &c.cfg.id);
    let mut lowers: Vec<PathBuf> = c.cfg.rootfs.layers.clone();
    lowers.push(paths.diff());
    // Each layer by an fd of ours (`/proc/self/fd/N`): short, whatever the state root's depth,
    // and no ':' or ',' to escape. The top first, as overlay lists lower layers.
    let mut fds = Vec::new();
    for p in lowers.iter().rev() {
        // The image's layers are short links into the store: followed here.
        let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_PATH | libc::O_DIRECTORY).open(p);
        fds.push(f.with_context(|| format!("cannot open the layer {}", p.display()))?);
    }
    let names: Vec<String> = fds.iter().map(|f| format!("/proc/self/fd/{}", f.as_raw_fd())).collect();
    let joined = names.join(":");
    let mut opts: Vec<(&str, Option<&str>)> = vec![("index", Some("off")), ("redirect_dir", Some("off"))];
    // A string option holds 256 bytes; more layers are given one by one (Linux 6.8+).
    if joined.len() < 256 {
        opts.push(("lowerdir", Some(joined.as_str())));
    } else {
        opts.extend(names.iter().map(|n| ("lowerdir+", Some(n.as_str()))));
    }
    let mnt =
        mountapi::new_fs("overlay", "overlay", &opts, mountapi::ATTR_RDONLY).context("cannot mount the container's layers read-only")?;
    drop(fds);
    let fd = cp::openat(mnt.as_raw_fd(), std::ffi::OsStr::new("."), libc::O_PATH | libc::O_DIRECTORY, 0)?;
    let mut sink = TarSink { b: tar::Builder::new(out), root: PathBuf::new() };
    sink.b.follow_symlinks(false);
    cp::walk_container_root(fd, &mut sink, true)?;
    Ok(sink.b.into_inner()?)
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
    let mut entry = serde_json::json!({"created": created, "created_by": super::ps::docker_command(&[cfg.entrypoint.clone(), cfg.cmd.clone()].concat())});
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
    let paused = a.pause && c.st.status == Status::Running && ops::pause(&root, &cfg.id).is_ok();
    let layer = store.commit_layer(image.layers.last().map(|l| &l.chain_id), &Paths::new(&root, &cfg.id).diff());
    if paused {
        if let Err(e) = ops::unpause(&root, &cfg.id) {
            eprintln!("WARN[0000] container {} stays paused: {e}; run `berth unpause {}`", cfg.name, a.service);
        }
    }
    let result = layer.map_err(anyhow::Error::from).and_then(|l| {
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
