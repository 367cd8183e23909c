//! RUN: the command runs in a one-off berth container on the stage's layers, with the build
//! network; its upper directory becomes the step's layer.

use super::builder::State;
use super::dockerfile::{Command, Heredoc};
use crate::engine::image::{ImageStore, Layer};

/// A RUN instruction as written.
pub struct RunStep<'a> {
    pub cmd: &'a Command,
    pub mounts: &'a [String],
    pub network: Option<&'a str>,
    pub heredocs: &'a [Heredoc],
}

/// What to run, fully resolved.
#[derive(Clone, Debug)]
pub struct Job {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    /// `--mount` values, expanded.
    pub mounts: Vec<String>,
    /// `default`, `host` or `none`.
    pub network: String,
    pub heredocs: Vec<Heredoc>,
}

/// How a RUN ended.
#[derive(Debug)]
pub enum Outcome {
    /// The command exited; on success, the layer of its changes (none if it changed nothing).
    Exited { code: i32, layer: Option<Layer> },
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("RUN needs berth's container runtime, which this build of berth does not have yet")]
    NoRuntime,
}

/// The command line: the exec form as given; the shell form through the stage's SHELL, with
/// heredocs appended for the shell to read (`RUN <<EOF` alone runs the heredoc as the script).
pub(crate) fn argv(spec: &RunStep, state: &State) -> Vec<String> {
    match spec.cmd {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => {
            let mut argv = shell_of(state);
            let trimmed = s.trim();
            let script = match spec.heredocs {
                [h] if trimmed.strip_prefix("<<").map(|n| n.trim_start_matches('-').trim_matches(['"', '\''])) == Some(h.name.as_str()) => h.content.clone(),
                [] => s.clone(),
                hs => {
                    let mut t = s.clone();
                    t.push('\n');
                    for h in hs {
                        t.push_str(&h.content);
                        t.push_str(&h.name);
                        t.push('\n');
                    }
                    t
                }
            };
            argv.push(script);
            argv
        }
    }
}

fn shell_of(state: &State) -> Vec<String> {
    state
        .config
        .get("Shell")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect::<Vec<_>>())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
}

/// Runs `job` on `layers` and commits what it changed.
pub fn run(_store: &ImageStore, _layers: &[Layer], _job: &Job, _sink: &mut dyn FnMut(&str)) -> Result<Outcome, RunError> {
    Err(RunError::NoRuntime)
}
