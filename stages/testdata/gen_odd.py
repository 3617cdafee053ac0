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


# A valid PNG header claiming 100000x100000 with a tiny IDAT: more pixels than
# 69 bytes can hold, so a corrupt header (a real bomb holds them: 1-bit,
# all-zero rows compress about 1000:1).
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
# Four-component JPEGs with the middle two components subsampled 2x2 (the
# first and last full), as ImageMagick writes CMYK below quality 90: YCCK
# (Adobe transform 2), and the same file marked plain CMYK (transform 0),
# whose samples PIL then reads as C, M, Y, K.
subprocess.run(["convert", p("sub-444.pil.png"), "-colorspace", "CMYK", "-quality", "85", p("cmyk-420.jpg")], check=True)
ycck = bytearray(open(p("cmyk-420.jpg"), "rb").read())
at = ycck.index(b"Adobe") + 11
assert ycck[at] == 2, "ImageMagick wrote no YCCK"
ycck[at] = 0
open(p("cmyk-420-transform0.jpg"), "wb").write(ycck)
for name in ("cmyk-420", "cmyk-420-transform0"):
    Image.open(p(f"{name}.jpg")).convert("RGB").save(p(f"{name}.pil.png"))

# --- EXIF orientation in every container PIL's exif_transpose reads it from.
from PIL import ImageOps, PngImagePlugin  # noqa: E402

side6, side8, side3 = q.transpose(Image.Transpose.ROTATE_90), q.transpose(Image.Transpose.ROTATE_270), q.transpose(Image.Transpose.ROTATE_180)
ex6 = Image.Exif()
ex6[0x0112] = 6
side6.save(p("exif-orientation-6.png"), exif=ex6.tobytes())  # eXIf chunk
side6.save(p("exif-orientation-6.webp"), lossless=True, exif=ex6.tobytes())  # EXIF chunk
side6.save(p("exif-orientation-6.tiff"), tiffinfo={0x0112: 6})  # tag 274
ex8 = Image.Exif()
ex8[0x0112] = 8
raw = ex8.tobytes()
info = PngImagePlugin.PngInfo()  # ImageMagick's way: hex in a zTXt chunk
info.add_text("Raw profile type exif", "\nexif\n%8d\n%s\n" % (len(raw), raw.hex()), zip=True)
side8.save(p("exif-orientation-8-rawprofile.png"), pnginfo=info)
info = PngImagePlugin.PngInfo()
info.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
              '<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="3"/></rdf:RDF></x:xmpmeta>')
side3.save(p("exif-orientation-3-xmp.png"), pnginfo=info)
for name in ("exif-orientation-6.png", "exif-orientation-6.webp", "exif-orientation-8-rawprofile.png", "exif-orientation-3-xmp.png"):
    assert ImageOps.exif_transpose(Image.open(p(name))).convert("RGB").tobytes() == q.tobytes(), name
# TIFF: PIL 9.4's loader applies tag 274 itself (exif_transpose then turns it
# a second time, a Pillow bug): the upright picture is the right result.
assert Image.open(p("exif-orientation-6.tiff")).convert("RGB").tobytes() == q.tobytes()

# --- Files PIL decodes that Go's standard decoders refuse or decode
# differently, with PIL's pixels beside each (.pil.png; RGBA where the file
# has alpha).
def pil_png(name):
    im = Image.open(p(name))
    im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB").save(p(name + ".pil.png"))


# Lossy WebP: libwebp converts with BT.601 studio-range coefficients and
# "fancy" chroma upsampling; image.YCbCr's JFIF conversion is off by up to 18.
grad.save(p("lossy.webp"), quality=80)
ga = grad.convert("RGBA")
ga.putalpha(Image.linear_gradient("L").resize(grad.size))
ga.save(p("lossy-alpha.webp"), quality=80)
# Animated WebP: PIL gives the first frame on the canvas.
g2 = grad.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
grad.save(p("animated.webp"), save_all=True, append_images=[g2], lossless=True)
ga.save(p("animated-alpha.webp"), save_all=True, append_images=[ga.transpose(Image.Transpose.FLIP_TOP_BOTTOM)], quality=80)


def riff_chunk(fourcc, b):
    return fourcc + struct.pack("<I", len(b)) + b + (b"\0" if len(b) & 1 else b"")


def webp_chunks(b):
    out, i = [], 12
    while i + 8 <= len(b):
        n = struct.unpack("<I", b[i + 4:i + 8])[0]
        out.append((b[i:i + 4], b[i + 8:i + 8 + n]))
        i += 8 + n + (n & 1)
    return out


def u24(v):
    return struct.pack("<I", v)[:3]


# A first frame smaller than the canvas, at an offset: the rest of the canvas
# is transparent (white once composited) when the canvas has alpha, black when not.
for name, src, alpha in (("animated-offset.webp", "quadrants.webp", False), ("animated-offset-alpha.webp", "lossy-alpha.webp", True)):
    frame = b"".join(riff_chunk(c, d) for c, d in webp_chunks(open(p(src), "rb").read()) if c in (b"ALPH", b"VP8 ", b"VP8L"))
    fw, fh = Image.open(p(src)).size
    cw, ch = fw + 10, fh + 6
    vp8x = bytes([(0x10 if alpha else 0) | 0x02, 0, 0, 0]) + u24(cw - 1) + u24(ch - 1)
    anmf = u24(4 // 2) + u24(2 // 2) + u24(fw - 1) + u24(fh - 1) + u24(100) + bytes([0]) + frame
    body = b"WEBP" + riff_chunk(b"VP8X", vp8x) + riff_chunk(b"ANIM", b"\0\0\0\0\0\0") + riff_chunk(b"ANMF", anmf)
    open(p(name), "wb").write(b"RIFF" + struct.pack("<I", len(body)) + body)
# A GIF whose first frame is larger than its logical screen, at an offset:
# PIL grows the image to hold the frame; the rest is palette entry 0.
gif = io.BytesIO()
grad.save(gif, "GIF")
gif = bytearray(gif.getvalue())
struct.pack_into("<HH", gif, 6, 20, 10)  # logical screen 20x10
d = gif.index(b",", 13 + 3 * (2 << (gif[10] & 7)))  # image descriptor after the global table
struct.pack_into("<HH", gif, d + 1, 3, 2)  # frame at (3,2): the image becomes 40x25
open(p("frame-larger-than-screen.gif"), "wb").write(bytes(gif))
# A stray byte before the image descriptor: PIL skips bytes it does not know.
gif = open(p("frame-larger-than-screen.gif"), "rb").read()
open(p("gif-stray-byte.gif"), "wb").write(gif[:d] + b"\x07" + gif[d:])
# PNG damage PIL tolerates: PIL checks the CRC of chunks before the image data
# only, and stops reading after it.
png = open(p("quadrants.png"), "rb").read()


def png_chunks(b):
    out, i = [], 8
    while i + 8 <= len(b):
        n = struct.unpack(">I", b[i:i + 4])[0]
        out.append([b[i + 4:i + 8], b[i + 8:i + 8 + n], b[i + 8 + n:i + 12 + n]])
        i += 12 + n
    return out


def png_build(cs):
    return png[:8] + b"".join(struct.pack(">I", len(d)) + t + d + c for t, d, c in cs)


cs = png_chunks(png)
bad = [[t, d, b"\0\0\0\0" if t == b"IDAT" else c] for t, d, c in cs]
open(p("png-bad-idat-crc.png"), "wb").write(png_build(bad))
bad = cs[:-1] + [[b"tEXt", b"k\0v", b"\0\0\0\0"]] + cs[-1:]
open(p("png-bad-crc-after-idat.png"), "wb").write(png_build(bad))
open(p("png-no-iend.png"), "wb").write(png_build(cs[:-1]))
# More image data than the image needs, or bytes after the zlib stream: PIL
# stops reading once the image is complete.
raw = b"".join(b"\0" + q.tobytes()[y * W * 3:(y + 1) * W * 3] for y in range(H))
z = zlib.compress(raw + b"\0" * 500)
open(p("png-extra-data.png"), "wb").write(png_build([c for c in cs if c[0] != b"IDAT"][:-1] + [[b"IDAT", z, struct.pack(">I", zlib.crc32(b"IDAT" + z) & 0xFFFFFFFF)]] + cs[-1:]))
z = zlib.compress(raw) + b"trailing garbage"
open(p("png-data-after-zlib.png"), "wb").write(png_build([c for c in cs if c[0] != b"IDAT"][:-1] + [[b"IDAT", z, struct.pack(">I", zlib.crc32(b"IDAT" + z) & 0xFFFFFFFF)]] + cs[-1:]))
for name in ("png-extra-data.png", "png-data-after-zlib.png"):
    assert Image.open(p(name)).convert("RGB").tobytes() == q.tobytes(), name
# ...and what it refuses: a bad CRC before the image data, and missing data.
# Files every decoder must refuse go to testdata/refused (odd/ is read by the
# end-to-end tests as images that decode).
R = os.path.join(os.path.dirname(D), "refused")
bad = cs[:1] + [[b"tEXt", b"k\0v", b"\0\0\0\0"]] + cs[1:]
open(os.path.join(R, "png-bad-crc-before-idat.png"), "wb").write(png_build(bad))
open(os.path.join(R, "png-truncated-idat.png"), "wb").write(png[:len(png) // 2])
z = bytearray(zlib.compress(raw))
z[-1] ^= 0xFF  # the zlib checksum
open(os.path.join(R, "png-bad-adler.png"), "wb").write(png_build([c for c in cs if c[0] != b"IDAT"][:-1] + [[b"IDAT", bytes(z), struct.pack(">I", zlib.crc32(b"IDAT" + z) & 0xFFFFFFFF)]] + cs[-1:]))
# Fax (CCITT) TIFFs: libtiff reads a "white" run as 0 bits whatever the
# photometric tag; PIL writes BlackIsZero, ImageMagick WhiteIsZero.
bilevel = grad.convert("1")
for comp in ("group3", "group4"):
    bilevel.save(p(f"fax-{comp}.tiff"), compression=comp)
bilevel.save(p("fax-miniswhite-src.png"))
subprocess.run(["convert", p("fax-miniswhite-src.png"), "-compress", "Group4", p("fax-group4-miniswhite.tiff")], check=True)
os.remove(p("fax-miniswhite-src.png"))
assert Image.open(p("fax-group4-miniswhite.tiff")).tag_v2.get(262) == 0
# CMYK TIFFs (x/image/tiff refuses photometric 5), plain, LZW with a
# predictor, and deflate; PIL converts with its cmyk2rgb.
cmyk = grad.convert("CMYK")
cmyk.save(p("cmyk.tiff"))
cmyk.save(p("cmyk-lzw.tiff"), compression="tiff_lzw", tiffinfo={317: 2})
cmyk.save(p("cmyk-deflate.tiff"), compression="tiff_adobe_deflate")
for name in ("fax-group3.tiff", "fax-group4.tiff", "fax-group4-miniswhite.tiff", "cmyk.tiff", "cmyk-lzw.tiff", "cmyk-deflate.tiff"):
    pil_png(name)
# BMP variants x/image/bmp refuses: 16-bit (5-6-5 bit fields, 5-5-5) and
# run-length encoded palettes (RLE8, RLE4), as ImageMagick writes them.
grad.save(p("bmp-src.png"))
subprocess.run(["convert", p("bmp-src.png"), "-define", "bmp:subtype=RGB565", p("bmp-565.bmp")], check=True)
subprocess.run(["convert", p("bmp-src.png"), "-define", "bmp:subtype=RGB555", p("bmp-555.bmp")], check=True)
subprocess.run(["convert", p("bmp-src.png"), "-colors", "200", "-compress", "RLE", "BMP3:" + p("bmp-rle8.bmp")], check=True)
os.remove(p("bmp-src.png"))
b555 = bytearray(open(p("bmp-555.bmp"), "rb").read())
struct.pack_into("<I", b555, 30, 0)  # plain 16-bit (BI_RGB) is 5-5-5
open(p("bmp-555-rgb.bmp"), "wb").write(bytes(b555))


def rle4_bmp(im):
    """A 4-bit RLE BMP (nothing here writes one): encoded runs of
    alternating pixel pairs, an even absolute run at the start of each row,
    end-of-line and end-of-bitmap codes."""
    w, h = im.size
    px = im.load()
    pal = im.getpalette()[:48]
    body = bytearray()
    for y in range(h - 1, -1, -1):  # bottom-up
        row = [px[x, y] for x in range(w)]
        body += bytes([0, 4, row[0] << 4 | row[1], row[2] << 4 | row[3]])  # absolute: 4 pixels
        x = 4
        while x < w:
            a, b = row[x], row[x + 1] if x + 1 < w else 0
            n = 1
            while x + n < w and n < 255 and row[x + n] == (a if n % 2 == 0 else b):
                n += 1
            body += bytes([n, a << 4 | b])
            x += n
        body += b"\0\0"
    body += b"\0\1"
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 4, 2, len(body), 2835, 2835, 16, 16)
    palette = b"".join(bytes([pal[3 * i + 2], pal[3 * i + 1], pal[3 * i], 0]) for i in range(16))
    off = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", off + len(body), 0, 0, off) + info + palette + bytes(body)


open(p("bmp-rle4.bmp"), "wb").write(rle4_bmp(grad.quantize(16)))
rle8 = open(p("bmp-rle8.bmp"), "rb").read()
open(os.path.join(os.path.dirname(D), "refused", "bmp-rle8-truncated.bmp"), "wb").write(rle8[:len(rle8) * 2 // 3])
try:  # PIL: "not enough image data"
    Image.open(os.path.join(os.path.dirname(D), "refused", "bmp-rle8-truncated.bmp")).load()
    raise AssertionError("PIL accepts a truncated RLE8 BMP")
except ValueError:
    pass
for name in ("bmp-565.bmp", "bmp-555.bmp", "bmp-555-rgb.bmp", "bmp-rle8.bmp", "bmp-rle4.bmp"):
    pil_png(name)
for name in ("lossy.webp", "lossy-alpha.webp", "animated.webp", "animated-alpha.webp", "animated-offset.webp",
             "animated-offset-alpha.webp", "frame-larger-than-screen.gif", "gif-stray-byte.gif"):
    pil_png(name)
for name in ("png-bad-idat-crc.png", "png-bad-crc-after-idat.png", "png-no-iend.png"):
    assert Image.open(p(name)).convert("RGB").tobytes() == q.tobytes(), name
for name in ("png-bad-crc-before-idat.png", "png-truncated-idat.png", "png-bad-adler.png"):
    try:
        Image.open(os.path.join(R, name)).load()
        raise AssertionError(name + ": PIL accepts it")
    except (OSError, SyntaxError):
        pass

# JPEG-compressed TIFFs (Compression 7: JPEGTables plus one abbreviated JPEG
# stream per strip or tile), which x/image/tiff refuses: ImageMagick's
# default (RGB, one strip), strips of 8 rows, 32x32 tiles (cut at the
# edges), grey, orientation 6 (PIL's loader turns it upright), and PIL's
# own YCbCr. A truncated one is refused, as by PIL.
for name, args in (("jpeg.tiff", []), ("jpeg-strips.tiff", ["-define", "tiff:rows-per-strip=8"]),
                   ("jpeg-tiles.tiff", ["-define", "tiff:tile-geometry=32x32"]),
                   ("jpeg-gray.tiff", ["-colorspace", "Gray"]), ("jpeg-orientation-6.tiff", ["-orient", "RightTop"])):
    src = p("quadrants.png")
    if "orientation" in name:  # stored sideways, tagged to be turned upright
        src = p("side6-src.png")
        side6.save(src)
    subprocess.run(["convert", src, *args, "-compress", "JPEG", "-quality", "90", p(name)], check=True)
    assert Image.open(p(name)).tag_v2[259] == 7, name
os.remove(p("side6-src.png"))
q.convert("YCbCr").save(p("jpeg-ycbcr.tiff"), compression="jpeg", quality=90)
assert Image.open(p("jpeg-ycbcr.tiff")).tag_v2[262] == 6
for name in ("jpeg.tiff", "jpeg-strips.tiff", "jpeg-tiles.tiff", "jpeg-gray.tiff", "jpeg-orientation-6.tiff", "jpeg-ycbcr.tiff"):
    pil_png(name)
jt = open(p("jpeg.tiff"), "rb").read()
open(os.path.join(os.path.dirname(D), "refused", "jpeg-truncated.tiff"), "wb").write(jt[:len(jt) // 2])
