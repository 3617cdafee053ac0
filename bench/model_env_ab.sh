#!/usr/bin/env bash
# maeembed's ViT-B/16 model benchmarks (fp32 embed at batch 1 and 8,
# reconstruct at batch 8) under two or more environment settings,
# alternated round by round in one invocation, so that a shared machine's
# drift hits every setting alike; prints each setting's best and median
# images/s per case. The kernels README's Strassen-on/off runs come from it.
#
# Usage: bench/model_env_ab.sh ROUNDS SETTING...
#   a SETTING is space-separated VAR=value pairs, e.g.
#   bench/model_env_ab.sh 8 "MAEEMBED_STRASSEN=1" "MAEEMBED_STRASSEN=0"
# Env: THREADS=2 (GOMAXPROCS), KERNEL=avx512 (MAEEMBED_KERNEL), BENCHTIME=3x
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n 2,12p "$0" >&2; exit 2; }
ROUNDS=$1; shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/mae.test" ./mae
echo "CPU: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), family $(sed -n 's/^cpu family\s*: //p' /proc/cpuinfo | head -1) model $(sed -n 's/^model\s*: //p' /proc/cpuinfo | head -1), $(nproc) CPUs, path ${KERNEL:-avx512}, ${THREADS:-2} threads"
for ((r = 1; r <= ROUNDS; r++)); do
  echo "round $r/$ROUNDS" >&2
  for s in "$@"; do
    # shellcheck disable=SC2086 # a setting is several VAR=value words
    env $s MAEEMBED_KERNEL="${KERNEL:-avx512}" GOMAXPROCS="${THREADS:-2}" "$tmp/mae.test" -test.run '^$' \
      -test.benchtime "${BENCHTIME:-3x}" -test.bench '^Benchmark(Embed|Reconstruct)$/^vit_base_patch16$/^prec=fp32$/^batch(1|8)$' 2>/dev/null |
      awk -v s="$s" '/images\/s/ { for (i = 1; i < NF; i++) if ($(i+1) == "images/s") v = $i
        c = ($1 ~ /Reconstruct/ ? "reconstruct" : "embed") (($1 ~ /batch1-/ || $1 ~ /batch1$/) ? " b1" : " b8")
        if (c != "reconstruct b1") print s "\t" c "\t" v }' >>"$tmp/res"
  done
done
echo "images/s over $ROUNDS rounds: best / median"
sort -t$'\t' -k2,2 -k1,1 -k3,3g "$tmp/res" | awk -F'\t' '
  function flush() { if (n) printf "%-16s %-40s %7.2f / %7.2f\n", c, s, v[n], (n % 2 ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2) }
  $1 != s || $2 != c { flush(); s = $1; c = $2; n = 0 }
  { v[++n] = $3 } END { flush() }'
