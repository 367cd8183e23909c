#!/usr/bin/env bash
# Build benchmark: the same compose project and Dockerfile (two stages, COPY of a source tree,
# RUN steps, COPY --from) built by `berth build`, by `docker compose build` (BuildKit in Docker
# Engine) and by `docker build` (Docker Engine's classic builder), side by side in one run:
#   cold:   every step runs (--no-cache), the busybox base image already present;
#   cached: nothing changed since the last build, every step is CACHED.
# Usage: bench/build.sh [RUNS]   (needs root, docker with its busybox image, hyperfine; never run in CI)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
berth=${BERTH:-$PWD/target/release/berth}
[ -x "$berth" ] || cargo build --release --locked
work=$(mktemp -d /tmp/berth-bench-build.XXXXXX)
root="$work/root"
proj="$work/benchbuild"
cleanup() {
  "$berth" --root "$root" __teardown >/dev/null 2>&1 || true
  # Every image the Docker builds made (the old ones are dangling), with their untagged parents.
  # (each stage labels itself, so that the classic builder's intermediate images carry it too).
  for _ in 1 2 3; do docker images -a -q -f label=berth-bench=build | sort -u | xargs -r docker rmi -f >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The context: a real source tree (the kernel's uapi headers: 763 files, 6.5 MB) and a few files.
mkdir -p "$proj/src"
cp -a /usr/include/linux "$proj/src/"
head -c 4M /dev/urandom > "$proj/blob.bin"
cat > "$proj/Dockerfile" <<'EOF'
FROM busybox AS build
LABEL berth-bench=build
WORKDIR /src
COPY src/ ./
RUN find . -type f | wc -l > /count && tar -cf /src.tar . && sha256sum /src.tar > /src.sum
FROM busybox
LABEL berth-bench=build
ENV APP_HOME=/app
WORKDIR $APP_HOME
COPY --from=build /count /src.sum ./
COPY blob.bin ./data/
RUN cat count && sha256sum data/blob.bin > data/blob.sum
CMD ["sh"]
EOF
printf 'services:\n  app:\n    build: .\n' > "$proj/compose.yaml"

# berth's busybox: Debian's busybox-static (Docker's is made from the same binary by setup).
scripts/busybox-image.sh "$work/busybox.tar"
"$berth" --root "$root" image import "$work/busybox.tar" busybox:latest --change 'CMD ["sh"]' >/dev/null

cd "$proj"
export BERTH_ROOT="$root"
# Warm everything once (and check that each builder succeeds).
"$berth" build -q
docker compose build -q >/dev/null 2>&1
DOCKER_BUILDKIT=0 docker build -q -t benchbuild-classic . >/dev/null 2>&1

out="$work/hyperfine.json"
hyperfine -N -w 1 -r "$runs" --export-json "$out" \
  -n "berth cold" "$berth build -q --no-cache" \
  -n "compose cold" "docker compose build -q --no-cache" \
  -n "classic cold" "env DOCKER_BUILDKIT=0 docker build -q --no-cache -t benchbuild-classic ." \
  -n "berth cached" "$berth build -q" \
  -n "compose cached" "docker compose build -q" \
  -n "classic cached" "env DOCKER_BUILDKIT=0 docker build -q -t benchbuild-classic ." >/dev/null
python3 - "$out" <<'PY'
import json, sys
r = {x['command']: x for x in json.load(open(sys.argv[1]))['results']}
def ms(name):
    x = r[name]
    return x['mean'] * 1000, min(x['times']) * 1000
print("| build | berth | docker compose build (BuildKit) | docker build (classic) | vs compose | vs classic |")
print("| --- | --- | --- | --- | --- | --- |")
for kind in ("cold", "cached"):
    b, c, k = ms(f"berth {kind}"), ms(f"compose {kind}"), ms(f"classic {kind}")
    print(f"| {kind} | {b[0]:.0f} ms (best {b[1]:.0f}) | {c[0]:.0f} ms (best {c[1]:.0f}) | {k[0]:.0f} ms (best {k[1]:.0f}) | {c[0]/b[0]:.1f}x | {k[0]/b[0]:.1f}x |")
PY
