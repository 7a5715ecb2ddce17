"""Which default backbone: frozen pooled 224-px features + logistic regression, per weights file.

    python bench/backbones.py [--flowers-per-class 400] [--genki-per-class 400] [--folds 5]

For each real ImageNet weights file in ../shared/weights (MobileNet 0.25, MobileNetV2 0.35 and
0.5, found by `--weights-dir` resolution as the jobs do), side by side in one run: the backbone
embeds the first N images per class (sorted names) of flower_photos (5 classes) and GENKI-4K
(2 classes), decoded once and resized to 224 px like Keras; a standardised logistic regression
is scored by stratified k-fold cross-validation (accuracy, mean and standard deviation over
folds); img/s is the backbone's embedding rate over both sets (batch 32, after a warm-up
batch). Ends with one JSON line.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pipeline.console import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()
from bench.common import REPO, emit  # noqa: E402
from pipeline.data.images import load_image  # noqa: E402
from pipeline.data.sources import open_source  # noqa: E402
from pipeline.features.backbones import Embedder  # noqa: E402

WEIGHTS = REPO.parent / "shared" / "weights"
DATA = REPO.parent / "shared" / "data"
#: The three real weights files: (label, backbone, alpha).
CANDIDATES = (("MobileNet 0.25", "mobilenet", 0.25), ("MobileNetV2 0.35", "mobilenet_v2", 0.35),
              ("MobileNetV2 0.5", "mobilenet_v2", 0.5))
SIZE = 224


def load_images(root, per_class):
    """The first `per_class` images of each class, decoded at 224 px; `(images, labels)`."""
    source = open_source(str(root))
    taken = {}
    for ref in source.refs():
        taken.setdefault(ref.label, [])
        if len(taken[ref.label]) < per_class:
            taken[ref.label].append(ref)
    refs = [ref for label in sorted(taken) for ref in taken[label]]
    images = np.stack([load_image(open(r.path, "rb").read(), SIZE) for r in refs])
    return images, np.array([r.label for r in refs])


def embed_all(embed, images, batch_size=32):
    """Embeddings of `images` and the seconds the backbone took (after one warm-up batch)."""
    embed(images[:batch_size])
    start = time.perf_counter()
    vectors = [embed(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return np.concatenate(vectors), time.perf_counter() - start


def cv_accuracy(features, labels, folds):
    """Mean and standard deviation of stratified k-fold logistic-regression accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    scores = cross_val_score(model, features, labels,
                             cv=StratifiedKFold(folds, shuffle=True, random_state=0))
    return float(np.mean(scores)), float(np.std(scores))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flowers-per-class", type=int, default=400)
    parser.add_argument("--genki-per-class", type=int, default=400)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    sets = {"flowers": load_images(DATA / "flower_photos", args.flowers_per_class),
            "genki": load_images(DATA / "genki4k", args.genki_per_class)}
    rows = []
    for label, backbone, alpha in CANDIDATES:
        embed = Embedder(backbone, image_size=SIZE, alpha=alpha, weights_dir=str(WEIGHTS))
        row = {"backbone": label, "weights": os.path.basename(embed.weights_used),
               "dim": embed.embedding_dim}
        images_done, seconds = 0, 0.0
        for name, (images, labels) in sets.items():
            features, took = embed_all(embed, images)
            row[name], row[f"{name}_std"] = cv_accuracy(features, labels, args.folds)
            images_done, seconds = images_done + len(images), seconds + took
        row["img_per_s"] = images_done / seconds
        rows.append(row)
    print(f"frozen pooled {SIZE}-px features + logistic regression, {args.folds}-fold; "
          f"flowers {len(sets['flowers'][1])} images, GENKI-4K {len(sets['genki'][1])} images")
    print("| backbone | flowers accuracy | GENKI-4K accuracy | img/s | dim |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backbone']} | {r['flowers']:.3f} +/- {r['flowers_std']:.3f} | "
              f"{r['genki']:.3f} +/- {r['genki_std']:.3f} | {r['img_per_s']:.1f} | {r['dim']} |")
    emit({"size": SIZE, "folds": args.folds, "flowers_images": len(sets["flowers"][1]),
          "genki_images": len(sets["genki"][1]),
          "results": [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
                      for r in rows]})


if __name__ == "__main__":
    main()
