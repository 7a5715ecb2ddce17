"""Failures as one line for a person: the project's refusals, the file system, the runners.

A job's `main` (`jobs.cli.Job.main`) prints `error: <one_line(err)>` and exits with status 1
where `one_line` knows the failure, and lets anything else (a bug) raise with its traceback.
Known are the project's own `ValueError`s; Python's `OSError`s and TensorFlow's file-system
errors (permission denied, read-only file system, disk full or over quota, no such file), named
with their path; and a runner's failure (a Dask worker that kept dying, a Beam pipeline error
raised on a worker), named with the step where Beam says it happened.

No TensorFlow or Dask import here: their error types are recognised once they are loaded.
"""
import errno
import re
import sys

__all__ = ["one_line", "cause"]

#: What an errno means, in the project's words.
_ERRNO = {errno.EACCES: "permission denied", errno.EPERM: "permission denied",
          errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on the device",
          errno.EDQUOT: "disk quota exceeded", errno.ENOENT: "no such file or folder",
          errno.ENOTDIR: "not a folder", errno.EISDIR: "a folder, not a file",
          errno.EIO: "input/output error"}

#: The same causes as the operating system spells them inside other errors' messages.
_SPELLED = {"Permission denied": "permission denied", "Read-only file system":
            "read-only file system", "No space left on device": "no space left on the device",
            "Disk quota exceeded": "disk quota exceeded",
            "No such file or directory": "no such file or folder"}

_KILLED = "a Dask worker died running every attempt of a task"
#: Beam names the step where a worker raised: `... [while running 'EmbedImages/...']`.
_STEP = re.compile(r"\[while running '([^']+)'\]")


def _first_line(text):
    return (str(text).strip().splitlines() or [""])[0]


def _step(text):
    found = _STEP.findall(str(text))
    return f" (in step {found[-1]})" if found else ""


def _spelled(text):
    """`(path, cause)` where the operating system's words for a cause appear in `text`: as
    Python spells it (`[Errno 28] No space left on device: 'PATH'`) or TensorFlow (`PATH; No
    space left on device`)."""
    for spelled, cause in _SPELLED.items():
        python = re.search(rf"\[Errno \d+\] {re.escape(spelled)}(?:: '([^']+)')?", text)
        if python:
            return python.group(1), cause
        other = re.search(rf"([^\s;:'\"]+)?[;:,]?\s*{re.escape(spelled)}", text)
        if other:
            return other.group(1), cause
    return None


def _located(path, words):
    """`PATH: words`, or the words alone without a path."""
    return f"{path}: {words}" if path else words


def _file_system(err):
    if isinstance(err, OSError) and err.errno in _ERRNO:
        return _located(err.filename, _ERRNO[err.errno])
    tf = sys.modules.get("tensorflow")
    if isinstance(err, OSError) or (tf is not None and isinstance(err, tf.errors.OpError)):
        message = getattr(err, "message", None) or str(err)
        found = _spelled(message)
        return _located(*found) if found else _first_line(message)
    return None


def cause(err):
    """The project's plain words for a file-system error, without its path (`permission
    denied`), or None: a skipped file's reason, beside its path."""
    if isinstance(err, OSError) and err.errno in _ERRNO:
        return _ERRNO[err.errno]
    found = _spelled(getattr(err, "message", None) or str(err))
    return found[1] if found else None


def one_line(err):
    """The one line that explains `err` to a person, or None for a failure it does not know.

    Args:
        err: an exception that ended a job.

    Returns:
        A line without a trailing newline, or None (let it raise with its traceback).
    """
    if isinstance(err, ValueError):
        return _first_line(err)
    line = _file_system(err)
    if line is not None:
        return line + _step(err)
    if type(err).__name__ == "KilledWorker":  # Dask gave up on a task after its workers died
        return f"{_KILLED}{_step(err)} ({_first_line(err)}); see the workers' logs"
    text = str(err)
    if isinstance(err, RuntimeError) and ("Pipeline" in text or _STEP.search(text)):
        # A runner's report of a worker's failure carries the worker's error in its text.
        found = _spelled(text)
        if found:
            return _located(*found) + _step(text)
        if "KilledWorker" in text:
            return f"{_KILLED}{_step(text)}"
        last = [line for line in text.strip().splitlines() if line.strip()]
        return f"the pipeline failed on a worker{_step(text)}: {last[-1].strip()}"
    wrapped = err.__cause__ or err.__context__
    return one_line(wrapped) if wrapped is not None else None
