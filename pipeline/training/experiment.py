"""The seeds' serial experiments as one grid on one feature cache.

| model | what | training images |
|---|---|---|
| `model_1_head_1pct` | feature extraction (dense head) | 1 % |
| `model_2_head_10pct` | feature extraction | 10 % |
| `head_100pct` | feature extraction | 100 % |
| `model_3_finetune_10pct` | fine-tuned from model 2's head | 10 % |
| `model_4_finetune_100pct` | fine-tuned from the 100 % head | 100 % |

Each runs into its own folder; `comparison.csv`, `comparison.md` and `comparison.png` compare
validation accuracy and wall time.
"""
import dataclasses
import os
import time

from matplotlib.figure import Figure

from pipeline import reports
from pipeline.console import track
from pipeline.training.finetune import FinetuneConfig, run_finetune
from pipeline.training.head_training import train_heads_on_cache
from pipeline.training.heads import HeadConfig

__all__ = ["GRID", "run_experiment", "markdown", "QUICK_HEAD", "QUICK_FINETUNE"]

#: (name, kind, training fraction, name of the head a fine-tune starts from)
GRID = (
    ("model_1_head_1pct", "head", 0.01, None),
    ("model_2_head_10pct", "head", 0.1, None),
    ("head_100pct", "head", 1.0, None),
    ("model_3_finetune_10pct", "finetune", 0.1, "model_2_head_10pct"),
    ("model_4_finetune_100pct", "finetune", 1.0, "head_100pct"),
)

#: Tiny settings for `--quick` (CI): the same grid, a few head epochs, one fine-tune epoch.
QUICK_HEAD = HeadConfig(epochs=3, patience=1)
QUICK_FINETUNE = FinetuneConfig(epochs=1, batch_size=16)

_COLUMNS = ("model", "kind", "train_fraction", "train_images", "accuracy", "macro_f1",
            "majority_baseline", "wall_s")


def run_experiment(cache_dir, out_dir, *, head_config=HeadConfig(),
                   finetune_config=FinetuneConfig()):
    """Runs the grid on a cache; returns the comparison rows (dicts with `_COLUMNS`)."""
    rows = []
    for name, kind, fraction, start_from in track(GRID, desc="experiment", unit="models"):
        target = os.path.join(out_dir, name)
        start = time.perf_counter()
        if kind == "head":
            (report,) = train_heads_on_cache(cache_dir, target, config=head_config,
                                             fractions=(fraction,))
        else:
            report = run_finetune(cache_dir, os.path.join(out_dir, start_from), target,
                                  config=dataclasses.replace(finetune_config,
                                                             train_fraction=fraction))
        rows.append({"model": name, "kind": kind, "train_fraction": fraction,
                     "train_images": report["train_images"], "accuracy": report["accuracy"],
                     "macro_f1": report["macro_f1"],
                     "majority_baseline": report["majority_baseline"],
                     "wall_s": round(time.perf_counter() - start, 1)})
    _write_tables(out_dir, rows)
    return rows


def markdown(rows):
    """The comparison as a Markdown table."""
    return reports.markdown_table(_COLUMNS, rows)


def _write_tables(out_dir, rows):
    reports.write_csv(os.path.join(out_dir, "comparison.csv"), _COLUMNS,
                      [[r[c] for c in _COLUMNS] for r in rows])
    with open(os.path.join(out_dir, "comparison.md"), "w") as handle:
        handle.write(markdown(rows) + "\n")
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    names = [r["model"] for r in rows]
    for ax, key, title in ((axes[0], "accuracy", "validation accuracy"),
                           (axes[1], "wall_s", "wall time (s)")):
        ax.barh(names, [r[key] for r in rows])
        ax.set_title(title)
    axes[0].axvline(rows[0]["majority_baseline"], color="gray", linestyle="--")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "comparison.png"), dpi=100)
