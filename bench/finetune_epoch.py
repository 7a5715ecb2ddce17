"""A fine-tune epoch against the raw training step on pixels held in memory.

    python bench/finetune_epoch.py [--per-class 400] [--image-size 96] [--repeats 3]
        [--cache-root /tmp/finetune_epoch/cache] [--out DIR]

For GENKI-4K and flower_photos (the first `--per-class` files of each class, linked), runs
`jobs.embed` (MobileNet 0.25, real weights, K = 2; a complete cache under --cache-root is reused)
and `jobs.train_head`, then in this process builds the fine-tune job's model and optimizer
(`pipeline.training.finetune`) and times, side by side and interleaved, one training epoch on:

- raw step: the same model, batch and optimizer on the decoded, resized float32 pixels held in
  memory (`tf.data.Dataset.from_tensor_slices`, shuffled, batched), the model's own augmentation;
- decode: the job's training dataset decoding every JPEG every epoch (the job before the pixel
  cache);
- pixel cache: the job's training dataset as it runs now (decoded in the first epoch, pixels
  read back after).

The first epoch of each feed (tracing, and filling the pixel cache) is reported on its own.
A profile follows: the input pipeline alone (decode, face crop, resize; from the pixel cache),
the augmentation layers alone, and the face detection done once per run. Ends with one JSON line.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import GENKI, MOBILENET_025, REPO, emit, run_job  # noqa: E402

FLOWERS = REPO.parent / "shared" / "data" / "flower_photos"


def _subset(source, root, per_class):
    """Links the first `per_class` files of each class folder of `source` under `root`."""
    for name in sorted(os.listdir(source)):
        if not os.path.isdir(source / name):
            continue
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for file in sorted(os.listdir(source / name))[:per_class]:
            link = os.path.join(root, name, file)
            if not os.path.lexists(link):
                os.symlink(source / name / file, link)
    return root


def _prepare(name, source, args, out):
    """Embeds the subset and trains its dense head; returns `(cache_dir, head_dir, seconds)`."""
    data = _subset(source, os.path.join(out, "data", name), args.per_class)
    embed_s, _, cache_dir = run_job("jobs.embed", [
        "--data", data, "--backbone", "mobilenet", "--alpha", "0.25", "--weights",
        str(MOBILENET_025), "--image-size", str(args.image_size), "--augment-copies", "2",
        "--follow-links=any", "--cache-dir", args.cache_root])
    head_dir = os.path.join(out, "head", name)
    head_s, _, _ = run_job("jobs.train_head", ["--cache", cache_dir, "--out", head_dir, "--quiet"])
    return cache_dir, head_dir, embed_s + head_s


def _seconds(work):
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _pass(data):
    """Iterates a dataset once (the input pipeline alone)."""
    for _ in data:
        pass


def _found_once():
    """Makes `image_data.face_boxes` remember the boxes of the paths it was given before."""
    from pipeline.training import image_data

    found, find = {}, getattr(image_data.face_boxes, "__wrapped__", image_data.face_boxes)

    def face_boxes(paths):
        key = tuple(paths)
        if key not in found:
            found[key] = find(paths)
        return found[key]

    face_boxes.__wrapped__ = find
    image_data.face_boxes = face_boxes


class _Bench:
    """The fine-tune job's model and datasets of one cache, and the in-memory raw feed."""

    def __init__(self, cache_dir, head_dir, pixels):
        import numpy as np
        import tensorflow as tf

        from pipeline.training import finetune
        from pipeline.training.config import FinetuneConfig

        self.config = config = FinetuneConfig()
        start = finetune._start(cache_dir, head_dir)
        self.manifest = start.manifest
        self.refs, _ = finetune._training_refs(start.manifest, config)
        steps = -(-len(self.refs) // config.batch_size)
        self.model, _ = finetune._compiled_model(start.manifest, start.head, config,
                                                 steps_per_epoch=steps)
        self.feeds = {}
        _found_once()  # each feed and the profile crop to the same boxes, detected once
        self.face_boxes_s = _seconds(lambda: self.feeds.update(
            decode=finetune._train_dataset(self.refs, start.manifest, config)))
        self.feeds["pixel cache"] = finetune._train_dataset(self.refs, start.manifest, config,
                                                            pixel_cache=pixels)
        batches = list(self.feeds["decode"].as_numpy_iterator())
        images = tf.constant(np.concatenate([x for x, _ in batches]))
        labels = tf.constant(np.concatenate([y for _, y in batches]))
        self.images = images
        self.feeds["raw step"] = tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(
            len(self.refs), seed=config.seed).batch(config.batch_size).prefetch(tf.data.AUTOTUNE)

    def epoch(self, feed):
        return _seconds(lambda: self.model.fit(self.feeds[feed], epochs=1, verbose=0,
                                               shuffle=False))

    def profile(self):
        """Seconds per epoch of the pieces: input pipeline alone, decode/crop/resize in one
        thread, augmentation alone."""
        import tensorflow as tf

        from pipeline.data.faces import crop_to_box
        from pipeline.training import image_data

        face_crop = self.manifest["config"].get("face_crop", False)
        boxes = image_data.face_boxes([r.path for r in self.refs]) if face_crop else None
        side = self.manifest["config"]["image_size"]
        decoded, parts = [], {"decode (1 thread)": 0.0, "face crop (1 thread)": 0.0,
                              "resize (1 thread)": 0.0}
        for index, ref in enumerate(self.refs):
            parts["decode (1 thread)"] += _seconds(
                lambda: decoded.append(image_data._read(ref.path.encode())))
            if boxes is not None and boxes[index][0] >= 0:
                parts["face crop (1 thread)"] += _seconds(
                    lambda: decoded.append(crop_to_box(decoded.pop(), boxes[index])))
            parts["resize (1 thread)"] += _seconds(
                lambda: tf.image.resize(decoded.pop(), (side, side)))
        augment = self.model.get_layer("augment")
        batches = [self.images[i:i + self.config.batch_size]
                   for i in range(0, len(self.refs), self.config.batch_size)]
        for x in batches[:1]:
            augment(x, training=True)
        return {"input pipeline alone, decode": _seconds(lambda: _pass(self.feeds["decode"])),
                "input pipeline alone, pixel cache": _seconds(
                    lambda: _pass(self.feeds["pixel cache"])),
                **parts,
                "augmentation layers alone": _seconds(
                    lambda: [augment(x, training=True) for x in batches]),
                "face boxes (once per run)": self.face_boxes_s}


def _measure(name, cache_dir, head_dir, args, out):
    """Times the three feeds interleaved; prints the table and profile; returns the figures."""
    bench = _Bench(cache_dir, head_dir, os.path.join(out, "pixels", name))
    feeds = ("raw step", "decode", "pixel cache")
    first = {feed: bench.epoch(feed) for feed in feeds}
    times = {feed: [] for feed in feeds}
    for repeat in range(args.repeats):
        for feed in feeds[repeat % 3:] + feeds[:repeat % 3]:  # each feed first in turn
            times[feed].append(bench.epoch(feed))
    median = {feed: statistics.median(values) for feed, values in times.items()}
    raw, raw_min = median["raw step"], min(times["raw step"])
    print(f"\n{name}: {len(bench.refs)} training images, {args.image_size} px, batch "
          f"{bench.config.batch_size}, face crop "
          f"{bench.manifest['config'].get('face_crop', False)}, {args.repeats} repeats")
    print("| feed | first epoch s | epoch s (median) | epochs s | vs raw step (median) | "
          "vs raw step (fastest) |\n|---|---|---|---|---|---|")
    for feed in feeds:
        print(f"| {feed} | {first[feed]:.2f} | {median[feed]:.2f} | "
              f"{', '.join(f'{t:.2f}' for t in times[feed])} | {median[feed] / raw:.3f} | "
              f"{min(times[feed]) / raw_min:.3f} |")
    profile = bench.profile()
    print("| profile (one epoch's images) | s |\n|---|---|")
    for part, seconds in profile.items():
        print(f"| {part} | {seconds:.2f} |")
    return {"images": len(bench.refs), "raw_s": round(raw, 3),
            "decode_s": round(median["decode"], 3),
            "pixel_cache_s": round(median["pixel cache"], 3),
            "first_epoch_pixel_cache_s": round(first["pixel cache"], 3),
            "before": round(median["decode"] / raw, 3),
            "after": round(median["pixel cache"] / raw, 3),
            "profile": {k: round(v, 3) for k, v in profile.items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-class", type=int, default=400)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache-root", default=os.path.join(tempfile.gettempdir(),
                                                             "finetune_epoch", "cache"))
    parser.add_argument("--out", default=None, help="keep the outputs here (default: temporary)")
    parser.add_argument("--only", choices=("genki", "flowers"), default=None)
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp()
    figures = {}
    for name, source in (("genki", GENKI), ("flowers", FLOWERS)):
        if args.only in (None, name):
            cache_dir, head_dir, prepare_s = _prepare(name, source, args, out)
            figures[name] = _measure(name, cache_dir, head_dir, args, out)
            figures[name]["prepare_s"] = round(prepare_s, 1)
    emit({**{f"epoch_vs_raw_step_{name}": f["after"] for name, f in figures.items()},
          **{f"epoch_vs_raw_step_{name}_before": f["before"] for name, f in figures.items()},
          "seconds": {name: {k: v for k, v in f.items() if k not in ("before", "after")}
                      for name, f in figures.items()},
          "image_size": args.image_size, "per_class": args.per_class, "repeats": args.repeats})


if __name__ == "__main__":
    main()
