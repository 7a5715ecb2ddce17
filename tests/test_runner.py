"""Running a pass: the scratch files; the options are tests/test_options.py."""
import json

from pipeline.batch import runner
from pipeline.batch.accounting import LISTED_FILE
from pipeline.batch.spine import PROGRESS_DIR


def test_drop_scratch_removes_the_progress_files_and_the_listing_count(tmp_path):
    (tmp_path / PROGRESS_DIR).mkdir()
    (tmp_path / PROGRESS_DIR / "shard-00000.json").write_text(json.dumps({"done": 1}))
    (tmp_path / LISTED_FILE).write_text("{}")
    (tmp_path / "index-00000-of-00001.json").write_text("{}")
    runner.drop_scratch(str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["index-00000-of-00001.json"]
