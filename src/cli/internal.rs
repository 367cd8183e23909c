//! Hidden commands berth runs itself: the per-container supervisor and the DNS resolver. They are
//! started by re-executing the berth binary and are not for users.
use clap::Subcommand;

use super::GlobalOpts;

#[derive(Subcommand, Debug)]
pub enum Commands {}

pub fn run(_g: &GlobalOpts, c: Commands) -> anyhow::Result<i32> {
    match c {}
}
