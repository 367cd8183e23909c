//! Hidden commands berth runs itself: the per-container supervisor, the DNS resolver, and the
//! teardown that test guards use. They are started by re-executing the berth binary and are not
//! for users.
use clap::Subcommand;

use super::GlobalOpts;

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Remove everything the state root holds on this host, then the root (tests use it)
    #[command(name = "__teardown", hide = true)]
    Teardown,
    /// The embedded DNS resolver of the state root (started by the network module)
    #[command(name = "__dns", hide = true)]
    Dns,
}

pub fn run(g: &GlobalOpts, c: Commands) -> anyhow::Result<i32> {
    match c {
        Commands::Teardown => {
            let errors = crate::system::teardown(&g.state_root());
            for e in &errors {
                super::report::print(e);
            }
            Ok(if errors.is_empty() { 0 } else { 1 })
        }
        Commands::Dns => {
            crate::net::dns::run(&g.state_root())?;
            Ok(0)
        }
    }
}
