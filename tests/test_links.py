"""Symbolic links in the data are not followed unless asked, as Keras's `follow_links=False`."""
import os
import shutil

import pytest

from jobs import embed
from pipeline.data.links import LINK_REASON, NAME_REASON, OUTSIDE_REASON, LinkPolicy
from tests.conftest import IN_MEMORY, TINY


@pytest.fixture
def linked(faces, tmp_path):
    """A copy of `faces` with links: to a private file, to an image outside and inside the
    folder, to a folder outside, and a link that loops."""
    root = shutil.copytree(faces, tmp_path / "data")
    outside = tmp_path / "elsewhere"
    shutil.copytree(os.path.join(faces, "smiling"), outside / "more")
    (outside / "private.txt").write_text("secret")
    smiling = sorted(os.listdir(root / "smiling"))
    os.symlink(outside / "private.txt", root / "smiling" / "x.jpg")
    os.symlink(outside / "more" / smiling[0], root / "smiling" / "outside.jpg")
    os.symlink(root / "smiling" / smiling[1], root / "neutral" / "inside.jpg")
    os.symlink(outside / "more", root / "smiling" / "linked_folder")
    os.symlink(root / "neutral", root / "neutral" / "loop")
    return root


def test_the_policy_reads_links_as_asked(linked):
    no, inside, every = (LinkPolicy(str(linked), follow) for follow in ("no", "inside", "any"))
    private, outside = linked / "smiling" / "x.jpg", linked / "smiling" / "outside.jpg"
    within, real = linked / "neutral" / "inside.jpg", linked / "neutral" / "neutral_0000.jpg"
    assert [no.reason(str(p)) for p in (private, outside, within, real)] == [
        LINK_REASON, LINK_REASON, LINK_REASON, None]
    assert [inside.reason(str(p)) for p in (private, outside, within, real)] == [
        OUTSIDE_REASON, OUTSIDE_REASON, None, None]
    assert {every.reason(str(p)) for p in (private, outside, within, real)} == {None}
    with pytest.raises(OSError, match="symbolic link"):
        no.check(str(private))
    assert LinkPolicy(None, "no").reason(str(private)) == LINK_REASON  # a listed path
    assert no.reason("gs://bucket/a.jpg") is None


def test_a_walk_lists_unfollowed_folders_and_walks_a_loop_once(linked):
    smiling = [os.path.basename(p) for p in LinkPolicy(str(linked), "no").walk(
        str(linked / "smiling"))]
    assert "linked_folder" in smiling and "x.jpg" in smiling
    followed = LinkPolicy(str(linked), "any").walk(str(linked / "smiling"))
    assert sum("linked_folder" in p for p in followed) == 12
    looped = LinkPolicy(str(linked), "any").walk(str(linked / "neutral"))
    assert len(looped) == len(set(looped)) == 13  # 12 faces and inside.jpg, the loop once


def test_the_embed_job_skips_links_with_a_reason_and_reads_them_when_asked(linked, tmp_path):
    argv = ["--data", str(linked), *TINY, "--augment-copies", "0", "--no-face-crop", *IN_MEMORY]
    result = embed.run([*argv, "--cache-dir", str(tmp_path / "no")])
    skipped = {s["id"]: s["reason"] for s in result.manifest["skipped"]}
    assert skipped == {"smiling/x.jpg": LINK_REASON, "smiling/outside.jpg": LINK_REASON,
                       "neutral/inside.jpg": LINK_REASON, "smiling/linked_folder": LINK_REASON,
                       "neutral/loop": LINK_REASON}
    assert result.embedded == 24
    inside = embed.run([*argv, "--cache-dir", str(tmp_path / "inside"), "--follow-links"])
    assert inside.embedded == 25  # inside.jpg
    assert {s["id"] for s in inside.manifest["skipped"]} >= {"smiling/x.jpg",
                                                              "smiling/outside.jpg"}


def test_a_class_folder_linked_to_the_root_is_refused_without_walking_it(faces, tmp_path,
                                                                         monkeypatch):
    root = shutil.copytree(faces, tmp_path / "data")
    fake_root = tmp_path / "fake_root"  # stands for `/`: walking it would fail the test
    (fake_root / "etc").mkdir(parents=True)
    os.symlink(fake_root, root / "everything")
    walked = []
    real_walk = os.walk
    monkeypatch.setattr(os, "walk", lambda top, **kw: walked.append(str(top)) or real_walk(
        top, **kw))
    with pytest.raises(ValueError, match="class folder 'everything' is a symbolic link"):
        embed.run(["--data", str(root), *TINY, "--cache-dir", str(tmp_path / "cache"),
                   *IN_MEMORY])
    assert not any("everything" in top or "fake_root" in top for top in walked)
    assert LinkPolicy(str(root), "no").walk(str(root / "everything")) == [
        str(root / "everything")]


def test_a_file_name_that_is_not_utf8_is_skipped_with_a_reason(faces, tmp_path):
    root = shutil.copytree(faces, tmp_path / "data")
    bad = os.path.join(os.fsencode(root / "smiling"), b"bad\xff\xfename.jpg")
    shutil.copy(root / "smiling" / sorted(os.listdir(root / "smiling"))[0], bad)
    result = embed.run(["--data", str(root), *TINY, "--augment-copies", "0", "--no-face-crop",
                        "--cache-dir", str(tmp_path / "cache"), *IN_MEMORY])
    assert result.embedded == 24
    assert [(s["id"], s["reason"]) for s in result.manifest["skipped"]] == [
        ("smiling/bad\\xff\\xfename.jpg", NAME_REASON)]
