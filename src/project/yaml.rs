//! Pass 1: parse YAML into a tree of [`Node`]s that remember where they came from.
//!
//! We read yaml-rust2's event stream ourselves (rather than deserializing) so that every node
//! keeps its line:column for error messages, custom tags (`!reset`, `!override`) survive, and
//! anchors, aliases and `<<` merge keys are expanded under a budget: an alias bomb (a few lines
//! that expand to billions of nodes, or one big string aliased a thousand times) is refused with
//! an error instead of eating the machine. go-yaml caps the share of nodes that come from aliases
//! and compose-go the nodes it visits; both count nodes only, so a 1 MiB string aliased 1000
//! times loads there. We count the bytes of text that aliases copy too ([`MAX_ALIAS_BYTES`]).
//! As go-yaml, we refuse control characters (a NUL byte used to end the file early, silently)
//! and skip a leading UTF-8 byte order mark.
//! Scalars are typed as Docker Compose's YAML library (go-yaml v3, YAML 1.2 core schema) types
//! them: `yes` stays a string, `0755` is octal, `1_000` is an integer.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use yaml_rust2::parser::{Event, Parser, Tag as YTag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::error::{LoadError, Pos, Result};

/// At most this many nodes may result from expanding aliases in one file.
pub(crate) const MAX_NODES: usize = 1_000_000;
/// At most this many bytes of text (scalars and keys) may be copied by aliases in one file.
pub(crate) const MAX_ALIAS_BYTES: usize = 16 << 20;
/// Nesting deeper than this is refused (keeps every later recursive pass far from the stack's end).
pub(crate) const MAX_DEPTH: usize = 256;

/// A tag that changes how a node merges: `!reset` removes the value, `!override` replaces it whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Tag {
    #[default]
    None,
    Reset,
    Override,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Map),
}

/// A value with the place it was written and its merge tag.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub v: Value,
    pub pos: Pos,
    pub tag: Tag,
}

/// A mapping that keeps the order its keys were written in; keys are strings, as in compose.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Map(pub Vec<(Key, Node)>);

#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

impl Map {
    pub fn get(&self, k: &str) -> Option<&Node> {
        self.0.iter().find(|(key, _)| key.name == k).map(|(_, v)| v)
    }
    pub fn get_mut(&mut self, k: &str) -> Option<&mut Node> {
        self.0.iter_mut().find(|(key, _)| key.name == k).map(|(_, v)| v)
    }
    pub fn contains(&self, k: &str) -> bool {
        self.get(k).is_some()
    }
    /// Sets `k` to `v`, in place when present, at the end otherwise.
    pub fn insert(&mut self, k: &str, v: Node) {
        match self.get_mut(k) {
            Some(slot) => *slot = v,
            None => {
                let pos = v.pos.clone();
                self.0.push((Key { name: k.to_string(), pos }, v));
            }
        }
    }
    pub(crate) fn insert_key(&mut self, k: Key, v: Node) {
        match self.get_mut(&k.name) {
            Some(slot) => *slot = v,
            None => self.0.push((k, v)),
        }
    }
    pub fn remove(&mut self, k: &str) -> Option<Node> {
        let i = self.0.iter().position(|(key, _)| key.name == k)?;
        Some(self.0.remove(i).1)
    }
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.name.as_str())
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.0.iter().map(|(k, v)| (k.name.as_str(), v))
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Node {
    pub fn new(v: Value, pos: Pos) -> Node {
        Node { v, pos, tag: Tag::None }
    }
    pub fn null(pos: Pos) -> Node {
        Node::new(Value::Null, pos)
    }
    pub fn str(s: impl Into<String>, pos: Pos) -> Node {
        Node::new(Value::Str(s.into()), pos)
    }
    pub fn map(m: Map, pos: Pos) -> Node {
        Node::new(Value::Map(m), pos)
    }
    pub(crate) fn as_map(&self) -> Option<&Map> {
        match &self.v {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
    pub(crate) fn as_map_mut(&mut self) -> Option<&mut Map> {
        match &mut self.v {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
    pub(crate) fn as_seq(&self) -> Option<&Vec<Node>> {
        match &self.v {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match &self.v {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self.v, Value::Null)
    }
    /// The scalar as text, as Go's `fmt.Sprint` would print it (for values that compose turns
    /// into strings: environment, labels, ...). `None` for sequences and mappings.
    pub(crate) fn scalar_string(&self) -> Option<String> {
        Some(match &self.v {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format_float(*f),
            Value::Str(s) => s.clone(),
            _ => return None,
        })
    }
    /// The name of the YAML type, for "expected X, got Y" messages.
    pub fn kind(&self) -> &'static str {
        match self.v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "number",
            Value::Str(_) => "string",
            Value::Seq(_) => "sequence",
            Value::Map(_) => "mapping",
        }
    }
    /// The number of nodes in this tree.
    pub fn size(&self) -> usize {
        1 + match &self.v {
            Value::Seq(s) => s.iter().map(Node::size).sum(),
            Value::Map(m) => m.0.iter().map(|(_, v)| v.size()).sum(),
            _ => 0,
        }
    }
    /// The number of bytes of text (strings and keys) in this tree.
    pub(crate) fn text_len(&self) -> usize {
        match &self.v {
            Value::Str(s) => s.len(),
            Value::Seq(s) => s.iter().map(Node::text_len).sum(),
            Value::Map(m) => m.0.iter().map(|(k, v)| k.name.len() + v.text_len()).sum(),
            _ => 0,
        }
    }
}

/// Formats a float as Go's `strconv.FormatFloat(f, 'g', -1, 64)` does for common values
/// (`fmt.Sprint` of a float64): shortest representation, exponent for very large/small ones.
pub(crate) fn format_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let exp = if f == 0.0 { 0 } else { f.abs().log10().floor() as i32 };
    if (-4..21).contains(&exp) {
        let s = format!("{f}");
        s
    } else {
        let s = format!("{f:e}");
        // Rust: 1e21, Go: 1e+21
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{:0>2}", e),
            Some((m, e)) => format!("{m}e-{:0>2}", &e[1..]),
            None => s,
        }
    }
}

/// A character go-yaml refuses anywhere in a document (YAML 1.2's printable set, 5.1).
fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// The first control character of `text` with its 1-based line and column.
fn find_control(text: &str) -> Option<(char, u32, u32)> {
    let at = text.find(is_control)?;
    let c = text[at..].chars().next()?;
    let before = &text[..at];
    let line = before.matches('\n').count() as u32 + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
    Some((c, line, col))
}

/// Parses `text` (the content of `file`) into its documents. An empty file gives no document.
pub fn parse(text: &str, file: &Arc<PathBuf>) -> Result<Vec<Node>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some((c, line, col)) = find_control(text) {
        return Err(LoadError::at(
            &Pos::new(file, line, col),
            "",
            format!(
                "control characters are not allowed (found U+{:04X}): remove it, or write it as an escape such as \\t in a \
                 double-quoted string",
                c as u32
            ),
        ));
    }
    let mut b = Builder {
        file: file.clone(),
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        alias_nodes: 0,
        alias_bytes: 0,
        docs: Vec::new(),
    };
    let mut parser = Parser::new_from_str(text);
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| {
            let m = e.marker();
            LoadError::at(&b.pos(m), "", format!("invalid YAML: {}", e.info()))
        })?;
        if ev == Event::StreamEnd {
            break;
        }
        b.event(ev, mark)?;
    }
    Ok(b.docs)
}

enum Frame {
    Seq { items: Vec<Node>, pos: Pos, anchor: usize, tag: Tag },
    Map { entries: Vec<(Node, Node)>, pending: Option<Node>, pos: Pos, anchor: usize, tag: Tag },
}

/// An anchored node with its number of nodes and bytes of text.
struct Anchored {
    node: Node,
    nodes: usize,
    bytes: usize,
}

struct Builder {
    file: Arc<PathBuf>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Anchored>,
    nodes: usize,
    /// Nodes that came from aliases (part of `nodes`).
    alias_nodes: usize,
    alias_bytes: usize,
    docs: Vec<Node>,
}

fn tag_of(t: &Option<YTag>) -> Tag {
    match t {
        Some(t) if t.handle == "!" && t.suffix == "reset" => Tag::Reset,
        Some(t) if t.handle == "!" && t.suffix == "override" => Tag::Override,
        _ => Tag::None,
    }
}

/// The share of a document's nodes that may come from aliases, as go-yaml allows it (and so
/// Docker Compose): 99 % up to 400 000 nodes, falling to 10 % at 4 000 000.
fn allowed_alias_ratio(nodes: usize) -> f64 {
    const LOW: f64 = 400_000.0;
    const HIGH: f64 = 4_000_000.0;
    let n = nodes as f64;
    if n <= LOW {
        0.99
    } else if n >= HIGH {
        0.10
    } else {
        0.99 - 0.89 * ((n - LOW) / (HIGH - LOW))
    }
}

impl Builder {
    fn pos(&self, m: &Marker) -> Pos {
        Pos::new(&self.file, m.line() as u32, m.col() as u32 + 1)
    }

    fn count(&mut self, n: usize, pos: &Pos) -> Result<()> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(LoadError::at(
                pos,
                "",
                format!("the document expands to more than {MAX_NODES} nodes (an alias bomb?); write it without so many nested aliases"),
            ));
        }
        Ok(())
    }

    fn event(&mut self, ev: Event, mark: Marker) -> Result<()> {
        let pos = self.pos(&mark);
        match ev {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart | Event::DocumentEnd => {}
            Event::Alias(id) => {
                let Some(a) = self.anchors.get(&id) else {
                    return Err(LoadError::at(&pos, "", "unknown anchor referenced by an alias"));
                };
                let (nodes, bytes) = (a.nodes, a.bytes);
                // counted before the copy is made
                self.count(nodes, &pos)?;
                self.alias_nodes += nodes;
                if self.alias_nodes > 100
                    && self.nodes > 1000
                    && self.alias_nodes as f64 / self.nodes as f64 > allowed_alias_ratio(self.nodes)
                {
                    return Err(LoadError::at(
                        &pos,
                        "",
                        "the document contains excessive aliasing (an alias bomb?): write it without so many nested aliases",
                    ));
                }
                self.alias_bytes += bytes;
                if self.alias_bytes > MAX_ALIAS_BYTES {
                    return Err(LoadError::at(
                        &pos,
                        "",
                        format!(
                            "the aliases copy more than {} MiB of text (an alias bomb?): write the value once, or use fewer aliases of it",
                            MAX_ALIAS_BYTES >> 20
                        ),
                    ));
                }
                let mut node = self.anchors[&id].node.clone();
                node.pos = pos;
                self.push(node)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, &pos)?;
                let t = tag_of(&tag);
                let v = if style == TScalarStyle::Plain && tag.is_none() {
                    resolve_plain(&text)
                } else if let Some(tg) = &tag {
                    resolve_tagged(&text, tg)
                } else {
                    Value::Str(text)
                };
                let node = Node { v, pos, tag: t };
                if anchor > 0 {
                    self.anchor(anchor, &node);
                }
                self.push(node)?;
            }
            Event::SequenceStart(anchor, tag) => {
                self.count(1, &pos)?;
                self.depth(&pos)?;
                self.stack.push(Frame::Seq { items: Vec::new(), pos, anchor, tag: tag_of(&tag) });
            }
            Event::MappingStart(anchor, tag) => {
                self.count(1, &pos)?;
                self.depth(&pos)?;
                self.stack.push(Frame::Map { entries: Vec::new(), pending: None, pos, anchor, tag: tag_of(&tag) });
            }
            Event::SequenceEnd => {
                let Some(Frame::Seq { items, pos, anchor, tag }) = self.stack.pop() else {
                    return Err(LoadError::at(&pos, "", "invalid YAML: unbalanced sequence"));
                };
                let node = Node { v: Value::Seq(items), pos, tag };
                if anchor > 0 {
                    self.anchor(anchor, &node);
                }
                self.push(node)?;
            }
            Event::MappingEnd => {
                let Some(Frame::Map { entries, pos, anchor, tag, .. }) = self.stack.pop() else {
                    return Err(LoadError::at(&pos, "", "invalid YAML: unbalanced mapping"));
                };
                let map = build_map(entries)?;
                let node = Node { v: Value::Map(map), pos, tag };
                if anchor > 0 {
                    self.anchor(anchor, &node);
                }
                self.push(node)?;
            }
        }
        Ok(())
    }

    fn anchor(&mut self, id: usize, node: &Node) {
        self.anchors.insert(id, Anchored { node: node.clone(), nodes: node.size(), bytes: node.text_len() });
    }

    fn depth(&self, pos: &Pos) -> Result<()> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(LoadError::at(pos, "", format!("the document nests deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn push(&mut self, node: Node) -> Result<()> {
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, pending, .. }) => match pending.take() {
                None => *pending = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(())
    }
}

/// Builds a mapping from its entries: keys must be strings and unique; `<<` merges other
/// mappings in (keys written in this mapping win; among merged mappings, the first wins).
fn build_map(entries: Vec<(Node, Node)>) -> Result<Map> {
    let mut explicit: Vec<(Key, Node)> = Vec::with_capacity(entries.len());
    let mut seen: HashMap<String, u32> = HashMap::with_capacity(entries.len());
    let mut merges: Vec<(usize, Node)> = Vec::new();
    for (k, v) in entries {
        let name = match &k.v {
            Value::Str(s) if s == "<<" && k.tag == Tag::None => {
                merges.push((explicit.len(), v));
                continue;
            }
            Value::Str(s) => s.clone(),
            _ => {
                let shown = k.scalar_string().unwrap_or_else(|| k.kind().to_string());
                return Err(LoadError::at(
                    &k.pos,
                    "",
                    format!("non-string key {shown}: mapping keys must be strings (quote it: \"{shown}\")"),
                ));
            }
        };
        if let Some(line) = seen.get(&name) {
            return Err(LoadError::at(&k.pos, "", format!("mapping key {name:?} already defined at line {line}")));
        }
        seen.insert(name.clone(), k.pos.line);
        explicit.push((Key { name, pos: k.pos }, v));
    }
    if merges.is_empty() {
        return Ok(Map(explicit));
    }
    // Insert merged keys at the place of their `<<`, skipping keys the mapping sets itself.
    let mut out: Vec<(Key, Node)> = Vec::new();
    let mut merged_names: HashSet<String> = HashSet::new();
    let mut it = explicit.clone().into_iter().enumerate().peekable();
    let mut mi = merges.into_iter().peekable();
    loop {
        let at = it.peek().map(|(i, _)| *i);
        if let Some((mat, _)) = mi.peek() {
            if at.is_none_or(|a| *mat <= a) {
                let (_, src) = mi.next().unwrap_or((0, Node::null(Pos::default())));
                let sources: Vec<Node> = match src.v {
                    Value::Map(_) => vec![src],
                    Value::Seq(items) => items,
                    _ => {
                        return Err(LoadError::at(&src.pos, "<<", "merge key needs a mapping or a sequence of mappings"));
                    }
                };
                for s in sources {
                    let Value::Map(m) = s.v else {
                        return Err(LoadError::at(&s.pos, "<<", "merge key needs a mapping or a sequence of mappings"));
                    };
                    for (k, v) in m.0 {
                        if seen.contains_key(&k.name) || !merged_names.insert(k.name.clone()) {
                            continue;
                        }
                        out.push((k, v));
                    }
                }
                continue;
            }
        }
        match it.next() {
            Some((_, e)) => out.push(e),
            None => break,
        }
    }
    Ok(Map(out))
}

fn resolve_tagged(text: &str, tag: &YTag) -> Value {
    if tag.handle == "tag:yaml.org,2002:" || tag.handle == "!!" {
        match tag.suffix.as_str() {
            "str" => return Value::Str(text.to_string()),
            "int" | "float" | "bool" | "null" => return resolve_plain(text),
            _ => {}
        }
    }
    // `!reset` and `!override` on a scalar: an empty one is null.
    if tag.handle == "!" && text.is_empty() {
        return Value::Null;
    }
    resolve_plain(text)
}

/// Types a plain scalar as go-yaml v3 does.
pub(crate) fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Value::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        _ => {}
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return Value::Str(s.to_string());
    }
    let plain: String = s.chars().filter(|c| *c != '_').collect();
    if let Some(i) = parse_go_int(&plain) {
        return Value::Int(i);
    }
    if is_yaml_float(&plain) {
        if let Ok(f) = plain.parse::<f64>() {
            return Value::Float(f);
        }
    }
    Value::Str(s.to_string())
}

/// `strconv.ParseInt(s, 0, 64)`: sign, then `0x`, `0o`, `0b` or a leading `0` (octal), or decimal.
fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i128::from_str_radix(&digits, radix).ok()?;
    let v = if neg { -v } else { v };
    i64::try_from(v).ok()
}

/// go-yaml's float syntax: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let fs = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if int_digits == 0 && i == fs {
            return false;
        }
    } else if int_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let es = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == es {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Node {
        parse(s, &Arc::new(PathBuf::from("t.yaml"))).unwrap().remove(0)
    }

    #[test]
    fn scalars_are_typed_as_go_yaml_v3() {
        let n = p("a: yes\nb: 0755\nc: 1_000\nd: 1.5\ne: ~\nf: '1'\ng: 0x1F\nh: 1e3\ni: .5\nj: 12:30\n");
        let m = n.as_map().unwrap();
        assert_eq!(m.get("a").unwrap().v, Value::Str("yes".into()));
        assert_eq!(m.get("b").unwrap().v, Value::Int(493));
        assert_eq!(m.get("c").unwrap().v, Value::Int(1000));
        assert_eq!(m.get("d").unwrap().v, Value::Float(1.5));
        assert_eq!(m.get("e").unwrap().v, Value::Null);
        assert_eq!(m.get("f").unwrap().v, Value::Str("1".into()));
        assert_eq!(m.get("g").unwrap().v, Value::Int(31));
        assert_eq!(m.get("h").unwrap().v, Value::Float(1000.0));
        assert_eq!(m.get("i").unwrap().v, Value::Float(0.5));
        assert_eq!(m.get("j").unwrap().v, Value::Str("12:30".into()));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let n = p("x: &b {image: busybox, ports: [1]}\ny:\n  <<: *b\n  image: alpine\nz: *b\n");
        let m = n.as_map().unwrap();
        let y = m.get("y").unwrap().as_map().unwrap();
        assert_eq!(y.get("image").unwrap().as_str(), Some("alpine"));
        assert_eq!(y.get("ports").unwrap().as_seq().unwrap().len(), 1);
        assert_eq!(m.get("z").unwrap().as_map().unwrap().get("image").unwrap().as_str(), Some("busybox"));
        // merge of a list: the first mapping wins
        let n = p("a: &a {k: 1}\nb: &b {k: 2, j: 3}\nc: {<<: [*a, *b]}\n");
        let c = n.as_map().unwrap().get("c").unwrap().as_map().unwrap();
        assert_eq!(c.get("k").unwrap().v, Value::Int(1));
        assert_eq!(c.get("j").unwrap().v, Value::Int(3));
    }

    #[test]
    fn tags_and_positions() {
        let n = p("services:\n  web:\n    ports: !override [\"80\"]\n    command: !reset\n");
        let web = n.as_map().unwrap().get("services").unwrap().as_map().unwrap().get("web").unwrap();
        let ports = web.as_map().unwrap().get("ports").unwrap();
        assert_eq!(ports.tag, Tag::Override);
        assert_eq!((ports.pos.line, ports.pos.col), (3, 22));
        let cmd = web.as_map().unwrap().get("command").unwrap();
        assert_eq!(cmd.tag, Tag::Reset);
        assert!(cmd.is_null());
    }

    #[test]
    fn alias_bomb_is_refused_quickly() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = i - 1;
            s.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let t = std::time::Instant::now();
        let err = parse(&s, &Arc::new(PathBuf::from("bomb.yaml"))).unwrap_err();
        assert!(err.to_string().contains("alias bomb"), "{err}");
        assert!(t.elapsed().as_secs() < 2);
    }

    #[test]
    fn duplicate_and_non_string_keys_are_errors() {
        let f = Arc::new(PathBuf::from("d.yaml"));
        let e = parse("a: 1\nb: 2\na: 3\n", &f).unwrap_err().to_string();
        assert!(e.contains("d.yaml:3:1") && e.contains("already defined at line 1"), "{e}");
        let e = parse("ports:\n  8080: 80\n", &f).unwrap_err().to_string();
        assert!(e.contains("non-string key 8080"), "{e}");
    }

    /// 1 MiB anchored once and aliased 1000 times was loaded (27 s, 4.5 GB); 10 000 times aborted.
    #[test]
    fn a_big_string_aliased_many_times_is_refused() {
        let mut s = format!("x-big: &big \"{}\"\nx-list:\n", "a".repeat(1 << 20));
        for _ in 0..1000 {
            s.push_str("  - *big\n");
        }
        let t = std::time::Instant::now();
        let e = parse(&s, &Arc::new(PathBuf::from("big.yaml"))).unwrap_err().to_string();
        assert!(e.starts_with("big.yaml:") && e.contains("more than 16 MiB of text") && e.contains("alias bomb"), "{e}");
        assert!(t.elapsed().as_secs() < 5);
        // a few copies are fine
        let mut s = format!("x-big: &big \"{}\"\nx-list:\n", "a".repeat(1 << 20));
        for _ in 0..10 {
            s.push_str("  - *big\n");
        }
        assert!(parse(&s, &Arc::new(PathBuf::from("big.yaml"))).is_ok());
    }

    /// A NUL byte ended the file there, silently; go-yaml refuses every control character.
    #[test]
    fn control_characters_are_refused_with_their_place() {
        let f = Arc::new(PathBuf::from("c.yaml"));
        let e = parse("services:\n  web:\n    image: x\0\n  bad: [\n", &f).unwrap_err().to_string();
        assert!(e.starts_with("c.yaml:3:13: control characters are not allowed (found U+0000)"), "{e}");
        for c in ['\u{1}', '\u{1b}', '\u{7f}', '\u{9f}', '\u{fffe}'] {
            let e = parse(&format!("a: \"x{c}\"\n"), &f).unwrap_err().to_string();
            assert!(e.contains("control characters are not allowed"), "{c:?}: {e}");
        }
        assert!(parse("a: \"\t\u{85}\u{a0}\u{e000}\u{1F600}\"\r\n", &f).is_ok());
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let n = p("\u{feff}services:\n  web: {}\n");
        assert!(n.as_map().unwrap().contains("services"));
    }

    #[test]
    fn wide_mappings_load_in_linear_time() {
        let mut s = String::from("x-wide:\n");
        for i in 0..100_000 {
            s.push_str(&format!("  k{i}: v\n"));
        }
        s.push_str("x-merged:\n  <<: [{a: 1}, {a: 2}]\n");
        let t = std::time::Instant::now();
        p(&s);
        assert!(t.elapsed().as_secs() < 10, "{:?}", t.elapsed());
    }

    #[test]
    fn go_float_format() {
        assert_eq!(format_float(0.5), "0.5");
        assert_eq!(format_float(2.0), "2");
        assert_eq!(format_float(1e21), "1e+21");
    }
}
