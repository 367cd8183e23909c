#!/usr/bin/env bash
# `berth ps` vs `docker compose ps` on the same running project, side by side (hyperfine):
# N busybox services (default 10), each `sleep`ing; both tools list them by project name (-p, no
# file read) and from the compose file (the project is loaded first, as compose does).
#
# The berth project is brought up with `berth up -d` when this build has it; otherwise its
# containers are created as compose would (names, compose labels, config hash) through
# `berth __ctr run -d` from a busybox layer directory, without networks (ps does not read them).
# Usage: bench/ps.sh [N] [RUNS]   (defaults 10 and 30). Needs root and Docker with busybox.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10}"
RUNS="${2:-30}"
if [ "$(id -u)" != 0 ]; then echo "bench/ps.sh creates containers: run it as root" >&2; exit 1; fi
cargo build --release --quiet
BERTH="$PWD/target/release/berth"
WORK="$(mktemp -d /var/tmp/berth-bench-ps.XXXXXX)"
ROOT="$WORK/root"
PROJ=benchps
cleanup() {
  (cd "$WORK/proj" 2>/dev/null && docker compose -p "$PROJ" down -t 0 >/dev/null 2>&1) || true
  "$BERTH" --root "$ROOT" __teardown >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/proj"
{
  echo "services:"
  for i in $(seq 1 "$N"); do
    printf '  s%d:\n    image: busybox:latest\n    command: ["sleep", "100000"]\n' "$i"
  done
} > "$WORK/proj/compose.yaml"

# docker compose's side.
(cd "$WORK/proj" && docker compose -p "$PROJ" up -d >/dev/null 2>&1)

# berth's side: the same busybox (static binary and applet links) in berth's own image store.
LAYER="$WORK/layers/busybox"
mkdir -p "$LAYER"/{bin,etc,tmp,proc,sys,dev,root}
cp "$(command -v busybox)" "$LAYER/bin/busybox"
for a in $(busybox --list); do [ "$a" = busybox ] || ln -s busybox "$LAYER/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$LAYER/etc/passwd"
printf 'root:x:0:\n' > "$LAYER/etc/group"
chmod 1777 "$LAYER/tmp"
tar -C "$LAYER" -cf "$WORK/busybox.tar" .
"$BERTH" --root "$ROOT" image import "$WORK/busybox.tar" busybox:latest --change 'CMD ["sh"]' >/dev/null
up_out="$("$BERTH" --root "$ROOT" -f "$WORK/proj/compose.yaml" -p "$PROJ" up -d 2>&1 || true)"
if "$BERTH" --root "$ROOT" -p "$PROJ" ps -q 2>/dev/null | grep -q .; then
  MODE="berth up -d"
else
  case "$up_out" in *"not implemented"*) ;; *) echo "berth up -d failed: $up_out" >&2 ;; esac
  MODE="berth __ctr run -d with compose's labels"
  python3 - "$BERTH" "$ROOT" "$WORK" "$LAYER" "$N" "$PROJ" <<'PY'
import hashlib, json, os, subprocess, sys
berth, root, work, layer, n, proj = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
for i in range(1, n + 1):
    svc = f"s{i}"
    labels = {
        "com.docker.compose.project": proj,
        "com.docker.compose.service": svc,
        "com.docker.compose.container-number": "1",
        "com.docker.compose.oneoff": "False",
        "com.docker.compose.config-hash": hashlib.sha256(svc.encode()).hexdigest(),
        "com.docker.compose.project.config_files": f"{work}/proj/compose.yaml",
        "com.docker.compose.project.working_dir": f"{work}/proj",
        "com.docker.compose.version": "2.40.3",
    }
    spec = {"Name": f"{proj}-{svc}-1", "ImageRef": "busybox:latest", "Cmd": ["sleep", "100000"],
            "Labels": labels, "NetworkMode": "none", "Rootfs": {"Layers": [layer]}}
    p = os.path.join(work, f"{svc}.json")
    json.dump(spec, open(p, "w"))
    subprocess.run([berth, "--root", root, "__ctr", "run", "-d", p], check=True, stdout=subprocess.DEVNULL)
PY
fi
test "$("$BERTH" --root "$ROOT" -p "$PROJ" ps -q | wc -l)" = "$N" || { echo "berth does not list $N containers" >&2; exit 1; }
test "$(docker compose -p "$PROJ" ps -q | wc -l)" = "$N" || { echo "docker compose does not list $N containers" >&2; exit 1; }

cd "$WORK/proj"
out="$WORK/ps.json"
hyperfine -N -w 3 -r "$RUNS" --export-json "$out" \
  -n "berth -p ps" "$BERTH --root $ROOT -p $PROJ ps" \
  -n "docker compose -p ps" "docker compose -p $PROJ ps" \
  -n "berth ps (file)" "$BERTH --root $ROOT -p $PROJ -f compose.yaml ps" \
  -n "docker compose ps (file)" "docker compose -p $PROJ -f compose.yaml ps" \
  -n "berth ps -a --format json" "$BERTH --root $ROOT -p $PROJ ps -a --format json" \
  -n "docker compose ps -a --format json" "docker compose -p $PROJ ps -a --format json" >/dev/null
python3 - "$out" "$N" "$RUNS" "$MODE" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
print(f"ps of a project of {sys.argv[2]} running services, {sys.argv[3]} runs each after 3 warm-ups; berth side made by {sys.argv[4]}\n")
print("| | berth | docker compose | berth / compose |\n| --- | --- | --- | --- |")
for what, b, d in [("`ps -p NAME`", "berth -p ps", "docker compose -p ps"),
                   ("`ps` with the file", "berth ps (file)", "docker compose ps (file)"),
                   ("`ps -a --format json`", "berth ps -a --format json", "docker compose ps -a --format json")]:
    bm, dm = r[b]["mean"] * 1000, r[d]["mean"] * 1000
    print(f"| {what} | {bm:.1f} ms (± {r[b]['stddev']*1000:.1f}) | {dm:.1f} ms (± {r[d]['stddev']*1000:.1f}) | {bm / dm:.3f} |")
PY
