#!/usr/bin/python3
"""Write PIL's decoding beside each real-world input in stages/testdata/cases.

    /usr/bin/python3 stages/testdata/gen_cases.py   # needs Pillow

The inputs are small files from real datasets that earlier versions decoded
wrongly: exif6.jpg / exif6.png store base.png sideways with EXIF Orientation 6
(the PNG in an eXIf chunk); animated.webp is an animation (PIL gives the first
frame); frame_larger_than_screen.gif has a first frame larger than its logical
screen. NAME.pil.png is ImageOps.exif_transpose(Image.open(NAME)) in RGB, or
RGBA when the file has alpha.
"""
import glob
import os

from PIL import Image, ImageOps

D = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")
for path in sorted(glob.glob(os.path.join(D, "*"))):
    if path.endswith(".pil.png") or path.endswith("base.png"):
        continue
    im = ImageOps.exif_transpose(Image.open(path))
    im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB").save(path + ".pil.png")
