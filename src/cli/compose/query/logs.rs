//! `berth logs`: the project's container logs, merged in time order, each line prefixed
//! `<service>-<n>  | ` in the container's color, as `docker compose logs` prints them.
//!
//! Each container's json-file log (and its rotated files) is read as a stream; the streams are
//! merged by record time. With `-f` the command then follows every file (surviving rotation),
//! follows containers that restart (same log), are recreated or added by a scale-up (seen on the
//! root's event journal), prints compose's `<name> exited with code N` lines, and ends once none
//! of the selected containers runs.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Args;

use super::{Ctr, OneOff};
use crate::cli::GlobalOpts;
use crate::engine::events;
use crate::engine::runtime::logs::{self, Record, parse_time};
use crate::engine::runtime::state::Paths;
use crate::engine::runtime::{Status, ops};
use crate::labels;
use crate::state::StateRoot;

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    follow: bool,
    /// index of the container if service has multiple replicas
    #[arg(long, default_value_t = 0)]
    index: u32,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)
    #[arg(long)]
    until: Option<String>,
    /// Produce monochrome output
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    no_color: bool,
    /// Don't print prefix in logs
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    no_log_prefix: bool,
    /// Show timestamps
    #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    timestamps: bool,
    /// Number of lines to show from the end of the logs for each container
    #[arg(short = 'n', long, default_value = "all", allow_negative_numbers = true)]
    tail: String,
    #[arg(value_name = "SERVICE")]
    service: Vec<String>,
}

/// compose's rainbow: cyan, yellow, green, magenta, blue, then their bright forms.
const RAINBOW: [&str; 10] = ["36", "33", "32", "35", "34", "36;1", "33;1", "32;1", "35;1", "34;1"];

#[derive(Debug, Clone, Default)]
struct Filter {
    tail: Option<usize>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

impl Filter {
    fn wanted(&self, t: &DateTime<Utc>) -> bool {
        self.since.is_none_or(|s| *t >= s) && self.until.is_none_or(|u| *t <= u)
    }
}

pub fn run(g: &GlobalOpts, a: LogsArgs) -> anyhow::Result<i32> {
    if a.index > 0 && a.service.len() != 1 {
        anyhow::bail!("--index requires one service to be selected");
    }
    let now = Utc::now();
    let filter = Filter {
        tail: match a.tail.as_str() {
            "all" | "-1" | "" => None,
            n => Some(n.parse().map_err(|_| anyhow::anyhow!("invalid value {n:?} for --tail: a number of lines or \"all\""))?),
        },
        since: a
            .since
            .as_deref()
            .map(|s| {
                parse_time(s, now)
                    .ok_or_else(|| anyhow::anyhow!("invalid value {s:?} for --since: a time (2013-01-02T13:23:37Z) or a duration (42m)"))
            })
            .transpose()?,
        until: a
            .until
            .as_deref()
            .map(|s| {
                parse_time(s, now)
                    .ok_or_else(|| anyhow::anyhow!("invalid value {s:?} for --until: a time (2013-01-02T13:23:37Z) or a duration (42m)"))
            })
            .transpose()?,
    };
    let target = super::Target::project_or_name(g)?;
    target.check_services(&a.service, |_| true)?;
    let mut services = a.service.clone();
    if services.is_empty() {
        if let Some(p) = &target.project {
            // Services with `attach: false` are left out until named.
            services = p.services.values().filter(|s| s.attach != Some(false)).map(|s| s.name.clone()).collect();
        }
    }
    let root = g.state_root();
    // Watch for new containers and exits before listing, so that nothing falls in between.
    let journal = a.follow.then(|| events::Follower::new(&root));
    let list = if a.index > 0 {
        vec![super::specified_container(&root, &target.name, OneOff::Exclude, true, &a.service[0], a.index)?]
    } else {
        super::containers(&root, &target.name, OneOff::Exclude, true, &services)
    };
    let mut p = Printer::new(super::use_color(g) && !a.no_color, !a.no_log_prefix, a.timestamps);
    let mut followed: Vec<Followed> = Vec::new();
    for c in list {
        p.register(&c.log_name());
        followed.push(Followed::new(&root, c, &filter));
    }
    // The logs so far, merged in time order.
    loop {
        let mut best: Option<(usize, DateTime<Utc>)> = None;
        for (i, f) in followed.iter_mut().enumerate() {
            if let Some((_, t)) = f.source.peek() {
                if best.is_none_or(|(_, b)| t < b) {
                    best = Some((i, t));
                }
            }
        }
        let Some((i, _)) = best else { break };
        if let Some((rec, t)) = followed[i].source.next() {
            let name = followed[i].name.clone();
            p.record(&name, &rec, &t)?;
        }
    }
    p.flush()?;
    let Some(mut journal) = journal else { return Ok(0) };
    follow(&root, &target.name, &services, &filter, &mut p, &mut followed, &mut journal)?;
    Ok(0)
}

/// One container being read.
struct Followed {
    id: String,
    name: String,
    ctr: Ctr,
    source: Source,
}

impl Followed {
    fn new(root: &StateRoot, c: Ctr, filter: &Filter) -> Followed {
        let path = Paths::new(root, &c.cfg.id).log();
        Followed { id: c.cfg.id.clone(), name: c.log_name(), source: Source::open(&path, filter.clone()), ctr: c }
    }
}

fn follow(
    root: &StateRoot,
    project: &str,
    services: &[String],
    filter: &Filter,
    p: &mut Printer,
    followed: &mut Vec<Followed>,
    journal: &mut events::Follower,
) -> anyhow::Result<()> {
    // A new container's log is read from its start (compose follows it from its start time).
    let new_filter = Filter { tail: None, since: None, until: filter.until };
    let mut last_scan = Instant::now();
    loop {
        let evs = journal.next(Duration::from_millis(250));
        let mut rescan = last_scan.elapsed() > Duration::from_secs(2);
        for ev in &evs {
            if ev.attr(labels::PROJECT) != Some(project) || ev.attr(labels::ONEOFF) == Some("True") {
                continue;
            }
            let svc = ev.attr(labels::SERVICE).unwrap_or("");
            if !services.is_empty() && !services.iter().any(|s| s == svc) {
                continue;
            }
            match ev.action.as_str() {
                "create" | "start" => rescan |= !followed.iter().any(|f| f.id == ev.id),
                "die" => {
                    // Print what the container wrote before it died, then the status line.
                    drain(followed, p)?;
                    if let Some(f) = followed.iter().find(|f| f.id == ev.id) {
                        let code = ev.attr("exitCode").unwrap_or("0").to_string();
                        let restarting = settled_status(root, &ev.id) == Status::Restarting;
                        let msg =
                            if restarting { format!("exited with code {code} (restarting)") } else { format!("exited with code {code}") };
                        p.status(&f.name, &msg)?;
                    }
                }
                _ => {}
            }
        }
        if rescan {
            last_scan = Instant::now();
            for c in super::containers(root, project, OneOff::Exclude, true, services) {
                if !followed.iter().any(|f| f.id == c.cfg.id) && c.listed_running() {
                    p.register(&c.log_name());
                    followed.push(Followed::new(root, c, &new_filter));
                }
            }
        }
        drain(followed, p)?;
        if filter.until.is_some_and(|u| Utc::now() > u) {
            return Ok(());
        }
        // Done when none of the containers runs (their output is drained: the supervisor writes
        // the final state only after it read everything the container wrote).
        let mut any = false;
        for f in followed.iter_mut() {
            f.ctr.reload(root);
            any |= f.ctr.listed_running();
        }
        if !any {
            drain(followed, p)?;
            return Ok(());
        }
    }
}

/// The container's status once its supervisor has recorded an exit (a "die" event comes just
/// before the state says whether a restart follows).
fn settled_status(root: &StateRoot, id: &str) -> Status {
    let t = Instant::now();
    loop {
        let s = ops::state_of(root, id).map(|s| s.status).unwrap_or(Status::Exited);
        if !matches!(s, Status::Running | Status::Paused) || t.elapsed() > Duration::from_millis(300) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Prints the records every followed log got since the last call, in time order.
fn drain(followed: &mut [Followed], p: &mut Printer) -> io::Result<()> {
    let mut batch: Vec<(DateTime<Utc>, usize, Record)> = Vec::new();
    let mut lost = Vec::new();
    for (i, f) in followed.iter_mut().enumerate() {
        for (rec, t) in f.source.poll() {
            batch.push((t, i, rec));
        }
        if f.source.lost > 0 {
            lost.push((f.name.clone(), std::mem::take(&mut f.source.lost)));
        }
    }
    batch.sort_by_key(|b| b.0);
    for (t, i, rec) in batch {
        let name = followed[i].name.clone();
        p.record(&name, &rec, &t)?;
    }
    p.flush()?;
    // Said rather than skipped silently (Docker's follower says nothing).
    for (name, n) in lost {
        eprintln!("WARNING: {name}: {}", logs::lost_message(n));
    }
    Ok(())
}

/// Reads lines from a file in chunks, keeping an unfinished last line for later.
struct LineReader {
    file: File,
    ino: u64,
    buf: Vec<u8>,
    start: usize,
    eof: bool,
}

impl LineReader {
    fn new(file: File) -> LineReader {
        let ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
        LineReader { file, ino, buf: Vec::new(), start: 0, eof: false }
    }

    /// The next complete line (without its newline), or None at the current end of the file.
    fn next_line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(n) = self.buf[self.start..].iter().position(|b| *b == b'\n') {
                let line = self.buf[self.start..self.start + n].to_vec();
                self.start += n + 1;
                return Some(line);
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.file.read(&mut chunk) {
                Ok(0) | Err(_) => {
                    self.eof = true;
                    return None;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// One container's log as a stream of records: the rotated files, oldest first, then the
/// current file, which it then keeps following.
struct Source {
    path: PathBuf,
    filter: Filter,
    /// Rotated files still to read, oldest first.
    older: VecDeque<PathBuf>,
    reading: Option<LineReader>,
    /// The current file, opened first so that a rotation while reading loses nothing.
    current: Option<LineReader>,
    /// Read ahead: the `--tail` window, or the one record `peek` looked at.
    ahead: VecDeque<(Record, DateTime<Utc>)>,
    initial_done: bool,
    /// Rotated files deleted before they could be read, not yet reported.
    lost: u64,
}

impl Source {
    fn open(path: &Path, filter: Filter) -> Source {
        let current = File::open(path).ok().map(LineReader::new);
        let older: VecDeque<PathBuf> = logs::rotated(path).into_iter().map(|(_, p)| p).collect();
        let mut s = Source {
            path: path.to_path_buf(),
            filter,
            older,
            reading: None,
            current,
            ahead: VecDeque::new(),
            initial_done: false,
            lost: 0,
        };
        if let Some(n) = s.filter.tail {
            // The last n records: read everything once, keeping a window.
            while let Some(r) = s.next_raw() {
                if n == 0 {
                    continue;
                }
                if s.ahead.len() == n {
                    s.ahead.pop_front();
                }
                s.ahead.push_back(r);
            }
        }
        s
    }

    /// The next wanted record of the initial read (None once the current file's end is reached).
    fn next_raw(&mut self) -> Option<(Record, DateTime<Utc>)> {
        loop {
            if self.reading.is_none() {
                match self.older.pop_front() {
                    Some(p) => {
                        self.reading = File::open(&p).ok().map(LineReader::new);
                        continue;
                    }
                    None => {
                        let r = self.current.as_mut()?;
                        let line = r.next_line()?;
                        if let Some((rec, t)) = logs::parse_line(&line) {
                            if self.filter.wanted(&t) {
                                return Some((rec, t));
                            }
                        }
                        continue;
                    }
                }
            }
            let r = self.reading.as_mut()?;
            match r.next_line() {
                Some(line) => {
                    if let Some((rec, t)) = logs::parse_line(&line) {
                        // The current file is read after these: skip what it also holds.
                        if self.filter.wanted(&t) {
                            return Some((rec, t));
                        }
                    }
                }
                None => self.reading = None,
            }
        }
    }

    fn peek(&mut self) -> Option<(&Record, DateTime<Utc>)> {
        if self.ahead.is_empty() && self.filter.tail.is_none() && !self.initial_done {
            match self.next_raw() {
                Some(r) => self.ahead.push_back(r),
                None => self.initial_done = true,
            }
        }
        self.ahead.front().map(|(r, t)| (r, *t))
    }

    fn next(&mut self) -> Option<(Record, DateTime<Utc>)> {
        self.peek()?;
        self.ahead.pop_front()
    }

    /// Records appended since the initial read, following rotations.
    fn poll(&mut self) -> Vec<(Record, DateTime<Utc>)> {
        let mut out = Vec::new();
        let push = |line: &[u8], out: &mut Vec<(Record, DateTime<Utc>)>, f: &Filter| {
            if let Some((rec, t)) = logs::parse_line(line) {
                if f.wanted(&t) {
                    out.push((rec, t));
                }
            }
        };
        if let Some(r) = self.current.as_mut() {
            while let Some(line) = r.next_line() {
                push(&line, &mut out, &self.filter);
            }
        }
        let now = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
        let ours = self.current.as_ref().map(|r| r.ino);
        if now.is_some() && now != ours {
            // Rotated since: the files newer than ours (lower numbers), oldest first, then the
            // new current file.
            if let Some(ours) = ours {
                let rot = logs::rotated(&self.path);
                let from = match rot.iter().position(|(_, p)| std::fs::metadata(p).map(|m| m.ino()).ok() == Some(ours)) {
                    Some(pos) => pos + 1,
                    None => {
                        // Ours rotated out of existence: every rotated file left is newer, and
                        // those between ours and the oldest left were deleted unread.
                        let ours_rotation = self.current.as_ref().map(|r| logs::rotation_of_file(&r.file)).unwrap_or(0);
                        if let Some(oldest) = rot.first().and_then(|(_, p)| logs::rotation_of_path(p)) {
                            self.lost += oldest.saturating_sub(ours_rotation + 1);
                        }
                        0
                    }
                };
                for (_, p) in &rot[from..] {
                    if let Ok(f) = File::open(p) {
                        let mut r = LineReader::new(f);
                        while let Some(line) = r.next_line() {
                            push(&line, &mut out, &self.filter);
                        }
                    }
                }
            }
            if let Ok(f) = File::open(&self.path) {
                let mut r = LineReader::new(f);
                while let Some(line) = r.next_line() {
                    push(&line, &mut out, &self.filter);
                }
                self.current = Some(r);
            }
        }
        out
    }
}

/// Writes prefixed, colored lines as compose's log consumer does.
struct Printer {
    out: io::BufWriter<io::Stdout>,
    color: bool,
    prefix: bool,
    timestamps: bool,
    tty: bool,
    /// (name, color) in registration order.
    names: Vec<(String, &'static str)>,
    width: usize,
    /// Unfinished lines (records without a newline), per container.
    partial: Vec<(String, String)>,
}

impl Printer {
    fn new(color: bool, prefix: bool, timestamps: bool) -> Printer {
        use std::io::IsTerminal;
        Printer {
            out: io::BufWriter::with_capacity(64 * 1024, io::stdout()),
            color,
            prefix,
            timestamps,
            tty: io::stdout().is_terminal(),
            names: Vec::new(),
            width: 0,
            partial: Vec::new(),
        }
    }

    fn register(&mut self, name: &str) {
        if self.names.iter().any(|(n, _)| n == name) {
            return;
        }
        let color = RAINBOW[self.names.len() % RAINBOW.len()];
        self.names.push((name.to_string(), color));
        self.width = self.names.iter().map(|(n, _)| n.chars().count()).max().unwrap_or(0) + 1;
    }

    fn color_of(&self, name: &str) -> &'static str {
        self.names.iter().find(|(n, _)| n == name).map(|(_, c)| *c).unwrap_or("0")
    }

    fn lead(&self, name: &str) -> String {
        if !self.prefix {
            return String::new();
        }
        let p = format!("{name:<w$} | ", w = self.width);
        if self.color { format!("\x1b[{}m{p}\x1b[0m", self.color_of(name)) } else { p }
    }

    fn record(&mut self, name: &str, rec: &Record, t: &DateTime<Utc>) -> io::Result<()> {
        let mut text = match self.partial.iter().position(|(n, _)| n == name) {
            Some(i) => self.partial.remove(i).1,
            None => String::new(),
        };
        text.push_str(&rec.log);
        let Some(body) = text.strip_suffix('\n') else {
            // A partial record (a long line split by the logger): wait for its end.
            self.partial.push((name.to_string(), text));
            return Ok(());
        };
        let lead = self.lead(name);
        for line in body.split('\n') {
            if self.timestamps {
                writeln!(self.out, "{lead}{} {line}", t.format("%Y-%m-%dT%H:%M:%S%.9fZ"))?;
            } else {
                writeln!(self.out, "{lead}{line}")?;
            }
        }
        Ok(())
    }

    /// compose's status line ("web-1 exited with code 0"), in the container's color.
    fn status(&mut self, name: &str, msg: &str) -> io::Result<()> {
        let reset_line = if self.tty { "\r\x1b[K" } else { "" };
        if self.color {
            writeln!(self.out, "\x1b[{}m{reset_line}{name} {msg}\x1b[0m", self.color_of(name))?;
        } else {
            writeln!(self.out, "{reset_line}{name} {msg}")?;
        }
        self.out.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_log(path: &Path, lines: &[(&str, &str)]) {
        let mut s = String::new();
        for (t, l) in lines {
            s.push_str(&serde_json::to_string(&Record { log: format!("{l}\n"), stream: "stdout".into(), time: t.to_string() }).unwrap());
            s.push('\n');
        }
        std::fs::write(path, s).unwrap();
    }

    /// A follower more than `max-file` rotations behind: the rotated file left is still read
    /// (before, nothing older than the current file was), and the files deleted unread are
    /// counted for the warning rather than skipped silently.
    #[test]
    fn a_source_left_behind_by_rotation_reads_what_is_left_and_counts_what_was_lost() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let mut w = logs::LogWriter::open(&p, Some(400), 2).unwrap();
        w.write("stdout", b"first\n").unwrap();
        let mut s = Source::open(&p, Filter::default());
        assert_eq!(s.next().map(|(r, _)| r.log).as_deref(), Some("first\n"));
        assert!(s.next().is_none());
        for i in 0..200 {
            w.write("stdout", format!("n{i}\n").as_bytes()).unwrap();
        }
        let got: Vec<String> = s.poll().into_iter().map(|(r, _)| r.log).collect();
        let in_rotated = logs::read_all(&d.path().join("c-json.log.1")).unwrap();
        let first_left = &in_rotated.first().unwrap().log;
        assert!(got.contains(first_left), "the rotated file left is read: {got:?}");
        assert_eq!(got.last().map(String::as_str), Some("n199\n"));
        assert!(s.lost > 0, "the files deleted unread are counted");
    }

    #[test]
    fn a_source_reads_rotated_files_then_follows_the_current_one() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        write_log(&d.path().join("c-json.log.2"), &[("2026-01-01T00:00:01Z", "one")]);
        write_log(&d.path().join("c-json.log.1"), &[("2026-01-01T00:00:02Z", "two")]);
        write_log(&p, &[("2026-01-01T00:00:03Z", "three")]);
        let mut s = Source::open(&p, Filter::default());
        let mut got = Vec::new();
        while let Some((r, _)) = s.next() {
            got.push(r.log);
        }
        assert_eq!(got, ["one\n", "two\n", "three\n"]);
        assert!(s.poll().is_empty());
        // Appended, then rotated with more written: all of it, in order.
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        writeln!(
            f,
            "{}",
            serde_json::to_string(&Record { log: "four\n".into(), stream: "stdout".into(), time: "2026-01-01T00:00:04Z".into() }).unwrap()
        )
        .unwrap();
        std::fs::rename(d.path().join("c-json.log.1"), d.path().join("c-json.log.3")).unwrap();
        std::fs::rename(&p, d.path().join("c-json.log.1")).unwrap();
        write_log(&p, &[("2026-01-01T00:00:05Z", "five")]);
        let got: Vec<String> = s.poll().into_iter().map(|(r, _)| r.log).collect();
        assert_eq!(got, ["four\n", "five\n"]);
    }

    #[test]
    fn tail_and_since_select_records() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        write_log(&p, &[("2026-01-01T00:00:01Z", "a"), ("2026-01-01T00:00:02Z", "b"), ("2026-01-01T00:00:03Z", "c")]);
        let mut s = Source::open(&p, Filter { tail: Some(2), ..Default::default() });
        assert_eq!(s.next().unwrap().0.log, "b\n");
        assert_eq!(s.next().unwrap().0.log, "c\n");
        assert!(s.next().is_none());
        let since = DateTime::parse_from_rfc3339("2026-01-01T00:00:02Z").unwrap().with_timezone(&Utc);
        let mut s = Source::open(&p, Filter { since: Some(since), ..Default::default() });
        assert_eq!(s.next().unwrap().0.log, "b\n");
        let mut s = Source::open(&p, Filter { tail: Some(0), ..Default::default() });
        assert!(s.next().is_none());
    }

    #[test]
    fn prefixes_are_padded_to_the_widest_name() {
        let mut p = Printer::new(false, true, false);
        p.register("web-1");
        p.register("worker-1");
        assert_eq!(p.lead("web-1"), "web-1     | ");
        assert_eq!(p.lead("worker-1"), "worker-1  | ");
        let mut c = Printer::new(true, true, false);
        c.register("web-1");
        c.register("once-1");
        assert_eq!(c.lead("once-1"), "\x1b[33monce-1  | \x1b[0m");
    }
}
