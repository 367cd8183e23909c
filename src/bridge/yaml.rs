//! The YAML writer of `bridge convert`: a document tree ([`Doc`], [`Node`]) printed in the layout of
//! compose-bridge's output.
//!
//! Why not print with serde_yaml_ng directly: compose's transformer re-encodes every generated file
//! with Go's yaml.v3 at four spaces, keeps the comments its templates write (`#! file.yaml`,
//! `# Generated code, do not edit`), orders keys as its templates do, and writes Helm actions
//! (`{{ .Values.namespace }}`) unquoted. libyaml, under serde_yaml_ng, has a fixed two-space style,
//! no comments, and would quote the Helm actions. So objects are still typed and still go through
//! serde (into a [`serde_yaml_ng::Value`], by [`Node::from_value`]), and this writer only decides the
//! layout: indentation, key order ([`Order`]), comments and scalar quoting. Every string it writes
//! reads back as the same string in YAML 1.1 and 1.2 (both are in use: kubectl reads YAML 1.1
//! booleans such as `on`), which the tests check by parsing the output again.

use serde_yaml_ng::Value;

/// One YAML file: comments before the content, the content, comments after it.
#[derive(Clone, Debug, PartialEq)]
pub struct Doc {
    /// Comment lines without the newline (`"# text"`), or `""` for a blank line.
    pub head: Vec<String>,
    pub root: Node,
    pub foot: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Map(Vec<Entry>),
    Seq(Vec<Node>),
    /// A string, quoted only when a YAML reader would take it for something else.
    Str(String),
    /// A string always in double quotes (compose's `values.yaml` writes its defaults so).
    Double(String),
    /// A string always in single quotes.
    Single(String),
    /// Written as is: numbers, booleans, and Helm template actions.
    Raw(String),
    /// A null, written as nothing after the colon.
    Null,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: String,
    pub value: Node,
    /// Comment lines written above the key.
    pub head: Vec<String>,
}

impl Entry {
    pub fn new(key: impl Into<String>, value: Node) -> Self {
        Entry { key: key.into(), value, head: Vec::new() }
    }
}

/// How [`Node::from_value`] orders the keys of maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// As serialized (the field order of a struct).
    AsIs,
    /// Kubernetes objects: the order of compose-bridge's templates (see [`FIELD_ORDER`]), then by name.
    Kubernetes,
}

/// The field order of compose-bridge's templates, for every kind of object they write; a field not
/// listed comes after the listed ones, in byte order. One list serves all kinds: no two kinds need
/// two fields in opposite orders.
const FIELD_ORDER: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "labels",
    "annotations",
    "spec",
    "data",
    "binaryData",
    "type",
    "replicas",
    "completions",
    "parallelism",
    "backoffLimit",
    "selector",
    "strategy",
    "updateStrategy",
    "template",
    "podSelector",
    "policyTypes",
    "ingress",
    "egress",
    "from",
    "to",
    "restartPolicy",
    "initContainers",
    "containers",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "workingDir",
    "env",
    "securityContext",
    "accessModes",
    "volumeMode",
    "storageClassName",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "exec",
    "periodSeconds",
    "initialDelaySeconds",
    "timeoutSeconds",
    "failureThreshold",
    "containerPort",
    "port",
    "protocol",
    "targetPort",
    "ports",
    "volumeMounts",
    "mountPath",
    "subPath",
    "readOnly",
    "dnsConfig",
    "volumes",
    "secret",
    "configMap",
    "persistentVolumeClaim",
    "hostPath",
    "emptyDir",
    "secretName",
    "claimName",
    "items",
    "key",
    "path",
    "value",
];

/// Maps whose keys are the user's (labels, data keys): compose's own labels first, then by name.
const USER_MAPS: &[&str] =
    &["labels", "annotations", "matchLabels", "selector", "data", "binaryData", "stringData", "nodeSelector", "limits", "requests"];
const LABEL_ORDER: &[&str] = &["com.docker.compose.project", "com.docker.compose.service", "app.kubernetes.io/managed-by"];

fn rank(list: &[&str], key: &str) -> usize {
    list.iter().position(|k| *k == key).unwrap_or(list.len())
}

impl Node {
    /// The tree of a value serialized by serde, keys ordered by `order`.
    pub fn from_value(v: &Value, order: Order) -> Node {
        Self::convert(v, order, "")
    }

    fn convert(v: &Value, order: Order, parent: &str) -> Node {
        match v {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Raw(b.to_string()),
            Value::Number(n) => Node::Raw(n.to_string()),
            Value::String(s) => Node::Str(s.clone()),
            Value::Sequence(items) => Node::Seq(items.iter().map(|i| Self::convert(i, order, parent)).collect()),
            Value::Mapping(m) => {
                let mut entries: Vec<Entry> = m
                    .iter()
                    .map(|(k, v)| {
                        let key = match k {
                            Value::String(s) => s.clone(),
                            other => serde_yaml_ng::to_string(other).unwrap_or_default().trim_end().to_string(),
                        };
                        let value = Self::convert(v, order, &key);
                        Entry::new(key, value)
                    })
                    .collect();
                if order == Order::Kubernetes {
                    let list = if USER_MAPS.contains(&parent) { LABEL_ORDER } else { FIELD_ORDER };
                    entries.sort_by(|a, b| (rank(list, &a.key), a.key.as_str()).cmp(&(rank(list, &b.key), b.key.as_str())));
                }
                Node::Map(entries)
            }
            Value::Tagged(t) => Self::convert(&t.value, order, parent),
        }
    }

    /// The node at `path` (map keys, or sequence indexes as numbers), if any.
    pub fn get_mut(&mut self, path: &[&str]) -> Option<&mut Node> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        let next = match self {
            Node::Map(entries) => entries.iter_mut().find(|e| e.key == *first).map(|e| &mut e.value),
            Node::Seq(items) => first.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        }?;
        next.get_mut(rest)
    }

    /// Replaces the value at `path` with `node`; returns whether the path existed.
    pub fn set(&mut self, path: &[&str], node: Node) -> bool {
        match self.get_mut(path) {
            Some(slot) => {
                *slot = node;
                true
            }
            None => false,
        }
    }

    /// Adds the comment lines above the key at `path` (a map entry).
    pub fn comment(&mut self, path: &[&str], lines: &[&str]) {
        let Some((last, parent)) = path.split_last() else {
            return;
        };
        if let Some(Node::Map(entries)) = self.get_mut(parent) {
            if let Some(e) = entries.iter_mut().find(|e| e.key == *last) {
                e.head.extend(lines.iter().map(|l| l.to_string()));
            }
        }
    }
}

impl Doc {
    pub fn new(head: &[&str], root: Node) -> Self {
        Doc { head: head.iter().map(|s| s.to_string()).collect(), root, foot: Vec::new() }
    }

    /// The text of the file.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(1024);
        for line in &self.head {
            out.push_str(line);
            out.push('\n');
        }
        match &self.root {
            Node::Map(entries) if !entries.is_empty() => write_map(&mut out, entries, 0, 0, false),
            Node::Seq(items) if !items.is_empty() => write_seq(&mut out, items, 0),
            other => {
                write_inline(&mut out, other, 0);
                out.push('\n');
            }
        }
        if !self.foot.is_empty() {
            out.push('\n');
            for line in &self.foot {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

fn spaces(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn comments(out: &mut String, lines: &[String], col: usize) {
    for line in lines {
        if !line.is_empty() {
            spaces(out, col);
            out.push_str(line);
        }
        out.push('\n');
    }
}

/// Writes a map whose keys stand at `key_col` and whose children are indented from `indent` (as
/// yaml.v3 does, the map of a sequence item has its keys two columns right of its dash, but its
/// children four columns right of the dash). With `inline`, the first key follows a `- ` already
/// written.
fn write_map(out: &mut String, entries: &[Entry], indent: usize, key_col: usize, inline: bool) {
    for (i, e) in entries.iter().enumerate() {
        if i > 0 || !inline {
            comments(out, &e.head, key_col);
            spaces(out, key_col);
        }
        out.push_str(&scalar(&e.key));
        out.push(':');
        write_value(out, &e.value, indent + 4);
    }
}

/// Writes what follows `key:`; `child` is the indentation of nested content.
fn write_value(out: &mut String, v: &Node, child: usize) {
    match v {
        Node::Map(entries) if !entries.is_empty() => {
            out.push('\n');
            write_map(out, entries, child, child, false);
        }
        Node::Seq(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(out, items, child);
        }
        Node::Null => out.push('\n'),
        other => {
            out.push(' ');
            write_inline(out, other, child);
            out.push('\n');
        }
    }
}

fn write_seq(out: &mut String, items: &[Node], dash: usize) {
    for item in items {
        spaces(out, dash);
        out.push('-');
        match item {
            Node::Map(entries) if !entries.is_empty() => {
                out.push(' ');
                comments(out, &entries[0].head, 0);
                write_map(out, entries, dash, dash + 2, true);
            }
            Node::Seq(inner) if !inner.is_empty() => {
                out.push('\n');
                write_seq(out, inner, dash + 4);
            }
            Node::Null => out.push('\n'),
            other => {
                out.push(' ');
                write_inline(out, other, dash + 4);
                out.push('\n');
            }
        }
    }
}

/// A scalar or an empty collection, on the current line; a multi-line string becomes a literal
/// block indented at `block`.
fn write_inline(out: &mut String, v: &Node, block: usize) {
    match v {
        Node::Map(_) => out.push_str("{}"),
        Node::Seq(_) => out.push_str("[]"),
        Node::Null => {}
        Node::Raw(s) => out.push_str(s),
        Node::Double(s) => out.push_str(&double_quoted(s)),
        Node::Single(s) if !s.contains(|c: char| c.is_control()) => {
            out.push('\'');
            out.push_str(&s.replace('\'', "''"));
            out.push('\'');
        }
        Node::Single(s) => out.push_str(&double_quoted(s)),
        Node::Str(s) if literal_ok(s) => write_literal(out, s, block),
        Node::Str(s) => out.push_str(&scalar(s)),
    }
}

/// A multi-line string that a literal block (`|`) keeps exactly.
fn literal_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.chars().any(|c| (c.is_control() && c != '\n') || matches!(c, '\u{feff}' | '\u{85}' | '\u{2028}' | '\u{2029}'))
        && s.lines().find(|l| !l.is_empty()).is_some_and(|l| !l.starts_with(' '))
        && !s.lines().any(|l| !l.is_empty() && l.trim().is_empty())
}

fn write_literal(out: &mut String, s: &str, indent: usize) {
    out.push('|');
    if !s.ends_with('\n') {
        out.push('-');
    } else if s.ends_with("\n\n") {
        out.push('+');
    }
    out.push('\n');
    let body = s.strip_suffix('\n').unwrap_or(s);
    for (i, line) in body.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if !line.is_empty() {
            spaces(out, indent);
            out.push_str(line);
        }
    }
    // The newline that ends the last line is the caller's.
}

/// A string as a plain scalar when that reads back as the same string, else double-quoted.
pub fn scalar(s: &str) -> String {
    if plain_ok(s) { s.to_string() } else { double_quoted(s) }
}

/// Whether `s` can be written unquoted and read back as the same string by any YAML 1.1 or 1.2
/// reader, in block context. Conservative: anything that might be a number, a boolean, a null, a
/// date, an indicator or a comment is quoted.
fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return false;
    }
    if s.chars().any(|c| c.is_control() || matches!(c, '\u{feff}' | '\u{85}' | '\u{2028}' | '\u{2029}')) {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    match first {
        '-' | '?' | ':' => {
            let second = s[1..].chars().next();
            if second.is_none_or(|c| c.is_whitespace() || c.is_ascii_digit() || c == '.') {
                return false;
            }
        }
        ',' | '[' | ']' | '{' | '}' | '#' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%' | '@' | '`' => return false,
        _ => {}
    }
    const SPECIAL: &[&str] = &[
        "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false", "False",
        "FALSE", "on", "On", "ON", "off", "Off", "OFF", "<<", "=",
    ];
    if SPECIAL.contains(&s) {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(lower.trim_start_matches(['+', '-']), ".inf" | ".nan") {
        return false;
    }
    !NUMBER_OR_DATE.is_match(s)
}

/// What a YAML 1.1 or 1.2 reader takes for an integer (binary, octal, hex, decimal, base 60), a
/// float, or a date.
static NUMBER_OR_DATE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(concat!(
        r"^[-+]?(?:0b[01_]+|0o?[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*|[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?)$",
        r"|^[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+]?[0-9]+)?$",
        r"|^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$",
        r"|^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}",
    ))
    .expect("valid regex")
});

/// A double-quoted scalar, escaped as YAML requires.
pub fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() || matches!(c, '\u{feff}' | '\u{85}' | '\u{2028}' | '\u{2029}') => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{n:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(s: &str) {
        let doc = Doc::new(&[], Node::Map(vec![Entry::new("k", Node::Str(s.to_string())), Entry::new("after", Node::Raw("1".into()))]));
        let text = doc.render();
        let v: Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{s:?} gave unparsable {text:?}: {e}"));
        assert_eq!(v["k"], Value::String(s.to_string()), "{s:?} written as {text:?}");
        let seq = Doc::new(&[], Node::Seq(vec![Node::Str(s.to_string()), Node::Raw("1".into())])).render();
        let v: Value = serde_yaml_ng::from_str(&seq).unwrap_or_else(|e| panic!("{s:?} gave unparsable {seq:?}: {e}"));
        assert_eq!(v[0], Value::String(s.to_string()), "{s:?} written as {seq:?}");
    }

    #[test]
    fn strings_read_back_unchanged() {
        for s in [
            "",
            " ",
            "a",
            "true",
            "on",
            "Off",
            "y",
            "null",
            "~",
            "1",
            "1.5",
            "-1",
            "+1",
            ".5",
            "1e3",
            "1E3",
            "0x1F",
            "0o17",
            "1_000",
            "1:30",
            "2001-12-14",
            "512Mi",
            "100m",
            "1.5Gi",
            "-c",
            "--flag",
            "- x",
            "-",
            "?",
            ":",
            "a: b",
            "a #b",
            "a:b",
            "#x",
            "&a",
            "*a",
            "!x",
            "|",
            ">",
            "'q'",
            "\"q\"",
            "%x",
            "@x",
            "`x`",
            "[a]",
            "{a}",
            "a,b",
            "x:",
            "---",
            "...",
            "<<",
            "=",
            "tab\there",
            "line\nnext\n",
            "no newline\nat end",
            "two\n\n",
            "\nleading",
            " lead\nx\n",
            "a\r\nb",
            "nul\0",
            "é ü 日本",
            "\u{feff}bom",
            ".inf",
            "-.INF",
            ".NaN",
            "inf",
            "NaN",
            "{{ .Values.x }}",
            "0.0.1",
            "08",
            "0b101",
            "1:20:30.5",
            "2001-12-14t21:59:43.10-05:00",
            "+.5",
            "1__0",
            "x\n  \ny\n",
            "trailing \nspace\n",
        ] {
            roundtrip(s);
        }
    }

    #[test]
    fn plain_where_compose_writes_plain() {
        for s in [
            "alpine",
            "0.0.1",
            "0-bridge-namespace.yaml",
            "1.0.0-rc1",
            "bridge",
            "servicea-8080",
            "/etc/my-config1.txt",
            "IfNotPresent",
            "-c",
            "bm90LXNlY3JldA==",
            "512Mi",
        ] {
            assert_eq!(scalar(s), s);
        }
        assert_eq!(scalar("true"), "\"true\"");
    }

    #[test]
    fn layout_is_yaml_v3_at_four_spaces() {
        let v: Value = serde_yaml_ng::from_str(
            "kind: X\nspec:\n  containers:\n    - name: a\n      resources: {limits: {cpu: 1}}\n      ports: [{name: p, containerPort: 80}]\n  volumes: []\n",
        )
        .unwrap();
        let doc = Doc { head: vec!["#! x.yaml".into()], root: Node::from_value(&v, Order::Kubernetes), foot: vec!["# end".into()] };
        assert_eq!(
            doc.render(),
            "#! x.yaml\nkind: X\nspec:\n    containers:\n        - name: a\n          resources:\n            limits:\n                cpu: 1\n          ports:\n            - name: p\n              containerPort: 80\n    volumes: []\n\n# end\n"
        );
    }

    #[test]
    fn literal_blocks_keep_their_newlines() {
        let doc =
            Doc::new(&[], Node::Map(vec![Entry::new("data", Node::Map(vec![Entry::new("c", Node::Str("My config file\n".into()))]))]));
        assert_eq!(doc.render(), "data:\n    c: |\n        My config file\n");
    }
}
