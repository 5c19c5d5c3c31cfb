"""Reading and writing the tables and pickles that the command line takes and gives.

Every failure leaves as one of three errors, each worded for the person at the command line
(``tablescore.cli`` gives each its exit code):

- :class:`DataFileError` (an :class:`~scorer.errors.InputError`): an input table cannot be
  read (missing, empty, not UTF-8, not CSV / Parquet);
- :class:`ModelFileError`: a pickled model cannot be loaded (truncated, needs a library that
  is not installed);
- :class:`OutputError`: an output cannot be written (disk full, a directory in the way, no
  permission).

Outputs are written under a temporary name and renamed into place. The temporary name
(``.<name>.tablescore-tmp-<pid>-<random>``) carries the writer's process id, so a writer that
was killed (SIGKILL cannot be caught) leaves a file the next write to the same output
recognizes as stale (its process is gone) and removes.
"""

from __future__ import annotations

import errno
import os
import pickle
import signal
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import InputError, TablescoreError
from .fsutil import apply_umask

#: the infix of a temporary output's name; the writer's pid follows it
TMP_INFIX = ".tablescore-tmp-"


class DataFileError(InputError):
    """An input table (CSV / Parquet) cannot be read."""


class ModelFileError(TablescoreError):
    """A pickled model cannot be loaded."""


class OutputError(TablescoreError):
    """An output file cannot be written (disk full, not writable, a directory in the way)."""


def sqlite_failure(what: str, exc: Exception, *, written: str = "") -> TablescoreError:
    """The user's-terms error of SQLite's ``OperationalError`` ``exc`` for the database
    ``what`` names ("registry sqlite:///..."): a full disk or a file that cannot be written
    is an output error (exit 4, ``written`` appended: what became of the write), anything
    else (a locked or unopenable file) unavailable (exit 5)."""
    from .errors import UnavailableError

    text = str(exc)
    if "full" in text or "readonly" in text or "disk I/O" in text:
        return OutputError(f"{what} cannot be written: {text}{written}")
    return UnavailableError(f"{what}: {text}")


def sqlite_connect(path: str | os.PathLike[str], *, timeout: float):
    """A connection to the SQLite file ``path`` in autocommit mode (transactions are the
    caller's explicit BEGINs), usable from any thread, in WAL mode (readers never block the
    writer), waiting up to ``timeout`` seconds for another connection's lock.

    Switching a file to WAL needs it alone for a moment, and SQLite answers "database is
    locked" at once, without its busy handler, when another connection is opening the same
    new file: the switch is retried until ``timeout``. A file already in WAL mode (the mode is
    stored in the file) is not switched again.

    Raises
    ------
    sqlite3.Error
        The file cannot be opened, or stayed locked for ``timeout`` seconds.
    """
    import sqlite3
    import time

    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None,
                           check_same_thread=False)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.001
        while conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            try:
                # a file that cannot hold WAL (read-only) answers its own mode: kept, as
                # SQLite does
                conn.execute("PRAGMA journal_mode=WAL").fetchall()
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    except BaseException:
        conn.close()
        raise
    return conn


def _is_parquet(p: Path) -> bool:
    return p.suffix.lower() in (".parquet", ".pq")


def read_table(path: str | os.PathLike[str], *, text_columns: Sequence[str] = ()):
    """CSV (``N/A``, ``NA`` and empty cells are missing) or Parquet, as a DataFrame.

    ``text_columns``: CSV columns read as text, not typed by their look (ids: ``00123``
    stays ``00123``); names absent from the file are ignored.

    Raises
    ------
    DataFileError
        The file is missing, empty, not UTF-8 or not a CSV / Parquet file.
    """
    import pandas as pd

    p = Path(path)
    try:
        if _is_parquet(p):
            return pd.read_parquet(p)
        with open(p, encoding="utf-8") as fh:
            header = fh.readline()
        if not header.strip():
            raise DataFileError(f"data file '{p}' is empty: a CSV needs a header row naming "
                                "the columns")
        sep = "\t" if header.count("\t") > header.count(",") else ","
        return pd.read_csv(p, sep=sep, na_values=["N/A", "NA", ""], keep_default_na=False,
                           encoding="utf-8", dtype={c: str for c in text_columns} or None)
    except DataFileError:
        raise
    except UnicodeDecodeError as exc:
        raise not_utf8(p, exc.start, exc.object[exc.start]) from None
    except OSError as exc:
        raise unreadable_data_file(p, exc) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataFileError(f"data file '{p}' is not a valid CSV file: "
                            f"{str(exc).strip()}") from None
    except Exception as exc:  # pyarrow's ArrowInvalid and kin: not a Parquet file
        if not _is_parquet(p):
            raise
        raise DataFileError(f"data file '{p}' is not a valid Parquet file: "
                            f"{str(exc).strip().splitlines()[0]}") from None


def unreadable_data_file(path: str | os.PathLike[str], exc: OSError) -> DataFileError:
    """The user's-terms error for an input data file the OS would not open or read."""
    if isinstance(exc, IsADirectoryError):
        return DataFileError(f"data file '{path}' is a directory")
    if isinstance(exc, FileNotFoundError):
        return DataFileError(f"data file '{path}' does not exist")
    if isinstance(exc, PermissionError):
        return DataFileError(f"data file '{path}' is not readable (permission denied)")
    return DataFileError(f"data file '{path}' cannot be read: {exc.strerror or exc}")


def not_utf8(path: str | os.PathLike[str], offset: int, byte: int) -> DataFileError:
    """The error for a text data file with an invalid UTF-8 byte at ``offset``."""
    return DataFileError(f"data file '{path}' is not UTF-8 text (byte 0x{byte:02x} at offset "
                         f"{offset}): save it as UTF-8 CSV or Parquet")


def check_output(path: str | os.PathLike[str]) -> Path:
    """Refuse an output path that cannot be written, before any work is done for it.

    Creates the parent directory if needed. Returns the path.

    Raises
    ------
    OutputError
        ``path`` is a directory, or its directory cannot be created or written.
    """
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"output '{p}' is a directory: give a file name")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _output_error(p, exc) from None
    if not os.access(p.parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write output '{p}': directory '{p.parent}' is not "
                          "writable")
    return p


def _output_error(p: Path, exc: OSError) -> OutputError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(f"cannot write output '{p}': no space left on the device "
                           "(nothing was written)")
    if isinstance(exc, FileExistsError | NotADirectoryError):  # a file where a folder goes
        return OutputError(f"cannot write output '{p}': a path component of "
                           f"'{p.parent}' is a file, not a directory")
    return OutputError(f"cannot write output '{p}': {exc.strerror or exc}")


@contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn an OSError raised while writing ``path`` (a bundle, a report) into an
    :class:`OutputError`; a writer's own FileExistsError ("exists, pass overwrite") passes
    through."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, FileExistsError) and exc.filename is None:
            raise
        raise _output_error(Path(path), exc) from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def orphaned_temps(path: str | os.PathLike[str]) -> list[Path]:
    """The temporaries (files or directories) that killed writers of ``path`` left behind.

    Named ``.<name>.tablescore-tmp-<pid>-*``; one whose pid is this process's or a live
    process's is not listed (a concurrent writer's).
    """
    p = Path(path)
    prefix = f".{p.name}{TMP_INFIX}"
    try:
        candidates = [c for c in p.parent.iterdir() if c.name.startswith(prefix)]
    except OSError:
        return []
    orphans = []
    for c in candidates:
        pid_text = c.name[len(prefix):].split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text)):
            orphans.append(c)
    return orphans


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files that killed writers of ``path`` left behind.

    A temporary output whose pid is this process's or a live process's is left alone (a
    concurrent writer's). Returns the files removed.
    """
    removed = []
    for c in orphaned_temps(path):
        if c.is_dir():
            continue
        try:
            c.unlink()
            removed.append(c)
        except OSError:
            pass
    return removed


#: output formats by file extension (lower case)
OUTPUT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def output_format(path: str | os.PathLike[str]) -> str:
    """``"csv"`` or ``"parquet"``, from ``path``'s extension.

    Raises
    ------
    InputError
        Any other extension (``out.json``): refused before any work is done for it.
    """
    suffix = Path(path).suffix.lower()
    fmt = OUTPUT_FORMATS.get(suffix)
    if fmt is None:
        raise InputError(f"output '{path}': unknown format '{suffix or '(no extension)'}' "
                         "(use .csv, .parquet or .pq)")
    return fmt


def _hold_signals() -> Any:
    """Block SIGINT and SIGTERM in the main thread; the previous mask (None elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


def _release_signals(held: Any) -> None:
    if held is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; on a clean exit it is flushed to disk
    and renamed to ``path``, on any error (SIGINT / SIGTERM included: the CLI raises those)
    removed. A temporary file a SIGKILL left behind is removed by the next write.

    Raises
    ------
    OutputError
        The file cannot be written (disk full, permission, a directory in the way).
    """
    p = check_output(path)
    remove_stale_temps(p)
    # SIGINT / SIGTERM raise in the main thread: held back until the temporary is inside the
    # cleanup below, so a signal right after it was created cannot leave it behind
    held = _hold_signals()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}{TMP_INFIX}{os.getpid()}-", dir=p.parent)
    except OSError as exc:
        _release_signals(held)
        raise _output_error(p, exc) from None
    try:
        os.close(fd)
        _release_signals(held)  # a pending signal raises here, inside the cleanup
        yield Path(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        apply_umask(tmp, directory=False)  # mkstemp made it 0600: readable as open() would be
        os.replace(tmp, p)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _output_error(p, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_table_atomic(df, path: str | os.PathLike[str]) -> None:
    """Write a DataFrame as CSV or Parquet via a temporary file and an atomic rename
    (:func:`atomic_output`).

    Raises
    ------
    OutputError
        The file cannot be written (disk full, permission, a directory in the way).
    """
    with atomic_output(path) as tmp:
        if _is_parquet(Path(path)):
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)


def load_pickle(path: str | os.PathLike[str]) -> Any:
    """Unpickle the fitted model in ``path``.

    Unpickling runs code from the file: only for models the user trained themselves.

    Raises
    ------
    ModelFileError
        The file is missing, truncated or not a pickle, or needs a module not installed here.
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            return pickle.load(fh)
    except FileNotFoundError:
        raise ModelFileError(f"model file '{p}' does not exist") from None
    except ModuleNotFoundError as exc:
        raise ModelFileError(f"model file '{p}' needs module '{exc.name}', which is not "
                             "installed here (install the library the model was trained "
                             "with)") from None
    except (pickle.UnpicklingError, EOFError) as exc:
        raise ModelFileError(f"model file '{p}' is not a complete pickle "
                             f"({exc or 'ran out of input'}): truncated or not a pickle") \
            from None
    except OSError as exc:
        raise ModelFileError(f"model file '{p}' cannot be read: {exc.strerror or exc}") \
            from None
    except (AttributeError, ImportError, IndexError, TypeError, ValueError) as exc:
        # a pickle from another library version, or bytes that only look like a pickle
        raise ModelFileError(f"model file '{p}' cannot be unpickled here "
                             f"({type(exc).__name__}: {exc})") from None
