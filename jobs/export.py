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
from jobs.cli import Job, add_config_flags, config_from
from pipeline.evaluation.config import ExportConfig

EXAMPLE = """example (SavedModel, float32 and int8 TFLite, labels; a head, with its backbone):
  python -m jobs.export --model runs/finetune/model.keras --out exported --int8
  python -m jobs.export --model runs/head --out exported-head
"""


def _run(args, *, show_progress=False):
    from pipeline.evaluation.export import export_model  # noqa: PLC0415  (TensorFlow, after)
    from pipeline.evaluation.blessing import require_blessed  # noqa: PLC0415

    config = config_from(ExportConfig, args)
    if config.require_blessed:
        require_blessed(config.require_blessed, config.model)
    return export_model(config.model, config.out, int8=config.int8)


def _report(paths, args):
    for name, path in paths.items():
        print(f"{name}: {path}")


JOB = Job("export", __doc__, EXAMPLE, flags=lambda p: add_config_flags(p, ExportConfig),
          run=_run, report=_report)
main, run, build_parser = JOB.main, JOB.run_argv, JOB.build_parser


if __name__ == "__main__":
    main()
