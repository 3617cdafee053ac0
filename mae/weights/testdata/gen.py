"""Generate the checkpoint fixtures of package mae/weights.

Regenerate (from the repository root; needs Debian's torch, not the pyenv python):

    /usr/bin/python3 mae/weights/testdata/gen.py

Every fixture holds the same tiny MAE (image 8, patch 4 so L=4, D=16, depth 2,
2 heads, decoder 8 wide and 2 deep) in one of the formats the loader reads.
expected.json records, per fixture and per tensor under its official
(models_mae.py) name, the shape, the sum, a position-weighted sum
sum(v[i] * (i % 7 + 1)) over the row-major values, and the first values, all
computed from the float32 values the loader must return.
The generator is deterministic (fixed seed): rerunning it rewrites the same
values; only the legacy-format files change bytes (their storage keys are
memory addresses).

With --vitb PATH it instead writes a random ViT-B/16-shaped pretrain
checkpoint (86M parameters, 343 MB; not committed) for load measurements.
"""
import argparse
import collections
import json
import os
import shutil
import struct

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))

IMG, PATCH, CH = 8, 4, 3
L = (IMG // PATCH) ** 2
D, DEPTH, HEADS, MLP = 16, 2, 2, 64
DD, DDEPTH, DHEADS, DMLP = 8, 2, 2, 32
NUM_CLASSES = 10


class Attention(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)


class Block(nn.Module):
    """timm Block's parameter layout."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)


class PatchEmbed(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(CH, D, PATCH, PATCH)


class TinyMAE(nn.Module):
    """models_mae.MaskedAutoencoderViT's parameter layout, tiny."""

    def __init__(self, decoder=True, finetuned=False):
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, D))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + L, D), requires_grad=False)
        self.patch_embed = PatchEmbed()
        self.blocks = nn.ModuleList([Block(D, MLP) for _ in range(DEPTH)])
        if finetuned:
            # Fine-tuned checkpoints (global pool) replace norm by fc_norm + head.
            self.fc_norm = nn.LayerNorm(D, eps=1e-6)
            self.head = nn.Linear(D, NUM_CLASSES)
        else:
            self.norm = nn.LayerNorm(D, eps=1e-6)
        if decoder:
            self.decoder_embed = nn.Linear(D, DD)
            self.mask_token = nn.Parameter(torch.randn(1, 1, DD))
            self.decoder_pos_embed = nn.Parameter(torch.randn(1, 1 + L, DD), requires_grad=False)
            self.decoder_blocks = nn.ModuleList([Block(DD, DMLP) for _ in range(DDEPTH)])
            self.decoder_norm = nn.LayerNorm(DD, eps=1e-6)
            self.decoder_pred = nn.Linear(DD, PATCH * PATCH * CH)
        # LayerNorms start at 1/0: randomise everything so that a swapped or
        # misplaced tensor cannot go unnoticed.
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn_like(p) * 0.5)


def hf_name(name, bare=False):
    """Official name -> Hugging Face ViTMAEForPreTraining name (qkv handled apart)."""
    top = [
        ("cls_token", "embeddings.cls_token"),
        ("pos_embed", "embeddings.position_embeddings"),
        ("patch_embed.proj.", "embeddings.patch_embeddings.projection."),
        ("norm.", "layernorm."),
    ]
    dec = [
        ("mask_token", "decoder.mask_token"),
        ("decoder_pos_embed", "decoder.decoder_pos_embed"),
        ("decoder_embed.", "decoder.decoder_embed."),
        ("decoder_norm.", "decoder.decoder_norm."),
        ("decoder_pred.", "decoder.decoder_pred."),
    ]
    block = [
        ("norm1.", "layernorm_before."),
        ("attn.proj.", "attention.output.dense."),
        ("norm2.", "layernorm_after."),
        ("mlp.fc1.", "intermediate.dense."),
        ("mlp.fc2.", "output.dense."),
    ]
    vit = "" if bare else "vit."
    for a, b in dec:
        if name == a or (a.endswith(".") and name.startswith(a)):
            return b + name[len(a):]
    for a, b in top:
        if name == a or (a.endswith(".") and name.startswith(a)):
            return vit + b + name[len(a):]
    for a, b in (("blocks.", vit + "encoder.layer."), ("decoder_blocks.", "decoder.decoder_layers.")):
        if name.startswith(a):
            idx, rest = name[len(a):].split(".", 1)
            for x, y in block:
                if rest.startswith(x):
                    return b + idx + "." + y + rest[len(x):]
    raise KeyError(name)


def to_hf(sd, bare=False, share_decoder_qkv=False):
    """share_decoder_qkv keeps the decoder's query/key/value as views of one
    storage (as a split done without clone() would save them)."""
    out = collections.OrderedDict()
    for k, v in sd.items():
        if ".attn.qkv." in k:
            prefix, suffix = k.split(".attn.qkv.")
            base = hf_name(prefix + ".norm1.weight", bare).rsplit(".layernorm_before.", 1)[0]
            share = share_decoder_qkv and k.startswith("decoder")
            for part, chunk in zip(("query", "key", "value"), v.chunk(3, dim=0)):
                out[f"{base}.attention.attention.{part}.{suffix}"] = chunk if share else chunk.clone()
        else:
            out[hf_name(k, bare)] = v.clone()
    return out


ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64"}


def write_safetensors(path, tensors, metadata=None):
    """The safetensors format by hand (the package is not available here)."""
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        t = t.contiguous()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-(8 + len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def hf_config():
    return {
        "architectures": ["ViTMAEForPreTraining"],
        "model_type": "vit_mae",
        "image_size": IMG, "patch_size": PATCH, "num_channels": CH,
        "hidden_size": D, "num_hidden_layers": DEPTH, "num_attention_heads": HEADS, "intermediate_size": MLP,
        "decoder_hidden_size": DD, "decoder_num_hidden_layers": DDEPTH,
        "decoder_num_attention_heads": DHEADS, "decoder_intermediate_size": DMLP,
        "hidden_act": "gelu", "qkv_bias": True, "layer_norm_eps": 1e-12,
        "mask_ratio": 0.75, "norm_pix_loss": True,
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02,
        "torch_dtype": "float32",
    }


def stats(sd):
    out = {}
    for k, v in sd.items():
        x = v.detach().float().double().reshape(-1)
        w = (torch.arange(x.numel(), dtype=torch.float64) % 7) + 1
        out[k] = {
            "shape": list(v.shape),
            "sum": x.sum().item(),
            "wsum": (x * w).sum().item(),
            "abs": x.abs().sum().item(),
            "head": x[:4].tolist(),
        }
    return out


def plain(sd):
    """A state dict of plain tensors (parameters detached), keeping _metadata."""
    out = collections.OrderedDict((k, v.detach().clone()) for k, v in sd.items())
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--vitb", help="instead: write a synthetic ViT-B/16-shaped pretrain checkpoint (zip) to this path, for load benchmarks")
    args = ap.parse_args()

    if args.vitb:
        # mae_vit_base_patch16 encoder + decoder shapes, random values.
        sd = collections.OrderedDict()
        def block(prefix, d):
            sd[prefix + "norm1.weight"] = torch.randn(d); sd[prefix + "norm1.bias"] = torch.randn(d)
            sd[prefix + "attn.qkv.weight"] = torch.randn(3 * d, d); sd[prefix + "attn.qkv.bias"] = torch.randn(3 * d)
            sd[prefix + "attn.proj.weight"] = torch.randn(d, d); sd[prefix + "attn.proj.bias"] = torch.randn(d)
            sd[prefix + "norm2.weight"] = torch.randn(d); sd[prefix + "norm2.bias"] = torch.randn(d)
            sd[prefix + "mlp.fc1.weight"] = torch.randn(4 * d, d); sd[prefix + "mlp.fc1.bias"] = torch.randn(4 * d)
            sd[prefix + "mlp.fc2.weight"] = torch.randn(d, 4 * d); sd[prefix + "mlp.fc2.bias"] = torch.randn(d)
        sd["cls_token"] = torch.randn(1, 1, 768)
        sd["pos_embed"] = torch.randn(1, 197, 768)
        sd["patch_embed.proj.weight"] = torch.randn(768, 3, 16, 16)
        sd["patch_embed.proj.bias"] = torch.randn(768)
        for i in range(12):
            block(f"blocks.{i}.", 768)
        sd["norm.weight"] = torch.randn(768); sd["norm.bias"] = torch.randn(768)
        torch.save({"model": sd}, args.vitb)
        print(args.vitb, sum(v.numel() for v in sd.values()), "parameters")
        return

    torch.manual_seed(0)
    out = args.out
    expected = {}

    full = TinyMAE().state_dict()          # a real OrderedDict with _metadata
    ft = TinyMAE(decoder=False, finetuned=True).state_dict()

    # 1. Official pretrain/visualize layout: zip, state dict under "model".
    torch.save({"model": full}, os.path.join(out, "pretrain_zip.pth"))
    expected["pretrain_zip.pth"] = {"format": "pth-zip", "tensors": stats(full)}

    # 2. Legacy (pre-1.6) pickle format, state dict under "state_dict".
    torch.save({"state_dict": full}, os.path.join(out, "pretrain_legacy.pth"), _use_new_zipfile_serialization=False)
    expected["pretrain_legacy.pth"] = {"format": "pth-legacy", "tensors": stats(full)}

    # 3. float16 weights at top level, with DataParallel's "module." prefix.
    half = collections.OrderedDict(("module." + k, v.half()) for k, v in full.items())
    torch.save(half, os.path.join(out, "half_module.pth"))
    expected["half_module.pth"] = {"format": "pth-zip",
                                   "tensors": stats(collections.OrderedDict((k, v.half()) for k, v in full.items()))}

    # 4. Fine-tuned layout (fc_norm + head, no norm, no decoder) in a
    #    training checkpoint: Python objects (argparse.Namespace, ints) and
    #    optimizer state (tensors outside the state dict, saved last).
    ns = argparse.Namespace(model="vit_tiny", lr=1e-3, global_pool=True)
    opt = {"state": {0: {"step": 3, "exp_avg": torch.randn(64, 16), "exp_avg_sq": torch.rand(64, 16)}},
           "param_groups": [{"lr": 1e-3, "params": [0]}]}
    torch.save({"model": ft, "epoch": 7, "args": ns, "optimizer": opt}, os.path.join(out, "finetuned.pth"))
    expected["finetuned.pth"] = {"format": "pth-zip", "tensors": stats(ft)}

    # 5. Hugging Face directory with model.safetensors.
    d = os.path.join(out, "hf_safetensors")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(hf_config(), f, indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"), to_hf(full), {"format": "pt"})
    expected["hf_safetensors"] = {"format": "hf-safetensors", "tensors": stats(full)}

    # 5b. Sharded Hugging Face safetensors (index + 2 shards), split so that
    #     one layer's query/key/value straddle the shards.
    d = os.path.join(out, "hf_sharded")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(hf_config(), f, indent=2)
    hf = to_hf(full)
    names = list(hf)
    cut = names.index("vit.encoder.layer.1.attention.attention.key.weight")
    weight_map = {}
    for i, part in enumerate((names[:cut], names[cut:])):
        shard = f"model-0000{i + 1}-of-00002.safetensors"
        write_safetensors(os.path.join(d, shard), collections.OrderedDict((k, hf[k]) for k in part), {"format": "pt"})
        weight_map.update({k: shard for k in part})
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 4 * sum(v.numel() for v in hf.values())}, "weight_map": weight_map}, f, indent=2)
    expected["hf_sharded"] = {"format": "hf-safetensors", "tensors": stats(full)}

    # 6. Hugging Face directory with pytorch_model.bin (zip pickle, top level).
    d = os.path.join(out, "hf_bin")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(hf_config(), f, indent=2)
    torch.save(to_hf(full, share_decoder_qkv=True), os.path.join(d, "pytorch_model.bin"))
    expected["hf_bin"] = {"format": "hf-bin", "tensors": stats(full)}

    # 7. Bare ViTMAEModel names (no "vit.", no decoder) in a lone safetensors
    #    file, tensors cycling through BF16, F16, F64 and F32.
    enc = collections.OrderedDict((k, v) for k, v in full.items()
                                  if not (k.startswith("decoder") or k == "mask_token"))
    dts = [torch.bfloat16, torch.float16, torch.float64, torch.float32]
    mixed = collections.OrderedDict((k, v.to(dts[i % 4])) for i, (k, v) in enumerate(enc.items()))
    write_safetensors(os.path.join(out, "bare_mixed.safetensors"), to_hf(mixed, bare=True))
    expected["bare_mixed.safetensors"] = {"format": "safetensors", "tensors": stats(mixed)}

    # 8. Storage sharing, views and strides, as torch.save keeps them.
    base = torch.arange(24, dtype=torch.float64).reshape(4, 6) / 8
    flat = torch.randn(10)
    m = torch.randn(3, 5)
    views = collections.OrderedDict([
        ("a", base),                 # float64, shares its storage with t and s
        ("t", base.t()),             # transposed: non-contiguous
        ("s", base[1:3]),            # storage offset
        ("y1", flat[:5]),            # two float32 tensors on one storage
        ("y2", flat[5:]),
        ("x", m[:, 1:4]),            # float32 with strides
        ("e", torch.zeros(0, 3)),    # empty
    ])
    torch.save(views, os.path.join(out, "views.pth"))
    torch.save(views, os.path.join(out, "views_legacy.pth"), _use_new_zipfile_serialization=False)
    expected["views.pth"] = {"format": "pth-zip", "tensors": stats(views)}
    expected["views_legacy.pth"] = {"format": "pth-legacy", "tensors": stats(views)}

    # Error cases.
    # A state dict with an integer buffer (BatchNorm's num_batches_tracked).
    torch.save({"model": collections.OrderedDict([("fc.weight", torch.randn(2, 2)),
                                                  ("bn.num_batches_tracked", torch.tensor(3))])},
               os.path.join(out, "int_tensor.pth"))
    # Not a dict at all.
    torch.save([torch.randn(2)], os.path.join(out, "list.pth"))

    # One tensor per line: small and readable in diffs.
    with open(os.path.join(out, "expected.json"), "w") as f:
        f.write("{\n")
        for i, (fx, e) in enumerate(sorted(expected.items())):
            f.write(f' "{fx}": {{"format": "{e["format"]}", "tensors": {{\n')
            items = sorted(e["tensors"].items())
            for j, (k, v) in enumerate(items):
                sep = "," if j < len(items) - 1 else ""
                f.write(f'  {json.dumps(k)}: {json.dumps(v, separators=(",", ":"))}{sep}\n')
            f.write(" }}" + ("," if i < len(expected) - 1 else "") + "\n")
        f.write("}\n")


if __name__ == "__main__":
    main()
