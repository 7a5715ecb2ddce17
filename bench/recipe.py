"""The default recipe on three data sets: head against fine-tuned model, which was kept, seconds.

    python bench/recipe.py [--sets genki flowers flowers75] [--epochs 20] [--limit N]
        [--backbone mobilenet_v2 --alpha 0.5 --weights PATH] [--image-size N]
        [--cache-root cache] [--out DIR] [--previous]

For each data set it runs the three jobs as a user would, with no tuning flags: `jobs.embed`
(a complete cache under --cache-root is reused, and its seconds are then those of the check),
`jobs.train_head` and `jobs.finetune` (only `--epochs`, to bound the time), and reads the
validation accuracy of the head and of `model.keras`, which candidate the fine-tune job kept
(`kept`, `kept_epoch`) and the seconds of each job. The data sets:

- `genki`: ../shared/data/genki4k (two classes);
- `flowers`: ../shared/data/flower_photos (five classes);
- `flowers75`: flower_photos with 75 training images per class: a folder of symlinks under
  --out holding the first 75 training images of each class of the `flowers` split (ranked by a
  hash of the id) and every validation image, so both share one validation split.

`--previous` also runs each set with the first round's defaults (no face crop, the backbone's own
input size, fine-tune Adam 1e-4 without warm-up), side by side, as `<set>_previous`.

`--before COMMIT` also runs each set with the code of COMMIT (its `pipeline/` and `jobs/`, in
a temporary folder), one after the other, each from a fresh cache of its own, as
`<set>_before`: `seconds_to_kept` is the seconds from nothing to the kept model (embed + head +
fine-tune), and the closing line's `seconds_to_kept` holds both codes' for each set (78ba832:
the commit that issue 27 measured, before the batched head, the pixel cache and the faster
report).

`--limit N` keeps the first N images (sorted names) of each class of every data set, to bound the
time of a smoke run. On GENKI-4K it also gives the seconds to 0.90 validation accuracy from a fresh
cache (embed + head + the fine-tune epochs up to the first at 0.90, with the fine-tune's seconds
spread evenly over its epochs; null when never reached). Ends with one JSON line.
"""
import argparse
import csv
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import REPO, emit, export_code, run_job  # noqa: E402
from bench.head_ablation import per_class_subset  # noqa: E402
from pipeline.features import cache  # noqa: E402
from pipeline.features.backbones import get_spec  # noqa: E402

SHARED = REPO.parent / "shared"
#: The flags that give the first round's defaults (before face crop by default, Adam 3e-4 with a
#: warm-up epoch and the input size decided on the data); `--image-size` gets the backbone's own.
PREVIOUS = {"embed": ["--no-face-crop", "--image-size"],
            "finetune": ["--learning-rate", "1e-4", "--warmup-epochs", "0"]}
DATA = {"genki": SHARED / "data" / "genki4k", "flowers": SHARED / "data" / "flower_photos"}
MOBILENET_V2_05 = (SHARED / "weights" /
                   "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5")


def limited(source, root, limit):
    """Symlinks the first `limit` files (sorted) of each class folder of `source` under `root`."""
    for name in sorted(os.listdir(source)):
        if not os.path.isdir(os.path.join(source, name)):
            continue
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for file in sorted(os.listdir(os.path.join(source, name)))[:limit]:
            _link(os.path.join(source, name, file), os.path.join(root, name, file))
    return root


def per_class_folder(cache_dir, root, per_class):
    """Symlinks `per_class` training images of each class (by a hash of the id) and every
    validation image of a folder cache under `root`, keeping the cache's split."""
    manifest = cache.read_manifest(cache_dir)
    source = manifest["source"]["root"]
    train = cache.load_split(cache_dir, "train", clean_only=True)
    val = cache.load_split(cache_dir, "val", clean_only=True, verify=False)
    for image_id in [*val.ids, *per_class_subset(train, per_class).ids]:
        _link(os.path.join(source, image_id), os.path.join(root, image_id))
    return root


def _link(target, link):
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if not os.path.lexists(link):
        os.symlink(os.path.realpath(target), link)


def _seconds_to(log_path, threshold, finetune_seconds):
    with open(log_path) as handle:
        # what would ship after each epoch: the better of the plain and the mirror-averaged model
        accuracies = [max(float(row["val_accuracy"]), float(row.get("val_tta_accuracy") or 0))
                      for row in csv.DictReader(handle)]
    reached = [i for i, a in enumerate(accuracies) if a >= threshold]
    return None if not reached else finetune_seconds * (reached[0] + 1) / len(accuracies)


def run_set(name, data, out, args, flags=None, *, code_root=None, cache_root=None):
    """Embeds, trains the head and fine-tunes one data set; returns its figures.

    `flags`: extra `{"embed": [...], "finetune": [...]}` arguments (the previous defaults);
    `code_root`: the code to run (default: this checkout); `cache_root`: the cache root
    (default: `--cache-root`).
    """
    flags = flags or {}
    embed_s, _, cache_dir = run_job("jobs.embed", [
        "--data", data, "--backbone", args.backbone, "--alpha", str(args.alpha), "--weights",
        args.weights, *(["--image-size", str(args.image_size)] if args.image_size else []),
        "--follow-links=any", "--cache-dir", cache_root or args.cache_root,
        *flags.get("embed", [])], code_root=code_root)
    head_dir, tune_dir = os.path.join(out, name, "head"), os.path.join(out, name, "finetune")
    head_s, _, _ = run_job("jobs.train_head", ["--cache", cache_dir, "--out", head_dir,
                                               "--quiet"], code_root=code_root)
    tune_s, _, _ = run_job("jobs.finetune", ["--cache", cache_dir, "--head-dir", head_dir,
                                             "--out", tune_dir, "--epochs", str(args.epochs),
                                             *flags.get("finetune", [])], code_root=code_root)
    with open(os.path.join(tune_dir, "report.json")) as handle:
        report = json.load(handle)
    figures = {"head_accuracy": round(report["head_vs_finetuned"]["head_accuracy"], 4),
               "best_finetune_epoch_accuracy": round(
                   (report["best_finetune_score"] or {}).get("val_accuracy", float("nan")), 4),
               "model_accuracy": round(report["accuracy"], 4), "kept": report["kept"],
               "flip_tta": report.get("flip_tta"),
               "face_crop": report["embed_config"]["face_crop"],
               "image_size": report["embed_config"]["image_size"],
               "learning_rate": report["config"]["learning_rate"],
               "kept_epoch": report["kept_epoch"], "finetune_epochs": report["finetune_epochs"],
               "train_images": report["train_images"], "val_images": report["num_examples"],
               "embed_s": round(embed_s, 1), "head_s": round(head_s, 1),
               "finetune_s": round(tune_s, 1),
               "seconds_to_kept": round(embed_s + head_s + tune_s, 1), "cache_dir": cache_dir}
    if name.startswith("genki"):
        to_90 = _seconds_to(os.path.join(tune_dir, "training_log.csv"), 0.90, tune_s)
        figures["seconds_to_0.90"] = (None if to_90 is None
                                      else round(embed_s + head_s + to_90, 1))
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", default=["genki", "flowers", "flowers75"],
                        choices=["genki", "flowers", "flowers75"])
    parser.add_argument("--epochs", type=int, default=20, help="fine-tune epochs at most")
    parser.add_argument("--limit", type=int, default=None, help="images per class at most")
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--weights", default=str(MOBILENET_V2_05))
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--cache-root", default="cache")
    parser.add_argument("--out", default=None, help="keep the outputs here (default: temporary)")
    parser.add_argument("--before", default=None, metavar="COMMIT",
                        help="also run each set with the code of COMMIT, from a fresh cache "
                        "(e.g. 78ba832)")
    parser.add_argument("--previous", action="store_true",
                        help="also run the first round's defaults (no face crop, the "
                        "backbone's own size, Adam 1e-4 without warm-up)")
    args = parser.parse_args()
    out = os.path.abspath(args.out or tempfile.mkdtemp())
    sources = {name: str(path) for name, path in DATA.items()}
    if args.limit:
        sources = {name: limited(path, os.path.join(out, "data", name), args.limit)
                   for name, path in sources.items()}
    previous = {**PREVIOUS, "embed": [*PREVIOUS["embed"], str(
        args.image_size or get_spec(args.backbone).default_size)]}
    results = {}
    before = args.before and export_code(args.before, os.path.join(out, "code-before"))
    for name in args.sets:
        if name == "flowers75":
            _, _, flowers_cache = run_job("jobs.embed", [
                "--data", sources["flowers"], "--backbone", args.backbone, "--alpha",
                str(args.alpha), "--weights", args.weights,
                *(["--image-size", str(args.image_size)] if args.image_size else []),
                "--cache-dir", args.cache_root])
            data = per_class_folder(flowers_cache, os.path.join(out, "data", "flowers75"), 75)
        else:
            data = sources[name]
        runs = {name: None, **({f"{name}_previous": previous} if args.previous else {})}
        for label, flags in runs.items():
            fresh = {}
            if args.before:  # both codes from nothing, the old one first
                fresh = {"cache_root": os.path.join(out, f"cache-{label}")}
                results[f"{label}_before"] = run_set(
                    f"{label}_before", data, out, args, flags, code_root=before,
                    cache_root=os.path.join(out, f"cache-{label}_before"))
            results[label] = figures = run_set(label, data, out, args, flags, **fresh)
            print(f"{label}: head {figures['head_accuracy']:.4f} -> model.keras "
                  f"{figures['model_accuracy']:.4f} (kept {figures['kept']}, epoch "
                  f"{figures['kept_epoch']}, face crop {figures['face_crop']}, "
                  f"{figures['image_size']} px), "
                  f"{figures['finetune_s']:.0f} s fine-tune", flush=True)
    if args.before:
        print("\n| set | code | seconds to the kept model | embed | head | fine-tune "
              "| kept | kept model accuracy |\n|---|---|---|---|---|---|---|---|")
        for label, figures in results.items():
            print(f"| {label.removesuffix('_before')} | "
                  f"{args.before if label.endswith('_before') else 'this checkout'} | "
                  f"{figures['seconds_to_kept']:.1f} | {figures['embed_s']:.1f} | "
                  f"{figures['head_s']:.1f} | {figures['finetune_s']:.1f} | {figures['kept']} | "
                  f"{figures['model_accuracy']:.4f} |")
    emit({"sets": results, "seconds_to_kept": {
              label: figures["seconds_to_kept"] for label, figures in results.items()},
          "before": args.before, "epochs": args.epochs, "limit": args.limit,
          "backbone": args.backbone, "alpha": args.alpha, "image_size": args.image_size})


if __name__ == "__main__":
    main()
