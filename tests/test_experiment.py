import csv
import json
import os

from jobs import embed, experiment
from pipeline.training.experiment import GRID
from tests.conftest import IN_MEMORY


def test_quick_grid_gives_one_row_per_model(genki_subset, mobilenet_weights, tmp_path):
    result = embed.run(["--data", genki_subset, "--backbone", "mobilenet", "--alpha", "0.25",
                        "--image-size", "48", "--weights", mobilenet_weights,
                        "--augment-copies", "0", "--cache-dir", str(tmp_path / "cache"),
                        *IN_MEMORY])
    rows = experiment.run(["--cache", result.cache_dir, "--out", str(tmp_path / "out"),
                           "--quick"])
    assert [r["model"] for r in rows] == [name for name, *_ in GRID]
    with open(tmp_path / "out" / "comparison.csv", newline="") as handle:
        saved = list(csv.DictReader(handle))
    assert len(saved) == len(GRID)
    images = {r["model"]: r["train_images"] for r in rows}
    assert images["model_1_head_1pct"] < images["model_2_head_10pct"] < images["head_100pct"]
    assert images["model_3_finetune_10pct"] == images["model_2_head_10pct"]
    assert images["model_4_finetune_100pct"] == images["head_100pct"]
    data = os.path.basename(genki_subset)
    for name, kind, fraction, _ in GRID:
        title = json.loads((tmp_path / "out" / name / "report.json").read_text())["title"]
        model = "dense head" if kind == "head" else "dense head fine-tuned"
        assert title.startswith(f"mobilenet + {model} on {data} ({fraction * 100:g} % of the "
                                "training images)")
    assert (tmp_path / "out" / "comparison.png").is_file()
