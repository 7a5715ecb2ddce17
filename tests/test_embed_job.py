"""The embed job as a whole: graph size, accounting, incremental runs, reuse."""
import os
import shutil

import apache_beam as beam
import numpy as np
import pytest

from jobs import embed
from pipeline.data.sources import FolderSource
from pipeline.features import accounting, cache, records, shards
from pipeline.features.config import EmbedConfig
from pipeline.features.embed_job import build_embed_pipeline
from tests.conftest import IN_MEMORY, TINY


def _run(data, cache_root, *extra):
    return embed.run(["--data", str(data), "--cache-dir", str(cache_root), *TINY, *extra,
                      *IN_MEMORY])


def _graph_bytes(root, run_dir):
    config = EmbedConfig(data=str(root), backbone="mobilenet_v2", alpha=0.35, image_size=48,
                         weights=None)
    pipeline = beam.Pipeline()
    build_embed_pipeline(pipeline, config, source=FolderSource(str(root)), weights=None,
                         weights_digest="none", run_dir=str(run_dir))
    return len(pipeline.to_runner_api().SerializeToString())


def _tiny_files(root, count):
    for label in ("a", "b"):
        folder = root / label
        folder.mkdir(parents=True)
        for index in range(count // 2):
            (folder / f"{index:06d}.jpg").touch()
    return root


def test_the_pipeline_graph_does_not_grow_with_the_number_of_images(tmp_path):
    small = _graph_bytes(_tiny_files(tmp_path / "n1000", 1_000), tmp_path / "r1")
    large = _graph_bytes(_tiny_files(tmp_path / "n100k", 100_000), tmp_path / "r2")
    assert large < 1_000_000 and small < 1_000_000
    assert abs(large - small) <= 0.1 * small


def test_incremental_run_embeds_only_new_and_changed_images(faces_copy, tmp_path):
    first = _run(faces_copy, tmp_path / "cache", "--augment-copies", "1", "--num-shards", "2")
    assert first.embedded == 24 and first.manifest["embedded"] == 24
    for index in range(5):
        shutil.copy(faces_copy / "smiling" / f"smiling_{index:04d}.jpg",
                    faces_copy / "neutral" / f"added_{index}.jpg")
    shutil.copy(faces_copy / "smiling" / "smiling_0005.jpg",
                faces_copy / "neutral" / "neutral_0000.jpg")
    os.remove(faces_copy / "smiling" / "smiling_0011.jpg")
    second = _run(faces_copy, tmp_path / "cache", "--augment-copies", "1", "--num-shards", "2")
    assert not second.reused and second.cache_dir != first.cache_dir
    assert (second.manifest["embedded"], second.manifest["reused"]) == (6, 22)
    scratch = _run(faces_copy, tmp_path / "scratch", "--augment-copies", "1",
                   "--num-shards", "2")
    assert scratch.manifest["embedded"] == 28 and scratch.manifest["cache_key"] == (
        second.manifest["cache_key"])
    _assert_same_records(second, scratch)


def _columns(result):
    paths = [os.path.join(result.cache_dir, shard["file"]) for shard in result.manifest["shards"]]
    return records.read_columns(paths, result.manifest["embedding_dim"])


def _assert_same_records(incremental, scratch):
    """The guarantee docs/reliability.md states for an incremental cache against a from-scratch
    one: the same shards holding the same records in the same order (ids, labels, splits,
    copies, digests), and embeddings equal to float32 rounding. Not bytes: a reused image was
    computed beside other images in its batch, and on some CPUs (seen on AMD EPYC: 8.7e-18 in
    one value) a row's result depends on its neighbours."""
    assert [s["records"] for s in incremental.manifest["shards"]] == [
        s["records"] for s in scratch.manifest["shards"]]
    ours, theirs = _columns(incremental), _columns(scratch)
    for name in ("id", "label", "label_name", "split", "copy", "digest"):
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    np.testing.assert_allclose(ours["embedding"], theirs["embedding"], rtol=1e-4, atol=1e-5)


def test_rerun_on_unchanged_data_embeds_nothing_and_keeps_the_cache(faces, tmp_path):
    first = _run(faces, tmp_path, "--augment-copies", "0")
    again = _run(faces, tmp_path, "--augment-copies", "0")
    assert again.reused and again.cache_dir == first.cache_dir
    assert (again.embedded, again.reused_images) == (0, 24)
    assert not os.listdir(tmp_path / cache.RUNS_DIR)


def _assert_nothing_published(cache_root):
    assert not list(cache_root.glob("*/manifest.json"))
    assert not [name for name in os.listdir(cache_root) if not name.startswith(".")]


def test_a_dropped_record_fails_the_job_and_publishes_nothing(faces, tmp_path, monkeypatch):
    write_shard = shards.write_shard

    def drop_last(path, records):
        return write_shard(path, list(records)[:-1])

    monkeypatch.setattr(shards, "write_shard", drop_last)
    with pytest.raises(accounting.IncompleteRunError,
                       match=r"1 of \d+ records missing from embeddings-00000-of-00001.tfrecord "
                             r"\(step EmbedShard\)"):
        _run(faces, tmp_path, "--augment-copies", "1")
    _assert_nothing_published(tmp_path)


def test_a_missing_shard_index_fails_the_job_and_publishes_nothing(faces, tmp_path,
                                                                  monkeypatch):
    write_index = shards.write_index

    def lose_shard_one(path, index):
        if index["shard"] != 1:
            write_index(path, index)

    monkeypatch.setattr(shards, "write_index", lose_shard_one)
    with pytest.raises(accounting.IncompleteRunError,
                       match=r"\d+ of 24 listed images are missing after step EmbedShard "
                             r"\(no index from 1 of 2 shards\)"):
        _run(faces, tmp_path, "--augment-copies", "0", "--num-shards", "2")
    _assert_nothing_published(tmp_path)


def test_a_class_with_only_unreadable_files_is_refused(faces_copy, tmp_path):
    for path in (faces_copy / "smiling").iterdir():
        path.write_bytes(b"broken")
    with pytest.raises(ValueError, match="class 'smiling' holds no readable image"):
        _run(faces_copy, tmp_path / "cache", "--augment-copies", "0")
    _assert_nothing_published(tmp_path / "cache")


def test_image_size_by_default_follows_the_data(tmp_path):
    from PIL import Image

    def folder(name, side):
        for label in ("a", "b"):
            os.makedirs(tmp_path / name / label)
            for index in range(3):
                Image.new("RGB", (side + 40, side), (index * 80, 0, 0)).save(
                    tmp_path / name / label / f"{index}.png")
        return str(tmp_path / name)

    def run(data, *flags):
        return embed.run(["--data", data, "--backbone", "mobilenet_v2", "--alpha", "0.35",
                          "--weights", "none", "--augment-copies", "0", "--no-face-crop",
                          "--cache-dir", str(tmp_path / "cache"), *IN_MEMORY, *flags])

    large, small = run(folder("large", 240)), run(folder("small", 64))
    assert large.manifest["config"]["image_size"] == 288
    assert large.manifest["size_probe"] == {"sampled": 6, "median_short_side": 240.0,
                                            "native_size": 224, "image_size": 288}
    assert small.manifest["config"]["image_size"] == 224
    assert "image size: 288 px (median shorter side 240 px of 6 sampled images; the " \
           "backbone's own is 224)" in embed.summary(large)
    forced = run(str(tmp_path / "large"), "--image-size", "224")
    assert forced.manifest["size_probe"] is None
    assert forced.manifest["config"]["image_size"] == 224
    assert forced.manifest["cache_key"] != large.manifest["cache_key"]
