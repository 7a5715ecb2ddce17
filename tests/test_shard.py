"""`PredictImages`: the shared pass with the predict step, one Parquet shard and index each."""
import collections

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.batch import layout
from pipeline.data.sources import FolderSource
from pipeline.features import cache
from pipeline.prediction.models import open_model
from pipeline.prediction.shard import COLUMNS, PredictImages, read_rows, shard_name
from pipeline.training.heads import load_head
from tests.conftest import IN_MEMORY


def test_rows_are_the_heads_probabilities_on_the_cached_embeddings(faces, tiny_cache,
                                                                    tiny_head, tmp_path):
    refs = FolderSource(faces).refs()
    with test_pipeline.TestPipeline(options=PipelineOptions(IN_MEMORY)) as p:
        written = (p | beam.Create([(ref, None) for ref in refs])
                   | PredictImages(open_model(tiny_head), run_dir=str(tmp_path), top_k=1,
                                   with_embeddings=False, batch_size=8, num_shards=2,
                                   cached_embeddings=True))
        listed = collections.Counter(layout.shard_of(ref.id, 2) for ref in refs)
        assert_that(written, equal_to([
            {"shard": s, "listed": n, "predicted": n, "reused": 0, "skipped": 0}
            for s, n in listed.items()]))
    rows = {row["id"]: row for s in range(2)
            for row in read_rows(str(tmp_path / shard_name(s, 2)))}
    assert sorted(rows) == sorted(ref.id for ref in refs)
    assert tuple(next(iter(rows.values()))) == COLUMNS[:-1]  # no embeddings asked for
    for s in range(2):  # every image's embedding came from the cache, none from the backbone
        assert layout.read_index(str(tmp_path / layout.index_name(s, 2)))["embedded"] == 0
    clean = cache.load_split(tiny_cache.cache_dir, "train", clean_only=True)
    expected = load_head(tiny_head).predict_proba(clean.embeddings)
    ours = np.array([rows[i]["probabilities"] for i in clean.ids])
    assert np.abs(ours - expected).max() < 1e-5
    assert all(rows[i]["true_label"] == i.split("/")[0] for i in rows)
