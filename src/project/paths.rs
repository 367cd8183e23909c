//! Relative paths in a (canonical) document made absolute against a base directory: build
//! contexts, env files, bind mount sources, secret and config files, extends and include files.

use std::path::{Path, PathBuf};

use super::canonical::clean_path;
use super::yaml::{Node, Value};

/// `~` expanded with `HOME` from `env`, then joined to `base` when relative; Windows absolute
/// paths (`C:\x`, `\\server`) are kept.
pub fn abs(p: &str, base: &Path, home: Option<&str>) -> String {
    let mut s = p.to_string();
    if let Some(rest) = s.strip_prefix('~') {
        if let Some(h) = home {
            s = clean_path(&format!("{h}/{rest}"));
        }
    }
    if s.is_empty() || s.starts_with('/') || is_windows_abs(&s) {
        return s;
    }
    clean_path(&format!("{}/{}", base.display(), s))
}

/// As [`abs`], but an empty path is the base itself (compose's `maybeUnixPath`, used for bind
/// mount sources, secret and config files, ssh keys and the `device` of a local bind volume).
pub(crate) fn abs_or_base(p: &str, base: &Path, home: Option<&str>) -> String {
    if p.is_empty() { clean_path(&base.display().to_string()) } else { abs(p, base, home) }
}

fn is_windows_abs(s: &str) -> bool {
    let b = s.as_bytes();
    s.starts_with("\\\\") || (b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b[2] == b'\\' || b[2] == b'/'))
}

fn is_remote_context(s: &str) -> bool {
    s.contains("://")
        || s.starts_with("service:")
        || ["https://", "http://", "git://", "ssh://", "github.com/", "git@"].iter().any(|p| s.starts_with(p))
}

fn fix(n: &mut Node, f: impl Fn(&str) -> String) {
    if let Value::Str(s) = &mut n.v {
        *s = f(s);
    }
}

/// Resolves every relative path of the document against `base`.
pub fn resolve(root: &mut Node, base: &Path, home: Option<&str>) {
    let a = |s: &str| abs(s, base, home);
    let Some(m) = root.as_map_mut() else { return };
    if let Some(services) = m.get_mut("services").and_then(Node::as_map_mut) {
        for (_, svc) in services.0.iter_mut() {
            resolve_service(svc, base, home);
        }
    }
    for top in ["secrets", "configs"] {
        if let Some(res) = m.get_mut(top).and_then(Node::as_map_mut) {
            for (_, r) in res.0.iter_mut() {
                if let Some(f) = r.as_map_mut().and_then(|rm| rm.get_mut("file")) {
                    fix(f, a);
                }
            }
        }
    }
    if let Some(vols) = m.get_mut("volumes").and_then(Node::as_map_mut) {
        for (_, v) in vols.0.iter_mut() {
            let Some(vm) = v.as_map_mut() else { continue };
            if vm.get("driver").and_then(Node::as_str) != Some("local") {
                continue;
            }
            if let Some(opts) = vm.get_mut("driver_opts").and_then(Node::as_map_mut) {
                if opts.get("o").and_then(Node::as_str) == Some("bind") {
                    if let Some(d) = opts.get_mut("device") {
                        fix(d, |s| abs_or_base(s, base, home));
                    }
                }
            }
        }
    }
}

/// Resolves the relative paths of one service against `base`.
pub(crate) fn resolve_service(svc: &mut Node, base: &Path, home: Option<&str>) {
    let a = |s: &str| abs(s, base, home);
    let Some(sm) = svc.as_map_mut() else { return };
    if let Some(b) = sm.get_mut("build").and_then(Node::as_map_mut) {
        if let Some(c) = b.get_mut("context") {
            fix(c, |s| if is_remote_context(s) { s.to_string() } else { a(s) });
        }
        if let Some(ac) = b.get_mut("additional_contexts").and_then(Node::as_map_mut) {
            for (_, c) in ac.0.iter_mut() {
                fix(c, |s| if is_remote_context(s) { s.to_string() } else { a(s) });
            }
        }
        if let Some(ssh) = b.get_mut("ssh").and_then(Node::as_map_mut) {
            for (_, c) in ssh.0.iter_mut() {
                fix(c, a);
            }
        }
    }
    if let Some(Value::Seq(items)) = sm.get_mut("env_file").map(|n| &mut n.v) {
        for it in items.iter_mut() {
            if let Some(p) = it.as_map_mut().and_then(|m| m.get_mut("path")) {
                fix(p, a);
            }
        }
    }
    if let Some(Value::Seq(items)) = sm.get_mut("label_file").map(|n| &mut n.v) {
        for it in items.iter_mut() {
            fix(it, a);
        }
    }
    if let Some(f) = sm.get_mut("extends").and_then(Node::as_map_mut).and_then(|e| e.get_mut("file")) {
        fix(f, a);
    }
    if let Some(Value::Seq(items)) = sm.get_mut("volumes").map(|n| &mut n.v) {
        for it in items.iter_mut() {
            let Some(vm) = it.as_map_mut() else { continue };
            if vm.get("type").and_then(Node::as_str) != Some("bind") {
                continue;
            }
            if let Some(src) = vm.get_mut("source") {
                fix(src, a);
            }
        }
    }
    if let Some(Value::Seq(items)) = sm.get_mut("develop").and_then(Node::as_map_mut).and_then(|d| d.get_mut("watch")).map(|n| &mut n.v) {
        for it in items.iter_mut() {
            if let Some(p) = it.as_map_mut().and_then(|m| m.get_mut("path")) {
                fix(p, a);
            }
        }
    }
}

/// Gives every `build` without a context in `root`'s services the context `base` (for documents
/// loaded from another folder: extended services and included projects).
pub(crate) fn default_contexts(root: &mut Node, base: &Path) {
    let Some(services) = root.as_map_mut().and_then(|m| m.get_mut("services")).and_then(Node::as_map_mut) else {
        return;
    };
    for (_, svc) in services.0.iter_mut() {
        default_context(svc, base);
    }
}

/// Gives the service's `build` the context `base` when it has none.
pub(crate) fn default_context(svc: &mut Node, base: &Path) {
    if let Some(b) = svc.as_map_mut().and_then(|m| m.get_mut("build")).and_then(Node::as_map_mut) {
        if !b.contains("context") {
            let pos = b.0.first().map(|(k, _)| k.pos.clone()).unwrap_or_default();
            b.insert("context", Node::str(base.display().to_string(), pos));
        }
    }
}

/// `path` made absolute against the current directory, cleaned (no symlinks resolved).
pub fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    let s = path.to_string_lossy();
    PathBuf::from(abs(&s, cwd, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths() {
        let b = Path::new("/p/q");
        assert_eq!(abs("./a/../b", b, None), "/p/q/b");
        assert_eq!(abs("/x/y/", b, None), "/x/y/");
        assert_eq!(abs("~/d", b, Some("/home/u")), "/home/u/d");
        assert_eq!(abs("C:\\docker\\project", b, None), "C:\\docker\\project");
        assert_eq!(abs("..", b, None), "/p");
    }
}
