//! The compose-to-container translation, case by case against what Docker Compose (and the Docker
//! daemon's merge of the image config, `daemon/commit.go` `merge`) give. Projects are loaded from
//! YAML with the real loader, so that the model is what a user's file gives; the translation is
//! the pure [`container_spec`]/[`service_spec`], with no state root.
use super::*;
use crate::project::engine::fake::{image, load};
use serde_json::json;

fn plain() -> Image {
    image(json!({}))
}

fn spec(p: &Project, service: &str, img: &Image) -> ContainerConfig {
    container_spec(p, &p.services[service], img, &HostInputs::default()).unwrap_or_else(|e| panic!("{service}: {e}"))
}

fn spec_err(p: &Project, service: &str, host: &HostInputs) -> String {
    match container_spec(p, &p.services[service], &plain(), host) {
        Ok(_) => panic!("{service}: no error"),
        Err(e) => e.to_string(),
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn platform_is_parsed_for_the_pull_and_checked_against_the_image() {
    let mut s = Service { name: "web".into(), platform: Some("linux/arm64".into()), ..Default::default() };
    let want = service_platform(&s).unwrap().unwrap();
    assert_eq!((want.os.as_str(), want.architecture.as_str()), ("linux", "arm64"));
    assert!(config_matches(&want, &json!({"os": "linux", "architecture": "arm64", "variant": "v8"})));
    assert!(config_matches(&want, &json!({"os": "linux", "architecture": "aarch64"})));
    assert!(!config_matches(&want, &json!({"os": "linux", "architecture": "amd64"})));
    assert!(config_matches(&want, &json!({})));
    // It is applied now, so no longer named in a warning.
    assert!(unapplied(&Project::default(), &s).iter().all(|w| !w.contains("platform")), "{:?}", unapplied(&Project::default(), &s));
    s.platform = Some("linux//x".into());
    let e = service_platform(&s).unwrap_err().to_string();
    assert!(e.contains("web") && e.contains("platform \"linux//x\""), "{e}");
    s.platform = None;
    assert!(service_platform(&s).unwrap().is_none());
}

/// Docker's merge: without a service entrypoint the image's stays and `command` replaces the
/// image's CMD; a service entrypoint drops the image's CMD (only the service's command runs).
#[test]
fn entrypoint_and_command_override_the_image_as_docker_merges_them() {
    let (_d, p) = load(
        r#"
services:
  plain: {image: x}
  cmd: {image: x, command: ["run", "fast"]}
  shell: {image: x, command: "echo hi there"}
  ep: {image: x, entrypoint: ["/bin/sh", "-c"]}
  both: {image: x, entrypoint: /bin/sh -c, command: ["echo", "hi"]}
"#,
        &[],
    );
    let img = image(json!({"Entrypoint": ["/init"], "Cmd": ["serve", "--port", "80"]}));
    let argv = |s: &str| {
        let c = spec(&p, s, &img);
        (c.entrypoint, c.cmd)
    };
    assert_eq!(argv("plain"), (strs(&["/init"]), strs(&["serve", "--port", "80"])));
    assert_eq!(argv("cmd"), (strs(&["/init"]), strs(&["run", "fast"])));
    assert_eq!(argv("shell"), (strs(&["/init"]), strs(&["echo", "hi", "there"])));
    assert_eq!(argv("ep"), (strs(&["/bin/sh", "-c"]), vec![]));
    assert_eq!(argv("both"), (strs(&["/bin/sh", "-c"]), strs(&["echo", "hi"])));
}

/// The image's environment, overridden by `env_file`, overridden by `environment`; a variable
/// named without a value and unset in the environment is not set.
#[test]
fn environment_overrides_env_file_which_overrides_the_image() {
    let (_d, p) = load(
        r#"
services:
  web:
    image: x
    env_file: web.env
    environment:
      C: from-environment
      UNSET:
"#,
        &[("web.env", "B=from-file\nC=from-file\n")],
    );
    let img = image(json!({"Env": ["PATH=/usr/bin", "A=image", "B=image"]}));
    let env = spec(&p, "web", &img).env;
    assert_eq!(env, strs(&["PATH=/usr/bin", "A=image", "B=from-file", "C=from-environment"]));
}

/// The image's labels under the service's, then compose's own (which neither may forge), and
/// per replica the number, one-off, config hash and dependencies, as compose labels containers.
#[test]
fn labels_are_the_image_s_then_the_service_s_then_compose_s() {
    let (d, mut p) = load(
        r#"
services:
  db: {image: x}
  web:
    image: x
    labels: {org.example.a: service, org.example.b: service, com.docker.compose.project: forged}
    depends_on:
      db: {condition: service_healthy, restart: true}
"#,
        &[],
    );
    let img = image(json!({"Labels": {"org.example.a": "image", "org.example.c": "image", "com.docker.compose.service": "forged"}}));
    let c = spec(&p, "web", &img);
    let l = |k: &str| c.labels.get(k).map(String::as_str);
    assert_eq!(l("org.example.a"), Some("service"));
    assert_eq!(l("org.example.b"), Some("service"));
    assert_eq!(l("org.example.c"), Some("image"));
    assert_eq!(l(labels::PROJECT), Some("demo"));
    assert_eq!(l(labels::SERVICE), Some("web"));
    assert_eq!(l(labels::VERSION), Some(labels::COMPOSE_VERSION));
    assert_eq!(l(labels::WORKING_DIR), Some(p.working_dir.display().to_string().as_str()));
    assert_eq!(l(labels::CONFIG_FILES), Some(d.path().join("compose.yaml").display().to_string().as_str()));
    assert_eq!(l(labels::IMAGE), Some(img.id.to_string().as_str()));
    // Replica labels are the service spec's.
    assert_eq!(l(labels::CONTAINER_NUMBER), None);

    p.env_files = vec![d.path().join(".env"), d.path().join("more.env")];
    let c = service_spec(&p, &p.services["web"], &img, &HostInputs::default(), 2).unwrap();
    let l = |k: &str| c.labels.get(k).map(String::as_str);
    assert_eq!(c.name, "demo-web-2");
    assert_eq!(l(labels::CONTAINER_NUMBER), Some("2"));
    assert_eq!(l(labels::ONEOFF), Some("False"));
    assert_eq!(l(labels::CONFIG_HASH), Some(crate::project::hash::service_hash(&p.services["web"]).as_str()));
    assert_eq!(l(labels::DEPENDS_ON), Some("db:service_healthy:true"));
    let files = format!("{},{}", d.path().join(".env").display(), d.path().join("more.env").display());
    assert_eq!(l(labels::ENVIRONMENT_FILE), Some(files.as_str()));
}

/// Volumes, binds and tmpfs mounts as compose builds them: a project volume by its real name,
/// an external one by its `name:`, an anonymous one left for the engine to make, a relative bind
/// resolved against the project folder; `tmpfs:` entries with their size and mode.
#[test]
fn volume_bind_and_tmpfs_mounts() {
    let (d, p) = load(
        r#"
services:
  web:
    image: x
    volumes:
      - data:/data
      - shared:/shared:ro
      - /scratch
      - ./site:/site:ro
      - {type: volume, source: data, target: /nocopy, volume: {nocopy: true}}
      - {type: tmpfs, target: /cache, tmpfs: {size: 1048576}}
    tmpfs: ["/run:size=64k,mode=1777"]
volumes:
  data: {}
  shared: {external: true, name: team-shared}
"#,
        &[],
    );
    let c = spec(&p, "web", &plain());
    let m = |t: &str| c.mounts.iter().find(|m| m.target == t).unwrap_or_else(|| panic!("no mount at {t}: {:?}", c.mounts));
    assert_eq!((m("/data").kind, m("/data").source.as_str(), m("/data").read_only), (MountType::Volume, "demo_data", false));
    assert_eq!((m("/shared").kind, m("/shared").source.as_str(), m("/shared").read_only), (MountType::Volume, "team-shared", true));
    assert_eq!((m("/scratch").kind, m("/scratch").source.as_str()), (MountType::Volume, ""));
    assert_eq!(m("/site").kind, MountType::Bind);
    assert_eq!(m("/site").source, d.path().join("site").display().to_string());
    assert!(m("/site").read_only && m("/site").bind_options.is_some());
    assert!(m("/nocopy").volume_options.as_ref().is_some_and(|o| o.no_copy));
    assert!(!m("/data").volume_options.as_ref().is_some_and(|o| o.no_copy));
    assert_eq!((m("/cache").kind, m("/cache").tmpfs_options.as_ref().and_then(|o| o.size_bytes)), (MountType::Tmpfs, Some(1048576)));
    let run = m("/run").tmpfs_options.clone().unwrap();
    assert_eq!((m("/run").kind, run.size_bytes, run.mode), (MountType::Tmpfs, Some(65536), Some(0o1777)));
}

/// `ports:` in their short forms; only a container with its own bridge namespace publishes.
#[test]
fn ports_are_published_from_the_bridge_only() {
    let (_d, p) = load(
        r#"
services:
  web:
    image: x
    ports: ["8080:80", "127.0.0.1:5353:53/udp", "9000-9010:90", "81"]
  host:
    image: x
    network_mode: host
    ports: ["8080:80"]
"#,
        &[],
    );
    let c = service_spec(&p, &p.services["web"], &plain(), &HostInputs::default(), 1).unwrap();
    let got: Vec<String> = c
        .ports
        .iter()
        .map(|r| format!("{:?} {:?}-{:?} {} {:?}", r.host_ip, r.host_port, r.host_port_end, r.container_port, r.protocol))
        .collect();
    assert_eq!(
        got,
        vec![
            "None Some(8080)-None 80 Tcp",
            "Some(127.0.0.1) Some(5353)-None 53 Udp",
            "None Some(9000)-Some(9010) 90 Tcp",
            "None None-None 81 Tcp",
        ]
    );
    // `container_spec` leaves ports out (a one-off `run` publishes only with --service-ports).
    assert!(spec(&p, "web", &plain()).ports.is_empty());
    let h = service_spec(&p, &p.services["host"], &plain(), &HostInputs::default(), 1).unwrap();
    assert_eq!(h.network_mode, NetworkMode::Host);
    assert!(h.ports.is_empty());
}

/// `user`, `working_dir` and `stop_signal` default to the image's.
#[test]
fn user_working_dir_and_stop_signal_default_to_the_image_s() {
    let (_d, p) = load(
        r#"
services:
  inherit: {image: x}
  own: {image: x, user: "1000:1000", working_dir: /app, stop_signal: SIGINT}
"#,
        &[],
    );
    let img = image(json!({"User": "nobody", "WorkingDir": "/srv", "StopSignal": "SIGQUIT"}));
    let c = spec(&p, "inherit", &img);
    assert_eq!((c.user.as_str(), c.working_dir.as_str(), c.stop_signal.as_str()), ("nobody", "/srv", "SIGQUIT"));
    let c = spec(&p, "own", &img);
    assert_eq!((c.user.as_str(), c.working_dir.as_str(), c.stop_signal.as_str()), ("1000:1000", "/app", "SIGINT"));
    let c = spec(&p, "inherit", &plain());
    assert_eq!((c.user.as_str(), c.working_dir.as_str(), c.stop_signal.as_str()), ("", "", ""));
}

/// The service's healthcheck (durations in nanoseconds), the image's when it has none, and
/// `disable: true` as Docker's `NONE`.
#[test]
fn healthcheck_from_the_service_or_the_image() {
    let (_d, p) = load(
        r#"
services:
  own:
    image: x
    healthcheck: {test: ["CMD", "true"], interval: 2s, timeout: 1s, retries: 3, start_period: 5s}
  inherit: {image: x}
  off:
    image: x
    healthcheck: {disable: true}
"#,
        &[],
    );
    let img = image(json!({"Healthcheck": {"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 30_000_000_000u64}}));
    let own = spec(&p, "own", &img).healthcheck.unwrap();
    assert_eq!(own.test, strs(&["CMD", "true"]));
    assert_eq!((own.interval, own.timeout, own.start_period, own.retries), (2_000_000_000, 1_000_000_000, 5_000_000_000, 3));
    let inherit = spec(&p, "inherit", &img).healthcheck.unwrap();
    assert_eq!((inherit.test, inherit.interval), (strs(&["CMD-SHELL", "curl -f localhost"]), 30_000_000_000));
    assert_eq!(spec(&p, "off", &img).healthcheck.unwrap().test, strs(&["NONE"]));
    assert!(spec(&p, "inherit", &plain()).healthcheck.is_none());
}

/// `restart:` as is; `deploy.restart_policy` mapped as compose maps it (`none` is `no`, `any`
/// is `always`, `on-failure` keeps `max_attempts`).
#[test]
fn restart_policy_from_restart_or_deploy() {
    let (_d, p) = load(
        r#"
services:
  none: {image: x}
  always: {image: x, restart: always}
  retries: {image: x, restart: "on-failure:3"}
  any: {image: x, deploy: {restart_policy: {condition: any}}}
  never: {image: x, deploy: {restart_policy: {condition: none}}}
  failure: {image: x, deploy: {restart_policy: {condition: on-failure, max_attempts: 5}}}
"#,
        &[],
    );
    let rp = |s: &str| {
        let r = spec(&p, s, &plain()).restart_policy;
        (r.name, r.maximum_retry_count)
    };
    assert_eq!(rp("none"), (rspec::RestartPolicy::default().name, 0));
    assert_eq!(rp("always"), ("always".into(), 0));
    assert_eq!(rp("retries"), ("on-failure".into(), 3));
    assert_eq!(rp("any"), ("always".into(), 0));
    assert_eq!(rp("never"), ("no".into(), 0));
    assert_eq!(rp("failure"), ("on-failure".into(), 5));
}

/// Resources: the service's keys first, `deploy.resources.limits` when they are unset.
#[test]
fn resources_from_the_service_or_deploy_limits() {
    let (_d, p) = load(
        r#"
services:
  own: {image: x, mem_limit: 64m, cpus: 1.5, pids_limit: 100, cpu_shares: 512, oom_score_adj: 200}
  deploy:
    image: x
    deploy: {resources: {limits: {memory: 32m, cpus: "0.5", pids: 50}, reservations: {memory: 16m}}}
"#,
        &[],
    );
    let own = spec(&p, "own", &plain());
    let r = &own.resources;
    assert_eq!((r.memory, r.nano_cpus, r.pids_limit, r.cpu_shares), (Some(64 << 20), Some(1_500_000_000), Some(100), Some(512)));
    assert_eq!(own.oom_score_adj, Some(200));
    let r = spec(&p, "deploy", &plain()).resources;
    assert_eq!((r.memory, r.nano_cpus, r.pids_limit, r.memory_reservation), (Some(32 << 20), Some(500_000_000), Some(50), Some(16 << 20)));
}

/// Each network of the service an endpoint with the service name as an alias (the project's
/// `default` network when it lists none), and `mac_address` on the first.
#[test]
fn networks_give_endpoints_with_the_service_alias() {
    let (_d, p) = load(
        r#"
services:
  web:
    image: x
    mac_address: "02:42:ac:11:00:02"
    networks:
      back: {aliases: [api], ipv4_address: 10.211.90.5}
      front: {}
  plain: {image: x}
networks:
  back: {ipam: {config: [{subnet: 10.211.90.0/24}]}}
  front: {}
"#,
        &[],
    );
    let c = spec(&p, "web", &plain());
    let eps: Vec<(&str, Vec<String>)> = c.endpoints.iter().map(|e| (e.network.as_str(), e.aliases.clone())).collect();
    assert_eq!(eps, vec![("demo_back", strs(&["web", "api"])), ("demo_front", strs(&["web"]))]);
    assert_eq!(c.endpoints[0].ipv4_address, Some("10.211.90.5".parse().unwrap()));
    assert_eq!(c.endpoints[0].mac_address.as_deref(), Some("02:42:ac:11:00:02"));
    assert_eq!(c.endpoints[1].mac_address, None);
    let c = spec(&p, "plain", &plain());
    let eps: Vec<(&str, Vec<String>)> = c.endpoints.iter().map(|e| (e.network.as_str(), e.aliases.clone())).collect();
    assert_eq!(eps, vec![("demo_default", strs(&["plain"]))]);
}

/// `service:X` namespaces and `volumes_from: X` name X's first container, which the host inputs
/// give; without one the spec is an error that says to start X first.
#[test]
fn namespace_and_volume_parents_come_from_the_host_inputs() {
    let (_d, p) = load(
        r#"
services:
  db: {image: x}
  side:
    image: x
    network_mode: service:db
    ipc: service:db
    pid: container:other
    volumes_from: ["db:ro", "container:keeper"]
"#,
        &[],
    );
    let side = &p.services["side"];
    assert_eq!(parent_services(side), strs(&["db"]));
    let host = HostInputs { parents: [("db".to_string(), "c0ffee".to_string())].into(), layers: vec![PathBuf::from("/l/1")] };
    let c = container_spec(&p, side, &plain(), &host).unwrap();
    assert_eq!(c.network_mode, NetworkMode::Container("c0ffee".into()));
    assert_eq!((c.ipc_mode.as_str(), c.pid_mode.as_str()), ("container:c0ffee", "container:other"));
    assert_eq!(c.volumes_from, strs(&["c0ffee:ro", "keeper"]));
    assert!(c.endpoints.is_empty());
    assert_eq!(c.rootfs.layers, vec![PathBuf::from("/l/1")]);
    let e = spec_err(&p, "side", &HostInputs::default());
    assert!(e.contains(r#"service "side" uses the namespace of service "db", which has no container yet"#), "{e}");

    // The parents are found by compose's labels: replica 1 of the service, not a one-off.
    let ctr = |id: &str, service: &str, number: &str, oneoff: &str| runtime::ContainerConfig {
        id: id.into(),
        labels: [(labels::PROJECT, "demo"), (labels::SERVICE, service), (labels::CONTAINER_NUMBER, number), (labels::ONEOFF, oneoff)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    let list =
        [ctr("run", "db", "1", "True"), ctr("two", "db", "2", "False"), ctr("one", "db", "1", "False"), ctr("x", "side", "1", "False")];
    assert_eq!(find_parents(&list, &p, side), [("db".to_string(), "one".to_string())].into());
}

/// Keys berth cannot honour are refused with the service named, before anything is created.
#[test]
fn unsupported_values_are_refused_naming_the_service() {
    let (_d, p) = load(
        r#"
services:
  userns: {image: x, userns_mode: "keep-id"}
  uts: {image: x, uts: host, hostname: web}
  mode: {image: x, network_mode: "bogus"}
"#,
        &[],
    );
    let e = spec_err(&p, "userns", &HostInputs::default());
    assert!(e.starts_with(r#"service "userns": userns_mode "keep-id" is not supported"#), "{e}");
    let e = spec_err(&p, "uts", &HostInputs::default());
    assert!(e.contains("conflicting options: hostname and the UTS mode"), "{e}");
    let e = spec_err(&p, "mode", &HostInputs::default());
    assert!(e.contains(r#"unsupported network_mode "bogus""#), "{e}");
}

/// Secrets and configs: a `file:` is bound read-only (its existence is the I/O step's to check,
/// not the pure translation's), `content:` and `environment:` become files berth writes.
#[test]
fn secrets_and_configs_are_bound_or_written_and_files_are_checked_on_the_host() {
    let (d, mut p) = load(
        r#"
services:
  web:
    image: x
    secrets: [token]
    configs: [{source: conf, target: /etc/app.conf}, {source: inline, target: api.key, mode: 0400, uid: "10"}]
secrets:
  token: {file: ./token.txt}
configs:
  conf: {file: ./app.conf}
  inline: {content: s3cret}
"#,
        &[("token.txt", "t")],
    );
    let svc = p.services["web"].clone();
    let c = container_spec(&p, &svc, &plain(), &HostInputs::default()).unwrap();
    let token = c.mounts.iter().find(|m| m.target == "/run/secrets/token").unwrap();
    assert_eq!(
        (token.kind, token.source.clone(), token.read_only),
        (MountType::Bind, d.path().join("token.txt").display().to_string(), true)
    );
    assert!(c.mounts.iter().any(|m| m.target == "/etc/app.conf" && m.kind == MountType::Bind));
    let f = &c.files[0];
    assert_eq!((f.target.as_str(), f.content.as_str(), f.mode, f.uid, f.gid), ("/api.key", "s3cret", 0o400, 10, 0));
    // app.conf does not exist: the pure spec is fine, the host check says what to do.
    let e = check_host(&p, &svc, &c).unwrap_err().to_string();
    assert!(e.contains(r#"config "conf": file "#) && e.contains("app.conf does not exist: create it, or change configs.conf.file"), "{e}");
    std::fs::write(d.path().join("app.conf"), "x").unwrap();
    check_host(&p, &svc, &c).unwrap();
    // A missing host device is the host check's too.
    p.services.get_mut("web").unwrap().devices =
        vec![crate::project::model::Device { source: "/dev/berth-no-such-device".into(), ..Default::default() }];
    let svc = p.services["web"].clone();
    let c = container_spec(&p, &svc, &plain(), &HostInputs::default()).unwrap();
    let e = check_host(&p, &svc, &c).unwrap_err().to_string();
    assert!(e.contains("devices:") && e.contains("/dev/berth-no-such-device"), "{e}");
}
