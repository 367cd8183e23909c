//! The network benchmark: berth's side of bench/net.sh, which builds it (a cargo example, so that
//! it keeps compiling with every target but never runs under `cargo test`) and runs
//! `target/release/examples/net_bench` beside Docker. It prints `RESULT` lines and asserts
//! nothing. Network namespaces stand in for containers. Subnet 10.210.59.0/24, host ports
//! 42900-42999.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth::net::{self, AttachRequest, EndpointRequest, PortRequest, Protocol};
use berth::state::StateRoot;
use common::TestRoot;
use common::net::*;

fn req(id: &str, name: &str, service: &str, ns: &Netns) -> AttachRequest {
    AttachRequest {
        container_id: id.into(),
        container_name: name.into(),
        hostname: name.into(),
        project: Some("bench".into()),
        service: Some(service.into()),
        netns_path: ns.path(),
        endpoints: vec![EndpointRequest { network: "bench_net".into(), ..Default::default() }],
        ports: Vec::new(),
        dns_servers: Vec::new(),
    }
}

fn stats(label: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = v.iter().map(|d| ms(*d)).sum::<f64>() / v.len() as f64;
    println!("RESULT {label}_mean_ms {mean:.3}");
    println!("RESULT {label}_p50_ms {:.3}", ms(v[v.len() / 2]));
    println!("RESULT {label}_max_ms {:.3}", ms(v[v.len() - 1]));
}

fn in_ns_cmd(ns: &Path, prog: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", ns.display())).arg(prog);
    c
}

/// Runs dnsperf from `ns` against `server` and returns (qps, average latency in µs).
pub fn dnsperf(ns: &Path, server: IpAddr, queries: &Path, extra: &[&str]) -> (f64, f64) {
    let out = in_ns_cmd(ns, "dnsperf")
        .args(["-s", &server.to_string(), "-d", queries.to_str().unwrap()])
        .args(extra)
        .output()
        .expect("dnsperf is installed (apt-get install dnsperf)");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| -> f64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in dnsperf output:\n{text}"))
    };
    let lost = field("Queries lost:");
    if lost > field("Queries sent:") * 0.001 {
        println!("NOTE {} lost {lost} of {} queries", server, field("Queries sent:"));
    }
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        println!("{text}");
    }
    (field("Queries per second:"), field("Average Latency (s):") * 1e6)
}

/// iperf3 from this host to `addr` for `secs`; returns Gbit/s received.
pub fn iperf(addr: SocketAddr, secs: u32) -> f64 {
    let out = Command::new("iperf3")
        .args(["-c", &addr.ip().to_string(), "-p", &addr.port().to_string(), "-t", &secs.to_string(), "-J"])
        .output()
        .expect("iperf3 is installed");
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("iperf3: {}", String::from_utf8_lossy(&out.stdout)));
    v["end"]["sum_received"]["bits_per_second"].as_f64().unwrap_or_else(|| panic!("iperf3 failed: {v}")) / 1e9
}

fn main() {
    if !common::is_root() {
        eprintln!("the network benchmark creates networks and namespaces: run bench/net.sh as root");
        std::process::exit(1);
    }
    use_built_berth();
    let t = TestRoot::new();
    let root = StateRoot::new(t.root());
    t.ok(["network", "create", "--subnet", "10.210.59.0/24", "bench_net"]);
    let n: usize = std::env::var("BENCH_CONTAINERS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);

    // Setup per container: attach with no port, then with one published port; detach.
    let nss: Vec<Netns> = (0..n).map(|_| Netns::new()).collect();
    let ids: Vec<String> = (0..n).map(|_| berth::util::id::new_id()).collect();
    // One warm-up attach starts the resolver, which is a once-per-root cost.
    let warm = Netns::new();
    let _w = net::attach(&root, &req(&berth::util::id::new_id(), "warm", "warm", &warm)).unwrap();
    let mut plain = Vec::new();
    let mut held = Vec::new();
    for i in 0..n / 2 {
        let r = req(&ids[i], &format!("bench-a-{i}"), "a", &nss[i]);
        let t0 = Instant::now();
        held.push(net::attach(&root, &r).unwrap());
        plain.push(t0.elapsed());
    }
    let mut ported = Vec::new();
    for i in n / 2..n {
        let mut r = req(&ids[i], &format!("bench-b-{i}"), "b", &nss[i]);
        r.ports =
            vec![PortRequest { host_port: Some(42900 + i as u16), container_port: 80, protocol: Protocol::Tcp, ..Default::default() }];
        let t0 = Instant::now();
        held.push(net::attach(&root, &r).unwrap());
        ported.push(t0.elapsed());
    }
    drop(held);
    drop(nss);
    let mut detach = Vec::new();
    for id in &ids {
        let t0 = Instant::now();
        net::detach(&root, id).unwrap();
        detach.push(t0.elapsed());
    }
    stats("setup_attach", plain);
    stats("setup_attach_with_port", ported);
    stats("setup_detach", detach);

    // DNS: a client queries a service name with two replicas.
    let client = Netns::new();
    let web1 = Netns::new();
    let web2 = Netns::new();
    let _c = net::attach(&root, &req(&berth::util::id::new_id(), "bench-client-1", "client", &client)).unwrap();
    let mut wr = req(&berth::util::id::new_id(), "bench-web-1", "web", &web1);
    wr.ports = vec![PortRequest { host_port: Some(42990), container_port: 5201, protocol: Protocol::Tcp, ..Default::default() }];
    let w1 = net::attach(&root, &wr).unwrap();
    let _w2 = net::attach(&root, &req(&berth::util::id::new_id(), "bench-web-2", "web", &web2)).unwrap();
    let gw: IpAddr = "10.210.59.1".parse().unwrap();
    let queries = t.scratch().join("queries.txt");
    std::fs::write(&queries, "web A\n").unwrap();
    if let Some(hold) = std::env::var("BENCH_HOLD").ok().and_then(|v| v.parse::<u64>().ok()) {
        // For manual experiments: keep everything up for a while.
        println!("HOLD client={} gw={gw} root={}", client.path().display(), t.root().display());
        std::thread::sleep(Duration::from_secs(hold));
    }
    let secs = std::env::var("BENCH_SECONDS").unwrap_or_else(|_| "10".into());
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let iperf_secs: u32 = std::env::var("BENCH_IPERF_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    // Docker's side, set up by bench/net.sh: its client and web containers (pids) and web address.
    let docker =
        match (std::env::var("BENCH_DOCKER_CLIENT_PID"), std::env::var("BENCH_DOCKER_WEB_PID"), std::env::var("BENCH_DOCKER_WEB_IP")) {
            (Ok(c), Ok(w), Ok(ip)) => Some((
                std::path::PathBuf::from(format!("/proc/{c}/ns/net")),
                std::path::PathBuf::from(format!("/proc/{w}/ns/net")),
                ip.parse::<IpAddr>().expect("BENCH_DOCKER_WEB_IP is an address"),
                std::env::var("BENCH_DOCKER_PORT").ok().and_then(|p| p.parse::<u16>().ok()).unwrap_or(42995),
            )),
            _ => None,
        };
    let web_ip = IpAddr::V4(w1.attachment.endpoints[0].ipv4.unwrap());
    let host = IpAddr::V4(host_address());
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let median = |mut v: Vec<f64>| -> f64 {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let tcp = |ns: &Path, addr: SocketAddr| -> f64 {
        let mut server = in_ns_cmd(ns, "iperf3").args(["-s", "-1", "-p", "5201"]).stdout(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let g = iperf(addr, iperf_secs);
        let _ = server.wait();
        g
    };
    // Rounds alternate berth and Docker so that both see the same load on the machine.
    let mut m: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for _ in 0..rounds {
        m.entry("berth_dns_qps").or_default().push(dnsperf(&client.path(), gw, &queries, &["-l", &secs, "-c", "8", "-q", "500"]).0);
        if let Some((dc, _, _, _)) = &docker {
            m.entry("docker_dns_qps")
                .or_default()
                .push(dnsperf(dc, "127.0.0.11".parse().unwrap(), &queries, &["-l", &secs, "-c", "8", "-q", "500"]).0);
        }
        m.entry("berth_dns_latency_us").or_default().push(dnsperf(&client.path(), gw, &queries, &["-l", &secs, "-Q", "2000"]).1);
        if let Some((dc, _, _, _)) = &docker {
            m.entry("docker_dns_latency_us")
                .or_default()
                .push(dnsperf(dc, "127.0.0.11".parse().unwrap(), &queries, &["-l", &secs, "-Q", "2000"]).1);
        }
        m.entry("berth_tcp_direct_gbps").or_default().push(tcp(&web1.path(), SocketAddr::new(web_ip, 5201)));
        m.entry("berth_tcp_published_127_gbps").or_default().push(tcp(&web1.path(), SocketAddr::new(lo, 42990)));
        m.entry("berth_tcp_published_host_gbps").or_default().push(tcp(&web1.path(), SocketAddr::new(host, 42990)));
        if let Some((_, dw, dip, dport)) = &docker {
            m.entry("docker_tcp_direct_gbps").or_default().push(tcp(dw, SocketAddr::new(*dip, 5201)));
            m.entry("docker_tcp_published_127_gbps").or_default().push(tcp(dw, SocketAddr::new(lo, *dport)));
            m.entry("docker_tcp_published_host_gbps").or_default().push(tcp(dw, SocketAddr::new(host, *dport)));
        }
    }
    for (k, v) in &m {
        println!("RESULT {k} {:.2}   # rounds: {}", median(v.clone()), v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" "));
    }
}
