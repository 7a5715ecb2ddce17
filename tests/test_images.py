import io

import numpy as np
import pytest
from PIL import Image

from pipeline.data import images
from pipeline.data.images import ImageError, decode_image, load_image


def _encode(image, fmt, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("mode, fmt", [("L", "PNG"), ("RGBA", "PNG"), ("CMYK", "JPEG"),
                                       ("P", "GIF"), ("RGB", "BMP"), ("I;16", "PNG")])
def test_decode_converts_every_mode_to_rgb(mode, fmt):
    data = _encode(Image.new(mode, (7, 5)), fmt)
    decoded = decode_image(data)
    assert decoded.shape == (5, 7, 3) and decoded.dtype == np.uint8


def test_sixteen_bit_values_are_scaled_not_clipped():
    wide = Image.fromarray(np.full((4, 4), 65535, np.uint16))
    assert decode_image(_encode(wide, "PNG")).max() == 255
    half = Image.fromarray(np.full((4, 4), 32896, np.uint16))
    assert decode_image(_encode(half, "PNG")).max() == 128


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b"this is text, not an image", "not an image file"),
])
def test_bad_bytes_raise_a_one_line_reason(data, reason):
    with pytest.raises(ImageError, match=reason) as info:
        decode_image(data)
    assert "\n" not in str(info.value)


def test_truncated_jpeg_is_reported():
    data = _encode(Image.new("RGB", (64, 64), (200, 10, 10)), "JPEG")
    with pytest.raises(ImageError, match="unreadable image"):
        decode_image(data[: len(data) // 2])


def test_huge_image_is_refused(monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    with pytest.raises(ImageError, match="too large"):
        decode_image(_encode(Image.new("RGB", (20, 20)), "PNG"))


def test_load_image_resizes_like_keras():
    import tensorflow as tf

    pixels = np.random.default_rng(0).integers(0, 255, (30, 20, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(pixels), "PNG")
    ours = load_image(data, 16)
    keras_way = tf.image.resize(tf.io.decode_png(data, channels=3), (16, 16)).numpy()
    assert ours.shape == (16, 16, 3) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, keras_way, atol=1e-4)


@pytest.mark.parametrize("shapes, native, expected", [
    ([(240, 320), (333, 500), (180, 240)], 224, 288),  # median shorter side 240 > 224
    ([(192, 180), (180, 192), (400, 400)], 224, 224),  # median 192: the backbone's own
    ([(224, 300)] * 3, 224, 224),  # not larger
    ([(400, 400)], 299, 384),  # 1.25 x 299, to a multiple of 32
    ([], 224, 224),  # nothing sampled (TFDS data)
])
def test_image_size_follows_the_median_shorter_side(shapes, native, expected):
    from pipeline.data.images import probe_image_size

    probe = probe_image_size([np.zeros((*shape, 3), np.uint8) for shape in shapes], native)
    assert probe["image_size"] == expected
    assert probe["sampled"] == len(shapes) and probe["native_size"] == native
