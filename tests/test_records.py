import numpy as np

from pipeline.features.records import EmbeddingRecord, from_example, read_columns, to_example


def test_round_trip():
    record = EmbeddingRecord(id="smiling/a b.jpg", label=1, label_name="smiling", split="train",
                             copy=2, embedding=np.arange(5, dtype=np.float32) / 3, digest="ab12")
    back = from_example(to_example(record))
    assert (back.id, back.label, back.label_name, back.split, back.copy, back.digest) == (
        record.id, record.label, record.label_name, record.split, record.copy, record.digest)
    np.testing.assert_array_equal(back.embedding, record.embedding)


def test_read_columns_parses_in_batches_what_from_example_parses_one_by_one(tmp_path):
    import tensorflow as tf

    records = [EmbeddingRecord(id=f"c/é{i}.jpg", label=i % 2, label_name=f"c{i % 2}",
                               split=("train", "val")[i % 2], copy=i % 3,
                               embedding=np.random.default_rng(i).random(4, np.float32),
                               digest="" if i == 3 else f"d{i}") for i in range(7)]
    path = str(tmp_path / "shard.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(to_example(record))
    columns = read_columns([path], 4, batch_size=3)  # batches of 3, 3 and 1
    for i, record in enumerate(records):
        assert [columns[name][i] for name in ("id", "label", "label_name", "split", "copy",
                                              "digest")] == [
            record.id, record.label, record.label_name, record.split, record.copy, record.digest]
    np.testing.assert_array_equal(columns["embedding"], [r.embedding for r in records])
    assert columns["embedding"].dtype == np.float32 and columns["label"].dtype == np.int64
    assert read_columns([], 4)["embedding"].shape == (0, 4)
