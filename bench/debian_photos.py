"""The real photos the bench scripts crop their inputs from: the ones
Debian's python3-skimage and python3-sklearn ship, so no download is
needed. Imported by the scripts' inline Python (PYTHONPATH=bench)."""

SKIMAGE = "/usr/lib/python3/dist-packages/skimage/data/"
SKLEARN = "/usr/lib/python3/dist-packages/sklearn/datasets/images/"


def paths(skimage_names):
    """Paths of the named skimage photos, then sklearn's two colour photos."""
    return [SKIMAGE + f for f in skimage_names] + [SKLEARN + f for f in ("china.jpg", "flower.jpg")]
