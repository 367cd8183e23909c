//! Pass 6: validation against the Compose Specification's JSON schema (vendored as
//! `data/compose-spec.json`, the schema Docker Compose uses), reported at the node's line:column
//! with its key path and what was expected; then the checks a schema cannot express
//! ([`check_project`]): references to undefined services, networks, volumes, secrets and configs,
//! and conflicting settings.
//!
//! The validator implements the part of JSON Schema that the compose schema uses: `type`,
//! `properties`, `patternProperties`, `additionalProperties`, `required`, `items`, `uniqueItems`,
//! `enum`, `oneOf`/`anyOf`/`allOf`, `minimum`/`maximum`, `pattern` and `$ref`.

use std::sync::OnceLock;

use serde_json::Value as J;

use super::error::{LoadError, Result};
use super::yaml::{Node, Value};

const SCHEMA_TEXT: &str = include_str!("../../data/compose-spec.json");

fn schema() -> &'static J {
    static S: OnceLock<J> = OnceLock::new();
    S.get_or_init(|| serde_json::from_str(SCHEMA_TEXT).unwrap_or(J::Null))
}

/// Validates a whole compose document (after interpolation) against the schema.
pub(crate) fn validate_document(root: &Node) -> Result<()> {
    let s = schema();
    match check(root, s, "", s) {
        Ok(()) => Ok(()),
        Err(f) => Err(LoadError::at(&f.pos, f.path, f.msg)),
    }
}

struct Fail {
    pos: super::error::Pos,
    path: String,
    msg: String,
    /// How deep in the document the failure is: the deepest failure explains a `oneOf` best.
    depth: usize,
}

fn resolve<'a>(s: &'a J, root: &'a J) -> &'a J {
    let mut s = s;
    for _ in 0..16 {
        match s.get("$ref").and_then(J::as_str) {
            Some(r) => {
                let name = r.trim_start_matches("#/definitions/");
                s = root.get("definitions").and_then(|d| d.get(name)).unwrap_or(&J::Null);
            }
            None => break,
        }
    }
    s
}

fn type_matches(node: &Node, t: &str) -> bool {
    match (t, &node.v) {
        ("object", Value::Map(_)) => true,
        ("array", Value::Seq(_)) => true,
        ("string", Value::Str(_)) => true,
        ("integer", Value::Int(_)) => true,
        ("integer", Value::Float(f)) => f.fract() == 0.0,
        ("number", Value::Int(_) | Value::Float(_)) => true,
        ("boolean", Value::Bool(_)) => true,
        ("null", Value::Null) => true,
        _ => false,
    }
}

fn type_name(t: &str) -> &str {
    match t {
        "object" => "a mapping",
        "array" => "a list",
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "a boolean",
        "null" => "null",
        other => other,
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() { k.to_string() } else { format!("{path}.{k}") }
}

fn pattern_matches(pat: &str, s: &str) -> bool {
    match pat {
        "^x-" => s.starts_with("x-"),
        "^.+$" => !s.is_empty(),
        "^[a-zA-Z0-9._-]+$" => !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
        "^[a-z]+$" => !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase()),
        "[a-zA-Z0-9][a-zA-Z0-9_.-]+" => {
            // unanchored: some alphanumeric followed by at least one more allowed character
            let b = s.as_bytes();
            (0..b.len().saturating_sub(1))
                .any(|i| b[i].is_ascii_alphanumeric() && (b[i + 1].is_ascii_alphanumeric() || b"_.-".contains(&b[i + 1])))
        }
        p if p.starts_with("always|never") => {
            // pull_policy: unanchored alternatives
            ["always", "never", "build", "if_not_present", "missing", "refresh", "daily", "weekly"].iter().any(|w| s.contains(w))
                || s.contains("every_")
        }
        _ => true,
    }
}

fn depth_of(path: &str) -> usize {
    path.matches(['.', '[']).count()
}

fn fail(node: &Node, path: &str, msg: String) -> Fail {
    Fail { pos: node.pos.clone(), path: path.to_string(), msg, depth: depth_of(path) }
}

fn check(node: &Node, s: &J, path: &str, root: &J) -> std::result::Result<(), Fail> {
    let s = resolve(s, root);
    let Some(obj) = s.as_object() else { return Ok(()) };

    if let Some(t) = obj.get("type") {
        let types: Vec<&str> = match t {
            J::String(t) => vec![t.as_str()],
            J::Array(a) => a.iter().filter_map(J::as_str).collect(),
            _ => vec![],
        };
        if !types.is_empty() && !types.iter().any(|t| type_matches(node, t)) {
            let want: Vec<&str> = types.iter().map(|t| type_name(t)).collect();
            return Err(fail(node, path, format!("must be {}, not {}", want.join(" or "), article(node))));
        }
    }
    if let Some(e) = obj.get("enum").and_then(J::as_array) {
        if !e.iter().any(|v| scalar_eq(node, v)) {
            let allowed: Vec<String> = e.iter().map(|v| v.to_string()).collect();
            return Err(fail(node, path, format!("must be one of {}", allowed.join(", "))));
        }
    }
    if let (Some(p), Value::Str(sv)) = (obj.get("pattern").and_then(J::as_str), &node.v) {
        if !pattern_matches(p, sv) {
            return Err(fail(node, path, format!("{sv:?} does not match the pattern {p}")));
        }
    }
    if let Some(min) = obj.get("minimum").and_then(J::as_f64) {
        if let Some(v) = num(node) {
            if v < min {
                return Err(fail(node, path, format!("must be at least {min}")));
            }
        }
    }
    if let Some(max) = obj.get("maximum").and_then(J::as_f64) {
        if let Some(v) = num(node) {
            if v > max {
                return Err(fail(node, path, format!("must be at most {max}")));
            }
        }
    }

    if let Value::Map(m) = &node.v {
        let props = obj.get("properties").and_then(J::as_object);
        let pprops = obj.get("patternProperties").and_then(J::as_object);
        let addl = obj.get("additionalProperties");
        for (k, v) in &m.0 {
            let p = join(path, &k.name);
            let mut matched = false;
            if let Some(ps) = props.and_then(|ps| ps.get(&k.name)) {
                matched = true;
                check(v, ps, &p, root)?;
            }
            if let Some(pp) = pprops {
                for (pat, ps) in pp {
                    if pattern_matches(pat, &k.name) {
                        matched = true;
                        check(v, ps, &p, root)?;
                    }
                }
            }
            if !matched {
                match addl {
                    Some(J::Bool(false)) => {
                        let mut msg = format!("additional property {:?} is not allowed", k.name);
                        if let Some(sugg) = props.and_then(|ps| suggest(&k.name, ps.keys().map(String::as_str))) {
                            msg.push_str(&format!(" (did you mean {sugg:?}?)"));
                        }
                        return Err(Fail { pos: k.pos.clone(), path: path.to_string(), msg, depth: depth_of(&p) });
                    }
                    Some(a @ J::Object(_)) => check(v, a, &p, root)?,
                    _ => {}
                }
            }
        }
        if let Some(req) = obj.get("required").and_then(J::as_array) {
            for r in req.iter().filter_map(J::as_str) {
                if !m.contains(r) {
                    return Err(fail(node, path, format!("the key {r:?} is required")));
                }
            }
        }
    }

    if let Value::Seq(items) = &node.v {
        if let Some(is) = obj.get("items") {
            for (i, it) in items.iter().enumerate() {
                check(it, is, &format!("{path}[{i}]"), root)?;
            }
        }
        if obj.get("uniqueItems") == Some(&J::Bool(true)) {
            for (i, a) in items.iter().enumerate() {
                if let Some(j) = items[..i].iter().position(|b| same(a, b)) {
                    let shown = a.scalar_string().unwrap_or_else(|| a.kind().to_string());
                    return Err(fail(
                        a,
                        &format!("{path}[{i}]"),
                        format!("duplicate entry {shown:?} (already at {path}[{j}]); list items must be unique"),
                    ));
                }
            }
        }
    }

    if let Some(all) = obj.get("allOf").and_then(J::as_array) {
        for sub in all {
            check(node, sub, path, root)?;
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = obj.get(key).and_then(J::as_array) {
            let mut best: Option<Fail> = None;
            let mut ok = false;
            for sub in alts {
                match check(node, sub, path, root) {
                    Ok(()) => {
                        ok = true;
                        break;
                    }
                    Err(f) => {
                        if best.as_ref().is_none_or(|b| f.depth > b.depth) {
                            best = Some(f);
                        }
                    }
                }
            }
            if !ok {
                // A failure deeper than this node explains best; else list what fits here.
                let here = depth_of(path);
                match best {
                    Some(b) if b.depth > here => return Err(b),
                    _ => {
                        let kinds = alt_types(alts, root);
                        let msg = if kinds.is_empty() {
                            "has an invalid value".to_string()
                        } else {
                            format!("must be {}, not {}", kinds.join(" or "), article(node))
                        };
                        return Err(fail(node, path, msg));
                    }
                }
            }
        }
    }
    Ok(())
}

fn alt_types(alts: &[J], root: &J) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in alts {
        let a = resolve(a, root);
        let ts: Vec<&str> = match a.get("type") {
            Some(J::String(t)) => vec![t.as_str()],
            Some(J::Array(v)) => v.iter().filter_map(J::as_str).collect(),
            _ => vec![],
        };
        for t in ts {
            let n = type_name(t).to_string();
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

fn article(node: &Node) -> String {
    match &node.v {
        Value::Null => "null (an empty value)".into(),
        Value::Str(s) => format!("the string {s:?}"),
        Value::Int(i) => format!("the number {i}"),
        Value::Float(f) => format!("the number {f}"),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Seq(_) => "a list".into(),
        Value::Map(_) => "a mapping".into(),
    }
}

fn num(node: &Node) -> Option<f64> {
    match node.v {
        Value::Int(i) => Some(i as f64),
        Value::Float(f) => Some(f),
        _ => None,
    }
}

fn scalar_eq(node: &Node, v: &J) -> bool {
    match (&node.v, v) {
        (Value::Str(a), J::String(b)) => a == b,
        (Value::Bool(a), J::Bool(b)) => a == b,
        (Value::Int(a), J::Number(b)) => b.as_i64() == Some(*a),
        (Value::Float(a), J::Number(b)) => b.as_f64() == Some(*a),
        (Value::Null, J::Null) => true,
        _ => false,
    }
}

fn same(a: &Node, b: &Node) -> bool {
    match (&a.v, &b.v) {
        (Value::Seq(x), Value::Seq(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        (Value::Map(x), Value::Map(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w))),
        (x, y) => x == y,
    }
}

/// The closest known key to a mistyped one, if it is close enough to be a typo.
pub(crate) fn suggest<'a>(k: &str, known: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for cand in known {
        let d = levenshtein(k, cand);
        if d <= 2.max(k.len() / 4) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, cand));
        }
    }
    best.map(|(_, c)| c.to_string())
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The checks the schema cannot express, on the typed project (before profiles apply).
pub(crate) fn check_project(p: &super::model::Project, root: &super::yaml::Map) -> Result<()> {
    let pos_of = |svc: &str, key: &str| -> super::error::Pos {
        root.get("services")
            .and_then(Node::as_map)
            .and_then(|m| m.get(svc))
            .and_then(|s| s.as_map().and_then(|m| m.get(key)).or(Some(s)))
            .map(|n| n.pos.clone())
            .unwrap_or_default()
    };
    for (name, s) in &p.services {
        let at = |key: &str, msg: String| LoadError::at(&pos_of(name, key), format!("services.{name}.{key}"), msg);
        if s.build.is_none() && s.image.is_none() && s.provider.is_none() {
            return Err(LoadError::at(
                &pos_of(name, "image"),
                format!("services.{name}"),
                "has neither an image nor a build context: add image: or build:",
            ));
        }
        if let Some(b) = &s.build {
            if b.dockerfile_inline.is_some() && b.dockerfile.as_deref().is_some_and(|d| d != "Dockerfile") {
                return Err(at("build", "declares mutually exclusive dockerfile and dockerfile_inline".into()));
            }
            if let Some(pf) = s.platform.as_deref().filter(|pf| !pf.is_empty()) {
                if !b.platforms.is_empty() && !b.platforms.iter().any(|x| x == pf) {
                    return Err(at(
                        "build.platforms",
                        format!(
                            "service.build.platforms MUST include service.platform {pf:?}: add it to build.platforms or change platform"
                        ),
                    ));
                }
            }
        }
        if s.network_mode.is_some()
            && !s.networks.is_empty()
            && !(s.networks.len() == 1
                && s.networks.contains_key("default")
                && root
                    .get("services")
                    .and_then(Node::as_map)
                    .and_then(|m| m.get(name))
                    .and_then(Node::as_map)
                    .is_some_and(|m| !m.contains("networks")))
        {
            return Err(at("network_mode", "network_mode and networks are mutually exclusive: keep one".into()));
        }
        for n in s.networks.keys() {
            if !p.networks.contains_key(n) && n != "default" {
                return Err(at("networks", format!("refers to undefined network {n:?}: declare it under the top-level networks:")));
            }
        }
        for l in &s.links {
            let t = l.split(':').next().unwrap_or(l);
            if !p.services.contains_key(t) {
                return Err(at("links", format!("links to undefined service {t:?}")));
            }
        }
        for v in &s.volumes_from {
            if v.starts_with("container:") {
                continue;
            }
            let t = v.split(':').next().unwrap_or(v);
            if !p.services.contains_key(t) {
                return Err(at("volumes_from", format!("uses volumes from undefined service {t:?}")));
            }
        }
        for (key, v) in [("network_mode", &s.network_mode), ("ipc", &s.ipc), ("pid", &s.pid)] {
            if let Some(t) = v.as_deref().and_then(|v| v.strip_prefix("service:")) {
                if !p.services.contains_key(t) {
                    return Err(at(key, format!("refers to undefined service {t:?} in {key} service:{t}")));
                }
            }
        }
        for (dep, d) in &s.depends_on {
            if !p.services.contains_key(dep) && d.required {
                return Err(at("depends_on", format!("depends on undefined service {dep:?}")));
            }
        }
        for m in &s.volumes {
            if m.kind == "volume" {
                if let Some(src) = &m.source {
                    if !p.volumes.contains_key(src) {
                        return Err(at("volumes", format!("refers to undefined volume {src:?}: declare it under the top-level volumes:")));
                    }
                }
            }
        }
        for sec in s.secrets.iter().chain(s.build.iter().flat_map(|b| b.secrets.iter())) {
            if !p.secrets.contains_key(&sec.source) {
                return Err(at("secrets", format!("refers to undefined secret {:?}", sec.source)));
            }
        }
        for c in &s.configs {
            if !p.configs.contains_key(&c.source) {
                return Err(at("configs", format!("refers to undefined config {:?}", c.source)));
            }
        }
        if let Some(h) = &s.healthcheck {
            if let Some(first) = h.test.first() {
                if !matches!(first.as_str(), "CMD" | "CMD-SHELL" | "NONE") {
                    return Err(at("healthcheck", "healthcheck.test must start with \"CMD\", \"CMD-SHELL\" or \"NONE\"".into()));
                }
            }
        }
        if let (Some(scale), Some(d)) = (s.scale, &s.deploy) {
            if d.replicas.is_some_and(|r| r != scale) {
                return Err(at("scale", "can't set distinct values on 'scale' and 'deploy.replicas'".into()));
            }
        }
        if s.scale.is_some_and(|x| x < 0) {
            return Err(at("scale", "must be greater than or equal to 0".into()));
        }
        if let Some(l) = s.deploy.as_ref().and_then(|d| d.resources.limits.as_ref()) {
            if s.cpus != 0.0 && l.cpus != s.cpus {
                return Err(at("cpus", "can't set distinct values on 'cpus' and 'deploy.resources.limits.cpus': keep one".into()));
            }
            if s.mem_limit.0 != 0 && l.memory != s.mem_limit {
                return Err(at(
                    "mem_limit",
                    "can't set distinct values on 'mem_limit' and 'deploy.resources.limits.memory': keep one".into(),
                ));
            }
            if s.pids_limit != 0 && l.pids != s.pids_limit {
                return Err(at(
                    "pids_limit",
                    "can't set distinct values on 'pids_limit' and 'deploy.resources.limits.pids': keep one".into(),
                ));
            }
        }
        if let Some(r) = s.deploy.as_ref().and_then(|d| d.resources.reservations.as_ref()) {
            if s.mem_reservation.0 != 0 && r.memory != s.mem_reservation {
                return Err(at(
                    "mem_reservation",
                    "can't set distinct values on 'mem_reservation' and 'deploy.resources.reservations.memory'".into(),
                ));
            }
        }
        let replicas = s.scale.or(s.deploy.as_ref().and_then(|d| d.replicas)).unwrap_or(1);
        if replicas > 1 && s.container_name.is_some() {
            return Err(at(
                "container_name",
                "can't set container_name and scale or deploy.replicas above 1: container names must be unique".into(),
            ));
        }
        let mut seen: Vec<&str> = Vec::new();
        for m in &s.volumes {
            if seen.contains(&m.target.as_str()) {
                return Err(at("volumes", format!("target {} is mounted twice", m.target)));
            }
            seen.push(&m.target);
        }
    }
    check_host_ports(p, &pos_of)
}

/// One host port published twice in the project (by two services, or twice by one) can never
/// come up: Docker's engine refuses the second bind at start, after the networks and the first
/// containers were made. It is refused here, before anything is created. Two services count
/// only when both can be up together (no profiles, or a profile in common); ranges, where the
/// engine picks a free port, never clash; nor do services on the host's network, whose ports are
/// discarded.
/// A fixed host port of the project: service, its profiles, host address, port, protocol.
type Published<'a> = (&'a str, &'a [String], Option<std::net::IpAddr>, u16, &'a str);

fn check_host_ports(p: &super::model::Project, pos_of: &dyn Fn(&str, &str) -> super::error::Pos) -> Result<()> {
    use std::net::IpAddr;
    // No address is every address; an unspecified one is every address of its family.
    let overlap = |a: Option<IpAddr>, b: Option<IpAddr>| match (a, b) {
        (Some(x), Some(y)) => x == y || (x.is_ipv4() == y.is_ipv4() && (x.is_unspecified() || y.is_unspecified())),
        _ => true,
    };
    let mut taken: Vec<Published> = Vec::new();
    for (name, s) in &p.services {
        // With the host's network (or none), published ports are discarded, as in Docker.
        if matches!(s.network_mode.as_deref(), Some("host" | "none")) {
            continue;
        }
        for port in &s.ports {
            let Some(host_port) = port.published.as_deref().and_then(|x| x.parse::<u16>().ok()).filter(|x| *x != 0) else { continue };
            let ip: Option<IpAddr> = port.host_ip.as_deref().and_then(|i| i.trim_matches(|c| c == '[' || c == ']').parse().ok());
            let proto = if port.protocol.is_empty() { "tcp" } else { port.protocol.as_str() };
            let together = |other: &[String]| s.profiles.is_empty() || other.is_empty() || other.iter().any(|x| s.profiles.contains(x));
            let clash = taken.iter().find(|(_, profiles, oip, op, oproto)| {
                *op == host_port && oproto.eq_ignore_ascii_case(proto) && together(profiles) && overlap(*oip, ip)
            });
            if let Some((other, ..)) = clash {
                let by =
                    if *other == name.as_str() { format!("twice by service {name}") } else { format!("by services {other} and {name}") };
                return Err(LoadError::at(
                    &pos_of(name, "ports"),
                    format!("services.{name}.ports"),
                    format!("host port {host_port}/{proto} is published {by}: only one can bind it, change one of them"),
                ));
            }
            taken.push((name.as_str(), s.profiles.as_slice(), ip, host_port, proto));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn v(s: &str) -> std::result::Result<(), String> {
        let n = super::super::yaml::parse(s, &Arc::new(PathBuf::from("c.yaml"))).unwrap().remove(0);
        validate_document(&n).map_err(|e| e.to_string())
    }

    #[test]
    fn the_schema_parses() {
        assert!(schema().get("definitions").is_some());
    }

    #[test]
    fn valid_files_pass() {
        v("services:\n  web:\n    image: busybox\n    ports: [\"80:80\", 81, {target: 82}]\n    x-any: 1\nx-top: {}\n").unwrap();
        v("services:\n  web:\n    build: .\n    depends_on: [db]\n  db:\n    image: x\n    deploy: {replicas: 2}\n").unwrap();
    }

    #[test]
    fn unknown_key_with_place_and_suggestion() {
        let e = v("services:\n  web:\n    image: busybox\n    imagee: x\n").unwrap_err();
        assert!(e.starts_with("c.yaml:4:5: services.web: additional property \"imagee\""), "{e}");
        assert!(e.contains("did you mean \"image\""), "{e}");
    }

    #[test]
    fn wrong_types() {
        let e = v("services:\n  nil:\n").unwrap_err();
        assert!(e.contains("services.nil: must be a mapping"), "{e}");
        let e = v("services:\n  web:\n    image: busybox\n    privileged: [1]\n").unwrap_err();
        assert!(e.contains("services.web.privileged: must be a boolean or a string, not a list"), "{e}");
        let e = v("services:\n  web:\n    ports:\n      - target: 80\n        bogus: 1\n").unwrap_err();
        assert!(e.contains("additional property \"bogus\""), "{e}");
        let e = v("services:\n  web:\n    image: x\n    depends_on: [a, a]\n").unwrap_err();
        assert!(e.contains("duplicate entry"), "{e}");
    }

    /// Who may publish the same host port: not two services up together, but services in
    /// different profiles, on other addresses, or on the host's network may.
    #[test]
    fn one_host_port_twice_is_refused_only_when_both_can_bind_it() {
        let load = |services: &str| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("compose.yaml"), format!("services:\n{services}")).unwrap();
            let opts = crate::project::LoadOptions {
                files: vec![dir.path().join("compose.yaml")],
                project_name: Some("demo".into()),
                interpolate: true,
                cwd: Some(dir.path().to_path_buf()),
                ..Default::default()
            };
            crate::project::load(&opts).map(drop).map_err(|e| e.to_string())
        };
        let e = load("  a:\n    image: x\n    ports: [\"8080:80\"]\n  b:\n    image: x\n    ports: [\"127.0.0.1:8080:81\"]\n").unwrap_err();
        assert!(e.contains("host port 8080/tcp is published by services a and b"), "{e}");
        let e = load("  a:\n    image: x\n    ports: [\"8080:80\", \"8080:81\"]\n").unwrap_err();
        assert!(e.contains("published twice by service a"), "{e}");
        for ok in [
            "  a:\n    image: x\n    ports: [\"8080:80\"]\n  b:\n    image: x\n    ports: [\"8080:80/udp\"]\n",
            "  a:\n    image: x\n    ports: [\"127.0.0.1:8080:80\"]\n  b:\n    image: x\n    ports: [\"127.0.0.2:8080:80\"]\n",
            "  a:\n    image: x\n    ports: [\"0.0.0.0:8080:80\"]\n  b:\n    image: x\n    ports: [\"[::]:8080:80\"]\n",
            "  a:\n    image: x\n    profiles: [p]\n    ports: [\"8080:80\"]\n  b:\n    image: x\n    profiles: [q]\n    ports: [\"8080:80\"]\n",
            "  a:\n    image: x\n    ports: [\"8080:80\"]\n  b:\n    image: x\n    network_mode: host\n    ports: [\"8080:80\"]\n",
            "  a:\n    image: x\n    ports: [\"8000-8010:80\"]\n  b:\n    image: x\n    ports: [\"8000-8010:80\"]\n",
        ] {
            load(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }
}
