"""Writes N ImageNet-sized JPEGs (500x375, a quarter portrait 375x500,
quality 90) into OUT: random crops of the Debian photos, so every file
decodes differently. The input set of bench/pipeline_e2e.sh and
bench/decode_workers.sh.

    python3 bench/e2e_jpegs.py OUT N
"""
import os, random, sys
from PIL import Image
from debian_photos import paths
out, n = sys.argv[1], int(sys.argv[2])
srcs = paths(("astronaut.png", "camera.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg",
              "motorcycle_left.png", "retina.jpg", "rocket.jpg", "page.png", "microaneurysms.png"))
photos = [Image.open(p).convert("RGB") for p in srcs]
rng = random.Random(0)
os.makedirs(out + ".tmp", exist_ok=True)
for i in range(n):
    im = photos[i % len(photos)]
    w, h = (375, 500) if i % 4 == 3 else (500, 375)
    s = rng.uniform(0.5, 1.0)
    cw = int(min(im.width, im.height * w / h) * s)
    ch = int(cw * h / w)
    x, y = rng.randint(0, im.width - cw), rng.randint(0, im.height - ch)
    c = im.crop((x, y, x + cw, y + ch)).resize((w, h), Image.BICUBIC)
    if rng.random() < 0.5:
        c = c.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    c.save(os.path.join(out + ".tmp", "img_%06d.jpg" % i), quality=90)
os.rename(out + ".tmp", out)
