import collections
import json
import os
import signal
import subprocess
import sys
import time

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from jobs import embed
from pipeline.data.images import load_image
from pipeline.data.sources import FolderSource
from pipeline.features import cache, shards
from pipeline.features.config import EmbedConfig
from pipeline.features.embed import EmbedImages
from pipeline.features.records import from_example
from pipeline.features.backbones import Embedder
from tests.conftest import IN_MEMORY, REPO, TINY


def _run(data, cache_dir, *extra):
    return embed.run(["--data", str(data), "--cache-dir", str(cache_dir), *TINY, *extra,
                      *IN_MEMORY])


@pytest.fixture(scope="module")
def faces_cache(faces, tmp_path_factory):
    return _run(faces, tmp_path_factory.mktemp("cache"), "--augment-copies", "2")


def test_manifest_holds_the_contract_keys(faces_cache):
    manifest = faces_cache.manifest
    for key in ("cache_key", "config", "class_names", "embedding_dim", "counts", "skipped",
                "shards", "versions", "weights_used"):
        assert key in manifest
    assert manifest["class_names"] == ["neutral", "smiling"]
    assert manifest["embedding_dim"] == 1280
    assert os.path.basename(faces_cache.cache_dir) == manifest["cache_key"]


def test_training_images_get_k_copies_and_validation_only_the_clean_one(faces_cache):
    counts = faces_cache.manifest["counts"]
    assert counts["train"]["images"] + counts["val"]["images"] == 24
    assert counts["train"]["per_copy"] == {str(k): counts["train"]["images"] for k in range(3)}
    assert counts["val"]["per_copy"] == {"0": counts["val"]["images"]}
    train = cache.load_split(faces_cache.cache_dir, "train")
    assert len(train.ids) == 3 * counts["train"]["images"]
    assert sorted(set(train.copies.tolist())) == [0, 1, 2]


def test_split_matches_the_source(faces, faces_cache):
    from pipeline.data.sources import open_source

    expected = {ref.id for ref in open_source(faces).refs() if ref.split == "val"}
    assert set(cache.load_split(faces_cache.cache_dir, "val").ids.tolist()) == expected


def _embed_directly(root, ids, model, size):
    images = [load_image(open(os.path.join(root, i), "rb").read(), size) for i in ids]
    return model(np.stack(images))


def test_clean_embedding_equals_the_backbone_applied_directly(faces, tmp_path):
    model = Embedder("mobilenet_v2", image_size=48, alpha=0.35, weights=None)
    weights = str(tmp_path / "random.weights.h5")
    model.model.save_weights(weights)
    result = embed.run(["--data", faces, "--cache-dir", str(tmp_path / "cache"), "--backbone",
                        "mobilenet_v2", "--alpha", "0.35", "--image-size", "48", "--weights",
                        weights, "--augment-copies", "1", *IN_MEMORY])
    for split in ("train", "val"):
        clean = cache.load_split(result.cache_dir, split, clean_only=True)
        assert np.abs(_embed_directly(faces, clean.ids, model, 48) - clean.embeddings).max() < 1e-4


def test_rerun_reuses_the_cache(faces, faces_cache):
    start = time.time()
    again = _run(faces, os.path.dirname(faces_cache.cache_dir), "--augment-copies", "2")
    assert again.reused and again.cache_dir == faces_cache.cache_dir
    assert time.time() - start < 60


def test_bad_files_are_skipped_listed_and_the_job_finishes(faces_copy, tmp_path):
    (faces_copy / "smiling" / "empty.jpg").write_bytes(b"")
    (faces_copy / "smiling" / "text.png").write_bytes(b"hello")
    data = (faces_copy / "neutral" / "neutral_0000.jpg").read_bytes()
    (faces_copy / "neutral" / "cut.jpg").write_bytes(data[: len(data) // 3])
    result = _run(faces_copy, tmp_path / "cache", "--augment-copies", "0")
    skipped = {item["id"]: item["reason"] for item in result.manifest["skipped"]}
    assert set(skipped) == {"smiling/empty.jpg", "smiling/text.png", "neutral/cut.jpg"}
    assert "empty file" in skipped["smiling/empty.jpg"]
    assert result.manifest["num_skipped"] == 3
    images = sum(entry["images"] for entry in result.manifest["counts"].values())
    assert images == 24


def test_corrupt_shard_is_refused(faces, tmp_path):
    result = _run(faces, tmp_path / "cache", "--augment-copies", "0")
    shard = os.path.join(result.cache_dir, result.manifest["shards"][0]["file"])
    with open(shard, "r+b") as handle:
        handle.seek(20)
        handle.write(b"\x00\x01\x02")
    with pytest.raises(cache.CacheError, match="checksum mismatch"):
        cache.load_split(result.cache_dir, "train")


def test_bad_arguments_are_refused_before_any_work(faces, tmp_path):
    with pytest.raises(ValueError, match="image_size"):
        _run(faces, tmp_path, "--image-size", "8")
    assert not any(tmp_path.iterdir())


def test_real_genki_subset_with_real_weights(genki_subset, mobilenet_weights, tmp_path):
    result = embed.run(["--data", genki_subset, "--backbone", "mobilenet", "--alpha", "0.25",
                        "--image-size", "64", "--weights", mobilenet_weights,
                        "--augment-copies", "1", "--no-face-crop", "--cache-dir", str(tmp_path),
                        *IN_MEMORY])
    manifest = result.manifest
    assert manifest["embedding_dim"] == 256 and manifest["num_skipped"] == 0
    assert manifest["class_names"] == ["not_smiling", "smiling"]
    val = cache.load_split(result.cache_dir, "val")
    model = Embedder("mobilenet", image_size=64, alpha=0.25, weights=mobilenet_weights)
    assert np.abs(_embed_directly(genki_subset, val.ids, model, 64) - val.embeddings).max() < 1e-4


def test_killed_job_leaves_no_complete_cache_and_the_next_run_completes(faces, tmp_path):
    cache_root = tmp_path / "cache"
    command = [sys.executable, "-m", "jobs.embed", "--data", faces, "--cache-dir",
               str(cache_root), *TINY, "--augment-copies", "4", *IN_MEMORY]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    runs = cache_root / ".runs"
    deadline = time.time() + 120
    while time.time() < deadline and not (runs.is_dir() and any(runs.iterdir())):
        time.sleep(0.05)
    assert process.poll() is None, "the job ended before it could be killed"
    time.sleep(1.0)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not list(cache_root.glob("*/manifest.json"))
    (left,) = [path for path in runs.iterdir() if path.is_dir()]  # beside it: its lock file
    with pytest.raises(cache.CacheError, match="incomplete"):
        cache.load_split(str(left), "train")
    result = _run(faces, cache_root, "--augment-copies", "4")
    assert not result.reused and not list(runs.iterdir())
    manifest = json.loads(open(os.path.join(result.cache_dir, "manifest.json")).read())
    assert manifest["counts"]["train"]["per_copy"]["4"] == manifest["counts"]["train"]["images"]


def test_tfds_source_end_to_end_with_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        result = _run("tfds:beans", tmp_path, "--augment-copies", "1")
    manifest = result.manifest
    assert manifest["class_names"] == ["angular_leaf_spot", "bean_rust", "healthy"]
    counts = manifest["counts"]
    assert counts["val"]["images"] == 4 and counts["test"]["images"] == 4
    assert counts["train"]["per_copy"] == {"0": 4, "1": 4}
    ids = cache.load_split(result.cache_dir, "train").ids
    assert all(i.startswith("beans-train") for i in ids)


@pytest.mark.skipif(not os.environ.get("PRISM_LOCATION"),
                    reason="set PRISM_LOCATION to a Prism binary to run the job on Prism")
def test_the_same_job_runs_on_prism(faces, tmp_path):
    result = embed.run(["--data", faces, "--cache-dir", str(tmp_path), *TINY,
                        "--augment-copies", "1", "--runner=PrismRunner",
                        f"--prism_location={os.environ['PRISM_LOCATION']}"])
    assert result.manifest["counts"]["train"]["per_copy"]["1"] > 0


@pytest.mark.skipif(not (os.environ.get("DATAFLOW_PROJECT") and os.environ.get("DATAFLOW_BUCKET")),
                    reason="set DATAFLOW_PROJECT, DATAFLOW_REGION and DATAFLOW_BUCKET (gs://...) "
                    "with Google Cloud credentials to run the job on Dataflow")
def test_the_same_job_runs_on_dataflow(faces):
    bucket = os.environ["DATAFLOW_BUCKET"].rstrip("/")
    result = embed.run(["--data", faces, "--cache-dir", f"{bucket}/cache", *TINY,
                        "--runner=DataflowRunner", f"--project={os.environ['DATAFLOW_PROJECT']}",
                        f"--region={os.environ.get('DATAFLOW_REGION', 'us-central1')}",
                        f"--temp_location={bucket}/tmp", f"--setup_file={REPO / 'setup.py'}"])
    assert result.manifest["embedding_dim"] == 1280


def test_progress_lines_while_embedding_when_not_on_a_terminal(tmp_path):
    from pipeline.data.sample import write_sample

    data = write_sample(str(tmp_path / "many"), per_class=150, size=32)
    done = subprocess.run([sys.executable, "-m", "jobs.embed", "--data", str(data),
                           "--cache-dir", str(tmp_path / "cache"), *TINY, "--augment-copies",
                           "0"], cwd=REPO, capture_output=True, text=True, check=True)
    progress = [line for line in done.stderr.splitlines() if line.startswith("embed: ")]
    assert progress and progress[-1].startswith("embed: 300/300 images (100.0%)")
    assert "done in" in progress[-1]
    assert done.stdout.strip().splitlines()[-1].startswith(str(tmp_path / "cache"))


def test_embed_images_writes_each_shards_records_sorted_with_k_copies_for_training(faces,
                                                                                   tmp_path):
    source = FolderSource(faces)
    config = EmbedConfig(data=faces, backbone="mobilenet_v2", alpha=0.35, image_size=48,
                         weights=None, augment_copies=1, face_crop=False, num_shards=2)
    refs = source.refs()
    with test_pipeline.TestPipeline(options=PipelineOptions(IN_MEMORY)) as p:
        written = (p | beam.Create([(ref, None) for ref in refs])
                   | EmbedImages(config, weights=None, weights_digest="none",
                                 run_dir=str(tmp_path)))
        listed = collections.Counter(shards.shard_of(ref.id, 2) for ref in refs)
        assert_that(written, equal_to([
            {"shard": s, "listed": n, "embedded": n, "reused": 0, "skipped": 0}
            for s, n in listed.items()]))
    splits = {ref.id: ref.split for ref in refs}
    for shard in range(2):
        records = [from_example(r) for r in shards.read_shard_records(
            str(tmp_path / shards.shard_name(shard, 2)))]
        keys = [(r.id, r.copy) for r in records]
        assert keys == sorted(keys) and {shards.shard_of(i, 2) for i, _ in keys} == {shard}
        per_image = collections.Counter(i for i, _ in keys)
        assert all(n == (2 if splits[i] == "train" else 1) for i, n in per_image.items())
        assert {r.embedding.shape for r in records} == {(1280,)}
