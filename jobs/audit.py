"""Data audit: `python -m jobs.audit --cache DIR --out DIR [--folds 5]`.

Scores every image of a feature cache with out-of-fold heads (k heads on the cached embeddings,
every augmented copy kept with its image) and hands the probabilities and the clean-copy
embeddings to cleanlab's `Datalab`, which finds label issues (with a suggested label),
near-duplicates and outliers; exact duplicates, duplicates split across train and validation
(leaks) and duplicates filed under two classes (label conflicts) are flagged. Writes
`label_issues.csv`, `near_duplicates.csv`, `outliers.csv`, `label_error_pairs.csv`, a thumbnail
page of each, `index.html` and `report.json` to `--out`. The last line printed is `index.html`.
"""
import argparse
import logging
import os
import sys

from pipeline.evaluation.audit import AuditConfig, audit_cache


def build_parser():
    defaults = AuditConfig()
    parser = argparse.ArgumentParser(prog="python -m jobs.audit",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--cache", required=True, help="cache folder, e.g. cache/<key>")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--folds", type=int, default=defaults.folds)
    parser.add_argument("--head", default=defaults.head, choices=("dense", "logistic"))
    parser.add_argument("--ensemble", type=int, default=defaults.ensemble,
                        help="heads per image, each with its own seed and folds (averaged)")
    parser.add_argument("--no-augmented", dest="augmented", action="store_false",
                        help="train the fold heads on clean copies only")
    parser.add_argument("--label-score", default=defaults.label_score,
                        choices=("self_confidence", "normalized_margin",
                                 "confidence_weighted_entropy"))
    parser.add_argument("--near-duplicate-threshold", type=float,
                        default=defaults.near_duplicate_threshold)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--top-n", type=int, default=defaults.top_n,
                        help="images per thumbnail page")
    return parser


def run(argv=None):
    """Parses `argv` and audits; returns the `report.json` dict."""
    args = build_parser().parse_args(argv)
    config = AuditConfig(folds=args.folds, head=args.head, ensemble=args.ensemble,
                         augmented=args.augmented, label_score=args.label_score,
                         near_duplicate_threshold=args.near_duplicate_threshold,
                         seed=args.seed, top_n=args.top_n)
    report = audit_cache(args.cache, args.out, config=config)
    report["out"] = args.out
    return report


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        report = run(argv)
    except ValueError as err:
        sys.exit(f"error: {err}")
    print(f"{report['num_images']} images: {report['num_label_issues']} label issues "
          f"(cleanlab estimates {report['estimated_label_errors']:.1f} label errors), "
          f"{report['num_duplicate_sets']} duplicate sets ({report['num_exact_duplicate_sets']} "
          f"exact; {len(report['leaks'])} leak across splits, {len(report['label_conflicts'])} "
          f"under two classes), {report['num_outliers']} outliers; out-of-fold accuracy "
          f"{report['out_of_fold_accuracy']:.4f}")
    print(os.path.join(report["out"], "index.html"))


if __name__ == "__main__":
    main()
