import csv
import json
import shutil

import numpy as np
import pytest

from jobs import audit as audit_job
from pipeline.evaluation.audit import AuditConfig, AuditData, audit_cache, duplicate_sets
from pipeline.features import cache

CLASSES = ["ant", "bee", "cow"]
EVIL = "<img src=x onerror=alert(1)>.jpg"
FLIPPED = {"ant/i07.jpg": "bee", "bee/i03.jpg": "cow", "cow/i11.jpg": "ant"}


def _planted(root, faces):
    """Separable features, 20 images a class, one augmented copy each, and planted problems.

    Planted: `FLIPPED` filed under the wrong class; `ant/EVIL` and `bee/EVIL` the same file
    under two classes (its name is HTML); `cow/near.jpg` (train) a near copy of `cow/i00.jpg` (val).
    """
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 4
    images = []  # (id, true class, feature, digest, split)
    for label, name in enumerate(CLASSES):
        for index in range(20):
            images.append((f"{name}/i{index:02d}.jpg", label, centres[label] + rng.normal(
                size=16), f"{name}{index}", "val" if index == 0 else "train"))
    images.append((f"ant/{EVIL}", 0, centres[2] + rng.normal(size=16), "dup", "train"))
    images.append((f"bee/{EVIL}", 1, images[-1][2], "dup", "val"))
    images.append(("cow/near.jpg", 2, images[40][2] + 1e-3, "near", "train"))
    rows = []
    for image_id, label, feature, digest, split in images:
        given = CLASSES.index(FLIPPED.get(image_id, CLASSES[label]))
        for copy in (0, 1):
            rows.append((image_id, feature + copy * rng.normal(size=16) * 0.05, given, copy,
                         digest, split))
    for name in ("ant", "bee"):
        (root / name).mkdir(parents=True)
        shutil.copy(f"{faces}/neutral/neutral_0000.jpg", root / name / EVIL)
    ids, features, labels, copies, digests, splits = (np.array(c) for c in zip(*rows))
    data = AuditData(cache.FeatureSplit(ids, features.astype(np.float32), labels, copies,
                                        digests), splits, CLASSES,
                     [str(root / i) for i in ids[copies == 0]])
    return {"cache_key": "planted", "source": {"root": str(root)}}, data


@pytest.fixture(scope="module")
def planted_audit(tmp_path_factory, faces):
    root = tmp_path_factory.mktemp("audit")
    planted = _planted(root / "data", faces)
    report = audit_cache("unused", root / "out", config=AuditConfig(folds=3, ensemble=2),
                         loader=lambda _: planted)
    return report, root / "out"


def test_flipped_labels_rank_first_with_their_true_class(planted_audit):
    _, out = planted_audit
    with open(out / "label_issues.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["rank", "id", "path", "given_label", "suggested_label",
                             "label_quality", "is_label_issue"]
    top = {r["id"]: r for r in rows[:5]}
    assert set(FLIPPED) <= set(top)
    for image_id, given in FLIPPED.items():
        assert top[image_id]["given_label"] == given
        assert top[image_id]["suggested_label"] == image_id.split("/")[0]
        assert top[image_id]["is_label_issue"] == "True"


def test_planted_duplicates_are_found_and_flagged(planted_audit):
    report, out = planted_audit
    with open(out / "near_duplicates.csv", newline="") as handle:
        sets = {r["ids"]: r for r in csv.DictReader(handle)}
    exact = sets[f"ant/{EVIL};bee/{EVIL}"]
    assert exact["kind"] == "exact" and exact["label_conflict"] == "True"
    near = sets["cow/i00.jpg;cow/near.jpg"]
    assert near["kind"] == "near" and near["leak"] == "True" and near["splits"] == "train;val"
    assert near["label_conflict"] == "False"
    assert [f"ant/{EVIL}", f"bee/{EVIL}"] in report["label_conflicts"]
    assert ["cow/i00.jpg", "cow/near.jpg"] in report["leaks"]


def test_audit_report_keys_and_pages(planted_audit):
    report, out = planted_audit
    saved = json.loads((out / "report.json").read_text())
    assert {"num_images", "num_label_issues", "estimated_label_errors", "label_error_pairs",
            "num_duplicate_sets", "leaks", "label_conflicts", "num_outliers",
            "out_of_fold_accuracy", "config", "cache_key"} <= set(saved)
    assert saved["num_images"] == 63 and saved["label_error_pairs"][0]["estimated_errors"] > 0
    for page in ("index.html", "label_issues.html", "near_duplicates.html", "outliers.html"):
        text = (out / page).read_text()
        assert "<img src=x" not in text and "None" not in text, page
    page = (out / "near_duplicates.html").read_text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and 'src="thumbs/' in page


def test_duplicate_sets_join_exact_and_near_pairs():
    sets = duplicate_sets(["a", "b", "a", "c", "d"], [[], [3], [], [1], []],
                          np.array([0.0, 0.02, 0.0, 0.02, 0.5]))
    assert [(s["members"], s["kind"]) for s in sets] == [([0, 2], "exact"), ([1, 3], "near")]
    assert sets[1]["distance"] == pytest.approx(0.02)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="head: expected one of dense, logistic"):
        AuditConfig(head="forest")
    with pytest.raises(ValueError, match="folds: expected a value >= 2"):
        AuditConfig(folds=1)


def test_audit_job_runs_on_an_embedded_cache(tiny_cache, tmp_path):
    report = audit_job.run(["--cache", tiny_cache.cache_dir, "--out", str(tmp_path / "audit"),
                            "--folds", "2", "--ensemble", "1"])
    assert report["num_images"] == 24
    for name in ("label_issues.csv", "near_duplicates.csv", "outliers.csv", "index.html"):
        assert (tmp_path / "audit" / name).is_file()
