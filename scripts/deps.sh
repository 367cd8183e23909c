#!/usr/bin/env bash
# Installs what berth needs to build and test on Debian, skipping what is already present.
# Sourced by scripts/demo.sh and scripts/test.sh. Needs root for apt-get.
set -euo pipefail

berth_deps() {
  local want=("$@") missing=() p
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "==> apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    . "$HOME/.cargo/env"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    # Debian's own rustc is older than the 1.85 berth needs: rustup's minimal profile instead.
    echo "==> rustup (a Rust toolchain: cargo is not on PATH)"
    dpkg-query -W -f='${Status}' curl 2>/dev/null | grep -q 'install ok installed' ||
      { apt-get update -qq && apt-get install -y -qq --no-install-recommends curl >/dev/null; }
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null
    . "$HOME/.cargo/env"
  fi
}

# What building needs: a C compiler and libseccomp for the seccomp filter.
BUILD_PKGS=(gcc pkg-config libseccomp-dev)
# What running needs: nft for the firewall, busybox-static for the offline example image.
RUN_PKGS=(nftables busybox-static ca-certificates)
# What the tests add: a real registry on loopback, htpasswd for its basic auth, openssl for the
# test token server's signing key, Python for the Kubernetes schema check of `bridge convert`.
TEST_PKGS=(docker-registry docker.io apache2-utils openssl iproute2 python3 python3-venv)

# The Python tools tests/bridge_convert.rs uses, from PyPI, in a venv under the target folder:
# kubernetes-validate (the Kubernetes OpenAPI schemas, offline) and helm-python-sdk (Helm's own
# chart engine, to render the generated charts; no PyPI, npm or Debian package ships a helm binary).
PYTOOLS=(kubernetes-validate==1.37.0 helm-python-sdk==0.2.2)

berth_pytools() {
  local venv="${CARGO_TARGET_DIR:-target}/tools/venv"
  if [ -x "$venv/bin/kubernetes-validate" ] && [ "$(cat "$venv/.berth-tools" 2>/dev/null)" = "${PYTOOLS[*]}" ]; then
    return 0
  fi
  echo "==> pip install ${PYTOOLS[*]} (into $venv)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${PYTOOLS[@]}"
  echo "${PYTOOLS[*]}" >"$venv/.berth-tools"
}
