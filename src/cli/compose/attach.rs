//! Attached `up` (no `-d`): the services' logs, merged and prefixed `web-1  | ` in colour as
//! compose prints them, following containers that restart or appear (a recreate by another
//! `up`). It ends when every attached container has exited; `--abort-on-container-exit`,
//! `--abort-on-container-failure` and `--exit-code-from` stop the project at the first exit. The
//! first Ctrl-C stops the project gracefully, the second kills it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::converge::{self, Loaded, Run, Target};
use super::lifecycle::UpArgs;
use crate::cli::GlobalOpts;
use crate::engine::runtime::logs::ReadOptions;
use crate::engine::runtime::{Status, ops};
use crate::project::observe;
use crate::project::plan::{self, Desired};
use crate::util::sys;

/// compose's rainbow: cyan, yellow, green, magenta, blue, then their intense versions.
const COLORS: &[&str] = &["36", "33", "32", "35", "34", "36;1", "33;1", "32;1", "35;1", "34;1"];

struct Printer {
    color: bool,
    prefix: bool,
    timestamps: bool,
    width: AtomicUsize,
    out: Mutex<()>,
}

impl Printer {
    fn line(&self, name: &str, color: &str, time: &chrono::DateTime<chrono::Utc>, text: &str) {
        let mut head = String::new();
        if self.prefix {
            let w = self.width.load(Ordering::Relaxed);
            let p = format!("{name:<w$} | ");
            if self.color {
                head = format!("\x1b[{color}m{p}\x1b[0m");
            } else {
                head = p;
            }
        }
        if self.timestamps {
            head.push_str(&time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
            head.push(' ');
        }
        let _g = self.out.lock();
        let mut o = std::io::stdout().lock();
        for l in text.strip_suffix('\n').unwrap_or(text).split('\n') {
            let _ = writeln!(o, "{head}{l}");
        }
    }

    fn status(&self, text: &str) {
        let _g = self.out.lock();
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{text}");
    }
}

/// A container's exit, from its follower.
struct Exit {
    service: String,
    code: i32,
    /// The container was removed rather than exited (recreated by another command).
    gone: bool,
}

/// Follows one container's log until it stops for good (restarts are followed through).
fn follow(
    root: crate::state::StateRoot,
    id: String,
    name: String,
    service: String,
    color: String,
    p: Arc<Printer>,
    tx: mpsc::Sender<Exit>,
) {
    // This run's output only (an earlier run of the same container is in the log too).
    let mut since: Option<chrono::DateTime<chrono::Utc>> = ops::state_of(&root, &id)
        .ok()
        .and_then(|st| chrono::DateTime::parse_from_rfc3339(&st.started_at).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .filter(|t| t.timestamp() > 0);
    loop {
        let opts = ReadOptions { tail: None, since, until: None, follow: true };
        let mut last = since;
        let r = ops::logs(&root, &id, &opts, &mut |rec, t| {
            p.line(&name, &color, t, &rec.log);
            last = Some(*t + chrono::Duration::nanoseconds(1));
            Ok(())
        });
        since = last;
        let st = match (r, ops::state_of(&root, &id)) {
            (Ok(()), Ok(st)) => st,
            _ => {
                // Removed (recreated elsewhere): the monitor follows the new one.
                let _ = tx.send(Exit { service, code: 0, gone: true });
                return;
            }
        };
        if st.status.is_active() {
            continue;
        }
        p.status(&format!("{name} exited with code {}", st.exit_code));
        let _ = tx.send(Exit { service, code: st.exit_code, gone: false });
        return;
    }
}

/// Runs attached mode after the project was brought up; returns `up`'s exit code.
pub fn attached(g: &GlobalOpts, t: &Loaded, desired: &Desired, selected: &[String], a: &UpArgs) -> anyhow::Result<i32> {
    sys::catch_interrupts(false);
    let base = sys::interrupts();
    let p = t.project();
    // Which services: --attach, else those named (and their dependencies with
    // --attach-dependencies), else all; without --no-attach ones and `attach: false`.
    let mut services: BTreeSet<String> = if !a.attach.is_empty() {
        a.attach.iter().cloned().collect()
    } else if !a.create.services.is_empty() && !a.attach_dependencies {
        a.create.services.iter().cloned().collect()
    } else {
        selected.iter().cloned().collect()
    };
    services.retain(|s| !a.no_attach.contains(s) && p.services.get(s).is_none_or(|x| x.attach != Some(false)));
    let stdout_tty = std::io::stdout().is_terminal();
    let printer = Arc::new(Printer {
        color: !a.no_color && stdout_tty && g.ansi != crate::cli::Ansi::Never && std::env::var_os("NO_COLOR").is_none()
            || g.ansi == crate::cli::Ansi::Always && !a.no_color,
        prefix: !a.no_log_prefix,
        timestamps: a.timestamps,
        width: AtomicUsize::new(0),
        out: Mutex::new(()),
    });
    let short = |name: &str| name.strip_prefix(&format!("{}-", t.name)).unwrap_or(name).to_string();
    let (tx, rx) = mpsc::channel::<Exit>();
    let mut followed: BTreeSet<String> = BTreeSet::new();
    let mut colors: BTreeMap<String, String> = BTreeMap::new();
    let mut running = 0usize;
    let mut spawn = |c: &observe::Container, followed: &mut BTreeSet<String>| -> Option<String> {
        if followed.contains(&c.id) {
            return None;
        }
        followed.insert(c.id.clone());
        let name = short(&c.name);
        let n = colors.len();
        let color = colors.entry(name.clone()).or_insert_with(|| COLORS[n % COLORS.len()].to_string()).clone();
        let w = printer.width.load(Ordering::Relaxed).max(name.chars().count() + 1);
        printer.width.store(w, Ordering::Relaxed);
        let (root, id, svc, pr, tx) = (t.root.clone(), c.id.clone(), c.service.clone(), printer.clone(), tx.clone());
        let nm = name.clone();
        std::thread::spawn(move || follow(root, id, nm, svc, color, pr, tx));
        Some(name)
    };
    let o = t.observe()?;
    let mut names = Vec::new();
    let mut initial: Vec<&observe::Container> = o.containers.iter().filter(|c| !c.oneoff && services.contains(&c.service)).collect();
    initial.sort_by(|x, y| x.service.cmp(&y.service).then(x.number.cmp(&y.number)));
    // The width first, so that the first lines align.
    for c in &initial {
        let w = printer.width.load(Ordering::Relaxed).max(short(&c.name).chars().count() + 1);
        printer.width.store(w, Ordering::Relaxed);
    }
    println!("Attaching to {}", initial.iter().map(|c| short(&c.name)).collect::<Vec<_>>().join(", "));
    for c in &initial {
        if let Some(n) = spawn(c, &mut followed) {
            names.push(n);
            running += 1;
        }
    }

    let abort = a.abort_on_container_exit || a.abort_on_container_failure;
    let mut exit_code: Option<i32> = None;
    let mut from_code: Option<i32> = None;
    let mut stopping: Option<std::thread::JoinHandle<()>> = None;
    let mut killed = false;
    let mut interrupted = false;
    let mut last_scan = Instant::now();
    let stop_all = |why: &str| -> std::thread::JoinHandle<()> {
        eprintln!("{why}");
        let g = g.clone();
        let name = t.name.clone();
        let root = t.root.clone();
        let timeout = a.timeout;
        let desired = desired.clone();
        let services: Vec<String> = selected.to_vec();
        std::thread::spawn(move || {
            let t = Target { root, project: None, name };
            let Ok(o) = t.observe() else { return };
            let plan = plan::stop(&o, &plan::graph(Some(&desired), &o), &services, timeout);
            let images = BTreeMap::new();
            let run = Run {
                g: &g,
                target: &t,
                images: &images,
                store: None,
                title: "Stopping",
                deadline: None,
                timeout: None,
                renew_anon_volumes: false,
            };
            let report = converge::run_plan(&run, &plan);
            converge::report(&t, &report, None);
        })
    };
    loop {
        let sig = sys::interrupts() - base;
        if sig >= 1 && stopping.is_none() {
            interrupted = true;
            stopping = Some(stop_all("Gracefully Stopping... press Ctrl+C again to force"));
        }
        if sig >= 2 && !killed {
            killed = true;
            eprintln!("Killing...");
            if let Ok(o) = t.observe() {
                for c in o.containers.iter().filter(|c| c.is_active() && selected.contains(&c.service)) {
                    if let Ok(Some(pid)) = ops::init_pid(&t.root, &c.id) {
                        let _ = pid.kill();
                    }
                }
            }
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(e) if e.gone => running -= 1,
            Ok(e) => {
                running -= 1;
                if a.exit_code_from.as_deref() == Some(e.service.as_str()) && from_code.is_none() {
                    from_code = Some(e.code);
                }
                let trigger = abort && (a.abort_on_container_exit || e.code != 0);
                if trigger && stopping.is_none() {
                    exit_code = Some(e.code);
                    let why =
                        if printer.color { "\x1b[31;1mAborting on container exit...\x1b[0m" } else { "Aborting on container exit..." };
                    stopping = Some(stop_all(why));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
        }
        // New or recreated containers of the attached services are followed too.
        if last_scan.elapsed() > Duration::from_millis(500) && stopping.is_none() {
            last_scan = Instant::now();
            if let Ok(o) = t.observe() {
                for c in o.containers.iter().filter(|c| !c.oneoff && services.contains(&c.service) && c.status == Status::Running) {
                    if spawn(c, &mut followed).is_some() {
                        running += 1;
                    }
                }
            }
        }
        let stop_done = stopping.as_ref().is_none_or(|h| h.is_finished());
        if running == 0 && stop_done {
            break;
        }
    }
    if let Some(h) = stopping {
        let _ = h.join();
    }
    if a.exit_code_from.is_some() {
        return Ok(from_code.unwrap_or(0));
    }
    if let Some(c) = exit_code {
        return Ok(c);
    }
    Ok(if interrupted { 130 } else { 0 })
}
