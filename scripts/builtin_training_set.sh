#!/usr/bin/env bash
# Builds the training set of maeembed's built-in model (docs/pretrain.md):
# every raster image (jpg, png, webp) of at least 480 px on each side that
# these Debian packages install, once per distinct content, as symlinks
# DIR/<package>/<path under /usr/share> (so ids are unique and say where
# each image came from). Needs the packages and imagemagick's identify.
#
#   scripts/builtin_training_set.sh /work/train/data
set -euo pipefail
out=${1:?usage: $0 DIR}
pkgs="lomiri-wallpapers lomiri-wallpapers-20.04 ukui-wallpapers gnome-backgrounds desktop-base"
mkdir -p "$out"
declare -A seen
for pkg in $pkgs; do
  dpkg -L "$pkg" | grep -iE '\.(jpe?g|png|webp)$' | sort | while read -r f; do
    [ -f "$f" ] || continue
    read -r w h < <(identify -format '%w %h\n' "$f[0]" 2>/dev/null || echo "0 0")
    [ "$w" -ge 480 ] && [ "$h" -ge 480 ] || continue
    echo "$(sha256sum < "$(readlink -f "$f")" | cut -c1-64) $pkg $f"
  done
done | sort -k1,1 -s | awk '!seen[$1]++ {print $2, $3}' | while read -r pkg f; do
  dst="$out/$pkg/${f#/usr/share/}"
  mkdir -p "$(dirname "$dst")"
  ln -sfn "$(readlink -f "$f")" "$dst"
done
find "$out" -type l | wc -l
