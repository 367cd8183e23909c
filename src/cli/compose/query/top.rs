//! `berth top`: the processes of the project's running containers, one table.
use std::io::Write;

use clap::Args;

use super::OneOff;
use crate::cli::GlobalOpts;
use crate::cli::render::tabwriter::{self, Style};
use crate::engine::runtime::ops;

#[derive(Args, Debug)]
pub struct TopArgs {
    #[arg(value_name = "SERVICES")]
    services: Vec<String>,
}

pub fn run(g: &GlobalOpts, a: TopArgs) -> anyhow::Result<i32> {
    let name = super::project_name(g)?;
    let root = g.state_root();
    let list = super::containers(&root, &name, OneOff::Include, false, &a.services);
    // SERVICE and # first, then the processes' columns with CMD last (compose's layout).
    let mut titles: Vec<String> = vec!["SERVICE".into(), "#".into()];
    let mut rows: Vec<Vec<(String, String)>> = Vec::new();
    for c in &list {
        let top = match ops::top(&root, &c.cfg.id) {
            Ok(t) => t,
            // Stopped since it was listed.
            Err(crate::engine::runtime::RuntimeError::NotRunning(_)) => continue,
            Err(e) => return Err(super::runtime_err(e)),
        };
        for t in &top.titles {
            if !titles.contains(t) {
                titles.push(t.clone());
            }
        }
        for p in &top.processes {
            let mut row = vec![
                ("SERVICE".to_string(), c.service().to_string()),
                ("#".to_string(), c.label(crate::labels::CONTAINER_NUMBER).to_string()),
            ];
            row.extend(top.titles.iter().cloned().zip(p.iter().cloned()));
            rows.push(row);
        }
    }
    if rows.is_empty() {
        return Ok(0);
    }
    if let Some(i) = titles.iter().position(|t| t == "CMD") {
        let cmd = titles.remove(i);
        titles.push(cmd);
    }
    let mut table = vec![titles.clone()];
    for r in rows {
        table.push(titles.iter().map(|t| r.iter().find(|(k, _)| k == t).map(|(_, v)| v.clone()).unwrap_or_else(|| "-".into())).collect());
    }
    std::io::stdout().lock().write_all(tabwriter::table(&table, Style::COMPOSE_TOP).as_bytes())?;
    Ok(0)
}
