//! `berth watch` and `up --watch`: compose's `develop.watch`. Changes under each rule's `path`
//! are batched (500 ms of quiet), matched against the rules (`ignore`, `include`, the build
//! context's `.dockerignore`, editors' temporary files, `.git`), and then, per service: the
//! image rebuilt and the service recreated (`rebuild`), the files copied into (or deleted from)
//! its running containers (`sync`, `sync+restart`, `sync+exec`), the service restarted
//! (`restart`, `sync+restart`), and the rule's command run (`sync+exec`). The work itself is
//! done by the commands users know: `cp`'s safe copy, `exec`, `restart`, and `up`.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use notify::Watcher as _;
use serde_json::Value;

use super::converge::{self, Target};
use super::lifecycle::{self, CreateArgs, UpArgs};
use super::query::{self, OneOff};
use crate::cli::GlobalOpts;
use crate::cli::render::text::go_quote_list;
use crate::engine::build::ignore::{Ignore, glob_match};
use crate::engine::runtime::fsaccess::ContainerFs;
use crate::engine::runtime::{exec::ExecSpec, ops};
use crate::project::Project;
use crate::util::sys;

#[derive(Args, Debug, Clone, Default)]
pub struct WatchArgs {
    /// Do not build & start services before watching
    #[arg(long)]
    pub no_up: bool,
    /// Prune dangling images on rebuild
    #[arg(long)]
    pub prune: bool,
    /// hide build output
    #[arg(long)]
    pub quiet: bool,
    #[arg(long, hide = true)]
    pub dry_run: bool,
    pub services: Vec<String>,
}

/// How long the files must stay quiet before a batch of changes is handled (as compose).
const DEBOUNCE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Sync,
    SyncRestart,
    SyncExec,
    Restart,
    Rebuild,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "sync" => Action::Sync,
            "sync+restart" => Action::SyncRestart,
            "sync+exec" => Action::SyncExec,
            "restart" => Action::Restart,
            "rebuild" => Action::Rebuild,
            _ => return None,
        })
    }
    fn syncs(self) -> bool {
        matches!(self, Action::Sync | Action::SyncRestart | Action::SyncExec)
    }
}

/// One `develop.watch` entry of a service, ready to match paths.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    service: String,
    action: Action,
    path: PathBuf,
    target: Option<String>,
    ignore: Ignore,
    include: Option<Ignore>,
    /// The build context and its `.dockerignore`.
    dockerignore: Option<(PathBuf, Ignore)>,
    exec: Option<ExecSpec>,
    initial_sync: bool,
    /// False when a bind mount already shares the path (compose warns and does not watch it).
    watched: bool,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The watch rules of `services` (every service when empty), with compose's errors.
pub(crate) fn rules(p: &Project, services: &[String]) -> anyhow::Result<Vec<Rule>> {
    for s in services {
        if !p.services.contains_key(s) {
            bail!("no such service: {s}");
        }
    }
    let mut out = Vec::new();
    for (name, s) in &p.services {
        if !services.is_empty() && !services.contains(name) {
            continue;
        }
        let Some(develop) = &s.develop else { continue };
        let Some(entries) = develop.get("watch").and_then(Value::as_array) else { continue };
        let dockerignore = s.build.as_ref().map(|b| {
            let ctx = PathBuf::from(&b.context);
            let text = std::fs::read_to_string(ctx.join(".dockerignore")).unwrap_or_default();
            (canonical(&ctx), Ignore::parse(&text))
        });
        for e in entries {
            let action_s = e.get("action").and_then(Value::as_str).unwrap_or("");
            let Some(action) = Action::parse(action_s) else {
                bail!("service {name:?}: invalid develop.watch action {action_s:?}: use sync, sync+restart, sync+exec, restart or rebuild");
            };
            let Some(path) = e.get("path").and_then(Value::as_str).filter(|p| !p.is_empty()) else {
                bail!("service {name:?}: watch rules MUST define a path");
            };
            let path = canonical(Path::new(path));
            if action == Action::Rebuild && s.build.is_none() {
                bail!("can't watch service {name:?} with action rebuild without a build context");
            }
            let exec = match e.get("exec") {
                Some(x) if action == Action::SyncExec => Some(exec_spec(x)),
                _ => None,
            };
            if action == Action::SyncExec && exec.as_ref().is_none_or(|x| x.argv.is_empty()) {
                bail!("can't watch with action \"sync+exec\" on service {name} without a command");
            }
            let bound = action.syncs()
                && s.volumes
                    .iter()
                    .any(|v| v.kind == "bind" && v.source.as_deref().is_some_and(|src| path.starts_with(canonical(Path::new(src)))));
            if bound {
                eprintln!("WARN[0000] path '{}' also declared by a bind mount volume, this path won't be monitored!", path.display());
            }
            let include = strings(e.get("include"));
            out.push(Rule {
                service: name.clone(),
                action,
                path,
                target: e.get("target").and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_string),
                ignore: Ignore::parse(&strings(e.get("ignore")).join("\n")),
                include: (!include.is_empty()).then(|| Ignore::parse(&include.join("\n"))),
                dockerignore: dockerignore.clone(),
                exec,
                initial_sync: e.get("initial_sync").and_then(Value::as_bool).unwrap_or(false),
                watched: !bound,
            });
        }
    }
    if !out.iter().any(|r| r.watched) {
        bail!("none of the selected services is configured for watch, consider setting a 'develop' section");
    }
    Ok(out)
}

/// A path with its symlinks resolved when it exists (as compose's), else as given.
fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// A `sync+exec` hook's command, as `exec` would run it.
fn exec_spec(x: &Value) -> ExecSpec {
    let argv = match x.get("command") {
        Some(Value::String(s)) => crate::cli::compose::exec_run::shell_words(s),
        v => strings(v),
    };
    let env = match x.get("environment") {
        Some(Value::Object(m)) => {
            m.iter().map(|(k, v)| format!("{k}={}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))).collect()
        }
        v => strings(v),
    };
    ExecSpec {
        argv,
        env,
        user: x.get("user").and_then(Value::as_str).map(str::to_string),
        workdir: x.get("working_dir").and_then(Value::as_str).map(str::to_string),
        tty: false,
        privileged: x.get("privileged").and_then(Value::as_bool).unwrap_or(false),
    }
}

/// Temporary files editors write next to the ones they save (compose's ephemeral patterns).
fn ephemeral(name: &str) -> bool {
    const PATTERNS: &[&str] =
        &[".*.swp", ".*.swx", "4913", ".#*", "#*#", "*~", "*___jb_tmp___", "*___jb_old___", ".*.kate-swp", ".~lock.*#"];
    PATTERNS.iter().any(|p| glob_match(p, name))
}

impl Rule {
    /// Where `host` goes in the container (`Some(None)` for a rule without a target), or `None`
    /// when the rule does not take it.
    fn matches(&self, host: &Path) -> Option<Option<String>> {
        let rel = host.strip_prefix(&self.path).ok()?;
        let rel_s = rel.to_string_lossy();
        if let Some(inc) = &self.include {
            if !rel_s.is_empty() && !inc.excluded(&rel_s) {
                return None;
            }
        }
        if (!rel_s.is_empty() && self.ignore.excluded(&rel_s)) || rel.components().any(|c| c == Component::Normal(".git".as_ref())) {
            return None;
        }
        if host.file_name().and_then(|n| n.to_str()).is_some_and(ephemeral) {
            return None;
        }
        if let Some((ctx, ig)) = &self.dockerignore {
            if let Ok(r) = host.strip_prefix(ctx) {
                if ig.excluded(&r.to_string_lossy()) {
                    return None;
                }
            }
        }
        Some(self.target.as_ref().map(|t| if rel_s.is_empty() { t.clone() } else { format!("{}/{}", t.trim_end_matches('/'), rel_s) }))
    }
}

/// compose's `%q` of a list of service names: `["web" "db"]`.
pub fn run(g: &GlobalOpts, a: WatchArgs) -> anyhow::Result<i32> {
    let t = converge::Loaded::load(g)?;
    let p = t.project();
    let rules = rules(p, &a.services)?;
    if !a.no_up {
        let create = CreateArgs { services: a.services.clone(), quiet_build: a.quiet, dry_run: a.dry_run, ..Default::default() };
        let code = lifecycle::up(g, UpArgs { create, detach: true, ..Default::default() })?;
        if code != 0 {
            return Ok(code);
        }
    }
    if a.dry_run || g.dry_run {
        return Ok(0);
    }
    sys::catch_interrupts(true);
    let base = sys::interrupts();
    let w = Watch { g: g.clone(), target: t.into_target(), rules, prune: a.prune, quiet: a.quiet, prefix: String::new() };
    w.start()?.serve(|| sys::interrupts() > base)?;
    // As compose: interrupted by Ctrl-C, the project left as it is.
    Ok(130)
}

/// `up --watch`: starts watching (`Watch enabled` comes before the logs, as compose's), then
/// handles changes in a thread while `up` streams the logs; the process's end ends it.
pub(crate) fn spawn(g: &GlobalOpts, t: &Target, rules: Vec<Rule>) -> anyhow::Result<()> {
    let mark = if query::use_color(g) { "\x1b[92m        ⦿ \x1b[0m" } else { "        ⦿ " };
    let w = Watch {
        g: g.clone(),
        target: Target { root: t.root.clone(), project: t.project.clone(), name: t.name.clone() },
        rules,
        prune: false,
        quiet: false,
        prefix: mark.to_string(),
    };
    let started = w.start()?;
    std::thread::spawn(move || {
        if let Err(e) = started.serve(|| false) {
            eprintln!("WARN[0000] Watch disabled with errors: {e:#}");
        }
    });
    Ok(())
}

struct Watch {
    g: GlobalOpts,
    target: Target,
    rules: Vec<Rule>,
    prune: bool,
    quiet: bool,
    /// Before each line the watch prints: nothing for `watch`, compose's watch logger mark
    /// for `up --watch`, whose output it shares with the containers' logs.
    prefix: String,
}

/// A watch that watches: its events arrive on `rx` while `_watcher` lives.
struct Started {
    w: Watch,
    _watcher: notify::RecommendedWatcher,
    rx: mpsc::Receiver<PathBuf>,
}

impl Started {
    /// Handles batches of changes until `stop` says so (checked every 100 ms).
    fn serve(self, stop: impl Fn() -> bool) -> anyhow::Result<()> {
        let mut batch: BTreeSet<PathBuf> = BTreeSet::new();
        let mut last = Instant::now();
        loop {
            if stop() {
                return Ok(());
            }
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(p) => {
                    batch.insert(p);
                    last = Instant::now();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the file watcher stopped"),
            }
            if !batch.is_empty() && last.elapsed() >= DEBOUNCE {
                let b = std::mem::take(&mut batch);
                if let Err(e) = self.w.handle(&b) {
                    eprintln!("WARN[0000] Error handling changed files: {e:#}");
                }
            }
        }
    }
}

impl Watch {
    /// Runs the initial syncs, starts watching, and prints `Watch enabled`.
    fn start(self) -> anyhow::Result<Started> {
        for r in self.rules.iter().filter(|r| r.initial_sync && r.action.syncs() && r.watched) {
            let files = initial_files(r);
            if let Err(e) = self.sync(&r.service, &files) {
                eprintln!("WARN[0000] Error handling changed files: {e:#}");
            }
        }
        let (tx, rx) = mpsc::channel::<PathBuf>();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else { return };
            // Opening or reading a file (as the sync does) is no change.
            if matches!(ev.kind, notify::EventKind::Access(_)) {
                return;
            }
            for p in ev.paths {
                let _ = tx.send(p);
            }
        })
        .context("cannot start watching files (inotify)")?;
        let mut seen = BTreeSet::new();
        for r in self.rules.iter().filter(|r| r.watched) {
            let (dir, mode) = watch_point(&r.path);
            if seen.insert((dir.clone(), mode == notify::RecursiveMode::Recursive)) {
                watcher
                    .watch(&dir, mode)
                    .with_context(|| format!("cannot watch {}: check that it exists and is readable", dir.display()))?;
            }
        }
        self.log("Watch enabled");
        Ok(Started { w: self, _watcher: watcher, rx })
    }

    /// A line of the watch's own output (prefixed as compose's watch logger under `up --watch`).
    fn log(&self, line: &str) {
        println!("{}{line}", self.prefix);
    }

    /// One batch of changed paths, in compose's order: rebuild, sync, restart, exec.
    fn handle(&self, batch: &BTreeSet<PathBuf>) -> anyhow::Result<()> {
        let mut rebuild = BTreeSet::new();
        let mut restart = BTreeSet::new();
        let mut sync: BTreeMap<String, Vec<(PathBuf, String)>> = BTreeMap::new();
        let mut exec: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        for host in batch {
            for (i, r) in self.rules.iter().enumerate() {
                if !r.watched {
                    continue;
                }
                let Some(dest) = r.matches(host) else { continue };
                if r.action.syncs() {
                    if let Some(d) = dest {
                        sync.entry(r.service.clone()).or_default().push((host.clone(), d));
                    }
                }
                match r.action {
                    Action::Rebuild => {
                        rebuild.insert(r.service.clone());
                    }
                    Action::Restart | Action::SyncRestart => {
                        restart.insert(r.service.clone());
                    }
                    Action::SyncExec => {
                        exec.entry(r.service.clone()).or_default().insert(i);
                    }
                    Action::Sync => {}
                }
            }
        }
        if !rebuild.is_empty() {
            self.rebuild(&rebuild.into_iter().collect::<Vec<_>>())?;
        }
        for (service, files) in &sync {
            self.log(&format!("Syncing service {service:?} after {} changes were detected", files.len()));
            self.sync(service, files)?;
        }
        if !restart.is_empty() {
            let services: Vec<String> = restart.into_iter().collect();
            let code = lifecycle::restart(&self.g, &services, false, None, false)?;
            if code != 0 {
                bail!("cannot restart service(s) {}", go_quote_list(&services));
            }
            self.log(&format!("service(s) {} restarted", go_quote_list(&services)));
        }
        for (service, idx) in exec {
            for i in idx {
                let spec = self.rules[i].exec.clone().expect("sync+exec rules have a command");
                for c in self.running(&service) {
                    let code = exec_in(&self.target.root, &c.cfg.id, spec.clone())?;
                    if code != 0 {
                        bail!("exit code {code}");
                    }
                }
            }
        }
        Ok(())
    }

    fn running(&self, service: &str) -> Vec<query::Ctr> {
        query::containers(&self.target.root, &self.target.name, OneOff::Exclude, false, &[service.to_string()])
            .into_iter()
            .filter(|c| c.running())
            .collect()
    }

    /// Copies the files that exist into the service's running containers and deletes the others
    /// there (`rm -rf`, as compose).
    fn sync(&self, service: &str, files: &[(PathBuf, String)]) -> anyhow::Result<()> {
        let (present, gone): (Vec<_>, Vec<_>) = files.iter().partition(|(h, _)| h.symlink_metadata().is_ok());
        for c in self.running(service) {
            let run = |argv: Vec<String>| -> anyhow::Result<()> {
                let spec = ExecSpec { argv, env: Vec::new(), user: None, workdir: None, tty: false, privileged: false };
                let code = exec_in(&self.target.root, &c.cfg.id, spec)?;
                if code != 0 {
                    bail!("exit code {code}");
                }
                Ok(())
            };
            if !gone.is_empty() {
                let mut argv: Vec<String> = vec!["rm".into(), "-rf".into(), "--".into()];
                argv.extend(gone.iter().map(|(_, d)| d.clone()));
                run(argv).with_context(|| format!("cannot delete synced files in container {}", c.cfg.name))?;
            }
            if present.is_empty() {
                continue;
            }
            let parents: BTreeSet<String> = present
                .iter()
                .filter_map(|(_, d)| Path::new(d).parent().map(|p| p.to_string_lossy().into_owned()))
                .filter(|p| p != "/" && !p.is_empty())
                .collect();
            if !parents.is_empty() {
                let mut argv: Vec<String> = vec!["mkdir".into(), "-p".into(), "--".into()];
                argv.extend(parents);
                run(argv).with_context(|| format!("cannot create the folders to sync into in container {}", c.cfg.name))?;
            }
            for (host, dest) in &present {
                // A file that went away meanwhile is the next batch's deletion.
                if host.symlink_metadata().is_err() {
                    continue;
                }
                ContainerFs::open(&self.target.root, &c.cfg, &c.st)
                    .and_then(|fs| fs.sync_in(host, dest))
                    .with_context(|| format!("cannot sync {} to {}:{dest}", host.display(), c.cfg.name))?;
            }
        }
        Ok(())
    }

    /// Builds the services' images, then recreates them as `up --no-deps SERVICE...` does.
    fn rebuild(&self, services: &[String]) -> anyhow::Result<()> {
        self.log(&format!("Rebuilding service(s) {} after changes were detected...", go_quote_list(services)));
        let t = converge::Loaded::load(&self.g)?;
        let p = t.project();
        let io = converge::ImageOptions { build: true, quiet_build: self.quiet, ..Default::default() };
        let built = converge::images(&self.g, p, services, io);
        let (store, _) = match built {
            Ok(x) => x,
            Err(e) => {
                self.log(&format!("Build failed. Error: {e:#}"));
                return Err(e);
            }
        };
        if self.prune {
            if let Err(e) = store.prune(false) {
                eprintln!("WARN[0000] cannot prune dangling images: {e}");
            }
        }
        self.log(&format!("service(s) {} successfully built", go_quote_list(services)));
        let create = CreateArgs { services: services.to_vec(), force_recreate: true, quiet_build: self.quiet, ..Default::default() };
        let code = lifecycle::up(&self.g, UpArgs { create, detach: true, no_deps: true, ..Default::default() })?;
        if code != 0 {
            self.log(&format!("Application failed to start after update. Error: exit code {code}"));
        }
        Ok(())
    }
}

/// `exec` in a thread of its own: it blocks SIGINT and SIGTERM in its thread to forward them to
/// the process, and the watch must still see Ctrl-C afterwards.
fn exec_in(root: &crate::state::StateRoot, id: &str, spec: ExecSpec) -> anyhow::Result<i32> {
    std::thread::scope(|sc| {
        sc.spawn(|| {
            ops::exec(root, id, spec, ops::ExecOptions { interactive: false, tty: false, detach: false }).map_err(query::runtime_err)
        })
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("exec in container {id} panicked")))
    })
}

/// What to give inotify for a rule's path: a folder recursively, a file through its folder, a
/// path not there yet through its nearest existing ancestor.
fn watch_point(p: &Path) -> (PathBuf, notify::RecursiveMode) {
    match p.metadata() {
        Ok(m) if m.is_dir() => (p.to_path_buf(), notify::RecursiveMode::Recursive),
        _ => {
            let mut dir = p.parent().unwrap_or(Path::new("/")).to_path_buf();
            while !dir.is_dir() {
                match dir.parent() {
                    Some(d) => dir = d.to_path_buf(),
                    None => break,
                }
            }
            (dir, notify::RecursiveMode::NonRecursive)
        }
    }
}

/// `initial_sync`: every file under the rule's path the rule takes, but the Dockerfile and
/// compose files (as compose).
fn initial_files(r: &Rule) -> Vec<(PathBuf, String)> {
    const SKIP: &[&str] = &["Dockerfile", "compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"];
    let mut out = Vec::new();
    let mut stack = vec![r.path.clone()];
    while let Some(p) = stack.pop() {
        let Ok(md) = p.symlink_metadata() else { continue };
        if p != r.path && r.matches(&p).is_none() {
            continue;
        }
        if md.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
            continue;
        }
        if p.file_name().and_then(|n| n.to_str()).is_some_and(|n| SKIP.contains(&n)) {
            continue;
        }
        if let Some(Some(dest)) = r.matches(&p) {
            out.push((p, dest));
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, target: Option<&str>, ignore: &str) -> Rule {
        Rule {
            service: "web".into(),
            action: Action::Sync,
            path: PathBuf::from(path),
            target: target.map(str::to_string),
            ignore: Ignore::parse(ignore),
            include: None,
            dockerignore: Some((PathBuf::from("/p"), Ignore::parse("secret.txt\n"))),
            exec: None,
            initial_sync: false,
            watched: true,
        }
    }

    #[test]
    fn paths_map_under_the_target() {
        let r = rule("/p/app", Some("/srv/app"), "");
        assert_eq!(r.matches(Path::new("/p/app/a/b.txt")), Some(Some("/srv/app/a/b.txt".into())));
        assert_eq!(r.matches(Path::new("/p/app")), Some(Some("/srv/app".into())));
        assert_eq!(r.matches(Path::new("/p/apple")), None);
        assert_eq!(r.matches(Path::new("/p/other")), None);
        assert_eq!(rule("/p/app", None, "").matches(Path::new("/p/app/x")), Some(None));
    }

    #[test]
    fn ignores_as_compose() {
        let r = rule("/p", Some("/srv"), "*.tmp\nnode_modules/\n");
        assert_eq!(r.matches(Path::new("/p/x.tmp")), None);
        assert_eq!(r.matches(Path::new("/p/node_modules/a/b.js")), None);
        assert_eq!(r.matches(Path::new("/p/.git/HEAD")), None);
        assert_eq!(r.matches(Path::new("/p/.main.rs.swp")), None);
        assert_eq!(r.matches(Path::new("/p/main.rs~")), None);
        assert_eq!(r.matches(Path::new("/p/secret.txt")), None, "the build context's .dockerignore");
        assert!(r.matches(Path::new("/p/sub/x.txt")).is_some());
        let mut inc = rule("/p", Some("/srv"), "");
        inc.include = Some(Ignore::parse("*.js\n"));
        assert!(inc.matches(Path::new("/p/a.js")).is_some());
        assert_eq!(inc.matches(Path::new("/p/a.css")), None);
    }
}
