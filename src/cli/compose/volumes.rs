//! `berth volumes [SERVICE...]`: the project's volumes, as `docker compose volumes` lists them
//! (the volumes labelled with the project; with services, only those their running containers
//! mount).
use clap::Args;

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
    print!("{}", render(&a.format, &list)?);
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

/// `table` (compose's DRIVER and VOLUME NAME columns), `json` (one object a line), `table
/// TEMPLATE` (a header, then a row per volume, aligned) or a bare Go template.
fn render(format: &str, volumes: &[Volume]) -> anyhow::Result<String> {
    crate::cli::volume::render_list(format, volumes)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn row(name: &str) -> Volume {
        Volume {
            name: name.into(),
            driver: "local".into(),
            labels: [("a".to_string(), "b".to_string())].into(),
            mountpoint: "/m".into(),
            ..Default::default()
        }
    }

    #[test]
    fn table_has_compose_columns() {
        let out = render("table", &[row("p_data"), row("p_other")]).unwrap();
        assert_eq!(out, "DRIVER    VOLUME NAME\nlocal     p_data\nlocal     p_other\n");
        assert_eq!(render("table", &[]).unwrap(), "DRIVER    VOLUME NAME\n");
    }

    #[test]
    fn json_and_templates() {
        let out = render("json", &[row("p_data")]).unwrap();
        assert_eq!(serde_json::from_str::<Value>(out.trim()).unwrap()["Name"], "p_data");
        assert_eq!(render("{{.Name}} {{.Labels}}", &[row("p_data")]).unwrap(), "p_data a=b\n");
        assert_eq!(render("table {{.Name}}\t{{.Mountpoint}}", &[row("p_data")]).unwrap(), "VOLUME NAME   MOUNTPOINT\np_data        /m\n");
    }
}
