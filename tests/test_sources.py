import shutil

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.data.sources import FolderSource, assign_split, open_source
from tests.conftest import IN_MEMORY


def _splits(source):
    return {ref.id: ref.split for ref in source.refs()}


def test_classes_are_sorted_and_labels_follow(faces):
    source = open_source(faces)
    assert source.class_names == ["neutral", "smiling"]
    assert {(ref.label, ref.label_name) for ref in source.refs()} == {(0, "neutral"),
                                                                    (1, "smiling")}


def test_only_image_extensions_are_listed_case_insensitively(faces_copy):
    shutil.copy(faces_copy / "smiling" / "smiling_0000.jpg", faces_copy / "smiling" / "UP.PNG")
    (faces_copy / "smiling" / "notes.txt").write_text("not an image")
    ids = {ref.id for ref in FolderSource(str(faces_copy)).refs()}
    assert "smiling/UP.PNG" in ids and "smiling/notes.txt" not in ids


def test_split_is_stable_when_files_are_added_or_removed(faces_copy):
    before = _splits(FolderSource(str(faces_copy), seed=7))
    for index in range(5):
        shutil.copy(faces_copy / "neutral" / "neutral_0000.jpg",
                    faces_copy / "neutral" / f"added_{index}.jpg")
    (faces_copy / "smiling" / "smiling_0003.jpg").unlink()
    after = _splits(FolderSource(str(faces_copy), seed=7))
    common = set(before) & set(after)
    assert len(common) == len(before) - 1
    assert all(before[i] == after[i] for i in common)


def test_split_depends_on_seed_and_fraction():
    ids = [f"class/{i}.jpg" for i in range(2000)]
    val = [assign_split(i, seed=1, val_fraction=0.2) for i in ids].count("val")
    assert 330 < val < 470
    assert ([assign_split(i, seed=1, val_fraction=0.2) for i in ids]
            != [assign_split(i, seed=2, val_fraction=0.2) for i in ids])


def test_fingerprint_changes_with_content(faces_copy):
    before = FolderSource(str(faces_copy)).fingerprint()
    (faces_copy / "neutral" / "neutral_0001.jpg").write_bytes(b"changed")
    assert FolderSource(str(faces_copy)).fingerprint() != before


def test_not_a_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        open_source(str(tmp_path / "missing"))


def test_one_class_is_refused(faces_copy):
    shutil.rmtree(faces_copy / "smiling")
    with pytest.raises(ValueError, match="at least two class sub-folders; got 1"):
        open_source(str(faces_copy))


def test_images_directly_in_the_folder_are_refused_with_what_to_do(faces_copy, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in sorted((faces_copy / "smiling").iterdir())[:3]:
        shutil.copy(path, flat / path.name)
    with pytest.raises(ValueError, match="got 0 \\(none\\); 3 images sit directly in this folder: "
                                         "put them in one sub-folder per class$"):
        open_source(str(flat))


def test_empty_class_folder_is_refused(faces_copy):
    (faces_copy / "empty").mkdir()
    with pytest.raises(ValueError, match="class folder 'empty' holds no images"):
        open_source(str(faces_copy))


def test_bad_val_fraction_is_refused(faces):
    with pytest.raises(ValueError, match="val_fraction"):
        open_source(faces, val_fraction=1.0)


def test_listing_on_the_workers_gives_the_refs_listed_here(faces_copy):
    (faces_copy / "smiling" / "notes.txt").write_text("not an image")
    (faces_copy / "smiling" / "LOUD.PNG").write_bytes(b"")
    source = FolderSource(str(faces_copy))
    with test_pipeline.TestPipeline(options=PipelineOptions(IN_MEMORY)) as p:
        assert_that(p | source.list_examples(), equal_to([(ref, None) for ref in source.refs()]))
    assert len(source.refs()) == 25
