import numpy as np

from pipeline.features.records import EmbeddingRecord, from_example, to_example


def test_round_trip():
    record = EmbeddingRecord(id="smiling/a b.jpg", label=1, label_name="smiling", split="train",
                             copy=2, embedding=np.arange(5, dtype=np.float32) / 3, digest="ab12")
    back = from_example(to_example(record))
    assert (back.id, back.label, back.label_name, back.split, back.copy, back.digest) == (
        record.id, record.label, record.label_name, record.split, record.copy, record.digest)
    np.testing.assert_array_equal(back.embedding, record.embedding)
