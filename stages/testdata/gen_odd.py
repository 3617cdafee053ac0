#!/usr/bin/python3
"""Regenerate the odd-image fixtures in stages/testdata/odd (small, committed).

    /usr/bin/python3 stages/testdata/gen_odd.py   # needs Pillow and ImageMagick (convert)

Every picture is the same 48x32 "quadrants" image (top-left red, top-right
green, bottom-left blue, bottom-right yellow) so tests can check orientation
and colour after decoding.
"""
import io
import os
import struct
import subprocess
import zlib

from PIL import Image

D = os.path.join(os.path.dirname(os.path.abspath(__file__)), "odd")
W, H = 48, 32
QUAD = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]


def quadrants():
    im = Image.new("RGB", (W, H))
    for y in range(H):
        for x in range(W):
            im.putpixel((x, y), QUAD[(y >= H // 2) * 2 + (x >= W // 2)])
    return im


def p(name):
    return os.path.join(D, name)


q = quadrants()
q.save(p("quadrants.png"))
q.save(p("quadrants.jpg"), quality=95)
q.save(p("progressive.jpg"), quality=95, progressive=True)
q.save(p("quadrants.bmp"))
q.save(p("quadrants.tiff"))
q.save(p("quadrants.webp"), lossless=True)
q.convert("L").save(p("gray.png"))

# PNG content behind a .jpg name: decoders must sniff, not trust the name.
q.save(p("png-named.jpg"), format="PNG")

# Truncated JPEG: the scan is cut in half.
data = open(p("quadrants.jpg"), "rb").read()
open(p("truncated.jpg"), "wb").write(data[: len(data) // 2])

# EXIF orientation: stored sideways/upside down, upright once oriented.
for orient, stored in ((6, q.transpose(Image.Transpose.ROTATE_90)), (3, q.transpose(Image.Transpose.ROTATE_180)),
                       (8, q.transpose(Image.Transpose.ROTATE_270))):
    ex = Image.Exif()
    ex[0x0112] = orient
    stored.save(p(f"exif-orientation-{orient}.jpg"), quality=95, exif=ex.tobytes())

# CMYK JPEG (Adobe, inverted), as Photoshop/ImageMagick write them.
subprocess.run(["convert", p("quadrants.png"), "-colorspace", "CMYK", "-quality", "95", p("cmyk.jpg")], check=True)
# 16-bit RGB PNG.
subprocess.run(["convert", p("quadrants.png"), "-depth", "16", "PNG48:" + p("rgb16.png")], check=True)

# Palette PNG with a transparent colour: the left half is transparent.
pal = q.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
idx = pal.getpixel((0, 0))
pal.save(p("palette-transparent.png"), transparency=idx)

# RGBA PNG with half-transparent pixels.
rgba = q.convert("RGBA")
rgba.putalpha(128)
rgba.save(p("rgba-half.png"))

# Animated GIF: first frame red, second blue.
f1 = Image.new("RGB", (W, H), (255, 0, 0))
f2 = Image.new("RGB", (W, H), (0, 0, 255))
f1.save(p("animated.gif"), save_all=True, append_images=[f2], duration=100, loop=0)


# A valid PNG header claiming 100000x100000 (decompression bomb), with a tiny IDAT.
def chunk(t, b):
    return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xFFFFFFFF)


bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
bomb += chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
open(p("bomb-100000x100000.png"), "wb").write(bomb)

open(p("not-an-image.jpg"), "wb").write(b"this is plain text, not a picture\n")
open(p("empty.jpg"), "wb").write(b"")

# Chroma subsampling variants of a smooth colourful 37x23 picture (odd sizes
# exercise the edges), with PIL's (libjpeg-turbo's) decoding beside each, to
# check our colour conversion and fancy upsampling.
grad = Image.new("RGB", (37, 23))
for y in range(23):
    for x in range(37):
        grad.putpixel((x, y), ((x * 7 + y * 3) % 256, (y * 11) % 256, (255 - x * 5 - y * 2) % 256))
for name, sampling in (("444", 0), ("422", 1), ("420", 2)):
    grad.save(p(f"sub-{name}.jpg"), quality=90, subsampling=sampling)
subprocess.run(["convert", p("sub-444.jpg"), "-sampling-factor", "1x2", "-quality", "90", p("sub-440.jpg")], check=True)
for name in ("444", "422", "420", "440"):
    Image.open(p(f"sub-{name}.jpg")).convert("RGB").save(p(f"sub-{name}.pil.png"))
# PIL's decoding of the CMYK and progressive JPEGs, for the same comparison.
for name in ("cmyk", "progressive"):
    Image.open(p(f"{name}.jpg")).convert("RGB").save(p(f"{name}.pil.png"))
