"""`python -m jobs`: lists the jobs, one line each; `python -m jobs.<name> --help` says more."""
import sys

#: Each job and what it does, in the order a project runs them.
JOBS = (
    ("quickstart", "the whole pipeline offline on a drawn sample: embed, head, fine-tune, "
                   "evaluate"),
    ("embed", "backbone embeddings of an image folder or TFDS set, cached as TFRecords (Beam)"),
    ("train_head", "a classifier on a feature cache in seconds; --folds K for k-fold evaluation"),
    ("finetune", "the end-to-end model, warm-started from a head, backbone unfrozen"),
    ("evaluate", "a model on new data: a time-stamped report, runs.csv and a trend (cron-ready)"),
    ("experiment", "head and fine-tune on 1 %, 10 % and 100 % of one cache, in one table"),
    ("audit", "label issues, near-duplicates, leaks and outliers of a cache (cleanlab)"),
    ("export", "SavedModel and TFLite (float32, int8) with labels, for serving; heads too"),
    ("predict", "a trained model over new images on any Beam runner: Parquet, CSV and a page"),
)


def main(argv=None):
    """Prints the list; refuses any argument but `--help` (a job runs as `python -m jobs.NAME`)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] not in ("-h", "--help"):
        names = [name for name, _ in JOBS]
        run = (f"python -m jobs.{argv[0]} {' '.join(argv[1:])}".rstrip() if argv[0] in names
               else "python -m jobs.NAME, NAME one of " + ", ".join(names))
        sys.exit(f"error: python -m jobs lists the jobs and takes no arguments (got {argv[0]}); "
                 f"run {run}")
    width = max(len(name) for name, _ in JOBS)
    for name, summary in JOBS:
        print(f"python -m jobs.{name:<{width}}  {summary}")
    print("each job: --help for its options and a worked example; --verbose for library logs")


if __name__ == "__main__":
    main()
