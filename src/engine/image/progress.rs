//! Pull and push progress: an indicatif bar per layer on a terminal, plain status lines
//! otherwise (as `docker pull` prints them when its output is not a terminal), or nothing.

use std::io::Write;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar per layer (stdout is a terminal).
    Tty,
    /// One line per status change.
    Plain,
    /// Nothing but errors.
    Quiet,
}

/// Where progress goes; cheap to clone and share with the tasks of one pull or push.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    mode: ProgressMode,
    multi: Option<MultiProgress>,
    /// Plain lines go to stderr instead of stdout (compose-level commands).
    to_stderr: bool,
    lock: Mutex<()>,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Self {
        Self::with_target(mode, false)
    }

    /// Progress printed on stderr (as `docker compose pull` does).
    pub fn stderr(mode: ProgressMode) -> Self {
        Self::with_target(mode, true)
    }

    fn with_target(mode: ProgressMode, to_stderr: bool) -> Self {
        let multi = (mode == ProgressMode::Tty).then(|| {
            let target = if to_stderr { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::stdout() };
            MultiProgress::with_draw_target(target)
        });
        Progress { inner: Arc::new(Inner { mode, multi, to_stderr, lock: Mutex::new(()) }) }
    }

    pub fn mode(&self) -> ProgressMode {
        self.inner.mode
    }

    /// A line of text (above the bars on a terminal).
    pub fn line(&self, text: &str) {
        let this = &self.inner;
        match this.mode {
            ProgressMode::Quiet => {}
            ProgressMode::Tty => {
                if let Some(m) = &this.multi {
                    let _ = m.println(text);
                }
            }
            ProgressMode::Plain => {
                let _g = this.lock.lock();
                if this.to_stderr {
                    let _ = writeln!(std::io::stderr(), "{text}");
                } else {
                    let _ = writeln!(std::io::stdout(), "{text}");
                }
            }
        }
    }

    /// The progress of one layer, named by its short id.
    pub fn layer(&self, id: &str, total: u64) -> LayerProgress {
        let bar = self.inner.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(total));
            b.set_style(
                ProgressStyle::with_template("{prefix}: {msg:<18} [{bar:30}] {bytes}/{total_bytes}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            b.set_prefix(id.to_string());
            b
        });
        LayerProgress { p: self.clone(), id: id.to_string(), bar }
    }
}

pub struct LayerProgress {
    p: Progress,
    id: String,
    bar: Option<ProgressBar>,
}

impl LayerProgress {
    /// A new status ("Pulling fs layer", "Download complete", "Pull complete").
    pub fn status(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.set_message(msg.to_string()),
            None => self.p.line(&format!("{}: {msg}", self.id)),
        }
    }
    /// A status shown on the bar only (plain output skips it, as Docker's does).
    pub fn bar_status(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_string());
        }
    }
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }
    pub fn reset(&self) {
        if let Some(b) = &self.bar {
            b.set_position(0);
        }
    }
    /// The final status; the bar stays on screen with it.
    pub fn finish(&self, msg: &str) {
        match &self.bar {
            Some(b) => {
                b.set_style(ProgressStyle::with_template("{prefix}: {msg}").expect("a valid template"));
                b.finish_with_message(msg.to_string());
            }
            None => self.p.line(&format!("{}: {msg}", self.id)),
        }
    }
}
