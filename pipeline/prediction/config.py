"""The typed, frozen configuration of the predict job (no TensorFlow here: the command line reads
it without building anything).
"""
import dataclasses

from pipeline.data.links import follow_links_field
from pipeline.fields import check_choices, field
from pipeline.validation import check_scalar

__all__ = ["PredictConfig"]


@dataclasses.dataclass(frozen=True)
class PredictConfig:
    """What to predict, and how.

    Attributes:
        model: a fine-tuned `model.keras` (or its folder), a head folder, or a `jobs.export`
            folder.
        data: a folder (any layout), a glob, a `.txt`/`.csv` list, or `tfds:NAME[:SPLIT]`.
        out: the output root; each run is `OUT/<run key>/`. Defaults to `"predictions"`.
        top_k: labels in each row's top-k. Defaults to `5`.
        with_embeddings: also write each image's pooled embedding. Defaults to `False`.
        labels_from_folders: the first folder level is the true label: True, False, or None
            (where every folder there is one of the model's classes). Defaults to `None`.
        follow_links: which symbolic links in the data are read (`pipeline.data.links`).
            Defaults to `"no"`.
        require_blessed: a reports folder whose blessed model (`jobs.evaluate --bless`) this
            must be, or None (checked by `jobs.predict`). Defaults to `None`.
        batch_size: images per forward pass. Defaults to `32`.
        num_shards: the shard count; 0: one per 1,000 images. Defaults to `0`.
        cached_embeddings: a head takes the embeddings its cache holds for an image's content
            instead of running its backbone (evaluation on the cache's own images). Defaults
            to `False`.
        most_wrong: the most confident mistakes kept for the evaluation report, where true
            labels are known. Defaults to `50`.
    """

    model: str = field(help="model.keras from jobs.finetune, a head folder from jobs.train_head, "
                       "or a folder from jobs.export", metavar="PATH")
    data: str = field(help="folder (any layout), glob, .txt/.csv list, or tfds:NAME[:SPLIT]",
                      metavar="SRC")
    out: str = field("predictions", metavar="DIR", help="output root")
    top_k: int = field(5, help="labels kept per image")
    with_embeddings: bool = field(False, help="also write each image's pooled embedding")
    labels_from_folders: bool | None = field(
        None, help="record the first folder level as the true label (default: where every "
        "folder there is one of the model's classes)")
    follow_links: str = follow_links_field()
    require_blessed: str | None = field(None, metavar="REPORTS_DIR", help="refuse a model "
                                        "that is not the one blessed in this reports folder")
    batch_size: int = field(32, help="images per forward pass")
    num_shards: int = field(0, help="0: one per 1,000 images")
    cached_embeddings: bool = field(False, cli=False, help="a head takes its cache's "
                                    "embeddings by content digest")
    most_wrong: int = field(50, cli=False, help="confident mistakes kept for a report")

    def __post_init__(self):
        check_choices(self)
        check_scalar(self.top_k, "top_k", int, min_val=1)
        check_scalar(self.batch_size, "batch_size", int, min_val=1)
        check_scalar(self.num_shards, "num_shards", int, min_val=0)
        check_scalar(self.most_wrong, "most_wrong", int, min_val=0)

    def to_dict(self):
        return dataclasses.asdict(self)
