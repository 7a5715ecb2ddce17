"""Face-crop preprocessing: crop the largest face found by OpenCV's bundled Haar cascade.

The cascade file ships inside `opencv-python-headless` (no download) and is loaded once per
thread (OpenCV's `CascadeClassifier` is not safe to share between the threads of a `tf.data`
map). When no face is found the whole image is kept, and callers count and list that fallback.
"""
import os
import threading

import numpy as np

__all__ = ["crop_face", "FACE_MARGIN"]

#: Margin added on every side of the detected face box, as a fraction of its size.
FACE_MARGIN = 0.25

_LOCAL = threading.local()


def _cascade():
    if getattr(_LOCAL, "cascade", None) is None:
        _LOCAL.cascade = _load_cascade()
    return _LOCAL.cascade


def _load_cascade():
    import cv2

    path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"OpenCV's face cascade is missing ({path}); install "
                           "opencv-python-headless<5, which bundles it")
    return cascade


def crop_face(image, *, margin=FACE_MARGIN):
    """Crops the largest detected face, with `margin`, from an RGB uint8 image.

    Args:
        image: a `np.uint8` array (height, width, 3).
        margin: fraction of the face box added on each side. Defaults to `FACE_MARGIN`.

    Returns:
        `(image, found)`: the crop and True, or the unchanged image and False.
    """
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    faces = _cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    if len(faces) == 0:
        return image, False
    x, y, w, h = max(faces, key=lambda box: box[2] * box[3])
    height, width = image.shape[:2]
    top, left = max(0, int(y - margin * h)), max(0, int(x - margin * w))
    bottom, right = min(height, int(y + h + margin * h)), min(width, int(x + w + margin * w))
    return image[top:bottom, left:right], True
