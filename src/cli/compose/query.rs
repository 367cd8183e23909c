//! `ps`, `logs`, `top`, `port`, `ls`, `wait`, `cp`, `events`, `stats`.
use clap::Subcommand;

use crate::cli::GlobalOpts;

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// List containers
    Ps {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        rest: Vec<String>,
    },
}

pub fn run(_g: &GlobalOpts, _c: Commands) -> anyhow::Result<i32> {
    Err(crate::cli::not_yet("ps"))
}
