//! `cp` in both directions, on running and stopped containers, and the symlink escapes it must
//! refuse (CVE-2018-15664 class): nothing outside the container is ever read or written.
mod common;

use std::io::Write;
use std::process::Stdio;

use common::query::{Proj, err, ok, out};

fn sh(p: &Proj, script: &str) -> String {
    ok(p.here(["exec", "-T", "web", "sh", "-c", script]))
}

#[test]
fn cp_in_and_out_stays_inside_the_container() {
    common::require_root!();
    let p = Proj::new(
        "qcp",
        r#"
services:
  web:
    image: qbusybox:latest
    command: sh -c 'exec sleep 1000'
    volumes:
      - data:/data
      - ./www:/www:ro
  locked:
    image: qbusybox:latest
    command: sh -c 'exec sleep 1000'
    read_only: true
volumes:
  data: {}
"#,
        6,
    );
    p.up();
    let unique = format!("berth-qcp-escape-{}", std::process::id());
    // The container plants symlinks to the host's / and /etc.
    sh(
        &p,
        "echo inside > /tmp/in.txt; ln -s / /tmp/up; ln -s /etc /tmp/etc; mkdir -p /tmp/tree/sub; echo deep > /tmp/tree/sub/f; ln -s /etc/shadow /tmp/tree/link",
    );
    let scratch = p.t.scratch();

    // In: a file into a directory, keeping its name.
    let f = scratch.join("f.txt");
    std::fs::write(&f, "hello\n").unwrap();
    let o = p.p(["cp", f.to_str().unwrap(), "web:/tmp/"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("qcp-web-1 copy"), "{}", err(&o));
    assert_eq!(sh(&p, "cat /tmp/f.txt; stat -c %u:%g /tmp/f.txt"), "hello\n0:0\n");
    // Out: a file to a new host path.
    let back = scratch.join("back.txt");
    ok(p.p(["cp", "web:/tmp/in.txt", back.to_str().unwrap()]));
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "inside\n");

    // Escapes: through the planted links, both ways, the container's files only.
    ok(p.p(["cp", f.to_str().unwrap(), &format!("web:/tmp/up/{unique}")]));
    assert!(!std::path::Path::new(&format!("/{unique}")).exists(), "a write escaped to the host's /");
    assert_eq!(sh(&p, &format!("cat /{unique}")), "hello\n");
    let hn = scratch.join("hostname");
    ok(p.p(["cp", "web:/tmp/etc/hostname", hn.to_str().unwrap()]));
    let container_hostname = sh(&p, "cat /etc/hostname");
    assert_eq!(std::fs::read_to_string(&hn).unwrap(), container_hostname);
    assert_ne!(std::fs::read_to_string(&hn).unwrap(), std::fs::read_to_string("/etc/hostname").unwrap());
    // A directory out: the link inside is copied as a link, never followed on the host.
    let tree = scratch.join("tree-out");
    ok(p.p(["cp", "web:/tmp/tree", tree.to_str().unwrap()]));
    assert_eq!(std::fs::read_to_string(tree.join("sub/f")).unwrap(), "deep\n");
    assert_eq!(std::fs::read_link(tree.join("link")).unwrap(), std::path::Path::new("/etc/shadow"));
    // Its contents into an existing directory (`/.`), and in again under another name.
    ok(p.p(["cp", &format!("{}/.", tree.display()), "web:/data"]));
    assert_eq!(sh(&p, "cat /data/sub/f; readlink /data/link"), "deep\n/etc/shadow\n");
    // Into the container through a tar stream on stdin: an entry climbing out is refused.
    let mut tarball = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tarball);
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, "ok.txt", &b"ok\n"[..]).unwrap();
        b.finish().unwrap();
    }
    let mut c = p.spawn_cmd(["cp", "-", "web:/tmp"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    c.stdin.take().unwrap().write_all(&tarball).unwrap();
    assert!(c.wait_with_output().unwrap().status.success());
    assert_eq!(sh(&p, "cat /tmp/ok.txt"), "ok\n");
    let mut evil = Vec::new();
    {
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let name = format!("../../{unique}");
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        evil.extend_from_slice(h.as_bytes());
        let mut data = b"evil".to_vec();
        data.resize(512, 0);
        evil.extend_from_slice(&data);
        evil.extend_from_slice(&[0u8; 1024]);
    }
    let mut c =
        p.spawn_cmd(["cp", "-", "web:/tmp/up"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    c.stdin.take().unwrap().write_all(&evil).unwrap();
    let o = c.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("leaves the destination"), "{}", err(&o));
    // Out as a tar stream on stdout.
    let o = p.p(["cp", "web:/tmp/in.txt", "-"]);
    let mut ar = tar::Archive::new(&o.stdout[..]);
    let names: Vec<String> = ar.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
    assert_eq!(names, ["in.txt"]);

    // A stopped container: its layers (and volume) are mounted in a private namespace only.
    let id = p.id("web", 1);
    p.stop("web");
    let after = scratch.join("after.txt");
    ok(p.p(["cp", "web:/tmp/in.txt", after.to_str().unwrap()]));
    assert_eq!(std::fs::read_to_string(&after).unwrap(), "inside\n");
    ok(p.p(["cp", "web:/data/sub/f", scratch.join("vol.txt").to_str().unwrap()]));
    assert_eq!(std::fs::read_to_string(scratch.join("vol.txt")).unwrap(), "deep\n");
    ok(p.p(["cp", f.to_str().unwrap(), "web:/tmp/while-stopped.txt"]));
    ok(p.p(["cp", f.to_str().unwrap(), &format!("web:/tmp/up/{unique}-2")]));
    assert!(!std::path::Path::new(&format!("/{unique}-2")).exists(), "a write escaped to the host's /");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(&id), "a mount of the stopped container leaked to the host");
    p.start("web");
    assert_eq!(sh(&p, &format!("cat /tmp/while-stopped.txt /{unique}-2")), "hello\nhello\n");

    // Errors as compose words them.
    let o = p.p(["cp", "web:/nonexistent", scratch.join("x").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("Could not find the file /nonexistent in container qcp-web-1"), "{}", err(&o));
    let o = p.p(["cp", "web:/a", "nosuch:/b"]);
    assert!(err(&o).contains("copying between services is not supported"), "{}", err(&o));
    let o = p.p(["cp", f.to_str().unwrap(), "nosuch:/tmp"]);
    assert!(err(&o).contains("no container found for service \"nosuch\""), "{}", err(&o));
    // A read-only mount or rootfs: refused before anything is written, naming the path, the
    // container and what to do (docker: "mounted volume is marked read-only").
    let o = p.p(["cp", f.to_str().unwrap(), "web:/www/"]);
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert!(
        e.contains("to qcp-web-1:/www/") && e.contains("mounted volume is marked read-only") && e.contains("/www is mounted read-only"),
        "{e}"
    );
    assert!(e.contains("drop \":ro\""), "{e}");
    assert!(!p.dir.join("www/f.txt").exists());
    let o = p.p(["cp", f.to_str().unwrap(), "locked:/etc/"]);
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert!(e.contains("to qcp-locked-1:/etc/") && e.contains("container rootfs is marked read-only"), "{e}");
    let _ = out;
}
