"""Data audit of a whole cache: label issues, duplicates, leaks, label conflicts and outliers.

Feature caching makes out-of-fold predictions for every image cheap: k heads on the cached
embeddings (`kfold.out_of_fold_proba`; every augmented copy stays in its image's fold), each image
scored by a head that never saw it. cleanlab's `Datalab` takes those probabilities and the
clean-copy embeddings and finds, per image, label issues (with a suggested label), near-duplicates
and outliers. `audit_cache` adds exact duplicates (same file digest), flags duplicate sets that
span train and validation (leaks) or two classes (label conflicts), estimates label errors per
class pair, and writes CSVs, thumbnail pages and `report.json`.
"""
import dataclasses
import json
import os
import time

import numpy as np

from pipeline.evaluation import audit_pages
from pipeline.evaluation.config import AuditConfig
from pipeline.features import cache
from pipeline.publish import check_out_dir, published_folder
from pipeline.training.head_training import example_paths
from pipeline.training.heads import HeadConfig
from pipeline.training.kfold import out_of_fold_proba

__all__ = ["AuditConfig", "AuditData", "load_audit_data", "out_of_fold", "find_issues",
           "duplicate_sets", "label_error_pairs", "audit_cache"]


@dataclasses.dataclass(frozen=True)
class AuditData:
    """All records of a cache (`records`), with each record's split, and its clean-copy view."""

    records: cache.FeatureSplit
    splits: np.ndarray
    class_names: list
    paths: list

    @property
    def clean(self):
        return self.records.copies == 0


#: The files that mark a folder as an earlier audit (written before `published.json` existed).
_MARKERS = ("label_issues.csv", "label_error_pairs.csv")


def load_audit_data(cache_dir):
    """Loads every split of a cache (verified) with each record's split name."""
    manifest = cache.read_manifest(cache_dir)
    parts, splits = [], []
    for split in sorted(manifest["counts"]):
        part = cache.load_split(cache_dir, split)
        parts.append(part)
        splits.append(np.full(len(part.ids), split))
    records = cache.FeatureSplit(*(np.concatenate(arrays) for arrays in zip(*parts)))
    clean_ids = records.ids[records.copies == 0]
    return manifest, AuditData(records, np.concatenate(splits), list(manifest["class_names"]),
                               example_paths(manifest, clean_ids) or [""] * len(clean_ids))


def out_of_fold(data, config=AuditConfig()):
    """Out-of-fold probabilities of every clean image, averaged over `config.ensemble` heads."""
    records = data.records if config.augmented else cache.FeatureSplit(
        *(array[data.clean] for array in data.records))
    keep = records.copies == 0
    total = 0.0
    for member in range(config.ensemble):
        head = HeadConfig(head=config.head, seed=config.seed + 1000 * member)
        _, proba = out_of_fold_proba(records, len(data.class_names), folds=config.folds,
                                     config=head)
        total = total + proba[keep]
    return total / config.ensemble


def find_issues(features, labels, proba, config=AuditConfig()):
    """Runs cleanlab's Datalab (label, near-duplicate and outlier issues); returns the lab."""
    from cleanlab import Datalab

    lab = Datalab(data={"label": np.asarray(labels)}, label_name="label", verbosity=0)
    lab.find_issues(features=np.asarray(features, np.float32), pred_probs=proba, issue_types={
        "label": {"clean_learning_kwargs": {"label_quality_scores_kwargs": {
            "method": config.label_score}}},
        "near_duplicate": {"threshold": config.near_duplicate_threshold},
        "outlier": {}})
    return lab


def _components(count, pairs):
    parent = list(range(count))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        parent[root(a)] = root(b)
    groups = {}
    for i in range(count):
        groups.setdefault(root(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def duplicate_sets(digests, near_sets, distances):
    """Groups images into duplicate sets: same digest (exact) or Datalab near-duplicates.

    Args:
        digests: file digest per image.
        near_sets: per image, the indices of its near-duplicates (Datalab's
            `near_duplicate_sets`).
        distances: per image, the distance to its nearest neighbour.

    Returns:
        A list of dicts: `members` (indices), `kind` (`exact` when they share one digest, else
        `near`) and `distance` (the largest nearest-neighbour distance inside the set).
    """
    first = {}
    pairs = [(first.setdefault(d, i), i) for i, d in enumerate(digests)]
    pairs += [(i, int(j)) for i, others in enumerate(near_sets) for j in others]
    result = []
    for members in sorted(_components(len(digests), pairs)):
        exact = len({digests[i] for i in members}) == 1
        result.append({"members": members, "kind": "exact" if exact else "near",
                       "distance": 0.0 if exact else float(max(distances[i] for i in members))})
    return result


def label_error_pairs(labels, proba, class_names):
    """cleanlab's estimate of how many images filed under one class belong to another."""
    from cleanlab.count import estimate_joint

    joint = estimate_joint(np.asarray(labels), proba) * len(labels)
    rows = [{"given_label": class_names[g], "true_label": class_names[t],
             "estimated_errors": round(float(joint[g, t]), 1)}
            for g in range(len(class_names)) for t in range(len(class_names)) if g != t]
    return sorted(rows, key=lambda r: -r["estimated_errors"])


def _label_rows(lab, data):
    issues = lab.get_issues("label")
    order = np.argsort(issues["label_score"].to_numpy(), kind="stable")
    ids = data.records.ids[data.clean]
    return [{"rank": rank + 1, "index": int(i), "id": str(ids[i]), "path": data.paths[i],
             "given_label": data.class_names[int(issues["given_label"].iloc[i])],
             "suggested_label": data.class_names[int(issues["predicted_label"].iloc[i])],
             "label_quality": float(issues["label_score"].iloc[i]),
             "is_label_issue": bool(issues["is_label_issue"].iloc[i])}
            for rank, i in enumerate(order)]


def _duplicate_rows(lab, data):
    issues = lab.get_issues("near_duplicate")
    clean = data.clean
    ids, labels = data.records.ids[clean], data.records.labels[clean]
    splits = data.splits[clean]
    sets = duplicate_sets(data.records.digests[clean], issues["near_duplicate_sets"].tolist(),
                          issues["distance_to_nearest_neighbor"].to_numpy())
    return [{"set": number + 1, "kind": s["kind"], "distance": s["distance"],
             "ids": [str(ids[i]) for i in s["members"]], "members": s["members"],
             "classes": sorted({data.class_names[labels[i]] for i in s["members"]}),
             "splits": sorted({str(splits[i]) for i in s["members"]}),
             "leak": len({str(splits[i]) for i in s["members"]}) > 1,
             "label_conflict": len({int(labels[i]) for i in s["members"]}) > 1}
            for number, s in enumerate(sets)]


def _outlier_rows(lab, data):
    issues = lab.get_issues("outlier")
    flagged = np.flatnonzero(issues["is_outlier_issue"].to_numpy())
    flagged = flagged[np.argsort(issues["outlier_score"].to_numpy()[flagged], kind="stable")]
    ids, labels = data.records.ids[data.clean], data.records.labels[data.clean]
    return [{"rank": rank + 1, "index": int(i), "id": str(ids[i]), "path": data.paths[i],
             "label": data.class_names[labels[i]],
             "outlier_score": float(issues["outlier_score"].iloc[i])}
            for rank, i in enumerate(flagged)]


def _summary(manifest, data, found, proba, config, seconds):
    duplicates = found["near_duplicates"]
    labels = data.records.labels[data.clean]
    return {
        "cache_key": manifest["cache_key"], "config": dataclasses.asdict(config),
        "class_names": data.class_names, "num_images": int(data.clean.sum()),
        "out_of_fold_accuracy": float(np.mean(np.argmax(proba, axis=1) == labels)),
        "num_label_issues": sum(r["is_label_issue"] for r in found["label_issues"]),
        "estimated_label_errors": round(sum(r["estimated_errors"]
                                            for r in found["label_error_pairs"]), 1),
        "label_error_pairs": found["label_error_pairs"],
        "num_duplicate_sets": len(duplicates),
        "num_exact_duplicate_sets": sum(r["kind"] == "exact" for r in duplicates),
        "leaks": [r["ids"] for r in duplicates if r["leak"]],
        "label_conflicts": [r["ids"] for r in duplicates if r["label_conflict"]],
        "num_outliers": len(found["outliers"]), "seconds": round(seconds, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": manifest.get("versions")}


def audit_cache(cache_dir, out_dir, *, config=AuditConfig(), loader=load_audit_data,
                clock=time.perf_counter):
    """Audits every image of a cache and writes the audit into `out_dir`.

    Args:
        cache_dir: a complete cache folder.
        out_dir: the output folder, published whole (`pipeline.publish`): `index.html`,
            `label_issues.csv`/`.html`, `near_duplicates.csv`/`.html`, `outliers.csv`/`.html`,
            `label_error_pairs.csv`, `report.json`.
        config: an `AuditConfig`. Defaults to `AuditConfig()`.
        loader: returns `(manifest, AuditData)` for `cache_dir` (a test seam). Defaults to
            `load_audit_data`.
        clock: a timer (a test seam). Defaults to `time.perf_counter`.

    Returns:
        The `report.json` dict.
    """
    start = clock()
    check_out_dir(out_dir, job="audit", markers=_MARKERS)
    manifest, data = loader(cache_dir)
    proba = out_of_fold(data, config)
    labels = data.records.labels[data.clean]
    lab = find_issues(data.records.embeddings[data.clean], labels, proba, config)
    found = {"label_issues": _label_rows(lab, data), "near_duplicates": _duplicate_rows(lab, data),
             "outliers": _outlier_rows(lab, data),
             "label_error_pairs": label_error_pairs(labels, proba, data.class_names)}
    title = os.path.basename(str(manifest["source"].get("root") or manifest["source"].get(
        "data", "")).rstrip("/")) or manifest["cache_key"]
    with published_folder(out_dir, job="audit", markers=_MARKERS) as staging:
        audit_pages.write_csvs(staging, found)
        audit_pages.write_detail_pages(staging, data, title, found, top_n=config.top_n)
        report = _summary(manifest, data, found, proba, config, clock() - start)
        with open(os.path.join(staging, "report.json"), "w") as handle:
            json.dump(report, handle, indent=2, sort_keys=True)
        audit_pages.write_index(staging, title, report)
    return report
