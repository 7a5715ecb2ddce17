"""The gate of a review: the thresholds a candidate must meet, and their checks.

A requirement is one line: a value threshold (`accuracy>=0.85`, `recall[*]>=0.6` for every
class, `recall[cat]>=0.7`) or a change threshold against the baseline
(`accuracy-baseline>=-0.005`). `validate` refuses, before any image is scored, a requirement
that cannot be checked; `check` evaluates every requirement on a report (and on each slice's
figures). A model that passes them all is blessed (`pipeline.evaluation.blessing`).

Example:
    >>> checks = check([parse_requirement("accuracy>=0.85")], report)
    >>> all(c["passed"] for c in checks)
"""
import dataclasses
import operator
import re

__all__ = ["METRICS", "Requirement", "parse_requirement", "validate", "check"]

#: Metrics a requirement can name (`recall[CLASS]` and `recall[*]` besides).
METRICS = ("accuracy", "macro_f1", "top5_accuracy")
_OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
_GRAMMAR = re.compile(r"^\s*(?P<metric>accuracy|macro_f1|top5_accuracy|recall\[(?P<klass>[^\]]+)\])"
                      r"\s*(?P<baseline>-\s*baseline)?\s*(?P<op>>=|<=|>|<)\s*"
                      r"(?P<bound>[-+]?(\d+(\.\d*)?|\.\d+))\s*$")


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One threshold.

    Attributes:
        text: as written.
        metric: `accuracy`, `macro_f1`, `top5_accuracy` or `recall`.
        klass: the class of a recall (`*`: every class), else None.
        against_baseline: the threshold is on the difference from the baseline.
        op: `>=`, `>`, `<=` or `<`.
        bound: the number.
    """

    text: str
    metric: str
    klass: str | None
    against_baseline: bool
    op: str
    bound: float


def parse_requirement(text):
    """A `Requirement` of `text`; raises `ValueError` naming what is wrong."""
    match = _GRAMMAR.match(text)
    if not match:
        raise ValueError(f"--require {text!r}: expected METRIC[-baseline] OP NUMBER with METRIC "
                         f"one of {', '.join(METRICS)}, recall[CLASS] or recall[*] and OP one "
                         "of >=, >, <=, < (e.g. accuracy>=0.85, accuracy-baseline>=-0.005)")
    metric = "recall" if match["klass"] is not None else match["metric"]
    return Requirement(text.strip(), metric, match["klass"], bool(match["baseline"]),
                       match["op"], float(match["bound"]))


def _classes(requirement, class_names):
    """The classes a recall requirement names (every class for `recall[*]`)."""
    wanted = class_names if requirement.klass == "*" else [requirement.klass]
    unknown = [name for name in wanted if name not in class_names]
    if unknown:
        raise ValueError(f"--require {requirement.text!r}: no class {unknown[0]!r} (the "
                         f"model's: {', '.join(class_names)})")
    return wanted


def validate(requirements, *, class_names, has_baseline):
    """Refuses a requirement that cannot be checked, before any image is scored.

    Args:
        requirements: `Requirement`s.
        class_names: the model's classes.
        has_baseline: whether there is a baseline for change thresholds.

    Raises:
        ValueError: one line: a recall of a class the model does not know, or a change
            threshold without a baseline (and what to do).
    """
    for requirement in requirements:
        if requirement.metric == "recall":
            _classes(requirement, class_names)
        if requirement.against_baseline and not has_baseline:
            raise ValueError(f"--require {requirement.text!r}: a change threshold needs a "
                             "baseline and there is none: pass --baseline MODEL, or first "
                             "bless a model with value thresholds only (the same command "
                             "without the -baseline requirements)")


def _values(requirement, report, comparison, class_names):
    """`[(what, value)]` the requirement judges: one per class for `recall[*]`; a change
    (`what` ends in `-baseline`) is not known without a comparison."""
    if requirement.metric != "recall":
        names = [(requirement.metric, requirement.metric)]
    else:
        names = [(f"recall[{name}]", name) for name in _classes(requirement, class_names)]
    found = []
    for what, key in names:
        if requirement.against_baseline:
            metric = (f"recall[{class_names.index(key)}]" if requirement.metric == "recall"
                      else key)
            entry = None if comparison is None else comparison["metrics"].get(metric)
            found.append((f"{what}-baseline", None if entry is None else entry["difference"]))
        elif requirement.metric == "recall":
            found.append((what, report["per_class"][key]["recall"]))
        else:
            found.append((what, report.get(key)))
    return found


def check(requirements, report, *, class_names, comparison=None, slice_name=None):
    """Every requirement on `report` (a report dict or a slice's figures).

    Args:
        requirements: `Requirement`s.
        report: figures with `accuracy`, `macro_f1`, `top5_accuracy` (where known) and
            `per_class[name]["recall"]`.
        class_names: the model's classes.
        comparison: `intervals.paired_comparison` output for change thresholds, or None.
        slice_name: the slice these figures are of, or None (all images).

    Returns:
        `[{requirement, what, slice, value, passed}]` (`what`: the figure, `accuracy-baseline`
        for a change); a figure that is not known (top-5 with fewer than 10 classes, a change
        without a comparison) does not pass.
    """
    checks = []
    for requirement in requirements:
        for what, value in _values(requirement, report, comparison, class_names):
            passed = value is not None and _OPERATORS[requirement.op](value, requirement.bound)
            checks.append({"requirement": requirement.text, "what": what,
                           "slice": slice_name, "value": value, "passed": bool(passed)})
    return checks
