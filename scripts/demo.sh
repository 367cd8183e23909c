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
