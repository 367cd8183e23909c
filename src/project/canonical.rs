//! Pass 7: short syntax to long syntax, on the node tree, so that merging and the typed model
//! see one form only: `ports: ["8080:80"]` becomes port mappings, `volumes: ["./a:/b:ro"]`
//! becomes mounts, lists of `KEY=VALUE` become mappings, `depends_on: [db]` gets its condition,
//! and so on, as Docker Compose's canonical form has them.

use super::error::{LoadError, Pos, Result};
use super::yaml::{Key, Map, Node, Tag, Value};

fn err(n: &Node, path: &str, msg: impl Into<String>) -> LoadError {
    LoadError::at(&n.pos, path, msg)
}

fn s(v: &str, pos: &Pos) -> Node {
    Node::str(v, pos.clone())
}

fn keep_tag(mut new: Node, tag: Tag) -> Node {
    new.tag = tag;
    new
}

/// At most this many port mappings may come out of the short syntax of one document: a range
/// such as `1-65535:1-65535` is one mapping per port, so a few lines could make millions.
pub(crate) const MAX_PORT_MAPPINGS: usize = 2 * 65536;

/// Canonicalizes a whole compose document in place.
pub fn canonical(root: &mut Node) -> Result<()> {
    canonical_with(root, false)
}

/// As [`canonical`]; `raw` for a document that was not interpolated (`config --no-interpolate`):
/// as compose's model, ports, environment, labels, sysctls and extra hosts stay as written, and
/// a volume or device that does not parse (it holds a `${...}`) is kept as written.
pub(crate) fn canonical_with(root: &mut Node, raw: bool) -> Result<()> {
    let Some(m) = root.as_map_mut() else { return Ok(()) };
    if let Some(services) = m.get_mut("services").and_then(Node::as_map_mut) {
        let mut ports_left = MAX_PORT_MAPPINGS;
        for (k, svc) in services.0.iter_mut() {
            if raw {
                service_raw(svc, &format!("services.{}", k.name))?;
            } else {
                service(svc, &format!("services.{}", k.name), &mut ports_left)?;
            }
        }
    }
    for top in ["networks", "volumes", "secrets", "configs"] {
        if let Some(res) = m.get_mut(top).and_then(Node::as_map_mut) {
            for (k, r) in res.0.iter_mut() {
                resource(r, &format!("{top}.{}", k.name), top)?;
            }
        }
    }
    if let Some(inc) = m.get_mut("include") {
        if let Value::Seq(items) = &mut inc.v {
            for it in items.iter_mut() {
                if let Value::Str(p) = &it.v {
                    let mut mm = Map::default();
                    mm.insert("path", Node::new(Value::Seq(vec![s(p, &it.pos)]), it.pos.clone()));
                    *it = Node::map(mm, it.pos.clone());
                } else if let Some(mm) = it.as_map_mut() {
                    for k in ["path", "env_file"] {
                        if let Some(n) = mm.get_mut(k) {
                            string_to_list(n);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn resource(r: &mut Node, path: &str, top: &str) -> Result<()> {
    if r.is_null() {
        r.v = Value::Map(Map::default());
        return Ok(());
    }
    let Some(m) = r.as_map_mut() else { return Ok(()) };
    // `external: {name: x}` (deprecated) becomes `external: true` with `name: x`
    if let Some(ext) = m.get("external").cloned() {
        if let Some(em) = ext.as_map() {
            let extname = em.get("name").cloned();
            m.insert("external", Node::new(Value::Bool(true), ext.pos.clone()));
            if let Some(n) = extname {
                match m.get("name") {
                    Some(name) if name.v != n.v => {
                        return Err(err(&n, path, "name and external.name conflict; only use name"));
                    }
                    Some(_) => {}
                    None => m.insert("name", n),
                }
            }
        }
    }
    for k in ["labels"] {
        if let Some(n) = m.get_mut(k) {
            to_mapping(n, &format!("{path}.{k}"), Eq::Empty)?;
        }
    }
    if top == "networks" {
        if let Some(ipam) = m.get_mut("ipam").and_then(Node::as_map_mut) {
            if let Some(n) = ipam.get_mut("options") {
                to_mapping(n, &format!("{path}.ipam.options"), Eq::Empty)?;
            }
        }
    }
    Ok(())
}

/// What a list entry `KEY` without `=` becomes: null (environment, args) or "" (labels).
#[derive(Clone, Copy, PartialEq)]
pub enum Eq {
    Null,
    Empty,
}

/// `[K=V, K2]` or `{K: V}` to a mapping of strings (or null).
pub(crate) fn to_mapping(n: &mut Node, path: &str, bare: Eq) -> Result<()> {
    let tag = n.tag;
    match &mut n.v {
        Value::Null => {
            n.v = Value::Map(Map::default());
        }
        Value::Seq(items) => {
            let mut m = Map::default();
            for it in items.iter() {
                let Some(text) = it.scalar_string().filter(|_| !it.is_null()) else {
                    return Err(err(it, path, format!("entries must be KEY=VALUE strings, not {}", it.kind())));
                };
                let (k, v) = match text.split_once('=') {
                    Some((k, v)) => (k.to_string(), Node::str(v, it.pos.clone())),
                    None => (
                        text.clone(),
                        match bare {
                            Eq::Null => Node::null(it.pos.clone()),
                            Eq::Empty => Node::str("", it.pos.clone()),
                        },
                    ),
                };
                m.insert_key(Key { name: k, pos: it.pos.clone() }, v);
            }
            n.v = Value::Map(m);
        }
        Value::Map(m) => {
            for (_, v) in m.0.iter_mut() {
                if v.is_null() {
                    if bare == Eq::Empty {
                        v.v = Value::Str(String::new());
                    }
                } else if let Some(t) = v.scalar_string() {
                    v.v = Value::Str(t);
                } else {
                    return Err(err(v, path, format!("values must be strings, numbers or booleans, not {}", v.kind())));
                }
            }
        }
        _ => return Err(err(n, path, format!("must be a mapping or a list of KEY=VALUE, not {}", n.kind()))),
    }
    n.tag = tag;
    Ok(())
}

fn string_to_list(n: &mut Node) {
    if matches!(n.v, Value::Str(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_)) {
        let item = Node::new(std::mem::replace(&mut n.v, Value::Null), n.pos.clone());
        n.v = Value::Seq(vec![item]);
    }
}

fn list_to_keys(n: &mut Node, default: Option<&dyn Fn(&Pos) -> Node>) {
    if let Value::Seq(items) = &n.v {
        let mut m = Map::default();
        for it in items {
            if let Some(name) = it.scalar_string() {
                let v = match default {
                    Some(f) => f(&it.pos),
                    None => Node::null(it.pos.clone()),
                };
                m.insert_key(Key { name, pos: it.pos.clone() }, v);
            }
        }
        n.v = Value::Map(m);
    }
}

fn dep_default(pos: &Pos) -> Node {
    let mut m = Map::default();
    m.insert("condition", s("service_started", pos));
    m.insert("required", Node::new(Value::Bool(true), pos.clone()));
    Node::map(m, pos.clone())
}

/// A service of a document that was not interpolated: the keys compose keeps as written are
/// set aside, the rest made canonical, volumes and devices kept as written where they do not parse.
fn service_raw(svc: &mut Node, path: &str) -> Result<()> {
    let Some(m) = svc.as_map_mut() else { return Ok(()) };
    let aside = |v: &mut Node| std::mem::replace(v, Node::null(v.pos.clone()));
    let mut kept: Vec<(usize, Node)> = Vec::new();
    let mut kept_items: Vec<(usize, usize, Node)> = Vec::new();
    for (i, (k, v)) in m.0.iter_mut().enumerate() {
        match k.name.as_str() {
            "ports" | "environment" | "labels" | "annotations" | "sysctls" | "extra_hosts" => kept.push((i, aside(v))),
            "volumes" | "devices" => {
                if let Value::Seq(items) = &mut v.v {
                    for (j, it) in items.iter_mut().enumerate() {
                        let unparsed = match (&it.v, k.name.as_str()) {
                            (Value::Str(t), "volumes") => parse_volume(t).is_err(),
                            (Value::Str(t), _) => t.contains('$'),
                            _ => false,
                        };
                        if unparsed {
                            kept_items.push((i, j, aside(it)));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let mut left = MAX_PORT_MAPPINGS;
    service(svc, path, &mut left)?;
    let Some(m) = svc.as_map_mut() else { return Ok(()) };
    for (i, v) in kept {
        if let Some((_, slot)) = m.0.get_mut(i) {
            *slot = v;
        }
    }
    for (i, j, v) in kept_items {
        if let Some(Value::Seq(items)) = m.0.get_mut(i).map(|(_, n)| &mut n.v) {
            if let Some(slot) = items.get_mut(j) {
                *slot = v;
            }
        }
    }
    Ok(())
}

fn service(svc: &mut Node, path: &str, ports_left: &mut usize) -> Result<()> {
    let Some(m) = svc.as_map_mut() else { return Ok(()) };
    for (k, n) in m.0.iter_mut() {
        let p = format!("{path}.{}", k.name);
        let tag = n.tag;
        match k.name.as_str() {
            "build" => {
                if let Value::Str(ctx) = &n.v {
                    let mut bm = Map::default();
                    bm.insert("context", s(ctx, &n.pos));
                    *n = keep_tag(Node::map(bm, n.pos.clone()), tag);
                }
                if let Some(bm) = n.as_map_mut() {
                    build(bm, &p)?;
                }
            }
            "depends_on" => {
                list_to_keys(n, Some(&dep_default));
                if let Some(dm) = n.as_map_mut() {
                    for (_, d) in dm.0.iter_mut() {
                        if let Some(dd) = d.as_map_mut() {
                            if !dd.contains("condition") {
                                let pos = d.pos.clone();
                                if let Some(dd) = d.as_map_mut() {
                                    dd.insert("condition", s("service_started", &pos));
                                }
                            }
                            if let Some(dd) = d.as_map_mut() {
                                if !dd.contains("required") {
                                    let pos = dd.0.first().map(|(k, _)| k.pos.clone()).unwrap_or_default();
                                    dd.insert("required", Node::new(Value::Bool(true), pos));
                                }
                            }
                        } else if d.is_null() {
                            *d = dep_default(&d.pos.clone());
                        }
                    }
                }
                n.tag = tag;
            }
            "env_file" => {
                string_to_list(n);
                if let Value::Seq(items) = &mut n.v {
                    for it in items.iter_mut() {
                        if let Value::Str(pth) = &it.v {
                            let mut em = Map::default();
                            em.insert("path", s(pth, &it.pos));
                            em.insert("required", Node::new(Value::Bool(true), it.pos.clone()));
                            *it = Node::map(em, it.pos.clone());
                        } else if let Some(em) = it.as_map_mut() {
                            if !em.contains("required") {
                                let pos = em.0.first().map(|(k, _)| k.pos.clone()).unwrap_or_default();
                                em.insert("required", Node::new(Value::Bool(true), pos));
                            }
                        }
                    }
                }
            }
            "label_file" | "dns" | "dns_search" | "dns_opt" | "tmpfs" => string_to_list(n),
            "extends" => {
                if let Value::Str(svcname) = &n.v {
                    let mut em = Map::default();
                    em.insert("service", s(svcname, &n.pos));
                    *n = keep_tag(Node::map(em, n.pos.clone()), tag);
                }
            }
            "gpus" => {
                if let Value::Str(_) = &n.v {
                    let mut gm = Map::default();
                    gm.insert("count", s("all", &n.pos));
                    *n = keep_tag(Node::new(Value::Seq(vec![Node::map(gm, n.pos.clone())]), n.pos.clone()), tag);
                }
            }
            "networks" | "models" => {
                list_to_keys(n, None);
                n.tag = tag;
            }
            "volumes" => {
                if let Value::Seq(items) = &mut n.v {
                    for (i, it) in items.iter_mut().enumerate() {
                        if let Value::Str(spec) = &it.v {
                            let t = it.tag;
                            let parsed = parse_volume(spec).map_err(|e| err(it, &format!("{p}[{i}]"), e))?;
                            *it = keep_tag(volume_node(&parsed, &it.pos), t);
                        }
                    }
                }
            }
            "devices" => {
                if let Value::Seq(items) = &mut n.v {
                    for (i, it) in items.iter_mut().enumerate() {
                        if let Value::Str(spec) = &it.v {
                            let parts: Vec<&str> = spec.split(':').collect();
                            let (src, dst, perm) = match parts.as_slice() {
                                [a] => (*a, *a, "rwm"),
                                [a, b] => (*a, *b, "rwm"),
                                [a, b, c] => (*a, *b, *c),
                                _ => {
                                    return Err(err(
                                        it,
                                        &format!("{p}[{i}]"),
                                        format!("confusing device mapping {spec:?}: use the long syntax (source, target, permissions)"),
                                    ));
                                }
                            };
                            let dst = if dst.is_empty() { src } else { dst };
                            let mut dm = Map::default();
                            dm.insert("source", s(src, &it.pos));
                            dm.insert("target", s(dst, &it.pos));
                            dm.insert("permissions", s(perm, &it.pos));
                            *it = Node::map(dm, it.pos.clone());
                        }
                    }
                }
            }
            "secrets" | "configs" => file_mounts(n),
            "ports" => ports(n, &p, ports_left)?,
            "environment" => to_mapping(n, &p, Eq::Null)?,
            "labels" | "annotations" => to_mapping(n, &p, Eq::Empty)?,
            "sysctls" => to_mapping(n, &p, Eq::Empty)?,
            "extra_hosts" => extra_hosts(n, &p)?,
            "deploy" => {
                if let Some(dm) = n.as_map_mut() {
                    if let Some(l) = dm.get_mut("labels") {
                        to_mapping(l, &format!("{p}.labels"), Eq::Empty)?;
                    }
                }
            }
            "develop" => {
                if let Some(w) = n.as_map_mut().and_then(|d| d.get_mut("watch")).and_then(|w| match &mut w.v {
                    Value::Seq(items) => Some(items),
                    _ => None,
                }) {
                    for t in w.iter_mut() {
                        if let Some(tm) = t.as_map_mut() {
                            for k in ["ignore", "include"] {
                                if let Some(x) = tm.get_mut(k) {
                                    string_to_list(x);
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn build(bm: &mut Map, path: &str) -> Result<()> {
    for (k, n) in bm.0.iter_mut() {
        let p = format!("{path}.{}", k.name);
        match k.name.as_str() {
            "args" => to_mapping(n, &p, Eq::Null)?,
            "labels" => to_mapping(n, &p, Eq::Empty)?,
            "additional_contexts" => to_mapping(n, &p, Eq::Empty)?,
            "secrets" => file_mounts(n),
            "extra_hosts" => extra_hosts(n, &p)?,
            "cache_from" | "cache_to" | "no_cache_filter" | "tags" | "platforms" => string_to_list(n),
            "provenance" | "sbom" => {
                if let Some(t) = n.scalar_string().filter(|_| !n.is_null()) {
                    n.v = Value::Str(t);
                }
            }
            "ssh" => {
                if let Value::Str(_) = n.v {
                    string_to_list(n);
                }
                if let Value::Seq(items) = &n.v {
                    let mut m = Map::default();
                    for it in items {
                        let Some(t) = it.as_str() else {
                            return Err(err(it, &p, "ssh entries must be strings like default or ID=PATH"));
                        };
                        match t.split_once('=') {
                            Some((id, pth)) => m.insert_key(Key { name: id.into(), pos: it.pos.clone() }, s(pth, &it.pos)),
                            None if t == "default" => m.insert_key(Key { name: t.into(), pos: it.pos.clone() }, Node::null(it.pos.clone())),
                            None => return Err(err(it, &p, format!("invalid ssh key {t:?}: write default or ID=PATH"))),
                        }
                    }
                    n.v = Value::Map(m);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn file_mounts(n: &mut Node) {
    if let Value::Seq(items) = &mut n.v {
        for it in items.iter_mut() {
            if let Value::Str(src) = &it.v {
                let mut m = Map::default();
                m.insert("source", s(src, &it.pos));
                *it = Node::map(m, it.pos.clone());
            }
        }
    }
}

/// `extra_hosts` as a list of `host=ip` (the form compose prints), from a list of `host:ip`,
/// `host=ip` or a mapping of host to ip (or list of ips).
fn extra_hosts(n: &mut Node, path: &str) -> Result<()> {
    let mut out = Vec::new();
    match &n.v {
        Value::Null => {}
        Value::Seq(items) => {
            for it in items {
                let Some(t) = it.as_str() else {
                    return Err(err(it, path, "entries must be strings like host=ip"));
                };
                let entry = if let Some((h, ip)) = t.split_once('=') {
                    format!("{h}={ip}")
                } else if let Some((h, ip)) = t.split_once(':') {
                    format!("{h}={}", ip)
                } else {
                    return Err(err(it, path, format!("invalid extra host {t:?}: write host=ip or host:ip")));
                };
                out.push(s(&entry, &it.pos));
            }
        }
        Value::Map(m) => {
            for (h, v) in m.iter() {
                match &v.v {
                    Value::Seq(ips) => {
                        for ip in ips {
                            out.push(s(&format!("{h}={}", ip.scalar_string().unwrap_or_default()), &v.pos));
                        }
                    }
                    _ => out.push(s(&format!("{h}={}", v.scalar_string().unwrap_or_default()), &v.pos)),
                }
            }
        }
        _ => return Err(err(n, path, "must be a list of host=ip or a mapping of host to ip")),
    }
    n.v = Value::Seq(out);
    Ok(())
}

/// A service volume parsed from its short syntax `[SOURCE:]TARGET[:OPTIONS]`.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ShortVolume {
    pub kind: &'static str,
    pub source: String,
    pub target: String,
    pub read_only: bool,
    pub nocopy: bool,
    pub selinux: String,
    pub propagation: String,
    /// The parser made a `volume: {}` / `bind: {...}` section (compose does not for 1-2 char specs).
    pub section: bool,
}

fn is_file_path(src: &str) -> bool {
    if src.is_empty() {
        return false;
    }
    if src.starts_with(['.', '/', '~']) || src.starts_with("\\\\") {
        return true;
    }
    let mut it = src.chars();
    let first = it.next().unwrap_or(' ');
    it.next() == Some(':') && first.is_alphabetic()
}

/// Parses `[SOURCE:]TARGET[:MODE,...]` as compose does (Windows drive letters kept together,
/// `${...}` never split).
pub(crate) fn parse_volume(spec: &str) -> Result<ShortVolume, String> {
    let mut v = ShortVolume { kind: "volume", ..Default::default() };
    if spec.is_empty() {
        return Err("invalid empty volume spec".into());
    }
    // bytes, as Go's len()
    if spec.len() <= 2 {
        v.target = spec.to_string();
        return Ok(v);
    }
    let chars: Vec<char> = spec.chars().collect();
    let mut buf = String::new();
    let mut depth = 0;
    let mut fields: Vec<String> = Vec::new();
    let mut options: Option<String> = None;
    let n = chars.len();
    for i in 0..=n {
        let c = if i < n { Some(chars[i]) } else { None };
        match c {
            Some('$') if i + 1 < n && chars[i + 1] == '{' => {
                depth += 1;
                buf.push('$');
            }
            Some('}') if depth > 0 => {
                depth -= 1;
                buf.push('}');
            }
            Some(':') if buf.chars().count() == 1 && buf.chars().all(char::is_alphabetic) => buf.push(':'),
            Some(':') | None if depth == 0 => {
                if buf.is_empty() {
                    return Err(format!("invalid volume {spec:?}: empty section between colons"));
                }
                if fields.len() < 2 {
                    fields.push(std::mem::take(&mut buf));
                    if c.is_none() && fields.len() == 1 {
                        // only a target
                    }
                } else if c == Some(':') {
                    return Err(format!("invalid volume {spec:?}: too many colons"));
                } else {
                    options = Some(std::mem::take(&mut buf));
                }
            }
            Some(ch) => buf.push(ch),
            None => {}
        }
    }
    if depth > 0 && fields.len() < 2 {
        // an unclosed `${` swallowed the rest of the spec, the target with it
        return Err(format!("invalid volume {spec:?}: missing a mount target (is a ${{ left unclosed?)"));
    }
    let mut fields = fields.into_iter();
    match (fields.next(), fields.next()) {
        (Some(target), None) => v.target = target,
        (Some(source), Some(target)) => {
            v.source = source;
            v.target = target;
        }
        (None, _) => return Err(format!("invalid volume {spec:?}: missing a mount target")),
    }
    if let Some(opts) = options {
        for o in opts.split(',') {
            match o {
                "ro" => v.read_only = true,
                "rw" => v.read_only = false,
                "nocopy" => v.nocopy = true,
                "rprivate" | "private" | "rshared" | "shared" | "rslave" | "slave" => v.propagation = o.into(),
                "z" | "Z" => v.selinux = o.into(),
                _ => {}
            }
        }
    }
    v.section = true;
    if is_file_path(&v.source) {
        v.kind = "bind";
    }
    Ok(v)
}

fn volume_node(v: &ShortVolume, pos: &Pos) -> Node {
    let mut m = Map::default();
    m.insert("type", s(v.kind, pos));
    if !v.source.is_empty() {
        m.insert("source", s(&v.source, pos));
    }
    m.insert("target", s(&clean_path(&v.target), pos));
    if v.read_only {
        m.insert("read_only", Node::new(Value::Bool(true), pos.clone()));
    }
    if v.kind == "bind" {
        let mut b = Map::default();
        if !v.selinux.is_empty() {
            b.insert("selinux", s(&v.selinux, pos));
        }
        if !v.propagation.is_empty() {
            b.insert("propagation", s(&v.propagation, pos));
        }
        b.insert("create_host_path", Node::new(Value::Bool(true), pos.clone()));
        m.insert("bind", Node::map(b, pos.clone()));
    } else if v.section || v.nocopy {
        let mut b = Map::default();
        if v.nocopy {
            b.insert("nocopy", Node::new(Value::Bool(true), pos.clone()));
        }
        m.insert("volume", Node::map(b, pos.clone()));
    }
    Node::map(m, pos.clone())
}

/// Go's `path.Clean` for slash-separated paths.
pub(crate) fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// One published port parsed from the short syntax.
#[derive(Debug, Clone, PartialEq)]
pub struct ShortPort {
    pub host_ip: String,
    pub target: u32,
    pub published: String,
    pub protocol: String,
}

fn port_range(s: &str, what: &str, raw: &str) -> Result<(u32, u32), String> {
    let bad = || format!("invalid {what} {s:?} in port {raw:?}: expected a port number (0-65535) or a range such as 8000-8010");
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a, b),
        None => (s, s),
    };
    let a: u32 = a.parse().map_err(|_| bad())?;
    let b: u32 = b.parse().map_err(|_| bad())?;
    if a > 65535 || b > 65535 || b < a {
        return Err(bad());
    }
    Ok((a, b))
}

/// Parses `[[IP:]PUBLISHED:]TARGET[/PROTOCOL]` (each port may be a range) as compose does.
pub fn parse_ports(raw: &str) -> Result<Vec<ShortPort>, String> {
    let (spec, proto) = match raw.rsplit_once('/') {
        Some((s, p)) => (s, p.to_ascii_lowercase()),
        None => (raw, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid protocol {proto:?} in port {raw:?}: expected tcp, udp or sctp"));
    }
    let parts: Vec<&str> = spec.split(':').collect();
    let n = parts.len();
    let container = parts[n - 1];
    let (ip, host) = match n {
        1 => (String::new(), ""),
        2 => (String::new(), parts[0]),
        3 => (parts[0].to_string(), parts[1]),
        _ => (parts[..n - 2].join(":"), parts[n - 2]),
    };
    let ip = ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')).map(str::to_string).unwrap_or(ip);
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("invalid IP address {ip:?} in port {raw:?}"));
    }
    if container.is_empty() {
        return Err(format!("no container port in {raw:?}: expected [[IP:]PUBLISHED:]TARGET[/PROTOCOL]"));
    }
    let (cs, ce) = port_range(container, "container port", raw)?;
    let (hs, he) = if host.is_empty() { (0, 0) } else { port_range(host, "published port", raw)? };
    if !host.is_empty() && (ce - cs) != (he - hs) && ce != cs {
        return Err(format!(
            "invalid ranges in port {raw:?}: the container range {container} and the published range {host} differ in size"
        ));
    }
    let mut out = Vec::new();
    for i in 0..=(ce - cs) {
        let target = cs + i;
        let published = if host.is_empty() {
            String::new()
        } else if cs == ce && hs != he {
            format!("{}-{}", hs, he)
        } else {
            (hs + i).to_string()
        };
        out.push(ShortPort { host_ip: ip.clone(), target, published, protocol: proto.clone() });
    }
    // compose sorts by "port/proto" as strings
    out.sort_by_key(|p| format!("{}/{}", p.target, p.protocol));
    Ok(out)
}

fn ports(n: &mut Node, path: &str, left: &mut usize) -> Result<()> {
    let tag = n.tag;
    let Value::Seq(items) = &mut n.v else { return Ok(()) };
    let mut out = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let raw = match &it.v {
            Value::Int(p) => p.to_string(),
            Value::Float(f) if f.fract() == 0.0 => format!("{f}"),
            Value::Str(t) => t.clone(),
            Value::Map(_) => {
                out.push(it.clone());
                continue;
            }
            _ => {
                return Err(err(it, &format!("{path}[{i}]"), format!("a port must be a string, a number or a mapping, not {}", it.kind())));
            }
        };
        let parsed = parse_ports(&raw).map_err(|e| err(it, &format!("{path}[{i}]"), e))?;
        *left = left.checked_sub(parsed.len()).ok_or_else(|| {
            err(
                it,
                &format!("{path}[{i}]"),
                format!("the port ranges of this file publish more than {MAX_PORT_MAPPINGS} ports: publish smaller ranges"),
            )
        })?;
        for p in parsed {
            let mut m = Map::default();
            m.insert("mode", s("ingress", &it.pos));
            if !p.host_ip.is_empty() {
                m.insert("host_ip", s(&p.host_ip, &it.pos));
            }
            m.insert("target", Node::new(Value::Int(p.target as i64), it.pos.clone()));
            if !p.published.is_empty() {
                m.insert("published", s(&p.published, &it.pos));
            }
            m.insert("protocol", s(&p.protocol, &it.pos));
            out.push(Node::map(m, it.pos.clone()));
        }
    }
    n.v = Value::Seq(out);
    n.tag = tag;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_short_syntax() {
        let v = parse_volume("./a:/b:ro,z").unwrap();
        assert_eq!((v.kind, v.source.as_str(), v.target.as_str(), v.read_only), ("bind", "./a", "/b", true));
        assert_eq!(v.selinux, "z");
        let v = parse_volume("data:/d:nocopy").unwrap();
        assert_eq!((v.kind, v.nocopy), ("volume", true));
        let v = parse_volume("/anon").unwrap();
        assert_eq!((v.kind, v.source.as_str(), v.target.as_str()), ("volume", "", "/anon"));
        let v = parse_volume("C:\\data:/data").unwrap();
        assert_eq!((v.kind, v.source.as_str()), ("bind", "C:\\data"));
        let v = parse_volume("${SRC:-/dev/null}:/tmp/foo:ro").unwrap();
        assert_eq!(v.source, "${SRC:-/dev/null}");
        assert!(parse_volume("ab::c").is_err());
        assert!(parse_volume("ab:cd:ef:gh").is_err());
        assert!(!parse_volume("/y").unwrap().section);
    }

    /// Crasher: an unclosed `${` (from `$${A:/x` once interpolated) left no field and panicked.
    #[test]
    fn unclosed_substitution_in_a_volume_is_an_error() {
        let e = parse_volume("${A:/x").unwrap_err();
        assert!(e.contains("missing a mount target"), "{e}");
        assert!(parse_volume("ab:${c").unwrap_err().contains("missing a mount target"));
        assert_eq!(parse_volume("ab:cd:${e").unwrap().target, "cd");
        assert!(parse_volume("é").is_ok());
    }

    #[test]
    fn ports_short_syntax() {
        let p = parse_ports("127.0.0.1:8000-8001:80-81/UDP").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[1].published.as_str(), p[1].target, p[1].protocol.as_str()), ("8001", 81, "udp"));
        let p = parse_ports("9000-9002:22").unwrap();
        assert_eq!((p[0].published.as_str(), p.len()), ("9000-9002", 1));
        let p = parse_ports("[::1]:53:53").unwrap();
        assert_eq!(p[0].host_ip, "::1");
        assert!(parse_ports("99999").is_err());
        assert!(parse_ports("80/xyz").is_err());
        assert!(parse_ports("1-3:4-5").is_err());
        assert!(parse_ports("a.b:80:80").is_err());
        let p = parse_ports("998-1000").unwrap();
        assert_eq!(p.iter().map(|x| x.target).collect::<Vec<_>>(), vec![1000, 998, 999]);
    }

    #[test]
    fn clean() {
        assert_eq!(clean_path("/a/./b/../c/"), "/a/c");
        assert_eq!(clean_path("a/../.."), "..");
    }
}
