//! Pass 2: interpolation of `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?error}`, `${VAR?error}`, `${VAR:+replacement}`, `${VAR+replacement}` (nested in the
//! defaults), and `$$` for a literal `$`, in every string value of the tree (never in keys), as the
//! compose-spec's 12-interpolation.md and Docker Compose define them.

use std::collections::HashMap;

use super::error::{LoadError, Result};
use super::yaml::{Node, Value};

/// What went wrong in a template; the caller adds the place.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateError {
    /// `${` without a valid `NAME[op...]}` after it.
    Invalid(String),
    /// `${VAR:?msg}` or `${VAR?msg}` with the variable missing.
    Required { var: String, reason: String },
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateError::Invalid(t) => {
                write!(f, "invalid interpolation format {t:?}: write ${{NAME}}, ${{NAME:-default}}, ... and $$ for a literal $")
            }
            TemplateError::Required { var, reason } if reason.is_empty() => {
                write!(f, "required variable {var} is missing a value")
            }
            TemplateError::Required { var, reason } => {
                write!(f, "required variable {var} is missing a value: {reason}")
            }
        }
    }
}

/// The variables a template reads, and the names it read that were unset (for warnings).
pub struct Env<'a> {
    pub vars: &'a HashMap<String, String>,
    pub unset: Vec<String>,
}

impl<'a> Env<'a> {
    pub fn new(vars: &'a HashMap<String, String>) -> Self {
        Env { vars, unset: Vec::new() }
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.vars.get(k).map(String::as_str)
    }
}

fn is_name_start(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphabetic()
}
fn is_name(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphanumeric()
}

/// Substitutes the variables in `s`.
pub fn substitute(s: &str, env: &mut Env) -> Result<String, TemplateError> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut lit = 0;
    while i < b.len() {
        if b[i] != b'$' || i + 1 >= b.len() {
            i += 1;
            continue;
        }
        let n = b[i + 1];
        if n == b'$' {
            out.push_str(&s[lit..i]);
            out.push('$');
            i += 2;
            lit = i;
        } else if is_name_start(n) {
            out.push_str(&s[lit..i]);
            let start = i + 1;
            let mut j = start;
            while j < b.len() && is_name(b[j]) {
                j += 1;
            }
            let name = &s[start..j];
            match env.get(name) {
                Some(v) => out.push_str(v),
                None => env.unset.push(name.to_string()),
            }
            i = j;
            lit = i;
        } else if n == b'{' {
            out.push_str(&s[lit..i]);
            // the matching close brace, counting nested `{`
            let mut depth = 0;
            let mut close = None;
            let mut j = i + 1;
            while j < b.len() {
                if b[j] == b'{' {
                    depth += 1;
                } else if b[j] == b'}' {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(j);
                        break;
                    }
                }
                j += 1;
            }
            let Some(close) = close else {
                return Err(TemplateError::Invalid(s.to_string()));
            };
            let inner = &s[i + 2..close];
            out.push_str(&braced(inner, s, env)?);
            i = close + 1;
            lit = i;
        } else {
            // `$` followed by anything else is kept as written
            i += 1;
        }
    }
    out.push_str(&s[lit..]);
    Ok(out)
}

fn braced(inner: &str, whole: &str, env: &mut Env) -> Result<String, TemplateError> {
    let b = inner.as_bytes();
    if b.is_empty() || !is_name_start(b[0]) {
        return Err(TemplateError::Invalid(whole.to_string()));
    }
    let mut j = 1;
    while j < b.len() && is_name(b[j]) {
        j += 1;
    }
    let name = &inner[..j];
    let rest = &inner[j..];
    if rest.is_empty() {
        return Ok(match env.get(name) {
            Some(v) => v.to_string(),
            None => {
                env.unset.push(name.to_string());
                String::new()
            }
        });
    }
    let (colon, op, arg) = if let Some(r) = rest.strip_prefix(':') {
        let Some(op) = r.chars().next() else {
            return Err(TemplateError::Invalid(whole.to_string()));
        };
        (true, op, &r[1..])
    } else {
        (false, rest.chars().next().unwrap_or(' '), &rest[1..])
    };
    let value = env.get(name).map(str::to_string);
    match op {
        '-' => match value {
            Some(v) if !(colon && v.is_empty()) => Ok(v),
            _ => substitute(arg, env),
        },
        '+' => match value {
            Some(v) if !(colon && v.is_empty()) => substitute(arg, env),
            Some(v) => Ok(v),
            None => Ok(String::new()),
        },
        '?' => match value {
            Some(v) if !(colon && v.is_empty()) => Ok(v),
            _ => Err(TemplateError::Required { var: name.to_string(), reason: substitute(arg, env)? }),
        },
        _ => Err(TemplateError::Invalid(whole.to_string())),
    }
}

/// Interpolates every string value under `node` (keys are left alone); `path` names the node
/// for errors.
pub fn interpolate(node: &mut Node, path: &str, env: &mut Env) -> Result<()> {
    match &mut node.v {
        Value::Str(s) if s.contains('$') => match substitute(s, env) {
            Ok(v) => *s = v,
            Err(e) => return Err(LoadError::at(&node.pos, path, e.to_string())),
        },
        Value::Seq(items) => {
            for (i, it) in items.iter_mut().enumerate() {
                interpolate(it, &format!("{path}[{i}]"), env)?;
            }
        }
        Value::Map(m) => {
            for (k, v) in m.0.iter_mut() {
                let p = if path.is_empty() { k.name.clone() } else { format!("{path}.{}", k.name) };
                interpolate(v, &p, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(s: &str, vars: &[(&str, &str)]) -> Result<String, TemplateError> {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut env = Env::new(&m);
        substitute(s, &mut env)
    }

    #[test]
    fn all_forms() {
        let v = [("A", "a"), ("E", "")];
        assert_eq!(sub("$A ${A} $$A $$", &v).unwrap(), "a a $A $");
        assert_eq!(sub("${E:-d} ${E-d} ${U:-d} ${U-d}", &v).unwrap(), "d  d d");
        assert_eq!(sub("${A:+r} ${E:+r} ${E+r} ${U+r}", &v).unwrap(), "r  r ");
        assert_eq!(sub("${U:-${A}-x}", &v).unwrap(), "a-x");
        assert_eq!(sub("${U:-${U2:-deep}}", &v).unwrap(), "deep");
        assert_eq!(sub("x${A}y$Az", &v).unwrap(), "xay");
        assert_eq!(sub("$1 $ 5$", &v).unwrap(), "$1 $ 5$");
        assert_eq!(sub("${A?e} ${E?e}", &v).unwrap(), "a ");
    }

    #[test]
    fn required_and_invalid() {
        let v = [("E", "")];
        assert_eq!(sub("${E:?must be set}", &v).unwrap_err(), TemplateError::Required { var: "E".into(), reason: "must be set".into() });
        assert!(matches!(sub("${U?}", &v).unwrap_err(), TemplateError::Required { .. }));
        assert!(matches!(sub("${", &v).unwrap_err(), TemplateError::Invalid(_)));
        assert!(matches!(sub("${A", &v).unwrap_err(), TemplateError::Invalid(_)));
        assert!(matches!(sub("${1}", &v).unwrap_err(), TemplateError::Invalid(_)));
        assert!(matches!(sub("${A:x}", &v).unwrap_err(), TemplateError::Invalid(_)));
        assert!(matches!(sub("${}", &v).unwrap_err(), TemplateError::Invalid(_)));
    }

    #[test]
    fn unset_names_are_reported() {
        let m = HashMap::new();
        let mut env = Env::new(&m);
        assert_eq!(substitute("${X}:$Y", &mut env).unwrap(), ":");
        assert_eq!(env.unset, vec!["X".to_string(), "Y".to_string()]);
    }
}
