//! `berth run` and `berth exec` on compose services: the image's config merged with the
//! service's as Docker Compose does, volumes with the project's names, exit codes.
mod common;

use common::runtime::{Rt, err, make_layer_tar, out};

fn project(rt: &Rt, yaml: &str) -> String {
    let dir = rt.t.scratch().join("proj");
    std::fs::create_dir_all(&dir).unwrap();
    let tar = rt.t.scratch().join("busybox.tar");
    make_layer_tar(&tar);
    rt.t.ok([
        "image",
        "import",
        tar.to_str().unwrap(),
        "rtbusybox:latest",
        "--change",
        "CMD [\"sh\", \"-c\", \"echo image-cmd\"]",
        "--change",
        "ENV A=from-image B=image-b",
        "--change",
        "WORKDIR /tmp",
        "--change",
        "VOLUME /cache",
    ]);
    let f = dir.join("compose.yaml");
    std::fs::write(&f, yaml).unwrap();
    f.display().to_string()
}

#[test]
fn run_merges_the_image_config_with_the_service() {
    common::require_root!();
    let rt = Rt::new();
    let f = project(
        &rt,
        "services:\n  app:\n    image: rtbusybox:latest\n    environment:\n      B: from-service\n    volumes:\n      - data:/mnt\nvolumes:\n  data: {}\n",
    );
    let run = |args: &[&str]| {
        let mut v = vec!["-f", f.as_str(), "-p", "rtrun", "run", "--rm", "-T"];
        v.extend_from_slice(args);
        rt.t.run(v)
    };
    // The image's CMD, environment (overridden by the service) and working directory.
    let o = run(&["app"]);
    assert_eq!(out(&o), "image-cmd\n", "{}", err(&o));
    let o = run(&["app", "sh", "-c", "echo $A $B; pwd; echo kept > /mnt/f"]);
    assert_eq!(out(&o), "from-image from-service\n/tmp\n", "{}", err(&o));
    // The project's volume, named as compose names it, with compose's labels.
    let v: serde_json::Value = serde_json::from_str(&rt.t.ok(["volume", "inspect", "rtrun_data"])).unwrap();
    assert_eq!(v[0]["Labels"]["com.docker.compose.project"], "rtrun");
    assert_eq!(v[0]["Labels"]["com.docker.compose.volume"], "data");
    let o = run(&["-e", "C=cli", "-u", "nobody", "-w", "/", "app", "sh", "-c", "cat /mnt/f; echo $C; id -u; pwd"]);
    assert_eq!(out(&o), "kept\ncli\n65534\n/\n", "{}", err(&o));
    // --entrypoint drops the image's CMD; exit codes pass through.
    let o = run(&["--entrypoint", "sh -c", "app", "exit 5"]);
    assert_eq!(o.status.code(), Some(5), "{}", err(&o));
    // A command that cannot start: rc 1 as `docker compose run` (v2.40.3), with Docker's message.
    let o = run(&["app", "no-such-command"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("exec: \"no-such-command\": executable file not found in $PATH"), "{}", err(&o));
    // --rm: nothing is left but the named volume; the anonymous /cache volumes went too.
    assert_eq!(out(&rt.ctr(["ls", "-a", "-q"])), "");
    assert_eq!(rt.t.ok(["volume", "ls", "-q"]), "rtrun_data\n");
    // An unknown service.
    let o = rt.t.run(["-f", f.as_str(), "-p", "rtrun", "run", "-T", "nope"]);
    assert!(err(&o).contains("no such service: nope"), "{}", err(&o));
}

#[test]
fn run_detached_then_exec_by_name() {
    common::require_root!();
    let rt = Rt::new();
    let f = project(&rt, "services:\n  app:\n    image: rtbusybox:latest\n    command: [\"sleep\", \"1000\"]\n    init: true\n");
    let o = rt.t.run(["-f", f.as_str(), "-p", "rtrun2", "run", "-d", "--name", "one-off", "app"]);
    assert!(o.status.success(), "{}", err(&o));
    let v = rt.inspect("one-off");
    assert_eq!(v["State"]["Status"], "running");
    assert_eq!(v["Config"]["Labels"]["com.docker.compose.oneoff"], "True");
    assert_eq!(v["Config"]["Labels"]["com.docker.compose.service"], "app");
    assert_eq!(v["HostConfig"]["Init"], true);
    assert!(v["Image"].as_str().unwrap().starts_with("sha256:"));
    let (code, o, _) = rt.exec("one-off", &["sh", "-c", "echo $A; exit 2"]);
    assert_eq!((code, o.as_str()), (2, "from-image\n"));
    // One-off containers are not the service's containers for `berth exec`.
    let o = rt.t.run(["-f", f.as_str(), "-p", "rtrun2", "exec", "-T", "app", "true"]);
    assert!(err(&o).contains("service \"app\" is not running"), "{}", err(&o));
}
