import random

from pipeline.data.fingerprint import combine_hashes, entry_hash


def test_fingerprint_is_order_free_and_splits_add_up():
    hashes = [entry_hash(f"c/{i}.jpg", "c", f"{i:064x}") for i in range(50)]
    shuffled = random.Random(0).sample(hashes, len(hashes))
    whole = combine_hashes(hashes)
    assert combine_hashes(shuffled) == whole
    parts = [combine_hashes(hashes[:20]), combine_hashes(hashes[20:])]
    assert combine_hashes(int(part, 16) for part in parts) == whole


def test_fingerprint_changes_with_id_class_or_content():
    base = combine_hashes([entry_hash("a.jpg", "x", "d1")])
    for changed in (("b.jpg", "x", "d1"), ("a.jpg", "y", "d1"), ("a.jpg", "x", "d2")):
        assert combine_hashes([entry_hash(*changed)]) != base
