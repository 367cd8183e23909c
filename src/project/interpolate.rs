//! Pass 2: interpolation of `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?error}`, `${VAR?error}`, `${VAR:+replacement}`, `${VAR+replacement}` (nested in the
//! defaults), and `$$` for a literal `$`, in every string value of the tree (never in keys), as the
//! compose-spec's 12-interpolation.md and Docker Compose define them.
//!
//! Interpolation is the one place where a few bytes of input can become gigabytes of output: a
//! `.env` chain `A=xx`, `B=${A}${A}`, `C=${B}${B}`... doubles at every line, and one big variable
//! referenced a thousand times multiplies. Every substitution therefore draws the bytes it inserts
//! from one [`Budget`] per load ([`MAX_INTERPOLATED`] in all), and defaults nest at most
//! [`MAX_NESTING`] deep, so that hostile input gets an error instead of the machine's memory or
//! stack. Docker Compose has no such bound; no real project comes near these.

use std::collections::HashMap;

use super::error::{LoadError, Result};
use super::yaml::{Node, Value};

/// At most this many bytes may be inserted by substitutions in one load (every file, env file
/// and value together).
pub(crate) const MAX_INTERPOLATED: usize = 32 << 20;
/// `${A:-${B:-...}}` may nest this deep.
pub(crate) const MAX_NESTING: usize = 64;

/// What went wrong in a template; the caller adds the place.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateError {
    /// `${` without a valid `NAME[op...]}` after it.
    Invalid(String),
    /// `${VAR:?msg}` or `${VAR?msg}` with the variable missing.
    Required { var: String, reason: String },
    /// The substitutions of the load went over [`MAX_INTERPOLATED`] bytes.
    TooLarge { var: String },
    /// Defaults nested deeper than [`MAX_NESTING`].
    TooDeep,
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
            TemplateError::TooLarge { var } => write!(
                f,
                "interpolation expands to more than {} MiB (at ${{{var}}}; a variable built from itself again and again?): \
                 use fewer or smaller variables, or write $$ for a literal $",
                MAX_INTERPOLATED >> 20
            ),
            TemplateError::TooDeep => {
                write!(f, "interpolation defaults nest deeper than {MAX_NESTING} levels: write fewer nested ${{...}}")
            }
        }
    }
}

/// The bytes that substitutions may still insert in this load.
#[derive(Debug, Clone)]
pub struct Budget {
    left: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { left: MAX_INTERPOLATED }
    }
}

impl Budget {
    pub fn new(limit: usize) -> Budget {
        Budget { left: limit }
    }
    fn take(&mut self, n: usize, var: &str) -> Result<(), TemplateError> {
        match self.left.checked_sub(n) {
            Some(l) => {
                self.left = l;
                Ok(())
            }
            None => {
                self.left = 0;
                Err(TemplateError::TooLarge { var: var.to_string() })
            }
        }
    }
}

/// A source of variables.
pub trait Vars {
    fn var(&self, k: &str) -> Option<&str>;
}

impl Vars for HashMap<String, String> {
    fn var(&self, k: &str) -> Option<&str> {
        self.get(k).map(String::as_str)
    }
}

impl Vars for std::collections::BTreeMap<String, Option<String>> {
    fn var(&self, k: &str) -> Option<&str> {
        self.get(k).and_then(|v| v.as_deref())
    }
}

/// Two sources: the first one wins.
pub(crate) struct Layered<'a>(pub &'a dyn Vars, pub &'a dyn Vars);

impl Vars for Layered<'_> {
    fn var(&self, k: &str) -> Option<&str> {
        self.0.var(k).or_else(|| self.1.var(k))
    }
}

/// Where variables come from, the names read that were unset (for warnings), and the load's
/// budget.
pub struct Env<'a> {
    vars: &'a dyn Vars,
    pub unset: Vec<String>,
    budget: &'a mut Budget,
}

impl<'a> Env<'a> {
    pub fn new(vars: &'a dyn Vars, budget: &'a mut Budget) -> Self {
        Env { vars, unset: Vec::new(), budget }
    }
    fn get(&self, k: &str) -> Option<&'a str> {
        self.vars.var(k)
    }
    /// The value of `name` inserted into `out` (charged to the budget), or the name recorded as unset.
    fn insert(&mut self, name: &str, out: &mut String) -> Result<(), TemplateError> {
        match self.get(name) {
            Some(v) => {
                self.budget.take(v.len(), name)?;
                out.push_str(v);
            }
            None => self.unset.push(name.to_string()),
        }
        Ok(())
    }
}

fn is_name_start(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphabetic()
}
fn is_name(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphanumeric()
}

/// Substitutes the variables in `s`.
pub(crate) fn substitute(s: &str, env: &mut Env) -> Result<String, TemplateError> {
    substitute_at(s, env, 0)
}

fn substitute_at(s: &str, env: &mut Env, depth: usize) -> Result<String, TemplateError> {
    if depth > MAX_NESTING {
        return Err(TemplateError::TooDeep);
    }
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
            env.insert(&s[start..j], &mut out)?;
            i = j;
            lit = i;
        } else if n == b'{' {
            out.push_str(&s[lit..i]);
            // the matching close brace, counting nested `{`
            let mut depth_b = 0;
            let mut close = None;
            let mut j = i + 1;
            while j < b.len() {
                if b[j] == b'{' {
                    depth_b += 1;
                } else if b[j] == b'}' {
                    depth_b -= 1;
                    if depth_b == 0 {
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
            braced(inner, s, env, depth, &mut out)?;
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

fn braced(inner: &str, whole: &str, env: &mut Env, depth: usize, out: &mut String) -> Result<(), TemplateError> {
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
        return env.insert(name, out);
    }
    // `:` then the operator, or the operator alone; the operator is one ASCII character
    let (colon, rest) = match rest.strip_prefix(':') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let op = rest.as_bytes().first().copied().unwrap_or(b' ');
    let arg = rest.get(1..).unwrap_or("");
    let value = env.get(name);
    let set = value.is_some_and(|v| !(colon && v.is_empty()));
    match op {
        b'-' | b'?' if set => env.insert(name, out),
        b'-' => {
            out.push_str(&substitute_at(arg, env, depth + 1)?);
            Ok(())
        }
        b'+' if set => {
            out.push_str(&substitute_at(arg, env, depth + 1)?);
            Ok(())
        }
        // `${E:+x}` with E set but empty gives E's (empty) value
        b'+' => Ok(()),
        b'?' => Err(TemplateError::Required { var: name.to_string(), reason: substitute_at(arg, env, depth + 1)? }),
        _ => Err(TemplateError::Invalid(whole.to_string())),
    }
}

/// A variable a compose file reads, as `config --variables` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Variable {
    pub name: String,
    pub default_value: String,
    pub presence_value: String,
    pub required: bool,
}

/// The variables read by the string values under `node` (keys are never interpolated), with
/// their default (`:-`, `-`), alternate (`:+`, `+`) value and whether they are required (`:?`,
/// `?`), as compose's `ExtractVariables` finds them: a later use of a name replaces an earlier
/// one, and defaults and alternates are searched too.
pub fn variables(node: &Node, out: &mut std::collections::BTreeMap<String, Variable>) {
    match &node.v {
        Value::Str(s) => extract(s, out, 0),
        Value::Seq(items) => items.iter().for_each(|i| variables(i, out)),
        Value::Map(m) => m.0.iter().for_each(|(_, v)| variables(v, out)),
        _ => {}
    }
}

fn extract(s: &str, out: &mut std::collections::BTreeMap<String, Variable>, depth: usize) {
    if depth > MAX_NESTING {
        return;
    }
    let b = s.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        let n = b[i + 1];
        if n == b'$' {
            i += 2;
        } else if is_name_start(n) {
            let mut j = i + 1;
            while j < b.len() && is_name(b[j]) {
                j += 1;
            }
            let name = s[i + 1..j].to_string();
            out.insert(name.clone(), Variable { name, ..Default::default() });
            i = j;
        } else if n == b'{' {
            let mut depth_b = 0;
            let mut close = None;
            for (j, c) in b.iter().enumerate().skip(i + 1) {
                match c {
                    b'{' => depth_b += 1,
                    b'}' => {
                        depth_b -= 1;
                        if depth_b == 0 {
                            close = Some(j);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let Some(close) = close else { return };
            let inner = &s[i + 2..close];
            let end = inner.bytes().position(|c| !is_name(c)).unwrap_or(inner.len());
            if end > 0 {
                let (name, rest) = inner.split_at(end);
                let mut v = Variable { name: name.to_string(), ..Default::default() };
                let arg = |p: &str| rest.strip_prefix(p).map(str::to_string);
                if rest.starts_with(":?") || rest.starts_with('?') {
                    v.required = true;
                } else if let Some(d) = arg(":-").or_else(|| arg("-")) {
                    v.default_value = d;
                } else if let Some(p) = arg(":+").or_else(|| arg("+")) {
                    v.presence_value = p;
                }
                let nested = [v.default_value.clone(), v.presence_value.clone()];
                out.insert(v.name.clone(), v);
                for n in nested.iter().filter(|n| !n.is_empty()) {
                    extract(n, out, depth + 1);
                }
            }
            i = close + 1;
        } else {
            i += 1;
        }
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
        let mut b = Budget::default();
        let mut env = Env::new(&m, &mut b);
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
        let mut b = Budget::default();
        let mut env = Env::new(&m, &mut b);
        assert_eq!(substitute("${X}:$Y", &mut env).unwrap(), ":");
        assert_eq!(env.unset, vec!["X".to_string(), "Y".to_string()]);
    }

    /// Crashers: a non-ASCII character after the name, or as the operator, panicked (a byte slice
    /// inside a UTF-8 character).
    #[test]
    fn non_ascii_after_the_name_is_an_error_not_a_panic() {
        for t in ["${Aé}", "${A:é}", "${A:-é}x", "${é}", "${A\u{1F600}}", "$é", "${A-\u{0}}"] {
            let _ = sub(t, &[("A", "a")]);
        }
        assert!(matches!(sub("${Aé}", &[]).unwrap_err(), TemplateError::Invalid(_)));
        assert!(matches!(sub("${A:é}", &[("A", "a")]).unwrap_err(), TemplateError::Invalid(_)));
        assert_eq!(sub("${U:-é}x", &[]).unwrap(), "éx");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("{}x{}", "${U:-".repeat(10_000), "}".repeat(10_000));
        assert_eq!(sub(&deep, &[]).unwrap_err(), TemplateError::TooDeep);
        let ok = format!("{}x{}", "${U:-".repeat(MAX_NESTING), "}".repeat(MAX_NESTING));
        assert_eq!(sub(&ok, &[]).unwrap(), "x");
    }

    #[test]
    fn the_budget_bounds_what_substitution_inserts() {
        let m: HashMap<String, String> = [("A".to_string(), "x".repeat(1000))].into_iter().collect();
        let mut b = Budget::new(10_000);
        let mut env = Env::new(&m, &mut b);
        assert_eq!(substitute("${A}$A", &mut env).unwrap().len(), 2000);
        let e = substitute(&"${A}".repeat(9), &mut env).unwrap_err();
        assert_eq!(e, TemplateError::TooLarge { var: "A".into() });
        assert!(e.to_string().contains("more than 32 MiB"), "{e}");
    }

    #[test]
    fn variables_with_defaults_alternates_and_requirements() {
        let f = std::sync::Arc::new(std::path::PathBuf::from("v.yaml"));
        let n =
            super::super::yaml::parse("a: ${IMG:-busybox}:${TAG?tag}\nb: [$$X, $Y, \"${Z:+on} ${D-${E:-e}}\"]\n", &f).unwrap().remove(0);
        let mut out = std::collections::BTreeMap::new();
        variables(&n, &mut out);
        let names: Vec<&str> = out.keys().map(String::as_str).collect();
        assert_eq!(names, ["D", "E", "IMG", "TAG", "Y", "Z"]);
        assert_eq!(out["IMG"].default_value, "busybox");
        assert!(out["TAG"].required);
        assert_eq!(out["Z"].presence_value, "on");
        assert_eq!(out["D"].default_value, "${E:-e}");
        assert_eq!(out["E"].default_value, "e");
    }
}
