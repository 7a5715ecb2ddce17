"""Data audit: `python -m jobs.audit --cache DIR --out DIR [--folds 5]`.

Scores every image of a feature cache with out-of-fold heads (k heads on the cached embeddings,
every augmented copy kept with its image) and hands the probabilities and the clean-copy
embeddings to cleanlab's `Datalab`, which finds label issues (with a suggested label),
near-duplicates and outliers; exact duplicates, duplicates split across train and validation
(leaks) and duplicates filed under two classes (label conflicts) are flagged. Writes
`label_issues.csv`, `near_duplicates.csv`, `outliers.csv`, `label_error_pairs.csv`, a thumbnail
page of each, `index.html` and `report.json` to `--out`. The last line printed is `index.html`.
"""
import dataclasses
import os

from jobs.cli import Job, add_config_flags, cache_folder, config_from, output_folder
from pipeline.evaluation.config import AuditConfig

EXAMPLE = """example (five-fold audit of a cache, pages under runs/audit):
  python -m jobs.audit --cache cache/<key> --out runs/audit
  python -m jobs.audit --cache cache/<key> --out runs/audit-dense --head dense --folds 10
"""


@dataclasses.dataclass(frozen=True)
class AuditRun:
    """What the job audits and where it writes, besides the `AuditConfig`."""

    cache: str = cache_folder()
    out: str = output_folder()


def _flags(parser):
    add_config_flags(parser, AuditRun)
    add_config_flags(parser, AuditConfig)


def _run(args, *, show_progress=False):
    from pipeline.evaluation.audit import audit_cache  # noqa: PLC0415  (TensorFlow, after)

    return audit_cache(args.cache, args.out, config=config_from(AuditConfig, args))


def _report(report, args):
    from pipeline.evaluation.audit_pages import summary_line  # noqa: PLC0415  (as above)

    print(summary_line(report))
    print(os.path.join(args.out, "index.html"))


JOB = Job("audit", __doc__, EXAMPLE, flags=_flags, run=_run, report=_report)
main, run, build_parser = JOB.main, JOB.run_argv, JOB.build_parser


if __name__ == "__main__":
    main()
