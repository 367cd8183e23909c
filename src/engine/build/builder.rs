//! The build itself: stages in order (only those the target needs), each instruction applied to
//! the stage's state (layers, config, history), filesystem steps looked up in the cache first,
//! and the result recorded as an image in the store.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::cache::{self, Cache};
use super::copy::{self, HashCache, Source, SourceTree};
use super::dockerfile::{self, Command, CopySpec, Dockerfile, Instruction, Kind, Stage, VolumeArgs};
use super::error::{BuildError, Result};
use super::fstree::Tree;
use super::ignore::Ignore;
use super::progress::{Printer, Vertex};
use super::shell;
use crate::engine::image::{Digest, Image, ImageStore, Layer, Platform, PullOptions, Reference};

/// The build arguments every Dockerfile may use without declaring them; they are left out of
/// the image's history.
const PROXY_ARGS: &[&str] =
    &["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"];

/// The PATH Docker gives a stage whose base sets none.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the Dockerfile comes from.
#[derive(Clone, Debug)]
pub enum DockerfileSource {
    /// A path (relative ones are relative to the context).
    Path(PathBuf),
    /// The text itself (compose `dockerfile_inline`).
    Inline(String),
}

/// One image to build.
#[derive(Clone, Debug)]
pub struct BuildRequest {
    /// The context directory.
    pub context: PathBuf,
    pub dockerfile: DockerfileSource,
    /// Build arguments (compose `args` and `--build-arg`).
    pub args: BTreeMap<String, String>,
    pub target: Option<String>,
    /// Labels added to the image (compose `labels`, and compose's own).
    pub labels: BTreeMap<String, String>,
    /// The names the image gets.
    pub tags: Vec<Reference>,
    /// The network RUN steps use: `default` (a bridge), `host` or `none`.
    pub network: Option<String>,
    pub no_cache: bool,
    /// Pull every base image even when it is in the store.
    pub pull: bool,
    /// Shown in front of every step (the service name).
    pub label: Option<String>,
    pub insecure_registries: Vec<String>,
    /// Limits and /etc/hosts entries for RUN containers (`--memory`, `build.shm_size`,
    /// `build.extra_hosts`).
    pub memory: Option<i64>,
    pub shm_size: Option<u64>,
    pub extra_hosts: Vec<String>,
    /// Build secrets by id (`RUN --mount=type=secret,id=...`), their content.
    pub secrets: BTreeMap<String, Vec<u8>>,
}

impl BuildRequest {
    pub fn new(context: impl Into<PathBuf>) -> BuildRequest {
        BuildRequest {
            context: context.into(),
            dockerfile: DockerfileSource::Path(PathBuf::from("Dockerfile")),
            args: BTreeMap::new(),
            target: None,
            labels: BTreeMap::new(),
            tags: Vec::new(),
            network: None,
            no_cache: false,
            pull: false,
            label: None,
            insecure_registries: Vec::new(),
            memory: None,
            shm_size: None,
            extra_hosts: Vec::new(),
            secrets: BTreeMap::new(),
        }
    }
}

/// What a build gives.
#[derive(Debug)]
pub struct BuildOutput {
    pub image: Image,
    /// True when every step came from the cache.
    pub all_cached: bool,
    pub warnings: Vec<String>,
}

/// A stage's state between instructions.
#[derive(Clone, Debug)]
pub(crate) struct State {
    pub layers: Vec<Layer>,
    /// The config section (Docker's capitalized keys).
    pub config: Map<String, Value>,
    pub history: Vec<Value>,
    /// The cache key of the last filesystem state.
    pub key: Digest,
    /// The time of the last history entry (config-only steps reuse it, so that a cached build
    /// gives the same image id).
    pub created: String,
    pub author: Option<String>,
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl State {
    fn scratch() -> State {
        let host = Platform::host();
        let mut config = Map::new();
        config.insert("Env".into(), json!([DEFAULT_PATH]));
        State {
            layers: Vec::new(),
            config,
            history: Vec::new(),
            key: cache::key(&json!({"from": "scratch"})),
            created: "1970-01-01T00:00:00Z".into(),
            author: None,
            os: host.os,
            architecture: host.architecture,
            variant: host.variant,
        }
    }

    fn from_image(img: &Image) -> State {
        let raw = &img.raw_config;
        let mut config = raw.get("config").and_then(|c| c.as_object()).cloned().unwrap_or_default();
        let has_path = config
            .get("Env")
            .and_then(|e| e.as_array())
            .is_some_and(|a| a.iter().any(|v| v.as_str().is_some_and(|s| s.starts_with("PATH="))));
        if !has_path {
            let mut env = config.get("Env").and_then(|e| e.as_array()).cloned().unwrap_or_default();
            env.insert(0, json!(DEFAULT_PATH));
            config.insert("Env".into(), Value::Array(env));
        }
        // ONBUILD triggers of the base are not run (the builder warns) nor passed on.
        config.remove("OnBuild");
        let host = Platform::host();
        State {
            layers: img.layers.clone(),
            config,
            history: raw.get("history").and_then(|h| h.as_array()).cloned().unwrap_or_default(),
            key: cache::key(&json!({"from": img.id.to_string()})),
            created: raw.get("created").and_then(|c| c.as_str()).unwrap_or("1970-01-01T00:00:00Z").to_string(),
            author: raw.get("author").and_then(|a| a.as_str()).map(str::to_string),
            os: raw.get("os").and_then(|v| v.as_str()).unwrap_or(&host.os).to_string(),
            architecture: raw.get("architecture").and_then(|v| v.as_str()).unwrap_or(&host.architecture).to_string(),
            variant: raw.get("variant").and_then(|v| v.as_str()).map(str::to_string),
        }
    }

    pub fn env(&self) -> Vec<String> {
        self.config
            .get("Env")
            .and_then(|e| e.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }
    pub fn env_get(&self, name: &str) -> Option<String> {
        self.env().into_iter().find_map(|e| e.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
    }
    fn env_set(&mut self, name: &str, value: &str) {
        let mut env = self.env();
        let item = format!("{name}={value}");
        match env.iter_mut().find(|e| e.split_once('=').map(|(k, _)| k) == Some(name) || e.as_str() == name) {
            Some(e) => *e = item,
            None => env.push(item),
        }
        self.config.insert("Env".into(), json!(env));
    }
    pub fn str(&self, key: &str) -> String {
        self.config.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_string()
    }
    fn shell(&self) -> Vec<String> {
        self.config
            .get("Shell")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect::<Vec<_>>())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }
    /// The config that changes what a filesystem step does (part of its cache key).
    fn fs_config(&self) -> Value {
        json!({"env": self.env(), "user": self.str("User"), "workdir": self.str("WorkingDir"), "shell": self.config.get("Shell")})
    }
    fn history(&mut self, created_by: String, empty: bool) {
        let mut h = json!({"created": self.created, "created_by": created_by, "comment": "berth.dockerfile.v0"});
        if empty {
            h["empty_layer"] = json!(true);
        }
        self.history.push(h);
    }
}

pub(crate) struct Builder<'a> {
    pub store: &'a ImageStore,
    pub req: &'a BuildRequest,
    pub out: &'a mut Printer,
    pub df: Dockerfile,
    context: Tree,
    ignore: Ignore,
    cache: Cache,
    hashes: HashCache,
    /// Meta ARG values (before the first FROM).
    meta: BTreeMap<String, Option<String>>,
    used_args: HashSet<String>,
    results: BTreeMap<usize, State>,
    runtime: Option<tokio::runtime::Runtime>,
    now: chrono::DateTime<chrono::Utc>,
    all_cached: bool,
    warnings: Vec<String>,
    /// The lock of the step being run since its cache miss, until [`Builder::commit`].
    step_lock: Option<crate::util::lock::FileLock>,
}

/// Builds the image `req` asks for and records it in `store`.
pub fn build(store: &ImageStore, req: &BuildRequest, out: &mut Printer) -> Result<BuildOutput> {
    let context_path = &req.context;
    match std::fs::metadata(context_path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(BuildError::Context { path: context_path.clone(), reason: "it is a file; give a directory".into() }),
        Err(e) => return Err(BuildError::Context { path: context_path.clone(), reason: e.to_string() }),
    }
    let prefix = req.label.clone().map(|l| format!("{l} ")).unwrap_or_default();
    let (name, text) = match &req.dockerfile {
        DockerfileSource::Inline(t) => ("Dockerfile".to_string(), t.clone()),
        DockerfileSource::Path(p) => {
            let path = if p.is_absolute() { p.clone() } else { context_path.join(p) };
            let v = out.begin(format!("[{prefix}internal] load build definition from {}", p.display()));
            let text = std::fs::read_to_string(&path).map_err(|e| BuildError::Dockerfile { path: path.clone(), reason: e.to_string() })?;
            out.info(&v, &format!("transferring dockerfile: {}B done", text.len()));
            out.done(v);
            (p.display().to_string(), text)
        }
    };
    let df = dockerfile::parse(&name, &text)?;
    let context = Tree::context(context_path).map_err(|e| BuildError::Context { path: context_path.clone(), reason: e.to_string() })?;
    // `<Dockerfile>.dockerignore` beside the Dockerfile wins over the context's `.dockerignore`.
    let v = out.begin(format!("[{prefix}internal] load .dockerignore"));
    let own = match &req.dockerfile {
        DockerfileSource::Path(p) => {
            let path = if p.is_absolute() { p.clone() } else { context_path.join(p) };
            let mut s = path.into_os_string();
            s.push(".dockerignore");
            std::fs::read(PathBuf::from(s)).ok()
        }
        DockerfileSource::Inline(_) => None,
    };
    let ignore_text = own.or_else(|| context.read(".dockerignore")).unwrap_or_default();
    out.info(&v, &format!("transferring context: {}B done", ignore_text.len()));
    out.done(v);
    let ignore = Ignore::parse(&String::from_utf8_lossy(&ignore_text));
    let root = store.state_root().clone();
    let cache = Cache::open(&root)?;
    let canon = std::fs::canonicalize(context_path).unwrap_or_else(|_| context_path.clone());
    let hashes = HashCache::load(
        cache::build_dir(&root).join("hashes").join(format!("{}.json", Digest::of(canon.as_os_str().as_encoded_bytes()).hex())),
    );
    let mut b = Builder {
        store,
        req,
        out,
        df,
        context,
        ignore,
        cache,
        hashes,
        meta: BTreeMap::new(),
        used_args: HashSet::new(),
        results: BTreeMap::new(),
        runtime: None,
        now: chrono::Utc::now(),
        all_cached: true,
        warnings: Vec::new(),
        step_lock: None,
    };
    let _guard = store.writer_guard()?;
    let result = b.run();
    if let Err(e) = &result {
        b.out.abort(&e.to_string());
    }
    b.hashes.save();
    let image = result?;
    Ok(BuildOutput { image, all_cached: b.all_cached, warnings: b.warnings })
}

impl Builder<'_> {
    fn err(&self, line: usize, msg: impl Into<String>) -> BuildError {
        BuildError::Step { file: self.df.file.clone(), line, msg: msg.into() }
    }
    fn failed(&self, line: usize, what: impl Into<String>, e: impl std::error::Error + Send + Sync + 'static) -> BuildError {
        BuildError::StepFailed { file: self.df.file.clone(), line, what: what.into(), source: Box::new(e) }
    }

    fn platform_args() -> BTreeMap<String, String> {
        let h = Platform::host();
        let plat = match &h.variant {
            Some(v) => format!("{}/{}/{v}", h.os, h.architecture),
            None => format!("{}/{}", h.os, h.architecture),
        };
        let mut m = BTreeMap::new();
        for p in ["BUILD", "TARGET"] {
            m.insert(format!("{p}PLATFORM"), plat.clone());
            m.insert(format!("{p}OS"), h.os.clone());
            m.insert(format!("{p}ARCH"), h.architecture.clone());
            m.insert(format!("{p}VARIANT"), h.variant.clone().unwrap_or_default());
        }
        m
    }

    fn meta_lookup(&self, name: &str) -> Option<String> {
        match self.meta.get(name) {
            Some(v) => v.clone(),
            None => Self::platform_args().get(name).cloned(),
        }
    }

    fn run(&mut self) -> Result<Image> {
        // Meta ARGs, in order, each default seeing the ones before it.
        for ins in self.df.meta_args.clone() {
            let Kind::Arg(pairs) = &ins.kind else { continue };
            for (name, default) in pairs {
                let value = match self.req.args.get(name) {
                    Some(v) => {
                        self.used_args.insert(name.clone());
                        Some(v.clone())
                    }
                    None => match default {
                        Some(d) => {
                            Some(shell::expand(d, &|n: &str| self.meta_lookup(n), self.df.escape).map_err(|m| self.err(ins.line, m))?)
                        }
                        None => None,
                    },
                };
                self.meta.insert(name.clone(), value);
            }
        }
        let target = match &self.req.target {
            Some(t) => self.df.stage_index(t).ok_or_else(|| BuildError::NoTarget {
                target: t.clone(),
                file: self.df.file.clone(),
                stages: self.df.stages.iter().map(|s| s.label()).collect::<Vec<_>>().join(", "),
            })?,
            None => self.df.stages.len() - 1,
        };
        // The stages the target needs, and only those.
        let mut needed = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if !needed.insert(i) {
                continue;
            }
            for d in self.stage_deps(i)? {
                todo.push(d);
            }
        }
        for &i in &needed {
            if self.results.contains_key(&i) {
                continue;
            }
            let st = self.build_stage(i, needed.len() > 1)?;
            self.results.insert(i, st);
        }
        let state = self.results.remove(&target).expect("the target stage was built");
        let unused: Vec<&String> =
            self.req.args.keys().filter(|k| !self.used_args.contains(*k) && !PROXY_ARGS.contains(&k.as_str())).collect();
        if !unused.is_empty() {
            let w = format!(
                "[Warning] One or more build-args [{}] were not consumed",
                unused.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
            );
            self.out.line(&w);
            self.warnings.push(w);
        }
        self.export(state)
    }

    /// The earlier stages stage `i` uses (its FROM and COPY --from).
    fn stage_deps(&self, i: usize) -> Result<Vec<usize>> {
        let stage = &self.df.stages[i];
        let mut out = Vec::new();
        if let Kind::From { image, .. } = &stage.from.kind {
            let name = shell::expand(image, &|n: &str| self.meta_lookup(n), self.df.escape).map_err(|m| self.err(stage.from.line, m))?;
            if let Some(j) = self.earlier_stage(&name, i) {
                out.push(j);
            }
        }
        for ins in &stage.steps {
            if let Kind::Copy(CopySpec { from: Some(f), .. }) = &ins.kind {
                let name = shell::expand(f, &|n: &str| self.meta_lookup(n), self.df.escape).map_err(|m| self.err(ins.line, m))?;
                match self.earlier_stage(&name, i) {
                    Some(j) => out.push(j),
                    None if self.df.stage_index(&name).is_some() => {
                        return Err(self.err(
                            ins.line,
                            format!(
                                "COPY --from={name}: stage {name} is defined after this one; a stage can copy from earlier stages only"
                            ),
                        ));
                    }
                    None => {}
                }
            }
            if let Kind::Run { mounts, .. } = &ins.kind {
                for m in mounts {
                    if let Some(from) = m.split(',').find_map(|kv| kv.strip_prefix("from=")) {
                        if let Some(j) = self.earlier_stage(from, i) {
                            out.push(j);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    fn earlier_stage(&self, name: &str, before: usize) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        self.df.stages[..before]
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| name.parse::<usize>().ok().filter(|i| *i < before))
    }

    /// The result of stage `j`, built now if the dependency scan did not see it (a `--from`
    /// named through a stage's own ARG).
    fn stage_result(&mut self, j: usize) -> Result<State> {
        if let Some(st) = self.results.get(&j) {
            return Ok(st.clone());
        }
        let st = self.build_stage(j, true)?;
        self.results.insert(j, st.clone());
        Ok(st)
    }

    fn vertex_name(&self, stage: &Stage, multi: bool, k: usize, n: usize, text: &str) -> String {
        let mut parts = Vec::new();
        if let Some(l) = &self.req.label {
            parts.push(l.clone());
        }
        if multi {
            parts.push(stage.label());
        }
        parts.push(format!("{k}/{n}"));
        format!("[{}] {}", parts.join(" "), one_line(text))
    }

    fn rt(&mut self) -> Result<&tokio::runtime::Runtime> {
        if self.runtime.is_none() {
            // Its threads block the signals RUN steps take through a signalfd.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .on_thread_start(|| crate::util::sys::block_signals(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP]))
                .enable_all()
                .build()
                .map_err(|e| BuildError::Service { service: "build".into(), msg: format!("cannot start the async runtime: {e}") })?;
            self.runtime = Some(rt);
        }
        Ok(self.runtime.as_ref().expect("set above"))
    }

    /// The image `name`, from the store, or pulled when missing (or always, with --pull).
    fn image(&mut self, name: &str, line: usize) -> Result<Image> {
        let r = Reference::parse(name).map_err(|e| self.failed(line, format!("invalid image name {name:?}"), e))?;
        if !self.req.pull {
            if let Some(img) = self.store.resolve(&r.to_string())? {
                return Ok(img);
            }
        }
        let prefix = self.req.label.clone().map(|l| format!("{l} ")).unwrap_or_default();
        let v = self.out.begin(format!("[{prefix}internal] load metadata for {}", display_ref(name)));
        let opts = PullOptions { insecure_registries: self.req.insecure_registries.clone(), ..PullOptions::default() };
        let quiet = crate::engine::image::Progress::new(crate::engine::image::ProgressMode::Quiet);
        let store = self.store.clone();
        let res = self.rt()?.block_on(crate::engine::image::pull(&store, &r, &opts, &quiet));
        match res {
            Ok(img) => {
                self.out.done(v);
                Ok(img)
            }
            Err(e) => {
                self.out.error(v, &e.to_string());
                Err(self.failed(line, format!("cannot pull the image {}", r.familiar()), e))
            }
        }
    }

    fn state_of_image(&mut self, name: &str, line: usize) -> Result<(State, Image)> {
        let img = self.image(name, line)?;
        let triggers = img.container_config().get("OnBuild").and_then(|o| o.as_array()).map(|a| a.len()).unwrap_or(0);
        if triggers > 0 {
            let w = format!(
                "[Warning] {}:{line}: the image {name} has {triggers} ONBUILD trigger(s), which berth does not run; write them in this Dockerfile",
                self.df.file
            );
            self.out.line(&w);
            self.warnings.push(w);
        }
        Ok((State::from_image(&img), img))
    }

    /// Variables as a stage sees them: ENV first, then the ARGs declared in the stage.
    fn lookup<'s>(state: &'s State, args: &'s [(String, Option<String>)]) -> impl Fn(&str) -> Option<String> + 's {
        move |n: &str| state.env_get(n).or_else(|| args.iter().rev().find(|(k, _)| k == n).and_then(|(_, v)| v.clone()))
    }

    fn expand(&self, ins: &Instruction, word: &str, state: &State, args: &[(String, Option<String>)]) -> Result<String> {
        shell::expand(word, &Self::lookup(state, args), self.df.escape).map_err(|m| self.err(ins.line, m))
    }

    fn build_stage(&mut self, idx: usize, multi: bool) -> Result<State> {
        let stage = self.df.stages[idx].clone();
        let fs_steps =
            stage.steps.iter().filter(|s| matches!(s.kind, Kind::Run { .. } | Kind::Copy(_) | Kind::Add(_) | Kind::Workdir(_))).count();
        let Kind::From { image, platform, .. } = &stage.from.kind else { unreachable!("stages start with FROM") };
        let base = shell::expand(image, &|n: &str| self.meta_lookup(n), self.df.escape).map_err(|m| self.err(stage.from.line, m))?;
        if base.is_empty() {
            return Err(self.err(stage.from.line, format!("FROM {image} names no image once its variables are expanded")));
        }
        if let Some(p) = platform {
            let p = shell::expand(p, &|n: &str| self.meta_lookup(n), self.df.escape).map_err(|m| self.err(stage.from.line, m))?;
            let want = Platform::parse(&p).map_err(|e| self.failed(stage.from.line, format!("FROM --platform={p}"), e))?;
            let host = Platform::host();
            if want.os != host.os || want.architecture != host.architecture {
                return Err(self.err(
                    stage.from.line,
                    format!("FROM --platform={p}: berth builds for this machine's platform ({}/{}) only", host.os, host.architecture),
                ));
            }
        }
        let mut step = 0;
        let total;
        let mut state = if base.eq_ignore_ascii_case("scratch") {
            total = fs_steps;
            State::scratch()
        } else if let Some(j) = self.earlier_stage(&base, idx) {
            total = fs_steps;
            self.stage_result(j)?
        } else {
            total = fs_steps + 1;
            step += 1;
            let name = self.vertex_name(&stage, multi, step, total, &format!("FROM {}", display_ref(&base)));
            let (st, _img) = self.state_of_image(&base, stage.from.line)?;
            let v = self.out.begin(name);
            self.out.done(v);
            st
        };
        let mut args: Vec<(String, Option<String>)> = Vec::new();
        let mut cmd_set = false;
        for ins in &stage.steps {
            match &ins.kind {
                Kind::From { .. } => unreachable!("FROM starts a stage"),
                Kind::Arg(pairs) => {
                    for (name, default) in pairs {
                        let value = if let Some(v) = self.req.args.get(name) {
                            self.used_args.insert(name.clone());
                            Some(v.clone())
                        } else if let Some(d) = default {
                            Some(self.expand(ins, d, &state, &args)?)
                        } else if let Some(m) = self.meta.get(name) {
                            m.clone()
                        } else {
                            Self::platform_args().get(name).cloned()
                        };
                        args.push((name.clone(), value));
                    }
                    state.history(ins.text.clone(), true);
                }
                Kind::Env(pairs) => {
                    let before = state.clone();
                    for (k, v) in pairs {
                        let k2 = self.expand(ins, k, &before, &args)?;
                        let v2 = self.expand(ins, v, &before, &args)?;
                        state.env_set(&k2, &v2);
                    }
                    state.history(ins.text.clone(), true);
                }
                Kind::Label(pairs) => {
                    let mut labels = state.config.get("Labels").and_then(|l| l.as_object()).cloned().unwrap_or_default();
                    for (k, v) in pairs {
                        let k2 = self.expand(ins, k, &state, &args)?;
                        let v2 = self.expand(ins, v, &state, &args)?;
                        labels.insert(k2, json!(v2));
                    }
                    state.config.insert("Labels".into(), Value::Object(labels));
                    state.history(ins.text.clone(), true);
                }
                Kind::Maintainer(m) => {
                    state.author = Some(m.clone());
                    state.history(ins.text.clone(), true);
                }
                Kind::Cmd(c) => {
                    state.config.insert("Cmd".into(), json!(command_argv(c, &state)));
                    cmd_set = true;
                    state.history(ins.text.clone(), true);
                }
                Kind::Entrypoint(c) => {
                    state.config.insert("Entrypoint".into(), json!(command_argv(c, &state)));
                    // As Docker: an ENTRYPOINT resets a CMD inherited from the base image.
                    if !cmd_set {
                        state.config.remove("Cmd");
                    }
                    state.history(ins.text.clone(), true);
                }
                Kind::Expose(text) => {
                    let words =
                        shell::expand_words(text, &Self::lookup(&state, &args), self.df.escape).map_err(|m| self.err(ins.line, m))?;
                    let mut ports = state.config.get("ExposedPorts").and_then(|p| p.as_object()).cloned().unwrap_or_default();
                    for w in words {
                        for p in parse_ports(&w).map_err(|m| self.err(ins.line, m))? {
                            ports.insert(p, json!({}));
                        }
                    }
                    state.config.insert("ExposedPorts".into(), Value::Object(ports));
                    state.history(ins.text.clone(), true);
                }
                Kind::Volume(v) => {
                    let paths = match v {
                        VolumeArgs::Json(list) => list.iter().map(|p| self.expand(ins, p, &state, &args)).collect::<Result<Vec<_>>>()?,
                        VolumeArgs::Text(t) => {
                            shell::expand_words(t, &Self::lookup(&state, &args), self.df.escape).map_err(|m| self.err(ins.line, m))?
                        }
                    };
                    let mut vols = state.config.get("Volumes").and_then(|p| p.as_object()).cloned().unwrap_or_default();
                    for p in paths {
                        if p.trim().is_empty() {
                            return Err(self.err(ins.line, "VOLUME specified can not be an empty string"));
                        }
                        vols.insert(p, json!({}));
                    }
                    state.config.insert("Volumes".into(), Value::Object(vols));
                    state.history(ins.text.clone(), true);
                }
                Kind::User(u) => {
                    let u = self.expand(ins, u, &state, &args)?;
                    state.config.insert("User".into(), json!(u));
                    state.history(ins.text.clone(), true);
                }
                Kind::Stopsignal(s) => {
                    let s = self.expand(ins, s, &state, &args)?;
                    if crate::util::sys::parse_signal(&s).is_none() {
                        return Err(self.err(ins.line, format!("STOPSIGNAL {s}: not a signal; give a name like SIGTERM or a number")));
                    }
                    state.config.insert("StopSignal".into(), json!(s));
                    state.history(ins.text.clone(), true);
                }
                Kind::Shell(sh) => {
                    state.config.insert("Shell".into(), json!(sh));
                    state.history(ins.text.clone(), true);
                }
                Kind::Healthcheck { cmd, opts } => {
                    let hc = healthcheck(cmd.as_ref(), opts).map_err(|m| self.err(ins.line, m))?;
                    state.config.insert("Healthcheck".into(), hc);
                    state.history(ins.text.clone(), true);
                }
                Kind::Workdir(w) => {
                    step += 1;
                    let name = self.vertex_name(&stage, multi, step, total, &ins.text);
                    self.workdir(ins, w, &mut state, &args, name)?;
                }
                Kind::Copy(spec) | Kind::Add(spec) => {
                    step += 1;
                    let name = self.vertex_name(&stage, multi, step, total, &ins.text);
                    let add = matches!(ins.kind, Kind::Add(_));
                    self.copy(ins, spec, add, idx, &mut state, &args, name)?;
                }
                Kind::Run { cmd, mounts, network, heredocs } => {
                    step += 1;
                    let name = self.vertex_name(&stage, multi, step, total, &ins.text);
                    let spec = super::run::RunStep { cmd, mounts, network: network.as_deref(), heredocs };
                    self.run_step(ins, &spec, idx, &mut state, &args, name)?;
                }
            }
        }
        Ok(state)
    }

    /// Looks a filesystem step up in the cache; prints CACHED and applies it on a hit.
    fn cached(&mut self, key: &Digest, state: &mut State, v: Vertex) -> std::result::Result<(), Vertex> {
        if self.req.no_cache {
            return Err(v);
        }
        // Held from the miss until the step is recorded: a build running the same step at once
        // waits here, then finds it.
        self.step_lock = None;
        // (A lock that cannot be taken only costs that sharing.)
        self.step_lock = self.cache.lock(key).ok();
        match self.cache.get(self.store, key) {
            Some(e) => {
                state.layers = e.layers;
                state.created = e.history.get("created").and_then(|c| c.as_str()).unwrap_or(&state.created).to_string();
                state.history.push(e.history);
                state.key = key.clone();
                self.step_lock = None;
                self.out.cached(v);
                Ok(())
            }
            None => Err(v),
        }
    }

    /// Records a step that ran: its layer (if any), history and cache record.
    fn commit(&mut self, key: Digest, state: &mut State, layer: Option<Layer>, created_by: String) -> Result<()> {
        self.all_cached = false;
        let empty = layer.is_none();
        if let Some(l) = layer {
            state.layers.push(l);
        }
        state.created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        state.history(created_by, empty);
        state.key = key.clone();
        let entry = cache::Entry { layers: state.layers.clone(), history: state.history.last().cloned().unwrap_or_default() };
        self.cache.put(&key, &entry)?;
        self.step_lock = None;
        Ok(())
    }

    pub(crate) fn tree_of(&self, layers: &[Layer]) -> std::io::Result<Tree> {
        let dirs: Vec<PathBuf> = layers.iter().map(|l| self.store.layer_dir(&l.chain_id)).collect();
        Tree::layers(&dirs)
    }

    /// Writes a planned layer through the store.
    fn write_layer(&self, ins: &Instruction, plan: &copy::Plan, trees: &[&Tree], parent: Option<&Digest>) -> Result<Option<Layer>> {
        if plan.entries.is_empty() && plan.extracts.is_empty() {
            return Ok(None);
        }
        let tmp = self.store.temp_path("tar");
        let res = (|| -> Result<Layer> {
            let f = std::fs::File::create(&tmp).map_err(|e| crate::util::fs::FsError::io("create", &tmp, e))?;
            let w = copy::write_tar(plan, trees, std::io::BufWriter::with_capacity(1 << 20, f))
                .map_err(|e| self.failed(ins.line, "cannot write the layer", e))?;
            w.into_inner().map_err(|e| self.failed(ins.line, "cannot write the layer", e.into_error()))?;
            let f = std::fs::File::open(&tmp).map_err(|e| crate::util::fs::FsError::io("open", &tmp, e))?;
            Ok(self.store.add_layer(parent, std::io::BufReader::with_capacity(1 << 20, f), &format!("{}:{}", self.df.file, ins.line))?)
        })();
        let _ = std::fs::remove_file(&tmp);
        res.map(Some)
    }

    fn workdir(&mut self, ins: &Instruction, w: &str, state: &mut State, args: &[(String, Option<String>)], name: String) -> Result<()> {
        let w = self.expand(ins, w, state, args)?;
        let prev = state.str("WorkingDir");
        let path = clean_abs(&if w.starts_with('/') { w } else { format!("{}/{w}", if prev.is_empty() { "/" } else { &prev }) });
        state.config.insert("WorkingDir".into(), json!(path));
        let v = self.out.begin(name);
        let key = cache::key(&json!({"parent": state.key.to_string(), "op": "WORKDIR", "path": path, "config": state.fs_config()}));
        let v = match self.cached(&key, state, v) {
            Ok(()) => return Ok(()),
            Err(v) => v,
        };
        let tree = self.tree_of(&state.layers).map_err(|e| self.failed(ins.line, "cannot read the image's layers", e))?;
        let r = tree.resolve(&path, true).map_err(|e| self.failed(ins.line, format!("WORKDIR {path}"), e))?;
        let layer = match &r.node {
            Some(n) if n.is_dir() => None,
            Some(_) => return Err(self.err(ins.line, format!("WORKDIR {path}: it exists in the image and is not a directory"))),
            None => {
                let owner = match state.str("User") {
                    u if u.is_empty() => None,
                    u => copy::resolve_user(&u, &tree),
                };
                let mut plan = copy::Plan::default();
                let mut prefix = PathBuf::new();
                for c in r.path.components() {
                    prefix.push(c);
                    let e = match tree.lookup(&prefix).map_err(|e| self.failed(ins.line, "cannot read the image's layers", e))? {
                        Some(n) => copy::Entry {
                            kind: copy::EntryKind::Dir,
                            mode: n.mode(),
                            uid: n.uid(),
                            gid: n.gid(),
                            mtime: n.mtime(),
                            size: 0,
                            content: copy::Content::None,
                            content_id: String::new(),
                        },
                        None => {
                            let (uid, gid) = owner.unwrap_or((0, 0));
                            copy::Entry {
                                kind: copy::EntryKind::Dir,
                                mode: 0o755,
                                uid,
                                gid,
                                mtime: self.now.timestamp(),
                                size: 0,
                                content: copy::Content::None,
                                content_id: String::new(),
                            }
                        }
                    };
                    plan.entries.insert(prefix.clone(), e);
                }
                self.write_layer(ins, &plan, &[], state.layers.last().map(|l| &l.chain_id))?
            }
        };
        self.commit(key, state, layer, ins.text.clone())?;
        self.out.done(v);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn copy(
        &mut self,
        ins: &Instruction,
        spec: &CopySpec,
        add: bool,
        stage_idx: usize,
        state: &mut State,
        args: &[(String, Option<String>)],
        name: String,
    ) -> Result<()> {
        let keyword = if add { "ADD" } else { "COPY" };
        let v = self.out.begin(name);
        let dest = self.expand(ins, &spec.dest, state, args)?;
        let chown = spec.chown.as_ref().map(|c| self.expand(ins, c, state, args)).transpose()?;
        let chmod = spec.chmod.as_ref().map(|c| self.expand(ins, c, state, args)).transpose()?;
        let from = spec.from.as_ref().map(|f| self.expand(ins, f, state, args)).transpose()?;
        if add && spec.checksum.is_some() && spec.sources.iter().any(|s| !is_url(s)) {
            return Err(self.err(ins.line, "ADD --checksum is only for URL sources"));
        }
        let base = self.tree_of(&state.layers).map_err(|e| self.failed(ins.line, "cannot read the image's layers", e))?;
        let owner = match &chown {
            Some(c) => Some(copy::parse_chown(c, &base).map_err(|m| self.err(ins.line, m))?),
            None => None,
        };
        let mode = chmod.as_deref().map(copy::parse_chmod).transpose().map_err(|m| self.err(ins.line, m))?;

        // The tree the sources come from: the context, a stage, or an image.
        let from_tree: Option<(Tree, Vec<String>, String)> = match &from {
            None => None,
            Some(f) => {
                let (layers, what) = match self.earlier_stage(f, stage_idx) {
                    Some(j) => (self.stage_result(j)?.layers, format!("stage {f}")),
                    None => {
                        let img = self.image(f, ins.line)?;
                        (img.layers.clone(), format!("image {f}"))
                    }
                };
                let t = self.tree_of(&layers).map_err(|e| self.failed(ins.line, format!("cannot read the layers of {what}"), e))?;
                Some((t, layers.iter().map(|l| l.chain_id.to_string()).collect(), what))
            }
        };
        let mut sources = Vec::new();
        let mut downloads = Vec::new();
        for s in &spec.sources {
            if let Some(h) = spec
                .heredocs
                .iter()
                .find(|h| s.strip_prefix("<<").map(|n| n.trim_start_matches('-').trim_matches(['"', '\''])) == Some(h.name.as_str()))
            {
                let data = if h.expand {
                    self.expand(ins, &format!("\"{}\"", h.content.replace('"', &format!("{}\"", self.df.escape))), state, args)?
                } else {
                    h.content.clone()
                };
                sources.push(Source::Bytes { name: h.name.clone(), data: data.into_bytes() });
                continue;
            }
            let s = self.expand(ins, s, state, args)?;
            if is_url(&s) || s.starts_with("git@") {
                if s.ends_with(".git") || s.starts_with("git@") || s.contains(".git#") {
                    return Err(self.err(
                        ins.line,
                        format!("{keyword} {s}: berth does not add git repositories; clone it in a RUN step or into the context"),
                    ));
                }
                if !add {
                    return Err(self.err(ins.line, format!("COPY cannot download {s}: use ADD for URLs")));
                }
                let d = self.download(ins, &s, spec.checksum.as_deref(), &v)?;
                downloads.push(d.1.clone());
                sources.push(d.0);
                continue;
            }
            if from.is_none() {
                // Context paths are cleaned as Docker cleans them, relative to the context's root.
                let mut parts: Vec<&str> = Vec::new();
                for c in s.split('/') {
                    match c {
                        "" | "." => {}
                        ".." => {
                            if parts.pop().is_none() {
                                let m = format!(
                                    "{keyword} failed: {s} is outside the build context; the build context is never read outside its folder"
                                );
                                self.out.error(v, &m);
                                return Err(self.err(ins.line, m));
                            }
                        }
                        c => parts.push(c),
                    }
                }
                let clean = parts.join("/");
                sources.push(Source::Path { tree: 0, pattern: if clean.is_empty() { ".".into() } else { clean } });
            } else {
                sources.push(Source::Path { tree: 0, pattern: s });
            }
        }
        let exclude = spec.exclude.iter().map(|e| self.expand(ins, e, state, args)).collect::<Result<Vec<_>>>()?;
        let workdir = state.str("WorkingDir");
        let req = copy::Request {
            keyword,
            sources,
            dest,
            workdir: if workdir.is_empty() { "/" } else { &workdir },
            chown: owner,
            chmod: mode,
            extract: add,
            exclude,
        };
        let st = match &from_tree {
            Some((t, ids, what)) => SourceTree { tree: t, layer_ids: ids.clone(), ignore: None, what: what.clone() },
            None => SourceTree { tree: &self.context, layer_ids: Vec::new(), ignore: Some(&self.ignore), what: "the build context".into() },
        };
        let now = self.now.timestamp();
        let plan = copy::plan(&req, std::slice::from_ref(&st), &base, &mut self.hashes, now);
        let plan = match plan {
            Ok(p) => p,
            Err(m) => {
                let e = self.err(ins.line, format!("{keyword} failed: {m}"));
                self.out.error(v, &format!("{keyword} failed: {m}"));
                for d in downloads {
                    let _ = std::fs::remove_file(d);
                }
                return Err(e);
            }
        };
        let key = cache::key(
            &json!({"parent": state.key.to_string(), "op": keyword, "plan": plan.digest().to_string(), "config": state.fs_config()}),
        );
        let res = match self.cached(&key, state, v) {
            Ok(()) => Ok(()),
            Err(v) => {
                let src_tree: &Tree = match &from_tree {
                    Some((t, _, _)) => t,
                    None => &self.context,
                };
                match self.write_layer(ins, &plan, &[src_tree], state.layers.last().map(|l| &l.chain_id)) {
                    Ok(layer) => {
                        let r = self.commit(key, state, layer, ins.text.clone());
                        self.out.done(v);
                        r
                    }
                    Err(e) => {
                        self.out.error(v, &e.to_string());
                        Err(e)
                    }
                }
            }
        };
        for d in downloads {
            let _ = std::fs::remove_file(d);
        }
        res
    }

    /// Downloads `url` for ADD into a temp file: (the source, the temp path).
    fn download(&mut self, ins: &Instruction, url: &str, checksum: Option<&str>, v: &Vertex) -> Result<(Source, PathBuf)> {
        let tmp = self.store.temp_path("download");
        let url_s = url.to_string();
        let tmp2 = tmp.clone();
        let res: std::result::Result<(i64, String), String> = self.rt()?.block_on(async move {
            let client = reqwest::Client::builder().build().map_err(|e| e.to_string())?;
            let resp = client.get(&url_s).send().await.map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("the server answered {}", resp.status()));
            }
            let mtime = resp
                .headers()
                .get(reqwest::header::LAST_MODIFIED)
                .and_then(|h| h.to_str().ok())
                .and_then(|s| chrono::DateTime::parse_from_rfc2822(s).ok())
                .map(|d| d.timestamp())
                .unwrap_or(0);
            // Streamed to the file, hashed on the way.
            use std::io::Write;
            let mut resp = resp;
            let mut f = std::fs::File::create(&tmp2).map_err(|e| format!("{}: {e}", tmp2.display()))?;
            let mut h = crate::engine::image::digest::Hasher::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
                h.update(&chunk);
                f.write_all(&chunk).map_err(|e| format!("{}: {e}", tmp2.display()))?;
            }
            Ok((mtime, h.finish().hex().to_string()))
        });
        let (mtime, sha) = match res {
            Ok(x) => x,
            Err(m) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(self.err(ins.line, format!("ADD cannot download {url}: {m}")));
            }
        };
        if let Some(c) = checksum {
            let want = c.strip_prefix("sha256:").unwrap_or(c);
            if want != sha {
                let _ = std::fs::remove_file(&tmp);
                return Err(self.err(ins.line, format!("ADD {url}: the content digest is sha256:{sha}, not the --checksum {c}")));
            }
        }
        self.out.info(v, &format!("downloaded {url}"));
        let name = url
            .split(['?', '#'])
            .next()
            .unwrap_or(url)
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty() && !n.contains(':'))
            .unwrap_or("download")
            .to_string();
        Ok((Source::Download { name, path: tmp.clone(), mtime, sha }, tmp))
    }

    #[allow(clippy::too_many_arguments)]
    fn run_step(
        &mut self,
        ins: &Instruction,
        spec: &super::run::RunStep,
        stage_idx: usize,
        state: &mut State,
        args: &[(String, Option<String>)],
        name: String,
    ) -> Result<()> {
        let argv = super::run::argv(spec, state);
        // The environment: the image's, then the declared ARGs that ENV does not override, then
        // the proxy arguments given.
        let mut env = state.env();
        let mut arg_pairs = Vec::new();
        for (k, v) in args {
            if let Some(v) = v {
                arg_pairs.push(format!("{k}={v}"));
                if state.env_get(k).is_none() {
                    env.push(format!("{k}={v}"));
                }
            }
        }
        for p in PROXY_ARGS {
            if let Some(v) = self.req.args.get(*p) {
                env.push(format!("{p}={v}"));
            }
        }
        let mut mounts = Vec::new();
        for m in spec.mounts {
            let m = self.expand(ins, m, state, args)?;
            mounts.push(super::run::parse_mount(&m).map_err(|e| self.err(ins.line, e))?);
        }
        // Bind mounts: what they show is part of the step's inputs.
        let mut binds = Vec::new();
        for m in &mounts {
            if let super::run::RunMount::Bind { source, from, .. } = m {
                binds.push(self.bind_plan(ins, source, from.as_deref(), stage_idx)?);
            }
        }
        let bind_digests: Vec<String> = binds.iter().map(|b| b.plan.digest().to_string()).collect();
        let network = spec.network.map(str::to_string).or_else(|| self.req.network.clone()).unwrap_or_else(|| "default".into());
        let created_by = if arg_pairs.is_empty() {
            format!("RUN {}", argv.join(" "))
        } else {
            format!("RUN |{} {} {}", arg_pairs.len(), arg_pairs.join(" "), argv.join(" "))
        };
        let v = self.out.begin(name);
        let key = cache::key(&json!({
            "parent": state.key.to_string(),
            "op": "RUN",
            "argv": argv,
            "env": env,
            "user": state.str("User"),
            "workdir": state.str("WorkingDir"),
            "mounts": mounts.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>(),
            "binds": bind_digests,
            "network": network,
        }));
        let v = match self.cached(&key, state, v) {
            Ok(()) => return Ok(()),
            Err(v) => v,
        };
        let mut temps = TempDirs(Vec::new());
        let prepared = match self.prepare_mounts(ins, &mounts, binds, state, &mut temps) {
            Ok(p) => p,
            Err(e) => {
                self.out.error(v, &e.to_string());
                return Err(e);
            }
        };
        let job = super::run::Job {
            argv: argv.clone(),
            env,
            user: state.str("User"),
            workdir: state.str("WorkingDir"),
            mounts,
            prepared,
            network,
            heredocs: spec.heredocs.to_vec(),
            memory: self.req.memory,
            shm_size: self.req.shm_size,
            extra_hosts: self.req.extra_hosts.clone(),
        };
        let mut output: Vec<String> = Vec::new();
        let res = {
            let out = &mut *self.out;
            let mut sink = |line: &str| {
                out.log(&v, line);
                output.push(format!("{:.3} {line}", v.elapsed()));
            };
            super::run::run(self.store, &state.layers, &job, &mut sink)
        };
        match res {
            Ok(super::run::Outcome::Exited { code: 0, layer }) => {
                self.commit(key, state, layer, created_by)?;
                self.out.done(v);
                Ok(())
            }
            Ok(super::run::Outcome::Exited { code, .. }) => {
                let shown = format!("process \"{}\" did not complete successfully: exit code: {code}", argv.join(" "));
                let name = v.name.clone();
                self.out.error(v, &shown);
                self.out.failure(&name, &output);
                Err(BuildError::RunFailed { file: self.df.file.clone(), line: ins.line, instruction: one_line(&ins.text), code })
            }
            Err(e) => {
                self.out.error(v, &e.to_string());
                Err(self.failed(ins.line, format!("{} cannot run", one_line(&ins.text)), e))
            }
        }
    }

    /// Plans what a bind mount shows: `source` in the context (or in stage or image `from`).
    fn bind_plan(&mut self, ins: &Instruction, source: &str, from: Option<&str>, stage_idx: usize) -> Result<BindPlan> {
        let (tree, ids, what) = match from {
            None => (None, Vec::new(), "the build context".to_string()),
            Some(f) => {
                let (layers, what) = match self.earlier_stage(f, stage_idx) {
                    Some(j) => (self.stage_result(j)?.layers, format!("stage {f}")),
                    None => (self.image(f, ins.line)?.layers.clone(), format!("image {f}")),
                };
                let t = self.tree_of(&layers).map_err(|e| self.failed(ins.line, format!("cannot read the layers of {what}"), e))?;
                (Some(t), layers.iter().map(|l| l.chain_id.to_string()).collect(), what)
            }
        };
        let pattern = if from.is_none() {
            let mut parts: Vec<&str> = Vec::new();
            for c in source.split('/') {
                match c {
                    "" | "." => {}
                    ".." if parts.pop().is_none() => {
                        return Err(self.err(ins.line, format!("RUN --mount source {source} is outside the build context; the build context is never read outside its folder")));
                    }
                    ".." => {}
                    c => parts.push(c),
                }
            }
            if parts.is_empty() { ".".to_string() } else { parts.join("/") }
        } else {
            source.to_string()
        };
        let st = match &tree {
            Some(t) => SourceTree { tree: t, layer_ids: ids, ignore: None, what: what.clone() },
            None => SourceTree { tree: &self.context, layer_ids: Vec::new(), ignore: Some(&self.ignore), what: what.clone() },
        };
        let empty = Tree::layers(&[]).map_err(|e| self.failed(ins.line, "cannot plan a bind mount", e))?;
        let req = copy::Request {
            keyword: "RUN --mount",
            sources: vec![Source::Path { tree: 0, pattern: pattern.clone() }],
            dest: "/".into(),
            workdir: "/",
            chown: None,
            chmod: None,
            extract: false,
            exclude: Vec::new(),
        };
        let plan = copy::plan(&req, std::slice::from_ref(&st), &empty, &mut self.hashes, self.now.timestamp())
            .map_err(|m| self.err(ins.line, format!("RUN --mount source: {m}")))?;
        let node = st.tree.resolve(&pattern, true).ok().and_then(|r| r.node);
        let file_name = match node {
            Some(n) if !n.is_dir() => Path::new(&pattern).file_name().map(|n| n.to_os_string()),
            _ => None,
        };
        Ok(BindPlan { plan, tree, file_name })
    }

    /// Writes bind sources and secrets to temp folders and gives the mounts to make.
    fn prepare_mounts(
        &self,
        ins: &Instruction,
        mounts: &[super::run::RunMount],
        binds: Vec<BindPlan>,
        state: &State,
        temps: &mut TempDirs,
    ) -> Result<Vec<super::run::Prepared>> {
        use super::run::{Prepared, RunMount};
        let mut out = Vec::new();
        let mut binds = binds.into_iter();
        let workdir = state.str("WorkingDir");
        let abs = |t: &str| {
            if t.starts_with('/') { t.to_string() } else { clean_abs(&format!("{}/{t}", if workdir.is_empty() { "/" } else { &workdir })) }
        };
        for m in mounts {
            match m {
                RunMount::Cache { .. } => {}
                RunMount::Tmpfs { target, size } => {
                    out.push(Prepared { source: None, target: target.clone(), read_only: false, tmpfs_size: *size })
                }
                RunMount::Bind { target, rw, .. } => {
                    let b = binds.next().expect("one plan per bind mount");
                    let dir = self.store.temp_path("bind");
                    std::fs::create_dir(&dir).map_err(|e| crate::util::fs::FsError::io("create", &dir, e))?;
                    temps.0.push(dir.clone());
                    let tree: &Tree = b.tree.as_ref().unwrap_or(&self.context);
                    materialize(&b.plan, tree, &dir).map_err(|e| self.failed(ins.line, "cannot prepare a bind mount", e))?;
                    let source = match &b.file_name {
                        Some(n) => dir.join(n),
                        None => dir,
                    };
                    out.push(Prepared { source: Some(source), target: abs(target), read_only: !rw, tmpfs_size: None });
                }
                RunMount::Secret { id, target, required, uid, gid, mode } => {
                    let Some(secret) = self.req.secrets.get(id) else {
                        if *required {
                            return Err(self.err(
                                ins.line,
                                format!("secret {id} is required but was not given: add it to the service's build.secrets"),
                            ));
                        }
                        continue;
                    };
                    let dir = self.store.temp_path("secret");
                    std::fs::create_dir(&dir).map_err(|e| crate::util::fs::FsError::io("create", &dir, e))?;
                    temps.0.push(dir.clone());
                    let file = dir.join("secret");
                    std::fs::write(&file, secret).map_err(|e| crate::util::fs::FsError::io("write", &file, e))?;
                    std::os::unix::fs::chown(&file, Some(*uid), Some(*gid)).map_err(|e| crate::util::fs::FsError::io("chown", &file, e))?;
                    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(*mode))
                        .map_err(|e| crate::util::fs::FsError::io("chmod", &file, e))?;
                    out.push(Prepared { source: Some(file), target: abs(target), read_only: true, tmpfs_size: None });
                }
            }
        }
        Ok(out)
    }

    /// Records the image, named as asked.
    fn export(&mut self, state: State) -> Result<Image> {
        let prefix = self.req.label.clone().map(|l| format!("[{l}] ")).unwrap_or_default();
        let v = self.out.begin(format!("{prefix}exporting to image"));
        let mut config = state.config.clone();
        if !self.req.labels.is_empty() {
            let mut labels = config.get("Labels").and_then(|l| l.as_object()).cloned().unwrap_or_default();
            for (k, val) in &self.req.labels {
                labels.insert(k.clone(), json!(val));
            }
            config.insert("Labels".into(), Value::Object(labels));
        }
        let mut cfg = json!({
            "architecture": state.architecture,
            "os": state.os,
            "created": state.created,
            "config": config,
            "history": state.history,
        });
        if let Some(v) = &state.variant {
            cfg["variant"] = json!(v);
        }
        if let Some(a) = &state.author {
            cfg["author"] = json!(a);
        }
        let diff_ids: Vec<String> = state.layers.iter().map(|l| l.diff_id.to_string()).collect();
        cfg["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
        let id = Digest::of(&serde_json::to_vec(&cfg).expect("JSON values serialize"));
        // A rebuild that changes nothing writes nothing.
        let existing = self.store.get(&id)?;
        let image = match existing {
            Some(img) if self.req.tags.iter().all(|t| img.names.contains(t)) => img,
            _ => self.store.create_image(cfg, &state.layers, &self.req.tags)?,
        };
        self.out.info(&v, &format!("writing image {} done", image.id));
        for t in &self.req.tags {
            let shown = t.to_string();
            self.out.info(&v, &format!("naming to {} done", shown.strip_suffix(":latest").unwrap_or(&shown)));
        }
        self.out.done(v);
        Ok(image)
    }
}

/// What a bind mount will show, planned like a COPY into an empty tree.
struct BindPlan {
    plan: copy::Plan,
    /// The stage's or image's tree (`from=`); none for the context.
    tree: Option<Tree>,
    /// For a single file: its name in the prepared folder.
    file_name: Option<std::ffi::OsString>,
}

/// Temp folders removed when a step ends.
struct TempDirs(Vec<PathBuf>);

impl Drop for TempDirs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Writes `plan` (from `tree`) into the empty folder `dir`, through the store's safe unpacker.
fn materialize(plan: &copy::Plan, tree: &Tree, dir: &Path) -> std::result::Result<(), crate::engine::image::ImageError> {
    let (r, w) = nix::unistd::pipe().map_err(|e| crate::util::fs::FsError::io("create a pipe for", dir, e.into()))?;
    let (r, w) = (std::fs::File::from(r), std::fs::File::from(w));
    std::thread::scope(|s| {
        let writer = s.spawn(move || copy::write_tar(plan, &[tree], w).map(|_| ()));
        let res = crate::engine::image::unpack::unpack_layer(
            "bind mount",
            std::io::BufReader::new(r),
            dir,
            &crate::engine::image::unpack::Limits::from_env(),
        );
        let written = writer.join().unwrap_or_else(|_| Err(std::io::Error::other("the tar writer panicked")));
        res?;
        written.map_err(|e| crate::util::fs::FsError::io("write", dir, e).into())
    })
}

/// `docker.io/library/busybox` for `busybox`, `docker.io/library/busybox:1` for `busybox:1`, as
/// BuildKit shows names: normalized, with a tag only if one was written.
fn display_ref(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    match Reference::parse(name) {
        Ok(r) if last.contains([':', '@']) => r.to_string(),
        Ok(r) => r.name(),
        Err(_) => name.to_string(),
    }
}

/// The first line of an instruction, for step names.
fn one_line(text: &str) -> String {
    match text.split_once('\n') {
        Some((first, _)) => first.to_string(),
        None => text.to_string(),
    }
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// `/a/./b/../c` to `/a/c`.
fn clean_abs(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

/// CMD and ENTRYPOINT: the exec form as given, the shell form through the stage's SHELL.
fn command_argv(c: &Command, state: &State) -> Vec<String> {
    match c {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => {
            let mut v = state.shell();
            v.push(s.clone());
            v
        }
    }
}

/// `80`, `80/udp`, `8000-8002/tcp` to Docker's `port/proto` keys.
fn parse_ports(w: &str) -> std::result::Result<Vec<String>, String> {
    let (range, proto) = match w.split_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (w, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("EXPOSE {w}: the protocol must be tcp, udp or sctp"));
    }
    let bad = || format!("EXPOSE {w}: invalid port; give a number from 1 to 65535 or a range like 8000-8010");
    let (lo, hi) = match range.split_once('-') {
        Some((a, b)) => (a.parse::<u16>().map_err(|_| bad())?, b.parse::<u16>().map_err(|_| bad())?),
        None => {
            let p = range.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if lo == 0 || hi < lo {
        return Err(bad());
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// A Go duration (`30s`, `1m30s`, `500ms`) in nanoseconds.
pub(crate) fn parse_duration(s: &str) -> std::result::Result<i64, String> {
    let bad = || format!("invalid duration {s:?}: use a number with a unit, e.g. 30s, 1m30s or 500ms");
    if s == "0" {
        return Ok(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Ok(total as i64)
}

fn healthcheck(cmd: Option<&Command>, o: &dockerfile::HealthOpts) -> std::result::Result<Value, String> {
    let Some(cmd) = cmd else { return Ok(json!({"Test": ["NONE"]})) };
    let test: Vec<String> = match cmd {
        Command::Exec(v) => {
            let mut t = vec!["CMD".to_string()];
            t.extend(v.iter().cloned());
            t
        }
        Command::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
    };
    let mut hc = json!({"Test": test});
    let dur = |name: &str, v: &Option<String>, hc: &mut Value| -> std::result::Result<(), String> {
        if let Some(v) = v {
            let ns = parse_duration(v).map_err(|m| format!("HEALTHCHECK --{}: {m}", name.to_ascii_lowercase()))?;
            hc[name] = json!(ns);
        }
        Ok(())
    };
    dur("Interval", &o.interval, &mut hc)?;
    dur("Timeout", &o.timeout, &mut hc)?;
    dur("StartPeriod", &o.start_period, &mut hc)?;
    dur("StartInterval", &o.start_interval, &mut hc)?;
    if let Some(r) = &o.retries {
        let n: i64 = r.parse().map_err(|_| format!("HEALTHCHECK --retries={r}: give a whole number"))?;
        hc["Retries"] = json!(n);
    }
    Ok(hc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_durations_paths() {
        assert_eq!(parse_ports("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(parse_ports("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(parse_ports("8000-8002").unwrap().len(), 3);
        assert!(parse_ports("http").is_err());
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500_000_000);
        assert!(parse_duration("5").is_err());
        assert_eq!(clean_abs("/a/./b/../c/"), "/a/c");
        assert_eq!(clean_abs("/../x"), "/x");
    }
}
