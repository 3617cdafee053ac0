"""PyTorch baseline for bench/model_vs_torch.sh: the reference MAE
(mae/testdata/reference/mae_ref.py) with ViT-B/16 shapes and random weights,
on 2 threads, timing whole-image embedding and 0.75-masked reconstruction.

Usage: python3 bench/torch_mae.py MODE BATCH ITERS   (MODE: embed | reconstruct)
Prints: images/s (best of ITERS timed runs after one warm-up).
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "mae", "testdata", "reference"))
import mae_ref  # noqa: E402

mode, batch, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(int(os.environ.get("THREADS", "2")))
torch.manual_seed(0)
cfg = mae_ref.Config()  # defaults are mae_vit_base_patch16
model = mae_ref.MaskedAutoencoderViT(cfg).eval()
x = torch.randn(batch, 3, 224, 224)


def step():
    with torch.inference_mode():
        if mode == "embed":
            model.embed(x)
        else:
            model(x, mask_ratio=0.75)


step()
best = float("inf")
for _ in range(iters):
    t = time.perf_counter()
    step()
    best = min(best, time.perf_counter() - t)
print(f"{batch / best:.3f}")
