//! `berth ls`: the compose projects of the state root, from their containers' labels.
use std::collections::BTreeMap;
use std::io::Write;

use clap::Args;

use crate::cli::GlobalOpts;
use crate::cli::render::tabwriter::{self, Style};
use crate::engine::runtime::ops;
use crate::labels;

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Show all stopped Compose projects
    #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    all: bool,
    /// Format the output. Values: [table | json]
    #[arg(long, default_value = "table")]
    format: String,
    /// Only display project names
    #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    quiet: bool,
    /// Filter output based on conditions provided
    #[arg(long, value_name = "FILTER")]
    filter: Vec<String>,
}

/// One project, as `ls --format json` prints it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Stack {
    pub name: String,
    pub status: String,
    pub config_files: String,
}

pub fn run(g: &GlobalOpts, a: LsArgs) -> anyhow::Result<i32> {
    let mut names: Vec<String> = Vec::new();
    for f in &a.filter {
        let (k, v) = f.split_once('=').ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value)"))?;
        if k != "name" {
            anyhow::bail!("invalid filter '{k}'");
        }
        names.push(v.to_string());
    }
    let fmt = match a.format.as_str() {
        "table" | "" => "table",
        "json" => "json",
        other => anyhow::bail!("format value {other:?} could not be parsed: use table or json"),
    };
    let root = g.state_root();
    let mut stacks = stacks(&root, a.all);
    if !names.is_empty() {
        let res: Vec<Option<regex::Regex>> = names.iter().map(|n| regex::Regex::new(n).ok()).collect();
        stacks.retain(|s| names.iter().zip(&res).any(|(n, r)| *n == s.name || r.as_ref().is_some_and(|r| r.is_match(&s.name))));
    }
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for s in &stacks {
            writeln!(out, "{}", s.name)?;
        }
        return Ok(0);
    }
    if fmt == "json" {
        writeln!(out, "{}", serde_json::to_string(&stacks)?)?;
        return Ok(0);
    }
    let mut rows = vec![vec!["NAME".to_string(), "STATUS".into(), "CONFIG FILES".into()]];
    for s in stacks {
        rows.push(vec![s.name, s.status, s.config_files]);
    }
    out.write_all(tabwriter::table(&rows, Style::COMPOSE).as_bytes())?;
    Ok(0)
}

/// Every project with containers in the root (running ones only unless `all`), sorted by name.
pub fn stacks(root: &crate::state::StateRoot, all: bool) -> Vec<Stack> {
    let mut by: BTreeMap<String, (BTreeMap<String, usize>, Vec<String>)> = BTreeMap::new();
    for c in ops::list_configs(root) {
        let (Some(project), true) = (c.labels.get(labels::PROJECT), c.labels.contains_key(labels::CONFIG_HASH)) else { continue };
        let st = ops::state_of(root, &c.id).unwrap_or_default();
        if !all && !st.status.is_active() {
            continue;
        }
        let e = by.entry(project.clone()).or_default();
        *e.0.entry(st.status.as_str().to_string()).or_default() += 1;
        for f in c.labels.get(labels::CONFIG_FILES).map(|s| s.split(',').map(String::from).collect::<Vec<_>>()).unwrap_or_default() {
            if !e.1.contains(&f) {
                e.1.push(f);
            }
        }
    }
    by.into_iter()
        .map(|(name, (states, files))| Stack {
            name,
            status: states.iter().map(|(s, n)| format!("{s}({n})")).collect::<Vec<_>>().join(", "),
            config_files: files.join(","),
        })
        .collect()
}
