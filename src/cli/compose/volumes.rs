//! `berth volumes [SERVICE...]`: the project's volumes, as `docker compose volumes` lists them
//! (the volumes labelled with the project; with services, only those their running containers
//! mount).
use clap::Args;
use serde_json::{Value, json};

use super::converge::Target;
use crate::cli::GlobalOpts;
use crate::engine::runtime::spec::MountType;
use crate::engine::runtime::volumes::{self, Volume};
use crate::labels;

#[derive(Args, Debug)]
pub struct VolumesArgs {
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json' or 'TEMPLATE'
    #[arg(long, default_value = "table")]
    format: String,
    /// Only display volume names
    #[arg(short, long)]
    quiet: bool,
    #[arg(long, hide = true)]
    dry_run: bool,
    services: Vec<String>,
}

pub fn run(g: &GlobalOpts, a: VolumesArgs) -> anyhow::Result<i32> {
    let t = Target::project_or_name(g)?;
    let list = project_volumes(&t, &a.services)?;
    if a.quiet {
        for v in &list {
            println!("{}", v.name);
        }
        return Ok(0);
    }
    let rows: Vec<Value> = list.iter().map(summary).collect();
    print!("{}", render(&a.format, &rows));
    Ok(0)
}

/// The volumes labelled with the project (anonymous ones excepted: compose does not label
/// them), sorted by name; with `services`, only those the services' running containers mount.
/// As compose, an unknown service is no error: it simply mounts nothing.
fn project_volumes(t: &Target, services: &[String]) -> anyhow::Result<Vec<Volume>> {
    let mut list: Vec<Volume> = volumes::list(&t.root)?
        .into_iter()
        .filter(|v| !v.is_anonymous() && v.labels.get(labels::PROJECT).is_some_and(|p| *p == t.name))
        .collect();
    if !services.is_empty() {
        let ctrs = super::query::containers(&t.root, &t.name, super::query::OneOff::Include, false, services);
        list.retain(|v| ctrs.iter().any(|c| c.cfg.mounts.iter().any(|m| m.kind == MountType::Volume && m.source == v.name)));
    }
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(list)
}

/// A volume as `docker volume ls --format json` gives it (what compose prints).
fn summary(v: &Volume) -> Value {
    let labels = v.labels.iter().map(|(k, x)| format!("{k}={x}")).collect::<Vec<_>>().join(",");
    json!({
        "Availability": "N/A", "Driver": v.driver, "Group": "N/A", "Labels": labels, "Links": "N/A",
        "Mountpoint": v.mountpoint, "Name": v.name, "Scope": v.scope, "Size": "N/A", "Status": "N/A",
    })
}

/// `table` (compose's DRIVER and VOLUME NAME columns), `json` (one object a line), `table
/// TEMPLATE` (a header, then a row per volume, aligned) or a bare Go template.
fn render(format: &str, rows: &[Value]) -> String {
    let format = format.trim();
    if format == "json" {
        return rows.iter().map(|r| format!("{r}\n")).collect();
    }
    let (table, tpl) = match format {
        "" | "table" => (true, "{{.Driver}}\t{{.Name}}"),
        f => match f.strip_prefix("table ") {
            Some(t) => (true, t.trim()),
            None => (false, f),
        },
    };
    let mut lines: Vec<String> = Vec::new();
    if table {
        lines.push(header(tpl));
    }
    for r in rows {
        lines.push(crate::cli::network::render_template(tpl, r));
    }
    if table { crate::cli::network::tabulate(&lines) } else { lines.iter().map(|l| format!("{l}\n")).collect() }
}

/// A table template's header: each `{{.Field}}` by Docker's column name.
fn header(tpl: &str) -> String {
    let mut out = tpl.replace("\\t", "\t");
    while let Some(start) = out.find("{{") {
        let Some(end) = out[start..].find("}}") else { break };
        let field = out[start + 2..start + end].trim().trim_start_matches("json ").trim().trim_start_matches('.').to_string();
        let name = match field.as_str() {
            "Name" => "VOLUME NAME".to_string(),
            "Mountpoint" => "MOUNTPOINT".to_string(),
            f => f.to_uppercase(),
        };
        out.replace_range(start..start + end + 2, &name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str) -> Value {
        json!({"Driver": "local", "Name": name, "Labels": "a=b", "Mountpoint": "/m"})
    }

    #[test]
    fn table_has_compose_columns() {
        let out = render("table", &[row("p_data"), row("p_other")]);
        assert_eq!(out, "DRIVER    VOLUME NAME\nlocal     p_data\nlocal     p_other\n");
        assert_eq!(render("table", &[]), "DRIVER    VOLUME NAME\n");
    }

    #[test]
    fn json_and_templates() {
        let out = render("json", &[row("p_data")]);
        assert_eq!(serde_json::from_str::<Value>(out.trim()).unwrap()["Name"], "p_data");
        assert_eq!(render("{{.Name}} {{.Labels}}", &[row("p_data")]), "p_data a=b\n");
        assert_eq!(render("table {{.Name}}\t{{.Mountpoint}}", &[row("p_data")]), "VOLUME NAME   MOUNTPOINT\np_data        /m\n");
    }
}
