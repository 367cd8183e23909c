#!/usr/bin/env bash
# Chaos run (issue 12, SUP-1/SUP-2): random kill -9 of the berth CLI during `up`, `down`,
# `restart` and `up --scale`, and of container supervisors, on one project; then `up` must
# converge (every service at its scale, running, no duplicates) and a leak counter (links,
# mounts, cgroups, nft rules, processes, state-dir entries) must return to its baseline, and
# after `down` to its empty baseline. Not part of CI: it needs root and takes minutes.
#
# Usage: bench/chaos.sh [ITERATIONS] [SEED]   (default 200, random seed). BERTH=path picks the
# binary (default target/debug/berth, built if missing). Own root under /tmp/berth-secstate-*,
# project `secstatechaos`, subnet 10.223.200.0/24.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-200}"
SEED="${2:-$RANDOM}"
if [ "$(id -u)" != 0 ]; then echo "bench/chaos.sh creates containers: run it as root" >&2; exit 1; fi
BERTH="${BERTH:-$PWD/target/debug/berth}"
[ -x "$BERTH" ] || cargo build --quiet
WORK="$(mktemp -d /tmp/berth-secstate-chaos.XXXXXX)"
ROOT="$WORK/root"
cleanup() {
  "$BERTH" --root "$ROOT" __teardown >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

scripts/busybox-image.sh "$WORK/busybox.tar" >/dev/null
"$BERTH" --root "$ROOT" image import "$WORK/busybox.tar" busybox:latest --change 'CMD ["sh"]' >/dev/null
mkdir -p "$WORK/p"
cat > "$WORK/p/compose.yaml" <<'YAML'
services:
  a:
    image: busybox
    command: ["sleep", "1000"]
    init: true
  b:
    image: busybox
    command: ["sleep", "1000"]
    init: true
    depends_on: [a]
    ports: ["127.0.0.1::80"]
  c:
    image: busybox
    command: ["sleep", "1000"]
    init: true
    depends_on: [b]
networks:
  default:
    ipam:
      config:
        - subnet: 10.223.200.0/24
YAML

python3 - "$BERTH" "$ROOT" "$WORK/p" "$N" "$SEED" <<'PY'
import hashlib, json, os, random, re, signal, subprocess, sys, time

berth, root, proj, n, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(seed)
P = "secstatechaos"
NET = f"{P}_default"
TABLE = "berth-" + hashlib.sha256(root.encode()).hexdigest()[:8]

def berth_cmd(*args):
    return [berth, "--root", root, "-p", P, *args]

def run(*args, check=True, timeout=300):
    r = subprocess.run(berth_cmd(*args), cwd=proj, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise SystemExit(f"berth {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r

def ids_ever():
    """Every container id the root ever had (the event journal), and those it has now."""
    ids = set()
    ev = os.path.join(root, "events")
    for dp, _, files in os.walk(ev):
        for f in files:
            try:
                ids.update(re.findall(r'\b[0-9a-f]{64}\b', open(os.path.join(dp, f), errors="replace").read()))
            except OSError:
                pass
    try:
        ids.update(d for d in os.listdir(os.path.join(root, "containers")) if re.fullmatch(r"[0-9a-f]{64}", d))
    except OSError:
        pass
    return ids

def veth(cid):
    h = hashlib.sha256(root.encode() + b"\0" + cid.encode() + b"\0" + NET.encode()).hexdigest()
    return "veth" + h[:11]

def bridge():
    return "berth" + hashlib.sha256(root.encode() + b"\0" + NET.encode()).hexdigest()[:10]

CG_BASES = ["/sys/fs/cgroup/berth", "/sys/fs/cgroup/memory/berth", "/sys/fs/cgroup/pids/berth", "/sys/fs/cgroup/unified/berth"]

def counter():
    ids = ids_ever()
    links = sum(os.path.exists(f"/sys/class/net/{veth(i)}") for i in ids) + os.path.exists(f"/sys/class/net/{bridge()}")
    mounts = sum(root in l for l in open("/proc/self/mountinfo"))
    cgroups = sum(os.path.isdir(os.path.join(b, i)) for b in CG_BASES for i in ids)
    r = subprocess.run(["nft", "list", "table", "inet", TABLE], capture_output=True, text=True)
    nft = len(r.stdout.splitlines()) if r.returncode == 0 else 0
    procs = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if root.encode() in cmd and b"__supervise" in cmd or (b"--root" in cmd and root.encode() in cmd and b"__dns" in b" ".join(cmd)):
                procs += 1
    entries = 0
    for sub in ["containers", "networks", "locks", "projects", "tmp"]:
        try:
            entries += len(os.listdir(os.path.join(root, sub)))
        except OSError:
            pass
    return {"links": links, "mounts": mounts, "cgroups": cgroups, "nft_lines": nft, "processes": procs, "state_entries": entries}

def entries():
    out = set()
    for sub in ["containers", "networks", "locks", "projects", "tmp"]:
        try:
            out.update(f"{sub}/{e}" for e in os.listdir(os.path.join(root, sub)))
        except OSError:
            pass
    return out

def converged(scale):
    r = run("ps", "-a", "--format", "{{.Name}} {{.State}}")
    lines = sorted(l for l in r.stdout.splitlines() if l.strip())
    want = sorted(f"{P}-{s}-{i} running" for s, k in scale.items() for i in range(1, k + 1))
    return lines == want, lines

def supervisors():
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if b"__supervise" in cmd and root.encode() in cmd:
                out.append(int(pid))
    return out

# The empty baseline after one up/down cycle: the root's own named locks exist from then on.
run("up", "-d")
run("down", "-t", "0")
time.sleep(2.5)
empty = counter()
empty_entries = entries()
t0 = time.time()
run("up", "-d")
base = counter()
ok, lines = converged({"a": 1, "b": 1, "c": 1})
assert ok, lines

kills_cli = kills_sup = finished = 0
actions = {"up": 0, "down": 0, "restart": 0, "scale": 0, "supervisor": 0}
for it in range(n):
    what = rng.choice(["up", "up", "down", "restart", "scale", "supervisor"])
    actions[what] += 1
    if what == "supervisor":
        sups = supervisors()
        if sups:
            os.kill(rng.choice(sups), signal.SIGKILL)
            kills_sup += 1
        continue
    args = {"up": ["up", "-d"], "down": ["down", "-t", "0"], "restart": ["restart", "-t", "0"],
            "scale": ["up", "-d", "--scale", f"b={rng.randint(1, 3)}"]}[what]
    p = subprocess.Popen(berth_cmd(*args), cwd=proj, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    delay = rng.uniform(0.0, 0.2)
    try:
        p.wait(timeout=delay)
        finished += 1
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait()
        kills_cli += 1

# Converge: `up` (twice: the first may have to clean up after the kills), then compare.
run("up", "-d", "--scale", "b=1", "--remove-orphans", check=False)
run("up", "-d", "--scale", "b=1", "--remove-orphans")
time.sleep(0.5)
ok, lines = converged({"a": 1, "b": 1, "c": 1})
after = counter()
run("down", "-t", "0", "--remove-orphans")
time.sleep(2.5)  # veths go with their namespaces, a little after
final = counter()
elapsed = time.time() - t0
print(f"seed {seed}, {n} iterations in {elapsed:.0f} s: {kills_cli} CLI kill -9, {kills_sup} supervisor kill -9, "
      f"{finished} commands finished before their kill; actions {actions}")
print(f"converged after chaos: {ok} {lines if not ok else ''}")
for k in base:
    print(f"  {k:14} empty {empty[k]:4}  up {base[k]:4}  after-chaos-up {after[k]:4}  after-down {final[k]:4}")
leaks = {k: (after[k] - base[k], final[k] - empty[k]) for k in base if after[k] != base[k] or final[k] != empty[k]}
print("leaks:", leaks if leaks else "none")
if final["state_entries"] != empty["state_entries"]:
    print("  state entries left after down:", sorted(entries() - empty_entries))
sys.exit(0 if ok and not leaks else 1)
PY
