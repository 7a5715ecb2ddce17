"""A candidate against its baseline on the same images: the paired figures, the verdict and the
gate's checks, as report sections.

`resolve_baseline` opens the baseline before any image is scored (`--baseline`, else the
blessed model); `baseline_scored` scores it on the candidate's inputs (or reuses the candidate's
rows when it is the same model), and the two runs are joined by image id (each model's rows:
`pipeline.prediction`); `compare_predictions` compares them with
`pipeline.reports.intervals.paired_comparison`. The verdict reads the accuracy
difference's 95 % interval: better (above 0), worse (below 0), or no measurable difference.
"""
import collections
import html
import os

import numpy as np

from pipeline.evaluation import blessing, gate
from pipeline.evaluation.slices import slices_section
from pipeline.prediction.models import open_model
from pipeline.prediction.shard import read_rows
from pipeline.reports.intervals import paired_comparison

__all__ = ["Scored", "scored_images", "compare_predictions", "verdict", "resolve_baseline",
           "baseline_scored", "gate_checks", "runs_fields", "review_sections"]

_TOP = 5

#: One scored image: true and predicted class indices, whether the true class is in the top 5,
#: whether a face was found (None without face crop), and the shorter side in pixels (or None).
Scored = collections.namedtuple("Scored", "true pred top5 face_found short_side")


def scored_images(out_dir, manifest, class_names):
    """`{id: Scored}` of a prediction run's labelled images, read shard by shard."""
    index = {name: i for i, name in enumerate(class_names)}
    scored = {}
    for shard in manifest["shards"]:
        for row in read_rows(os.path.join(out_dir, shard["file"])):
            if row["true_label"] in index:
                sides = [row.get("width"), row.get("height")]
                scored[row["id"]] = Scored(
                    index[row["true_label"]], index[row["label"]],
                    row["true_label"] in list(row["top_k_labels"])[:_TOP], row["face_found"],
                    None if None in sides else min(sides))
    return scored


def verdict(comparison):
    """`better`, `worse` or `no measurable difference`, from the accuracy difference's interval."""
    accuracy = comparison["metrics"]["accuracy"]
    if accuracy["low"] > 0:
        return "better"
    if accuracy["high"] < 0:
        return "worse"
    return "no measurable difference"


def compare_predictions(candidate, baseline, class_names, *, top5=False):
    """The paired comparison of two `scored_images` maps on the images both scored.

    Returns:
        `intervals.paired_comparison` output, with `verdict`; None when no image is shared.
    """
    shared = sorted(set(candidate) & set(baseline))
    if not shared:
        return None
    a = np.array([candidate[i][:3] for i in shared])
    b = np.array([baseline[i][:3] for i in shared])
    comparison = paired_comparison(a[:, 0], a[:, 1], b[:, 1], len(class_names),
                                   candidate_top5=a[:, 2] if top5 else None,
                                   baseline_top5=b[:, 2] if top5 else None)
    comparison["verdict"] = verdict(comparison)
    return comparison


def resolve_baseline(baseline, spec, reports_dir):
    """The baseline to compare with, opened before any image is scored.

    Args:
        baseline: a model path, or None: the blessed model of `reports_dir`, where there is one
            (the candidate itself when it is the blessed one: a difference of 0), opened from
            the reports folder's copy of it (`blessing.open_blessed`), so that a model retrained in
            place is compared with the model that was blessed.
        spec: the candidate's `ModelSpec`.
        reports_dir: the reports folder.

    Returns:
        `(path, ModelSpec)` of the baseline (the path as it was given or blessed; the spec's
        `path` is the file that is scored), or `(None, None)` when there is none (no blessing,
        or a blessed model that is gone, with a warning).

    Raises:
        ValueError: a baseline with other classes than the candidate's.
    """
    if baseline is None:
        blessed = blessing.read_blessed(reports_dir)
        if blessed is None:
            return None, None
        baseline = blessed["model"]
        if blessed["model_digest"] == spec.digest:
            return baseline, spec
        baseline_spec = blessing.open_blessed(reports_dir, blessed)
        if baseline_spec is None:
            return None, None
    else:
        baseline_spec = open_model(baseline)
    if list(baseline_spec.class_names) != list(spec.class_names):
        raise ValueError(f"baseline {baseline!r}: its classes "
                         f"({', '.join(baseline_spec.class_names)}) are not the candidate's "
                         f"({', '.join(spec.class_names)})")
    return baseline, baseline_spec


def baseline_scored(baseline_spec, spec, scored, score):
    """The baseline's `scored_images` on the candidate's inputs: the candidate's own `scored`
    when both are the same model (same digest), else `score(baseline path)`'s rows."""
    if baseline_spec.digest == spec.digest:
        return scored
    result = score(baseline_spec.path)
    return scored_images(result.out_dir, result.manifest, list(spec.class_names))


def gate_checks(requirements, figures, *, scored, baseline, slices, class_names,
                comparison):
    """Every requirement on the whole set (`figures`) and on each slice (`slices` rows of
    `pipeline.evaluation.slices.slice_figures`), change thresholds against `baseline`."""
    checks = gate.check(requirements, figures, class_names=class_names, comparison=comparison)
    changes = any(r.against_baseline for r in requirements)
    for row in slices:
        of_slice = (compare_predictions({i: scored[i] for i in row["ids"]}, baseline,
                                        class_names, top5=len(class_names) >= 10)
                    if changes and baseline is not None else None)
        checks += gate.check(requirements, row, class_names=class_names, comparison=of_slice,
                             slice_name=f"{row['dimension']}={row['slice']}")
    return checks


def runs_fields(report, comparison, checks, blessed):
    """The runs.csv fields of a run's intervals, its comparison and its gate."""
    intervals = report.get("intervals") or {}
    row = {f"{metric}_{side}": intervals[metric][i] for metric in ("accuracy", "macro_f1")
           if metric in intervals for i, side in enumerate(("low", "high"))}
    if comparison is not None:
        accuracy = comparison["metrics"]["accuracy"]
        row.update(baseline=report["baseline"], verdict=comparison["verdict"],
                   accuracy_difference=accuracy["difference"],
                   accuracy_difference_low=accuracy["low"],
                   accuracy_difference_high=accuracy["high"],
                   mcnemar_p=comparison["mcnemar_p"])
    if checks:
        row["requirements_passed"] = all(c["passed"] for c in checks)
    row["blessed"] = bool(blessed)
    return row


def _signed(value):
    return f"{value:+.4f}"


def _comparison_table(comparison, class_names, baseline_name):
    rows = []
    for name, entry in comparison["metrics"].items():
        label = name
        if name.startswith("recall["):
            label = f"recall {class_names[int(name[7:-1])]}"
        rows.append(f"<tr><td>{html.escape(label)}</td><td>{entry['candidate']:.4f}</td>"
                    f"<td>{entry['baseline']:.4f}</td><td>{_signed(entry['difference'])}</td>"
                    f"<td>[{_signed(entry['low'])}, {_signed(entry['high'])}]</td></tr>")
    summary = (f"<p><strong>Verdict: {html.escape(comparison['verdict'])}</strong> against "
               f"{html.escape(baseline_name)} on the same {comparison['num_examples']} images "
               f"({comparison['fixed']} fixed, {comparison['broken']} newly broken; McNemar's "
               f"exact p = {comparison['mcnemar_p']:.3g}). Differences with their 95 % paired "
               "bootstrap interval.</p>")
    return (summary + "<table><tr><th>metric</th><th>candidate</th><th>baseline</th>"
            "<th>difference</th><th>95 % interval</th></tr>" + "".join(rows) + "</table>")


def _value_text(value):
    return "not known" if value is None else f"{value:.4f}"


def _checks_table(checks):
    rows = "".join(
        f"<tr><td>{html.escape(c['requirement'])}</td><td>{html.escape(c['what'])}</td>"
        f"<td>{html.escape(c['slice'] or 'all images')}</td><td>{_value_text(c['value'])}</td>"
        f"<td>{'pass' if c['passed'] else '<strong>FAIL</strong>'}</td></tr>" for c in checks)
    return ("<table><tr><th>requirement</th><th>figure</th><th>slice</th><th>value</th>"
            "<th>result</th></tr>" + rows + "</table>")


def review_sections(*, comparison, checks, class_names, slices, accuracy, baseline_name,
                    blessed, empty_slices=()):
    """The report's review sections: against the baseline, the requirements (and the
    blessing), the slices (whose whole-set accuracy is `accuracy`) and the dimensions that gave
    no slice (`slices.empty_dimensions`)."""
    sections = []
    if comparison is not None:
        sections.append(("Against the baseline",
                         _comparison_table(comparison, class_names, baseline_name)))
    if checks:
        passed = all(c["passed"] for c in checks)
        note = ("<p>Every requirement holds" + (": this model is now the blessed one."
                                                 if blessed else ".") + "</p>" if passed else
                f"<p><strong>{sum(not c['passed'] for c in checks)} requirement(s) do not "
                "hold.</strong></p>")
        sections.append(("Requirements", note + _checks_table(checks)))
    if slices or empty_slices:
        sections.append(slices_section(slices, accuracy, empty_slices))
    return sections
