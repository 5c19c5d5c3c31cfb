"""File-system helpers shared by every writer (bundles, PMML documents, score outputs).

Writers create their output under a temporary name (``tempfile.mkdtemp`` / ``mkstemp``) and
rename it into place, so a crash never leaves a half-written file under the final name. The
temporary file or directory is created private (0600 / 0700) whatever the umask, and a rename
keeps the mode: without :func:`apply_umask` every bundle and output came out private to its
writer, where ``open`` / ``mkdir`` would have given 0644 / 0755 under the usual umask 022.
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux: the
    ``Umask:`` line of /proc/self/status); elsewhere by setting and restoring it under a
    lock (other threads creating files in that instant would get umask 0o077)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _lock:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def apply_umask(path: str | os.PathLike[str], *, directory: bool) -> None:
    """Give ``path`` the mode ``open`` / ``mkdir`` would have given it: 0666 (file) or 0777
    (directory) less the umask.

    Parameters
    ----------
    path : path-like
        A file or directory the caller created with a private mode (``mkstemp`` /
        ``mkdtemp``), before it is renamed into place.
    directory : bool
        Whether ``path`` is a directory.
    """
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())
