#!/usr/bin/env bash
# End-to-end throughput of `maeembed embed` (JPEG files → Parquet, ViT-B/16)
# against the encoder alone (go test ./mae -bench 'Embed$/vit_base_patch16/prec=fp32/batch8$'),
# both from the same source tree, measured in alternation so that both see
# the same machine load. Prints images/s, the ratio, the per-stage summary
# and the peak RSS. Reported in docs/batch.md.
#
#   bench/pipeline_e2e.sh                 # 400 images, 2 rounds
#   N=1000 ROUNDS=3 WORKERS=1 bench/pipeline_e2e.sh
#
# Needs Debian's python3-pil, python3-torch (random ViT-B checkpoint),
# python3-skimage and python3-sklearn (source photos). Nothing is committed:
# the checkpoint and the JPEGs go to $WORK.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-400}
ROUNDS=${ROUNDS:-2}
BS=${BS:-8}
WORKERS=${WORKERS:-0}
WORK=${WORK:-/tmp/maeembed-e2e}
CKPT=${CKPT:-$WORK/vitb.pth}
IMGS=$WORK/jpeg-$N
mkdir -p "$WORK"

if [ ! -f "$CKPT" ]; then
  echo "writing a random ViT-B/16 checkpoint to $CKPT" >&2
  /usr/bin/python3 mae/weights/testdata/gen.py --vitb "$CKPT" >&2
fi

# ImageNet-sized JPEGs (500×375, a quarter portrait 375×500, quality 90):
# random crops of the Debian photos, so every file decodes differently.
if [ ! -d "$IMGS" ]; then
  echo "writing $N JPEGs to $IMGS" >&2
  PYTHONPATH=bench /usr/bin/python3 bench/e2e_jpegs.py "$IMGS" "$N"
fi

# One build of each, from the same tree.
go test -c -o "$WORK/mae.test" ./mae
go build -o "$WORK/maeembed" ./cmd/maeembed

# busy_jiffies: CPU time (1/100 s) spent by the whole machine so far.
busy_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# measure NAME CMD...: runs CMD under /usr/bin/time and reports, besides its
# output, how much CPU other processes took meanwhile ("others"): on a shared
# machine a round with others > ~5% is not a clean measurement.
measure() {
  local name=$1; shift
  local b0 t0 b1 t1
  b0=$(busy_jiffies); t0=$(date +%s.%N)
  /usr/bin/time -f "cpu_s %U %S peak_rss_kb %M" -o "$WORK/$name.time" "$@" > "$WORK/$name.out" 2> "$WORK/$name.log"
  b1=$(busy_jiffies); t1=$(date +%s.%N)
  local mine wall
  mine=$(awk '{ print $2 + $3 }' "$WORK/$name.time")
  wall=$(echo "$t1 - $t0" | bc -l)
  others=$(echo "100 * (($b1 - $b0) / 100 - $mine) / ($wall * $(nproc))" | bc -l)
  [ "$(echo "$others < 0" | bc -l)" = 1 ] && others=0
  rss=$(awk '{ print $5 }' "$WORK/$name.time")
}

encoder() {
  measure encoder "$WORK/mae.test" -test.run '^$' -test.bench 'Embed$/vit_base_patch16/prec=fp32/batch8$' -test.benchtime "$((N / 8))x"
  enc=$(awk '/images\/s/ { for (i = 1; i < NF; i++) if ($(i+1) == "images/s") print $i }' "$WORK/encoder.out")
}

e2e() {
  rm -rf "$WORK/out"
  measure e2e "$WORK/maeembed" embed -m "$CKPT" --batch-size "$BS" --workers "$WORKERS" -o "$WORK/out" "$IMGS"
  end=$(awk '/^embed: .* images\/s$/ { print $(NF-1) }' "$WORK/e2e.log")
}

# free RATE: RATE scaled to the CPU share the others left us, a rough
# estimate of the rate on an idle machine (only trust rounds with small
# "others").
free() { echo "$1 / (1 - $others / 100)" | bc -l; }

echo "cores: $(nproc)   images: $N   batch: $BS   workers: $WORKERS (0 = GOMAXPROCS)"
sum_enc=0; sum_e2e=0; sum_fenc=0; sum_fe2e=0
for r in $(seq "$ROUNDS"); do
  encoder; fenc=$(free "$enc")
  printf "round %d: encoder-only %6.2f images/s  (others took %4.1f%% of the CPU; scaled to a free machine %6.2f)\n" "$r" "$enc" "$others" "$fenc"
  e2e; fe2e=$(free "$end")
  printf "round %d: end-to-end   %6.2f images/s  (others took %4.1f%% of the CPU; scaled to a free machine %6.2f; peak RSS %d MB)\n" "$r" "$end" "$others" "$fe2e" "$((rss / 1024))"
  sum_enc=$(echo "$sum_enc + $enc" | bc -l); sum_e2e=$(echo "$sum_e2e + $end" | bc -l)
  sum_fenc=$(echo "$sum_fenc + $fenc" | bc -l); sum_fe2e=$(echo "$sum_fe2e + $fe2e" | bc -l)
done
printf "mean: encoder-only %.2f images/s, end-to-end %.2f images/s, ratio %.1f%%\n" \
  "$(echo "$sum_enc / $ROUNDS" | bc -l)" "$(echo "$sum_e2e / $ROUNDS" | bc -l)" "$(echo "100 * $sum_e2e / $sum_enc" | bc -l)"
printf "mean scaled to a free machine: encoder-only %.2f, end-to-end %.2f, ratio %.1f%%\n" \
  "$(echo "$sum_fenc / $ROUNDS" | bc -l)" "$(echo "$sum_fe2e / $ROUNDS" | bc -l)" "$(echo "100 * $sum_fe2e / $sum_fenc" | bc -l)"
echo "last end-to-end run's summary:"
sed -n '/^embed: /,$p' "$WORK/e2e.log"
