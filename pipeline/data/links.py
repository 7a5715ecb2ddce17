"""Symbolic links in the data, as Keras does (`image_dataset_from_directory(follow_links=False)`).

By default a listing does not follow symbolic links: a linked file or folder under the data root
is listed as skipped, with the reason `symbolic link (pass --follow-links to read it)`, and never
read, so that a link to a private file elsewhere on the machine is neither embedded nor shown as
a thumbnail. `follow_links="inside"` follows links that stay inside the data root (by their
resolved path), `"any"` follows all. Remote file systems (`gs://`) have no links.

Example:
    >>> links = LinkPolicy("data/flowers", "no")
    >>> for path in links.walk("data/flowers/daisy"):
    ...     print(path, links.reason(path) or "read")
"""
import dataclasses
import os

from pipeline.fields import field
from pipeline.validation import check_choice

__all__ = ["FOLLOW_LINKS", "LINK_REASON", "OUTSIDE_REASON", "NAME_REASON", "LinkRefused",
           "LinkPolicy", "follow_links_field", "as_text"]

#: `no`: skip every link; `inside`: follow links that resolve inside the data root; `any`: all.
FOLLOW_LINKS = ("no", "inside", "any")
LINK_REASON = "symbolic link (pass --follow-links to read it)"
OUTSIDE_REASON = "symbolic link to outside the data folder (pass --follow-links=any to read it)"
NAME_REASON = "file name is not UTF-8 text (rename the file to read it)"


def as_text(path):
    """`(path, reason)` of a listed path: UTF-8 text as it is, with no reason; a name whose bytes
    are not UTF-8 (the system hands it over with surrogate escapes, which no UTF-8 writer takes)
    spelled with `\\xNN` escapes, with `NAME_REASON`: listed and skipped, never read.

    Example:
        >>> as_text(os.fsdecode(b"bad\\xffname.jpg"))
        ('bad\\\\xffname.jpg', 'file name is not UTF-8 text (rename the file to read it)')
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        escaped = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return escaped, NAME_REASON
    return path, ""


def follow_links_field():
    """The `follow_links` field of a config whose job reads a data folder (`--follow-links`)."""
    return field("no", choices=FOLLOW_LINKS, const="inside",
                 help="read symbolic links in the data: no (skip them, with a reason), inside "
                 "(bare --follow-links: those that stay inside the data folder) or any")


class LinkRefused(OSError):
    """A path that the link policy does not read; the message is the skip reason."""


def _inside(path, root):
    return os.path.commonpath([path, root]) == root


@dataclasses.dataclass(frozen=True)
class LinkPolicy:
    """Which symbolic links under a data root are read.

    Attributes:
        root: the data root (a local folder); None: only the file itself is looked at (paths
            named one by one in a list).
        follow: one of `FOLLOW_LINKS`. Defaults to `"no"`.
    """

    root: str | None
    follow: str = "no"

    def __post_init__(self):
        check_choice(self.follow, "follow_links", FOLLOW_LINKS)

    def _applies(self, path):
        return self.follow != "any" and bool(path) and "://" not in path

    def reason(self, path):
        """Why `path` is not read (`LINK_REASON`, `OUTSIDE_REASON`), or None when it is read."""
        if not self._applies(path):
            return None
        root = None if self.root is None else os.path.abspath(self.root)
        path = os.path.abspath(path)
        if root is None or not _inside(path, root):
            linked = os.path.islink(path)
        else:
            parts = os.path.relpath(path, root).split(os.sep)
            linked = any(os.path.islink(os.path.join(root, *parts[:i + 1]))
                         for i in range(len(parts)))
        if not linked:
            return None
        if self.follow == "no" or root is None:
            return LINK_REASON if self.follow == "no" else None
        resolved_root = os.path.realpath(root)
        return None if _inside(os.path.realpath(path), resolved_root) else OUTSIDE_REASON

    def check(self, path):
        """Raises `LinkRefused` (an `OSError`) where `path` is not read."""
        reason = self.reason(path)
        if reason:
            raise LinkRefused(reason)

    def walk(self, folder):
        """Every file below a local `folder`, and every linked folder that is not followed, sorted.

        A followed linked folder is walked once (links that loop are not walked again); a
        `folder` that is itself a link not to be followed is listed, not walked; what is listed
        here and not to be read, `check` refuses.
        """
        if self.reason(folder):
            return [folder]
        found, seen = [], {os.path.realpath(folder)}
        for top, dirs, files in os.walk(folder, followlinks=self.follow != "no"):
            kept = []
            for name in sorted(dirs):
                path, resolved = os.path.join(top, name), os.path.realpath(os.path.join(top, name))
                if os.path.islink(path) and self.reason(path):
                    found.append(path)
                elif resolved not in seen:
                    seen.add(resolved)
                    kept.append(name)
            dirs[:] = kept
            found.extend(os.path.join(top, name) for name in files)
        return sorted(found)
