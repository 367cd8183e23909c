#!/usr/bin/env bash
# Installs what is missing, builds berth, and runs the example stack in examples/compose.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
berth_deps "${BUILD_PKGS[@]}" "${RUN_PKGS[@]}"
echo "==> cargo build --release"
cargo build --release --locked
berth="$PWD/target/release/berth"
echo "==> berth image import busybox (Debian's busybox-static, offline)"
bbtar=$(mktemp --suffix=.tar)
scripts/busybox-image.sh "$bbtar"
"$berth" image import "$bbtar" busybox:latest --change 'CMD ["sh"]' >/dev/null
rm -f "$bbtar"
cd examples/compose
echo "==> berth config (the resolved project, as Docker Compose prints it)"
"$berth" config
echo "==> berth up -d (networks, the volume, then each service in dependency order)"
"$berth" up -d
trap '"$berth" down -v -t 1 >/dev/null 2>&1 || true' EXIT
echo "==> berth ps"
"$berth" ps
echo "==> wget http://127.0.0.1:8080/ (the published port)"
for _ in $(seq 50); do
  if page=$(busybox wget -q -O - http://127.0.0.1:8080/ 2>/dev/null); then break; fi
  sleep 0.1
done
echo "${page:-the page did not answer}"
echo "==> berth logs (the client reaches web by its service name)"
sleep 1
"$berth" logs --tail 5
echo "==> berth down -v"
"$berth" down -v
trap - EXIT
