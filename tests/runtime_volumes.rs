//! Volumes: named volumes that outlive containers, filled from the image on first use, anonymous
//! volumes for image VOLUMEs, bind mounts, and `berth volume ls|create|inspect|rm`.
mod common;

use common::runtime::{Rt, err, out};
use serde_json::json;

#[test]
fn named_volume_persists_across_rm_and_recreate() {
    common::require_root!();
    let rt = Rt::new();
    let mut s = rt.spec("writer", "echo kept > /data/file");
    s["Mounts"] = json!([{"Type": "volume", "Source": "rtdata", "Target": "/data"}]);
    assert!(rt.run(&s).status.success());
    rt.ctr_ok(["rm", "-v", "writer"]);
    let mut s = rt.spec("reader", "cat /data/file");
    s["Mounts"] = json!([{"Type": "volume", "Source": "rtdata", "Target": "/data", "ReadOnly": true}]);
    let o = rt.run(&s);
    assert_eq!(out(&o), "kept\n", "{}", err(&o));
    // In use: refused, with Docker's message; removable once the container is gone.
    let o = rt.t.run(["volume", "rm", "rtdata"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("volume is in use"), "{}", err(&o));
    rt.ctr_ok(["rm", "reader"]);
    assert_eq!(rt.t.ok(["volume", "rm", "rtdata"]), "rtdata\n");
}

#[test]
fn first_use_copies_image_content_unless_nocopy() {
    common::require_root!();
    let rt = Rt::new();
    std::fs::write(rt.layer.join("var/www/index.html"), "from image\n").unwrap();
    let mut s = rt.spec("web", "cat /var/www/index.html; ls -ld /var/www | cut -c1-10");
    s["Mounts"] = json!([{"Type": "volume", "Source": "webroot", "Target": "/var/www"}]);
    let o = rt.run(&s);
    assert_eq!(out(&o), "from image\ndrwxr-xr-x\n", "{}", err(&o));
    let mut s = rt.spec("web2", "ls -A /var/www | wc -l");
    s["Mounts"] = json!([{"Type": "volume", "Source": "empty", "Target": "/var/www", "VolumeOptions": {"NoCopy": true}}]);
    assert_eq!(out(&rt.run(&s)).trim(), "0");
    // A volume that already has content is never overwritten by the image.
    let data = rt.t.root().join("volumes/webroot/_data/index.html");
    std::fs::write(&data, "edited").unwrap();
    let mut s = rt.spec("web3", "cat /var/www/index.html");
    s["Mounts"] = json!([{"Type": "volume", "Source": "webroot", "Target": "/var/www"}]);
    assert_eq!(out(&rt.run(&s)), "edited");
}

#[test]
fn anonymous_volumes_for_image_volumes_and_targets() {
    common::require_root!();
    let rt = Rt::new();
    let mut s = rt.spec("anon", "echo x > /cache/a; echo y > /scratch/b; grep -E ' /(cache|scratch) ' /proc/mounts | wc -l");
    s["ImageVolumes"] = json!(["/cache"]);
    s["Mounts"] = json!([{"Type": "volume", "Target": "/scratch"}]);
    let o = rt.run(&s);
    assert_eq!(out(&o).trim(), "2", "{}", err(&o));
    let names = rt.t.ok(["volume", "ls", "-q"]);
    let anon: Vec<&str> = names.lines().filter(|n| n.len() == 64).collect();
    assert_eq!(anon.len(), 2, "{names}");
    let v: serde_json::Value = serde_json::from_str(&rt.t.ok(["volume", "inspect", anon[0]])).unwrap();
    assert!(v[0]["Labels"].as_object().unwrap().contains_key("com.docker.volume.anonymous"));
    // rm -v takes the anonymous volumes with the container.
    rt.ctr_ok(["rm", "-v", "anon"]);
    assert!(rt.t.ok(["volume", "ls", "-q"]).lines().all(|n| n.len() != 64));
}

#[test]
fn bind_mounts_create_paths_and_refuse_missing_sources() {
    common::require_root!();
    let rt = Rt::new();
    let src = rt.t.scratch().join("made-by-berth");
    let mut s = rt.spec("bind", "echo hi > /mnt/x/f; grep ' /mnt/x ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1");
    s["Mounts"] = json!([{"Type": "bind", "Source": src, "Target": "/mnt/x", "BindOptions": {"CreateMountpoint": true}}]);
    let o = rt.run(&s);
    assert_eq!(out(&o).trim(), "rw", "{}", err(&o));
    assert_eq!(std::fs::read_to_string(src.join("f")).unwrap(), "hi\n");
    let missing = rt.t.scratch().join("nope");
    let mut s = rt.spec("bind2", "true");
    s["Mounts"] = json!([{"Type": "bind", "Source": missing, "Target": "/mnt"}]);
    let o = rt.run(&s);
    assert!(!o.status.success());
    assert!(err(&o).contains("bind source path does not exist"), "{}", err(&o));
    // Read-only binds are read-only, files can be bound too.
    let f = rt.t.scratch().join("conf");
    std::fs::write(&f, "setting=1\n").unwrap();
    let mut s = rt.spec("bind3", "cat /etc/app.conf; (echo x >> /etc/app.conf) 2>&1");
    s["Mounts"] = json!([{"Type": "bind", "Source": f, "Target": "/etc/app.conf", "ReadOnly": true}]);
    let t = out(&rt.run(&s));
    assert!(t.starts_with("setting=1\n") && t.contains("Read-only file system"), "{t}");
}

#[test]
fn volume_cli_matches_docker() {
    common::require_root!();
    let rt = Rt::new();
    assert_eq!(rt.t.ok(["volume", "create", "--label", "a=b", "--label", "c=d", "v1"]), "v1\n");
    assert_eq!(rt.t.ok(["volume", "create", "v1"]), "v1\n", "creating an existing volume returns it");
    let ls = rt.t.ok(["volume", "ls"]);
    assert_eq!(ls, "DRIVER    VOLUME NAME\nlocal     v1\n");
    let j: serde_json::Value = serde_json::from_str(rt.t.ok(["volume", "ls", "--format", "json"]).trim()).unwrap();
    assert_eq!(j["Labels"], "a=b,c=d");
    assert_eq!(j["Driver"], "local");
    let v: serde_json::Value = serde_json::from_str(&rt.t.ok(["volume", "inspect", "v1"])).unwrap();
    assert_eq!(v[0]["Name"], "v1");
    assert_eq!(v[0]["Labels"]["a"], "b");
    assert_eq!(v[0]["Options"], serde_json::Value::Null);
    assert!(v[0]["Mountpoint"].as_str().unwrap().ends_with("/volumes/v1/_data"));
    assert_eq!(rt.t.ok(["volume", "ls", "-q", "--filter", "label=a=b"]), "v1\n");
    assert_eq!(rt.t.ok(["volume", "ls", "-q", "--filter", "label=x"]), "");
    let o = rt.t.run(["volume", "inspect", "nope"]);
    assert!(!o.status.success() && err(&o).contains("No such volume: nope"));
    let o = rt.t.run(["volume", "create", "x"]);
    assert!(err(&o).contains("volume name is too short"), "{}", err(&o));
    let o = rt.t.run(["volume", "rm", "v1", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(out(&o), "v1\n");
    assert!(err(&o).contains("get nope: no such volume"));
    assert_eq!(rt.t.ok(["volume", "ls", "-q"]), "");
}
