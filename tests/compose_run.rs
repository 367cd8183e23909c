//! `run` with its dependencies, published ports (`-p`, `--service-ports`), `--no-deps`, and
//! one-off containers removed by `down --remove-orphans`.
mod common;

use std::time::Duration;

use common::compose::{Stack, free_port, http_get};

#[test]
fn run_starts_dependencies_and_publishes_on_request() {
    common::require_root!();
    let (p1, p2) = (free_port(), free_port() + 1);
    let s = Stack::new(
        "crun",
        &format!(
            "services:
  db:
    image: busybox
    command: [\"sh\", \"-c\", \"mkdir -p /www && echo db-page > /www/index.html && exec httpd -f -p 80 -h /www\"]
    healthcheck: {{test: [\"CMD\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1/\"], interval: 200ms}}
  web:
    image: busybox
    command: [\"sh\", \"-c\", \"mkdir -p /www && echo web-page > /www/index.html && exec httpd -f -p 80 -h /www\"]
    ports: [\"{p1}:80\"]
    depends_on: {{db: {{condition: service_healthy}}}}
"
        ),
    );
    // The dependency is brought up (healthy) first, and reached by its service name.
    let (out, err) = s.ok(["run", "--rm", "-T", "web", "wget", "-q", "-O", "-", "http://db/"]);
    assert_eq!(out, "db-page\n", "{err}");
    assert!(err.contains(" Container crun-db-1  Healthy"), "{err}");
    assert_eq!(s.status("crun-db-1"), "running");
    assert_eq!(s.containers(), ["crun-db-1"], "--rm removed the one-off; web itself was not started");
    // The service's ports only with --service-ports; -p publishes others.
    let (id, _) = s.ok(["run", "-d", "--service-ports", "-p", &format!("127.0.0.1:{p2}:80"), "web"]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64);
    let page = http_get(p1, Duration::from_secs(10)).expect("the service port");
    assert!(page.contains("web-page"), "{page}");
    assert!(http_get(p2, Duration::from_secs(10)).is_some_and(|p| p.contains("web-page")));
    let c = s.inspect(&id).unwrap();
    let name = c["Name"].as_str().unwrap().trim_start_matches('/').to_string();
    assert!(name.starts_with("crun-web-run-") && name.len() == "crun-web-run-".len() + 12, "{name}");
    assert_eq!(c["Config"]["Labels"]["com.docker.compose.oneoff"], "True");
    // --no-deps with the dependency stopped: it stays stopped.
    s.ok(["stop", "-t", "1", "db"]);
    let (out, _) = s.ok(["run", "--rm", "-T", "--no-deps", "db", "echo", "alone"]);
    assert_eq!(out, "alone\n");
    assert_eq!(s.status("crun-db-1"), "exited");
    // -v reads as a short `volumes:` entry: a relative bind, read-only with `:ro`.
    std::fs::create_dir_all(s.dir.join("data")).unwrap();
    std::fs::write(s.dir.join("data/f"), "from the host\n").unwrap();
    let (out, _) =
        s.ok(["run", "--rm", "-T", "--no-deps", "-v", "./data:/data:ro", "db", "sh", "-c", "cat /data/f; touch /data/x || echo ro"]);
    assert_eq!(out, "from the host\nro\n");
    // down leaves one-offs (and says the network is in use); --remove-orphans removes them.
    let (_, err) = s.ok(["down", "-t", "0"]);
    assert!(err.contains("Resource is still in use"), "{err}");
    assert_eq!(s.containers(), std::slice::from_ref(&name));
    s.ok(["down", "-t", "0", "--remove-orphans"]);
    assert!(s.containers().is_empty());
    assert!(s.networks().is_empty());
}
