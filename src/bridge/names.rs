//! Kubernetes names made from compose names.
//!
//! compose-bridge lowercases a name and turns every character other than a letter or digit into
//! `-` (its `safe`), and names ports `<service>-<port>` cut to 15 characters (its `portName`).
//! berth does the same, so that names match compose's for the names compose handles, and then
//! repairs what Kubernetes would refuse (a leading digit in a Service name, a trailing `-`, more
//! than 63 characters, a port name without a letter): the repaired name ends with a short hash of
//! the original, so that it stays unique and the same from one run to the next.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// compose-bridge's `safe`: lowercase, every other character than a-z and 0-9 as `-`, no leading `-`.
pub fn safe(s: &str) -> String {
    let mapped: String = s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    mapped.trim_start_matches('-').to_string()
}

fn short_hash(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    hex::encode(&d[..3])
}

/// An RFC 1035 label (what a Service name must be, and so a name other pods resolve): `safe(s)`
/// when that is one, else a repaired name ending with a hash of `s`. At most `max` characters.
pub fn label(s: &str, max: usize) -> String {
    let base = safe(s);
    let valid = !base.is_empty() && base.len() <= max && base.starts_with(|c: char| c.is_ascii_lowercase()) && !base.ends_with('-');
    if valid {
        return base;
    }
    let hash = short_hash(s);
    let mut stem: String = base.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-').to_string();
    if stem.is_empty() {
        stem.push('x');
    }
    stem.truncate(max.saturating_sub(hash.len() + 1));
    let stem = stem.trim_end_matches('-');
    let stem = if stem.is_empty() { "x" } else { stem };
    format!("{stem}-{hash}")
}

/// Gives each of `names` a label (see [`label`]), distinct from the others: names whose labels
/// collide (`web_a` and `web-a`) each get a hash of their own name.
pub fn unique_labels<'a>(names: impl IntoIterator<Item = &'a str>, max: usize) -> BTreeMap<String, String> {
    let labels: Vec<(String, String)> = names.into_iter().map(|n| (n.to_string(), label(n, max))).collect();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, l) in &labels {
        *count.entry(l.as_str()).or_default() += 1;
    }
    labels
        .iter()
        .map(|(n, l)| {
            if count[l.as_str()] > 1 {
                let hash = short_hash(n);
                let mut stem = l.clone();
                stem.truncate(max.saturating_sub(hash.len() + 1));
                (n.clone(), format!("{}-{hash}", stem.trim_end_matches('-')))
            } else {
                (n.clone(), l.clone())
            }
        })
        .collect()
}

/// A port name (IANA service name: at most 15 characters, lowercase letters, digits and single
/// `-`, at least one letter): compose-bridge's `portName`, `<service>-<port>`, with the service
/// name cut to fit, then repaired where Kubernetes would refuse it.
pub fn port_name(service: &str, port: &str) -> String {
    let keep = 15usize.saturating_sub(port.len() + 1);
    let head: String = service.chars().take(keep).collect();
    let mut name = safe(&format!("{head}-{port}"));
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    let mut name = name.trim_matches('-').to_string();
    if !name.chars().any(|c| c.is_ascii_lowercase()) {
        name = format!("p-{name}");
    }
    name.truncate(15);
    name.trim_end_matches('-').to_string()
}

/// A label key for compose's name `name` under `prefix` (`com.docker.compose.network.`): the key
/// as compose-bridge writes it when Kubernetes accepts it (a name part of at most 63 characters of
/// letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit), else a repaired one.
pub fn label_key(prefix: &str, name: &str) -> String {
    let key = format!("{prefix}{name}");
    if label_key_ok(&key) {
        return key;
    }
    let room = 63usize.saturating_sub(prefix.len());
    format!("{prefix}{}", label(name, room))
}

/// Whether `key` is a valid label or annotation key: an optional DNS subdomain prefix and `/`,
/// then a name of at most 63 characters.
pub fn label_key_ok(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            });
        if !ok {
            return false;
        }
    }
    label_value_ok(name) && !name.is_empty()
}

/// Whether `v` is a valid label value: at most 63 characters of letters, digits, `-`, `_` and
/// `.`, starting and ending with a letter or digit (or empty).
pub fn label_value_ok(v: &str) -> bool {
    v.len() <= 63
        && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && (v.is_empty() || (v.starts_with(|c: char| c.is_ascii_alphanumeric()) && v.ends_with(|c: char| c.is_ascii_alphanumeric())))
}

/// Whether `s` is a Go template identifier, so that `.Values.<s>` can name it.
pub fn go_identifier(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_compose_bridge_where_it_is_valid() {
        assert_eq!(safe("serviceA"), "servicea");
        assert_eq!(safe("/etc/my-config1.txt"), "etc-my-config1-txt");
        assert_eq!(label("serviceA", 63), "servicea");
        assert_eq!(port_name("serviceA", "8080"), "servicea-8080");
        assert_eq!(port_name("serviceB", "8081"), "serviceb-8081");
        assert_eq!(port_name("averylongservicename", "8080"), "averylongs-8080");
        assert_eq!(label_key("com.docker.compose.network.", "private-network"), "com.docker.compose.network.private-network");
    }

    #[test]
    fn invalid_names_are_repaired_and_stay_unique() {
        let l = label("1web", 63);
        assert!(l.starts_with("web-") && l.len() == 10, "{l}");
        let l = label(&"a".repeat(80), 63);
        assert!(l.len() <= 63 && !l.ends_with('-'), "{l}");
        assert_eq!(label("web_", 63).len(), "web-".len() + 6);
        let u = unique_labels(["web_a", "web-a", "db"], 63);
        assert_ne!(u["web_a"], u["web-a"]);
        assert_eq!(u["db"], "db");
        for (svc, port) in [("1", "80"), ("a_", "80"), ("__", "53-udp"), ("x", "1234567890123")] {
            let p = port_name(svc, port);
            assert!(p.len() <= 15 && p.chars().any(|c| c.is_ascii_lowercase()) && !p.contains("--") && !p.ends_with('-'), "{p}");
        }
        assert!(label_key("com.docker.compose.network.", &"n".repeat(60)).len() <= 63);
        assert!(!label_key_ok("com.docker.compose.network.a b"));
    }
}
