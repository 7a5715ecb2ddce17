"""A small synthetic two-class image folder (drawn smiling and neutral faces), made by code.

It lets the quickstart and the tests run offline on a fresh machine without any data set. Faces
vary in position, size, skin and background tone, eye size and noise, drawn from a seeded
generator, so the same seed always gives the same files.
"""
import os

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["CLASS_NAMES", "make_face", "write_sample"]

CLASS_NAMES = ("neutral", "smiling")


def make_face(smiling, rng, size=64):
    """Draws one face as a PIL RGB image of `size` x `size` pixels.

    Args:
        smiling: draw an upturned mouth (True) or a straight one (False).
        rng: a `np.random.Generator`.
        size: the side in pixels. Defaults to `64`.
    """
    background = tuple(int(v) for v in rng.integers(60, 200, 3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    cx, cy = (size / 2 + rng.uniform(-0.08, 0.08, 2) * size)
    radius = size * rng.uniform(0.30, 0.42)
    skin = tuple(int(v) for v in rng.integers(150, 240, 3))
    draw.ellipse([cx - radius, cy - radius * 1.1, cx + radius, cy + radius * 1.1], fill=skin)
    eye = radius * rng.uniform(0.10, 0.16)
    for side in (-1, 1):
        ex, ey = cx + side * radius * 0.4, cy - radius * 0.3
        draw.ellipse([ex - eye, ey - eye, ex + eye, ey + eye], fill=(30, 30, 30))
    mouth_w, mouth_y = radius * rng.uniform(0.45, 0.65), cy + radius * 0.45
    width = max(1, int(size / 32))
    if smiling:
        box = [cx - mouth_w, mouth_y - mouth_w * 0.6, cx + mouth_w, mouth_y + mouth_w * 0.4]
        draw.arc(box, start=20, end=160, fill=(120, 20, 30), width=width + 1)
    else:
        draw.line([cx - mouth_w * 0.8, mouth_y, cx + mouth_w * 0.8, mouth_y],
                  fill=(120, 20, 30), width=width + 1)
    pixels = np.asarray(image, np.float32) + rng.normal(0, 6, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_sample(root, *, per_class=100, size=64, seed=0):
    """Writes `per_class` JPEG faces per class under `root/<class>/` and returns `root`.

    Existing files of the same names are overwritten; the output depends only on the arguments.
    """
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASS_NAMES):
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        for index in range(per_class):
            make_face(bool(label), rng, size).save(
                os.path.join(folder, f"{name}_{index:04d}.jpg"), quality=90)
    return root
