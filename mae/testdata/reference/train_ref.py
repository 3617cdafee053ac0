#!/usr/bin/python3
"""PyTorch reference of maeembed's pretraining step (train package).

Written from the semantics of facebookresearch/mae main_pretrain.py,
engine_pretrain.py and util/lr_sched.py on the model of mae_ref.py:
  - AdamW(betas=(0.9, 0.95)) over two param groups built by timm's
    add_weight_decay rule (no decay for 1-D tensors and names ending in
    ".bias") plus the no-weight-decay names (pos embeddings, cls and mask
    tokens); frozen parameters (the sin-cos pos embeddings) are not in it;
  - adjust_learning_rate at fractional epoch data_iter_step/len + epoch,
    called when data_iter_step % accum_iter == 0;
  - loss /= accum_iter, backward, step and zero_grad every accum_iter
    iterations.
The run: the 3 fixture images (x.npy, augmentation off) form every batch,
two iterations per epoch, mask noise drawn from a seeded generator.

    /usr/bin/python3 mae/testdata/reference/train_ref.py CONFIG [--norm-pix] [--accum-iter N] --out DIR
        writes DIR/{meta.json, noise.npy, grad/NAME.npy (first iteration), param/NAME.npy (end)}
    /usr/bin/python3 mae/testdata/reference/train_ref.py --write-fixtures
        writes mae/testdata/fixtures/CONFIG/train[_normpix].json and tiny32/train_accum2.json (noise, losses, lrs,
        groups and per-tensor sums: what the Go test checks without torch)
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mae_ref as R  # noqa: E402
from gen_fixtures import CONFIGS, OUT  # noqa: E402

STEPS = 3
ITERS_PER_EPOCH = 2
# lr·weight_decay = 1e-4: a parameter put in the wrong weight-decay group
# moves by ~2e-4·|p| over the 3 steps, far above the 1e-5 tolerance, while
# the small lr keeps Adam's amplification of float32 rounding in tiny
# gradients (m/sqrt(v) of a gradient near zero) below it.
RECIPE = dict(lr=5e-5, min_lr=0.0, warmup_epochs=0.0, epochs=2, weight_decay=2.0,
              accum_iter=1, mask_ratio=0.75, noise_seed=77)
NO_WEIGHT_DECAY = {"pos_embed", "decoder_pos_embed", "cls_token", "mask_token"}


def adjust_learning_rate(optimizer, epoch, r):
    """util/lr_sched.adjust_learning_rate."""
    if epoch < r["warmup_epochs"]:
        lr = r["lr"] * epoch / r["warmup_epochs"]
    else:
        lr = r["min_lr"] + (r["lr"] - r["min_lr"]) * 0.5 * (
            1.0 + math.cos(math.pi * (epoch - r["warmup_epochs"]) / (r["epochs"] - r["warmup_epochs"])))
    for g in optimizer.param_groups:
        g["lr"] = lr
    return lr


def param_groups(model, weight_decay):
    """timm add_weight_decay(model, wd, skip_list=NO_WEIGHT_DECAY)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim == 1 or name.endswith(".bias") or name in NO_WEIGHT_DECAY:
            no_decay.append((name, p))
        else:
            decay.append((name, p))
    groups = [{"params": [p for _, p in no_decay], "weight_decay": 0.0},
              {"params": [p for _, p in decay], "weight_decay": weight_decay}]
    return groups, [n for n, _ in decay], [n for n, _ in no_decay]


def run(name, norm_pix, accum_iter=1):
    torch.set_num_threads(1)
    cfg = CONFIGS[name]["cfg"]
    d = os.path.join(OUT, name)
    model = R.MaskedAutoencoderViT(cfg)
    model.load_state_dict(torch.load(os.path.join(d, "model.pth"))["model"])
    model.norm_pix_loss = norm_pix
    model.train()
    x = torch.from_numpy(np.load(os.path.join(d, "x.npy")))
    r = dict(RECIPE, accum_iter=accum_iter)
    # Two optimiser steps per epoch whatever the accumulation.
    ipe = ITERS_PER_EPOCH * accum_iter
    groups, decay, no_decay = param_groups(model, r["weight_decay"])
    opt = torch.optim.AdamW(groups, lr=r["lr"], betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(r["noise_seed"])
    noise = torch.rand(STEPS * r["accum_iter"], x.shape[0], cfg.num_patches, generator=gen)
    losses, lrs, grads = [], [], {}
    for it in range(STEPS * r["accum_iter"]):
        epoch, step_in_epoch = divmod(it, ipe)
        if step_in_epoch % r["accum_iter"] == 0:
            lrs.append(adjust_learning_rate(opt, step_in_epoch / ipe + epoch, r))
        loss, _, _ = model(x, mask_ratio=r["mask_ratio"], noise=noise[it])
        losses.append(loss.item())
        (loss / r["accum_iter"]).backward()
        if it == 0:
            grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        if (step_in_epoch + 1) % r["accum_iter"] == 0:
            opt.step()
            opt.zero_grad()
    params = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    meta = dict(config=name, norm_pix_loss=norm_pix, recipe=r, steps=STEPS, iters_per_epoch=ipe,
                losses=losses, lrs=lrs, decay=decay, no_decay=no_decay)
    return meta, noise, grads, params


def write_dir(out, meta, noise, grads, params):
    for sub, ts in (("grad", grads), ("param", params)):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
        for n, t in ts.items():
            np.save(os.path.join(out, sub, n + ".npy"), t.numpy().astype(np.float32))
    np.save(os.path.join(out, "noise.npy"), noise.numpy().astype(np.float32))
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)


def without_key_bias(name, t):
    """The key third of a qkv bias has an analytically zero gradient (softmax
    is invariant to adding a constant to a row of scores): both
    implementations see float32 rounding noise there, which Adam turns into
    O(lr) steps of either sign. Those elements are left out of the sums."""
    if name.endswith("attn.qkv.bias"):
        t = t.clone()
        d = t.shape[0] // 3
        t[d:2 * d] = 0
    return t


def fixture(meta, noise, grads, params):
    """The small committed form: exact noise, losses, lrs, groups and float64 sums per tensor."""
    f = dict(meta)
    f["noise"] = [float(v) for v in noise.numpy().astype(np.float32).ravel()]
    f["noise_shape"] = list(noise.shape)
    f["grad_sum"] = {n: float(t.double().sum()) for n, t in grads.items()}
    f["grad_abs_sum"] = {n: float(t.double().abs().sum()) for n, t in grads.items()}
    kb = {n: without_key_bias(n, t) for n, t in params.items()}
    f["param_sum"] = {n: float(t.double().sum()) for n, t in kb.items()}
    f["param_abs_sum"] = {n: float(t.double().abs().sum()) for n, t in kb.items()}
    return f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config", nargs="?")
    ap.add_argument("--norm-pix", action="store_true")
    ap.add_argument("--accum-iter", type=int, default=1)
    ap.add_argument("--out")
    ap.add_argument("--write-fixtures", action="store_true")
    a = ap.parse_args()
    if a.write_fixtures:
        for name in CONFIGS:
            for npx in (False, True):
                f = fixture(*run(name, npx))
                p = os.path.join(OUT, name, "train_normpix.json" if npx else "train.json")
                with open(p, "w") as fh:
                    json.dump(f, fh, separators=(",", ":"))
                print("wrote", p, "losses", f["losses"])
        # Gradient accumulation: 2 iterations per step, 4 per epoch.
        f = fixture(*run("tiny32", False, accum_iter=2))
        p = os.path.join(OUT, "tiny32", "train_accum2.json")
        with open(p, "w") as fh:
            json.dump(f, fh, separators=(",", ":"))
        print("wrote", p, "losses", f["losses"])
        return
    if not a.config or not a.out:
        ap.error("CONFIG and --out, or --write-fixtures")
    write_dir(a.out, *run(a.config, a.norm_pix, a.accum_iter))


if __name__ == "__main__":
    main()
