"""Command-line options shared by the commands that store a drift reference profile from a
sample: ``tablescore import`` (PMML) and ``tablescore registry publish``."""

from __future__ import annotations

import argparse

from .profile import DEFAULT_BINS, MAX_BINS, MIN_BINS


def drift_bins(text: str) -> int:
    """argparse type of ``--drift-bins``: an integer in 10..20."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not MIN_BINS <= value <= MAX_BINS:
        raise argparse.ArgumentTypeError(f"must be in {MIN_BINS}..{MAX_BINS}, got {value}")
    return value


def add_sample_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--sample FILE`` and ``--drift-bins N`` to ``p``."""
    p.add_argument("--sample", default=None, metavar="FILE",
                   help="CSV/Parquet of representative inputs (columns named like the "
                   "model's inputs): stored in the bundle as its drift reference profile "
                   "(docs/monitoring.md)")
    p.add_argument("--drift-bins", type=drift_bins, default=DEFAULT_BINS, metavar="N",
                   help=f"quantile bins per numeric feature of that profile ({MIN_BINS}.."
                   f"{MAX_BINS}, default {DEFAULT_BINS})")
