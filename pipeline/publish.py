"""Output folders published whole: written in a staging folder, listed, then swapped in at once.

A job that writes a folder of results (a head, a fine-tune, an export, an audit) writes it through
`published_folder(out_dir, job=...)`: the block writes into a staging folder beside `out_dir`;
when it completes, `published.json` (every file's size and sha256, the job, the time) is
written into it last, and the staging folder takes `out_dir`'s place in one step
(`renameat2(RENAME_EXCHANGE)` on Linux), the previous output removed after. Until then readers
see the previous output, whole; a kill at any moment leaves the previous output or the new one,
never a mix, and at worst a staging folder of a dead process, which the next publish into the
same `out_dir` removes (`remove_dead_staging(parent)`: those of every output in a folder).
Where the system has no atomic exchange, the previous output is renamed aside for the instant
between two renames and put back by the next publish when a kill fell in between.

`verify_published(folder)` checks a published folder against its list (a missing, truncated or
altered file raises `ValueError` naming it), so that a damaged output is never taken as whole.

Example:
    >>> with published_folder("runs/export", job="export", markers=("export.json",)) as staging:
    ...     write_everything(staging)
"""
import contextlib
import ctypes
import errno
import json
import os
import shutil
import socket
import time
import uuid

from pipeline.files import file_sha256, first_damaged

__all__ = ["PUBLISHED", "published_folder", "check_out_dir", "remove_dead_staging", "work_folder",
           "verify_published", "read_published"]

#: The list of a published folder's files, written last.
PUBLISHED = "published.json"

_STAGING, _ASIDE = ".staging-", ".previous-"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover  (not a Unix)
        return None


_LIBC = _libc()


def _exchange(a, b):
    """Swaps two paths in one step; False where the system cannot."""
    renameat2 = getattr(_LIBC, "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), b)


def _sibling(out_dir, kind, owner):
    parent, name = os.path.split(os.path.abspath(out_dir))
    return os.path.join(parent, f".{name}{kind}{owner}")


def _owner():
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _alive(owner):
    """Whether the process that named a sibling folder may still run (another host's may)."""
    try:
        host, pid, _ = owner.rsplit("-", 2)
        pid = int(pid)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _siblings(out_dir, kind):
    parent, name = os.path.split(os.path.abspath(out_dir))
    prefix = f".{name}{kind}"
    if not os.path.isdir(parent):
        return []
    return [(os.path.join(parent, entry), entry[len(prefix):])
            for entry in os.listdir(parent) if entry.startswith(prefix)]


def _recover(out_dir):
    """Puts back a previous output left aside by a kill between two renames; removes the
    staging and aside folders of processes that are gone."""
    for path, owner in _siblings(out_dir, _ASIDE):
        if _alive(owner):
            continue
        if not os.path.exists(out_dir):
            os.rename(path, out_dir)
        else:
            shutil.rmtree(path, ignore_errors=True)
    for path, owner in _siblings(out_dir, _STAGING):
        if not _alive(owner):
            shutil.rmtree(path, ignore_errors=True)


def _listing(folder):
    files = {}
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            relative = os.path.relpath(path, folder).replace(os.sep, "/")
            if relative != PUBLISHED:
                files[relative] = {"bytes": os.path.getsize(path), "sha256": file_sha256(path)}
    return files


def read_published(folder):
    """A published folder's `published.json`, or None where the folder has none (an output
    written before publishing existed, or not an output)."""
    path = os.path.join(folder, PUBLISHED)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            return json.load(handle)
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a valid list of published files ({err}); publish the "
                         "folder again") from None


def verify_published(folder, *, digests=True):
    """Checks that every file `published.json` lists is there with its size (and digest).

    A folder without `published.json` passes (written before publishing existed).

    Raises:
        ValueError: naming the first missing or damaged file.
    """
    published = read_published(folder)
    if published is None:
        return None
    found = first_damaged(folder, [{"file": name, **entry}
                                   for name, entry in published["files"].items()],
                          digests=digests)
    if found is None:
        return published
    path, how = found
    if how == "missing":
        raise ValueError(f"{path}: missing from the published output of jobs."
                         f"{published['job']}; run the job again")
    raise ValueError(f"{path}: damaged (not the file jobs.{published['job']} published); run "
                     "the job again")


def _check_replaceable(out_dir, job, markers, flag):
    """Refuses, before any work, an `out_dir` holding something other than this job's output."""
    if not os.path.exists(out_dir):
        return
    if not os.path.isdir(out_dir):
        raise ValueError(f"{flag} {out_dir!r}: a file, not a folder")
    entries = os.listdir(out_dir)
    if not entries:
        return
    published = read_published(out_dir) if PUBLISHED in entries else None
    if published is not None and published.get("job") != job:
        raise ValueError(f"{flag} {out_dir!r}: holds the output of jobs.{published.get('job')}; "
                         f"jobs.{job} would replace it: choose another folder")
    if published is None and not any(marker in entries for marker in markers):
        raise ValueError(f"{flag} {out_dir!r}: holds files that are not an output of jobs.{job} "
                         "(they would be replaced): choose a new or empty folder")


def work_folder(out_dir, *, keep=False):
    """A job's working folder for `out_dir` (checkpoints, logs), beside it: `.NAME.work/`.

    It outlives a killed run, so that a resumed run finds it (`keep=True`); otherwise it starts
    empty. The job copies what it publishes from it and removes it once published.
    """
    work = _sibling(out_dir, ".work", "")
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work, exist_ok=True)
    return work


def check_out_dir(out_dir, *, job, markers=(), flag="--out"):
    """Refuses, before any work, an `out_dir` that `published_folder` would not replace."""
    _recover(out_dir)
    _check_replaceable(out_dir, job, markers, flag)


def remove_dead_staging(parent):
    """Removes the staging folders that dead processes left under `parent`, and puts back (or
    removes) the previous outputs they left aside, for every output there: what `check_out_dir`
    does for one output, for a folder of outputs whose names are not known in advance (a
    reports folder's runs, each published once). A `parent` that is not there is left alone."""
    if not os.path.isdir(parent):
        return
    names = set()
    for entry in os.listdir(parent):
        for kind in (_STAGING, _ASIDE):
            name, found, _ = entry[1:].partition(kind)
            if entry.startswith(".") and found and name:
                names.add(name)
    for name in sorted(names):
        _recover(os.path.join(parent, name))


def _swap_in(staging, out_dir, owner):
    try:
        os.rename(staging, out_dir)  # no previous output (or an empty folder)
        return
    except OSError as err:
        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    if _exchange(staging, out_dir):
        shutil.rmtree(staging, ignore_errors=True)  # the previous output, now at staging
        return
    aside = _sibling(out_dir, _ASIDE, owner)
    os.rename(out_dir, aside)
    os.rename(staging, out_dir)
    shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def published_folder(out_dir, *, job, markers=(), flag="--out"):
    """A staging folder to write a job's output into, published as `out_dir` when the block ends.

    Args:
        out_dir: the output folder (local). It may be absent, empty, or hold an earlier output
            of the same job (its `published.json`, or one of `markers` for outputs written
            before publishing existed); anything else is refused before the block runs.
        job: the job's name, recorded in `published.json`.
        markers: file names that identify an earlier output of this job. Defaults to `()`.
        flag: the flag that named `out_dir`, for messages. Defaults to `"--out"`.

    Yields:
        The staging folder (created, empty).

    Raises:
        ValueError: `out_dir` holds something else.
    """
    check_out_dir(out_dir, job=job, markers=markers, flag=flag)
    owner = _owner()
    staging = _sibling(out_dir, _STAGING, owner)
    try:
        os.makedirs(staging)
        yield staging
        listing = {"job": job, "published_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   "files": _listing(staging)}
        with open(os.path.join(staging, PUBLISHED), "w") as handle:
            json.dump(listing, handle, indent=2, sort_keys=True)
        _swap_in(staging, out_dir, owner)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        named = _named(err, staging, out_dir)
        if named is err:
            raise
        raise named from err
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _named(err, staging, out_dir):
    """The error with the output's path in place of the staging folder's (or of none); an
    error without an errno as it is."""
    if err.errno is None:
        return err
    where = os.fspath(err.filename) if err.filename else ""
    if not where or where == os.path.dirname(staging):
        where = out_dir
    elif where == staging or where.startswith(staging + os.sep):
        where = os.path.normpath(os.path.join(out_dir, os.path.relpath(where, staging)))
    return OSError(err.errno, err.strerror or str(err), where)
