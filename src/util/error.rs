//! Errors on one line: for the places that must hand an error on as text (the supervisor's
//! report to the CLI and its state file, the progress lines of a plan), where the CLI's report
//! (`src/cli/report.rs`), which prints each cause on its own line, cannot be used.

/// An error's message followed by each of its causes, ": "-separated, skipping a cause whose text
/// the message already holds (errors that repeat their source).
pub fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum E {
        #[error("cannot start web")]
        Start(#[source] std::io::Error),
        #[error("cannot start web: {0}")]
        Repeats(#[source] std::io::Error),
    }

    #[test]
    fn causes_follow_once() {
        let io = || std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(one_line(&E::Start(io())), "cannot start web: No such file or directory (os error 2)");
        assert_eq!(one_line(&E::Repeats(io())), "cannot start web: No such file or directory (os error 2)");
    }
}
