"""Running a pass: Beam options with the local default, and progress followed from files.

`pipeline_options(args)` turns a job's leftover arguments into Beam `PipelineOptions`: Beam's
FnApiRunner in this process unless `--runner` says otherwise (`DaskRunner`, `PortableRunner`,
`DataflowRunner`, ...). `run_pipeline` runs a built pipeline on any runner while a thread reads
the shard steps' progress files. `DaskTlsOptions` are the project's own Beam options: TLS for
the Dask client (a Dask scheduler without TLS runs whatever any client that reaches it sends).
"""
import contextlib
import json
import posixpath
import threading

import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.batch.accounting import LISTED_FILE
from pipeline.batch.spine import PROGRESS_DIR
from pipeline.console import Progress

__all__ = ["DEFAULT_RUNNER_ARGS", "RUNNER_ALIASES", "DaskTlsOptions", "beam_args",
           "pipeline_options", "dask_security", "run_pipeline", "drop_scratch"]

#: Local default: Beam's portable FnApiRunner in this process, TensorFlow using every core
#: (measured fastest on one machine: bench/embed_throughput.py); never a Prism download.
DEFAULT_RUNNER_ARGS = ["--runner=FnApiRunner", "--direct_running_mode=in_memory",
                       "--direct_num_workers=1"]

#: Runners Beam does not know by their short name.
RUNNER_ALIASES = {"DaskRunner": "apache_beam.runners.dask.dask_runner.DaskRunner"}

#: How often the driver reads the progress files: often locally, sparingly on `gs://`.
_POLL_SECONDS, _POLL_SECONDS_REMOTE = 1.0, 15.0


def beam_args(args):
    """Beam's arguments with the local default runner and short runner names expanded."""
    if not any(arg.startswith("--runner") for arg in args):
        return DEFAULT_RUNNER_ARGS + list(args)
    expanded, args = [], list(args)
    while args:
        arg = args.pop(0)
        if arg == "--runner" and args:
            arg = f"--runner={args.pop(0)}"
        if arg.startswith("--runner="):
            arg = "--runner=" + RUNNER_ALIASES.get(arg.split("=", 1)[1], arg.split("=", 1)[1])
        expanded.append(arg)
    return expanded


class DaskTlsOptions(PipelineOptions):
    """TLS for the job's Dask client (`--runner DaskRunner --dask_client_address tls://...`).

    Beam's DaskRunner makes its `distributed.Client` from its own options, which have no TLS;
    the client takes its security from Dask's configuration, so `run_pipeline` sets
    `distributed.comm.tls.*` (and `require-encryption`) from these while the pipeline runs.
    """

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--dask_tls_ca_file", default=None,
                            help="CA certificate that the Dask scheduler's certificate is "
                            "checked against")
        parser.add_argument("--dask_tls_cert", default=None,
                            help="the client's certificate (PEM)")
        parser.add_argument("--dask_tls_key", default=None,
                            help="the client's private key (PEM), where not in --dask_tls_cert")
        parser.add_argument("--dask_require_encryption", action="store_true", default=False,
                            help="refuse any Dask connection that is not encrypted")


def dask_security(options):
    """Dask configuration of `DaskTlsOptions` (`{}` without any), for `dask.config.set`."""
    tls = options.view_as(DaskTlsOptions)
    values = {"distributed.comm.tls.ca-file": tls.dask_tls_ca_file,
              "distributed.comm.tls.client.cert": tls.dask_tls_cert,
              "distributed.comm.tls.client.key": tls.dask_tls_key}
    values = {key: value for key, value in values.items() if value}
    if tls.dask_require_encryption:
        values["distributed.comm.require-encryption"] = True
    return values


def _dask_config(options):
    values = dask_security(options) if options is not None else {}
    if not values:
        return contextlib.nullcontext()
    import dask  # noqa: PLC0415  (only a TLS Dask run needs it)

    return dask.config.set(values)


def pipeline_options(args=()):
    """`PipelineOptions` of a job's Beam arguments (`beam_args` applied)."""
    return PipelineOptions(beam_args(args))


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
