#!/usr/bin/env bash
# `up -d` and `down -t 0` of 1, 10 and 30 busybox services, berth vs Docker Compose, side by side
# on the same compose files in one run. Every service runs `sleep 1000` and depends on another
# (service i on service i/2: a tree of depends_on, so that both tools can start independent
# branches in parallel); `CHAIN=1` makes it a chain (service i on service i-1) instead.
# Also the memory of the running 30-service project: the summed PSS of berth's supervisors (and
# its DNS resolver) against Docker's containerd-shims plus dockerd and containerd.
# Usage: bench/up.sh [RUNS]   (default 3; the table keeps the median). Needs root, Docker, Docker
# Compose v2 and its busybox image (../shared/peers/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
if [ "$(id -u)" != 0 ]; then echo "bench/up.sh creates containers: run it as root" >&2; exit 1; fi
docker compose version >/dev/null || { echo "bench/up.sh needs Docker Compose v2 (../shared/peers/setup.sh)" >&2; exit 1; }
cargo build --release --quiet
BERTH="$PWD/target/release/berth"
WORK="$(mktemp -d /var/tmp/berth-bench-up.XXXXXX)"
ROOT="$WORK/root"
cleanup() {
  for n in 1 10 30; do
    (cd "$WORK/p$n" 2>/dev/null && docker compose -p "berthbenchup$n" down -t 0 >/dev/null 2>&1) || true
  done
  "$BERTH" --root "$ROOT" __teardown >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

tar="$WORK/busybox.tar"
scripts/busybox-image.sh "$tar" >/dev/null
"$BERTH" --root "$ROOT" image import "$tar" busybox:latest --change 'CMD ["sh"]' >/dev/null

for n in 1 10 30; do
  mkdir -p "$WORK/p$n"
  {
    echo "services:"
    for i in $(seq 1 "$n"); do
      echo "  s$i:"
      echo "    image: busybox"
      echo '    command: ["sleep", "1000"]'
      echo "    init: true"
      if [ "$i" -gt 1 ]; then
        if [ "${CHAIN:-0}" = 1 ]; then dep=$((i - 1)); else dep=$((i / 2)); fi
        echo "    depends_on: [s$dep]"
      fi
    done
  } > "$WORK/p$n/compose.yaml"
done

python3 - "$BERTH" "$ROOT" "$WORK" "$RUNS" <<'PY'
import os, re, statistics, subprocess, sys, time
berth, root, work, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def timed(cmd, cwd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t

def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

def pids(pattern):
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]

def ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0

def supervisors(root):
    # The container's own init (`init: true`) is forked from its supervisor and shows the same
    # command line; like Docker's docker-init it is not counted.
    ps = set(pids(f"{root} __supervise"))
    return [p for p in ps if ppid(p) not in ps]

tools = {
    "berth": lambda n: [berth, "--root", root, "-p", f"berthbenchup{n}"],
    "docker compose": lambda n: ["docker", "compose", "-p", f"berthbenchup{n}"],
}
results = {}
memory = {}
for n in (1, 10, 30):
    cwd = os.path.join(work, f"p{n}")
    for tool, base in tools.items():
        ups, downs = [], []
        for r in range(runs + 1):
            up = timed(base(n) + ["up", "-d"], cwd)
            if n == 30 and r == runs and tool == "berth":
                sup = supervisors(root)
                dns = pids(f"{root} __dns")
                memory["berth"] = (len(sup), sum(pss_kb(p) for p in sup), sum(pss_kb(p) for p in dns))
            if n == 30 and r == runs and tool == "docker compose":
                shims = pids("containerd-shim")
                daemons = pids("^(/usr/s?bin/)?dockerd") + pids("^(/usr/s?bin/)?containerd( |$)")
                memory["docker"] = (len(shims), sum(pss_kb(p) for p in shims), sum(pss_kb(p) for p in daemons))
            down = timed(base(n) + ["down", "-t", "0"], cwd)
            if r > 0:  # the first round warms caches
                ups.append(up)
                downs.append(down)
        results[(tool, n)] = (statistics.median(ups), statistics.median(downs))

print("| services | berth up -d | compose up -d | ratio | berth down -t 0 | compose down -t 0 | ratio |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for n in (1, 10, 30):
    bu, bd = results[("berth", n)]
    cu, cd = results[("docker compose", n)]
    print(f"| {n} | {bu*1000:.0f} ms | {cu*1000:.0f} ms | {bu/cu:.3f}x | {bd*1000:.0f} ms | {cd*1000:.0f} ms | {bd/cd:.3f}x |")
print()
if "berth" in memory and "docker" in memory:
    n, sup, dns = memory["berth"]
    print(f"berth, 30 services running: {n} supervisors, summed PSS {sup/1024:.1f} MiB; the DNS resolver {dns/1024:.1f} MiB")
    n, shims, daemons = memory["docker"]
    print(f"docker, 30 services running: {n} containerd-shims, summed PSS {shims/1024:.1f} MiB; dockerd + containerd {daemons/1024:.1f} MiB")
PY
