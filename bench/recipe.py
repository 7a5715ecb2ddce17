"""The default recipe, seeds and held-out test images: head, fine-tuned and shipped model.

    python bench/recipe.py [--sets flowers75 genki flowers] [--seeds 1 2 3] [--before COMMIT]
        [--limit N] [--epochs E] [--backbone B --alpha A --weights PATH] [--image-size N]
        [--cache-root cache] [--out DIR] [--previous]

For each data set it runs the jobs as a user would, with no tuning flags: `jobs.embed` once per
code, then per seed (`--seed` of `jobs.train_head` and `jobs.finetune`: the heads' initialisation
and the fine-tune's data order and augmentation) `jobs.train_head` and `jobs.finetune`, and scores
on **test images that no job saw** (a quarter of each class, by a hash of the file's name): the
head (on the cache's backbone), the fine-tuned model (the ensemble's fine-tuned member; for older
code, `model.keras` when it kept a fine-tune epoch) and the shipped `model.keras`. It reports the
seconds from a fresh cache to the shipped model (head + fine-tune jobs, start-up included) and,
over seeds, the mean and standard deviation of each figure. `--before COMMIT` runs the code of
COMMIT (its `pipeline/` and `jobs/`) on the same images side by side, from a fresh cache of its
own. The data sets:

- `genki`: ../shared/data/genki4k (two classes), with MobileNet 0.25 (the issue's GENKI target);
- `flowers`: ../shared/data/flower_photos (five classes), MobileNetV2 0.5 (the default);
  (`--backbone` puts one backbone on every set);
- `flowers75`: flowers with 75 training images per class (the seeds' "10 % of the data"): the
  validation images of the flowers part the jobs see and 75 of its training images per class
  (by a hash of the id), scored on the flowers test images.

`--limit N` keeps the first N images (sorted names) of each class, to bound a smoke run;
`--previous` also runs each set with the first round's defaults (no face crop, the backbone's own
input size, fine-tune Adam 1e-4 without warm-up) as `<set>_previous`. Ends with one JSON line.
"""
import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import MOBILENET_025, REPO, emit, export_code, run_job  # noqa: E402
from pipeline.data.sources import assign_split  # noqa: E402

SHARED = REPO.parent / "shared"
#: The flags that give the first round's defaults (`--image-size` gets the backbone's own).
PREVIOUS = {"embed": ["--no-face-crop", "--image-size"],
            "finetune": ["--learning-rate", "1e-4", "--warmup-epochs", "0"]}
DATA = {"genki": SHARED / "data" / "genki4k", "flowers": SHARED / "data" / "flower_photos"}
MOBILENET_V2_05 = (SHARED / "weights" /
                   "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5")
#: The backbone of each set: `(name, alpha, weights, input size of --previous)`.
BACKBONES = {"genki": ("mobilenet", 0.25, MOBILENET_025, 224),
             "flowers": ("mobilenet_v2", 0.5, MOBILENET_V2_05, 224),
             "flowers75": ("mobilenet_v2", 0.5, MOBILENET_V2_05, 224)}
#: The share of each class held out as test images, and the embed job's default split.
TEST_SHARE, EMBED_SEED, VAL_FRACTION = 0.25, 123, 0.2


def _link(target, link):
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if not os.path.lexists(link):
        os.symlink(os.path.realpath(target), link)


def _rank(text):
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2 ** 64


def split_folder(source, root, *, limit=None):
    """Symlinks each class folder's images under `root/jobs` and `root/test` (`TEST_SHARE` of
    them by a hash of `class/file`), the first `limit` files of each class only if given."""
    for name in sorted(os.listdir(source)):
        if not os.path.isdir(os.path.join(source, name)):
            continue
        for file in sorted(os.listdir(os.path.join(source, name)))[:limit]:
            part = "test" if _rank(f"test\x00{name}/{file}") < TEST_SHARE else "jobs"
            _link(os.path.join(source, name, file), os.path.join(root, part, name, file))
    return os.path.join(root, "jobs"), os.path.join(root, "test")


def per_class_folder(jobs_root, root, per_class):
    """The validation images (the embed job's default split) and `per_class` training images
    (by a hash of the id) of each class of `jobs_root`, as symlinks under `root`."""
    for name in sorted(os.listdir(jobs_root)):
        ids = [f"{name}/{file}" for file in sorted(os.listdir(os.path.join(jobs_root, name)))]
        val = [i for i in ids if assign_split(i, seed=EMBED_SEED, val_fraction=VAL_FRACTION)
               == "val"]
        train = sorted(set(ids) - set(val), key=lambda i: _rank(f"75\x00{i}"))[:per_class]
        for image_id in val + train:
            _link(os.path.join(jobs_root, image_id), os.path.join(root, image_id))
    return root


def test_scores(cache_dir, head_dir, tune_dir, test_root):
    """Test accuracy of the head, the fine-tuned model and the shipped model.keras."""
    import keras  # noqa: F401  (registers the project's layers before loading)

    from pipeline.data.images import load_image
    from pipeline.features import cache
    from pipeline.training import ensemble
    from pipeline.training.end_to_end import build_model, load_finetuned
    from pipeline.training.heads import load_head, logits_to_proba

    manifest = cache.read_manifest(cache_dir)
    classes, config = manifest["class_names"], manifest["config"]
    files = [(os.path.join(test_root, c, f), classes.index(c)) for c in sorted(os.listdir(
        test_root)) for f in sorted(os.listdir(os.path.join(test_root, c)))]
    shipped, _ = load_finetuned(tune_dir)
    with open(os.path.join(tune_dir, "report.json")) as handle:
        kept = json.load(handle)["kept"]
    models = {"head": build_model(manifest, load_head(head_dir)), "shipped": shipped}
    if ensemble.is_ensemble(shipped):
        models["finetuned"] = ensemble.members(shipped)[0]
    elif kept == "finetuned":
        models["finetuned"] = shipped
    right = {name: 0 for name in models}
    for start in range(0, len(files), 64):
        chunk = files[start:start + 64]
        images = np.stack([load_image(open(path, "rb").read(), config["image_size"],
                                      face_crop=config.get("face_crop", False))
                           for path, _ in chunk])
        labels = np.array([label for _, label in chunk])
        for name, model in models.items():
            proba = logits_to_proba(model.predict(images, verbose=0), len(classes))
            right[name] += int((proba.argmax(1) == labels).sum())
    return {f"{name}_test": round(right[name] / len(files), 4) for name in models} | {
        "test_images": len(files)}


def run_set(name, data, test_root, out, args, *, seed, cache_dir, flags=None, code_root=None):
    """Trains the head and fine-tunes one data set with one seed; returns its figures."""
    flags = flags or {}
    head_dir, tune_dir = os.path.join(out, name, "head"), os.path.join(out, name, "finetune")
    head_s, _, _ = run_job("jobs.train_head", ["--cache", cache_dir, "--out", head_dir,
                                               "--quiet", "--seed", str(seed)],
                           code_root=code_root)
    tune_s, _, _ = run_job("jobs.finetune", [
        "--cache", cache_dir, "--head-dir", head_dir, "--out", tune_dir, "--seed", str(seed),
        *(["--epochs", str(args.epochs)] if args.epochs else []), *flags.get("finetune", [])],
        code_root=code_root)
    with open(os.path.join(tune_dir, "report.json")) as handle:
        report = json.load(handle)
    figures = {"seed": seed, "head_val": round(report["head_vs_finetuned"]["head_accuracy"], 4),
               "model_val": round(report["accuracy"], 4), "kept": report["kept"],
               "kept_epoch": report["kept_epoch"], "finetune_epochs": report["finetune_epochs"],
               "ensemble_weight": (report.get("ensemble") or {}).get("weight"),
               "train_images": report["train_images"], "val_images": report["num_examples"],
               "head_s": round(head_s, 1), "finetune_s": round(tune_s, 1),
               "seconds_to_shipped": round(head_s + tune_s, 1)}
    figures.update(test_scores(cache_dir, head_dir, tune_dir, test_root))
    return figures


def _backbone(name, args):
    """`(backbone, alpha, weights)` of a set: its own, or the command line's for every set."""
    backbone, alpha, weights, _ = BACKBONES[name]
    if args.backbone:
        return args.backbone, args.alpha, args.weights
    return backbone, alpha, str(weights)


def _embed(data, name, args, cache_root, flags=None, code_root=None):
    backbone, alpha, weights = _backbone(name, args)
    seconds, _, cache_dir = run_job("jobs.embed", [
        "--data", data, "--backbone", backbone, "--alpha", str(alpha), "--weights", weights,
        *(["--image-size", str(args.image_size)] if args.image_size else []),
        "--follow-links=any", "--cache-dir", cache_root,
        *(flags or {}).get("embed", [])], code_root=code_root)
    return seconds, cache_dir


def summarise(runs):
    """Mean and standard deviation over seeds of each figure of a set's runs."""
    keys = ("head_test", "finetuned_test", "shipped_test", "seconds_to_shipped")
    summary = {}
    for key in keys:
        values = [run[key] for run in runs if run.get(key) is not None]
        if values:
            summary[key] = {"mean": round(statistics.fmean(values), 4),
                            "std": round(statistics.pstdev(values), 4), "n": len(values)}
    summary["shipped_minus_head_worst"] = round(min(
        run["shipped_test"] - run["head_test"] for run in runs), 4)
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", default=["flowers75", "genki", "flowers"],
                        choices=["genki", "flowers", "flowers75"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=None,
                        help="fine-tune epochs (default: each code's own default)")
    parser.add_argument("--limit", type=int, default=None, help="images per class at most")
    parser.add_argument("--backbone", default=None,
                        help="one backbone for every set (default: each set's own)")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--weights", default=str(MOBILENET_V2_05))
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--cache-root", default=None, help="default: under --out")
    parser.add_argument("--out", default=None, help="keep the outputs here (default: temporary)")
    parser.add_argument("--before", default=None, metavar="COMMIT",
                        help="also run each set with the code of COMMIT, from a fresh cache")
    parser.add_argument("--previous", action="store_true",
                        help="also run the first round's defaults (no face crop, the "
                        "backbone's own size, Adam 1e-4 without warm-up)")
    args = parser.parse_args()
    out = os.path.abspath(args.out or tempfile.mkdtemp())
    cache_root = args.cache_root or os.path.join(out, "cache")
    before = args.before and export_code(args.before, os.path.join(out, "code-before"))
    parts = {name: split_folder(path, os.path.join(out, "data", name), limit=args.limit)
             for name, path in DATA.items()}
    runs, embeds = {}, {}
    for name in args.sets:
        if name == "flowers75":
            data = per_class_folder(parts["flowers"][0], os.path.join(out, "data", "flowers75"),
                                    75)
            test_root = parts["flowers"][1]
        else:
            data, test_root = parts[name]
        variants = {name: None}
        if args.previous:
            variants[f"{name}_previous"] = {**PREVIOUS, "embed": [
                *PREVIOUS["embed"], str(BACKBONES[name][3])]}
        for label, flags in variants.items():
            codes = ({f"{label}_before": before} if before else {}) | {label: None}
            for code_label, code_root in codes.items():
                embed_s, cache_dir = _embed(data, name, args, os.path.join(
                    cache_root, code_label), flags, code_root)
                embeds[code_label] = round(embed_s, 1)
                runs[code_label] = []
                for seed in args.seeds:
                    figures = run_set(f"{code_label}/seed{seed}", data, test_root, out, args,
                                      seed=seed, cache_dir=cache_dir, flags=flags,
                                      code_root=code_root)
                    runs[code_label].append(figures)
                    print(f"{code_label} seed {seed}: test head {figures['head_test']:.4f}, "
                          f"fine-tuned {figures.get('finetuned_test', float('nan')):.4f}, "
                          f"shipped {figures['shipped_test']:.4f} ({figures['kept']}); "
                          f"{figures['seconds_to_shipped']:.0f} s", flush=True)
    summary = {label: summarise(figures) for label, figures in runs.items()}
    print("\n| set | code | head (test) | fine-tuned (test) | shipped (test) | shipped - head, "
          "worst seed | s to shipped |\n|---|---|---|---|---|---|---|")
    for label, s in summary.items():
        cells = [f"{s[k]['mean']:.4f} ± {s[k]['std']:.4f}" if k in s else "n/a"
                 for k in ("head_test", "finetuned_test", "shipped_test")]
        print(f"| {label.removesuffix('_before')} | "
              f"{args.before if label.endswith('_before') else 'this checkout'} | "
              f"{' | '.join(cells)} | {s['shipped_minus_head_worst']:+.4f} | "
              f"{s['seconds_to_shipped']['mean']:.0f} |")
    ratios = {label: round(summary[label]["seconds_to_shipped"]["mean"]
                           / summary[f"{label}_before"]["seconds_to_shipped"]["mean"], 3)
              for label in summary if f"{label}_before" in summary}
    emit({"sets": runs, "summary": summary, "embed_s": embeds, "time_ratio": ratios,
          "seconds_to_kept": {label: s["seconds_to_shipped"]["mean"]
                              for label, s in summary.items()},
          "before": args.before, "seeds": args.seeds, "epochs": args.epochs,
          "limit": args.limit, "test_share": TEST_SHARE,
          "backbone": {name: _backbone(name, args)[:2] for name in args.sets}})


if __name__ == "__main__":
    main()
