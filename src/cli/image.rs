//! Image commands: `pull`, `push`, `images`, `image ...`, `login`, `logout`. The work is done by
//! src/engine/image/; this file parses flags and prints what Docker prints.
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::SubsecRound;
use clap::{Args, Subcommand, ValueEnum};

use super::GlobalOpts;
use super::render::tabwriter::{self, Style};
use super::render::text::go_time_string;
use super::render::{self, Template, units};
use crate::engine::image::store::{ImageStore, Removed, familiar_digest};
use crate::engine::image::{Image, Platform, Progress, ProgressMode, PullOptions, PushOptions, Reference};

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Pull service images
    Pull(ComposePullArgs),
    /// Push service images
    Push(ComposePushArgs),
    /// List images used by the created containers
    Images(ComposeImagesArgs),
    /// Manage images
    Image {
        #[command(subcommand)]
        cmd: ImageCmd,
    },
    /// Log in to a registry
    Login(LoginArgs),
    /// Log out from a registry
    Logout {
        /// The registry (default: Docker Hub)
        server: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct ComposePullArgs {
    /// Services to pull (default: all)
    pub services: Vec<String>,
    /// Pull what it can and ignore images with pull failures
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub ignore_pull_failures: bool,
    /// Also pull services declared as dependencies
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub include_deps: bool,
    /// Apply pull policy ("missing"|"always")
    #[arg(long, value_name = "POLICY")]
    pub policy: Option<String>,
    /// Pull without printing progress information
    #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ComposePushArgs {
    /// Services to push (default: all with an image)
    pub services: Vec<String>,
    /// Push what it can and ignore images with push failures
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub ignore_push_failures: bool,
    /// Push without printing progress information
    #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ComposeImagesArgs {
    /// Services to list (default: all)
    pub services: Vec<String>,
    /// Format the output
    #[arg(long, value_enum, default_value = "table")]
    pub format: ListFormat,
    /// Only display IDs
    #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    pub quiet: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListFormat {
    #[default]
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only images with this name (REPOSITORY[:TAG])
    pub reference: Option<String>,
    /// Show all images (berth keeps no intermediate images, so the same as without)
    #[arg(short, long)]
    pub all: bool,
    /// Only display image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Format the output
    #[arg(long, value_enum, default_value = "table")]
    pub format: ListFormat,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The registry (default: Docker Hub)
    pub server: Option<String>,
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password
    #[arg(short, long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    /// Download an image from a registry
    Pull {
        /// NAME[:TAG|@DIGEST]
        reference: String,
        /// Set platform if server is multi-platform capable (os/arch[/variant])
        #[arg(long)]
        platform: Option<String>,
        /// Suppress verbose output
        #[arg(short, long)]
        quiet: bool,
    },
    /// Upload an image to a registry
    Push {
        /// NAME[:TAG]
        reference: String,
        /// Suppress verbose output
        #[arg(short, long)]
        quiet: bool,
    },
    /// List images
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
        /// Force removal of the image
        #[arg(short, long)]
        force: bool,
        /// Do not delete untagged parents (accepted for compatibility)
        #[arg(long)]
        no_prune: bool,
    },
    /// Load an image from a tar archive (docker save or OCI layout) or STDIN
    Load {
        /// Read from tar archive file, instead of STDIN
        #[arg(short, long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// Suppress the load output
        #[arg(short, long)]
        quiet: bool,
    },
    /// Import the contents from a tarball to create a filesystem image
    Import {
        /// A tarball (tar, gzip or zstd), or - for STDIN
        file: String,
        /// REPOSITORY[:TAG]
        reference: Option<String>,
        /// Apply Dockerfile instruction to the created image
        #[arg(short, long = "change", value_name = "INSTRUCTION")]
        changes: Vec<String>,
        /// Set commit message for imported image
        #[arg(short, long)]
        message: Option<String>,
        /// Set platform if server is multi-platform capable
        #[arg(long)]
        platform: Option<String>,
    },
    /// Remove unused images
    Prune {
        /// Remove all unused images, not just dangling ones
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag { source: String, target: String },
    /// Display detailed information on one or more images
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
        /// Format the output using the given template ({{.Id}}, {{json .Config}})
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Show the history of an image
    History {
        image: String,
        /// Don't truncate output
        #[arg(long)]
        no_trunc: bool,
        /// Only show image IDs
        #[arg(short, long)]
        quiet: bool,
        /// Print sizes and dates in human readable format
        #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
        human: bool,
    },
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save {
        #[arg(required = true)]
        images: Vec<String>,
        /// Write to a file, instead of STDOUT
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

pub fn run(g: &GlobalOpts, c: Commands) -> anyhow::Result<i32> {
    match c {
        Commands::Images(a) => compose_images(g, &a),
        Commands::Image { cmd } => image(g, cmd),
        Commands::Pull(a) => compose_pull(g, a),
        Commands::Push(a) => compose_push(g, a),
        Commands::Login(a) => login(g, a),
        Commands::Logout { server } => logout(server),
    }
}

fn open(g: &GlobalOpts) -> anyhow::Result<ImageStore> {
    let store = ImageStore::open(&g.state_root())?;
    if let Some(w) = store.index_damage() {
        eprintln!("WARNING: {w}");
    }
    Ok(store)
}

fn image(g: &GlobalOpts, cmd: ImageCmd) -> anyhow::Result<i32> {
    match cmd {
        ImageCmd::Ls(a) => ls(g, &a),
        ImageCmd::Pull { reference, platform, quiet } => image_pull(g, &reference, platform.as_deref(), quiet),
        ImageCmd::Push { reference, quiet } => image_push(g, &reference, quiet),
        ImageCmd::Rm { images, force, no_prune: _ } => rm(g, &images, force),
        ImageCmd::Load { input, quiet } => load(g, input, quiet),
        ImageCmd::Import { file, reference, changes, message, platform } => {
            import(g, &file, reference.as_deref(), &changes, message.as_deref(), platform.as_deref())
        }
        ImageCmd::Prune { all, force } => prune(g, all, force),
        ImageCmd::Tag { source, target } => {
            let store = open(g)?;
            let img = store.require(&source)?;
            let target = Reference::parse(&target)?;
            store.tag(&img.id, &target)?;
            Ok(0)
        }
        ImageCmd::Inspect { images, format } => inspect(g, &images, format.as_deref()),
        ImageCmd::History { image, no_trunc, quiet, human } => history(g, &image, no_trunc, quiet, human),
        ImageCmd::Save { images, output } => save(g, &images, output),
    }
}

// ---- listing ----

/// Docker's image sizes: `HumanSizeWithPrecision(size, 3)`.
fn human_size(bytes: u64) -> String {
    units::human_size(bytes as f64, 3)
}

fn since(img: &Image) -> String {
    match ImageStore::created(img) {
        Some(t) => format!("{} ago", units::since(t, chrono::Utc::now())),
        None => "N/A".into(),
    }
}

struct Row {
    repo: String,
    tag: String,
    digest: String,
    id: String,
    created_since: String,
    created_at: String,
    size: String,
}

fn rows(store: &ImageStore, filter: Option<&str>, no_trunc: bool) -> anyhow::Result<Vec<Row>> {
    let filter = filter.map(Reference::parse_name_only).transpose()?;
    let mut out = Vec::new();
    for img in store.list()? {
        let id = if no_trunc { img.id.to_string() } else { img.id.short().to_string() };
        let created_at = ImageStore::created(&img).map(|t| go_time_string(&t.trunc_subsecs(0).fixed_offset())).unwrap_or_default();
        let digest_for = |name: &str| {
            img.repo_digests
                .iter()
                .find(|d| d.split('@').next() == Some(name))
                .and_then(|d| d.split('@').nth(1))
                .unwrap_or("<none>")
                .to_string()
        };
        for n in &img.names {
            if let Some(f) = &filter {
                if f.name() != n.name() || (f.tag().is_some() && f.tag() != n.tag()) {
                    continue;
                }
            }
            out.push(Row {
                repo: n.familiar_name(),
                tag: n.tag().unwrap_or("<none>").to_string(),
                digest: digest_for(&n.name()),
                id: id.clone(),
                created_since: since(&img),
                created_at: created_at.clone(),
                size: human_size(img.size),
            });
        }
        if img.names.is_empty() && filter.is_none() {
            let (repo, digest) = match img.repo_digests.first() {
                Some(rd) => {
                    let f = familiar_digest(rd);
                    let (r, d) = f.split_once('@').unwrap_or((&f, "<none>"));
                    (r.to_string(), d.to_string())
                }
                None => ("<none>".to_string(), "<none>".to_string()),
            };
            out.push(Row {
                repo,
                tag: "<none>".into(),
                digest,
                id: id.clone(),
                created_since: since(&img),
                created_at: created_at.clone(),
                size: human_size(img.size),
            });
        }
    }
    Ok(out)
}

fn ls(g: &GlobalOpts, a: &LsArgs) -> anyhow::Result<i32> {
    let store = open(g)?;
    // Damaged images are listed as usual (they can be removed or repaired by name); stderr
    // says which, keeping stdout Docker's format.
    for img in store.list()? {
        if let Err(e) = store.check_layers(&img) {
            eprintln!("WARNING: {e}");
        }
    }
    let rows = rows(&store, a.reference.as_deref(), a.no_trunc)?;
    let mut out = std::io::stdout().lock();
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for r in &rows {
            if seen.insert(r.id.clone()) {
                writeln!(out, "{}", r.id)?;
            }
        }
        return Ok(0);
    }
    match a.format {
        ListFormat::Json => {
            for r in &rows {
                let v = serde_json::json!({
                    "Containers": "N/A",
                    "CreatedAt": r.created_at,
                    "CreatedSince": r.created_since,
                    "Digest": r.digest,
                    "ID": r.id,
                    "Repository": r.repo,
                    "SharedSize": "N/A",
                    "Size": r.size,
                    "Tag": r.tag,
                    "UniqueSize": "N/A",
                    "VirtualSize": r.size,
                });
                writeln!(out, "{v}")?;
            }
        }
        ListFormat::Table => {
            let mut table: Vec<Vec<String>> = Vec::new();
            let mut head = vec!["REPOSITORY", "TAG"];
            if a.digests {
                head.push("DIGEST");
            }
            head.extend(["IMAGE ID", "CREATED", "SIZE"]);
            table.push(head.iter().map(|s| s.to_string()).collect());
            for r in rows {
                let mut row = vec![r.repo, r.tag];
                if a.digests {
                    row.push(r.digest);
                }
                row.extend([r.id, r.created_since, r.size]);
                table.push(row);
            }
            out.write_all(tabwriter::table(&table, Style::DOCKER).as_bytes())?;
        }
    }
    Ok(0)
}

/// `berth images`: the images of the project's containers, as `docker compose images`.
fn compose_images(g: &GlobalOpts, a: &ComposeImagesArgs) -> anyhow::Result<i32> {
    // As compose's: `-p NAME` alone is enough (the containers' labels are the project).
    let project = crate::cli::compose::converge::project_name(g)?;
    let store = open(g)?;
    let dir = g.state_root().containers_dir();
    let mut rows: Vec<(String, Image)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let Ok(Some(c)) = crate::util::fs::read_json::<serde_json::Value>(&e.path().join("config.json")) else { continue };
            let label = |k: &str| {
                c.pointer(&format!("/Labels/{}", k.replace('~', "~0").replace('/', "~1"))).and_then(|v| v.as_str()).map(str::to_string)
            };
            if label(crate::labels::PROJECT).as_deref() != Some(project.as_str()) {
                continue;
            }
            if !a.services.is_empty() && !label(crate::labels::SERVICE).is_some_and(|s| a.services.contains(&s)) {
                continue;
            }
            let Some(id) = c.get("Image").and_then(|i| i.as_str()) else { continue };
            let Some(img) = store.resolve(id)? else { continue };
            let name = c.get("Name").and_then(|n| n.as_str()).unwrap_or_default().trim_start_matches('/').to_string();
            rows.push((name, img));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = std::io::stdout().lock();
    if a.quiet {
        // Each image once, as compose prints them, however many containers use it.
        let mut seen = std::collections::HashSet::new();
        for (_, img) in rows.iter().filter(|(_, img)| seen.insert(img.id.hex().to_string())) {
            writeln!(out, "{}", img.id.hex())?;
        }
        return Ok(0);
    }
    let platform = |img: &Image| {
        let raw = &img.raw_config;
        let mut p = format!("{}/{}", raw["os"].as_str().unwrap_or("linux"), raw["architecture"].as_str().unwrap_or(""));
        if let Some(v) = raw["variant"].as_str() {
            p.push('/');
            p.push_str(v);
        }
        p
    };
    match a.format {
        ListFormat::Json => {
            let docs: Vec<serde_json::Value> = rows
                .iter()
                .map(|(c, img)| {
                    let n = img.names.first();
                    serde_json::json!({
                        "ID": img.id.to_string(),
                        "ContainerName": c,
                        "Repository": n.map(|n| n.familiar_name()).unwrap_or_else(|| "<none>".into()),
                        "Tag": n.and_then(|n| n.tag()).unwrap_or("<none>"),
                        "Platform": platform(img),
                        "Size": img.size,
                        "LastTagTime": img.added,
                    })
                })
                .collect();
            writeln!(out, "{}", serde_json::Value::from(docs))?;
        }
        ListFormat::Table => {
            let mut table = vec![["CONTAINER", "REPOSITORY", "TAG", "PLATFORM", "IMAGE ID", "SIZE", "CREATED"].map(String::from).to_vec()];
            for (c, img) in &rows {
                let n = img.names.first();
                table.push(vec![
                    c.clone(),
                    n.map(|n| n.familiar_name()).unwrap_or_else(|| "<none>".into()),
                    n.and_then(|n| n.tag()).unwrap_or("<none>").to_string(),
                    platform(img),
                    img.id.short().to_string(),
                    human_size(img.size),
                    since(img),
                ]);
            }
            out.write_all(tabwriter::table(&table, Style::COMPOSE).as_bytes())?;
        }
    }
    Ok(0)
}

// ---- rm / prune / import ----

fn rm(g: &GlobalOpts, images: &[String], force: bool) -> anyhow::Result<i32> {
    let store = open(g)?;
    let mut code = 0;
    for r in images {
        match store.remove(r, force) {
            Ok(events) => {
                for e in events {
                    match e {
                        Removed::Untagged(n) => println!("Untagged: {n}"),
                        Removed::Deleted(d) => println!("Deleted: {d}"),
                    }
                }
            }
            Err(e) => {
                super::report::print(&anyhow::Error::from(e));
                code = 1;
            }
        }
    }
    Ok(code)
}

fn prune(g: &GlobalOpts, all: bool, force: bool) -> anyhow::Result<i32> {
    if !force {
        let what = if all { "all images without at least one container associated to them" } else { "all dangling images" };
        eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let store = open(g)?;
    let (deleted, reclaimed) = store.prune(all)?;
    if !deleted.is_empty() {
        println!("Deleted Images:");
        for d in &deleted {
            println!("deleted: {d}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(0)
}

fn import(
    g: &GlobalOpts,
    file: &str,
    reference: Option<&str>,
    changes: &[String],
    message: Option<&str>,
    platform: Option<&str>,
) -> anyhow::Result<i32> {
    let names = match reference {
        Some(r) => vec![Reference::parse(r)?],
        None => Vec::new(),
    };
    let mut config = serde_json::Map::new();
    crate::engine::image::change::apply(&mut config, changes)?;
    let platform = platform.map(Platform::parse).transpose()?;
    let store = open(g)?;
    let image = if file == "-" {
        store.import_rootfs(std::io::stdin(), "-", config.into(), message, platform.as_ref(), &names)?
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("cannot open {file}"))?;
        let r = std::io::BufReader::with_capacity(1 << 20, f);
        store.import_rootfs(r, file, config.into(), message, platform.as_ref(), &names)?
    };
    println!("{}", image.id);
    Ok(0)
}

// ---- inspect / history ----

/// Docker's `image inspect` document for `img`.
pub fn inspect_json(store: &ImageStore, img: &Image) -> serde_json::Value {
    let raw = &img.raw_config;
    let lower: Vec<String> = store.layer_dirs(img).iter().rev().map(|p| p.display().to_string()).collect();
    let mut v = serde_json::json!({
        "Id": img.id.to_string(),
        "RepoTags": img.names.iter().map(|n| n.familiar()).collect::<Vec<_>>(),
        "RepoDigests": img.repo_digests.iter().map(|d| familiar_digest(d)).collect::<Vec<_>>(),
        "Parent": "",
        "Comment": raw.get("comment").cloned().unwrap_or_else(|| "".into()),
        "Created": raw.get("created").cloned().unwrap_or_else(|| "".into()),
        "DockerVersion": raw.get("docker_version").cloned().unwrap_or_else(|| "".into()),
        "Author": raw.get("author").cloned().unwrap_or_else(|| "".into()),
        "Config": raw.get("config").cloned().unwrap_or(serde_json::Value::Null),
        "Architecture": raw.get("architecture").cloned().unwrap_or_else(|| "".into()),
        "Variant": raw.get("variant").cloned(),
        "Os": raw.get("os").cloned().unwrap_or_else(|| "".into()),
        "Size": img.size,
        "VirtualSize": img.size,
        "GraphDriver": {
            "Name": "overlay",
            "Data": {"LowerDir": lower.join(":")},
        },
        "RootFS": {
            "Type": "layers",
            "Layers": img.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
        },
        "Metadata": {"LastTagTime": img.added},
    });
    // Only on a damaged image (not a Docker field): why it cannot run, and how to repair it.
    if let Err(e) = store.check_layers(img) {
        v["Damaged"] = e.to_string().into();
    }
    v
}

fn inspect(g: &GlobalOpts, images: &[String], format: Option<&str>) -> anyhow::Result<i32> {
    let store = open(g)?;
    let mut docs = Vec::new();
    let mut code = 0;
    for r in images {
        match store.resolve(r)? {
            Some(img) => docs.push(inspect_json(&store, &img)),
            None => {
                eprintln!("Error: No such image: {r}");
                code = 1;
            }
        }
    }
    match format {
        Some(f) => {
            let t = Template::parse(f)?;
            for d in &docs {
                println!("{}", t.execute(&render::Row::new(d))?);
            }
        }
        None => {
            println!("{}", super::render::pretty4(&docs));
        }
    }
    Ok(code)
}

fn history(g: &GlobalOpts, image: &str, no_trunc: bool, quiet: bool, human: bool) -> anyhow::Result<i32> {
    let store = open(g)?;
    let img = store.require(image)?;
    let hist = img.raw_config.get("history").and_then(|h| h.as_array()).cloned().unwrap_or_default();
    let mut layers = img.layers.iter();
    let mut entries = Vec::new();
    for h in &hist {
        let empty = h.get("empty_layer").and_then(|e| e.as_bool()).unwrap_or(false);
        let size = if empty { 0 } else { layers.next().map(|l| store.layer_content_size(&l.chain_id).unwrap_or(l.size)).unwrap_or(0) };
        entries.push((h.clone(), size));
    }
    entries.reverse();
    let mut table = vec![["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"].iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    for (i, (h, size)) in entries.iter().enumerate() {
        let id = if i == 0 { if no_trunc { img.id.to_string() } else { img.id.short().to_string() } } else { "<missing>".into() };
        if quiet {
            println!("{id}");
            continue;
        }
        let created = h.get("created").and_then(|c| c.as_str()).unwrap_or("");
        let created = match chrono::DateTime::parse_from_rfc3339(created) {
            Ok(t) if human => format!("{} ago", units::since(t.to_utc(), chrono::Utc::now())),
            Ok(t) => t.to_rfc3339(),
            Err(_) => "N/A".into(),
        };
        let by = h.get("created_by").and_then(|c| c.as_str()).unwrap_or("").replace('\t', " ");
        let by = if no_trunc || by.chars().count() <= 45 { by } else { format!("{}…", by.chars().take(44).collect::<String>()) };
        let size = if human { human_size(*size) } else { size.to_string() };
        let comment = h.get("comment").and_then(|c| c.as_str()).unwrap_or("").to_string();
        table.push(vec![id, created, by, size, comment]);
    }
    if !quiet {
        std::io::stdout().lock().write_all(tabwriter::table(&table, Style::DOCKER).as_bytes())?;
    }
    Ok(0)
}

// ---- registry and archives ----

/// A runtime for the network commands (the CLI is otherwise synchronous).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

fn progress_mode(g: &GlobalOpts, quiet: bool) -> ProgressMode {
    if quiet {
        return ProgressMode::Quiet;
    }
    match g.progress {
        Some(super::Progress::Quiet) => ProgressMode::Quiet,
        Some(super::Progress::Plain) | Some(super::Progress::Json) => ProgressMode::Plain,
        Some(super::Progress::Tty) => ProgressMode::Tty,
        Some(super::Progress::Auto) | None => {
            if std::io::stdout().is_terminal() {
                ProgressMode::Tty
            } else {
                ProgressMode::Plain
            }
        }
    }
}

fn image_pull(g: &GlobalOpts, reference: &str, platform: Option<&str>, quiet: bool) -> anyhow::Result<i32> {
    let r = Reference::parse(reference)?;
    let opts = PullOptions {
        platform: platform.map(Platform::parse).transpose()?,
        insecure_registries: g.insecure_registries.clone(),
        ..PullOptions::default()
    };
    let store = open(g)?;
    let progress = Progress::new(progress_mode(g, quiet));
    runtime()?.block_on(crate::engine::image::pull(&store, &r, &opts, &progress))?;
    println!("{r}");
    Ok(0)
}

fn image_push(g: &GlobalOpts, reference: &str, quiet: bool) -> anyhow::Result<i32> {
    let r = Reference::parse(reference)?;
    let opts = PushOptions { insecure_registries: g.insecure_registries.clone() };
    let store = open(g)?;
    if store.resolve(&r.to_string())?.is_none() {
        bail!("An image does not exist locally with the tag: {}", r.familiar_name());
    }
    let progress = Progress::new(progress_mode(g, quiet));
    runtime()?.block_on(crate::engine::image::push(&store, &r, &opts, &progress))?;
    Ok(0)
}

fn compose_pull(g: &GlobalOpts, a: ComposePullArgs) -> anyhow::Result<i32> {
    use crate::engine::image::{PullItem, PullPolicy};
    let project = crate::project::load(&g.load_options())?;
    let wanted = crate::cli::compose::converge::services_and_dependencies(&project, &a.services, a.include_deps)?;
    let forced = a.policy.as_deref().map(PullPolicy::parse).transpose()?;
    let store = open(g)?;
    let mut items: Vec<PullItem> = Vec::new();
    let mut buildable = std::collections::HashSet::new();
    for name in &wanted {
        let svc = &project.services[name];
        let Some(image) = &svc.image else { continue };
        // As Docker Compose: --policy, else the service's pull_policy; unset pulls.
        let policy = match (forced, svc.pull_policy.as_deref()) {
            (Some(p), _) => Some(p),
            (None, Some(p)) => Some(PullPolicy::parse(&p.replace('-', "_")).with_context(|| format!("service {name}: pull_policy"))?),
            (None, None) => None,
        };
        let reference = Reference::parse(image).with_context(|| format!("service {name}: image"))?;
        match policy {
            Some(PullPolicy::Never) | Some(PullPolicy::Build) => continue,
            Some(PullPolicy::Missing) if store.resolve(&reference.to_string())?.is_some() => {
                eprintln!(" {name} Skipped - Image is already present locally");
                continue;
            }
            _ => {}
        }
        if svc.build.is_some() {
            buildable.insert(name.clone());
        }
        let platform = svc.platform.as_deref().map(Platform::parse).transpose().with_context(|| format!("service {name}: platform"))?;
        items.push(PullItem { label: name.clone(), reference, platform });
    }
    if g.dry_run {
        // Nothing is fetched: the lines compose prints for each pull, marked.
        for item in &items {
            eprintln!(" DRY-RUN MODE -  {} Pulling", item.label);
            eprintln!(" DRY-RUN MODE -  {} Pulled", item.label);
        }
        return Ok(0);
    }
    let mode = progress_mode(g, a.quiet);
    let progress = Progress::stderr(if mode == ProgressMode::Tty { ProgressMode::Plain } else { mode });
    let opts = PullOptions { insecure_registries: g.insecure_registries.clone(), ..PullOptions::default() };
    let results = runtime()?.block_on(crate::engine::image::pull_many(&store, &items, &opts, &progress));
    let mut failed = false;
    for (item, r) in items.iter().zip(results) {
        if let Err(e) = r {
            if a.ignore_pull_failures || buildable.contains(&item.label) {
                eprintln!("WARNING: service {} failed to pull {}: {e}", item.label, item.reference.familiar());
            } else {
                super::report::print(&anyhow::Error::from(e).context(format!(
                    "service {}: cannot pull {}",
                    item.label,
                    item.reference.familiar()
                )));
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

fn compose_push(g: &GlobalOpts, a: ComposePushArgs) -> anyhow::Result<i32> {
    let project = crate::project::load(&g.load_options())?;
    for s in &a.services {
        if !project.services.contains_key(s) {
            bail!("no such service: {s}");
        }
    }
    let store = open(g)?;
    let rt = runtime()?;
    let mode = progress_mode(g, a.quiet);
    let progress = Progress::stderr(if mode == ProgressMode::Tty { ProgressMode::Plain } else { mode });
    let opts = PushOptions { insecure_registries: g.insecure_registries.clone() };
    let mut failed = false;
    for (name, svc) in &project.services {
        if !a.services.is_empty() && !a.services.contains(name) {
            continue;
        }
        let Some(image) = &svc.image else { continue };
        let r = Reference::parse(image).with_context(|| format!("service {name}: image"))?;
        if g.dry_run {
            // Nothing is sent: the lines compose prints for each push, marked.
            eprintln!(" DRY-RUN MODE -  {name} Pushing");
            eprintln!(" DRY-RUN MODE -  {name} Pushed");
            continue;
        }
        progress.line(&format!(" {name} Pushing"));
        match rt.block_on(crate::engine::image::push(&store, &r, &opts, &Progress::new(ProgressMode::Quiet))) {
            Ok(_) => progress.line(&format!(" {name} Pushed")),
            Err(e) if a.ignore_push_failures => eprintln!("WARNING: service {name} failed to push {}: {e}", r.familiar()),
            Err(e) => {
                super::report::print(&anyhow::Error::from(e).context(format!("service {name}: cannot push {}", r.familiar())));
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// `docker.io` for no server or Docker Hub's names, else the host[:port] given.
fn registry_domain(server: Option<&str>) -> String {
    let s = server.unwrap_or("docker.io");
    let s = s.trim_start_matches("https://").trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        h => h.to_string(),
    }
}

fn login(g: &GlobalOpts, a: LoginArgs) -> anyhow::Result<i32> {
    let domain = registry_domain(a.server.as_deref());
    let username = match a.username {
        Some(u) => u,
        None => {
            if !std::io::stdin().is_terminal() {
                bail!("cannot perform an interactive login from a non TTY device: give --username");
            }
            eprint!("Username: ");
            let mut u = String::new();
            std::io::stdin().read_line(&mut u)?;
            u.trim().to_string()
        }
    };
    let password = if a.password_stdin {
        if a.password.is_some() {
            bail!("--password and --password-stdin are mutually exclusive");
        }
        let mut p = String::new();
        std::io::stdin().read_to_string(&mut p)?;
        p.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else {
        if !std::io::stdin().is_terminal() {
            bail!("cannot perform an interactive login from a non TTY device: give --password-stdin");
        }
        eprint!("Password: ");
        let mut p = String::new();
        std::io::stdin().read_line(&mut p)?;
        p.trim_end_matches(['\n', '\r']).to_string()
    };
    if username.is_empty() || password.is_empty() {
        bail!("a username and a password are required to log in to {domain}");
    }
    let creds = crate::engine::image::auth::Credentials::basic(username, password);
    let probe = Reference::parse(&format!("{domain}/berth-login-check")).or_else(|_| Reference::parse(&format!("{domain}/x")))?;
    let client = crate::engine::image::registry::Client::new(crate::engine::image::registry::ClientOptions {
        insecure_registries: g.insecure_registries.clone(),
        credentials: Some(creds.clone()),
    })?;
    runtime()?.block_on(client.ping(&probe)).with_context(|| format!("login to {domain} failed"))?;
    match crate::engine::image::auth::store(&domain, &creds)? {
        crate::engine::image::auth::Stored::File(path) => {
            eprintln!("WARNING! Your password will be stored unencrypted in {}.", path.display())
        }
        crate::engine::image::auth::Stored::Helper(_) => {}
    }
    println!("Login Succeeded");
    Ok(0)
}

fn logout(server: Option<String>) -> anyhow::Result<i32> {
    let domain = registry_domain(server.as_deref());
    let key = crate::engine::image::auth::auth_key(&domain);
    if crate::engine::image::auth::remove(&domain)? {
        println!("Removing login credentials for {key}");
    } else {
        println!("Not logged in to {key}");
    }
    Ok(0)
}

fn load(g: &GlobalOpts, input: Option<PathBuf>, quiet: bool) -> anyhow::Result<i32> {
    use crate::engine::image::archive::{self, Loaded};
    let store = open(g)?;
    let loaded = match input {
        Some(p) => {
            let f = std::fs::File::open(&p).with_context(|| format!("cannot open {}", p.display()))?;
            archive::load(&store, std::io::BufReader::with_capacity(1 << 20, f))?
        }
        None => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty: give -i FILE or pipe an archive in");
            }
            archive::load(&store, std::io::stdin())?
        }
    };
    if !quiet {
        for l in loaded {
            match l {
                Loaded::Name(n) => println!("Loaded image: {n}"),
                Loaded::Id(d) => println!("Loaded image ID: {d}"),
            }
        }
    }
    Ok(0)
}

fn save(g: &GlobalOpts, images: &[String], output: Option<PathBuf>) -> anyhow::Result<i32> {
    let store = open(g)?;
    let mut list = Vec::new();
    for r in images {
        let img = store.require(r)?;
        let name = Reference::parse_name_only(r).ok().filter(|n| img.names.iter().any(|m| m.name() == n.name()));
        let name = name.map(|n| if n.tag().is_none() && n.digest().is_none() { n } else { n.with_tag(n.tag().unwrap_or("latest")) });
        list.push((img, name));
    }
    match output {
        Some(path) => {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            let tmp =
                dir.join(format!(".{}.berth-save-{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("out"), std::process::id()));
            let f = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
            let result = crate::engine::image::archive::save(&store, &list, std::io::BufWriter::with_capacity(1 << 20, f))
                .map_err(anyhow::Error::from)
                .and_then(|mut w| {
                    w.flush()?;
                    Ok(())
                })
                .and_then(|_| std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display())));
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            let mut w = crate::engine::image::archive::save(&store, &list, out)?;
            w.flush()?;
        }
    }
    Ok(0)
}
