//! Image commands that need no registry: import, images, tag, inspect, history, rm, prune, load,
//! save, and hostile tarballs given to import and load.
mod common;

use std::io::Write;
use std::path::Path;

use common::TestRoot;
use common::registry::{busybox_image, digest_of, tar_of};

#[test]
fn import_list_tag_inspect_history() {
    common::require_root!();
    let root = TestRoot::new();
    let id = busybox_image(&root);
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let table = root.ok(["image", "ls"]);
    let mut lines = table.lines();
    // Docker's layout: columns at least 10 wide (`docker images busybox` on this machine).
    assert!(lines.next().unwrap().starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"), "{table}");
    let row = lines.next().unwrap();
    assert!(row.starts_with("busybox      latest    ") && row.contains(&id[7..19]), "{table}");

    root.ok(["image", "tag", "busybox", "me/box:v1"]);
    let q = root.ok(["image", "ls", "-q"]);
    assert_eq!(q.lines().collect::<Vec<_>>(), vec![&id[7..19]], "one image, listed once");
    let json = root.ok(["image", "ls", "--format", "json"]);
    let repos: Vec<String> =
        json.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["Repository"].as_str().unwrap().to_string()).collect();
    assert!(repos.contains(&"me/box".to_string()) && repos.contains(&"busybox".to_string()), "{json}");

    let doc: serde_json::Value = serde_json::from_str(&root.ok(["image", "inspect", "me/box:v1"])).unwrap();
    assert_eq!(doc[0]["Id"], id);
    assert_eq!(doc[0]["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(doc[0]["Os"], "linux");
    let lower = doc[0]["GraphDriver"]["Data"]["LowerDir"].as_str().unwrap();
    assert!(Path::new(lower).join("bin/busybox").is_file());
    assert!(Path::new(lower).join("bin/sh").is_symlink());
    assert_eq!(root.ok(["image", "inspect", "-f", "{{.Config.Cmd}}", &id[7..19]]).trim(), "[sh]");

    let hist = root.ok(["image", "history", "busybox"]);
    assert!(hist.starts_with("IMAGE") && hist.contains("Imported from"), "{hist}");

    let out = root.run(["image", "inspect", "nothere"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such image: nothere"));
    let out = root.run(["image", "tag", "busybox", "Bad:Name"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lowercase"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn rm_is_refused_while_a_container_uses_the_image_and_prune_keeps_its_layers() {
    common::require_root!();
    let root = TestRoot::new();
    let id = busybox_image(&root);
    let cdir = root.root().join("containers/0123456789abcdef");
    std::fs::create_dir_all(&cdir).unwrap();
    std::fs::write(cdir.join("config.json"), serde_json::json!({"Id": "0123456789abcdef", "Image": id}).to_string()).unwrap();
    let out = root.run(["image", "rm", "busybox"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("used by container 0123456789ab") && err.contains("-f"), "{err}");
    let out = root.ok(["image", "rm", "-f", "busybox"]);
    assert_eq!(out.trim(), "Untagged: busybox:latest");
    root.ok(["image", "prune", "-a", "-f"]);
    let doc: serde_json::Value = serde_json::from_str(&root.ok(["image", "inspect", &id])).unwrap();
    let lower = doc[0]["GraphDriver"]["Data"]["LowerDir"].as_str().unwrap().to_string();
    assert!(Path::new(&lower).join("bin/busybox").is_file(), "prune removed a layer a container uses");

    std::fs::remove_dir_all(&cdir).unwrap();
    let out = root.ok(["image", "prune", "-f"]);
    assert!(out.contains(&format!("deleted: {id}")) && out.contains("Total reclaimed space: "), "{out}");
    assert!(!Path::new(&lower).exists());
    assert!(root.ok(["image", "ls", "-q"]).trim().is_empty());

    let id = busybox_image(&root);
    let out = root.ok(["image", "rm", "busybox:latest"]);
    assert!(out.contains("Untagged: busybox:latest") && out.contains(&format!("Deleted: {id}")), "{out}");
}

/// A tar entry written byte for byte (the tar crate refuses `..`). `@OUT@` is replaced by the
/// sentinel directory's path; the header checksum is fixed after that, so the path is padded.
fn raw_tar(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// Replaces `@OUT@` in the headers and fixes every checksum.
fn finish(mut tar: Vec<u8>, out_dir: &str) -> Vec<u8> {
    let mut i = 0;
    while i + 512 <= tar.len() {
        let block = &mut tar[i..i + 512];
        if block.iter().all(|b| *b == 0) {
            break;
        }
        for field in [0..100usize, 157..257] {
            let s = String::from_utf8_lossy(&block[field.clone()]).trim_end_matches('\0').to_string();
            if s.contains("@OUT@") {
                let new = s.replace("@OUT@", out_dir);
                assert!(new.len() < 100, "the test's temp path is too long for a v7 header");
                block[field.clone()].fill(0);
                block[field.start..field.start + new.len()].copy_from_slice(new.as_bytes());
            }
        }
        let h = tar::Header::from_byte_slice(block);
        let size = h.size().unwrap();
        let mut h2 = h.clone();
        h2.set_cksum();
        block.copy_from_slice(h2.as_bytes());
        i += 512 + (size as usize).div_ceil(512) * 512;
    }
    tar
}

fn hostile(name: &str, entries: &[(&str, tar::EntryType, &str, &[u8])], expect_ok: bool) {
    // The sentinel's path is only known inside import_hostile; build the tar there.
    let root = TestRoot::new();
    let scratch = root.scratch();
    let out_dir = scratch.join("outside");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(out_dir.join("sentinel"), b"untouched").unwrap();
    let tar = finish(raw_tar(entries), out_dir.to_str().unwrap());
    let file = scratch.join(format!("{name}.tar"));
    std::fs::write(&file, &tar).unwrap();
    let out = root.run(["image", "import", file.to_str().unwrap(), &format!("hostile/{name}")]);
    assert_eq!(out.status.success(), expect_ok, "{name}: {}", String::from_utf8_lossy(&out.stderr));
    let names: Vec<_> = std::fs::read_dir(&out_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("sentinel")], "{name}: something was written outside");
    assert_eq!(std::fs::read(out_dir.join("sentinel")).unwrap(), b"untouched", "{name}");
    if !expect_ok {
        assert!(root.ok(["image", "ls", "-q"]).trim().is_empty(), "{name}: a refused layer left an image");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("refused"), "{name}: {err}");
    }
}

#[test]
fn hostile_tarballs_leave_the_host_untouched() {
    common::require_root!();
    use tar::EntryType as T;
    let passwd_before = std::fs::metadata("/etc/passwd").unwrap();
    // The state root sits three levels below the sentinel's parent: climb out with `..`.
    hostile("dotdot", &[("../../../../../../../../../@OUT@/sentinel", T::Regular, "", b"pwned")], false);
    // An absolute path lands inside the layer.
    hostile("absolute", &[("@OUT@/sentinel", T::Regular, "", b"pwned")], true);
    hostile("symlink-then-file", &[("evil", T::Symlink, "@OUT@", b""), ("evil/sentinel", T::Regular, "", b"pwned")], false);
    hostile(
        "symlink-relative",
        &[("evil", T::Symlink, "../../../../../../../../../@OUT@", b""), ("evil/new", T::Regular, "", b"x")],
        false,
    );
    hostile("hardlink-passwd", &[("pw", T::Link, "/etc/passwd", b"")], false);
    hostile("hardlink-outside", &[("pw", T::Link, "../../../../../../../../../@OUT@/sentinel", b"")], false);
    hostile("whiteout-outside", &[("../../../../../../../../../@OUT@/.wh.sentinel", T::Regular, "", b"")], false);
    hostile("whiteout-through-symlink", &[("evil", T::Symlink, "@OUT@", b""), ("evil/.wh.sentinel", T::Regular, "", b"")], false);
    hostile("device-outside", &[("../../../../../../../../../@OUT@/sda", T::Block, "", b"")], false);
    let passwd_after = std::fs::metadata("/etc/passwd").unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(passwd_before.nlink(), passwd_after.nlink());
    assert_eq!(passwd_before.mtime(), passwd_after.mtime());
}

#[test]
fn a_device_node_is_kept_inside_the_layer() {
    common::require_root!();
    let root = TestRoot::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Char);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_mode(0o666);
    h.set_size(0);
    b.append_data(&mut h, "dev/null", std::io::empty()).unwrap();
    let file = root.scratch().join("dev.tar");
    std::fs::write(&file, b.into_inner().unwrap()).unwrap();
    root.ok(["image", "import", file.to_str().unwrap(), "devnode"]);
    let lower = root.ok(["image", "inspect", "-f", "{{.GraphDriver.Data.LowerDir}}", "devnode"]);
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let md = std::fs::symlink_metadata(Path::new(lower.trim()).join("dev/null")).unwrap();
    assert!(md.file_type().is_char_device() && md.rdev() == libc::makedev(1, 3));
    assert!(lower.trim().starts_with(root.root().to_str().unwrap()));
}

#[test]
fn save_then_load_round_trips_and_oci_layouts_load() {
    common::require_root!();
    let root = TestRoot::new();
    let id = busybox_image(&root);
    let archive = root.scratch().join("saved.tar");
    root.ok(["image", "save", "-o", archive.to_str().unwrap(), "busybox"]);
    let other = TestRoot::new();
    let out = other.ok(["image", "load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: busybox:latest");
    assert_eq!(other.ok(["image", "ls", "-q"]).trim(), &id[7..19]);
    let lower = other.ok(["image", "inspect", "-f", "{{.GraphDriver.Data.LowerDir}}", "busybox"]);
    assert!(Path::new(lower.trim()).join("bin/busybox").is_file());

    // An OCI layout archive, made by hand: one gzip layer.
    let layer = tar_of(&[("hello.txt", b"from an OCI layout")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&layer).unwrap();
    let gz = gz.finish().unwrap();
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["cat", "/hello.txt"]}, "rootfs": {"type": "layers", "diff_ids": [digest_of(&layer)]}}).to_string();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest_of(config.as_bytes()), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest_of(&gz), "size": gz.len()}],
    })
    .to_string();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest_of(manifest.as_bytes()), "size": manifest.len(),
                       "annotations": {"io.containerd.image.name": "docker.io/library/ocihello:1", "org.opencontainers.image.ref.name": "1"}}],
    })
    .to_string();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", index.as_bytes());
    for blob in [config.as_bytes(), manifest.as_bytes(), &gz[..]] {
        add(&format!("blobs/sha256/{}", &digest_of(blob)[7..]), blob);
    }
    let oci = root.scratch().join("oci.tar");
    std::fs::write(&oci, b.into_inner().unwrap()).unwrap();
    let out = other.ok(["image", "load", "-i", oci.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: ocihello:1");
    let lower = other.ok(["image", "inspect", "-f", "{{.GraphDriver.Data.LowerDir}}", "ocihello:1"]);
    assert_eq!(std::fs::read(Path::new(lower.trim()).join("hello.txt")).unwrap(), b"from an OCI layout");

    // An archive whose entry climbs out is refused.
    let mut evil = Vec::new();
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..16].copy_from_slice(b"../manifest.json");
    h.set_size(2);
    h.set_mode(0o644);
    h.set_cksum();
    evil.extend_from_slice(h.as_bytes());
    evil.extend_from_slice(b"[]");
    evil.resize(512 * 2 + 1024, 0);
    let ev = root.scratch().join("evil.tar");
    std::fs::write(&ev, &evil).unwrap();
    let out = other.run(["image", "load", "-i", ev.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(!root.scratch().join("manifest.json").exists());
}

#[test]
fn compose_images_lists_the_images_of_the_project_containers() {
    common::require_root!();
    let root = TestRoot::new();
    let id = busybox_image(&root);
    let dir = root.scratch().join("imgproj");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("compose.yaml"), "services:\n  web:\n    image: busybox\n").unwrap();
    for (cid, project, name) in [("c1", "imgproj", "imgproj-web-1"), ("c2", "other", "other-web-1")] {
        let cdir = root.root().join("containers").join(cid);
        std::fs::create_dir_all(&cdir).unwrap();
        let cfg = serde_json::json!({"Id": cid, "Name": name, "Image": id,
            "Labels": {"com.docker.compose.project": project, "com.docker.compose.service": "web"}});
        std::fs::write(cdir.join("config.json"), cfg.to_string()).unwrap();
    }
    let f = dir.join("compose.yaml");
    let table = root.ok(["-f", f.to_str().unwrap(), "images"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("CONTAINER           REPOSITORY          TAG                 PLATFORM            IMAGE ID"), "{table}");
    assert!(lines[1].starts_with("imgproj-web-1") && lines[1].contains("busybox") && lines[1].contains(&id[7..19]), "{table}");
    let json: serde_json::Value = serde_json::from_str(&root.ok(["-f", f.to_str().unwrap(), "images", "--format", "json"])).unwrap();
    assert_eq!(json[0]["ContainerName"], "imgproj-web-1");
    assert_eq!(json[0]["ID"], id);
    assert_eq!(root.ok(["-f", f.to_str().unwrap(), "images", "-q"]).trim(), &id[7..]);
}
