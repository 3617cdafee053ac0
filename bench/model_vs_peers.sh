#!/usr/bin/env bash
# maeembed's ViT-B/16 against PyTorch and ONNX Runtime, on the same machine
# in the same invocation: whole-image embedding (mean pool) at batch 8 and
# batch 1, and reconstruction (mask ratio 0.75, encoder + decoder) at
# batch 8; random weights, the same threads everywhere (2 by default).
#
# Usage: bench/model_vs_peers.sh [ROUNDS]   (default 3)
# Env:   ITERS=2   timed runs per case per round (best kept)
#        PY=/usr/bin/python3 (Debian's python with torch)
#        ONNX_DIR  where the exported models are (default: exported into a
#                  temporary directory by bench/ort/export.py, ~1 min)
#        PRECS="fp32 bf16 int8"  maeembed precisions on the avx512 path
#
#        THREADS=2  threads of every column (GOMAXPROCS, torch, ORT intra-op)
#        MEASURE=wall  or cpu: images per second of process CPU time, which
#                  other work on a shared machine disturbs far less (use it
#                  with THREADS=1: spinning thread pools inflate CPU time)
#
# Rounds alternate every column, so a neighbour's load hits all alike; each
# cell is the best of all rounds, and the range line gives min–max.
# Columns:
#   mae <path> <prec>  maeembed (go test -bench ./mae) on a kernel path
#                      (MAEEMBED_KERNEL) in a precision: avx512 in PRECS,
#                      avx2 in fp32 and int8 (its bf16 runs at fp32 speed);
#                      a path this CPU lacks is left out
#   torch              PyTorch 1.13 (ATen and OpenBLAS on THREADS threads) with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE
#                      unset (OpenBLAS picks its AVX-512 kernels here)
#   torch-avx2         the same with ATEN_CPU_CAPABILITY=avx2 and
#                      OPENBLAS_CORETYPE=Haswell: PyTorch as on an AVX2 CPU
#   ort                onnxruntime-node 1.30 (bench/ort), 2 intra-op
#                      threads, all graph optimisations; MLAS picks its
#                      kernels from CPUID and cannot be forced to AVX2
# Ratios: maeembed over the fastest peer column (any ISA).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
ITERS=${ITERS:-2}
PY=${PY:-/usr/bin/python3}
PRECS=${PRECS:-"fp32 bf16 int8"}
THREADS=${THREADS:-2}
MEASURE=${MEASURE:-wall}
unit="images/s"
[ "$MEASURE" = cpu ] && unit="images/cpu-s"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CASES=embed:8,embed:1,reconstruct:8

go test -c -o "$tmp/mae.test" ./mae
go test -c -o "$tmp/kernels.test" ./mae/kernels
if [ ! -d bench/ort/node_modules/onnxruntime-node ]; then
  # --ignore-scripts: the install script fetches GPU extras from a host
  # that may be unreachable; the CPU runtime is in the package itself.
  (cd bench/ort && npm ci --ignore-scripts --no-audit --no-fund >&2)
fi
ONNX_DIR=${ONNX_DIR:-$tmp/onnx}
if [ ! -f "$ONNX_DIR/embed.onnx" ] || [ ! -f "$ONNX_DIR/reconstruct.onnx" ]; then
  echo "exporting ONNX models to $ONNX_DIR" >&2
  # The exporter's tracer warnings are noise, but a failure (no torch in
  # $PY, a full disk) must say why.
  if ! "$PY" bench/ort/export.py "$ONNX_DIR" 2>"$tmp/export.log"; then
    echo "bench/model_vs_peers.sh: ONNX export with $PY failed:" >&2
    tail -20 "$tmp/export.log" >&2
    exit 1
  fi
fi

# A path this CPU lacks is left out, not measured: MAEEMBED_KERNEL naming
# it would fail the benchmarks (they refuse a path they cannot follow).
have=$("$tmp/kernels.test" -test.run '^TestPaths$' -test.v 2>/dev/null | sed -n 's/.*paths: \[\([^]]*\)\].*/\1/p' | head -1)

# go_cols PATH → lines "col case images/s" for each precision in PRECS
go_cols() {
  local precs=${2:-$PRECS} re
  re="($(echo "$precs" | tr ' ' '|'))"
  MAEEMBED_KERNEL=$1 GOMAXPROCS=$THREADS "$tmp/mae.test" -test.run '^$' -test.benchtime "${ITERS}x" \
    -test.bench "^Benchmark(Embed|Reconstruct)\$/^vit_base_patch16\$/^prec=$re\$/^batch[18]\$" 2>/dev/null |
    awk -v path="$1" -v unit="$unit" '/images\/s/ {
      n = split($1, p, "/"); prec = ""; c = ""
      for (i = 1; i <= n; i++) { if (p[i] ~ /^prec=/) { prec = substr(p[i], 6); sub(/-[0-9]+$/, "", prec) }
        if (p[i] ~ /^batch/) { b = p[i]; sub(/^batch/, "", b); sub(/-[0-9]+$/, "", b) } }
      c = (p[1] ~ /Reconstruct/ ? "reconstruct:" : "embed:") b
      for (i = 1; i <= NF; i++) if ($(i+1) == unit) v = $i
      print "mae-" path "-" prec, c, v }'
}

for ((r = 1; r <= ROUNDS; r++)); do
  echo "round $r/$ROUNDS" >&2
  for path in avx512 avx2; do
    if [[ " $have " != *" $path "* ]]; then
      [ "$r" = 1 ] && echo "no $path path on this CPU (paths: $have): its columns are left out" >&2
      continue
    fi
    if [ "$path" = avx512 ]; then go_cols avx512 >>"$tmp/res"; else go_cols avx2 "fp32 int8" >>"$tmp/res"; fi
  done
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE THREADS=$THREADS MEASURE=$MEASURE "$PY" bench/torch_mae.py "$CASES" "$ITERS" |
    awk '{ print "torch", $1, $2 }' >>"$tmp/res"
  env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2 THREADS=$THREADS MEASURE=$MEASURE "$PY" bench/torch_mae.py "$CASES" "$ITERS" |
    awk '{ print "torch-avx2", $1, $2 }' >>"$tmp/res"
  THREADS=$THREADS MEASURE=$MEASURE node bench/ort/run.js "$ONNX_DIR" "$CASES" "$ITERS" | awk '{ print "ort", $1, $2 }' >>"$tmp/res"
done

echo "CPU: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), family $(sed -n 's/^cpu family\s*: //p' /proc/cpuinfo | head -1) model $(sed -n 's/^model\s*: //p' /proc/cpuinfo | head -1), $(nproc) CPUs"
echo "flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx512f|avx512_bf16|avx512_vnni|avx_vnni)$' | tr '\n' ' ')"
echo "maeembed: $("$tmp/kernels.test" -test.run '^TestPaths$' -test.v 2>/dev/null | sed -n 's/.*paths: //p' | head -1)"
echo "torch: $(awk '$1 == "torch" && $2 == "isa" { print $3 }' "$tmp/res" | head -1) + OpenBLAS $(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_VERBOSE=2 "$PY" -c 'import numpy' 2>&1 | sed -n 's/^Core: //p');" \
  "torch-avx2: $(awk '$1 == "torch-avx2" && $2 == "isa" { print $3 }' "$tmp/res" | head -1) + OpenBLAS $(OPENBLAS_CORETYPE=Haswell OPENBLAS_VERBOSE=2 "$PY" -c 'import numpy' 2>&1 | sed -n 's/^Core: //p')"
echo "ort: onnxruntime-node $(node -p 'require("./bench/ort/node_modules/onnxruntime-node/package.json").version'), MLAS kernels by CPUID (AVX-512 when avx512f is present)"
"$PY" - "$tmp/res" "$unit" "$THREADS" <<'PY'
import sys, collections
vals = collections.defaultdict(list)
for line in open(sys.argv[1]):
    col, case, v = line.split()
    if case != "isa":
        vals[(col, case)].append(float(v))
order = {"fp32": 0, "bf16": 1, "int8": 2}  # the docs' tables: avx512 then avx2, fp32, bf16, int8
cols = sorted({c for c, _ in vals if c.startswith("mae-")}, key=lambda c: ("avx2" in c, order.get(c.rsplit("-", 1)[1], 3), c))
peers = [c for c in ["torch", "torch-avx2", "ort"] if any(k[0] == c for k in vals)]
cases = ["embed:8", "embed:1", "reconstruct:8"]
names = {"embed:8": "embed b8", "embed:1": "embed b1", "reconstruct:8": "reconstruct b8"}
best = lambda c, k: max(vals.get((c, k), [0]))
print(f"{sys.argv[2]}, {sys.argv[3]} threads, best of rounds (ratio = maeembed ÷ fastest peer)")
print(f"{'case':<15}" + "".join(f"{c:>18}" for c in cols + peers) + "".join(f"{'÷ ' + c[4:]:>18}" for c in cols))
for k in cases:
    peer = max(best(c, k) for c in peers)
    print(f"{names[k]:<15}" + "".join(f"{best(c, k):18.2f}" for c in cols + peers) +
          "".join(f"{best(c, k) / peer:17.2f}x" for c in cols))
print("range over rounds (min-max):")
print(f"{'case':<15}" + "".join(f"{c:>18}" for c in cols + peers))
for k in cases:
    print(f"{names[k]:<15}" + "".join(f"{min(vals.get((c, k), [0])):>9.2f}-{max(vals.get((c, k), [0])):<8.2f}" for c in cols + peers))
PY
