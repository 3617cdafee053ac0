#!/usr/bin/python3
"""Regenerate the torchvision/PIL preprocessing expectations for stages tests.

Run from the repository root with Debian's Python (torch 1.13, torchvision
0.14, Pillow 9.4) after `apt-get install -y python3-skimage python3-sklearn
python3-torchvision`:

    /usr/bin/python3 stages/testdata/gen_expected.py

For every photo it records the uint8 RGB image that torchvision feeds to
ToTensor, as stages/testdata/expected/<name>.<mode>.png for JPEG sources
(our JPEG decoder differs slightly, so the test measures the difference) and
as a sha256 in expected.json for lossless sources (which must match exactly):
  center-crop: Resize(256, BICUBIC) + CenterCrop(224)
  squash:      PIL img.resize((224, 224), BICUBIC)
and normalize_lut.npy, float32 [3, 256]: ToTensor + Normalize(ImageNet) of
every byte value per channel. The script checks that the full torchvision
tensor equals the LUT applied to the stored uint8 image, so the Go test can
reconstruct the exact torchvision tensor from these small files.
"""
import hashlib
import json
import os

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

SK = "/usr/lib/python3/dist-packages/skimage/data"
SKL = "/usr/lib/python3/dist-packages/sklearn/datasets/images"
PHOTOS = [
    f"{SK}/astronaut.png", f"{SK}/chelsea.png", f"{SK}/coffee.png",
    f"{SK}/motorcycle_left.png", f"{SK}/camera.png",
    # smaller than 256 on the short side: upscaling paths
    f"{SK}/microaneurysms.png", f"{SK}/page.png", f"{SK}/green_palette.png", f"{SK}/chessboard_RGB.png",
    f"{SK}/rocket.jpg", f"{SK}/hubble_deep_field.jpg", f"{SK}/retina.jpg",
    f"{SKL}/china.jpg", f"{SKL}/flower.jpg",
]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "expected")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

norm = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
ramp = Image.fromarray(np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2))
lut = norm(ramp)[:, 0, :].numpy().astype(np.float32)  # [3, 256]
np.save(os.path.join(OUT, "normalize_lut.npy"), lut)

modes = {
    "center-crop": T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224)]),
    "squash": lambda im: im.resize((224, 224), Image.BICUBIC),
}
meta = {}
for path in PHOTOS:
    name = os.path.basename(path)
    im = Image.open(path).convert("RGB")
    for mode, tf in modes.items():
        out = tf(im)
        assert out.size == (224, 224), (name, mode, out.size)
        arr = np.asarray(out)
        ref = norm(out).numpy()
        via_lut = np.stack([lut[c][arr[:, :, c]] for c in range(3)])
        assert np.array_equal(ref, via_lut), (name, mode)
        item = {"source": path, "size": list(im.size), "tensor_mean": float(ref.mean())}
        if path.endswith(".png"):
            # Lossless sources must match bit for bit: a hash of the RGB bytes
            # is enough and keeps the fixtures small.
            item["sha256"] = hashlib.sha256(arr.tobytes()).hexdigest()
        else:
            out.save(os.path.join(OUT, f"{name}.{mode}.png"), optimize=True)
        meta[f"{name}.{mode}"] = item
with open(os.path.join(OUT, "expected.json"), "w") as f:
    json.dump({"torch": torch.__version__, "torchvision": __import__("torchvision").__version__,
               "pillow": Image.__version__, "items": meta}, f, indent=1, sort_keys=True)
