"""Reading and writing the tables and pickles that the command line takes and gives."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from .fsutil import apply_umask


def read_table(path: str | os.PathLike[str]):
    """CSV (``N/A``, ``NA`` and empty cells are missing) or Parquet, as a DataFrame."""
    import pandas as pd

    p = Path(path)
    if p.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(p)
    with open(p, encoding="utf-8") as fh:
        header = fh.readline()
    sep = "\t" if header.count("\t") > header.count(",") else ","
    return pd.read_csv(p, sep=sep, na_values=["N/A", "NA", ""], keep_default_na=False)


def write_table_atomic(df, path: str | os.PathLike[str]) -> None:
    """Write a DataFrame as CSV or Parquet via a temporary file and an atomic rename."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    os.close(fd)
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        apply_umask(tmp, directory=False)  # mkstemp made it 0600: readable as open() would be
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_pickle(path: str) -> Any:
    # Unpickling runs code from the file: only for models the user trained themselves.
    with open(path, "rb") as fh:
        return pickle.load(fh)
