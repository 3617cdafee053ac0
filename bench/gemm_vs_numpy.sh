#!/usr/bin/env bash
# GEMM side by side: maeembed's kernels (go test -bench) and numpy/OpenBLAS
# sgemm on the ViT-B/16 encoder shapes at batch 8 (m×k×n = 1576×768×2304,
# 1576×768×768, 1576×768×3072, 1576×3072×768), on the same machine in the
# same invocation. Rounds alternate Go and numpy and the best of each is
# kept, so a neighbour's load hits both sides alike.
#
# Usage: bench/gemm_vs_numpy.sh [ROUNDS]      (default 4)
# Env:   THREADS="2 1"  thread counts (GOMAXPROCS / OPENBLAS_NUM_THREADS)
#        PY=/usr/bin/python3 (Debian's python with numpy)
#
# numpy runs twice per round: in the caller's environment ("np default")
# and with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset ("np unset", OpenBLAS
# picks its own kernels: AVX-512 on this CPU). "ratio" is Go Gemm on the
# fastest path over the better of the two numpy runs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-4}
THREADS=${THREADS:-"2 1"}
PY=${PY:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go test -c -o "$tmp/kernels.test" ./mae/kernels

cat >"$tmp/np.py" <<'PY'
import sys, time
import numpy as np
reps = int(sys.argv[1])
rng = np.random.default_rng(1)
for m, k, n in [(1576, 768, 2304), (1576, 768, 768), (1576, 768, 3072), (1576, 3072, 768)]:
    a = rng.standard_normal((m, k), dtype=np.float32)
    w = rng.standard_normal((n, k), dtype=np.float32)
    c = a @ w.T  # y = x·Wᵀ, the Linear layout the Go benchmark uses
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        np.matmul(a, w.T, out=c)
        best = min(best, time.perf_counter() - t)
    print(f"{m}x{k}x{n} {2*m*k*n/best/1e9:.1f}")
PY

for th in $THREADS; do
  for ((r = 1; r <= ROUNDS; r++)); do
    echo "threads=$th round $r/$ROUNDS" >&2
    GOMAXPROCS=$th "$tmp/kernels.test" -test.run '^$' \
      -test.bench '^Benchmark(Gemm|Linear)$/^path=(avx512|avx2)$/' -test.benchtime 4x -test.count 2 |
      awk -v th="$th" '/GFLOP\/s/ { split($1, p, "/"); sub(/-[0-9]+$/, "", p[3]); sub(/^[a-z0-9]+_/, "", p[3]);
        sub(/^Benchmark/, "", p[1]); print th, p[1] "-" substr(p[2], 6), p[3], $(NF-1) }' >>"$tmp/go"
    OPENBLAS_NUM_THREADS=$th "$PY" "$tmp/np.py" 5 | awk -v th="$th" '{ print th, "np-default", $1, $2 }' >>"$tmp/go"
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=$th "$PY" "$tmp/np.py" 5 |
      awk -v th="$th" '{ print th, "np-unset", $1, $2 }' >>"$tmp/go"
  done
done

echo "OpenBLAS core (default env): $(OPENBLAS_VERBOSE=2 "$PY" -c 'import numpy' 2>&1 | sed -n 's/^Core: //p'), (unset): $(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_VERBOSE=2 "$PY" -c 'import numpy' 2>&1 | sed -n 's/^Core: //p')"
echo "Go paths: $("$tmp/kernels.test" -test.run '^TestPaths$' -test.v 2>/dev/null | sed -n 's/.*paths: //p')"
"$PY" - "$tmp/go" <<'PY'
import sys, collections
best = collections.defaultdict(float)
for line in open(sys.argv[1]):
    th, col, shape, g = line.split()
    best[(th, col, shape)] = max(best[(th, col, shape)], float(g))
ths = sorted({k[0] for k in best}, reverse=True)
shapes = ["1576x768x2304", "1576x768x768", "1576x768x3072", "1576x3072x768"]
cols = ["Gemm-avx512", "Linear-avx512", "Gemm-avx2", "Linear-avx2", "np-default", "np-unset"]
print("GFLOP/s (best of rounds), m×k×n. Gemm: C = A·Bᵀ with B packed per call, as numpy's a @ w.T;")
print("Linear: prepacked weights + bias (+ exact GELU on the 3072-wide fc1), the model's call.")
print(f"{'thr':>3} {'shape':>14} " + " ".join(f"{c:>13}" for c in cols) + f" {'ratio':>6}")
for th in ths:
    for s in shapes:
        v = [best.get((th, c, s), 0.0) for c in cols]
        go = max(v[0], v[2])
        np_ = max(v[4], v[5])
        ratio = go / np_ if np_ else float("nan")
        print(f"{th:>3} {s:>14} " + " ".join(f"{x:13.1f}" for x in v) + f" {ratio:6.2f}")
PY
