"""Decode any image file to RGB and resize it exactly as Keras's image loaders do.

Every job (embed, fine-tune, evaluate) reads images through `load_image`, so the pixels that reach
the backbone are the same whichever job produced them. Files that cannot be read raise `ImageError`
with a short reason; callers skip, count and report them.
"""
import io
import re
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.data.faces import crop_face

__all__ = ["IMAGE_EXTENSIONS", "MAX_PIXELS", "LARGE_IMAGE_SCALE", "ImageError", "decode_image",
           "resize_image", "prepare_image", "prepare_decoded", "load_image", "jpeg_thumbnail",
           "probe_image_size"]

#: Extensions read from class folders (lower case; matched case-insensitively), as
#: `tf.keras.utils.image_dataset_from_directory` does.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")

#: Larger images are refused rather than decoded (a decompression bomb guard): 100 megapixels.
MAX_PIXELS = 100_000_000

#: Where a data set's images are larger than a backbone's own input, the input side is this
#: multiple of it, to a multiple of 32 (224 -> 288): measured on flower_photos (median shorter
#: side 252 px) with MobileNetV2 0.5, +2.1 points for the head and +0.8 for the fine-tuned model.
LARGE_IMAGE_SCALE = 1.25

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_TF_FORMATS = ("JPEG", "PNG", "BMP", "GIF")
_TF_MODES = ("RGB", "L", "RGBA", "P")


class ImageError(ValueError):
    """An image file that cannot be decoded; the message is the reason, one line."""


def decode_image(data):
    """Decodes encoded image bytes to an RGB `uint8` array of shape (height, width, 3).

    Grayscale, palette, RGBA (alpha dropped), CMYK and 16-bit images are converted; animated
    images give their first frame. Common images (8-bit RGB, grayscale or RGBA JPEG, PNG, BMP,
    GIF) are decoded by TensorFlow's own `tf.io.decode_image`, as Keras's
    `image_dataset_from_directory` and the exported serving graph do, so the pixels are the same
    in training and serving; Pillow reads the header first (format, size) and decodes the rest.

    Args:
        data: the file's bytes.

    Returns:
        A `np.uint8` array (height, width, 3).

    Raises:
        ImageError: the bytes are empty, not an image, truncated or too large.
    """
    if not data:
        raise ImageError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise ImageError(_too_large(f"{width}x{height} pixels"))
                if (image.format in _TF_FORMATS and image.mode in _TF_MODES
                        and "transparency" not in image.info):
                    return _tf_decode(data)
                image.load()
                return _to_rgb(image)
    except UnidentifiedImageError as err:
        raise ImageError("not an image file (unrecognised format)") from err
    except Image.DecompressionBombError as err:  # Pillow noticed first, at its own limit
        pixels = re.search(r"Image size \((\d+) pixels\)", str(err))
        raise ImageError(_too_large(f"{int(pixels.group(1)):,} pixels" if pixels
                                    else f"over {MAX_PIXELS:,} pixels")) from err
    except (OSError, SyntaxError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ImageError(f"unreadable image: {reason}") from err


def _too_large(size):
    return f"image too large: {size} (the limit is {MAX_PIXELS // 1_000_000} megapixels)"


def _tf_decode(data):
    import tensorflow as tf  # deferred: importing TensorFlow is slow

    try:
        return tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    except tf.errors.OpError as err:
        raise ImageError(f"unreadable image: {_plain_reason(err.message)}") from err


#: Words in TensorFlow's decode errors that name the format (BMP's says only "Input size").
_TF_FORMAT_MARKERS = (("JPEG", "jpeg"), ("PNG", "png"), ("GIF", "gif"),
                      ("BMP", "input size should match"))


def _plain_reason(message):
    """A plain sentence for a TensorFlow decode error, without its op and device names."""
    lowered = message.lower()
    kind = next((name for name, marker in _TF_FORMAT_MARKERS if marker in lowered), "image")
    return f"truncated or corrupt {kind} data"


def _to_rgb(image):
    if image.mode in _SIXTEEN_BIT_MODES:
        wide = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if wide.max(initial=0) > 255 else 255.0
        gray = np.clip(np.round(wide * (255.0 / scale)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def resize_image(image, image_size):
    """Resizes an RGB image to `image_size` x `image_size` (bilinear, no crop, no antialias).

    This is the resize of `tf.keras.utils.image_dataset_from_directory`, so cached embeddings match
    what a Keras model sees.

    Args:
        image: an array (height, width, 3).
        image_size: the output side in pixels.

    Returns:
        A `np.float32` array (image_size, image_size, 3) with values in [0, 255].
    """
    import tensorflow as tf  # deferred: importing TensorFlow is slow and not needed to decode

    # The op `tf.image.resize(image, size, "bilinear")` runs, without its wrapper's half dozen
    # eager ops around it (the same pixels, tested; a third less CPU per image).
    resized = tf.raw_ops.ResizeBilinear(images=np.asarray(image)[None],
                                        size=[image_size, image_size], half_pixel_centers=True)
    return resized.numpy()[0]


def prepare_image(data, image_size, *, face_crop=False):
    """Decodes, optionally face-crops (`pipeline.data.faces.crop_face`), and resizes image bytes.

    Returns:
        `(image, face_found)`: the float32 image, and whether a face was found (None without
        `face_crop`; False means the whole image was kept).
    """
    return prepare_decoded(decode_image(data), image_size, face_crop=face_crop)


def prepare_decoded(image, image_size, *, face_crop=False):
    """`prepare_image` of an image decoded already (`decode_image`)."""
    found = None
    if face_crop:
        image, found = crop_face(image)
    return resize_image(image, image_size), found


def load_image(data, image_size, *, face_crop=False):
    """`prepare_image` without the face flag: the float32 (size, size, 3) image."""
    return prepare_image(data, image_size, face_crop=face_crop)[0]


def jpeg_thumbnail(data, *, side=128, quality=85):
    """A JPEG thumbnail of encoded image bytes, at most `side` pixels a side (aspect kept).

    A JPEG is decoded by Pillow at the smallest DCT scale (1/2, 1/4, 1/8) still at least `side`
    pixels a side (`Image.draft`): several times faster than a full decode, and the thumbnail
    is only for looking at. Other formats go through `decode_image`.

    Args:
        data: the image file's bytes.
        side: the longest side of the thumbnail in pixels. Defaults to `128`.
        quality: the JPEG quality. Defaults to `85`.

    Returns:
        The JPEG bytes, or None where `data` cannot be decoded (`decode_image`).
    """
    try:
        image = _draft_jpeg(data, side) or Image.fromarray(decode_image(data))
    except ValueError:  # ImageError among them
        return None
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _draft_jpeg(data, side):
    """An 8-bit RGB or grayscale JPEG decoded at a reduced scale, or None (not such a JPEG, or
    one Pillow cannot read: `decode_image` then decides)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if (image.format != "JPEG" or image.mode not in ("RGB", "L")
                    or width * height > MAX_PIXELS):
                return None
            image.draft(image.mode, (side, side))
            image.load()
            return image
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def probe_image_size(images, native_size):
    """The input side for a data set, decided on a sample of its images.

    It is the backbone's own `native_size`, or `LARGE_IMAGE_SCALE` times it (to a multiple of 32)
    when the images' median shorter side is larger than `native_size`: images that hold more
    detail than the backbone's own input are then downsized less. Smaller images keep the
    backbone's own size (a larger input would only upsample them further, at a higher cost).

    Args:
        images: decoded images (a sample of the data set, as they will be resized).
        native_size: the backbone's own input side.

    Returns:
        `{"sampled", "median_short_side", "native_size", "image_size"}`.
    """
    sides = [min(np.shape(image)[:2]) for image in images]
    median = float(np.median(sides)) if sides else 0.0
    large = 32 * round(native_size * LARGE_IMAGE_SCALE / 32)
    return {"sampled": len(sides), "median_short_side": median, "native_size": native_size,
            "image_size": large if median > native_size else native_size}
