#!/usr/bin/env bash
# The quality table of docs/pretrain.md: probe accuracy of the built-in
# model against the same architecture with random weights and against raw
# pixels (16×16), with mean and cls pooling, on bench/probe_photos.sh's task
# (crops of photos from python3-skimage and python3-sklearn, none of which
# were in the built-in model's training set).
#
#   bench/quality_builtin.sh
#   N=40 SEED=1 SPLITS="2 3 4 5" WORK=/tmp/maeembed-quality bench/quality_builtin.sh
#
# After the full reports on split SEED, the same embeddings are probed on
# the further seeded splits SPLITS (one line each: kNN and linear top-1 of
# the model, then of the pixels) to show how much a split moves the figures.
#
# The random-weight model is the init of `maeembed pretrain` for the
# built-in config (seed 0): a 2-epoch run whose first step falls at the
# start of the warmup, where the learning rate is exactly 0, so its first
# checkpoint holds the untouched init (checked below: every bias still 0).
# It is stored as float16 like the built-in model.
#
# It also draws $WORK/pretrain-reconstruct.jpg, the reconstructions of
# docs/pretrain.md (chelsea, china, coffee: also photos it never saw).
set -euo pipefail
cd "$(dirname "$0")/.."
export WORK=${WORK:-/tmp/maeembed-quality}
mkdir -p "$WORK"
go build -o "$WORK/maeembed" ./cmd/maeembed

rand=$WORK/random-init
if [ ! -d "$rand" ]; then
  rm -rf "$WORK/random-run"
  "$WORK/maeembed" pretrain -m mae/builtin/model/config.json --seed 0 --epochs 2 --warmup-epochs 1 \
    --batch-size 6 --blr 1e-9 --save-every 1 --keep-checkpoints 0 -o "$WORK/random-run" examples/photos/ 2> "$WORK/random-run.log"
  ck=$WORK/random-run/checkpoint-00000001
  [ "$(cut -d, -f4 "$WORK/random-run/metrics.csv" | sed -n 2p)" = 0 ] || { echo "step 1 lr is not 0" >&2; exit 1; }
  /usr/bin/python3 - "$ck/model.safetensors" <<'PY'
import array, json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
for k, v in h.items():
    if k.endswith(".bias"):
        s, e = v["data_offsets"]
        a = array.array("f"); a.frombytes(b[8 + n + s:8 + n + e])
        assert not any(a), k + " moved: not the init"
PY
  "$WORK/maeembed" convert --float16 "$ck" -o "$rand.tmp" 2>/dev/null
  mv "$rand.tmp" "$rand"
fi

d=/usr/lib/python3/dist-packages
rm -rf "$WORK/reconstruct"
"$WORK/maeembed" reconstruct --format png --resize squash --seed 0 -o "$WORK/reconstruct" \
  $d/skimage/data/chelsea.png $d/sklearn/datasets/images/china.jpg $d/skimage/data/coffee.png 2> "$WORK/reconstruct.log"
/usr/bin/python3 - "$WORK/reconstruct" "$WORK/pretrain-reconstruct.jpg" <<'PY'
import sys
from PIL import Image
rows = [Image.open("%s/%s.png" % (sys.argv[1], n)) for n in ("chelsea.png", "china.jpg", "coffee.png")]
grid = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)))
for i, r in enumerate(rows):
    grid.paste(r, (0, i * r.height))
grid.resize((728, grid.height * 728 // grid.width), Image.BICUBIC).save(sys.argv[2], quality=85)
PY
echo "wrote $WORK/pretrain-reconstruct.jpg" >&2

for pool in mean cls; do
  echo "### pool $pool"
  POOL=$pool bench/probe_photos.sh builtin "$rand"
  for s in ${SPLITS-2 3 4 5}; do
    for i in 0 1; do
      echo "split $s pool $pool $([ $i = 0 ] && echo builtin || echo random-init):" \
        $("$WORK/maeembed" probe --seed "$s" --test-fraction "${TEST_FRACTION:-0.5}" --pixels "$WORK/crops-${N:-40}" "$WORK/emb-$i" |
          awk '/^(embeddings|pixels16)/ {printf "%s %s %s  ", $1, $3, $4}')
    done
  done
done
