//! Runs every case of the vendored compose corpora through `berth config --format json` and
//! compares with Docker Compose v2.40.3's output as the corpus README says: both JSON documents
//! equal once keys holding null, {} or [] are dropped, the corpus root written `@CORPUS@`; a case
//! whose golden is an error must make berth fail.
//!
//! Two corpora: `compose-corpus` (awesome-compose and compose-go's test data) and `compose-e2e`
//! (Docker Compose's own end-to-end fixtures). Every case must match, except those listed with a
//! reason in `fixtures/conformance-allow.txt`; a listed case that matches fails the test too, so
//! that the list never hides a fixed case.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const CORPORA: [&str; 2] = ["compose-corpus", "compose-e2e"];

fn prune(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, prune(v)))
                .filter(|(_, v)| {
                    !(v.is_null() || v.as_object().is_some_and(|o| o.is_empty()) || v.as_array().is_some_and(|a| a.is_empty()))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(prune).collect()),
        other => other,
    }
}

/// The allow-list: case name to reason.
fn allowed(fixtures: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(fixtures.join("conformance-allow.txt")).expect("conformance-allow.txt");
    let mut out = BTreeMap::new();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (name, reason) = l.split_once(": ").unwrap_or_else(|| panic!("conformance-allow.txt:{}: write NAME: reason", i + 1));
        assert!(!reason.trim().is_empty(), "conformance-allow.txt:{}: {name} needs a reason", i + 1);
        out.insert(name.to_string(), reason.to_string());
    }
    out
}

/// Runs one case; `Err` says how berth's output differs from the golden.
fn check_case(bin: &str, corpus: &Path, c: &Value) -> Result<(), String> {
    let name = c["name"].as_str().unwrap();
    let wd = corpus.join("trees").join(c["tree"].as_str().unwrap()).join(c["dir"].as_str().unwrap());
    let mut cmd = Command::new(bin);
    for f in c["files"].as_array().into_iter().flatten() {
        cmd.arg("-f").arg(f.as_str().unwrap());
    }
    cmd.args(["config", "--format", "json"]).current_dir(&wd).env_clear();
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default()).env("HOME", "/nonexistent");
    let out = cmd.output().expect("run berth");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{name}: berth panicked: {stderr}");
    let golden = corpus.join("golden").join(format!("{name}.json"));
    if !golden.exists() {
        return match out.status.code() {
            Some(1) => Ok(()),
            _ => Err("accepted a file Docker Compose refuses".into()),
        };
    }
    if !out.status.success() {
        return Err(format!("exit {:?}: {stderr}", out.status.code()));
    }
    let text = String::from_utf8_lossy(&out.stdout).replace(corpus.to_str().unwrap(), "@CORPUS@");
    let mine: Value = serde_json::from_str(&text).map_err(|e| format!("output is not JSON: {e}"))?;
    let want: Value = serde_json::from_slice(&std::fs::read(&golden).unwrap()).unwrap();
    if prune(mine.clone()) == prune(want.clone()) { Ok(()) } else { Err(format!("differs\n got: {}\nwant: {}", prune(mine), prune(want))) }
}

#[test]
fn corpus_conformance() {
    let fixtures: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let allow = allowed(&fixtures);
    let bin = env!("CARGO_BIN_EXE_berth");
    let mut failures = Vec::new();
    let mut seen = Vec::new();
    let mut total = 0;
    let mut ok = 0;
    for corpus_name in CORPORA {
        let corpus = fixtures.join(corpus_name).canonicalize().expect("corpus folder");
        let cases: Vec<Value> = serde_json::from_slice(&std::fs::read(corpus.join("cases.json")).unwrap()).unwrap();
        let (mut n, mut good) = (0, 0);
        for c in &cases {
            let name = c["name"].as_str().unwrap().to_string();
            n += 1;
            let r = check_case(bin, &corpus, c);
            match (&r, allow.get(&name)) {
                (Ok(()), None) => good += 1,
                (Ok(()), Some(_)) => failures.push(format!("{name}: matches now: remove it from conformance-allow.txt")),
                (Err(e), None) => failures.push(format!("{name}: {e}")),
                (Err(e), Some(reason)) => println!("allowed {name}: {reason}\n  ({})", e.lines().next().unwrap_or("")),
            }
            seen.push(name);
        }
        println!("conformance {corpus_name}: {good}/{n} cases match");
        total += n;
        ok += good;
    }
    for name in allow.keys() {
        if !seen.contains(name) {
            failures.push(format!("{name}: in conformance-allow.txt but in no corpus: remove it"));
        }
    }
    println!("conformance: {ok}/{total} cases match, {} allowed", allow.len());
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(failures.is_empty(), "{} corpus cases fail:\n{}", failures.len(), failures.join("\n"));
}
