#!/usr/bin/env bash
# Container start latency, berth vs Docker, side by side on this machine:
#   berth:  `berth __ctr run -d` of a busybox container (create + start, detached), from a
#           busybox layer directory (no image store involved);
#   docker: `docker run -d busybox` (the image is already pulled).
# Also the supervisor's memory (PSS) and the start broken down into its steps (BERTH_TIMING, read
# from a second build with `--features timing`: the timed runs use the plain build).
# Usage: bench/start.sh [RUNS]   (default 30). Needs root and Docker with the busybox image.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-30}"
if [ "$(id -u)" != 0 ]; then echo "bench/start.sh creates containers: run it as root" >&2; exit 1; fi
WORK="$(mktemp -d /var/tmp/berth-bench-start.XXXXXX)"
cargo build --release --quiet
cp target/release/berth "$WORK/berth"
cargo build --release --quiet --features timing
cp target/release/berth "$WORK/berth-timing"
BERTH="$WORK/berth"
ROOT="$WORK/root"
cleanup() {
  "$BERTH" --root "$ROOT" __teardown >/dev/null 2>&1 || true
  BERTH_CGROUP_V2_ROOT=/sys/fs/cgroup/unified "$BERTH" --root "$WORK/root-v2" __teardown >/dev/null 2>&1 || true
  docker ps -aq --filter label=berth-bench-start | xargs -r docker rm -f >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The busybox layer: the static binary and its applet links.
LAYER="$WORK/layers/busybox"
mkdir -p "$LAYER"/{bin,etc,tmp,proc,sys,dev,root}
cp "$(command -v busybox)" "$LAYER/bin/busybox"
for a in $(busybox --list); do [ "$a" = busybox ] || ln -s busybox "$LAYER/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$LAYER/etc/passwd"
printf 'root:x:0:\n' > "$LAYER/etc/group"
chmod 1777 "$LAYER/tmp"

python3 - "$BERTH" "$ROOT" "$WORK" "$LAYER" "$RUNS" "$WORK/berth-timing" <<'PY'
import json, os, statistics, subprocess, sys, time
berth, root, work, layer, runs, berth_timing = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]

def spec(name):
    p = os.path.join(work, name + ".json")
    with open(p, "w") as f:
        json.dump({"Name": name, "Cmd": ["sleep", "1000"], "Rootfs": {"Layers": [layer]}}, f)
    return p

def timed(cmd, env=None):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return (time.perf_counter() - t) * 1000

def series(label, fn):
    fn(-1)  # warm-up (page cache, seccomp cache)
    xs = sorted(fn(i) for i in range(runs))
    return label, statistics.median(xs), xs[int(len(xs) * 0.9) - 1], xs[0]

rows = []
rows.append(series("berth (cgroup v1)", lambda i: timed([berth, "--root", root, "__ctr", "run", "-d", spec(f"v1-{i}")])))
if os.path.exists("/sys/fs/cgroup/unified/cgroup.procs"):
    env = dict(os.environ, BERTH_CGROUP_V2_ROOT="/sys/fs/cgroup/unified")
    rows.append(series("berth (cgroup v2 code, no controllers)",
                       lambda i: timed([berth, "--root", root + "-v2", "__ctr", "run", "-d", spec(f"v2-{i}")], env)))
rows.append(series("docker run -d", lambda i: timed(["docker", "run", "-d", "--label", "berth-bench-start", "busybox", "sleep", "1000"])))

# The supervisor's memory, for one of the running containers.
st = json.load(open(os.path.join(root, "containers", os.listdir(os.path.join(root, "containers"))[0], "state.json")))
pid = st["Supervisor"]["Pid"]
roll = {l.split(":")[0]: l.split()[1] for l in open(f"/proc/{pid}/smaps_rollup") if ":" in l and l.split()[1].isdigit()}

# One start broken down into its steps: each line is "pid µs-since-the-epoch what happened".
tfile = os.path.join(work, "timing")
timed([berth_timing, "--root", root, "__ctr", "run", "-d", spec("timed")], dict(os.environ, BERTH_TIMING=tfile))
steps = [l.rstrip("\n").split(" ", 2) for l in open(tfile)]
t0 = int(steps[0][1])

print(f"Container start, {runs} runs each (ms):\n")
print("| | median | p90 | min |\n|---|---:|---:|---:|")
for label, med, p90, mn in rows:
    print(f"| {label} | {med:.1f} | {p90:.1f} | {mn:.1f} |")
print(f"\nSupervisor (pid {pid}): Pss {roll.get('Pss')} kB, Pss_Anon {roll.get('Pss_Anon')} kB, Rss {roll.get('Rss')} kB\n")
print("One berth start, step by step (ms since the CLI started):")
for pid_, t, label in steps:
    print(f"  {(int(t) - t0) / 1000:7.2f}  {label}")
PY
