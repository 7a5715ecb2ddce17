"""Rules for the ensemble's weight, compared on the members of shipped models: test accuracy.

    python bench/ensemble_weight.py --runs DIR [DIR ...] [--resamples 200]

Each DIR is a `jobs.finetune` output whose `model.keras` is an ensemble (as `bench/recipe.py`
leaves them under `<out>/<set>/seed<k>/finetune`), with the test folder of its set found by
`--test` (one per DIR, in order). The members' probabilities on the cache's validation images
and on the test images are computed once; every rule then picks the fine-tuned member's weight
from the validation probabilities alone, and is scored on the test images:

- `head`, `finetuned`, `equal`: the weight 0, 1, 0.5;
- `fitted`: the weight of lowest validation log loss (steps of 0.05);
- `prior500`: `fitted` shrunk toward 0.5 as if equal weights were 500 more images (the job's);
- `bagged`: the mean of `fitted` over bootstrap resamples of the validation images.

Ends with one JSON line: per run and rule, the weight and the test accuracy; and per rule the
mean test accuracy over runs.
"""
import argparse
import json
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import emit  # noqa: E402

def rules(y, tuned, head, resamples):
    """The fine-tuned member's weight under each rule, from validation probabilities."""
    from pipeline.training.ensemble import choose_weight, fitted_weight

    fitted = fitted_weight(y, tuned, head)
    return {"head": 0.0, "finetuned": 1.0, "equal": 0.5, "fitted": fitted,
            "prior500": 0.5 + (fitted - 0.5) * len(y) / (len(y) + 500),
            "bagged": choose_weight(y, tuned, head, resamples=resamples)["weight"]}


def _members_proba(model, images, num_classes):
    from pipeline.training.heads import logits_to_proba

    return logits_to_proba(model.predict(images, verbose=0, batch_size=64), num_classes)


def run_figures(tune_dir, test_root, resamples):
    from pipeline.data.images import load_image
    from pipeline.features import cache
    from pipeline.training import ensemble
    from pipeline.training.end_to_end import load_finetuned
    from pipeline.training.image_data import image_dataset, split_refs

    model, info = load_finetuned(tune_dir)
    config, classes = info["embed_config"], info["class_names"]
    tuned, head = ensemble.members(model)
    with open(os.path.join(tune_dir, "report.json")) as handle:
        cache_dir = json.load(handle)["cache_dir"]
    manifest = cache.read_manifest(cache_dir)
    _, val_refs = split_refs(manifest)
    val = image_dataset(val_refs, config["image_size"], batch_size=32,
                        face_crop=config.get("face_crop", False))
    y_val = np.array([r.label for r in val_refs])
    files = [(os.path.join(test_root, c, f), classes.index(c)) for c in sorted(os.listdir(
        test_root)) for f in sorted(os.listdir(os.path.join(test_root, c)))]
    test = np.stack([load_image(open(p, "rb").read(), config["image_size"],
                                face_crop=config.get("face_crop", False)) for p, _ in files])
    y_test = np.array([label for _, label in files])
    k = len(classes)
    p_val = [_members_proba(m, val, k) for m in (tuned, head)]
    p_test = [_members_proba(m, test, k) for m in (tuned, head)]
    found = {}
    for name, w in rules(y_val, *p_val, resamples).items():
        mixed = w * p_test[0] + (1 - w) * p_test[1]
        found[name] = {"weight": round(w, 4),
                       "test_accuracy": round(float(np.mean(mixed.argmax(1) == y_test)), 4)}
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", required=True)
    parser.add_argument("--test", nargs="+", required=True)
    parser.add_argument("--resamples", type=int, default=200)
    args = parser.parse_args()
    results = {}
    for tune_dir, test_root in zip(args.runs, args.test):
        results[tune_dir] = run_figures(tune_dir, test_root, args.resamples)
        print(tune_dir, {n: (f["weight"], f["test_accuracy"]) for n, f in
                         results[tune_dir].items()}, flush=True)
    names = next(iter(results.values()))
    means = {name: round(statistics.fmean(r[name]["test_accuracy"] for r in results.values()), 4)
             for name in names}
    print("mean test accuracy over runs:", means)
    emit({"runs": results, "mean_test_accuracy": means})


if __name__ == "__main__":
    main()
