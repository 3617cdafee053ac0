"""Plain-PyTorch reference of the MAE model (He et al. 2021) for maeembed's parity tests.

An independent re-implementation of facebookresearch/mae `models_mae.py`
(MaskedAutoencoderViT), `models_vit.py` (VisionTransformer with global_pool) and
`util/pos_embed.py`, plus the timm 0.3.x `PatchEmbed`/`Block`/`Attention`/`Mlp`
those files import. Module and parameter names match the official ones so that
`state_dict()` has the official checkpoint keys. Needs only torch and numpy.

Additions for maeembed (not in the official code):
  - `random_masking` takes an optional `noise` so tests can fix the mask (as
    transformers' ViTMAE does);
  - `embed` runs the encoder on all patches in raster order (mask ratio 0 without
    the shuffle the official code would still apply) and `pool` reduces it;
  - `forward_loss_per_image` gives one loss per image.
"""

from dataclasses import dataclass, asdict

import numpy as np
import torch
import torch.nn as nn


@dataclass
class Config:
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    mlp_ratio: float = 4.0
    # partial(nn.LayerNorm, eps=1e-6) in the official presets; HF configs say 1e-12.
    ln_eps: float = 1e-6
    norm_pix_loss: bool = False

    @property
    def grid(self):
        return self.img_size // self.patch_size

    @property
    def num_patches(self):
        return self.grid * self.grid

    def to_dict(self):
        return asdict(self)


# ---------------------------------------------------------------------------
# util/pos_embed.py. The official code computes in float32 numpy (omega is a
# float32 arange), then concatenates with a float64 zero cls row and casts to
# float32; transformers' copy uses float64 omega. We follow the official one.
# grid = meshgrid(w, h): grid[0] holds the column index, so the FIRST half of
# the channels encodes the column (the code calls it emb_h), the second the row.
# ---------------------------------------------------------------------------
def get_2d_sincos_pos_embed(embed_dim, grid_size, cls_token=False):
    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.meshgrid(grid_w, grid_h)  # w goes first
    grid = np.stack(grid, axis=0)
    grid = grid.reshape([2, 1, grid_size, grid_size])
    pos_embed = get_2d_sincos_pos_embed_from_grid(embed_dim, grid)
    if cls_token:
        pos_embed = np.concatenate([np.zeros([1, embed_dim]), pos_embed], axis=0)
    return pos_embed


def get_2d_sincos_pos_embed_from_grid(embed_dim, grid):
    assert embed_dim % 2 == 0
    emb_a = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[0])  # column
    emb_b = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[1])  # row
    return np.concatenate([emb_a, emb_b], axis=1)


def get_1d_sincos_pos_embed_from_grid(embed_dim, pos):
    assert embed_dim % 2 == 0
    omega = np.arange(embed_dim // 2, dtype=np.float32)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000 ** omega
    pos = pos.reshape(-1)
    out = np.einsum("m,d->md", pos, omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


# ---------------------------------------------------------------------------
# timm 0.3.x layers (the version the MAE repo pins).
# ---------------------------------------------------------------------------
class PatchEmbed(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__()
        self.img_size = (img_size, img_size)
        self.patch_size = (patch_size, patch_size)
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        B, C, H, W = x.shape
        assert (H, W) == self.img_size, f"input {H}x{W} != model {self.img_size}"
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, L, D], raster order


class Attention(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias=True):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        # qkv output features are laid out [3][heads][head_dim].
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()  # exact erf form
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x


# ---------------------------------------------------------------------------
# models_mae.py
# ---------------------------------------------------------------------------
class MaskedAutoencoderViT(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        D, Dd = cfg.embed_dim, cfg.decoder_embed_dim
        self.patch_embed = PatchEmbed(cfg.img_size, cfg.patch_size, cfg.in_chans, D)
        L = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, L + 1, D), requires_grad=False)
        self.blocks = nn.ModuleList([Block(D, cfg.num_heads, cfg.mlp_ratio, cfg.ln_eps) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(D, eps=cfg.ln_eps)

        self.decoder_embed = nn.Linear(D, Dd, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, Dd))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, L + 1, Dd), requires_grad=False)
        self.decoder_blocks = nn.ModuleList(
            [Block(Dd, cfg.decoder_num_heads, cfg.mlp_ratio, cfg.ln_eps) for _ in range(cfg.decoder_depth)])
        self.decoder_norm = nn.LayerNorm(Dd, eps=cfg.ln_eps)
        self.decoder_pred = nn.Linear(Dd, cfg.patch_size ** 2 * cfg.in_chans, bias=True)
        self.norm_pix_loss = cfg.norm_pix_loss
        self.reset_pos_embed()

    def reset_pos_embed(self):
        g = self.cfg.grid
        pe = get_2d_sincos_pos_embed(self.pos_embed.shape[-1], g, cls_token=True)
        self.pos_embed.data.copy_(torch.from_numpy(pe).float().unsqueeze(0))
        dpe = get_2d_sincos_pos_embed(self.decoder_pos_embed.shape[-1], g, cls_token=True)
        self.decoder_pos_embed.data.copy_(torch.from_numpy(dpe).float().unsqueeze(0))

    def patchify(self, imgs):
        p = self.patch_embed.patch_size[0]
        assert imgs.shape[2] == imgs.shape[3] and imgs.shape[2] % p == 0
        h = w = imgs.shape[2] // p
        x = imgs.reshape(shape=(imgs.shape[0], 3, h, p, w, p))
        x = torch.einsum("nchpwq->nhwpqc", x)
        return x.reshape(shape=(imgs.shape[0], h * w, p ** 2 * 3))

    def unpatchify(self, x):
        p = self.patch_embed.patch_size[0]
        h = w = int(x.shape[1] ** 0.5)
        assert h * w == x.shape[1]
        x = x.reshape(shape=(x.shape[0], h, w, p, p, 3))
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(shape=(x.shape[0], 3, h * p, h * p))

    def random_masking(self, x, mask_ratio, noise=None):
        """Official per-sample masking; returns (kept tokens, mask, ids_restore, ids_shuffle)."""
        N, L, D = x.shape
        len_keep = int(L * (1 - mask_ratio))  # Python float64 arithmetic, truncation
        if noise is None:
            noise = torch.rand(N, L, device=x.device)
        ids_shuffle = torch.argsort(noise, dim=1)  # ascending: small is keep, large is remove
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        x_masked = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, D))
        mask = torch.ones([N, L], device=x.device)  # 0 keep, 1 remove
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, dim=1, index=ids_restore)
        return x_masked, mask, ids_restore, ids_shuffle

    def forward_encoder(self, x, mask_ratio, noise=None):
        x = self.patch_embed(x)
        x = x + self.pos_embed[:, 1:, :]
        x, mask, ids_restore, ids_shuffle = self.random_masking(x, mask_ratio, noise)
        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat((cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        return x, mask, ids_restore, ids_shuffle

    def forward_decoder(self, x, ids_restore):
        x = self.decoder_embed(x)
        mask_tokens = self.mask_token.repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)  # no cls token
        x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))  # unshuffle
        x = torch.cat([x[:, :1, :], x_], dim=1)  # cls first
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        x = self.decoder_pred(x)
        return x[:, 1:, :]

    def _patch_loss(self, imgs, pred, norm_pix_loss):
        target = self.patchify(imgs)
        if norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)  # unbiased (N-1)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        loss = (pred - target) ** 2
        return loss.mean(dim=-1)  # [N, L]

    def forward_loss(self, imgs, pred, mask, norm_pix_loss=None):
        """The official batch loss: masked mean over every removed patch of the batch."""
        npl = self.norm_pix_loss if norm_pix_loss is None else norm_pix_loss
        loss = self._patch_loss(imgs, pred, npl)
        return (loss * mask).sum() / mask.sum()

    def forward_loss_per_image(self, imgs, pred, mask, norm_pix_loss=None):
        """sum(loss_i * mask_i) / sum(mask_i) for each image i: [N]."""
        npl = self.norm_pix_loss if norm_pix_loss is None else norm_pix_loss
        loss = self._patch_loss(imgs, pred, npl)
        return (loss * mask).sum(dim=1) / mask.sum(dim=1)

    def forward(self, imgs, mask_ratio=0.75, noise=None):
        latent, mask, ids_restore, _ = self.forward_encoder(imgs, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)
        loss = self.forward_loss(imgs, pred, mask)
        return loss, pred, mask

    # ---- maeembed additions -------------------------------------------------
    def embed(self, imgs):
        """Encoder on all patches, raster order, no shuffle: normed tokens [N, 1+L, D], cls first."""
        x = self.patch_embed(imgs)
        x = x + self.pos_embed[:, 1:, :]
        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat((cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


def pool(tokens, kind):
    """The pools maeembed offers (cls, mean, tokens) over normed tokens [N, 1+L, D] (global lives on FineTunedViT)."""
    if kind == "cls":
        return tokens[:, 0]
    if kind == "mean":
        return tokens[:, 1:].mean(dim=1)
    if kind == "tokens":
        return tokens
    raise ValueError(f"unknown pool {kind!r}")


# ---------------------------------------------------------------------------
# models_vit.py VisionTransformer(global_pool=True): fc_norm replaces norm.
# ---------------------------------------------------------------------------
class FineTunedViT(nn.Module):
    def __init__(self, cfg: Config, num_classes):
        super().__init__()
        self.cfg = cfg
        D = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg.img_size, cfg.patch_size, cfg.in_chans, D)
        L = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        # Learned in fine-tuning (initialised from the pretrained sin-cos table).
        self.pos_embed = nn.Parameter(torch.zeros(1, L + 1, D))
        self.blocks = nn.ModuleList([Block(D, cfg.num_heads, cfg.mlp_ratio, cfg.ln_eps) for _ in range(cfg.depth)])
        self.fc_norm = nn.LayerNorm(D, eps=cfg.ln_eps)
        self.head = nn.Linear(D, num_classes)

    def forward_features(self, x):
        B = x.shape[0]
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        x = x + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        x = x[:, 1:, :].mean(dim=1)  # global pool without cls token, un-normed
        return self.fc_norm(x)

    def forward(self, x):
        return self.head(self.forward_features(x))


# ---------------------------------------------------------------------------
# Hugging Face ViTMAEForPreTraining names (transformers convert_vit_mae_to_pytorch.py).
# ---------------------------------------------------------------------------
_BLOCK_RENAMES = [
    ("norm1.", "layernorm_before."),
    ("norm2.", "layernorm_after."),
    ("attn.proj.", "attention.output.dense."),
    ("mlp.fc1.", "intermediate.dense."),
    ("mlp.fc2.", "output.dense."),
]


def to_hf_state_dict(sd, cfg: Config):
    """Official MaskedAutoencoderViT state dict -> ViTMAEForPreTraining state dict (qkv split)."""
    out = {}

    def block(prefix_out, rest, val, dim):
        if rest.startswith("attn.qkv."):
            kind = rest.split(".")[-1]
            for i, name in enumerate(("query", "key", "value")):
                out[f"{prefix_out}attention.attention.{name}.{kind}"] = val[i * dim:(i + 1) * dim].clone()
            return
        for a, b in _BLOCK_RENAMES:
            if rest.startswith(a):
                out[prefix_out + b + rest[len(a):]] = val
                return
        raise KeyError(rest)

    for k, v in sd.items():
        if k == "cls_token":
            out["vit.embeddings.cls_token"] = v
        elif k == "pos_embed":
            out["vit.embeddings.position_embeddings"] = v
        elif k.startswith("patch_embed.proj."):
            out["vit.embeddings.patch_embeddings.projection." + k.split(".")[-1]] = v
        elif k.startswith("blocks."):
            _, n, rest = k.split(".", 2)
            block(f"vit.encoder.layer.{n}.", rest, v, cfg.embed_dim)
        elif k.startswith("norm."):
            out["vit.layernorm." + k.split(".")[-1]] = v
        elif k in ("mask_token", "decoder_pos_embed"):
            out["decoder." + k] = v
        elif k.startswith("decoder_blocks."):
            _, n, rest = k.split(".", 2)
            block(f"decoder.decoder_layers.{n}.", rest, v, cfg.decoder_embed_dim)
        elif k.split(".")[0] in ("decoder_embed", "decoder_norm", "decoder_pred"):
            out["decoder." + k] = v
        else:
            raise KeyError(k)
    return out


def from_hf_state_dict(hf, cfg: Config):
    """Inverse of to_hf_state_dict (used by the self-check)."""
    out = {}
    inv = [(b, a) for a, b in _BLOCK_RENAMES]
    for k, v in hf.items():
        for pre_hf, pre_off in (("vit.encoder.layer.", "blocks."), ("decoder.decoder_layers.", "decoder_blocks.")):
            if k.startswith(pre_hf):
                n, rest = k[len(pre_hf):].split(".", 1)
                if rest.startswith("attention.attention.query."):
                    kind = rest.split(".")[-1]
                    q = hf[f"{pre_hf}{n}.attention.attention.query.{kind}"]
                    kk = hf[f"{pre_hf}{n}.attention.attention.key.{kind}"]
                    vv = hf[f"{pre_hf}{n}.attention.attention.value.{kind}"]
                    out[f"{pre_off}{n}.attn.qkv.{kind}"] = torch.cat([q, kk, vv], 0)
                elif rest.startswith("attention.attention."):
                    pass
                else:
                    for a, b in inv:
                        if rest.startswith(a):
                            out[f"{pre_off}{n}.{b}{rest[len(a):]}"] = v
                break
        else:
            m = {
                "vit.embeddings.cls_token": "cls_token",
                "vit.embeddings.position_embeddings": "pos_embed",
                "vit.embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
                "vit.embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
                "vit.layernorm.weight": "norm.weight",
                "vit.layernorm.bias": "norm.bias",
            }
            out[m.get(k, k[len("decoder."):] if k.startswith("decoder.") else k)] = v
    return out


def hf_config(cfg: Config):
    return {
        "architectures": ["ViTMAEForPreTraining"],
        "model_type": "vit_mae",
        "image_size": cfg.img_size,
        "patch_size": cfg.patch_size,
        "num_channels": cfg.in_chans,
        "hidden_size": cfg.embed_dim,
        "num_hidden_layers": cfg.depth,
        "num_attention_heads": cfg.num_heads,
        "intermediate_size": int(cfg.embed_dim * cfg.mlp_ratio),
        "decoder_hidden_size": cfg.decoder_embed_dim,
        "decoder_num_hidden_layers": cfg.decoder_depth,
        "decoder_num_attention_heads": cfg.decoder_num_heads,
        "decoder_intermediate_size": int(cfg.decoder_embed_dim * cfg.mlp_ratio),
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "layer_norm_eps": cfg.ln_eps,
        "qkv_bias": True,
        "mask_ratio": 0.75,
        "norm_pix_loss": cfg.norm_pix_loss,
        "torch_dtype": "float32",
    }
