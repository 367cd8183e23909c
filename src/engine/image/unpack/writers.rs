//! A small pool of threads that create the layer's small regular files while the tar reader
//! goes on: on a file system where creating a file waits (journal, dirty-page throttling), the
//! waits of several files overlap.
//!
//! The reader keeps every ordering the archive implies. It hands over only regular files whose
//! content it has already read (at most [`SMALL_FILE`] bytes each, [`MAX_BYTES`] in flight),
//! with the fd of their parent directory, which it resolved safely itself; a writer creates the
//! one name with `O_CREAT | O_EXCL | O_NOFOLLOW` under that fd, so it cannot write anywhere else.
//! Files of one directory go to one writer, in order. Before an entry touches a path that a
//! file still in flight is at, or is under (a file replaced, a path through a file), and before
//! anything is removed or hardlinked to, the reader waits until every writer is idle
//! ([`Writers::barrier`]). Directories, links, nodes and whiteouts are made by the reader.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

/// Files up to this size are handed to the writers; larger ones the reader writes itself.
pub const SMALL_FILE: u64 = 1 << 20;
/// The most file content held in memory for the writers at once.
pub const MAX_BYTES: usize = 64 << 20;
/// The number of writer threads, unless `BERTH_UNPACK_WRITERS` says otherwise (0 or 1: the
/// reader writes every file itself). One by default: on the 2-core VM berth is measured on,
/// creating a file is CPU work in ext4 (the inode allocator's search), not a wait, so writer
/// threads only add system time and contention (docs/benchmarks.md, Images); a pull already
/// unpacks its layers at once. Worth trying where creating a file waits (slow or network disks).
pub const DEFAULT_WRITERS: usize = 1;
pub const ENV_WRITERS: &str = "BERTH_UNPACK_WRITERS";

/// One small regular file to create.
pub struct Job {
    pub dir: Arc<OwnedFd>,
    pub name: CString,
    /// Its path in the layer (the in-flight key, and for errors).
    pub path: Vec<u8>,
    pub data: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub mtime: i64,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// The first failure of a writer: the entry's path and the error.
pub type Failure = (Vec<u8>, io::Error);

#[derive(Default)]
struct State {
    /// Paths of files handed over and not yet written, with how many times each is.
    inflight: HashMap<Vec<u8>, u32>,
    pending: usize,
    bytes: usize,
    error: Option<Failure>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// Set when the unpack is abandoned: the writers drop what is left.
    cancel: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Writers {
    txs: Vec<Sender<Job>>,
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

/// The writer count from the environment, or the default.
pub fn count_from_env() -> usize {
    std::env::var(ENV_WRITERS).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(DEFAULT_WRITERS).min(64)
}

impl Writers {
    /// `n` writer threads; `None` when a thread cannot be started (the reader then writes alone).
    pub fn start(n: usize) -> Option<Writers> {
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), changed: Condvar::new(), cancel: AtomicBool::new(false) });
        let mut w = Writers { txs: Vec::new(), shared: shared.clone(), handles: Vec::new() };
        for i in 0..n {
            let (tx, rx) = channel::<Job>();
            let shared = shared.clone();
            let h = std::thread::Builder::new().name(format!("unpack-writer-{i}")).spawn(move || {
                for job in rx {
                    let r = if shared.cancel.load(Ordering::Relaxed) { Ok(()) } else { write_file(&job) };
                    let mut st = shared.lock();
                    st.pending -= 1;
                    st.bytes -= job.data.len();
                    if let Some(c) = st.inflight.get_mut(&job.path) {
                        *c -= 1;
                        if *c == 0 {
                            st.inflight.remove(&job.path);
                        }
                    }
                    if let Err(e) = r {
                        st.error.get_or_insert((job.path, e));
                    }
                    drop(st);
                    shared.changed.notify_all();
                }
            });
            match h {
                Ok(h) => {
                    w.txs.push(tx);
                    w.handles.push(h);
                }
                Err(_) => return None,
            }
        }
        Some(w)
    }

    /// True when a file in flight is at `parts` or at one of its parents.
    pub fn touches(&self, parts: &[&[u8]]) -> bool {
        let st = self.shared.lock();
        if st.inflight.is_empty() {
            return false;
        }
        let mut p = Vec::new();
        for (i, c) in parts.iter().enumerate() {
            if i > 0 {
                p.push(b'/');
            }
            p.extend_from_slice(c);
            if st.inflight.contains_key(&p) {
                return true;
            }
        }
        false
    }

    /// Waits until every file handed over is written; the first failure, if one happened.
    pub fn barrier(&self) -> Result<(), Failure> {
        let mut st = self.shared.lock();
        while st.pending > 0 {
            st = self.shared.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        match st.error.take() {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    /// Hands `job` to the writer of directory `dir_key`, once there is room for its content.
    pub fn submit(&self, dir_key: &[u8], job: Job) -> Result<(), Failure> {
        let len = job.data.len();
        {
            let mut st = self.shared.lock();
            while st.pending > 0 && st.bytes + len > MAX_BYTES && st.error.is_none() {
                st = self.shared.changed.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if let Some(f) = st.error.take() {
                return Err(f);
            }
            st.pending += 1;
            st.bytes += len;
            *st.inflight.entry(job.path.clone()).or_insert(0) += 1;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        dir_key.hash(&mut h);
        let i = (h.finish() % self.txs.len() as u64) as usize;
        if let Err(e) = self.txs[i].send(job) {
            // The writer is gone (it cannot panic on a job, but be exact): undo and report.
            let job = e.0;
            let mut st = self.shared.lock();
            st.pending -= 1;
            st.bytes -= job.data.len();
            st.inflight.remove(&job.path);
            return Err((job.path, io::Error::other("an unpack writer thread stopped")));
        }
        Ok(())
    }

    /// Writes what is left and stops the threads.
    pub fn finish(mut self) -> Result<(), Failure> {
        let r = self.barrier();
        self.stop();
        r
    }

    fn stop(&mut self) {
        self.txs.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Writers {
    fn drop(&mut self) {
        // An abandoned unpack (an error, a refused layer): drop the rest, end the threads.
        self.shared.cancel.store(true, Ordering::Relaxed);
        self.stop();
    }
}

/// Creates `job.name` under `job.dir` (never following a symlink, never replacing anything),
/// writes its content and sets its owner, mode, xattrs and times.
fn write_file(job: &Job) -> io::Result<()> {
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(&*job.dir, job.name.as_c_str(), flags, Mode::from_bits_truncate(0o600))?;
    let mut file = File::from(fd);
    file.write_all(&job.data)?;
    let fd: OwnedFd = file.into();
    super::apply_meta(&fd, job.uid, job.gid, job.mode, &job.xattrs)?;
    super::set_times_fd(&fd, job.mtime)?;
    Ok(())
}
