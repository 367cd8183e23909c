//! The start-up timing probe: `crate::timing!("what just finished")` appends one line to the file
//! named by `BERTH_TIMING`, when berth is built with `--features timing` (bench/start.sh does). In
//! any other build the macro compiles to nothing, so the probes cost nothing where they are not
//! read.
//!
//! A line is `<pid> <µs since the epoch> <label>`. The CLI, the supervisor and the container's
//! child all append to the same file, so each line goes out in a single write(2) on an `O_APPEND`
//! fd (opened for that line: a cached fd would not survive the fd clean-ups of a supervisor or a
//! container), which the kernel never interleaves with another writer's. A label says what the
//! time marks, in words (`"supervisor: container process cloned"`). Probes after the container's
//! pivot_root write nothing: the file's host path is out of its reach by then.

/// Marks that `$label` (a string literal) has just happened, when built with `--features timing`.
#[macro_export]
macro_rules! timing {
    ($label:literal) => {{
        #[cfg(feature = "timing")]
        $crate::util::timing::record($label);
    }};
}

/// Appends one line for `label` to the file named by `BERTH_TIMING`, if set.
#[cfg(feature = "timing")]
pub fn record(label: &str) {
    if let Some(path) = std::env::var_os("BERTH_TIMING") {
        append(std::path::Path::new(&path), label);
    }
}

#[cfg(feature = "timing")]
fn append(path: &std::path::Path, label: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
    let line = format!("{} {now} {label}\n", std::process::id());
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).mode(0o644).open(path) {
        // One write: a line is never split by another process's.
        let _ = f.write(line.as_bytes());
    }
}

#[cfg(all(test, feature = "timing"))]
mod tests {
    #[test]
    fn lines_from_many_threads_stay_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("timing");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || (0..200).for_each(|_| super::append(&p, "test: one line")))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 1600);
        assert!(text.lines().all(|l| l.splitn(3, ' ').nth(2) == Some("test: one line")), "{text}");
    }
}
