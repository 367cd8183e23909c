//! Networking with real containers (the runtime's `__ctr` commands on a busybox layer): names,
//! isolation, internal networks, a shared namespace, published ports, and what is left after
//! stop, rm and network rm. Subnets 10.210.60-69.0/24 and 10.210.220-229.0/30, host ports
//! 42100-42199.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use common::net::*;
use common::runtime::{Rt, out};
use serde_json::{Value, json};

/// A spec for `sh -c SCRIPT` on the given networks (with aliases), as service `service` of
/// project `pb`.
fn spec(rt: &Rt, name: &str, service: &str, script: &str, networks: &[(&str, &[&str])]) -> Value {
    let mut s = rt.spec(name, script);
    s["Labels"] = json!({"com.docker.compose.project": "pb", "com.docker.compose.service": service});
    s["Endpoints"] = json!(networks.iter().map(|(n, a)| json!({"network": n, "aliases": a})).collect::<Vec<_>>());
    s
}

/// A web server answering its own name on port 80.
const WEB: &str = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www";

fn ip_on(rt: &Rt, name: &str, network: &str) -> IpAddr {
    rt.inspect(name)["NetworkSettings"]["Networks"][network]["IPAddress"].as_str().unwrap().parse().unwrap()
}

fn netns(rt: &Rt, name: &str) -> PathBuf {
    let pid = rt.inspect(name)["State"]["Pid"].as_i64().unwrap();
    PathBuf::from(format!("/proc/{pid}/ns/net"))
}

/// An HTTP GET of `/` on `host:port` from inside the container with busybox `nc` (the host's
/// busybox-static `wget` crashes without glibc's NSS modules): (success, body).
fn get(rt: &Rt, name: &str, host: &str, port: u16) -> (bool, String) {
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {host} {port}");
    let (code, o, e) = rt.exec(name, &["sh", "-c", &script]);
    let body = o.rsplit("\r\n\r\n").next().unwrap_or("").trim().to_string();
    let ok = code == 0 && (o.starts_with("HTTP/1.") || o.starts_with("outside"));
    (ok, if o.is_empty() { e.trim().to_string() } else { body })
}

#[test]
fn containers_reach_each_other_by_service_alias_and_container_name_only_on_shared_networks() {
    common::require_root!();
    let rt = Rt::new();
    rt.t.ok(["network", "create", "--subnet", "10.210.60.0/24", "pb_front"]);
    rt.t.ok(["network", "create", "--subnet", "10.210.61.0/24", "pb_other"]);
    let mut w1 = spec(&rt, "pb-web-1", "web", WEB, &[("pb_front", &["www"])]);
    w1["Hostname"] = json!("web1");
    let mut w2 = spec(&rt, "pb-web-2", "web", WEB, &[("pb_front", &[])]);
    w2["Hostname"] = json!("web2");
    rt.run_d(&w1);
    rt.run_d(&w2);
    rt.run_d(&spec(&rt, "pb-client-1", "client", "exec sleep 3600", &[("pb_front", &[])]));
    rt.run_d(&spec(&rt, "pb-stranger-1", "stranger", "exec sleep 3600", &[("pb_other", &[])]));

    // The service name, every replica.
    let (_, ns) = (0, rt.exec("pb-client-1", &["nslookup", "web"]));
    let ips = [ip_on(&rt, "pb-web-1", "pb_front"), ip_on(&rt, "pb-web-2", "pb_front")];
    for ip in ips {
        assert!(ns.1.contains(&ip.to_string()), "nslookup web: {ns:?}");
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let (ok, body) = get(&rt, "pb-client-1", "web", 80);
        assert!(ok, "get web: {body}");
        seen.insert(body);
    }
    assert_eq!(seen.len(), 2, "both replicas answer the service name: {seen:?}");
    assert_eq!(get(&rt, "pb-client-1", "www", 80), (true, "web1".to_string()), "alias");
    assert_eq!(get(&rt, "pb-client-1", "pb-web-2", 80), (true, "web2".to_string()), "container name");
    assert_eq!(get(&rt, "pb-client-1", "web1", 80), (true, "web1".to_string()), "hostname");

    // The other network neither resolves nor reaches them.
    for name in ["web", "www", "pb-web-1"] {
        let (ok, body) = get(&rt, "pb-stranger-1", name, 80);
        assert!(!ok, "{name} from another network: {body}");
    }
    let (ok, body) = get(&rt, "pb-stranger-1", &ips[0].to_string(), 80);
    assert!(!ok, "by address from another network: {body}");
}

#[test]
fn internal_networks_have_no_way_out_and_a_shared_namespace_shares_the_address() {
    common::require_root!();
    let rt = Rt::new();
    rt.t.ok(["network", "create", "--subnet", "10.210.62.0/24", "pb_out"]);
    rt.t.ok(["network", "create", "--internal", "--subnet", "10.210.63.0/24", "pb_int"]);
    let outside = Outside::new(220);
    let _probe = TcpProbe::start(Some(&outside.ns.path()), SocketAddr::new(IpAddr::V4(outside.ip), 80), "outside");
    let oip = outside.ip.to_string();

    rt.run_d(&spec(&rt, "pb-out-1", "out", "exec sleep 3600", &[("pb_out", &[])]));
    let (ok, body) = get(&rt, "pb-out-1", &oip, 80);
    assert!(ok && body.contains(&format!("outside {}", outside.host_ip)), "masqueraded: {body}");

    rt.run_d(&spec(&rt, "pb-int-1", "int", "exec sleep 3600", &[("pb_int", &[])]));
    let (ok, body) = get(&rt, "pb-int-1", &oip, 80);
    assert!(!ok, "an internal network has no way out: {body}");
    let (_, routes, _) = rt.exec("pb-int-1", &["ip", "route"]);
    assert!(!routes.contains("default"), "{routes}");

    // network_mode service:x (container:<id>) shares x's namespace, hence its address.
    let x = rt.run_d(&spec(&rt, "pb-x-1", "x", WEB, &[("pb_out", &[])]));
    let mut y = rt.spec("pb-y-1", "exec sleep 3600");
    y["NetworkMode"] = json!({"container": x});
    rt.run_d(&y);
    let (_, ya, _) = rt.exec("pb-y-1", &["ip", "-4", "addr"]);
    assert!(ya.contains(&ip_on(&rt, "pb-x-1", "pb_out").to_string()), "{ya}");
    let (ok, body) = get(&rt, "pb-y-1", "127.0.0.1", 80);
    assert!(ok && !body.is_empty(), "x's web server answers y on 127.0.0.1: {body}");
}

#[test]
fn published_ports_answer_from_the_host_and_go_with_the_container() {
    common::require_root!();
    let rt = Rt::new();
    rt.t.ok(["network", "create", "--subnet", "10.210.64.0/24", "pb_pub"]);
    let mut s = spec(&rt, "pb-web-1", "web", WEB, &[("pb_pub", &[])]);
    s["Hostname"] = json!("web1");
    s["Ports"] = json!([
        {"host_port": 42100, "container_port": 80, "protocol": "tcp"},
        {"host_port": 42101, "container_port": 5353, "protocol": "udp"},
        {"container_port": 80, "protocol": "tcp"},
    ]);
    rt.run_d(&s);
    let web_ip = ip_on(&rt, "pb-web-1", "pb_pub");
    // A UDP server in the container's network namespace.
    let _udp = UdpProbe::start(Some(&netns(&rt, "pb-web-1")), SocketAddr::new(web_ip, 5353), "udp");
    let get = |addr: SocketAddr| -> Result<String, String> {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c.write_all(b"GET / HTTP/1.0\r\n\r\n").map_err(|e| e.to_string())?;
        let mut r = String::new();
        c.read_to_string(&mut r).map_err(|e| e.to_string())?;
        Ok(r)
    };
    let lo = |p| SocketAddr::new("127.0.0.1".parse().unwrap(), p);
    assert!(get(lo(42100)).unwrap().ends_with("web1\n"));
    assert!(get(SocketAddr::new(IpAddr::V4(host_address()), 42100)).unwrap().ends_with("web1\n"));
    assert!(udp_fetch(None, lo(42101)).unwrap().starts_with("udp "));
    // The random port, as inspect (and `berth port`) report it.
    let ports = &rt.inspect("pb-web-1")["NetworkSettings"]["Ports"]["80/tcp"];
    let random: u16 = ports
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["HostPort"].as_str().unwrap().parse().unwrap())
        .find(|p| *p != 42100)
        .expect("a random host port");
    assert!(get(lo(random)).unwrap().ends_with("web1\n"));
    // The port stays published after the CLI exited (it has), and goes with the container.
    rt.ctr_ok(["stop", "-t", "1", "pb-web-1"]);
    assert!(get(lo(42100)).is_err());
    std::net::TcpListener::bind(("0.0.0.0", 42100)).expect("the port is free after stop");
}

#[test]
fn nothing_is_left_after_stop_rm_and_network_rm() {
    common::require_root!();
    let rt = Rt::new();
    rt.t.ok(["network", "create", "--subnet", "10.210.65.0/24", "pb_clean"]);
    let mut s = spec(&rt, "pb-clean-1", "clean", WEB, &[("pb_clean", &[])]);
    s["Ports"] = json!([{"host_port": 42110, "container_port": 80, "protocol": "tcp"}]);
    rt.run_d(&s);
    rt.run_d(&spec(&rt, "pb-clean-2", "clean", WEB, &[("pb_clean", &[])]));
    let root = berth::state::StateRoot::new(rt.t.root());
    let bridge = berth::net::network::list(&root).unwrap()[0].bridge.clone();
    let mut names = vec![bridge];
    for c in ["pb-clean-1", "pb-clean-2"] {
        let id = rt.inspect(c)["Id"].as_str().unwrap().to_string();
        names.push(berth::net::veth_name(&root, &id, "pb_clean"));
    }
    let before = host_view(&rt.t.root(), &names);
    assert_eq!(before.links.len(), 3, "{before:?}");
    assert!(before.nft_table && before.dns_running && before.nft_names == 1, "{before:?}");
    let eps = || berth::net::network::read_endpoints(&root, "pb_clean").unwrap().endpoints.len();
    assert_eq!(eps(), 2);

    rt.ctr_ok(["stop", "-t", "1", "pb-clean-1"]);
    rt.ctr_ok(["rm", "-f", "pb-clean-2"]);
    assert_eq!(eps(), 0, "DNS records and addresses go at stop");
    let table = berth::net::firewall::table_name(&root);
    let rules = out(&std::process::Command::new("nft").args(["list", "table", "inet", &table]).output().unwrap());
    assert!(!rules.contains("42110"), "{rules}");
    rt.ctr_ok(["rm", "pb-clean-1"]);
    rt.wait_for("the veths to go with their namespaces", Duration::from_secs(3), || host_view(&rt.t.root(), &names).links.len() == 1);
    rt.t.ok(["network", "rm", "pb_clean"]);
    let after = host_view(&rt.t.root(), &names);
    assert!(after.links.is_empty() && after.addresses.is_empty() && after.routes.is_empty(), "{after:?}");
    assert!(!after.nft_table && after.docker_user_rules == 0, "the table goes with the last network: {after:?}");
    rt.wait_for("the resolver to exit", Duration::from_secs(3), || !host_view(&rt.t.root(), &names).dns_running);
}
