//! `container_spec` case by case: what `docker run` flags become in the runtime's spec.
use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;
use crate::engine::image::Digest;

fn image(config: serde_json::Value) -> Image {
    let raw = json!({"architecture": "amd64", "os": "linux", "config": config, "rootfs": {"type": "layers", "diff_ids": []}});
    Image {
        id: Digest::of(b"a test image"),
        names: vec![],
        repo_digests: vec![],
        config: serde_json::from_value(raw.clone()).expect("a valid image config"),
        raw_config: raw,
        layers: vec![],
        manifest: Digest::of(b"a test manifest"),
        size: 0,
        added: String::new(),
    }
}

fn busybox() -> Image {
    image(json!({"Cmd": ["sh"], "Env": ["PATH=/bin", "A=image"], "WorkingDir": "/w", "Labels": {"from": "image"}}))
}

fn spec(opts: CreateOptions) -> Result<ContainerConfig> {
    container_spec(&opts, &busybox(), vec![PathBuf::from("/l/1")], Path::new("/cwd"))
}

fn opts(f: impl FnOnce(&mut CreateOptions)) -> CreateOptions {
    let mut o = CreateOptions { image: "busybox".into(), ..Default::default() };
    f(&mut o);
    o
}

#[test]
fn the_image_config_is_the_default() {
    let c = spec(opts(|_| {})).unwrap();
    assert_eq!(c.cmd, ["sh"]);
    assert!(c.entrypoint.is_empty());
    assert_eq!(c.env, ["PATH=/bin", "A=image"]);
    assert_eq!(c.working_dir, "/w");
    assert_eq!(c.image_ref, "busybox");
    assert_eq!(c.image, Digest::of(b"a test image").to_string());
    assert_eq!(c.rootfs.layers, [PathBuf::from("/l/1")]);
    assert_eq!(c.network_mode, NetworkMode::Bridge);
    assert_eq!(c.endpoints[0].network, "bridge");
    assert!(c.restart_policy.is_none());
    assert_eq!(c.labels["from"], "image");
}

#[test]
fn command_and_entrypoint_as_docker_merges_them() {
    let c = spec(opts(|o| o.command = vec!["echo".into(), "hi".into()])).unwrap();
    assert_eq!((c.entrypoint.as_slice(), c.cmd.as_slice()), (&[][..], &["echo".to_string(), "hi".to_string()][..]));
    // --entrypoint is one argv element and drops the image's CMD.
    let c = spec(opts(|o| o.entrypoint = Some("/bin/sh -x".into()))).unwrap();
    assert_eq!(c.entrypoint, ["/bin/sh -x"]);
    assert!(c.cmd.is_empty());
    let c = spec(opts(|o| {
        o.entrypoint = Some(String::new());
        o.command = vec!["true".into()];
    }))
    .unwrap();
    assert!(c.entrypoint.is_empty());
    assert_eq!(c.cmd, ["true"]);
}

#[test]
fn env_files_then_env_override_the_image() {
    let c = spec(opts(|o| {
        o.env_file_lines = vec!["A=file".into(), "B=file".into()];
        o.env = vec!["B=flag".into()];
    }))
    .unwrap();
    assert_eq!(c.env, ["PATH=/bin", "A=file", "B=flag"]);
}

#[test]
fn env_file_lines_skip_comments_and_take_bare_keys_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("e");
    std::fs::write(&p, "# a comment\n\nX=1\nHOME\nUNSET\n  Y=a b\n").unwrap();
    let lines = read_env_file(&p, |k| (k == "HOME").then(|| "/root".to_string())).unwrap();
    assert_eq!(lines, ["X=1", "HOME=/root", "Y=a b"]);
    let err = read_env_file(&dir.path().join("missing"), |_| None).unwrap_err().to_string();
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn limits_security_and_identity() {
    let c = spec(opts(|o| {
        o.memory = Some("100M".into());
        o.cpus = Some(0.5);
        o.cpu_shares = Some(10);
        o.pids_limit = Some(64);
        o.cap_add = vec!["NET_ADMIN".into()];
        o.cap_drop = vec!["CHOWN".into()];
        o.read_only = true;
        o.init = true;
        o.user = Some("nobody".into());
        o.workdir = Some("/tmp".into());
        o.hostname = Some("h1".into());
        o.labels = vec!["a=1".into(), "bare".into()];
        o.restart = Some("on-failure:3".into());
    }))
    .unwrap();
    assert_eq!(c.resources.memory, Some(100 * 1024 * 1024));
    assert_eq!(c.resources.nano_cpus, Some(500_000_000));
    assert_eq!(c.resources.cpu_shares, Some(10));
    assert_eq!(c.resources.pids_limit, Some(64));
    assert_eq!((c.cap_add.as_slice(), c.cap_drop.as_slice()), (&["NET_ADMIN".to_string()][..], &["CHOWN".to_string()][..]));
    assert!(c.rootfs.read_only && c.init);
    assert_eq!((c.user.as_str(), c.working_dir.as_str(), c.hostname.as_str()), ("nobody", "/tmp", "h1"));
    assert_eq!((c.labels["a"].as_str(), c.labels["bare"].as_str()), ("1", ""));
    assert_eq!((c.restart_policy.name.as_str(), c.restart_policy.maximum_retry_count), ("on-failure", 3));
}

#[test]
fn ports_and_volumes() {
    let c = spec(opts(|o| {
        o.publish = vec!["127.0.0.1:8080:80".into(), "53/udp".into(), "9000-9001:9000".into()];
        o.volumes = vec!["/srv:/data:ro".into(), "./rel:/rel".into(), "named:/n".into(), "/anon".into()];
    }))
    .unwrap();
    assert_eq!(c.ports[0].host_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!((c.ports[0].host_port, c.ports[0].container_port), (Some(8080), 80));
    assert_eq!((c.ports[1].host_port, c.ports[1].container_port, c.ports[1].protocol), (None, 53, Protocol::Udp));
    assert_eq!((c.ports[2].host_port, c.ports[2].host_port_end), (Some(9000), Some(9001)));
    let m: Vec<(MountType, &str, &str, bool)> =
        c.mounts.iter().map(|m| (m.kind, m.source.as_str(), m.target.as_str(), m.read_only)).collect();
    assert_eq!(
        m,
        [
            (MountType::Bind, "/srv", "/data", true),
            (MountType::Bind, "/cwd/./rel", "/rel", false),
            (MountType::Volume, "named", "/n", false),
            (MountType::Volume, "", "/anon", false),
        ]
    );
}

#[test]
fn network_modes() {
    let c = spec(opts(|o| o.network = Some("host".into()))).unwrap();
    assert_eq!((c.network_mode, c.endpoints.len()), (NetworkMode::Host, 0));
    let c = spec(opts(|o| o.network = Some("none".into()))).unwrap();
    assert_eq!(c.network_mode, NetworkMode::None);
    let c = spec(opts(|o| o.network = Some("objects-net".into()))).unwrap();
    assert_eq!(c.endpoints[0].network, "objects-net");
}

#[test]
fn bad_flags_name_the_flag_and_the_value() {
    let cases: Vec<(CreateOptions, &str)> = vec![
        (opts(|o| o.publish = vec!["80:http".into()]), "\"publish\""),
        (opts(|o| o.publish = vec!["1.2.3:80:80:1".into()]), "\"publish\""),
        (opts(|o| o.volumes = vec!["/a:rel".into()]), "absolute"),
        (opts(|o| o.volumes = vec!["/a:/b:bogus".into()]), "\"volume\""),
        (opts(|o| o.restart = Some("sometimes".into())), "\"restart\""),
        (opts(|o| o.memory = Some("lots".into())), "\"memory\""),
        (opts(|o| o.cpus = Some(-1.0)), "\"cpus\""),
        (
            opts(|o| {
                o.restart = Some("always".into());
                o.auto_remove = true;
            }),
            "--restart and --rm",
        ),
        (
            opts(|o| {
                o.network = Some("host".into());
                o.publish = vec!["80".into()];
            }),
            "--network host",
        ),
    ];
    for (o, want) in cases {
        let err = spec(o.clone()).unwrap_err().to_string();
        assert!(err.contains(want), "{o:?}: {err}");
    }
}

#[test]
fn filters_parse_as_docker_and_refuse_unknown_keys() {
    let f = Filters::parse(&["name=web".into(), "status=exited".into(), "label=a=1".into()]).unwrap();
    assert_eq!(
        (f.name.as_slice(), f.status.as_slice(), f.label.as_slice()),
        (&["web".to_string()][..], &["exited".to_string()][..], &["a=1".to_string()][..])
    );
    assert!(Filters::parse(&["colour=red".into()]).unwrap_err().to_string().contains("invalid filter 'colour'"));
    assert!(Filters::parse(&["status=sleeping".into()]).is_err());
    assert!(Filters::parse(&["name".into()]).is_err());
}

#[test]
fn random_names_read_as_dockers() {
    for attempt in [0, 3] {
        let n = random_name(attempt);
        let (l, r) = n.split_once('_').unwrap();
        assert!(names::LEFT.contains(&l), "{n}");
        assert!(names::RIGHT.iter().any(|x| r.starts_with(x)), "{n}");
    }
}
