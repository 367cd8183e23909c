//! Container logs in Docker's json-file format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"2026-01-02T03:04:05.123456789Z"}`, rotated by
//! `max-size`/`max-file` (`<id>-json.log`, `.1`, `.2`, ... oldest last). The supervisor writes;
//! `logs` reads, with `--tail`, `--since`, `--until` and `-f` (following rotation with notify).
//!
//! Each file made by a rotation starts with a marker line, `{"rotation":N}` (N counts the
//! rotations of this log), which readers skip as they skip any line that is not a record. It lets
//! a follower that fell more than `max-file` rotations behind know how many files were deleted
//! before it could read them, and say so (Docker's json-file follower loses them silently).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Lines longer than this are split into partial records, as Docker does (16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// The writer side, owned by the supervisor.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: Option<u64>,
    max_file: u32,
    /// The rotations of this log so far (the current file's marker).
    rotation: u64,
}

/// The first line of a file made by a rotation.
#[derive(Serialize, Deserialize)]
struct Marker {
    rotation: u64,
}

/// The rotation number of an open log file: its marker, or 0 (the first file has none). Reads
/// at offset 0 without moving the file's position.
pub fn rotation_of_file(f: &File) -> u64 {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 64];
    let n = f.read_at(&mut head, 0).unwrap_or(0);
    let Some(end) = head[..n].iter().position(|b| *b == b'\n') else { return 0 };
    serde_json::from_slice::<Marker>(&head[..end]).map(|m| m.rotation).unwrap_or(0)
}

/// The rotation number of the log file at `p`, if it can be opened.
pub fn rotation_of_path(p: &Path) -> Option<u64> {
    File::open(p).ok().map(|f| rotation_of_file(&f))
}

/// What a follower says when `lost` rotated files were deleted before it could read them.
pub fn lost_message(lost: u64) -> String {
    format!(
        "the log rotated faster than it was read: {lost} rotated file(s) were deleted unread and their lines are lost \
         (raise the logging option max-file or max-size)"
    )
}

/// The notice [`read`] gives its sink in place of the lost lines, on stderr.
fn lost_notice(lost: u64) -> Record {
    Record { log: format!("berth: {}\n", lost_message(lost)), stream: "stderr".into(), time: now_rfc3339() }
}

impl LogWriter {
    pub fn open(path: &Path, max_size: Option<u64>, max_file: u32) -> io::Result<LogWriter> {
        let file = OpenOptions::new().create(true).append(true).mode_0640().open(path)?;
        let size = file.metadata()?.len();
        let rotation = rotation_of_path(path).unwrap_or(0);
        Ok(LogWriter { path: path.to_path_buf(), file, size, max_size, max_file: max_file.max(1), rotation })
    }

    /// Writes one record (`text` includes its newline when it had one).
    pub fn write(&mut self, stream: &str, text: &[u8]) -> io::Result<()> {
        let rec = Record { log: String::from_utf8_lossy(text).into_owned(), stream: stream.to_string(), time: now_rfc3339() };
        let mut line = serde_json::to_vec(&rec).map_err(io::Error::other)?;
        line.push(b'\n');
        if let Some(max) = self.max_size {
            if self.size > 0 && self.size + line.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let name = |i: u32| PathBuf::from(format!("{}.{i}", self.path.display()));
        if self.max_file > 1 {
            let _ = std::fs::remove_file(name(self.max_file - 1));
            for i in (1..self.max_file - 1).rev() {
                let _ = std::fs::rename(name(i), name(i + 1));
            }
            std::fs::rename(&self.path, name(1))?;
            self.file = OpenOptions::new().create(true).append(true).mode_0640().open(&self.path)?;
        } else {
            self.file.set_len(0)?;
        }
        self.size = 0;
        self.rotation += 1;
        let mut marker = serde_json::to_vec(&Marker { rotation: self.rotation }).map_err(io::Error::other)?;
        marker.push(b'\n');
        self.file.write_all(&marker)?;
        self.size = marker.len() as u64;
        Ok(())
    }
}

trait Mode0640 {
    fn mode_0640(&mut self) -> &mut Self;
}
impl Mode0640 for OpenOptions {
    fn mode_0640(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o640)
    }
}

pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Splits a byte stream into records: one per line, long lines cut at [`MAX_LINE`].
#[derive(Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes and calls `emit` for each complete record.
    pub fn feed(&mut self, data: &[u8], mut emit: impl FnMut(&[u8])) {
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos + 1;
            for chunk in self.buf[start..end].chunks(MAX_LINE) {
                emit(chunk);
            }
            start = end;
        }
        self.buf.drain(..start);
        while self.buf.len() >= MAX_LINE {
            let rest = self.buf.split_off(MAX_LINE);
            emit(&self.buf);
            self.buf = rest;
        }
    }

    /// Emits what is left (a last line without a newline).
    pub fn flush(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.buf.is_empty() {
            emit(&self.buf);
            self.buf.clear();
        }
    }
}

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Only the last N records (before following).
    pub tail: Option<usize>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub follow: bool,
}

/// The rotated files beside a log (`<log>.1`, `.2`...), with their numbers, oldest (highest) first.
pub fn rotated(path: &Path) -> Vec<(u32, PathBuf)> {
    let mut out = Vec::new();
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
        let prefix = format!("{}.", name.to_string_lossy());
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if let Some(i) = n.strip_prefix(&prefix).and_then(|s| s.parse::<u32>().ok()) {
                    out.push((i, e.path()));
                }
            }
        }
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.0));
    out
}

/// The log files of a container, oldest first.
fn files(path: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = rotated(path).into_iter().map(|(_, p)| p).collect();
    out.push(path.to_path_buf());
    out
}

/// One line of a log file: the record and its time.
pub fn parse_line(line: &[u8]) -> Option<(Record, DateTime<Utc>)> {
    let r: Record = serde_json::from_slice(line).ok()?;
    let t = DateTime::parse_from_rfc3339(&r.time).ok()?.with_timezone(&Utc);
    Some((r, t))
}

fn wanted(t: &DateTime<Utc>, o: &ReadOptions) -> bool {
    o.since.is_none_or(|s| *t >= s) && o.until.is_none_or(|u| *t <= u)
}

/// Reads the log at `path` (the current file; rotated ones are found beside it), calling `sink`
/// for each record in order. With `follow`, keeps going until `running()` turns false (checked on
/// every change and at least every 250 ms), following rotations.
pub fn read(
    path: &Path,
    opts: &ReadOptions,
    running: &dyn Fn() -> bool,
    sink: &mut dyn FnMut(&Record, &DateTime<Utc>) -> io::Result<()>,
) -> io::Result<()> {
    // Watch before reading, so that nothing written in between is missed.
    let (tx, rx) = std::sync::mpsc::channel();
    let mut _watcher = None;
    if opts.follow {
        use notify::Watcher;
        let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            // Opens (ours of state.json included) change nothing: waking on them spins the CPU.
            if !matches!(res, Ok(ref e) if matches!(e.kind, notify::EventKind::Access(notify::event::AccessKind::Open(_)))) {
                let _ = tx.send(());
            }
        })
        .map_err(io::Error::other)?;
        if let Some(dir) = path.parent() {
            w.watch(dir, notify::RecursiveMode::NonRecursive).map_err(io::Error::other)?;
        }
        _watcher = Some(w);
    }
    let mut tail: VecDeque<(Record, DateTime<Utc>)> = VecDeque::new();
    let mut current: Option<(BufReader<File>, u64)> = None;
    // The rotation number of the file `current` reads.
    let mut current_rotation = 0u64;
    let all = files(path);
    for (i, f) in all.iter().enumerate() {
        let Ok(file) = File::open(f) else { continue };
        let ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
        let mut r = BufReader::new(file);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = r.read_until(b'\n', &mut line)?;
            if n == 0 || !line.ends_with(b"\n") {
                // A torn last record: leave it for the follower (or ignore it).
                if n > 0 {
                    r.seek(SeekFrom::Current(-(n as i64)))?;
                }
                break;
            }
            if let Some((rec, t)) = parse_line(&line) {
                if !wanted(&t, opts) {
                    continue;
                }
                match opts.tail {
                    Some(0) => {}
                    Some(n) => {
                        if tail.len() == n {
                            tail.pop_front();
                        }
                        tail.push_back((rec, t));
                    }
                    None => sink(&rec, &t)?,
                }
            }
        }
        if i == all.len() - 1 {
            current_rotation = rotation_of_file(r.get_ref());
            current = Some((r, ino));
        }
    }
    for (rec, t) in &tail {
        sink(rec, t)?;
    }
    if !opts.follow {
        return Ok(());
    }
    let mut buf = Vec::new();
    loop {
        let alive = running();
        // Drain the open file.
        if let Some((r, ino)) = current.as_mut() {
            if !drain(r, &mut buf, opts, sink)? {
                return Ok(());
            }
            // Truncated in place (`max-file: 1` rotates so): start again from its top, or every
            // line until it grows past the old end would be lost.
            let meta = std::fs::metadata(path).ok();
            if meta.as_ref().is_some_and(|m| m.ino() == *ino && m.len() < r.stream_position().unwrap_or(0)) {
                r.seek(SeekFrom::Start(0))?;
                buf.clear();
                continue;
            }
        }
        // Rotated? Then the path is a new file: continue from its start.
        let new_ino = std::fs::metadata(path).map(|m| m.ino()).ok();
        let old_ino = current.as_ref().map(|(_, i)| *i);
        if new_ino.is_some() && new_ino != old_ino {
            // What the writer appended to the old file after the drain above, before it rotated
            // (the open file still reads it, renamed or not).
            if let Some((r, _)) = current.as_mut() {
                if !drain(r, &mut buf, opts, sink)? {
                    return Ok(());
                }
            }
            buf.clear();
            // Several rotations may have happened since: read every file newer than the one we
            // had, oldest first, then continue in the current one. When the old one has been
            // rotated out of existence, every rotated file left is newer.
            let all = files(path);
            let pos = all.iter().position(|f| std::fs::metadata(f).map(|m| Some(m.ino()) == old_ino).unwrap_or(false));
            let from = match (pos, old_ino) {
                (Some(p), _) => Some(p + 1),
                (None, Some(_)) => Some(0),
                (None, None) => None,
            };
            // Our file rotated out of existence: the files between it and the oldest one left
            // were deleted unread. Say how many, where the lines are missing.
            if pos.is_none() && old_ino.is_some() {
                if let Some(oldest) = all.first().and_then(|f| rotation_of_path(f)) {
                    let lost = oldest.saturating_sub(current_rotation + 1);
                    if lost > 0 {
                        let notice = lost_notice(lost);
                        sink(&notice, &Utc::now())?;
                    }
                }
            }
            if let Some(from) = from {
                for f in &all[from.min(all.len().saturating_sub(1))..all.len().saturating_sub(1)] {
                    if let Ok(file) = File::open(f) {
                        for line in BufReader::new(file).split(b'\n').map_while(Result::ok) {
                            if let Some((rec, t)) = parse_line(&line) {
                                if wanted(&t, opts) {
                                    sink(&rec, &t)?;
                                }
                            }
                        }
                    }
                }
            }
            if let Ok(f) = File::open(path) {
                buf.clear();
                current_rotation = rotation_of_file(&f);
                current = Some((BufReader::new(f), new_ino.unwrap_or(0)));
                continue;
            }
        }
        if !alive {
            return Ok(());
        }
        if opts.until.is_some_and(|u| Utc::now() > u) {
            return Ok(());
        }
        let _ = rx.recv_timeout(Duration::from_millis(250));
        while rx.try_recv().is_ok() {}
    }
}

/// Reads every complete record of `r` from where it is to its end, to `sink`; a torn last one
/// waits in `buf` for the rest. False when a record past `--until` was met.
fn drain(
    r: &mut BufReader<File>,
    buf: &mut Vec<u8>,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(&Record, &DateTime<Utc>) -> io::Result<()>,
) -> io::Result<bool> {
    loop {
        let mut chunk = Vec::new();
        let n = r.read_until(b'\n', &mut chunk)?;
        if n == 0 {
            return Ok(true);
        }
        buf.extend_from_slice(&chunk);
        if buf.ends_with(b"\n") {
            if let Some((rec, t)) = parse_line(buf) {
                if opts.until.is_some_and(|u| t > u) {
                    return Ok(false);
                }
                if wanted(&t, opts) {
                    sink(&rec, &t)?;
                }
            }
            buf.clear();
        }
    }
}

/// Parses `--since`/`--until`: an RFC 3339 time, a date, a Unix timestamp, or a duration back
/// from now ("10m", "1h30m", "45s").
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
        return Some(t.and_utc());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    if let Ok(f) = s.parse::<f64>() {
        let secs = f.trunc() as i64;
        let nanos = ((f - f.trunc()) * 1e9) as u32;
        return DateTime::from_timestamp(secs, nanos);
    }
    parse_duration(s).and_then(|d| chrono::Duration::from_std(d).ok()).map(|d| now - d)
}

/// Go-style durations: "1h30m", "10s", "250ms", "1.5h".
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let v: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += v * mult;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

/// Reads a whole (small) file of records: for tests and `inspect`-like helpers.
pub fn read_all(path: &Path) -> io::Result<Vec<Record>> {
    let mut out = Vec::new();
    read(path, &ReadOptions::default(), &|| false, &mut |r, _| {
        out.push(r.clone());
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_cuts_lines_and_long_lines() {
        let mut s = LineSplitter::default();
        let mut out: Vec<Vec<u8>> = Vec::new();
        s.feed(b"a\nbb", |l| out.push(l.to_vec()));
        s.feed(b"b\nc", |l| out.push(l.to_vec()));
        s.flush(|l| out.push(l.to_vec()));
        assert_eq!(out, vec![b"a\n".to_vec(), b"bbb\n".to_vec(), b"c".to_vec()]);
        let mut out: Vec<usize> = Vec::new();
        s.feed(&vec![b'x'; MAX_LINE * 2 + 5], |l| out.push(l.len()));
        assert_eq!(out, vec![MAX_LINE, MAX_LINE]);
    }

    #[test]
    fn rotation_keeps_max_file_and_no_line_is_lost() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("c-json.log");
        let mut w = LogWriter::open(&p, Some(300), 3).unwrap();
        for i in 0..40 {
            w.write("stdout", format!("line {i}\n").as_bytes()).unwrap();
        }
        let n = std::fs::read_dir(tmp.path()).unwrap().count();
        assert_eq!(n, 3, "the current file and two rotated ones");
        let recs = read_all(&p).unwrap();
        let last: Vec<String> = recs.iter().map(|r| r.log.clone()).collect();
        assert_eq!(last.last().unwrap(), "line 39\n");
        // Consecutive and in order across the files.
        let first: usize = last[0].trim().strip_prefix("line ").unwrap().parse().unwrap();
        for (k, l) in last.iter().enumerate() {
            assert_eq!(l, &format!("line {}\n", first + k));
        }
    }

    #[test]
    fn tail_since_and_torn_records() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("c-json.log");
        let mut w = LogWriter::open(&p, None, 1).unwrap();
        for i in 0..5 {
            w.write(if i % 2 == 0 { "stdout" } else { "stderr" }, format!("{i}\n").as_bytes()).unwrap();
        }
        drop(w);
        // A torn final record, as after a crash mid-write.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(br#"{"log":"tor"#).unwrap();
        let mut got = Vec::new();
        read(&p, &ReadOptions { tail: Some(2), ..Default::default() }, &|| false, &mut |r, _| {
            got.push((r.stream.clone(), r.log.clone()));
            Ok(())
        })
        .unwrap();
        assert_eq!(got, vec![("stderr".into(), "3\n".into()), ("stdout".into(), "4\n".into())]);
        let future = Utc::now() + chrono::Duration::hours(1);
        let mut n = 0;
        read(&p, &ReadOptions { since: Some(future), ..Default::default() }, &|| false, &mut |_, _| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn times_and_durations_parse() {
        let now = Utc::now();
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert!(parse_duration("abc").is_none());
        assert_eq!(parse_time("10m", now), Some(now - chrono::Duration::minutes(10)));
        assert!(parse_time("2026-01-02T03:04:05Z", now).is_some());
        assert_eq!(parse_time("1700000000", now).unwrap().timestamp(), 1_700_000_000);
        assert!(parse_time("2026-01-02", now).is_some());
    }

    /// `logs -f` of `p` on a thread, until `stop` is set; the thread returns the lines read.
    fn follow_in_background(p: &Path) -> (std::sync::Arc<std::sync::atomic::AtomicBool>, std::thread::JoinHandle<Vec<String>>) {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let p2 = p.to_path_buf();
        let h = std::thread::spawn(move || {
            let mut got = Vec::new();
            read(
                &p2,
                &ReadOptions { follow: true, ..Default::default() },
                &|| !s2.load(std::sync::atomic::Ordering::SeqCst),
                &mut |r, _| {
                    got.push(r.log.clone());
                    Ok(())
                },
            )
            .unwrap();
            got
        });
        (stop, h)
    }

    /// A follower must not lose the lines the writer appends to a file between the follower's
    /// last read of it and the rotation (item 13 of the security issue): a writer that never
    /// pauses, rotating every ~25 lines, and every line must arrive once, in order.
    #[test]
    fn follow_loses_no_line_across_rotations_at_full_speed() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("c-json.log");
        let mut w = LogWriter::open(&p, Some(2000), 200).unwrap();
        w.write("stdout", b"first\n").unwrap();
        let (stop, h) = follow_in_background(&p);
        std::thread::sleep(Duration::from_millis(100));
        let n = 3000;
        for i in 0..n {
            w.write("stdout", format!("n{i}\n").as_bytes()).unwrap();
            // Just slow enough for the follower to keep up, so that it reads each file while
            // the writer still appends to it.
            if i % 4 == 0 {
                std::thread::sleep(Duration::from_micros(300));
            }
        }
        std::thread::sleep(Duration::from_millis(600));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let got = h.join().unwrap();
        let want: Vec<String> = std::iter::once("first\n".to_string()).chain((0..n).map(|i| format!("n{i}\n"))).collect();
        let missing: Vec<&String> = want.iter().filter(|l| !got.contains(l)).take(5).collect();
        assert!(missing.is_empty(), "{} of {} lines lost, e.g. {missing:?}", want.len() - got.len().min(want.len()), want.len());
        assert_eq!(got, want);
    }

    /// With `max-file: 1` the writer truncates the file in place (same inode): the follower must
    /// start again from the top of it, not wait past the old end (which lost every line until
    /// the file grew back, then cut a record in two).
    #[test]
    fn follow_reads_a_file_truncated_in_place_from_its_top() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("c-json.log");
        let mut w = LogWriter::open(&p, Some(300), 1).unwrap();
        w.write("stdout", b"first\n").unwrap();
        let (stop, h) = follow_in_background(&p);
        std::thread::sleep(Duration::from_millis(100));
        for i in 0..12 {
            w.write("stdout", format!("n{i}\n").as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(30));
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let got = h.join().unwrap();
        let want: Vec<String> = std::iter::once("first\n".to_string()).chain((0..12).map(|i| format!("n{i}\n"))).collect();
        assert_eq!(got, want);
    }

    /// A follower that falls more than `max-file` rotations behind cannot read the files deleted
    /// meanwhile; it must say so rather than skip their lines silently (item 13 of the security
    /// issue). Here the reader stalls on its first line while the writer rotates ~20 times
    /// through `max-file: 2`.
    #[test]
    fn a_follower_left_behind_by_rotation_says_lines_were_lost() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("c-json.log");
        let mut w = LogWriter::open(&p, Some(400), 2).unwrap();
        w.write("stdout", b"first\n").unwrap();
        let (stalled_tx, stalled_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let p2 = p.clone();
        let h = std::thread::spawn(move || {
            let mut got: Vec<(String, String)> = Vec::new();
            read(
                &p2,
                &ReadOptions { follow: true, ..Default::default() },
                &|| !s2.load(std::sync::atomic::Ordering::SeqCst),
                &mut |r, _| {
                    if got.is_empty() {
                        let _ = stalled_tx.send(());
                        let _ = go_rx.recv();
                    }
                    got.push((r.stream.clone(), r.log.clone()));
                    Ok(())
                },
            )
            .unwrap();
            got
        });
        stalled_rx.recv().unwrap();
        for i in 0..200 {
            w.write("stdout", format!("n{i}\n").as_bytes()).unwrap();
        }
        go_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(600));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let got = h.join().unwrap();
        let notices: Vec<&(String, String)> = got.iter().filter(|(_, l)| l.contains("rotated faster than it was read")).collect();
        assert_eq!(notices.len(), 1, "one notice of the lost lines: {got:?}");
        assert_eq!(notices[0].0, "stderr");
        let lines = got.iter().filter(|(_, l)| l.starts_with('n')).count();
        assert!(lines < 200, "lines were indeed lost ({lines} of 200 read)");
        assert_eq!(got.last().unwrap().1, "n199\n", "the follower goes on to the end");
    }

    #[test]
    fn follow_sees_new_lines_and_rotation() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("c-json.log");
        let mut w = LogWriter::open(&p, Some(200), 2).unwrap();
        w.write("stdout", b"first\n").unwrap();
        let (stop, h) = follow_in_background(&p);
        std::thread::sleep(Duration::from_millis(100));
        for i in 0..20 {
            w.write("stdout", format!("n{i}\n").as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let got = h.join().unwrap();
        assert_eq!(got.first().unwrap(), "first\n");
        assert_eq!(got.last().unwrap(), "n19\n");
        assert_eq!(got.len(), 21, "{got:?}");
    }
}
