import tensorflow as tf

from pipeline.features import shards


def test_shard_of_is_stable_and_in_range():
    ids = [f"class/{i}.jpg" for i in range(500)]
    first = [shards.shard_of(i, 7) for i in ids]
    assert first == [shards.shard_of(i, 7) for i in ids]
    assert set(first) == set(range(7))

def test_auto_num_shards_follows_the_image_count():
    assert [shards.auto_num_shards(n) for n in (0, 1, 1000, 1001, 10_000)] == [1, 1, 1, 2, 10]

def test_write_shard_is_atomic_and_reports_what_it_wrote(tmp_path):
    path = str(tmp_path / shards.shard_name(0, 1))
    written = shards.write_shard(path, [b"a", b"bc"])
    assert written["records"] == 2 and written["bytes"] == tf.io.gfile.stat(path).length
    assert list(shards.read_shard_records(path)) == [b"a", b"bc"]
    assert [p.name for p in tmp_path.iterdir()] == ["embeddings-00000-of-00001.tfrecord"]

def test_index_round_trip_and_absence(tmp_path):
    path = str(tmp_path / shards.index_name(2, 3))
    assert shards.read_index(path) is None
    shards.write_index(path, {"shard": 2, "entries": []})
    assert shards.read_index(path) == {"shard": 2, "entries": []}
