"""GENKI-4K protocols: k-fold head accuracy with and without face crop, and fine-tuning with it.

    python bench/protocols_genki.py [--image-size 224] [--finetune-epochs 8] [--cache-root cache]

On ../shared/data/genki4k with the real MobileNet 0.25 weights: embeds with and without
`--face-crop` (K = 2), runs 4-fold and 10-fold dense-head cross-validation on each (wall time of
each), and fine-tunes on the face-crop cache for --finetune-epochs (0 skips it) so its validation
curve can be set beside the plain one of bench/finetune_genki.py. Ends with one JSON line.
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import GENKI, MOBILENET_025, emit, run_job  # noqa: E402


def _cache(args, face_crop):
    extra = ["--face-crop"] if face_crop else ["--no-face-crop"]
    seconds, _, cache_dir = run_job("jobs.embed", [
        "--data", str(GENKI), "--backbone", "mobilenet", "--alpha", "0.25", "--weights",
        str(MOBILENET_025), "--image-size", str(args.image_size), "--augment-copies", "2",
        "--cache-dir", args.cache_root, *extra])
    return cache_dir, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--finetune-epochs", type=int, default=8)
    parser.add_argument("--cache-root", default="cache")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp()
    figures, rows = {}, []
    for face_crop in (False, True):
        cache_dir, embed_s = _cache(args, face_crop)
        with open(os.path.join(cache_dir, "manifest.json")) as handle:
            no_face = json.load(handle)["num_no_face"]
        tag = "face_crop" if face_crop else "whole"
        for folds in (4, 10):
            target = os.path.join(out, f"{tag}_{folds}fold")
            seconds, _, _ = run_job("jobs.train_head", ["--cache", cache_dir, "--out", target,
                                                     "--quiet", "--folds", str(folds)])
            with open(os.path.join(target, "report.json")) as handle:
                cv = json.load(handle)["cv"]
            rows.append((tag, folds, cv["accuracy"], cv["macro_f1"], cv["roc_auc"], seconds))
            figures[f"{tag}_{folds}fold_acc"] = round(cv["accuracy"]["mean"], 4)
            figures[f"{tag}_{folds}fold_s"] = round(seconds, 1)
        figures[f"{tag}_embed_s"], figures[f"{tag}_no_face"] = round(embed_s, 1), no_face
    print(f"{'images':10}{'folds':>6}{'accuracy':>18}{'macro-F1':>18}{'ROC-AUC':>18}{'wall s':>8}")
    for tag, folds, acc, f1, auc, seconds in rows:
        print(f"{tag:10}{folds:6d}" + "".join(f"{m['mean']:11.4f} ±{m['std']:.3f}"
                                             for m in (acc, f1, auc)) + f"{seconds:8.1f}")
    print(f"face crop: no face found in {figures['face_crop_no_face']} of 3200 images "
          "(kept whole)")
    if args.finetune_epochs:
        head = os.path.join(out, "face_crop_head")
        run_job("jobs.train_head", ["--cache", cache_dir, "--out", head, "--quiet"])
        tune_s, _, _ = run_job("jobs.finetune", ["--cache", cache_dir, "--head-dir", head, "--out",
                                              os.path.join(out, "face_crop_finetune"),
                                              "--epochs", str(args.finetune_epochs)])
        with open(os.path.join(out, "face_crop_finetune", "report.json")) as handle:
            tuned = json.load(handle)
        curve = tuned["history"]["val_accuracy"][tuned["head_epochs"]:]
        print(f"face-crop fine-tune: head {tuned['head_vs_finetuned']['head_accuracy']:.4f} -> "
              f"{tuned['accuracy']:.4f} after {tuned['finetune_epochs']} epochs ({tune_s:.0f} s); "
              f"val per epoch {', '.join(f'{v:.3f}' for v in curve)}")
        figures.update(face_crop_head_val=tuned["head_vs_finetuned"]["head_accuracy"],
                       face_crop_finetuned_val=tuned["accuracy"],
                       face_crop_val_curve=[round(v, 4) for v in curve],
                       face_crop_finetune_s=round(tune_s, 1))
    emit(figures)


if __name__ == "__main__":
    main()
