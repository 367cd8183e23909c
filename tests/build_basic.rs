//! `berth build` on Dockerfiles without RUN: COPY, multi-stage, ARG/ENV, config instructions,
//! .dockerignore, the cache, compose build keys, ADD, heredocs and parse errors.
mod common;

use common::build::{FileInfo, content, image_files, in_project, inspect, ok, root_with_busybox, stderr, stdout, write_files};

/// One label of an image.
fn label(t: &common::TestRoot, image: &str, key: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&inspect(t, image, "{{json .Config.Labels}}")).unwrap();
    v[key].as_str().unwrap_or_default().to_string()
}

fn compose(dir: &std::path::Path, yaml: &str) {
    std::fs::write(dir.join("compose.yaml"), yaml).unwrap();
}

#[test]
fn scratch_copy_of_the_busybox_binary() {
    common::require_root!();
    let t = root_with_busybox();
    let dir = t.scratch().join("bbscratch");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(common::host_busybox(), dir.join("busybox")).unwrap();
    write_files(&dir, &[("Dockerfile", "FROM scratch\nCOPY busybox /bin/busybox\nCMD [\"/bin/busybox\", \"sh\"]\n")]);
    compose(&dir, "services:\n  app:\n    build: .\n");
    let out = ok(in_project(&t, &dir, &["build"]));
    assert!(out.contains("[app 1/1] COPY busybox /bin/busybox"), "{out}");
    assert!(out.contains("naming to docker.io/library/bbscratch-app"), "{out}");
    assert!(out.contains(" app  Built"), "{out}");
    let files = image_files(&t, "bbscratch-app");
    match &files["bin/busybox"] {
        FileInfo::File { mode, uid, gid, content } => {
            assert_eq!((*mode, *uid, *gid), (0o755, 0, 0));
            assert_eq!(content, &std::fs::read(common::host_busybox()).unwrap());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(inspect(&t, "bbscratch-app", "{{json .Config.Cmd}}"), r#"["/bin/busybox","sh"]"#);
    // Compose's labels are on the image.
    assert_eq!(label(&t, "bbscratch-app", "com.docker.compose.service"), "app");
}

#[test]
fn multi_stage_copy_from_and_target() {
    common::require_root!();
    let t = root_with_busybox();
    let dir = t.scratch().join("bbstages");
    write_files(
        &dir,
        &[
            ("a.txt", "from a\n"),
            (
                "Dockerfile",
                "FROM busybox AS builder\nCOPY a.txt /out/a.txt\n\
                 FROM busybox AS unused\nCOPY does-not-exist /x\n\
                 FROM scratch AS final\nCOPY --from=builder /out/ /app/\nCOPY --from=0 /bin/busybox /bin/\nCOPY --from=busybox /etc/passwd /etc/\n\
                 FROM final AS extra\nCOPY a.txt /extra.txt\n",
            ),
        ],
    );
    compose(&dir, "services:\n  app:\n    build:\n      context: .\n      target: final\n");
    let out = ok(in_project(&t, &dir, &["build"]));
    // The unused stage is not built (it would fail), nor is the stage after the target.
    assert!(!out.contains("does-not-exist"), "{out}");
    assert!(!out.contains("extra.txt"), "{out}");
    assert!(out.contains("[app builder 2/2] COPY a.txt /out/a.txt"), "{out}");
    assert!(out.contains("[app final 1/3] COPY --from=builder /out/ /app/"), "{out}");
    let files = image_files(&t, "bbstages-app");
    assert_eq!(content(&files, "app/a.txt"), "from a\n");
    assert!(files.contains_key("bin/busybox"));
    assert!(content(&files, "etc/passwd").starts_with("root:"));
    assert!(!files.contains_key("out/a.txt"), "only what was copied comes along");

    // A target that does not exist names the stages there are.
    compose(&dir, "services:\n  app:\n    build:\n      context: .\n      target: nope\n");
    let o = in_project(&t, &dir, &["build"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("target stage \"nope\" could not be found"), "{}", stderr(&o));
    assert!(stderr(&o).contains("builder, unused, final, extra"), "{}", stderr(&o));
}

#[test]
fn arg_and_env_expansion() {
    common::require_root!();
    let t = root_with_busybox();
    let dir = t.scratch().join("bbargs");
    write_files(
        &dir,
        &[
            ("v2.txt", "two\n"),
            (
                "Dockerfile",
                "ARG BASE=busybox\nARG TAG=latest\nFROM ${BASE}:$TAG\n\
                 ARG V=1\nARG FROM_CLI\nARG TAG\n\
                 ENV A=$V B=\"x y\" C=${FROM_CLI:-none}\n\
                 ENV D=$A-$TAG E=${V:+set}\n\
                 ENV V=env-wins\nLABEL version=$V other=\"$B\"\n\
                 COPY v${A}.txt /\nWORKDIR /w/$A\nWORKDIR sub\nUSER nobody\n",
            ),
        ],
    );
    compose(&dir, "services:\n  app:\n    build:\n      context: .\n      args:\n        V: \"2\"\n        UNUSED: x\n");
    let out = ok(in_project(&t, &dir, &["build", "--build-arg", "FROM_CLI=cli"]));
    assert!(out.contains("[Warning] One or more build-args [UNUSED] were not consumed"), "{out}");
    let env = inspect(&t, "bbargs-app", "{{json .Config.Env}}");
    for want in ["\"A=2\"", "\"B=x y\"", "\"C=cli\"", "\"D=2-latest\"", "\"E=set\"", "\"V=env-wins\""] {
        assert!(env.contains(want), "{want} missing from {env}");
    }
    assert_eq!(label(&t, "bbargs-app", "version"), "env-wins");
    assert_eq!(label(&t, "bbargs-app", "other"), "x y");
    assert_eq!(inspect(&t, "bbargs-app", "{{.Config.WorkingDir}}"), "/w/2/sub");
    assert_eq!(inspect(&t, "bbargs-app", "{{.Config.User}}"), "nobody");
    let files = image_files(&t, "bbargs-app");
    assert_eq!(content(&files, "v2.txt"), "two\n");
    assert!(matches!(files["w/2/sub"], FileInfo::Dir { uid: 0, .. }));
}

#[test]
fn config_instructions_land_in_the_image() {
    common::require_root!();
    let t = root_with_busybox();
    let dir = t.scratch().join("bbconfig");
    write_files(
        &dir,
        &[(
            "Dockerfile",
            "FROM busybox\nMAINTAINER someone\nSHELL [\"/bin/sh\", \"-ec\"]\nENTRYPOINT echo hi\nCMD [\"a\"]\nEXPOSE 80 53/udp 9000-9001\n\
             VOLUME /data /logs\nVOLUME [\"/v1\", \"/v2\"]\nSTOPSIGNAL SIGINT\n\
             HEALTHCHECK --interval=5s --retries=3 CMD wget -q localhost || exit 1\n",
        )],
    );
    compose(
        &dir,
        "services:\n  app:\n    image: my/config:v1\n    build:\n      context: .\n      labels: {team: web}\n      tags: [\"my/config:extra\"]\n",
    );
    ok(in_project(&t, &dir, &["build", "-q"]));
    let c = "my/config:v1";
    assert_eq!(inspect(&t, c, "{{json .Config.Entrypoint}}"), r#"["/bin/sh","-ec","echo hi"]"#);
    assert_eq!(inspect(&t, c, "{{json .Config.Cmd}}"), r#"["a"]"#);
    assert_eq!(inspect(&t, c, "{{json .Config.ExposedPorts}}"), r#"{"53/udp":{},"80/tcp":{},"9000/tcp":{},"9001/tcp":{}}"#);
    assert_eq!(inspect(&t, c, "{{json .Config.Volumes}}"), r#"{"/data":{},"/logs":{},"/v1":{},"/v2":{}}"#);
    assert_eq!(inspect(&t, c, "{{.Config.StopSignal}}"), "SIGINT");
    assert_eq!(
        inspect(&t, c, "{{json .Config.Healthcheck}}"),
        r#"{"Interval":5000000000,"Retries":3,"Test":["CMD-SHELL","wget -q localhost || exit 1"]}"#
    );
    assert_eq!(label(&t, c, "team"), "web");
    assert_eq!(inspect(&t, c, "{{.Author}}"), "someone");
    // build.tags name the same image.
    assert_eq!(inspect(&t, "my/config:extra", "{{.Id}}"), inspect(&t, c, "{{.Id}}"));
    // An ENTRYPOINT after CMD keeps the CMD; one before an inherited CMD resets it.
    let hist = t.ok(["image", "history", c, "--no-trunc"]);
    assert!(hist.contains("HEALTHCHECK --interval=5s"), "{hist}");
}

#[test]
fn dockerignore_follows_dockers_rules() {
    common::require_root!();
    let t = root_with_busybox();
    let dir = t.scratch().join("bbignore");
    write_files(
        &dir,
        &[
            ("keep.txt", "k"),
            ("debug.log", "x"),
            ("important.log", "i"),
            ("sub/deep/trace.log", "x"),
            ("sub/code.rs", "c"),
            ("secrets/key", "x"),
            ("secrets/public", "p"),
            ("node_modules/m/index.js", "x"),
            (".dockerignore", "# comments are fine\n*.log\n**/*.log\n!important.log\nsecrets\n!secrets/public\nnode_modules\n"),
            ("Dockerfile", "FROM scratch\nCOPY . /ctx/\n"),
        ],
    );
    compose(&dir, "services:\n  app:\n    build: .\n");
    ok(in_project(&t, &dir, &["build"]));
    let files = image_files(&t, "bbignore-app");
    let ctx: Vec<&str> = files.keys().filter_map(|k| k.strip_prefix("ctx/")).collect();
    assert_eq!(
        ctx,
        vec![
            ".dockerignore",
            "Dockerfile",
            "compose.yaml",
            "important.log",
            "keep.txt",
            "secrets",
            "secrets/public",
            "sub",
            "sub/code.rs",
            "sub/deep"
        ]
    );
    // `<Dockerfile>.dockerignore` beside the Dockerfile wins over the context's.
    write_files(&dir, &[("Dockerfile.dockerignore", "keep.txt\n")]);
    ok(in_project(&t, &dir, &["build"]));
    let files = image_files(&t, "bbignore-app");
    assert!(!files.contains_key("ctx/keep.txt") && files.contains_key("ctx/debug.log"), "{:?}", files.keys().collect::<Vec<_>>());
    std::fs::remove_file(dir.join("Dockerfile.dockerignore")).unwrap();
    // An excluded file named directly is reported as missing.
    write_files(&dir, &[("Dockerfile", "FROM scratch\nCOPY debug.log /\n")]);
    let o = in_project(&t, &dir, &["build"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Dockerfile:2: COPY failed: debug.log not found in the build context (or excluded by .dockerignore)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn second_build_is_all_cached_and_a_change_rebuilds_from_its_copy() {
    common::require_root!();
    let t = root_with_busybox();
    let dir = t.scratch().join("bbcache");
    write_files(
        &dir,
        &[
            ("one.txt", "1"),
            ("two.txt", "2"),
            ("Dockerfile", "FROM busybox\nCOPY one.txt /one\nENV X=1\nCOPY two.txt /two\nWORKDIR /app\nCOPY one.txt two.txt /app/\n"),
        ],
    );
    compose(&dir, "services:\n  app:\n    build: .\n");
    let first = ok(in_project(&t, &dir, &["build"]));
    assert_eq!(first.matches("CACHED").count(), 0, "{first}");
    let id1 = inspect(&t, "bbcache-app", "{{.Id}}");
    let start = std::time::Instant::now();
    let second = ok(in_project(&t, &dir, &["build"]));
    let took = start.elapsed();
    assert_eq!(second.matches("CACHED").count(), 4, "{second}");
    assert_eq!(inspect(&t, "bbcache-app", "{{.Id}}"), id1, "a fully cached build gives the same image");
    eprintln!("fully cached rebuild: {took:?}");
    assert!(took < std::time::Duration::from_secs(2), "a cached rebuild took {took:?}");

    // Changing two.txt: the steps before its COPY stay cached, the rest run again.
    std::fs::write(dir.join("two.txt"), "22").unwrap();
    let third = ok(in_project(&t, &dir, &["build"]));
    let step = |s: &str, name: &str| -> String {
        let n = s.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{name} not in {s}")).split(' ').next().unwrap().to_string();
        s.lines().filter(|l| l.starts_with(&format!("{n} ")) && (l.contains("CACHED") || l.contains("DONE"))).collect::<Vec<_>>().join("")
    };
    assert!(step(&third, "COPY one.txt /one").contains("CACHED"), "{third}");
    assert!(step(&third, "COPY two.txt /two").contains("DONE"), "{third}");
    assert!(step(&third, "WORKDIR /app").contains("DONE"), "{third}");
    assert!(step(&third, "COPY one.txt two.txt /app/").contains("DONE"), "{third}");
    let files = image_files(&t, "bbcache-app");
    assert_eq!(content(&files, "two"), "22");
    assert_eq!(content(&files, "app/two.txt"), "22");
    assert_ne!(inspect(&t, "bbcache-app", "{{.Id}}"), id1);

    // --no-cache runs everything again.
    let fourth = ok(in_project(&t, &dir, &["build", "--no-cache"]));
    assert_eq!(fourth.matches("CACHED").count(), 0, "{fourth}");
}

#[test]
fn copy_options_chown_chmod_globs_and_heredocs() {
    common::require_root!();
    let t = root_with_busybox();
    let dir = t.scratch().join("bbcopy");
    write_files(
        &dir,
        &[
            ("a.conf", "a"),
            ("b.conf", "b"),
            ("c.txt", "c"),
            ("tree/x/y", "y"),
            (
                "Dockerfile",
                "FROM busybox\nARG WHO=world\n\
                 COPY --chown=nobody:nobody *.conf /etc/app/\n\
                 COPY --chown=7:8 --chmod=0600 tree /opt/tree\n\
                 COPY c.txt /bin/c.txt\n\
                 COPY <<EOF /hello.txt\nhello $WHO\nEOF\n\
                 COPY <<'RAW' /raw.txt\nhello $WHO\nRAW\n",
            ),
        ],
    );
    compose(&dir, "services:\n  app:\n    build: .\n");
    ok(in_project(&t, &dir, &["build"]));
    let files = image_files(&t, "bbcopy-app");
    assert!(matches!(&files["etc/app/a.conf"], FileInfo::File { uid: 65534, gid: 65534, .. }), "{:?}", files["etc/app/a.conf"]);
    assert!(matches!(&files["etc/app"], FileInfo::Dir { uid: 65534, gid: 65534, mode: 0o755 }));
    assert!(files.contains_key("etc/app/b.conf") && !files.contains_key("etc/app/c.txt"));
    // Existing parents keep their owner and mode.
    assert!(matches!(&files["etc"], FileInfo::Dir { uid: 0, gid: 0, .. }));
    assert!(matches!(&files["opt/tree/x/y"], FileInfo::File { uid: 7, gid: 8, mode: 0o600, .. }), "{:?}", files["opt/tree/x/y"]);
    assert!(matches!(&files["opt/tree"], FileInfo::Dir { uid: 7, gid: 8, .. }));
    assert_eq!(content(&files, "bin/c.txt"), "c");
    assert_eq!(content(&files, "hello.txt"), "hello world\n");
    assert_eq!(content(&files, "raw.txt"), "hello $WHO\n");
}

#[test]
fn add_extracts_local_archives_and_downloads_urls() {
    common::require_root!();
    let t = root_with_busybox();
    let dir = t.scratch().join("bbadd");
    std::fs::create_dir_all(&dir).unwrap();
    // A gzip tarball in the context.
    {
        let f = std::fs::File::create(dir.join("site.tar.gz")).unwrap();
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
        let mut b = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o640);
        h.set_uid(33);
        h.set_gid(33);
        b.append_data(&mut h, "www/index.html", &b"hello"[..]).unwrap();
        b.into_inner().unwrap().finish().unwrap();
    }
    // The same kind of tarball, xz and bzip2 compressed (`ADD rootfs.tar.xz /` of Debian's images).
    let plain = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, "etc/os-release", &b"xz\n"[..]).unwrap();
        b.into_inner().unwrap()
    };
    {
        use std::io::Write;
        let mut xz = liblzma::write::XzEncoder::new(std::fs::File::create(dir.join("rootfs.tar.xz")).unwrap(), 6);
        xz.write_all(&plain).unwrap();
        xz.finish().unwrap();
        let mut bz = bzip2::write::BzEncoder::new(std::fs::File::create(dir.join("more.tar.bz2")).unwrap(), bzip2::Compression::default());
        bz.write_all(&plain).unwrap();
        bz.finish().unwrap();
    }
    // A file served on loopback.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        for _ in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let body = b"downloaded!";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Tue, 15 Nov 1994 12:45:26 GMT\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(body);
        }
    });
    write_files(
        &dir,
        &[(
            "Dockerfile",
            &format!(
                "FROM scratch\nADD site.tar.gz /srv/\nADD http://127.0.0.1:{port}/files/data.bin /dl/\nCOPY site.tar.gz /kept/\nADD rootfs.tar.xz /\nADD more.tar.bz2 /bz/\n"
            ),
        )],
    );
    compose(&dir, "services:\n  app:\n    build: .\n");
    ok(in_project(&t, &dir, &["build"]));
    let files = image_files(&t, "bbadd-app");
    assert!(
        matches!(&files["srv/www/index.html"], FileInfo::File { mode: 0o640, uid: 33, gid: 33, .. }),
        "{:?}",
        files.get("srv/www/index.html")
    );
    assert_eq!(content(&files, "srv/www/index.html"), "hello");
    assert!(matches!(&files["dl/data.bin"], FileInfo::File { mode: 0o600, uid: 0, .. }));
    assert_eq!(content(&files, "dl/data.bin"), "downloaded!");
    assert!(files.contains_key("kept/site.tar.gz"), "COPY does not extract");
    assert_eq!(content(&files, "etc/os-release"), "xz\n");
    assert_eq!(content(&files, "bz/etc/os-release"), "xz\n");
    // A second build downloads again and, the content being the same, is cached.
    let again = ok(in_project(&t, &dir, &["build"]));
    assert_eq!(again.matches("CACHED").count(), 5, "{again}");
    server.join().unwrap();
}

#[test]
fn dockerfile_errors_name_the_file_and_line() {
    common::require_root!();
    let t = root_with_busybox();
    let dir = t.scratch().join("bberrors");
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("FROM busybox\nONBUILD RUN echo\n", "Dockerfile:2: ONBUILD is not supported"),
        ("FROM busybox\n\nFROB x\n", "Dockerfile:3: unknown instruction: FROB"),
        (
            "FROM busybox AS a\nCOPY --from=later /x /y\nFROM busybox AS later\nFROM a\n",
            "Dockerfile:2: COPY --from=later: stage later is defined after this one",
        ),
        ("FROM --platform=linux/s390x busybox\n", "Dockerfile:1: FROM --platform=linux/s390x: berth builds for this machine's platform"),
        ("FROM busybox\nCOPY missing.txt /\n", "Dockerfile:2: COPY failed: missing.txt not found in the build context"),
        ("FROM busybox\nCOPY --chown=ghost a /\n", "Dockerfile:2: --chown=ghost: no user \"ghost\" in the image's /etc/passwd"),
        ("FROM busybox\nENV X=\"${Y:?must be set}\"\n", "Dockerfile:2: Y: must be set"),
        ("FROM busybox\nSTOPSIGNAL SIGNOPE\n", "Dockerfile:2: STOPSIGNAL SIGNOPE: not a signal"),
        ("FROM busybox\nRUN --mount=type=ssh true\n", "Dockerfile:2: invalid --mount=type=ssh: type=ssh is not supported"),
    ];
    for (df, want) in cases {
        std::fs::write(dir.join("Dockerfile"), df).unwrap();
        compose(&dir, "services:\n  app:\n    build: .\n");
        let o = in_project(&t, &dir, &["build"]);
        assert!(!o.status.success(), "{df} should fail");
        assert!(stderr(&o).contains(want), "for {df:?}: expected {want:?} in\n{}", stderr(&o));
        assert!(stderr(&o).contains("service app"), "{}", stderr(&o));
        assert!(t.run(["image", "inspect", "bberrors-app"]).status.code() != Some(0), "nothing is tagged");
    }
    // dockerfile_inline and a missing Dockerfile.
    compose(
        &dir,
        "services:\n  app:\n    build:\n      context: .\n      dockerfile_inline: |\n        FROM busybox\n        LABEL inline=yes\n",
    );
    ok(in_project(&t, &dir, &["build"]));
    assert_eq!(label(&t, "bberrors-app", "inline"), "yes");
    compose(&dir, "services:\n  app:\n    build:\n      context: .\n      dockerfile: nope.Dockerfile\n");
    let o = in_project(&t, &dir, &["build"]);
    assert!(stderr(&o).contains("cannot read the Dockerfile") && stderr(&o).contains("nope.Dockerfile"), "{}", stderr(&o));
    let _ = stdout(&o);
}

#[test]
fn copy_from_a_stage_named_through_an_arg() {
    common::require_root!();
    let t = root_with_busybox();
    let dir = t.scratch().join("bbargfrom");
    write_files(
        &dir,
        &[
            ("a.txt", "from one\n"),
            ("Dockerfile", "FROM busybox AS one\nCOPY a.txt /a\nFROM busybox\nARG SRC=one\nCOPY --from=$SRC /a /b\n"),
        ],
    );
    compose(&dir, "services:\n  app:\n    build: .\n");
    ok(in_project(&t, &dir, &["build"]));
    assert_eq!(content(&image_files(&t, "bbargfrom-app"), "b"), "from one\n");
}
