//! Rendering the model as Docker Compose prints it: JSON indented by two spaces, or YAML in
//! go-yaml's style; `$` in values written `$$` (so that the output loads back the same).

use serde::Serialize;
use serde_yaml_ng::Value as Y;

use super::model::with_mode;

fn tree<T: Serialize>(v: &T, json: bool) -> Y {
    with_mode(json, || serde_yaml_ng::to_value(v).unwrap_or(Y::Null))
}

/// `value` as compose's JSON.
pub fn to_json<T: Serialize>(value: &T) -> String {
    let mut out = String::new();
    json(&tree(value, true), 0, &mut out);
    out
}

/// `value` as compose's YAML.
pub fn to_yaml<T: Serialize>(value: &T) -> String {
    let mut out = String::new();
    let t = tree(value, false);
    match &t {
        Y::Mapping(m) if !m.is_empty() => yaml_map(m, 0, &mut out),
        other => {
            out.push_str(&yaml_scalar(other));
            out.push('\n');
        }
    }
    out
}

thread_local! {
    static RAW: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with `$` printed as is: for a model that was not interpolated, whose `$` are the
/// user's own (`config --no-interpolate`).
pub fn raw<T>(f: impl FnOnce() -> T) -> T {
    let prev = RAW.with(|c| c.replace(true));
    let r = f();
    RAW.with(|c| c.set(prev));
    r
}

fn escape_dollar(s: &str) -> String {
    if RAW.with(std::cell::Cell::get) { s.to_string() } else { s.replace('$', "$$") }
}

fn json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn num(n: &serde_yaml_ng::Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        super::yaml::format_float(n.as_f64().unwrap_or(0.0))
    }
}

fn json(v: &Y, ind: usize, out: &mut String) {
    let pad = |n: usize| "  ".repeat(n);
    match v {
        Y::Null => out.push_str("null"),
        Y::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Y::Number(n) => out.push_str(&num(n)),
        Y::String(s) => json_str(&escape_dollar(s), out),
        Y::Sequence(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push_str("[\n");
            for (i, it) in items.iter().enumerate() {
                out.push_str(&pad(ind + 1));
                json(it, ind + 1, out);
                if i + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(ind));
            out.push(']');
        }
        Y::Mapping(m) => {
            if m.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push_str("{\n");
            let n = m.len();
            for (i, (k, v)) in m.iter().enumerate() {
                out.push_str(&pad(ind + 1));
                json_str(&key_text(k), out);
                out.push_str(": ");
                json(v, ind + 1, out);
                if i + 1 < n {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(ind));
            out.push('}');
        }
        Y::Tagged(t) => json(&t.value, ind, out),
    }
}

fn key_text(k: &Y) -> String {
    match k {
        Y::String(s) => s.clone(),
        Y::Number(n) => num(n),
        Y::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// Whether a plain YAML scalar would read back as something else than this string.
fn needs_quotes(s: &str) -> bool {
    if s.is_empty() || s != s.trim() || s.contains('\n') {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "~" | "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | ".nan" | ".inf" | "-.inf" | "+.inf"
    ) {
        return true;
    }
    if !matches!(super::yaml::resolve_plain(s), super::yaml::Value::Str(_)) {
        return true;
    }
    // numbers in YAML 1.1 forms, like 0755 or 1_000 or 1e3
    let first = s.as_bytes()[0];
    if first.is_ascii_digit() || first == b'.' || first == b'+' || first == b'-' {
        let t: String = s.chars().filter(|c| *c != '_').collect();
        if t.parse::<f64>().is_ok() {
            return true;
        }
    }
    if s.starts_with(['-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`'])
        && !(s.starts_with('-') && s.len() > 1 && !s.starts_with("- "))
    {
        return true;
    }
    s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.chars().any(|c| (c as u32) < 0x20 && c != '\t')
}

fn yaml_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn yaml_scalar(v: &Y) -> String {
    match v {
        Y::Null => "null".into(),
        Y::Bool(b) => b.to_string(),
        Y::Number(n) => num(n),
        Y::String(s) => {
            let s = escape_dollar(s);
            if needs_quotes(&s) { yaml_quote(&s) } else { s }
        }
        Y::Sequence(s) if s.is_empty() => "[]".into(),
        Y::Mapping(m) if m.is_empty() => "{}".into(),
        Y::Tagged(t) => yaml_scalar(&t.value),
        _ => String::new(),
    }
}

fn is_block(v: &Y) -> bool {
    match v {
        Y::Sequence(s) => !s.is_empty(),
        Y::Mapping(m) => !m.is_empty(),
        _ => false,
    }
}

fn yaml_key(k: &Y) -> String {
    let t = key_text(k);
    if needs_quotes(&t) { yaml_quote(&t) } else { t }
}

fn yaml_map(m: &serde_yaml_ng::Mapping, ind: usize, out: &mut String) {
    let pad = "  ".repeat(ind);
    for (k, v) in m.iter() {
        out.push_str(&pad);
        out.push_str(&yaml_key(k));
        out.push(':');
        yaml_value_after_key(v, ind, out);
    }
}

fn yaml_value_after_key(v: &Y, ind: usize, out: &mut String) {
    match v {
        Y::Mapping(mm) if !mm.is_empty() => {
            out.push('\n');
            yaml_map(mm, ind + 1, out);
        }
        Y::Sequence(items) if !items.is_empty() => {
            out.push('\n');
            yaml_seq(items, ind + 1, out);
        }
        Y::String(s) if s.contains('\n') && !s.trim_end_matches('\n').contains("\n\n\n") => {
            // literal block, as go-yaml prints multi-line strings
            let s = escape_dollar(s);
            let chomp = if s.ends_with('\n') { if s.ends_with("\n\n") { "+" } else { "" } } else { "-" };
            out.push_str(&format!(" |{chomp}\n"));
            let pad = "  ".repeat(ind + 1);
            for line in s.trim_end_matches('\n').split('\n') {
                if line.is_empty() {
                    out.push('\n');
                } else {
                    out.push_str(&pad);
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        other => {
            out.push(' ');
            out.push_str(&yaml_scalar(other));
            out.push('\n');
        }
    }
}

fn yaml_seq(items: &[Y], ind: usize, out: &mut String) {
    let pad = "  ".repeat(ind);
    for it in items {
        out.push_str(&pad);
        out.push('-');
        match it {
            Y::Mapping(m) if !m.is_empty() => {
                // first key on the dash line, the rest indented under it
                let mut first = true;
                for (k, v) in m.iter() {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        out.push_str(&"  ".repeat(ind + 1));
                    }
                    out.push_str(&yaml_key(k));
                    out.push(':');
                    yaml_value_after_key(v, ind + 1, out);
                }
            }
            Y::Sequence(s) if !s.is_empty() => {
                out.push('\n');
                yaml_seq(s, ind + 1, out);
            }
            other if !is_block(other) => {
                out.push(' ');
                out.push_str(&yaml_scalar(other));
                out.push('\n');
            }
            _ => out.push('\n'),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_follows_go_yaml() {
        for s in ["80", "1.5", "true", "y", "Y", "no", "", " a", "a: b", "-1", "0755", "~", "null"] {
            assert!(needs_quotes(s), "{s}");
        }
        for s in ["busybox", "90-91", "8.8.8.8", "/bin/sh", "-c", "echo hi", "1m30s", "CMD-SHELL"] {
            assert!(!needs_quotes(s), "{s}");
        }
    }

    #[test]
    fn json_escapes_like_go() {
        let v = serde_json::json!({"a": "<b>&$", "n": [1, 2.5], "e": {}});
        let j = to_json(&v);
        assert!(j.contains("\"\\u003cb\\u003e\\u0026$$\""), "{j}");
        assert!(j.contains("\"e\": {}"), "{j}");
    }
}
