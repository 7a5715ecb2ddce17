"""Running a pass: on any Beam runner, its progress followed from files.

`run_pipeline` runs a built pipeline on any runner while a thread reads the shard steps'
progress files, with the Dask client's TLS (`pipeline.batch.options.DaskTlsOptions`) set while it
runs. The options themselves are `pipeline.batch.options` (TensorFlow-free, so that a job checks
its arguments before TensorFlow starts).
"""
import contextlib
import json
import posixpath
import threading

import tensorflow as tf

from pipeline.batch.accounting import LISTED_FILE
from pipeline.batch.options import dask_security
from pipeline.batch.spine import PROGRESS_DIR
from pipeline.console import Progress

__all__ = ["run_pipeline", "drop_scratch"]

#: How often the driver reads the progress files: often locally, sparingly on `gs://`.
_POLL_SECONDS, _POLL_SECONDS_REMOTE = 1.0, 15.0


def _dask_config(options):
    values = dask_security(options) if options is not None else {}
    if not values:
        return contextlib.nullcontext()
    import dask  # noqa: PLC0415  (only a TLS Dask run needs it)

    return dask.config.set(values)


class _Follower(threading.Thread):
    """Follows a run's progress files while the pipeline runs, whatever the runner."""

    def __init__(self, run_dir, progress):
        super().__init__(daemon=True)
        self._run_dir, self._progress = run_dir, progress
        self._done = threading.Event()

    def run(self):
        interval = _POLL_SECONDS_REMOTE if "://" in self._run_dir else _POLL_SECONDS
        while not self._done.wait(interval):
            self.poll()

    def poll(self):
        total = _read_json(posixpath.join(self._run_dir, LISTED_FILE)).get("listed")
        folder = posixpath.join(self._run_dir, PROGRESS_DIR)
        if total is None:
            return  # still listing
        done = sum(_read_json(posixpath.join(folder, name)).get("done", 0)
                   for name in _listdir(folder))
        self._progress.set(done, total=total)

    def stop(self):
        self._done.set()
        self.join()
        self.poll()


def _read_json(path):
    try:
        with tf.io.gfile.GFile(path) as handle:
            return json.load(handle)
    except (tf.errors.OpError, OSError, ValueError):
        return {}  # not written yet, or caught mid-write


def _listdir(folder):
    try:
        return tf.io.gfile.listdir(folder)
    except tf.errors.OpError:
        return []


def run_pipeline(pipeline, run_dir, *, desc, show_progress=False):
    """Runs a built pipeline to its end, showing the progress of its shard steps.

    Args:
        pipeline: a `beam.Pipeline` with a `ShardedPass` writing into `run_dir`.
        run_dir: the run's folder.
        desc: the progress bar's label (`embed`, `predict`).
        show_progress: show progress while it runs. Defaults to `False`.
    """
    with Progress(desc=desc, disable=not show_progress) as progress:
        follower = _Follower(run_dir, progress)
        follower.start()
        try:
            with _dask_config(pipeline.options):
                result = pipeline.run()
                result.wait_until_finish()
        finally:
            follower.stop()
    client = getattr(result, "client", None)  # the DaskRunner leaves its Dask client open
    if client is not None:
        client.close()


def drop_scratch(run_dir):
    """Removes what only the running pass needed (progress files, the listing count)."""
    tf.io.gfile.rmtree(posixpath.join(run_dir, PROGRESS_DIR))
    tf.io.gfile.remove(posixpath.join(run_dir, LISTED_FILE))
