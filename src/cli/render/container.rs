//! A container as Docker lists it: its status text ("Up 5 seconds (healthy)") and its published
//! ports (`0.0.0.0:8080->80/tcp`). The engine reports the data (status, times, bindings); the
//! words are the front end's.

use super::units::human_duration;
use crate::engine::runtime::state::HealthStatus;
use crate::engine::runtime::{ContainerState, Status};
use crate::net::PublishedPort;

/// Docker's status text for a container in `st`, as of `now`.
pub fn status(st: &ContainerState, now: chrono::DateTime<chrono::Utc>) -> String {
    let since = |t: &str| match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(t) => human_duration(now - t.to_utc()),
        Err(_) => String::new(),
    };
    match st.status {
        Status::Created => "Created".into(),
        // Docker's: paused hides the health.
        Status::Paused => format!("Up {} (Paused)", since(&st.started_at)),
        Status::Running => {
            let mut s = format!("Up {}", since(&st.started_at));
            if let Some(h) = &st.health {
                match h.status {
                    HealthStatus::Starting => s.push_str(" (health: starting)"),
                    HealthStatus::None => {}
                    other => s.push_str(&format!(" ({other})")),
                }
            }
            s
        }
        Status::Restarting => format!("Restarting ({}) {} ago", st.exit_code, since(&st.finished_at)),
        Status::Exited => format!("Exited ({}) {} ago", st.exit_code, since(&st.finished_at)),
        Status::Dead => "Dead".into(),
        Status::Removing => "Removal In Progress".into(),
    }
}

/// A published port as `docker ps` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortEntry {
    /// Empty when the port is exposed but not published.
    pub ip: String,
    pub private: u16,
    pub public: u16,
    pub proto: String,
}

impl PortEntry {
    pub fn from_published(p: &PublishedPort) -> PortEntry {
        PortEntry { ip: p.host_ip.to_string(), private: p.container_port, public: p.host_port, proto: p.protocol.to_string() }
    }
}

fn join_host_port(ip: &str, port: &str) -> String {
    if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") }
}

/// The order Docker lists a container's ports in (and compose its `Publishers`): by container
/// port, then host address (`0.0.0.0` before `::`), host port and protocol. One entry per
/// binding the container's state records: a port published on both families shows twice.
pub fn sort_ports(ports: &mut [PortEntry]) {
    ports.sort_by(|a, b| (a.private, &a.ip, a.public, &a.proto).cmp(&(b.private, &b.ip, b.public, &b.proto)));
}

/// The Docker CLI's `DisplayablePorts`: sorted, ranges of same-number mappings grouped, the
/// others as `ip:public->private/proto`.
pub fn displayable_ports(ports: &[PortEntry]) -> String {
    let mut ports = ports.to_vec();
    sort_ports(&mut ports);
    let mut groups: Vec<(String, u16, u16)> = Vec::new();
    let mut result = Vec::new();
    let mut mappings = Vec::new();
    for p in &ports {
        let mut key = p.proto.clone();
        if !p.ip.is_empty() {
            if p.public != p.private {
                mappings.push(format!("{}->{}/{}", join_host_port(&p.ip, &p.public.to_string()), p.private, p.proto));
                continue;
            }
            key = format!("{}/{}", p.ip, p.proto);
        }
        match groups.iter_mut().find(|g| g.0 == key) {
            None => groups.push((key, p.private, p.private)),
            Some(g) if p.private == g.2.wrapping_add(1) => g.2 = p.private,
            Some(g) => {
                result.push(form_group(&g.0, g.1, g.2));
                g.1 = p.private;
                g.2 = p.private;
            }
        }
    }
    for g in &groups {
        result.push(form_group(&g.0, g.1, g.2));
    }
    result.extend(mappings);
    result.join(", ")
}

fn form_group(key: &str, first: u16, last: u16) -> String {
    let (ip, proto) = match key.rsplit_once('/') {
        Some((ip, proto)) => (ip, proto),
        None => ("", key),
    };
    let mut group = first.to_string();
    if first != last {
        group = format!("{group}-{last}");
    }
    if !ip.is_empty() {
        group = format!("{}->{group}", join_host_port(ip, &group));
    }
    format!("{group}/{proto}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::runtime::state::Health;

    #[test]
    fn status_text_as_docker_prints_it() {
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().to_utc();
        let mut st = ContainerState::new();
        assert_eq!(status(&st, t0), "Created");
        st.status = Status::Running;
        st.started_at = "2026-01-01T00:00:00Z".into();
        let later = t0 + chrono::TimeDelta::hours(47) + chrono::TimeDelta::minutes(45);
        assert_eq!(status(&st, later), "Up 2 days");
        st.health = Some(Health { status: HealthStatus::Starting, ..Default::default() });
        assert_eq!(status(&st, t0 + chrono::TimeDelta::seconds(5)), "Up 5 seconds (health: starting)");
        st.health = Some(Health { status: HealthStatus::Healthy, ..Default::default() });
        assert_eq!(status(&st, t0 + chrono::TimeDelta::seconds(5)), "Up 5 seconds (healthy)");
        st.status = Status::Paused;
        assert_eq!(status(&st, t0 + chrono::TimeDelta::seconds(5)), "Up 5 seconds (Paused)");
        st.status = Status::Exited;
        st.exit_code = 3;
        st.finished_at = "2026-01-01T00:00:00Z".into();
        assert_eq!(status(&st, t0 + chrono::TimeDelta::minutes(3)), "Exited (3) 3 minutes ago");
        st.status = Status::Removing;
        assert_eq!(status(&st, t0), "Removal In Progress");
    }

    #[test]
    fn ports_as_docker_ps_lists_them() {
        let e = |ip: &str, private, public| PortEntry { ip: ip.into(), private, public, proto: "tcp".into() };
        let ports = vec![e("::", 8080, 32768), e("0.0.0.0", 80, 43500), e("::", 80, 43500), e("0.0.0.0", 8080, 32768)];
        assert_eq!(displayable_ports(&ports), "0.0.0.0:43500->80/tcp, [::]:43500->80/tcp, 0.0.0.0:32768->8080/tcp, [::]:32768->8080/tcp");
        // What `docker compose ps` printed for ["43980:80", "8080", "43981-43982:90-91",
        // "127.0.0.1:43983:53/udp"] with Docker publishing on both families.
        let mut udp = e("127.0.0.1", 53, 43983);
        udp.proto = "udp".into();
        let both = vec![
            e("0.0.0.0", 8080, 32768),
            e("::", 8080, 32768),
            e("0.0.0.0", 91, 43982),
            e("::", 91, 43982),
            e("0.0.0.0", 90, 43981),
            e("::", 90, 43981),
            e("::", 80, 43980),
            e("0.0.0.0", 80, 43980),
            udp,
        ];
        assert_eq!(
            displayable_ports(&both),
            "127.0.0.1:43983->53/udp, 0.0.0.0:43980->80/tcp, [::]:43980->80/tcp, 0.0.0.0:43981->90/tcp, [::]:43981->90/tcp, \
             0.0.0.0:43982->91/tcp, [::]:43982->91/tcp, 0.0.0.0:32768->8080/tcp, [::]:32768->8080/tcp"
        );
        // Only what is recorded: an IPv4-only binding shows once.
        assert_eq!(displayable_ports(&[e("0.0.0.0", 80, 43980)]), "0.0.0.0:43980->80/tcp");
        let same = vec![e("0.0.0.0", 80, 80), e("0.0.0.0", 81, 81), e("", 9000, 0)];
        assert_eq!(displayable_ports(&same), "0.0.0.0:80-81->80-81/tcp, 9000/tcp");
    }
}
