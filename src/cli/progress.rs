//! Progress of compose commands, as Docker Compose v2 shows it on stderr: on a terminal, one live
//! line per resource under a `[+] Running 3/4` header (indicatif); otherwise one plain line per
//! event (` Container demo-web-1  Started`); `--progress json` one JSON object per event;
//! `quiet` nothing. Warnings print as compose's logrus lines (`WARN[0000] ...`).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{Ansi, GlobalOpts, Progress as Mode};
use crate::project::execute::{Event, Sink, State};

/// How progress is shown, resolved from `--progress`, `--ansi` and the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tty,
    Plain,
    Json,
    Quiet,
}

pub fn kind(g: &GlobalOpts) -> Kind {
    match g.progress {
        Some(Mode::Quiet) => Kind::Quiet,
        Some(Mode::Json) => Kind::Json,
        Some(Mode::Plain) => Kind::Plain,
        Some(Mode::Tty) if g.ansi != Ansi::Never => Kind::Tty,
        Some(Mode::Tty) => Kind::Plain,
        None | Some(Mode::Auto) => {
            if g.ansi == Ansi::Always || (g.ansi == Ansi::Auto && std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            {
                Kind::Tty
            } else {
                Kind::Plain
            }
        }
    }
}

/// The renderer of one command's progress.
pub struct Progress {
    kind: Kind,
    tty: Option<Tty>,
    out: Mutex<()>,
}

struct Tty {
    multi: MultiProgress,
    header: ProgressBar,
    title: String,
    lines: Mutex<Lines>,
}

#[derive(Default)]
struct Lines {
    order: Vec<String>,
    bars: BTreeMap<String, Line>,
    width: usize,
}

struct Line {
    bar: ProgressBar,
    status: String,
    state: State,
    since: Instant,
    took: Option<Duration>,
}

const SPINNER: &[&str] = &["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", "✔"];

impl Progress {
    /// `title` is the header's verb on a terminal (`Running`, `Stopping`, ...).
    pub fn new(kind: Kind, title: &str) -> Progress {
        let tty = (kind == Kind::Tty).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let header = multi.add(ProgressBar::new_spinner());
            header.set_style(ProgressStyle::with_template("{msg}").expect("a valid template"));
            Tty { multi, header, title: title.to_string(), lines: Mutex::new(Lines::default()) }
        });
        Progress { kind, tty, out: Mutex::new(()) }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// A line of text for the user, above the live lines on a terminal (stderr).
    pub fn println(&self, text: &str) {
        match &self.tty {
            Some(t) => t.multi.suspend(|| eprintln!("{text}")),
            None => {
                let _g = self.out.lock();
                eprintln!("{text}");
            }
        }
    }

    /// Ends the live display (the last state of every line stays on screen).
    pub fn finish(&self) {
        if let Some(t) = &self.tty {
            let lines = t.lines.lock().unwrap_or_else(|e| e.into_inner());
            for l in lines.bars.values() {
                if !l.bar.is_finished() {
                    l.bar.finish();
                }
            }
            if lines.bars.is_empty() {
                t.header.finish_and_clear();
            } else {
                t.header.finish();
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

fn style(state: State) -> ProgressStyle {
    let t = match state {
        State::Working => " {spinner:.blue} {msg}",
        _ => " {msg}",
    };
    ProgressStyle::with_template(t).expect("a valid template").tick_strings(SPINNER)
}

impl Tty {
    fn render(&self, l: &mut Lines) {
        let done = l.bars.values().filter(|x| x.state != State::Working).count();
        let total = l.bars.len();
        let mark = if done == total { "\x1b[34m[+]\x1b[0m" } else { "\x1b[33m[+]\x1b[0m" };
        self.header.set_message(format!("{mark} {} {done}/{total}", self.title));
        let width = l.width;
        for id in &l.order {
            let x = &l.bars[id];
            let (icon, color) = match x.state {
                State::Working => ("", ""),
                State::Done => ("\x1b[32m✔\x1b[0m ", "\x1b[32m"),
                State::Warning => ("\x1b[33m!\x1b[0m ", "\x1b[33m"),
                State::Error => ("\x1b[31m✘\x1b[0m ", "\x1b[31m"),
            };
            let took = x.took.unwrap_or_else(|| x.since.elapsed());
            let msg = format!("{icon}{id:<width$} {color}{}\x1b[0m \x1b[34m{:.1}s\x1b[0m", x.status, took.as_secs_f64());
            x.bar.set_message(msg);
        }
    }

    fn event(&self, e: &Event) {
        let mut l = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let id = format!("{} {}", e.kind, e.name);
        l.width = l.width.max(id.chars().count());
        if !l.bars.contains_key(&id) {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(style(State::Working));
            bar.enable_steady_tick(Duration::from_millis(100));
            l.order.push(id.clone());
            l.bars.insert(id.clone(), Line { bar, status: String::new(), state: State::Working, since: Instant::now(), took: None });
        }
        {
            let x = l.bars.get_mut(&id).expect("inserted above");
            let was = x.state;
            x.status = e.text.clone();
            x.state = e.state;
            if e.state == State::Working {
                if was != State::Working {
                    x.bar.set_style(style(State::Working));
                    x.bar.enable_steady_tick(Duration::from_millis(100));
                    x.took = None;
                }
            } else {
                x.took = Some(x.since.elapsed());
                x.bar.disable_steady_tick();
                x.bar.set_style(style(e.state));
            }
        }
        self.render(&mut l);
        for x in l.bars.values() {
            x.bar.tick();
        }
    }
}

impl Sink for Progress {
    fn event(&self, e: Event) {
        match self.kind {
            Kind::Quiet => {}
            Kind::Tty => {
                if let Some(t) = &self.tty {
                    t.event(&e);
                }
            }
            Kind::Plain => {
                let _g = self.out.lock();
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, " {} {}  {}", e.kind, e.name, e.text);
            }
            Kind::Json => {
                let _g = self.out.lock();
                let mut m = serde_json::Map::new();
                m.insert("id".into(), format!("{} {}", e.kind, e.name).into());
                if e.state == State::Error {
                    m.insert("status".into(), "Error".into());
                    m.insert("text".into(), e.text.clone().into());
                } else {
                    m.insert("status".into(), e.text.clone().into());
                }
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{}", serde_json::Value::Object(m));
            }
        }
    }

    fn warning(&self, msg: &str) {
        match self.kind {
            Kind::Quiet => {}
            Kind::Json => {
                let _g = self.out.lock();
                eprintln!("{}", serde_json::json!({"status": "Warning", "text": msg}));
            }
            Kind::Tty => self.println(&format!("\x1b[33mWARN\x1b[0m[0000] {msg}")),
            Kind::Plain => self.println(&format!("WARN[0000] {msg}")),
        }
    }
}
