"""The synthetic face folder: two classes, the same files for the same seed."""
import hashlib

import numpy as np

from pipeline.data.sample import CLASS_NAMES, make_face, write_sample


def _digests(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.jpg"))}


def test_the_same_seed_writes_the_same_files_and_another_seed_others(tmp_path):
    first = _digests(write_sample(tmp_path / "a", per_class=3, size=32))
    assert list(first) == [f"{name}/{name}_{i:04d}.jpg" for name in CLASS_NAMES for i in range(3)]
    assert _digests(write_sample(tmp_path / "b", per_class=3, size=32)) == first
    other = _digests(write_sample(tmp_path / "c", per_class=3, size=32, seed=1))
    assert set(other.values()).isdisjoint(first.values())


def test_a_face_is_an_rgb_square_of_the_size_asked():
    face = make_face(True, np.random.default_rng(0), size=40)
    assert (face.mode, face.size) == ("RGB", (40, 40))
