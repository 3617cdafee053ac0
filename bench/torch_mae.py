"""PyTorch baseline for bench/model_vs_peers.sh: the reference MAE
(mae/testdata/reference/mae_ref.py) with ViT-B/16 shapes and random weights,
on THREADS (default 2) threads (ATen's intra-op threads and OpenBLAS's),
timing whole-image embedding and 0.75-masked reconstruction.

Usage: python3 bench/torch_mae.py CASES ITERS
  CASES: comma-separated MODE:BATCH (MODE embed | reconstruct), e.g.
  embed:8,embed:1,reconstruct:8
Prints "MODE:BATCH images/s" per case (best of ITERS timed runs after one
warm-up; per second of process CPU time when MEASURE=cpu), then "isa ..."
with the CPU capability ATen dispatches to.
"""
import os
import sys
import time

# OpenBLAS runs its own threads beside ATen's, as many as there are CPUs
# unless told: without this, THREADS=1 ran its GEMMs on every core.
os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ.get("THREADS", "2"))
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "mae", "testdata", "reference"))
import mae_ref  # noqa: E402

cases, iters = [c.split(":") for c in sys.argv[1].split(",")], int(sys.argv[2])
torch.set_num_threads(int(os.environ.get("THREADS", "2")))
torch.manual_seed(0)
cfg = mae_ref.Config()  # defaults are mae_vit_base_patch16
model = mae_ref.MaskedAutoencoderViT(cfg).eval()

for mode, batch in cases:
    batch = int(batch)
    x = torch.randn(batch, 3, 224, 224)

    def step():
        with torch.inference_mode():
            if mode == "embed":
                model.embed(x)
            else:
                model(x, mask_ratio=0.75)

    step()
    best = float("inf")
    clock = time.process_time if os.environ.get("MEASURE") == "cpu" else time.perf_counter
    for _ in range(iters):
        t = clock()
        step()
        best = min(best, clock() - t)
    print(f"{mode}:{batch} {batch / best:.3f}")
cap = [l.split(":", 1)[1].strip() for l in torch.__config__.show().splitlines() if "CPU capability" in l]
print("isa", "ATen-" + (cap[0] if cap else "?"))
