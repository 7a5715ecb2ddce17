"""Entry points, run as `python -m jobs.<name>`: thin wrappers that parse arguments and call
`pipeline`. `python -m jobs` lists them.

Jobs are quiet by default: they print their own lines only. TensorFlow's C++ logs are turned off
here, before TensorFlow is first imported (its import-time lines ignore `TF_CPP_MIN_LOG_LEVEL`,
so they are caught and dropped unless the import fails); `--verbose` on any job keeps them all.
"""
import logging
import os
import sys
import tempfile

from pipeline.console import silence_library_logs

__all__ = ["add_verbose_flag", "configure_output", "job_main"]

_VERBOSE_FLAG = "--verbose"


def add_verbose_flag(parser):
    """Adds `--verbose` (the libraries' logs, on) to a job's argument parser."""
    parser.add_argument(_VERBOSE_FLAG, action="store_true",
                        help="show TensorFlow, Keras and Beam logs and warnings")
    return parser


def configure_output(verbose):
    """Called by a job's `main`: INFO logs with `--verbose`, else the libraries silenced."""
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                            force=True)
    else:
        silence_library_logs()


def job_main(build_parser, run, report):
    """A job's `main(argv=None)`: output configured (`--verbose`), `run(argv, show_progress=True)`,
    the project's errors (`ValueError`) as one line and exit status 1, else `report(result)`."""
    def main(argv=None):
        configure_output(build_parser().parse_known_args(argv)[0].verbose)
        try:
            result = run(argv, show_progress=True)
        except ValueError as err:
            sys.exit(f"error: {err}")
        report(result)
    return main


def _import_tensorflow_quietly():
    """Imports TensorFlow with C++ logs off and its import-time lines dropped (shown on failure)."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    # Worker processes that a runner starts (a Dask LocalCluster) inherit these.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    os.environ.setdefault("DASK_DISTRIBUTED__LOGGING__DISTRIBUTED", "error")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow  # noqa: F401  (heavy, on purpose: its import logs are dropped)
        except BaseException:
            os.dup2(saved, 2)
            caught.seek(0)
            sys.stderr.write(caught.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _listing_jobs():
    """Whether this process is `python -m jobs` (the listing needs no TensorFlow)."""
    argv = getattr(sys, "orig_argv", [])
    return "-m" in argv and argv[argv.index("-m") + 1:][:1] == ["jobs"]


if _VERBOSE_FLAG not in sys.argv[1:] and not _listing_jobs():
    silence_library_logs()  # before Beam's import-time warnings, too
    _import_tensorflow_quietly()
