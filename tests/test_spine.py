"""`ShardedPass`, the pass every batch job shares: sharding by id hash, one step per shard, the
indexes and the listing count written for the driver, unchanged images reused from a base."""
import json
import os

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.batch import accounting, layout
from pipeline.batch.spine import PROGRESS_DIR, ShardedPass, ShardFn, prefetch
from pipeline.data.images import ImageError
from pipeline.data.sources import ExampleRef
from pipeline.files import file_sha256
from tests.conftest import IN_MEMORY

IDS = [f"{name}/{index:02d}.jpg" for name in ("cat", "dog") for index in range(9)]


class _LengthFn(ShardFn):
    """A step whose "model" reads the byte count off each image (batches of 4, so that every
    shard pads its last one); `bad` bytes are unreadable images."""

    batch_size = 4

    def load_model(self):
        self.loaded = True

    def prepare(self, ref, data):
        if data == b"bad":
            raise ImageError("not an image")
        return np.full((2, 2, 3), len(data), np.float32)

    def add(self, ref, prepared, state):
        state.pending.append((prepared, ref.id))

    def run_batch(self, images, items):
        assert images.shape == (4, 2, 2, 3) and not images[len(items):].any()
        return images[:, 0, 0, 0]

    def collect(self, items, outputs, state):
        state.results.extend((i, int(value)) for i, value in zip(items, outputs))

    def copy_reused(self, to_reuse, state):
        with open(self.base_path(f"lengths-{state.shard}.json")) as handle:
            base = dict(json.load(handle))
        state.results.extend((i, base[i]) for i in sorted(to_reuse) if i in base)
        return set(to_reuse) & set(base)

    def write(self, state):
        name = f"lengths-{state.shard}.json"
        with open(self.run_path(name), "w") as handle:
            json.dump(sorted(state.results), handle)
        return {"file": name, "records": len(state.results),
                "sha256": file_sha256(self.run_path(name)),  # a base is verified by it
                "bytes": os.path.getsize(self.run_path(name))}


def _pairs(data=None):
    data = data or {}
    return [(ExampleRef(i, i.startswith("dog"), i.split("/")[0], "train"),
             data.get(i, i.encode())) for i in IDS]


def _run(run_dir, pairs, expected, *, num_shards=3, base=None):
    """Runs the pass and checks the shards' summaries against `expected`."""
    os.makedirs(run_dir, exist_ok=True)
    with test_pipeline.TestPipeline(options=PipelineOptions(IN_MEMORY)) as p:
        summaries = (p | beam.Create(pairs)
                     | ShardedPass(_LengthFn(str(run_dir), base=base), step="LengthShard",
                                   run_dir=str(run_dir), num_shards=num_shards))
        assert_that(summaries, equal_to(expected))


def _expected(num_shards, **per_shard):
    shards = sorted({layout.shard_of(i, num_shards) for i in IDS})
    listed = {s: sum(layout.shard_of(i, num_shards) == s for i in IDS) for s in shards}
    return [{"shard": s, "listed": listed[s], "computed": listed[s], "reused": 0, "skipped": 0,
             **{k: v(s, listed[s]) for k, v in per_shard.items()}} for s in shards]


def test_each_shard_gets_the_ids_of_its_hash_and_writes_its_index(tmp_path):
    _run(tmp_path, _pairs(), _expected(3))
    listed = accounting.read_listed(str(tmp_path), job="test")
    assert listed == {"listed": len(IDS), "num_shards": 3}
    for shard in range(3):
        index = layout.read_index(str(tmp_path / layout.index_name(shard, 3)))
        ids = [entry["id"] for entry in index["entries"]]
        assert ids == sorted(i for i in IDS if layout.shard_of(i, 3) == shard)
        assert index["computed"] == index["listed"] == len(ids)
    assert sorted(os.listdir(tmp_path / PROGRESS_DIR)) == [f"shard-{s:05d}.json"
                                                         for s in range(3)]


def test_no_shard_count_picks_one_shard_for_a_few_images(tmp_path):
    _run(tmp_path, _pairs(), _expected(1), num_shards=0)
    assert accounting.read_listed(str(tmp_path), job="test")["num_shards"] == 1


def test_an_unreadable_image_is_skipped_with_its_reason(tmp_path):
    bad = IDS[4]
    _run(tmp_path, _pairs({bad: b"bad"}), [{"shard": 0, "listed": len(IDS),
                                            "computed": len(IDS) - 1, "reused": 0,
                                            "skipped": 1}], num_shards=1)
    _, (index,) = accounting.read_indexes(str(tmp_path), job="test", step="LengthShard")
    assert [(s["id"], s["reason"]) for s in index["skipped"]] == [(bad, "not an image")]


def test_a_second_pass_reuses_unchanged_images_and_recomputes_changed_ones(tmp_path):
    _run(tmp_path / "first", _pairs(), _expected(3))
    base = {"dir": str(tmp_path / "first"), "num_shards": 3}
    changed = IDS[0]
    shard = layout.shard_of(changed, 3)
    _run(tmp_path / "second", _pairs({changed: b"new bytes"}), _expected(
        3, computed=lambda s, n: int(s == shard), reused=lambda s, n: n - int(s == shard)),
        base=base)
    with open(tmp_path / "second" / f"lengths-{shard}.json") as handle:
        assert dict(json.load(handle))[changed] == len(b"new bytes")


def test_the_pass_is_a_chain_of_labelled_steps(tmp_path):
    pipeline = beam.Pipeline()
    _ = (pipeline | beam.Create(_pairs())
         | "Pass" >> ShardedPass(_LengthFn(str(tmp_path)), step="LengthShard",
                                 run_dir=str(tmp_path)))
    labels = [t.unique_name for t in pipeline.to_runner_api().components.transforms.values()]
    for step in ("KeyAll", "GatherListing", "AssignShards", "GroupShards", "LengthShard"):
        assert f"Pass/{step}" in labels


@pytest.mark.parametrize("ahead", [1, 3, 100])
def test_prefetch_keeps_the_order(ahead):
    assert list(prefetch(lambda x: x * x, range(20), ahead=ahead, threads=4)) == [
        x * x for x in range(20)]
