"""``tablescore features ...``: load a data file into a view, look entities up."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import FeatureViewNotFoundError, InputError
from ..urls import redact


def _store(args: argparse.Namespace) -> Any:
    from . import open_store

    if not args.store:
        raise InputError("no feature store: give --store URL or set TABLESCORE_FEATURES")
    return open_store(args.store)


def cmd_load(args: argparse.Namespace) -> int:
    from .loader import _Source, load, progress_bar

    store = _store(args)
    try:
        total = _Source(args.data).rows() if str(args.data).endswith((".parquet", ".pq")) \
            else None
        update, close = progress_bar(total, f"loading {args.view}")
        try:
            report = load(store, args.data, view=args.view, entity=args.entity,
                          timestamp=args.timestamp, max_age=args.max_age,
                          batch_rows=args.batch_rows, progress=update)
        finally:
            close()
    finally:
        store.close()
    rate = report.rows / report.seconds if report.seconds else 0.0
    print(f"view {report.view}: {report.rows} rows read, {report.written} written (newer "
          f"than stored) in {report.seconds:.1f} s ({rate:,.0f} rows/s)", file=sys.stderr)
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    import numpy as np

    store = _store(args)
    try:
        meta = store.view(args.view)
        if meta is None:
            raise FeatureViewNotFoundError(f"no view '{args.view}' in {redact(args.store)}")
        rows = store.read(meta, list(args.ids), list(meta.features))
    finally:
        store.close()
    out = []
    for i, k in enumerate(args.ids):
        if not rows.found[i]:
            out.append({meta.entity: k, "_found": False})
            continue
        d: dict[str, Any] = {meta.entity: k, "_ts_us": int(rows.ts_us[i])}
        for f in meta.features:
            v = rows.columns[f][i]
            d[f] = None if rows.null[f][i] else (v.item() if isinstance(v, np.generic) else v)
        out.append(d)
    print(json.dumps(out, indent=2))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``features`` and its subcommands to the ``tablescore`` parser."""
    f = sub.add_parser("features", help="load and inspect feature views for entity-id "
                       "requests (docs/features.md)")
    fs = f.add_subparsers(dest="features_command", required=True)

    def cmd(name: str, fn: Any, help: str) -> argparse.ArgumentParser:
        p = fs.add_parser(name, help=help)
        p.add_argument("--store", default=os.environ.get("TABLESCORE_FEATURES"),
                       help="redis://HOST:PORT/DB or sqlite:///PATH (default "
                            "$TABLESCORE_FEATURES)")
        p.add_argument("--view", required=True, help="the view's name")
        p.set_defaults(fn=fn)
        return p

    p = cmd("load", cmd_load, "load a Parquet or CSV file into a view (latest timestamp "
            "wins; loading it again changes nothing)")
    p.add_argument("--entity", required=True, help="the entity (key) column")
    p.add_argument("--data", required=True, type=Path, help="a .parquet or .csv file")
    p.add_argument("--timestamp", default=None,
                   help="event-time column (timestamp, or seconds since the epoch; default: "
                        "the file's modification time)")
    p.add_argument("--max-age", type=float, default=None, metavar="SECONDS",
                   help="rows older than this count as missing (kept in the view)")
    p.add_argument("--batch-rows", type=int, default=1000, help=argparse.SUPPRESS)
    p = cmd("get", cmd_get, "print the stored features of some entities as JSON")
    p.add_argument("ids", nargs="+", help="entity ids")
