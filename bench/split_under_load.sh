#!/usr/bin/env bash
# The parallel split under load, alone and beside a busy-loop process,
# built from BASE and from the work tree, run alternately in the same
# invocation so other load hits both alike: BenchmarkBlockUnderLoad (one
# ViT-B/16 encoder block at batch 1 and 8; PKG=kernels, the default) or
# BenchmarkModelUnderLoad (ViT-B/16 embed at batch 8 and 1, reconstruct at
# batch 8; PKG=mae).
#
# Usage: bench/split_under_load.sh [BASE] [ROUNDS]   (default main, 5)
# Env:   THREADS=2 (GOMAXPROCS), ITERS=6 blocks (PKG=mae: 2 batches) per
#        timed run, PKG=kernels|mae
# Prints ms per block, median and best over rounds, and new ÷ base.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:-main}
ROUNDS=${2:-5}
THREADS=${THREADS:-2}
PKG=${PKG:-kernels}
case $PKG in
kernels) BENCH=BlockUnderLoad; ITERS=${ITERS:-6} ;;
mae) BENCH=ModelUnderLoad; ITERS=${ITERS:-2} ;;
*) echo "PKG must be kernels or mae" >&2; exit 2 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/base"
git archive "$BASE" | tar -x -C "$tmp/base"
# The benchmark uses only what both trees have: the same file runs on both.
dir=mae/kernels
[ "$PKG" = mae ] && dir=mae
cp "$dir/load_bench_test.go" "$tmp/base/$dir/"
mkdir -p "$tmp/base/internal/busyloop"
cp internal/busyloop/*.go "$tmp/base/internal/busyloop/"
(cd "$tmp/base" && go test -c -o "$tmp/base.test" "./$dir")
go test -c -o "$tmp/new.test" "./$dir"
for ((r = 1; r <= ROUNDS; r++)); do
  echo "round $r/$ROUNDS" >&2
  for b in base new; do
    GOMAXPROCS=$THREADS "$tmp/$b.test" -test.run '^$' -test.bench "^Benchmark$BENCH\$" \
      -test.benchtime "${ITERS}x" 2>/dev/null | awk -v b="$b" '/ns\/op/ { sub(/-[0-9]+$/, "", $1); print b, $1, $3 / 1e6 }' >>"$tmp/res"
  done
done
echo "$(git rev-parse --short "$BASE") vs work tree, GOMAXPROCS=$THREADS, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(nproc) CPUs"
python3 - "$tmp/res" <<'PY'
import sys, collections, statistics
v = collections.defaultdict(list)
for line in open(sys.argv[1]):
    b, case, ms = line.split()
    v[(b, case.split("/", 1)[1])].append(float(ms))
print(f"{'case':<28}{'base median':>12}{'new median':>12}{'base best':>12}{'new best':>12}{'new÷base med':>14}")
for case in sorted({c for _, c in v}):
    bm, nm = statistics.median(v[("base", case)]), statistics.median(v[("new", case)])
    print(f"{case:<28}{bm:12.1f}{nm:12.1f}{min(v[('base', case)]):12.1f}{min(v[('new', case)]):12.1f}{nm / bm:13.2f}x")
PY
