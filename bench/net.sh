#!/usr/bin/env bash
# Network benchmark: berth beside Docker Engine, in one run, on this host.
#
#   - setup: berth's net::attach per container (no port, one port) and detach, against
#     `docker network connect`/`disconnect` of a running container;
#   - DNS: dnsperf from a client's network namespace querying a service name with two replicas,
#     saturated (8 clients, 500 outstanding) and at 2,000 qps (average latency);
#   - published-port TCP throughput (iperf3 from the host): direct to the container address,
#     through 127.0.0.1 (berth: kernel DNAT; Docker: docker-proxy), and through the host address.
#
# berth's side is bench/net_bench.rs (a cargo example), with network namespaces standing in for
# containers; it alternates rounds with Docker's side so both see the same load, and prints medians. Uses subnets 10.210.58-59.0/24 and host ports 42900-42999.
# Knobs: BENCH_SECONDS (dnsperf run, 10), BENCH_ROUNDS (3), BENCH_IPERF_SECONDS (5).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
berth_deps dnsperf iperf3 util-linux
if [ "$(id -u)" != 0 ]; then
  echo "bench/net.sh creates networks and namespaces: run it as root." >&2
  exit 1
fi

net=berthbench_net
cleanup() {
  docker rm -f berthbench-web berthbench-web2 berthbench-client berthbench-conn >/dev/null 2>&1 || true
  docker network rm "$net" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup

echo "==> building (release)"
cargo build --release --quiet --bin berth --example net_bench

echo "==> Docker side: $net (10.210.58.0/24), web x2, client"
docker network create --subnet 10.210.58.0/24 "$net" >/dev/null
docker run -d --name berthbench-web --network "$net" --network-alias web -p 42995:5201 busybox sleep 3600 >/dev/null
docker run -d --name berthbench-web2 --network "$net" --network-alias web busybox sleep 3600 >/dev/null
docker run -d --name berthbench-client --network "$net" busybox sleep 3600 >/dev/null
docker run -d --name berthbench-conn --network bridge busybox sleep 3600 >/dev/null
pid() { docker inspect -f '{{.State.Pid}}' "$1"; }

# Docker's per-container network setup: connect/disconnect a running container, 10 times.
conn=() disc=()
for _ in $(seq 10); do
  t0=$(date +%s%N); docker network connect "$net" berthbench-conn; t1=$(date +%s%N)
  docker network disconnect "$net" berthbench-conn; t2=$(date +%s%N)
  conn+=($(((t1 - t0) / 1000))) disc+=($(((t2 - t1) / 1000)))
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]/1000}'; }
echo "RESULT docker_network_connect_p50_ms $(median "${conn[@]}")"
echo "RESULT docker_network_disconnect_p50_ms $(median "${disc[@]}")"

echo "==> berth side, alternating rounds with Docker"
BENCH_DOCKER_CLIENT_PID=$(pid berthbench-client) \
BENCH_DOCKER_WEB_PID=$(pid berthbench-web) \
BENCH_DOCKER_WEB_IP=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' berthbench-web) \
BENCH_DOCKER_PORT=42995 \
  target/release/examples/net_bench 2>&1 | grep -E '^RESULT|^NOTE|panicked|error'
