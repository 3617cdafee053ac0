#!/usr/bin/env bash
# Pretraining speed of maeembed against the PyTorch reference training step
# (bench/torch_pretrain.py: mae_ref.py + torch.optim.AdamW), same machine,
# same invocation, 2 threads each: optimiser steps per second × batch on
# random images for the built-in ViT-Tiny MAE at 224 (batch 16) and the
# paper's ViT-B MAE at batch 8. Then the peak RSS of `maeembed pretrain`
# with ViT-B at batch 8, sampled after every step, to show it does not grow.
#
# Usage: bench/pretrain_vs_torch.sh [STEPS] [ROUNDS]
#        (default 4 timed steps, 2 rounds: the two sides alternate and each
#        keeps its best round, so load from other processes on a shared
#        machine hits both alike)
# Env:   PY=/usr/bin/python3 (Debian's python with torch)
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-4}
ROUNDS=${2:-2}
PY=${PY:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grep -m1 'model name' /proc/cpuinfo
grep -m1 -o 'avx512f' /proc/cpuinfo >/dev/null && echo "AVX-512: yes (MAEEMBED_KERNEL=${MAEEMBED_KERNEL:-auto})" || echo "AVX-512: no"
go test -c -o "$tmp/train.test" ./train
go build -o "$tmp/maeembed" ./cmd/maeembed

go_ips() {
  GOMAXPROCS=2 "$tmp/train.test" -test.run '^$' -test.bench "^$1\$" -test.benchtime "${STEPS}x" 2>/dev/null |
    awk '{for (i=1;i<=NF;i++) if ($(i+1)=="images/s") print $i}' | tail -1
}
printf '%-22s %12s %12s %8s\n' config maeembed pytorch ratio
for spec in "tiny 16 BenchmarkStepTiny224" "base 8 BenchmarkStepBase224B8"; do
  set -- $spec
  g=0 p=0
  for _ in $(seq "$ROUNDS"); do
    g=$(awk -v a="$g" -v b="$(go_ips "$3")" 'BEGIN{print (b>a)?b:a}')
    p=$(awk -v a="$p" -v b="$(THREADS=2 "$PY" bench/torch_pretrain.py "$1" "$2" "$STEPS")" 'BEGIN{print (b>a)?b:a}')
  done
  printf '%-22s %12s %12s %8s\n' "$1 batch $2 (img/s)" "$g" "$p" "$(awk -v a="$g" -v b="$p" 'BEGIN{printf "%.2f", a/b}')"
done

# Peak RSS of ViT-B pretraining at batch 8 over 2·STEPS steps.
mkdir -p "$tmp/img"
for i in $(seq 8); do convert -size 256x256 plasma:fractal -seed "$i" "$tmp/img/$i.png" 2>/dev/null ||
  convert -size 256x256 xc:gray "$tmp/img/$i.png"; done
"$tmp/maeembed" pretrain --model mae_vit_base_patch16 --batch-size 8 --epochs $((2 * STEPS)) --warmup-epochs 1 \
  --save-every 0 -o "$tmp/run" "$tmp/img" 2>"$tmp/log" &
pid=$!
echo "ViT-B pretraining, batch 8: step, RSS MB (VmRSS), peak MB (VmHWM)"
last=-1
while kill -0 "$pid" 2>/dev/null; do
  steps=-1
  [ -f "$tmp/run/metrics.csv" ] && steps=$(($(wc -l <"$tmp/run/metrics.csv") - 1))
  if [ "$steps" != "$last" ] && [ "$steps" -ge 0 ]; then
    awk -v s="$steps" '/VmRSS/{r=$2} /VmHWM/{h=$2} END{printf "%5d %8.0f %8.0f\n", s, r/1024, h/1024}' "/proc/$pid/status" 2>/dev/null || true
    last=$steps
  fi
  sleep 0.5
done
wait "$pid" || { cat "$tmp/log"; exit 1; }
