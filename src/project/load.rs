//! The loader: finds the files, the environment and the project name, runs the passes over
//! each file (parse, interpolate, include, extends, merge, validate, canonical) and builds the
//! typed [`Project`], then resolves environments, profiles and unused resources as Docker
//! Compose does before `config` prints.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{LoadError, Pos, Result};
use super::model::*;
use super::yaml::{Map, Node};
use super::{canonical, dotenv, extends, include, interpolate, merge, paths, typed, validate, yaml};
use crate::util::fs::FsError;

/// What to load, as the global options of the CLI say it.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `-f` files, in order; empty: `COMPOSE_FILE`, else discovery.
    pub files: Vec<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// `--project-directory`.
    pub project_directory: Option<PathBuf>,
    /// `--env-file` (repeatable); empty: the project directory's `.env`.
    pub env_files: Vec<PathBuf>,
    /// `--profile` (repeatable); `COMPOSE_PROFILES` is added.
    pub profiles: Vec<String>,
    /// `false` for `--no-interpolate`.
    pub interpolate: bool,
    /// The environment (the CLI passes the process environment; tests pass their own).
    pub environment: HashMap<String, String>,
    /// The directory relative paths on the command line start from (default: the current one).
    pub cwd: Option<PathBuf>,
}

/// Where a document comes from, for includes.
pub struct FileCtx {
    pub file: PathBuf,
    /// The include chain down to this file (for cycle detection).
    pub chain: Vec<PathBuf>,
}

/// The state of one load: the environment used for interpolation and the warnings.
pub struct Loader {
    env: HashMap<String, String>,
    interpolate: bool,
    pub warnings: Vec<String>,
    /// Compose files read so far (extends of the same file are read once).
    cache: HashMap<PathBuf, Vec<Node>>,
    /// What interpolation may still insert in this load.
    budget: interpolate::Budget,
    skip: Skip,
}

impl Loader {
    pub fn home(&self) -> Option<&str> {
        self.env.get("HOME").map(String::as_str)
    }

    fn read_docs(&mut self, file: &Path) -> Result<Vec<Node>> {
        if let Some(d) = self.cache.get(file) {
            return Ok(d.clone());
        }
        let text = if file == Path::new("-") {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| LoadError::Fs(FsError::io("read compose file from", Path::new("standard input"), e)))?;
            s
        } else {
            match std::fs::metadata(file) {
                Ok(md) if md.is_dir() => {
                    return Err(LoadError::file(file, "is a directory; give a compose file (such as compose.yaml) with -f"));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(LoadError::file(file, "no such file: check the path given with -f or COMPOSE_FILE"));
                }
                _ => {}
            }
            let bytes = std::fs::read(file).map_err(|e| LoadError::Fs(FsError::io("read compose file", file, e)))?;
            String::from_utf8(bytes).map_err(|_| LoadError::file(file, "is not UTF-8 text"))?
        };
        let docs = yaml::parse(&text, &Arc::new(file.to_path_buf()))?;
        self.cache.insert(file.to_path_buf(), docs.clone());
        Ok(docs)
    }

    fn interpolate_doc(&mut self, doc: &mut Node) -> Result<()> {
        if !self.interpolate {
            return Ok(());
        }
        let mut e = interpolate::Env::new(&self.env, &mut self.budget);
        interpolate::interpolate(doc, "", &mut e)?;
        for v in e.unset {
            let w = format!("The {v:?} variable is not set. Defaulting to a blank string.");
            if !self.warnings.contains(&w) {
                self.warnings.push(w);
            }
        }
        Ok(())
    }

    /// Passes 1-7 for one file: its documents, merged into `acc`.
    fn load_file(&mut self, file: &Path, base: &Path, acc: &mut Option<Node>, chain: &[PathBuf]) -> Result<()> {
        let docs = self.read_docs(file)?;
        for mut doc in docs {
            if doc.is_null() {
                continue;
            }
            if doc.as_map().is_none() {
                return Err(LoadError::at(&doc.pos, "", format!("the top level must be a mapping, not {}", doc.kind())));
            }
            self.interpolate_doc(&mut doc)?;
            let mut ch = chain.to_vec();
            ch.push(file.to_path_buf());
            let ctx = FileCtx { file: file.to_path_buf(), chain: ch };
            validate::validate_document(&doc)?;
            include::apply(self, &mut doc, &ctx)?;
            if let Some(m) = doc.as_map_mut() {
                if m.remove("version").is_some() {
                    let w = format!(
                        "{}: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion",
                        file.display()
                    );
                    if !self.warnings.contains(&w) {
                        self.warnings.push(w);
                    }
                }
            }
            canonical::canonical_with(&mut doc, !self.interpolate)?;
            merge::enforce_unicity(&mut doc);
            extends::apply(self, &mut doc, file)?;
            if !self.skip.path_resolution {
                paths::resolve(&mut doc, base, self.home());
            }
            match acc {
                None => {
                    merge::strip_tags(&mut doc);
                    *acc = Some(doc);
                }
                Some(a) => merge::merge(a, doc, &mut Vec::new())?,
            }
        }
        Ok(())
    }

    /// A file named by `extends.file`: parsed, interpolated and made canonical (not merged).
    pub(crate) fn load_for_extends(&mut self, file: &Path, pos: &Pos, key: &str) -> Result<Node> {
        let docs = self.read_docs(file).map_err(|e| match e {
            LoadError::Invalid(d) if d.pos.line == 0 => LoadError::at(pos, key, format!("cannot read {}: {}", file.display(), d.msg)),
            other => other,
        })?;
        let mut out: Option<Node> = None;
        for mut doc in docs {
            if doc.is_null() {
                continue;
            }
            self.interpolate_doc(&mut doc)?;
            validate::validate_document(&doc)?;
            canonical::canonical_with(&mut doc, !self.interpolate)?;
            match &mut out {
                None => out = Some(doc),
                Some(a) => merge::merge(a, doc, &mut Vec::new())?,
            }
        }
        out.ok_or_else(|| LoadError::at(pos, key, format!("{} is empty", file.display())))
    }

    /// An included project: its files loaded against its own project directory, with its own
    /// env files added to the environment.
    pub(crate) fn load_included(
        &mut self,
        files: &[PathBuf],
        project_dir: &Path,
        env_files: &[PathBuf],
        chain: &[PathBuf],
    ) -> Result<Node> {
        let saved = self.env.clone();
        let env_files: Vec<PathBuf> = if env_files.is_empty() {
            let d = project_dir.join(".env");
            if d.is_file() { vec![d] } else { vec![] }
        } else {
            env_files.to_vec()
        };
        for f in &env_files {
            for (k, v) in dotenv::read(f, &self.env, &mut self.budget)? {
                self.env.entry(k).or_insert(v);
            }
        }
        let mut acc = None;
        let r = (|| {
            for f in files {
                self.load_file(f, project_dir, &mut acc, chain)?;
            }
            let mut doc = acc.unwrap_or_else(|| Node::map(Map::default(), Pos::default()));
            paths::default_contexts(&mut doc, project_dir);
            Ok(doc)
        })();
        self.env = saved;
        r
    }
}

/// The compose file names looked for, in order, and their override files.
pub(crate) const DEFAULT_FILES: [&str; 4] = ["compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"];
pub(crate) const OVERRIDE_FILES: [&str; 4] =
    ["compose.override.yaml", "compose.override.yml", "docker-compose.override.yaml", "docker-compose.override.yml"];

/// Finds the compose file (and its override) in `dir` or the nearest parent that has one.
pub fn discover(dir: &Path) -> Option<Vec<PathBuf>> {
    let mut d = Some(dir);
    while let Some(cur) = d {
        if let Some(f) = DEFAULT_FILES.iter().map(|n| cur.join(n)).find(|p| p.is_file()) {
            let mut out = vec![f];
            if let Some(o) = OVERRIDE_FILES.iter().map(|n| cur.join(n)).find(|p| p.is_file()) {
                out.push(o);
            }
            return Some(out);
        }
        d = cur.parent();
    }
    None
}

/// Normalizes a project name as compose does: lowercase, only `a-z0-9_-`, starting with a
/// letter or digit.
pub fn normalize_project_name(s: &str) -> String {
    let lower: String =
        s.to_lowercase().chars().filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-').collect();
    lower.trim_start_matches(['_', '-']).to_string()
}

/// Compose's words for a project name it refuses, then what to do: `fix` says where to put a
/// valid one ("pass -p"), and a valid name close to the given one is suggested.
pub fn invalid_project_name(name: &str, fix: &str) -> String {
    let close = normalize_project_name(name);
    let example = if close.is_empty() { String::new() } else { format!(" such as {close:?}") };
    format!(
        "invalid project name {name:?}: must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as \
         start with a letter or number; {fix} a valid name{example}"
    )
}

fn check_project_name(name: &str, fix: &str) -> Result<()> {
    if name.is_empty() || normalize_project_name(name) != name {
        return Err(LoadError::project(invalid_project_name(name, fix)));
    }
    Ok(())
}

/// What `config`'s `--no-path-resolution`, `--no-normalize` and `--no-consistency` leave out of a
/// load; the default leaves out nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Skip {
    /// Relative paths stay as written.
    pub path_resolution: bool,
    /// No default network, resource names or Dockerfile, no implicit dependencies.
    pub normalize: bool,
    /// References to undefined services, networks, volumes... are not checked.
    pub consistency: bool,
}

/// The files loaded and merged, before the typed model: the first half of [`load`], shared with
/// [`load_model`].
struct Merged {
    loader: Loader,
    files: Vec<PathBuf>,
    env_files: Vec<PathBuf>,
    working_dir: PathBuf,
    root: Map,
    name: String,
}

fn merged(opts: &LoadOptions, skip: Skip) -> Result<Merged> {
    let cwd = match &opts.cwd {
        Some(c) => c.clone(),
        None => std::env::current_dir().map_err(|e| LoadError::Fs(FsError::io("read the current directory", Path::new("."), e)))?,
    };
    let mut env = opts.environment.clone();
    // The project directory for finding `.env`: --project-directory, else the first file's.
    let early_files: Vec<PathBuf> =
        opts.files.iter().map(|f| if f == Path::new("-") { f.clone() } else { paths::absolute(f, &cwd) }).collect();
    let env_dir = match &opts.project_directory {
        Some(d) => paths::absolute(d, &cwd),
        None => {
            early_files.iter().find(|f| *f != Path::new("-")).and_then(|f| f.parent().map(Path::to_path_buf)).unwrap_or_else(|| cwd.clone())
        }
    };
    let env_files: Vec<PathBuf> = if !opts.env_files.is_empty() {
        opts.env_files.iter().map(|f| paths::absolute(f, &cwd)).collect()
    } else {
        let disabled = env.get("COMPOSE_DISABLE_ENV_FILE").is_some_and(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "True"));
        let d = env_dir.join(".env");
        if !disabled && d.is_file() { vec![d] } else { vec![] }
    };
    let mut budget = interpolate::Budget::default();
    let mut from_files: HashMap<String, String> = HashMap::new();
    for f in &env_files {
        if f.is_dir() {
            return Err(LoadError::file(f, "is a directory; --env-file needs a file"));
        }
        let vars = dotenv::read(f, &interpolate::Layered(&env, &from_files), &mut budget)?;
        from_files.extend(vars);
    }
    for (k, v) in from_files {
        env.entry(k).or_insert(v);
    }

    // The files: -f, then COMPOSE_FILE, then discovery.
    let files: Vec<PathBuf> = if !early_files.is_empty() {
        early_files
    } else if let Some(cf) = env.get("COMPOSE_FILE").filter(|v| !v.is_empty()) {
        let sep = env.get("COMPOSE_PATH_SEPARATOR").filter(|s| !s.is_empty()).cloned().unwrap_or_else(|| ":".into());
        cf.split(sep.as_str()).filter(|s| !s.is_empty()).map(|f| paths::absolute(Path::new(f), &env_dir)).collect()
    } else {
        let start = opts.project_directory.as_ref().map(|d| paths::absolute(d, &cwd)).unwrap_or_else(|| cwd.clone());
        discover(&start).ok_or(LoadError::NoConfigFile(start))?
    };
    let working_dir = match &opts.project_directory {
        Some(d) => paths::absolute(d, &cwd),
        None => files.iter().find(|f| *f != Path::new("-")).and_then(|f| f.parent().map(Path::to_path_buf)).unwrap_or_else(|| cwd.clone()),
    };

    let mut loader = Loader { env, interpolate: opts.interpolate, warnings: Vec::new(), cache: HashMap::new(), budget, skip };
    let mut acc: Option<Node> = None;
    for f in &files {
        loader.load_file(f, &working_dir, &mut acc, &[])?;
    }
    let doc = match acc {
        Some(d) if d.as_map().is_some_and(|m| !m.is_empty()) => d,
        _ => return Err(LoadError::file(&files[0], "empty compose file: define at least one service")),
    };
    let root = doc.as_map().cloned().unwrap_or_default();

    // The project name: -p, COMPOSE_PROJECT_NAME, `name:`, the directory's name.
    let name = if let Some(p) = &opts.project_name {
        check_project_name(p, "pass -p")?;
        p.clone()
    } else if let Some(p) = loader.env.get("COMPOSE_PROJECT_NAME").filter(|p| !p.is_empty()) {
        // As compose: taken as given (never normalized), so checked as -p is.
        check_project_name(p, "set COMPOSE_PROJECT_NAME to")?;
        p.clone()
    } else if let Some(n) = root.get("name").and_then(Node::scalar_string).filter(|n| !n.is_empty()) {
        let n2 = normalize_project_name(&n);
        check_project_name(&n2, "give the top-level name:")?;
        n2
    } else {
        let base = working_dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let n = normalize_project_name(&base);
        if n.is_empty() {
            return Err(LoadError::project(format!(
                "cannot derive a project name from the folder {}: give one with -p or a top-level name:",
                working_dir.display()
            )));
        }
        n
    };

    Ok(Merged { loader, files, env_files, working_dir, root, name })
}

/// The merged model of a project, not interpolated, as compose's `config --no-interpolate` (and
/// `--variables`) read it: every file parsed, included, extended, merged and made canonical where
/// a value does not hold a `${...}`, paths resolved, then the project name, default network and
/// resource names added (unless `skip.normalize`). No typed model is built, so a value such as
/// `cpus: ${CPUS}` is never checked. Keys come out sorted, as compose prints this model.
pub fn load_model(opts: &LoadOptions, skip: Skip) -> Result<serde_json::Value> {
    let mut opts = opts.clone();
    opts.interpolate = false;
    let Merged { root, name, loader, .. } = merged(&opts, skip)?;
    for w in &loader.warnings {
        eprintln!("WARN[0000] {w}");
    }
    let mut doc = typed::to_json(&Node::map(root, Pos::default()));
    if let serde_json::Value::Object(m) = &mut doc {
        m.insert("name".into(), name.clone().into());
        if !skip.normalize {
            normalize_model(m, &name);
        }
    }
    Ok(doc)
}

/// What compose's normalization adds to a model: each service's default network and Dockerfile,
/// the default network itself, and the names of resources.
fn normalize_model(m: &mut serde_json::Map<String, serde_json::Value>, project: &str) {
    use serde_json::{Value as J, json};
    let mut uses_default = false;
    if let Some(J::Object(svcs)) = m.get_mut("services") {
        for (_, s) in svcs.iter_mut() {
            let J::Object(s) = s else { continue };
            if !s.contains_key("network_mode") && !s.contains_key("provider") && !s.contains_key("networks") {
                s.insert("networks".into(), json!({"default": null}));
            }
            uses_default |= s.get("networks").and_then(J::as_object).is_some_and(|n| n.contains_key("default"));
            if let Some(J::Object(b)) = s.get_mut("build") {
                if !b.contains_key("dockerfile") && !b.contains_key("dockerfile_inline") {
                    b.insert("dockerfile".into(), "Dockerfile".into());
                }
            }
        }
    }
    if uses_default {
        let nets = m.entry("networks").or_insert_with(|| json!({}));
        if let J::Object(n) = nets {
            n.entry("default").or_insert_with(|| json!({}));
        }
    }
    for top in ["networks", "volumes", "secrets", "configs"] {
        let Some(J::Object(res)) = m.get_mut(top) else { continue };
        for (k, r) in res.iter_mut() {
            if r.is_null() {
                *r = json!({});
            }
            let J::Object(r) = r else { continue };
            if !r.contains_key("name") {
                let external = r.get("external").is_some_and(|e| e.as_bool() == Some(true) || e.is_object());
                let n = if external { k.clone() } else { format!("{project}_{k}") };
                r.insert("name".into(), n.into());
            }
        }
    }
}

/// Loads the project.
pub fn load(opts: &LoadOptions) -> Result<Project> {
    load_with(opts, Skip::default())
}

/// Loads the project, leaving out what `skip` says.
pub fn load_with(opts: &LoadOptions, skip: Skip) -> Result<Project> {
    let Merged { mut loader, files, env_files, working_dir, root, name } = merged(opts, skip)?;
    let mut project = Project {
        name: name.clone(),
        working_dir: working_dir.clone(),
        config_files: files.clone(),
        env_files,
        environment: loader.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ..Default::default()
    };

    // Typed model.
    if let Some(svcs) = root.get("services") {
        let Some(sm) = svcs.as_map() else {
            return Err(LoadError::at(&svcs.pos, "services", "must be a mapping"));
        };
        for (k, v) in sm.iter() {
            let mut s = typed::service(k, v)?;
            if skip.normalize {
                // the Dockerfile only where the file names one
                let given = v.as_map().and_then(|m| m.get("build")).and_then(Node::as_map).is_some_and(|b| b.contains("dockerfile"));
                if let Some(b) = s.build.as_mut().filter(|_| !given) {
                    b.dockerfile = None;
                }
            } else {
                normalize_service(&mut s);
            }
            if let Some(b) = &mut s.build {
                if b.context.is_empty() {
                    b.context = if skip.path_resolution { ".".into() } else { working_dir.display().to_string() };
                }
            }
            project.services.insert(k.to_string(), s);
        }
    }
    let uses_default = project.services.values().any(|s| s.networks.contains_key("default"));
    if let Some(n) = root.get("networks").and_then(Node::as_map) {
        for (k, v) in n.iter() {
            project.networks.insert(k.to_string(), typed::network(k, v, &name)?);
        }
    }
    if uses_default && !project.networks.contains_key("default") {
        project.networks.insert("default".into(), typed::network("default", &Node::null(Pos::default()), &name)?);
    }
    if let Some(n) = root.get("volumes").and_then(Node::as_map) {
        for (k, v) in n.iter() {
            project.volumes.insert(k.to_string(), typed::volume(k, v, &name)?);
        }
    }
    for (top, dest) in [("secrets", &mut project.secrets), ("configs", &mut project.configs)] {
        if let Some(n) = root.get(top).and_then(Node::as_map) {
            for (k, v) in n.iter() {
                dest.insert(k.to_string(), typed::file_object(top, k, v, &name)?);
            }
        }
    }
    if let Some(n) = root.get("models").and_then(Node::as_map) {
        for (k, v) in n.iter() {
            project.models.insert(k.to_string(), typed::to_json(v));
        }
    }
    for (k, v) in root.iter() {
        if k.starts_with("x-") {
            project.extensions.insert(k.to_string(), typed::to_json(v));
        }
    }

    if skip.normalize {
        // resource names only where the file gives them
        let named = |top: &str, k: &str| {
            root.get(top).and_then(Node::as_map).and_then(|m| m.get(k)).and_then(Node::as_map).is_some_and(|r| r.contains("name"))
        };
        project.networks.iter_mut().filter(|(k, _)| !named("networks", k)).for_each(|(_, n)| n.name.clear());
        project.volumes.iter_mut().filter(|(k, _)| !named("volumes", k)).for_each(|(_, v)| v.name.clear());
        project.secrets.iter_mut().filter(|(k, _)| !named("secrets", k)).for_each(|(_, v)| v.name.clear());
        project.configs.iter_mut().filter(|(k, _)| !named("configs", k)).for_each(|(_, v)| v.name.clear());
    }
    if !skip.consistency {
        validate::check_project(&project, &root)?;
    }

    // Profiles.
    let mut profiles = opts.profiles.clone();
    if profiles.is_empty() {
        if let Some(p) = project.environment.get("COMPOSE_PROFILES") {
            profiles.extend(p.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string));
        }
    }
    let all = profiles.iter().any(|p| p == "*");
    let names: Vec<String> = project.services.keys().cloned().collect();
    for n in names {
        let enabled = {
            let s = &project.services[&n];
            s.profiles.is_empty() || all || s.profiles.iter().any(|p| profiles.contains(p))
        };
        if !enabled {
            if let Some(s) = project.services.remove(&n) {
                project.disabled_services.insert(n, s);
            }
        }
    }
    project.profiles = profiles;

    // Environment: env_file contents, then `environment`, unset values looked up.
    for s in project.services.values_mut() {
        resolve_environment(s, &root, &loader.env, &mut loader.budget)?;
    }
    drop_unused_resources(&mut project);
    super::graph::DepGraph::from_project(&project).check_cycles()?;
    project.warnings = loader.warnings;
    Ok(project)
}

/// Implicit dependencies (links, `service:` namespaces, volumes_from) and default network.
fn normalize_service(s: &mut Service) {
    for l in &s.links {
        let target = l.split(':').next().unwrap_or(l).to_string();
        s.depends_on.entry(target).or_insert(Dependency { condition: Condition::Started, restart: true, required: true });
    }
    let namespaces = [&s.network_mode, &s.ipc, &s.pid, &s.uts, &s.cgroup];
    let shared: Vec<String> = namespaces.iter().filter_map(|n| n.as_deref()?.strip_prefix("service:").map(str::to_string)).collect();
    for t in shared {
        s.depends_on.entry(t).or_insert(Dependency { condition: Condition::Started, restart: true, required: true });
    }
    for v in &s.volumes_from {
        if v.starts_with("container:") {
            continue;
        }
        let t = v.split(':').next().unwrap_or(v).to_string();
        s.depends_on.entry(t).or_insert(Dependency { condition: Condition::Started, restart: false, required: true });
    }
    if s.network_mode.is_none() && s.provider.is_none() && s.networks.is_empty() {
        s.networks.insert("default".into(), None);
    }
}

fn resolve_environment(s: &mut Service, root: &Map, env: &HashMap<String, String>, budget: &mut interpolate::Budget) -> Result<()> {
    let svc_node = root.get("services").and_then(Node::as_map).and_then(|m| m.get(&s.name));
    let env_files = svc_node.and_then(Node::as_map).and_then(|m| m.get("env_file")).and_then(Node::as_seq).cloned().unwrap_or_default();
    let mut resolved: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (i, ef) in env_files.iter().enumerate() {
        let Some(m) = ef.as_map() else { continue };
        let r = typed::R::new(m, format!("services.{}.env_file[{i}]", s.name));
        let Some(path) = r.str("path")? else { continue };
        let required = r.bool("required")?.unwrap_or(true);
        let p = PathBuf::from(&path);
        if !p.exists() {
            if required {
                return Err(LoadError::at(
                    &ef.pos,
                    format!("services.{}.env_file", s.name),
                    format!("env file {path} not found: stat {path}: no such file or directory"),
                ));
            }
            continue;
        }
        let vars = dotenv::read(&p, &interpolate::Layered(env, &resolved), budget)?;
        for (k, v) in vars {
            resolved.insert(k, Some(v));
        }
    }
    for (k, v) in std::mem::take(&mut s.environment) {
        match v {
            Some(v) => {
                resolved.insert(k, Some(v));
            }
            None => match env.get(&k) {
                Some(ev) => {
                    resolved.insert(k, Some(ev.clone()));
                }
                None => {
                    resolved.entry(k).or_insert(None);
                }
            },
        }
    }
    s.environment = resolved;
    if let Some(b) = &mut s.build {
        let args = std::mem::take(&mut b.args);
        for (k, v) in args {
            match v {
                Some(v) => {
                    b.args.insert(k, Some(v));
                }
                None => {
                    if let Some(ev) = env.get(&k) {
                        b.args.insert(k, Some(ev.clone()));
                    }
                }
            }
        }
    }
    Ok(())
}

fn drop_unused_resources(p: &mut Project) {
    let mut nets = std::collections::BTreeSet::new();
    let mut vols = std::collections::BTreeSet::new();
    let mut secrets = std::collections::BTreeSet::new();
    let mut configs = std::collections::BTreeSet::new();
    for s in p.services.values() {
        nets.extend(s.networks.keys().cloned());
        for v in &s.volumes {
            if v.kind == "volume" {
                if let Some(src) = &v.source {
                    vols.insert(src.clone());
                }
            }
        }
        secrets.extend(s.secrets.iter().map(|x| x.source.clone()));
        if let Some(b) = &s.build {
            secrets.extend(b.secrets.iter().map(|x| x.source.clone()));
        }
        configs.extend(s.configs.iter().map(|x| x.source.clone()));
    }
    p.networks.retain(|k, _| nets.contains(k));
    p.volumes.retain(|k, _| vols.contains(k));
    p.secrets.retain(|k, _| secrets.contains(k));
    p.configs.retain(|k, _| configs.contains(k));
}
