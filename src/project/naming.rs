//! The names compose gives things, in one place: the containers of a service
//! (`<project>-<service>-<n>`, or its `container_name`), one-off containers
//! (`<project>-<service>-run-<slug>`), and the image a service builds when it names none
//! (`<project>-<service>`).
//!
//! Why one module: these names are how a later command (or Docker Compose itself) finds what an
//! earlier one made, so every writer and every reader must agree to the byte. The planner names
//! the replicas it will create, the converter names the container it creates, `run` names its
//! one-off, `build` tags and `down --rmi` removes the image, and `logs` strips the prefix back
//! off: each asks here.

use super::model::{Project, Service};

/// Replica `number` of `service`: `<project>-<service>-<number>`, as compose names it.
pub fn replica_name(project: &str, service: &str, number: u32) -> String {
    format!("{project}-{service}-{number}")
}

/// The name of replica `number` of a service: its `container_name` when set (which forbids a
/// second replica), else [`replica_name`].
pub fn container_name(project: &str, service: &str, container_name: Option<&str>, number: u32) -> String {
    match container_name {
        Some(n) => n.to_string(),
        None => replica_name(project, service, number),
    }
}

/// [`container_name`] of a model service.
pub fn service_container_name(project: &str, service: &Service, number: u32) -> String {
    container_name(project, &service.name, service.container_name.as_deref(), number)
}

/// A `run` container: `<project>-<service>-run-<first 12 characters of the slug>`.
pub fn oneoff_name(project: &str, service: &str, slug: &str) -> String {
    let short = slug.get(..12).unwrap_or(slug);
    format!("{project}-{service}-run-{short}")
}

/// The image a service builds, or runs, when it has no `image:`: `<project>-<service>`.
pub fn default_image_name(project: &str, service: &str) -> String {
    format!("{project}-{service}")
}

/// The image reference of a service: its `image`, else [`default_image_name`] (what `build`
/// tags, `up` runs and `down --rmi` removes).
pub fn service_image_name(project: &Project, service: &Service) -> String {
    service.image.clone().unwrap_or_else(|| default_image_name(&project.name, &service.name))
}

/// The replica number of a `com.docker.compose.container-number` label (None when absent or
/// not a number).
pub fn parse_number(label: &str) -> Option<u32> {
    label.parse().ok()
}

/// The name logs prefix lines with: `<service>-<n>` for a container compose named itself, the
/// whole name otherwise (`container_name`, one-offs). `number` is the container-number label as
/// written.
pub fn log_name(name: &str, project: &str, service: &str, number: &str) -> String {
    let default = format!("{project}-{service}-{number}");
    if name == default { name[project.len() + 1..].to_string() } else { name.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names() {
        assert_eq!(replica_name("demo", "web", 2), "demo-web-2");
        assert_eq!(container_name("demo", "web", None, 1), "demo-web-1");
        assert_eq!(container_name("demo", "web", Some("fixed"), 1), "fixed");
        let mut s = Service { name: "db".into(), ..Default::default() };
        assert_eq!(service_container_name("demo", &s, 3), "demo-db-3");
        s.container_name = Some("pg".into());
        assert_eq!(service_container_name("demo", &s, 1), "pg");
    }

    #[test]
    fn oneoff_names() {
        assert_eq!(oneoff_name("demo", "web", "0123456789abcdef0123"), "demo-web-run-0123456789ab");
        assert_eq!(oneoff_name("demo", "web", "short"), "demo-web-run-short", "never panics on a short slug");
    }

    #[test]
    fn image_names() {
        let p = Project { name: "demo".into(), ..Default::default() };
        let mut s = Service { name: "web".into(), ..Default::default() };
        assert_eq!(service_image_name(&p, &s), "demo-web");
        s.image = Some("nginx:1".into());
        assert_eq!(service_image_name(&p, &s), "nginx:1");
        assert_eq!(default_image_name("demo", "web"), "demo-web");
    }

    #[test]
    fn numbers_and_log_names() {
        assert_eq!(parse_number("3"), Some(3));
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("x"), None);
        assert_eq!(log_name("demo-web-1", "demo", "web", "1"), "web-1");
        assert_eq!(log_name("fixed", "demo", "web", "1"), "fixed");
        assert_eq!(log_name("demo-web-run-0123456789ab", "demo", "web", ""), "demo-web-run-0123456789ab");
    }
}
