"""Export job: `python -m jobs.export --model MODEL.keras|HEAD_DIR --out DIR [--int8]`.

Exports a fine-tuned model (`jobs.finetune`) or a head (`jobs.train_head`, exported with its
cache's backbone, weights, input size and preprocessing before it). Writes a SavedModel whose
serving signature takes encoded image bytes (decode, resize and the backbone's preprocessing
inside) and returns class probabilities and names, a float32 TFLite file (`--int8` adds a
dynamic-range int8 one), `labels.txt` and `export.json` (what was exported: source, class names,
image size, face crop, backbone). A model trained on face crops takes each image's face box too
(`face_crop.json` says how to find it; OpenCV's detector cannot run inside the graph) and crops
in the graph, as in training.
"""
import argparse
import sys
from argparse import RawDescriptionHelpFormatter

from jobs import add_verbose_flag, configure_output
from pipeline.evaluation.export import export_model

EXAMPLE = """examples (SavedModel, float32 and int8 TFLite, labels; a head, with its backbone):
  python -m jobs.export --model runs/finetune/model.keras --out exported --int8
  python -m jobs.export --model runs/head --out exported-head
"""


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m jobs.export",
                                     description=__doc__.split("\n")[0],
                                     epilog=EXAMPLE, formatter_class=RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True,
                        help="model.keras from jobs.finetune, or a head folder from "
                             "jobs.train_head")
    parser.add_argument("--out", required=True)
    parser.add_argument("--int8", action="store_true", help="also a dynamic-range int8 TFLite")
    return add_verbose_flag(parser)


def run(argv=None):
    """Parses `argv` and exports; returns the dict of written paths."""
    args = build_parser().parse_args(argv)
    return export_model(args.model, args.out, int8=args.int8)


def main(argv=None):
    configure_output(build_parser().parse_known_args(argv)[0].verbose)
    try:
        paths = run(argv)
    except ValueError as err:
        sys.exit(f"error: {err}")
    for name, path in paths.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
