#!/usr/bin/env bash
# GEMM side by side: maeembed's kernels (go test -bench) and numpy/OpenBLAS
# sgemm on the ViT-B/16 encoder shapes at batch 8 (m×k×n = 1576×768×2304,
# 1576×768×768, 1576×768×3072, 1576×3072×768), on the same machine in the
# same invocation. Rounds alternate Go and numpy and the best of each is
# kept, so a neighbour's load hits both sides alike. Both sides report
# the same statistic: the mean of 4 calls in a row, best of the same
# number of samples (SAMPLES per round, ROUNDS rounds).
#
# Usage: bench/gemm_vs_numpy.sh [ROUNDS]      (default 4)
# Env:   THREADS="2 1"  thread counts (GOMAXPROCS / OPENBLAS_NUM_THREADS)
#        PY=/usr/bin/python3 (Debian's python with numpy)
#
# numpy runs with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset ("np", OpenBLAS
# picks its own kernels: AVX-512 on this CPU) and with
# OPENBLAS_CORETYPE=Haswell ("np-haswell": its AVX2 kernels, the fair
# match for maeembed's avx2 path). Ratios: maeembed's Gemm on a path over
# numpy. At 1 thread a second table gives the same in GFLOP per second of
# process CPU time, which other work on the machine disturbs far less.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-4}
THREADS=${THREADS:-"2 1"}
SAMPLES=2 # per round and side: Go's -test.count, numpy's repetitions
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
    # Each round times 4 calls back to back and keeps their mean, as the
    # Go benchmark does (-test.benchtime 4x); the best round counts.
    best, bestcpu = float("inf"), float("inf")
    for _ in range(reps):
        t, u = time.perf_counter(), time.process_time()
        for _ in range(4):
            np.matmul(a, w.T, out=c)
        best = min(best, (time.perf_counter() - t) / 4)
        bestcpu = min(bestcpu, (time.process_time() - u) / 4)
    f = 2 * m * k * n / 1e9
    print(f"{m}x{k}x{n} {f / best:.1f} {f / max(bestcpu, 1e-9):.1f}")
PY

for th in $THREADS; do
  for ((r = 1; r <= ROUNDS; r++)); do
    echo "threads=$th round $r/$ROUNDS" >&2
    GOMAXPROCS=$th "$tmp/kernels.test" -test.run '^$' \
      -test.bench '^Benchmark(Gemm|Linear)$/^path=(avx512|avx2)$/' -test.benchtime 4x -test.count $SAMPLES |
      awk -v th="$th" '/GFLOP\/s/ { split($1, p, "/"); sub(/-[0-9]+$/, "", p[3]); sub(/^[a-z0-9]+_/, "", p[3]);
        sub(/^Benchmark/, "", p[1]); print th, p[1] "-" substr(p[2], 6), p[3], $(NF-3), $(NF-1) }' >>"$tmp/go"
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=$th "$PY" "$tmp/np.py" $SAMPLES |
      awk -v th="$th" '{ print th, "np", $1, $2, $3 }' >>"$tmp/go"
    env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=$th "$PY" "$tmp/np.py" $SAMPLES |
      awk -v th="$th" '{ print th, "np-haswell", $1, $2, $3 }' >>"$tmp/go"
  done
done

echo "CPU: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), family $(sed -n 's/^cpu family\s*: //p' /proc/cpuinfo | head -1) model $(sed -n 's/^model\s*: //p' /proc/cpuinfo | head -1), $(nproc) CPUs"
echo "flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx512f|avx512_bf16|avx512_vnni|avx_vnni)$' | tr '\n' ' ')"
echo "OpenBLAS core (np): $(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_VERBOSE=2 "$PY" -c 'import numpy' 2>&1 | sed -n 's/^Core: //p'), (np-haswell): $(OPENBLAS_CORETYPE=Haswell OPENBLAS_VERBOSE=2 "$PY" -c 'import numpy' 2>&1 | sed -n 's/^Core: //p')"
echo "Go paths: $("$tmp/kernels.test" -test.run '^TestPaths$' -test.v 2>/dev/null | sed -n 's/.*paths: //p')"
"$PY" - "$tmp/go" <<'PY'
import sys, collections
best = [collections.defaultdict(float), collections.defaultdict(float)]  # wall, cpu
for line in open(sys.argv[1]):
    th, col, shape, g, gc = line.split()
    for i, v in enumerate((g, gc)):
        best[i][(th, col, shape)] = max(best[i][(th, col, shape)], float(v))
ths = sorted({k[0] for k in best[0]}, reverse=True)
shapes = ["1576x768x2304", "1576x768x768", "1576x768x3072", "1576x3072x768"]
cols = ["Gemm-avx512", "Linear-avx512", "Gemm-avx2", "Linear-avx2", "np", "np-haswell"]
ratios = [("avx512/np", "Gemm-avx512", "np"), ("avx2/np", "Gemm-avx2", "np"), ("avx2/hasw", "Gemm-avx2", "np-haswell")]
print("GFLOP/s (best of rounds), m×k×n. Gemm: C = A·Bᵀ with B packed per call, as numpy's a @ w.T;")
print("Linear: prepacked weights + bias (+ exact GELU on the 3072-wide fc1), the model's call.")
for i, what in enumerate(["wall time", "CPU time"]):
    tt = ths if i == 0 else [t for t in ths if t == "1"]
    if not tt:
        continue
    print(f"-- per second of {what}")
    print(f"{'thr':>3} {'shape':>14} " + " ".join(f"{c:>13}" for c in cols) + "".join(f" {r[0]:>10}" for r in ratios))
    for th in tt:
        for s in shapes:
            v = {c: best[i].get((th, c, s), 0.0) for c in cols}
            rs = "".join(f" {v[a] / v[b] if v[b] else float('nan'):10.2f}" for _, a, b in ratios)
            print(f"{th:>3} {s:>14} " + " ".join(f"{v[c]:13.1f}" for c in cols) + rs)
PY
