//! Containers on berth networks, with network namespaces standing in for containers: names,
//! isolation, internal networks, NAT, published ports, and what is left after they go.
//! Subnets 10.210.20-59.0/24 and 10.210.230-249.0/30, host ports 42000-42099.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use berth::net::{self, AttachRequest, AttachResult, EndpointRequest, PortRequest, Protocol};
use berth::state::StateRoot;
use common::TestRoot;
use common::net::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

fn setup() -> (TestRoot, StateRoot) {
    common::expect_root();
    use_built_berth();
    let t = TestRoot::new();
    let root = StateRoot::new(t.root());
    (t, root)
}

struct C {
    id: String,
    name: String,
    ns: Netns,
}

fn container(name: &str) -> C {
    C { id: berth::util::id::new_id(), name: name.into(), ns: Netns::new() }
}

fn request(c: &C, service: Option<&str>, networks: &[(&str, &[&str])]) -> AttachRequest {
    AttachRequest {
        container_id: c.id.clone(),
        container_name: c.name.clone(),
        hostname: format!("{}-host", c.name),
        project: Some("demo".into()),
        service: service.map(str::to_string),
        netns_path: c.ns.path(),
        endpoints: networks
            .iter()
            .map(|(n, aliases)| EndpointRequest {
                network: n.to_string(),
                aliases: aliases.iter().map(|a| a.to_string()).collect(),
                ..Default::default()
            })
            .collect(),
        ports: Vec::new(),
        dns_servers: Vec::new(),
    }
}

fn ip4(r: &AttachResult) -> Ipv4Addr {
    r.attachment.endpoints[0].ipv4.unwrap()
}

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Polls `f` until it returns true or two seconds pass (the resolver reloads on inotify).
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn services_resolve_by_name_alias_and_container_name_only_on_shared_networks() {
    common::require_root!();
    let (t, root) = setup();
    t.ok(["network", "create", "--subnet", "10.210.20.0/24", "dns_front"]);
    t.ok(["network", "create", "--subnet", "10.210.21.0/24", "dns_other"]);
    let upstream = FakeUpstream::start(None, a("127.0.20.53"));
    let web1 = container("demo-web-1");
    let web2 = container("demo-web-2");
    let api = container("demo-api-1");
    let other = container("other-1");
    let mut reqs = vec![
        request(&web1, Some("web"), &[("dns_front", &["www"])]),
        request(&web2, Some("web"), &[("dns_front", &[])]),
        request(&api, Some("api"), &[("dns_front", &[])]),
        request(&other, Some("other"), &[("dns_other", &[])]),
    ];
    for r in &mut reqs {
        r.dns_servers = vec![a("127.0.20.53")];
    }
    let res: Vec<AttachResult> = reqs.iter().map(|r| net::attach(&root, r).unwrap()).collect();
    let gw = a("10.210.20.1");
    assert_eq!(res[0].attachment.nameservers, vec![gw]);
    let (web1_ip, web2_ip) = (IpAddr::V4(ip4(&res[0])), IpAddr::V4(ip4(&res[1])));
    let api_ns = api.ns.path();

    // The service name gives every replica, in rotating order.
    let first = dns_udp(Some(&api_ns), gw, "web", RecordType::A).unwrap();
    assert_eq!(first.rcode, ResponseCode::NoError);
    let mut got = first.addrs.clone();
    got.sort();
    let mut want = vec![web1_ip, web2_ip];
    want.sort();
    assert_eq!(got, want);
    // Clients ask AAAA beside A for each name: A answers still rotate.
    dns_udp(Some(&api_ns), gw, "web", RecordType::AAAA).unwrap();
    let second = dns_udp(Some(&api_ns), gw, "web", RecordType::A).unwrap();
    assert_ne!(first.addrs, second.addrs, "answers rotate");
    // Alias, container name, hostname, short id; over TCP too.
    assert_eq!(dns_udp(Some(&api_ns), gw, "www", RecordType::A).unwrap().addrs, vec![web1_ip]);
    assert_eq!(dns_udp(Some(&api_ns), gw, "demo-web-2", RecordType::A).unwrap().addrs, vec![web2_ip]);
    assert_eq!(dns_tcp(Some(&api_ns), gw, "DEMO-WEB-1.", RecordType::A).unwrap().addrs, vec![web1_ip]);
    assert_eq!(dns_udp(Some(&api_ns), gw, "demo-web-1-host", RecordType::A).unwrap().addrs, vec![web1_ip]);
    assert_eq!(dns_udp(Some(&api_ns), gw, &web2.id[..12], RecordType::A).unwrap().addrs, vec![web2_ip]);
    // A name without IPv6 has no AAAA record, but exists.
    let aaaa = dns_udp(Some(&api_ns), gw, "web", RecordType::AAAA).unwrap();
    assert_eq!((aaaa.rcode, aaaa.addrs.len()), (ResponseCode::NoError, 0));
    // PTR for a container address.
    let arpa = match web1_ip {
        IpAddr::V4(v) => {
            let o = v.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        _ => unreachable!(),
    };
    assert_eq!(dns_udp(Some(&api_ns), gw, &arpa, RecordType::PTR).unwrap().names, vec!["demo-web-1.dns_front."]);
    // Other names are forwarded to the upstream.
    let fwd = dns_udp(Some(&api_ns), gw, "x.upstream.test", RecordType::A).unwrap();
    assert_eq!(fwd.addrs, vec![a("10.210.99.99")]);
    let nx = dns_udp(Some(&api_ns), gw, "nothing.example", RecordType::A).unwrap();
    assert_eq!(nx.rcode, ResponseCode::NXDomain);

    // Reachable by the resolved address.
    let _probe = TcpProbe::start(Some(&web1.ns.path()), SocketAddr::new(web1_ip, 42000), "web1");
    assert_eq!(tcp_fetch(Some(&api_ns), SocketAddr::new(web1_ip, 42000)).unwrap(), format!("web1 {}", ip4(&res[2])));

    // Another network neither resolves nor reaches them.
    let ogw = a("10.210.21.1");
    let other_ns = other.ns.path();
    for name in ["web", "www", "demo-web-1", "demo-api-1"] {
        let r = dns_udp(Some(&other_ns), ogw, name, RecordType::A).unwrap();
        assert_eq!((r.rcode, r.addrs.len()), (ResponseCode::NXDomain, 0), "{name} from another network");
    }
    assert!(dns_udp(Some(&other_ns), ogw, &arpa, RecordType::PTR).unwrap().names.is_empty());
    assert!(tcp_fetch(Some(&other_ns), SocketAddr::new(web1_ip, 42000)).is_err(), "isolated networks");
    // The other network's own names work.
    assert_eq!(dns_udp(Some(&other_ns), ogw, "other", RecordType::A).unwrap().addrs, vec![IpAddr::V4(ip4(&res[3]))]);

    // Scaling: a replica that stops disappears, a new one appears, with no restart of the resolver.
    let pid = std::fs::read_to_string(t.root().join("dns/dns.pid")).unwrap();
    net::detach(&root, &web2.id).unwrap();
    assert!(eventually(|| dns_udp(Some(&api_ns), gw, "web", RecordType::A).unwrap().addrs == vec![web1_ip]));
    let web3 = container("demo-web-3");
    let r3 = net::attach(&root, &request(&web3, Some("web"), &[("dns_front", &[])])).unwrap();
    // A new container's names answer as soon as attach returns.
    assert_eq!(dns_udp(Some(&api_ns), gw, "web", RecordType::A).unwrap().addrs.len(), 2);
    assert!(dns_udp(Some(&api_ns), gw, "demo-web-3", RecordType::A).unwrap().addrs.contains(&IpAddr::V4(ip4(&r3))));
    assert_eq!(std::fs::read_to_string(t.root().join("dns/dns.pid")).unwrap(), pid, "the resolver was not restarted");
    assert!(upstream.queries.load(std::sync::atomic::Ordering::Relaxed) >= 2);
}

#[test]
fn internal_networks_have_no_way_out_and_others_are_masqueraded() {
    common::require_root!();
    let (t, root) = setup();
    t.ok(["network", "create", "--subnet", "10.210.30.0/24", "nat_out"]);
    t.ok(["network", "create", "--internal", "--subnet", "10.210.31.0/24", "nat_int"]);
    let outside = Outside::new(230);
    let _probe = TcpProbe::start(Some(&outside.ns.path()), SocketAddr::new(IpAddr::V4(outside.ip), 42020), "outside");
    let target = SocketAddr::new(IpAddr::V4(outside.ip), 42020);

    let out = container("nat-out-1");
    net::attach(&root, &request(&out, Some("out"), &[("nat_out", &[])])).unwrap();
    // Masqueraded: the outside sees the host's address, not the container's.
    assert_eq!(tcp_fetch(Some(&out.ns.path()), target).unwrap(), format!("outside {}", outside.host_ip));

    let int = container("nat-int-1");
    let mut req = request(&int, Some("int"), &[("nat_int", &[])]);
    req.dns_servers = vec![a("127.0.30.53")];
    let ri = net::attach(&root, &req).unwrap();
    let e = tcp_fetch(Some(&int.ns.path()), target).unwrap_err();
    assert!(e.contains("unreachable"), "an internal network has no route out: {e}");
    // Names on the internal network resolve; nothing is forwarded from it.
    let gw = a("10.210.31.1");
    assert_eq!(dns_udp(Some(&int.ns.path()), gw, "int", RecordType::A).unwrap().addrs, vec![IpAddr::V4(ip4(&ri))]);
    assert_eq!(dns_udp(Some(&int.ns.path()), gw, "x.upstream.test", RecordType::A).unwrap().rcode, ResponseCode::Refused);
    let routes = int.ns.busybox(&["ip", "route"]);
    assert!(!String::from_utf8_lossy(&routes.stdout).contains("default"), "no default route");

    // A container on both goes out through the non-internal one.
    let both = container("nat-both-1");
    net::attach(&root, &request(&both, Some("both"), &[("nat_int", &[]), ("nat_out", &[])])).unwrap();
    assert_eq!(tcp_fetch(Some(&both.ns.path()), target).unwrap(), format!("outside {}", outside.host_ip));
    // Another host reaching the gateway gets no answer: the resolver is not an open one.
    let q = dns_udp_within(Some(&outside.ns.path()), a("10.210.30.1"), "out", RecordType::A, Duration::from_millis(800));
    assert!(q.is_err(), "{q:?}");
    // The outside cannot open connections to containers that publish nothing.
    let out_ip = net::network::read_endpoints(&root, "nat_out").unwrap().endpoints[&out.id].ipv4.unwrap();
    let _p2 = TcpProbe::start(Some(&out.ns.path()), SocketAddr::new(IpAddr::V4(out_ip), 42021), "out");
    assert!(tcp_fetch(Some(&outside.ns.path()), SocketAddr::new(IpAddr::V4(out_ip), 42021)).is_err());
}

#[test]
fn published_ports_answer_on_loopback_the_host_address_and_from_outside() {
    common::require_root!();
    let (t, root) = setup();
    t.ok(["network", "create", "--subnet", "10.210.40.0/24", "pub_net"]);
    let outside = Outside::new(240);
    let web = container("demo-web-1");
    let mut req = request(&web, Some("web"), &[("pub_net", &[])]);
    let p = |host_ip: Option<&str>, host_port: Option<u16>, container_port: u16, protocol| PortRequest {
        host_ip: host_ip.map(a),
        host_port,
        container_port,
        protocol,
        host_port_end: None,
    };
    req.ports = vec![
        p(None, Some(42040), 80, Protocol::Tcp),
        p(None, Some(42041), 5353, Protocol::Udp),
        p(None, None, 80, Protocol::Tcp),
        p(Some("127.0.0.1"), Some(42042), 80, Protocol::Tcp),
    ];
    let res = net::attach(&root, &req).unwrap();
    let web_ip = IpAddr::V4(ip4(&res));
    let _tcp = TcpProbe::start(Some(&web.ns.path()), SocketAddr::new(web_ip, 80), "web");
    let _udp = UdpProbe::start(Some(&web.ns.path()), SocketAddr::new(web_ip, 5353), "web-udp");
    let gw = "10.210.40.1";
    let lo = |port| SocketAddr::new(a("127.0.0.1"), port);
    let host = IpAddr::V4(host_address());

    // From the host, on 127.0.0.1 and on its own address.
    assert_eq!(tcp_fetch(None, lo(42040)).unwrap(), format!("web {gw}"));
    assert!(tcp_fetch(None, SocketAddr::new(host, 42040)).unwrap().starts_with("web "));
    assert!(udp_fetch(None, lo(42041)).unwrap().starts_with("web-udp "));
    assert!(udp_fetch(None, SocketAddr::new(host, 42041)).unwrap().starts_with("web-udp "));
    // A random host port, reported in the attachment.
    let random = res
        .attachment
        .ports
        .iter()
        .find(|p| p.container_port == 80 && p.host_port != 42040 && p.host_port != 42042)
        .expect("the random port is reported")
        .host_port;
    assert!(random >= 1024, "{random}");
    assert!(tcp_fetch(None, lo(random)).unwrap().starts_with("web "));
    // From another host, through this host's address (kernel DNAT); the source is preserved.
    let via = SocketAddr::new(IpAddr::V4(outside.host_ip), 42040);
    assert_eq!(tcp_fetch(Some(&outside.ns.path()), via).unwrap(), format!("web {}", outside.ip));
    // A port published on 127.0.0.1 only answers there.
    assert!(tcp_fetch(None, lo(42042)).unwrap().starts_with("web "));
    assert!(tcp_fetch(Some(&outside.ns.path()), SocketAddr::new(IpAddr::V4(outside.host_ip), 42042)).is_err());
    // Hairpin: a container reaching a port its own network publishes, by the host's address.
    let peer = container("demo-peer-1");
    net::attach(&root, &request(&peer, Some("peer"), &[("pub_net", &[])])).unwrap();
    assert!(tcp_fetch(Some(&peer.ns.path()), SocketAddr::new(host, 42040)).unwrap().starts_with("web "));

    // The port is held: another container cannot take it, and the error says who has it.
    let other = container("demo-other-1");
    let mut req2 = request(&other, Some("other"), &[("pub_net", &[])]);
    req2.ports = vec![p(None, Some(42040), 80, Protocol::Tcp)];
    let e = net::attach(&root, &req2).unwrap_err().to_string();
    assert!(e.contains("42040/tcp") && e.contains("project demo, service web"), "{e}");
    // ... and nothing of the failed attach stays.
    assert!(!net::network::read_endpoints(&root, "pub_net").unwrap().endpoints.contains_key(&other.id));
    // Any other program is refused the port too.
    assert!(std::net::TcpListener::bind(("0.0.0.0", 42040)).is_err());

    // Once the container is gone, the ports are free and answer no more.
    drop(res);
    net::detach(&root, &web.id).unwrap();
    assert!(tcp_fetch(None, lo(42040)).is_err());
    std::net::TcpListener::bind(("0.0.0.0", 42040)).expect("the port is free again");
}

#[test]
fn nothing_is_left_after_detach_and_network_rm() {
    common::require_root!();
    let (t, root) = setup();
    t.ok(["network", "create", "--subnet", "10.210.50.0/24", "clean_a"]);
    t.ok(["network", "create", "--internal", "--subnet", "10.210.51.0/24", "clean_b"]);
    let c1 = container("clean-1");
    let c2 = container("clean-2");
    let mut r1 = request(&c1, Some("one"), &[("clean_a", &[]), ("clean_b", &[])]);
    r1.ports = vec![PortRequest { host_port: Some(42050), container_port: 80, ..Default::default() }];
    let res1 = net::attach(&root, &r1).unwrap();
    let res2 = net::attach(&root, &request(&c2, Some("two"), &[("clean_a", &[])])).unwrap();
    let mut names: Vec<String> = net::network::list(&root).unwrap().into_iter().map(|n| n.bridge).collect();
    for r in [&res1, &res2] {
        names.extend(r.attachment.endpoints.iter().map(|e| e.host_interface.clone()));
    }
    let before = host_view(&t.root(), &names);
    assert_eq!(before.links.len(), 5, "{before:?}");
    assert!(before.addresses.contains(&"10.210.50.1/24".to_string()), "{before:?}");
    assert!(before.routes.contains(&"10.210.51.0/24".to_string()), "{before:?}");
    assert!(before.nft_table && before.dns_running, "{before:?}");
    assert_eq!(before.nft_names, 2, "both bridges are in the table's sets: {before:?}");
    let docker =
        std::process::Command::new("nft").args(["list", "chain", "ip", "filter", "DOCKER-USER"]).output().unwrap().status.success();
    if docker {
        // One pair per root (`iifname/oifname "berth*" accept`), whatever its number of networks.
        assert_eq!(before.docker_user_rules, 2, "{before:?}");
    }
    // The network in use cannot be removed.
    let out = t.run(["network", "rm", "clean_a"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("clean-1"));

    // Stop: the namespaces die, the supervisors detach.
    drop((res1, res2));
    drop(c1.ns);
    drop(c2.ns);
    net::detach(&root, &c1.id).unwrap();
    net::detach(&root, &c2.id).unwrap();
    net::detach(&root, &c2.id).unwrap(); // idempotent
    // The veths go with their namespaces (the kernel cleans them up shortly after).
    assert!(eventually(|| host_view(&t.root(), &names).links.len() == 2), "only the bridges stay: {:?}", host_view(&t.root(), &names));
    let table = berth::net::firewall::table_name(&root);
    let rules =
        String::from_utf8_lossy(&std::process::Command::new("nft").args(["list", "table", "inet", &table]).output().unwrap().stdout)
            .to_string();
    assert!(!rules.contains("42050"), "the DNAT element is gone:\n{rules}");

    t.ok(["network", "rm", "clean_a", "clean_b"]);
    let after = host_view(&t.root(), &names);
    assert!(after.links.is_empty() && after.addresses.is_empty() && after.routes.is_empty(), "{after:?}");
    assert!(!after.nft_table, "the table goes with the last network: {after:?}");
    assert_eq!(after.docker_user_rules, 0, "berth's DOCKER-USER rules go with the root's last network");
    assert!(eventually(|| !host_view(&t.root(), &names).dns_running), "the resolver exits with the last network");
    assert_eq!(t.ok(["network", "ls", "-q"]), "");
}

#[test]
fn teardown_removes_networks_still_in_use() {
    common::require_root!();
    let (t, root) = setup();
    t.ok(["network", "create", "--subnet", "10.210.52.0/24", "tear_a"]);
    let c = container("tear-1");
    let mut r = request(&c, Some("one"), &[("tear_a", &[])]);
    r.ports = vec![PortRequest { host_port: Some(42052), container_port: 80, ..Default::default() }];
    let res = net::attach(&root, &r).unwrap();
    let names = vec![net::network::list(&root).unwrap()[0].bridge.clone(), res.attachment.endpoints[0].host_interface.clone()];
    drop(res);
    let out = t.run(["__teardown"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let after = host_view(&t.root(), &names);
    assert!(after.links.is_empty() && !after.nft_table && !after.dns_running && after.docker_user_rules == 0, "{after:?}");
}

#[test]
fn static_addresses_macs_ranges_and_restarts() {
    common::require_root!();
    let (t, root) = setup();
    t.ok([
        "network",
        "create",
        "--subnet",
        "10.210.53.0/24",
        "--ip-range",
        "10.210.53.128/25",
        "--gateway",
        "10.210.53.254",
        "--aux-address",
        "printer=10.210.53.128",
        "-o",
        "com.docker.network.driver.mtu=1400",
        "static_net",
    ]);
    let c1 = container("st-1");
    let mut r1 = request(&c1, Some("st"), &[("static_net", &[])]);
    r1.endpoints[0].ipv4_address = Some("10.210.53.10".parse().unwrap());
    r1.endpoints[0].mac_address = Some("02:aa:bb:cc:dd:ee".into());
    let res1 = net::attach(&root, &r1).unwrap();
    let e = &res1.attachment.endpoints[0];
    assert_eq!(e.ipv4, Some("10.210.53.10".parse().unwrap()));
    assert_eq!(e.gateway, Some("10.210.53.254".parse().unwrap()));
    assert_eq!(e.mac, "02:aa:bb:cc:dd:ee");
    let link = c1.ns.busybox(&["ip", "-o", "link", "show", "eth0"]);
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(link.contains("mtu 1400") && link.contains("02:aa:bb:cc:dd:ee"), "{link}");
    let route = String::from_utf8_lossy(&c1.ns.busybox(&["ip", "route"]).stdout).to_string();
    assert!(route.contains("default via 10.210.53.254"), "{route}");
    // Dynamic addresses come from the range, skipping the aux address.
    let c2 = container("st-2");
    let res2 = net::attach(&root, &request(&c2, Some("st"), &[("static_net", &[])])).unwrap();
    assert_eq!(res2.attachment.endpoints[0].ipv4, Some("10.210.53.129".parse().unwrap()));
    assert!(res2.attachment.endpoints[0].mac.starts_with("02:42:0a:d2:35:81"));
    // A taken static address is refused, naming the holder.
    let c3 = container("st-3");
    let mut r3 = request(&c3, Some("st"), &[("static_net", &[])]);
    r3.endpoints[0].ipv4_address = Some("10.210.53.10".parse().unwrap());
    let err = net::attach(&root, &r3).unwrap_err().to_string();
    assert!(err.contains("10.210.53.10") && err.contains("st-1"), "{err}");
    r3.endpoints[0].ipv4_address = Some("10.210.99.10".parse().unwrap());
    assert!(net::attach(&root, &r3).unwrap_err().to_string().contains("outside"));
    // A container started again in a new namespace keeps its address.
    drop(res2);
    let C { id, name, ns } = c2;
    drop(ns);
    let again = C { id, name, ns: Netns::new() };
    let res2b = net::attach(&root, &request(&again, Some("st"), &[("static_net", &[])])).unwrap();
    assert_eq!(res2b.attachment.endpoints[0].ipv4, Some("10.210.53.129".parse().unwrap()));
    // The inspect output lists both containers.
    let v: serde_json::Value = serde_json::from_str(&t.ok(["network", "inspect", "static_net"])).unwrap();
    assert_eq!(v[0]["Containers"].as_object().unwrap().len(), 2);
    assert_eq!(v[0]["IPAM"]["Config"][0]["IPRange"], "10.210.53.128/25");
}

#[test]
fn icc_disabled_isolates_containers_but_not_the_gateway() {
    common::require_root!();
    let (t, root) = setup();
    t.ok(["network", "create", "--subnet", "10.210.54.0/24", "-o", "com.docker.network.bridge.enable_icc=false", "noicc"]);
    let c1 = container("icc-1");
    let c2 = container("icc-2");
    let r1 = net::attach(&root, &request(&c1, Some("a"), &[("noicc", &[])])).unwrap();
    net::attach(&root, &request(&c2, Some("b"), &[("noicc", &[])])).unwrap();
    let ip1 = IpAddr::V4(ip4(&r1));
    let _p = TcpProbe::start(Some(&c1.ns.path()), SocketAddr::new(ip1, 42054), "c1");
    assert!(tcp_fetch(Some(&c2.ns.path()), SocketAddr::new(ip1, 42054)).is_err());
    assert_eq!(dns_udp(Some(&c2.ns.path()), a("10.210.54.1"), "a", RecordType::A).unwrap().addrs, vec![ip1]);
}

#[test]
fn network_mode_none_brings_up_loopback_only() {
    common::require_root!();
    let (_t, root) = setup();
    let c = container("none-1");
    let res = net::attach(&root, &request(&c, None, &[])).unwrap();
    assert!(res.attachment.endpoints.is_empty());
    let out = String::from_utf8_lossy(&c.ns.busybox(&["ip", "-o", "link"]).stdout).to_string();
    assert!(out.contains("lo:") && out.contains("UP") && !out.contains("eth0"), "{out}");
}

#[test]
fn an_address_stays_taken_while_its_namespace_outlives_the_container() {
    common::require_root!();
    let (t, root) = setup();
    t.ok(["network", "create", "--subnet", "10.210.55.0/24", "--ip-range", "10.210.55.0/30", "tiny"]);
    let a1 = container("tiny-1");
    let a2 = container("tiny-2");
    let r1 = net::attach(&root, &request(&a1, Some("a"), &[("tiny", &[])])).unwrap();
    net::attach(&root, &request(&a2, Some("a"), &[("tiny", &[])])).unwrap();
    assert_eq!(ip4(&r1).to_string(), "10.210.55.2");
    // tiny-1 stops: its address stays held for it (a container keeps it until removed).
    net::detach(&root, &a1.id).unwrap();
    let c = container("tiny-3");
    let e = net::attach(&root, &request(&c, Some("a"), &[("tiny", &[])])).unwrap_err();
    assert!(e.to_string().contains("no free address"), "{e}");
    // tiny-1 is removed, but its namespace lives on (another container shares it).
    net::release(&root, &a1.id).unwrap();
    let e = net::attach(&root, &request(&c, Some("a"), &[("tiny", &[])])).unwrap_err();
    assert!(e.to_string().contains("no free address"), "{e}");
    let mut want = request(&c, Some("a"), &[("tiny", &[])]);
    want.endpoints[0].ipv4_address = Some("10.210.55.2".parse().unwrap());
    assert!(net::attach(&root, &want).unwrap_err().to_string().contains("outlived"));
    // Once the namespace is gone, the address is given again.
    drop(a1.ns);
    assert!(eventually(|| net::attach(&root, &request(&c, Some("a"), &[("tiny", &[])])).is_ok()));
    let eps = net::network::read_endpoints(&root, "tiny").unwrap();
    assert_eq!(eps.endpoints[&c.id].ipv4.unwrap().to_string(), "10.210.55.2");
    assert!(eps.released.is_empty());
}

#[test]
fn a_stopped_container_holds_its_address_until_removed_or_gone() {
    common::require_root!();
    let (t, root) = setup();
    t.ok(["network", "create", "--subnet", "10.224.10.0/24", "--ip-range", "10.224.10.0/30", "held"]);
    // Two addresses (.2, .3). hg-2 exists in the state root; hg-1's state is gone (deleted by hand).
    let a1 = container("hg-1");
    let a2 = container("hg-2");
    std::fs::create_dir_all(root.containers_dir().join(&a2.id)).unwrap();
    let r1 = net::attach(&root, &request(&a1, Some("a"), &[("held", &[])])).unwrap();
    let r2 = net::attach(&root, &request(&a2, Some("a"), &[("held", &[])])).unwrap();
    assert_eq!((ip4(&r1).to_string(), ip4(&r2).to_string()), ("10.224.10.2".into(), "10.224.10.3".into()));
    // Both stop; their namespaces die.
    drop((r1, r2));
    let C { id: id2, name: name2, ns } = a2;
    drop(ns);
    drop(a1.ns);
    net::detach(&root, &a1.id).unwrap();
    net::detach(&root, &id2).unwrap();
    // hg-1's address is freed (its container is gone), hg-2's stays held for it.
    let c = container("hg-3");
    assert!(eventually(|| net::attach(&root, &request(&c, Some("a"), &[("held", &[])])).is_ok()));
    assert_eq!(net::network::read_endpoints(&root, "held").unwrap().endpoints[&c.id].ipv4.unwrap().to_string(), "10.224.10.2");
    let d = container("hg-4");
    let e = net::attach(&root, &request(&d, Some("a"), &[("held", &[])])).unwrap_err();
    assert!(e.to_string().contains("no free address"), "{e}");
    // hg-2 starts again in a new namespace: its own address.
    let again = C { id: id2.clone(), name: name2, ns: Netns::new() };
    let r2b = net::attach(&root, &request(&again, Some("a"), &[("held", &[])])).unwrap();
    assert_eq!(ip4(&r2b).to_string(), "10.224.10.3");
    // Removed: the address goes to the next container once its veth is gone.
    drop(r2b);
    drop(again.ns);
    net::release(&root, &id2).unwrap();
    assert!(eventually(|| net::attach(&root, &request(&d, Some("a"), &[("held", &[])])).is_ok()));
    assert_eq!(net::network::read_endpoints(&root, "held").unwrap().endpoints[&d.id].ipv4.unwrap().to_string(), "10.224.10.3");
}

#[test]
fn ipv6_networks_give_addresses_names_and_ports() {
    common::require_root!();
    let (t, root) = setup();
    t.ok(["network", "create", "--ipv6", "--subnet", "10.210.56.0/24", "--subnet", "fd00:210:56::/64", "six"]);
    let web = container("six-web-1");
    let cli = container("six-cli-1");
    let mut req = request(&web, Some("web"), &[("six", &[])]);
    req.ports = vec![PortRequest { host_port: Some(42056), container_port: 80, ..Default::default() }];
    let res = net::attach(&root, &req).unwrap();
    let e = &res.attachment.endpoints[0];
    let v6 = e.ipv6.expect("an IPv6 address");
    assert!(v6.to_string().starts_with("fd00:210:56::"), "{v6}");
    assert_eq!(e.ipv6_gateway, Some("fd00:210:56::1".parse().unwrap()));
    // Both families are published on every address.
    assert!(res.attachment.ports.iter().any(|p| p.host_ip.is_ipv6()), "{:?}", res.attachment.ports);
    net::attach(&root, &request(&cli, Some("cli"), &[("six", &[])])).unwrap();
    let aaaa = dns_udp(Some(&cli.ns.path()), a("fd00:210:56::1"), "web", RecordType::AAAA).unwrap();
    assert_eq!(aaaa.addrs, vec![IpAddr::V6(v6)]);
    let _p = TcpProbe::start(Some(&web.ns.path()), SocketAddr::new(IpAddr::V6(v6), 80), "web6");
    assert!(tcp_fetch(Some(&cli.ns.path()), SocketAddr::new(IpAddr::V6(v6), 80)).unwrap().starts_with("web6 "));
    let route = String::from_utf8_lossy(&web.ns.busybox(&["ip", "-6", "route"]).stdout).to_string();
    assert!(route.contains("default via fd00:210:56::1"), "{route}");
    // From another host through this host's IPv6 address (kernel DNAT), the source preserved.
    let outside = Outside::new(236);
    let _p4 = TcpProbe::start(Some(&web.ns.path()), SocketAddr::new(IpAddr::V4(e.ipv4.unwrap()), 80), "web4");
    let got = tcp_fetch(Some(&outside.ns.path()), SocketAddr::new(outside.host_ip6(), 42056)).unwrap();
    assert_eq!(got, format!("web6 {}", outside.ip6()));
    // From the host itself, through its own global IPv6 address if it has one.
    let mut nl = berth::net::netlink::Netlink::open().unwrap();
    let host6 = nl.addresses().unwrap().into_iter().find_map(|a| match a.address {
        IpAddr::V6(v) if !v.is_loopback() && v.segments()[0] & 0xffc0 != 0xfe80 && !v.to_string().starts_with("fd00:210:") => Some(v),
        _ => None,
    });
    if let Some(h) = host6 {
        assert!(tcp_fetch(None, SocketAddr::new(IpAddr::V6(h), 42056)).unwrap().starts_with("web6 "));
    }
    // IPv4 keeps working on the same port.
    assert!(tcp_fetch(None, SocketAddr::new(a("127.0.0.1"), 42056)).unwrap().starts_with("web4 "));
}

/// The table is re-created from state whenever the kernel lost it (`nft flush ruleset`, another
/// program) or another berth version wrote it: the next network, port or removal rebuilds it whole.
#[test]
fn the_table_is_rebuilt_from_state_when_lost_or_outdated() {
    common::require_root!();
    let (t, root) = setup();
    let table = net::firewall::table_name(&root);
    let listed = || {
        String::from_utf8_lossy(&std::process::Command::new("nft").args(["list", "table", "inet", &table]).output().unwrap().stdout)
            .to_string()
    };
    let drop_table = || assert!(std::process::Command::new("nft").args(["delete", "table", "inet", &table]).status().unwrap().success());
    t.ok(["network", "create", "--subnet", "10.210.80.0/24", "lost_a"]);
    drop_table();
    // A new network finds no table to add to: both networks come back.
    t.ok(["network", "create", "--internal", "--subnet", "10.210.81.0/24", "lost_b"]);
    let rules = listed();
    assert!(rules.contains("10.210.80.0/24 . ") && rules.contains("10.210.81.0/24 . "), "{rules}");
    let bridges: Vec<String> = net::network::list(&root).unwrap().into_iter().map(|n| n.bridge).collect();
    assert!(bridges.iter().all(|b| rules.contains(&format!("\"{b}\" . \"{b}\""))), "{rules}");

    // A published port with the table gone: the port and the networks come back.
    drop_table();
    let c = container("lost-1");
    let mut r = request(&c, Some("one"), &[("lost_a", &[])]);
    r.ports = vec![PortRequest { host_port: Some(42058), container_port: 80, ..Default::default() }];
    let res = net::attach(&root, &r).unwrap();
    let rules = listed();
    assert!(rules.contains("tcp . 42058") && rules.contains("10.210.81.0/24 . "), "{rules}");

    // Written by another version (the marker says so): rewritten whole before the next change.
    let marker = t.root().join("networks/.firewall.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&marker).unwrap()).unwrap();
    m["version"] = serde_json::json!(1);
    std::fs::write(&marker, serde_json::to_vec(&m).unwrap()).unwrap();
    drop(res);
    drop(c.ns);
    net::detach(&root, &c.id).unwrap();
    t.ok(["network", "rm", "lost_b"]);
    let rules = listed();
    assert!(rules.contains("10.210.80.0/24 . ") && !rules.contains("10.210.81.") && !rules.contains("42058"), "{rules}");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&marker).unwrap()).unwrap();
    assert_ne!(m["version"], serde_json::json!(1), "the marker records the version that wrote the table");

    // Removing the last network whose table is gone still works, and leaves no table.
    drop_table();
    t.ok(["network", "rm", "lost_a"]);
    assert!(listed().is_empty(), "the table goes with the last network");
    t.ok(["__teardown"]);
    assert!(std::process::Command::new("nft").args(["list", "table", "inet", &table]).output().unwrap().stdout.is_empty());
}
