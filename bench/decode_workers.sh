#!/usr/bin/env bash
# Preprocess workers on a decode-bound run: `maeembed embed` of N
# ImageNet-sized JPEGs (bench/e2e_jpegs.py) with a small model, --workers 1
# and --workers 2 alternated ROUNDS times from one build, so both see the
# same machine load. Prints images/s of each run and the ratio per round.
# Reported in docs/batch.md (Where the time goes).
#
#   bench/decode_workers.sh
#   N=400 ROUNDS=3 MODEL=mae/testdata/fixtures/tiny32/hf bench/decode_workers.sh
#
# Needs python3-pil and the Debian photos (bench/debian_photos.py).
# Nothing is committed: the JPEGs and outputs go to $WORK.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-400}
ROUNDS=${ROUNDS:-3}
MODEL=${MODEL:-mae/testdata/fixtures/tiny32/hf}
WORK=${WORK:-/tmp/maeembed-workers}
IMGS=$WORK/jpeg-$N
mkdir -p "$WORK"
if [ ! -d "$IMGS" ]; then
  echo "writing $N JPEGs to $IMGS" >&2
  PYTHONPATH=bench /usr/bin/python3 bench/e2e_jpegs.py "$IMGS" "$N"
fi
go build -o "$WORK/maeembed" ./cmd/maeembed

# rate W: images/s of one run with W preprocess workers.
rate() {
  rm -rf "$WORK/out"
  "$WORK/maeembed" embed -m "$MODEL" --workers "$1" -o "$WORK/out" "$IMGS" 2> "$WORK/w$1.log"
  awk '/^embed: .* images\/s$/ { print $(NF-1) }' "$WORK/w$1.log"
}

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)   cores: $(nproc)   images: $N   model: $MODEL"
for r in $(seq "$ROUNDS"); do
  one=$(rate 1); two=$(rate 2)
  printf "round %d: --workers 1 %7.1f images/s   --workers 2 %7.1f images/s   ratio %.2f\n" "$r" "$one" "$two" "$(echo "$two / $one" | bc -l)"
done
