//! Image commands: `pull`, `push`, `images`, `image ...`, `login`. Owned by src/engine/image/.
use clap::Subcommand;

use super::GlobalOpts;

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Pull service images
    Pull {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        rest: Vec<String>,
    },
}

pub fn run(_g: &GlobalOpts, _c: Commands) -> anyhow::Result<i32> {
    Err(super::not_yet("pull"))
}
