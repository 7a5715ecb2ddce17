"""The shard layout every pass writes: shards follow from the ids alone, and names are fixed."""
import pytest

from pipeline.batch import layout


@pytest.mark.parametrize("num_shards, expected", [(7, [4, 6, 6]), (1000, [250, 176, 820])])
def test_shard_of_is_pinned_so_old_outputs_stay_reusable(num_shards, expected):
    # A change here moves every image to another shard: outputs of earlier runs are not reused.
    ids = ["a", "cat/1.jpg", "dog/0001.png"]
    assert [layout.shard_of(i, num_shards) for i in ids] == expected


def test_auto_num_shards_takes_the_shard_size():
    assert [layout.auto_num_shards(n, images_per_shard=10) for n in (0, 10, 11)] == [1, 1, 2]
    assert layout.auto_num_shards(layout.IMAGES_PER_SHARD + 1) == 2


def test_file_names_are_numbered_with_the_shard_count():
    assert layout.shard_file("predictions", "parquet", 3, 12) == \
        "predictions-00003-of-00012.parquet"
    assert layout.index_name(0, 1) == "index-00000-of-00001.json"
