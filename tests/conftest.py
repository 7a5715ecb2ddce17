"""Shared fixtures: tiny generated image folders, a GENKI-4K subset and the real small weights."""
import os
import pathlib
import shutil

import pytest

from pipeline.data.sample import write_sample

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GENKI = SHARED / "data" / "genki4k"
MOBILENET_025 = SHARED / "weights" / "mobilenet_2_5_224_tf_no_top.h5"

#: Beam options for tests: Beam's FnApiRunner in this process (never Prism).
IN_MEMORY = ["--runner=FnApiRunner", "--direct_running_mode=in_memory",
             "--direct_num_workers=1"]

#: A tiny, fast backbone for tests.
TINY = ["--backbone", "mobilenet_v2", "--alpha", "0.35", "--image-size", "48", "--weights",
        "none"]


@pytest.fixture(scope="session")
def faces(tmp_path_factory):
    """A generated two-class folder of 12 faces per class (read-only by convention)."""
    return str(write_sample(str(tmp_path_factory.mktemp("faces")), per_class=12, size=48))


@pytest.fixture
def faces_copy(faces, tmp_path):
    """A writable copy of `faces`."""
    return shutil.copytree(faces, tmp_path / "faces")


@pytest.fixture(scope="session")
def genki_subset(tmp_path_factory):
    """A symlinked folder of the first 20 GENKI-4K images per class; skips when GENKI is absent."""
    if not GENKI.is_dir():
        pytest.skip(f"{GENKI} is not here")
    root = tmp_path_factory.mktemp("genki")
    for name in ("not_smiling", "smiling"):
        (root / name).mkdir()
        for file in sorted(os.listdir(GENKI / name))[:20]:
            (root / name / file).symlink_to(GENKI / name / file)
    return str(root)


@pytest.fixture(scope="session")
def mobilenet_weights():
    """The real ImageNet MobileNet 0.25 weights file; skips when absent."""
    if not MOBILENET_025.is_file():
        pytest.skip(f"{MOBILENET_025} is not here")
    return str(MOBILENET_025)
