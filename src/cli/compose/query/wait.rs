//! `berth wait`: blocks until the services' running containers stop, printing each exit code;
//! exits with the last one. `--down-project` then takes the project down.
use std::time::Duration;

use clap::Args;

use super::OneOff;
use crate::cli::GlobalOpts;
use crate::engine::events;
use crate::engine::runtime::ops;
use crate::labels;
use crate::state::StateRoot;

#[derive(Args, Debug)]
pub struct WaitArgs {
    /// Drops project when the first container stops
    #[arg(long)]
    down_project: bool,
    #[arg(value_name = "SERVICE", required = true)]
    services: Vec<String>,
}

pub fn run(g: &GlobalOpts, a: WaitArgs) -> anyhow::Result<i32> {
    let target = super::project_or_name(g)?;
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
        down_project(&root, &target.name)?;
    }
    Ok(code)
}

/// Takes project `name` down as `down --remove-orphans` does: its containers (one-offs too) are
/// stopped and removed, then its networks. Volumes stay.
///
/// A small local stand-in for the lifecycle's `down`, which lives in the other half of the
/// orchestration; it should call that once both are merged.
pub fn down_project(root: &StateRoot, name: &str) -> anyhow::Result<()> {
    let list = super::containers(root, name, OneOff::Include, true, &[]);
    let mut errors = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = list.iter().map(|c| s.spawn(move || ops::stop(root, &c.cfg.id, None).map(|_| ()))).collect();
        for h in handles {
            if let Ok(Err(e)) = h.join() {
                errors.push(anyhow::Error::new(e));
            }
        }
    });
    for c in &list {
        if let Err(e) = ops::remove(root, &c.cfg.id, true, false) {
            errors.push(anyhow::Error::new(e));
        }
    }
    for n in crate::net::network::list(root)? {
        if n.labels.get(labels::PROJECT).is_some_and(|p| p == name) {
            if let Err(e) = crate::net::network::remove(root, &n.name) {
                errors.push(anyhow::Error::new(e));
            }
        }
    }
    match errors.into_iter().next() {
        None => Ok(()),
        Some(e) => Err(e.context(format!("cannot take project {name:?} down; run `berth -p {name} down` to finish"))),
    }
}
