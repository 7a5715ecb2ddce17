"""The fine-tune job's report: the shipped model on validation, against the head it started from.

`write_finetune_report` writes the full report (`pipeline.reports`) with the curves of both
phases, and says which candidate `model.keras` is and why: in the page's title (the model, the
data set by name, the share of it, and what was kept), in its section "What model.keras is", in
`report.json` (`kept`, `kept_epoch`, `kept_model`, `kept_reason`) and in
`head_vs_finetuned.csv`.
"""
import csv
import dataclasses
import html
import os

import numpy as np

from pipeline import reports
from pipeline.training.end_to_end import backbone_of, probabilities
from pipeline.training.ensemble import combined_summary
from pipeline.training.head_training import data_name, example_paths, page_title
from pipeline.training.selection import kept_summary

__all__ = ["write_finetune_report"]


def _read_log(path):
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    keys = [k for k in (rows[0] if rows else {}) if k != "epoch"]
    return {k: [float(row[k]) for row in rows] for k in keys}


def _history(head, out_dir):
    """The curves of both phases: the head's epochs, then those of `training_log.csv`."""
    tuned = _read_log(os.path.join(out_dir, "training_log.csv"))
    return {k: head.history.get(k, []) + tuned.get(k, [])
            for k in ("loss", "accuracy", "val_loss", "val_accuracy")}, len(tuned.get("loss", []))


def write_finetune_report(out_dir, model, state, *, start, validation, config, top_n, facts):
    """Writes the report of the kept model (and `head_vs_finetuned.csv`); returns its dict.

    Args:
        out_dir: the run's folder, holding its `training_log.csv`.
        model: the kept model, as `model.keras` holds it.
        state: `KeepBest`'s state (`pipeline.training.selection`).
        start: what the run started from: `cache_dir`, `head_dir`, `manifest` and `head`.
        validation: the validation images: `data`, `y_true`, `ids`, `num_classes`,
            `head_proba` and `try_flip` (`pipeline.training.finetune`).
        config: the `FinetuneConfig`.
        top_n: rows of the most-wrong report.
        facts: `first_unfrozen_layer`, `warm_start_max_abs_diff`, `head_epochs`,
            `train_images`, `peak_learning_rate` and `ensemble` (what `pipeline.training.ensemble.combine` decided, or
            None) of the run.
    """
    manifest = start.manifest
    proba = probabilities(model, validation.data, validation.num_classes)
    history, finetune_epochs = _history(start.head, out_dir)
    head_metrics = reports.compute_metrics(validation.y_true, validation.head_proba,
                                           manifest["class_names"])
    extra = _report_extra(model, state, start=start, validation=validation, facts=facts,
                          finetune_epochs=finetune_epochs, head_metrics=head_metrics,
                          proba=proba, config=config)
    report = reports.write_report(
        out_dir, ids=validation.ids, y_true=validation.y_true, proba=proba,
        class_names=manifest["class_names"], title=_title(manifest, config, extra),
        paths=example_paths(manifest, validation.ids), history=history,
        phases=[("head", 1), ("fine-tune", facts["head_epochs"] + 1)], top_n=top_n,
        config=dataclasses.asdict(config), extra=extra, lead=[_kept_section(extra)])
    _write_head_vs_finetuned(out_dir, head_metrics, report, state)
    return report


def _title(manifest, config, extra):
    """The page's title: the model, the data, the share of it, and which candidate was kept."""
    return (page_title("dense head fine-tuned", manifest, config.train_fraction)
            + f": kept {extra['kept_model']}")


def _kept_section(extra):
    """The page's section on the kept candidate: what `model.keras` is, and why (for an
    ensemble, the evidence as a table)."""
    reason = extra["kept_reason"]
    text = (f"<p><strong>Kept: {html.escape(extra['kept_model'])}.</strong> "
            f"{html.escape(reason[0].upper() + reason[1:])}.</p>")
    combination = extra.get("ensemble") or {}
    if "accuracy" not in combination:
        return "What model.keras is", text
    rows = [("the ensemble (shipped)" if combination["shipped"] == "ensemble"
             else "the ensemble (not shipped)", None, "ensemble", None),
            ("the fine-tuned model", combination["weight"], "finetuned",
             combination["vs_finetuned"]),
            ("the head", 1 - combination["weight"], "head", combination["vs_head"])]

    def versus(found):
        if found is None:
            return "<td></td><td></td>"
        return (f"<td>{found['difference']:+.4f} ({found['low']:+.4f} to {found['high']:+.4f}; "
                f"{found['fixed']} fixed, {found['broken']} broken)</td>"
                f"<td>{found['log_loss_difference']:+.4f} ({found['log_loss_low']:+.4f} to "
                f"{found['log_loss_high']:+.4f})</td>")

    table = ("<table><tr><th>model</th><th>weight in the ensemble</th><th>validation "
             "accuracy</th><th>ensemble minus it: accuracy (95 % paired interval)</th>"
             "<th>ensemble minus it: log loss (95 % paired interval)</th></tr>"
             + "".join(f"<tr><td>{name}</td><td>{'' if weight is None else f'{weight:.2f}'}"
                       f"</td><td>{combination['accuracy'][key]:.4f}</td>{versus(found)}</tr>"
                       for name, weight, key, found in rows) + "</table>"
             f"<p>On {combination['images']} validation images, on which the weight was "
             "fitted: held-out test images give the unbiased figure.</p>")
    return "What model.keras is", text + table


def _report_extra(model, state, *, start, validation, facts, finetune_epochs, head_metrics,
                  proba, config):
    """The fine-tune entries of `report.json`: sources, model, epochs, selection, the head."""
    manifest = start.manifest
    return {"job": "finetune", "cache_key": manifest["cache_key"], "cache_dir": start.cache_dir,
            "data_name": data_name(manifest),
            "head_dir": start.head_dir, "embed_config": manifest["config"],
            "versions": manifest.get("versions"),
            "first_unfrozen_layer": facts["first_unfrozen_layer"],
            "backbone_layers": len(backbone_of(model).layers),
            "flip_tta": state["best"].get("flip_tta", False),
            "flip_tta_tried": validation.try_flip,
            "trainable_weights": len(model.trainable_weights),
            "warm_start_max_abs_diff": facts["warm_start_max_abs_diff"],
            "head_epochs": facts["head_epochs"], "finetune_epochs": finetune_epochs,
            "peak_learning_rate": facts["peak_learning_rate"],
            "train_images": facts["train_images"], **_kept(state, facts["ensemble"], config),
            "ensemble": facts["ensemble"],
            "warm_start_score": state["warm_start"],
            "best_finetune_epoch": state["best_finetune_epoch"],
            "best_finetune_score": state["best_finetune"],
            "head_vs_finetuned": {"head_accuracy": head_metrics["accuracy"],
                                  "head_macro_f1": head_metrics["macro_f1"],
                                  "changed_predictions": int(np.sum(
                                      validation.head_proba.argmax(1) != proba.argmax(1)))}}


def _kept(state, combination, config):
    """What `model.keras` is (`kept`, `kept_epoch`, `kept_model`, `kept_reason`)."""
    if combination is None:
        return kept_summary(state, ema=config.ema)
    return combined_summary(combination, epoch=state["kept_epoch"], ema=config.ema,
                            flip_tta=state["best"].get("flip_tta", False))


def _write_head_vs_finetuned(out_dir, head_metrics, report, state):
    """The head against the model written as model.keras, then which candidate was kept and why.

    `kept_epoch` 0 is the warm start (the head); `best_finetune_epoch` is the best fine-tune
    epoch by validation, whether or not it was kept.
    """
    warm, tried = state["warm_start"], state["best_finetune"] or {}
    rows = [[m, head_metrics[m], report[m]] for m in ("accuracy", "macro_f1", "roc_auc")]
    rows += [["val_accuracy_warm_start", warm["val_accuracy"], ""],
             ["val_accuracy_best_finetune_epoch", "", tried.get("val_accuracy", "")],
             ["best_finetune_epoch", "", state["best_finetune_epoch"] or ""],
             ["kept", "", report["kept"]], ["kept_epoch", "", report["kept_epoch"]],
             ["kept_reason", "", report["kept_reason"]]]
    reports.write_csv(os.path.join(out_dir, "head_vs_finetuned.csv"),
                      ["metric", "head", "finetuned"], rows)
