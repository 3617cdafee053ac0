#!/usr/bin/python3
"""PyTorch reference training step for bench/pretrain_vs_torch.sh.

    THREADS=2 /usr/bin/python3 bench/torch_pretrain.py tiny|base BATCH STEPS

Prints images/s of full optimiser steps (forward with random masking,
backward, AdamW with the timm weight-decay groups of train_ref.py) on random
normalised images, after one warm-up step.
"""
import os
import sys
import time

# OpenBLAS runs its own threads beside ATen's, one per CPU unless told.
os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ.get("THREADS", "2"))
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "mae", "testdata", "reference"))
import mae_ref as R  # noqa: E402
from train_ref import param_groups  # noqa: E402

CONFIGS = {
    "tiny": R.Config(embed_dim=192, depth=12, num_heads=3, decoder_embed_dim=128, decoder_depth=4, decoder_num_heads=4),
    "base": R.Config(),
}


def main():
    name, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    torch.manual_seed(0)
    model = R.MaskedAutoencoderViT(CONFIGS[name]).train()
    groups, _, _ = param_groups(model, 0.05)
    opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95))
    x = torch.randn(batch, 3, 224, 224)

    def step():
        loss, _, _ = model(x, mask_ratio=0.75)
        loss.backward()
        opt.step()
        opt.zero_grad()

    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    print(f"{batch * steps / (time.perf_counter() - t):.3f}")


if __name__ == "__main__":
    main()
