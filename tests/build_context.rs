//! The build context is never read outside its folder: symlinks pointing out are copied as
//! links, paths climbing out are refused, and archives cannot write outside their destination.
mod common;

use std::os::unix::fs::symlink;

use common::build::{FileInfo, content, image_files, in_project, ok, root_with_busybox, stderr, write_files};

fn compose(dir: &std::path::Path) {
    std::fs::write(dir.join("compose.yaml"), "services:\n  app:\n    build: .\n").unwrap();
}

#[test]
fn symlinks_out_of_the_context_are_copied_as_links_never_followed() {
    common::require_root!();
    let t = root_with_busybox();
    let base = t.scratch().join("esc");
    let dir = base.join("ctx");
    write_files(&base, &[("outside/secret", "TOP SECRET"), ("ctx/inside/real.txt", "fine")]);
    symlink("../outside/secret", dir.join("up")).unwrap();
    symlink(base.join("outside/secret"), dir.join("abs")).unwrap();
    symlink("/etc/shadow", dir.join("shadow")).unwrap();
    symlink("real.txt", dir.join("inside/alias")).unwrap();
    symlink("../../outside", dir.join("inside/outdir")).unwrap();
    write_files(
        &dir,
        &[("Dockerfile", "FROM scratch\nCOPY up abs shadow /named/\nCOPY inside /tree/\nCOPY inside/alias /followed.txt\nCOPY . /all/\n")],
    );
    compose(&dir);
    ok(in_project(&t, &dir, &["build"]));
    let files = image_files(&t, "ctx-app");
    assert_eq!(files["named/up"], FileInfo::Symlink("../outside/secret".into()));
    assert_eq!(files["named/abs"], FileInfo::Symlink(base.join("outside/secret").display().to_string()));
    assert_eq!(files["named/shadow"], FileInfo::Symlink("/etc/shadow".into()));
    assert_eq!(files["tree/outdir"], FileInfo::Symlink("../../outside".into()));
    assert_eq!(files["tree/alias"], FileInfo::Symlink("real.txt".into()), "links inside a copied folder stay links");
    // A named link that stays inside the context is followed.
    assert_eq!(content(&files, "followed.txt"), "fine");
    for (p, f) in &files {
        if let FileInfo::File { content, .. } = f {
            assert!(!String::from_utf8_lossy(content).contains("TOP SECRET"), "{p} holds the secret");
            assert!(!String::from_utf8_lossy(content).contains("root:"), "{p} holds /etc/shadow");
        }
    }
}

#[test]
fn paths_that_climb_out_of_the_context_are_refused() {
    common::require_root!();
    let t = root_with_busybox();
    let base = t.scratch().join("climb");
    let dir = base.join("ctx");
    write_files(&base, &[("outside/secret", "TOP SECRET"), ("ctx/.keep", "")]);
    symlink(base.join("outside"), dir.join("absdir")).unwrap();
    symlink("../outside", dir.join("reldir")).unwrap();
    let cases = [
        ("COPY ../outside/secret /x", "is outside the build context"),
        ("COPY ctx/../../outside/secret /x", "is outside the build context"),
        ("COPY absdir/secret /x", "leads outside the build context (through the symlink absdir)"),
        ("COPY reldir/secret /x", "leads outside the build context (through the symlink reldir)"),
        ("COPY reldir/* /x/", "leads outside the build context"),
        ("ADD absdir/secret /x", "leads outside the build context"),
    ];
    for (ins, want) in cases {
        write_files(&dir, &[("Dockerfile", &format!("FROM scratch\n{ins}\n"))]);
        compose(&dir);
        let o = in_project(&t, &dir, &["build"]);
        assert!(!o.status.success(), "{ins} must fail");
        assert!(stderr(&o).contains("Dockerfile:2:") && stderr(&o).contains(want), "{ins}: expected {want:?} in\n{}", stderr(&o));
        assert!(!t.run(["image", "inspect", "ctx-app"]).status.success(), "{ins}: nothing is tagged");
    }
    // A .dockerignore that is a symlink out of the context is not read.
    symlink(base.join("outside/secret"), dir.join(".dockerignore")).unwrap();
    write_files(&dir, &[("Dockerfile", "FROM scratch\nCOPY .keep /\n")]);
    ok(in_project(&t, &dir, &["build"]));
}

#[test]
fn archives_cannot_write_outside_their_destination() {
    common::require_root!();
    let t = root_with_busybox();
    let dir = t.scratch().join("arch");
    std::fs::create_dir_all(&dir).unwrap();
    // A tarball with a `..` entry, written by hand (the tar crate refuses to).
    let mut data = Vec::new();
    {
        let mut b = tar::Builder::new(&mut data);
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, "ok.txt", &b"fine"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"../escape.txt");
        h.set_size(4);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        b.append(&h, &b"evil"[..]).unwrap();
        b.finish().unwrap();
    }
    std::fs::write(dir.join("bad.tar"), &data).unwrap();
    write_files(&dir, &[("Dockerfile", "FROM scratch\nADD bad.tar /dest/\n")]);
    compose(&dir);
    let o = in_project(&t, &dir, &["build"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("Dockerfile:2:") && stderr(&o).contains("leads outside the destination"), "{}", stderr(&o));
    assert!(!t.scratch().join("escape.txt").exists());
}
