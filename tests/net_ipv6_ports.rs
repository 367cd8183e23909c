//! Published ports on IPv6, through `berth up` as a user runs it: a port published without a
//! host address answers on `[::1]` (TCP and UDP) as well as 127.0.0.1, `ps` and `port` show both
//! bindings as compose does, an IPv4 host address stays IPv4, and after `rm`/`down` nothing
//! listens. Subnets 10.210.90-91.0/24, host ports 42300-42319.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use common::compose::{Stack, wait_until};
use common::net::UdpProbe;

fn ipv6_on() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6").is_ok_and(|s| s.trim() == "0")
}

fn tcp_get(addr: SocketAddr) -> Result<String, String> {
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").map_err(|e| e.to_string())?;
    let mut r = String::new();
    c.read_to_string(&mut r).map_err(|e| e.to_string())?;
    Ok(r)
}

fn udp_ask(addr: SocketAddr, msg: &str) -> Result<String, String> {
    let bind = if addr.is_ipv6() { "[::1]:0" } else { "127.0.0.1:0" };
    let u = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    u.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut b = [0u8; 256];
    for _ in 0..6 {
        u.send_to(msg.as_bytes(), addr).map_err(|e| e.to_string())?;
        if let Ok(n) = u.recv(&mut b) {
            return Ok(String::from_utf8_lossy(&b[..n]).into_owned());
        }
    }
    Err(format!("no UDP answer from {addr}"))
}

/// Whether anything listens on (TCP) or is bound to (UDP) `port`, per `ss`.
fn listening(port: u16) -> Vec<String> {
    let o = std::process::Command::new("ss").args(["-Htlnu"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.contains(&format!(":{port} "))).map(String::from).collect()
}

const YAML: &str = r#"
services:
  web:
    image: busybox
    hostname: web6
    command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports:
      - "42300:80"
      - "42301:53/udp"
      - "127.0.0.1:42302:80"
      - "[::1]:42303:80"
networks:
  default:
    ipam:
      config:
        - subnet: 10.210.90.0/24
"#;

#[test]
fn ports_without_a_host_address_answer_on_ipv6_loopback_too() {
    common::require_root!();
    if !ipv6_on() {
        common::skip!("IPv6 is disabled on this host");
    }
    let s = Stack::new("netv6", YAML);
    s.ok(["up", "-d"]);
    // TCP on both families; the page is the container's.
    let v6: SocketAddr = "[::1]:42300".parse().unwrap();
    wait_until(Duration::from_secs(5), "the web server to answer on [::1]", || tcp_get(v6).is_ok_and(|r| r.ends_with("web6\n")));
    assert!(tcp_get("127.0.0.1:42300".parse().unwrap()).unwrap().ends_with("web6\n"));
    // An explicit [::1] binds there only.
    assert!(tcp_get("[::1]:42303".parse().unwrap()).unwrap().ends_with("web6\n"));
    assert!(tcp_get("127.0.0.1:42303".parse().unwrap()).is_err(), "[::1] must not bind IPv4");
    // An IPv4 host address does not listen on IPv6.
    assert!(tcp_get("127.0.0.1:42302".parse().unwrap()).unwrap().ends_with("web6\n"));
    assert!(tcp_get("[::1]:42302".parse().unwrap()).is_err(), "127.0.0.1 must not bind IPv6");
    let l = listening(42302);
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(l[0].contains("127.0.0.1:42302"), "{l:?}");
    // UDP through the forwarder, to a server in the container's namespace (which sees the
    // forwarder come from its gateway, as docker-proxy's clients do).
    let web = s.inspect("netv6-web-1").unwrap();
    let pid = web["State"]["Pid"].as_i64().unwrap();
    let ip: std::net::IpAddr = web["NetworkSettings"]["Networks"]["netv6_default"]["IPAddress"].as_str().unwrap().parse().unwrap();
    let ns = std::path::PathBuf::from(format!("/proc/{pid}/ns/net"));
    let probe = UdpProbe::start(Some(&ns), SocketAddr::new(ip, 53), "udp");
    assert_eq!(udp_ask("[::1]:42301".parse().unwrap(), "hello").unwrap().trim(), "udp 10.210.90.1");
    assert!(udp_ask("127.0.0.1:42301".parse().unwrap(), "hello").unwrap().starts_with("udp "));
    drop(probe);
    // ps and port show both bindings as compose does.
    let (ps, _) = s.ok(["ps", "--format", "{{.Ports}}"]);
    assert_eq!(
        ps.trim(),
        "0.0.0.0:42301->53/udp, [::]:42301->53/udp, 0.0.0.0:42300->80/tcp, 127.0.0.1:42302->80/tcp, [::]:42300->80/tcp, [::1]:42303->80/tcp"
    );
    assert_eq!(s.ok(["port", "web", "80"]).0.trim(), "0.0.0.0:42300");
    assert_eq!(s.ok(["port", "--protocol", "udp", "web", "53"]).0.trim(), "0.0.0.0:42301");

    s.ok(["rm", "-s", "-f", "web"]);
    for p in 42300..=42303 {
        assert!(listening(p).is_empty(), "port {p} still bound after rm: {:?}", listening(p));
    }
    s.ok(["up", "-d"]);
    wait_until(Duration::from_secs(5), "the web server to answer on [::1] again", || tcp_get(v6).is_ok());
    s.ok(["down", "-t", "0"]);
    for p in 42300..=42303 {
        assert!(listening(p).is_empty(), "port {p} still bound after down: {:?}", listening(p));
    }
    assert!(tcp_get(v6).is_err());
}
