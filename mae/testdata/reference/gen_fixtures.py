#!/usr/bin/python3
"""Regenerate maeembed's MAE golden fixtures:

    /usr/bin/python3 mae/testdata/reference/gen_fixtures.py

(from the repository root; Debian's python3 with torch 1.13, torchvision, numpy, PIL).
Writes mae/testdata/fixtures/<config>/ for the configs below. Deterministic: every
random draw comes from a fixed seed. Runs self-checks and fails loudly if one breaks.
"""

import io
import json
import os
import shutil
import struct
import sys

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mae_ref as R  # noqa: E402

OUT = os.path.normpath(os.path.join(HERE, "..", "fixtures"))
N_IMAGES = 3
NUM_CLASSES = 10
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

CONFIGS = {
    "tiny32": dict(
        cfg=R.Config(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=4,
                     decoder_embed_dim=32, decoder_depth=2, decoder_num_heads=4,
                     mlp_ratio=4.0, ln_eps=1e-6),
        seed=1234,
        extras=True,  # encoder-only, legacy pickle, hf_bin, learned-pos fine-tune
    ),
    "small48": dict(
        cfg=R.Config(img_size=48, patch_size=16, embed_dim=64, depth=3, num_heads=2,
                     decoder_embed_dim=40, decoder_depth=1, decoder_num_heads=5,
                     mlp_ratio=4.0, ln_eps=1e-12),
        seed=4321,
        # Format variants live in tiny32 only: each is ~0.8 MB here and tests nothing new.
        extras=False,
    ),
}


# ---------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------
def make_image(kind, h, w, rs):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = xx / max(w - 1, 1), yy / max(h - 1, 1)
    if kind == 0:  # two gradients and a disc
        img = np.stack([255 * u, 255 * v, 255 * (1 - u) * 0.5 + 40], -1)
        disc = (xx - w * 0.6) ** 2 + (yy - h * 0.4) ** 2 < (min(h, w) * 0.25) ** 2
        img[disc] = [230, 40, 60]
    elif kind == 1:  # diagonal stripes, a rectangle, noise
        stripes = ((xx + yy) // 4 % 2) * 180 + 30
        img = np.stack([stripes, 255 * v * 0.7, 120 + 0 * u], -1)
        img[h // 5: h // 2, w // 6: (3 * w) // 4] = [20, 200, 90]
        img += rs.normal(0, 12, img.shape)
    else:  # radial gradient, checker, a triangle, strong noise
        r = np.sqrt((u - 0.5) ** 2 + (v - 0.5) ** 2)
        checker = ((xx // 6 + yy // 6) % 2) * 60
        img = np.stack([255 * (1 - r) , checker + 80, 255 * r], -1)
        tri = (yy > h * 0.55) & (np.abs(xx - w / 2) < (yy - h * 0.55))
        img[tri] = [250, 250, 20]
        img += rs.normal(0, 25, img.shape)
    return Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")


def write_images(d, size, seed):
    rs = np.random.RandomState(seed)
    os.makedirs(os.path.join(d, "images"))
    os.makedirs(os.path.join(d, "images_bad"))
    paths = []
    for i in range(N_IMAGES):
        p = os.path.join(d, "images", f"img_{i:03d}.png")
        make_image(i, size, size, rs).save(p)
        paths.append(p)
    make_image(0, size + 8, size + 8, rs).save(os.path.join(d, "images_bad", "wrong_size.png"))
    make_image(1, size, size + 16, rs).save(os.path.join(d, "images_bad", "nonsquare.png"))  # W > H
    return paths


def load_inputs(paths):
    """PIL decode, then torchvision ToTensor + Normalize in float32 (MAE's reference transform, resize none)."""
    xs = []
    for p in paths:
        with Image.open(p) as im:
            t = TF.to_tensor(im.convert("RGB"))
        xs.append(TF.normalize(t, MEAN, STD))
    return torch.stack(xs)


# ---------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------
def init_random(model, gen, skip=("pos_embed", "decoder_pos_embed")):
    """Non-trivial weights that keep activations O(1). Draw order = named_parameters order."""
    mods = dict(model.named_modules())
    with torch.no_grad():
        for name, prm in model.named_parameters():
            if name in skip:
                continue
            owner, _, leaf = name.rpartition(".")
            m = mods.get(owner)
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and leaf == "weight":
                fan_in = prm[0].numel()
                prm.copy_(torch.randn(prm.shape, generator=gen) / fan_in ** 0.5)
            elif isinstance(m, torch.nn.LayerNorm) and leaf == "weight":
                prm.copy_(1 + 0.1 * torch.randn(prm.shape, generator=gen))
            elif leaf == "bias":
                prm.copy_(0.1 * torch.randn(prm.shape, generator=gen))
            elif name in ("cls_token", "mask_token"):
                prm.copy_(0.5 * torch.randn(prm.shape, generator=gen))
            else:
                raise KeyError(f"no init rule for {name}")


def finetuned_from(mae, cfg, gen, pos_noise=0.0):
    ft = R.FineTunedViT(cfg, NUM_CLASSES)
    msd = mae.state_dict()
    own = {k: v for k, v in msd.items() if k in ft.state_dict()}
    missing = set(ft.state_dict()) - set(own)
    assert missing == {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}, missing
    ft.load_state_dict(own, strict=False)
    init_random(ft, gen, skip=tuple(own))
    if pos_noise:
        with torch.no_grad():
            ft.pos_embed.add_(pos_noise * torch.randn(ft.pos_embed.shape, generator=gen))
    return ft.eval()


# ---------------------------------------------------------------------------
# file writers
# ---------------------------------------------------------------------------
def save_npy(d, name, t, dtype=np.float32):
    a = t.detach().cpu().numpy() if torch.is_tensor(t) else np.asarray(t)
    # np.save, not ascontiguousarray (which would turn a 0-d scalar into shape (1,)).
    np.save(os.path.join(d, name), a.astype(dtype))


def write_safetensors(path, sd):
    """Hand-written safetensors: u64 LE header size, JSON header (8-byte padded), raw LE data."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for k in sorted(sd):
        b = sd[k].detach().contiguous().numpy().astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(sd[k].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[b:e], dtype="<f4").reshape(v["shape"]).copy())
    return out


def check(cond, what):
    if not cond:
        raise SystemExit(f"self-check failed: {what}")
    print(f"  ok: {what}")


def close(a, b, atol=1e-5):
    return torch.allclose(a, b, atol=atol, rtol=0)


# ---------------------------------------------------------------------------
def generate(name, spec):
    cfg, seed = spec["cfg"], spec["seed"]
    d = os.path.join(OUT, name)
    legacy = os.path.join(d, "model_legacy.pth")
    # Legacy pickles name storages by memory address, so their bytes change run to run;
    # keep the old file when its tensors are unchanged to avoid churn in git.
    old_legacy = None
    if os.path.exists(legacy):
        with open(legacy, "rb") as f:
            old_legacy = f.read()
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    print(f"{name}: {cfg}")

    gen = torch.Generator().manual_seed(seed)
    model = R.MaskedAutoencoderViT(cfg).eval()
    init_random(model, gen)
    ft = finetuned_from(model, cfg, gen)

    paths = write_images(d, cfg.img_size, seed)
    x = load_inputs(paths)
    N, L, p, D = x.shape[0], cfg.num_patches, cfg.patch_size, cfg.embed_dim

    torch.manual_seed(seed + 1)
    noise = torch.rand(N, L)

    with torch.no_grad():
        patches = model.patchify(x)
        patch_embed = model.patch_embed(x)
        tokens = model.embed(x)
        e_cls, e_mean = R.pool(tokens, "cls"), R.pool(tokens, "mean")
        e_global = ft.forward_features(x)

        latent, mask, ids_restore, ids_shuffle = model.forward_encoder(x, 0.75, noise)
        pred = model.forward_decoder(latent, ids_restore)
        loss_img = model.forward_loss_per_image(x, pred, mask, norm_pix_loss=False)
        loss_np_img = model.forward_loss_per_image(x, pred, mask, norm_pix_loss=True)
        loss_batch = model.forward_loss(x, pred, mask, norm_pix_loss=False)
        loss_np_batch = model.forward_loss(x, pred, mask, norm_pix_loss=True)

        lat50, mask50, restore50, _ = model.forward_encoder(x, 0.5, noise)
        pred50 = model.forward_decoder(lat50, restore50)
        loss50 = model.forward_loss_per_image(x, pred50, mask50, norm_pix_loss=False)

        # ---------------- self-checks ----------------
        print(" self-checks:")
        # The official path at ratio 0 still shuffles; unshuffled it must equal the raster path.
        shuf, _, restore0, _ = model.forward_encoder(x, 0.0, noise)
        unshuf = torch.gather(shuf[:, 1:], 1, restore0.unsqueeze(-1).repeat(1, 1, D))
        check(close(unshuf, tokens[:, 1:]), "ratio-0 shuffled tokens, unshuffled == raster-order tokens")
        check(close(R.pool(shuf, "cls"), e_cls), "cls pool invariant to the shuffle")
        check(close(R.pool(shuf, "mean"), e_mean), "mean pool invariant to the shuffle")
        msum = mask.sum(1)
        check(torch.allclose((loss_img * msum).sum() / msum.sum(), loss_batch, rtol=1e-6),
              "mask-weighted mean of per-image losses == batch loss")
        check(torch.allclose((loss_np_img * msum).sum() / msum.sum(), loss_np_batch, rtol=1e-6),
              "same for norm_pix_loss")
        check(torch.equal(model.unpatchify(patches), x), "patchify -> unpatchify round trip is exact")
        w = model.patch_embed.proj.weight  # [D, 3, p, p] -> [D, p*p*3] in patchify's (p, q, c) order
        w_pqc = w.permute(0, 2, 3, 1).reshape(D, -1)
        check(close(patches @ w_pqc.T + model.patch_embed.proj.bias, patch_embed),
              "conv patch embed == patchify @ W.permute(0,2,3,1).reshape(D,-1).T + b")
        keep = int(L * 0.25)
        check(bool((mask.sum(1) == L - keep).all()) and latent.shape[1] == 1 + keep,
              f"ratio 0.75 keeps int(L*0.25) = {keep} of {L}")
        check(torch.equal(ids_shuffle, torch.argsort(noise, 1)) and
              torch.equal(mask, (torch.argsort(ids_shuffle, 1) >= keep).float()),
              "mask == (rank of noise >= len_keep)")
        check(e_cls.abs().max() < 20 and pred.abs().max() < 50 and tokens.std() > 0.3,
              f"activations O(1): |cls|max {e_cls.abs().max():.2f} |pred|max {pred.abs().max():.2f}")

    # ---------------- weights ----------------
    sd = model.state_dict()
    torch.save({"model": sd}, os.path.join(d, "model.pth"))
    torch.save({"model": ft.state_dict()}, os.path.join(d, "finetuned.pth"))
    hf = R.to_hf_state_dict(sd, cfg)
    os.makedirs(os.path.join(d, "hf"))
    with open(os.path.join(d, "hf", "config.json"), "w") as f:
        json.dump(R.hf_config(cfg), f, indent=2)
    write_safetensors(os.path.join(d, "hf", "model.safetensors"), hf)
    files = ["model.pth", "finetuned.pth", "hf/config.json", "hf/model.safetensors"]

    extras = {}
    if spec["extras"]:
        # Like mae_pretrain_vit_*.pth: no decoder, no mask_token.
        enc = {k: v for k, v in sd.items() if not (k.startswith("decoder") or k == "mask_token")}
        torch.save({"model": type(sd)(enc)}, os.path.join(d, "encoder.pth"))
        torch.save({"model": sd}, legacy, _use_new_zipfile_serialization=False)
        if old_legacy is not None:
            prev = torch.load(io.BytesIO(old_legacy))["model"]
            if list(prev) == list(sd) and all(torch.equal(prev[k], sd[k]) for k in sd):
                with open(legacy, "wb") as f:
                    f.write(old_legacy)
        os.makedirs(os.path.join(d, "hf_bin"))
        shutil.copy(os.path.join(d, "hf", "config.json"), os.path.join(d, "hf_bin", "config.json"))
        torch.save(hf, os.path.join(d, "hf_bin", "pytorch_model.bin"))
        # Real fine-tuned checkpoints learn pos_embed; this one proves it is read, not recomputed.
        ft2 = finetuned_from(model, cfg, torch.Generator().manual_seed(seed + 7), pos_noise=0.1)
        torch.save({"model": ft2.state_dict()}, os.path.join(d, "finetuned_learnedpos.pth"))
        with torch.no_grad():
            extras["embed_global_learnedpos.npy"] = ft2.forward_features(x)
        files += ["encoder.pth", "model_legacy.pth", "hf_bin/config.json", "hf_bin/pytorch_model.bin",
                  "finetuned_learnedpos.pth"]

    # Reload every weight file and check it reproduces the outputs.
    def outputs_of(state):
        m = R.MaskedAutoencoderViT(cfg).eval()
        m.load_state_dict(state, strict=True)
        with torch.no_grad():
            lt, _, rs, _ = m.forward_encoder(x, 0.75, noise)
            return m.embed(x), m.forward_decoder(lt, rs)

    print(" reload checks:")
    for label, state in [
        ("model.pth", torch.load(os.path.join(d, "model.pth"))["model"]),
        ("hf/model.safetensors", R.from_hf_state_dict(read_safetensors(os.path.join(d, "hf", "model.safetensors")), cfg)),
    ] + ([
        ("model_legacy.pth", torch.load(os.path.join(d, "model_legacy.pth"))["model"]),
        ("hf_bin/pytorch_model.bin", R.from_hf_state_dict(torch.load(os.path.join(d, "hf_bin", "pytorch_model.bin")), cfg)),
    ] if spec["extras"] else []):
        t2, p2 = outputs_of(state)
        check(torch.equal(t2, tokens) and torch.equal(p2, pred), f"{label} reproduces tokens and pred bit-exactly")

    # ---------------- arrays ----------------
    arrays = {
        "x.npy": x, "patches.npy": patches,
        "pos_embed.npy": model.pos_embed[0], "decoder_pos_embed.npy": model.decoder_pos_embed[0],
        "patch_embed.npy": patch_embed,
        "embed_tokens.npy": tokens, "embed_cls.npy": e_cls, "embed_mean.npy": e_mean,
        "embed_global.npy": e_global,
        "noise.npy": noise, "latent.npy": latent, "mask.npy": mask, "pred.npy": pred,
        "loss.npy": loss_img, "loss_normpix.npy": loss_np_img,
        "loss_batch.npy": loss_batch, "loss_normpix_batch.npy": loss_np_batch,
        "pred_r50.npy": pred50, "mask_r50.npy": mask50, "loss_r50.npy": loss50,
    }
    arrays.update(extras)
    for k, v in arrays.items():
        save_npy(d, k, v)
    save_npy(d, "ids_restore.npy", ids_restore, np.int64)
    save_npy(d, "ids_shuffle.npy", ids_shuffle, np.int64)

    meta = {
        "config": cfg.to_dict(),
        "n_images": N,
        "num_patches": L,
        "grid": cfg.grid,
        "patch_dim": p * p * 3,
        "len_keep_r75": int(L * (1 - 0.75)),
        "len_keep_r50": int(L * (1 - 0.5)),
        "num_classes": NUM_CLASSES,
        "seed": seed,
        "noise": f"torch.manual_seed({seed + 1}); torch.rand({N}, {L})",
        "preprocess": "PIL RGB uint8 -> /255 float32 -> (x - mean) / std, ImageNet mean/std, no resize",
        "mean": MEAN, "std": STD,
        "images": [os.path.relpath(q, d) for q in paths],
        "bad_images": ["images_bad/wrong_size.png", "images_bad/nonsquare.png"],
        "weights": files,
        "arrays": sorted(list(arrays) + ["ids_restore.npy", "ids_shuffle.npy"]),
        "loss_batch": float(loss_batch), "loss_normpix_batch": float(loss_np_batch),
        "loss": [float(v) for v in loss_img], "loss_normpix": [float(v) for v in loss_np_img],
        "loss_r50": [float(v) for v in loss50],
    }
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")


def main():
    torch.set_num_threads(1)  # one summation order, run to run
    torch.use_deterministic_algorithms(True)
    for name, spec in CONFIGS.items():
        generate(name, spec)


if __name__ == "__main__":
    main()
