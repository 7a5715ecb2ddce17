"""Cached-feature transfer learning on image folders, in four stages.

Every import points down this list, never up:

- `pipeline.data`: sources (class folders, TFDS) with deterministic splits, image decoding,
  augmentation, face crop, the data fingerprint, the generated sample.
- `pipeline.features`: backbones, the embed job's typed config and cache key, its Beam pipeline
  (`embed`) and orchestration (`embed_job`), shard layout, accounting, records and the cache.
- `pipeline.reports`: report files and pages (figures, pages, the runs index), written by
  training and evaluation alike.
- `pipeline.training`: heads, k-fold, model selection, fine-tuning, experiments.
- `pipeline.evaluation`: scheduled evaluation, export, the data audit.

`pipeline.validation` (boundary checkers) and `pipeline.console` (quiet output and progress)
serve every stage.
"""
