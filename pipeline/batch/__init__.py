"""The one pass over images that every batch job shares, on any Beam runner.

    listing on the workers -> shard = hash(id) mod N -> GroupByKey -> one step per shard
    (model loaded once per worker, batches inside the step, its file and index written whole)
    -> accounting of every listed image in the driver -> publish, the manifest last

- `pipeline.batch.layout`: which shard an image goes to, file names, shard indexes.
- `pipeline.batch.spine`: the `ShardedPass` transform and `ShardFn`, the per-shard step that a
  job subclasses (the embed job writes embeddings, the predict job predictions).
- `pipeline.batch.state`: what one shard step has done (entries, skipped files and their
  reasons) and what it will not read.
- `pipeline.batch.accounting`: every listed image has its results or a reason, or nothing is
  published.
- `pipeline.batch.outputs`: run folders, reuse of an earlier output, publishing.
- `pipeline.batch.options`: Beam's options: the local default runner, runner short names, and
  which arguments Beam takes (no TensorFlow).
- `pipeline.batch.runner`: running a pass on any runner and following its progress.
"""
