#!/usr/bin/env bash
# berth config vs docker compose config on the same corpus files, in one run (hyperfine).
# usage: bench/config.sh [CASE...]   (default: a few corpus cases); prints a table and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
BERTH="$PWD/target/release/berth"
CORPUS="$PWD/tests/fixtures/compose-corpus"
if [ $# -eq 0 ]; then set -- ac-react-express-mysql cg-loader-compose-include cg-cli-env-file-compose-with-env-files ac-elasticsearch-logstash-kibana; fi
for name in "$@"; do
  read -r dir files < <(python3 -c "
import json,sys
c=[c for c in json.load(open('$CORPUS/cases.json')) if c['name']=='$name'][0]
print('$CORPUS/trees/'+c['tree']+'/'+c['dir'], ' '.join('-f '+f for f in c['files']))")
  cd "$dir"
  out=$(mktemp)
  hyperfine -N -w 3 -r 30 --export-json "$out" \
    -n berth "env -i PATH=$PATH HOME=/nonexistent $BERTH $files config --format json" \
    -n docker-compose "env -i PATH=$PATH HOME=/nonexistent docker compose $files config --format json" >/dev/null
  python3 - "$out" "$name" <<'PY'
import json,sys
r={x['command']:x['mean']*1000 for x in json.load(open(sys.argv[1]))['results']}
print(f"{sys.argv[2]:45s} berth {r['berth']:6.2f} ms   docker compose {r['docker-compose']:7.2f} ms   ratio {r['docker-compose']/r['berth']:5.1f}x")
PY
  rm -f "$out"; cd - >/dev/null
done
