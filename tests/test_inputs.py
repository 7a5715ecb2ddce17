"""What a batch job reads, listed inside the pipeline: a folder, a glob, or a list of paths."""
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.data.sources import ExampleRef
from pipeline.prediction.inputs import open_inputs
from tests.conftest import IN_MEMORY

CLASSES = ["cat", "dog"]


@pytest.fixture
def folder(tmp_path):
    for name in ("cat/a.jpg", "dog/b.PNG", "dog/deep/c.jpeg", "dog/notes.txt"):
        (tmp_path / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / name).write_bytes(b"x")
    return tmp_path / "data"


def _ref(folder, example_id, label):
    return ExampleRef(id=example_id, label=CLASSES.index(label) if label else -1,
                      label_name=label, split="", path=str(folder / example_id))


def _assert_lists(inputs, expected):
    with test_pipeline.TestPipeline(options=PipelineOptions(IN_MEMORY)) as p:
        assert_that(p | inputs.list_examples(), equal_to([(ref, None) for ref in expected]))


def test_a_folder_of_class_folders_lists_every_image_below_with_its_label(folder):
    _assert_lists(open_inputs(str(folder), CLASSES), [
        _ref(folder, "cat/a.jpg", "cat"), _ref(folder, "dog/b.PNG", "dog"),
        _ref(folder, "dog/deep/c.jpeg", "dog")])


def test_a_glob_has_ids_below_the_folder_it_starts_from_and_no_labels_by_default(folder):
    _assert_lists(open_inputs(f"{folder}/dog/*", CLASSES),
                  [ExampleRef("b.PNG", -1, "", "", str(folder / "dog/b.PNG"))])


def test_a_csv_list_takes_its_id_and_label_columns(folder):
    (folder / "list.csv").write_text("id,path,label\nfirst,cat/a.jpg,dog\n\nsecond,"
                                     f"{folder}/dog/b.PNG,\n")
    _assert_lists(open_inputs(str(folder / "list.csv"), CLASSES), [
        ExampleRef("first", 1, "dog", "", str(folder / "cat/a.jpg")),
        ExampleRef("second", -1, "", "", str(folder / "dog/b.PNG"))])


@pytest.mark.parametrize("data, message", [
    ("missing", "expected a folder, a glob, a .txt or .csv list"),
    ("missing/*.jpg", "the folder the pattern starts from .* does not exist"),
    ("cat/*.txt", "no images found"),
])
def test_what_cannot_be_read_is_refused_in_one_line(folder, monkeypatch, data, message):
    monkeypatch.chdir(folder)
    with pytest.raises(ValueError, match=message):
        open_inputs(data, CLASSES)
