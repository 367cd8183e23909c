//! `berth wait`: blocks until the services' running containers stop, printing each exit code;
//! exits with the last one. `--down-project` then takes the project down.
use std::time::Duration;

use clap::Args;

use super::OneOff;
use crate::cli::GlobalOpts;
use crate::cli::compose::lifecycle;
use crate::engine::events;
use crate::engine::runtime::ops;

#[derive(Args, Debug)]
pub struct WaitArgs {
    /// Drops project when the first container stops
    #[arg(long)]
    down_project: bool,
    #[arg(value_name = "SERVICE", required = true)]
    services: Vec<String>,
}

pub fn run(g: &GlobalOpts, a: WaitArgs) -> anyhow::Result<i32> {
    let target = super::Target::project_or_name(g)?;
    let root = g.state_root();
    let mut journal = events::Follower::new(&root);
    let mut waiting = super::containers(&root, &target.name, OneOff::Include, false, &a.services);
    if waiting.is_empty() {
        anyhow::bail!("no containers for project {:?}", target.name);
    }
    let mut code = 0;
    while !waiting.is_empty() {
        // Woken by the journal's die events; the state is what counts.
        let _ = journal.next(Duration::from_millis(500));
        let mut i = 0;
        while i < waiting.len() {
            waiting[i].reload(&root);
            let gone = ops::lookup(&root, &waiting[i].cfg.id).is_err();
            let c = &waiting[i];
            if gone || !c.listed_running() || c.st.status == crate::engine::runtime::Status::Restarting {
                code = if gone { 0 } else { c.st.exit_code };
                println!("container {:?} exited with status code {code}", c.cfg.id);
                waiting.remove(i);
            } else {
                i += 1;
            }
        }
    }
    if a.down_project {
        // As compose: the project goes as `down --remove-orphans` takes it (the same code).
        let down = lifecycle::DownArgs { remove_orphans: true, ..Default::default() };
        let c = lifecycle::down_target(g, &target, down)?;
        if c != 0 {
            return Ok(c);
        }
    }
    Ok(code)
}
