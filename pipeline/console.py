"""What a job shows on the console: its own lines and progress, not the libraries' logs.

`silence_library_logs()` turns off the Python-side logs and warnings of TensorFlow, Keras, absl,
Apache Beam and friends; it returns a function that restores them. `import_tensorflow_quietly()`
turns their C++ logs off and drops the lines TensorFlow prints at its first import.
`quiet_libraries()` does both, as a job does before it imports anything that needs TensorFlow:
the one call a script makes first to see only its own lines. `Progress` shows progress on long
work: a tqdm bar on a terminal, otherwise (CI, cron, a pipe) one plain line every few seconds and
a final line.

Example:
    >>> restore = silence_library_logs()
    >>> with Progress(3200, desc="embed") as progress:
    ...     for batch in batches:
    ...         progress.update(len(batch))
"""
import logging
import math
import os
import re
import sys
import tempfile
import time
import warnings

import tqdm

__all__ = ["LIBRARY_LOGGERS", "silence_library_logs", "import_tensorflow_quietly",
           "quiet_libraries", "Progress", "track", "format_duration"]

#: Python loggers that libraries log to; quiet jobs raise them to ERROR.
LIBRARY_LOGGERS = ("tensorflow", "keras", "absl", "apache_beam", "h5py", "matplotlib", "PIL",
                   "tensorflow_datasets", "urllib3", "google", "grpc", "py.warnings",
                   "distributed", "dask")

#: Loggers that report a failure with its traceback before the failure is raised to the job,
#: which says it in one line (`pipeline.errors`): quiet jobs drop their ERROR records too.
_RAISED_LATER = ("apache_beam", "distributed")

#: Warning categories that quiet jobs ignore wherever they come from.
_QUIET_CATEGORIES = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)

#: Libraries whose other warnings quiet jobs ignore too; the project's own warnings stay.
_LIBRARIES = r"(keras|tf_keras|tensorflow|tensorflow_datasets|apache_beam|absl|h5py|google)"
_LIBRARY_MODULES = _LIBRARIES + r"(\.|$)"
_LIBRARY_FILES = re.compile(r"[/\\]" + _LIBRARIES + r"[/\\]")


class _DropLibraryRecords(logging.Filter):
    """Drops records below ERROR that library code logs straight to the root logger."""

    def filter(self, record):
        return record.levelno >= logging.ERROR or not _LIBRARY_FILES.search(record.pathname)


def silence_library_logs():
    """Sets library loggers to ERROR and ignores library warnings; returns a `restore()` function.

    Beam's and Dask's loggers go to CRITICAL: they log a worker's failure with its traceback
    before the runner raises it to the job, which then says it in one line.

    TensorFlow's retracing and deprecation messages are Python log records or warnings, so they
    go too; the job's own `print` lines, its own warnings and exceptions are untouched.

    Returns:
        A function of no arguments that restores the previous levels and warning filters.

    Example:
        >>> restore = silence_library_logs()
        >>> restore()
    """
    loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL if logger.name in _RAISED_LATER else logging.ERROR)
    absl_level = _set_absl_verbosity("error")
    saved_filters = warnings.filters[:]
    for category in _QUIET_CATEGORIES:
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", module=_LIBRARY_MODULES)
    root_filter = _DropLibraryRecords()
    logging.getLogger().addFilter(root_filter)

    def restore():
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        _set_absl_verbosity(absl_level)
        warnings.filters[:] = saved_filters
        logging.getLogger().removeFilter(root_filter)

    return restore


def import_tensorflow_quietly():
    """Imports TensorFlow with its C++ logs off and its start-up lines dropped (shown on failure).

    TensorFlow prints a few lines at its first import whatever `TF_CPP_MIN_LOG_LEVEL` says, so
    file descriptor 2 is caught while it imports. Worker processes that a runner starts (a Dask
    `LocalCluster`) inherit the environment set here. Does nothing more once TensorFlow is in.
    """
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    os.environ.setdefault("DASK_DISTRIBUTED__LOGGING__DISTRIBUTED", "error")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow  # noqa: F401,PLC0415  (the import whose lines are dropped)
        except BaseException:
            os.dup2(saved, 2)
            caught.seek(0)
            sys.stderr.write(caught.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def quiet_libraries():
    """Quiets the libraries as a job does: `silence_library_logs()`, then
    `import_tensorflow_quietly()`.

    Call it first, before anything imports TensorFlow or Beam: their C++ logs are off only in a
    process that sets it before TensorFlow loads.

    Returns:
        `silence_library_logs()`'s `restore()` (the Python-side logs and warnings back on).

    Example:
        >>> from pipeline.console import quiet_libraries
        >>> quiet_libraries()
        >>> from pipeline.features.embed_job import run_embed  # TensorFlow and Beam, quiet
    """
    restore = silence_library_logs()
    import_tensorflow_quietly()
    return restore


def _set_absl_verbosity(level):
    """Sets absl's verbosity (a name or number) when absl is installed; returns the old one."""
    try:
        from absl import logging as absl_logging  # optional: TensorFlow brings it
    except ImportError:
        return None
    previous = absl_logging.get_verbosity()
    if level is not None:
        absl_logging.set_verbosity(level)
    return previous


def format_duration(seconds):
    """Formats seconds for people: `"44 s"`, `"3 min 05 s"`, `"1 h 02 min"`."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Progress of long work: a tqdm bar on a terminal, else a plain line every `interval` s.

    Plain lines read `embed: 1,200/3,200 images (37.5%), 45.2 images/s, ETA 44 s` (without a
    total: `embed: 1,200 images, 45.2 images/s`; before any unit is done, `starting` in place of
    a rate); `close()` prints one final line with the elapsed time. Also a context manager that
    closes on exit.

    Args:
        total: the amount of work, or None while unknown (`set` may give it later).
            Defaults to `None`.
        desc: what is being done, e.g. `"embed"`; starts every line.
        unit: the name of one unit of work. Defaults to `"images"`.
        stream: where to write. Defaults to `sys.stderr`.
        interval: seconds between plain lines. Defaults to `5.0`.
        disable: show nothing (a job's `--quiet`). Defaults to `False`.
        clock: seam for tests, a function returning seconds. Defaults to `time.monotonic`.

    Example:
        >>> with Progress(desc="embed") as progress:
        ...     progress.set(1200, total=3200)
    """

    def __init__(self, total=None, *, desc, unit="images", stream=None, interval=5.0,
                 disable=False, clock=time.monotonic):
        self.total, self.done = total, 0
        self.desc, self.unit, self.interval = desc, unit, interval
        self._stream = sys.stderr if stream is None else stream
        self._clock = clock
        self._start = self._last_line = clock()
        self._closed = disable
        self._bar = None
        if not disable and _is_terminal(self._stream):
            self._bar = tqdm.tqdm(total=total, desc=desc, unit=f" {unit}", file=self._stream,
                                  dynamic_ncols=True, leave=True)

    def update(self, n=1):
        """Adds `n` units of finished work."""
        self.set(self.done + n)

    def set(self, done, total=None):
        """Sets the finished work to `done` (and the total, when it becomes known)."""
        if total is not None:
            self.total = total
        self.done = done
        if self._closed:
            return
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.n = done
            self._bar.refresh()
        elif self._clock() - self._last_line >= self.interval:
            self._write(self.line())

    def close(self, *, failed=False):
        """Ends the display with a final line (`done in ...`, or `stopped after ...` when the
        work `failed`); further calls do nothing."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        else:
            self._write(self.line(final="stopped after" if failed else "done in"))

    def line(self, *, final=None):
        """The plain progress line as it stands now; `final` is the last line's word for the
        time taken (`done in`)."""
        elapsed = self._clock() - self._start
        rate = self.done / elapsed if elapsed > 0 else math.nan
        count = f"{self.done:,}" if self.total is None else f"{self.done:,}/{self.total:,}"
        parts = [f"{self.desc}: {count} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.done / self.total:.1f}%)"
        if not self.done and not final:
            parts.append("starting")  # no rate before the first unit is done
        elif self.done and not math.isnan(rate):
            parts.append(f"{rate:.1f} {self.unit}/s")
        if final:
            parts.append(f"{final} {format_duration(elapsed)}")
        elif self.total and rate > 0:
            parts.append(f"ETA {format_duration((self.total - self.done) / rate)}")
        return ", ".join(parts)

    def _write(self, text):
        self._last_line = self._clock()
        print(text, file=self._stream, flush=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc_info):
        self.close(failed=exc_type is not None)


def track(iterable, *, desc, unit="items", total=None, count=None, **kwargs):
    """Yields the items of `iterable` while a `Progress` counts them.

    Args:
        iterable: the work, e.g. `range(folds)` or a generator of batches.
        desc: as in `Progress`.
        unit: as in `Progress`. Defaults to `"items"`.
        total: the amount of work. Defaults to `len(iterable)` where it has one.
        count: a function giving the units in one item (e.g. `len` for batches of images).
            Defaults to one unit per item.
        **kwargs: more `Progress` options (`stream`, `interval`, `disable`, `clock`).

    Example:
        >>> for k in track(range(10), desc="k-fold", unit="folds"):
        ...     train_fold(k)
    """
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with Progress(total, desc=desc, unit=unit, **kwargs) as progress:
        for item in iterable:
            yield item
            progress.update(1 if count is None else count(item))


def _is_terminal(stream):
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
