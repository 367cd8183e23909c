//! `berth config`: owned by the compose loader (src/project/).
use clap::Subcommand;

use super::GlobalOpts;

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Parse, resolve and render compose file in canonical format
    Config {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        rest: Vec<String>,
    },
}

pub fn run(_g: &GlobalOpts, _c: Commands) -> anyhow::Result<i32> {
    Err(super::not_yet("config"))
}
