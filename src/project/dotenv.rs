//! `.env` and `env_file` parsing, as Docker Compose reads them: `KEY=VALUE` or `KEY: VALUE`,
//! optional `export `, `#` comments (and ` #` after an unquoted value), single quotes (literal),
//! double quotes (escapes such as `\n`, and expansion), unquoted values (expansion), multi-line
//! quoted values, and a bare `KEY` that takes its value from the environment when set there.

use std::collections::HashMap;
use std::path::Path;

use super::error::{LoadError, Result};
use super::interpolate::{self, Budget, Env, Layered, Vars};
use crate::util::fs::FsError;

/// Parses dotenv text. `lookup` is consulted first for `${VAR}` expansion and bare keys; values
/// defined earlier in the same text come next. Keeps the order of first definition. What
/// expansion inserts is charged to `budget`.
pub fn parse(src: &str, lookup: &dyn Vars, budget: &mut Budget) -> Result<Vec<(String, String)>, String> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src).replace("\r\n", "\n");
    let mut out = Out::default();
    let mut line = 1usize;
    let mut rest: &str = &src;
    loop {
        // statement start: skip blanks and comment lines
        loop {
            let trimmed = rest.trim_start_matches(|c: char| c.is_whitespace());
            line += rest[..rest.len() - trimmed.len()].matches('\n').count();
            rest = trimmed;
            if rest.starts_with('#') {
                match rest.find('\n') {
                    Some(i) => rest = &rest[i..],
                    None => rest = "",
                }
                continue;
            }
            break;
        }
        if rest.is_empty() {
            break;
        }
        if let Some(r) = rest.strip_prefix("export") {
            if r.starts_with([' ', '\t']) {
                rest = r.trim_start_matches([' ', '\t']);
            }
        }
        // the key
        let mut key_end = None;
        let mut sep = '\n';
        for (i, c) in rest.char_indices() {
            if matches!(c, ' ' | '\t' | '\x0b' | '\x0c' | '\r') {
                continue;
            }
            match c {
                '=' | ':' | '\n' => {
                    key_end = Some(i);
                    sep = c;
                    break;
                }
                '_' | '.' | '-' | '[' | ']' => {}
                c if c.is_alphanumeric() => {}
                c => {
                    let first = rest.lines().next().unwrap_or("");
                    return Err(format!("line {line}: unexpected character {c:?} in variable name {first:?}"));
                }
            }
        }
        let key_end = key_end.unwrap_or(rest.len());
        let key = rest[..key_end].trim_end().to_string();
        if key.contains(' ') {
            return Err(format!("line {line}: key cannot contain a space"));
        }
        if sep == '\n' {
            // a bare KEY: inherited from the environment when set there
            if let Some(v) = lookup.var(&key).map(str::to_string) {
                out.set(key, v);
            }
            rest = if key_end < rest.len() { &rest[key_end + 1..] } else { "" };
            line += 1;
            continue;
        }
        rest = rest[key_end + 1..].trim_start_matches([' ', '\t', '\x0b', '\x0c', '\r']);
        let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'');
        let value;
        match quote {
            None => {
                let (v, r) = rest.split_once('\n').unwrap_or((rest, ""));
                line += 1;
                let v = v.split_once(" #").map(|(a, _)| a).unwrap_or(v).trim_end();
                value = expand(v, lookup, &out, budget).map_err(|e| format!("line {}: {e}", line - 1))?;
                rest = r;
            }
            Some(q) => {
                let body = &rest[1..];
                let mut chars = String::new();
                let mut escape = false;
                let mut end = None;
                for (i, c) in body.char_indices() {
                    if c == '\n' {
                        line += 1;
                    }
                    if c != q {
                        if !escape && c == '\\' {
                            escape = true;
                            continue;
                        }
                        if escape {
                            escape = false;
                            chars.push('\\');
                        }
                        chars.push(c);
                        continue;
                    }
                    if escape {
                        escape = false;
                        chars.push(c);
                        continue;
                    }
                    end = Some(i);
                    break;
                }
                let Some(end) = end else {
                    let first = rest.lines().next().unwrap_or("");
                    return Err(format!("line {line}: unterminated quoted value {first}"));
                };
                value = if q == '"' {
                    expand(&unescape(&chars), lookup, &out, budget).map_err(|e| format!("line {line}: {e}"))?
                } else {
                    chars
                };
                rest = &body[end + 1..];
            }
        }
        out.set(key, value);
    }
    Ok(out.vars)
}

/// The variables parsed so far, in order of first definition, with an index by name.
#[derive(Default)]
struct Out {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl Out {
    fn set(&mut self, k: String, v: String) {
        match self.index.get(&k) {
            Some(&i) => self.vars[i].1 = v,
            None => {
                self.index.insert(k.clone(), self.vars.len());
                self.vars.push((k, v));
            }
        }
    }
}

impl Vars for Out {
    fn var(&self, k: &str) -> Option<&str> {
        self.index.get(k).map(|&i| self.vars[i].1.as_str())
    }
}

fn expand(v: &str, lookup: &dyn Vars, out: &Out, budget: &mut Budget) -> Result<String, String> {
    if !v.contains('$') {
        return Ok(v.to_string());
    }
    let layered = Layered(lookup, out);
    let mut env = Env::new(&layered, budget);
    interpolate::substitute(v, &mut env).map_err(|e| e.to_string())
}

/// Double-quote escapes: `\a \b \c \f \n \r \t \v \" \\ \$` and `\0NNN` octal; others are kept.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.peek().copied() {
            Some('a') => out.push('\x07'),
            Some('b') => out.push('\x08'),
            Some('f') => out.push('\x0c'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('v') => out.push('\x0b'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('$') => out.push_str("$$"),
            Some('0') => {
                it.next();
                let mut digits = String::new();
                while digits.len() < 3 && it.peek().is_some_and(|d| d.is_digit(8)) {
                    digits.push(it.next().unwrap_or('0'));
                }
                let n = u32::from_str_radix(if digits.is_empty() { "0" } else { &digits }, 8).unwrap_or(0);
                out.push(char::from_u32(n).unwrap_or('\0'));
                continue;
            }
            _ => {
                out.push('\\');
                continue;
            }
        }
        it.next();
    }
    out
}

/// Reads and parses the dotenv file at `path`.
pub fn read(path: &Path, lookup: &dyn Vars, budget: &mut Budget) -> Result<Vec<(String, String)>> {
    let text = std::fs::read(path).map_err(|e| LoadError::Fs(FsError::io("read env file", path, e)))?;
    let text = String::from_utf8_lossy(&text);
    parse(&text, lookup, budget).map_err(|e| LoadError::file(path, format!("invalid env file: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in(s: &str, m: &HashMap<String, String>) -> Result<Vec<(String, String)>, String> {
        parse(s, m, &mut Budget::default())
    }
    fn p(s: &str, env: &[(&str, &str)]) -> Vec<(String, String)> {
        let m = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        parse_in(s, &m).unwrap()
    }
    fn get<'a>(v: &'a [(String, String)], k: &str) -> Option<&'a str> {
        v.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn plain_quotes_comments_export() {
        let v = p("# c\nA=1\nexport B=two words # comment\nC='lit $A \\n'\nD=\"x\\ny $A\"\nE: colon\n  F = spaced  \nG=a#b\nH=\n", &[]);
        assert_eq!(get(&v, "A"), Some("1"));
        assert_eq!(get(&v, "B"), Some("two words"));
        assert_eq!(get(&v, "C"), Some("lit $A \\n"));
        assert_eq!(get(&v, "D"), Some("x\ny 1"));
        assert_eq!(get(&v, "E"), Some("colon"));
        assert_eq!(get(&v, "F"), Some("spaced"));
        assert_eq!(get(&v, "G"), Some("a#b"));
        assert_eq!(get(&v, "H"), Some(""));
    }

    #[test]
    fn expansion_prefers_the_environment_and_bare_keys_inherit() {
        let v = p("A=file\nB=${A}-${C:-dflt}\nHOME\nMISSING\nM=\"multi\nline\"\n", &[("A", "env"), ("HOME", "/h")]);
        assert_eq!(get(&v, "B"), Some("env-dflt"));
        assert_eq!(get(&v, "HOME"), Some("/h"));
        assert_eq!(get(&v, "MISSING"), None);
        assert_eq!(get(&v, "M"), Some("multi\nline"));
    }

    #[test]
    fn errors_name_the_line() {
        let m = HashMap::new();
        assert!(parse_in("A=1\nB C=2\n", &m).unwrap_err().contains("line 2"));
        assert!(parse_in("A=\"open\n", &m).unwrap_err().contains("unterminated"));
        assert!(parse_in("A$=1\n", &m).unwrap_err().contains("unexpected character"));
    }

    /// `A=xx`, `B=${A}${A}`, ...: each line doubles; 40 lines would be a terabyte.
    #[test]
    fn a_doubling_chain_is_refused_with_the_line() {
        let mut s = String::from("V0=xxxxxxxxxxxxxxxx\n");
        for i in 1..40 {
            s.push_str(&format!("V{i}=${{V{p}}}${{V{p}}}\n", p = i - 1));
        }
        let t = std::time::Instant::now();
        let e = parse_in(&s, &HashMap::new()).unwrap_err();
        assert!(e.contains("line 22: ") && e.contains("more than 32 MiB") && e.contains("${V20}"), "{e}");
        assert!(t.elapsed().as_secs() < 5);
    }
}
