"""`refused_items`: what a shard step sets aside before reading, whatever order items come in."""
import itertools

from pipeline.batch.state import ShardState, reason_of, refused_items
from pipeline.data.sources import ExampleRef


def _item(example_id, path, skip=""):
    return (0, (ExampleRef(id=example_id, label=0, label_name="a", split="", path=path,
                           skip=skip), None))


def test_a_refused_name_and_a_second_entry_of_an_id_are_set_aside_in_any_order():
    items = [_item("b.jpg", "/x/b.jpg"), _item("a.jpg", "/y/a.jpg"), _item("a.jpg", "/x/a.jpg"),
             _item("bad\\xff.jpg", "/x/bad\\xff.jpg", skip="file name is not UTF-8 text")]
    outcomes = set()
    for order in itertools.permutations(items):
        kept, refused = refused_items(list(order))
        outcomes.add((tuple(item[1][0].path for item in kept),
                      tuple((ref.path, reason) for ref, reason in refused)))
    assert outcomes == {(("/x/a.jpg", "/x/b.jpg"), (
        ("/y/a.jpg", "listed twice: the id 'a.jpg' is taken by /x/a.jpg"),
        ("/x/bad\\xff.jpg", "file name is not UTF-8 text")))}


def test_skipped_files_carry_their_reason_in_one_line():
    state = ShardState(0, 1, 2)
    state.skip(_item("a.jpg", "/x/a.jpg")[1][0], PermissionError(13, "Permission denied"))
    state.skip(_item("b.jpg", "/x/b.jpg")[1][0], ValueError("first line\nsecond"))
    assert [s["reason"] for s in state.skipped] == ["permission denied", "first line"]
    assert reason_of(OSError()) == "OSError"
