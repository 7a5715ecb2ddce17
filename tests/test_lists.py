"""Labelled lists and globs as training sources: the same ids, splits and cache as the folder."""
import os
import re
import shutil

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from jobs import embed
from pipeline.data.lists import GlobSource, ListSource, source_paths
from pipeline.data.sources import FolderSource, open_source
from pipeline.features import cache
from pipeline.training.image_data import split_refs
from tests.conftest import IN_MEMORY, TINY


def _embed(data, cache_dir):
    """`data` embedded as `tiny_cache` is (same flags)."""
    return embed.run(["--data", str(data), "--cache-dir", str(cache_dir), *TINY,
                      "--augment-copies", "0", "--no-face-crop", *IN_MEMORY])


def _write_list(path, rows, header="path,label"):
    path.write_text("\n".join([header, *(",".join(row) for row in rows)]) + "\n")
    return path


def _rows(root, prefix=""):
    """`(path, label)` of every image of a class folder `root`, the paths `prefix` + the id."""
    return [(f"{prefix}{ref.id}", ref.label_name) for ref in FolderSource(str(root)).refs()]


def _summary(refs):
    return sorted((ref.id, ref.label_name, ref.split, os.path.realpath(ref.path)) for ref in refs)


@pytest.fixture
def listed(faces_copy, tmp_path):
    """A CSV list beside a copy of `faces`, of relative paths, the folder's ids in its id column."""
    rows = [(f"faces/{path}", label, path) for path, label in _rows(faces_copy)]
    return _write_list(tmp_path / "train.csv", rows, header="path,label,id"), faces_copy


def test_a_list_gives_the_folders_ids_labels_and_splits(listed):
    path, folder = listed
    source = open_source(str(path))
    assert isinstance(source, ListSource)
    assert source.class_names == ["neutral", "smiling"]
    assert _summary(source.refs()) == _summary(FolderSource(str(folder)).refs())
    assert source.fingerprint() == FolderSource(str(folder)).fingerprint()
    assert len(source.sample_paths(4)) == 4
    with test_pipeline.TestPipeline(options=PipelineOptions(IN_MEMORY)) as p:
        assert_that(p | source.list_examples(),
                    equal_to([(ref, None) for ref in source.refs()]))


def test_without_an_id_column_ids_are_the_paths_as_written(faces_copy, tmp_path):
    rows = _rows(faces_copy, f"{faces_copy}/")
    source = open_source(str(_write_list(tmp_path / "abs.csv", rows)))
    assert {ref.id for ref in source.refs()} == {path for path, _ in rows}
    inside = open_source(str(_write_list(faces_copy / "in.csv", _rows(faces_copy))))
    assert _summary(inside.refs()) == _summary(FolderSource(str(faces_copy)).refs())


def test_a_list_embeds_to_the_folders_cache_and_fine_tunes_from_its_files(listed, tiny_cache,
                                                                          tmp_path):
    path, _ = listed
    result = _embed(path, tmp_path / "cache")
    manifest = result.manifest
    assert manifest["cache_key"] == tiny_cache.manifest["cache_key"]
    assert manifest["source"]["location"] == str(path)
    for split in ("train", "val"):
        ids = cache.load_split(result.cache_dir, split).ids.tolist()
        assert ids == cache.load_split(tiny_cache.cache_dir, split).ids.tolist()
    train, val = split_refs(manifest)
    assert [r.id for r in val] == cache.load_split(result.cache_dir, "val").ids.tolist()
    assert all(os.path.isfile(r.path) for r in train + val)
    thumbs = source_paths(manifest["source"], [r.id for r in val])
    assert thumbs == [r.path for r in val] and all(map(os.path.isfile, thumbs))
    (path.parent / "faces" / val[0].id).write_bytes(b"other bytes")
    with pytest.raises(ValueError, match=re.escape(f"data {str(path)!r} changed since cache")):
        split_refs(manifest)


def test_a_missing_listed_file_is_skipped_with_its_reason(listed, tmp_path):
    path, folder = listed
    os.remove(folder / "smiling" / "smiling_0003.jpg")
    result = _embed(path, tmp_path / "cache")
    (skipped,) = result.manifest["skipped"]
    assert skipped["id"] == "smiling/smiling_0003.jpg" and skipped["reason"]
    assert sum(entry["images"] for entry in result.manifest["counts"].values()) == 23


@pytest.mark.parametrize("name, text, message", [
    ("paths.txt", "a/1.jpg\nb/2.jpg\n", "needs a label column for jobs.embed; predict and "
     "evaluate take unlabelled lists"),
    ("paths.csv", "path\na/1.jpg\nb/2.jpg\n", "needs a label column for jobs.embed"),
    ("one.csv", "path,label\na/1.jpg,cat\na/2.jpg,cat\n", "at least two classes; got 1 \\(cat\\)"),
    ("gap.csv", "path,label\na/1.jpg,cat\n\na/2.jpg,\n", "line 4 has no label"),
    ("twice.csv", "path,label,id\na/1.jpg,cat,x\nb/2.jpg,dog,x\n", "id 'x' is on lines 2 and 3"),
])
def test_a_list_that_cannot_train_is_refused_before_any_work(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=message):
        _embed(tmp_path / name, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_a_glob_over_the_folder_is_the_folder(faces, tiny_cache, tmp_path):
    source = open_source(f"{faces}/*/*")
    assert isinstance(source, GlobSource) and source.root == faces
    assert _summary(source.refs()) == _summary(FolderSource(faces).refs())
    result = _embed(f"{faces}/*/*.jpg", tmp_path / "cache")
    assert result.manifest["cache_key"] == tiny_cache.manifest["cache_key"]
    train, val = split_refs(result.manifest)
    assert len(train) + len(val) == 24
    assert source_paths(result.manifest["source"], [val[0].id]) == [val[0].path]


def test_a_glob_takes_the_first_folder_below_its_root_as_the_label(faces_copy):
    shutil.copytree(faces_copy / "smiling", faces_copy / "other")
    source = open_source(f"{faces_copy}/[ns]*/*_000?.jpg")
    assert source.class_names == ["neutral", "smiling"]
    assert len(source.refs()) == 20


@pytest.mark.parametrize("pattern, message", [
    ("{root}/smiling/*.jpg", "sit directly in .*smiling; the first folder below it is the label"),
    ("{root}/s*/*.jpg", "at least two classes; got 1 \\(smiling\\)"),
    ("{root}/missing/*/*.jpg", "the folder the pattern starts from .* does not exist"),
    ("{root}/nothing", "not a folder, a list or a glob; expected a folder of class sub-folders, "
     "a labelled .csv list, a glob or tfds:NAME"),
])
def test_a_glob_or_path_that_cannot_train_is_refused(faces, pattern, message):
    with pytest.raises(ValueError, match=message):
        open_source(pattern.format(root=faces))
