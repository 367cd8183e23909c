//! Runs every case of the vendored compose corpus through `berth config --format json` and
//! compares with Docker Compose v2.40.3's output as the corpus README says: both JSON documents
//! equal once keys holding null, {} or [] are dropped, the corpus root written `@CORPUS@`; a case
//! whose golden is an error must make berth fail. Fails below 95 % (the acceptance bar).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

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

#[test]
fn corpus_conformance() {
    let corpus: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose-corpus");
    let corpus = corpus.canonicalize().expect("corpus folder");
    let cases: Vec<Value> = serde_json::from_slice(&std::fs::read(corpus.join("cases.json")).unwrap()).unwrap();
    let bin = env!("CARGO_BIN_EXE_berth");
    let mut ok = 0;
    let mut failures = Vec::new();
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let wd = corpus.join("trees").join(c["tree"].as_str().unwrap()).join(c["dir"].as_str().unwrap());
        let mut cmd = Command::new(bin);
        for f in c["files"].as_array().into_iter().flatten() {
            cmd.arg("-f").arg(f.as_str().unwrap());
        }
        cmd.args(["config", "--format", "json"]).current_dir(&wd).env_clear();
        cmd.env("PATH", std::env::var("PATH").unwrap_or_default()).env("HOME", "/nonexistent");
        let out = cmd.output().expect("run berth");
        let golden = corpus.join("golden").join(format!("{name}.json"));
        if !golden.exists() {
            if out.status.code() == Some(1) {
                ok += 1;
            } else {
                failures.push(format!("{name}: accepted a file Docker Compose refuses"));
            }
            continue;
        }
        if !out.status.success() {
            failures.push(format!("{name}: exit {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stderr)));
            continue;
        }
        let text = String::from_utf8_lossy(&out.stdout).replace(corpus.to_str().unwrap(), "@CORPUS@");
        let mine: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: output is not JSON: {e}"));
                continue;
            }
        };
        let want: Value = serde_json::from_slice(&std::fs::read(&golden).unwrap()).unwrap();
        if prune(mine.clone()) == prune(want.clone()) {
            ok += 1;
        } else {
            failures.push(format!("{name}: differs\n got: {}\nwant: {}", prune(mine), prune(want)));
        }
    }
    let total = cases.len();
    println!("conformance: {ok}/{total} cases match");
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(ok * 100 >= total * 95, "only {ok}/{total} corpus cases match:\n{}", failures.join("\n"));
}
