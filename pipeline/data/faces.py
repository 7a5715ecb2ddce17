"""Face-crop preprocessing: crop the largest face found by OpenCV's bundled Haar cascade.

The cascade file ships inside `opencv-python-headless` (no download) and is loaded once per
thread (OpenCV's `CascadeClassifier` is not safe to share between the threads of a `tf.data`
map). When no face is found the whole image is kept, and callers count and list that fallback.
`probe_faces` decides whether a data set is one of faces (the embed job's `face_crop="auto"`).
"""
import os
import threading

import numpy as np

__all__ = ["FACE_MARGIN", "FACE_SHARE", "face_box", "crop_to_box", "crop_face", "probe_faces",
           "face_crop_spec"]

#: Margin added on every side of the detected face box, as a fraction of its size.
FACE_MARGIN = 0.25

#: `probe_faces` calls a data set one of faces when at least this share of its sampled images
#: holds a detected face (the embed job's probe: GENKI-4K 62 of 64; flower_photos 3 of 65; the
#: quickstart's drawn faces 37 to 41 of 64).
FACE_SHARE = 0.75

_CASCADE = "haarcascade_frontalface_default.xml"
_DETECT = {"scaleFactor": 1.1, "minNeighbors": 5, "minSize": (24, 24)}
_LOCAL = threading.local()


def _cascade():
    if getattr(_LOCAL, "cascade", None) is None:
        _LOCAL.cascade = _load_cascade()
    return _LOCAL.cascade


def _load_cascade():
    import cv2

    path = os.path.join(cv2.data.haarcascades, _CASCADE)
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"OpenCV's face cascade is missing ({path}); install "
                           "opencv-python-headless<5, which bundles it")
    return cascade


def face_box(image, *, margin=FACE_MARGIN):
    """The box `(top, left, bottom, right)` of the largest detected face with `margin`, or None.

    Args:
        image: a `np.uint8` RGB array (height, width, 3).
        margin: fraction of the face box added on each side (clipped to the image). Defaults to
            `FACE_MARGIN`.
    """
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    faces = _cascade().detectMultiScale(gray, **_DETECT)
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda box: box[2] * box[3])
    height, width = image.shape[:2]
    return (max(0, int(y - margin * h)), max(0, int(x - margin * w)),
            min(height, int(y + h + margin * h)), min(width, int(x + w + margin * w)))


def crop_to_box(image, box):
    """`image` cropped to `box` `(top, left, bottom, right)`; the image itself for None."""
    if box is None:
        return image
    top, left, bottom, right = box
    return image[top:bottom, left:right]


def crop_face(image, *, margin=FACE_MARGIN):
    """Crops the largest detected face, with `margin`, from an RGB uint8 image.

    Args:
        image: a `np.uint8` array (height, width, 3).
        margin: fraction of the face box added on each side. Defaults to `FACE_MARGIN`.

    Returns:
        `(image, found)`: the crop and True, or the unchanged image and False.
    """
    box = face_box(image, margin=margin)
    return crop_to_box(image, box), box is not None


def probe_faces(boxes, *, share=FACE_SHARE):
    """Whether a sample of a data set's images is one of faces.

    Args:
        boxes: `face_box` of each image of the sample (None where no face was found).
        share: the least share of images with a detected face. Defaults to `FACE_SHARE`.

    Returns:
        `{"sampled", "with_face", "share", "faces"}`: counts, the threshold, and the verdict.
    """
    found = sum(box is not None for box in boxes)
    return {"sampled": len(boxes), "with_face": found, "share": share,
            "faces": bool(boxes) and bool(found >= share * len(boxes))}


def face_crop_spec():
    """How `face_box` finds a face, for those who must find the same boxes outside Python."""
    return {"detector": f"OpenCV CascadeClassifier({_CASCADE}).detectMultiScale on the grey "
                        "image (cv2.COLOR_RGB2GRAY of the decoded RGB image)",
            "detect_arguments": {**_DETECT, "minSize": list(_DETECT["minSize"])},
            "face": "the largest detected box (by area)", "margin": FACE_MARGIN,
            "box": "(top, left, bottom, right): the face grown by margin x its size on every "
                   "side, clipped to the image; (-1, -1, -1, -1) when no face is found (the "
                   "whole image is used)",
            "reference": "pipeline.data.faces.face_box"}
