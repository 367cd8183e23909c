#!/usr/bin/env bash
# Installs what is missing, then runs every test: unit tests, the compose conformance corpus,
# and the integration tests that run the built binary as root on this kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
berth_deps "${BUILD_PKGS[@]}" "${RUN_PKGS[@]}" "${TEST_PKGS[@]}"
berth_pytools
if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh runs containers, networks and cgroups on this kernel: run it as root." >&2
  exit 1
fi
for tool in rustfmt clippy; do
  cargo "${tool/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$tool"
done
echo "==> cargo fmt --check"
cargo fmt --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets --quiet -- -D warnings
echo "==> cargo build"
cargo build --locked --all-targets
echo "==> cargo test"
cargo test --locked -- --test-threads="${BERTH_TEST_THREADS:-4}"
