#!/usr/bin/env bash
# Seeds the fuzz corpus with every compose file of the two conformance corpora (and each case's
# .env, after a `#ENV` line, when it has one), then runs the loader target on one core for
# $1 seconds (default 300). Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")"
fixtures=../tests/fixtures
mkdir -p corpus/loader
python3 - "$fixtures" corpus/loader <<'PY'
import hashlib, json, os, sys
fixtures, out = sys.argv[1], sys.argv[2]
for corpus in ("compose-corpus", "compose-e2e"):
    root = os.path.join(fixtures, corpus)
    for c in json.load(open(os.path.join(root, "cases.json"))):
        d = os.path.join(root, "trees", c["tree"], c["dir"])
        for f in c["files"]:
            data = open(os.path.join(d, f), "rb").read()
            env = os.path.join(d, ".env")
            if os.path.isfile(env):
                data += b"\n#ENV\n" + open(env, "rb").read()
            open(os.path.join(out, hashlib.sha1(data).hexdigest()), "wb").write(data)
PY
cargo +nightly fuzz run loader corpus/loader -- -max_total_time="${1:-300}" -rss_limit_mb=1024 -timeout=10 -max_len=65536 -jobs=1 -workers=1
