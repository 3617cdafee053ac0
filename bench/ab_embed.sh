#!/usr/bin/env bash
# A/B of two revisions on one `maeembed embed` run: builds REV_A and REV_B
# (exported with git archive under $WORK), then runs `maeembed embed ARGS... -o OUT`
# PAIRS times for each, alternated (A B A B ...), under /usr/bin/time.
# Prints each run's wall time and peak RSS, each pair's B/A wall ratio and
# the medians. docs/batch.md's reader-budget timings come from it.
#
#   bench/ab_embed.sh REV_A REV_B -- -m mae/weights/testdata/hf_safetensors --workers 4 INPUT
#   PAIRS=6 WORK=/tmp/maeembed-ab bench/ab_embed.sh 2e3f513^ 2e3f513 -- ...
#
# Nothing is committed; the exported trees are removed after the builds.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] && [ "$3" = "--" ] || { sed -n 2,11p "$0" >&2; exit 2; }
A=$1; B=$2; shift 3
PAIRS=${PAIRS:-6}
WORK=${WORK:-/tmp/maeembed-ab}
mkdir -p "$WORK"

build() { # build NAME REV: from an exported copy of REV's tree
  rm -rf "$WORK/src-$1"; mkdir -p "$WORK/src-$1"
  git archive "$2" | tar -x -C "$WORK/src-$1"
  (cd "$WORK/src-$1" && go build -o "$WORK/maeembed-$1" ./cmd/maeembed)
  rm -rf "$WORK/src-$1"
}
build a "$A"; build b "$B"

run() { # run NAME ARGS...: prints wall seconds and peak RSS in MB
  local name=$1; shift
  rm -rf "$WORK/out"
  /usr/bin/time -f "%e %M" -o "$WORK/$name.time" "$WORK/maeembed-$name" embed "$@" -o "$WORK/out" 2> "$WORK/$name.log" || true
  awk '{ printf "%s %d\n", $1, $2 / 1024 }' "$WORK/$name.time"
}

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)   cores: $(nproc)   A: $A   B: $B"
: > "$WORK/ratios"; : > "$WORK/wa"; : > "$WORK/wb"
for p in $(seq "$PAIRS"); do
  read -r wa ra < <(run a "$@")
  read -r wb rb < <(run b "$@")
  echo "$wa" >> "$WORK/wa"; echo "$wb" >> "$WORK/wb"
  r=$(echo "$wb / $wa" | bc -l); echo "$r" >> "$WORK/ratios"
  printf "pair %d: A %6.2f s %5d MB   B %6.2f s %5d MB   B/A %.2f\n" "$p" "$wa" "$ra" "$wb" "$rb" "$r"
done
median() { sort -g "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf "median wall: A %.2f s, B %.2f s; median B/A %.2f (min %.2f, max %.2f)\n" "$(median "$WORK/wa")" "$(median "$WORK/wb")" \
  "$(median "$WORK/ratios")" "$(sort -g "$WORK/ratios" | head -1)" "$(sort -g "$WORK/ratios" | tail -1)"
