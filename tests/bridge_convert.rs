//! `berth bridge convert` as a user runs it: compose's own end-to-end fixture converts to exactly
//! compose's output, both transformations; every case of the compose corpus that `config` accepts
//! converts, and every manifest validates against the Kubernetes OpenAPI schema (the Helm chart
//! rendered with its default values); what Kubernetes cannot run as written warns, or fails with
//! `--strict` and writes nothing. Offline: no cluster, no registry, no image.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::TestRoot;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bridge")
}

fn run(root: &TestRoot, dir: &Path, args: &[&str]) -> Output {
    root.cmd(args).current_dir(dir).output().expect("run berth")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every file under `dir`, by path relative to it.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// `diff -r`: the same files, byte for byte.
fn assert_same_tree(got: &Path, want: &Path) {
    let (g, w) = (tree(got), tree(want));
    let gk: Vec<&String> = g.keys().collect();
    let wk: Vec<&String> = w.keys().collect();
    assert_eq!(gk, wk, "the files differ from {}", want.display());
    for (k, v) in &w {
        assert_eq!(text(&g[k]), text(v), "{k} differs from {}", want.join(k).display());
    }
}

fn convert_fixture(transformation: &str, expected: &str) {
    let root = TestRoot::new();
    let out = root.scratch().join("out");
    let o = run(
        &root,
        &fixtures(),
        &[
            "-f",
            "compose.yaml",
            "--project-name",
            "bridge",
            "bridge",
            "convert",
            "--output",
            out.to_str().unwrap(),
            "--transformation",
            transformation,
        ],
    );
    assert!(o.status.success(), "convert failed: {}", text(&o.stderr));
    assert_same_tree(&out, &fixtures().join(expected));
}

#[test]
fn compose_fixture_kubernetes_is_identical() {
    convert_fixture("kubernetes", "expected-kubernetes");
    // The name compose's e2e test gives the transformation works as well.
    convert_fixture("docker/compose-bridge-kubernetes:v0.0.3", "expected-kubernetes");
}

#[test]
fn compose_fixture_helm_is_identical() {
    convert_fixture("helm", "expected-helm");
    convert_fixture("docker/compose-bridge-helm:v0.0.3", "expected-helm");
}

#[test]
fn defaults_are_composes_and_a_second_run_replaces_the_first() {
    let root = TestRoot::new();
    let dir = root.scratch();
    for f in ["compose.yaml", "my-config.txt", "not-so-secret.txt"] {
        std::fs::copy(fixtures().join(f), dir.join(f)).unwrap();
    }
    let o = run(&root, &dir, &["-p", "bridge", "bridge", "convert"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("Kubernetes resource base/serviceA-deployment.yaml created"), "{}", text(&o.stdout));
    assert_same_tree(&dir.join("out"), &fixtures().join("expected-kubernetes"));
    // Again, with another namespace: the folder is replaced whole.
    std::fs::write(dir.join("out/base/stale.yaml"), "kind: Stale\n").unwrap();
    let o = run(&root, &dir, &["-p", "bridge", "bridge", "convert", "--namespace", "staging"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!dir.join("out/base/stale.yaml").exists());
    let ns = std::fs::read_to_string(dir.join("out/base/0-staging-namespace.yaml")).unwrap();
    assert!(ns.contains("name: staging"), "{ns}");
    let dep = std::fs::read_to_string(dir.join("out/base/serviceA-deployment.yaml")).unwrap();
    assert!(dep.contains("namespace: staging"), "{dep}");
    // Secrets are in there: owner only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("out/base/my-secrets-secret.yaml")).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o}");
}

#[test]
fn output_folder_that_holds_other_files_is_refused() {
    let root = TestRoot::new();
    let dir = root.scratch();
    std::fs::copy(fixtures().join("build-only/compose.yaml"), dir.join("compose.yaml")).unwrap();
    // The project folder itself.
    let o = run(&root, &dir, &["bridge", "convert", "-o", "."]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("it holds the project"), "{}", text(&o.stderr));
    assert!(dir.join("compose.yaml").exists());
    // A folder with a file berth did not write.
    std::fs::create_dir_all(dir.join("keep")).unwrap();
    std::fs::write(dir.join("keep/notes.txt"), "mine").unwrap();
    let o = run(&root, &dir, &["bridge", "convert", "-o", "keep"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("notes.txt"), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(dir.join("keep/notes.txt")).unwrap(), "mine");
    // compose's --templates has no meaning here: a clear error.
    let o = run(&root, &dir, &["bridge", "convert", "--templates", "t"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("built in"), "{}", text(&o.stderr));
    let o = run(&root, &dir, &["bridge", "convert", "-t", "docker/compose-bridge-swarm"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("unknown transformation"), "{}", text(&o.stderr));
}

#[test]
fn build_only_service_gets_the_built_image_name_and_a_note_to_push_it() {
    let root = TestRoot::new();
    let dir = fixtures().join("build-only");
    let out = root.scratch().join("out");
    let o = run(&root, &dir, &["-p", "bridge-build-only", "bridge", "convert", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let dep = std::fs::read_to_string(out.join("base/app-deployment.yaml")).unwrap();
    assert!(dep.contains("image: bridge-build-only-app\n"), "{dep}");
    let expose = std::fs::read_to_string(out.join("base/app-expose.yaml")).unwrap();
    assert!(expose.contains("port: 8080"), "{expose}");
    let err = text(&o.stderr);
    assert!(err.contains("service \"app\": build:") && err.contains("berth push"), "{err}");
}

const HOSTILE: &str = r#"
services:
  web:
    image: nginx
    privileged: true
    network_mode: host
    volumes:
      - /etc:/host-etc
      - data:/data
    ports: ["127.0.0.1:8080:80"]
  db:
    image: postgres
    volumes: [data:/var/lib/postgresql/data]
volumes:
  data: {}
"#;

#[test]
fn what_kubernetes_cannot_run_as_written_warns_or_fails_with_strict() {
    let root = TestRoot::new();
    let dir = root.scratch();
    std::fs::write(dir.join("compose.yaml"), HOSTILE).unwrap();
    let o = run(&root, &dir, &["-p", "hostile", "bridge", "convert", "--strict"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    let err = text(&o.stderr);
    for want in [
        "service \"web\": privileged:",
        "service \"web\": network_mode: host",
        "service \"web\": volumes: bind mount /etc:/host-etc is left out",
        "service \"web\": ports: port 8080 is published on 127.0.0.1 only",
        "nothing written",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(!dir.join("out").exists(), "--strict wrote output");

    let o = run(&root, &dir, &["-p", "hostile", "bridge", "convert"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("WARN[0000] service \"web\": privileged:"), "{err}");
    let dep = std::fs::read_to_string(dir.join("out/base/web-deployment.yaml")).unwrap();
    assert!(dep.contains("privileged: true") && dep.contains("hostNetwork: true"), "{dep}");
    assert!(!dep.contains("hostPath"), "a bind mount became a hostPath without --allow-host-path:\n{dep}");
    assert!(dep.contains("claimName: data"), "{dep}");
    // One claim for the volume both services share.
    let claim = std::fs::read_to_string(dir.join("out/base/data-persistentVolumeClaim.yaml")).unwrap();
    assert!(claim.contains("storage: 100Mi"), "{claim}");
    assert!(dir.join("out/overlays/desktop/data-persistentVolumeClaim.yaml").exists());

    let o = run(&root, &dir, &["-p", "hostile", "bridge", "convert", "--allow-host-path"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let dep = std::fs::read_to_string(dir.join("out/base/web-deployment.yaml")).unwrap();
    assert!(dep.contains("hostPath:\n") && dep.contains("path: /etc\n"), "{dep}");
}

/// The Python tools that `scripts/deps.sh` installs (kubernetes-validate, helm-python-sdk).
fn pytools() -> Option<PathBuf> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let bin = target.join("tools/venv/bin");
    bin.join("kubernetes-validate").exists().then_some(bin)
}

/// Renders each chart with its default values (Helm's own engine, through helm-python-sdk), then
/// validates every manifest against the Kubernetes 1.37 schema in strict mode (kubernetes-validate,
/// its schemas cached: the command line reloads several MB of definitions per document). Reads YAML
/// as PyYAML does (YAML 1.1, as kubectl), so a value YAML 1.1 misreads fails too. Argument: a file
/// listing `manifest PATH` and `chart PATH` lines. Prints one line per failure, then a summary.
const VALIDATE: &str = r#"
import functools, sys, yaml
import helm_python as helm
import kubernetes_validate.utils as kv
kv.schema_contents = functools.lru_cache(maxsize=None)(kv.schema_contents)
docs, failures = [], []
for line in open(sys.argv[1]).read().splitlines():
    kind, path = line.split(" ", 1)
    if kind == "manifest":
        docs += [(path, d) for d in yaml.safe_load_all(open(path).read()) if d]
        continue
    with helm.Chart.load(path) as chart:
        values = chart.values
        for name, text in sorted(chart.render(values, name=chart.name, namespace=values["namespace"]).items()):
            docs += [(path + " (rendered) " + name, d) for d in yaml.safe_load_all(text) if d]
for where, d in docs:
    try:
        kv.validate(d, "1.37.0", strict=True)
    except Exception as e:
        failures.append("%s: %s %s: %s" % (where, d.get("kind"), d.get("metadata", {}).get("name"), e))
for f in failures:
    print(f)
print("%d documents, %d invalid" % (len(docs), len(failures)))
sys.exit(1 if failures else 0)
"#;

#[test]
fn every_corpus_project_converts_to_valid_manifests() {
    let Some(tools) = pytools() else {
        println!("skipped: kubernetes-validate is not installed (scripts/test.sh installs it with scripts/deps.sh)");
        return;
    };
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose-corpus").canonicalize().unwrap();
    let cases: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(corpus.join("cases.json")).unwrap()).unwrap();
    let root = TestRoot::new();
    let scratch = root.scratch();
    let mut manifests: Vec<PathBuf> = Vec::new();
    let mut charts: Vec<PathBuf> = Vec::new();
    let mut converted = 0;
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let wd = corpus.join("trees").join(c["tree"].as_str().unwrap()).join(c["dir"].as_str().unwrap());
        let mut files: Vec<String> = Vec::new();
        for f in c["files"].as_array().into_iter().flatten() {
            files.push("-f".into());
            files.push(f.as_str().unwrap().into());
        }
        let mut args: Vec<&str> = files.iter().map(String::as_str).collect();
        args.extend(["config", "-q"]);
        if !run(&root, &wd, &args).status.success() {
            continue;
        }
        let out = scratch.join(name);
        let mut args: Vec<&str> = files.iter().map(String::as_str).collect();
        args.extend(["bridge", "convert", "-t", "kubernetes", "-t", "helm", "-o", out.to_str().unwrap()]);
        let o = run(&root, &wd, &args);
        assert!(o.status.success(), "{name}: convert failed:\n{}", text(&o.stderr));
        converted += 1;
        for (path, bytes) in tree(&out) {
            if path.starts_with("templates/") || path == "Chart.yaml" || path == "values.yaml" {
                continue;
            }
            // Every file reads back as YAML.
            let s = text(&bytes);
            serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&s).unwrap_or_else(|e| panic!("{name}/{path} is not YAML: {e}\n{s}"));
            if !path.ends_with("kustomization.yaml") {
                manifests.push(out.join(path));
            }
        }
        charts.push(out);
    }
    assert!(converted >= 40, "only {converted} corpus cases converted");

    let mut list = String::new();
    for m in &manifests {
        list.push_str(&format!("manifest {}\n", m.display()));
    }
    for c in &charts {
        list.push_str(&format!("chart {}\n", c.display()));
    }
    let list_file = scratch.join("validate.list");
    std::fs::write(&list_file, list).unwrap();
    let o = Command::new(tools.join("python3")).arg("-c").arg(VALIDATE).arg(&list_file).output().expect("run python");
    let report = text(&o.stdout);
    assert!(o.status.success(), "manifests fail the Kubernetes 1.37 schema:\n{report}{}", text(&o.stderr));
    let documents: usize = report.lines().last().and_then(|l| l.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(documents > manifests.len() + charts.len(), "only {documents} documents validated: {report}");
    println!("bridge: {converted} corpus projects converted: {}", report.trim());
}
