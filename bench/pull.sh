#!/usr/bin/env bash
# Pull benchmark: the same multi-layer gzip image, from the same loopback registry (Debian's
# docker-registry), pulled by `berth image pull` into a fresh state root and by `docker pull`
# into the running Docker Engine (127.0.0.0/8 is an insecure registry for Docker by default).
# Then unpack speed: `berth image import` of one gzip layer against single-core `gzip -dc`.
# Usage: bench/pull.sh [RUNS]   (needs root, docker, docker-registry, curl; never run in CI)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
berth=${BERTH:-$PWD/target/release/berth}
[ -x "$berth" ] || cargo build --release --locked
work=$(mktemp -d /tmp/berth-bench-pull.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
repo=berth-bench/pull
cleanup() {
  [ -n "${regpid:-}" ] && kill "$regpid" 2>/dev/null || true
  docker rmi -f "$reg/$repo:1" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/config.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: $reg}
EOF
docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
regpid=$!
for _ in $(seq 50); do curl -sf "http://$reg/v2/" >/dev/null && break; sleep 0.1; done

# Layers: real files from this machine, plus a random file so that no cache has them.
mk_layer() { # name, dirs...
  local name=$1; shift
  local d="$work/src-$name"
  mkdir -p "$d/bench"
  head -c 1M /dev/urandom > "$d/bench/$name.random"
  for src in "$@"; do mkdir -p "$d$(dirname "$src")"; cp -a "$src" "$d$src"; done
  tar --numeric-owner -C "$d" -cf "$work/$name.tar" .
  gzip -6 -c "$work/$name.tar" > "$work/$name.tar.gz"
  rm -rf "$d"
}
echo "==> building the image (4 gzip layers)"
scripts/busybox-image.sh "$work/base.tar"; gzip -6 -c "$work/base.tar" > "$work/base.tar.gz"
mk_layer doc /usr/share/doc
mk_layer locale /usr/share/locale
mk_layer gcc /usr/lib/gcc
mk_layer libs /usr/lib/x86_64-linux-gnu/perl-base /usr/lib/x86_64-linux-gnu/gconv

upload() { # file -> digest
  local f=$1 d loc
  d="sha256:$(sha256sum "$f" | cut -d' ' -f1)"
  loc=$(curl -sf -D - -o /dev/null -X POST "http://$reg/v2/$repo/blobs/uploads/" | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
  case $loc in http*) ;; *) loc="http://$reg$loc";; esac
  case $loc in *\?*) sep='&';; *) sep='?';; esac
  curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$f" "$loc${sep}digest=$d" >/dev/null
  echo "$d"
}
layers=() diffs=()
for n in base doc locale gcc libs; do
  layers+=("{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"digest\":\"$(upload "$work/$n.tar.gz")\",\"size\":$(stat -c %s "$work/$n.tar.gz")}")
  diffs+=("\"sha256:$(sha256sum "$work/$n.tar" | cut -d' ' -f1)\"")
done
join() { local IFS=,; echo "$*"; }
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' "$(join "${diffs[@]}")" > "$work/config.json"
cfg=$(upload "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
  "$cfg" "$(stat -c %s "$work/config.json")" "$(join "${layers[@]}")" > "$work/manifest.json"
curl -sf -X PUT -H 'Content-Type: application/vnd.docker.distribution.manifest.v2+json' --data-binary "@$work/manifest.json" "http://$reg/v2/$repo/manifests/1" >/dev/null
total_gz=$(cat "$work"/*.tar.gz | wc -c); total_tar=$(cat "$work"/*.tar | wc -c)
echo "image: 5 layers, $((total_gz / 1000000)) MB compressed, $((total_tar / 1000000)) MB uncompressed"

now() { date +%s.%N; }
best_b=999 best_d=999
# UNPACK_ONLY=1 skips the pull comparison.
for i in $(seq "$runs"); do
  [ -n "${UNPACK_ONLY:-}" ] && break
  root="$work/root-$i"
  t0=$(now); "$berth" --root "$root" image pull -q "$reg/$repo:1" >/dev/null; t1=$(now)
  b=$(echo "$t1 - $t0" | bc); rm -rf "$root"
  docker rmi -f "$reg/$repo:1" >/dev/null 2>&1 || true
  t0=$(now); docker pull -q "$reg/$repo:1" >/dev/null; t1=$(now)
  d=$(echo "$t1 - $t0" | bc)
  docker rmi -f "$reg/$repo:1" >/dev/null 2>&1 || true
  printf 'run %d: berth %.2fs  docker %.2fs\n' "$i" "$b" "$d"
  best_b=$(echo "if ($b < $best_b) $b else $best_b" | bc); best_d=$(echo "if ($d < $best_d) $d else $best_d" | bc)
done
[ -n "${UNPACK_ONLY:-}" ] || printf 'pull (best of %d): berth %.2fs, docker %.2fs, ratio %.1fx\n' "$runs" "$best_b" "$best_d" "$(echo "$best_d / $best_b" | bc -l)"

echo "==> unpack, per layer (best of $runs): single-core gzip -dc to /dev/null, GNU tar -xzf to disk,"
echo "    berth image import (by default the reader writes every file) and with 4 writer threads for small files"
echo "    (BERTH_UNPACK_WRITERS=4), and creating as many empty files as the layer has entries, alone (a C loop:"
echo "    open O_CREAT, close)"
cc -O2 -x c -o "$work/mkfiles" - <<'EOF'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int c, char **v) { char p[64]; for (int i = 0; i < atoi(v[1]); i++) { snprintf(p, 64, "f%d", i); close(open(p, O_WRONLY | O_CREAT | O_EXCL, 0644)); } return 0; }
EOF
printf '%-8s %8s %7s %9s %8s %8s %9s %10s %s\n' layer entries tar-MB gzip-dc tar-xzf berth berth-4w creat-only "berth/gzip"
for n in base doc locale gcc libs; do
  f="$work/$n.tar.gz"; cat "$f" > /dev/null
  bg=999 bt=999 b4=999 bi=999 bc_=999
  entries=$(tar tf "$work/$n.tar" | wc -l)
  for i in $(seq "$runs"); do
    t0=$(now); gzip -dc "$f" > /dev/null; t1=$(now); bg=$(echo "x=$t1 - $t0; if (x < $bg) x else $bg" | bc)
    mkdir -p "$work/x"; t0=$(now); tar -C "$work/x" -xzf "$f"; t1=$(now); rm -rf "$work/x"; bt=$(echo "x=$t1 - $t0; if (x < $bt) x else $bt" | bc)
    root="$work/iroot"; t0=$(now); BERTH_UNPACK_WRITERS=4 "$berth" --root "$root" image import "$f" bench:layer >/dev/null; t1=$(now); rm -rf "$root"
    b4=$(echo "x=$t1 - $t0; if (x < $b4) x else $b4" | bc)
    root="$work/iroot"; t0=$(now); "$berth" --root "$root" image import "$f" bench:layer >/dev/null; t1=$(now); rm -rf "$root"
    bi=$(echo "x=$t1 - $t0; if (x < $bi) x else $bi" | bc)
    mkdir -p "$work/c"; t0=$(now); (cd "$work/c" && "$work/mkfiles" "$entries"); t1=$(now); rm -rf "$work/c"
    bc_=$(echo "x=$t1 - $t0; if (x < $bc_) x else $bc_" | bc)
  done
  printf '%-8s %8d %7d %8.2fs %7.2fs %7.2fs %8.2fs %9.2fs %6.0f%%\n' "$n" "$entries" "$(( $(stat -c %s "$work/$n.tar") / 1000000 ))" "$bg" "$bt" "$bi" "$b4" "$bc_" "$(echo "100 * $bg / $bi" | bc -l)"
done
