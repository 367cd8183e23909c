//! The event stream of a state root: what happened to its containers (`create`, `start`, `die`,
//! `kill`, `stop`, `pause`, `unpause`, `destroy`, `oom`, `health_status: ...`, `exec_*`), as
//! Docker's `/events` reports them, for `berth events`, `logs -f` and `wait`.
//!
//! There is no daemon to keep it, so the stream is a journal: `events/events.log` under the
//! root, one JSON object per line, appended by whoever acts (the CLI for create, stop, pause,
//! destroy; the supervisor for start, die, kill, health). Each event is one `write(2)` on an
//! `O_APPEND` file, so concurrent writers never interleave within a line. At [`ROTATE_AT`] bytes the
//! file becomes `events.log.1` (one older generation is kept). Emitting never fails the
//! operation that emits: the journal is best effort, as Docker's is.
//!
//! Readers take the events since a time ([`read_since`]) and follow new ones with a [`Follower`],
//! which wakes on inotify and survives rotation.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::runtime::ContainerConfig;
use crate::state::StateRoot;

/// The journal is rotated when it grows past this size.
pub const ROTATE_AT: u64 = 4 * 1024 * 1024;

/// One event, as the journal stores it (Docker's fields, flattened).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339 with nanoseconds, UTC.
    pub time: String,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
    /// `container` (the only kind berth records so far).
    #[serde(rename = "type")]
    pub kind: String,
    pub action: String,
    /// The container id.
    pub id: String,
    /// The container's labels, `name`, `image`, and per action `exitCode`, `signal`, `execID`.
    pub attributes: BTreeMap<String, String>,
}

impl Event {
    /// An event about container `cfg` happening now.
    pub fn container(cfg: &ContainerConfig, action: &str, extra: &[(&str, String)]) -> Event {
        let mut attributes = cfg.labels.clone();
        attributes.insert("name".into(), cfg.name.clone());
        let image = if cfg.image_ref.is_empty() { cfg.image.clone() } else { cfg.image_ref.clone() };
        attributes.insert("image".into(), image);
        for (k, v) in extra {
            attributes.insert((*k).to_string(), v.clone());
        }
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0);
        Event {
            time: format_time(nanos),
            time_nano: nanos,
            kind: "container".into(),
            action: action.into(),
            id: cfg.id.clone(),
            attributes,
        }
    }

    pub fn at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(self.time_nano)
    }

    /// The label or attribute `key`.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(|s| s.as_str())
    }
}

fn format_time(nanos: i64) -> String {
    DateTime::from_timestamp_nanos(nanos).to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// `events/` under the root.
pub fn dir(root: &StateRoot) -> PathBuf {
    root.path().join("events")
}

/// The current journal file.
pub fn journal(root: &StateRoot) -> PathBuf {
    dir(root).join("events.log")
}

fn rotated(path: &Path) -> PathBuf {
    path.with_file_name("events.log.1")
}

/// Appends `ev` to the root's journal. Errors are returned for tests; callers ignore them.
pub fn emit(root: &StateRoot, ev: &Event) -> io::Result<()> {
    let path = journal(root);
    let mut line = serde_json::to_vec(ev).map_err(io::Error::other)?;
    line.push(b'\n');
    let open = || OpenOptions::new().create(true).append(true).mode(0o600).custom_flags(libc::O_CLOEXEC).open(&path);
    let mut f = match open() {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if !root.path().is_dir() {
                return Err(e);
            }
            crate::util::fs::create_dir_all_mode(&dir(root), 0o700).map_err(io::Error::other)?;
            open()?
        }
        Err(e) => return Err(e),
    };
    // One write: O_APPEND makes it land whole at the end, whoever else appends.
    f.write_all(&line)?;
    if f.metadata().map(|m| m.len()).unwrap_or(0) > ROTATE_AT {
        rotate(root, &path, &f);
    }
    Ok(())
}

/// Emits a container event, ignoring failures (the operation that emits never fails for it).
pub fn container(root: &StateRoot, cfg: &ContainerConfig, action: &str, extra: &[(&str, String)]) {
    let _ = emit(root, &Event::container(cfg, action, extra));
}

/// Renames a full journal aside, under a lock so that two writers do not both rotate.
fn rotate(root: &StateRoot, path: &Path, written: &File) {
    let Ok(_l) = root.lock("events") else { return };
    let ino = written.metadata().map(|m| m.ino()).ok();
    // Someone else may have rotated between our write and the lock.
    if std::fs::metadata(path).ok().map(|m| m.ino()) != ino {
        return;
    }
    let _ = std::fs::rename(path, rotated(path));
}

fn parse(line: &[u8]) -> Option<Event> {
    serde_json::from_slice(line).ok()
}

/// Every recorded event at or after `since` (all of them when None), oldest first.
pub fn read_since(root: &StateRoot, since: Option<DateTime<Utc>>) -> Vec<Event> {
    let path = journal(root);
    let mut out = Vec::new();
    for p in [rotated(&path), path] {
        let Ok(f) = File::open(&p) else { continue };
        for line in BufReader::new(f).split(b'\n').map_while(Result::ok) {
            if let Some(ev) = parse(&line) {
                if since.is_none_or(|s| ev.at() >= s) {
                    out.push(ev);
                }
            }
        }
    }
    out
}

/// Follows the journal from its current end: [`Follower::next`] returns the events appended
/// since the last call, waiting for some up to a timeout.
pub struct Follower {
    path: PathBuf,
    file: Option<(File, u64)>,
    pending: Vec<u8>,
    wake: Receiver<()>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Follower {
    /// Starts at the end of the journal: only events emitted from now on are returned.
    pub fn new(root: &StateRoot) -> Follower {
        let (tx, rx) = channel();
        let d = dir(root);
        if root.path().is_dir() {
            let _ = crate::util::fs::create_dir_all_mode(&d, 0o700);
        }
        let watcher = {
            use notify::Watcher;
            notify::recommended_watcher(move |_res: notify::Result<notify::Event>| {
                let _ = tx.send(());
            })
            .ok()
            .and_then(|mut w| w.watch(&d, notify::RecursiveMode::NonRecursive).ok().map(|_| w))
        };
        let path = journal(root);
        let mut f = Follower { path, file: None, pending: Vec::new(), wake: rx, _watcher: watcher };
        if let Ok(mut file) = File::open(&f.path) {
            let ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
            if file.seek(SeekFrom::End(0)).is_ok() {
                f.file = Some((file, ino));
            }
        }
        f
    }

    /// The events appended since the last call; waits up to `timeout` when there are none yet.
    /// Without inotify it polls every 100 ms.
    pub fn next(&mut self, timeout: Duration) -> Vec<Event> {
        let out = self.drain();
        if !out.is_empty() {
            return out;
        }
        let wait = if self._watcher.is_some() { timeout } else { timeout.min(Duration::from_millis(100)) };
        match self.wake.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(wait),
        }
        while self.wake.try_recv().is_ok() {}
        self.drain()
    }

    fn read_from(file: &mut File, pending: &mut Vec<u8>, out: &mut Vec<Event>) {
        let mut buf = Vec::new();
        if file.read_to_end(&mut buf).is_err() {
            return;
        }
        pending.extend_from_slice(&buf);
        while let Some(n) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=n).collect();
            if let Some(ev) = parse(&line[..line.len() - 1]) {
                out.push(ev);
            }
        }
    }

    fn drain(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        if let Some((f, _)) = self.file.as_mut() {
            Self::read_from(f, &mut self.pending, &mut out);
        }
        // Rotated (or created): the old file is read to its end above; go on in the new one.
        let now = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
        if now.is_some() && now != self.file.as_ref().map(|(_, i)| *i) {
            if let Ok(mut f) = File::open(&self.path) {
                self.pending.clear();
                Self::read_from(&mut f, &mut self.pending, &mut out);
                self.file = Some((f, now.unwrap_or(0)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(name: &str) -> ContainerConfig {
        let mut c = ContainerConfig { id: format!("{name:0>64}"), name: name.into(), image_ref: "busybox".into(), ..Default::default() };
        c.labels.insert("com.docker.compose.project".into(), "p".into());
        c
    }

    #[test]
    fn emitted_events_are_read_back_and_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = StateRoot::new(tmp.path());
        root.ensure().unwrap();
        container(&root, &cfg("a"), "create", &[]);
        let mut f = Follower::new(&root);
        container(&root, &cfg("a"), "die", &[("exitCode", "3".into())]);
        let got = f.next(Duration::from_secs(2));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].action, "die");
        assert_eq!(got[0].attr("exitCode"), Some("3"));
        assert_eq!(got[0].attr("name"), Some("a"));
        assert_eq!(got[0].attr("image"), Some("busybox"));
        assert_eq!(got[0].attr("com.docker.compose.project"), Some("p"));
        let all = read_since(&root, None);
        assert_eq!(all.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["create", "die"]);
        let later = read_since(&root, Some(all[1].at()));
        assert_eq!(later.len(), 1);
        assert!(f.next(Duration::from_millis(10)).is_empty());
    }

    #[test]
    fn a_follower_survives_rotation() {
        let tmp = tempfile::tempdir().unwrap();
        let root = StateRoot::new(tmp.path());
        root.ensure().unwrap();
        container(&root, &cfg("a"), "create", &[]);
        let mut f = Follower::new(&root);
        container(&root, &cfg("a"), "start", &[]);
        // Rotate by hand, as a writer past the limit would.
        let p = journal(&root);
        std::fs::rename(&p, rotated(&p)).unwrap();
        container(&root, &cfg("a"), "die", &[]);
        let mut got = Vec::new();
        for _ in 0..20 {
            got.extend(f.next(Duration::from_millis(100)));
            if got.len() >= 2 {
                break;
            }
        }
        assert_eq!(got.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["start", "die"]);
        assert_eq!(read_since(&root, None).len(), 3);
    }

    #[test]
    fn concurrent_writers_never_tear_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let root = StateRoot::new(tmp.path());
        root.ensure().unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let root = root.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        container(&root, &cfg(&format!("c{t}")), "exec_die", &[("n", i.to_string())]);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(read_since(&root, None).len(), 800);
    }
}
