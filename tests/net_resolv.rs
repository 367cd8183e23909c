//! What compose's `dns_opt`, `dns_search` and `dns` put in a container's /etc/resolv.conf, through
//! `berth up` as a user runs it, compared with what Docker writes. Subnet 10.210.92.0/24.

mod common;

use common::compose::Stack;

const YAML: &str = r#"
services:
  zero:
    image: busybox
    command: sleep 300
    dns_opt: ["ndots:0"]
  more:
    image: busybox
    command: sleep 300
    dns_opt: ["ndots:3", "timeout:2"]
    dns_search: [corp.example]
  plain:
    image: busybox
    command: sleep 300
networks:
  default:
    ipam:
      config:
        - subnet: 10.210.92.0/24
"#;

fn resolv(s: &Stack, service: &str) -> String {
    s.ok(["exec", "-T", service, "cat", "/etc/resolv.conf"]).0
}

fn options(conf: &str) -> Vec<String> {
    conf.lines().filter_map(|l| l.strip_prefix("options ")).flat_map(|l| l.split_whitespace().map(String::from)).collect()
}

#[test]
fn dns_opt_reaches_resolv_conf_as_docker_writes_it() {
    common::require_root!();
    let s = Stack::new("netresolv", YAML);
    s.ok(["up", "-d"]);
    // Docker: "nameserver 127.0.0.11" then "options ndots:0"; berth's resolver is the gateway.
    let zero = resolv(&s, "zero");
    assert!(zero.contains("nameserver 10.210.92.1\n"), "{zero}");
    assert_eq!(options(&zero), ["ndots:0"], "{zero}");
    let more = resolv(&s, "more");
    assert_eq!(options(&more), ["ndots:3", "timeout:2"], "{more}");
    assert!(more.contains("search corp.example\n"), "{more}");
    // Without dns_opt, names without dots still go to the resolver first (ndots:0), as Docker's.
    let plain = resolv(&s, "plain");
    assert!(options(&plain).contains(&"ndots:0".to_string()), "{plain}");
    s.ok(["down", "-t", "0"]);
}
