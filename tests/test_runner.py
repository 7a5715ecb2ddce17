"""Running a pass: the local default runner, runner short names, and the scratch files."""
import json

import pytest

from pipeline.batch import runner
from pipeline.batch.accounting import LISTED_FILE
from pipeline.batch.spine import PROGRESS_DIR


@pytest.mark.parametrize("args, expected", [
    ([], runner.DEFAULT_RUNNER_ARGS),
    (["--temp_location=/t"], [*runner.DEFAULT_RUNNER_ARGS, "--temp_location=/t"]),
    (["--runner", "DaskRunner", "--x"], [f"--runner={runner.RUNNER_ALIASES['DaskRunner']}",
                                         "--x"]),
    (["--runner=DataflowRunner"], ["--runner=DataflowRunner"]),
])
def test_beam_args_default_to_the_local_runner_and_expand_short_names(args, expected):
    assert runner.beam_args(args) == expected


def test_pipeline_options_hold_the_runner():
    options = runner.pipeline_options(["--runner=PortableRunner"]).get_all_options()
    assert options["runner"] == "PortableRunner"
    assert runner.pipeline_options().get_all_options()["runner"] == "FnApiRunner"


def test_drop_scratch_removes_the_progress_files_and_the_listing_count(tmp_path):
    (tmp_path / PROGRESS_DIR).mkdir()
    (tmp_path / PROGRESS_DIR / "shard-00000.json").write_text(json.dumps({"done": 1}))
    (tmp_path / LISTED_FILE).write_text("{}")
    (tmp_path / "index-00000-of-00001.json").write_text("{}")
    runner.drop_scratch(str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["index-00000-of-00001.json"]
