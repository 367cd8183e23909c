//! The crate's layering, checked on its source so that it stays one you could split into crates:
//!
//! ```text
//!   util, labels  <-  state  <-  engine, net  <-  project, objects, system  <-  bridge  <-  cli, api
//! ```
//!
//! with `net` <- `engine::runtime` (and the supervisor and the builder's RUN steps, which run
//! containers) the only edge between `engine` and `net`, and inside the engine the supervisor
//! building on the runtime, never the reverse. Every `crate::...` and `super::...` path in
//! `src/` (comments and strings left out, `use` groups expanded) is an import; this test fails on
//! any import the table below does not allow, naming the file and what to do.
//! See "Layers" in docs/design.md.

use std::path::{Path, PathBuf};

/// The top-level modules, bottom first.
const MODULES: &[&str] = &["util", "labels", "state", "engine", "net", "project", "objects", "system", "bridge", "cli", "api"];

/// Allowed imports between different top-level modules: (importer, imported, why). A rule
/// covers every module below the paths it names (`engine::runtime` covers
/// `engine::runtime::ops`).
const ALLOWED: &[(&str, &str, &str)] = &[
    ("state", "util", "the state root writes through util"),
    ("engine", "util", "the engine is built on util"),
    ("engine", "state", "the engine keeps its state under the root"),
    ("engine", "labels", "the runtime passes a container's project and service to the network"),
    ("engine::runtime", "net", "the runtime attaches a container to its networks"),
    ("engine::supervisor", "net", "the supervisor holds the published ports and their relays"),
    ("engine::build", "net", "RUN steps are containers on the build network"),
    ("net", "util", "the network is built on util"),
    ("net", "state", "the network keeps its state under the root"),
    ("net", "labels", "networks carry compose's labels"),
    ("project", "util", ""),
    ("project", "state", ""),
    ("project", "labels", ""),
    ("project", "engine", "the orchestration drives the engine"),
    ("project", "net", "the orchestration creates networks"),
    ("objects", "util", ""),
    ("objects", "state", ""),
    ("objects", "labels", ""),
    ("objects", "engine", "standalone containers are engine operations on a spec built from docker's flags"),
    ("objects", "net", "a standalone container's network is made on first use (docker's default bridge)"),
    ("system", "util", ""),
    ("system", "state", ""),
    ("system", "engine", "teardown stops the root's containers"),
    ("system", "net", "teardown removes the root's networks"),
    ("bridge", "util", ""),
    ("bridge", "project", "the conversion reads the loaded compose model"),
    ("bridge", "engine::image", "a service's ports include what its image exposes, when the store has it"),
    ("bridge", "state", "the image store lives under the state root"),
    ("cli", "bridge", ""),
    ("cli", "util", ""),
    ("cli", "state", ""),
    ("cli", "labels", ""),
    ("cli", "engine", ""),
    ("cli", "net", ""),
    ("cli", "project", ""),
    ("cli", "system", ""),
    ("cli", "objects", ""),
    ("cli", "api", "`berth system service` starts the API server"),
    ("api", "util", ""),
    ("api", "state", ""),
    ("api", "engine", "every endpoint calls the engine's library functions"),
    ("api", "net", "network endpoints read the network layer"),
    ("api", "cli::render", "container status words and port lists are shared by both front ends"),
    ("api", "cli::image", "image inspect's JSON (to move to cli::render with the next endpoints)"),
    ("api", "cli::network", "network inspect's JSON (to move to cli::render with the next endpoints)"),
    ("api", "cli::volume", "volume inspect's JSON (to move to cli::render with the next endpoints)"),
];

/// Imports refused inside one top-level module: (importer, imported, why).
const FORBIDDEN: &[(&str, &str, &str)] = &[(
    "engine::runtime",
    "engine::supervisor",
    "the supervisor builds on the runtime; what both need (the ctl protocol) lives in engine::runtime",
)];

#[test]
fn no_layer_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "the source tree was not found at {}", src.display());
    let mut errors = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        if rel == Path::new("main.rs") {
            continue;
        }
        let module = module_path(rel);
        let Some(top) = module.first() else { continue };
        if !MODULES.contains(&top.as_str()) {
            errors.push(format!("{}: top-level module {top:?} is not in the layer table of tests/layers.rs: add it", rel.display()));
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for target in imports(&code_only(&text), &module) {
            if let Some(why) = refused(&module, &target) {
                errors.push(format!("{}: {} imports {}: {why}", rel.display(), module.join("::"), target.join("::")));
            }
        }
    }
    errors.sort();
    errors.dedup();
    assert!(errors.is_empty(), "imports against the layering (docs/design.md, Layers):\n{}", errors.join("\n"));
}

/// Why the import of `target` by `module` is refused, if it is.
fn refused(module: &[String], target: &[String]) -> Option<String> {
    let (from, to) = (&module[0], target.first()?);
    if !MODULES.contains(&to.as_str()) {
        // A path into something else (an item of lib.rs, a macro): not a module edge.
        return None;
    }
    if from == to {
        return FORBIDDEN
            .iter()
            .find(|(f, t, _)| under(module, f) && under(target, t))
            .map(|(f, t, why)| format!("{f} may not import {t}: {why}"));
    }
    if ALLOWED.iter().any(|(f, t, _)| under(module, f) && under(target, t)) {
        return None;
    }
    let may: Vec<&str> = ALLOWED.iter().filter(|(f, _, _)| under(module, f)).map(|(_, t, _)| *t).collect();
    Some(format!(
        "{from} is below {to} (it may import only {}); move the code to the layer that owns it, or pass what it needs in",
        if may.is_empty() { "nothing of berth".to_string() } else { may.join(", ") }
    ))
}

/// Whether `path` is `prefix` or inside it.
fn under(path: &[String], prefix: &str) -> bool {
    let p: Vec<&str> = prefix.split("::").collect();
    path.len() >= p.len() && path.iter().zip(&p).all(|(a, b)| a == b)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module a file under src/ defines: `engine/runtime/ops.rs` is `engine::runtime::ops`,
/// `engine/mod.rs` is `engine`, `lib.rs` the crate root.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap_or_default();
    match last.as_str() {
        "mod.rs" | "lib.rs" => {}
        f => parts.push(f.trim_end_matches(".rs").to_string()),
    }
    parts
}

/// The source with comments, strings and char literals blanked out.
fn code_only(s: &str) -> String {
    let c: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '/' if c.get(i + 1) == Some(&'/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if c.get(i + 1) == Some(&'*') => {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            'r' if (c.get(i + 1) == Some(&'"') || c.get(i + 1) == Some(&'#')) && (i == 0 || !is_ident(c[i - 1])) => {
                let mut j = i + 1;
                let mut hashes = 0;
                while c.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if c.get(j) != Some(&'"') {
                    out.push(c[i]);
                    i += 1;
                    continue;
                }
                j += 1;
                while j < c.len() && !(c[j] == '"' && (1..=hashes).all(|k| c.get(j + k) == Some(&'#'))) {
                    j += 1;
                }
                i = j + 1 + hashes;
                out.push_str("\"\"");
            }
            '"' => {
                i += 1;
                while i < c.len() && c[i] != '"' {
                    i += if c[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            '\'' if c.get(i + 1) == Some(&'\\') => {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push(' ');
            }
            '\'' if c.get(i + 2) == Some(&'\'') => {
                i += 3;
                out.push(' ');
            }
            ch => {
                out.push(ch);
                i += 1;
            }
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every crate-level path `code` names, as segments from the crate root: `crate::a::b`, `use
/// crate::{a::b, c}` (expanded), and `super::...` resolved from `module`.
fn imports(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let starts_word = i == 0 || !(is_ident(c[i - 1]) || c[i - 1] == '$' || c[i - 1] == ':');
        if starts_word && word_at(&c, i, "crate::") {
            let (paths, end) = parse_tree(&c, i + "crate::".len());
            out.extend(paths);
            i = end;
        } else if starts_word && word_at(&c, i, "super::") {
            let mut base: Vec<String> = module.to_vec();
            let mut j = i;
            while word_at(&c, j, "super::") {
                base.pop();
                j += "super::".len();
            }
            let (paths, end) = parse_tree(&c, j);
            // Only a path that climbs to the crate root can cross modules.
            if base.is_empty() {
                out.extend(paths);
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

fn word_at(c: &[char], i: usize, w: &str) -> bool {
    w.chars().enumerate().all(|(k, ch)| c.get(i + k) == Some(&ch))
}

/// Parses a path or a `{...}` group at `i`; returns the paths and where they end.
fn parse_tree(c: &[char], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let skip_ws = |i: &mut usize| {
        while *i < c.len() && c[*i].is_whitespace() {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    if c.get(i) == Some(&'{') {
        i += 1;
        let mut out = Vec::new();
        loop {
            skip_ws(&mut i);
            match c.get(i) {
                None => return (out, i),
                Some('}') => return (out, i + 1),
                Some(',') => i += 1,
                _ => {
                    let (paths, end) = parse_tree(c, i);
                    out.extend(paths);
                    if end == i {
                        i += 1;
                    } else {
                        i = end;
                    }
                }
            }
        }
    }
    let mut seg = String::new();
    while i < c.len() && is_ident(c[i]) {
        seg.push(c[i]);
        i += 1;
    }
    if seg.is_empty() {
        return (vec![Vec::new()], i);
    }
    if word_at(c, i, "::") {
        let (rest, end) = parse_tree(c, i + 2);
        let paths = rest
            .into_iter()
            .map(|mut p| {
                p.insert(0, seg.clone());
                p
            })
            .collect();
        return (paths, end);
    }
    (vec![vec![seg]], i)
}

#[test]
fn the_checker_reads_paths_as_rust_does() {
    let m = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
    let code = code_only(
        "use crate::{engine::runtime::{self, ops}, net};\n// crate::cli::x\nlet s = \"crate::cli\"; let c = '\"'; \
         x = crate::project::load(&o); use super::super::util::fs; $crate::cli::y; r#\"crate::cli\"#;",
    );
    let found: Vec<String> = imports(&code, &m("engine::runtime")).iter().map(|p| p.join("::")).collect();
    assert_eq!(found, ["engine::runtime::self", "engine::runtime::ops", "net", "project::load", "util::fs"]);
    assert!(refused(&m("engine::runtime::ops"), &m("net::attach")).is_none());
    assert!(refused(&m("engine::image::store"), &m("net::attach")).is_some());
    assert!(refused(&m("engine::runtime::ops"), &m("engine::supervisor::main")).is_some());
    assert!(refused(&m("project::load"), &m("cli::GlobalOpts")).is_some());
    assert!(refused(&m("util::fs"), &m("state::StateRoot")).is_some());
    assert_eq!(module_path(Path::new("engine/runtime/mod.rs")), m("engine::runtime"));
    assert_eq!(module_path(Path::new("lib.rs")), Vec::<String>::new());
}
