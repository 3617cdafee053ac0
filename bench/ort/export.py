"""Export the PyTorch reference MAE (mae/testdata/reference/mae_ref.py,
ViT-B/16 shapes, random weights) to ONNX for the ONNX Runtime baseline.

Usage: python3 bench/ort/export.py OUTDIR
Writes OUTDIR/embed.onnx (images [N,3,224,224] -> mean-pooled embeddings
[N,768]: the encoder on the full image, as `maeembed embed --pool mean`)
and OUTDIR/reconstruct.onnx (images, noise [N,196] -> pred [N,196,768],
mask [N,196]: mask ratio 0.75, the encoder on the kept patches and the
decoder, as `maeembed reconstruct`). Opset 14, dynamic batch.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "mae", "testdata", "reference"))
import mae_ref  # noqa: E402

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
model = mae_ref.MaskedAutoencoderViT(mae_ref.Config()).eval()  # defaults are mae_vit_base_patch16


class Embed(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, imgs):
        return mae_ref.pool(self.m.embed(imgs), "mean")


class Reconstruct(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, imgs, noise):
        latent, mask, ids_restore, _ = self.m.forward_encoder(imgs, 0.75, noise)
        return self.m.forward_decoder(latent, ids_restore), mask


x = torch.randn(2, 3, 224, 224)
noise = torch.rand(2, 196)
with torch.no_grad():
    torch.onnx.export(Embed(model), (x,), os.path.join(out, "embed.onnx"), opset_version=14,
                      input_names=["images"], output_names=["embedding"],
                      dynamic_axes={"images": {0: "batch"}, "embedding": {0: "batch"}})
    torch.onnx.export(Reconstruct(model), (x, noise), os.path.join(out, "reconstruct.onnx"), opset_version=14,
                      input_names=["images", "noise"], output_names=["pred", "mask"],
                      dynamic_axes={"images": {0: "batch"}, "noise": {0: "batch"},
                                    "pred": {0: "batch"}, "mask": {0: "batch"}})
