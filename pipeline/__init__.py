"""Cached-feature transfer learning on image folders.

Modules, one concept each:

- `pipeline.validation`: small checkers used at every boundary.
- `pipeline.images`: decode any image file to RGB and resize it the Keras way.
- `pipeline.sources`: class-folder and TFDS data sources with deterministic splits.
- `pipeline.augment`: the augmentation recipe, random (training) or deterministic (cache copies).
- `pipeline.backbones`: frozen `keras.applications` backbones by name.
- `pipeline.records`: the `tf.train.Example` layout of one cached embedding.
- `pipeline.config`: the typed, frozen configuration of the embed job and its cache key.
- `pipeline.embed`: the Apache Beam embed job.
- `pipeline.cache`: finding, finishing and reading a feature cache.
"""
