//! Pass 5: merging compose documents (the `-f` files in order, and a service over the one it
//! extends) by the compose-spec's 13-merge.md rules, on canonical nodes:
//! - mappings merge key by key, the later file winning; scalars are replaced;
//! - sequences are appended, except `command`, `entrypoint` and `healthcheck.test`, which are
//!   replaced, and those the spec makes unique by a key (ports, volumes by target, secrets and
//!   configs by target, devices, dns, tmpfs, ...), where a later entry replaces an earlier one;
//! - `logging` is replaced whole when the driver changes;
//! - `!reset` removes a value, `!override` replaces it whole.

use super::error::{LoadError, Result};
use super::yaml::{Map, Node, Tag, Value};

fn matches(path: &[&str], pat: &[&str]) -> bool {
    path.len() == pat.len() && path.iter().zip(pat).all(|(p, q)| *q == "*" || p == q)
}

fn is(path: &[&str], pats: &[&[&str]]) -> bool {
    pats.iter().any(|p| matches(path, p))
}

/// Merges `over` into `base` at `path` (its segments).
pub fn merge(base: &mut Node, over: Node, path: &mut Vec<String>) -> Result<()> {
    let owned: Vec<String> = path.clone();
    let p: Vec<&str> = owned.iter().map(String::as_str).collect();
    if over.tag == Tag::Override {
        let mut o = over;
        o.tag = Tag::None;
        *base = o;
        return Ok(());
    }
    if is(
        &p,
        &[
            &["services", "*", "command"],
            &["services", "*", "entrypoint"],
            &["services", "*", "healthcheck", "test"],
            &["services", "*", "ulimits", "*"],
        ],
    ) {
        *base = over;
        return Ok(());
    }
    if over.is_null() {
        return Ok(());
    }
    if matches(&p, &["services", "*", "logging"]) {
        let bd = base.as_map().and_then(|m| m.get("driver")).map(|d| d.v.clone());
        let od = over.as_map().and_then(|m| m.get("driver")).map(|d| d.v.clone());
        if let (Some(b), Some(o)) = (bd, od) {
            if b != o {
                *base = over;
                return Ok(());
            }
        }
    }
    match (&mut base.v, over.v) {
        (Value::Map(bm), Value::Map(om)) => {
            merge_maps(bm, om, path)?;
        }
        (Value::Seq(bs), Value::Seq(os)) => {
            if matches(&p, &["services", "*", "extra_hosts"]) || matches(&p, &["services", "*", "build", "extra_hosts"]) {
                for o in os {
                    if !bs.iter().any(|b| b.v == o.v) {
                        bs.push(o);
                    }
                }
            } else if matches(&p, &["networks", "*", "ipam", "config"]) {
                for o in os {
                    let sub = |n: &Node| n.as_map().and_then(|m| m.get("subnet")).map(|s| s.v.clone());
                    match bs.iter_mut().find(|b| sub(b).is_some() && sub(b) == sub(&o)) {
                        Some(b) => {
                            path.push("[]".into());
                            let r = merge(b, o, path);
                            path.pop();
                            r?;
                        }
                        None => bs.push(o),
                    }
                }
            } else {
                bs.extend(os);
            }
            unique(bs, &p);
        }
        (Value::Map(_), _) | (Value::Seq(_), _) => {
            return Err(LoadError::at(&over.pos, path.join("."), format!("cannot override a {} with a different type", base.kind())));
        }
        (_, v) => {
            base.v = v;
            base.pos = over.pos;
        }
    }
    Ok(())
}

/// Merges mapping `om` into `bm`.
pub(crate) fn merge_maps(bm: &mut Map, om: Map, path: &mut Vec<String>) -> Result<()> {
    for (k, v) in om.0 {
        if v.tag == Tag::Reset {
            bm.remove(&k.name);
            continue;
        }
        match bm.get_mut(&k.name) {
            None => {
                let mut v = v;
                strip_tags(&mut v);
                bm.0.push((k, v));
            }
            Some(b) => {
                path.push(k.name.clone());
                let r = merge(b, v, path);
                path.pop();
                r?;
            }
        }
    }
    Ok(())
}

/// Removes `!reset` values and `!override` tags from a node that merges into nothing.
pub(crate) fn strip_tags(n: &mut Node) {
    n.tag = Tag::None;
    match &mut n.v {
        Value::Map(m) => {
            m.0.retain(|(_, v)| v.tag != Tag::Reset);
            for (_, v) in m.0.iter_mut() {
                strip_tags(v);
            }
        }
        Value::Seq(s) => {
            s.retain(|v| v.tag != Tag::Reset);
            for v in s.iter_mut() {
                strip_tags(v);
            }
        }
        _ => {}
    }
}

/// The key that makes a sequence entry unique, for the sequences the spec merges by key.
fn unique_key(p: &[&str], n: &Node) -> Option<String> {
    let field = |k: &str| n.as_map().and_then(|m| m.get(k)).and_then(Node::scalar_string);
    if matches(p, &["services", "*", "ports"]) {
        let target = field("target")?;
        return Some(format!(
            "{}:{}:{}/{}",
            field("host_ip").unwrap_or_else(|| "0.0.0.0".into()),
            field("published").unwrap_or_default(),
            target,
            field("protocol").unwrap_or_else(|| "tcp".into())
        ));
    }
    if is(p, &[&["services", "*", "volumes"], &["services", "*", "devices"]]) {
        return field("target");
    }
    if matches(p, &["services", "*", "secrets"]) {
        return field("target").or_else(|| field("source").map(|s| format!("/run/secrets/{s}")));
    }
    if matches(p, &["services", "*", "configs"]) {
        return field("target").or_else(|| field("source").map(|s| format!("/{s}")));
    }
    if matches(p, &["services", "*", "env_file"]) {
        return field("path");
    }
    if is(
        p,
        &[
            &["services", "*", "cap_add"],
            &["services", "*", "cap_drop"],
            &["services", "*", "dns"],
            &["services", "*", "dns_opt"],
            &["services", "*", "dns_search"],
            &["services", "*", "expose"],
            &["services", "*", "links"],
            &["services", "*", "profiles"],
            &["services", "*", "tmpfs"],
            &["services", "*", "label_file"],
            &["services", "*", "networks", "*", "aliases"],
            &["services", "*", "networks", "*", "link_local_ips"],
            &["services", "*", "build", "tags"],
            &["services", "*", "build", "platforms"],
        ],
    ) {
        let s = n.scalar_string()?;
        return Some(s.split_once('=').map(|(k, _)| k.to_string()).unwrap_or(s));
    }
    None
}

/// Keeps one entry per key: a later entry replaces the earlier one in its place.
pub fn unique(items: &mut Vec<Node>, p: &[&str]) {
    if items.is_empty() || unique_key(p, &items[0]).is_none() && !items.iter().any(|i| unique_key(p, i).is_some()) {
        return;
    }
    let mut out: Vec<Node> = Vec::with_capacity(items.len());
    // key to index in `out`: a hash, so that a range of 65 535 ports stays linear
    let mut keys: std::collections::HashMap<String, usize> = std::collections::HashMap::with_capacity(items.len());
    for it in items.drain(..) {
        if let Some(k) = unique_key(p, &it) {
            if let Some(&j) = keys.get(&k) {
                out[j] = it;
                continue;
            }
            keys.insert(k, out.len());
        }
        out.push(it);
    }
    *items = out;
}

/// Enforces uniqueness in every keyed sequence of a document (after canonicalization, where a
/// single file may already list the same port twice).
pub(crate) fn enforce_unicity(root: &mut Node) {
    let Some(services) = root.as_map_mut().and_then(|m| m.get_mut("services")).and_then(Node::as_map_mut) else {
        return;
    };
    for (name, svc) in services.0.iter_mut() {
        let Some(sm) = svc.as_map_mut() else { continue };
        for (k, v) in sm.0.iter_mut() {
            if let Value::Seq(items) = &mut v.v {
                unique(items, &["services", name.name.as_str(), k.name.as_str()]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::canonical::canonical;
    use super::super::yaml::parse;
    use super::*;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn doc(s: &str) -> Node {
        let mut n = parse(s, &Arc::new(PathBuf::from("m.yaml"))).unwrap().remove(0);
        canonical(&mut n).unwrap();
        n
    }

    fn merged(a: &str, b: &str) -> Node {
        let mut base = doc(a);
        merge(&mut base, doc(b), &mut Vec::new()).unwrap();
        base
    }

    fn svc<'a>(n: &'a Node, k: &str) -> &'a Node {
        n.as_map().unwrap().get("services").unwrap().as_map().unwrap().get("web").unwrap().as_map().unwrap().get(k).unwrap()
    }

    #[test]
    fn mappings_merge_and_lists_append_or_replace() {
        let n = merged(
            "services:\n  web:\n    image: a\n    environment: [A=1, B=2]\n    command: x y\n    security_opt: [a]\n    ports: ['80:80', '81:81']\n",
            "services:\n  web:\n    image: b\n    environment: {B: 3, C: 4}\n    command: [z]\n    security_opt: [b]\n    ports: ['81:81', '82:82']\n",
        );
        assert_eq!(svc(&n, "image").as_str(), Some("b"));
        let env = svc(&n, "environment").as_map().unwrap();
        assert_eq!(env.keys().collect::<Vec<_>>(), vec!["A", "B", "C"]);
        assert_eq!(env.get("B").unwrap().as_str(), Some("3"));
        assert_eq!(svc(&n, "command").as_seq().unwrap().len(), 1);
        assert_eq!(svc(&n, "security_opt").as_seq().unwrap().len(), 2);
        assert_eq!(svc(&n, "ports").as_seq().unwrap().len(), 3);
    }

    #[test]
    fn volumes_unique_by_target_and_reset_override_tags() {
        let n = merged(
            "services:\n  web:\n    image: a\n    volumes: ['./a:/data', '/other']\n    ports: ['80:80']\n    labels: {a: b}\n",
            "services:\n  web:\n    volumes: ['./b:/data']\n    ports: !override ['90:90']\n    labels: !reset {}\n",
        );
        let vols = svc(&n, "volumes").as_seq().unwrap();
        assert_eq!(vols.len(), 2);
        assert_eq!(vols[0].as_map().unwrap().get("source").unwrap().as_str(), Some("./b"));
        let ports = svc(&n, "ports").as_seq().unwrap();
        assert_eq!(ports.len(), 1);
        assert!(
            n.as_map().unwrap().get("services").unwrap().as_map().unwrap().get("web").unwrap().as_map().unwrap().get("labels").is_none()
        );
    }

    #[test]
    fn logging_driver_change_replaces() {
        let n = merged(
            "services:\n  web:\n    logging: {driver: syslog, options: {a: b}}\n",
            "services:\n  web:\n    logging: {driver: json-file, options: {c: d}}\n",
        );
        let opts = svc(&n, "logging").as_map().unwrap().get("options").unwrap().as_map().unwrap();
        assert_eq!(opts.keys().collect::<Vec<_>>(), vec!["c"]);
    }

    #[test]
    fn type_mismatch_is_an_error() {
        let mut base = doc("services:\n  web:\n    image: a\n    healthcheck: {test: [CMD, x]}\n");
        let over = doc("services:\n  web:\n    healthcheck: [1]\n");
        assert!(merge(&mut base, over, &mut Vec::new()).is_err());
    }
}
