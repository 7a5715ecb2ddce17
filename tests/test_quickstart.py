import json

from jobs import quickstart
from tests.conftest import IN_MEMORY


def test_quickstart_runs_every_step(tmp_path, capsys):
    cached, report = quickstart.run(["--sample-dir", str(tmp_path / "faces"), "--per-class",
                                     "10", "--cache-dir", str(tmp_path / "cache"),
                                     "--runs-dir", str(tmp_path / "runs"), "--reports-dir",
                                     str(tmp_path / "reports"), *IN_MEMORY])
    assert cached.manifest["class_names"] == ["neutral", "smiling"]
    assert (tmp_path / "runs" / "finetune" / "model.keras").is_file()
    saved = json.loads((tmp_path / "runs" / "finetune" / "report.json").read_text())
    assert saved["finetune_epochs"] == 1
    assert report["num_examples"] == cached.manifest["counts"]["val"]["images"]
    assert (tmp_path / "reports" / "runs.csv").is_file()
