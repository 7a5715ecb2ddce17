"""Quickstart: `python -m jobs.quickstart` runs the pipeline offline on a generated sample.

Draws a small two-class folder of synthetic faces (`samples/faces/`), embeds it with a small
MobileNetV2 (ImageNet weights when they can be downloaded, else random weights, said loudly) and
prints what the cache holds. The last line printed is the cache directory.
"""
import argparse
import logging

from jobs import embed
from pipeline.sample import write_sample


def run(argv=None):
    """Writes the sample and embeds it; returns the `EmbedResult`."""
    parser = argparse.ArgumentParser(prog="python -m jobs.quickstart", description=__doc__)
    parser.add_argument("--sample-dir", default="samples/faces")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--cache-dir", default="cache")
    args, beam_args = parser.parse_known_args(argv)
    write_sample(args.sample_dir, per_class=args.per_class, size=96)
    return embed.run(["--data", args.sample_dir, "--backbone", "mobilenet_v2", "--alpha", "0.35",
                      "--image-size", "96", "--weights", "auto", "--augment-copies", "2",
                      "--cache-dir", args.cache_dir, *beam_args])


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    result = run(argv)
    print(embed.summary(result))
    print(result.cache_dir)


if __name__ == "__main__":
    main()
