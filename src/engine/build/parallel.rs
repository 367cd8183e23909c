//! Several builds at once, each in its own thread, at most `limit` running, a build starting
//! once the builds it waits for are done. It lives with the builder because a RUN step's
//! interruption depends on it: every thread keeps SIGINT, SIGTERM and SIGHUP blocked so that a
//! RUN step takes them through its signalfd and removes its container (`run::pump`), and a
//! signal one step took is raised again for the others.

use std::collections::{BTreeMap, BTreeSet};

use super::builder::{BuildRequest, build};
use super::error::{BuildError, Result};
use super::progress::Printer;
use crate::engine::image::{Digest, ImageStore};
use crate::util::sys::{self, signal::ThreadMask};

/// Builds the `pending` (label, request) pairs, a label's build waiting for the labels `deps`
/// names, and returns each label's image id. After a failure no other build starts; those
/// running finish, and the first error (naming its label) is returned.
pub fn build_parallel(
    store: &ImageStore,
    mut pending: Vec<(String, BuildRequest)>,
    deps: &BTreeMap<String, BTreeSet<String>>,
    limit: usize,
    out: &mut Printer,
) -> Result<BTreeMap<String, Digest>> {
    // SIGINT, SIGTERM and SIGHUP stay blocked in every thread while the builds run: a RUN step
    // takes them through its signalfd and removes its container (see `run::pump`), and each one
    // taken is raised again for the next build still running.
    let mask = SignalMask::block();
    let mut ids = BTreeMap::new();
    let mut first_err: Option<BuildError> = None;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel::<(String, Result<Digest>)>();
        let mut done = BTreeSet::new();
        let mut running = 0usize;
        loop {
            while first_err.is_none() && super::run::interrupted_by().is_none() && running < limit && !pending.is_empty() {
                let ready = pending.iter().position(|(n, _)| deps.get(n).is_none_or(|d| d.iter().all(|x| done.contains(x))));
                // A dependency cycle (which the loader refuses anyway) must not hang the build.
                let Some(i) = ready.or((running == 0).then_some(0)) else { break };
                let (name, req) = pending.remove(i);
                let mut printer = out.fork();
                let tx = tx.clone();
                running += 1;
                scope.spawn(move || {
                    let result = build(store, &req, &mut printer)
                        .map(|o| o.image.id)
                        .map_err(|e| BuildError::ServiceFailed { service: name.clone(), source: Box::new(e) });
                    if result.is_ok() {
                        printer.line(&format!(" {name}  Built"));
                    }
                    let _ = tx.send((name, result));
                });
            }
            if running == 0 {
                break;
            }
            let Ok((name, result)) = rx.recv() else { break };
            running -= 1;
            match result {
                Ok(id) => {
                    done.insert(name.clone());
                    ids.insert(name, id);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
            if let (Some(sig), true) = (super::run::interrupted_by(), running > 0) {
                // SAFETY: kill(2) on this process with a signal every thread blocks.
                sys::raise_in_process(sig);
            }
        }
    });
    mask.restore(super::run::interrupted_by().is_some());
    match first_err {
        Some(e) => Err(e),
        None => Ok(ids),
    }
}

const BUILD_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The calling thread's signal mask with [`BUILD_SIGNALS`] blocked (threads it starts inherit it).
struct SignalMask(ThreadMask);

impl SignalMask {
    fn block() -> SignalMask {
        SignalMask(ThreadMask::block(&BUILD_SIGNALS))
    }

    /// Takes the signals still pending, restores the mask, and — when one came that no RUN step
    /// took (`handled` false) — raises it again, to end the process as it would have.
    fn restore(self, handled: bool) {
        let last = self.0.take_pending();
        self.0.restore();
        if let (Some(s), false) = (last, handled) {
            sys::raise(s);
        }
    }
}
