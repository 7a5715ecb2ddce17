"""The typed, frozen configurations of the evaluate, export and audit jobs (no TensorFlow here:
the command line reads them without building anything).
"""
import dataclasses

from pipeline.data.links import follow_links_field
from pipeline.fields import check_choices, field
from pipeline.training.heads import HEADS
from pipeline.validation import check_scalar

__all__ = ["EvaluateConfig", "ExportConfig", "AuditConfig", "LABEL_SCORES", "SLICE_BY"]

#: Slice dimensions of an evaluation (`pipeline.evaluation.slices`).
SLICE_BY = ("folder", "size", "face")
#: cleanlab's label-quality scores.
LABEL_SCORES = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")

_MODEL_HELP = ("model.keras from jobs.finetune, a head folder from jobs.train_head, or a folder "
               "from jobs.export")


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    """What `jobs.evaluate` scores, where it records the run, and when it fails.

    Attributes:
        model: a fine-tuned `model.keras`, a head folder or a `jobs.export` folder.
        data: a class folder, `tfds:NAME[:SPLIT]`, or a cache folder `[:SPLIT]`.
        reports_dir: the folder of time-stamped runs, `runs.csv` and the trend. Defaults to
            `"reports"`.
        fail_under: exit status 1 when accuracy is below this; None: never. Defaults to `None`.
        regression_threshold: a drop of more than this since the previous run on the same data
            is flagged. Defaults to `0.01`.
        top_n: rows of the most-wrong report. Defaults to `50`.
        predictions_dir: where the pass writes its rows, reused by later runs; None:
            `REPORTS_DIR/predictions`. Defaults to `None`.
        follow_links: which symbolic links in a data folder are read (`pipeline.data.links`).
            Defaults to `"no"`.
        baseline: a model compared with on the same images; None: the reports folder's
            blessed model, where there is one. Defaults to `None`.
        require: thresholds that must all hold (`pipeline.evaluation.gate`). Defaults to `()`.
        bless: write `blessed.json` when every threshold holds. Defaults to `False`.
        slice_by: slice dimensions (`folder`, `size`, `face`). Defaults to `()`.
        slices: a CSV file of the images' metadata to slice by, or None. Defaults to `None`.
    """

    model: str = field(help=_MODEL_HELP, metavar="PATH")
    data: str = field(help="class folder, tfds:NAME[:SPLIT], or a cache folder[:SPLIT]",
                      metavar="SRC")
    reports_dir: str = field("reports", metavar="DIR", help="folder of the time-stamped runs, "
                             "runs.csv and the trend")
    fail_under: float | None = field(None, help="exit 1 when accuracy is below this")
    regression_threshold: float = field(0.01, help="flag a regression when accuracy, macro-F1, "
                                        "ROC-AUC or top-5 accuracy drops by more than this since "
                                        "the previous run on the same data")
    top_n: int = field(50, help="rows of the most-wrong report")
    predictions_dir: str | None = field(None, metavar="DIR", help="where the pass writes its "
                                        "rows, reused by later runs (local or gs://; default: "
                                        "REPORTS_DIR/predictions)")
    follow_links: str = follow_links_field()
    baseline: str | None = field(None, metavar="MODEL", help="compare with this model on the "
                                 "same images (default: the reports folder's blessed model)")
    require: tuple[str, ...] = field((), repeatable=True, metavar="EXPR",
                                     help="a threshold that must hold, once per flag: "
                                     "accuracy>=0.85, recall[*]>=0.6, recall[cat]>=0.7, "
                                     "accuracy-baseline>=-0.005; exit 1 when one does not")
    bless: bool = field(False, negatable=False, help="keep a copy of this model in the reports "
                        "folder (blessed-model/) and write blessed.json when every --require "
                        "holds; exit 1 otherwise")
    slice_by: tuple[str, ...] = field((), repeatable=True, choices=SLICE_BY, help="figures per "
                                      "slice, once per flag: folder (the sub-folder under each "
                                      "class), size (shorter-side buckets), face (found or not)")
    slices: str | None = field(None, metavar="FILE.csv", help="slices of your own: a CSV file "
                               "with an id column and any columns of metadata")

    def __post_init__(self):
        check_choices(self)
        object.__setattr__(self, "require", tuple(self.require))
        object.__setattr__(self, "slice_by", tuple(self.slice_by))
        check_scalar(self.regression_threshold, "regression_threshold", float, min_val=0.0)
        check_scalar(self.top_n, "top_n", int, min_val=0)


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """What `jobs.export` exports, and where.

    Attributes:
        model: a fine-tuned `model.keras` or a head folder.
        out: the export folder.
        int8: also a dynamic-range int8 TFLite file. Defaults to `False`.
        require_blessed: a reports folder whose blessed model this must be, or None. Defaults
            to `None`.
    """

    model: str = field(help="model.keras from jobs.finetune, or a head folder from "
                       "jobs.train_head", metavar="PATH")
    out: str = field(help="export folder", metavar="DIR")
    int8: bool = field(False, negatable=False, help="also a dynamic-range int8 TFLite")
    require_blessed: str | None = field(None, metavar="REPORTS_DIR", help="refuse a model "
                                        "that is not the one blessed in this reports folder")


@dataclasses.dataclass(frozen=True)
class AuditConfig:
    """How the audit scores a cache.

    Attributes:
        folds: k of the out-of-fold heads. Defaults to `5`.
        head: `"dense"` or `"logistic"`. Defaults to `"logistic"` (ranks flipped labels better
            than the dense head in bench/audit_genki.py).
        ensemble: heads per image (each with its own seed and folds), probabilities averaged.
            Defaults to `5` (bench/audit_genki.py: 0.3688 precision at k against 0.3438 with one
            head, for 1.5x the time).
        augmented: train the fold heads on the augmented copies too. Defaults to `True`.
        label_score: cleanlab's label-quality score (`self_confidence`, `normalized_margin`,
            `confidence_weighted_entropy`). Defaults to `"self_confidence"`.
        near_duplicate_threshold: Datalab's near-duplicate threshold (relative to the median
            nearest-neighbour distance). Defaults to `0.13`.
        seed: the first seed. Defaults to `123`.
        top_n: images per thumbnail page. Defaults to `100`.
    """

    folds: int = field(5, help="k of the out-of-fold heads")
    head: str = field("logistic", choices=HEADS, help="kind of the fold heads")
    ensemble: int = field(5, help="heads per image, each with its own seed and folds "
                          "(averaged)")
    augmented: bool = field(True, help="train the fold heads on the augmented copies too")
    label_score: str = field("self_confidence", choices=LABEL_SCORES,
                             help="cleanlab's label-quality score")
    near_duplicate_threshold: float = field(0.13, help="Datalab's near-duplicate threshold "
                                            "(relative to the median nearest-neighbour "
                                            "distance)")
    seed: int = field(123, help="the first seed")
    top_n: int = field(100, help="images per thumbnail page")

    def __post_init__(self):
        check_choices(self)
        check_scalar(self.folds, "folds", int, min_val=2)
        check_scalar(self.ensemble, "ensemble", int, min_val=1)
        check_scalar(self.near_duplicate_threshold, "near_duplicate_threshold", float,
                     min_val=0.0)
