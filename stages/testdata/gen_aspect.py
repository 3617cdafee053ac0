#!/usr/bin/python3
"""Regenerate the extreme-aspect resize expectations for stages tests.

Run from the repository root with Debian's Python (Pillow 9.4, torchvision
0.14; see gen_expected.py):

    /usr/bin/python3 stages/testdata/gen_aspect.py

It writes strips (RGB PNGs one or three pixels thick, with detail at every
pixel) to stages/testdata/aspect/ and, in aspect/expected.json, the sha256 of
the 224x224 RGB bytes torchvision's preprocessing makes of each:
  center-crop: Resize(256, BICUBIC) + CenterCrop(224)
  squash:      PIL img.resize((224, 224), BICUBIC)

Torchvision resizes a 200000x1 strip to 51200000x256 before cropping, which
PIL cannot hold (39 GB). There the center-crop reference is PIL's resize of
a 200-pixel stretch of the strip around the crop, to 256 times its length:
the scale is the same power of two (1/256), so every output pixel has the
same taps and weights as in the whole resize, shifted by a whole number of
pixels (exact in floating point). The script checks that this equals the
whole resize on a 4000x1 strip, where PIL can do both.
"""
import hashlib
import json
import os

import numpy as np
from PIL import Image
from torchvision import transforms as T

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "aspect")
S, R = 224, 256


def strip(n, thick):
    x = np.arange(n, dtype=np.int64)
    rows = []
    for t in range(thick):
        r = (x * 37 + 11 * t) % 256
        # irregular around the middle, where center-crop reads
        g = np.where(abs(x - n // 2) < 2000, (x * x) >> 6, x >> 5) % 256
        b = (x % 45) * 5 + 7 * t
        rows.append(np.stack([r, g, b], axis=1))
    return np.stack(rows).astype(np.uint8)  # [thick, n, 3]


def center_crop(im):
    return T.CenterCrop(S)(T.Resize(R, interpolation=T.InterpolationMode.BICUBIC)(im))


def center_crop_by_stretch(im, pad=100):
    """center_crop of a strip one pixel thick whose resize scale is 1/256."""
    w, h = im.size
    wide = w > h
    n = max(w, h)
    big = R * n  # the long side after Resize(256)
    assert big * 1 == int(R * n / 1), "scale must be exactly 1/256"
    off = int(round((big - S) / 2.0))  # CenterCrop's offset, Python rounding
    a = off // R - pad
    b = (off + S) // R + pad
    assert a > 0 and b < n
    if wide:
        part = im.crop((a, 0, b, 1)).resize(((b - a) * R, R), Image.BICUBIC)
        top = int(round((R - S) / 2.0))
        left = off - a * R
    else:
        part = im.crop((0, a, 1, b)).resize((R, (b - a) * R), Image.BICUBIC)
        left = int(round((R - S) / 2.0))
        top = off - a * R
    return part.crop((left, top, left + S, top + S))


def sha(im):
    arr = np.asarray(im.convert("RGB"))
    assert arr.shape == (S, S, 3), arr.shape
    return hashlib.sha256(arr.tobytes()).hexdigest()


# The stretch shortcut equals the whole resize where PIL can do both.
for size in [(4000, 1), (1, 4000)]:
    n = max(size)
    arr = strip(n, 1)
    im = Image.fromarray(arr if size[0] > 1 else arr.transpose(1, 0, 2))
    assert im.size == size
    assert sha(center_crop(im)) == sha(center_crop_by_stretch(im)), size

os.makedirs(OUT, exist_ok=True)
items = {}
for name, (n, thick, tall, whole) in {
    "wide-200000x1.png": (200000, 1, False, False),
    "tall-1x200000.png": (200000, 1, True, False),
    "wide-4000x3.png": (4000, 3, False, True),
    "tall-3x4000.png": (4000, 3, True, True),
}.items():
    arr = strip(n, thick)
    if tall:
        arr = arr.transpose(1, 0, 2)
    im = Image.fromarray(arr)
    im.save(os.path.join(OUT, name), optimize=True)
    im = Image.open(os.path.join(OUT, name)).convert("RGB")
    cc = center_crop(im) if whole else center_crop_by_stretch(im)
    items[name + ".center-crop"] = {"size": list(im.size), "sha256": sha(cc)}
    items[name + ".squash"] = {"size": list(im.size), "sha256": sha(im.resize((S, S), Image.BICUBIC))}
with open(os.path.join(OUT, "expected.json"), "w") as f:
    json.dump({"pillow": Image.__version__, "items": items}, f, indent=1, sort_keys=True)
