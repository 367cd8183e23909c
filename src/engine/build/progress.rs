//! Build progress as `docker compose build --progress plain` prints it: numbered steps
//! (`#N [service stage k/n] INSTRUCTION`), each ending with `CACHED`, `DONE 0.3s` or `ERROR: ...`,
//! and the output of RUN steps prefixed with the seconds since the step started.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Nothing but errors (`-q`).
    Quiet,
    Plain,
}

/// One numbered step.
#[derive(Debug)]
pub struct Vertex {
    pub n: usize,
    pub name: String,
    started: Instant,
}

impl Vertex {
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

/// Prints the progress of one or several builds (the step numbers run on across services).
/// Builds that run at once each print through their own [`Printer::fork`]: one counter and one
/// output, written a whole line (or block) at a time, so that their lines interleave as
/// BuildKit's plain progress does, each tagged with its step number.
pub struct Printer {
    mode: Mode,
    shared: Arc<Mutex<Shared>>,
    /// Steps of this printer's build begun and not yet ended.
    open: Vec<usize>,
}

struct Shared {
    next: usize,
    out: Box<dyn Write + Send>,
}

impl Printer {
    /// Progress on stdout, as `docker compose build` prints it.
    pub fn stdout(mode: Mode) -> Printer {
        Printer::to_writer(mode, Box::new(std::io::stdout()))
    }
    /// Progress into any writer (tests, libraries).
    pub fn to_writer(mode: Mode, out: Box<dyn Write + Send>) -> Printer {
        Printer { mode, shared: Arc::new(Mutex::new(Shared { next: 1, out })), open: Vec::new() }
    }
    /// A printer for another build running at the same time: the same output and step numbers,
    /// its own open steps.
    pub fn fork(&self) -> Printer {
        Printer { mode: self.mode, shared: self.shared.clone(), open: Vec::new() }
    }
    pub fn mode(&self) -> Mode {
        self.mode
    }
    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        // A thread that panicked while printing left nothing half-done that matters here.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn write(&mut self, s: &str) {
        if self.mode == Mode::Plain {
            let mut sh = self.shared();
            let _ = sh.out.write_all(s.as_bytes());
            let _ = sh.out.flush();
        }
    }
    /// Starts step `name` (`[app base 2/3] COPY a /b`).
    pub fn begin(&mut self, name: String) -> Vertex {
        let n = {
            let mut sh = self.shared();
            let n = sh.next;
            sh.next += 1;
            if self.mode == Mode::Plain {
                let _ = sh.out.write_all(format!("#{n} {name}\n").as_bytes());
                let _ = sh.out.flush();
            }
            n
        };
        self.open.push(n);
        Vertex { n, name, started: Instant::now() }
    }
    /// A line of a step's output, with the seconds since it started.
    pub fn log(&mut self, v: &Vertex, line: &str) {
        self.write(&format!("#{} {:.3} {line}\n", v.n, v.elapsed()));
    }
    /// A detail of a step.
    pub fn info(&mut self, v: &Vertex, text: &str) {
        self.write(&format!("#{} {text}\n", v.n));
    }
    pub fn cached(&mut self, v: Vertex) {
        self.open.retain(|n| *n != v.n);
        self.write(&format!("#{} CACHED\n\n", v.n));
    }
    pub fn done(&mut self, v: Vertex) {
        self.open.retain(|n| *n != v.n);
        self.write(&format!("#{} DONE {:.1}s\n\n", v.n, v.elapsed()));
    }
    pub fn error(&mut self, v: Vertex, msg: &str) {
        self.open.retain(|n| *n != v.n);
        self.write(&format!("#{} ERROR: {msg}\n\n", v.n));
    }
    /// Ends the steps left open by a build that failed, with its error.
    pub fn abort(&mut self, msg: &str) {
        for n in std::mem::take(&mut self.open).into_iter().rev() {
            self.write(&format!("#{n} ERROR: {msg}\n\n"));
        }
    }
    /// A line outside any step (` app  Built`, warnings).
    pub fn line(&mut self, text: &str) {
        self.write(&format!("{text}\n"));
    }
    /// Shows the output of a failed step; printed even in quiet mode (on stderr then).
    pub fn failure(&mut self, name: &str, output: &[String]) {
        let mut s = format!("------\n > {name}:\n");
        for l in output {
            s.push_str(l);
            s.push('\n');
        }
        s.push_str("------\n");
        if self.mode == Mode::Quiet {
            let _ = std::io::stderr().write_all(s.as_bytes());
        } else {
            self.write(&s);
        }
    }
}
