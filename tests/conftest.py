"""Shared fixtures: tiny generated image folders, a GENKI-4K subset, the real small weights, and
the embed -> train_head chain built once per session on each of them.

Session fixtures are read-only: a test that writes into one copies it first. The caches and heads
are checked at the end of the session (`_assert_unchanged`): a test that wrote into one fails there.
"""
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from pipeline.data.sample import write_sample

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GENKI = SHARED / "data" / "genki4k"
MOBILENET_025 = SHARED / "weights" / "mobilenet_2_5_224_tf_no_top.h5"

#: Beam options for tests: Beam's FnApiRunner in this process (never Prism).
IN_MEMORY = ["--runner=FnApiRunner", "--direct_running_mode=in_memory",
             "--direct_num_workers=1"]

def run_as_user(*args):
    """Runs `python ARGS` in a fresh interpreter from the repository, as a person would (without
    the suite's `TF_CPP_MIN_LOG_LEVEL`); returns the `CompletedProcess` (text)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                          text=True)


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
    """A copy of the first 20 GENKI-4K images per class; skips when GENKI is absent."""
    if not GENKI.is_dir():
        pytest.skip(f"{GENKI} is not here")
    root = tmp_path_factory.mktemp("genki")
    for name in ("not_smiling", "smiling"):
        (root / name).mkdir()
        for file in sorted(os.listdir(GENKI / name))[:20]:
            shutil.copyfile(GENKI / name / file, root / name / file)
    return str(root)


@pytest.fixture(scope="session")
def mobilenet_weights():
    """The real ImageNet MobileNet 0.25 weights file; skips when absent."""
    if not MOBILENET_025.is_file():
        pytest.skip(f"{MOBILENET_025} is not here")
    return str(MOBILENET_025)


def _tree(root):
    """`{relative path: (size, mtime)}` of every file under `root`."""
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            stat = os.stat(path)
            found[os.path.relpath(path, root)] = (stat.st_size, stat.st_mtime_ns)
    return found


def _assert_unchanged(root, before):
    """Fails if a test changed, added or removed a file under `root` since `before`."""
    assert _tree(root) == before, f"a test wrote into the session fixture {root}; copy it first"


@pytest.fixture(scope="session")
def tiny_cache(faces, tmp_path_factory):
    """The `EmbedResult` of `faces` embedded by `TINY` without augmented copies (read-only)."""
    from jobs import embed  # here, so that modules without the chain never load TF and Beam

    root = tmp_path_factory.mktemp("tiny_cache")
    result = embed.run(["--data", faces, "--cache-dir", str(root), *TINY, "--augment-copies",
                        "0", "--no-face-crop", *IN_MEMORY])
    before = _tree(root)
    yield result
    _assert_unchanged(root, before)


@pytest.fixture(scope="session")
def tiny_head(tiny_cache, tmp_path_factory):
    """The folder of a dense head trained for 3 epochs on `tiny_cache` (read-only)."""
    from jobs import train_head

    out = tmp_path_factory.mktemp("tiny_head") / "head"
    train_head.run(["--cache", tiny_cache.cache_dir, "--out", str(out), "--quiet", "--epochs",
                    "3", "--epoch-folds", "0"])  # a head to apply: how long it trained is moot
    before = _tree(out)
    yield str(out)
    _assert_unchanged(out, before)


@pytest.fixture(scope="session")
def real_cache(genki_subset, mobilenet_weights, tmp_path_factory):
    """The cache folder of `genki_subset` embedded by the real MobileNet 0.25 at 64 pixels, one
    augmented copy (read-only); skips where GENKI-4K or the weights are absent."""
    from jobs import embed

    root = tmp_path_factory.mktemp("real_cache")
    result = embed.run(["--data", genki_subset, "--backbone", "mobilenet", "--alpha", "0.25",
                        "--image-size", "64", "--weights", mobilenet_weights,
                        "--augment-copies", "1", "--cache-dir", str(root), *IN_MEMORY])
    before = _tree(root)
    yield result.cache_dir
    _assert_unchanged(root, before)
