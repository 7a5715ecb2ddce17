"""The evaluation report every job writes: files a person opens, and `report.json` for scripts.

Computing, holding and drawing are separate, in the scikit-learn manner: `compute_metrics` turns
labels and probabilities into numbers; `write_report` draws them (`pipeline.reports.figures`) and
lays them out (`pipeline.reports.pages`), into one folder:

| file | what |
|---|---|
| `index.html` | headline figures first (95 % intervals, the majority baseline), then the rest |
| `report.json` | every figure plus the config, cache key and versions (top-level `accuracy`) |
| `confusion_matrix.png` / `.csv` | colour row-normalised, cells counts; sized for 2-100 classes |
| `cells/` | where image paths are known: each confusion cell's and class's images (`cells`) |
| `most_confused.csv` | the off-diagonal pairs, most frequent first |
| `per_class.csv`, `classification_report.txt` | precision, recall, F1, support |
| `reliability.png` | reliability diagram (`ece` in `report.json`) |
| `roc_pr.png`, `thresholds.csv` | two classes: ROC and precision-recall, a threshold table |
| `curves.png` | training curves of every phase, with a marker where each phase starts |
| `most_wrong.csv` / `.html` / `.png` | mistakes ranked by the wrong prediction's confidence |

The numbers are `pipeline.reports.metrics`' (or, from a pass's shards, `summaries`'), their
intervals `intervals`', the folder `pipeline.reports.report`'s, the linked tables `matrix`'s,
the CSV and Markdown writers `pipeline.reports.tables`'; the reports folder of scheduled runs is
`runs` (and `changes`). This package re-exports the public names of the report itself.
"""
from pipeline.reports.figures import plot_curves
from pipeline.reports.metrics import class_roc_auc, compute_metrics, most_confused, most_wrong
from pipeline.reports.pages import html_page
from pipeline.reports.report import write_report
from pipeline.reports.tables import markdown_table, write_csv

__all__ = ["compute_metrics", "most_wrong", "most_confused", "write_report", "plot_curves",
           "write_csv", "html_page", "markdown_table", "class_roc_auc"]
