//! Compose `secrets:` and `configs:`: files from `file:`, `environment:` and `content:`, at
//! their default or given targets, with the owner and mode compose gives them, read-only; and
//! clear errors for a missing file, an unset variable and an external secret.
mod common;

use common::runtime::{Rt, err, out};

fn project(rt: &Rt, yaml: &str) -> String {
    rt.compose_file("proj", "rtbusybox:latest", yaml)
}

const STACK: &str = r#"services:
  app:
    image: rtbusybox:latest
    secrets:
      - s1
      - source: s2
        target: sub/two
        uid: "100"
        gid: "200"
        mode: 0400
    configs:
      - c1
      - source: c2
        target: /etc/app/c2.conf
        uid: "7"
        gid: "8"
        mode: 0600
      - source: c3
        target: cfgenv
secrets:
  s1:
    file: ./s1.txt
  s2:
    environment: RTSECRET
configs:
  c1:
    file: ./c1.txt
  c2:
    content: "inline ${RTSECRET} $$HOME"
  c3:
    environment: RTSECRET
"#;

#[test]
fn a_service_reads_its_secrets_and_configs() {
    common::require_root!();
    let rt = Rt::new();
    let f = project(&rt, STACK);
    let dir = std::path::Path::new(&f).parent().unwrap().to_path_buf();
    std::fs::write(dir.join("s1.txt"), "top-secret\n").unwrap();
    std::os::unix::fs::chown(dir.join("s1.txt"), Some(1234), Some(1235)).unwrap();
    std::fs::set_permissions(dir.join("s1.txt"), std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    std::fs::write(dir.join("c1.txt"), "from-file\n").unwrap();
    std::fs::write(dir.join(".env"), "RTSECRET=env-value\n").unwrap();
    let script = "for f in /run/secrets/s1 /run/secrets/sub/two /c1 /etc/app/c2.conf /cfgenv; do \
                  stat -c '%n %a %u %g' $f; cat $f; echo; done; \
                  echo x > /run/secrets/s1 2>/dev/null && echo WRITABLE; echo x > /cfgenv 2>/dev/null && echo WRITABLE; true";
    let o = rt.t.run(["-f", f.as_str(), "-p", "rtsecrets", "run", "--rm", "-T", "app", "sh", "-c", script]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        out(&o),
        // A file: keeps its own owner and mode (compose ignores uid/gid/mode there); generated
        // files get the asked owner and mode, 0444 by default.
        "/run/secrets/s1 640 1234 1235\ntop-secret\n\n\
         /run/secrets/sub/two 400 100 200\nenv-value\n\
         /c1 644 0 0\nfrom-file\n\n\
         /etc/app/c2.conf 600 7 8\ninline env-value $HOME\n\
         /cfgenv 444 0 0\nenv-value\n",
        "{}",
        err(&o)
    );
    // Nothing is left: the generated files went with the container.
    assert_eq!(out(&rt.ctr(["ls", "-a", "-q"])), "");
    let left: Vec<_> = std::fs::read_dir(rt.t.root().join("containers"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The config keeps the mount, never the secret's content.
    let o = rt.t.run(["-f", f.as_str(), "-p", "rtsecrets", "run", "-d", "--name", "rtsecrets-keep", "app", "sleep", "100"]);
    assert!(o.status.success(), "{}", err(&o));
    let id = rt.inspect("rtsecrets-keep")["Id"].as_str().unwrap().to_string();
    let config = std::fs::read_to_string(rt.t.root().join("containers").join(&id).join("config.json")).unwrap();
    assert!(!config.contains("env-value"), "{config}");
    rt.ctr_ok(["rm", "-f", "rtsecrets-keep"]);
}

#[test]
fn a_missing_secret_file_an_unset_variable_and_an_external_secret_are_clear_errors() {
    common::require_root!();
    let rt = Rt::new();
    let run = |f: &str| rt.t.run(["-f", f, "-p", "rtsecrets2", "run", "--rm", "-T", "app", "true"]);
    let f = project(&rt, "services:\n  app:\n    image: rtbusybox:latest\n    secrets: [db]\nsecrets:\n  db:\n    file: ./missing.txt\n");
    let o = run(&f);
    assert!(!o.status.success());
    let missing = std::path::Path::new(&f).parent().unwrap().join("missing.txt");
    let e = err(&o);
    assert!(
        e.contains("service \"app\"") && e.contains("secret \"db\"") && e.contains(&format!("file {} does not exist", missing.display())),
        "{e}"
    );

    let f = project(
        &rt,
        "services:\n  app:\n    image: rtbusybox:latest\n    configs: [c]\nconfigs:\n  c:\n    environment: RT_NOT_SET_ANYWHERE\n",
    );
    let e = err(&run(&f));
    assert!(e.contains("service \"app\"") && e.contains("config \"c\"") && e.contains("RT_NOT_SET_ANYWHERE\" is not set"), "{e}");

    let f = project(&rt, "services:\n  app:\n    image: rtbusybox:latest\n    secrets: [ext]\nsecrets:\n  ext:\n    external: true\n");
    let e = err(&run(&f));
    assert!(e.contains("service \"app\"") && e.contains("secret \"ext\" is external"), "{e}");
    assert_eq!(out(&rt.ctr(["ls", "-a", "-q"])), "");
}
