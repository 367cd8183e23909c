//! The compose lifecycle: `up`, `down`, `ps`, `logs`, `run`, `exec` and the rest. Owned by the
//! orchestration (src/project/ planner plus the engine).
use clap::Subcommand;

use super::GlobalOpts;

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Create and start containers
    Up {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        rest: Vec<String>,
    },
}

pub fn run(_g: &GlobalOpts, _c: Commands) -> anyhow::Result<i32> {
    Err(super::not_yet("up"))
}
