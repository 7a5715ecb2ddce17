"""A pass's accounting: every listed image has its results or a reason, or the run is refused in
one line that names how many are missing and after which step."""
import json

import pytest

from pipeline.batch import accounting, layout


def _entries(*ids):
    return [{"id": i, "label_name": i.split("/")[0], "split": "train", "digest": "d"}
            for i in ids]


def _index(run_dir, shard, num_shards, *, entries, skipped=(), listed=None, records=None,
           content=b"xx"):
    name = f"out-{shard}.bin"
    (run_dir / name).write_bytes(content)
    layout.write_index(str(run_dir / layout.index_name(shard, num_shards)), {
        "file": name, "entries": entries, "skipped": list(skipped),
        "listed": len(entries) + len(skipped) if listed is None else listed,
        "records": len(entries) if records is None else records, "bytes": 2})


def _listed(run_dir, listed, num_shards):
    (run_dir / accounting.LISTED_FILE).write_text(json.dumps({"listed": listed,
                                                               "num_shards": num_shards}))


def _read(run_dir, **kwargs):
    return accounting.read_indexes(str(run_dir), job="predict", step="PredictShard", **kwargs)


def test_a_complete_run_gives_its_indexes_with_class_names_instead_of_entries(tmp_path):
    _listed(tmp_path, 4, 2)
    _index(tmp_path, 0, 2, entries=_entries("dog/1", "cat/2"))
    _index(tmp_path, 1, 2, entries=_entries("cat/3"),
           skipped=[{"id": "cat/4", "path": "p", "reason": "truncated"}])
    listed, indexes = _read(tmp_path, reduce=lambda index: {**index, "seen": True})
    assert listed == {"listed": 4, "num_shards": 2}
    assert [index["label_names"] for index in indexes] == [["cat", "dog"], ["cat"]]
    assert all(index["seen"] and "entries" not in index for index in indexes)


def test_a_run_with_no_count_is_refused(tmp_path):
    with pytest.raises(accounting.IncompleteRunError,
                       match="^predict run incomplete: .* wrote no count .*nothing was published$"):
        _read(tmp_path)


def test_a_missing_shard_index_names_the_missing_images(tmp_path):
    _listed(tmp_path, 3, 2)
    _index(tmp_path, 0, 2, entries=_entries("dog/1"))
    with pytest.raises(accounting.IncompleteRunError,
                       match=r"2 of 3 listed images are missing after step PredictShard "
                             r"\(no index from 1 of 2 shards\)"):
        _read(tmp_path)


@pytest.mark.parametrize("change, message", [
    ({"listed": 3}, r"1 of 3 images sent to out-0.bin have neither results nor a reason"),
    ({"records": 1}, r"1 of 2 records missing from out-0.bin"),
    ({"content": b"x"}, r"out-0.bin is missing or not the size its index says"),
])
def test_a_shard_short_of_images_records_or_bytes_is_refused(tmp_path, change, message):
    _listed(tmp_path, change.get("listed", 2), 1)
    _index(tmp_path, 0, 1, entries=_entries("dog/1", "dog/2"), **change)
    with pytest.raises(accounting.IncompleteRunError, match=message):
        _read(tmp_path)


def test_expected_records_is_the_callers_rule(tmp_path):
    _listed(tmp_path, 2, 1)
    _index(tmp_path, 0, 1, entries=_entries("dog/1", "dog/2"), records=6)
    _, (index,) = _read(tmp_path, expected_records=lambda index: 3 * len(index["entries"]))
    assert index["records"] == 6


def test_sorted_items_keeps_id_path_and_reason_in_id_order():
    items = [{"id": "b", "path": "pb", "reason": "r", "digest": "x"}, {"id": "a", "path": "pa"}]
    assert accounting.sorted_items(items) == [{"id": "a", "path": "pa"},
                                              {"id": "b", "path": "pb", "reason": "r"}]
