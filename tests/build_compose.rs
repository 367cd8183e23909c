//! Compose-level building: which services `berth build` builds, names and tags, base images
//! pulled from a registry (and `--pull`), and the library call `up --build` uses.
mod common;

use std::collections::HashMap;

use common::build::{in_project, ok, root_with_busybox, stderr, stdout, write_files};
use common::registry::{Auth, Registry, digest_of, push_raw, tar_of};

#[test]
fn build_selects_services_and_names_images_as_compose_does() {
    common::require_root!();
    let t = root_with_busybox();
    let dir = t.scratch().join("cbsel");
    write_files(
        &dir,
        &[
            ("web/Dockerfile", "FROM busybox\nLABEL which=web\n"),
            ("worker/Dockerfile", "FROM busybox\nLABEL which=worker\n"),
            (
                "compose.yaml",
                "services:\n  web:\n    build: ./web\n    depends_on: [worker]\n  worker:\n    image: team/worker:2\n    build:\n      context: ./worker\n      tags: [\"team/worker:latest\"]\n  db:\n    image: busybox\n",
            ),
        ],
    );
    let out = ok(in_project(&t, &dir, &["build", "web"]));
    assert!(out.contains(" web  Built") && !out.contains("worker"), "{out}");
    assert!(t.run(["image", "inspect", "cbsel-web"]).status.success());
    assert!(!t.run(["image", "inspect", "team/worker:2"]).status.success(), "only web was asked for");
    let out = ok(in_project(&t, &dir, &["build", "--with-dependencies", "web"]));
    assert!(out.find(" worker  Built").unwrap() < out.find(" web  Built").unwrap(), "dependencies first: {out}");
    let w2 = t.ok(["image", "inspect", "team/worker:2", "--format", "{{.Id}}"]);
    assert_eq!(t.ok(["image", "inspect", "team/worker:latest", "--format", "{{.Id}}"]), w2);
    // An unknown service is refused; a service without build is skipped quietly.
    let o = in_project(&t, &dir, &["build", "nope"]);
    assert!(!o.status.success() && stderr(&o).contains("no such service: nope"), "{}", stderr(&o));
    let out = ok(in_project(&t, &dir, &["build", "db"]));
    assert!(!out.contains("Built"), "{out}");
    // --build-arg without a value takes it from the environment.
    write_files(&dir, &[("web/Dockerfile", "FROM busybox\nARG FLAVOR\nLABEL flavor=$FLAVOR\n")]);
    let mut c = t.cmd(["-f", dir.join("compose.yaml").to_str().unwrap(), "build", "-q", "--build-arg", "FLAVOR", "web"]);
    let o = c.env("FLAVOR", "mint").output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).is_empty(), "-q prints nothing: {}", stdout(&o));
    assert!(t.ok(["image", "inspect", "cbsel-web", "--format", "{{json .Config.Labels}}"]).contains("\"flavor\":\"mint\""));
}

#[test]
fn base_images_missing_locally_are_pulled() {
    common::require_root!();
    let t = root_with_busybox();
    let reg = Registry::start(Auth::None);
    let layer = tar_of(&[("etc/base-release", b"v1\n")]);
    push_raw(&reg, "team/base", "1", "amd64", &[("application/vnd.oci.image.layer.v1.tar", layer.clone())], &[digest_of(&layer)]);
    let dir = t.scratch().join("cbpull");
    let base = format!("{}/team/base:1", reg.host());
    write_files(
        &dir,
        &[
            ("Dockerfile", &format!("FROM {base}\nCOPY --from={base} /etc/base-release /copied\n")),
            ("compose.yaml", "services:\n  app:\n    build: .\n"),
        ],
    );
    let out = ok(in_project(&t, &dir, &["build"]));
    assert!(out.contains(&format!("load metadata for {base}")), "{out}");
    assert!(t.run(["image", "inspect", &base]).status.success(), "the base is in the store now");
    // Present: no pull. With --pull: pulled again.
    let out = ok(in_project(&t, &dir, &["build"]));
    assert!(!out.contains("load metadata"), "{out}");
    let out = ok(in_project(&t, &dir, &["build", "--pull"]));
    assert!(out.contains("load metadata"), "{out}");
    // A base that exists nowhere: the error names it and the line.
    write_files(&dir, &[("Dockerfile", &format!("FROM busybox\nFROM {}/team/missing:1\n", reg.host()))]);
    let o = in_project(&t, &dir, &["build"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("Dockerfile:2: cannot pull the image") && stderr(&o).contains("team/missing:1"), "{}", stderr(&o));
}

#[test]
fn ensure_built_builds_what_up_needs() {
    common::require_root!();
    use berth::engine::build::{Printer, ProgressMode};
    use berth::project::build::{ProjectBuildOptions, ensure_built};
    let t = root_with_busybox();
    let dir = t.scratch().join("cbup");
    write_files(
        &dir,
        &[
            ("Dockerfile", "FROM busybox\nLABEL built=yes\n"),
            (
                "compose.yaml",
                "services:\n  missing:\n    build: .\n  always:\n    build: .\n    image: cbup/always\n    pull_policy: build\n  plain:\n    image: busybox\n",
            ),
        ],
    );
    let opts = berth::project::LoadOptions {
        files: vec![dir.join("compose.yaml")],
        interpolate: true,
        environment: HashMap::new(),
        ..Default::default()
    };
    let project = berth::project::load(&opts).unwrap();
    let store = berth::engine::image::ImageStore::open(&berth::state::StateRoot::new(t.root())).unwrap();
    let all: Vec<String> = project.services.keys().cloned().collect();
    let mut quiet = Printer::to_writer(ProgressMode::Quiet, Box::new(std::io::sink()));
    let popts = ProjectBuildOptions::default();
    let first = ensure_built(&store, &project, &all, false, &popts, &mut quiet).unwrap();
    assert_eq!(first.keys().collect::<Vec<_>>(), vec!["always", "missing"]);
    // The image of `missing` is there now; `always` has pull_policy: build.
    let second = ensure_built(&store, &project, &all, false, &popts, &mut quiet).unwrap();
    assert_eq!(second.keys().collect::<Vec<_>>(), vec!["always"]);
    // --build: every service with a build section.
    let forced = ensure_built(&store, &project, &all, true, &popts, &mut quiet).unwrap();
    assert_eq!(forced.keys().collect::<Vec<_>>(), vec!["always", "missing"]);
    assert_eq!(forced["missing"], first["missing"], "an unchanged build gives the same image");
    assert_eq!(store.require("cbup-missing").unwrap().id, first["missing"]);
}
