"""Cached-feature transfer learning on image folders, in four stages.

Every import points down this list, never up:

- `pipeline.data`: sources (class folders, TFDS) with deterministic splits, image decoding,
  augmentation, face crop, the data fingerprint, the generated sample.
- `pipeline.batch`: the one pass over images that every batch job shares, on any Beam runner
  (listing, shards, per-shard step, accounting, publishing, reuse by content digest).
- `pipeline.features`: backbones, the embed job's typed config and cache key, its Beam pipeline
  (`embed`) and orchestration (`embed_job`), shard layout, accounting, records and the cache.
- `pipeline.reports`: report files and pages (figures, pages, the runs index), written by
  training and evaluation alike.
- `pipeline.training`: heads, k-fold, model selection, fine-tuning, experiments.
- `pipeline.prediction`: the predict job: a trained model over new images on the shared pass.
- `pipeline.evaluation`: scheduled evaluation, export, the data audit.

`pipeline.validation` (boundary checkers), `pipeline.files` (atomic writes),
`pipeline.keras_compat` (the private Keras internals we reach) and `pipeline.console` (quiet
output and progress) serve every stage.
"""
