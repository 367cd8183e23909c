//! `berth events`: the project's container events, live (and from `--since`), as
//! `docker compose events` prints them.
use std::io::Write;
use std::time::Duration;

use chrono::Utc;
use clap::Args;

use crate::cli::GlobalOpts;
use crate::engine::events::{self, Event};
use crate::engine::runtime::logs::parse_time;
use crate::labels;

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Output events as a stream of json objects
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    json: bool,
    /// Show all events created since timestamp
    #[arg(long)]
    since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    until: Option<String>,
    #[arg(value_name = "SERVICE")]
    service: Vec<String>,
}

pub fn run(g: &GlobalOpts, a: EventsArgs) -> anyhow::Result<i32> {
    let now = Utc::now();
    let time = |s: &Option<String>, what: &str| -> anyhow::Result<Option<chrono::DateTime<Utc>>> {
        s.as_deref()
            .map(|v| {
                parse_time(v, now)
                    .ok_or_else(|| anyhow::anyhow!("invalid value {v:?} for --{what}: a time (2013-01-02T13:23:37Z) or a duration (42m)"))
            })
            .transpose()
    };
    let since = time(&a.since, "since")?;
    let until = time(&a.until, "until")?;
    let target = super::Target::project_or_name(g)?;
    let root = g.state_root();
    let mut follower = events::Follower::new(&root);
    let mut out = std::io::stdout().lock();
    let print = |ev: &Event, out: &mut std::io::StdoutLock| -> std::io::Result<bool> {
        if until.is_some_and(|u| ev.at() > u) {
            return Ok(false);
        }
        if let Some(line) = render(ev, &target.name, &a.service, a.json) {
            out.write_all(line.as_bytes())?;
            out.flush()?;
        }
        Ok(true)
    };
    if let Some(s) = since {
        for ev in events::read_since(&root, Some(s)) {
            if !print(&ev, &mut out)? {
                return Ok(0);
            }
        }
    }
    loop {
        if until.is_some_and(|u| Utc::now() > u) {
            return Ok(0);
        }
        for ev in follower.next(Duration::from_millis(500)) {
            if !print(&ev, &mut out)? {
                return Ok(0);
            }
        }
    }
}

/// The event as compose prints it, if it concerns the project (and one of `services`); one-off
/// containers and compose's own labels are left out.
pub fn render(ev: &Event, project: &str, services: &[String], json: bool) -> Option<String> {
    if ev.kind != "container" || ev.attr(labels::PROJECT) != Some(project) || ev.attr(labels::ONEOFF) == Some("True") {
        return None;
    }
    let service = ev.attr(labels::SERVICE).unwrap_or("").to_string();
    if !services.is_empty() && !services.contains(&service) {
        return None;
    }
    let attributes: std::collections::BTreeMap<&String, &String> =
        ev.attributes.iter().filter(|(k, _)| !k.starts_with(labels::RESERVED_PREFIX)).collect();
    let t = ev.at();
    if json {
        let v = serde_json::json!({
            "action": ev.action,
            "attributes": attributes,
            "id": ev.id,
            "service": service,
            "time": crate::cli::render::text::rfc3339_nano_local(&t),
            "type": "container",
        });
        Some(format!("{v}\n"))
    } else {
        let attrs: Vec<String> = attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let local = t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S%.6f");
        // compose's event text ends with a newline and is printed with another.
        Some(format!("{local} container {} {} ({})\n\n", ev.action, ev.id, attrs.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_render_as_compose_prints_them() {
        let mut ev = Event {
            time: "2026-11-22T16:29:37.942050819Z".into(),
            time_nano: 1_795_278_577_942_050_819,
            kind: "container".into(),
            action: "die".into(),
            id: "abc".into(),
            attributes: Default::default(),
        };
        for (k, v) in [
            ("com.docker.compose.project", "p"),
            ("com.docker.compose.service", "web"),
            ("name", "p-web-1"),
            ("image", "busybox"),
            ("exitCode", "3"),
            ("owner", "me"),
        ] {
            ev.attributes.insert(k.into(), v.into());
        }
        let j: serde_json::Value = serde_json::from_str(&render(&ev, "p", &[], true).unwrap()).unwrap();
        assert_eq!(j["action"], "die");
        assert_eq!(j["service"], "web");
        assert_eq!(j["type"], "container");
        assert_eq!(j["attributes"], serde_json::json!({"exitCode": "3", "image": "busybox", "name": "p-web-1", "owner": "me"}));
        assert!(j["time"].as_str().unwrap().contains("T"));
        assert!(render(&ev, "other", &[], true).is_none());
        assert!(render(&ev, "p", &["db".into()], true).is_none());
        let text = render(&ev, "p", &[], false).unwrap();
        assert!(text.contains(" container die abc (exitCode=3, image=busybox, name=p-web-1, owner=me)\n"), "{text}");
        ev.attributes.insert("com.docker.compose.oneoff".into(), "True".into());
        assert!(render(&ev, "p", &[], true).is_none());
    }
}
