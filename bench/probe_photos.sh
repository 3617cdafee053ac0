#!/usr/bin/env bash
# Probe accuracy of encoders on a small real-photo task: random crops of
# ten photos, each crop labelled by the photo it came from (ImageFolder
# layout CROPS/<photo>/crop-NNN.png). Every MODEL embeds the same crops and
# is probed with `maeembed probe` on the same seeded split; the first run
# also probes raw pixels (--pixels, 16×16) as the floor an encoder must
# beat. Prints one report per model. Used for the quality table of
# docs/probe.md.
#
#   bench/probe_photos.sh MODEL [MODEL...]
#   N=40 SEED=1 TEST_FRACTION=0.5 POOL=mean LR=0.01 WORK=/tmp/maeembed-probe bench/probe_photos.sh mae/testdata/fixtures/tiny32/hf
#
# LR is the linear probe's learning rate (--lr); docs/probe.md compares
# LR=0.001 with the default 0.01 on N=20 (80 training images).
#
# The photos are python3-skimage's and python3-sklearn's colour photos;
# the wallpaper packages are not used (they are kept for training). Needs
# python3-pil. Nothing is committed: crops and embeddings go to $WORK.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n 2,18p "$0" >&2; exit 2; }

N=${N:-40}
SEED=${SEED:-1}
TEST_FRACTION=${TEST_FRACTION:-0.5}
POOL=${POOL:-mean}
LR=${LR:-0.01}
WORK=${WORK:-/tmp/maeembed-probe}
CROPS=$WORK/crops-$N
mkdir -p "$WORK"

if [ ! -d "$CROPS" ]; then
  echo "writing $N crops of each photo to $CROPS" >&2
  PYTHONPATH=bench /usr/bin/python3 - "$CROPS" "$N" <<'EOF'
import os, random, sys
from PIL import Image
from debian_photos import paths
out, n = sys.argv[1], int(sys.argv[2])
srcs = paths(("astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png",
              "motorcycle_left.png", "retina.jpg", "rocket.jpg"))
rng = random.Random(0)
for p in srcs:
    im = Image.open(p).convert("RGB")
    cls = os.path.splitext(os.path.basename(p))[0]
    os.makedirs(os.path.join(out + ".tmp", cls))
    for i in range(n):
        # A square of 25–50% of the shorter side, anywhere in the photo.
        s = int(min(im.width, im.height) * rng.uniform(0.25, 0.5))
        x, y = rng.randint(0, im.width - s), rng.randint(0, im.height - s)
        im.crop((x, y, x + s, y + s)).save(os.path.join(out + ".tmp", cls, "crop-%03d.png" % i))
os.rename(out + ".tmp", out)
EOF
fi

go build -o "$WORK/maeembed" ./cmd/maeembed
pixels=(--pixels "$CROPS")
i=0
for m in "$@"; do
  emb=$WORK/emb-$i
  rm -rf "$emb"
  "$WORK/maeembed" embed -m "$m" --pool "$POOL" -o "$emb" "$CROPS" 2> "$WORK/embed-$i.log"
  echo "== $m"
  "$WORK/maeembed" probe --seed "$SEED" --test-fraction "$TEST_FRACTION" --lr "$LR" "${pixels[@]}" "$emb"
  pixels=()
  i=$((i + 1))
done
