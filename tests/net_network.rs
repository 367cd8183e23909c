//! `berth network ls|create|inspect|rm|prune` as a user runs them. Subnets 10.210.10-19.0/24 and
//! the pool 10.210.64.0/18 (BERTH_DEFAULT_ADDRESS_POOLS).

mod common;

use std::process::Output;

use berth::net::ipam::Subnet;
use common::TestRoot;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn host_subnets() -> Vec<(Subnet, String)> {
    let mut nl = berth::net::netlink::Netlink::open().unwrap();
    let links = nl.links().unwrap();
    nl.routes()
        .unwrap()
        .into_iter()
        .filter(|r| r.prefix > 0 && r.destination.is_ipv4())
        .map(|r| {
            let dev = links.iter().find(|(i, _)| Some(*i) == r.oif).map(|(_, n)| n.clone()).unwrap_or_default();
            (Subnet::new(r.destination, r.prefix).unwrap(), dev)
        })
        .collect()
}

#[test]
fn create_ls_inspect_rm_like_docker() {
    common::require_root!();
    let t = TestRoot::new();
    let id = t.ok([
        "network",
        "create",
        "--subnet",
        "10.210.10.0/24",
        "--gateway",
        "10.210.10.254",
        "--label",
        "team=net",
        "--label",
        "tier",
        "-o",
        "com.docker.network.driver.mtu=1450",
        "--internal",
        "net_a",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "the full id is printed: {id}");
    t.ok(["network", "create", "--subnet", "10.210.11.0/24", "net_b"]);

    let ls = t.ok(["network", "ls"]);
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(lines[0], "NETWORK ID     NAME      DRIVER    SCOPE");
    assert!(lines[1].starts_with(&format!("{}   net_a     bridge    local", &id[..12])), "{ls}");
    assert_eq!(lines.len(), 3);
    assert_eq!(t.ok(["network", "ls", "-q", "--no-trunc", "--filter", "label=team=net"]).trim(), id);
    assert_eq!(t.ok(["network", "ls", "--format", "{{.Name}}", "-f", "name=_b"]), "net_b\n");
    let j: serde_json::Value = serde_json::from_str(t.ok(["network", "ls", "--format", "json", "-f", "name=net_a"]).trim()).unwrap();
    assert_eq!((j["Name"].as_str(), j["Internal"].as_str(), j["Labels"].as_str()), (Some("net_a"), Some("true"), Some("team=net,tier=")));

    let out = t.ok(["network", "inspect", "net_a"]);
    assert!(out.starts_with("[\n    {\n        \"Name\": \"net_a\",\n        \"Id\": "), "docker's layout:\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let n = &v[0];
    assert_eq!(n["Id"], id);
    assert_eq!(n["Driver"], "bridge");
    assert_eq!(n["Internal"], true);
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "10.210.10.0/24");
    assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "10.210.10.254");
    assert_eq!(n["Options"]["com.docker.network.driver.mtu"], "1450");
    assert_eq!(n["Labels"]["team"], "net");
    assert_eq!(t.ok(["network", "inspect", "-f", "{{.Name}} {{.IPAM.Driver}}", &id[..8]]), "net_a default\n");
    // The bridge is real, with the gateway and MTU.
    let subnets = host_subnets();
    assert!(subnets.iter().any(|(s, dev)| s.to_string() == "10.210.10.0/24" && dev.starts_with("berth")), "{subnets:?}");

    // Errors: exit 1 and a message that says what is wrong.
    let dup = t.run(["network", "create", "net_a"]);
    assert_eq!(dup.status.code(), Some(1));
    assert!(stderr(&dup).contains("network with name net_a already exists"), "{}", stderr(&dup));
    let miss = t.run(["network", "inspect", "net_a", "nope"]);
    assert_eq!(miss.status.code(), Some(1));
    assert!(stderr(&miss).contains("No such network: nope"));
    assert!(String::from_utf8_lossy(&miss.stdout).contains("net_a"), "found ones are still printed");
    let overlap = t.run(["network", "create", "--subnet", "10.210.10.128/25", "net_c"]);
    assert!(stderr(&overlap).contains("overlaps 10.210.10.0/24"), "{}", stderr(&overlap));
    let bad = t.run(["network", "create", "--subnet", "10.210.12.1/24", "net_c"]);
    assert!(stderr(&bad).contains("did you mean 10.210.12.0/24"), "{}", stderr(&bad));
    let opt = t.run(["network", "create", "-o", "com.docker.network.bridge.inhibit_ipv4=true", "net_c"]);
    assert!(stderr(&opt).contains("inhibit_ipv4") && stderr(&opt).contains("not supported"), "{}", stderr(&opt));
    let drv = t.run(["network", "create", "-d", "macvlan", "net_c"]);
    assert!(stderr(&drv).contains("\"macvlan\" is not supported"), "{}", stderr(&drv));
    let name = t.run(["network", "create", "bad/name"]);
    assert!(stderr(&name).contains("invalid network name"), "{}", stderr(&name));
    assert_eq!(t.ok(["network", "ls", "-q"]).lines().count(), 2, "failed creates leave nothing");

    // rm prints the names, goes on past errors, exits 1 if any failed.
    let rm = t.run(["network", "rm", "net_a", "nope", "net_b"]);
    assert_eq!(rm.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&rm.stdout), "net_a\nnet_b\n");
    assert!(stderr(&rm).contains("network nope not found"));
    assert!(!host_subnets().iter().any(|(s, _)| s.to_string() == "10.210.10.0/24"));
    t.ok(["network", "rm", "-f", "nope"]);
    assert_eq!(t.ok(["network", "ls", "-q"]), "");
}

#[test]
fn prune_removes_unused_networks() {
    common::require_root!();
    let t = TestRoot::new();
    t.ok(["network", "create", "--subnet", "10.210.13.0/24", "--label", "keep=1", "prune_keep"]);
    t.ok(["network", "create", "--subnet", "10.210.14.0/24", "prune_go"]);
    assert_eq!(t.ok(["network", "prune", "-f", "--filter", "label!=keep"]), "Deleted Networks:\nprune_go\n");
    assert_eq!(t.ok(["network", "ls", "--format", "{{.Name}}"]), "prune_keep\n");
    assert_eq!(t.ok(["network", "prune", "-f"]), "Deleted Networks:\nprune_keep\n");
}

#[test]
fn default_subnets_avoid_the_host_and_other_roots() {
    common::require_root!();
    // Docker's default pool, picked around the routes on this host (Docker's bridges included).
    let t = TestRoot::new();
    t.ok(["network", "create", "pool_default"]);
    let v: serde_json::Value = serde_json::from_str(&t.ok(["network", "inspect", "pool_default"])).unwrap();
    let subnet: Subnet = v[0]["IPAM"]["Config"][0]["Subnet"].as_str().unwrap().parse().unwrap();
    assert!(subnet.to_string().starts_with("172.") || subnet.to_string().starts_with("192.168."), "{subnet}");
    for (s, dev) in host_subnets() {
        if !dev.starts_with("berth") {
            assert!(!s.overlaps(&subnet), "{subnet} overlaps {s} on {dev}");
        }
    }
    t.ok(["network", "rm", "pool_default"]);

    // Two roots creating networks at once never get the same subnet.
    let roots: Vec<TestRoot> = (0..2).map(|_| TestRoot::new()).collect();
    let children: Vec<_> = roots
        .iter()
        .flat_map(|r| {
            (0..3).map(move |i| {
                r.cmd(["network", "create", &format!("pool_{i}")])
                    .env(berth::net::ipam::POOLS_ENV, "base=10.210.64.0/18,size=24")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
        })
        .collect();
    let children: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for c in &children {
        assert!(c.status.success(), "{}", stderr(c));
    }
    let mut seen = Vec::new();
    for r in &roots {
        for i in 0..3 {
            let v: serde_json::Value = serde_json::from_str(&r.ok(["network", "inspect", &format!("pool_{i}")])).unwrap();
            let s: Subnet = v[0]["IPAM"]["Config"][0]["Subnet"].as_str().unwrap().parse().unwrap();
            assert!(s.to_string().starts_with("10.210."), "{s}");
            assert!(!seen.iter().any(|o: &Subnet| o.overlaps(&s)), "{s} given twice");
            seen.push(s);
        }
    }
}
