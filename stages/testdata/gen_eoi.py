#!/usr/bin/python3
"""Regenerate stages/testdata/eoi: small JPEGs of a real photo
(examples/photos/fossa.jpg) for the tests of JPEGs whose EOI marker is
missing; the tests cut the marker off themselves.

    /usr/bin/python3 stages/testdata/gen_eoi.py   # needs Pillow and cjpeg (libjpeg-turbo-progs)

- progressive.jpg: progressive (PIL never decodes one without its EOI:
  libjpeg reads every scan, up to EOI, before the first row).
- restart-decodes.jpg, restart-refused.jpg: sequential 4:2:0 with a restart
  marker every 2 MCUs (cjpeg -restart 2B); without its EOI, PIL decodes the
  first and refuses the second ("image file is truncated"), as libjpeg's bit
  reader does or does not ask for a byte past the end of the file.
The script tries crops of the photo until each has the verdict it names,
and checks it.
"""
import io
import os
import subprocess

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
D = os.path.join(HERE, "eoi")
PHOTO = os.path.join(HERE, "..", "..", "examples", "photos", "fossa.jpg")
os.makedirs(D, exist_ok=True)
photo = Image.open(PHOTO).convert("RGB")


def pil_decodes(data):
    try:
        Image.open(io.BytesIO(data)).load()
        return True
    except OSError:
        return False


def crop(i):
    """The i-th 96x64 crop of the photo, halved."""
    x, y = (37 * i) % (photo.width - 192), (23 * i) % (photo.height - 128)
    return photo.crop((x, y, x + 192, y + 128)).resize((96, 64), Image.BICUBIC)


def cjpeg(im):
    ppm = io.BytesIO()
    im.save(ppm, "PPM")
    return subprocess.run(["cjpeg", "-quality", "85", "-sample", "2x2", "-restart", "2B"],
                          input=ppm.getvalue(), capture_output=True, check=True).stdout


b = io.BytesIO()
crop(0).save(b, "JPEG", quality=85, progressive=True)
prog = b.getvalue()
assert pil_decodes(prog) and not pil_decodes(prog[:-2]) and not pil_decodes(prog[:-1])
open(os.path.join(D, "progressive.jpg"), "wb").write(prog)

want = {"restart-decodes.jpg": True, "restart-refused.jpg": False}
for i in range(200):
    data = cjpeg(crop(i))
    assert data[-2:] == b"\xff\xd9" and b"\xff\xdd" in data and pil_decodes(data)
    verdict = pil_decodes(data[:-2])
    assert pil_decodes(data[:-1]) == verdict and not pil_decodes(data[:-3])
    for name, v in list(want.items()):
        if v == verdict:
            open(os.path.join(D, name), "wb").write(data)
            del want[name]
    if not want:
        break
assert not want, want
