#!/usr/bin/env bash
# `up -d` and `down -t 0` of 1, 10 and 30 busybox services (bench/up.sh's projects) under two berth
# binaries, alternated run by run, each on its own state root: to tell a slowdown of berth itself
# from the machine's load, which moves both alike.
# Usage: bench/ab.sh OLD_BINARY NEW_BINARY [RUNS]   (default 5; prints medians in ms)
set -euo pipefail
cd "$(dirname "$0")/.."
OLD="$1"; NEW="$2"; RUNS="${3:-5}"
if [ "$(id -u)" != 0 ]; then echo "bench/ab.sh creates containers: run it as root" >&2; exit 1; fi
WORK="$(mktemp -d /var/tmp/berth-bench-ab.XXXXXX)"
cleanup() {
  "$OLD" --root "$WORK/old" __teardown >/dev/null 2>&1 || true
  "$NEW" --root "$WORK/new" __teardown >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
scripts/busybox-image.sh "$WORK/busybox.tar" >/dev/null
for side in old new; do
  bin=$OLD; [ $side = new ] && bin=$NEW
  "$bin" --root "$WORK/$side" image import "$WORK/busybox.tar" busybox:latest --change 'CMD ["sh"]' >/dev/null
done
for n in 1 10 30; do
  mkdir -p "$WORK/p$n"
  {
    echo "services:"
    for ((i = 0; i < n; i++)); do
      echo "  s$i:"; echo "    image: busybox"; echo "    command: sleep 1000"; echo "    init: true"
      [ "$i" -gt 0 ] && echo "    depends_on: [s$((i / 2))]"
    done
  } >"$WORK/p$n/compose.yaml"
done
ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N); echo $(((t1 - t0) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "| services | old up -d | new up -d | new/old | old down | new down | new/old |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for n in 1 10 30; do
  : >"$WORK/t"
  for ((r = 0; r < RUNS; r++)); do
    for side in old new; do
      bin=$OLD; [ $side = new ] && bin=$NEW
      u=$(cd "$WORK/p$n" && ms "$bin" --root "$WORK/$side" -p "abbench$n" up -d)
      d=$(cd "$WORK/p$n" && ms "$bin" --root "$WORK/$side" -p "abbench$n" down -t 0)
      echo "$side $u $d" >>"$WORK/t"
    done
  done
  ou=$(awk '$1=="old"{print $2}' "$WORK/t" | median); nu=$(awk '$1=="new"{print $2}' "$WORK/t" | median)
  od=$(awk '$1=="old"{print $3}' "$WORK/t" | median); nd=$(awk '$1=="new"{print $3}' "$WORK/t" | median)
  echo "| $n | $ou | $nu | $(awk "BEGIN{printf \"%.2f\", $nu/$ou}") | $od | $nd | $(awk "BEGIN{printf \"%.2f\", $nd/$od}") |"
done
