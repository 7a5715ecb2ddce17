"""Head trainer: `python -m jobs.train_head --cache DIR --head dense|logistic --out DIR`.

Fits a classification head on a feature cache written by `jobs.embed` (no backbone pass), and
writes the head, its history and the full report (`report.json`, `index.html`, `most_wrong.csv`,
PNG plots) to `--out`. `--train-fraction 0.01 0.1 1.0` trains one head per fraction and prints a
comparison table; `--folds K` runs stratified k-fold evaluation over all the cache's images.
The last line printed is the path of the report's `index.html`.
"""
import dataclasses
import os

from jobs.cli import Job, add_config_flags, cache_folder, config_from, output_folder
from pipeline.fields import field
from pipeline.training.heads import HeadConfig

EXAMPLE = """example (a dense head on a cache, then 10-fold evaluation of the same head):
  python -m jobs.train_head --cache cache/<key> --out runs/head
  python -m jobs.train_head --cache cache/<key> --out runs/kfold10 --folds 10
  (<key>: the folder that python -m jobs.embed printed last)
"""


@dataclasses.dataclass(frozen=True)
class TrainHeadRun:
    """What the job trains on and writes, besides the head's `HeadConfig`."""

    cache: str = cache_folder()
    out: str = output_folder()
    train_fraction: tuple[float, ...] = field((1.0,), help="train one head per fraction of the "
                                              "training images and compare them")
    folds: int | None = field(None, help="stratified k-fold evaluation over all images of the "
                              "cache instead of one train/validation run")
    top_n: int = field(50, help="rows of the most-wrong report")
    quiet: bool = field(False, negatable=False,
                        help="kept for older command lines: the job is quiet unless --verbose")


def _flags(parser):
    add_config_flags(parser, TrainHeadRun)
    add_config_flags(parser, HeadConfig)


def _run(args, *, show_progress=False):
    # TensorFlow (and, for k-fold, Beam) imported here: after the output is configured.
    from pipeline.training.head_training import train_heads_on_cache  # noqa: PLC0415

    config, keras_lines = config_from(HeadConfig, args), 2 if args.verbose else 0
    if args.folds is not None:
        from pipeline.training.kfold import kfold_on_cache  # noqa: PLC0415

        return [kfold_on_cache(args.cache, args.out, folds=args.folds, config=config,
                               top_n=args.top_n, verbose=keras_lines)]
    return train_heads_on_cache(args.cache, args.out, config=config,
                                fractions=tuple(args.train_fraction), top_n=args.top_n,
                                verbose=keras_lines)


def _report(results, args):
    from pipeline.training.head_training import comparison_markdown  # noqa: PLC0415

    if args.folds is not None:
        cv = results[0]["cv"]
        print("\n".join(f"{m}: {v['mean']:.4f} +/- {v['std']:.4f}" for m, v in cv.items()))
    else:
        print(comparison_markdown(results))
        for result in results:
            if (result.get("selection") or {}).get("rule") == "out_of_fold":
                chosen = result["selection"]
                print(f"epochs: {chosen['epochs']}, chosen over {chosen['folds']} folds of "
                      f"{chosen['images']} training images (out-of-fold accuracy "
                      f"{chosen['out_of_fold_accuracy']:.4f}); validation never steered it")
    print(os.path.join(args.out, "index.html"))


JOB = Job("train_head", __doc__, EXAMPLE, flags=_flags, run=_run, report=_report)
main, run, build_parser = JOB.main, JOB.run_argv, JOB.build_parser


if __name__ == "__main__":
    main()
