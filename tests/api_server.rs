//! `berth system service` with the real docker CLI as the client (`DOCKER_HOST=unix://<socket>`;
//! dockerd is never involved): version negotiation, `docker info`, the listings of a project made
//! with `berth up` in the same root, inspect, logs, stop and rm, and a 501 for swarm.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TestRoot;
use common::compose::{Stack, wait_until};

const YAML: &str = r#"
services:
  web:
    image: busybox:latest
    command: ["sh", "-c", "echo hello-api; echo oops-api >&2; exec sleep 300"]
    volumes: [data:/data]
networks:
  default:
    ipam:
      config:
        - subnet: 10.229.14.0/24
volumes:
  data: {}
"#;

/// The server, killed (by its pid) and reaped on drop, before the root's teardown.
struct Server {
    child: Child,
    socket: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(t: &TestRoot) -> Server {
        let socket = t.scratch().join("docker.sock");
        let child = t
            .cmd(["system", "service", "--socket", socket.to_str().unwrap(), "--timeout", "0"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start berth system service");
        let s = Server { child, socket };
        let t0 = Instant::now();
        while !s.socket.exists() {
            assert!(t0.elapsed() < Duration::from_secs(10), "the API socket {} never appeared", s.socket.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    /// `docker ARGS` against this server only, with a private client config.
    fn docker(&self, config: &Path, args: &[&str]) -> Output {
        Command::new("docker")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", config)
            .args(args)
            .output()
            .expect("run docker")
    }

    #[track_caller]
    fn ok(&self, config: &Path, args: &[&str]) -> String {
        let out = self.docker(config, args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[test]
fn docker_cli_lists_inspects_logs_stops_and_removes_through_the_socket() {
    common::require_root!();
    if Command::new("docker").arg("--version").output().is_err() {
        common::skip!("no docker CLI (scripts/deps.sh installs docker.io)");
    }
    let s = Stack::in_root(TestRoot::with_prefix("berth-api-"), "apiweb", YAML);
    s.ok(["up", "-d"]);
    let mut server = Server::start(&s.t);
    let cfg = s.t.scratch().join("docker-config");
    std::fs::create_dir_all(&cfg).unwrap();
    let d = |args: &[&str]| server.ok(&cfg, args);

    // Negotiation: the CLI settles on berth's version and names the server.
    let v = d(&["version", "--format", "{{.Server.Version}} {{.Server.APIVersion}} {{.Client.APIVersion}}"]);
    assert_eq!(v.trim(), format!("{} 1.47 1.47", env!("CARGO_PKG_VERSION")), "{v}");
    let info = d(&["info", "--format", "{{.Containers}} {{.ContainersRunning}} {{.Images}} {{.OSType}}"]);
    assert_eq!(info.trim(), "1 1 1 linux");

    // The listings show what `berth up` made in the same root.
    let ps = d(&["ps", "-a", "--format", "{{.Names}} {{.State}} {{.Image}} {{.Label \"com.docker.compose.service\"}}"]);
    assert_eq!(ps.trim(), "apiweb-web-1 running busybox:latest web");
    let id = s.id("apiweb-web-1");
    assert_eq!(d(&["ps", "-q", "--no-trunc", "--filter", "label=com.docker.compose.project=apiweb"]).trim(), id);
    assert_eq!(d(&["ps", "-q", "--filter", "name=apiweb-web"]).trim(), &id[..12]);
    assert_eq!(d(&["ps", "-aq", "--filter", "status=exited"]).trim(), "");
    assert_eq!(d(&["ps", "-aq", "--filter", "label=com.docker.compose.project=other"]).trim(), "");
    assert!(d(&["images", "--format", "{{.Repository}}:{{.Tag}}"]).lines().any(|l| l == "busybox:latest"));
    assert!(d(&["network", "ls", "--format", "{{.Name}}"]).lines().any(|l| l == "apiweb_default"));
    assert!(d(&["volume", "ls", "--format", "{{.Name}}"]).lines().any(|l| l == "apiweb_data"));

    // Inspect: container, image, network, volume.
    assert_eq!(d(&["inspect", "--format", "{{.Id}} {{.State.Running}}", "apiweb-web-1"]).trim(), format!("{id} true"));
    assert!(d(&["image", "inspect", "--format", "{{.Id}}", "busybox"]).trim().starts_with("sha256:"));
    let net = d(&["network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", "apiweb_default"]);
    assert_eq!(net.trim(), "10.229.14.0/24");
    assert_eq!(d(&["volume", "inspect", "--format", "{{.Name}}", "apiweb_data"]).trim(), "apiweb_data");
    let missing = server.docker(&cfg, &["inspect", "--type", "container", "apiweb-nothing"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("No such container"), "{missing:?}");

    // Logs: the multiplexed stream, demultiplexed by the CLI onto stdout and stderr.
    // (The supervisor writes the log as the lines come: wait for both.)
    let mut logs = None;
    wait_until(Duration::from_secs(10), "both log lines through the API", || {
        let out = server.docker(&cfg, &["logs", "apiweb-web-1"]);
        let done = out.status.success() && !out.stdout.is_empty() && !out.stderr.is_empty();
        logs = Some(out);
        done
    });
    let logs = logs.unwrap();
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "hello-api\n");
    assert_eq!(String::from_utf8_lossy(&logs.stderr), "oops-api\n");

    // What berth does not do: a 501 that names the endpoint.
    let swarm = server.docker(&cfg, &["swarm", "init"]);
    assert!(!swarm.status.success());
    assert!(String::from_utf8_lossy(&swarm.stderr).contains("berth does not implement POST /swarm/init"), "{swarm:?}");

    // Raw HTTP: HEAD /_ping, unknown paths, versions out of range.
    let ping = http(&server.socket, "HEAD /_ping");
    assert!(ping.starts_with("HTTP/1.1 200 OK\r\n") && ping.to_lowercase().contains("api-version: 1.47\r\n"), "{ping}");
    let v41 = http(&server.socket, "GET /v1.41/containers/json?all=1");
    assert!(v41.starts_with("HTTP/1.1 200 OK\r\n") && v41.contains(&id), "{v41}");
    let nothing = http(&server.socket, "GET /v1.47/nothing");
    assert!(nothing.starts_with("HTTP/1.1 404 ") && nothing.ends_with("{\"message\":\"page not found\"}\n"), "{nothing}");
    let new = http(&server.socket, "GET /v1.99/version");
    assert!(new.starts_with("HTTP/1.1 400 ") && new.contains("Maximum supported API version is 1.47"), "{new}");
    let filt = http(&server.socket, "GET /containers/json?filters=%7Bbad");
    assert!(filt.starts_with("HTTP/1.1 400 ") && filt.contains("invalid filters"), "{filt}");

    // Actions: restart, kill (137 for `wait`), start.
    assert_eq!(d(&["restart", "-t", "1", "apiweb-web-1"]).trim(), "apiweb-web-1");
    assert_eq!(s.status("apiweb-web-1"), "running");
    assert_eq!(d(&["kill", "apiweb-web-1"]).trim(), "apiweb-web-1");
    assert_eq!(d(&["wait", "apiweb-web-1"]).trim(), "137");
    assert_eq!(d(&["start", "apiweb-web-1"]).trim(), "apiweb-web-1");
    assert_eq!(s.status("apiweb-web-1"), "running");

    // Killing the server (-9) stops no container; the next one replaces the dead socket.
    drop(server);
    assert_eq!(s.status("apiweb-web-1"), "running");
    server = Server::start(&s.t);
    let d = |args: &[&str]| server.ok(&cfg, args);
    assert_eq!(d(&["ps", "--format", "{{.Names}}"]).trim(), "apiweb-web-1");

    // `logs -f` streams until the container stops.
    let follow = Command::new("docker")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DOCKER_HOST", format!("unix://{}", server.socket.display()))
        .env("DOCKER_CONFIG", &cfg)
        .args(["logs", "-f", "--tail", "2", "apiweb-web-1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // Removing a running container is a conflict; stop, then rm.
    let rm = server.docker(&cfg, &["rm", "apiweb-web-1"]);
    assert!(!rm.status.success(), "rm of a running container succeeded");
    assert_eq!(d(&["stop", "-t", "1", "apiweb-web-1"]).trim(), "apiweb-web-1");
    let followed = follow.wait_with_output().unwrap();
    assert!(followed.status.success(), "{followed:?}");
    assert!(String::from_utf8_lossy(&followed.stdout).ends_with("hello-api\n"), "{followed:?}");
    assert_eq!(d(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]).trim(), "apiweb-web-1 exited");
    assert_eq!(s.status("apiweb-web-1"), "exited");
    assert_eq!(d(&["rm", "apiweb-web-1"]).trim(), "apiweb-web-1");
    assert_eq!(d(&["ps", "-aq"]).trim(), "");
    assert!(s.containers().is_empty());
    s.ok(["down", "-v"]);
}

/// One HTTP/1.1 request on the socket ("METHOD PATH"), the whole response as text.
fn http(socket: &Path, request: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::os::unix::net::UnixStream::connect(socket).expect("connect to the API socket");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(c, "{request} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out
}

#[test]
fn idle_server_exits_and_removes_its_socket() {
    common::require_root!();
    let t = TestRoot::with_prefix("berth-api-");
    let socket = t.scratch().join("idle.sock");
    let mut child = t.cmd(["system", "service", "--socket", socket.to_str().unwrap(), "--timeout", "1"]).spawn().unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not exit after 1 s idle");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(!socket.exists(), "the socket was left behind");
}

/// Socket activation: `systemd-socket-activate` binds the socket and passes it as fd 3 with
/// `LISTEN_PID`/`LISTEN_FDS`, as `contrib/systemd/berth.socket` does; berth serves on it.
#[test]
fn serves_a_socket_passed_by_systemd() {
    common::require_root!();
    let Ok(activate) = which("systemd-socket-activate") else {
        common::skip!("no systemd-socket-activate (package systemd)");
    };
    let t = TestRoot::with_prefix("berth-api-");
    let socket = t.scratch().join("activated.sock");
    let mut c = t.cmd(["system", "service", "--socket", socket.to_str().unwrap(), "--timeout", "0"]);
    // The same command, run by systemd-socket-activate (which execs it with the socket as fd 3).
    let argv: Vec<std::ffi::OsString> =
        std::iter::once(c.get_program().to_os_string()).chain(c.get_args().map(|a| a.to_os_string())).collect();
    c = Command::new(activate);
    c.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default()).arg("-l").arg(&socket).args(&argv).stderr(Stdio::null());
    let server = Server { child: c.spawn().unwrap(), socket: socket.clone() };
    let t0 = Instant::now();
    while !socket.exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "systemd-socket-activate never made {}", socket.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    let cfg = t.scratch().join("docker-config");
    std::fs::create_dir_all(&cfg).unwrap();
    assert_eq!(server.ok(&cfg, &["version", "--format", "{{.Server.APIVersion}}"]).trim(), "1.47");
    assert_eq!(server.ok(&cfg, &["ps", "-aq"]).trim(), "");
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH").iter().flat_map(std::env::split_paths).map(|d| d.join(name)).find(|p| p.is_file()).ok_or(())
}
